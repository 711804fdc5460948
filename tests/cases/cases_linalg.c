/* cases_linalg.c - op cases for matmul and linear. */
#include "common/op_case.h"

static td_status run_matmul(td_tensor **in, td_tensor **out) {
  return td_matmul(in[0], in[1], out);
}
static td_status run_linear(td_tensor **in, td_tensor **out) {
  return td_linear(in[0], in[1], in[2], out);
}

#define T(...)                                                                                     \
  {                                                                                                \
    .ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .shape = {__VA_ARGS__},            \
    .grad = true                                                                                   \
  }
/* Same values, transposed storage: sgemm must take it through a transpose flag. */
#define S(...)                                                                                     \
  {                                                                                                \
    .ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .shape = {__VA_ARGS__},            \
    .grad = true, .strided = true                                                                  \
  }
#define NONE                                                                                       \
  { .ndim = -1 }

#define MATMUL(name_, a, b)                                                                        \
  {                                                                                                \
    .name = name_, .op = "matmul", .params_json = "{}", .n_inputs = 2, .inputs = {a, b},           \
    .run = run_matmul                                                                              \
  }
#define LINEAR(name_, x, w, b)                                                                     \
  {                                                                                                \
    .name = name_, .op = "linear", .params_json = "{}", .n_inputs = 3, .inputs = {x, w, b},        \
    .run = run_linear                                                                              \
  }

const op_case op_cases_linalg[] = {
    MATMUL("matmul_2d", T(3, 4), T(4, 5)),
    MATMUL("matmul_batched_3d", T(2, 3, 4), T(2, 4, 5)),
    MATMUL("matmul_broadcast_batch", T(2, 1, 3, 4), T(5, 4, 2)),
    /* a shared b: one sgemm over the folded batch, and dB summed in one sgemm */
    MATMUL("matmul_batched_a_2d_b", T(3, 4, 5), T(5, 2)),
    /* a shared a: dA summed over b's batch */
    MATMUL("matmul_2d_a_batched_b", T(3, 4), T(2, 4, 5)),
    MATMUL("matmul_size1_batch_broadcast", T(1, 3, 4), T(2, 4, 2)),
    MATMUL("matmul_strided_2d", S(4, 3), S(3, 5)),
    MATMUL("matmul_strided_batched", S(2, 3, 4), S(2, 4, 3)),
    MATMUL("matmul_strided_a_only", S(3, 5), T(5, 4)),
    MATMUL("matmul_vector_shapes", T(1, 4), T(4, 1)),
    MATMUL("matmul_inner_1", T(2, 3, 1), T(1, 4)),
    LINEAR("linear_bias", T(5, 4), T(3, 4), T(3)),
    LINEAR("linear_no_bias", T(5, 4), T(3, 4), NONE),
    LINEAR("linear_3d_input", T(2, 3, 4), T(5, 4), T(5)),
    LINEAR("linear_1d_input", T(4), T(3, 4), T(3)),
    LINEAR("linear_batch1", T(1, 6), T(2, 6), T(2)),
    /* x read through CblasTrans, w stored transposed (read without a flip) */
    LINEAR("linear_strided_2d", S(6, 4), S(3, 4), T(3)),
    /* leading dims that do not fold into rows: a contiguous copy */
    LINEAR("linear_strided_3d", S(2, 3, 4), T(2, 4), T(2)),
    {0},
};
