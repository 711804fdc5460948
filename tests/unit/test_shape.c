/* test_shape.c - shape ops: values, view sharing, gradients and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/op.h"
#include "functional/shape_ops.h"

/* Element `i` (row-major) of any float32 view. */
static float at(const td_tensor *t, int64_t i) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->shape[d]) * t->strides[d];
    i /= t->shape[d];
  }
  return ((const float *)t->storage->data)[off];
}

static void test_reshape_views_contiguous_and_copies_strided(void **state) {
  (void)state;
  int64_t s[] = {2, 3, 4};
  td_tensor *x = iota(3, s), *y, *tr, *z;
  int64_t target[] = {4, -1};
  assert_int_equal(td_reshape(x, 2, target, &y), TD_OK);
  int64_t want[] = {4, 6};
  assert_shape(y, 2, want);
  assert_ptr_equal(y->storage, x->storage);
  assert_ptr_not_equal(y, x);
  assert_float_equal(at(y, 23), 23.0f, 0);
  /* A transposed input is copied in its logical order. */
  assert_int_equal(td_tensor_transpose(x, 0, 2, &tr), TD_OK); /* [4,3,2] */
  int64_t flat[] = {24};
  assert_int_equal(td_reshape(tr, 1, flat, &z), TD_OK);
  assert_ptr_not_equal(z->storage, x->storage);
  assert_float_equal(at(z, 1), 12.0f, 0); /* tr[0][0][1] = x[1][0][0] */
  assert_float_equal(at(z, 2), 4.0f, 0);  /* tr[0][1][0] = x[0][1][0] */
  td_tensor_release(z);
  td_tensor_release(tr);
  td_tensor_release(y);
  td_tensor_release(x);
}

static void test_reshape_errors(void **state) {
  (void)state;
  int64_t s[] = {2, 3};
  td_tensor *x = iota(2, s), *y = NULL;
  int64_t bad[] = {4, 2};
  assert_error(td_reshape(x, 2, bad, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "[2,3]",
               "(6 elements)", "[4,2]", "(8 elements)");
  assert_null(y);
  int64_t two_infer[] = {-1, -1};
  assert_error(td_reshape(x, 2, two_infer, &y), TD_ERR_INVALID_ARGUMENT, "reshape",
               "only one dimension can be -1");
  int64_t negative[] = {-2, -3};
  assert_error(td_reshape(x, 2, negative, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "negative",
               "[-2,-3]");
  int64_t huge[] = {INT64_MAX / 2, 4};
  assert_error(td_reshape(x, 2, huge, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "overflow");
  int64_t indivisible[] = {4, -1};
  assert_error(td_reshape(x, 2, indivisible, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "[2,3]",
               "[4,-1]");
  int64_t zero_infer[] = {0, -1};
  assert_error(td_reshape(x, 2, zero_infer, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "[0,-1]");
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 6};
  assert_error(td_reshape(x, 9, nine, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "9 dimensions");
  assert_error(td_reshape(NULL, 0, NULL, &y), TD_ERR_INVALID_ARGUMENT, "reshape", "NULL");
  assert_null(y);
  td_tensor_release(x);
}

static void test_flatten_squeeze_expand_dims(void **state) {
  (void)state;
  int64_t s[] = {2, 1, 3, 1};
  td_tensor *x = iota(4, s), *y;
  assert_int_equal(td_flatten(x, 1, -1, &y), TD_OK);
  int64_t f[] = {2, 3};
  assert_shape(y, 2, f);
  assert_ptr_equal(y->storage, x->storage);
  td_tensor_release(y);

  assert_int_equal(td_squeeze(x, NULL, 0, &y), TD_OK);
  assert_shape(y, 2, f);
  td_tensor_release(y);
  int axes[] = {-1};
  assert_int_equal(td_squeeze(x, axes, 1, &y), TD_OK);
  int64_t sq[] = {2, 1, 3};
  assert_shape(y, 3, sq);
  td_tensor_release(y);

  assert_int_equal(td_expand_dims(x, 4, &y), TD_OK);
  int64_t ex[] = {2, 1, 3, 1, 1};
  assert_shape(y, 5, ex);
  td_tensor_release(y);
  assert_int_equal(td_expand_dims(x, -5, &y), TD_OK);
  int64_t ex0[] = {1, 2, 1, 3, 1};
  assert_shape(y, 5, ex0);
  td_tensor_release(y);

  td_tensor *scalar;
  assert_int_equal(td_tensor_full(TD_FLOAT32, 0, NULL, 7.0, &scalar), TD_OK);
  assert_int_equal(td_flatten(scalar, 0, -1, &y), TD_OK);
  int64_t one[] = {1};
  assert_shape(y, 1, one);
  assert_float_equal(at(y, 0), 7.0f, 0);
  td_tensor_release(y);
  td_tensor_release(scalar);
  td_tensor_release(x);
}

static void test_flatten_squeeze_expand_dims_errors(void **state) {
  (void)state;
  int64_t s[] = {2, 1, 3};
  td_tensor *x = iota(3, s), *y = NULL;
  assert_error(td_flatten(x, 2, 1, &y), TD_ERR_INVALID_ARGUMENT, "flatten", "start_dim 2",
               "end_dim 1");
  assert_error(td_flatten(x, 0, 3, &y), TD_ERR_INVALID_ARGUMENT, "flatten", "axis 3");
  int not_one[] = {2};
  assert_error(td_squeeze(x, not_one, 1, &y), TD_ERR_INVALID_ARGUMENT, "squeeze", "dim 2",
               "extent 3", "[2,1,3]");
  int twice[] = {1, -2};
  assert_error(td_squeeze(x, twice, 2, &y), TD_ERR_INVALID_ARGUMENT, "squeeze", "listed twice");
  int out_of_range[] = {3};
  assert_error(td_squeeze(x, out_of_range, 1, &y), TD_ERR_INVALID_ARGUMENT, "squeeze", "axis 3");
  assert_error(td_squeeze(x, NULL, 1, &y), TD_ERR_INVALID_ARGUMENT, "squeeze", "1 axes");
  assert_error(td_squeeze(x, not_one, -1, &y), TD_ERR_INVALID_ARGUMENT, "squeeze", "-1 axes");
  assert_error(td_expand_dims(x, 4, &y), TD_ERR_INVALID_ARGUMENT, "expand_dims", "axis 4");
  assert_error(td_expand_dims(x, -5, &y), TD_ERR_INVALID_ARGUMENT, "expand_dims", "axis -5");
  int64_t eight[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  td_tensor *big = iota(8, eight);
  assert_error(td_expand_dims(big, 0, &y), TD_ERR_INVALID_ARGUMENT, "expand_dims", "8 dimensions");
  assert_error(td_flatten(NULL, 0, 1, &y), TD_ERR_INVALID_ARGUMENT, "flatten", "NULL");
  assert_error(td_squeeze(NULL, NULL, 0, &y), TD_ERR_INVALID_ARGUMENT, "squeeze", "NULL");
  assert_error(td_expand_dims(NULL, 0, &y), TD_ERR_INVALID_ARGUMENT, "expand_dims", "NULL");
  assert_null(y);
  td_tensor_release(big);
  td_tensor_release(x);
}

static void test_permute_transpose(void **state) {
  (void)state;
  int64_t s[] = {2, 3, 4};
  td_tensor *x = iota(3, s), *y;
  int perm[] = {2, 0, 1};
  assert_int_equal(td_permute(x, perm, &y), TD_OK);
  int64_t want[] = {4, 2, 3};
  assert_shape(y, 3, want);
  assert_ptr_equal(y->storage, x->storage);
  /* y[3][1][2] == x[1][2][3] == 23 */
  assert_float_equal(at(y, 3 * 6 + 1 * 3 + 2), 23.0f, 0);
  td_tensor_release(y);
  assert_int_equal(td_transpose(x, -1, 0, &y), TD_OK);
  int64_t tw[] = {4, 3, 2};
  assert_shape(y, 3, tw);
  assert_float_equal(at(y, 1 * 6 + 2 * 2 + 1), 21.0f, 0); /* y[1][2][1] = x[1][2][1] */
  td_tensor_release(y);

  int dup[] = {0, 0, 1};
  assert_error(td_permute(x, dup, &y), TD_ERR_INVALID_ARGUMENT, "permute", "appears twice");
  int range[] = {0, 1, 3};
  assert_error(td_permute(x, range, &y), TD_ERR_INVALID_ARGUMENT, "permute", "axis 3");
  assert_error(td_permute(x, NULL, &y), TD_ERR_INVALID_ARGUMENT, "permute", "no axes");
  assert_error(td_transpose(x, 0, 5, &y), TD_ERR_INVALID_ARGUMENT, "transpose", "axis 5");
  assert_error(td_transpose(NULL, 0, 1, &y), TD_ERR_INVALID_ARGUMENT, "transpose", "NULL");
  assert_error(td_permute(NULL, perm, &y), TD_ERR_INVALID_ARGUMENT, "permute", "NULL");
  /* Through td_apply, params whose rank disagrees with the input. */
  td_shape_params p = {.ndim = 2, .perm = {1, 0}};
  assert_error(td_apply(TD_OP_PERMUTE, &p, &x, 1, &y), TD_ERR_INVALID_ARGUMENT, "permute", "2 axes",
               "[2,3,4]");
  assert_null(y);
  td_tensor_release(x);
}

static void test_concat_values_and_errors(void **state) {
  (void)state;
  int64_t sa[] = {2, 1}, sb[] = {2, 2};
  td_tensor *a = iota(2, sa), *b = iota(2, sb), *y = NULL;
  td_tensor *xs[] = {a, b};
  assert_int_equal(td_concat(xs, 2, 1, &y), TD_OK);
  int64_t want_shape[] = {2, 3};
  assert_shape(y, 2, want_shape);
  float want[] = {0, 0, 1, 1, 2, 3};
  for (int i = 0; i < 6; i++)
    assert_float_equal(at(y, i), want[i], 0);
  td_tensor_release(y);

  assert_error(td_concat(xs, 2, 0, &y), TD_ERR_INVALID_ARGUMENT, "concat", "input 1", "[2,2]",
               "[2,1]", "axis 0");
  assert_error(td_concat(xs, 2, 2, &y), TD_ERR_INVALID_ARGUMENT, "concat", "axis 2");
  assert_error(td_concat(xs, 0, 0, &y), TD_ERR_INVALID_ARGUMENT, "concat", "at least one");
  int64_t s3[] = {2, 1, 1};
  td_tensor *c = iota(3, s3);
  td_tensor *rank[] = {a, c};
  assert_error(td_concat(rank, 2, 0, &y), TD_ERR_INVALID_ARGUMENT, "concat", "[2,1,1]", "[2,1]",
               "different ranks");
  td_tensor *ints;
  assert_int_equal(td_tensor_zeros(TD_INT64, 2, sa, &ints), TD_OK);
  td_tensor *mixed[] = {a, ints};
  assert_error(td_concat(mixed, 2, 1, &y), TD_ERR_INVALID_ARGUMENT, "concat", "int64", "float32");
  td_tensor *with_null[] = {a, NULL};
  assert_error(td_concat(with_null, 2, 1, &y), TD_ERR_INVALID_ARGUMENT, "concat", "input 1",
               "NULL");
  td_tensor *scalar;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 0, NULL, &scalar), TD_OK);
  td_tensor *scalars[] = {scalar, scalar};
  assert_error(td_concat(scalars, 2, 0, &y), TD_ERR_INVALID_ARGUMENT, "concat", "zero-dimensional");
  assert_null(y);

  /* int64 tensors concatenate too (no gradient involved). */
  td_tensor *ints2[] = {ints, ints};
  assert_int_equal(td_concat(ints2, 2, 0, &y), TD_OK);
  assert_int_equal(y->dtype, TD_INT64);
  assert_int_equal(y->shape[0], 4);
  td_tensor_release(y);
  td_tensor_release(scalar);
  td_tensor_release(ints);
  td_tensor_release(c);
  td_tensor_release(a);
  td_tensor_release(b);
}

static void test_concat_gradient_slices(void **state) {
  (void)state;
  int64_t sa[] = {1, 2}, sb[] = {2, 2};
  td_tensor *a = iota(2, sa), *b = iota(2, sb), *y, *dy;
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, a), TD_OK);
  assert_int_equal(td_gm_attach(gm, b), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  td_tensor *xs[] = {a, b};
  assert_int_equal(td_concat(xs, 2, 0, &y), TD_OK);
  td_gm_pause(gm);
  int64_t sy[] = {3, 2};
  dy = iota(2, sy); /* 0..5 */
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  assert_float_equal(at(a->grad, 1), 1.0f, 0);
  assert_float_equal(at(b->grad, 0), 2.0f, 0);
  assert_float_equal(at(b->grad, 3), 5.0f, 0);
  td_tensor_release(dy);
  td_tensor_release(y);
  td_gm_destroy(gm);
  td_tensor_release(a);
  td_tensor_release(b);
}

static void test_broadcast_to(void **state) {
  (void)state;
  int64_t s[] = {3, 1};
  td_tensor *x = iota(2, s), *y = NULL;
  int64_t target[] = {2, 3, 4};
  assert_int_equal(td_broadcast_to(x, 3, target, &y), TD_OK);
  assert_shape(y, 3, target);
  assert_ptr_equal(y->storage, x->storage);
  assert_float_equal(at(y, 12 + 2 * 4 + 3), 2.0f, 0);
  td_tensor_release(y);
  y = NULL;
  int64_t bad[] = {3, 4, 2};
  assert_error(td_broadcast_to(x, 3, bad, &y), TD_ERR_INVALID_ARGUMENT, "broadcast_to", "[3,1]",
               "[3,4,2]");
  int64_t fewer[] = {4};
  assert_error(td_broadcast_to(x, 1, fewer, &y), TD_ERR_INVALID_ARGUMENT, "broadcast_to", "[3,1]",
               "[4]");
  int64_t negative[] = {3, -1};
  assert_error(td_broadcast_to(x, 2, negative, &y), TD_ERR_INVALID_ARGUMENT, "broadcast_to",
               "negative");
  assert_error(td_broadcast_to(x, 9, target, &y), TD_ERR_INVALID_ARGUMENT, "broadcast_to",
               "9 dimensions");
  assert_error(td_broadcast_to(NULL, 2, target, &y), TD_ERR_INVALID_ARGUMENT, "broadcast_to",
               "NULL");
  assert_null(y);
  td_tensor_release(x);
}

static void test_diag(void **state) {
  (void)state;
  int64_t s1[] = {3};
  td_tensor *v = iota(1, s1), *y;
  assert_int_equal(td_diag(v, &y), TD_OK);
  int64_t sq[] = {3, 3};
  assert_shape(y, 2, sq);
  float want[] = {0, 0, 0, 0, 1, 0, 0, 0, 2};
  for (int i = 0; i < 9; i++)
    assert_float_equal(at(y, i), want[i], 0);
  td_tensor_release(y);

  int64_t s2[] = {2, 3};
  td_tensor *m = iota(2, s2), *mt;
  assert_int_equal(td_diag(m, &y), TD_OK);
  assert_int_equal(y->shape[0], 2);
  assert_float_equal(at(y, 0), 0.0f, 0);
  assert_float_equal(at(y, 1), 4.0f, 0);
  td_tensor_release(y);
  assert_int_equal(td_tensor_transpose(m, 0, 1, &mt), TD_OK); /* [3,2], strided */
  assert_int_equal(td_diag(mt, &y), TD_OK);
  assert_float_equal(at(y, 1), 4.0f, 0);
  td_tensor_release(y);

  td_tensor *iv;
  assert_int_equal(td_tensor_arange(TD_INT64, 5, 7, 1, &iv), TD_OK);
  assert_int_equal(td_diag(iv, &y), TD_OK);
  assert_int_equal(td_tensor_i64(y)[0], 5);
  assert_int_equal(td_tensor_i64(y)[1], 0);
  assert_int_equal(td_tensor_i64(y)[3], 6);
  td_tensor_release(y);
  y = NULL;

  int64_t s3[] = {2, 2, 2};
  td_tensor *cube = iota(3, s3);
  assert_error(td_diag(cube, &y), TD_ERR_INVALID_ARGUMENT, "diag", "1-d to 2-d", "[2,2,2]");
  assert_error(td_diag(NULL, &y), TD_ERR_INVALID_ARGUMENT, "diag", "NULL");
  assert_null(y);
  td_tensor_release(cube);
  td_tensor_release(iv);
  td_tensor_release(mt);
  td_tensor_release(m);
  td_tensor_release(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reshape_views_contiguous_and_copies_strided),
      cmocka_unit_test(test_reshape_errors),
      cmocka_unit_test(test_flatten_squeeze_expand_dims),
      cmocka_unit_test(test_flatten_squeeze_expand_dims_errors),
      cmocka_unit_test(test_permute_transpose),
      cmocka_unit_test(test_concat_values_and_errors),
      cmocka_unit_test(test_concat_gradient_slices),
      cmocka_unit_test(test_broadcast_to),
      cmocka_unit_test(test_diag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
