/* test_linalg.c - matmul and linear: values on hand-checked inputs and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "autodiff/grad_manager.h"
#include "core/parallel.h"
#include "functional/linalg.h"
#include "tensor/random.h"

static td_tensor *make(int ndim, const int64_t *shape, const float *values) {
  td_tensor *t;
  assert_int_equal(td_tensor_from_data(TD_FLOAT32, ndim, shape, values, &t), TD_OK);
  return t;
}

/* A huge logical tensor that owns one element: stride-0 views cost no memory,
 * so shape checks past BLAS's int range can be reached. */
static td_tensor *huge(int ndim, const int64_t *shape) {
  int64_t one[TD_MAX_DIMS] = {1, 1, 1, 1, 1, 1, 1, 1};
  float v = 1;
  td_tensor *t = make(ndim, one, &v), *e;
  assert_int_equal(td_tensor_expand(t, ndim, shape, &e), TD_OK);
  td_tensor_release(t);
  return e;
}

static void assert_values(const td_tensor *t, const float *want, int64_t n) {
  assert_int_equal(t->numel, n);
  td_tensor *c;
  assert_int_equal(td_tensor_clone(t, &c), TD_OK);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(td_tensor_f32(c)[i], want[i], 1e-5);
  td_tensor_release(c);
}

static void assert_error(td_status st, td_status want, const char *a, const char *b) {
  assert_int_equal(st, want);
  const char *msg = td_error_message();
  if (!strstr(msg, a) || (b && !strstr(msg, b)))
    fail_msg("message '%s' lacks '%s' / '%s'", msg, a, b ? b : "");
}

static void test_matmul_2d_values(void **state) {
  (void)state;
  int64_t sa[] = {2, 3}, sb[] = {3, 2};
  float a[] = {1, 2, 3, 4, 5, 6}, b[] = {7, 8, 9, 10, 11, 12};
  td_tensor *ta = make(2, sa, a), *tb = make(2, sb, b), *y;
  assert_int_equal(td_matmul(ta, tb, &y), TD_OK);
  float want[] = {58, 64, 139, 154};
  assert_int_equal(y->ndim, 2);
  assert_values(y, want, 4);
  td_tensor_release(y);
  /* The same product through transposed views (read with sgemm's flags). */
  td_tensor *at, *bt, *att, *btt;
  int64_t sat[] = {3, 2}, sbt[] = {2, 3};
  float a_t[] = {1, 4, 2, 5, 3, 6}, b_t[] = {7, 9, 11, 8, 10, 12};
  at = make(2, sat, a_t), bt = make(2, sbt, b_t);
  assert_int_equal(td_tensor_transpose(at, 0, 1, &att), TD_OK);
  assert_int_equal(td_tensor_transpose(bt, 0, 1, &btt), TD_OK);
  assert_int_equal(td_matmul(att, btt, &y), TD_OK);
  assert_values(y, want, 4);
  td_tensor_release(y);
  td_tensor_release(at), td_tensor_release(bt), td_tensor_release(att), td_tensor_release(btt);
  td_tensor_release(ta), td_tensor_release(tb);
}

static void test_matmul_broadcast_batch(void **state) {
  (void)state;
  /* a [2,1,1,2] @ b [3,2,1] -> [2,3,1,1]: out[i][j] = a_i . b_j */
  int64_t sa[] = {2, 1, 1, 2}, sb[] = {3, 2, 1};
  float a[] = {1, 2, 3, 4}, b[] = {1, 0, 0, 1, 1, 1};
  td_tensor *ta = make(4, sa, a), *tb = make(3, sb, b), *y;
  assert_int_equal(td_matmul(ta, tb, &y), TD_OK);
  int64_t want_shape[] = {2, 3, 1, 1};
  assert_true(td_shape_equal(y->ndim, y->shape, 4, want_shape));
  float want[] = {1, 2, 3, 3, 4, 7};
  assert_values(y, want, 6);
  td_tensor_release(y), td_tensor_release(ta), td_tensor_release(tb);
}

static void test_matmul_gradient_of_shared_operand(void **state) {
  (void)state;
  /* y = a [2,1,2] @ b [2,1]; dL/db = sum over the batch of a_i^T dy_i. */
  int64_t sa[] = {2, 1, 2}, sb[] = {2, 1};
  float a[] = {1, 2, 3, 4}, b[] = {1, 1};
  td_tensor *ta = make(3, sa, a), *tb = make(2, sb, b), *y;
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, ta), TD_OK);
  assert_int_equal(td_gm_attach(gm, tb), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_matmul(ta, tb, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  float want_b[] = {4, 6}, want_a[] = {1, 1, 1, 1};
  assert_values(tb->grad, want_b, 2);
  assert_values(ta->grad, want_a, 4);
  td_tensor_release(y), td_gm_destroy(gm), td_tensor_release(ta), td_tensor_release(tb);
}

static void test_matmul_errors(void **state) {
  (void)state;
  int64_t s23[] = {2, 3}, s45[] = {4, 5}, s3[] = {3}, s223[] = {2, 2, 3}, s332[] = {3, 3, 2};
  float v[64] = {0};
  td_tensor *a = make(2, s23, v), *b = make(2, s45, v), *vec = make(1, s3, v), *y = NULL;
  td_tensor *i64;
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, s23, &i64), TD_OK);
  assert_error(td_matmul(a, b, &y), TD_ERR_INVALID_ARGUMENT, "matmul: inner dimensions differ",
               "a [2,3] @ b [4,5]");
  assert_null(y);
  assert_error(td_matmul(i64, a, &y), TD_ERR_INVALID_ARGUMENT, "matmul: expected float32 a",
               "int64");
  assert_error(td_matmul(a, i64, &y), TD_ERR_INVALID_ARGUMENT, "matmul: expected float32 b",
               "int64");
  assert_error(td_matmul(vec, a, &y), TD_ERR_INVALID_ARGUMENT, "matmul", "[3]");
  assert_error(td_matmul(a, vec, &y), TD_ERR_INVALID_ARGUMENT, "matmul", "[3]");
  td_tensor *c = make(3, s223, v), *d = make(3, s332, v);
  assert_error(td_matmul(c, d, &y), TD_ERR_INVALID_ARGUMENT,
               "matmul: batch dimensions cannot broadcast", "a [2,2,3] @ b [3,3,2]");
  assert_error(td_matmul(NULL, a, &y), TD_ERR_INVALID_ARGUMENT, "matmul: a or b is NULL", NULL);
  /* An inner dimension past BLAS's int range is refused before any allocation. */
  int64_t sk[] = {1, (int64_t)1 << 31}, sk2[] = {(int64_t)1 << 31, 1};
  td_tensor *big_a = huge(2, sk), *big_b = huge(2, sk2);
  assert_error(td_matmul(big_a, big_b, &y), TD_ERR_INVALID_ARGUMENT,
               "matmul: a matrix dimension exceeds BLAS's int range", "[1,2147483648]");
  td_tensor_release(big_a), td_tensor_release(big_b);
  td_tensor_release(a), td_tensor_release(b), td_tensor_release(vec), td_tensor_release(i64);
  td_tensor_release(c), td_tensor_release(d);
}

static void test_linear_values(void **state) {
  (void)state;
  int64_t sx[] = {2, 3}, sw[] = {2, 3}, sb[] = {2};
  float x[] = {1, 2, 3, 4, 5, 6}, w[] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[] = {10, 20};
  td_tensor *tx = make(2, sx, x), *tw = make(2, sw, w), *tb = make(1, sb, b), *y;
  assert_int_equal(td_linear(tx, tw, tb, &y), TD_OK);
  float want[] = {8, 23, 8, 27.5f};
  assert_values(y, want, 4);
  td_tensor_release(y);
  assert_int_equal(td_linear(tx, tw, NULL, &y), TD_OK);
  float want_nb[] = {-2, 3, -2, 7.5f};
  assert_values(y, want_nb, 4);
  td_tensor_release(y);
  /* 1-d input: one row, output [out]. */
  int64_t s1[] = {3};
  td_tensor *x1 = make(1, s1, x);
  assert_int_equal(td_linear(x1, tw, tb, &y), TD_OK);
  assert_int_equal(y->ndim, 1);
  assert_values(y, want, 2);
  td_tensor_release(y), td_tensor_release(x1);
  /* 3-d input keeps its leading dims. */
  int64_t s3[] = {2, 1, 3};
  td_tensor *x3 = make(3, s3, x);
  assert_int_equal(td_linear(x3, tw, tb, &y), TD_OK);
  int64_t want_shape[] = {2, 1, 2};
  assert_true(td_shape_equal(y->ndim, y->shape, 3, want_shape));
  assert_values(y, want, 4);
  td_tensor_release(y), td_tensor_release(x3);
  td_tensor_release(tx), td_tensor_release(tw), td_tensor_release(tb);
}

static void test_linear_gradients(void **state) {
  (void)state;
  int64_t sx[] = {2, 2}, sw[] = {1, 2}, sb[] = {1};
  float x[] = {1, 2, 3, 4}, w[] = {0.5f, -1}, b[] = {0};
  td_tensor *tx = make(2, sx, x), *tw = make(2, sw, w), *tb = make(1, sb, b), *y;
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, tx), TD_OK);
  assert_int_equal(td_gm_attach(gm, tw), TD_OK);
  assert_int_equal(td_gm_attach(gm, tb), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_linear(tx, tw, tb, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  float gx[] = {0.5f, -1, 0.5f, -1}, gw[] = {4, 6}, gb[] = {2};
  assert_values(tx->grad, gx, 4);
  assert_values(tw->grad, gw, 2);
  assert_values(tb->grad, gb, 1);
  td_tensor_release(y), td_gm_destroy(gm);
  td_tensor_release(tx), td_tensor_release(tw), td_tensor_release(tb);
}

/* y = x @ w^T + b and its gradients (dy = ones) against double loops; x is
 * any [rows, in] view. */
static void check_linear(td_tensor *x, int64_t rows, int64_t in, int64_t out, uint64_t seed) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  int64_t sw[] = {out, in}, sb[] = {out};
  td_tensor *w, *b, *y;
  assert_int_equal(td_tensor_rand_uniform(&rng, 2, sw, -1, 1, &w), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 1, sb, -1, 1, &b), TD_OK);
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_attach(gm, w), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_linear(x, w, b, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  td_tensor *xc;
  assert_int_equal(td_tensor_clone(x, &xc), TD_OK);
  const float *xp = td_tensor_f32(xc), *wp = td_tensor_f32(w), *bp = td_tensor_f32(b);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < out; o++) {
      double s = bp[o];
      for (int64_t k = 0; k < in; k++)
        s += (double)xp[r * in + k] * wp[o * in + k];
      assert_float_equal(td_tensor_f32(y)[r * out + o], s, 1e-3);
    }
  for (int64_t r = 0; r < rows; r++) /* dX[r][k] = sum over o of w[o][k] */
    for (int64_t k = 0; k < in; k++) {
      double s = 0;
      for (int64_t o = 0; o < out; o++)
        s += wp[o * in + k];
      assert_float_equal(td_tensor_f32(x->grad)[r * in + k], s, 1e-3);
    }
  for (int64_t o = 0; o < out; o++) /* dW[o][k] = sum over rows of x[r][k] */
    for (int64_t k = 0; k < in; k++) {
      double s = 0;
      for (int64_t r = 0; r < rows; r++)
        s += xp[r * in + k];
      assert_float_equal(td_tensor_f32(w->grad)[o * in + k], s, 1e-3);
    }
  td_tensor_release(xc), td_tensor_release(y), td_gm_destroy(gm);
  td_tensor_release(w), td_tensor_release(b);
}

/* Large products are split into blocks over the engine's threads (2 here):
 * columns here... */
static void test_linear_blocked_products(void **state) {
  (void)state;
  int saved = td_get_num_threads();
  td_set_num_threads(2);
  td_rng rng;
  td_rng_seed(&rng, 3);
  int64_t sx[] = {32, 512};
  td_tensor *x;
  assert_int_equal(td_tensor_rand_uniform(&rng, 2, sx, -1, 1, &x), TD_OK);
  check_linear(x, 32, 512, 96, 11);
  td_tensor_release(x);
  /* ...and rows, with x read through a transpose flag. */
  int64_t st[] = {32, 600};
  td_tensor *xt, *xv;
  assert_int_equal(td_tensor_rand_uniform(&rng, 2, st, -1, 1, &xt), TD_OK);
  assert_int_equal(td_tensor_transpose(xt, 0, 1, &xv), TD_OK);
  check_linear(xv, 600, 32, 64, 12);
  td_tensor_release(xv), td_tensor_release(xt);
  td_set_num_threads(saved);
}

static void test_linear_errors(void **state) {
  (void)state;
  int64_t sx[] = {2, 5}, sw[] = {3, 4}, sb[] = {2}, s0[] = {0}, sw1[] = {4};
  float v[64] = {0};
  td_tensor *x = make(2, sx, v), *w = make(2, sw, v), *b = make(1, sb, v), *y = NULL;
  assert_error(td_linear(x, w, NULL, &y), TD_ERR_INVALID_ARGUMENT,
               "linear: input has 5 features, expected 4", "(input [2,5], weight [3,4])");
  assert_null(y);
  int64_t sx4[] = {2, 4};
  td_tensor *x4 = make(2, sx4, v);
  assert_error(td_linear(x4, w, b, &y), TD_ERR_INVALID_ARGUMENT, "linear: bias [2]",
               "weight [3,4] (want [3])");
  td_tensor *i64;
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, sx4, &i64), TD_OK);
  assert_error(td_linear(i64, w, NULL, &y), TD_ERR_INVALID_ARGUMENT,
               "linear: expected float32 input", "int64");
  assert_error(td_linear(x4, i64, NULL, &y), TD_ERR_INVALID_ARGUMENT,
               "linear: expected float32 weight", "int64");
  td_tensor *bi;
  int64_t s3[] = {3};
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, s3, &bi), TD_OK);
  assert_error(td_linear(x4, w, bi, &y), TD_ERR_INVALID_ARGUMENT, "linear: expected float32 bias",
               "int64");
  td_tensor *scalar, *w1 = make(1, sw1, v);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 0, s0, &scalar), TD_OK);
  assert_error(td_linear(scalar, w, NULL, &y), TD_ERR_INVALID_ARGUMENT, "linear", "input");
  assert_error(td_linear(x4, w1, NULL, &y), TD_ERR_INVALID_ARGUMENT,
               "linear: expected a 2-d weight", "[4]");
  assert_error(td_linear(NULL, w, NULL, &y), TD_ERR_INVALID_ARGUMENT,
               "linear: input or weight is NULL", NULL);
  int64_t sbx[] = {1, (int64_t)1 << 31};
  td_tensor *bx = huge(2, sbx), *bw = huge(2, sbx);
  assert_error(td_linear(bx, bw, NULL, &y), TD_ERR_INVALID_ARGUMENT,
               "linear: a matrix dimension exceeds BLAS's int range", "[1,2147483648]");
  td_tensor_release(bx), td_tensor_release(bw);
  td_tensor_release(x), td_tensor_release(w), td_tensor_release(b), td_tensor_release(x4);
  td_tensor_release(i64), td_tensor_release(bi), td_tensor_release(scalar), td_tensor_release(w1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matmul_2d_values),
      cmocka_unit_test(test_matmul_broadcast_batch),
      cmocka_unit_test(test_matmul_gradient_of_shared_operand),
      cmocka_unit_test(test_matmul_errors),
      cmocka_unit_test(test_linear_values),
      cmocka_unit_test(test_linear_gradients),
      cmocka_unit_test(test_linear_blocked_products),
      cmocka_unit_test(test_linear_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
