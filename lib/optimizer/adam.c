/* adam.c - torch.optim.Adam (L2 weight decay) and AdamW (decoupled), with AMSGrad. */
#include <stddef.h>

#include <math.h>

#include "optimizer/optimizer_impl.h"

enum { EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ };

static td_status adam_validate_as(const td_optim_config *cfg, const char *name) {
  const td_adam_config *c = &cfg->adam;
  td_status st;
  if ((st = td_optim_check_nonneg(name, "lr", c->lr))) return st;
  if ((st = td_optim_check_nonneg(name, "eps", c->eps))) return st;
  if (!(c->beta1 >= 0 && c->beta1 < 1))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: invalid beta1 %g (expected 0 <= beta1 < 1)", name,
                    c->beta1);
  if (!(c->beta2 >= 0 && c->beta2 < 1))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: invalid beta2 %g (expected 0 <= beta2 < 1)", name,
                    c->beta2);
  return td_optim_check_nonneg(name, "weight_decay", c->weight_decay);
}

static td_status adam_validate(const td_optim_config *cfg) { return adam_validate_as(cfg, "adam"); }
static td_status adamw_validate(const td_optim_config *cfg) {
  return adam_validate_as(cfg, "adamw");
}

static bool adam_has_buffer(const td_optim_config *cfg, int b) {
  return b != MAX_EXP_AVG_SQ || cfg->adam.amsgrad;
}

typedef struct adam_coefs {
  float decay; /* AdamW: 1 - lr * weight_decay; Adam: 1 (exact identity) */
  float wd;    /* Adam's L2 term, used when l2 */
  bool l2;
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float bias_correction2_sqrt, eps, neg_step_size;
} adam_coefs;

/* torch's _single_tensor_adam/_adamw, one element at a time:
 *   param.mul_(decay)                                  (AdamW)
 *   grad = grad.add(param, alpha=weight_decay)         (Adam, weight_decay != 0)
 *   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq)   (amsgrad)
 *   denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size) */
static inline void adam_kernel(float *restrict p, const float *restrict g, float *restrict m,
                               float *restrict v, float *restrict vmax, int64_t n,
                               const adam_coefs *k, const bool amsgrad) {
  const adam_coefs c = *k;
  for (int64_t i = 0; i < n; i++) {
    float pi = p[i] * c.decay;
    float gi = c.l2 ? fmaf(pi, c.wd, g[i]) : g[i];
    float mi = fmaf(gi, c.one_minus_beta1, m[i] * c.beta1);
    float vi = fmaf(c.one_minus_beta2 * gi, gi, v[i] * c.beta2);
    m[i] = mi;
    v[i] = vi;
    if (amsgrad) {
      float old = vmax[i];
      /* torch.maximum propagates NaN; the sum is NaN when either is */
      vi = (vi != vi || old != old) ? vi + old : (vi > old ? vi : old);
      vmax[i] = vi;
    }
    float denom = sqrtf(vi) / c.bias_correction2_sqrt + c.eps;
    p[i] = pi + (c.neg_step_size * mi) / denom;
  }
}

static void adam_update(const td_optim_update *u) {
  const td_adam_config *a = &u->cfg->adam;
  bool decoupled = u->cfg->algo == TD_OPTIM_ADAMW;
  double step = (double)u->step;
  double bias_correction1 = 1 - pow(a->beta1, step);
  double bias_correction2 = 1 - pow(a->beta2, step);
  double step_size = u->lr / bias_correction1;
  adam_coefs k = {
      .decay = decoupled ? (float)(1 - u->lr * a->weight_decay) : 1.0f,
      .wd = (float)a->weight_decay,
      .l2 = !decoupled && a->weight_decay != 0,
      .beta1 = (float)a->beta1,
      .one_minus_beta1 = (float)(1 - a->beta1),
      .beta2 = (float)a->beta2,
      .one_minus_beta2 = (float)(1 - a->beta2),
      .bias_correction2_sqrt = (float)sqrt(bias_correction2),
      .eps = (float)a->eps,
      .neg_step_size = (float)-step_size,
  };
  float *m = u->buf[EXP_AVG], *v = u->buf[EXP_AVG_SQ];
  if (a->amsgrad)
    adam_kernel(u->param, u->grad, m, v, u->buf[MAX_EXP_AVG_SQ], u->n, &k, true);
  else
    adam_kernel(u->param, u->grad, m, v, NULL, u->n, &k, false);
}

#define FIELD(name, type, member)                                                                  \
  { name, type, offsetof(td_optim_config, adam.member) }
static const td_hparam_field adam_fields[] = {
    FIELD("lr", TD_HP_DOUBLE, lr),         FIELD("betas", TD_HP_DOUBLE_PAIR, beta1),
    FIELD("eps", TD_HP_DOUBLE, eps),       FIELD("weight_decay", TD_HP_DOUBLE, weight_decay),
    FIELD("amsgrad", TD_HP_BOOL, amsgrad),
};

/* Adam and AdamW differ only in name (so in their messages); adam_update
 * tells them apart by cfg->algo. */
#define ADAM_DEF(algo_, name_, validate_)                                                          \
  {                                                                                                \
    .algo = algo_, .name = name_, .fields = adam_fields,                                           \
    .nfields = sizeof adam_fields / sizeof adam_fields[0],                                         \
    .buffer_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, .validate = validate_,            \
    .has_buffer = adam_has_buffer, .update = adam_update,                                          \
  }
const td_optim_def td_optim_adam_def = ADAM_DEF(TD_OPTIM_ADAM, "adam", adam_validate);
const td_optim_def td_optim_adamw_def = ADAM_DEF(TD_OPTIM_ADAMW, "adamw", adamw_validate);
