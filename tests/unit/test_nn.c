/* test_nn.c - dropout (mask statistics, reproducibility, scaling, identity, gradient) and
 * embedding (gather, scatter-add gradient), with every error path. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/nn.h"

/* Values in [1, 2): never zero, so a zero output means "dropped". */
static td_tensor *positive(int ndim, const int64_t *shape, uint64_t seed) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  td_tensor *t;
  assert_int_equal(td_tensor_rand_uniform(&rng, ndim, shape, 1, 2, &t), TD_OK);
  return t;
}

/* ---- dropout ------------------------------------------------------------------ */

static void test_dropout_mask_fraction_and_scaling(void **state) {
  (void)state;
  int64_t s[] = {400, 250};
  td_tensor *x = positive(2, s, 1), *y;
  td_rng rng;
  td_rng_seed(&rng, 42);
  const float p = 0.3f, scale = 1.0f / (1.0f - p);
  assert_int_equal(td_dropout(x, p, true, &rng, &y), TD_OK);
  int64_t dropped = 0;
  for (int64_t i = 0; i < x->numel; i++) {
    float v = td_tensor_f32(y)[i];
    if (v == 0) {
      dropped++;
    } else {
      assert_float_equal(v, td_tensor_f32(x)[i] * scale, 0);
    }
  }
  /* 100000 Bernoulli(0.3) draws: standard deviation 0.00145 of the fraction */
  double frac = (double)dropped / (double)x->numel;
  assert_true(fabs(frac - 0.3) < 0.01);
  td_tensor_release(y);
  td_tensor_release(x);
}

static void test_dropout_same_seed_same_mask(void **state) {
  (void)state;
  int64_t s[] = {33, 17}; /* odd count: the last element takes a draw of its own */
  td_tensor *x = positive(2, s, 2), *a, *b, *c;
  td_rng r1, r2;
  td_rng_seed(&r1, 5);
  td_rng_seed(&r2, 5);
  assert_int_equal(td_dropout(x, 0.5f, true, &r1, &a), TD_OK);
  assert_int_equal(td_dropout(x, 0.5f, true, &r2, &b), TD_OK);
  assert_memory_equal(td_tensor_f32(a), td_tensor_f32(b), sizeof(float) * (size_t)x->numel);
  /* The generator advanced: the next mask differs. */
  assert_int_equal(td_dropout(x, 0.5f, true, &r1, &c), TD_OK);
  assert_memory_not_equal(td_tensor_f32(a), td_tensor_f32(c), sizeof(float) * (size_t)x->numel);
  td_tensor_release(a);
  td_tensor_release(b);
  td_tensor_release(c);
  td_tensor_release(x);
}

static void test_dropout_identity_and_p1(void **state) {
  (void)state;
  int64_t s[] = {3, 4};
  td_tensor *x = positive(2, s, 3), *y;
  /* eval: a new handle over the same storage, no generator needed */
  assert_int_equal(td_dropout(x, 0.5f, false, NULL, &y), TD_OK);
  assert_ptr_not_equal(y, x);
  assert_ptr_equal(y->storage, x->storage);
  assert_int_equal(y->ndim, 2);
  assert_int_equal(y->shape[1], 4);
  td_tensor_release(y);
  assert_int_equal(td_dropout(x, 0.0f, true, NULL, &y), TD_OK);
  assert_ptr_equal(y->storage, x->storage);
  td_tensor_release(y);
  /* p == 1 in training zeroes everything */
  assert_int_equal(td_dropout(x, 1.0f, true, NULL, &y), TD_OK);
  for (int64_t i = 0; i < y->numel; i++)
    assert_float_equal(td_tensor_f32(y)[i], 0, 0);
  td_tensor_release(y);
  td_tensor_release(x);
}

static void test_dropout_gradient_is_mask_times_scale(void **state) {
  (void)state;
  int64_t s[] = {16, 9};
  td_tensor *x = positive(2, s, 4), *y;
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  td_rng rng;
  td_rng_seed(&rng, 9);
  const float p = 0.25f, scale = 1.0f / (1.0f - p);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_dropout(x, p, true, &rng, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK); /* dy = ones */
  int kept = 0;
  for (int64_t i = 0; i < x->numel; i++) {
    float want = td_tensor_f32(y)[i] != 0 ? scale : 0;
    kept += want != 0;
    assert_float_equal(td_tensor_f32(x->grad)[i], want, 0);
  }
  assert_true(kept > 0 && kept < x->numel);
  td_tensor_release(y);
  TD_RELEASE(x->grad);

  /* Eval: the gradient passes through. */
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_dropout(x, p, false, NULL, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  for (int64_t i = 0; i < x->numel; i++)
    assert_float_equal(td_tensor_f32(x->grad)[i], 1, 0);
  td_tensor_release(y);
  td_gm_destroy(gm);
  td_tensor_release(x);
}

static void test_dropout_errors(void **state) {
  (void)state;
  int64_t s[] = {2, 3};
  td_tensor *x = positive(2, s, 5), *xi, *y = NULL;
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, s, &xi), TD_OK);
  td_rng rng;
  td_rng_seed(&rng, 1);
  assert_error(td_dropout(x, 1.5f, true, &rng, &y), TD_ERR_INVALID_ARGUMENT, "dropout", "[0, 1]",
               "1.5");
  assert_error(td_dropout(x, -0.1f, false, &rng, &y), TD_ERR_INVALID_ARGUMENT, "dropout", "-0.1");
  assert_error(td_dropout(x, NAN, true, &rng, &y), TD_ERR_INVALID_ARGUMENT, "dropout", "nan");
  assert_error(td_dropout(xi, 0.5f, true, &rng, &y), TD_ERR_INVALID_ARGUMENT, "dropout",
               "expected float32 input, got int64");
  assert_error(td_dropout(x, 0.3f, true, NULL, &y), TD_ERR_INVALID_ARGUMENT, "dropout",
               "random generator");
  assert_error(td_dropout(NULL, 0.3f, true, &rng, &y), TD_ERR_INVALID_ARGUMENT, "dropout", "NULL");
  assert_null(y);
  td_tensor_release(xi);
  td_tensor_release(x);
}

/* ---- embedding ---------------------------------------------------------------- */

static td_tensor *table(void) { /* [[0,1],[2,3],[4,5]] */
  int64_t s[] = {3, 2};
  float w[] = {0, 1, 2, 3, 4, 5};
  return tensor_f32(2, s, w);
}

static void test_embedding_gathers_rows(void **state) {
  (void)state;
  int64_t s[] = {2, 2};
  td_tensor *idx = tensor_i64(2, s, (int64_t[]){2, 0, 2, 1}), *w = table(), *y;
  assert_int_equal(td_embedding(idx, w, &y), TD_OK);
  assert_int_equal(y->ndim, 3);
  assert_int_equal(y->shape[2], 2);
  float want[] = {4, 5, 0, 1, 4, 5, 2, 3};
  assert_memory_equal(td_tensor_f32(y), want, sizeof want);
  td_tensor_release(y);
  /* A transposed (strided) weight gathers the same logical rows. */
  td_tensor *wt, *wtt;
  assert_int_equal(td_tensor_transpose(w, 0, 1, &wt), TD_OK);
  assert_int_equal(td_tensor_clone(wt, &wtt), TD_OK);
  td_tensor_release(wt);
  assert_int_equal(td_tensor_transpose(wtt, 0, 1, &wt), TD_OK);
  assert_int_equal(td_embedding(idx, wt, &y), TD_OK);
  assert_memory_equal(td_tensor_f32(y), want, sizeof want);
  td_tensor_release(y);
  td_tensor_release(wt);
  td_tensor_release(wtt);
  td_tensor_release(idx);
  td_tensor_release(w);
}

static void test_embedding_gradient_scatter_adds(void **state) {
  (void)state;
  int64_t s[] = {3};
  td_tensor *idx = tensor_i64(1, s, (int64_t[]){1, 1, 2}), *w = table(), *y;
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, w), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_embedding(idx, w, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  float want[] = {0, 0, 2, 2, 1, 1};
  assert_memory_equal(td_tensor_f32(w->grad), want, sizeof want);
  td_tensor_release(y);

  /* Indices rewritten in place after the forward: backward refuses. */
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_embedding(idx, w, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_tensor_fill_(idx, 0), TD_OK);
  assert_error(td_gm_backward(gm, y, NULL), TD_ERR_FAILED_PRECONDITION, "embedding",
               "modified in place");
  assert_memory_equal(td_tensor_f32(w->grad), want, sizeof want); /* unchanged */
  td_tensor_release(y);
  td_gm_destroy(gm);
  td_tensor_release(idx);
  td_tensor_release(w);
}

static void test_embedding_errors(void **state) {
  (void)state;
  int64_t s[] = {2, 2};
  td_tensor *w = table(), *y = NULL;
  td_tensor *idx = tensor_i64(2, s, (int64_t[]){0, 1, 5, 2});
  assert_error(td_embedding(idx, w, &y), TD_ERR_OUT_OF_RANGE, "embedding", "index 5",
               "position [1,0]", "3 embeddings", "[3,2]");
  td_tensor *neg = tensor_i64(2, s, (int64_t[]){0, -1, 1, 2});
  assert_error(td_embedding(neg, w, &y), TD_ERR_OUT_OF_RANGE, "embedding", "index -1",
               "position [0,1]");
  td_tensor *fidx;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, s, &fidx), TD_OK);
  assert_error(td_embedding(fidx, w, &y), TD_ERR_INVALID_ARGUMENT,
               "embedding: expected int64 indices, got float32");
  td_tensor *w1, *wi;
  int64_t three = 3;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, &three, &w1), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, s, &wi), TD_OK);
  td_tensor *good = tensor_i64(2, s, (int64_t[]){0, 1, 1, 0});
  assert_error(td_embedding(good, w1, &y), TD_ERR_INVALID_ARGUMENT, "embedding", "2-d weight",
               "[3]");
  assert_error(td_embedding(good, wi, &y), TD_ERR_INVALID_ARGUMENT, "embedding",
               "float32 weight, got int64");
  int64_t eight[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  td_tensor *deep = tensor_i64(8, eight, (int64_t[]){0});
  assert_error(td_embedding(deep, w, &y), TD_ERR_INVALID_ARGUMENT, "embedding", "8 dims");
  assert_error(td_embedding(NULL, w, &y), TD_ERR_INVALID_ARGUMENT, "embedding", "indices is NULL");
  assert_error(td_embedding(good, NULL, &y), TD_ERR_INVALID_ARGUMENT, "embedding",
               "weight is NULL");
  assert_null(y);
  release_tensors(w, idx, neg, fidx, w1, wi, good, deep);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dropout_mask_fraction_and_scaling),
      cmocka_unit_test(test_dropout_same_seed_same_mask),
      cmocka_unit_test(test_dropout_identity_and_p1),
      cmocka_unit_test(test_dropout_gradient_is_mask_times_scale),
      cmocka_unit_test(test_dropout_errors),
      cmocka_unit_test(test_embedding_gathers_rows),
      cmocka_unit_test(test_embedding_gradient_scatter_adds),
      cmocka_unit_test(test_embedding_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
