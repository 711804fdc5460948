/* conv_winograd_s2.h - 3x3 stride-2 convolutions as four stride-1 ones, by
 * Winograd's F(2x2, 2x2). Internal to lib/functional: conv.c picks this
 * path, for the forward and both gradients, when it is supported.
 *
 * Split by the parity of its rows and columns, the padded input becomes
 * four planes, and the stride-2 3x3 convolution becomes the sum of four
 * stride-1 ones with 2x2, 2x1, 1x2 and 1x1 kernels. In F(2x2, 2x2)'s
 * transform domain those cost 9 + 6 + 6 + 4 = 25 multiply-adds per 2x2
 * block of outputs and input channel, instead of 36; the products go to
 * sgemm. The transforms' coefficients are 0 and +-1, so results stay within
 * a few float32 roundings of the direct sum; as on the stride-1 Winograd
 * path, an infinity in the input can come out NaN where the direct sum
 * gives +-inf. */
#ifndef TD_FUNCTIONAL_CONV_WINOGRAD_S2_H
#define TD_FUNCTIONAL_CONV_WINOGRAD_S2_H

#include <stdbool.h>

#include "core/status.h"
#include "functional/conv_direct.h"

/* Whether this path takes the convolution: 3x3 kernel, stride 2, no
 * dilation, one group, padding at most 2, and on both sides a multiple of 8
 * channels (the transforms' vector width), enough for the products to be
 * worth the transforms. */
bool td_conv_winograd_s2_supported(const conv_geom *g);

/* y [N, K, OH, OW] = conv(x, w) + bias (bias may be NULL); all contiguous.
 * Threads: td_get_num_threads(), splitting the batch. */
td_status td_conv_winograd_s2_forward(const conv_geom *g, const float *x, const float *w,
                                      const float *bias, float *y);

/* The gradients for output gradient dy, sharing its transform: dx [N, C,
 * H, W] unless dx is NULL (w is read only then), and dw [K, C, 3, 3]
 * unless dw is NULL (x is read only then). */
td_status td_conv_winograd_s2_backward(const conv_geom *g, const float *x, const float *w,
                                       const float *dy, float *dx, float *dw);

#endif
