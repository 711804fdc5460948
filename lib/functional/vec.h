/* vec.h - helpers for kernels that GCC vectorizes at -O2, and a few AVX2
 * ones for what it does not. Internal to lib/functional.
 *
 * GCC 12 at -O2 vectorizes with its "very-cheap" cost model: a loop is
 * vectorized only when the vector code replaces it entirely, i.e. when its
 * trip count is a known multiple of the vector width. A plain
 * `for (i = 0; i < n; i++)` therefore stays scalar. TD_VLOOP runs the body
 * over blocks of exactly 8 (which vectorize) and then a scalar tail. Pointers
 * the body reads and writes should be `restrict`, since very-cheap also
 * refuses runtime alias checks.
 */
#ifndef TD_FUNCTIONAL_VEC_H
#define TD_FUNCTIONAL_VEC_H

#include <stdint.h>
#include <string.h>

/* Marks a kernel whose loops rely on its `restrict` parameters: when GCC 12
 * inlines such a function into a caller it can lose the no-alias guarantee,
 * and the loops then need a runtime alias check that -O2 will not emit. */
#define TD_KERNEL __attribute__((noinline))

/* for (int64_t i = 0; i < n; i++) { body }, vectorizable at -O2. */
#define TD_VLOOP(i, n, ...)                                                                        \
  do {                                                                                             \
    const int64_t vloop_n_ = (n), vloop_end_ = vloop_n_ - vloop_n_ % 8;                            \
    for (int64_t vloop_b_ = 0; vloop_b_ < vloop_end_; vloop_b_ += 8)                               \
      for (int64_t i = vloop_b_; i < vloop_b_ + 8; i++) {                                          \
        __VA_ARGS__;                                                                               \
      }                                                                                            \
    for (int64_t i = vloop_end_; i < vloop_n_; i++) {                                              \
      __VA_ARGS__;                                                                                 \
    }                                                                                              \
  } while (0)

/* acc[i] += x[i] for n floats (the Winograd paths sum partial weight
 * gradients with it). Static in every file that includes this header;
 * unused ones cost nothing. */
static TD_KERNEL __attribute__((unused)) void td_add_into(float *restrict acc,
                                                          const float *restrict x, int64_t n) {
  TD_VLOOP(q, n, acc[q] += x[q]);
}

/* Sum of n floats in double. Eight independent lanes let the loop vectorize
 * (a single accumulator would serialise on the add latency), and double keeps
 * long sums exact to well below float32 rounding. */
static inline double td_sum_f64(const float *x, int64_t n) {
  double lane[8] = {0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; j++)
      lane[j] += x[k + j];
  double s = 0;
  for (; k < n; k++)
    s += x[k];
  for (int j = 0; j < 8; j++)
    s += lane[j];
  return s;
}

/* max (sign = 1) or min (sign = -1) of n >= 1 floats, propagating NaN as
 * torch.amax does; eight lanes so the compare-and-select vectorizes. */
static inline float td_extreme_f32(const float *x, int64_t n, float sign) {
  float lane[8];
  for (int j = 0; j < 8; j++)
    lane[j] = x[0];
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; j++) {
      float v = x[k + j];
      lane[j] = ((sign * v > sign * lane[j]) | (v != v)) ? v : lane[j];
    }
  for (; k < n; k++) {
    float v = x[k];
    lane[0] = ((sign * v > sign * lane[0]) | (v != v)) ? v : lane[0];
  }
  float m = lane[0];
  for (int j = 1; j < 8; j++)
    m = ((sign * lane[j] > sign * m) | (lane[j] != lane[j])) ? lane[j] : m;
  return m;
}

/* expf that vectorizes: glibc's expf is a call the vectorizer cannot use
 * without -ffast-math. Cephes' range reduction and polynomial, within 1.5
 * ulp of exp on [-87.3, 88.7]; results below FLT_MIN flush to 0, above
 * FLT_MAX give inf, NaN stays NaN. The special cases are applied with bit
 * masks rather than selects: a select lets GCC sink the arithmetic into one
 * branch, and then the loop no longer vectorizes. */
static inline float td_vexpf(float x) {
  /* round(x / ln 2) by the 1.5 * 2^23 trick: no float->int conversion of
   * out-of-range values, and no floorf (which does not vectorize). */
  float t = x * 1.44269504088896341f + 12582912.0f;
  float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  int32_t tb, xb;
  memcpy(&tb, &t, 4);
  memcpy(&xb, &x, 4);
  int32_t ni = (tb & 0x7fffff) - 0x400000; /* the integer n, from t's mantissa */
  ni = ni < -126 ? -126 : ni;
  ni = ni > 128 ? 128 : ni;
  /* 2^n as two normal factors, so that n = 128 or -126 needs no special case */
  int32_t n1 = ni / 2, n2 = ni - n1;
  int32_t b1 = (n1 + 127) * (1 << 23), b2 = (n2 + 127) * (1 << 23);
  float s1, s2;
  memcpy(&s1, &b1, 4);
  memcpy(&s2, &b2, 4);
  float res = p * s1 * s2;
  int32_t rb, ax = xb & 0x7fffffff;
  memcpy(&rb, &res, 4);
  int32_t under = -(int32_t)((xb < 0) & (ax > 0x42aeac50)); /* x < ln FLT_MIN: 0 */
  int32_t over = -(int32_t)((xb >= 0) & (ax > 0x42b17218)); /* x > ln FLT_MAX: inf */
  int32_t nan = -(int32_t)(ax > 0x7f800000);
  rb = (rb & ~(under | over | nan)) | (over & 0x7f800000) | (nan & xb);
  memcpy(&res, &rb, 4);
  return res;
}

#if defined(__AVX2__)
#include <immintrin.h>

/* The even (td_even8) or odd (td_odd8) floats of the 16 in lo then hi, in
 * order: a shuffle within 128-bit lanes, then the middle 64-bit quarters
 * swapped. Strided rows (a stride-2 convolution's input, a 2x2 pool's
 * windows) are read this way. */
static inline __m256 td_even8(__m256 lo, __m256 hi) {
  __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

static inline __m256 td_odd8(__m256 lo, __m256 hi) {
  __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* dst[j][i] = r[i][j] + add[j] for the 8x8 block whose rows are r (dst's
 * rows dld apart). */
static inline __attribute__((always_inline)) void
td_transpose8_rows(const __m256 r[8], float *dst, int64_t dld, const __m256 add[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  __m256 o[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                 _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                 _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                 _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++)
    _mm256_storeu_ps(dst + j * dld, _mm256_add_ps(o[j], add[j]));
}

/* dst[j][i] = src[i][j] + add[j] for an 8x8 block (rows sld / dld apart). */
static inline __attribute__((always_inline)) void
td_transpose8(const float *src, int64_t sld, float *dst, int64_t dld, const __m256 add[8]) {
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++)
    r[i] = _mm256_loadu_ps(src + i * sld);
  td_transpose8_rows(r, dst, dld, add);
}
#endif

/* dst[j][i] = src[i][j], plus add[j] unless add is NULL, for a block of
 * rows x cols (rows sld / dld apart): 8x8 blocks through registers where
 * AVX2 is built in, the edges one float at a time.
 *
 * Of the two sides, the one with the longer rows (an NCHW plane, say) walks
 * along 8 of its rows before moving to the next 8: rows a power of two
 * apart share a cache set, and moving across more of them at once than the
 * cache has ways (8) would evict each line before its second use. */
static inline void td_transpose_f32(const float *src, int64_t sld, int64_t rows, int64_t cols,
                                    float *dst, int64_t dld, const float *add) {
  int64_t rows8 = 0, cols8 = 0;
#if defined(__AVX2__)
  rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  __m256 a[8] = {0};
  if (sld >= dld) {
    for (int64_t i0 = 0; i0 < rows8; i0 += 8)
      for (int64_t j0 = 0; j0 < cols8; j0 += 8) {
        for (int j = 0; j < 8; j++)
          a[j] = _mm256_set1_ps(add ? add[j0 + j] : 0.0f);
        td_transpose8(src + i0 * sld + j0, sld, dst + j0 * dld + i0, dld, a);
      }
  } else {
    for (int64_t j0 = 0; j0 < cols8; j0 += 8) {
      for (int j = 0; j < 8; j++)
        a[j] = _mm256_set1_ps(add ? add[j0 + j] : 0.0f);
      for (int64_t i0 = 0; i0 < rows8; i0 += 8)
        td_transpose8(src + i0 * sld + j0, sld, dst + j0 * dld + i0, dld, a);
    }
  }
#endif
  /* The edges: the rows past the last block of 8 (within the blocked
   * columns), then the columns past it. */
  for (int64_t j = 0; j < cols8; j++)
    for (int64_t i = rows8; i < rows; i++)
      dst[j * dld + i] = src[i * sld + j] + (add ? add[j] : 0.0f);
  for (int64_t j = cols8; j < cols; j++)
    for (int64_t i = 0; i < rows; i++)
      dst[j * dld + i] = src[i * sld + j] + (add ? add[j] : 0.0f);
}

#endif
