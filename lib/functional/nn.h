/* nn.h - dropout and embedding. */
#ifndef TD_FUNCTIONAL_NN_H
#define TD_FUNCTIONAL_NN_H

#include <stdbool.h>

#include "tensor/random.h"
#include "tensor/tensor.h"

typedef struct td_dropout_params {
  float p;        /* in [0, 1) ; p == 1 zeroes everything, as PyTorch */
  bool training;  /* false: identity */
  td_rng *rng;    /* forward only; advanced by the mask draw */
} td_dropout_params;

/* Inverted dropout: kept elements are scaled by 1/(1-p). */
td_status td_dropout(td_tensor *x, float p, bool training, td_rng *rng, td_tensor **out);

/* indices int64 of any shape, weight [V, D] -> [..., D]. An index outside
 * [0, V) is TD_ERR_OUT_OF_RANGE. Gradient goes to weight only. */
td_status td_embedding(td_tensor *indices, td_tensor *weight, td_tensor **out);

#endif
