/* loss.h - loss functions, PyTorch semantics.
 *
 * Class targets are int64 indices; a target outside [0, C) is
 * TD_ERR_OUT_OF_RANGE naming the sample and the value (ignore_index is not
 * supported). Class targets never get a gradient. A float target (mse, l1,
 * bce) normally is not tracked either; if it is, it gets its true gradient,
 * as in PyTorch, rather than a silently wrong zero.
 */
#ifndef TD_FUNCTIONAL_LOSS_H
#define TD_FUNCTIONAL_LOSS_H

#include "tensor/tensor.h"

typedef enum td_reduction {
  TD_REDUCTION_MEAN = 0,
  TD_REDUCTION_SUM = 1,
  TD_REDUCTION_NONE = 2,
} td_reduction;

typedef struct td_loss_params {
  td_reduction reduction;
  float label_smoothing; /* cross_entropy only, in [0, 1] */
} td_loss_params;

/* logits [N, C], target int64 [N]. */
td_status td_cross_entropy(td_tensor *logits, td_tensor *target, td_reduction reduction,
                           float label_smoothing, td_tensor **out);
/* log_probs [N, C], target int64 [N]. */
td_status td_nll_loss(td_tensor *log_probs, td_tensor *target, td_reduction reduction,
                      td_tensor **out);
/* pred and target float32 of the same shape. */
td_status td_mse_loss(td_tensor *pred, td_tensor *target, td_reduction reduction,
                      td_tensor **out);
td_status td_l1_loss(td_tensor *pred, td_tensor *target, td_reduction reduction,
                     td_tensor **out);
td_status td_binary_cross_entropy_with_logits(td_tensor *logits, td_tensor *target,
                                              td_reduction reduction, td_tensor **out);

#endif
