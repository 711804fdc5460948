/* init.h - PyTorch's parameter initialisers (torch.nn.init) over a td_rng.
 *
 * Same algorithms and distributions as torch.nn.init; the random stream is
 * traind's own, so values differ from torch's but a seed fixes them. Each
 * fills a float32 tensor in place (bumping its version).
 */
#ifndef TD_MODULE_INIT_H
#define TD_MODULE_INIT_H

#include <stdint.h>

#include "tensor/random.h"
#include "tensor/tensor.h"

/* The `a` PyTorch's Linear and Conv2d pass to kaiming_uniform_. */
#define TD_INIT_SQRT5 2.2360679774997896964

/* torch's fan_in of a weight: shape[1] times the product of shape[2:]
 * (a 1-d tensor's fan_in is shape[0]). */
int64_t td_init_fan_in(const td_tensor *weight);

/* kaiming_uniform_(mode='fan_in', nonlinearity='leaky_relu', a): U(-b, b) with
 * b = sqrt(3) * sqrt(2 / (1 + a^2)) / sqrt(fan_in). a = sqrt(5), what Linear
 * and Conv2d use, gives b = 1/sqrt(fan_in). fan_in must be > 0. */
td_status td_init_kaiming_uniform_(td_tensor *t, double a, int64_t fan_in, td_rng *rng);

/* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): Linear's and Conv2d's bias. */
td_status td_init_fan_in_uniform_(td_tensor *t, int64_t fan_in, td_rng *rng);

#endif
