/* test_elementwise.c - binary ops (broadcast paths, gradients), unary math, errors, td_ew_ math. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/elementwise_map.h"
#include "functional/functional.h"

/* ---- helpers ------------------------------------------------------------ */

typedef td_status (*binary_fn)(td_tensor *, td_tensor *, td_tensor **);

/* Runs y = fn(a, b) recorded, backward with dy (NULL: ones); returns new refs
 * to a's and b's gradients. */
static void binary_grads(binary_fn fn, td_tensor *a, td_tensor *b, td_tensor *dy, td_tensor **ga,
                         td_tensor **gb) {
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, a), TD_OK);
  assert_int_equal(td_gm_attach(gm, b), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  td_tensor *y;
  assert_int_equal(fn(a, b, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  td_tensor_release(y);
  *ga = td_tensor_retain(a->grad);
  *gb = td_tensor_retain(b->grad);
  td_gm_destroy(gm);
  TD_RELEASE(a->grad);
  TD_RELEASE(b->grad);
}

/* ---- binary ops: values on every driver path ------------------------------ */

/* Reference: a broadcast op computed element by element with explicit index
 * arithmetic, for a [2,3,4]-shaped result. */
static float ref_at(const td_tensor *t, const int64_t *idx) {
  int64_t off = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    int od = 3 - t->ndim + d;
    off += (t->shape[d] == 1 ? 0 : idx[od]) * t->strides[d];
  }
  return ((const float *)t->storage->data)[off];
}

static void check_broadcast_add_sub(td_tensor *a, td_tensor *b) {
  td_tensor *y, *z;
  assert_int_equal(td_add(a, b, &y), TD_OK);
  assert_int_equal(td_sub(a, b, &z), TD_OK);
  assert_int_equal(y->ndim, 3);
  int64_t idx[3];
  for (idx[0] = 0; idx[0] < 2; idx[0]++)
    for (idx[1] = 0; idx[1] < 3; idx[1]++)
      for (idx[2] = 0; idx[2] < 4; idx[2]++) {
        int64_t k = (idx[0] * 3 + idx[1]) * 4 + idx[2];
        assert_float_equal(td_tensor_f32(y)[k], ref_at(a, idx) + ref_at(b, idx), 0);
        assert_float_equal(td_tensor_f32(z)[k], ref_at(a, idx) - ref_at(b, idx), 0);
      }
  td_tensor_release(y);
  td_tensor_release(z);
}

static void test_binary_paths(void **state) {
  (void)state;
  int64_t full[] = {2, 3, 4}, row[] = {4}, row2[] = {1, 3, 4}, col[] = {2, 3, 1}, mid[] = {3, 1},
          one[] = {1}, t_shape[] = {2, 4, 3}, scalar[1] = {0};
  td_tensor *a = ramp(3, full, 0.25f, 1.0f), *b = ramp(3, full, 0.25f, -0.5f);
  td_tensor *r = ramp(1, row, 0.25f, 10.0f), *r2 = ramp(3, row2, 0.25f, 3.0f),
            *c = ramp(3, col, 0.25f, 7.0f);
  td_tensor *m = ramp(2, mid, 0.25f, 2.0f), *s1 = ramp(1, one, 0.25f, 5.0f),
            *s0 = ramp(0, scalar, 0.25f, 9.0f);
  td_tensor *tb = ramp(3, t_shape, 0.25f, 0.5f),
            *tv; /* a permuted (strided) view of shape [2,3,4] */
  assert_int_equal(td_tensor_transpose(tb, 1, 2, &tv), TD_OK);
  check_broadcast_add_sub(a, b);   /* same shape */
  check_broadcast_add_sub(a, r);   /* bias row */
  check_broadcast_add_sub(r, a);   /* bias row first */
  check_broadcast_add_sub(a, r2);  /* row with leading 1 */
  check_broadcast_add_sub(a, c);   /* column: general walk, stride-0 inner */
  check_broadcast_add_sub(m, a);   /* middle broadcast */
  check_broadcast_add_sub(a, s1);  /* one element */
  check_broadcast_add_sub(s0, a);  /* 0-d scalar first */
  check_broadcast_add_sub(tv, a);  /* strided */
  check_broadcast_add_sub(tv, r);  /* strided with a row */
  td_tensor *y;
  assert_int_equal(td_add(s0, s0, &y), TD_OK); /* 0-d + 0-d */
  assert_int_equal(y->ndim, 0);
  assert_float_equal(td_tensor_f32(y)[0], 0.5f, 0);
  td_tensor_release(y);
  release_tensors(a, b, r, r2, c, m, s1, s0, tb, tv);
}

static void test_binary_values(void **state) {
  (void)state;
  int64_t s23[] = {2, 3}, s3[] = {3};
  const float av[] = {1, -2, 3, 4, NAN, -6}, bv[] = {2, 4, 3};
  td_tensor *a = tensor_f32(2, s23, av), *b = tensor_f32(1, s3, bv), *y;
  assert_int_equal(td_mul(a, b, &y), TD_OK);
  assert_values_rel(y, (const float[]){2, -8, 9, 8, NAN, -18}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_div(a, b, &y), TD_OK);
  assert_values_rel(y, (const float[]){0.5f, -0.5f, 1, 2, NAN, -2}, 6, 0);
  td_tensor_release(y);
  /* NaN wins in maximum and minimum, as torch.maximum / torch.minimum. */
  assert_int_equal(td_maximum(a, b, &y), TD_OK);
  assert_values_rel(y, (const float[]){2, 4, 3, 4, NAN, 3}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_minimum(b, a, &y), TD_OK);
  assert_values_rel(y, (const float[]){1, -2, 3, 2, NAN, -6}, 6, 0);
  td_tensor_release(y);
  /* Division by zero follows IEEE, as PyTorch. */
  const float zv[] = {0, 0, 0};
  td_tensor *z = tensor_f32(1, s3, zv);
  assert_int_equal(td_div(b, z, &y), TD_OK);
  assert_values_rel(y, (const float[]){INFINITY, INFINITY, INFINITY}, 3, 0);
  td_tensor_release(y);
  td_tensor_release(z);
  /* Empty tensors broadcast to an empty result. */
  int64_t s03[] = {0, 3};
  td_tensor *e;
  assert_int_equal(td_tensor_empty(TD_FLOAT32, 2, s03, &e), TD_OK);
  assert_int_equal(td_add(e, b, &y), TD_OK);
  assert_int_equal(y->numel, 0);
  assert_int_equal(y->shape[0], 0);
  assert_int_equal(y->shape[1], 3);
  td_tensor_release(y);
  td_tensor_release(e);
  td_tensor_release(a);
  td_tensor_release(b);
}

/* ---- binary ops: gradients --------------------------------------------- */

static void test_binary_gradients(void **state) {
  (void)state;
  int64_t s23[] = {2, 3}, s3[] = {3};
  const float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {2, 4, 8};
  td_tensor *a = tensor_f32(2, s23, av), *b = tensor_f32(1, s3, bv), *ga, *gb;
  binary_grads(td_add, a, b, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){1, 1, 1, 1, 1, 1}, 6, 0);
  assert_values_rel(gb, (const float[]){2, 2, 2}, 3, 0); /* summed over the broadcast rows */
  td_tensor_release(ga);
  td_tensor_release(gb);
  binary_grads(td_sub, a, b, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){1, 1, 1, 1, 1, 1}, 6, 0);
  assert_values_rel(gb, (const float[]){-2, -2, -2}, 3, 0);
  td_tensor_release(ga);
  td_tensor_release(gb);
  binary_grads(td_mul, a, b, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){2, 4, 8, 2, 4, 8}, 6, 0);
  assert_values_rel(gb, (const float[]){5, 7, 9}, 3, 0);
  td_tensor_release(ga);
  td_tensor_release(gb);
  binary_grads(td_div, a, b, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){0.5f, 0.25f, 0.125f, 0.5f, 0.25f, 0.125f}, 6, 1e-7f);
  /* d(a/b)/db = -a/b^2, summed: -(1+4)/4, -(2+5)/16, -(3+6)/64 */
  assert_values_rel(gb, (const float[]){-1.25f, -0.4375f, -0.140625f}, 3, 1e-7f);
  td_tensor_release(ga);
  td_tensor_release(gb);
  td_tensor_release(a);
  td_tensor_release(b);
}

static void test_maximum_minimum_ties_split(void **state) {
  (void)state;
  int64_t s4[] = {4};
  const float av[] = {1, 2, 3, NAN}, bv[] = {1, 5, 0, 1};
  td_tensor *a = tensor_f32(1, s4, av), *b = tensor_f32(1, s4, bv), *ga, *gb;
  /* tie: half each; b wins; a wins; NaN: both get everything (torch's rule). */
  binary_grads(td_maximum, a, b, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){0.5f, 0, 1, 1}, 4, 0);
  assert_values_rel(gb, (const float[]){0.5f, 1, 0, 1}, 4, 0);
  td_tensor_release(ga);
  td_tensor_release(gb);
  binary_grads(td_minimum, a, b, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){0.5f, 1, 0, 1}, 4, 0);
  assert_values_rel(gb, (const float[]){0.5f, 0, 1, 1}, 4, 0);
  td_tensor_release(ga);
  td_tensor_release(gb);
  /* A broadcast tie: the 0-d operand collects half of each tie. */
  const float one = 1;
  int64_t scalar[1] = {0};
  td_tensor *s = tensor_f32(0, scalar, &one);
  binary_grads(td_maximum, a, s, NULL, &ga, &gb);
  assert_values_rel(ga, (const float[]){0.5f, 1, 1, 1}, 4, 0);
  assert_values_rel(gb, (const float[]){1.5f}, 1, 0); /* 0.5 (tie) + 0 + 0 + 1 (NaN) */
  td_tensor_release(ga);
  td_tensor_release(gb);
  td_tensor_release(s);
  td_tensor_release(a);
  td_tensor_release(b);
}

/* Backward must accept an output gradient that is any strided view: the
 * gradients with a transposed dy equal those with its contiguous copy. */
static void test_strided_output_gradient(void **state) {
  (void)state;
  int64_t s34[] = {3, 4}, s4[] = {4}, s43[] = {4, 3};
  td_tensor *a = ramp(2, s34, 0.25f, 0.5f), *b = ramp(1, s4, 0.25f, -1.0f),
            *d = ramp(2, s43, 0.25f, 0.25f);
  td_tensor *dy_view, *dy_copy;
  assert_int_equal(td_tensor_transpose(d, 0, 1, &dy_view), TD_OK); /* [3,4], not contiguous */
  assert_int_equal(td_tensor_clone(dy_view, &dy_copy), TD_OK);
  binary_fn ops[] = {td_add, td_sub, td_mul, td_div, td_maximum, td_minimum};
  for (int k = 0; k < 6; k++) {
    td_tensor *grads[2][2];
    td_tensor *dys[2] = {dy_view, dy_copy};
    for (int v = 0; v < 2; v++)
      binary_grads(ops[k], a, b, dys[v], &grads[v][0], &grads[v][1]);
    assert_values_rel(grads[0][0], td_tensor_f32(grads[1][0]), 12, 0);
    assert_values_rel(grads[0][1], td_tensor_f32(grads[1][1]), 4, 1e-6f);
    for (int v = 0; v < 2; v++) td_tensor_release(grads[v][0]), td_tensor_release(grads[v][1]);
  }
  release_tensors(a, b, d, dy_view, dy_copy);
}

/* ---- unary math ---------------------------------------------------------- */

static void test_unary_values(void **state) {
  (void)state;
  int64_t s6[] = {6};
  const float xv[] = {0, 1, -1, 4, -0.0f, INFINITY};
  td_tensor *x = tensor_f32(1, s6, xv), *y;
  assert_int_equal(td_neg(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.0f, -1, 1, -4, 0, -INFINITY}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_exp(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){1, 2.718281828f, 0.367879441f, 54.59815f, 1, INFINITY}, 6,
                    2e-7f);
  td_tensor_release(y);
  /* Out of domain: NaN and -inf, not errors (as PyTorch). */
  assert_int_equal(td_log(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){-INFINITY, 0, NAN, 1.386294361f, -INFINITY, INFINITY}, 6,
                    2e-7f);
  td_tensor_release(y);
  assert_int_equal(td_sqrt(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 1, NAN, 2, -0.0f, INFINITY}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_abs(x, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 1, 1, 4, 0, INFINITY}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_pow(x, 2.0f, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 1, 1, 16, 0, INFINITY}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_pow(x, -0.5f, &y), TD_OK);
  assert_values_rel(y, (const float[]){INFINITY, 1, NAN, 0.5f, -INFINITY, 0}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_pow(x, 1.5f, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 1, NAN, 8, 0, INFINITY}, 6, 1e-7f);
  td_tensor_release(y);
  assert_int_equal(td_clamp(x, -0.5f, 2.0f, &y), TD_OK);
  assert_values_rel(y, (const float[]){0, 1, -0.5f, 2, -0.0f, 2}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_clamp(x, -INFINITY, 0.5f, &y), TD_OK); /* one-sided */
  assert_values_rel(y, (const float[]){0, 0.5f, -1, 0.5f, -0.0f, 0.5f}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_add_scalar(x, 1.5f, &y), TD_OK);
  assert_values_rel(y, (const float[]){1.5f, 2.5f, 0.5f, 5.5f, 1.5f, INFINITY}, 6, 0);
  td_tensor_release(y);
  assert_int_equal(td_mul_scalar(x, -2.0f, &y), TD_OK);
  assert_values_rel(y, (const float[]){-0.0f, -2, 2, -8, 0, -INFINITY}, 6, 0);
  td_tensor_release(y);
  td_tensor_release(x);
  /* x ** 0 is 1 everywhere, NaN included (as PyTorch). */
  const float nan = NAN;
  int64_t scalar[1] = {0};
  td_tensor *n = tensor_f32(0, scalar, &nan);
  assert_int_equal(td_pow(n, 0.0f, &y), TD_OK);
  assert_values_rel(y, (const float[]){1}, 1, 0);
  td_tensor_release(y);
  assert_int_equal(td_clamp(n, 0, 1, &y), TD_OK); /* NaN passes through clamp */
  assert_values_rel(y, (const float[]){NAN}, 1, 0);
  td_tensor_release(y);
  td_tensor_release(n);
}

static void test_unary_strided(void **state) {
  (void)state;
  int64_t s[] = {3, 4};
  td_tensor *base = ramp(2, s, 0.25f, 1.0f), *t, *y;
  assert_int_equal(td_tensor_transpose(base, 0, 1, &t), TD_OK); /* [4,3], strides [1,4] */
  assert_int_equal(td_mul_scalar(t, 2.0f, &y), TD_OK);
  assert_int_equal(y->shape[0], 4);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      assert_float_equal(td_tensor_f32(y)[i * 3 + j], 2 * (float)(j * 4 + i) + 0.5f, 0);
  td_tensor_release(y);
  td_tensor_release(t);
  td_tensor_release(base);
}

static td_status abs_op(td_tensor *x, td_tensor **y) { return td_abs(x, y); }
static td_status clamp_op(td_tensor *x, td_tensor **y) { return td_clamp(x, -1.0f, 1.0f, y); }
static td_status pow0_op(td_tensor *x, td_tensor **y) { return td_pow(x, 0.0f, y); }
static td_status pow3_op(td_tensor *x, td_tensor **y) { return td_pow(x, 3.0f, y); }
static td_status sqrt_op(td_tensor *x, td_tensor **y) { return td_sqrt(x, y); }
static td_status log_op(td_tensor *x, td_tensor **y) { return td_log(x, y); }
static td_status mul_scalar_op(td_tensor *x, td_tensor **y) { return td_mul_scalar(x, -3, y); }
static td_status neg_op(td_tensor *x, td_tensor **y) { return td_neg(x, y); }

static void test_unary_gradient_rules(void **state) {
  (void)state;
  int64_t s5[] = {5};
  const float xv[] = {-2, -1, 0, 1, 4};
  td_tensor *x = tensor_f32(1, s5, xv), *g;
  g = unary_grad(abs_op, x, NULL); /* sign(x), 0 at 0 */
  assert_values_rel(g, (const float[]){-1, -1, 0, 1, 1}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(clamp_op, x, NULL); /* passes on lo <= x <= hi, bounds included */
  assert_values_rel(g, (const float[]){0, 1, 1, 1, 0}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(pow0_op, x, NULL); /* exactly 0, even at x = 0 */
  assert_values_rel(g, (const float[]){0, 0, 0, 0, 0}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(pow3_op, x, NULL);
  assert_values_rel(g, (const float[]){12, 3, 0, 3, 48}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(mul_scalar_op, x, NULL);
  assert_values_rel(g, (const float[]){-3, -3, -3, -3, -3}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(neg_op, x, NULL);
  assert_values_rel(g, (const float[]){-1, -1, -1, -1, -1}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(sqrt_op, x, NULL); /* 1 / (2 sqrt x): NaN below 0, inf at 0 */
  assert_values_rel(g, (const float[]){NAN, NAN, INFINITY, 0.5f, 0.25f}, 5, 0);
  td_tensor_release(g);
  g = unary_grad(log_op, x, NULL); /* 1 / x, whatever the domain */
  assert_values_rel(g, (const float[]){-0.5f, -1, INFINITY, 1, 0.25f}, 5, 0);
  td_tensor_release(g);
  td_tensor_release(x);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_errors(void **state) {
  (void)state;
  int64_t s23[] = {2, 3}, s4[] = {4}, s3[] = {3};
  td_tensor *a, *b, *i, *f3, *y = (td_tensor *)0x1;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, s23, &a), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, s4, &b), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, s3, &f3), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, s3, &i), TD_OK);
  binary_fn ops[] = {td_add, td_sub, td_mul, td_div, td_maximum, td_minimum};
  const char *names[] = {"add:", "sub:", "mul:", "div:", "maximum:", "minimum:"};
  for (int k = 0; k < 6; k++) {
    assert_error(ops[k](a, b, &y), TD_ERR_INVALID_ARGUMENT, names[k], "[2,3]", "[4]", "broadcast");
    assert_null(y);
    assert_error(ops[k](a, i, &y), TD_ERR_INVALID_ARGUMENT, names[k], "float32", "int64", "[2,3]",
                 "[3]");
    assert_null(y);
    assert_error(ops[k](i, f3, &y), TD_ERR_INVALID_ARGUMENT, names[k], "int64", "[3]");
  }
  unary_fn unary[] = {td_neg, td_exp, td_log, td_sqrt, td_abs};
  const char *unames[] = {"neg:", "exp:", "log:", "sqrt:", "abs:"};
  for (int k = 0; k < 5; k++)
    assert_error(unary[k](i, &y), TD_ERR_INVALID_ARGUMENT, unames[k], "int64 [3]");
  assert_error(td_pow(i, 2, &y), TD_ERR_INVALID_ARGUMENT, "pow:", "int64 [3]");
  assert_error(td_clamp(i, 0, 1, &y), TD_ERR_INVALID_ARGUMENT, "clamp:", "int64");
  assert_error(td_add_scalar(i, 1, &y), TD_ERR_INVALID_ARGUMENT, "add_scalar:", "int64");
  assert_error(td_mul_scalar(i, 1, &y), TD_ERR_INVALID_ARGUMENT, "mul_scalar:", "int64");
  assert_error(td_clamp(a, 2, 1, &y), TD_ERR_INVALID_ARGUMENT, "clamp:", "lo 2", "hi 1");
  assert_null(y);
  assert_error(td_clamp(a, NAN, 1, &y), TD_ERR_INVALID_ARGUMENT, "clamp:", "NaN");
  assert_int_equal(td_clamp(a, 1, 1, &y), TD_OK); /* lo == hi is fine */
  td_tensor_release(y);
  td_tensor_release(a);
  td_tensor_release(b);
  td_tensor_release(f3);
  td_tensor_release(i);
}

/* ---- the vectorizable math helpers against libm in double -------------------- */

static float ew_exp(float x) { return td_ew_expf(x); }
static float ew_log(float x) { return td_ew_logf(x); }

static void test_math_helpers(void **state) {
  (void)state;
  assert_ulp_sweep(ew_exp, exp, 1.5, 0);
  assert_ulp_sweep(ew_log, log, 1.5, 0);
  assert_true(td_ew_expf(-INFINITY) == 0);
  assert_true(td_ew_expf(89.0f) == INFINITY);
  assert_true(td_ew_logf(-0.0f) == -INFINITY);
  assert_true(isnan(td_ew_logf(-INFINITY)));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_binary_paths),
      cmocka_unit_test(test_binary_values),
      cmocka_unit_test(test_binary_gradients),
      cmocka_unit_test(test_maximum_minimum_ties_split),
      cmocka_unit_test(test_strided_output_gradient),
      cmocka_unit_test(test_unary_values),
      cmocka_unit_test(test_unary_strided),
      cmocka_unit_test(test_unary_gradient_rules),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_math_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
