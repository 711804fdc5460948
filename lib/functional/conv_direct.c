/* conv_direct.c - conv2d without im2col: register-tiled AVX2 kernels over a padded, wide grid.
 *
 * Each input plane is padded once and split into stride phases (plane (a,b)
 * holds padded pixels (r*sh + a, col*sw + b)). Numbering output positions on
 * a grid as wide as a phase plane, q = oy * wq + ox, every kernel tap (c,i,j)
 * then reads its input at a constant offset from q. A tile of 24 consecutive
 * positions x 4 output channels is 12 vector accumulators, and each step of
 * the reduction over (c,i,j) loads 3 input vectors and broadcasts 4 weights
 * for 12 FMAs: close to the FMA peak, with no column matrix and no packing.
 * Grid columns ox >= OW are computed and dropped (a few percent for 3x3
 * "same" convolutions).
 *
 * The input gradient is the same kind of pass over dY, padded so that every
 * tap reads at a non-negative offset: for stride 1 it is the convolution
 * with the flipped kernel; for stride s, dX splits into s x s phases, each a
 * stride-1 pass with the taps that land on it. The weight gradient turns the
 * walk around: dW[o][c,i,j] is the dot product of dY's row o (on the same
 * grid, zero in the dropped columns) with the input shifted by tap (c,i,j).
 *
 * Threads split the batch; their number follows OpenBLAS's setting, the
 * engine's one knob for intra-op threads.
 */
#include "functional/conv_direct.h"

#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

enum {
  VEC = 8,          /* floats per AVX2 vector */
  TILE = 3 * VEC,   /* grid positions per full tile */
  OB = 4,           /* output channels per tile (weights are packed in blocks of 4) */
  WR = 3,           /* reduction rows per weight-gradient tile */
  WS = 4,           /* samples summed in registers by the weight-gradient tile */
  MAX_THREADS = 16,
};

#define ALWAYS_INLINE static inline __attribute__((always_inline))

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* ---- the tiled pass ------------------------------------------------------ */

/* y[k][v*8 .. v*8+8) = sum over r of w[r][k] * x[src[r] + v*8 ..], for V
 * vectors of positions and Q <= 4 output channels (both constants after
 * inlining, so the accumulators live in registers). */
ALWAYS_INLINE void tile(const int V, const int Q, const float *x, const int64_t *src, int64_t kc,
                        const float *w, float *y, int64_t ld) {
  __m256 acc[3][OB];
  _Pragma("GCC unroll 3") for (int v = 0; v < V; v++)
      _Pragma("GCC unroll 4") for (int k = 0; k < Q; k++) acc[v][k] = _mm256_setzero_ps();
  for (int64_t r = 0; r < kc; r++) {
    const float *xp = x + src[r];
    __m256 xv[3];
    _Pragma("GCC unroll 3") for (int v = 0; v < V; v++) xv[v] = _mm256_loadu_ps(xp + v * VEC);
    _Pragma("GCC unroll 4") for (int k = 0; k < Q; k++) {
      __m256 b = _mm256_broadcast_ss(w + r * OB + k);
      _Pragma("GCC unroll 3") for (int v = 0; v < V; v++)
          acc[v][k] = _mm256_fmadd_ps(xv[v], b, acc[v][k]);
    }
  }
  _Pragma("GCC unroll 4") for (int k = 0; k < Q; k++)
      _Pragma("GCC unroll 3") for (int v = 0; v < V; v++)
          _mm256_storeu_ps(y + k * ld + v * VEC, acc[v][k]);
}

#define TILE_Q(V)                                                                              \
  static void tile_##V(int q, const float *x, const int64_t *src, int64_t kc, const float *w, \
                       float *y, int64_t ld) {                                                 \
    switch (q) {                                                                               \
    case 1: tile(V, 1, x, src, kc, w, y, ld); break;                                           \
    case 2: tile(V, 2, x, src, kc, w, y, ld); break;                                           \
    case 3: tile(V, 3, x, src, kc, w, y, ld); break;                                           \
    default: tile(V, 4, x, src, kc, w, y, ld); break;                                          \
    }                                                                                          \
  }
TILE_Q(1)
TILE_Q(2)
TILE_Q(3)
#undef TILE_Q

/* One pass: outputs of a group computed on a grid over a prepared input,
 * then written to their planes. Output k's grid position (u, v) for u < rows,
 * v < cols goes to out[k * out_plane + out0 + u * out_rs + v * out_vs]. */
typedef struct pass {
  int64_t kc;            /* reduction rows */
  const int64_t *src;    /* [kc]: where each row reads, relative to the grid position */
  const float *wpk;      /* [groups][blocks][kc][OB] */
  int64_t nout, nob;     /* output channels per group, blocks of OB */
  int64_t rows, cols, wq;
  int64_t out_plane, out0, out_rs, out_vs;
} pass;

static int64_t pass_positions(const pass *p) { return round_up(p->rows * p->wq, VEC); }

/* Computes pass p for group gi over prepared input `in` into grid (ld floats
 * per channel) and writes it out (plus bias[k] when bias is set). */
static void run_pass(const pass *p, int64_t gi, const float *in, float *grid, int64_t ld,
                     float *out, const float *bias) {
  int64_t qv = pass_positions(p);
  for (int64_t ob = 0; ob < p->nob; ob++) {
    const float *wb = p->wpk + (gi * p->nob + ob) * p->kc * OB;
    int nq = p->nout - ob * OB < OB ? (int)(p->nout - ob * OB) : OB;
    float *gb = grid + ob * OB * ld;
    int64_t q0 = 0;
    for (; q0 + TILE <= qv; q0 += TILE) tile_3(nq, in + q0, p->src, p->kc, wb, gb + q0, ld);
    if (qv - q0 == 2 * VEC) tile_2(nq, in + q0, p->src, p->kc, wb, gb + q0, ld);
    if (qv - q0 == VEC) tile_1(nq, in + q0, p->src, p->kc, wb, gb + q0, ld);
  }
  for (int64_t k = 0; k < p->nout; k++) {
    float *dst = out + k * p->out_plane + p->out0;
    const float *g = grid + k * ld;
    float b = bias ? bias[k] : 0.0f;
    for (int64_t u = 0; u < p->rows; u++) {
      float *d = dst + u * p->out_rs;
      const float *s = g + u * p->wq;
      if (p->out_vs == 1) /* the common case, kept apart so it vectorizes */
        for (int64_t v = 0; v < p->cols; v++) d[v] = s[v] + b;
      else
        for (int64_t v = 0; v < p->cols; v++) d[v * p->out_vs] = s[v] + b;
    }
  }
}

/* ---- threads ------------------------------------------------------------ */

typedef void (*work_fn)(void *job, int t, int nt);

/* A pool of workers kept between calls (starting threads for every
 * convolution costs more than small ones take). One job runs at a time; a
 * caller that finds the pool busy (another session's convolution) runs its
 * shares itself. */
static struct {
  pthread_mutex_t busy;      /* held by the caller whose job is running */
  pthread_mutex_t m;         /* guards the fields below */
  pthread_cond_t start, done;
  int nworkers;              /* threads started so far (worker i runs share i) */
  uint64_t generation;       /* bumped for every job */
  int participants, pending; /* workers in the current job, and those not finished */
  work_fn fn;
  void *job;
  int nt;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, NULL, NULL, 0};

/* The generation current when worker i was started: its first job is the next one. */
static uint64_t pool_born[MAX_THREADS];

static void *pool_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  pthread_mutex_lock(&pool.m);
  uint64_t seen = pool_born[id];
  for (;;) {
    while (pool.generation == seen) pthread_cond_wait(&pool.start, &pool.m);
    seen = pool.generation;
    if (id > pool.participants) continue;
    work_fn fn = pool.fn;
    void *job = pool.job;
    int nt = pool.nt;
    pthread_mutex_unlock(&pool.m);
    fn(job, id, nt);
    pthread_mutex_lock(&pool.m);
    if (--pool.pending == 0) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

static int thread_count(int64_t n) {
  int t = openblas_get_num_threads();
  if (t > MAX_THREADS) t = MAX_THREADS;
  if (t > n) t = (int)n;
  return t > 1 ? t : 1;
}

/* Runs fn(job, t, nt) for t = 0..nt-1: share 0 here, the others on pool
 * workers (or here too, when workers cannot be had). Workers never fail:
 * everything they need is allocated before. */
static void run_parallel(int nt, work_fn fn, void *job) {
  if (nt > 1 && pthread_mutex_trylock(&pool.busy) == 0) {
    pthread_mutex_lock(&pool.m);
    while (pool.nworkers < nt - 1) {
      pthread_t th;
      pool_born[pool.nworkers + 1] = pool.generation;
      if (pthread_create(&th, NULL, pool_worker, (void *)(intptr_t)(pool.nworkers + 1))) break;
      pthread_detach(th);
      pool.nworkers++;
    }
    int helpers = pool.nworkers < nt - 1 ? pool.nworkers : nt - 1;
    pool.fn = fn, pool.job = job, pool.nt = nt;
    pool.participants = pool.pending = helpers;
    pool.generation++;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.m);
    fn(job, 0, nt);
    for (int t = helpers + 1; t < nt; t++) fn(job, t, nt);
    pthread_mutex_lock(&pool.m);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.m);
    pthread_mutex_unlock(&pool.m);
    pthread_mutex_unlock(&pool.busy);
    return;
  }
  for (int t = 0; t < nt; t++) fn(job, t, nt);
}

/* ---- the input side: phase planes ----------------------------------------- */

/* How a group's input is laid out for the forward pass and the weight gradient. */
typedef struct layout {
  int64_t hq, wq;      /* phase plane rows and columns */
  int64_t ps, cstride; /* floats per phase plane (with slack), per channel (all phases) */
  int64_t *src;        /* [kc]: offset of reduction row (c,i,j) from the grid position */
  bool *used;          /* [sh * sw]: phases some tap reads */
} layout;

static void layout_free(layout *l) {
  td_free(l->src);
  td_free(l->used);
}

static td_status layout_init(layout *l, const conv_geom *g) {
  l->hq = (g->h + 2 * g->ph + g->sh - 1) / g->sh;
  l->wq = (g->w + 2 * g->pw + g->sw - 1) / g->sw;
  int64_t reach = ((g->kh - 1) * g->dh / g->sh) * l->wq + (g->kw - 1) * g->dw / g->sw;
  int64_t span = round_up(g->oh * l->wq, TILE);
  l->ps = round_up(reach + span > l->hq * l->wq ? reach + span : l->hq * l->wq, 16);
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

/* Copies src[0], src[step], ... (n of them) to dst[0..n). Rows here are
 * short (8 to 32 floats), where a plain loop beats a call to memcpy. */
static inline void copy_row(float *restrict dst, const float *restrict src, int64_t step,
                            int64_t n) {
  if (step == 1)
    for (int64_t k = 0; k < n; k++) dst[k] = src[k];
  else
    for (int64_t k = 0; k < n; k++) dst[k] = src[k * step];
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
                       x + c * g->hw + (r * g->sh + a - g->ph) * g->w + clo * g->sw + b - g->pw,
                       g->sw, chi - clo);
      }
    }
}

/* Weights as [groups][blocks of 4 outputs][kc][4], zero in a partial last
 * block. Output k of group gi, reduction row r, is w[gi*gs + k*ks + roff[r]]
 * (roff NULL: r itself). */
static float *pack_weights(const conv_geom *g, const float *w, int64_t nout, int64_t kc,
                           int64_t gs, int64_t ks, const int64_t *roff) {
  int64_t nob = (nout + OB - 1) / OB;
  float *wpk = td_calloc((size_t)(g->groups * nob * OB * kc) + 1, sizeof(float),
                         "conv2d packed weights");
  if (!wpk) return NULL;
  for (int64_t gi = 0; gi < g->groups; gi++)
    for (int64_t k = 0; k < nout; k++) {
      const float *src = w + gi * gs + k * ks;
      float *dst = wpk + (gi * nob + k / OB) * kc * OB + k % OB;
      if (roff)
        for (int64_t r = 0; r < kc; r++) dst[r * OB] = src[roff[r]];
      else
        for (int64_t r = 0; r < kc; r++) dst[r * OB] = src[r];
    }
  return wpk;
}

/* ---- forward ------------------------------------------------------------ */

typedef struct forward_job {
  const conv_geom *g;
  const layout *l;
  const pass *p;
  const float *x, *bias;
  float *y;
  float *bufs; /* per thread: prepared input, then the grid */
  int64_t bufsz, grid_ld;
} forward_job;

static void forward_worker(void *arg, int t, int nt) {
  const forward_job *j = arg;
  const conv_geom *g = j->g;
  float *prep = j->bufs + t * j->bufsz, *grid = prep + g->cg * j->l->cstride;
  for (int64_t n = g->n * t / nt; n < g->n * (t + 1) / nt; n++)
    for (int64_t gi = 0; gi < g->groups; gi++) {
      prep_input(g, j->l, j->x + (n * g->c + gi * g->cg) * g->hw, prep);
      run_pass(j->p, gi, prep, grid, j->grid_ld, j->y + (n * g->o + gi * g->og) * g->ohw,
               j->bias ? j->bias + gi * g->og : NULL);
    }
}

bool td_conv_direct_supported(const conv_geom *g) { return g->groups == 1 || g->og >= OB; }

td_status td_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y) {
  layout l;
  td_status st = layout_init(&l, g);
  if (st) return st;
  pass p = {g->kc, l.src, NULL, g->og, (g->og + OB - 1) / OB, g->oh, g->ow, l.wq,
            g->ohw, 0, g->ow, 1};
  forward_job j = {g, &l, &p, x, bias, y, NULL, 0, pass_positions(&p)};
  int nt = thread_count(g->n);
  j.bufsz = round_up(g->cg * l.cstride + p.nob * OB * j.grid_ld, 16);
  float *wpk = pack_weights(g, w, g->og, g->kc, g->og * g->kc, g->kc, NULL);
  j.bufs = wpk ? td_calloc((size_t)(j.bufsz * nt), sizeof(float), "conv2d buffers") : NULL;
  if (!j.bufs) {
    td_free(wpk);
    layout_free(&l);
    return TD_ERR_NO_MEMORY;
  }
  p.wpk = wpk;
  run_parallel(nt, forward_worker, &j);
  td_free(j.bufs);
  td_free(wpk);
  layout_free(&l);
  return TD_OK;
}

/* ---- input gradient ------------------------------------------------------- */

/* dX in padded coordinates (Y, X) = (R*sh + a, C*sw + b) receives tap (i,j)
 * when (i*dh) % sh == a and (j*dw) % sw == b, from dY at (R - i*dh/sh,
 * C - j*dw/sw). dY is padded by ti = (kh-1)*dh/sh rows on top (tj columns on
 * the left) so those reads are at non-negative offsets, and by enough at the
 * bottom and right that every grid row can be read whole. Each phase (a,b)
 * is one pass; a phase no tap lands on is a pass with no reduction rows,
 * which writes its zeros. */
typedef struct dx_plan {
  int64_t ti, tj, hy, wy, ps; /* dY padding, padded size, floats per plane */
  int npass;
  pass *p;                    /* [sh * sw], phases with image pixels */
  int64_t *src;               /* all phases' offsets, og * kh * kw in total */
} dx_plan;

static void dx_plan_free(dx_plan *d) {
  for (int i = 0; i < d->npass; i++) td_free((void *)d->p[i].wpk);
  td_free(d->p);
  td_free(d->src);
}

static td_status dx_plan_init(dx_plan *d, const conv_geom *g, const float *w) {
  memset(d, 0, sizeof *d);
  int64_t khw = g->kh * g->kw;
  int64_t hq = (g->h + 2 * g->ph + g->sh - 1) / g->sh, wq = (g->w + 2 * g->pw + g->sw - 1) / g->sw;
  d->ti = (g->kh - 1) * g->dh / g->sh, d->tj = (g->kw - 1) * g->dw / g->sw;
  d->hy = (hq > g->oh ? hq : g->oh) + d->ti;
  d->wy = (wq > g->ow ? wq : g->ow) + d->tj;
  d->ps = round_up((d->hy + 1) * d->wy + TILE, 16);
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
      *p = (pass){g->og * nt, src, NULL, g->cg, (g->cg + OB - 1) / OB, rhi - rlo, chi - clo,
                  d->wy, g->hw, (rlo * g->sh + a - g->ph) * g->w + clo * g->sw + b - g->pw,
                  g->sh * g->w, g->sw};
      if (!(p->wpk = pack_weights(g, w, g->cg, p->kc, g->og * g->cg * khw, khw, roff)))
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
  float *bufs; /* per thread: padded dY, then the grid */
  int64_t bufsz, grid_ld;
} dx_job;

static void dx_worker(void *arg, int t, int nt) {
  const dx_job *j = arg;
  const conv_geom *g = j->g;
  const dx_plan *d = j->d;
  float *pad = j->bufs + t * j->bufsz, *grid = pad + g->og * d->ps;
  for (int64_t n = g->n * t / nt; n < g->n * (t + 1) / nt; n++)
    for (int64_t gi = 0; gi < g->groups; gi++) {
      for (int64_t o = 0; o < g->og; o++) {
        const float *src = j->dy + (n * g->o + gi * g->og + o) * g->ohw;
        for (int64_t oy = 0; oy < g->oh; oy++)
          copy_row(pad + o * d->ps + (oy + d->ti) * d->wy + d->tj, src + oy * g->ow, 1, g->ow);
      }
      float *dxg = j->dx + (n * g->c + gi * g->cg) * g->hw;
      for (int i = 0; i < d->npass; i++) run_pass(&d->p[i], gi, pad, grid, j->grid_ld, dxg, NULL);
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
  dx_job j = {g, &d, dy, dx, NULL, 0, 0};
  for (int i = 0; i < d.npass; i++)
    if (pass_positions(&d.p[i]) > j.grid_ld) j.grid_ld = pass_positions(&d.p[i]);
  int nt = thread_count(g->n);
  j.bufsz = round_up(g->og * d.ps + round_up(g->cg, OB) * j.grid_ld, 16);
  j.bufs = td_calloc((size_t)(j.bufsz * nt), sizeof(float), "conv2d buffers");
  if (!j.bufs) {
    dx_plan_free(&d);
    return TD_ERR_NO_MEMORY;
  }
  run_parallel(nt, dx_worker, &j);
  td_free(j.bufs);
  dx_plan_free(&d);
  return TD_OK;
}

/* ---- weight gradient ------------------------------------------------------ */

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* acc[k][t] += sum over samples s of dot(dy_s row k, x_s from src[t]) over qv
 * grid positions, for 4 output channels k and nr <= 3 reduction rows t
 * (missing rows repeat the first and are not stored). Samples are ns prepared
 * inputs xstride apart, with dY grids dystride apart. */
static void weight_tile(const float *x, int64_t xstride, const int64_t *src, int nr,
                        const float *dy, int64_t dystride, int ns, int64_t qv, int64_t ld,
                        float *acc, int64_t kc) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  for (int s = 0; s < ns; s++) {
    const float *x0 = x + s * xstride + src[0], *x1 = x + s * xstride + src[nr > 1 ? 1 : 0];
    const float *x2 = x + s * xstride + src[nr > 2 ? 2 : 0], *d0 = dy + s * dystride;
    for (int64_t q = 0; q < qv; q += VEC) {
      __m256 v0 = _mm256_loadu_ps(x0 + q), v1 = _mm256_loadu_ps(x1 + q);
      __m256 v2 = _mm256_loadu_ps(x2 + q);
      __m256 d = _mm256_loadu_ps(d0 + q);
      a00 = _mm256_fmadd_ps(d, v0, a00), a01 = _mm256_fmadd_ps(d, v1, a01);
      a02 = _mm256_fmadd_ps(d, v2, a02);
      d = _mm256_loadu_ps(d0 + ld + q);
      a10 = _mm256_fmadd_ps(d, v0, a10), a11 = _mm256_fmadd_ps(d, v1, a11);
      a12 = _mm256_fmadd_ps(d, v2, a12);
      d = _mm256_loadu_ps(d0 + 2 * ld + q);
      a20 = _mm256_fmadd_ps(d, v0, a20), a21 = _mm256_fmadd_ps(d, v1, a21);
      a22 = _mm256_fmadd_ps(d, v2, a22);
      d = _mm256_loadu_ps(d0 + 3 * ld + q);
      a30 = _mm256_fmadd_ps(d, v0, a30), a31 = _mm256_fmadd_ps(d, v1, a31);
      a32 = _mm256_fmadd_ps(d, v2, a32);
    }
  }
  __m256 sums[OB][WR] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
  for (int k = 0; k < OB; k++)
    for (int t = 0; t < nr; t++) acc[k * kc + t] += hsum(sums[k][t]);
}

typedef struct weight_job {
  const conv_geom *g;
  const layout *l;
  const float *x, *dy;
  float *bufs; /* per thread: WS prepared inputs, WS dY grids, then dW partial sums */
  int64_t bufsz, xstride, dystride, grid_ld, accoff;
} weight_job;

static void weight_worker(void *arg, int t, int nt) {
  const weight_job *j = arg;
  const conv_geom *g = j->g;
  const layout *l = j->l;
  float *prep = j->bufs + t * j->bufsz, *dyw = prep + WS * j->xstride, *acc = prep + j->accoff;
  int64_t qv = round_up(g->oh * l->wq, VEC), nob = (g->og + OB - 1) / OB;
  int64_t n1 = g->n * (t + 1) / nt;
  for (int64_t n0 = g->n * t / nt; n0 < n1; n0 += WS) {
    int ns = n1 - n0 < WS ? (int)(n1 - n0) : WS;
    for (int64_t gi = 0; gi < g->groups; gi++) {
      for (int s = 0; s < ns; s++) {
        prep_input(g, l, j->x + ((n0 + s) * g->c + gi * g->cg) * g->hw, prep + s * j->xstride);
        /* dY onto the grid; dropped columns and padded channels were zeroed
         * once and stay zero, so they add nothing. */
        for (int64_t o = 0; o < g->og; o++)
          for (int64_t oy = 0; oy < g->oh; oy++)
            copy_row(dyw + s * j->dystride + o * j->grid_ld + oy * l->wq,
                     j->dy + ((n0 + s) * g->o + gi * g->og + o) * g->ohw + oy * g->ow, 1, g->ow);
      }
      for (int64_t ob = 0; ob < nob; ob++)
        for (int64_t r = 0; r < g->kc; r += WR)
          weight_tile(prep, j->xstride, l->src + r, g->kc - r < WR ? (int)(g->kc - r) : WR,
                      dyw + ob * OB * j->grid_ld, j->dystride, ns, qv, j->grid_ld,
                      acc + (gi * nob + ob) * OB * g->kc + r, g->kc);
    }
  }
}

td_status td_conv_direct_weight_grad(const conv_geom *g, const float *x, const float *dy,
                                     float *dw) {
  layout l;
  td_status st = layout_init(&l, g);
  if (st) return st;
  int64_t opad = round_up(g->og, OB);
  weight_job j = {g, &l, x, dy, NULL, 0, 0, 0, 0, 0};
  j.xstride = round_up(g->cg * l.cstride, 16);
  j.grid_ld = round_up(g->oh * l.wq, VEC);
  j.dystride = round_up(opad * j.grid_ld, 16);
  j.accoff = WS * (j.xstride + j.dystride);
  j.bufsz = j.accoff + round_up(g->groups * opad * g->kc, 16);
  int nt = thread_count(g->n);
  j.bufs = td_calloc((size_t)(j.bufsz * nt), sizeof(float), "conv2d buffers");
  if (!j.bufs) {
    layout_free(&l);
    return TD_ERR_NO_MEMORY;
  }
  run_parallel(nt, weight_worker, &j);
  for (int64_t gi = 0; gi < g->groups; gi++)
    for (int64_t o = 0; o < g->og; o++)
      for (int64_t r = 0; r < g->kc; r++) {
        float s = 0;
        for (int t = 0; t < nt; t++) s += j.bufs[t * j.bufsz + j.accoff + (gi * opad + o) * g->kc + r];
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

static td_status not_built(void) {
  return td_error(TD_ERR_INTERNAL, "conv2d: direct kernels are not built for this target");
}

td_status td_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y) {
  return not_built();
}

bool td_conv_direct_input_grad_supported(const conv_geom *g) {
  (void)g;
  return false;
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
