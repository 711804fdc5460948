/* test_norm.c - batch_norm and layer_norm: hand-checked values, PyTorch's running-statistics
 * update, gradients through the GradManager, and every error path. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/norm.h"
#include "tensor/random.h"

static void assert_values(const td_tensor *t, const float *want, int64_t n, float tol) {
  assert_int_equal(t->numel, n);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(td_tensor_f32(t)[i], want[i], tol);
}

/* ---- batch_norm ------------------------------------------------------------- */

static void test_batch_norm_train_values_and_running_update(void **state) {
  (void)state;
  /* channel 0: {1, 3} mean 2, biased var 1; channel 1: {2, 6} mean 4, biased var 4 */
  int64_t s[] = {2, 2};
  float xd[] = {1, 2, 3, 6};
  td_tensor *x = tensor_f32(2, s, xd), *w = vec_f32(2, (float[]){1, 2}),
            *b = vec_f32(2, (float[]){0, 1});
  td_tensor *rm = vec_f32(2, (float[]){0.5f, -1}), *rv = vec_f32(2, (float[]){2, 3}), *y;
  uint64_t vm = td_tensor_version(rm), vv = td_tensor_version(rv);
  td_batch_norm_params p = {
      .training = true, .momentum = 0.1f, .eps = 0, .running_mean = rm, .running_var = rv};
  assert_int_equal(td_batch_norm(x, w, b, &p, &y), TD_OK);
  assert_values(y, (float[]){-1, -1, 1, 3}, 4, 1e-6f);
  /* PyTorch: running = 0.9 * running + 0.1 * batch, variance unbiased (x 2/1). */
  assert_float_equal(td_tensor_f32(rm)[0], 0.9 * 0.5 + 0.1 * 2, 1e-6);
  assert_float_equal(td_tensor_f32(rm)[1], 0.9 * -1 + 0.1 * 4, 1e-6);
  assert_float_equal(td_tensor_f32(rv)[0], 0.9 * 2 + 0.1 * 2, 1e-6);
  assert_float_equal(td_tensor_f32(rv)[1], 0.9 * 3 + 0.1 * 8, 1e-6);
  assert_true(td_tensor_version(rm) > vm);
  assert_true(td_tensor_version(rv) > vv);
  td_tensor_release(y);
  td_tensor_release(x);
  td_tensor_release(w);
  td_tensor_release(b);
  td_tensor_release(rm);
  td_tensor_release(rv);
}

/* The update for 3-d and 4-d inputs against the formulas computed here in
 * double: mean over (N, spatial), unbiased variance n/(n-1). */
static void check_running_update(int ndim, const int64_t *shape, float momentum) {
  td_rng rng;
  td_rng_seed(&rng, 7);
  td_tensor *x, *y, *rm, *rv;
  assert_int_equal(td_tensor_rand_normal(&rng, ndim, shape, 0.5f, 2.0f, &x), TD_OK);
  const int64_t C = shape[1];
  assert_int_equal(td_tensor_rand_uniform(&rng, 1, &C, -1, 1, &rm), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 1, &C, 0.5f, 2, &rv), TD_OK);
  float rm0[8], rv0[8];
  memcpy(rm0, td_tensor_f32(rm), sizeof(float) * (size_t)C);
  memcpy(rv0, td_tensor_f32(rv), sizeof(float) * (size_t)C);
  td_batch_norm_params p = {
      .training = true, .momentum = momentum, .eps = 1e-5f, .running_mean = rm, .running_var = rv};
  assert_int_equal(td_batch_norm(x, NULL, NULL, &p, &y), TD_OK);
  int64_t S = 1;
  for (int i = 2; i < ndim; i++)
    S *= shape[i];
  const int64_t n = shape[0] * S;
  for (int64_t c = 0; c < C; c++) {
    double sum = 0, ss = 0;
    for (int64_t i = 0; i < shape[0]; i++)
      for (int64_t k = 0; k < S; k++)
        sum += td_tensor_f32(x)[(i * C + c) * S + k];
    double mean = sum / (double)n;
    for (int64_t i = 0; i < shape[0]; i++)
      for (int64_t k = 0; k < S; k++) {
        double d = td_tensor_f32(x)[(i * C + c) * S + k] - mean;
        ss += d * d;
      }
    double unbiased = ss / (double)(n - 1);
    assert_float_equal(td_tensor_f32(rm)[c], (1 - momentum) * rm0[c] + momentum * mean, 1e-5);
    assert_float_equal(td_tensor_f32(rv)[c], (1 - momentum) * rv0[c] + momentum * unbiased, 1e-5);
    /* and the output is normalised with the biased variance */
    double invstd = 1 / sqrt(ss / (double)n + 1e-5);
    assert_float_equal(td_tensor_f32(y)[c * S], (td_tensor_f32(x)[c * S] - mean) * invstd, 1e-5);
  }
  td_tensor_release(x);
  td_tensor_release(y);
  td_tensor_release(rm);
  td_tensor_release(rv);
}

static void test_batch_norm_running_update_matches_pytorch(void **state) {
  (void)state;
  int64_t s3[] = {3, 4, 5}, s4[] = {2, 3, 4, 5}, s2[] = {6, 8};
  check_running_update(3, s3, 0.1f);
  check_running_update(4, s4, 0.3f);
  check_running_update(2, s2, 1.0f);
}

static void test_batch_norm_eval_uses_running_stats(void **state) {
  (void)state;
  int64_t s[] = {2, 1, 2};
  td_tensor *x = tensor_f32(3, s, (float[]){1, 3, 5, -1}), *y;
  td_tensor *rm = vec_f32(1, (float[]){1}), *rv = vec_f32(1, (float[]){4});
  uint64_t vm = td_tensor_version(rm);
  td_batch_norm_params p = {
      .training = false, .momentum = 0.1f, .eps = 0, .running_mean = rm, .running_var = rv};
  assert_int_equal(td_batch_norm(x, NULL, NULL, &p, &y), TD_OK);
  assert_values(y, (float[]){0, 1, 2, -1}, 4, 0);
  assert_float_equal(td_tensor_f32(rm)[0], 1, 0);
  assert_float_equal(td_tensor_f32(rv)[0], 4, 0);
  assert_int_equal(td_tensor_version(rm), vm);
  td_tensor_release(y);
  /* Without running statistics: the batch's, even in eval. mean 2, var 5 */
  p.running_mean = p.running_var = NULL;
  assert_int_equal(td_batch_norm(x, NULL, NULL, &p, &y), TD_OK);
  const float r = 1 / sqrtf(5);
  assert_values(y, (float[]){-r, r, 3 * r, -3 * r}, 4, 1e-6f);
  td_tensor_release(y);
  td_tensor_release(x);
  td_tensor_release(rm);
  td_tensor_release(rv);
}

/* Records batch_norm(x, w, b) and backpropagates dy into their grads. */
static void batch_norm_backward(td_grad_manager *gm, td_tensor *x, td_tensor *w, td_tensor *b,
                                const td_batch_norm_params *p, td_tensor *dy) {
  td_tensor *y;
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_batch_norm(x, w, b, p, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  td_tensor_release(y);
}

static void test_batch_norm_gradients(void **state) {
  (void)state;
  int64_t s[] = {2, 1};
  td_tensor *x = tensor_f32(2, s, (float[]){1, 5}), *w = vec_f32(1, (float[]){3}),
            *b = vec_f32(1, (float[]){0});
  td_tensor *rm = vec_f32(1, (float[]){1}), *rv = vec_f32(1, (float[]){4}),
            *dy = tensor_f32(2, s, (float[]){1, 2});
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_attach(gm, w), TD_OK);
  assert_int_equal(td_gm_attach(gm, b), TD_OK);

  /* Eval: affine only. gx = w / sqrt(rv) * dy = 1.5 dy; xhat = {0, 2} */
  td_batch_norm_params p = {
      .training = false, .momentum = 0.1f, .eps = 0, .running_mean = rm, .running_var = rv};
  batch_norm_backward(gm, x, w, b, &p, dy);
  assert_values(x->grad, (float[]){1.5f, 3}, 2, 1e-6f);
  assert_values(w->grad, (float[]){4}, 1, 1e-6f);
  assert_values(b->grad, (float[]){3}, 1, 1e-6f);
  TD_RELEASE(x->grad);
  TD_RELEASE(w->grad);
  TD_RELEASE(b->grad);

  /* Training, batch {1, 5}: mean 3, var 4, xhat {-1, 1}. The full formula:
   * gx = w*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)) = 1.5*({1,2} - 1.5 - {-1,1}*0.5) = 0 */
  p.training = true;
  batch_norm_backward(gm, x, w, b, &p, dy);
  assert_values(x->grad, (float[]){0, 0}, 2, 1e-6f);
  assert_values(w->grad, (float[]){1}, 1, 1e-6f);
  assert_values(b->grad, (float[]){3}, 1, 1e-6f);
  td_tensor_release(dy);
  td_gm_destroy(gm);
  td_tensor_release(x);
  td_tensor_release(w);
  td_tensor_release(b);
  td_tensor_release(rm);
  td_tensor_release(rv);
}

static void test_batch_norm_errors_change_nothing(void **state) {
  (void)state;
  int64_t s[] = {4, 3}, one[] = {1, 3}, s1[] = {3}, s5[] = {1, 3, 1, 1, 2};
  td_tensor *x, *xi, *x1, *xs, *x5, *rm, *rv, *w4, *wi, *y = NULL;
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 2, s, &x), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, s, &xi), TD_OK);
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 2, one, &x1), TD_OK);
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 1, s1, &xs), TD_OK);
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 5, s5, &x5), TD_OK);
  assert_int_equal(td_tensor_full(TD_FLOAT32, 1, s1, 0.25, &rm), TD_OK);
  assert_int_equal(td_tensor_full(TD_FLOAT32, 1, s1, 2.0, &rv), TD_OK);
  int64_t four = 4;
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 1, &four, &w4), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, s1, &wi), TD_OK);
  const uint64_t vm = td_tensor_version(rm), vv = td_tensor_version(rv);
  td_batch_norm_params p = {
      .training = true, .momentum = 0.1f, .eps = 1e-5f, .running_mean = rm, .running_var = rv};

  assert_error(td_batch_norm(x1, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "expected more than 1 value per channel when training", "[1,3]");
  assert_error(td_batch_norm(xi, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "expected float32 input, got int64");
  assert_error(td_batch_norm(xs, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "2-d to 4-d", "[3]");
  assert_error(td_batch_norm(x5, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "[1,3,1,1,2]");
  assert_error(td_batch_norm(x, w4, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm", "weight",
               "[4]", "expected [3]", "[4,3]");
  assert_error(td_batch_norm(x, NULL, w4, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm", "bias",
               "[4]");
  assert_error(td_batch_norm(x, wi, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "float32 weight, got int64");
  p.running_var = w4;
  assert_error(td_batch_norm(x, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "running_var", "[4]");
  p.running_var = NULL;
  assert_error(td_batch_norm(x, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm", "both",
               "running_var is NULL");
  p.running_var = rv;
  p.running_mean = wi;
  assert_error(td_batch_norm(x, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "float32 running_mean, got int64");
  p.running_mean = rm;
  p.eps = -1;
  assert_error(td_batch_norm(x, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm", "eps",
               "-1");
  p.eps = NAN;
  assert_error(td_batch_norm(x, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm", "eps");
  p.eps = 1e-5f;
  p.momentum = INFINITY;
  assert_error(td_batch_norm(x, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "momentum", "inf");
  p.momentum = 0.1f;
  assert_error(td_batch_norm(NULL, NULL, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "NULL");
  assert_error(td_batch_norm(x, NULL, NULL, NULL, &y), TD_ERR_INVALID_ARGUMENT, "batch_norm",
               "params");
  assert_null(y);
  /* None of the failed calls touched the running statistics. */
  assert_int_equal(td_tensor_version(rm), vm);
  assert_int_equal(td_tensor_version(rv), vv);
  for (int c = 0; c < 3; c++) {
    assert_float_equal(td_tensor_f32(rm)[c], 0.25f, 0);
    assert_float_equal(td_tensor_f32(rv)[c], 2.0f, 0);
  }
  /* One value per channel is fine in eval. */
  p.training = false;
  assert_int_equal(td_batch_norm(x1, NULL, NULL, &p, &y), TD_OK);
  td_tensor_release(y);
  release_tensors(x, xi, x1, xs, x5, rm, rv, w4, wi);
}

/* ---- layer_norm ------------------------------------------------------------- */

static void test_layer_norm_values(void **state) {
  (void)state;
  /* rows {1, 3} and {0, 4}: both normalise to {-1, 1} with eps 0 */
  int64_t s[] = {2, 2};
  td_tensor *x = tensor_f32(2, s, (float[]){1, 3, 0, 4}), *w = vec_f32(2, (float[]){2, 1});
  td_tensor *b = vec_f32(2, (float[]){0, 1}), *y;
  assert_int_equal(td_layer_norm(x, 1, w, b, 0, &y), TD_OK);
  assert_values(y, (float[]){-2, 2, -2, 2}, 4, 1e-6f);
  td_tensor_release(y);
  assert_int_equal(td_layer_norm(x, 1, NULL, NULL, 0, &y), TD_OK);
  assert_values(y, (float[]){-1, 1, -1, 1}, 4, 1e-6f);
  td_tensor_release(y);
  /* Over both dims: mean 2, var 2.5 */
  assert_int_equal(td_layer_norm(x, 2, NULL, NULL, 0, &y), TD_OK);
  const float r = 1 / sqrtf(2.5f);
  assert_values(y, (float[]){-r, r, -2 * r, 2 * r}, 4, 1e-6f);
  td_tensor_release(y);
  td_tensor_release(x);
  td_tensor_release(w);
  td_tensor_release(b);
}

static void test_layer_norm_gradients(void **state) {
  (void)state;
  /* Row {1, 3}: xhat {-1, 1}, invstd 1. gxhat = dy*w = {1, 4}:
   * gx = gxhat - mean(gxhat) - xhat*mean(gxhat*xhat) = {1,4} - 2.5 - {-1,1}*1.5 = {0, 0} */
  int64_t s[] = {1, 2};
  td_tensor *x = tensor_f32(2, s, (float[]){1, 3}), *w = vec_f32(2, (float[]){1, 2});
  td_tensor *b = vec_f32(2, (float[]){0, 0}), *dy = tensor_f32(2, s, (float[]){1, 2}), *y;
  td_grad_manager *gm = record_grads(x, w, b);
  assert_int_equal(td_layer_norm(x, 1, w, b, 0, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  assert_values(x->grad, (float[]){0, 0}, 2, 1e-6f);
  assert_values(w->grad, (float[]){-1, 2}, 2, 1e-6f);
  assert_values(b->grad, (float[]){1, 2}, 2, 1e-6f);
  td_tensor_release(y);
  td_tensor_release(dy);
  td_gm_destroy(gm);
  td_tensor_release(x);
  td_tensor_release(w);
  td_tensor_release(b);
}

static void test_layer_norm_errors(void **state) {
  (void)state;
  int64_t s[] = {2, 3, 4}, s3[] = {3}, s34[] = {3, 4};
  td_tensor *x, *xi, *w3, *w34, *wi, *y = NULL;
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 3, s, &x), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 3, s, &xi), TD_OK);
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 1, s3, &w3), TD_OK);
  assert_int_equal(td_tensor_ones(TD_FLOAT32, 2, s34, &w34), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, s34, &wi), TD_OK);
  assert_error(td_layer_norm(x, 0, NULL, NULL, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "normalized_ndim 0", "[1, 3]", "[2,3,4]");
  assert_error(td_layer_norm(x, 4, NULL, NULL, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "normalized_ndim 4");
  assert_error(td_layer_norm(x, 1, w3, NULL, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "weight has shape [3]", "normalized shape [4]", "[2,3,4]");
  assert_error(td_layer_norm(x, 1, NULL, w34, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "bias has shape [3,4]", "[4]");
  assert_error(td_layer_norm(x, 2, wi, NULL, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "float32 weight, got int64");
  assert_error(td_layer_norm(xi, 1, NULL, NULL, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "float32 input, got int64");
  assert_error(td_layer_norm(x, 1, NULL, NULL, -0.5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "eps", "-0.5");
  assert_error(td_layer_norm(NULL, 1, NULL, NULL, 1e-5f, &y), TD_ERR_INVALID_ARGUMENT, "layer_norm",
               "NULL");
  assert_null(y);
  assert_int_equal(td_layer_norm(x, 2, w34, w34, 1e-5f, &y), TD_OK);
  td_tensor_release(y);
  release_tensors(x, xi, w3, w34, wi);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_norm_train_values_and_running_update),
      cmocka_unit_test(test_batch_norm_running_update_matches_pytorch),
      cmocka_unit_test(test_batch_norm_eval_uses_running_stats),
      cmocka_unit_test(test_batch_norm_gradients),
      cmocka_unit_test(test_batch_norm_errors_change_nothing),
      cmocka_unit_test(test_layer_norm_values),
      cmocka_unit_test(test_layer_norm_gradients),
      cmocka_unit_test(test_layer_norm_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
