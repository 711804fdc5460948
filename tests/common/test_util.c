/* test_util.c - assertions and tensor builders shared by the cmocka unit tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "common/test_util.h"

#include "autodiff/grad_manager.h"

const char *message_lacks(const char *const *needles) {
  for (; *needles; needles++)
    if (!strstr(td_error_message(), *needles)) return *needles;
  return NULL;
}

td_tensor *tensor_f32(int ndim, const int64_t *shape, const float *data) {
  td_tensor *t;
  assert_int_equal(td_tensor_from_data(TD_FLOAT32, ndim, shape, data, &t), TD_OK);
  return t;
}

td_tensor *tensor_i64(int ndim, const int64_t *shape, const int64_t *data) {
  td_tensor *t;
  assert_int_equal(td_tensor_from_data(TD_INT64, ndim, shape, data, &t), TD_OK);
  return t;
}

td_tensor *vec_f32(int64_t n, const float *data) { return tensor_f32(1, &n, data); }

td_tensor *ramp(int ndim, const int64_t *shape, float start, float step) {
  td_tensor *t;
  assert_int_equal(td_tensor_empty(TD_FLOAT32, ndim, shape, &t), TD_OK);
  for (int64_t i = 0; i < t->numel; i++)
    td_tensor_f32(t)[i] = start + step * (float)i;
  return t;
}

td_tensor *iota(int ndim, const int64_t *shape) { return ramp(ndim, shape, 0, 1); }

void release_array(td_tensor **ts, size_t n) {
  for (size_t i = 0; i < n; i++)
    td_tensor_release(ts[i]);
}

void map_put(td_tensor_map *m, const char *name, td_tensor *t) {
  assert_int_equal(td_tensor_map_put(m, name, t), TD_OK);
  td_tensor_release(t);
}

void assert_shape(const td_tensor *t, int ndim, const int64_t *shape) {
  assert_int_equal(t->ndim, ndim);
  for (int d = 0; d < ndim; d++)
    assert_int_equal(t->shape[d], shape[d]);
}

void assert_values_rel(const td_tensor *t, const float *want, int64_t n, float rel_tol) {
  assert_int_equal(t->numel, n);
  assert_true(td_tensor_is_contiguous(t));
  for (int64_t i = 0; i < n; i++) {
    float got = td_tensor_f32(t)[i];
    if (isnan(want[i])) {
      if (!isnan(got)) fail_msg("element %lld: got %.9g, want NaN", (long long)i, (double)got);
    } else if (isinf(want[i]) || want[i] == 0) {
      if (got != want[i] || signbit(got) != signbit(want[i]))
        fail_msg("element %lld: got %.9g, want %.9g", (long long)i, (double)got, (double)want[i]);
    } else if (!(fabsf(got - want[i]) <= rel_tol * fabsf(want[i]))) {
      fail_msg("element %lld: got %.9g, want %.9g", (long long)i, (double)got, (double)want[i]);
    }
  }
}

void map_clone(const td_tensor_map *src, td_tensor_map *out) {
  td_tensor_map_init(out);
  for (size_t i = 0; i < src->count; i++) {
    td_tensor *c;
    assert_int_equal(td_tensor_clone(src->entries[i].tensor, &c), TD_OK);
    map_put(out, src->entries[i].name, c);
  }
  for (size_t i = 0; i < src->meta_count; i++)
    assert_int_equal(td_tensor_map_set_meta(out, src->meta[i].key, src->meta[i].value), TD_OK);
}

td_grad_manager *record_array(td_tensor **ts, size_t n) {
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(td_gm_attach(gm, ts[i]), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  return gm;
}

td_tensor *unary_grad(unary_fn fn, td_tensor *x, td_tensor *dy) {
  td_grad_manager *gm = record_grads(x);
  td_tensor *y;
  assert_int_equal(fn(x, &y), TD_OK);
  td_gm_pause(gm);
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  td_tensor_release(y);
  td_tensor *g = td_tensor_retain(x->grad);
  td_gm_destroy(gm);
  TD_RELEASE(x->grad);
  return g;
}

/* |got - want| in units of the float spacing at want. A float that overflowed
 * to inf where the exact result is beyond FLT_MAX is right, not infinitely wrong. */
static double ulp_error(float got, double want) {
  if (isnan(want)) return isnan(got) ? 0 : INFINITY;
  double a = fabs(want), ulp;
  if (isinf(got) && a >= 3.4028234663852886e38) return (got > 0) == (want > 0) ? 0 : INFINITY;
  if (isnan(got) || isinf(got)) return INFINITY;
  if (a >= 3.4028234663852886e38)
    ulp = 2.028240960365167e31; /* the ulp of FLT_MAX */
  else if (a < 1.1754943508222875e-38)
    ulp = 1.401298464324817e-45;
  else
    ulp = (double)nextafterf((float)a, INFINITY) - (double)(float)a;
  return fabs(got - want) / ulp;
}

void assert_ulp_sweep(float (*fn)(float), double (*ref)(double), double max_ulp,
                      double skip_below) {
  double worst = 0;
  float worst_x = 0;
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 9973) {
    uint32_t b32 = (uint32_t)bits;
    float x;
    memcpy(&x, &b32, sizeof x);
    double want = ref(x);
    if (want != 0 && fabs(want) < skip_below) continue;
    double e = ulp_error(fn(x), want);
    if (e > worst) worst = e, worst_x = x;
  }
  if (!(worst <= max_ulp)) fail_msg("%.2f ulp at x = %.9g", worst, (double)worst_x);
}
