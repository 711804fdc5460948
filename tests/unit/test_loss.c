/* test_loss.c - losses: hand-checked values and gradients, reductions, every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/functional.h"

/* int64 class indices, one per sample. */
static td_tensor *classes(int64_t n, const int64_t *data) { return tensor_i64(1, &n, data); }

static float scalar(const td_tensor *t) {
  assert_int_equal(t->ndim, 0);
  return td_tensor_f32(t)[0];
}

typedef td_status (*loss_fn)(td_tensor *, td_tensor *, td_reduction, td_tensor **);

/* Runs loss(a, b) recorded with a (and b if b_grad) attached and
 * backpropagates ones; returns the loss value, gradients in a->grad/b->grad. */
static float loss_and_grad(loss_fn fn, td_tensor *a, td_tensor *b, bool b_grad, td_reduction red) {
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, a), TD_OK);
  if (b_grad) assert_int_equal(td_gm_attach(gm, b), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  td_tensor *y;
  assert_int_equal(fn(a, b, red, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  float v = y->numel ? td_tensor_f32(y)[0] : 0;
  td_tensor_release(y);
  td_gm_destroy(gm);
  return v;
}

static td_status ce_plain(td_tensor *x, td_tensor *t, td_reduction r, td_tensor **out) {
  return td_cross_entropy(x, t, r, 0.0f, out);
}
static td_status ce_smooth(td_tensor *x, td_tensor *t, td_reduction r, td_tensor **out) {
  return td_cross_entropy(x, t, r, 0.1f, out);
}

/* logits rows [1,2,3]: lse = 3.4076059644; targets 2 and 0. */
static void test_cross_entropy_values(void **state) {
  (void)state;
  const double lse = 3.4076059644443806;
  int64_t shape[] = {2, 3};
  float d[] = {1, 2, 3, 1, 2, 3};
  td_tensor *x = tensor_f32(2, shape, d), *t = classes(2, (int64_t[]){2, 0}), *y;
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_NONE, 0, &y), TD_OK);
  assert_int_equal(y->ndim, 1);
  assert_float_equal(td_tensor_f32(y)[0], lse - 3, 1e-6);
  assert_float_equal(td_tensor_f32(y)[1], lse - 1, 1e-6);
  td_tensor_release(y);
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_SUM, 0, &y), TD_OK);
  assert_float_equal(scalar(y), 2 * lse - 4, 1e-5);
  td_tensor_release(y);
  /* smoothing 0.1: lse - 0.9 z[t] - (0.1 / 3) * sum(z) */
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_MEAN, 0.1f, &y), TD_OK);
  double l0 = lse - 0.9 * 3 - 0.2, l1 = lse - 0.9 * 1 - 0.2;
  assert_float_equal(scalar(y), (l0 + l1) / 2, 1e-5);
  td_tensor_release(y);
  /* uniform logits: log C whatever the smoothing */
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_MEAN, 1.0f, &y), TD_OK);
  assert_float_equal(scalar(y), lse - 2, 1e-5);
  td_tensor_release(y);
  td_tensor_release(t);
  td_tensor_release(x);
}

static void test_cross_entropy_gradient(void **state) {
  (void)state;
  int64_t shape[] = {2, 2};
  float d[] = {0, 0, 0, 0};
  td_tensor *x = tensor_f32(2, shape, d), *t = classes(2, (int64_t[]){0, 1});
  float v = loss_and_grad(ce_plain, x, t, false, TD_REDUCTION_MEAN);
  assert_float_equal(v, log(2), 1e-6);
  /* (softmax - onehot) / N */
  float want[] = {-0.25f, 0.25f, 0.25f, -0.25f};
  for (int i = 0; i < 4; i++)
    assert_float_equal(td_tensor_f32(x->grad)[i], want[i], 1e-7);
  TD_RELEASE(x->grad);
  /* smoothing 0.1, sum: softmax - 0.9 onehot - 0.05 */
  loss_and_grad(ce_smooth, x, t, false, TD_REDUCTION_SUM);
  float want_s[] = {-0.45f, 0.45f, 0.45f, -0.45f};
  for (int i = 0; i < 4; i++)
    assert_float_equal(td_tensor_f32(x->grad)[i], want_s[i], 1e-6);
  td_tensor_release(t);
  td_tensor_release(x);
}

static void test_cross_entropy_large_logits_are_stable(void **state) {
  (void)state;
  int64_t shape[] = {1, 2};
  float d[] = {1000, 0};
  td_tensor *x = tensor_f32(2, shape, d), *t = classes(1, (int64_t[]){1}), *y;
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_MEAN, 0, &y), TD_OK);
  assert_float_equal(scalar(y), 1000, 1e-3);
  td_tensor_release(y);
  td_tensor_release(t);
  td_tensor_release(x);
}

static void test_empty_batch(void **state) {
  (void)state;
  int64_t shape[] = {0, 3};
  td_tensor *x, *t, *y;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, shape, &x), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, shape, &t), TD_OK);
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_MEAN, 0, &y), TD_OK);
  assert_true(isnan(scalar(y))); /* mean of nothing, as PyTorch */
  td_tensor_release(y);
  assert_int_equal(td_nll_loss(x, t, TD_REDUCTION_SUM, &y), TD_OK);
  assert_float_equal(scalar(y), 0, 0);
  td_tensor_release(y);
  assert_int_equal(td_cross_entropy(x, t, TD_REDUCTION_NONE, 0, &y), TD_OK);
  assert_int_equal(y->ndim, 1);
  assert_int_equal(y->shape[0], 0);
  td_tensor_release(y);
  td_tensor_release(t);
  td_tensor_release(x);
}

static void test_nll_loss(void **state) {
  (void)state;
  int64_t shape[] = {2, 2};
  float d[] = {-1, -2, -3, -4};
  td_tensor *x = tensor_f32(2, shape, d), *t = classes(2, (int64_t[]){1, 0}), *y;
  assert_int_equal(td_nll_loss(x, t, TD_REDUCTION_NONE, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], 2, 0);
  assert_float_equal(td_tensor_f32(y)[1], 3, 0);
  td_tensor_release(y);
  float v = loss_and_grad(td_nll_loss, x, t, false, TD_REDUCTION_MEAN);
  assert_float_equal(v, 2.5, 1e-7);
  float want[] = {0, -0.5f, -0.5f, 0};
  for (int i = 0; i < 4; i++)
    assert_float_equal(td_tensor_f32(x->grad)[i], want[i], 0);
  td_tensor_release(t);
  td_tensor_release(x);
}

static void test_mse_and_target_gradient(void **state) {
  (void)state;
  int64_t shape[] = {2};
  td_tensor *p = tensor_f32(1, shape, (float[]){1, 2}), *t = tensor_f32(1, shape, (float[]){0, 0}),
            *y;
  assert_int_equal(td_mse_loss(p, t, TD_REDUCTION_SUM, &y), TD_OK);
  assert_float_equal(scalar(y), 5, 0);
  td_tensor_release(y);
  assert_int_equal(td_mse_loss(p, t, TD_REDUCTION_NONE, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[1], 4, 0);
  td_tensor_release(y);
  float v = loss_and_grad(td_mse_loss, p, t, true, TD_REDUCTION_MEAN);
  assert_float_equal(v, 2.5, 0);
  assert_float_equal(td_tensor_f32(p->grad)[0], 1, 0); /* 2 (p - t) / N */
  assert_float_equal(td_tensor_f32(p->grad)[1], 2, 0);
  assert_float_equal(td_tensor_f32(t->grad)[0], -1, 0);
  assert_float_equal(td_tensor_f32(t->grad)[1], -2, 0);
  td_tensor_release(t);
  td_tensor_release(p);
}

static void test_l1_gradient_is_zero_at_zero(void **state) {
  (void)state;
  int64_t shape[] = {3};
  td_tensor *p = tensor_f32(1, shape, (float[]){1, 0, -2}),
            *t = tensor_f32(1, shape, (float[]){0, 0, 0});
  float v = loss_and_grad(td_l1_loss, p, t, false, TD_REDUCTION_SUM);
  assert_float_equal(v, 3, 0);
  float want[] = {1, 0, -1};
  for (int i = 0; i < 3; i++)
    assert_float_equal(td_tensor_f32(p->grad)[i], want[i], 0);
  td_tensor_release(t);
  td_tensor_release(p);
}

static void test_bce_with_logits_stable(void **state) {
  (void)state;
  int64_t shape[] = {3};
  td_tensor *x = tensor_f32(1, shape, (float[]){0, 100, -100});
  td_tensor *t = tensor_f32(1, shape, (float[]){1, 0, 1}), *y;
  assert_int_equal(td_binary_cross_entropy_with_logits(x, t, TD_REDUCTION_NONE, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], log(2), 1e-6);
  assert_float_equal(td_tensor_f32(y)[1], 100, 1e-4); /* no overflow to inf */
  assert_float_equal(td_tensor_f32(y)[2], 100, 1e-4);
  td_tensor_release(y);
  loss_and_grad(td_binary_cross_entropy_with_logits, x, t, false, TD_REDUCTION_SUM);
  /* sigmoid(x) - y */
  assert_float_equal(td_tensor_f32(x->grad)[0], -0.5, 1e-7);
  assert_float_equal(td_tensor_f32(x->grad)[1], 1, 1e-7);
  assert_float_equal(td_tensor_f32(x->grad)[2], -1, 1e-7);
  td_tensor_release(t);
  td_tensor_release(x);
}

static void test_class_target_errors(void **state) {
  (void)state;
  int64_t shape[] = {2, 3}, shape3[] = {2, 3, 1};
  td_tensor *x, *x3, *xi, *tf, *y;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, shape, &x), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 3, shape3, &x3), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, shape, &xi), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, shape, &tf), TD_OK);
  td_tensor *t = classes(2, (int64_t[]){0, 1});

  assert_error(td_cross_entropy(x, tf, TD_REDUCTION_MEAN, 0, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: expected int64 class indices as target, got float32");
  assert_null(y);
  assert_error(td_cross_entropy(xi, t, TD_REDUCTION_MEAN, 0, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: expected float32 logits, got int64");
  assert_error(td_cross_entropy(x3, t, TD_REDUCTION_MEAN, 0, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: expected a 2-d logits", "[2,3,1]");

  td_tensor *t3 = classes(3, (int64_t[]){0, 1, 2});
  assert_error(td_cross_entropy(x, t3, TD_REDUCTION_MEAN, 0, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: target has shape [3]", "logits [2,3]");
  td_tensor *t2d;
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, (int64_t[]){2, 1}, &t2d), TD_OK);
  assert_error(td_nll_loss(x, t2d, TD_REDUCTION_MEAN, &y), TD_ERR_INVALID_ARGUMENT,
               "nll_loss: target has shape [2,1]", "log_probs [2,3]");

  td_tensor *bad = classes(2, (int64_t[]){0, 5});
  assert_error(td_cross_entropy(x, bad, TD_REDUCTION_MEAN, 0, &y), TD_ERR_OUT_OF_RANGE,
               "cross_entropy: target[1] = 5 is out of range for 3 classes");
  assert_null(y);
  td_tensor *neg = classes(2, (int64_t[]){-100, 0});
  assert_error(td_nll_loss(x, neg, TD_REDUCTION_SUM, &y), TD_ERR_OUT_OF_RANGE,
               "nll_loss: target[0] = -100 is out of range for 3 classes",
               "ignore_index is not supported");

  assert_error(td_cross_entropy(x, t, TD_REDUCTION_MEAN, 1.5f, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: label_smoothing must be in [0, 1], got 1.5");
  assert_error(td_cross_entropy(x, t, TD_REDUCTION_MEAN, -0.1f, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: label_smoothing must be in [0, 1], got -0.1");
  assert_error(td_cross_entropy(x, t, TD_REDUCTION_MEAN, NAN, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: label_smoothing must be in [0, 1], got nan");
  assert_error(td_cross_entropy(x, t, (td_reduction)7, 0, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: unknown reduction 7");
  assert_error(td_cross_entropy(x, NULL, TD_REDUCTION_MEAN, 0, &y), TD_ERR_INVALID_ARGUMENT,
               "cross_entropy: target is NULL");

  release_tensors(t, t3, t2d, bad, neg);
  td_tensor_release(tf);
  td_tensor_release(xi);
  td_tensor_release(x3);
  td_tensor_release(x);
}

static void test_pointwise_errors(void **state) {
  (void)state;
  td_tensor *a, *b, *bi, *y;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, (int64_t[]){2, 3}, &a), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, (int64_t[]){3, 2}, &b), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, (int64_t[]){2, 3}, &bi), TD_OK);
  assert_error(td_mse_loss(a, b, TD_REDUCTION_MEAN, &y), TD_ERR_INVALID_ARGUMENT,
               "mse_loss: input [2,3] and target [3,2]", "same shape");
  assert_null(y);
  assert_error(td_l1_loss(a, b, TD_REDUCTION_SUM, &y), TD_ERR_INVALID_ARGUMENT,
               "l1_loss: input [2,3] and target [3,2]");
  assert_error(td_binary_cross_entropy_with_logits(a, b, TD_REDUCTION_NONE, &y),
               TD_ERR_INVALID_ARGUMENT, "bce_with_logits: input [2,3] and target [3,2]");
  assert_error(td_binary_cross_entropy_with_logits(a, bi, TD_REDUCTION_MEAN, &y),
               TD_ERR_INVALID_ARGUMENT, "bce_with_logits: expected float32 target, got int64");
  assert_error(td_mse_loss(bi, a, TD_REDUCTION_MEAN, &y), TD_ERR_INVALID_ARGUMENT,
               "mse_loss: expected float32 input, got int64");
  assert_error(td_l1_loss(a, a, (td_reduction)-1, &y), TD_ERR_INVALID_ARGUMENT,
               "l1_loss: unknown reduction -1");
  td_tensor_release(bi);
  td_tensor_release(b);
  td_tensor_release(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cross_entropy_values),
      cmocka_unit_test(test_cross_entropy_gradient),
      cmocka_unit_test(test_cross_entropy_large_logits_are_stable),
      cmocka_unit_test(test_empty_batch),
      cmocka_unit_test(test_nll_loss),
      cmocka_unit_test(test_mse_and_target_gradient),
      cmocka_unit_test(test_l1_gradient_is_zero_at_zero),
      cmocka_unit_test(test_bce_with_logits_stable),
      cmocka_unit_test(test_class_target_errors),
      cmocka_unit_test(test_pointwise_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
