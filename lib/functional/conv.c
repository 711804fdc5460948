/* conv.c - conv2d: validation, gradients, and the im2col + sgemm path.
 *
 * Winograd's F(2x2, 3x3) (conv_winograd.c) takes 3x3 stride-1
 * convolutions of 32+ channels, and the input gradients that are such a
 * convolution; it does 16 multiply-adds per 2x2 outputs where the others do
 * 36, which is how it beats a direct kernel already near the FMA peak.
 * 3x3 stride-2 convolutions of 16+ channels (in multiples of 8) go through
 * F(2x2, 2x2) over the input's four phases (conv_winograd_s2.c, 25
 * multiply-adds instead of 36), one backward pass making both gradients. The
 * direct kernels (conv_direct.c) take every other convolution they support;
 * im2col + cblas_sgemm covers the rest (grouped convolutions with fewer than
 * 4 output channels per group, builds without AVX2), with col2im folding
 * the input gradient where it is not itself a stride-1 convolution. */
#include <limits.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/conv.h"
#include "functional/conv_direct.h"
#include "functional/conv_winograd.h"
#include "functional/conv_winograd_s2.h"
#include "functional/gemm.h"
#include "functional/op.h"

/* Samples per sgemm. Small images give sgemm a short N (an 8x8 output has
 * 64 columns), where it runs far below peak; putting several samples' columns
 * side by side fixes that. The column buffer stays within a few MB so it is
 * still in cache when sgemm reads it. */
enum { CHUNK_MIN_COLUMNS = 2048, CHUNK_MAX_COL_BYTES = 4 << 20 };

/* Below this many floats of dY (2 MB), the bias gradient is summed on one
 * thread. At 2 threads, lenet.conv1's 1.2 MB of dY took 10% longer split
 * (a sleeping worker's wake-up costs more than half the sum saves), while
 * cnn_bn.conv1's 4 MB took 5% less. */
enum { BIAS_SPLIT_MIN = 1 << 19 };

/* The derived sizes, once the shapes, params and output size are set. */
static void geom_finish(conv_geom *g) {
  g->hw = g->h * g->w, g->ohw = g->oh * g->ow;
  g->kc = g->cg * g->kh * g->kw;
  g->unit = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
  int64_t chunk = (CHUNK_MIN_COLUMNS + g->ohw - 1) / g->ohw;
  int64_t by_bytes = CHUNK_MAX_COL_BYTES / 4 / (g->kc > 0 ? g->kc : 1) / g->ohw;
  if (chunk > by_bytes) chunk = by_bytes;
  if (chunk > INT_MAX / g->ohw) chunk = INT_MAX / g->ohw;
  if (chunk > g->n) chunk = g->n;
  g->chunk = chunk > 1 ? chunk : 1;
}

/* Validates the inputs and params and fills g; every message names conv2d
 * and the shapes involved. */
static td_status conv_geometry(const td_op_ctx *ctx, conv_geom *g) {
  const td_conv2d_params *p = ctx->params;
  const td_tensor *x = ctx->inputs[0], *wt = ctx->inputs[1], *b = ctx->inputs[2];
  td_status st;
  if (!x || !wt) return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: input or weight is NULL");
  if ((st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input")) ||
      (st = td_op_check_dtype(ctx, 1, TD_FLOAT32, "weight")) ||
      (b && (st = td_op_check_dtype(ctx, 2, TD_FLOAT32, "bias"))) ||
      (st = td_op_check_ndim(ctx, 0, 4, 4, "input")) ||
      (st = td_op_check_ndim(ctx, 1, 4, 4, "weight")))
    return st;
  char sx[TD_SHAPE_STR_MAX], sw[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
  td_tensor_shape_str(sx, x);
  td_tensor_shape_str(sw, wt);
  for (int i = 0; i < 2; i++) {
    if (p->stride[i] < 1 || p->dilation[i] < 1 || p->padding[i] < 0)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "conv2d: stride (%d,%d) and dilation (%d,%d) must be >= 1 and padding "
                      "(%d,%d) >= 0",
                      p->stride[0], p->stride[1], p->dilation[0], p->dilation[1], p->padding[0],
                      p->padding[1]);
  }
  if (p->groups < 1)
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: groups must be >= 1, got %d", p->groups);
  g->n = x->shape[0], g->c = x->shape[1], g->h = x->shape[2], g->w = x->shape[3];
  g->o = wt->shape[0], g->kh = wt->shape[2], g->kw = wt->shape[3];
  g->groups = p->groups;
  if (g->c % g->groups || g->o % g->groups)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: groups %d must divide input channels %lld and output channels %lld "
                    "(input %s, weight %s)",
                    p->groups, (long long)g->c, (long long)g->o, sx, sw);
  g->cg = g->c / g->groups, g->og = g->o / g->groups;
  if (wt->shape[1] != g->cg)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: input has %lld channels, weight expects %lld (input %s, weight %s, "
                    "groups %d)",
                    (long long)g->c, (long long)(wt->shape[1] * g->groups), sx, sw, p->groups);
  if (b && (b->ndim != 1 || b->shape[0] != g->o))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: bias %s does not match weight %s (want [%lld])",
                    td_tensor_shape_str(sb, b), sw, (long long)g->o);
  g->sh = p->stride[0], g->sw = p->stride[1], g->ph = p->padding[0], g->pw = p->padding[1];
  g->dh = p->dilation[0], g->dw = p->dilation[1];
  /* Extents beyond 2^40 are impossible as real tensors (weights are checked
   * by numel); bounding them first keeps the products below from overflowing. */
  const int64_t big = (int64_t)1 << 40;
  int64_t ph2 = g->h + 2 * g->ph, pw2 = g->w + 2 * g->pw;
  if (g->kh > big || g->kw > big || ph2 < (g->kh - 1) * g->dh + 1 || pw2 < (g->kw - 1) * g->dw + 1)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: kernel %lldx%lld (dilation %lldx%lld) is larger than the padded "
                    "input %lldx%lld (input %s, weight %s, padding %d,%d)",
                    (long long)g->kh, (long long)g->kw, (long long)g->dh, (long long)g->dw,
                    (long long)ph2, (long long)pw2, sx, sw, p->padding[0], p->padding[1]);
  g->oh = (ph2 - (g->kh - 1) * g->dh - 1) / g->sh + 1;
  g->ow = (pw2 - (g->kw - 1) * g->dw - 1) / g->sw + 1;
  /* sgemm takes int dims: a plane or a column matrix beyond that is refused
   * before anything is allocated. */
  if (g->h > big || g->w > big || g->oh * g->ow > INT_MAX || g->h * g->w > INT_MAX ||
      g->cg * g->kh * g->kw > INT_MAX || g->o * g->kh * g->kw > INT_MAX)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: input %s with weight %s exceeds BLAS's int dimensions", sx, sw);
  geom_finish(g);
  return TD_OK;
}

/* One sample's group of channels x [cg, H, W] into its block of the column
 * matrix: row (c, i, j) holds the pixel under kernel tap (i, j) of channel c
 * for every output position, 0 where the tap is in the padding. Rows are
 * ldc long; this sample's block starts at col.
 *
 * With stride 1 and "same" width (OW == W) a row is the input plane shifted
 * by a constant, so each row is one memcpy plus zeroed border columns: far
 * fewer, longer copies than one per output row. */
static void im2col(const conv_geom *g, const float *x, float *col, int64_t ldc) {
  const int64_t ow = g->ow, w = g->w;
  if (g->unit) {
    for (int64_t c = 0; c < g->cg; c++)
      memcpy(col + c * ldc, x + c * g->hw, sizeof(float) * g->hw);
    return;
  }
  const bool shifted = g->sw == 1 && g->sh == 1 && ow == w;
  for (int64_t c = 0; c < g->cg; c++) {
    const float *plane = x + c * g->hw;
    for (int64_t i = 0; i < g->kh; i++) {
      int64_t ylo, yhi, yoff = i * g->dh - g->ph;
      conv_valid_range(yoff, g->sh, g->h, g->oh, &ylo, &yhi);
      for (int64_t j = 0; j < g->kw; j++) {
        float *row = col + ((c * g->kh + i) * g->kw + j) * ldc;
        int64_t xlo, xhi, xoff = j * g->dw - g->pw;
        conv_valid_range(xoff, g->sw, w, ow, &xlo, &xhi);
        memset(row, 0, sizeof(float) * ylo * ow);
        memset(row + yhi * ow, 0, sizeof(float) * (g->oh - yhi) * ow);
        if (ylo >= yhi || xlo >= xhi) {
          memset(row + ylo * ow, 0, sizeof(float) * (yhi - ylo) * ow);
          continue;
        }
        if (shifted) {
          int64_t first = ylo * ow + xlo, last = (yhi - 1) * ow + xhi;
          memcpy(row + first, plane + first + yoff * w + xoff, sizeof(float) * (last - first));
          for (int64_t oy = ylo; oy < yhi; oy++) {
            float *r = row + oy * ow;
            for (int64_t ox = 0; ox < xlo; ox++)
              r[ox] = 0;
            for (int64_t ox = xhi; ox < ow; ox++)
              r[ox] = 0;
          }
          continue;
        }
        for (int64_t oy = ylo; oy < yhi; oy++) {
          float *r = row + oy * ow;
          const float *src = plane + (oy * g->sh + yoff) * w;
          for (int64_t ox = 0; ox < xlo; ox++)
            r[ox] = 0;
          if (g->sw == 1)
            memcpy(r + xlo, src + xlo + xoff, sizeof(float) * (xhi - xlo));
          else
            for (int64_t ox = xlo; ox < xhi; ox++)
              r[ox] = src[ox * g->sw + xoff];
          for (int64_t ox = xhi; ox < ow; ox++)
            r[ox] = 0;
        }
      }
    }
  }
}

/* The adjoint of im2col: adds every column entry back onto the input pixel
 * it was copied from (dx must start zeroed; taps in the padding drop out).
 * In the shifted case the border entries of the column row are zeroed first
 * (col is scratch), so the whole row adds as one run: the entries that wrap
 * onto a neighbouring input row then add nothing. */
static void col2im(const conv_geom *g, float *col, int64_t ldc, float *dx) {
  const int64_t ow = g->ow, w = g->w;
  if (g->unit) {
    for (int64_t c = 0; c < g->cg; c++)
      memcpy(dx + c * g->hw, col + c * ldc, sizeof(float) * g->hw);
    return;
  }
  const bool shifted = g->sw == 1 && g->sh == 1 && ow == w;
  for (int64_t c = 0; c < g->cg; c++) {
    float *plane = dx + c * g->hw;
    for (int64_t i = 0; i < g->kh; i++) {
      int64_t ylo, yhi, yoff = i * g->dh - g->ph;
      conv_valid_range(yoff, g->sh, g->h, g->oh, &ylo, &yhi);
      for (int64_t j = 0; j < g->kw; j++) {
        float *row = col + ((c * g->kh + i) * g->kw + j) * ldc;
        int64_t xlo, xhi, xoff = j * g->dw - g->pw;
        conv_valid_range(xoff, g->sw, w, ow, &xlo, &xhi);
        if (ylo >= yhi || xlo >= xhi) continue;
        if (shifted) {
          for (int64_t oy = ylo; oy < yhi; oy++) {
            float *r = row + oy * ow;
            for (int64_t ox = 0; ox < xlo; ox++)
              r[ox] = 0;
            for (int64_t ox = xhi; ox < ow; ox++)
              r[ox] = 0;
          }
          int64_t first = ylo * ow + xlo, n = (yhi - 1) * ow + xhi - first;
          float *dst = plane + first + yoff * w + xoff;
          const float *src = row + first;
          for (int64_t k = 0; k < n; k++)
            dst[k] += src[k];
          continue;
        }
        for (int64_t oy = ylo; oy < yhi; oy++) {
          const float *r = row + oy * ow;
          float *dst = plane + (oy * g->sh + yoff) * w;
          if (g->sw == 1)
            for (int64_t ox = xlo; ox < xhi; ox++)
              dst[ox + xoff] += r[ox];
          else
            for (int64_t ox = xlo; ox < xhi; ox++)
              dst[ox * g->sw + xoff] += r[ox];
        }
      }
    }
  }
}

/* Scratch for one chunk of samples: the column matrix, and (when the chunk
 * has several samples) the output rows [O, nb * OH*OW] before they are
 * scattered back to NCHW. */
typedef struct conv_scratch {
  float *col;
  float *rows;
} conv_scratch;

/* rows x cols floats (at least one, so pointer arithmetic on it is defined). */
static float *alloc_floats(int64_t rows, int64_t cols, const char *what) {
  size_t n;
  if (td_mul_overflow_size((size_t)(rows > 1 ? rows : 1), (size_t)cols, &n) ||
      td_mul_overflow_size(n, sizeof(float), &n)) {
    td_error(TD_ERR_NO_MEMORY, "%s: %lld x %lld floats overflow the address space", what,
             (long long)rows, (long long)cols);
    return NULL;
  }
  return td_alloc(n, what);
}

static td_status scratch_alloc(const conv_geom *g, bool need_col, conv_scratch *s) {
  s->col = s->rows = NULL;
  int64_t cols = g->chunk * g->ohw;
  if (need_col && !(s->col = alloc_floats(g->kc, cols, "conv2d columns"))) return TD_ERR_NO_MEMORY;
  if (g->chunk > 1 && !(s->rows = alloc_floats(g->o, cols, "conv2d rows"))) {
    td_free(s->col);
    s->col = NULL;
    return TD_ERR_NO_MEMORY;
  }
  return TD_OK;
}

static void scratch_free(conv_scratch *s) {
  td_free(s->col);
  td_free(s->rows);
}

/* ---- forward ------------------------------------------------------------- */

/* y [N, O, OH, OW] = conv(x, w) + bias over contiguous buffers (bias may be
 * NULL). Samples go through in chunks; a chunk of one writes straight into y. */
static td_status conv_forward_buffers(const conv_geom *g, const float *xp, const float *wp,
                                      const float *bp, float *yp) {
  conv_scratch s;
  td_status st = scratch_alloc(g, !(g->unit && g->chunk == 1), &s);
  if (st) return st;
  for (int64_t s0 = 0; s0 < g->n; s0 += g->chunk) {
    int64_t nb = g->n - s0 < g->chunk ? g->n - s0 : g->chunk, cols = nb * g->ohw;
    for (int64_t gi = 0; gi < g->groups; gi++) {
      const float *xg = xp + (s0 * g->c + gi * g->cg) * g->hw, *colp = xg;
      if (!(g->unit && nb == 1)) {
        for (int64_t k = 0; k < nb; k++)
          im2col(g, xg + k * g->c * g->hw, s.col + k * g->ohw, cols);
        colp = s.col;
      }
      const float *wg = wp + gi * g->og * g->kc;
      if (nb == 1) { /* over the bias, as addmm does */
        float *yg = yp + (s0 * g->o + gi * g->og) * g->ohw;
        if (bp)
          for (int64_t o = 0; o < g->og; o++)
            for (int64_t i = 0; i < g->ohw; i++)
              yg[o * g->ohw + i] = bp[gi * g->og + o];
        td_sgemm(false, false, g->og, g->ohw, g->kc, wg, g->kc, colp, g->ohw, bp ? 1.0f : 0.0f, yg,
                 g->ohw);
      } else {
        td_sgemm(false, false, g->og, cols, g->kc, wg, g->kc, colp, cols, 0.0f,
                 s.rows + gi * g->og * cols, cols);
      }
    }
    if (nb > 1) /* rows [O, nb, OH*OW] back to [nb, O, OH*OW], adding the bias */
      for (int64_t k = 0; k < nb; k++)
        for (int64_t o = 0; o < g->o; o++) {
          float *dst = yp + ((s0 + k) * g->o + o) * g->ohw;
          const float *src = s.rows + o * cols + k * g->ohw;
          float bias = bp ? bp[o] : 0.0f;
          for (int64_t i = 0; i < g->ohw; i++)
            dst[i] = src[i] + bias;
        }
  }
  scratch_free(&s);
  return TD_OK;
}

static td_status conv_forward_any(const conv_geom *g, const float *x, const float *w,
                                  const float *bias, float *y) {
  if (td_conv_winograd_supported(g)) return td_conv_winograd_forward(g, x, w, bias, y);
  if (td_conv_winograd_s2_supported(g)) return td_conv_winograd_s2_forward(g, x, w, bias, y);
  if (td_conv_direct_supported(g)) return td_conv_direct_forward(g, x, w, bias, y);
  return conv_forward_buffers(g, x, w, bias, y);
}

static td_status conv2d_forward(td_op_ctx *ctx, td_tensor **out) {
  conv_geom g;
  td_status st = conv_geometry(ctx, &g);
  if (st) return st;
  td_tensor *x = NULL, *w = NULL, *b = NULL, *y = NULL;
  int64_t shape[4] = {g.n, g.o, g.oh, g.ow};
  if (!(st = td_tensor_contiguous(ctx->inputs[0], &x)) &&
      !(st = td_tensor_contiguous(ctx->inputs[1], &w)) &&
      !(ctx->inputs[2] && (st = td_tensor_contiguous(ctx->inputs[2], &b))) &&
      !(st = td_tensor_empty(TD_FLOAT32, 4, shape, &y)))
    st = conv_forward_any(&g, td_tensor_f32(x), td_tensor_f32(w), b ? td_tensor_f32(b) : NULL,
                          td_tensor_f32(y));
  td_tensor_release(x);
  td_tensor_release(w);
  td_tensor_release(b);
  if (st) {
    td_tensor_release(y);
    return st;
  }
  *out = y;
  return TD_OK;
}

/* ---- backward ------------------------------------------------------------ */

/* Sum of n floats in 16 lanes (the compiler vectorizes the lanes, which it
 * may not do for one running float sum, and lanes round less). */
static float sum_floats(const float *p, int64_t n) {
  float lane[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++)
      lane[k] += p[i + k];
  float s = 0;
  for (; i < n; i++)
    s += p[i];
  for (int k = 0; k < 16; k++)
    s += lane[k];
  return s;
}

typedef struct bias_job {
  const conv_geom *g;
  const float *gy;
  float *db;
} bias_job;

/* db[o] for o in [lo, hi): planes in float, their sum in double. */
static void bias_range(void *arg, int64_t lo, int64_t hi) {
  const bias_job *j = arg;
  const conv_geom *g = j->g;
  for (int64_t o = lo; o < hi; o++) {
    double acc = 0;
    for (int64_t k = 0; k < g->n; k++)
      acc += sum_floats(j->gy + (k * g->o + o) * g->ohw, g->ohw);
    j->db[o] = (float)acc;
  }
}

/* db[o] = sum of gy over samples and positions. A pass over all of dY that
 * does little else, so its speed is memory's: threads split the channels. */
static td_status bias_grad(const conv_geom *g, const float *gy, td_tensor **out) {
  td_tensor *t;
  td_status st = td_tensor_empty(TD_FLOAT32, 1, &g->o, &t);
  if (st) return st;
  bias_job j = {g, gy, td_tensor_f32(t)};
  int nt = g->n * g->o * g->ohw < BIAS_SPLIT_MIN ? 1 : td_parallel_threads(g->o);
  td_parallel_for(g->o, 1, nt, bias_range, &j);
  *out = t;
  return TD_OK;
}

/* dW = sum over samples of dY @ columns^T, per group. It is accumulated
 * transposed, [groups][kc, og]: sgemm reads the column matrix far faster as
 * its left operand than transposed on the right. */
static td_status weight_grad(const conv_geom *g, const float *xp, const float *dyp, float *dwp) {
  if (td_conv_winograd_supported(g)) return td_conv_winograd_weight_grad(g, xp, dyp, dwp);
  if (td_conv_direct_supported(g)) return td_conv_direct_weight_grad(g, xp, dyp, dwp);
  conv_scratch s;
  float *dwt = td_calloc((size_t)(g->o * g->kc) + 1, sizeof(float), "conv2d weight gradient");
  if (!dwt) return TD_ERR_NO_MEMORY;
  td_status st = scratch_alloc(g, !(g->unit && g->chunk == 1), &s);
  if (st) {
    td_free(dwt);
    return st;
  }
  for (int64_t s0 = 0; s0 < g->n; s0 += g->chunk) {
    int64_t nb = g->n - s0 < g->chunk ? g->n - s0 : g->chunk, cols = nb * g->ohw;
    const float *dyrows = dyp + s0 * g->o * g->ohw; /* [O, cols] for this chunk */
    if (nb > 1) {
      for (int64_t k = 0; k < nb; k++)
        for (int64_t o = 0; o < g->o; o++)
          memcpy(s.rows + o * cols + k * g->ohw, dyrows + (k * g->o + o) * g->ohw,
                 sizeof(float) * g->ohw);
      dyrows = s.rows;
    }
    for (int64_t gi = 0; gi < g->groups; gi++) {
      const float *xg = xp + (s0 * g->c + gi * g->cg) * g->hw, *colp = xg;
      if (!(g->unit && nb == 1)) {
        for (int64_t k = 0; k < nb; k++)
          im2col(g, xg + k * g->c * g->hw, s.col + k * g->ohw, cols);
        colp = s.col;
      }
      td_sgemm(false, true, g->kc, g->og, cols, colp, cols, dyrows + gi * g->og * cols, cols, 1.0f,
               dwt + gi * g->kc * g->og, g->og);
    }
  }
  for (int64_t gi = 0; gi < g->groups; gi++)
    for (int64_t o = 0; o < g->og; o++)
      for (int64_t k = 0; k < g->kc; k++)
        dwp[(gi * g->og + o) * g->kc + k] = dwt[(gi * g->kc + k) * g->og + o];
  td_free(dwt);
  scratch_free(&s);
  return TD_OK;
}

/* With stride 1, dX is itself a convolution: dY padded by (k-1)*d - p,
 * correlated with the weight flipped in space and with in/out channels
 * swapped. That is one well-shaped sgemm per chunk (inner dimension
 * O/groups*kh*kw) writing dX once, instead of an sgemm with inner dimension
 * O/groups writing a column matrix 9x the size of dX for col2im to fold.
 * Returns false (use col2im) for strided convs and padding wider than the
 * kernel's reach. */
static bool input_grad_as_conv(const conv_geom *g, conv_geom *t) {
  int64_t reach_h = (g->kh - 1) * g->dh, reach_w = (g->kw - 1) * g->dw;
  if (g->sh != 1 || g->sw != 1 || g->ph > reach_h || g->pw > reach_w) return false;
  *t = *g;
  t->c = g->o, t->h = g->oh, t->w = g->ow;
  t->o = g->c, t->oh = g->h, t->ow = g->w;
  t->cg = g->og, t->og = g->cg;
  t->ph = reach_h - g->ph, t->pw = reach_w - g->pw;
  geom_finish(t);
  if (td_conv_direct_supported(t)) return true;
  /* On the im2col path, an unpadded conv that shrinks the image makes dY's
   * column matrix much bigger than dX's: col2im moves less memory there (it
   * touches its matrix about twice). */
  return t->kc * t->ohw <= 2 * g->kc * g->ohw;
}

/* wt[c, o, i, j] = w[o, c, kh-1-i, kw-1-j] within each group. */
static void flip_weights(const conv_geom *g, const float *w, float *wt) {
  int64_t khw = g->kh * g->kw;
  for (int64_t gi = 0; gi < g->groups; gi++)
    for (int64_t o = 0; o < g->og; o++)
      for (int64_t c = 0; c < g->cg; c++) {
        const float *src = w + ((gi * g->og + o) * g->cg + c) * khw;
        float *dst = wt + ((gi * g->cg + c) * g->og + o) * khw;
        for (int64_t k = 0; k < khw; k++)
          dst[k] = src[khw - 1 - k];
      }
}

/* dX by col2im (any stride): columns of dX = W_g^T @ dY_g, folded back. */
static td_status input_grad_col2im(const conv_geom *g, const float *wp, const float *dyp,
                                   float *dxp) {
  conv_scratch s;
  td_status st = scratch_alloc(g, true, &s);
  if (st) return st;
  memset(dxp, 0, sizeof(float) * (size_t)(g->n * g->c * g->hw));
  for (int64_t s0 = 0; s0 < g->n; s0 += g->chunk) {
    int64_t nb = g->n - s0 < g->chunk ? g->n - s0 : g->chunk, cols = nb * g->ohw;
    const float *dyrows = dyp + s0 * g->o * g->ohw;
    if (nb > 1) {
      for (int64_t k = 0; k < nb; k++)
        for (int64_t o = 0; o < g->o; o++)
          memcpy(s.rows + o * cols + k * g->ohw, dyrows + (k * g->o + o) * g->ohw,
                 sizeof(float) * g->ohw);
      dyrows = s.rows;
    }
    for (int64_t gi = 0; gi < g->groups; gi++) {
      float *dxg = dxp + (s0 * g->c + gi * g->cg) * g->hw;
      td_sgemm(true, false, g->kc, cols, g->og, wp + gi * g->og * g->kc, g->kc,
               dyrows + gi * g->og * cols, cols, 0.0f, s.col, cols);
      for (int64_t k = 0; k < nb; k++)
        col2im(g, s.col + k * g->ohw, cols, dxg + k * g->c * g->hw);
    }
  }
  scratch_free(&s);
  return TD_OK;
}

/* A stride-1 dX that Winograd takes goes that way; otherwise the direct
 * kernels, then the flipped-weight convolution, then col2im. */
static td_status input_grad(const conv_geom *g, const float *wp, const float *dyp, float *dxp) {
  conv_geom t;
  bool as_conv = input_grad_as_conv(g, &t);
  if (!(as_conv && td_conv_winograd_supported(&t))) {
    if (td_conv_direct_input_grad_supported(g)) return td_conv_direct_input_grad(g, wp, dyp, dxp);
    if (!as_conv) return input_grad_col2im(g, wp, dyp, dxp);
  }
  float *wt = td_alloc(sizeof(float) * (size_t)(g->o * g->kc + 1), "conv2d flipped weight");
  if (!wt) return TD_ERR_NO_MEMORY;
  flip_weights(g, wp, wt);
  td_status st = conv_forward_any(&t, dyp, wt, NULL, dxp);
  td_free(wt);
  return st;
}

static td_status conv2d_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  conv_geom g;
  td_status st = conv_geometry(ctx, &g);
  if (st) return st;
  td_tensor *dy = NULL, *x = NULL, *w = NULL;
  int64_t wshape[4] = {g.o, g.cg, g.kh, g.kw};
  if ((st = td_tensor_contiguous(gy, &dy))) return st;
  const float *dyp = td_tensor_f32(dy);
  if (ctx->inputs[2] && ctx->needs_input_grad[2] && (st = bias_grad(&g, dyp, &gx[2]))) goto done;
  const bool want_dw = ctx->needs_input_grad[1], want_dx = ctx->needs_input_grad[0];
  if (want_dw && ((st = td_tensor_contiguous(ctx->inputs[0], &x)) ||
                  (st = td_tensor_empty(TD_FLOAT32, 4, wshape, &gx[1]))))
    goto done;
  if (want_dx && ((st = td_tensor_contiguous(ctx->inputs[1], &w)) ||
                  (st = td_tensor_empty(TD_FLOAT32, 4, ctx->inputs[0]->shape, &gx[0]))))
    goto done;
  float *dwp = want_dw ? td_tensor_f32(gx[1]) : NULL, *dxp = want_dx ? td_tensor_f32(gx[0]) : NULL;
  if (td_conv_winograd_s2_supported(&g)) { /* one pass makes both */
    st = td_conv_winograd_s2_backward(&g, x ? td_tensor_f32(x) : NULL, w ? td_tensor_f32(w) : NULL,
                                      dyp, dxp, dwp);
    goto done;
  }
  if (want_dw && (st = weight_grad(&g, td_tensor_f32(x), dyp, dwp))) goto done;
  if (want_dx) st = input_grad(&g, td_tensor_f32(w), dyp, dxp);
done:
  td_tensor_release(dy);
  td_tensor_release(x);
  td_tensor_release(w);
  return st;
}

const td_op_def td_op_conv2d = {
    "conv2d", 3, sizeof(td_conv2d_params), TD_SAVE_INPUTS, conv2d_forward, conv2d_backward};

td_status td_conv2d(td_tensor *x, td_tensor *weight, td_tensor *bias, const td_conv2d_params *p,
                    td_tensor **out) {
  td_tensor *in[3] = {x, weight, bias};
  if (!p) {
    *out = NULL;
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: params are NULL");
  }
  return td_apply(TD_OP_CONV2D, p, in, 3, out);
}
