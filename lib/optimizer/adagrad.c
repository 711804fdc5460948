/* adagrad.c - torch.optim.Adagrad: lr decay, weight decay, initial accumulator. */
#include <stddef.h>

#include <math.h>

#include "optimizer/optimizer_impl.h"

enum { SUM };

static td_status adagrad_validate(const td_optim_config *cfg) {
  const td_adagrad_config *c = &cfg->adagrad;
  td_status st;
  if ((st = td_optim_check_nonneg("adagrad", "lr", c->lr))) return st;
  if ((st = td_optim_check_nonneg("adagrad", "lr_decay", c->lr_decay))) return st;
  if ((st = td_optim_check_nonneg("adagrad", "weight_decay", c->weight_decay))) return st;
  if ((st = td_optim_check_nonneg("adagrad", "initial_accumulator_value",
                                  c->initial_accumulator_value)))
    return st;
  return td_optim_check_nonneg("adagrad", "eps", c->eps);
}

static bool adagrad_has_buffer(const td_optim_config *cfg, int b) { return b == SUM; }

/* torch fills the sum at construction; here at the first update, which is the
 * same thing for every parameter that is ever updated. (torch fills every
 * group's sums from the constructor's initial_accumulator_value, ignoring a
 * group's own; here each group's own value counts. One group: no difference.) */
static float adagrad_buffer_init(const td_optim_config *cfg, int b) {
  return (float)cfg->adagrad.initial_accumulator_value;
}

/* torch's _single_tensor_adagrad, one element at a time:
 *   grad = grad.add(param, alpha=weight_decay)     (weight_decay != 0)
 *   clr = lr / (1 + (step - 1) * lr_decay)
 *   state_sum.addcmul_(grad, grad, value=1)
 *   std = state_sum.sqrt().add_(eps)
 *   param.addcdiv_(grad, std, value=-clr) */
static void adagrad_update(const td_optim_update *u) {
  const td_adagrad_config *a = &u->cfg->adagrad;
  double clr = u->lr / (1 + ((double)u->step - 1) * a->lr_decay);
  const float wd = (float)a->weight_decay, eps = (float)a->eps, neg_clr = (float)-clr;
  const bool l2 = a->weight_decay != 0;
  float *restrict p = u->param, *restrict sum = u->buf[SUM];
  const float *restrict g = u->grad;
  for (int64_t i = 0; i < u->n; i++) {
    float gi = l2 ? fmaf(p[i], wd, g[i]) : g[i];
    float s = fmaf(gi, gi, sum[i]);
    sum[i] = s;
    float std = sqrtf(s) + eps;
    p[i] = p[i] + (neg_clr * gi) / std;
  }
}

#define FIELD(name, type, member)                                                                  \
  { name, type, offsetof(td_optim_config, adagrad.member) }
static const td_hparam_field adagrad_fields[] = {
    FIELD("lr", TD_HP_DOUBLE, lr),
    FIELD("lr_decay", TD_HP_DOUBLE, lr_decay),
    FIELD("weight_decay", TD_HP_DOUBLE, weight_decay),
    FIELD("initial_accumulator_value", TD_HP_DOUBLE, initial_accumulator_value),
    FIELD("eps", TD_HP_DOUBLE, eps),
};

const td_optim_def td_optim_adagrad_def = {
    .algo = TD_OPTIM_ADAGRAD,
    .name = "adagrad",
    .fields = adagrad_fields,
    .nfields = sizeof adagrad_fields / sizeof adagrad_fields[0],
    .buffer_names = {"sum"},
    .validate = adagrad_validate,
    .has_buffer = adagrad_has_buffer,
    .buffer_init = adagrad_buffer_init,
    .update = adagrad_update,
};
