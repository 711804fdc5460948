/* reduce.h - reductions over a set of axes.
 *
 * `axes` lists the dims to reduce (negatives count from the end; duplicates
 * are an error); naxes == 0 reduces over every dim. keepdims keeps reduced
 * dims with extent 1. Float32 in, float32 out (argmax: int64 out).
 */
#ifndef TD_FUNCTIONAL_REDUCE_H
#define TD_FUNCTIONAL_REDUCE_H

#include <stdbool.h>

#include "tensor/tensor.h"

typedef struct td_reduce_params {
  int naxes;
  int axes[TD_MAX_DIMS];
  bool keepdims;
  int correction; /* var: 1 = unbiased (torch default), 0 = population */
} td_reduce_params;

td_status td_sum(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out);
td_status td_mean(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out);
/* max/min values; gradient is split evenly among tied extrema (torch.amax). */
td_status td_max(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out);
td_status td_min(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out);
td_status td_var(td_tensor *x, const int *axes, int naxes, int correction, bool keepdims,
                 td_tensor **out);
td_status td_logsumexp(td_tensor *x, const int *axes, int naxes, bool keepdims,
                       td_tensor **out);
/* Index of the first maximum along one axis; int64; no gradient. */
td_status td_argmax(td_tensor *x, int axis, bool keepdims, td_tensor **out);

#endif
