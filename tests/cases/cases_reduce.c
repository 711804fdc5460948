/* cases_reduce.c - op cases for reductions (gradcheck and PyTorch parity). */
#include "common/op_case.h"

/* One run function per (op, axes, keepdims): `fn` reduces over the listed
 * axes; ALL variants pass naxes == 0 (every dim). */
#define RUN_AXES(fn, op, keep, ...)                                                                \
  static td_status fn(td_tensor **in, td_tensor **out) {                                           \
    static const int axes[] = {__VA_ARGS__};                                                       \
    return td_##op(in[0], axes, (int)(sizeof axes / sizeof axes[0]), keep, out);                   \
  }
#define RUN_ALL(fn, op, keep)                                                                      \
  static td_status fn(td_tensor **in, td_tensor **out) {                                           \
    return td_##op(in[0], NULL, 0, keep, out);                                                     \
  }
#define RUN_VAR(fn, corr, keep, ...)                                                               \
  static td_status fn(td_tensor **in, td_tensor **out) {                                           \
    static const int axes[] = {__VA_ARGS__};                                                       \
    return td_var(in[0], axes, (int)(sizeof axes / sizeof axes[0]), corr, keep, out);              \
  }
#define RUN_ARGMAX(fn, axis, keep)                                                                 \
  static td_status fn(td_tensor **in, td_tensor **out) { return td_argmax(in[0], axis, keep, out); }

/* The number of dims of a shape list. */
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* A float32 input of the given shape with values in [-1, 1). */
#define IN(...)                                                                                    \
  { .ndim = NDIM(__VA_ARGS__), .shape = {__VA_ARGS__}, .grad = true }
/* Same, passed as a transposed (non-contiguous) view. */
#define IN_STRIDED(...)                                                                            \
  { .ndim = NDIM(__VA_ARGS__), .shape = {__VA_ARGS__}, .grad = true, .strided = true }
/* Values spread over [-50, 50) so that no two in a group come within the
 * finite-difference step of each other (max/min switch at ties). */
#define IN_SPREAD(strided_, ...)                                                                   \
  {                                                                                                \
    .ndim = NDIM(__VA_ARGS__), .shape = {__VA_ARGS__}, .grad = true, .lo = -50, .hi = 50,          \
    .strided = strided_                                                                            \
  }

RUN_ALL(sum_all, sum, false)
RUN_ALL(sum_all_keep, sum, true)
RUN_AXES(sum_last, sum, false, -1)
RUN_AXES(sum_first_keep, sum, true, 0)
RUN_AXES(sum_middle, sum, false, 1)
RUN_AXES(sum_lead2, sum, false, 0, 1)
RUN_AXES(sum_outer2_keep, sum, true, 0, -1)
RUN_AXES(sum_13, sum, false, 1, 3)
RUN_AXES(sum_02, sum, false, 2, 0)

RUN_ALL(mean_all, mean, false)
RUN_AXES(mean_last_keep, mean, true, -1)
RUN_AXES(mean_first, mean, false, 0)
RUN_AXES(mean_02, mean, false, 0, 2)

RUN_ALL(max_all, max, false)
RUN_AXES(max_last, max, false, -1)
RUN_AXES(max_first_keep, max, true, 0)
RUN_AXES(max_02_keep, max, true, -3, -1)
RUN_ALL(min_all_keep, min, true)
RUN_AXES(min_last_keep, min, true, 1)
RUN_AXES(min_first, min, false, 0)
RUN_AXES(min_02, min, false, 0, 2)

RUN_VAR(var_last_c1, 1, false, -1)
RUN_VAR(var_last_c0_keep, 0, true, -1)
RUN_VAR(var_first_c1, 1, false, 0)
RUN_VAR(var_02_c0, 0, false, 0, 2)
RUN_VAR(var_01_c1_keep, 1, true, 0, 1)
static td_status var_all_c1(td_tensor **in, td_tensor **out) {
  return td_var(in[0], NULL, 0, 1, false, out);
}

RUN_ALL(lse_all, logsumexp, false)
RUN_AXES(lse_last, logsumexp, false, -1)
RUN_AXES(lse_first_keep, logsumexp, true, 0)
RUN_AXES(lse_02_keep, logsumexp, true, 0, 2)

RUN_ARGMAX(argmax_last, -1, false)
RUN_ARGMAX(argmax_first_keep, 0, true)
RUN_ARGMAX(argmax_middle, 1, false)

const op_case op_cases_reduce[] = {
    {.name = "sum_all",
     .op = "sum",
     .params_json = "{\"axes\": null, \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(3, 4)},
     .run = sum_all},
    {.name = "sum_all_keepdims",
     .op = "sum",
     .params_json = "{\"axes\": null, \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(2, 3, 4)},
     .run = sum_all_keep},
    {.name = "sum_last",
     .op = "sum",
     .params_json = "{\"axes\": [-1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(4, 37)},
     .run = sum_last},
    {.name = "sum_last_strided",
     .op = "sum",
     .params_json = "{\"axes\": [-1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(6, 7)},
     .run = sum_last},
    {.name = "sum_first_keepdims",
     .op = "sum",
     .params_json = "{\"axes\": [0], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(4, 5, 3)},
     .run = sum_first_keep},
    {.name = "sum_first_strided_keepdims",
     .op = "sum",
     .params_json = "{\"axes\": [0], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(5, 6)},
     .run = sum_first_keep},
    {.name = "sum_middle",
     .op = "sum",
     .params_json = "{\"axes\": [1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 5)},
     .run = sum_middle},
    {.name = "sum_middle_size1_dims",
     .op = "sum",
     .params_json = "{\"axes\": [1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(1, 6, 1)},
     .run = sum_middle},
    {.name = "sum_leading_two",
     .op = "sum",
     .params_json = "{\"axes\": [0, 1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 5)},
     .run = sum_lead2},
    {.name = "sum_outer_two_keepdims",
     .op = "sum",
     .params_json = "{\"axes\": [0, -1], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 5)},
     .run = sum_outer2_keep},
    {.name = "sum_outer_two_strided",
     .op = "sum",
     .params_json = "{\"axes\": [0, -1], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(3, 4, 5)},
     .run = sum_outer2_keep},
    {.name = "sum_4d_axes_1_3",
     .op = "sum",
     .params_json = "{\"axes\": [1, 3], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(2, 3, 4, 5)},
     .run = sum_13},
    {.name = "sum_unsorted_axes_size1",
     .op = "sum",
     .params_json = "{\"axes\": [2, 0], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(1, 5, 1)},
     .run = sum_02},

    {.name = "mean_all",
     .op = "mean",
     .params_json = "{\"axes\": null, \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(5, 6)},
     .run = mean_all},
    {.name = "mean_last_keepdims",
     .op = "mean",
     .params_json = "{\"axes\": [-1], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(3, 20)},
     .run = mean_last_keep},
    {.name = "mean_first_strided",
     .op = "mean",
     .params_json = "{\"axes\": [0], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(6, 4)},
     .run = mean_first},
    {.name = "mean_02",
     .op = "mean",
     .params_json = "{\"axes\": [0, 2], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 5)},
     .run = mean_02},
    {.name = "mean_02_strided",
     .op = "mean",
     .params_json = "{\"axes\": [0, 2], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(2, 3, 4)},
     .run = mean_02},

    {.name = "max_all",
     .op = "max",
     .params_json = "{\"axes\": null, \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 3, 4)},
     .run = max_all},
    {.name = "max_last",
     .op = "max",
     .params_json = "{\"axes\": [-1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 5, 11)},
     .run = max_last},
    {.name = "max_last_strided",
     .op = "max",
     .params_json = "{\"axes\": [-1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(true, 4, 6)},
     .run = max_last},
    {.name = "max_first_keepdims",
     .op = "max",
     .params_json = "{\"axes\": [0], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 5, 4)},
     .run = max_first_keep},
    {.name = "max_outer_two_keepdims",
     .op = "max",
     .params_json = "{\"axes\": [-3, -1], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 3, 4, 2)},
     .run = max_02_keep},
    {.name = "min_all_keepdims",
     .op = "min",
     .params_json = "{\"axes\": null, \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 2, 5)},
     .run = min_all_keep},
    {.name = "min_last_keepdims",
     .op = "min",
     .params_json = "{\"axes\": [1], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 4, 9)},
     .run = min_last_keep},
    {.name = "min_first_strided",
     .op = "min",
     .params_json = "{\"axes\": [0], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(true, 5, 3)},
     .run = min_first},
    {.name = "min_02",
     .op = "min",
     .params_json = "{\"axes\": [0, 2], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_SPREAD(false, 2, 3, 3)},
     .run = min_02},

    {.name = "var_last_correction1",
     .op = "var",
     .params_json = "{\"axes\": [-1], \"keepdims\": false, \"correction\": 1}",
     .n_inputs = 1,
     .inputs = {IN(4, 9)},
     .run = var_last_c1},
    {.name = "var_last_correction0_keepdims",
     .op = "var",
     .params_json = "{\"axes\": [-1], \"keepdims\": true, \"correction\": 0}",
     .n_inputs = 1,
     .inputs = {IN(3, 7)},
     .run = var_last_c0_keep},
    {.name = "var_first_correction1_strided",
     .op = "var",
     .params_json = "{\"axes\": [0], \"keepdims\": false, \"correction\": 1}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(6, 5)},
     .run = var_first_c1},
    {.name = "var_02_correction0",
     .op = "var",
     .params_json = "{\"axes\": [0, 2], \"keepdims\": false, \"correction\": 0}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 5)},
     .run = var_02_c0},
    {.name = "var_leading_two_correction1_keepdims",
     .op = "var",
     .params_json = "{\"axes\": [0, 1], \"keepdims\": true, \"correction\": 1}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 2)},
     .run = var_01_c1_keep},
    {.name = "var_all_correction1",
     .op = "var",
     .params_json = "{\"axes\": null, \"keepdims\": false, \"correction\": 1}",
     .n_inputs = 1,
     .inputs = {IN(4, 6)},
     .run = var_all_c1},

    {.name = "logsumexp_all",
     .op = "logsumexp",
     .params_json = "{\"axes\": null, \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {{.ndim = 2, .shape = {4, 5}, .grad = true, .lo = -4, .hi = 4}},
     .run = lse_all},
    {.name = "logsumexp_last",
     .op = "logsumexp",
     .params_json = "{\"axes\": [-1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {{.ndim = 2, .shape = {6, 10}, .grad = true, .lo = -4, .hi = 4}},
     .run = lse_last},
    {.name = "logsumexp_last_strided",
     .op = "logsumexp",
     .params_json = "{\"axes\": [-1], \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(5, 4)},
     .run = lse_last},
    {.name = "logsumexp_first_keepdims",
     .op = "logsumexp",
     .params_json = "{\"axes\": [0], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(5, 3, 2)},
     .run = lse_first_keep},
    {.name = "logsumexp_02_keepdims",
     .op = "logsumexp",
     .params_json = "{\"axes\": [0, 2], \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(3, 4, 5)},
     .run = lse_02_keep},

    {.name = "argmax_last",
     .op = "argmax",
     .params_json = "{\"axis\": -1, \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN(5, 7)},
     .run = argmax_last,
     .no_grad = true},
    {.name = "argmax_first_keepdims",
     .op = "argmax",
     .params_json = "{\"axis\": 0, \"keepdims\": true}",
     .n_inputs = 1,
     .inputs = {IN(6, 4)},
     .run = argmax_first_keep,
     .no_grad = true},
    {.name = "argmax_middle_strided",
     .op = "argmax",
     .params_json = "{\"axis\": 1, \"keepdims\": false}",
     .n_inputs = 1,
     .inputs = {IN_STRIDED(3, 5, 4)},
     .run = argmax_middle,
     .no_grad = true},
    {0},
};
