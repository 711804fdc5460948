/* norm.h - normalisation layers. */
#ifndef TD_FUNCTIONAL_NORM_H
#define TD_FUNCTIONAL_NORM_H

#include <stdbool.h>

#include "tensor/tensor.h"

typedef struct td_batch_norm_params {
  bool training;
  float momentum; /* PyTorch's: running = (1 - m) * running + m * batch */
  float eps;
  /* Forward only (see op.h on pointers in params): updated in place when
   * training, read when not. Either may be NULL (track_running_stats=False),
   * in which case batch statistics are always used. */
  td_tensor *running_mean;
  td_tensor *running_var;
} td_batch_norm_params;

/* x [N, C], [N, C, L] or [N, C, H, W]; weight and bias [C] or NULL.
 * Training: normalises with batch statistics (biased variance) and updates
 * the running statistics with the unbiased variance, exactly as PyTorch;
 * N*L*H*W must then be > 1. Eval: uses the running statistics. */
td_status td_batch_norm(td_tensor *x, td_tensor *weight, td_tensor *bias,
                        const td_batch_norm_params *p, td_tensor **out);

typedef struct td_layer_norm_params {
  int normalized_ndim; /* how many trailing dims are normalised */
  float eps;
} td_layer_norm_params;

/* Normalises over the trailing normalized_ndim dims; weight and bias have
 * those dims' shape, or are NULL. */
td_status td_layer_norm(td_tensor *x, int normalized_ndim, td_tensor *weight, td_tensor *bias,
                        float eps, td_tensor **out);

#endif
