/* conv.h - 2-d convolution and pooling over NCHW float32 tensors. */
#ifndef TD_FUNCTIONAL_CONV_H
#define TD_FUNCTIONAL_CONV_H

#include "tensor/tensor.h"

typedef struct td_conv2d_params {
  int stride[2];   /* >= 1 */
  int padding[2];  /* >= 0, zero padding */
  int dilation[2]; /* >= 1 */
  int groups;      /* >= 1, divides in and out channels */
} td_conv2d_params;

/* x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O] or NULL. */
td_status td_conv2d(td_tensor *x, td_tensor *weight, td_tensor *bias,
                    const td_conv2d_params *p, td_tensor **out);

typedef struct td_pool2d_params {
  int kernel[2];  /* >= 1 */
  int stride[2];  /* >= 1 (callers map PyTorch's stride=None to kernel) */
  int padding[2]; /* >= 0 and at most kernel/2, as PyTorch requires */
} td_pool2d_params;

/* Padding counts as -inf for max and as zeros included in the divisor for
 * avg (PyTorch's defaults: count_include_pad=True, ceil_mode=False). */
td_status td_max_pool2d(td_tensor *x, const td_pool2d_params *p, td_tensor **out);
td_status td_avg_pool2d(td_tensor *x, const td_pool2d_params *p, td_tensor **out);

typedef struct td_adaptive_pool2d_params {
  int output_size[2];
} td_adaptive_pool2d_params;

/* PyTorch's adaptive bins: start = floor(i*H/oh), end = ceil((i+1)*H/oh). */
td_status td_adaptive_avg_pool2d(td_tensor *x, int out_h, int out_w, td_tensor **out);

#endif
