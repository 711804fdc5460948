/* test_reduce.c - reductions: values against a naive reference, ties, NaN, empty dims, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/functional.h"
#include "functional/vec.h"
#include "tensor/random.h"

static td_tensor *randn(int ndim, const int64_t *shape, uint64_t seed) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  td_tensor *t;
  assert_int_equal(td_tensor_rand_normal(&rng, ndim, shape, 0, 1, &t), TD_OK);
  return t;
}

/* ---- a naive reference: every output element scans the whole input ----- */

enum { REF_SUM, REF_MEAN, REF_MAX, REF_MIN, REF_VAR1, REF_LSE };

/* x contiguous; reduced[d] marks the reduced dims; result in output
 * row-major order (the kept dims' order). */
static void reference(const td_tensor *x, const bool *reduced, int kind, double *out) {
  int64_t kept_numel = 1;
  for (int d = 0; d < x->ndim; d++)
    if (!reduced[d]) kept_numel *= x->shape[d];
  const float *xp = td_tensor_f32(x);
  for (int64_t o = 0; o < kept_numel; o++) {
    double s = 0, s2 = 0, mx = -INFINITY, mn = INFINITY;
    int64_t n = 0;
    for (int64_t j = 0; j < x->numel; j++) {
      /* kept coordinates of element j, flattened, must equal o */
      int64_t rem = j, k = 0, kstride = 1;
      for (int d = x->ndim - 1; d >= 0; d--) {
        int64_t c = rem % x->shape[d];
        rem /= x->shape[d];
        if (!reduced[d]) k += c * kstride, kstride *= x->shape[d];
      }
      if (k != o) continue;
      double v = xp[j];
      s += v, s2 += v * v, n++;
      mx = v > mx ? v : mx, mn = v < mn ? v : mn;
    }
    switch (kind) {
    case REF_SUM: out[o] = s; break;
    case REF_MEAN: out[o] = s / (double)n; break;
    case REF_MAX: out[o] = mx; break;
    case REF_MIN: out[o] = mn; break;
    case REF_VAR1: out[o] = (s2 - s * s / (double)n) / (double)(n - 1); break;
    case REF_LSE: {
      double e = 0;
      for (int64_t j = 0; j < x->numel; j++) {
        int64_t rem = j, k = 0, kstride = 1;
        for (int d = x->ndim - 1; d >= 0; d--) {
          int64_t c = rem % x->shape[d];
          rem /= x->shape[d];
          if (!reduced[d]) k += c * kstride, kstride *= x->shape[d];
        }
        if (k == o) e += exp(xp[j] - mx);
      }
      out[o] = mx + log(e);
      break;
    }
    }
  }
}

/* Every non-empty subset of the axes of a [2,3,4,5] tensor, with axes given
 * in both signs and keepdims both ways, for every reduction, against the
 * reference: covers the row, column, middle-block and permuted paths. */
static void test_all_axis_subsets_match_reference(void **state) {
  (void)state;
  int64_t shape[] = {2, 3, 4, 5};
  td_tensor *x = randn(4, shape, 7);
  double ref[120];
  for (int mask = 1; mask < 16; mask++) {
    int axes[4], naxes = 0;
    bool reduced[4];
    for (int d = 0; d < 4; d++) {
      reduced[d] = mask & (1 << d);
      if (reduced[d]) axes[naxes++] = (mask & 1) ? d - 4 : d; /* negatives on some sets */
    }
    for (int keep = 0; keep < 2; keep++) {
      for (int kind = REF_SUM; kind <= REF_LSE; kind++) {
        td_tensor *y;
        td_status st;
        switch (kind) {
        case REF_SUM: st = td_sum(x, axes, naxes, keep, &y); break;
        case REF_MEAN: st = td_mean(x, axes, naxes, keep, &y); break;
        case REF_MAX: st = td_max(x, axes, naxes, keep, &y); break;
        case REF_MIN: st = td_min(x, axes, naxes, keep, &y); break;
        case REF_VAR1: st = td_var(x, axes, naxes, 1, keep, &y); break;
        default: st = td_logsumexp(x, axes, naxes, keep, &y); break;
        }
        assert_int_equal(st, TD_OK);
        int64_t want[4];
        int nd = 0;
        for (int d = 0; d < 4; d++)
          if (!reduced[d] || keep) want[nd++] = reduced[d] ? 1 : shape[d];
        assert_shape(y, nd, want);
        reference(x, reduced, kind, ref);
        for (int64_t i = 0; i < y->numel; i++)
          if (fabs(td_tensor_f32(y)[i] - ref[i]) > 1e-5 * (1 + fabs(ref[i])))
            fail_msg("mask %d keep %d kind %d elem %lld: %g vs %g", mask, keep, kind, (long long)i,
                     td_tensor_f32(y)[i], ref[i]);
        td_tensor_release(y);
      }
    }
  }
  td_tensor_release(x);
}

static void test_sum_mean_small_values(void **state) {
  (void)state;
  int64_t shape[] = {2, 3};
  float d[] = {0, 1, 2, 3, 4, 5};
  td_tensor *x = tensor_f32(2, shape, d), *y;
  int ax0[] = {0}, ax1[] = {-1};
  assert_int_equal(td_sum(x, ax0, 1, false, &y), TD_OK);
  assert_shape(y, 1, (int64_t[]){3});
  assert_float_equal(td_tensor_f32(y)[0], 3, 0);
  assert_float_equal(td_tensor_f32(y)[2], 7, 0);
  td_tensor_release(y);
  assert_int_equal(td_mean(x, ax1, 1, true, &y), TD_OK);
  assert_shape(y, 2, (int64_t[]){2, 1});
  assert_float_equal(td_tensor_f32(y)[0], 1, 1e-7);
  assert_float_equal(td_tensor_f32(y)[1], 4, 1e-7);
  td_tensor_release(y);
  assert_int_equal(td_sum(x, NULL, 0, false, &y), TD_OK);
  assert_int_equal(y->ndim, 0);
  assert_float_equal(td_tensor_f32(y)[0], 15, 0);
  td_tensor_release(y);
  assert_int_equal(td_sum(x, NULL, 0, true, &y), TD_OK);
  assert_shape(y, 2, (int64_t[]){1, 1});
  td_tensor_release(y);
  td_tensor_release(x);
}

/* A long sum of values that float accumulation would round away. */
static void test_sum_accumulates_in_double(void **state) {
  (void)state;
  int64_t n = 1 << 20;
  td_tensor *x;
  assert_int_equal(td_tensor_full(TD_FLOAT32, 1, &n, 0.1, &x), TD_OK);
  td_tensor *y;
  assert_int_equal(td_sum(x, NULL, 0, false, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], (double)0.1f * n, 1e-2);
  td_tensor_release(y);
  td_tensor_release(x);
}

static void test_strided_input(void **state) {
  (void)state;
  int64_t shape[] = {2, 3};
  float d[] = {0, 1, 2, 3, 4, 5};
  td_tensor *x = tensor_f32(2, shape, d), *t, *y;
  assert_int_equal(td_tensor_transpose(x, 0, 1, &t), TD_OK); /* [3,2]: rows (0,3),(1,4),(2,5) */
  int ax[] = {1};
  assert_int_equal(td_sum(t, ax, 1, false, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], 3, 0);
  assert_float_equal(td_tensor_f32(y)[1], 5, 0);
  assert_float_equal(td_tensor_f32(y)[2], 7, 0);
  td_tensor_release(y);
  td_tensor *a;
  assert_int_equal(td_argmax(t, 0, false, &a), TD_OK);
  assert_int_equal(a->dtype, TD_INT64);
  assert_int_equal(td_tensor_i64(a)[0], 2);
  assert_int_equal(td_tensor_i64(a)[1], 2);
  td_tensor_release(a);
  td_tensor_release(t);
  td_tensor_release(x);
}

/* The gradient of x under op, with dy = ones. */
static td_tensor *grad_of(td_status (*op)(td_tensor *, const int *, int, bool, td_tensor **),
                          td_tensor *x, const int *axes, int naxes) {
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  td_tensor *y;
  assert_int_equal(op(x, axes, naxes, false, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  td_tensor *g = td_tensor_retain(x->grad);
  td_tensor_release(y);
  td_gm_destroy(gm);
  TD_RELEASE(x->grad);
  return g;
}

static void test_max_min_split_gradient_among_ties(void **state) {
  (void)state;
  int64_t shape[] = {2, 4};
  float d[] = {1, 3, 3, 2, 5, 5, 5, -1};
  td_tensor *x = tensor_f32(2, shape, d);
  int ax[] = {1};
  td_tensor *g = grad_of(td_max, x, ax, 1);
  float want[] = {0, 0.5f, 0.5f, 0, 1.0f / 3, 1.0f / 3, 1.0f / 3, 0};
  for (int i = 0; i < 8; i++)
    assert_float_equal(td_tensor_f32(g)[i], want[i], 1e-7);
  td_tensor_release(g);
  /* column reduction (leading axis) takes the other kernel path */
  int ax0[] = {0};
  g = grad_of(td_min, x, ax0, 1);
  float want_min[] = {1, 1, 1, 0, 0, 0, 0, 1};
  for (int i = 0; i < 8; i++)
    assert_float_equal(td_tensor_f32(g)[i], want_min[i], 0);
  td_tensor_release(g);
  td_tensor_release(x);
}

static void test_nan_propagates(void **state) {
  (void)state;
  int64_t shape[] = {3};
  float d[] = {1, NAN, 2};
  td_tensor *x = tensor_f32(1, shape, d), *y;
  assert_int_equal(td_max(x, NULL, 0, false, &y), TD_OK);
  assert_true(isnan(td_tensor_f32(y)[0]));
  td_tensor_release(y);
  assert_int_equal(td_min(x, NULL, 0, false, &y), TD_OK);
  assert_true(isnan(td_tensor_f32(y)[0]));
  td_tensor_release(y);
  assert_int_equal(td_argmax(x, 0, false, &y), TD_OK);
  assert_int_equal(td_tensor_i64(y)[0], 1); /* NaN counts as the maximum */
  td_tensor_release(y);
  td_tensor_release(x);
}

static void test_argmax_first_of_ties_and_keepdims(void **state) {
  (void)state;
  int64_t shape[] = {2, 3};
  float d[] = {1, 3, 3, 7, 2, 7};
  td_tensor *x = tensor_f32(2, shape, d), *y;
  assert_int_equal(td_argmax(x, -1, true, &y), TD_OK);
  assert_shape(y, 2, (int64_t[]){2, 1});
  assert_int_equal(td_tensor_i64(y)[0], 1);
  assert_int_equal(td_tensor_i64(y)[1], 0);
  td_tensor_release(y);
  assert_int_equal(td_argmax(x, 0, false, &y), TD_OK);
  assert_shape(y, 1, (int64_t[]){3});
  assert_int_equal(td_tensor_i64(y)[0], 1);
  assert_int_equal(td_tensor_i64(y)[1], 0);
  assert_int_equal(td_tensor_i64(y)[2], 1);
  td_tensor_release(y);
  td_tensor_release(x);
}

/* argmax has no backward, so it is never put on the tape. */
static void test_argmax_is_not_recorded(void **state) {
  (void)state;
  int64_t shape[] = {4};
  float d[] = {1, 2, 0, -1};
  td_tensor *x = tensor_f32(1, shape, d), *y;
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  assert_int_equal(td_argmax(x, 0, false, &y), TD_OK);
  assert_int_equal(td_gm_tape_length(gm), 0);
  assert_int_equal(td_tensor_i64(y)[0], 1);
  td_tensor_release(y);
  td_gm_destroy(gm);
  td_tensor_release(x);
}

static void test_var_corrections(void **state) {
  (void)state;
  int64_t shape[] = {4};
  float d[] = {1, 2, 3, 4};
  td_tensor *x = tensor_f32(1, shape, d), *y;
  assert_int_equal(td_var(x, NULL, 0, 1, false, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], 5.0 / 3, 1e-6);
  td_tensor_release(y);
  assert_int_equal(td_var(x, NULL, 0, 0, false, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], 1.25, 1e-6);
  td_tensor_release(y);
  /* one element, unbiased: 0 / 0 = NaN, as PyTorch */
  int64_t one[] = {1};
  td_tensor *s = tensor_f32(1, one, d);
  assert_int_equal(td_var(s, NULL, 0, 1, false, &y), TD_OK);
  assert_true(isnan(td_tensor_f32(y)[0]));
  td_tensor_release(y);
  td_tensor_release(s);
  td_tensor_release(x);
}

static void test_var_gradient(void **state) {
  (void)state;
  int64_t shape[] = {4};
  float d[] = {1, 2, 3, 6}; /* mean 3 */
  td_tensor *x = tensor_f32(1, shape, d);
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  td_tensor *y;
  assert_int_equal(td_var(x, NULL, 0, 1, false, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  /* d var / dx = 2 (x - mean) / (n - 1) */
  float want[] = {-4.0f / 3, -2.0f / 3, 0, 2};
  for (int i = 0; i < 4; i++)
    assert_float_equal(td_tensor_f32(x->grad)[i], want[i], 1e-6);
  td_tensor_release(y);
  td_gm_destroy(gm);
  td_tensor_release(x);
}

static void test_logsumexp_stable_and_infinite(void **state) {
  (void)state;
  int64_t shape[] = {2, 2};
  float d[] = {1000, 1000, -INFINITY, -INFINITY};
  td_tensor *x = tensor_f32(2, shape, d), *y;
  int ax[] = {1};
  assert_int_equal(td_logsumexp(x, ax, 1, false, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], 1000 + log(2), 1e-3);
  assert_true(isinf(td_tensor_f32(y)[1]) && td_tensor_f32(y)[1] < 0);
  td_tensor_release(y);
  /* the same on the column path */
  int ax0[] = {0};
  float dt[] = {1000, -INFINITY, 1000, -INFINITY};
  td_tensor *xt = tensor_f32(2, shape, dt);
  assert_int_equal(td_logsumexp(xt, ax0, 1, false, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], 1000 + log(2), 1e-3);
  assert_true(isinf(td_tensor_f32(y)[1]) && td_tensor_f32(y)[1] < 0);
  td_tensor_release(y);
  td_tensor_release(xt);
  td_tensor_release(x);
}

static void test_empty_dims(void **state) {
  (void)state;
  int64_t shape[] = {0, 3};
  td_tensor *x, *y;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, shape, &x), TD_OK);
  int ax0[] = {0}, ax1[] = {1};
  assert_int_equal(td_sum(x, ax0, 1, false, &y), TD_OK);
  assert_shape(y, 1, (int64_t[]){3});
  for (int i = 0; i < 3; i++)
    assert_float_equal(td_tensor_f32(y)[i], 0, 0);
  td_tensor_release(y);
  assert_int_equal(td_mean(x, ax0, 1, false, &y), TD_OK);
  for (int i = 0; i < 3; i++)
    assert_true(isnan(td_tensor_f32(y)[i]));
  td_tensor_release(y);
  /* reducing the non-empty axis of an empty tensor is an empty result */
  assert_int_equal(td_max(x, ax1, 1, false, &y), TD_OK);
  assert_shape(y, 1, (int64_t[]){0});
  td_tensor_release(y);

  assert_error(td_max(x, ax0, 1, false, &y), TD_ERR_INVALID_ARGUMENT,
               "max: cannot reduce over axis 0 of extent 0", "[0,3]");
  assert_null(y);
  assert_error(td_min(x, NULL, 0, false, &y), TD_ERR_INVALID_ARGUMENT,
               "min: cannot reduce over axis 0", "[0,3]");
  assert_error(td_argmax(x, -2, false, &y), TD_ERR_INVALID_ARGUMENT,
               "argmax: cannot reduce over axis 0", "[0,3]");
  td_tensor_release(x);
}

static void test_scalar_input(void **state) {
  (void)state;
  td_tensor *x, *y;
  assert_int_equal(td_tensor_full(TD_FLOAT32, 0, (int64_t[]){0}, 2.5, &x), TD_OK);
  int ax[] = {-1};
  assert_int_equal(td_sum(x, ax, 1, false, &y), TD_OK);
  assert_int_equal(y->ndim, 0);
  assert_float_equal(td_tensor_f32(y)[0], 2.5, 0);
  td_tensor_release(y);
  assert_int_equal(td_argmax(x, 0, false, &y), TD_OK);
  assert_int_equal(td_tensor_i64(y)[0], 0);
  td_tensor_release(y);
  td_tensor_release(x);
}

/* The vectorizable exp behind logsumexp and cross_entropy: within 2 ulp
 * over the whole normal range, and IEEE results at the edges. */
static void test_vexpf(void **state) {
  (void)state;
  double worst = 0;
  for (double x = -87.3; x < 88.7; x += 0.00731) {
    float xf = (float)x;
    double ref = exp((double)xf), err = fabs(td_vexpf(xf) - ref) / ref;
    worst = err > worst ? err : worst;
  }
  assert_true(worst < 2 * 0x1p-23);
  assert_float_equal(td_vexpf(0.0f), 1.0f, 0);
  assert_float_equal(td_vexpf(-INFINITY), 0.0f, 0);
  assert_float_equal(td_vexpf(-1000.0f), 0.0f, 0);
  assert_true(isinf(td_vexpf(INFINITY)) && isinf(td_vexpf(89.0f)));
  assert_true(isnan(td_vexpf(NAN)));
}

static void test_errors(void **state) {
  (void)state;
  int64_t shape[] = {2, 3};
  td_tensor *x, *y, *xi;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 2, shape, &x), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, shape, &xi), TD_OK);

  assert_error(td_sum(xi, NULL, 0, false, &y), TD_ERR_INVALID_ARGUMENT,
               "sum: expected float32 input, got int64");
  assert_null(y);
  assert_error(td_argmax(xi, 0, false, &y), TD_ERR_INVALID_ARGUMENT,
               "argmax: expected float32 input, got int64");

  int out_of_range[] = {2};
  assert_error(td_mean(x, out_of_range, 1, false, &y), TD_ERR_INVALID_ARGUMENT,
               "mean: axis 2 is out of range", "[2,3]");
  assert_null(y);
  int neg_out[] = {-3};
  assert_error(td_var(x, neg_out, 1, 1, false, &y), TD_ERR_INVALID_ARGUMENT,
               "var: axis -3 is out of range", "[2,3]");
  assert_error(td_argmax(x, 5, false, &y), TD_ERR_INVALID_ARGUMENT,
               "argmax: axis 5 is out of range", "[2,3]");

  int dup[] = {1, -1};
  assert_error(td_max(x, dup, 2, false, &y), TD_ERR_INVALID_ARGUMENT, "max: axis -1 is given twice",
               "[2,3]");
  assert_null(y);
  int dup2[] = {0, 0};
  assert_error(td_logsumexp(x, dup2, 2, true, &y), TD_ERR_INVALID_ARGUMENT,
               "logsumexp: axis 0 is given twice", "[2,3]");

  int many[9] = {0};
  assert_error(td_min(x, many, 9, false, &y), TD_ERR_INVALID_ARGUMENT, "min: 9 axes given");
  assert_error(td_sum(x, many, -1, false, &y), TD_ERR_INVALID_ARGUMENT, "sum: -1 axes given");
  assert_error(td_sum(x, NULL, 1, false, &y), TD_ERR_INVALID_ARGUMENT, "sum: axes is NULL");

  /* params that only td_apply can pass: argmax over two axes, NULL input */
  td_reduce_params p = {.naxes = 2, .axes = {0, 1}};
  assert_error(td_apply(TD_OP_ARGMAX, &p, &x, 1, &y), TD_ERR_INVALID_ARGUMENT,
               "argmax: reduces one axis, got 2 axes");
  td_tensor *none = NULL;
  assert_error(td_apply(TD_OP_SUM, &p, &none, 1, &y), TD_ERR_INVALID_ARGUMENT,
               "sum: input is NULL");
  assert_error(td_apply(TD_OP_SUM, NULL, &x, 1, &y), TD_ERR_INVALID_ARGUMENT,
               "sum: params are NULL");
  td_tensor_release(xi);
  td_tensor_release(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_axis_subsets_match_reference),
      cmocka_unit_test(test_sum_mean_small_values),
      cmocka_unit_test(test_sum_accumulates_in_double),
      cmocka_unit_test(test_strided_input),
      cmocka_unit_test(test_max_min_split_gradient_among_ties),
      cmocka_unit_test(test_nan_propagates),
      cmocka_unit_test(test_argmax_first_of_ties_and_keepdims),
      cmocka_unit_test(test_argmax_is_not_recorded),
      cmocka_unit_test(test_var_corrections),
      cmocka_unit_test(test_var_gradient),
      cmocka_unit_test(test_logsumexp_stable_and_infinite),
      cmocka_unit_test(test_empty_dims),
      cmocka_unit_test(test_scalar_input),
      cmocka_unit_test(test_vexpf),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
