/* test_pool.c - max, average and adaptive pooling: values, gradients, every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/grad_manager.h"
#include "functional/conv.h"
#include "functional/elementwise.h"
#include "functional/reduce.h"

static td_tensor *iota(int ndim, const int64_t *shape, float start) {
  td_tensor *t;
  assert_int_equal(td_tensor_empty(TD_FLOAT32, ndim, shape, &t), TD_OK);
  for (int64_t i = 0; i < t->numel; i++)
    td_tensor_f32(t)[i] = start + (float)i;
  return t;
}

static void assert_values(const td_tensor *t, const float *want, int64_t n) {
  assert_int_equal(t->numel, n);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(td_tensor_f32(t)[i], want[i], 1e-5);
}

static void assert_error(td_status st, const char *a, const char *b) {
  assert_int_equal(st, TD_ERR_INVALID_ARGUMENT);
  const char *msg = td_error_message();
  if (!strstr(msg, a) || (b && !strstr(msg, b)))
    fail_msg("message '%s' lacks '%s' / '%s'", msg, a, b ? b : "");
}

static const int64_t s44[] = {1, 1, 4, 4};
static const td_pool2d_params k2 = {{2, 2}, {2, 2}, {0, 0}};
static const td_pool2d_params k3s2p1 = {{3, 3}, {2, 2}, {1, 1}};

static void test_max_pool_values(void **state) {
  (void)state;
  td_tensor *x = iota(4, s44, 1), *y;
  assert_int_equal(td_max_pool2d(x, &k2, &y), TD_OK);
  float want[] = {6, 8, 14, 16};
  assert_values(y, want, 4);
  td_tensor_release(y);
  /* Padding is -inf: the corner window sees rows 0-1, columns 0-1 only. */
  assert_int_equal(td_max_pool2d(x, &k3s2p1, &y), TD_OK);
  assert_values(y, want, 4);
  td_tensor_release(y);
  /* Unbatched [C, H, W] and stride != kernel. */
  int64_t s3[] = {1, 3, 5};
  td_tensor *x3 = iota(3, s3, 0);
  td_pool2d_params p = {{2, 2}, {1, 3}, {0, 0}};
  assert_int_equal(td_max_pool2d(x3, &p, &y), TD_OK);
  int64_t want_shape[] = {1, 2, 2};
  assert_true(td_shape_equal(y->ndim, y->shape, 3, want_shape));
  float want3[] = {6, 9, 11, 14};
  assert_values(y, want3, 4);
  td_tensor_release(y), td_tensor_release(x3);
  /* A NaN wins its window, as in PyTorch. */
  td_tensor_f32(x)[5] = NAN;
  assert_int_equal(td_max_pool2d(x, &k2, &y), TD_OK);
  assert_true(isnan(td_tensor_f32(y)[0]));
  assert_float_equal(td_tensor_f32(y)[1], 8, 0);
  td_tensor_release(y), td_tensor_release(x);
}

/* The rule every max pool path must keep, written plainly: for each window
 * in scan order, the first maximum wins and a NaN always replaces. */
static void reference_max_pool(const float *x, int64_t planes, int64_t h, int64_t w,
                               const td_pool2d_params *p, float *y, int32_t *idx) {
  int64_t oh = (h + 2 * p->padding[0] - p->kernel[0]) / p->stride[0] + 1;
  int64_t ow = (w + 2 * p->padding[1] - p->kernel[1]) / p->stride[1] + 1;
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t oy = 0; oy < oh; oy++)
      for (int64_t ox = 0; ox < ow; ox++) {
        float m = -INFINITY;
        int64_t mi = -1;
        for (int64_t i = 0; i < p->kernel[0]; i++)
          for (int64_t j = 0; j < p->kernel[1]; j++) {
            int64_t iy = oy * p->stride[0] - p->padding[0] + i;
            int64_t ix = ox * p->stride[1] - p->padding[1] + j;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            float v = x[(pl * h + iy) * w + ix];
            if (mi < 0 || v > m || isnan(v)) m = v, mi = iy * w + ix;
          }
        y[(pl * oh + oy) * ow + ox] = m;
        idx[(pl * oh + oy) * ow + ox] = (int32_t)mi;
      }
}

/* Big enough to be split over threads and to run the 8-wide 2x2 kernel,
 * with a tail column, many ties (values from a set of 5) and NaNs: values
 * and the positions the gradient goes to match the plain rule exactly. */
static void test_max_pool_matches_reference(void **state) {
  (void)state;
  const td_pool2d_params sets[] = {k2, k3s2p1, {{3, 3}, {1, 1}, {0, 0}}};
  int64_t shape[] = {4, 8, 46, 45};
  td_tensor *x = iota(4, shape, 0);
  float *xp = td_tensor_f32(x);
  uint32_t r = 12345;
  for (int64_t i = 0; i < x->numel; i++) {
    r = r * 1664525u + 1013904223u;
    xp[i] = (r >> 28) % 97 == 0 ? NAN : (float)((r >> 16) % 5);
  }
  for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) {
    td_grad_manager *gm;
    td_tensor *y, *loss;
    assert_int_equal(td_gm_create(&gm), TD_OK);
    assert_int_equal(td_gm_attach(gm, x), TD_OK);
    assert_int_equal(td_gm_record(gm), TD_OK);
    assert_int_equal(td_max_pool2d(x, &sets[s], &y), TD_OK);
    float *want = malloc(sizeof(float) * (size_t)y->numel);
    int32_t *want_idx = malloc(sizeof(int32_t) * (size_t)y->numel);
    reference_max_pool(xp, 32, 46, 45, &sets[s], want, want_idx);
    for (int64_t i = 0; i < y->numel; i++) {
      float got = td_tensor_f32(y)[i];
      if (!(got == want[i] || (isnan(got) && isnan(want[i]))))
        fail_msg("set %zu output %lld: got %g, want %g", s, (long long)i, got, want[i]);
    }
    /* The gradient of sum(y * k) puts k at each output's chosen position. */
    td_tensor *k = iota(y->ndim, y->shape, 1), *yk;
    assert_int_equal(td_mul(y, k, &yk), TD_OK);
    assert_int_equal(td_sum(yk, NULL, 0, false, &loss), TD_OK);
    assert_int_equal(td_gm_backward(gm, loss, NULL), TD_OK);
    float *expect = calloc((size_t)x->numel, sizeof(float));
    int64_t ohw = y->shape[2] * y->shape[3];
    for (int64_t i = 0; i < y->numel; i++)
      expect[i / ohw * 46 * 45 + want_idx[i]] += (float)(i + 1);
    const float *g = td_tensor_f32(x->grad);
    for (int64_t i = 0; i < x->numel; i++)
      if (g[i] != expect[i])
        fail_msg("set %zu input %lld: gradient %g, want %g", s, (long long)i, g[i], expect[i]);
    free(expect), free(want), free(want_idx);
    td_tensor_release(k), td_tensor_release(yk), td_tensor_release(loss), td_tensor_release(y);
    td_gm_destroy(gm);
    td_tensor_release(x->grad);
    x->grad = NULL;
  }
  td_tensor_release(x);
}

static void test_max_pool_gradient(void **state) {
  (void)state;
  /* Ties: the gradient goes to the first maximum in scan order. */
  int64_t s[] = {1, 1, 2, 4};
  float v[] = {1, 5, 3, 3, 5, 0, 3, 3};
  td_tensor *x, *y;
  assert_int_equal(td_tensor_from_data(TD_FLOAT32, 4, s, v, &x), TD_OK);
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_max_pool2d(x, &k2, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  float want[] = {0, 1, 1, 0, 0, 0, 0, 0};
  assert_values(x->grad, want, 8);
  td_tensor_release(y), td_gm_destroy(gm), td_tensor_release(x);
}

static void test_avg_pool_values_and_gradient(void **state) {
  (void)state;
  td_tensor *x = iota(4, s44, 1), *y;
  assert_int_equal(td_avg_pool2d(x, &k2, &y), TD_OK);
  float want[] = {3.5f, 5.5f, 11.5f, 13.5f};
  assert_values(y, want, 4);
  td_tensor_release(y);
  /* count_include_pad: the padded corner window still divides by 9. */
  assert_int_equal(td_avg_pool2d(x, &k3s2p1, &y), TD_OK);
  float want_pad[] = {14.0f / 9, 30.0f / 9, 57.0f / 9, 99.0f / 9};
  assert_values(y, want_pad, 4);
  td_tensor_release(y);
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_avg_pool2d(x, &k3s2p1, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  /* Windows overlap on row/column 1: those pixels collect from two or four. */
  float n = 1.0f / 9;
  float want_grad[] = {n, 2 * n, n, n, 2 * n, 4 * n, 2 * n, 2 * n, n, 2 * n, n, n, n, 2 * n, n, n};
  assert_values(x->grad, want_grad, 16);
  td_tensor_release(y), td_gm_destroy(gm), td_tensor_release(x);
}

static void test_adaptive_avg_pool(void **state) {
  (void)state;
  /* 5x7 -> 3x2: row bins [0,2) [1,4) [3,5), column bins [0,4) [3,7). */
  int64_t s[] = {1, 1, 5, 7};
  td_tensor *x = iota(4, s, 0), *y;
  assert_int_equal(td_adaptive_avg_pool2d(x, 3, 2, &y), TD_OK);
  float want[6];
  int rb[3][2] = {{0, 2}, {1, 4}, {3, 5}}, cb[2][2] = {{0, 4}, {3, 7}};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      float sum = 0;
      for (int r = rb[i][0]; r < rb[i][1]; r++)
        for (int c = cb[j][0]; c < cb[j][1]; c++)
          sum += (float)(r * 7 + c);
      want[i * 2 + j] = sum / (float)((rb[i][1] - rb[i][0]) * (cb[j][1] - cb[j][0]));
    }
  assert_values(y, want, 6);
  td_tensor_release(y);
  assert_int_equal(td_adaptive_avg_pool2d(x, 1, 1, &y), TD_OK);
  float mean[] = {17};
  assert_values(y, mean, 1);
  td_tensor_release(y);
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_adaptive_avg_pool2d(x, 1, 1, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  for (int i = 0; i < 35; i++)
    assert_float_equal(td_tensor_f32(x->grad)[i], 1.0f / 35, 1e-7);
  td_tensor_release(y), td_gm_destroy(gm), td_tensor_release(x);
}

static void test_pool_errors(void **state) {
  (void)state;
  td_tensor *x = iota(4, s44, 0), *y = NULL, *xi, *x2, *x0;
  assert_int_equal(td_tensor_zeros(TD_INT64, 4, s44, &xi), TD_OK);
  assert_error(td_max_pool2d(xi, &k2, &y), "max_pool2d: expected float32 input", "int64");
  assert_null(y);
  assert_error(td_avg_pool2d(xi, &k2, &y), "avg_pool2d: expected float32 input", "int64");
  assert_error(td_adaptive_avg_pool2d(xi, 1, 1, &y), "adaptive_avg_pool2d: expected float32",
               "int64");
  int64_t s2[] = {4, 4}, sz[] = {2, 0, 4, 4};
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, s2, &x2), TD_OK);
  assert_error(td_max_pool2d(x2, &k2, &y), "max_pool2d: expected a 3-d to 4-d input", "[4,4]");
  assert_error(td_adaptive_avg_pool2d(x2, 1, 1, &y), "adaptive_avg_pool2d: expected a 3-d",
               "[4,4]");
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 4, sz, &x0), TD_OK);
  assert_error(td_avg_pool2d(x0, &k2, &y), "avg_pool2d: expected non-empty channel and spatial",
               "[2,0,4,4]");
  td_pool2d_params p = {{0, 2}, {2, 2}, {0, 0}};
  assert_error(td_max_pool2d(x, &p, &y), "max_pool2d: kernel (0,2)", "must be >= 1");
  p = (td_pool2d_params){{2, 2}, {2, 0}, {0, 0}};
  assert_error(td_avg_pool2d(x, &p, &y), "avg_pool2d:", "stride (2,0)");
  p = (td_pool2d_params){{2, 2}, {2, 2}, {0, -1}};
  assert_error(td_max_pool2d(x, &p, &y), "max_pool2d:", "padding (0,-1) >= 0");
  p = (td_pool2d_params){{3, 3}, {1, 1}, {2, 0}};
  assert_error(td_max_pool2d(x, &p, &y),
               "max_pool2d: padding (2,0) must be at most half the kernel (3,3)", NULL);
  p = (td_pool2d_params){{5, 2}, {1, 1}, {0, 0}};
  assert_error(td_avg_pool2d(x, &p, &y), "avg_pool2d: output size is too small",
               "input [1,1,4,4] with kernel (5,2)");
  assert_error(td_adaptive_avg_pool2d(x, 0, 2, &y),
               "adaptive_avg_pool2d: output size must be >= 1, got (0,2)", NULL);
  assert_error(td_max_pool2d(x, NULL, &y), "max_pool2d: params are NULL", NULL);
  assert_error(td_avg_pool2d(x, NULL, &y), "avg_pool2d: params are NULL", NULL);
  assert_error(td_max_pool2d(NULL, &k2, &y), "max_pool2d: input is NULL", NULL);
  /* Huge planes (stride-0 views, no memory) are refused before any work. */
  int64_t one[] = {1, 1, 1, 1}, wide[] = {1, 1, 2, (int64_t)1 << 31}, big[] = {1, 1, 65536, 65536};
  td_tensor *o, *hw, *hb;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 4, one, &o), TD_OK);
  assert_int_equal(td_tensor_expand(o, 4, wide, &hw), TD_OK);
  assert_int_equal(td_tensor_expand(o, 4, big, &hb), TD_OK);
  assert_error(td_adaptive_avg_pool2d(hw, 1, 1, &y),
               "adaptive_avg_pool2d: spatial dims over 2^31 are not supported",
               "[1,1,2,2147483648]");
  assert_error(td_max_pool2d(hb, &k2, &y),
               "max_pool2d: planes over 2^31 elements are not supported", "[1,1,65536,65536]");
  td_tensor_release(o), td_tensor_release(hw), td_tensor_release(hb);
  td_tensor_release(x), td_tensor_release(xi), td_tensor_release(x2), td_tensor_release(x0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_max_pool_values),
      cmocka_unit_test(test_max_pool_gradient),
      cmocka_unit_test(test_max_pool_matches_reference),
      cmocka_unit_test(test_avg_pool_values_and_gradient),
      cmocka_unit_test(test_adaptive_avg_pool),
      cmocka_unit_test(test_pool_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
