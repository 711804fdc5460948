/* sgd.c - torch.optim.SGD: momentum, dampening, nesterov, weight decay. */
#include <stddef.h>

#include <math.h>

#include "optimizer/optimizer_impl.h"

enum { MOMENTUM_BUFFER };

static td_status sgd_validate(const td_optim_config *cfg) {
  const td_sgd_config *c = &cfg->sgd;
  td_status st;
  if (isnan(c->lr))
    return td_error(TD_ERR_INVALID_ARGUMENT, "sgd: lr is required (torch's SGD has no default)");
  if ((st = td_optim_check_nonneg("sgd", "lr", c->lr))) return st;
  if ((st = td_optim_check_nonneg("sgd", "momentum", c->momentum))) return st;
  if ((st = td_optim_check_nonneg("sgd", "weight_decay", c->weight_decay))) return st;
  if (!isfinite(c->dampening))
    return td_error(TD_ERR_INVALID_ARGUMENT, "sgd: invalid dampening %g (expected a finite value)",
                    c->dampening);
  if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "sgd: nesterov requires momentum > 0 and dampening 0 (momentum %g, "
                    "dampening %g)",
                    c->momentum, c->dampening);
  return TD_OK;
}

static bool sgd_has_buffer(const td_optim_config *cfg, int b) {
  return b == MOMENTUM_BUFFER && cfg->sgd.momentum != 0;
}

/* torch: d_p = grad (+ weight_decay * param); buf = d_p on the first step,
 * else buf * momentum + (1 - dampening) * d_p; d_p = nesterov ? d_p +
 * momentum * buf : buf; param += -lr * d_p. */
static void sgd_momentum(float *restrict p, const float *restrict g, float *restrict buf, int64_t n,
                         float wd, bool use_wd, float mom, float keep, bool first, bool nesterov,
                         float neg_lr) {
  for (int64_t i = 0; i < n; i++) {
    float d = use_wd ? fmaf(p[i], wd, g[i]) : g[i];
    float b = first ? d : fmaf(d, keep, buf[i] * mom);
    buf[i] = b;
    d = nesterov ? fmaf(b, mom, d) : b;
    p[i] = fmaf(d, neg_lr, p[i]);
  }
}

static void sgd_plain(float *restrict p, const float *restrict g, int64_t n, float wd, bool use_wd,
                      float neg_lr) {
  for (int64_t i = 0; i < n; i++) {
    float d = use_wd ? fmaf(p[i], wd, g[i]) : g[i];
    p[i] = fmaf(d, neg_lr, p[i]);
  }
}

static void sgd_update(const td_optim_update *u) {
  const td_sgd_config *c = &u->cfg->sgd;
  float wd = (float)c->weight_decay, neg_lr = (float)-u->lr;
  bool use_wd = c->weight_decay != 0;
  if (c->momentum != 0)
    sgd_momentum(u->param, u->grad, u->buf[MOMENTUM_BUFFER], u->n, wd, use_wd, (float)c->momentum,
                 (float)(1 - c->dampening), u->step == 1, c->nesterov, neg_lr);
  else
    sgd_plain(u->param, u->grad, u->n, wd, use_wd, neg_lr);
}

#define FIELD(name, type, member)                                                                  \
  { name, type, offsetof(td_optim_config, sgd.member) }
static const td_hparam_field sgd_fields[] = {
    FIELD("lr", TD_HP_DOUBLE, lr),
    FIELD("momentum", TD_HP_DOUBLE, momentum),
    FIELD("dampening", TD_HP_DOUBLE, dampening),
    FIELD("weight_decay", TD_HP_DOUBLE, weight_decay),
    FIELD("nesterov", TD_HP_BOOL, nesterov),
};

const td_optim_def td_optim_sgd_def = {
    .algo = TD_OPTIM_SGD,
    .name = "sgd",
    .fields = sgd_fields,
    .nfields = sizeof sgd_fields / sizeof sgd_fields[0],
    .buffer_names = {"momentum_buffer"},
    .validate = sgd_validate,
    .has_buffer = sgd_has_buffer,
    .update = sgd_update,
};
