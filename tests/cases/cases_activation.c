/* cases_activation.c - op cases for the activations and softmax/log_softmax. */
#include "common/op_case.h"

#define RUN(name, call)                                             \
  static td_status run_##name(td_tensor **in, td_tensor **out) {    \
    return call;                                                    \
  }
RUN(relu, td_relu(in[0], out))
RUN(leaky_relu_default, td_leaky_relu(in[0], 0.01f, out))
RUN(leaky_relu_0_2, td_leaky_relu(in[0], 0.2f, out))
RUN(leaky_relu_neg, td_leaky_relu(in[0], -0.5f, out))
RUN(sigmoid, td_sigmoid(in[0], out))
RUN(tanh, td_tanh(in[0], out))
RUN(gelu, td_gelu(in[0], out))
RUN(silu, td_silu(in[0], out))
RUN(softmax_0, td_softmax(in[0], 0, out))
RUN(softmax_1, td_softmax(in[0], 1, out))
RUN(softmax_2, td_softmax(in[0], 2, out))
RUN(softmax_m1, td_softmax(in[0], -1, out))
RUN(softmax_m2, td_softmax(in[0], -2, out))
RUN(log_softmax_0, td_log_softmax(in[0], 0, out))
RUN(log_softmax_1, td_log_softmax(in[0], 1, out))
RUN(log_softmax_m1, td_log_softmax(in[0], -1, out))
RUN(log_softmax_m2, td_log_softmax(in[0], -2, out))
#undef RUN

#define T(lo_, hi_, ...) {.ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t),          \
                          .shape = {__VA_ARGS__}, .grad = true, .lo = lo_, .hi = hi_}
#define TS(lo_, hi_, ...) {.ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t),         \
                           .shape = {__VA_ARGS__}, .grad = true, .lo = lo_, .hi = hi_,          \
                           .strided = true}
/* Off the kink at 0 (relu, leaky_relu). */
#define K(strided_, ...) {.ndim = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t),         \
                          .shape = {__VA_ARGS__}, .grad = true, .avoid = true,                 \
                          .avoid_gap = 0.02, .strided = strided_}
#define T0 {.ndim = 0, .grad = true}

#define CASE(nm, o, x, runfn, json) {.name = nm, .op = #o, .params_json = json, .n_inputs = 1, \
                                     .inputs = {x}, .run = runfn}

const op_case op_cases_activation[] = {
    CASE("relu", relu, K(false, 4, 5), run_relu, "{}"),
    CASE("relu_strided", relu, K(true, 2, 3, 4), run_relu, "{}"),
    CASE("relu_0d", relu, T0, run_relu, "{}"),
    CASE("leaky_relu_default", leaky_relu, K(false, 4, 5), run_leaky_relu_default,
         "{\"negative_slope\": 0.009999999776482582}"),
    CASE("leaky_relu_strided", leaky_relu, K(true, 2, 3, 4), run_leaky_relu_0_2,
         "{\"negative_slope\": 0.20000000298023224}"),
    CASE("leaky_relu_negative_slope", leaky_relu, K(false, 4, 5), run_leaky_relu_neg,
         "{\"negative_slope\": -0.5}"),
    CASE("sigmoid", sigmoid, T(-6, 6, 4, 5), run_sigmoid, "{}"),
    CASE("sigmoid_strided", sigmoid, TS(-3, 3, 2, 3, 4), run_sigmoid, "{}"),
    CASE("tanh", tanh, T(-3, 3, 4, 5), run_tanh, "{}"),
    CASE("tanh_strided", tanh, TS(-2, 2, 2, 3, 4), run_tanh, "{}"),
    CASE("gelu", gelu, T(-4, 4, 4, 5), run_gelu, "{}"),
    CASE("gelu_strided", gelu, TS(-3, 3, 2, 3, 4), run_gelu, "{}"),
    CASE("silu", silu, T(-6, 6, 4, 5), run_silu, "{}"),
    CASE("silu_strided", silu, TS(-3, 3, 2, 3, 4), run_silu, "{}"),
    /* softmax over every axis of a 3-d input, contiguous and strided. */
    CASE("softmax_axis0", softmax, T(-3, 3, 3, 4, 5), run_softmax_0, "{\"axis\": 0}"),
    CASE("softmax_axis1", softmax, T(-3, 3, 3, 4, 5), run_softmax_1, "{\"axis\": 1}"),
    CASE("softmax_axis2", softmax, T(-3, 3, 3, 4, 5), run_softmax_2, "{\"axis\": 2}"),
    CASE("softmax_axis_m1", softmax, T(-3, 3, 3, 4, 5), run_softmax_m1, "{\"axis\": -1}"),
    CASE("softmax_axis_m1_strided", softmax, TS(-3, 3, 3, 4, 5), run_softmax_m1,
         "{\"axis\": -1}"),
    CASE("softmax_axis0_strided", softmax, TS(-3, 3, 3, 4, 5), run_softmax_0, "{\"axis\": 0}"),
    CASE("softmax_axis_m2_2d", softmax, T(-3, 3, 6, 5), run_softmax_m2, "{\"axis\": -2}"),
    CASE("softmax_long_row", softmax, T(-4, 4, 2, 300), run_softmax_m1, "{\"axis\": -1}"),
    /* Large logits: only the max-shifted form stays finite. */
    CASE("softmax_large", softmax, T(-80, 120, 3, 7), run_softmax_m1, "{\"axis\": -1}"),
    CASE("softmax_size1_axis", softmax, T(-3, 3, 4, 1, 3), run_softmax_1, "{\"axis\": 1}"),
    CASE("softmax_0d", softmax, T0, run_softmax_0, "{\"axis\": 0}"),
    CASE("log_softmax_axis0", log_softmax, T(-3, 3, 3, 4, 5), run_log_softmax_0,
         "{\"axis\": 0}"),
    CASE("log_softmax_axis1", log_softmax, T(-3, 3, 3, 4, 5), run_log_softmax_1,
         "{\"axis\": 1}"),
    CASE("log_softmax_axis_m1", log_softmax, T(-3, 3, 3, 4, 5), run_log_softmax_m1,
         "{\"axis\": -1}"),
    CASE("log_softmax_axis_m1_strided", log_softmax, TS(-3, 3, 3, 4, 5), run_log_softmax_m1,
         "{\"axis\": -1}"),
    CASE("log_softmax_axis1_strided", log_softmax, TS(-3, 3, 3, 4, 5), run_log_softmax_1,
         "{\"axis\": 1}"),
    CASE("log_softmax_axis_m2_2d", log_softmax, T(-3, 3, 6, 5), run_log_softmax_m2,
         "{\"axis\": -2}"),
    /* Every log_softmax output moves with each input (through log(sum)), so
     * float32 rounding of all 600 outputs adds up in the finite difference:
     * a larger step keeps that noise well below the tolerance. */
    {.name = "log_softmax_long_row", .op = "log_softmax", .params_json = "{\"axis\": -1}",
     .n_inputs = 1, .inputs = {T(-4, 4, 2, 300)}, .run = run_log_softmax_m1, .fd_eps = 1e-2},
    {.name = "log_softmax_large", .op = "log_softmax", .params_json = "{\"axis\": -1}",
     .n_inputs = 1, .inputs = {T(-80, 120, 3, 7)}, .run = run_log_softmax_m1, .fd_eps = 1e-2},
    {0},
};
