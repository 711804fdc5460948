/* elementwise.h - broadcasting binary ops and unary math (float32).
 *
 * Binary ops broadcast as NumPy/PyTorch do; the gradient of a broadcast input
 * is summed back to its shape. All return a new contiguous tensor in *out.
 */
#ifndef TD_FUNCTIONAL_ELEMENTWISE_H
#define TD_FUNCTIONAL_ELEMENTWISE_H

#include "tensor/tensor.h"

td_status td_add(td_tensor *a, td_tensor *b, td_tensor **out);
td_status td_sub(td_tensor *a, td_tensor *b, td_tensor **out);
td_status td_mul(td_tensor *a, td_tensor *b, td_tensor **out);
td_status td_div(td_tensor *a, td_tensor *b, td_tensor **out);
/* Gradient goes to a where a > b, to b where b > a, split evenly on ties
 * (torch.maximum's rule). */
td_status td_maximum(td_tensor *a, td_tensor *b, td_tensor **out);
td_status td_minimum(td_tensor *a, td_tensor *b, td_tensor **out);

td_status td_neg(td_tensor *x, td_tensor **out);
td_status td_exp(td_tensor *x, td_tensor **out);
td_status td_log(td_tensor *x, td_tensor **out);
td_status td_sqrt(td_tensor *x, td_tensor **out);
/* d|x|/dx = sign(x), 0 at 0 (PyTorch's rule). */
td_status td_abs(td_tensor *x, td_tensor **out);
/* x ** exponent for a scalar exponent. */
td_status td_pow(td_tensor *x, float exponent, td_tensor **out);
/* min(max(x, lo), hi); pass -INFINITY / INFINITY for a one-sided clamp.
 * Gradient passes where lo <= x <= hi (PyTorch's rule). lo > hi is an error. */
td_status td_clamp(td_tensor *x, float lo, float hi, td_tensor **out);
td_status td_add_scalar(td_tensor *x, float s, td_tensor **out);
td_status td_mul_scalar(td_tensor *x, float s, td_tensor **out);

typedef struct td_scalar_params {
  float a, b; /* pow: a = exponent; clamp: [a, b]; add/mul_scalar: a */
} td_scalar_params;

#endif
