/* elementwise_map.h - drivers that run a per-element loop over (broadcast, strided) tensors.
 *
 * Internal to lib/functional (elementwise.c, activation.c). An elementwise op
 * is written once as an inner loop over n elements with element strides; the
 * drivers pick the fastest way to feed it: one flat call for contiguous data,
 * one call per row for a contiguous "bias row" or a scalar, and td_iter for
 * everything else (permuted, sliced or generally broadcast views). Function
 * pointers are called per row, never per element.
 *
 * The TD_EW_*_LOOP macros generate the inner loops from an expression, with
 * the unit-stride and broadcast (stride 0) cases spelled out so the compiler
 * vectorizes them. The td_ew_* math functions (exp, log, tanh, the normal
 * CDF) are branch-free float32 versions of libm's that such loops can
 * vectorize, accurate to a few ulp.
 */
#ifndef TD_FUNCTIONAL_ELEMENTWISE_MAP_H
#define TD_FUNCTIONAL_ELEMENTWISE_MAP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "functional/op.h"
#include "tensor/tensor.h"

/* y[i] = f(x[i * sx]) for i < n; y is contiguous and overlaps no input.
 * p0, p1: the op's scalars. */
typedef void (*td_ew_unary_loop)(int64_t n, const float *restrict x, int64_t sx, float *restrict y,
                                 float p0, float p1);
/* y[i] = f(a[i * sa], b[i * sb]) for i < n; y is contiguous and overlaps no
 * input. A stride of 0 repeats one element (broadcast). */
typedef void (*td_ew_binary_loop)(int64_t n, const float *restrict a, int64_t sa,
                                  const float *restrict b, int64_t sb, float *restrict y, float p0,
                                  float p1);

/* At -O2, GCC 12 vectorizes only loops that need no scalar epilogue and no
 * runtime alias check, so unit-stride loops run as blocks of a fixed
 * TD_EW_BLOCK elements (a whole AVX register) over restrict pointers, then a
 * scalar tail. */
#define TD_EW_BLOCK 8

/* for (int64_t i = 0; i < n; i++) { BODY } in that block-plus-tail form; the
 * pointers BODY writes through must be restrict. */
#define TD_EW_FOR(i, n, ...)                                                                       \
  do {                                                                                             \
    int64_t td_ew_base_ = 0;                                                                       \
    for (; td_ew_base_ + TD_EW_BLOCK <= (n); td_ew_base_ += TD_EW_BLOCK)                           \
      for (int td_ew_k_ = 0; td_ew_k_ < TD_EW_BLOCK; td_ew_k_++) {                                 \
        const int64_t i = td_ew_base_ + td_ew_k_;                                                  \
        __VA_ARGS__;                                                                               \
      }                                                                                            \
    for (int64_t i = td_ew_base_; i < (n); i++) {                                                  \
      __VA_ARGS__;                                                                                 \
    }                                                                                              \
  } while (0)

/* Defines `static void name(...)`, a td_ew_unary_loop computing EXPR from the
 * element `u` (and p0, p1). */
#define TD_EW_UNARY_LOOP(name, EXPR)                                                               \
  static void name(int64_t n, const float *restrict x, int64_t sx, float *restrict y, float p0,    \
                   float p1) {                                                                     \
    (void)p0;                                                                                      \
    (void)p1;                                                                                      \
    if (sx == 1) {                                                                                 \
      TD_EW_FOR(i, n, const float u = x[i]; y[i] = (EXPR));                                        \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        const float u = x[i * sx];                                                                 \
        y[i] = (EXPR);                                                                             \
      }                                                                                            \
    }                                                                                              \
  }

/* Defines `static void name(...)`, a td_ew_binary_loop computing EXPR from the
 * elements `u` (of a) and `v` (of b), and p0, p1. */
#define TD_EW_BINARY_LOOP(name, EXPR)                                                              \
  static void name(int64_t n, const float *restrict a, int64_t sa, const float *restrict b,        \
                   int64_t sb, float *restrict y, float p0, float p1) {                            \
    (void)p0;                                                                                      \
    (void)p1;                                                                                      \
    if (sa == 1 && sb == 1) {                                                                      \
      TD_EW_FOR(i, n, const float u = a[i]; const float v = b[i]; y[i] = (EXPR));                  \
    } else if (sa == 1 && sb == 0) {                                                               \
      const float v = b[0];                                                                        \
      TD_EW_FOR(i, n, const float u = a[i]; y[i] = (EXPR));                                        \
    } else if (sa == 0 && sb == 1) {                                                               \
      const float u = a[0];                                                                        \
      TD_EW_FOR(i, n, const float v = b[i]; y[i] = (EXPR));                                        \
    } else {                                                                                       \
      for (int64_t i = 0; i < n; i++) {                                                            \
        const float u = a[i * sa], v = b[i * sb];                                                  \
        y[i] = (EXPR);                                                                             \
      }                                                                                            \
    }                                                                                              \
  }

/* The one-input ops' check: input 0 is float32, else INVALID_ARGUMENT naming
 * the op, the dtype and the shape ("relu: expected a float32 input, got int64
 * [2,3]"). */
td_status td_ew_check_float_input(const td_op_ctx *ctx);

/* A new contiguous tensor of x's shape holding loop(x). x: float32, any view. */
td_status td_ew_unary(td_ew_unary_loop loop, const td_tensor *x, float p0, float p1,
                      td_tensor **out);
/* A new contiguous tensor of shape [ndim, shape], which the caller has checked
 * is the broadcast of a's and b's shapes, holding loop(a, b). a, b: float32,
 * any views. */
td_status td_ew_binary(td_ew_binary_loop loop, const td_tensor *a, const td_tensor *b, float p0,
                       float p1, int ndim, const int64_t *shape, td_tensor **out);

/* The math helpers below must be inlined into the loops for those to
 * vectorize; GCC's -O2 heuristics alone leave the bigger ones as calls. */
#ifdef __GNUC__
#define TD_EW_INLINE static inline __attribute__((always_inline))
#else
#define TD_EW_INLINE static inline
#endif

/* a * b + c, fused where the target has FMA (one rounding, one instruction). */
#ifdef __FMA__
#define TD_EW_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define TD_EW_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* c ? a : b without a branch. Loops that compute something costly under a
 * condition vectorize only when the choice is plain bit arithmetic: with a
 * ternary, GCC may sink the costly part into a branch, and (under the default
 * -ftrapping-math) then refuses to if-convert it. */
TD_EW_INLINE float td_ew_select(int c, float a, float b) {
  uint32_t ia, ib, m = (uint32_t)0 - (uint32_t)(c != 0);
  memcpy(&ia, &a, sizeof ia);
  memcpy(&ib, &b, sizeof ib);
  uint32_t r = (ia & m) | (ib & ~m);
  float f;
  memcpy(&f, &r, sizeof f);
  return f;
}

/* exp(x) in float32 as straight-line arithmetic, so that loops calling it
 * vectorize (libm's expf does not without -ffast-math). Within about 1 ulp of
 * the exact result over the whole range (checked exhaustively on a grid);
 * overflows to inf, underflows through the subnormals to 0, keeps NaN. */
TD_EW_INLINE float td_ew_expf(float x) {
  /* Beyond [-104, 89] the result is 0 or inf anyway; NaN becomes -104 here and
   * is put back at the end. */
  float xc = td_ew_select(x > -104.0f, x, -104.0f);
  xc = td_ew_select(xc < 89.0f, xc, 89.0f);
  /* exp(x) = 2^k * exp(r), k = round(x / ln2), |r| <= ln2 / 2, with ln2 split
   * in two so that k * ln2 is exact enough (Cody-Waite). Adding 1.5 * 2^23
   * rounds to an integer, which then sits in the low mantissa bits. */
  const float shifter = 12582912.0f;
  float t = TD_EW_FMA(xc, 1.44269504088896341f, shifter);
  float kf = t - shifter;
  float r = TD_EW_FMA(kf, -0.693145751953125f, xc);
  r = TD_EW_FMA(kf, -1.428606765330187045e-06f, r);
  /* Minimax polynomial for exp(r) on [-ln2/2, ln2/2] (Cephes expf). */
  float p = 1.9875691500e-4f;
  p = TD_EW_FMA(p, r, 1.3981999507e-3f);
  p = TD_EW_FMA(p, r, 8.3334519073e-3f);
  p = TD_EW_FMA(p, r, 4.1665795894e-2f);
  p = TD_EW_FMA(p, r, 1.6666665459e-1f);
  p = TD_EW_FMA(p, r, 5.0000001201e-1f);
  p = TD_EW_FMA(p, r * r, r) + 1.0f;
  /* 2^k for k in [-150, 129] does not fit one float exponent: scale twice. */
  int32_t tb, sb;
  memcpy(&tb, &t, sizeof tb);
  memcpy(&sb, &shifter, sizeof sb);
  int32_t k = tb - sb;
  int32_t k1 = k / 2, k2 = k - k1;
  uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  return td_ew_select(x != x, x, p * s1 * s2);
}

/* log(x), the same way (Cephes logf: x = 2^e * m, m in [sqrt(1/2), sqrt(2)),
 * log(m) by a polynomial in m - 1). Within about 1 ulp of the exact result;
 * log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN. */
TD_EW_INLINE float td_ew_logf(float x) {
  /* Subnormals: scale by 2^25 first so the exponent field is meaningful. */
  const int sub = x < 1.17549435e-38f;
  const float xs = td_ew_select(sub, x * 33554432.0f, x);
  uint32_t ix;
  memcpy(&ix, &xs, sizeof ix);
  int32_t e = (int32_t)(ix >> 23) - 126 - 25 * sub;
  uint32_t mb = (ix & 0x007fffffu) | 0x3f000000u; /* m in [0.5, 1) */
  float m;
  memcpy(&m, &mb, sizeof m);
  const int low = m < 0.707106781f;
  e -= low;
  m = td_ew_select(low, m + m - 1.0f, m - 1.0f);
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = TD_EW_FMA(y, m, -1.1514610310e-1f);
  y = TD_EW_FMA(y, m, 1.1676998740e-1f);
  y = TD_EW_FMA(y, m, -1.2420140846e-1f);
  y = TD_EW_FMA(y, m, 1.4249322787e-1f);
  y = TD_EW_FMA(y, m, -1.6668057665e-1f);
  y = TD_EW_FMA(y, m, 2.0000714765e-1f);
  y = TD_EW_FMA(y, m, -2.4999993993e-1f);
  y = TD_EW_FMA(y, m, 3.3333331174e-1f);
  y = y * m * z;
  const float fe = (float)e;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  float r = m + y + 0.693359375f * fe;
  r = td_ew_select(x == INFINITY, x, r);
  r = td_ew_select(x == 0.0f, -INFINITY, r);
  r = td_ew_select(x < 0.0f, NAN, r);
  return td_ew_select(x != x, x, r);
}

/* tanh(x) (Cephes tanhf): an odd polynomial below |x| = 0.625, where
 * 1 - 2 / (exp(2|x|) + 1) would lose digits to cancellation, that formula
 * above. Within about 2 ulp; tanh(+-inf) = +-1, NaN stays NaN. */
TD_EW_INLINE float td_ew_tanhf(float x) {
  const float a = fabsf(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = TD_EW_FMA(p, z, 2.06390887954e-2f);
  p = TD_EW_FMA(p, z, -5.37397155531e-2f);
  p = TD_EW_FMA(p, z, 1.33314422036e-1f);
  p = TD_EW_FMA(p, z, -3.33332819422e-1f);
  const float small = p * z * x + x;
  const float large = 1.0f - 2.0f / (td_ew_expf(a + a) + 1.0f);
  return copysignf(td_ew_select(a < 0.625f, small, large), x); /* tanh(-0) = -0 */
}

/* The standard normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2, for the exact
 * gelu. With z = x / sqrt 2: for |z| < 1, erf(z) = z * P(z^2); beyond,
 * erfc(|z|) = exp(-z^2) * t * R(t) with t = 1 / |z| (R fitted separately on
 * [1, 2] and [2, inf)), which keeps the left tail accurate instead of taking
 * 1 + erf(z) ~ 1 - 1. z^2 is formed from x exactly (fma), because its rounding
 * would otherwise be amplified by exp. Within about 11 ulp of the exact value
 * (worst near x = -1.4, where Phi is formed as 1/2 + erf(z)/2); coefficients
 * fitted for weighted minimax relative error. Also writes the density
 * phi(x) = exp(-x^2 / 2) / sqrt(2 pi), which it computes on the way. */
TD_EW_INLINE float td_ew_normal_cdf_pdf(float x, float *pdf) {
  const float z = x * 0.707106781f;
  const float a = fabsf(z), w = z * z, t = 1.0f / a;
  float p = 7.853853458e-05f; /* erf(z) / z as a polynomial in z^2 */
  p = TD_EW_FMA(p, w, -8.010191959e-04f);
  p = TD_EW_FMA(p, w, 5.188327748e-03f);
  p = TD_EW_FMA(p, w, -2.685381100e-02f);
  p = TD_EW_FMA(p, w, 1.128358543e-01f);
  p = TD_EW_FMA(p, w, -3.761262596e-01f);
  p = TD_EW_FMA(p, w, 1.128379107e+00f);
  const float small = 0.5f + 0.5f * (z * p);
  float r1 = -1.640418172e-02f; /* exp(z^2) erfc(|z|) / t on |z| in [1, 2] */
  r1 = TD_EW_FMA(r1, t, 1.114274859e-01f);
  r1 = TD_EW_FMA(r1, t, -3.299851418e-01f);
  r1 = TD_EW_FMA(r1, t, 5.418830514e-01f);
  r1 = TD_EW_FMA(r1, t, -4.784169197e-01f);
  r1 = TD_EW_FMA(r1, t, 3.804165125e-02f);
  r1 = TD_EW_FMA(r1, t, 5.610376596e-01f);
  float r2 = 1.005328059e+00f; /* the same for |z| >= 2 */
  r2 = TD_EW_FMA(r2, t, -3.026933908e+00f);
  r2 = TD_EW_FMA(r2, t, 3.726986647e+00f);
  r2 = TD_EW_FMA(r2, t, -2.132053375e+00f);
  r2 = TD_EW_FMA(r2, t, 1.864336729e-01f);
  r2 = TD_EW_FMA(r2, t, 4.034345746e-01f);
  r2 = TD_EW_FMA(r2, t, 1.204974833e-03f);
  r2 = TD_EW_FMA(r2, t, -2.821324766e-01f);
  r2 = TD_EW_FMA(r2, t, 4.590229707e-07f);
  r2 = TD_EW_FMA(r2, t, 5.641895533e-01f);
  const float rt = td_ew_select(t > 0.5f, r1, r2);
  /* Past |x| = 16, exp(-x^2 / 2) is 0 in float32; clamping keeps x * x finite. */
  const float xc = td_ew_select(fabsf(x) > 16.0f, copysignf(16.0f, x), x);
  const float xx = xc * xc;
  const float z2 = 0.5f * xx, z2_lo = 0.5f * fmaf(xc, xc, -xx); /* z^2 = z2 + z2_lo */
  const float gauss = td_ew_expf(-z2) * (1.0f - z2_lo); /* exp(-x^2 / 2) */
  *pdf = gauss * 0.398942280f;                          /* / sqrt(2 pi) */
  const float half_erfc = 0.5f * gauss * (t * rt);
  const float large = td_ew_select(z > 0.0f, 1.0f - half_erfc, half_erfc);
  return td_ew_select(a < 1.0f, small, large);
}

TD_EW_INLINE float td_ew_normal_cdf(float x) {
  float pdf;
  return td_ew_normal_cdf_pdf(x, &pdf);
}

#endif
