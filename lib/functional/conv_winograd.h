/* conv_winograd.h - 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3).
 * Internal to lib/functional: conv.c picks this path when it is supported.
 *
 * A 2x2 block of outputs over C channels costs 16 * C multiply-adds per
 * output channel this way instead of 36 * C: the input and the weight are
 * each transformed to 4x4 tiles, multiplied elementwise (16 matrix
 * products over channels, through sgemm), and transformed back. The
 * transforms' coefficients are 0, +-1 and +-1/2, so results stay within a
 * few float32 roundings of the direct sum. One difference from the direct
 * sum: an infinity in the input meets itself with both signs inside the
 * transforms, so outputs that would be +-inf can come out NaN (the daemon
 * refuses non-finite inputs; a model whose activations overflow has
 * diverged either way). */
#ifndef TD_FUNCTIONAL_CONV_WINOGRAD_H
#define TD_FUNCTIONAL_CONV_WINOGRAD_H

#include <stdbool.h>

#include "core/status.h"
#include "functional/conv_direct.h"

/* Whether this path takes the convolution: 3x3 kernel, stride 1, no
 * dilation, one group, padding at most 2, and enough channels on both sides
 * for the products to be worth the transforms. */
bool td_conv_winograd_supported(const conv_geom *g);

/* y [N, K, OH, OW] = conv(x, w) + bias (bias may be NULL); all contiguous.
 * Threads: td_get_num_threads(), splitting the batch. */
td_status td_conv_winograd_forward(const conv_geom *g, const float *x, const float *w,
                                   const float *bias, float *y);

/* dw [K, C, 3, 3] = the weight gradient for output gradient dy. */
td_status td_conv_winograd_weight_grad(const conv_geom *g, const float *x, const float *dy,
                                       float *dw);

#endif
