/* rmsprop.c - torch.optim.RMSprop: alpha, eps, weight decay, momentum, centered. */
#include <stddef.h>

#include <math.h>

#include "optimizer/optimizer_impl.h"

enum { SQUARE_AVG, MOMENTUM_BUFFER, GRAD_AVG };

static td_status rmsprop_validate(const td_optim_config *cfg) {
  const td_rmsprop_config *c = &cfg->rmsprop;
  td_status st;
  if ((st = td_optim_check_nonneg("rmsprop", "lr", c->lr))) return st;
  if ((st = td_optim_check_nonneg("rmsprop", "eps", c->eps))) return st;
  if ((st = td_optim_check_nonneg("rmsprop", "momentum", c->momentum))) return st;
  if ((st = td_optim_check_nonneg("rmsprop", "weight_decay", c->weight_decay))) return st;
  return td_optim_check_nonneg("rmsprop", "alpha", c->alpha);
}

static bool rmsprop_has_buffer(const td_optim_config *cfg, int b) {
  switch (b) {
  case SQUARE_AVG: return true;
  case MOMENTUM_BUFFER: return cfg->rmsprop.momentum > 0;
  case GRAD_AVG: return cfg->rmsprop.centered;
  }
  return false;
}

typedef struct rmsprop_coefs {
  float wd;
  bool l2;
  float alpha, one_minus_alpha, eps, momentum, neg_lr;
} rmsprop_coefs;

/* torch's _single_tensor_rmsprop, one element at a time:
 *   grad = grad.add(param, alpha=weight_decay)            (weight_decay != 0)
 *   square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
 *   centered: grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
 *             avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
 *   else:     avg = square_avg.sqrt()
 *   avg.add_(eps)
 *   momentum: buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
 *   else:     param.addcdiv_(grad, avg, value=-lr) */
static inline void rmsprop_kernel(float *restrict p, const float *restrict g, float *restrict sq,
                                  float *restrict buf, float *restrict ga, int64_t n,
                                  const rmsprop_coefs *k, const bool centered,
                                  const bool momentum) {
  const rmsprop_coefs c = *k;
  for (int64_t i = 0; i < n; i++) {
    float gi = c.l2 ? fmaf(p[i], c.wd, g[i]) : g[i];
    float s = fmaf(c.one_minus_alpha * gi, gi, sq[i] * c.alpha);
    sq[i] = s;
    float avg;
    if (centered) {
      float a = fmaf(gi, c.one_minus_alpha, ga[i] * c.alpha);
      ga[i] = a;
      avg = sqrtf(fmaf(-a, a, s));
    } else {
      avg = sqrtf(s);
    }
    avg = avg + c.eps;
    if (momentum) {
      float b = buf[i] * c.momentum + gi / avg;
      buf[i] = b;
      p[i] = fmaf(b, c.neg_lr, p[i]);
    } else {
      p[i] = p[i] + (c.neg_lr * gi) / avg;
    }
  }
}

static void rmsprop_update(const td_optim_update *u) {
  const td_rmsprop_config *r = &u->cfg->rmsprop;
  rmsprop_coefs k = {
      .wd = (float)r->weight_decay,
      .l2 = r->weight_decay != 0,
      .alpha = (float)r->alpha,
      .one_minus_alpha = (float)(1 - r->alpha),
      .eps = (float)r->eps,
      .momentum = (float)r->momentum,
      .neg_lr = (float)-u->lr,
  };
  float *p = u->param, *sq = u->buf[SQUARE_AVG], *buf = u->buf[MOMENTUM_BUFFER];
  float *ga = u->buf[GRAD_AVG];
  const float *g = u->grad;
  bool momentum = r->momentum > 0;
  if (r->centered && momentum)
    rmsprop_kernel(p, g, sq, buf, ga, u->n, &k, true, true);
  else if (r->centered)
    rmsprop_kernel(p, g, sq, NULL, ga, u->n, &k, true, false);
  else if (momentum)
    rmsprop_kernel(p, g, sq, buf, NULL, u->n, &k, false, true);
  else
    rmsprop_kernel(p, g, sq, NULL, NULL, u->n, &k, false, false);
}

#define FIELD(name, type, member)                                                                  \
  { name, type, offsetof(td_optim_config, rmsprop.member) }
static const td_hparam_field rmsprop_fields[] = {
    FIELD("lr", TD_HP_DOUBLE, lr),
    FIELD("alpha", TD_HP_DOUBLE, alpha),
    FIELD("eps", TD_HP_DOUBLE, eps),
    FIELD("weight_decay", TD_HP_DOUBLE, weight_decay),
    FIELD("momentum", TD_HP_DOUBLE, momentum),
    FIELD("centered", TD_HP_BOOL, centered),
};

const td_optim_def td_optim_rmsprop_def = {
    .algo = TD_OPTIM_RMSPROP,
    .name = "rmsprop",
    .fields = rmsprop_fields,
    .nfields = sizeof rmsprop_fields / sizeof rmsprop_fields[0],
    .buffer_names = {"square_avg", "momentum_buffer", "grad_avg"},
    .validate = rmsprop_validate,
    .has_buffer = rmsprop_has_buffer,
    .update = rmsprop_update,
};
