/* conv_direct.c - conv2d without im2col: register-tiled AVX2 kernels over padded input planes.
 *
 * Each input plane is padded once and split into stride phases (plane (a,b)
 * holds padded pixels (r*sh + a, col*sw + b)); in a phase plane of width wq,
 * kernel tap (c,i,j) reads output position (oy, ox) at a constant offset
 * src[c,i,j] from oy*wq + ox. So the convolution is a reduction over rows
 * r = (c,i,j) of in[src[r] + position] x w[r], with no column matrix and no
 * packing of the input; conv_tiles.h computes it in register tiles,
 * vectorized over positions or over output channels, and a cost model picks
 * one per pass (short reductions favour positions, which need no transpose;
 * small images favour channels, which waste no padding columns).
 *
 * The input gradient is the same kind of pass over dY, padded so that every
 * tap reads at a non-negative offset: for stride 1 it is the convolution
 * with the flipped kernel; for stride s, dX splits into s x s phases, each a
 * stride-1 pass with the taps that land on it. The weight gradient sums
 * input x dY over every output position of several samples in registers.
 *
 * Threads split the batch (core/parallel.h).
 */
#include "functional/conv_direct.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include "functional/conv_tiles.h"
#include "functional/vec.h"

enum {
  GRID_TILE = 3 * VEC,  /* positions per full grid tile */
  WS_MAX = 4,           /* samples summed in registers by a weight-gradient tile */
  WS_BYTES = 512 << 10, /* ...while their inputs stay within this (about L2) */
  /* Cost of moving one result through a [position][channel] transpose, in
   * multiply-adds per lane: what a channel-vectorized pass pays extra. */
  TRANSPOSE_COST = 16,
};

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* ---- passes -------------------------------------------------------------- */

/* One pass: the outputs of a group at the positions of a rows x cols grid
 * over a prepared input (row width wq). Output k at grid position (u, c)
 * goes to out[k * out_plane + out0 + u * out_rs + c * out_vs]. */
typedef struct pass {
  int64_t kc;         /* reduction rows */
  const int64_t *src; /* [kc]: where each row reads, relative to the position */
  bool cv;            /* vectorized over channels, else over positions */
  const float *w;     /* cv: [groups][kc][npad]; grid: [groups][npad/4][kc][4] */
  int64_t nout, npad; /* output channels per group; rounded up to 8 (cv) or 4 (grid) */
  int64_t rows, cols, wq;
  int64_t out_plane, out0, out_rs, out_vs;
} pass;

/* Grid positions computed (the padding columns included), in whole vectors. */
static int64_t grid_positions(int64_t rows, int64_t wq) { return round_up(rows * wq, VEC); }

/* Whether channel vectors beat position vectors for a pass, counting
 * multiply-add lanes: the grid computes padding columns and pads channels
 * to 4, the channel tiles pad channels to 8 and positions to 6, and pay
 * for the transpose. With a single channel vector, a channel tile loads
 * 14 times (2 weight vectors, 12 broadcasts) per 12 FMAs and runs at the
 * load ports' pace, not the FMA units': its lanes count 1.5x. That moved
 * lenet.conv2's input gradient (6 channels) to the grid: 1.74 -> 1.56 ms
 * for the layer's forward and backward. */
static bool choose_cv(int64_t kc, int64_t nout, int64_t rows, int64_t cols, int64_t wq) {
  int64_t grid = grid_positions(rows, wq) * round_up(nout, GQ) * kc;
  int64_t npos = rows * cols;
  int64_t cv =
      round_up(npos, CP) * round_up(nout, VEC) * kc + TRANSPOSE_COST * npos * round_up(nout, VEC);
  if (nout <= VEC) cv = cv * 3 / 2;
  return cv < grid;
}

/* Floats of scratch run_pass needs: the tile results. */
static int64_t pass_scratch(const pass *p) {
  return p->cv ? round_up(p->rows * p->cols, CP) * p->npad
               : p->npad * grid_positions(p->rows, p->wq);
}

/* Weights for pass p: output k of group gi, reduction row r, is
 * w[gi*gs + k*ks + roff[r]] (roff NULL: r); zero in the padding channels. */
static float *pack_weights(const conv_geom *g, const pass *p, const float *w, int64_t gs,
                           int64_t ks, const int64_t *roff) {
  int64_t kc = p->kc, npad = p->npad;
  float *wp =
      td_calloc((size_t)(g->groups * kc * npad) + 1, sizeof(float), "conv2d packed weights");
  if (!wp) return NULL;
  for (int64_t gi = 0; gi < g->groups; gi++)
    for (int64_t k = 0; k < p->nout; k++) {
      const float *src = w + gi * gs + k * ks;
      float *dst = p->cv ? wp + gi * kc * npad + k : wp + (gi * npad + k / GQ * GQ) * kc + k % GQ;
      int64_t step = p->cv ? npad : GQ;
      for (int64_t r = 0; r < kc; r++)
        dst[r * step] = src[roff ? roff[r] : r];
    }
  return wp;
}

static void grid_tiles(int nq, const float *in, const int64_t *src, int64_t kc, const float *w,
                       float *y, int64_t ld, int64_t qv) {
  int64_t q0 = 0;
#define GRID_Q(nv)                                                                                 \
  switch (nq) {                                                                                    \
  case 1: grid_tile(nv, 1, in + q0, src, kc, w, y + q0, ld); break;                                \
  case 2: grid_tile(nv, 2, in + q0, src, kc, w, y + q0, ld); break;                                \
  case 3: grid_tile(nv, 3, in + q0, src, kc, w, y + q0, ld); break;                                \
  default: grid_tile(nv, 4, in + q0, src, kc, w, y + q0, ld); break;                               \
  }
  for (; q0 + GRID_TILE <= qv; q0 += GRID_TILE)
    GRID_Q(3)
  if (qv - q0 == 2 * VEC) GRID_Q(2)
  if (qv - q0 == VEC) GRID_Q(1)
#undef GRID_Q
}

static void cv_tile_2(const float *in, const int64_t *pos, const int64_t *src, int64_t kc,
                      const float *w, int64_t ld, float *out) {
  cv_tile(2, in, pos, src, kc, w, ld, out, ld);
}

static void cv_tile_1(const float *in, const int64_t *pos, const int64_t *src, int64_t kc,
                      const float *w, int64_t ld, float *out) {
  cv_tile_single(in, pos, src, kc, w, ld, out, ld);
}

/* [position][channel] tile results to the output planes, plus bias. Whole
 * 8 x 8 blocks go through a register transpose when positions are
 * contiguous in the output. */
static void scatter_cv(const pass *p, const float *tmp, float *out, const float *bias) {
  int64_t npos = p->rows * p->cols, ld = p->npad;
  int64_t pfull = npos / VEC * VEC, kfull = p->nout / VEC * VEC;
  bool flat = p->out_vs == 1 && p->out_rs == p->cols;
  for (int64_t k0 = 0; k0 < kfull; k0 += VEC) {
    __m256 add[VEC];
    for (int j = 0; j < VEC; j++)
      add[j] = _mm256_set1_ps(bias ? bias[k0 + j] : 0.0f);
    float *dst = out + k0 * p->out_plane + p->out0;
    int64_t u = 0, c = 0; /* grid row and column of position q0 */
    for (int64_t q0 = 0; q0 < pfull; q0 += VEC) {
      if (flat) {
        td_transpose8(tmp + q0 * ld + k0, ld, dst + q0, p->out_plane, add);
        continue;
      }
      /* Strided outputs (a phase of dX): transpose here, store one by one. */
      float blk[VEC * VEC];
      int64_t at[VEC];
      td_transpose8(tmp + q0 * ld + k0, ld, blk, VEC, add);
      for (int i = 0; i < VEC; i++) {
        at[i] = u * p->out_rs + c * p->out_vs;
        if (++c == p->cols) c = 0, u++;
      }
      for (int j = 0; j < VEC; j++)
        for (int i = 0; i < VEC; i++)
          dst[j * p->out_plane + at[i]] = blk[j * VEC + i];
    }
  }
  /* What the 8 x 8 blocks left: the last positions and channels. */
  for (int64_t k = 0; k < p->nout; k++) {
    float *dst = out + k * p->out_plane + p->out0;
    float b = bias ? bias[k] : 0.0f;
    int64_t q = k < kfull ? pfull : 0, u = q / p->cols, c = q % p->cols;
    for (; q < npos; q++) {
      dst[u * p->out_rs + c * p->out_vs] = tmp[q * ld + k] + b;
      if (++c == p->cols) c = 0, u++;
    }
  }
}

/* d[2*c] = s[c] + b for c < n, leaving the odd places as they are: a
 * stride-2 phase of dX, whose other phase fills the odd places. Eight at a
 * time, spread to the even lanes of two vectors and blended over what is
 * there, while those 16 floats end before d[2n - 2], the last this phase
 * writes (the places between are the same sample's, so its thread's). */
static void store_every_other(float *restrict d, const float *restrict s, float b, int64_t n) {
  const __m256i lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256i hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
  const __m256 add = _mm256_set1_ps(b);
  int64_t c = 0;
  for (; c + VEC < n; c += VEC) { /* so 2c + 15 <= 2n - 3 */
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(s + c), add);
    float *at = d + 2 * c;
    __m256 even0 = _mm256_permutevar8x32_ps(v, lo), even1 = _mm256_permutevar8x32_ps(v, hi);
    _mm256_storeu_ps(at, _mm256_blend_ps(_mm256_loadu_ps(at), even0, 0x55));
    _mm256_storeu_ps(at + VEC, _mm256_blend_ps(_mm256_loadu_ps(at + VEC), even1, 0x55));
  }
  for (; c < n; c++)
    d[2 * c] = s[c] + b;
}

/* Computes pass p for group gi over prepared input `in` and writes it out
 * (plus bias[k] when bias is set); tmp holds pass_scratch(p) floats. */
static void run_pass(const pass *p, int64_t gi, const float *in, float *tmp, float *out,
                     const float *bias) {
  const float *w = p->w + gi * p->kc * p->npad;
  if (p->cv) {
    int64_t npos = p->rows * p->cols, nvec = p->npad / VEC;
    /* Channel pairs outside, so their weights (kc x 16) stay in L1 while
     * every position passes. */
    for (int64_t v = 0; v < nvec; v += 2)
      for (int64_t k0 = 0; k0 < npos; k0 += CP) {
        /* The last tile repeats the last position; its extra rows of tmp
         * are never read. */
        int64_t pos[CP];
        for (int k = 0; k < CP; k++) {
          int64_t q = k0 + k < npos ? k0 + k : npos - 1;
          pos[k] = q / p->cols * p->wq + q % p->cols;
        }
        float *t = tmp + k0 * p->npad + v * VEC;
        if (v + 2 <= nvec)
          cv_tile_2(in, pos, p->src, p->kc, w + v * VEC, p->npad, t);
        else
          cv_tile_1(in, pos, p->src, p->kc, w + v * VEC, p->npad, t);
      }
    scatter_cv(p, tmp, out, bias);
    return;
  }
  int64_t qv = grid_positions(p->rows, p->wq);
  for (int64_t ob = 0; ob < p->npad / GQ; ob++) {
    int nq = p->nout - ob * GQ < GQ ? (int)(p->nout - ob * GQ) : GQ;
    grid_tiles(nq, in, p->src, p->kc, w + ob * GQ * p->kc, tmp + ob * GQ * qv, qv, qv);
  }
  for (int64_t k = 0; k < p->nout; k++) {
    float *dst = out + k * p->out_plane + p->out0;
    const float *g = tmp + k * qv;
    float b = bias ? bias[k] : 0.0f;
    for (int64_t u = 0; u < p->rows; u++) {
      float *d = dst + u * p->out_rs;
      const float *s = g + u * p->wq;
      if (p->out_vs == 1) /* the common case, kept apart so it vectorizes */
        for (int64_t c = 0; c < p->cols; c++)
          d[c] = s[c] + b;
      else if (p->out_vs == 2)
        store_every_other(d, s, b, p->cols);
      else
        for (int64_t c = 0; c < p->cols; c++)
          d[c * p->out_vs] = s[c] + b;
    }
  }
}

/* ---- the input side: phase planes ----------------------------------------- */

/* How a group's input is laid out for the forward pass and the weight gradient. */
typedef struct layout {
  int64_t hq, wq;      /* phase plane rows and columns */
  int64_t ps, cstride; /* floats per phase plane (with a grid's reach), per channel */
  int64_t *src;        /* [kc]: offset of reduction row (c,i,j) from the output position */
  bool *used;          /* [sh * sw]: phases some tap reads */
} layout;

static void layout_free(layout *l) {
  td_free(l->src);
  td_free(l->used);
}

static td_status layout_init(layout *l, const conv_geom *g) {
  l->hq = (g->h + 2 * g->ph + g->sh - 1) / g->sh;
  l->wq = (g->w + 2 * g->pw + g->sw - 1) / g->sw;
  /* A grid pass reads whole tiles of positions past the farthest tap. */
  int64_t reach = ((g->kh - 1) * g->dh / g->sh) * l->wq + (g->kw - 1) * g->dw / g->sw +
                  round_up(grid_positions(g->oh, l->wq), GRID_TILE);
  l->ps = round_up(reach > l->hq * l->wq ? reach : l->hq * l->wq, 16); /* whole cache lines */
  l->cstride = g->sh * g->sw * l->ps;
  l->src = td_alloc(sizeof(int64_t) * (size_t)(g->kc + 1), "conv2d tap offsets");
  l->used = td_calloc((size_t)(g->sh * g->sw), sizeof(bool), "conv2d phases");
  if (!l->src || !l->used) {
    layout_free(l);
    return TD_ERR_NO_MEMORY;
  }
  for (int64_t c = 0; c < g->cg; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++) {
        int64_t ri = i * g->dh, rj = j * g->dw;
        int64_t phase = (ri % g->sh) * g->sw + rj % g->sw;
        l->used[phase] = true;
        l->src[(c * g->kh + i) * g->kw + j] =
            c * l->cstride + phase * l->ps + (ri / g->sh) * l->wq + rj / g->sw;
      }
  return TD_OK;
}

/* Copies src[0], src[step], ... (n of them) to dst[0..n). */
static inline void copy_row(float *restrict dst, const float *restrict src, int64_t step,
                            int64_t n) {
  int64_t k = 0;
  if (step == 1) {
    for (; k + VEC <= n; k += VEC)
      _mm256_storeu_ps(dst + k, _mm256_loadu_ps(src + k));
  } else if (step == 2) {
    /* The even floats of two vectors. The last vector's second half would
     * end one float past the last kept, so that half is a masked load that
     * never reads it. */
    const __m256i all_but_last = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
    for (; k + VEC <= n; k += VEC) {
      const float *at = src + 2 * k;
      __m256 hi =
          k + VEC < n ? _mm256_loadu_ps(at + VEC) : _mm256_maskload_ps(at + VEC, all_but_last);
      _mm256_storeu_ps(dst + k, td_even8(_mm256_loadu_ps(at), hi));
    }
  }
  for (; k < n; k++)
    dst[k] = src[k * step];
}

/* One sample's group of channels into its phase planes (those some tap
 * reads: a 1x1 stride-2 conv reads one of four). Only image pixels are
 * written: the padding keeps the zeros the buffer started with. */
static void prep_input(const conv_geom *g, const layout *l, const float *x, float *buf) {
  for (int64_t c = 0; c < g->cg; c++)
    for (int64_t a = 0; a < g->sh; a++) {
      int64_t rlo, rhi;
      conv_valid_range(a - g->ph, g->sh, g->h, l->hq, &rlo, &rhi);
      for (int64_t b = 0; b < g->sw; b++) {
        if (!l->used[a * g->sw + b]) continue;
        float *pl = buf + c * l->cstride + (a * g->sw + b) * l->ps;
        int64_t clo, chi;
        conv_valid_range(b - g->pw, g->sw, g->w, l->wq, &clo, &chi);
        for (int64_t r = rlo; r < rhi; r++)
          copy_row(pl + r * l->wq + clo,
                   x + c * g->hw + (r * g->sh + a - g->ph) * g->w + clo * g->sw + b - g->pw, g->sw,
                   chi - clo);
      }
    }
}

/* ---- forward ------------------------------------------------------------ */

typedef struct forward_job {
  const conv_geom *g;
  const layout *l;
  const pass *p;
  const float *x, *bias;
  float *y;
  float *bufs; /* per thread: prepared input, then the pass's scratch */
  int64_t bufsz;
} forward_job;

static void forward_worker(void *arg, int t, int nt) {
  const forward_job *j = arg;
  const conv_geom *g = j->g;
  float *prep = j->bufs + t * j->bufsz, *tmp = prep + g->cg * j->l->cstride;
  for (int64_t n = g->n * t / nt; n < g->n * (t + 1) / nt; n++)
    for (int64_t gi = 0; gi < g->groups; gi++) {
      prep_input(g, j->l, j->x + (n * g->c + gi * g->cg) * g->hw, prep);
      run_pass(j->p, gi, prep, tmp, j->y + (n * g->o + gi * g->og) * g->ohw,
               j->bias ? j->bias + gi * g->og : NULL);
    }
}

bool td_conv_direct_supported(const conv_geom *g) { return g->groups == 1 || g->og >= GQ; }

/* A pass over a prepared input, vectorized as the cost model says. */
static pass make_pass(int64_t kc, const int64_t *src, int64_t nout, int64_t rows, int64_t cols,
                      int64_t wq, int64_t out_plane, int64_t out0, int64_t out_rs, int64_t out_vs) {
  bool cv = choose_cv(kc, nout, rows, cols, wq);
  return (pass){kc, src,       cv,   NULL,   nout,  round_up(nout, cv ? VEC : GQ), rows, cols,
                wq, out_plane, out0, out_rs, out_vs};
}

td_status td_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y) {
  layout l;
  td_status st = layout_init(&l, g);
  if (st) return st;
  pass p = make_pass(g->kc, l.src, g->og, g->oh, g->ow, l.wq, g->ohw, 0, g->ow, 1);
  forward_job j = {g, &l, &p, x, bias, y, NULL, 0};
  int nt = td_parallel_threads(g->n);
  j.bufsz = round_up(g->cg * l.cstride + pass_scratch(&p), 16);
  p.w = pack_weights(g, &p, w, g->og * g->kc, g->kc, NULL);
  j.bufs = p.w ? td_calloc((size_t)(j.bufsz * nt), sizeof(float), "conv2d buffers") : NULL;
  if (!j.bufs) {
    td_free((void *)p.w);
    layout_free(&l);
    return TD_ERR_NO_MEMORY;
  }
  td_parallel_run(nt, forward_worker, &j);
  td_free(j.bufs);
  td_free((void *)p.w);
  layout_free(&l);
  return TD_OK;
}

/* ---- input gradient ------------------------------------------------------- */

/* dX in padded coordinates (Y, X) = (R*sh + a, C*sw + b) receives tap (i,j)
 * when (i*dh) % sh == a and (j*dw) % sw == b, from dY at (R - i*dh/sh,
 * C - j*dw/sw). dY is padded by ti rows on top (tj columns on the left) so
 * those reads are at non-negative offsets, and by enough at the bottom and
 * right to cover every phase and a grid's reach. Each phase (a,b)
 * is one pass; the pixels of a phase no tap lands on are zero. */
typedef struct dx_plan {
  int64_t ti, tj, hy, wy, ps; /* dY padding, padded size, floats per plane */
  int npass;
  pass *p;      /* [sh * sw], the phases some tap lands on */
  bool zero;    /* some image pixels get no tap (a stride beyond the kernel) */
  int64_t *src; /* all phases' offsets, og * kh * kw in total */
} dx_plan;

static void dx_plan_free(dx_plan *d) {
  for (int i = 0; i < d->npass; i++)
    td_free((void *)d->p[i].w);
  td_free(d->p);
  td_free(d->src);
}

/* Along one axis (kernel k, dilation d, stride s, padding p, input size,
 * phase length nq, output size): the margin of zeros before dY so that every
 * phase reads at offsets >= 0 (tap i reads i*d/s before the phase's first
 * image pixel), and the extent of the padded dY. */
static void dx_margin(int64_t k, int64_t d, int64_t s, int64_t p, int64_t size, int64_t nq,
                      int64_t out, int64_t *margin, int64_t *extent) {
  int64_t m = 0, end = out;
  for (int64_t i = 0; i < k; i++) {
    int64_t lo, hi;
    conv_valid_range(i * d % s - p, s, size, nq, &lo, &hi);
    if (lo >= hi) continue;
    if (i * d / s - lo > m) m = i * d / s - lo;
    if (hi > end) end = hi;
  }
  *margin = m, *extent = m + end;
}

static td_status dx_plan_init(dx_plan *d, const conv_geom *g, const float *w) {
  memset(d, 0, sizeof *d);
  int64_t khw = g->kh * g->kw;
  int64_t hq = (g->h + 2 * g->ph + g->sh - 1) / g->sh, wq = (g->w + 2 * g->pw + g->sw - 1) / g->sw;
  dx_margin(g->kh, g->dh, g->sh, g->ph, g->h, hq, g->oh, &d->ti, &d->hy);
  dx_margin(g->kw, g->dw, g->sw, g->pw, g->w, wq, g->ow, &d->tj, &d->wy);
  /* The largest in-plane offset a phase reads is (hq + ti) rows down. */
  d->ps = round_up((d->hy + 1) * d->wy + round_up(grid_positions(hq, d->wy), GRID_TILE), 16);
  d->p = td_calloc((size_t)(g->sh * g->sw), sizeof(pass), "conv2d passes");
  d->src = td_alloc(sizeof(int64_t) * (size_t)(g->og * khw + 1), "conv2d tap offsets");
  int64_t *tap = td_alloc(sizeof(int64_t) * (size_t)khw, "conv2d taps");
  /* Where reduction row (o, t) of a phase finds its weight for dX channel k
   * (input channel k of the group): w[o][k][tap t]. */
  int64_t *roff = td_alloc(sizeof(int64_t) * (size_t)(g->og * khw + 1), "conv2d taps");
  td_status st = d->p && d->src && tap && roff ? TD_OK : TD_ERR_NO_MEMORY;
  int64_t used = 0;
  for (int64_t a = 0; a < g->sh && !st; a++)
    for (int64_t b = 0; b < g->sw && !st; b++) {
      int64_t rlo, rhi, clo, chi, nt = 0;
      conv_valid_range(a - g->ph, g->sh, g->h, hq, &rlo, &rhi);
      conv_valid_range(b - g->pw, g->sw, g->w, wq, &clo, &chi);
      if (rlo >= rhi || clo >= chi) continue; /* only padding in this phase */
      for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++)
          if ((i * g->dh) % g->sh == a && (j * g->dw) % g->sw == b) tap[nt++] = i * g->kw + j;
      if (nt == 0) { /* its pixels are zeroed before the passes run */
        d->zero = true;
        continue;
      }
      int64_t *src = d->src + used;
      for (int64_t o = 0; o < g->og; o++)
        for (int64_t t = 0; t < nt; t++) {
          int64_t i = tap[t] / g->kw, j = tap[t] % g->kw;
          src[o * nt + t] = o * d->ps + (rlo + d->ti - i * g->dh / g->sh) * d->wy +
                            (clo + d->tj - j * g->dw / g->sw);
          roff[o * nt + t] = o * g->cg * khw + tap[t];
        }
      used += g->og * nt;
      /* dX pixel (R, C) of this phase: iy = R*sh + a - ph, ix = C*sw + b - pw. */
      pass *p = &d->p[d->npass];
      *p = make_pass(g->og * nt, src, g->cg, rhi - rlo, chi - clo, d->wy, g->hw,
                     (rlo * g->sh + a - g->ph) * g->w + clo * g->sw + b - g->pw, g->sh * g->w,
                     g->sw);
      if (!(p->w = pack_weights(g, p, w, g->og * g->cg * khw, khw, roff)))
        st = TD_ERR_NO_MEMORY;
      else
        d->npass++;
    }
  td_free(tap);
  td_free(roff);
  if (st) dx_plan_free(d);
  return st;
}

typedef struct dx_job {
  const conv_geom *g;
  const dx_plan *d;
  const float *dy;
  float *dx;
  float *bufs; /* per thread: padded dY, then the passes' scratch */
  int64_t bufsz;
} dx_job;

static void dx_worker(void *arg, int t, int nt) {
  const dx_job *j = arg;
  const conv_geom *g = j->g;
  const dx_plan *d = j->d;
  float *pad = j->bufs + t * j->bufsz, *tmp = pad + g->og * d->ps;
  for (int64_t n = g->n * t / nt; n < g->n * (t + 1) / nt; n++)
    for (int64_t gi = 0; gi < g->groups; gi++) {
      for (int64_t o = 0; o < g->og; o++) {
        const float *src = j->dy + (n * g->o + gi * g->og + o) * g->ohw;
        for (int64_t oy = 0; oy < g->oh; oy++)
          copy_row(pad + o * d->ps + (oy + d->ti) * d->wy + d->tj, src + oy * g->ow, 1, g->ow);
      }
      float *dxg = j->dx + (n * g->c + gi * g->cg) * g->hw;
      if (d->zero) memset(dxg, 0, sizeof(float) * (size_t)(g->cg * g->hw));
      for (int i = 0; i < d->npass; i++)
        run_pass(&d->p[i], gi, pad, tmp, dxg, NULL);
    }
}

bool td_conv_direct_input_grad_supported(const conv_geom *g) {
  return td_conv_direct_supported(g) && g->sh * g->sw <= 64;
}

td_status td_conv_direct_input_grad(const conv_geom *g, const float *w, const float *dy,
                                    float *dx) {
  dx_plan d;
  td_status st = dx_plan_init(&d, g, w);
  if (st) return st;
  dx_job j = {g, &d, dy, dx, NULL, 0};
  int64_t scratch = 0;
  for (int i = 0; i < d.npass; i++)
    if (pass_scratch(&d.p[i]) > scratch) scratch = pass_scratch(&d.p[i]);
  int nt = td_parallel_threads(g->n);
  j.bufsz = round_up(g->og * d.ps + scratch, 16);
  j.bufs = td_calloc((size_t)(j.bufsz * nt), sizeof(float), "conv2d buffers");
  if (!j.bufs) {
    dx_plan_free(&d);
    return TD_ERR_NO_MEMORY;
  }
  td_parallel_run(nt, dx_worker, &j);
  td_free(j.bufs);
  dx_plan_free(&d);
  return TD_OK;
}

/* ---- weight gradient ------------------------------------------------------ */

/* dW^T[r][o] = sum over samples and output positions of x[src[r] + pos] *
 * dY[o][pos], vectorized over positions (dY on the padded grid, zero in the
 * padding columns; 4 channels x 3 rows per tile, summed across lanes at the
 * end) or over channels (dY as [position][channel]; 6 rows x 16 channels),
 * whichever the same cost model prefers. */
typedef struct weight_job {
  const conv_geom *g;
  const layout *l;
  const float *x, *dy;
  bool cv;
  int ws;            /* samples per tile */
  int64_t npad, kcp; /* channels rounded up (8 cv, 4 grid), rows rounded up to tiles */
  int64_t qv;        /* grid: positions per dY row */
  float *bufs;       /* per thread: ws prepared inputs, ws dY, then partial sums */
  int64_t bufsz, xstride, dystride, accoff;
} weight_job;

static void cv_weight_tiles(const weight_job *j, const float *prep, const int64_t *src,
                            const float *dyt, int ns, float *acc) {
  const conv_geom *g = j->g;
  int64_t nvec = j->npad / VEC, v = 0;
  for (; v + 2 <= nvec; v += 2)
    cv_weight_tile(2, prep, j->xstride, src, dyt + v * VEC, j->dystride, j->npad, ns, g->oh, g->ow,
                   j->l->wq, acc + v * VEC, j->npad);
  if (v < nvec)
    cv_weight_tile(1, prep, j->xstride, src, dyt + v * VEC, j->dystride, j->npad, ns, g->oh, g->ow,
                   j->l->wq, acc + v * VEC, j->npad);
}

static void weight_worker(void *arg, int t, int nt) {
  const weight_job *j = arg;
  const conv_geom *g = j->g;
  const layout *l = j->l;
  float *prep = j->bufs + t * j->bufsz, *dyb = prep + j->ws * j->xstride, *acc = prep + j->accoff;
  int64_t n1 = g->n * (t + 1) / nt;
  for (int64_t n0 = g->n * t / nt; n0 < n1; n0 += j->ws) {
    int ns = n1 - n0 < j->ws ? (int)(n1 - n0) : j->ws;
    for (int64_t gi = 0; gi < g->groups; gi++) {
      for (int s = 0; s < ns; s++) {
        prep_input(g, l, j->x + ((n0 + s) * g->c + gi * g->cg) * g->hw, prep + s * j->xstride);
        /* Padding channels and columns were zeroed once and stay zero. */
        float *d = dyb + s * j->dystride;
        const float *src = j->dy + ((n0 + s) * g->o + gi * g->og) * g->ohw;
        if (j->cv) {
          int64_t ofull = g->og / VEC * VEC, qfull = g->ohw / VEC * VEC;
          __m256 zero[VEC] = {_mm256_setzero_ps()};
          for (int k = 1; k < VEC; k++)
            zero[k] = zero[0];
          for (int64_t o0 = 0; o0 < ofull; o0 += VEC)
            for (int64_t q0 = 0; q0 < qfull; q0 += VEC)
              td_transpose8(src + o0 * g->ohw + q0, g->ohw, d + q0 * j->npad + o0, j->npad, zero);
          if (ofull < g->og) /* the last channels, as a block whose other rows are zero */
            for (int64_t q0 = 0; q0 < qfull; q0 += VEC) {
              __m256 rows[VEC];
              for (int64_t k = 0; k < VEC; k++)
                rows[k] =
                    ofull + k < g->og ? _mm256_loadu_ps(src + (ofull + k) * g->ohw + q0) : zero[0];
              td_transpose8_rows(rows, d + q0 * j->npad + ofull, j->npad, zero);
            }
          for (int64_t o = 0; o < g->og; o++)
            for (int64_t q = qfull; q < g->ohw; q++)
              d[q * j->npad + o] = src[o * g->ohw + q];
        } else {
          for (int64_t o = 0; o < g->og; o++)
            for (int64_t oy = 0; oy < g->oh; oy++)
              copy_row(d + o * j->qv + oy * l->wq, src + o * g->ohw + oy * g->ow, 1, g->ow);
        }
      }
      float *a = acc + gi * j->kcp * j->npad;
      if (j->cv) {
        for (int64_t r = 0; r < g->kc; r += CP) {
          /* A last partial tile repeats row r into rows past kc: scratch. */
          int64_t src[CP];
          for (int k = 0; k < CP; k++)
            src[k] = l->src[r + k < g->kc ? r + k : r];
          cv_weight_tiles(j, prep, src, dyb, ns, a + r * j->npad);
        }
      } else {
        for (int64_t ob = 0; ob < j->npad / GQ; ob++)
          for (int64_t r = 0; r < g->kc; r += WR)
            grid_weight_tile(prep, j->xstride, l->src + r, g->kc - r < WR ? (int)(g->kc - r) : WR,
                             dyb + ob * GQ * j->qv, j->dystride, ns, j->qv, j->qv,
                             a + ob * GQ * j->kcp + r, j->kcp);
      }
    }
  }
}

td_status td_conv_direct_weight_grad(const conv_geom *g, const float *x, const float *dy,
                                     float *dw) {
  layout l;
  td_status st = layout_init(&l, g);
  if (st) return st;
  weight_job j = {g, &l, x, dy, false, 1, 0, 0, 0, NULL, 0, 0, 0, 0};
  j.qv = grid_positions(g->oh, l.wq);
  /* Same trade as a pass: the grid sums padding columns and sums lanes per
   * tile; channel tiles transpose dY and pad rows to 6. Counted in lanes the
   * two come out close, but the grid tile loads 7 vectors per 12 FMAs from
   * three input rows and dY, the channel tile 2 per 12: measured at every
   * workload layer, channel tiles won each one whose lane count was within
   * 2x of the grid's (by 4-15%: resnet layer1 5.3 -> 4.8 ms, the stride-2
   * layer2.conv1 3.3 -> 2.8) and lost 8% at lenet.conv1 (1.5x). */
  int64_t grid = round_up(g->og, GQ) * round_up(g->kc, WR) * j.qv;
  int64_t cv = round_up(g->og, VEC) * (round_up(g->kc, CP) + TRANSPOSE_COST) * g->ohw;
  j.cv = cv < 2 * grid;
  j.npad = round_up(g->og, j.cv ? VEC : GQ);
  /* Partial sums: cv [groups][kcp][npad] (dW^T); grid [groups][npad][kcp] (dW). */
  j.kcp = j.cv ? round_up(g->kc, CP) : g->kc;
  j.xstride = round_up(g->cg * l.cstride, 16);
  j.dystride = round_up(j.cv ? g->ohw * j.npad : j.npad * j.qv, 16);
  int64_t per_sample = (j.xstride + j.dystride) * (int64_t)sizeof(float);
  j.ws = per_sample * WS_MAX <= WS_BYTES ? WS_MAX : (int)(WS_BYTES / per_sample);
  if (j.ws < 1) j.ws = 1;
  j.accoff = j.ws * (j.xstride + j.dystride);
  j.bufsz = j.accoff + round_up(g->groups * j.kcp * j.npad, 16);
  int nt = td_parallel_threads(g->n);
  j.bufs = td_calloc((size_t)(j.bufsz * nt), sizeof(float), "conv2d buffers");
  if (!j.bufs) {
    layout_free(&l);
    return TD_ERR_NO_MEMORY;
  }
  td_parallel_run(nt, weight_worker, &j);
  for (int64_t gi = 0; gi < g->groups; gi++)
    for (int64_t o = 0; o < g->og; o++)
      for (int64_t r = 0; r < g->kc; r++) {
        int64_t at = gi * j.kcp * j.npad + (j.cv ? r * j.npad + o : o * j.kcp + r);
        float s = 0;
        for (int t = 0; t < nt; t++)
          s += j.bufs[t * j.bufsz + j.accoff + at];
        dw[(gi * g->og + o) * g->kc + r] = s;
      }
  td_free(j.bufs);
  layout_free(&l);
  return TD_OK;
}

#else /* no AVX2 + FMA at build time: conv.c keeps to im2col + sgemm */

bool td_conv_direct_supported(const conv_geom *g) {
  (void)g;
  return false;
}

bool td_conv_direct_input_grad_supported(const conv_geom *g) {
  (void)g;
  return false;
}

static td_status not_built(void) {
  return td_error(TD_ERR_INTERNAL, "conv2d: direct kernels are not built for this target");
}

td_status td_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y) {
  return not_built();
}

td_status td_conv_direct_input_grad(const conv_geom *g, const float *w, const float *dy,
                                    float *dx) {
  return not_built();
}

td_status td_conv_direct_weight_grad(const conv_geom *g, const float *x, const float *dy,
                                     float *dw) {
  return not_built();
}

#endif
