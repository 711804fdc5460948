/* activation.h - activations (float32, any shape). */
#ifndef TD_FUNCTIONAL_ACTIVATION_H
#define TD_FUNCTIONAL_ACTIVATION_H

#include "tensor/tensor.h"

td_status td_relu(td_tensor *x, td_tensor **out);
td_status td_leaky_relu(td_tensor *x, float negative_slope, td_tensor **out);
td_status td_sigmoid(td_tensor *x, td_tensor **out);
td_status td_tanh(td_tensor *x, td_tensor **out);
/* Exact form x * Phi(x) with erf, PyTorch's default (approximate='none'). */
td_status td_gelu(td_tensor *x, td_tensor **out);
td_status td_silu(td_tensor *x, td_tensor **out);
/* Along `axis` (negative counts from the end). Numerically stable. */
td_status td_softmax(td_tensor *x, int axis, td_tensor **out);
td_status td_log_softmax(td_tensor *x, int axis, td_tensor **out);

typedef struct td_activation_params {
  float negative_slope; /* leaky_relu */
  int axis;             /* softmax, log_softmax */
} td_activation_params;

#endif
