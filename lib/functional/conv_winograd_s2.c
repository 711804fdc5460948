/* conv_winograd_s2.c - 3x3 stride-2 convolutions by Winograd's F(2x2, 2x2)
 * over the input's four phases.
 *
 * Per axis, with xp the padded input and its phases x0[a] = xp[2a] and
 * x1[a] = xp[2a + 1]:
 *     y[i] = w0 xp[2i] + w1 xp[2i + 1] + w2 xp[2i + 2]
 *          = (w0 x0[i] + w2 x0[i + 1]) + w1 x1[i],
 * a 2-tap correlation on phase 0 plus a 1-tap one on phase 1, both stride
 * 1. F(2, 2) makes two outputs of a 2-tap correlation from three products:
 *     B^T = | 1 -1  0 |   G = | 1  0 |   A^T = | 1  1  0 |
 *           | 0  1  0 |       | 1  1 |         | 0  1  1 |
 *           | 0 -1  1 |       | 0  1 |
 * The 1-tap kernel, padded to (w1, 0), transforms to (w1, w1, 0): its third
 * product is zero. So the four 2D phases share one 3x3 transform domain,
 * and tile element e = (i, j) sums only the phases whose transformed kernel
 * is nonzero there: all four where i, j < 2, two along the last row and
 * column, one in the corner. With the phases ordered (1,0), (0,0), (0,1),
 * (1,1) (row parity, column parity), each element's phases are a contiguous
 * range, and element e is one matrix product
 *     M[e] (K x P) = U[e] (K x n_e C) @ V[e] (n_e C x P)
 * over the P tiles of a chunk of samples: 25 C multiply-adds per tile and
 * output channel, where the direct sum does 36 C.
 *
 * Tile (ty, tx) makes outputs (2ty + {0,1}, 2tx + {0,1}) from padded rows
 * 4ty + {0..4} and columns 4tx + {0..4}; offset 2r + p is row r of phase p.
 * resnet-sized stride-2 layers have planes of 8x8 to 32x32 pixels, too
 * short a run for vectors along a row, so everything here works
 * channels-last: each sample is transposed to [row][column][channel] on the
 * way in and back on the way out, and the transforms run along channels,
 * a tile at a time. The matrices follow: V[e]^T is [tile][phase * C + c]
 * and M[e]^T is [tile][k], so every product is one sgemm call.
 *
 * The weight gradient is dU[e] = dM[e] @ V[e]^T with dM = A dY A^T, folded
 * back through G; the input gradient is dV[e] = U[e]^T @ dM[e], folded back
 * through B into the padded sample. Threads take even shares of the batch,
 * a chunk of samples at a time, as on the stride-1 path (conv_winograd.c).
 */
#include "functional/conv_winograd_s2.h"

#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/gemm.h"
#include "functional/vec.h"

enum {
  ELEMS = 9, /* elements of a 3x3 tile: the number of matrix products */
  PHASES = 4,
  /* A chunk's V and M stay well within L2 (1 MB on this Zen 4). Of 128 KB
   * to 4 MB, 512 KB ran resnet_tiny's stride-2 layers fastest; 2 MB (the
   * stride-1 path's size) was 10-15% slower. */
  CHUNK_BYTES = 512 << 10,
  /* The thinnest layer measured: resnet_tiny's layer2.conv1, 16 -> 32
   * channels, 8% faster this way than by the direct kernels (layer3.conv1,
   * 32 -> 64, 20%). */
  MIN_CHANNELS = 16,
  /* As on the stride-1 path: past this, the direct kernels keep the job. */
  MAX_SAMPLE_BYTES = 64 << 20,
};

/* Where phase (row parity, column parity) is in that order. */
static const int phase_of[2][2] = {{1, 2}, {0, 3}};

/* The phases element e = (i, j) sums, as the range [*lo, *hi) of the order
 * above: a phase of parity 1 along an axis has only elements 0 and 1 there. */
static void elem_phases(int e, int *lo, int *hi) {
  int i = e / 3, j = e % 3;
  if (i < 2 && j < 2)
    *lo = 0, *hi = 4;
  else if (i < 2) /* j == 2: the phases of column parity 0, (1,0) and (0,0) */
    *lo = 0, *hi = 2;
  else if (j < 2) /* i == 2: the phases of row parity 0, (0,0) and (0,1) */
    *lo = 1, *hi = 3;
  else
    *lo = 1, *hi = 2;
}

/* Per axis, tap k of the 3x3 kernel is tap k >> 1 of phase k & 1's kernel,
 * which G spreads over elements {0, 1} (k = 0, 1) or {1, 2} (k = 2). */
static int tap_elem(int k) { return k == 2; }

bool td_conv_winograd_s2_supported(const conv_geom *g) {
  if (!(g->kh == 3 && g->kw == 3 && g->sh == 2 && g->sw == 2 && g->dh == 1 && g->dw == 1 &&
        g->groups == 1 && g->ph <= 2 && g->pw <= 2 && g->c >= MIN_CHANNELS &&
        g->o >= MIN_CHANNELS && g->c % 8 == 0 && g->o % 8 == 0))
    return false;
  double tiles = (double)((g->oh + 1) / 2) * (double)((g->ow + 1) / 2);
  return ELEMS * (double)(PHASES * g->c + g->o) * tiles * sizeof(float) <= MAX_SAMPLE_BYTES;
}

/* ---- the plan shared by the passes ------------------------------------------------ */

typedef struct s2plan {
  const conv_geom *g;
  int64_t th, tw, tiles; /* tile rows and columns per sample, and their product */
  int64_t ns, chunks;    /* samples per chunk, and chunks per batch */
  int64_t p;             /* tiles per full chunk: ns * tiles */
  int64_t kc4;           /* columns of V[e]^T and U[e]: 4 phases x C */
  int64_t ves, mes;      /* floats from one element of V^T (M^T) to the next */
  int64_t prows, prow;   /* the padded input sample: rows, and floats per row */
  int64_t orow;          /* floats per row of an output sample [2 th][2 tw][K] */
  /* Per-thread scratch, in floats: one padded input sample [prows][prow],
   * one output sample [2 th][orow], V^T [9][p][4C] (or dV^T), M^T [9][p][K]
   * (or dM^T), the partial dU [9][K][4C], and one padded input-gradient
   * sample. */
  int64_t off_out, off_v, off_m, off_du, off_acc, per_thread;
  float *u; /* U [9][K][4C], zero where a phase has no element */
  float *scratch;
  const float *x, *dy, *bias;
  float *y, *dx, *dw; /* the outputs a pass makes; a NULL one is not made */
} s2plan;

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t padded_floats(const s2plan *p) { return p->prows * p->prow; }

static int64_t output_floats(const s2plan *p) { return 2 * p->th * p->orow; }

static void plan(s2plan *p, const conv_geom *g, int nt_max) {
  memset(p, 0, sizeof *p);
  p->g = g;
  p->th = (g->oh + 1) / 2, p->tw = (g->ow + 1) / 2, p->tiles = p->th * p->tw;
  p->kc4 = PHASES * g->c;
  /* The tiles reach padded index 4 th (4 tw), which may lie past the
   * input's last row (column); an input whose last rows no output reaches
   * may lie past the tiles. */
  p->prows = max64(4 * p->th + 1, g->h + g->ph);
  p->prow = max64(4 * p->tw + 1, g->w + g->pw) * g->c;
  p->orow = 2 * p->tw * g->o;
  int64_t per_sample = ELEMS * (p->kc4 + g->o) * p->tiles * (int64_t)sizeof(float);
  int64_t ns = CHUNK_BYTES / per_sample;
  int64_t even = (g->n + nt_max - 1) / nt_max; /* keep every thread busy */
  if (ns > even) ns = even;
  p->ns = ns > 1 ? ns : 1;
  p->chunks = (g->n + p->ns - 1) / p->ns;
  p->p = p->ns * p->tiles;
  p->off_out = round16(padded_floats(p));
  p->off_v = p->off_out + round16(output_floats(p));
  /* A tile's transforms write (or read) one vector per element: spaced by
   * a multiple of 4 KB, those would all fall in one set of the L1 cache and
   * evict each other. A cache line more between elements spreads them. */
  p->ves = p->p * p->kc4 + 16, p->mes = p->p * g->o + 16;
  p->off_m = p->off_v + round16(ELEMS * p->ves);
  p->off_du = p->off_m + round16(ELEMS * p->mes);
  p->off_acc = p->off_du + round16(ELEMS * g->o * p->kc4);
  p->per_thread = p->off_acc + round16(padded_floats(p));
}

/* ---- tiles, 8 channels at a time ------------------------------------------------------------ */

/* A tile's transforms run on vectors of 8 channels (GCC's vector extension:
 * AVX registers on this build, pairs of SSE ones on plain x86-64). Written
 * as loops over channels they stay scalar: with 25 streams in and out at
 * run-time distances, GCC cannot rule out overlap. Channel counts are
 * multiples of 8 on this path (td_conv_winograd_s2_supported). */
typedef float v8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p) {
  v8 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

static inline void add8(float *p, v8 v) { store8(p, load8(p) + v); }

/* One tile's 25 transformed vectors of C channels. x is the tile's corner
 * in a padded input sample (rows `row` floats apart, pixels C); element e
 * of phase ph goes to v[e * es + ph * C]. Per axis, B^T takes offsets 0,
 * 2, 4 (phase 0) to (d0 - d2, d2, d4 - d2) and offsets 1, 3 (phase 1) to
 * (d1 - d3, d3): across the columns first (h[k][m], m = 0..2 phase 0,
 * m = 3..4 phase 1), then down them. */
static TD_KERNEL void input_tile(const float *x, int64_t row, int64_t C, float *v, int64_t es) {
  for (int64_t c = 0; c < C; c += 8) {
    v8 h[5][5];
    for (int k = 0; k < 5; k++) {
      const float *r = x + k * row + c;
      v8 d0 = load8(r), d1 = load8(r + C), d2 = load8(r + 2 * C), d3 = load8(r + 3 * C);
      v8 d4 = load8(r + 4 * C);
      h[k][0] = d0 - d2, h[k][1] = d2, h[k][2] = d4 - d2, h[k][3] = d1 - d3, h[k][4] = d3;
    }
    for (int m = 0; m < 5; m++) {
      const int j = m < 3 ? m : m - 3;
      float *o0 = v + j * es + phase_of[0][m >= 3] * C + c; /* row parity 0 */
      float *o1 = v + j * es + phase_of[1][m >= 3] * C + c; /* row parity 1 */
      store8(o0, h[0][m] - h[2][m]);
      store8(o0 + 3 * es, h[2][m]);
      store8(o0 + 6 * es, h[4][m] - h[2][m]);
      store8(o1, h[1][m] - h[3][m]);
      store8(o1 + 3 * es, h[3][m]);
    }
  }
}

/* The adjoint of input_tile: one tile's 25 vectors of dV^T (element e of
 * phase ph at v[e * es + ph * C]) added into its 5x5 pixels of a padded
 * sample. Per axis, B takes phase 0's (v0, v1, v2) to offsets 0, 2, 4 as
 * (v0, v1 - v0 - v2, v2), and phase 1's (v0, v1) to offsets 1, 3 as
 * (v0, v1 - v0): down the columns first, then across. */
static TD_KERNEL void input_tile_grad(const float *v, int64_t es, int64_t C, float *x,
                                      int64_t row) {
  for (int64_t c = 0; c < C; c += 8) {
    v8 h[5][5];
    for (int m = 0; m < 5; m++) {
      const int j = m < 3 ? m : m - 3;
      const float *a = v + j * es + phase_of[0][m >= 3] * C + c;
      const float *b = v + j * es + phase_of[1][m >= 3] * C + c;
      v8 a0 = load8(a), a1 = load8(a + 3 * es), a2 = load8(a + 6 * es);
      v8 b0 = load8(b), b1 = load8(b + 3 * es);
      h[0][m] = a0, h[2][m] = a1 - a0 - a2, h[4][m] = a2, h[1][m] = b0, h[3][m] = b1 - b0;
    }
    for (int k = 0; k < 5; k++) {
      float *r = x + k * row + c;
      add8(r, h[k][0]);
      add8(r + C, h[k][3]);
      add8(r + 2 * C, h[k][1] - h[k][0] - h[k][2]);
      add8(r + 3 * C, h[k][4] - h[k][3]);
      add8(r + 4 * C, h[k][2]);
    }
  }
}

/* A^T m A for one tile: m's 9 elements of K channels are es apart; the 2x2
 * outputs go to y (the tile's corner in an output sample, rows `row`
 * floats apart). Per axis A^T takes (m0, m1, m2) to (m0 + m1, m1 + m2). */
static TD_KERNEL void output_tile(const float *m, int64_t es, int64_t K, float *y, int64_t row) {
  for (int64_t k = 0; k < K; k += 8) {
    v8 s[2][3];
    for (int j = 0; j < 3; j++) {
      v8 m1 = load8(m + (3 + j) * es + k);
      s[0][j] = load8(m + j * es + k) + m1, s[1][j] = m1 + load8(m + (6 + j) * es + k);
    }
    for (int i = 0; i < 2; i++) {
      store8(y + i * row + k, s[i][0] + s[i][1]);
      store8(y + i * row + K + k, s[i][1] + s[i][2]);
    }
  }
}

/* dM = A d A^T for one 2x2 block d of an output-gradient sample (corner at
 * d, rows `row` floats apart, K channels): per axis (a, b) -> (a, a + b, b).
 * Element e goes to m[e * es]. */
static TD_KERNEL void grad_tile(const float *d, int64_t row, int64_t K, float *m, int64_t es) {
  for (int64_t k = 0; k < K; k += 8) {
    v8 a0 = load8(d + k), a1 = load8(d + K + k), b0 = load8(d + row + k);
    v8 b1 = load8(d + row + K + k);
    v8 r[3][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {b0, b1}};
    for (int i = 0; i < 3; i++) {
      float *o = m + 3 * i * es + k;
      store8(o, r[i][0]);
      store8(o + es, r[i][0] + r[i][1]);
      store8(o + 2 * es, r[i][1]);
    }
  }
}

/* ---- samples in and out of channels-last ------------------------------------------------ */

/* The padded input sample from x [C][H][W]: each row's C x W block
 * transposed into place. The padding, zeroed once, stays zero. */
static void input_in(const s2plan *p, const float *x, float *pad) {
  const conv_geom *g = p->g;
  for (int64_t r = 0; r < g->h; r++)
    td_transpose_f32(x + r * g->w, g->hw, g->c, g->w, pad + (r + g->ph) * p->prow + g->pw * g->c,
                     g->c, NULL);
}

/* dx [C][H][W] from the padded input-gradient sample. */
static void input_out(const s2plan *p, const float *pad, float *dx) {
  const conv_geom *g = p->g;
  for (int64_t r = 0; r < g->h; r++)
    td_transpose_f32(pad + (r + g->ph) * p->prow + g->pw * g->c, g->c, g->w, g->c, dx + r * g->w,
                     g->hw, NULL);
}

/* The output-gradient sample [2 th][2 tw][K] from dy [K][OH][OW]; past an
 * odd last row or column it stays zero, as zeroed once. */
static void grad_in(const s2plan *p, const float *dy, float *out) {
  const conv_geom *g = p->g;
  for (int64_t r = 0; r < g->oh; r++)
    td_transpose_f32(dy + r * g->ow, g->ohw, g->o, g->ow, out + r * p->orow, g->o, NULL);
}

/* y [K][OH][OW] from the output sample, plus bias (may be NULL). */
static void output_out(const s2plan *p, const float *out, const float *bias, float *y) {
  const conv_geom *g = p->g;
  for (int64_t r = 0; r < g->oh; r++)
    td_transpose_f32(out + r * p->orow, g->o, g->ow, g->o, y + r * g->ow, g->ohw, bias);
}

/* A tile kernel from pixels to elements: the tile's corner in a
 * channels-last sample (rows `row` floats apart, nc channels) to its
 * elements (es floats apart). */
typedef void pixels_to_elements(const float *px, int64_t row, int64_t nc, float *el, int64_t es);

/* fn on every tile of one channels-last sample: tile (ty, tx) has its
 * corner `step` pixels per tile down and across (4 for the input's 5x5
 * tiles, 2 for dY's 2x2 blocks), and its elements at el + tile * ld. */
static void sample_tiles(const s2plan *p, pixels_to_elements *fn, const float *img, int64_t row,
                         int64_t step, int64_t nc, float *el, int64_t ld, int64_t es) {
  for (int64_t ty = 0; ty < p->th; ty++)
    for (int64_t tx = 0; tx < p->tw; tx++)
      fn(img + step * (ty * row + tx * nc), row, nc, el + (ty * p->tw + tx) * ld, es);
}

/* V^T[e][tile][phase * C + c] for the ns samples from x. */
static void input_transform(const s2plan *p, const float *x, int64_t ns, float *pad, float *v) {
  const conv_geom *g = p->g;
  for (int64_t s = 0; s < ns; s++) {
    input_in(p, x + s * g->c * g->hw, pad);
    sample_tiles(p, input_tile, pad, p->prow, 4, g->c, v + s * p->tiles * p->kc4, p->kc4, p->ves);
  }
}

/* M^T[e][tile][k] = (A dY A^T)[e] for the ns samples from dy. */
static void grad_transform(const s2plan *p, const float *dy, int64_t ns, float *out, float *m) {
  const conv_geom *g = p->g;
  for (int64_t s = 0; s < ns; s++) {
    grad_in(p, dy + s * g->o * g->ohw, out);
    sample_tiles(p, grad_tile, out, p->orow, 2, g->o, m + s * p->tiles * g->o, g->o, p->mes);
  }
}

/* ---- weights ------------------------------------------------------------------------------ */

/* The taps G spreads to element e of phase ph, as indices kh * 3 + kw:
 * the kernel's taps of that phase whose elements include e. */
static int elem_taps(int e, int ph, int taps[4]) {
  int n = 0;
  for (int kh = 0; kh < 3; kh++)
    for (int kw = 0; kw < 3; kw++) {
      int i = e / 3 - tap_elem(kh), j = e % 3 - tap_elem(kw);
      if (phase_of[kh & 1][kw & 1] == ph && i >= 0 && i < 2 && j >= 0 && j < 2)
        taps[n++] = kh * 3 + kw;
    }
  return n;
}

static TD_KERNEL void copy_into(float *restrict dst, const float *restrict src, int64_t n) {
  TD_VLOOP(q, n, dst[q] = src[q]);
}

/* U[e][k][phase * C + c] = (G w_phase G^T)[e]: the sum of the taps G
 * spreads there. The weights are first transposed to wt [9][K][C] (tmp), so
 * each sum runs along C contiguous channels. */
static void weight_transform(const s2plan *p, const float *w, float *tmp) {
  const conv_geom *g = p->g;
  const int64_t n = g->o * g->c;
  td_transpose_f32(w, 9, n, 9, tmp, n, NULL);
  memset(p->u, 0, sizeof(float) * (size_t)(ELEMS * g->o * p->kc4));
  for (int e = 0; e < ELEMS; e++)
    for (int ph = 0; ph < PHASES; ph++) {
      int taps[4], nt = elem_taps(e, ph, taps);
      for (int64_t k = 0; k < g->o; k++) {
        float *dst = p->u + (e * g->o + k) * p->kc4 + ph * g->c;
        for (int t = 0; t < nt; t++)
          (t ? td_add_into : copy_into)(dst, tmp + taps[t] * n + k * g->c, g->c);
      }
    }
}

/* dw = the adjoint of weight_transform: each tap the sum of dU over the
 * elements G spread it to, with dU the threads' partials summed in thread
 * order. Built as dwt [9][K][C] in tmp, then transposed. */
static void weight_untransform(const s2plan *p, int nt, float *tmp, float *dw) {
  const conv_geom *g = p->g;
  const int64_t n = g->o * g->c;
  float *du = p->scratch + p->off_du;
  for (int t = 1; t < nt; t++)
    td_add_into(du, p->scratch + t * p->per_thread + p->off_du, ELEMS * g->o * p->kc4);
  memset(tmp, 0, sizeof(float) * (size_t)(9 * n));
  for (int e = 0; e < ELEMS; e++)
    for (int ph = 0; ph < PHASES; ph++) {
      int taps[4], nt_e = elem_taps(e, ph, taps);
      for (int t = 0; t < nt_e; t++)
        for (int64_t k = 0; k < g->o; k++)
          td_add_into(tmp + taps[t] * n + k * g->c, du + (e * g->o + k) * p->kc4 + ph * g->c, g->c);
    }
  td_transpose_f32(tmp, n, 9, n, dw, 9, NULL);
}

/* ---- the passes ----------------------------------------------------------------------------- */

static void forward_worker(void *arg, int t, int nt) {
  const s2plan *p = arg;
  const conv_geom *g = p->g;
  float *buf = p->scratch + t * p->per_thread;
  float *pad = buf, *out = buf + p->off_out, *v = buf + p->off_v, *m = buf + p->off_m;
  const int64_t es = p->mes;
  memset(pad, 0, sizeof(float) * (size_t)padded_floats(p));
  const int64_t first = g->n * t / nt, end = g->n * (t + 1) / nt; /* an even share */
  for (int64_t n0 = first; n0 < end; n0 += p->ns) {
    const int64_t ns = end - n0 < p->ns ? end - n0 : p->ns;
    input_transform(p, p->x + n0 * g->c * g->hw, ns, pad, v);
    for (int e = 0; e < ELEMS; e++) { /* M[e]^T = V[e]^T @ U[e]^T over e's phases */
      int lo, hi;
      elem_phases(e, &lo, &hi);
      td_sgemm(false, true, ns * p->tiles, g->o, (hi - lo) * g->c, v + e * p->ves + lo * g->c,
               p->kc4, p->u + e * g->o * p->kc4 + lo * g->c, p->kc4, 0.0f, m + e * es, g->o);
    }
    for (int64_t s = 0; s < ns; s++) {
      for (int64_t ty = 0; ty < p->th; ty++)
        for (int64_t tx = 0; tx < p->tw; tx++)
          output_tile(m + (s * p->tiles + ty * p->tw + tx) * g->o, es, g->o,
                      out + 2 * ty * p->orow + 2 * tx * g->o, p->orow);
      output_out(p, out, p->bias, p->y + (n0 + s) * g->o * g->ohw);
    }
  }
}

/* Both gradients share dM: per chunk, dU[e] += dM[e] @ V[e]^T, then
 * dV[e]^T = dM[e]^T @ U[e] (in V's space) folded into dx. */
static void backward_worker(void *arg, int t, int nt) {
  const s2plan *p = arg;
  const conv_geom *g = p->g;
  float *buf = p->scratch + t * p->per_thread;
  float *pad = buf, *out = buf + p->off_out, *v = buf + p->off_v, *dm = buf + p->off_m;
  float *du = buf + p->off_du, *acc = buf + p->off_acc;
  const int64_t es = p->ves;
  memset(buf, 0, sizeof(float) * (size_t)p->off_v); /* pad and out */
  if (p->dw) memset(du, 0, sizeof(float) * (size_t)(ELEMS * g->o * p->kc4));
  const int64_t first = g->n * t / nt, end = g->n * (t + 1) / nt; /* an even share */
  for (int64_t n0 = first; n0 < end; n0 += p->ns) {
    const int64_t ns = end - n0 < p->ns ? end - n0 : p->ns;
    const int64_t q = ns * p->tiles;
    grad_transform(p, p->dy + n0 * g->o * g->ohw, ns, out, dm);
    if (p->dw) {
      input_transform(p, p->x + n0 * g->c * g->hw, ns, pad, v);
      for (int e = 0; e < ELEMS; e++) {
        int lo, hi;
        elem_phases(e, &lo, &hi);
        td_sgemm(true, false, g->o, (hi - lo) * g->c, q, dm + e * p->mes, g->o,
                 v + e * es + lo * g->c, p->kc4, 1.0f, du + e * g->o * p->kc4 + lo * g->c, p->kc4);
      }
    }
    if (!p->dx) continue;
    for (int e = 0; e < ELEMS; e++) {
      int lo, hi;
      elem_phases(e, &lo, &hi);
      td_sgemm(false, false, q, (hi - lo) * g->c, g->o, dm + e * p->mes, g->o,
               p->u + e * g->o * p->kc4 + lo * g->c, p->kc4, 0.0f, v + e * es + lo * g->c, p->kc4);
    }
    for (int64_t s = 0; s < ns; s++) {
      memset(acc, 0, sizeof(float) * (size_t)padded_floats(p));
      for (int64_t ty = 0; ty < p->th; ty++)
        for (int64_t tx = 0; tx < p->tw; tx++)
          input_tile_grad(v + (s * p->tiles + ty * p->tw + tx) * p->kc4, es, g->c,
                          acc + 4 * ty * p->prow + 4 * tx * g->c, p->prow);
      input_out(p, acc, p->dx + (n0 + s) * g->c * g->hw);
    }
  }
}

/* U, the weight transforms' temporary (9 K C floats) and every thread's
 * scratch, in one allocation. */
static td_status s2_start(s2plan *p, const conv_geom *g, int *nt) {
  plan(p, g, td_get_num_threads());
  *nt = td_parallel_threads(p->chunks);
  int64_t head = round16(ELEMS * g->o * p->kc4) + round16(9 * g->o * g->c);
  p->u = td_alloc(sizeof(float) * (size_t)(head + p->per_thread * *nt), "conv2d winograd buffers");
  if (!p->u) return TD_ERR_NO_MEMORY;
  p->scratch = p->u + head;
  return TD_OK;
}

static float *s2_tmp(const s2plan *p) { return p->u + round16(ELEMS * p->g->o * p->kc4); }

static void s2_end(s2plan *p) { td_free(p->u); }

td_status td_conv_winograd_s2_forward(const conv_geom *g, const float *x, const float *w,
                                      const float *bias, float *y) {
  s2plan p;
  int nt;
  td_status st = s2_start(&p, g, &nt);
  if (st) return st;
  weight_transform(&p, w, s2_tmp(&p));
  p.x = x, p.bias = bias, p.y = y;
  td_parallel_run(nt, forward_worker, &p);
  s2_end(&p);
  return TD_OK;
}

td_status td_conv_winograd_s2_backward(const conv_geom *g, const float *x, const float *w,
                                       const float *dy, float *dx, float *dw) {
  s2plan p;
  int nt;
  td_status st = s2_start(&p, g, &nt);
  if (st) return st;
  if (dx) weight_transform(&p, w, s2_tmp(&p));
  p.x = x, p.dy = dy, p.dx = dx, p.dw = dw;
  td_parallel_run(nt, backward_worker, &p);
  if (dw) weight_untransform(&p, nt, s2_tmp(&p), dw);
  s2_end(&p);
  return TD_OK;
}
