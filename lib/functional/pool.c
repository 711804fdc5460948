/* pool.c - max, average and adaptive average 2-d pooling over [N,]C,H,W planes. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/conv.h"
#include "functional/op.h"
#include "functional/vec.h"

/* Pooling treats [N, C, H, W] (or unbatched [C, H, W]) as N*C independent planes. */
typedef struct pool_geom {
  int64_t planes, h, w, oh, ow;
  int64_t kh, kw, sh, sw, ph, pw;
} pool_geom;

/* The input checks every pool shares: float32, 3-d or 4-d, non-empty planes
 * (PyTorch's rule: only the batch may be empty). */
static td_status pool_input(const td_op_ctx *ctx, pool_geom *g) {
  const char *name = ctx->def->name;
  if (!ctx->inputs[0]) return td_error(TD_ERR_INVALID_ARGUMENT, "%s: input is NULL", name);
  td_status st;
  if ((st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input")) ||
      (st = td_op_check_ndim(ctx, 0, 3, 4, "input")))
    return st;
  const td_tensor *x = ctx->inputs[0];
  int nd = x->ndim;
  for (int d = nd - 3; d < nd; d++) {
    if (x->shape[d] == 0) {
      char s[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: expected non-empty channel and spatial dims, got input %s", name,
                      td_tensor_shape_str(s, x));
    }
  }
  if (x->shape[nd - 2] > INT_MAX || x->shape[nd - 1] > INT_MAX) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: spatial dims over 2^31 are not supported (input %s)", name,
                    td_tensor_shape_str(s, x));
  }
  g->planes = nd == 4 ? x->shape[0] * x->shape[1] : x->shape[0];
  g->h = x->shape[nd - 2], g->w = x->shape[nd - 1];
  return TD_OK;
}

static td_status pool_output(const td_tensor *x, const pool_geom *g, td_tensor **out) {
  int64_t shape[4];
  memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
  shape[x->ndim - 2] = g->oh, shape[x->ndim - 1] = g->ow;
  return td_tensor_empty(TD_FLOAT32, x->ndim, shape, out);
}

/* Windowed pools: kernel, stride, padding checks and output size. */
static td_status pool_geometry(const td_op_ctx *ctx, pool_geom *g) {
  const td_pool2d_params *p = ctx->params;
  const char *name = ctx->def->name;
  td_status st = pool_input(ctx, g);
  if (st) return st;
  for (int i = 0; i < 2; i++) {
    if (p->kernel[i] < 1 || p->stride[i] < 1 || p->padding[i] < 0)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: kernel (%d,%d) and stride (%d,%d) must be >= 1 and padding (%d,%d) >= 0",
                      name, p->kernel[0], p->kernel[1], p->stride[0], p->stride[1], p->padding[0],
                      p->padding[1]);
    if (p->padding[i] > p->kernel[i] / 2)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: padding (%d,%d) must be at most half the kernel (%d,%d)", name,
                      p->padding[0], p->padding[1], p->kernel[0], p->kernel[1]);
  }
  g->kh = p->kernel[0], g->kw = p->kernel[1], g->sh = p->stride[0], g->sw = p->stride[1];
  g->ph = p->padding[0], g->pw = p->padding[1];
  int64_t span_h = g->h + 2 * g->ph - g->kh, span_w = g->w + 2 * g->pw - g->kw;
  if (span_h < 0 || span_w < 0) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: output size is too small: input %s with kernel (%d,%d) and padding "
                    "(%d,%d) leaves no window",
                    name, td_tensor_shape_str(s, ctx->inputs[0]), p->kernel[0], p->kernel[1],
                    p->padding[0], p->padding[1]);
  }
  g->oh = span_h / g->sh + 1, g->ow = span_w / g->sw + 1;
  return TD_OK;
}

/* Clipped window [lo, hi) of output position o along one axis. */
static inline void window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size,
                          int64_t *lo, int64_t *hi) {
  int64_t s = o * stride - pad, e = s + k;
  *lo = s > 0 ? s : 0;
  *hi = e < size ? e : size;
}

/* Planes are independent: a big input is split over the engine's threads by
 * plane. */
enum { POOL_PARALLEL_MIN_ELEMENTS = 1 << 16 };

/* fn(arg, p0, p1) over planes [0, planes), in pieces. */
static void pool_run_planes(int64_t planes, int64_t plane_elements, td_range_fn fn, void *arg) {
  int nt = planes * plane_elements < POOL_PARALLEL_MIN_ELEMENTS ? 1 : td_parallel_threads(planes);
  td_parallel_for(planes, 1, nt, fn, arg);
}

/* ---- max_pool2d ---------------------------------------------------------- */

/* PyTorch's scan: the first maximum wins, a NaN always replaces. */
static inline bool max_takes(float v, float m) { return v > m || v != v; }

/* Output columns [ox_from, ow) of one plane whose windows all lie inside it
 * (no padding). The window's first element starts the scan (as -inf would,
 * the rule above keeps it), and the choice is a select, not a branch: on
 * real activations which element wins is a coin toss, and a mispredicted
 * branch per element cost more than the whole comparison. */
static inline void max_plane_full(const float *src, int64_t w, int64_t oh, int64_t ow,
                                  int64_t ox_from, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                  float *dst, int32_t *idx) {
  for (int64_t oy = 0; oy < oh; oy++) {
    int64_t row0 = oy * sh * w;
    for (int64_t ox = ox_from; ox < ow; ox++) {
      int64_t at = row0 + ox * sw;
      float m = src[at];
      int32_t mi = (int32_t)at;
      for (int64_t iy = 0; iy < kh; iy++)
        for (int64_t ix = 0; ix < kw; ix++) {
          int64_t k = at + iy * w + ix;
          float v = src[k];
          bool take = max_takes(v, m);
          m = take ? v : m;
          mi = take ? (int32_t)k : mi;
        }
      dst[oy * ow + ox] = m;
      if (idx) idx[oy * ow + ox] = mi;
    }
  }
}

#if defined(__AVX2__)
/* The 2x2/2 pool, 8 outputs per step: the even and odd columns of the two
 * input rows are the window's four elements, taken in scan order with the
 * same rule as max_takes (greater, or NaN). Columns the vectors do not
 * reach are left to max_plane_full. */
static void max_plane_2x2(const float *src, int64_t w, int64_t oh, int64_t ow, float *dst,
                          int32_t *idx) {
  const int64_t ow8 = ow / 8 * 8;
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  for (int64_t oy = 0; oy < oh; oy++) {
    const float *r0 = src + 2 * oy * w, *r1 = r0 + w;
    for (int64_t ox = 0; ox < ow8; ox += 8) {
      __m256 e[2], o[2];
      const float *rows[2] = {r0 + 2 * ox, r1 + 2 * ox};
      for (int r = 0; r < 2; r++) {
        __m256 lo = _mm256_loadu_ps(rows[r]), hi = _mm256_loadu_ps(rows[r] + 8);
        e[r] = td_even8(lo, hi);
        o[r] = td_odd8(lo, hi);
      }
      const __m256i at = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(2 * oy * w + 2 * ox)), lane2);
      const __m256 cand[3] = {o[0], e[1], o[1]};
      const int32_t off[3] = {1, (int32_t)w, (int32_t)w + 1};
      __m256 m = e[0];
      __m256i mi = at;
      for (int k = 0; k < 3; k++) {
        __m256 v = cand[k];
        __m256 take =
            _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        m = _mm256_blendv_ps(m, v, take);
        __m256i vi = _mm256_add_epi32(at, _mm256_set1_epi32(off[k]));
        mi = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(mi), _mm256_castsi256_ps(vi), take));
      }
      _mm256_storeu_ps(dst + oy * ow + ox, m);
      if (idx) _mm256_storeu_si256((__m256i *)(idx + oy * ow + ox), mi);
    }
  }
  if (ow8 < ow) max_plane_full(src, w, oh, ow, ow8, 2, 2, 2, 2, dst, idx);
}
#endif

/* One plane with padding: windows clipped at the edges. */
static void max_plane_clipped(const float *src, const pool_geom *g, float *dst, int32_t *idx) {
  for (int64_t oy = 0; oy < g->oh; oy++) {
    int64_t y0, y1;
    window(oy, g->sh, g->ph, g->kh, g->h, &y0, &y1);
    for (int64_t ox = 0; ox < g->ow; ox++) {
      int64_t x0, x1;
      window(ox, g->sw, g->pw, g->kw, g->w, &x0, &x1);
      float m = -INFINITY;
      int64_t mi = y0 * g->w + x0;
      for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t ix = x0; ix < x1; ix++) {
          float v = src[iy * g->w + ix];
          if (max_takes(v, m)) m = v, mi = iy * g->w + ix;
        }
      dst[oy * g->ow + ox] = m;
      if (idx) idx[oy * g->ow + ox] = (int32_t)mi;
    }
  }
}

typedef struct max_job {
  const pool_geom *g;
  const float *x;
  float *y;
  int32_t *idx; /* NULL when not recording */
} max_job;

static void max_planes(void *arg, int64_t p0, int64_t p1) {
  const max_job *j = arg;
  const pool_geom *g = j->g;
  bool unclipped = g->ph == 0 && g->pw == 0; /* floor mode: every window then lies inside */
  for (int64_t p = p0; p < p1; p++) {
    const float *src = j->x + p * g->h * g->w;
    float *dst = j->y + p * g->oh * g->ow;
    int32_t *di = j->idx ? j->idx + p * g->oh * g->ow : NULL;
    if (unclipped && g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2)
#if defined(__AVX2__)
      max_plane_2x2(src, g->w, g->oh, g->ow, dst, di);
#else
      max_plane_full(src, g->w, g->oh, g->ow, 0, 2, 2, 2, 2, dst, di);
#endif
    else if (unclipped)
      max_plane_full(src, g->w, g->oh, g->ow, 0, g->kh, g->kw, g->sh, g->sw, dst, di);
    else
      max_plane_clipped(src, g, dst, di);
  }
}

static td_status max_pool2d_forward(td_op_ctx *ctx, td_tensor **out) {
  pool_geom g;
  td_status st = pool_geometry(ctx, &g);
  if (st) return st;
  if (g.h * g.w > INT32_MAX) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "max_pool2d: planes over 2^31 elements are not supported (input %s)",
                    td_tensor_shape_str(s, ctx->inputs[0]));
  }
  td_tensor *x = NULL, *y = NULL, *idx = NULL;
  if ((st = td_tensor_contiguous(ctx->inputs[0], &x)) || (st = pool_output(x, &g, &y))) goto done;
  /* Argmax positions within the plane, kept for backward only when recording. */
  if (ctx->recording) {
    if ((st = td_tensor_empty(TD_INT32, y->ndim, y->shape, &idx)) || (st = td_op_save(ctx, idx)))
      goto done;
  }
  max_job j = {&g, td_tensor_f32(x), td_tensor_f32(y), idx ? td_tensor_data(idx) : NULL};
  pool_run_planes(g.planes, g.h * g.w, max_planes, &j);
done:
  td_tensor_release(x);
  td_tensor_release(idx);
  if (st) {
    td_tensor_release(y);
    return st;
  }
  *out = y;
  return TD_OK;
}

typedef struct max_grad_job {
  const float *dy;
  const int32_t *idx;
  float *dx;
  int64_t hw, ohw;
} max_grad_job;

/* Planes [p0, p1) of dx: zeros, then each output's gradient added at the
 * position its maximum came from (overlapping windows may share one). */
static void max_grad_planes(void *arg, int64_t p0, int64_t p1) {
  const max_grad_job *j = arg;
  for (int64_t p = p0; p < p1; p++) {
    float *dx = j->dx + p * j->hw;
    const float *g = j->dy + p * j->ohw;
    const int32_t *ip = j->idx + p * j->ohw;
    memset(dx, 0, sizeof(float) * (size_t)j->hw);
    for (int64_t o = 0; o < j->ohw; o++)
      dx[ip[o]] += g[o];
  }
}

static td_status max_pool2d_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[0];
  td_tensor *dy = NULL;
  td_status st;
  if ((st = td_tensor_contiguous(gy, &dy)) ||
      (st = td_tensor_empty(TD_FLOAT32, m->ndim, m->shape, &gx[0]))) {
    td_tensor_release(dy);
    return st;
  }
  int64_t hw = m->shape[m->ndim - 2] * m->shape[m->ndim - 1];
  int64_t ohw = gy->shape[gy->ndim - 2] * gy->shape[gy->ndim - 1]; /* oh, ow >= 1 */
  max_grad_job j = {td_tensor_f32(dy), (const int32_t *)td_tensor_data(ctx->saved_tensors[0]),
                    td_tensor_f32(gx[0]), hw, ohw};
  pool_run_planes(dy->numel / ohw, hw, max_grad_planes, &j);
  td_tensor_release(dy);
  return TD_OK;
}

const td_op_def td_op_max_pool2d = {
    "max_pool2d",       1, sizeof(td_pool2d_params), TD_SAVE_NONE, max_pool2d_forward,
    max_pool2d_backward};

/* ---- avg_pool2d ---------------------------------------------------------- */

/* With count_include_pad and floor mode every window, padding included, is
 * kh x kw, so the divisor is constant. */
static td_status avg_pool2d_forward(td_op_ctx *ctx, td_tensor **out) {
  pool_geom g;
  td_status st = pool_geometry(ctx, &g);
  if (st) return st;
  td_tensor *x = NULL, *y = NULL;
  if ((st = td_tensor_contiguous(ctx->inputs[0], &x)) || (st = pool_output(x, &g, &y))) {
    td_tensor_release(x);
    return st;
  }
  const float *xp = td_tensor_f32(x);
  float *yp = td_tensor_f32(y);
  float div = (float)(g.kh * g.kw);
  for (int64_t p = 0; p < g.planes; p++) {
    const float *src = xp + p * g.h * g.w;
    for (int64_t oy = 0; oy < g.oh; oy++) {
      int64_t y0, y1;
      window(oy, g.sh, g.ph, g.kh, g.h, &y0, &y1);
      for (int64_t ox = 0; ox < g.ow; ox++) {
        int64_t x0, x1;
        window(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1);
        float s = 0;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            s += src[iy * g.w + ix];
        yp[(p * g.oh + oy) * g.ow + ox] = s / div;
      }
    }
  }
  td_tensor_release(x);
  *out = y;
  return TD_OK;
}

static td_status avg_pool2d_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_pool2d_params *p = ctx->params;
  const td_tensor_meta *m = &ctx->input_meta[0];
  td_tensor *dy = NULL;
  td_status st;
  if ((st = td_tensor_contiguous(gy, &dy)) ||
      (st = td_tensor_zeros(TD_FLOAT32, m->ndim, m->shape, &gx[0]))) {
    td_tensor_release(dy);
    return st;
  }
  int64_t h = m->shape[m->ndim - 2], w = m->shape[m->ndim - 1];
  int64_t oh = dy->shape[dy->ndim - 2], ow = dy->shape[dy->ndim - 1];
  int64_t planes = dy->numel / (oh * ow); /* windows exist: oh, ow >= 1 */
  float div = (float)((int64_t)p->kernel[0] * p->kernel[1]);
  const float *g = td_tensor_f32(dy);
  float *dx = td_tensor_f32(gx[0]);
  for (int64_t pl = 0; pl < planes; pl++) {
    float *dst = dx + pl * h * w;
    for (int64_t oy = 0; oy < oh; oy++) {
      int64_t y0, y1;
      window(oy, p->stride[0], p->padding[0], p->kernel[0], h, &y0, &y1);
      for (int64_t ox = 0; ox < ow; ox++) {
        int64_t x0, x1;
        window(ox, p->stride[1], p->padding[1], p->kernel[1], w, &x0, &x1);
        float v = g[(pl * oh + oy) * ow + ox] / div;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            dst[iy * w + ix] += v;
      }
    }
  }
  td_tensor_release(dy);
  return TD_OK;
}

const td_op_def td_op_avg_pool2d = {
    "avg_pool2d",       1, sizeof(td_pool2d_params), TD_SAVE_NONE, avg_pool2d_forward,
    avg_pool2d_backward};

static td_status pool2d(td_op op, const char *name, td_tensor *x, const td_pool2d_params *p,
                        td_tensor **out) {
  if (!p) {
    *out = NULL;
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: params are NULL", name);
  }
  return td_apply(op, p, &x, 1, out);
}

td_status td_max_pool2d(td_tensor *x, const td_pool2d_params *p, td_tensor **out) {
  return pool2d(TD_OP_MAX_POOL2D, "max_pool2d", x, p, out);
}

td_status td_avg_pool2d(td_tensor *x, const td_pool2d_params *p, td_tensor **out) {
  return pool2d(TD_OP_AVG_POOL2D, "avg_pool2d", x, p, out);
}

/* ---- adaptive_avg_pool2d ------------------------------------------------- */

/* PyTorch's bins: output i covers [floor(i*n/out), ceil((i+1)*n/out)). */
static inline int64_t bin_start(int64_t i, int64_t n, int64_t out) { return i * n / out; }
static inline int64_t bin_end(int64_t i, int64_t n, int64_t out) {
  return ((i + 1) * n + out - 1) / out;
}

static td_status adaptive_geometry(const td_op_ctx *ctx, pool_geom *g) {
  const td_adaptive_pool2d_params *p = ctx->params;
  td_status st = pool_input(ctx, g);
  if (st) return st;
  if (p->output_size[0] < 1 || p->output_size[1] < 1)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "adaptive_avg_pool2d: output size must be >= 1, got (%d,%d)", p->output_size[0],
                    p->output_size[1]);
  /* pool_input bounds h and w by 2^31, so the bin arithmetic (a position
   * times an extent) cannot overflow. */
  g->oh = p->output_size[0], g->ow = p->output_size[1];
  return TD_OK;
}

static td_status adaptive_avg_pool2d_forward(td_op_ctx *ctx, td_tensor **out) {
  pool_geom g;
  td_status st = adaptive_geometry(ctx, &g);
  if (st) return st;
  td_tensor *x = NULL, *y = NULL;
  if ((st = td_tensor_contiguous(ctx->inputs[0], &x)) || (st = pool_output(x, &g, &y))) {
    td_tensor_release(x);
    return st;
  }
  const float *xp = td_tensor_f32(x);
  float *yp = td_tensor_f32(y);
  for (int64_t p = 0; p < g.planes; p++) {
    const float *src = xp + p * g.h * g.w;
    for (int64_t oy = 0; oy < g.oh; oy++) {
      int64_t y0 = bin_start(oy, g.h, g.oh), y1 = bin_end(oy, g.h, g.oh);
      for (int64_t ox = 0; ox < g.ow; ox++) {
        int64_t x0 = bin_start(ox, g.w, g.ow), x1 = bin_end(ox, g.w, g.ow);
        float s = 0;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            s += src[iy * g.w + ix];
        yp[(p * g.oh + oy) * g.ow + ox] = s / (float)((y1 - y0) * (x1 - x0));
      }
    }
  }
  td_tensor_release(x);
  *out = y;
  return TD_OK;
}

static td_status adaptive_avg_pool2d_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[0];
  td_tensor *dy = NULL;
  td_status st;
  if ((st = td_tensor_contiguous(gy, &dy)) ||
      (st = td_tensor_zeros(TD_FLOAT32, m->ndim, m->shape, &gx[0]))) {
    td_tensor_release(dy);
    return st;
  }
  int64_t h = m->shape[m->ndim - 2], w = m->shape[m->ndim - 1];
  int64_t oh = dy->shape[dy->ndim - 2], ow = dy->shape[dy->ndim - 1];
  int64_t planes = dy->numel / (oh * ow);
  const float *g = td_tensor_f32(dy);
  float *dx = td_tensor_f32(gx[0]);
  for (int64_t p = 0; p < planes; p++) {
    float *dst = dx + p * h * w;
    for (int64_t oy = 0; oy < oh; oy++) {
      int64_t y0 = bin_start(oy, h, oh), y1 = bin_end(oy, h, oh);
      for (int64_t ox = 0; ox < ow; ox++) {
        int64_t x0 = bin_start(ox, w, ow), x1 = bin_end(ox, w, ow);
        float v = g[(p * oh + oy) * ow + ox] / (float)((y1 - y0) * (x1 - x0));
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            dst[iy * w + ix] += v;
      }
    }
  }
  td_tensor_release(dy);
  return TD_OK;
}

const td_op_def td_op_adaptive_avg_pool2d = {"adaptive_avg_pool2d",
                                             1,
                                             sizeof(td_adaptive_pool2d_params),
                                             TD_SAVE_NONE,
                                             adaptive_avg_pool2d_forward,
                                             adaptive_avg_pool2d_backward};

td_status td_adaptive_avg_pool2d(td_tensor *x, int out_h, int out_w, td_tensor **out) {
  td_adaptive_pool2d_params p = {{out_h, out_w}};
  return td_apply(TD_OP_ADAPTIVE_AVG_POOL2D, &p, &x, 1, out);
}
