/* conv_winograd.c - 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3).
 *
 * Lavin and Gray's minimal filtering: for a 4x4 input tile d and a 3x3
 * kernel g, the 2x2 correlation is
 *     y = A^T [ (G g G^T) (.) (B^T d B) ] A
 * with
 *     B^T = | 1  0 -1  0 |   G = | 1    0    0  |   A^T = | 1  1  1  0 |
 *           | 0  1  1  0 |       | 1/2  1/2 1/2 |         | 0  1 -1 -1 |
 *           | 0 -1  1  0 |       | 1/2 -1/2 1/2 |
 *           | 0  1  0 -1 |       | 0    0    1  |
 * Summed over input channels, the elementwise product becomes 16 matrix
 * products, one per tile element e: M[e] (K x P) = U[e] (K x C) @ V[e]
 * (C x P) over the P tiles of a chunk of samples. Those go to sgemm; the
 * transforms are adds on whole rows that the compiler vectorizes.
 *
 * The weight gradient follows by the chain rule through the same formula:
 * dU[e] = sum over tiles of (A dY A^T)[e] (x) V[e], i.e. the products
 * Yhat[e] (K x P) @ V[e]^T, and dW = G^T dU G.
 *
 * Threads take even shares of the batch, a chunk of samples at a time;
 * each keeps its own buffers (and, for the weight gradient, its own partial
 * dU, summed at the end).
 */
#include "functional/conv_winograd.h"

#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/gemm.h"
#include "functional/vec.h"

enum {
  TILE = 16, /* elements of a 4x4 tile: the number of matrix products */
  /* A chunk's transformed input and products stay well within L2 (1 MB on
   * this Zen 4), so the output transform reads what sgemm has just
   * written. At 2 MB, resnet_tiny's layer2.conv2 and layer3.conv2 ran 7-8%
   * slower on 1 thread. */
  CHUNK_BYTES = 512 << 10,
  /* Below this many channels on either side, the 16 products are too thin
   * for sgemm to beat the direct kernels on the transforms' extra passes:
   * resnet_tiny's layer1 (16 -> 16 channels, 32x32) ran 5% slower this way,
   * while the 32- and 64-channel layers ran 17-35% faster. */
  MIN_CHANNELS = 32,
  /* A sample's tiles are never split across chunks; past this many bytes
   * per sample (a 128x128 image of 64 channels) the buffers would outgrow
   * any cache and the direct kernels are left the job. */
  MAX_SAMPLE_BYTES = 64 << 20,
};

bool td_conv_winograd_supported(const conv_geom *g) {
  if (!(g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
        g->groups == 1 && g->ph <= 2 && g->pw <= 2 && g->c >= MIN_CHANNELS && g->o >= MIN_CHANNELS))
    return false;
  /* Channels and planes fit in int (conv.c checked); the product below
   * cannot overflow before the comparison rules it out. */
  double tiles = (double)((g->oh + 1) / 2) * (double)((g->ow + 1) / 2);
  return TILE * (double)(g->c + g->o) * tiles * sizeof(float) <= MAX_SAMPLE_BYTES;
}

/* ---- the plan shared by both passes ----------------------------------------------- */

typedef struct wino {
  const conv_geom *g;
  int64_t th, tw, tiles;    /* tile rows and columns per sample, and their product */
  int64_t ns, chunks;       /* samples per chunk, and chunks per batch */
  int64_t p;                /* tiles per full chunk: ns * tiles */
  int64_t vstride, mstride; /* floats from one element of V (of M, Yhat) to the next */
  /* Per-thread scratch, in floats: the split input plane (or a sample's
   * tile rows), V [16][C][p], the products or Yhat [16][K][p], and (weight
   * gradient) the partial dU [16][K][C]. */
  int64_t off_v, off_m, off_du, per_thread;
  float *scratch;
  int32_t *map; /* [hw][2]: where split_plane puts each input pixel */
  const float *x, *dy, *bias;
  float *u;   /* forward: U [16][K][C] */
  float *out; /* forward: y */
} wino;

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

/* Floats of one split plane: 8 arrays of th + 1 rows of tw (split_plane). */
static int64_t split_size(const wino *p) { return (p->th + 1) * p->tw; }

/* The slot after the 8 arrays, where pixels with no second place go. */
static int64_t split_trash(const wino *p) { return 8 * split_size(p); }

static void plan(wino *p, const conv_geom *g, int nt_max) {
  memset(p, 0, sizeof *p);
  p->g = g;
  p->th = (g->oh + 1) / 2, p->tw = (g->ow + 1) / 2, p->tiles = p->th * p->tw;
  int64_t per_sample = TILE * (g->c + g->o) * p->tiles * (int64_t)sizeof(float);
  int64_t ns = CHUNK_BYTES / per_sample;
  int64_t even = (g->n + nt_max - 1) / nt_max; /* keep every thread busy */
  if (ns > even) ns = even;
  p->ns = ns > 1 ? ns : 1;
  p->chunks = (g->n + p->ns - 1) / p->ns;
  p->p = p->ns * p->tiles;
  p->off_v = round16(8 * split_size(p) + 1); /* also holds 8 arrays of tiles */
  /* The transforms write (or read) the 16 elements of a tile together:
   * spaced by a multiple of 4 KB, those would fall in one set of the L1
   * cache and evict each other. A cache line more between elements spreads
   * them. */
  p->vstride = g->c * p->p + 16, p->mstride = g->o * p->p + 16;
  p->off_m = p->off_v + round16(TILE * p->vstride);
  p->off_du = p->off_m + round16(TILE * p->mstride);
  p->per_thread = p->off_du + round16(TILE * g->o * g->c);
}

/* Each thread takes an even share of the batch (samples n t / nt up to
 * n (t + 1) / nt), a chunk at a time: dealing out whole chunks instead
 * left one thread a chunk more than the other (32 samples in chunks of 3:
 * 17 and 15). */
static int plan_threads(const wino *p) { return td_parallel_threads(p->chunks); }

/* The padded plane of one channel, split by the parity of its rows and
 * columns so that every tile element is a contiguous run over the tiles:
 * array [rp][cp][side] (8 of them, each [th + 1][tw]) holds padded pixel
 * (2*ty + rp, 2*(tx + side) + cp) at [ty][tx]. Tile (ty, tx)'s pixel (i, j)
 * is then array [i & 1][j & 1][j >> 1] at ty*tw + tx + (i >> 1)*tw.
 *
 * A pixel lands in one or two places (as the right column of one tile and
 * the left of the next); map_split lists them once per call, so a plane is
 * one branch-free pass (images of 8x8 make per-row loops all overhead).
 * Every plane writes the same places, so the padding, zeroed once, stays
 * zero. */
static void map_split(const wino *p, int32_t *map) {
  const conv_geom *g = p->g;
  const int64_t tw = p->tw, size = split_size(p);
  for (int64_t r = 0; r < g->h; r++)
    for (int64_t col = 0; col < g->w; col++) {
      int64_t pr = r + g->ph, pc = col + g->pw, m = pc >> 1;
      int64_t base = ((pr & 1) * 4 + (pc & 1) * 2) * size + (pr >> 1) * tw;
      int32_t *to = map + 2 * (r * g->w + col);
      to[0] = (int32_t)(m < tw ? base + m : split_trash(p));            /* side 0: tile m */
      to[1] = (int32_t)(m >= 1 ? base + size + m - 1 : split_trash(p)); /* side 1: tile m - 1 */
    }
}

static void split_plane(const wino *p, const float *restrict src, float *restrict split) {
  const int32_t *restrict map = p->map;
  for (int64_t i = 0; i < p->g->hw; i++) {
    split[map[2 * i]] = src[i];
    split[map[2 * i + 1]] = src[i];
  }
}

/* One row i of B^T d B for n tiles: with t_X = P_X + sign * Q_X the row's
 * vertical combination over arrays X (= column parity x side), the four
 * outputs combine the columns: (a - c, b + c, c - b, b - d) for a, b, c, d
 * the columns 0..3 of the tile. Sign is +-1, which multiplies exactly. */
static TD_KERNEL void input_row(const float *restrict pa, const float *restrict qa,
                                const float *restrict pb, const float *restrict qb,
                                const float *restrict pc, const float *restrict qc,
                                const float *restrict pd, const float *restrict qd, float sign,
                                int64_t n, float *restrict e0, float *restrict e1,
                                float *restrict e2, float *restrict e3) {
  TD_VLOOP(q, n, {
    float a = pa[q] + sign * qa[q], b = pb[q] + sign * qb[q];
    float c = pc[q] + sign * qc[q], d = pd[q] + sign * qd[q];
    e0[q] = a - c;
    e1[q] = b + c;
    e2[q] = c - b;
    e3[q] = b - d;
  });
}

/* V[e][c][tile] for the ns samples from x (V's rows are ld apart): B^T d B
 * for every 4x4 input tile d, a row of B^T at a time. */
static void input_transform(const wino *p, const float *x, int64_t ns, float *split, float *v,
                            int64_t ld) {
  const conv_geom *g = p->g;
  const int64_t size = split_size(p), estride = p->vstride;
  /* Rows of B^T as (first row, second row, sign): d0 - d2, d1 + d2,
   * d2 - d1, d1 - d3. Tile row r, column j is split array [r & 1][j & 1]
   * [j >> 1], down (r >> 1) rows: the same offsets for every plane. */
  static const int first[4] = {0, 1, 2, 1}, second[4] = {2, 2, 1, 3};
  static const float sign[4] = {-1.0f, 1.0f, -1.0f, -1.0f};
  int64_t P[4][4], Q[4][4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      int64_t col = ((j & 1) * 2 + (j >> 1)) * size;
      P[i][j] = (first[i] & 1) * 4 * size + col + (first[i] >> 1) * p->tw;
      Q[i][j] = (second[i] & 1) * 4 * size + col + (second[i] >> 1) * p->tw;
    }
  memset(split, 0, sizeof(float) * (size_t)split_trash(p));
  for (int64_t s = 0; s < ns; s++)
    for (int64_t c = 0; c < g->c; c++) {
      split_plane(p, x + (s * g->c + c) * g->hw, split);
      float *dst = v + c * ld + s * p->tiles;
      for (int i = 0; i < 4; i++) {
        float *e = dst + 4 * i * estride;
        input_row(split + P[i][0], split + Q[i][0], split + P[i][1], split + Q[i][1],
                  split + P[i][2], split + Q[i][2], split + P[i][3], split + Q[i][3], sign[i],
                  p->tiles, e, e + estride, e + 2 * estride, e + 3 * estride);
      }
    }
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Rows of G applied to arrays: (a, b, c) -> (a, (a + b + c)/2, (a - b + c)/2, c). */
static TD_KERNEL void g_rows(const float *restrict a, const float *restrict b,
                             const float *restrict c, int64_t n, float *restrict o0,
                             float *restrict o1, float *restrict o2, float *restrict o3) {
  TD_VLOOP(q, n, {
    o0[q] = a[q];
    o1[q] = 0.5f * (a[q] + b[q] + c[q]);
    o2[q] = 0.5f * (a[q] - b[q] + c[q]);
    o3[q] = c[q];
  });
}

/* U[e][k][c] = (G w[k][c] G^T)[e], over all n = K*C kernels at once: the
 * weights are first transposed to [9][n] (tmp), so each step of G runs
 * along contiguous arrays. tmp holds 9*n + 12*n floats. */
static void weight_transform(const conv_geom *g, const float *w, float *u, float *tmp) {
  const int64_t n = g->o * g->c;
  float *wt = tmp, *gw = tmp + 9 * n; /* gw[i][j]: row i of G w, column j */
  for (int64_t at = 0; at < n; at++)
    for (int j = 0; j < 9; j++)
      wt[j * n + at] = w[at * 9 + j];
  for (int j = 0; j < 3; j++) /* G w: column j of w, down its rows */
    g_rows(wt + j * n, wt + (3 + j) * n, wt + (6 + j) * n, n, gw + j * n, gw + (3 + j) * n,
           gw + (6 + j) * n, gw + (9 + j) * n);
  for (int i = 0; i < 4; i++) /* (G w) G^T: row i, along its columns */
    g_rows(gw + 3 * i * n, gw + (3 * i + 1) * n, gw + (3 * i + 2) * n, n, u + 4 * i * n,
           u + (4 * i + 1) * n, u + (4 * i + 2) * n, u + (4 * i + 3) * n);
}

/* A^T m A for n tiles: m's 16 elements are rows `stride` apart; the 2x2
 * results, plus b, go to four arrays of tiles. */
static TD_KERNEL void output_tiles(const float *restrict m, int64_t stride, int64_t n, float b,
                                   float *restrict y00, float *restrict y01, float *restrict y10,
                                   float *restrict y11) {
  TD_VLOOP(q, n, {
    float s0[4], s1[4];
    for (int j = 0; j < 4; j++) {
      float m1 = m[(4 + j) * stride + q], m2 = m[(8 + j) * stride + q];
      s0[j] = m[j * stride + q] + m1 + m2;
      s1[j] = m1 - m2 - m[(12 + j) * stride + q];
    }
    y00[q] = s0[0] + s0[1] + s0[2] + b;
    y01[q] = s0[1] - s0[2] - s0[3] + b;
    y10[q] = s1[0] + s1[1] + s1[2] + b;
    y11[q] = s1[1] - s1[2] - s1[3] + b;
  });
}

/* y for the ns samples = A^T M A per tile, plus bias (M's rows are ld
 * apart); a last odd row or column of outputs is dropped. */
static void output_transform(const wino *p, const float *m, int64_t ld, int64_t ns,
                             const float *bias, float *quad, float *y) {
  const conv_geom *g = p->g;
  const int64_t tw = p->tw, n = p->tiles;
  float *y00 = quad, *y01 = quad + n, *y10 = quad + 2 * n, *y11 = quad + 3 * n;
  for (int64_t s = 0; s < ns; s++)
    for (int64_t k = 0; k < g->o; k++) {
      output_tiles(m + k * ld + s * n, p->mstride, n, bias ? bias[k] : 0.0f, y00, y01, y10, y11);
      float *plane = y + (s * g->o + k) * g->ohw;
      for (int64_t ty = 0; ty < p->th; ty++) {
        float *restrict r0 = plane + 2 * ty * g->ow, *restrict r1 = r0 + g->ow;
        const int64_t at = ty * tw, full = g->ow / 2;
        const float *restrict a0 = y00 + at, *restrict a1 = y01 + at;
        const float *restrict b0 = y10 + at, *restrict b1 = y11 + at;
        TD_VLOOP(tx, full, r0[2 * tx] = a0[tx]; r0[2 * tx + 1] = a1[tx]);
        const bool second = 2 * ty + 1 < g->oh;
        if (second) TD_VLOOP(tx, full, r1[2 * tx] = b0[tx]; r1[2 * tx + 1] = b1[tx]);
        if (full < tw) { /* odd width: the last tile's left column */
          r0[2 * full] = y00[at + full];
          if (second) r1[2 * full] = y10[at + full];
        }
      }
    }
}

static void forward_worker(void *arg, int t, int nt) {
  const wino *p = arg;
  const conv_geom *g = p->g;
  float *buf = p->scratch + t * p->per_thread;
  float *split = buf, *v = buf + p->off_v, *m = buf + p->off_m;
  const int64_t first = g->n * t / nt, end = g->n * (t + 1) / nt;
  for (int64_t n0 = first; n0 < end; n0 += p->ns) {
    int64_t ns = end - n0 < p->ns ? end - n0 : p->ns;
    int64_t q = ns * p->tiles; /* this chunk's tiles; rows of V and M stay p->p apart */
    input_transform(p, p->x + n0 * g->c * g->hw, ns, split, v, p->p);
    for (int e = 0; e < TILE; e++)
      td_sgemm(false, false, g->o, q, g->c, p->u + e * g->o * g->c, g->c, v + e * p->vstride, p->p,
               0.0f, m + e * p->mstride, p->p);
    output_transform(p, m, p->p, ns, p->bias, split, p->out + n0 * g->o * g->ohw);
  }
}

/* Everything a pass needs besides its inputs, in one allocation: U (the
 * forward's transformed weights), the weight transforms' temporaries, the
 * split map and every thread's scratch. */
static td_status wino_start(wino *p, const conv_geom *g, int *nt) {
  plan(p, g, td_get_num_threads());
  *nt = plan_threads(p);
  int64_t n = g->o * g->c;
  int64_t floats = round16(TILE * n) + round16(21 * n) + p->per_thread * *nt;
  float *block = td_alloc(sizeof(float) * (size_t)floats + sizeof(int32_t) * (size_t)(2 * g->hw),
                          "conv2d winograd buffers");
  if (!block) return TD_ERR_NO_MEMORY;
  p->u = block;
  p->scratch = block + round16(TILE * n) + round16(21 * n);
  p->map = (int32_t *)(block + floats);
  map_split(p, p->map);
  return TD_OK;
}

/* The weight transforms' temporaries (21 * K * C floats). */
static float *wino_tmp(const wino *p) { return p->u + round16(TILE * p->g->o * p->g->c); }

static void wino_end(wino *p) { td_free(p->u); }

td_status td_conv_winograd_forward(const conv_geom *g, const float *x, const float *w,
                                   const float *bias, float *y) {
  wino p;
  int nt;
  td_status st = wino_start(&p, g, &nt);
  if (st) return st;
  weight_transform(g, w, p.u, wino_tmp(&p));
  p.x = x, p.bias = bias, p.out = y;
  td_parallel_run(nt, forward_worker, &p);
  wino_end(&p);
  return TD_OK;
}

/* ---- weight gradient ---------------------------------------------------------------------- */

/* A d A^T for 2x2 tiles d = (a b; c d): the rows of A d are (a, b),
 * (a + c, b + d), (a - c, b - d) and (-c, -d), and each row (u, w) becomes
 * u, u + w, u - w, -w. These kernels work on arrays of tiles, with every
 * pointer a restrict parameter: that is what lets GCC 12 vectorize them. */
static TD_KERNEL void sum_diff(const float *restrict a, const float *restrict c, int64_t n,
                               float *restrict sum, float *restrict diff) {
  TD_VLOOP(q, n, {
    sum[q] = a[q] + c[q];
    diff[q] = a[q] - c[q];
  });
}

static TD_KERNEL void grad_row(const float *restrict u, const float *restrict w, int64_t n,
                               float *restrict e0, float *restrict e1, float *restrict e2,
                               float *restrict e3) {
  TD_VLOOP(q, n, {
    e0[q] = u[q];
    e1[q] = u[q] + w[q];
    e2[q] = u[q] - w[q];
    e3[q] = -w[q];
  });
}

/* The last row, (-c, -d), without negating first. */
static TD_KERNEL void grad_row_negated(const float *restrict c, const float *restrict d, int64_t n,
                                       float *restrict e0, float *restrict e1, float *restrict e2,
                                       float *restrict e3) {
  TD_VLOOP(q, n, {
    e0[q] = -c[q];
    e1[q] = -(c[q] + d[q]);
    e2[q] = d[q] - c[q];
    e3[q] = d[q];
  });
}

/* Yhat[e][k][tile] = (A d A^T)[e] for every 2x2 tile d of dY (zero past its
 * last row and column) of the ns samples; Yhat's rows are ld apart. */
static void grad_transform(const wino *p, const float *dy, int64_t ns, float *quad, float *yh,
                           int64_t ld) {
  const conv_geom *g = p->g;
  const int64_t tw = p->tw, n = p->tiles;
  float *d00 = quad, *d01 = quad + n, *d10 = quad + 2 * n, *d11 = quad + 3 * n;
  float *u1 = quad + 4 * n, *w1 = quad + 5 * n, *u2 = quad + 6 * n, *w2 = quad + 7 * n;
  const int64_t es = p->mstride;
  memset(quad, 0, sizeof(float) * (size_t)(4 * n));
  for (int64_t s = 0; s < ns; s++)
    for (int64_t k = 0; k < g->o; k++) {
      const float *plane = dy + (s * g->o + k) * g->ohw;
      for (int64_t oy = 0; oy < g->oh; oy++) {
        float *restrict e = (oy & 1 ? d10 : d00) + (oy >> 1) * tw;
        float *restrict o = (oy & 1 ? d11 : d01) + (oy >> 1) * tw;
        const float *restrict row = plane + oy * g->ow;
        TD_VLOOP(m, g->ow / 2, e[m] = row[2 * m]; o[m] = row[2 * m + 1]);
        if (g->ow & 1) e[g->ow / 2] = row[g->ow - 1];
      }
      sum_diff(d00, d10, n, u1, u2);
      sum_diff(d01, d11, n, w1, w2);
      float *out = yh + k * ld + s * n;
      grad_row(d00, d01, n, out, out + es, out + 2 * es, out + 3 * es);
      grad_row(u1, w1, n, out + 4 * es, out + 5 * es, out + 6 * es, out + 7 * es);
      grad_row(u2, w2, n, out + 8 * es, out + 9 * es, out + 10 * es, out + 11 * es);
      grad_row_negated(d10, d11, n, out + 12 * es, out + 13 * es, out + 14 * es, out + 15 * es);
    }
}

static void weight_worker(void *arg, int t, int nt) {
  const wino *p = arg;
  const conv_geom *g = p->g;
  float *buf = p->scratch + t * p->per_thread;
  float *split = buf, *v = buf + p->off_v, *yh = buf + p->off_m, *du = buf + p->off_du;
  memset(du, 0, sizeof(float) * (size_t)(TILE * g->o * g->c));
  const int64_t first = g->n * t / nt, end = g->n * (t + 1) / nt;
  for (int64_t n0 = first; n0 < end; n0 += p->ns) {
    int64_t ns = end - n0 < p->ns ? end - n0 : p->ns;
    int64_t q = ns * p->tiles;
    input_transform(p, p->x + n0 * g->c * g->hw, ns, split, v, p->p);
    grad_transform(p, p->dy + n0 * g->o * g->ohw, ns, split, yh, p->p);
    for (int e = 0; e < TILE; e++)
      td_sgemm(false, true, g->o, g->c, q, yh + e * p->mstride, p->p, v + e * p->vstride, p->p,
               1.0f, du + e * g->o * g->c, g->c);
  }
}

/* Columns of G^T applied to arrays: (a, b, c, d) -> (a + (b + c)/2,
 * (b - c)/2, (b + c)/2 + d). */
static TD_KERNEL void gt_rows(const float *restrict a, const float *restrict b,
                              const float *restrict c, const float *restrict d, int64_t n,
                              float *restrict o0, float *restrict o1, float *restrict o2) {
  TD_VLOOP(q, n, {
    float h = 0.5f * (b[q] + c[q]);
    o0[q] = a[q] + h;
    o1[q] = 0.5f * (b[q] - c[q]);
    o2[q] = h + d[q];
  });
}

/* dw[k][c] = G^T dU[.][k][c] G, with dU the sum of the threads' partials
 * (summed into thread 0's). tmp holds 12*n + 9*n floats for n = K*C. */
static void weight_untransform(const wino *p, int nt, float *tmp, float *dw) {
  const int64_t n = p->g->o * p->g->c;
  float *du = p->scratch + p->off_du;
  for (int t = 1; t < nt; t++)
    td_add_into(du, p->scratch + t * p->per_thread + p->off_du, TILE * n);
  float *r = tmp, *f = tmp + 12 * n; /* r[i][j]: row i of G^T dU, column j */
  for (int j = 0; j < 4; j++)
    gt_rows(du + j * n, du + (4 + j) * n, du + (8 + j) * n, du + (12 + j) * n, n, r + j * n,
            r + (4 + j) * n, r + (8 + j) * n);
  for (int i = 0; i < 3; i++)
    gt_rows(r + 4 * i * n, r + (4 * i + 1) * n, r + (4 * i + 2) * n, r + (4 * i + 3) * n, n,
            f + 3 * i * n, f + (3 * i + 1) * n, f + (3 * i + 2) * n);
  for (int64_t at = 0; at < n; at++)
    for (int j = 0; j < 9; j++)
      dw[at * 9 + j] = f[j * n + at];
}

td_status td_conv_winograd_weight_grad(const conv_geom *g, const float *x, const float *dy,
                                       float *dw) {
  wino p;
  int nt;
  td_status st = wino_start(&p, g, &nt);
  if (st) return st;
  p.x = x, p.dy = dy;
  td_parallel_run(nt, weight_worker, &p);
  weight_untransform(&p, nt, wino_tmp(&p), dw);
  wino_end(&p);
  return TD_OK;
}
