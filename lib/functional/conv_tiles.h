/* conv_tiles.h - the register tiles of conv_direct.c (AVX2 + FMA; internal, included once).
 *
 * Two ways to vectorize a convolution whose input is laid out as padded
 * planes, where reduction row r = (c,i,j) reads output position q at
 * in[src[r] + q]:
 *   - over positions ("grid"): 8 consecutive positions per vector, 4 output
 *     channels per tile. Results come out in NCHW order, but positions are
 *     numbered on the padded width, so the padding columns are computed too.
 *   - over channels ("cv"): 8 output channels per vector, 6 positions per
 *     tile. No position is wasted, but results come out as
 *     [position][channel] and must be transposed.
 * Every tile keeps its 12 accumulators in registers; the tile sizes are
 * constants after inlining (callers instantiate them).
 */
#ifndef TD_FUNCTIONAL_CONV_TILES_H
#define TD_FUNCTIONAL_CONV_TILES_H

#include <immintrin.h>
#include <stdint.h>

#include "functional/vec.h"

#define TILE_INLINE static inline __attribute__((always_inline))

enum {
  VEC = 8, /* floats per AVX2 vector */
  GQ = 4,  /* grid: output channels per tile (weights packed in blocks of 4) */
  CP = 6,  /* cv: positions (forward) or reduction rows (weights) per tile */
  WR = 3,  /* grid weight gradient: reduction rows per tile */
};

/* grid forward: y[k][v*8 ..] = sum over r of w[r][k] * x[src[r] + v*8 ..] for
 * nv <= 3 vectors of positions and nq <= 4 output channels. */
TILE_INLINE void grid_tile(const int nv, const int nq, const float *x, const int64_t *src,
                           int64_t kc, const float *w, float *y, int64_t ld) {
  __m256 acc[3][GQ];
#pragma GCC unroll 3
  for (int v = 0; v < nv; v++)
#pragma GCC unroll 4
    for (int k = 0; k < nq; k++)
      acc[v][k] = _mm256_setzero_ps();
  for (int64_t r = 0; r < kc; r++) {
    const float *xp = x + src[r];
    __m256 xv[3];
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++)
      xv[v] = _mm256_loadu_ps(xp + v * VEC);
#pragma GCC unroll 4
    for (int k = 0; k < nq; k++) {
      __m256 b = _mm256_broadcast_ss(w + r * GQ + k);
#pragma GCC unroll 3
      for (int v = 0; v < nv; v++)
        acc[v][k] = _mm256_fmadd_ps(xv[v], b, acc[v][k]);
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < nq; k++)
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++)
      _mm256_storeu_ps(y + k * ld + v * VEC, acc[v][k]);
}

/* cv forward: out[k][v*8 ..] = sum over r of in[pos[k] + src[r]] * w[r][v*8 ..]
 * for 6 positions k and nv <= 2 channel vectors. */
TILE_INLINE void cv_tile(const int nv, const float *in, const int64_t *pos, const int64_t *src,
                         int64_t kc, const float *w, int64_t ld, float *out, int64_t old) {
  __m256 acc[CP][2];
  const float *base[CP];
#pragma GCC unroll 6
  for (int k = 0; k < CP; k++) {
    base[k] = in + pos[k];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
      acc[k][v] = _mm256_setzero_ps();
  }
  for (int64_t r = 0; r < kc; r++) {
    __m256 wv[2];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
      wv[v] = _mm256_loadu_ps(w + r * ld + v * VEC);
    int64_t s = src[r];
#pragma GCC unroll 6
    for (int k = 0; k < CP; k++) {
      __m256 b = _mm256_broadcast_ss(base[k] + s);
#pragma GCC unroll 2
      for (int v = 0; v < nv; v++)
        acc[k][v] = _mm256_fmadd_ps(b, wv[v], acc[k][v]);
    }
  }
#pragma GCC unroll 6
  for (int k = 0; k < CP; k++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
      _mm256_storeu_ps(out + k * old + v * VEC, acc[k][v]);
}

/* cv_tile for a single channel vector. Six accumulators on one chain each
 * would wait on the FMA latency (4 cycles, two units: 8 in flight), so the
 * even and odd reduction rows go to separate accumulators, summed at the
 * end. */
TILE_INLINE void cv_tile_single(const float *in, const int64_t *pos, const int64_t *src, int64_t kc,
                                const float *w, int64_t ld, float *out, int64_t old) {
  __m256 acc[CP][2];
  const float *base[CP];
#pragma GCC unroll 6
  for (int k = 0; k < CP; k++) {
    base[k] = in + pos[k];
    acc[k][0] = acc[k][1] = _mm256_setzero_ps();
  }
  int64_t r = 0;
  for (; r + 2 <= kc; r += 2) {
    __m256 w0 = _mm256_loadu_ps(w + r * ld), w1 = _mm256_loadu_ps(w + (r + 1) * ld);
    int64_t s0 = src[r], s1 = src[r + 1];
#pragma GCC unroll 6
    for (int k = 0; k < CP; k++) {
      acc[k][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(base[k] + s0), w0, acc[k][0]);
      acc[k][1] = _mm256_fmadd_ps(_mm256_broadcast_ss(base[k] + s1), w1, acc[k][1]);
    }
  }
  if (r < kc) {
    __m256 w0 = _mm256_loadu_ps(w + r * ld);
#pragma GCC unroll 6
    for (int k = 0; k < CP; k++)
      acc[k][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(base[k] + src[r]), w0, acc[k][0]);
  }
#pragma GCC unroll 6
  for (int k = 0; k < CP; k++)
    _mm256_storeu_ps(out + k * old, _mm256_add_ps(acc[k][0], acc[k][1]));
}

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* grid weight gradient: acc[k*kc + t] += sum over ns samples of
 * dot(dy row k, x from src[t]) over qv positions, for 4 channels k and 3
 * rows t (missing rows repeat row 0 and are not stored: nr <= 3). Samples
 * are xstride / dystride apart; dY rows are ld apart. */
TILE_INLINE void grid_weight_tile(const float *x, int64_t xstride, const int64_t *src, int nr,
                                  const float *dy, int64_t dystride, int ns, int64_t qv, int64_t ld,
                                  float *acc, int64_t kc) {
  __m256 a[GQ][WR];
  for (int k = 0; k < GQ; k++)
    for (int t = 0; t < WR; t++)
      a[k][t] = _mm256_setzero_ps();
  for (int s = 0; s < ns; s++) {
    const float *x0 = x + s * xstride + src[0], *x1 = x + s * xstride + src[nr > 1 ? 1 : 0];
    const float *x2 = x + s * xstride + src[nr > 2 ? 2 : 0], *d0 = dy + s * dystride;
    for (int64_t q = 0; q < qv; q += VEC) {
      __m256 v0 = _mm256_loadu_ps(x0 + q), v1 = _mm256_loadu_ps(x1 + q);
      __m256 v2 = _mm256_loadu_ps(x2 + q);
#pragma GCC unroll 4
      for (int k = 0; k < GQ; k++) {
        __m256 d = _mm256_loadu_ps(d0 + k * ld + q);
        a[k][0] = _mm256_fmadd_ps(d, v0, a[k][0]);
        a[k][1] = _mm256_fmadd_ps(d, v1, a[k][1]);
        a[k][2] = _mm256_fmadd_ps(d, v2, a[k][2]);
      }
    }
  }
  for (int k = 0; k < GQ; k++)
    for (int t = 0; t < nr; t++)
      acc[k * kc + t] += hsum8(a[k][t]);
}

/* cv weight gradient: acc[t][v*8 ..] += sum over ns samples and output
 * positions (oy, ox) of x_s[src[t] + oy*wq + ox] * dy_s[oy*ow + ox][v*8 ..],
 * for 6 reduction rows t and nv <= 2 channel vectors. */
TILE_INLINE void cv_weight_tile(const int nv, const float *x, int64_t xstride, const int64_t *src,
                                const float *dy, int64_t dystride, int64_t ld, int ns, int64_t oh,
                                int64_t ow, int64_t wq, float *acc_out, int64_t ald) {
  __m256 acc[CP][2];
#pragma GCC unroll 6
  for (int t = 0; t < CP; t++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
      acc[t][v] = _mm256_setzero_ps();
  for (int s = 0; s < ns; s++)
    for (int64_t oy = 0; oy < oh; oy++) {
      const float *row[CP];
#pragma GCC unroll 6
      for (int t = 0; t < CP; t++)
        row[t] = x + s * xstride + src[t] + oy * wq;
      const float *d = dy + s * dystride + oy * ow * ld;
      for (int64_t ox = 0; ox < ow; ox++) {
        __m256 dv[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
          dv[v] = _mm256_loadu_ps(d + ox * ld + v * VEC);
#pragma GCC unroll 6
        for (int t = 0; t < CP; t++) {
          __m256 b = _mm256_broadcast_ss(row[t] + ox);
#pragma GCC unroll 2
          for (int v = 0; v < nv; v++)
            acc[t][v] = _mm256_fmadd_ps(b, dv[v], acc[t][v]);
        }
      }
    }
#pragma GCC unroll 6
  for (int t = 0; t < CP; t++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) {
      float *o = acc_out + t * ald + v * VEC;
      _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[t][v]));
    }
}

#endif
