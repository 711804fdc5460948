/* cases_conv.c - op cases for conv2d. */
#include "common/op_case.h"

/* One run function per parameter set (run takes no params). */
#define RUN_CONV(name, s0, s1, p0, p1, d0, d1, g)                                                  \
  static td_status run_##name(td_tensor **in, td_tensor **out) {                                   \
    td_conv2d_params p = {{s0, s1}, {p0, p1}, {d0, d1}, g};                                        \
    return td_conv2d(in[0], in[1], in[2], &p, out);                                                \
  }
RUN_CONV(plain, 1, 1, 0, 0, 1, 1, 1)
RUN_CONV(pad1, 1, 1, 1, 1, 1, 1, 1)
RUN_CONV(pad2, 1, 1, 2, 2, 1, 1, 1)
RUN_CONV(stride2_pad1, 2, 2, 1, 1, 1, 1, 1)
RUN_CONV(stride2, 2, 2, 0, 0, 1, 1, 1)
RUN_CONV(dilation2_pad2, 1, 1, 2, 2, 2, 2, 1)
RUN_CONV(groups2, 1, 1, 0, 0, 1, 1, 2)
RUN_CONV(groups2_pad1, 1, 1, 1, 1, 1, 1, 2)
RUN_CONV(groups3_pad1, 1, 1, 1, 1, 1, 1, 3)
RUN_CONV(mixed, 2, 1, 1, 0, 1, 2, 1)
RUN_CONV(stride3_groups2, 3, 2, 1, 2, 1, 1, 2)
#undef RUN_CONV

#define PARAMS(s0, s1, p0, p1, d0, d1, g)                                                          \
  "{\"stride\": [" #s0 ", " #s1 "], \"padding\": [" #p0 ", " #p1 "], \"dilation\": [" #d0 ", " #d1 \
  "], \"groups\": " #g "}"
#define P_plain PARAMS(1, 1, 0, 0, 1, 1, 1)
#define P_pad1 PARAMS(1, 1, 1, 1, 1, 1, 1)
#define P_pad2 PARAMS(1, 1, 2, 2, 1, 1, 1)
#define P_stride2_pad1 PARAMS(2, 2, 1, 1, 1, 1, 1)
#define P_stride2 PARAMS(2, 2, 0, 0, 1, 1, 1)
#define P_dilation2_pad2 PARAMS(1, 1, 2, 2, 2, 2, 1)
#define P_groups2 PARAMS(1, 1, 0, 0, 1, 1, 2)
#define P_groups2_pad1 PARAMS(1, 1, 1, 1, 1, 1, 2)
#define P_groups3_pad1 PARAMS(1, 1, 1, 1, 1, 1, 3)
#define P_mixed PARAMS(2, 1, 1, 0, 1, 2, 1)
#define P_stride3_groups2 PARAMS(3, 2, 1, 2, 1, 1, 2)

#define T4(a, b, c, d)                                                                             \
  { .ndim = 4, .shape = {a, b, c, d}, .grad = true }
#define S4(a, b, c, d)                                                                             \
  { .ndim = 4, .shape = {a, b, c, d}, .grad = true, .strided = true }
#define B(o)                                                                                       \
  { .ndim = 1, .shape = {o}, .grad = true }
#define NONE                                                                                       \
  { .ndim = -1 }
/* The first layer of a network: no gradient for the input. */
#define NG4(a, b, c, d)                                                                            \
  {                                                                                                \
    .ndim = 4, .shape = { a, b, c, d }                                                             \
  }

#define CONV(name_, params, x, w, b)                                                               \
  {                                                                                                \
    .name = name_, .op = "conv2d", .params_json = P_##params, .n_inputs = 3, .inputs = {x, w, b},  \
    .run = run_##params                                                                            \
  }

const op_case op_cases_conv[] = {
    CONV("conv2d_plain", plain, T4(2, 3, 6, 6), T4(4, 3, 3, 3), B(4)),
    CONV("conv2d_padding", pad1, T4(2, 3, 5, 5), T4(4, 3, 3, 3), B(4)),
    CONV("conv2d_padding_over_half_kernel", pad2, T4(2, 2, 4, 4), T4(3, 2, 3, 3), B(3)),
    CONV("conv2d_stride2_padding", stride2_pad1, T4(2, 3, 7, 7), T4(4, 3, 3, 3), B(4)),
    /* rows long enough for the vectorized stride-2 gather */
    CONV("conv2d_stride2_wide", stride2_pad1, T4(2, 2, 3, 21), T4(3, 2, 3, 3), B(3)),
    CONV("conv2d_dilation2", dilation2_pad2, T4(2, 2, 8, 8), T4(3, 2, 3, 3), B(3)),
    CONV("conv2d_groups2", groups2_pad1, T4(2, 4, 5, 5), T4(6, 2, 3, 3), B(6)),
    CONV("conv2d_depthwise", groups3_pad1, T4(2, 3, 6, 6), T4(3, 1, 3, 3), B(3)),
    CONV("conv2d_depthwise_multiplier", groups3_pad1, T4(2, 3, 5, 5), T4(6, 1, 3, 3), B(6)),
    CONV("conv2d_no_bias", pad1, T4(2, 3, 5, 5), T4(4, 3, 3, 3), NONE),
    CONV("conv2d_1x1", plain, T4(2, 4, 5, 5), T4(3, 4, 1, 1), B(3)),
    CONV("conv2d_1x1_batch1", plain, T4(1, 4, 5, 5), T4(3, 4, 1, 1), B(3)),
    CONV("conv2d_1x1_groups2", groups2, T4(2, 4, 3, 3), T4(2, 2, 1, 1), B(2)),
    CONV("conv2d_1x1_groups2_batch1", groups2, T4(1, 4, 3, 3), T4(4, 2, 1, 1), NONE),
    CONV("conv2d_1x1_padding", pad1, T4(2, 3, 3, 3), T4(2, 3, 1, 1), B(2)),
    CONV("conv2d_1x1_stride2", stride2, T4(2, 4, 6, 6), T4(3, 4, 1, 1), NONE),
    CONV("conv2d_non_square", mixed, T4(2, 2, 7, 6), T4(3, 2, 3, 2), B(3)),
    CONV("conv2d_non_square_groups", stride3_groups2, T4(2, 4, 8, 7), T4(4, 2, 2, 3), B(4)),
    CONV("conv2d_batch1", pad1, T4(1, 3, 6, 6), T4(4, 3, 3, 3), B(4)),
    CONV("conv2d_batch1_no_bias", stride2_pad1, T4(1, 2, 7, 7), T4(3, 2, 3, 3), NONE),
    CONV("conv2d_kernel_covers_input", plain, T4(2, 2, 3, 3), T4(2, 2, 3, 3), B(2)),
    CONV("conv2d_strided_inputs", pad1, S4(2, 3, 5, 6), S4(4, 3, 3, 3), B(4)),
    CONV("conv2d_input_no_grad", pad1, NG4(2, 3, 5, 5), T4(4, 3, 3, 3), B(4)),
    /* Long reductions on small images: tiles vectorized over output channels
     * (an odd number of channel vectors in the second; stride-2 input
     * gradient phases split between both kinds of tile). */
    CONV("conv2d_channel_tiles", pad1, T4(2, 8, 4, 4), T4(16, 8, 3, 3), B(16)),
    CONV("conv2d_channel_tiles_stride2", stride2_pad1, T4(2, 8, 8, 8), T4(24, 8, 3, 3), B(24)),
    /* 14 channels in two vectors, 9 positions in two tiles of 6 */
    CONV("conv2d_channel_tiles_partial", pad1, T4(2, 16, 3, 3), T4(14, 16, 3, 3), B(14)),
    /* Winograd: F(2x2, 3x3) for stride 1 and 32+ channels (an odd output
     * size, so the last tiles are partial); F(2x2, 2x2) over four phases for
     * stride 2 and 16+ channels in multiples of 8 */
    CONV("conv2d_winograd", pad1, T4(2, 32, 5, 6), T4(32, 32, 3, 3), B(32)),
    CONV("conv2d_winograd_stride2", stride2_pad1, T4(3, 16, 9, 10), T4(24, 16, 3, 3), B(24)),
    /* 32x32 outputs: several samples per sgemm, then a last chunk of one */
    CONV("conv2d_chunks", pad1, T4(3, 1, 32, 32), T4(2, 1, 3, 3), B(2)),
    {0},
};
