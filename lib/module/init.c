/* init.c - torch.nn.init's kaiming_uniform_ and the fan-in uniform bias init. */
#include "module/init.h"

#include <math.h>

int64_t td_init_fan_in(const td_tensor *weight) {
  if (weight->ndim < 2) return weight->ndim == 1 ? weight->shape[0] : 1;
  int64_t fan_in = weight->shape[1];
  for (int d = 2; d < weight->ndim; d++)
    fan_in *= weight->shape[d];
  return fan_in;
}

static td_status check_fan_in(int64_t fan_in) {
  if (fan_in <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "init: fan_in must be positive, got %lld",
                    (long long)fan_in);
  return TD_OK;
}

td_status td_init_kaiming_uniform_(td_tensor *t, double a, int64_t fan_in, td_rng *rng) {
  td_status st = check_fan_in(fan_in);
  if (st) return st;
  double gain = sqrt(2.0 / (1.0 + a * a));
  double bound = sqrt(3.0) * gain / sqrt((double)fan_in);
  return td_tensor_uniform_(t, rng, (float)-bound, (float)bound);
}

td_status td_init_fan_in_uniform_(td_tensor *t, int64_t fan_in, td_rng *rng) {
  td_status st = check_fan_in(fan_in);
  if (st) return st;
  double bound = 1.0 / sqrt((double)fan_in);
  return td_tensor_uniform_(t, rng, (float)-bound, (float)bound);
}
