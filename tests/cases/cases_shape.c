/* cases_shape.c - op cases for reshape, flatten, permute, transpose, squeeze, expand_dims,
 * concat, broadcast_to and diag. */
#include "common/op_case.h"

#define IN(nd, ...)                                                                                \
  { .ndim = nd, .shape = {__VA_ARGS__}, .grad = true }
#define CASE(nm, o, js, fn, n, ...)                                                                \
  {                                                                                                \
    .name = nm, .op = o, .params_json = js, .run = fn, .n_inputs = n, .inputs = { __VA_ARGS__ }    \
  }
#define IN_STRIDED(nd, ...)                                                                        \
  { .ndim = nd, .shape = {__VA_ARGS__}, .grad = true, .strided = true }

static td_status run_reshape_4_m1(td_tensor **in, td_tensor **out) {
  int64_t shape[] = {4, -1};
  return td_reshape(in[0], 2, shape, out);
}
static td_status run_reshape_2_6(td_tensor **in, td_tensor **out) {
  int64_t shape[] = {2, 6};
  return td_reshape(in[0], 2, shape, out);
}
static td_status run_reshape_scalar(td_tensor **in, td_tensor **out) {
  return td_reshape(in[0], 0, NULL, out);
}
static td_status run_flatten_1_m1(td_tensor **in, td_tensor **out) {
  return td_flatten(in[0], 1, -1, out);
}
static td_status run_flatten_0_1(td_tensor **in, td_tensor **out) {
  return td_flatten(in[0], 0, 1, out);
}
static td_status run_permute_201(td_tensor **in, td_tensor **out) {
  int perm[] = {2, 0, 1};
  return td_permute(in[0], perm, out);
}
static td_status run_permute_neg(td_tensor **in, td_tensor **out) {
  int perm[] = {-1, 0};
  return td_permute(in[0], perm, out);
}
static td_status run_transpose_0_2(td_tensor **in, td_tensor **out) {
  return td_transpose(in[0], 0, 2, out);
}
static td_status run_transpose_m1_m2(td_tensor **in, td_tensor **out) {
  return td_transpose(in[0], -1, -2, out);
}
static td_status run_squeeze_1(td_tensor **in, td_tensor **out) {
  int axes[] = {1};
  return td_squeeze(in[0], axes, 1, out);
}
static td_status run_squeeze_3_m4(td_tensor **in, td_tensor **out) {
  int axes[] = {3, -4};
  return td_squeeze(in[0], axes, 2, out);
}
static td_status run_squeeze_all(td_tensor **in, td_tensor **out) {
  return td_squeeze(in[0], NULL, 0, out);
}
static td_status run_expand_dims_m1(td_tensor **in, td_tensor **out) {
  return td_expand_dims(in[0], -1, out);
}
static td_status run_expand_dims_1(td_tensor **in, td_tensor **out) {
  return td_expand_dims(in[0], 1, out);
}
static td_status run_concat_0(td_tensor **in, td_tensor **out) { return td_concat(in, 3, 0, out); }
static td_status run_concat_1(td_tensor **in, td_tensor **out) { return td_concat(in, 3, 1, out); }
static td_status run_concat_2(td_tensor **in, td_tensor **out) { return td_concat(in, 3, 2, out); }
static td_status run_concat_m1(td_tensor **in, td_tensor **out) {
  return td_concat(in, 2, -1, out);
}
static td_status run_concat_one(td_tensor **in, td_tensor **out) {
  return td_concat(in, 1, 0, out);
}
static td_status run_broadcast_234(td_tensor **in, td_tensor **out) {
  int64_t shape[] = {2, 3, 4};
  return td_broadcast_to(in[0], 3, shape, out);
}
static td_status run_broadcast_34(td_tensor **in, td_tensor **out) {
  int64_t shape[] = {3, 4};
  return td_broadcast_to(in[0], 2, shape, out);
}
static td_status run_diag(td_tensor **in, td_tensor **out) { return td_diag(in[0], out); }

const op_case op_cases_shape[] = {
    CASE("reshape_infer", "reshape", "{\"shape\": [4, -1]}", run_reshape_4_m1, 1, IN(3, 2, 3, 4)),
    CASE("reshape_strided_copy", "reshape", "{\"shape\": [2, 6]}", run_reshape_2_6, 1,
         IN_STRIDED(2, 3, 4)),
    CASE("reshape_to_scalar", "reshape", "{\"shape\": []}", run_reshape_scalar, 1, IN(2, 1, 1)),
    CASE("flatten_tail", "flatten", "{\"start\": 1, \"end\": -1}", run_flatten_1_m1, 1,
         IN(4, 2, 3, 4, 5)),
    CASE("flatten_head_strided", "flatten", "{\"start\": 0, \"end\": 1}", run_flatten_0_1, 1,
         IN_STRIDED(3, 2, 3, 4)),
    CASE("permute_3d", "permute", "{\"perm\": [2, 0, 1]}", run_permute_201, 1, IN(3, 2, 3, 4)),
    CASE("permute_strided_neg", "permute", "{\"perm\": [-1, 0]}", run_permute_neg, 1,
         IN_STRIDED(2, 3, 5)),
    CASE("transpose_0_2", "transpose", "{\"dim0\": 0, \"dim1\": 2}", run_transpose_0_2, 1,
         IN(3, 2, 3, 4)),
    CASE("transpose_strided", "transpose", "{\"dim0\": -1, \"dim1\": -2}", run_transpose_m1_m2, 1,
         IN_STRIDED(3, 2, 3, 4)),
    CASE("squeeze_axis", "squeeze", "{\"axes\": [1]}", run_squeeze_1, 1, IN(4, 2, 1, 3, 1)),
    CASE("squeeze_two_axes", "squeeze", "{\"axes\": [3, -4]}", run_squeeze_3_m4, 1,
         IN(4, 1, 3, 2, 1)),
    CASE("squeeze_all", "squeeze", "{\"axes\": []}", run_squeeze_all, 1, IN(4, 1, 3, 1, 2)),
    CASE("expand_dims_last", "expand_dims", "{\"axis\": -1}", run_expand_dims_m1, 1, IN(2, 2, 3)),
    CASE("expand_dims_mid_strided", "expand_dims", "{\"axis\": 1}", run_expand_dims_1, 1,
         IN_STRIDED(2, 3, 4)),
    CASE("concat_axis0", "concat", "{\"axis\": 0}", run_concat_0, 3, IN(3, 1, 3, 4),
         IN_STRIDED(3, 2, 3, 4), IN(3, 3, 3, 4)),
    CASE("concat_axis1", "concat", "{\"axis\": 1}", run_concat_1, 3, IN(3, 2, 1, 4), IN(3, 2, 3, 4),
         IN_STRIDED(3, 2, 2, 4)),
    CASE("concat_axis2", "concat", "{\"axis\": 2}", run_concat_2, 3, IN_STRIDED(3, 2, 3, 2),
         IN(3, 2, 3, 1), IN(3, 2, 3, 5)),
    CASE("concat_axis_neg_one_grad", "concat", "{\"axis\": -1}", run_concat_m1, 2,
         {.ndim = 2, .shape = {3, 2}}, IN(2, 3, 4)),
    CASE("concat_single", "concat", "{\"axis\": 0}", run_concat_one, 1, IN_STRIDED(2, 3, 4)),
    CASE("broadcast_to_new_dims", "broadcast_to", "{\"shape\": [2, 3, 4]}", run_broadcast_234, 1,
         IN(2, 3, 1)),
    CASE("broadcast_to_strided", "broadcast_to", "{\"shape\": [2, 3, 4]}", run_broadcast_234, 1,
         IN_STRIDED(2, 1, 4)),
    CASE("broadcast_to_1d", "broadcast_to", "{\"shape\": [3, 4]}", run_broadcast_34, 1, IN(1, 4)),
    CASE("diag_vector", "diag", "{}", run_diag, 1, IN(1, 4)),
    CASE("diag_square", "diag", "{}", run_diag, 1, IN(2, 4, 4)),
    CASE("diag_wide_strided", "diag", "{}", run_diag, 1, IN_STRIDED(2, 3, 5)),
    CASE("diag_tall", "diag", "{}", run_diag, 1, IN(2, 5, 2)),
    {0},
};
