/* test_activation.c - activations and softmax: values, kink conventions, axes, errors, math. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "common/test_util.h"
#include "functional/elementwise_map.h"
#include "functional/functional.h"

/* ---- helpers ------------------------------------------------------------ */

static td_status leaky_op(td_tensor *x, td_tensor **y) { return td_leaky_relu(x, 0.1f, y); }
static td_status softmax_last(td_tensor *x, td_tensor **y) { return td_softmax(x, -1, y); }
static td_status softmax_first(td_tensor *x, td_tensor **y) { return td_softmax(x, 0, y); }
static td_status log_softmax_last(td_tensor *x, td_tensor **y) {
  return td_log_softmax(x, -1, y);
}
static td_status log_softmax_first(td_tensor *x, td_tensor **y) {
  return td_log_softmax(x, 0, y);
}

/* ---- pointwise ------------------------------------------------------------ */

static void test_pointwise_values(void **state) {
  (void)state;
  int64_t s6[] = {6};
  const float xv[] = {-2, -0.0f, 0, 1, NAN, -INFINITY};
  td_tensor *x = tensor_f32(1, s6, xv), *y;
  assert_int_equal(td_relu(x, &y), TD_OK); /* -0 and NaN pass, as torch.relu */
  assert_values_rel(y, (const float[]){0, -0.0f, 0, 1, NAN, 0}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_leaky_relu(x, 0.1f, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.2f, -0.0f, 0, 1, NAN, -INFINITY}, 6, 1e-7f);
  td_tensor_release(y);
  assert_int_equal(td_sigmoid(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){0.119202922f, 0.5f, 0.5f, 0.731058579f, NAN, 0}, 6, 2e-7f);
  td_tensor_release(y);
  assert_int_equal(td_tanh(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.964027580f, -0.0f, 0, 0.761594156f, NAN, -1}, 6, 2e-7f);
  td_tensor_release(y);
  /* gelu(x) = x Phi(x); gelu(-inf) = -inf * 0 = NaN, as PyTorch. */
  assert_int_equal(td_gelu(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.0455002639f, -0.0f, 0, 0.841344746f, NAN, NAN}, 6, 3e-7f);
  td_tensor_release(y);
  assert_int_equal(td_silu(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.238405844f, -0.0f, 0, 0.731058579f, NAN, NAN}, 6, 2e-7f);
  td_tensor_release(y);
  td_tensor_release(x);
  /* Saturation: no overflow to NaN at the extremes. */
  const float big[] = {-100, 100, -1e30f, 1e30f, -30, 30};
  x = tensor_f32(1, s6, big);
  assert_int_equal(td_sigmoid(x, &y), TD_OK);
  /* exp(100) overflows float32, so sigmoid(-100) is 0, as in PyTorch's float32. */
  assert_values_rel(y, (const float[]){0, 1, 0, 1, 9.35762297e-14f, 1}, 6, 1e-6f);
  td_tensor_release(y);
  assert_int_equal(td_tanh(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-1, 1, -1, 1, -1, 1}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_gelu(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.0f, 100, -0.0f, 1e30f, -0.0f, 30}, 6, 1e-7f);
  td_tensor_release(y);
  td_tensor_release(x);
}

static void test_pointwise_gradients(void **state) {
  (void)state;
  int64_t s5[] = {5};
  const float xv[] = {-2, -0.5f, 0, 0.5f, 2};
  td_tensor *x = tensor_f32(1, s5, xv), *g;
  g = unary_grad(td_relu, x, NULL); /* 0 at the kink, as PyTorch */
  assert_values_rel(g, (const float[]){0, 0, 0, 1, 1}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(leaky_op, x, NULL); /* the slope at the kink */
  assert_values_rel(g, (const float[]){0.1f, 0.1f, 0.1f, 1, 1}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(td_sigmoid, x, NULL); /* s (1 - s), from the output as PyTorch */
  assert_values_rel(
      g, (const float[]){0.104993585f, 0.235003712f, 0.25f, 0.235003712f, 0.104993585f}, 5, 1e-6f);
  td_tensor_release(g);
  g = unary_grad(td_tanh, x, NULL); /* 1 - tanh^2 */
  assert_values_rel(g, (const float[]){0.0706508249f, 0.786447733f, 1, 0.786447733f, 0.0706508249f},
                    5, 3e-7f);
  td_tensor_release(g);
  g = unary_grad(td_gelu, x, NULL); /* Phi(x) + x phi(x) */
  assert_values_rel(
      g, (const float[]){-0.0852318011f, 0.132504875f, 0.5f, 0.867495125f, 1.0852318f}, 5, 3e-7f);
  td_tensor_release(g);
  g = unary_grad(td_silu, x, NULL); /* s (1 + x (1 - s)) */
  assert_values_rel(
      g, (const float[]){-0.0907842488f, 0.260038813f, 0.5f, 0.739961187f, 1.09078425f}, 5, 3e-7f);
  td_tensor_release(g);
  td_tensor_release(x);
}

/* ---- softmax / log_softmax --------------------------------------------------- */

static void test_softmax_values(void **state) {
  (void)state;
  int64_t s23[] = {2, 3};
  /* Row 1 is row 0 shifted by 1000: the max-subtracted form gives the same. */
  const float xv[] = {1, 2, 3, 1001, 1002, 1003};
  td_tensor *x = tensor_f32(2, s23, xv), *y;
  assert_int_equal(td_softmax(x, -1, &y), TD_OK);
  const float p[] = {0.0900305732f, 0.244728471f, 0.665240956f};
  assert_values_rel(y, (const float[]){p[0], p[1], p[2], p[0], p[1], p[2]}, 6, 2e-7f);
  td_tensor_release(y);
  assert_int_equal(td_log_softmax(x, 1, &y), TD_OK);
  const float l[] = {-2.40760596f, -1.40760596f, -0.407605964f};
  assert_values_rel(y, (const float[]){l[0], l[1], l[2], l[0], l[1], l[2]}, 6, 2e-7f);
  td_tensor_release(y);
  /* Along axis 0 the columns are [1, 1001] etc.: e^-1000 underflows to 0. */
  assert_int_equal(td_softmax(x, 0, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 0, 0, 1, 1, 1}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_log_softmax(x, -2, &y), TD_OK);
  assert_values_rel(y, (const float[]){-1000, -1000, -1000, 0, 0, 0}, 6, 0);
  td_tensor_release(y);
  td_tensor_release(x);
  /* -inf entries get probability 0 (log -inf); a NaN spreads over its row. */
  const float mv[] = {-INFINITY, 0, 0, NAN, 1, 2};
  x = tensor_f32(2, s23, mv);
  assert_int_equal(td_softmax(x, -1, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 0.5f, 0.5f, NAN, NAN, NAN}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_log_softmax(x, -1, &y), TD_OK);
  assert_values_rel(y, (const float[]){-INFINITY, -0.693147181f, -0.693147181f, NAN, NAN, NAN}, 6,
                    1e-7f);
  td_tensor_release(y);
  td_tensor_release(x);
}

/* softmax along axis k of a [2,3,4] tensor equals softmax of the rows of its
 * permuted copy: checks the interleaved (inner > 1) kernels against the row
 * kernel, for every axis, with a strided input too. */
static void test_softmax_every_axis(void **state) {
  (void)state;
  int64_t s[] = {2, 3, 4};
  float xv[24];
  for (int i = 0; i < 24; i++) xv[i] = sinf((float)i * 1.7f) * 3;
  td_tensor *x = tensor_f32(3, s, xv);
  for (int log_out = 0; log_out < 2; log_out++) {
    for (int axis = 0; axis < 3; axis++) {
      td_tensor *y, *xp, *xc, *yr, *yrp, *yrc;
      int perm[3] = {0, 1, 2};
      perm[axis] = 2, perm[2] = axis; /* move the axis last */
      assert_int_equal(log_out ? td_log_softmax(x, axis, &y) : td_softmax(x, axis, &y), TD_OK);
      assert_int_equal(td_tensor_permute(x, perm, &xp), TD_OK);
      assert_int_equal(td_tensor_clone(xp, &xc), TD_OK);
      assert_int_equal(log_out ? td_log_softmax(xc, -1, &yr) : td_softmax(xc, -1, &yr), TD_OK);
      assert_int_equal(td_tensor_permute(yr, perm, &yrp), TD_OK);
      assert_int_equal(td_tensor_clone(yrp, &yrc), TD_OK);
      assert_values_rel(y, td_tensor_f32(yrc), 24, 1e-7f);
      td_tensor_release(y);
      /* The strided view xp, softmaxed along its last axis, gives yr too. */
      assert_int_equal(log_out ? td_log_softmax(xp, 2, &y) : td_softmax(xp, 2, &y), TD_OK);
      assert_values_rel(y, td_tensor_f32(yr), 24, 1e-7f);
      td_tensor_release(y);
      release_tensors(xp, xc, yr, yrp, yrc);
    }
  }
  td_tensor_release(x);
}

static void test_softmax_gradients(void **state) {
  (void)state;
  int64_t s[] = {1, 3}, c[] = {3, 2};
  const float xv[] = {1, 2, 3}, dv[] = {1, 0, 0};
  td_tensor *x = tensor_f32(2, s, xv), *dy = tensor_f32(2, s, dv), *g;
  /* d softmax_0 / dx = p0 (e0 - p) */
  const float p[] = {0.0900305732f, 0.244728471f, 0.665240956f};
  g = unary_grad(softmax_last, x, dy);
  assert_values_rel(g, (const float[]){p[0] * (1 - p[0]), -p[0] * p[1], -p[0] * p[2]}, 3, 2e-7f);
  td_tensor_release(g);
  /* d log_softmax_0 / dx = e0 - p */
  g = unary_grad(log_softmax_last, x, dy);
  assert_values_rel(g, (const float[]){1 - p[0], -p[1], -p[2]}, 3, 2e-7f);
  td_tensor_release(g);
  /* Along axis 0 of [3,2] (the interleaved kernel): two equal columns, but
   * dy selects output 0 in column 0 and twice output 1 in column 1. */
  const float x2[] = {1, 1, 2, 2, 3, 3}, d2[] = {1, 0, 0, 2, 0, 0};
  td_tensor *xc = tensor_f32(2, c, x2), *dc = tensor_f32(2, c, d2);
  g = unary_grad(softmax_first, xc, dc);
  assert_values_rel(g,
                    (const float[]){p[0] * (1 - p[0]), -2 * p[0] * p[1], -p[0] * p[1],
                                    2 * p[1] * (1 - p[1]), -p[0] * p[2], -2 * p[1] * p[2]},
                    6, 2e-7f);
  td_tensor_release(g);
  g = unary_grad(log_softmax_first, xc, dc);
  assert_values_rel(
      g, (const float[]){1 - p[0], -2 * p[0], -p[1], 2 * (1 - p[1]), -p[2], -2 * p[2]}, 6, 2e-7f);
  td_tensor_release(g);
  /* With dy = ones, softmax's gradient is 0 (the outputs always sum to 1). */
  g = unary_grad(softmax_last, x, NULL);
  assert_values_rel(g, (const float[]){0, 0, 0}, 3, 1e-7f);
  td_tensor_release(g);
  release_tensors(x, dy, xc, dc);
}

static void test_softmax_edge_shapes(void **state) {
  (void)state;
  const float v = 5;
  int64_t scalar[1] = {0}, empty_rows[] = {0, 4}, empty_axis[] = {3, 0};
  td_tensor *x = tensor_f32(0, scalar, &v), *y;
  assert_int_equal(td_softmax(x, 0, &y), TD_OK); /* a 0-d softmax is 1 */
  assert_values_rel(y, (const float[]){1}, 1, 0);
  td_tensor_release(y);
  assert_int_equal(td_log_softmax(x, -1, &y), TD_OK);
  assert_values_rel(y, (const float[]){0}, 1, 0);
  td_tensor_release(y);
  td_tensor_release(x);
  assert_int_equal(td_tensor_empty(TD_FLOAT32, 2, empty_rows, &x), TD_OK);
  assert_int_equal(td_softmax(x, 1, &y), TD_OK);
  assert_int_equal(y->numel, 0);
  td_tensor_release(y);
  assert_int_equal(td_softmax(x, 0, &y), TD_OK);
  assert_int_equal(y->shape[1], 4);
  td_tensor_release(y);
  td_tensor_release(x);
  assert_int_equal(td_tensor_empty(TD_FLOAT32, 2, empty_axis, &x), TD_OK);
  assert_int_equal(td_log_softmax(x, 1, &y), TD_OK);
  assert_int_equal(y->shape[0], 3);
  assert_int_equal(y->numel, 0);
  td_tensor_release(y);
  assert_int_equal(td_softmax(x, 0, &y), TD_OK); /* nothing inside each softmax */
  assert_int_equal(y->numel, 0);
  td_tensor_release(y);
  td_tensor_release(x);
}

/* Backward must accept an output gradient that is any strided view. */
static void test_strided_output_gradient(void **state) {
  (void)state;
  int64_t s[] = {3, 4}, st[] = {4, 3};
  float xv[12], dv[12];
  for (int i = 0; i < 12; i++) xv[i] = sinf((float)i) * 2, dv[i] = cosf((float)i * 0.7f);
  td_tensor *x = tensor_f32(2, s, xv), *d = tensor_f32(2, st, dv), *dy_view, *dy_copy;
  assert_int_equal(td_tensor_transpose(d, 0, 1, &dy_view), TD_OK);
  assert_int_equal(td_tensor_clone(dy_view, &dy_copy), TD_OK);
  unary_fn ops[] = {td_relu, leaky_op, td_sigmoid, td_tanh, td_gelu, td_silu, softmax_first,
                    softmax_last, log_softmax_first, log_softmax_last};
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    td_tensor *g_view = unary_grad(ops[k], x, dy_view), *g_copy = unary_grad(ops[k], x, dy_copy);
    assert_values_rel(g_view, td_tensor_f32(g_copy), 12, 0);
    td_tensor_release(g_view);
    td_tensor_release(g_copy);
  }
  release_tensors(x, d, dy_view, dy_copy);
}

/* ---- errors ------------------------------------------------------------------- */

static void test_errors(void **state) {
  (void)state;
  int64_t s[] = {2, 3, 4};
  td_tensor *i, *f, *y = (td_tensor *)0x1;
  assert_int_equal(td_tensor_zeros(TD_INT64, 3, s, &i), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 3, s, &f), TD_OK);
  assert_error(td_relu(i, &y), TD_ERR_INVALID_ARGUMENT, "relu:", "int64 [2,3,4]");
  assert_null(y);
  assert_error(td_leaky_relu(i, 0.1f, &y), TD_ERR_INVALID_ARGUMENT, "leaky_relu:", "int64");
  assert_error(td_sigmoid(i, &y), TD_ERR_INVALID_ARGUMENT, "sigmoid:", "int64");
  assert_error(td_tanh(i, &y), TD_ERR_INVALID_ARGUMENT, "tanh:", "int64");
  assert_error(td_gelu(i, &y), TD_ERR_INVALID_ARGUMENT, "gelu:", "int64");
  assert_error(td_silu(i, &y), TD_ERR_INVALID_ARGUMENT, "silu:", "int64");
  assert_error(td_softmax(i, 0, &y), TD_ERR_INVALID_ARGUMENT, "softmax:", "int64 [2,3,4]");
  assert_error(td_log_softmax(i, 0, &y), TD_ERR_INVALID_ARGUMENT, "log_softmax:", "int64");
  assert_error(td_softmax(f, 3, &y), TD_ERR_INVALID_ARGUMENT, "softmax:", "axis 3");
  assert_null(y);
  assert_error(td_softmax(f, -4, &y), TD_ERR_INVALID_ARGUMENT, "softmax:", "axis -4");
  assert_error(td_log_softmax(f, 7, &y), TD_ERR_INVALID_ARGUMENT, "log_softmax:", "3 dimensions");
  td_tensor_release(i);
  td_tensor_release(f);
}

/* ---- the vectorizable math helpers against libm in double -------------------- */

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static float ew_tanh(float x) { return td_ew_tanhf(x); }
static float ew_cdf(float x) { return td_ew_normal_cdf(x); }

static void test_math_helpers(void **state) {
  (void)state;
  /* tiny results are skipped: a relative bound means little there */
  assert_ulp_sweep(ew_tanh, tanh, 2, 1e-37);
  assert_ulp_sweep(ew_cdf, normal_cdf, 12, 1e-37);
  assert_true(td_ew_normal_cdf(-INFINITY) == 0 && td_ew_normal_cdf(INFINITY) == 1);
  assert_true(td_ew_normal_cdf(-1e30f) == 0 && td_ew_normal_cdf(1e30f) == 1);
  assert_true(signbit(td_ew_tanhf(-0.0f)));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pointwise_values),   cmocka_unit_test(test_pointwise_gradients),
      cmocka_unit_test(test_softmax_values),     cmocka_unit_test(test_softmax_every_axis),
      cmocka_unit_test(test_softmax_gradients),  cmocka_unit_test(test_softmax_edge_shapes),
      cmocka_unit_test(test_strided_output_gradient), cmocka_unit_test(test_errors),             cmocka_unit_test(test_math_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
