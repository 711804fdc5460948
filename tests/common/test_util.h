/* test_util.h - assertions and tensor builders shared by the cmocka unit tests.
 *
 * Include after <cmocka.h> (which needs <setjmp.h> <stdarg.h> <stddef.h>
 * <stdint.h> first). The builders fail the running test instead of returning
 * a status, so a test reads as a list of values; every tensor they return is
 * a new reference the test releases.
 */
#ifndef TD_TESTS_TEST_UTIL_H
#define TD_TESTS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/grad_manager.h"
#include "io/tensor_map.h"
#include "tensor/tensor.h"

/* ---- error messages -------------------------------------------------------- */

/* `call` returns `code` and the message names every listed string:
 *   assert_error(td_relu(i, &y), TD_ERR_INVALID_ARGUMENT, "relu:", "int64 [2,3]"); */
#define assert_error(call, code, ...)                                                              \
  do {                                                                                             \
    assert_int_equal((call), (code));                                                              \
    assert_message_has(__VA_ARGS__);                                                               \
  } while (0)

/* The current error message contains every listed string (one or more). A
 * macro, so a failure is reported at the test's line. */
#define assert_message_has(...)                                                                    \
  do {                                                                                             \
    const char *lacking_ = message_lacks((const char *const[]){__VA_ARGS__, NULL});                \
    if (lacking_) fail_msg("message \"%s\" lacks \"%s\"", td_error_message(), lacking_);           \
  } while (0)

/* The first of the NULL-terminated needles the current message lacks, or NULL. */
const char *message_lacks(const char *const *needles);

/* ---- tensor builders --------------------------------------------------------- */

/* float32 / int64 tensors holding a copy of `data` (numel values, row-major). */
td_tensor *tensor_f32(int ndim, const int64_t *shape, const float *data);
td_tensor *tensor_i64(int ndim, const int64_t *shape, const int64_t *data);
td_tensor *vec_f32(int64_t n, const float *data);

/* float32 with element i = start + step * i. */
td_tensor *ramp(int ndim, const int64_t *shape, float start, float step);

/* ramp(ndim, shape, 0, 1): element i is i, so a value names its position. */
td_tensor *iota(int ndim, const int64_t *shape);

/* Releases every listed tensor (NULL ones too), without a count to keep right. */
#define release_tensors(...)                                                                       \
  release_array((td_tensor *[]){__VA_ARGS__},                                                      \
                sizeof((td_tensor *[]){__VA_ARGS__}) / sizeof(td_tensor *))
void release_array(td_tensor **ts, size_t n);

/* Puts t into m and drops the caller's reference (the map keeps its own). */
void map_put(td_tensor_map *m, const char *name, td_tensor *t);

/* Deep copy of src into out (initialised here): every tensor cloned, so later
 * in-place updates of src's tensors do not show in out; metadata copied. */
void map_clone(const td_tensor_map *src, td_tensor_map *out);

/* ---- checks on results --------------------------------------------------------- */

void assert_shape(const td_tensor *t, int ndim, const int64_t *shape);

/* t is contiguous with n elements equal to want: exactly where want is 0
 * (sign included), infinite or NaN, within rel_tol * |want| elsewhere. */
void assert_values_rel(const td_tensor *t, const float *want, int64_t n, float rel_tol);

/* A vectorizable float helper against libm in double: fn(x) within max_ulp of
 * ref(x) for every float with bit pattern k * 9973 (all exponents, both signs,
 * subnormals, infinities and NaNs). Points with 0 < |ref(x)| < skip_below are
 * skipped, where a relative bound means little (0: none). */
void assert_ulp_sweep(float (*fn)(float), double (*ref)(double), double max_ulp, double skip_below);

/* ---- gradients ---------------------------------------------------------------- */

/* A new grad manager with every listed tensor attached, recording; the test
 * destroys it:  td_grad_manager *gm = record_grads(x, w, b); */
#define record_grads(...)                                                                          \
  record_array((td_tensor *[]){__VA_ARGS__},                                                       \
               sizeof((td_tensor *[]){__VA_ARGS__}) / sizeof(td_tensor *))
td_grad_manager *record_array(td_tensor **ts, size_t n);

typedef td_status (*unary_fn)(td_tensor *x, td_tensor **y);

/* Records y = fn(x), backpropagates dy (NULL: ones) and returns a new
 * reference to x's gradient, leaving x->grad NULL as it was. */
td_tensor *unary_grad(unary_fn fn, td_tensor *x, td_tensor *dy);

#endif
