/* cases_pool.c - op cases for max, average and adaptive average pooling. */
#include "common/op_case.h"

#define RUN_POOL(fn, name, k0, k1, s0, s1, p0, p1)                                                 \
  static td_status run_##fn##_##name(td_tensor **in, td_tensor **out) {                            \
    td_pool2d_params p = {{k0, k1}, {s0, s1}, {p0, p1}};                                           \
    return td_##fn(in[0], &p, out);                                                                \
  }
#define POOL_SETS(X, fn)                                                                           \
  X(fn, k2, 2, 2, 2, 2, 0, 0)                                                                      \
  X(fn, k3s2p1, 3, 3, 2, 2, 1, 1)                                                                  \
  X(fn, k3s1, 3, 3, 1, 1, 0, 0)                                                                    \
  X(fn, k2s3, 2, 2, 3, 3, 0, 0)                                                                    \
  X(fn, rect, 2, 3, 1, 2, 1, 1)                                                                    \
  X(fn, k4s2p2, 4, 4, 2, 2, 2, 2)
POOL_SETS(RUN_POOL, max_pool2d)
POOL_SETS(RUN_POOL, avg_pool2d)
#undef RUN_POOL

#define RUN_ADAPTIVE(oh, ow)                                                                       \
  static td_status run_adaptive_##oh##x##ow(td_tensor **in, td_tensor **out) {                     \
    return td_adaptive_avg_pool2d(in[0], oh, ow, out);                                             \
  }
RUN_ADAPTIVE(3, 2)
RUN_ADAPTIVE(1, 1)
RUN_ADAPTIVE(4, 4)
RUN_ADAPTIVE(7, 5)
RUN_ADAPTIVE(2, 3)

#define J(k0, k1, s0, s1, p0, p1)                                                                  \
  "{\"kernel\": [" #k0 ", " #k1 "], \"stride\": [" #s0 ", " #s1 "], \"padding\": [" #p0 ", " #p1   \
  "]}"
#define J_k2 J(2, 2, 2, 2, 0, 0)
#define J_k3s2p1 J(3, 3, 2, 2, 1, 1)
#define J_k3s1 J(3, 3, 1, 1, 0, 0)
#define J_k2s3 J(2, 2, 3, 3, 0, 0)
#define J_rect J(2, 3, 1, 2, 1, 1)
#define J_k4s2p2 J(4, 4, 2, 2, 2, 2)

/* Max pooling's gradient jumps where two window entries tie: a wide range
 * keeps every pair of values far apart relative to the finite-difference step. */
#define WIDE(...)                                                                                  \
  {                                                                                                \
    .ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .shape = {__VA_ARGS__},            \
    .grad = true, .lo = -100, .hi = 100                                                            \
  }
#define WIDE_S(...)                                                                                \
  {                                                                                                \
    .ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .shape = {__VA_ARGS__},            \
    .grad = true, .lo = -100, .hi = 100, .strided = true                                           \
  }
#define T(...)                                                                                     \
  {                                                                                                \
    .ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .shape = {__VA_ARGS__},            \
    .grad = true                                                                                   \
  }
#define S(...)                                                                                     \
  {                                                                                                \
    .ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .shape = {__VA_ARGS__},            \
    .grad = true, .strided = true                                                                  \
  }

#define POOL(name_, fn, set, x)                                                                    \
  {                                                                                                \
    .name = name_, .op = #fn, .params_json = J_##set, .n_inputs = 1, .inputs = {x},                \
    .run = run_##fn##_##set                                                                        \
  }
#define ADAPTIVE(name_, oh, ow, in)                                                                \
  {                                                                                                \
    .name = name_, .op = "adaptive_avg_pool2d",                                                    \
    .params_json = "{\"output_size\": [" #oh ", " #ow "]}", .n_inputs = 1, .inputs = {in},         \
    .run = run_adaptive_##oh##x##ow                                                                \
  }

const op_case op_cases_pool[] = {
    POOL("max_pool2d_k2", max_pool2d, k2, WIDE(2, 3, 6, 6)),
    POOL("max_pool2d_padding", max_pool2d, k3s2p1, WIDE(2, 2, 7, 7)),
    POOL("max_pool2d_overlapping", max_pool2d, k3s1, WIDE(1, 2, 5, 6)),
    POOL("max_pool2d_stride_over_kernel", max_pool2d, k2s3, WIDE(2, 2, 8, 7)),
    POOL("max_pool2d_non_square", max_pool2d, rect, WIDE(2, 2, 5, 7)),
    POOL("max_pool2d_even_kernel_padding", max_pool2d, k4s2p2, WIDE(1, 2, 6, 5)),
    POOL("max_pool2d_unbatched", max_pool2d, k2, WIDE(3, 4, 4)),
    /* 18 output columns: two 8-wide vector blocks and a scalar tail. */
    POOL("max_pool2d_k2_wide_rows", max_pool2d, k2, WIDE(2, 2, 4, 37)),
    POOL("max_pool2d_strided", max_pool2d, k3s2p1, WIDE_S(2, 2, 6, 7)),
    POOL("avg_pool2d_k2", avg_pool2d, k2, T(2, 3, 6, 6)),
    POOL("avg_pool2d_padding", avg_pool2d, k3s2p1, T(2, 2, 7, 7)),
    POOL("avg_pool2d_overlapping", avg_pool2d, k3s1, T(1, 2, 5, 6)),
    POOL("avg_pool2d_stride_over_kernel", avg_pool2d, k2s3, T(2, 2, 8, 7)),
    POOL("avg_pool2d_non_square", avg_pool2d, rect, T(2, 2, 5, 7)),
    POOL("avg_pool2d_even_kernel_padding", avg_pool2d, k4s2p2, T(1, 2, 6, 5)),
    POOL("avg_pool2d_unbatched", avg_pool2d, k2, T(3, 4, 4)),
    POOL("avg_pool2d_strided", avg_pool2d, k3s2p1, S(2, 2, 6, 7)),
    ADAPTIVE("adaptive_avg_pool2d_uneven_bins", 3, 2, T(2, 3, 5, 7)),
    ADAPTIVE("adaptive_avg_pool2d_global", 1, 1, T(2, 4, 8, 8)),
    ADAPTIVE("adaptive_avg_pool2d_overlapping_bins", 4, 4, T(1, 2, 6, 6)),
    ADAPTIVE("adaptive_avg_pool2d_upsample", 7, 5, T(2, 2, 5, 3)),
    ADAPTIVE("adaptive_avg_pool2d_unbatched", 2, 3, T(3, 5, 7)),
    ADAPTIVE("adaptive_avg_pool2d_strided", 2, 3, S(2, 2, 5, 7)),
    {0},
};
