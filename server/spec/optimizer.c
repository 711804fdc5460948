/* optimizer.c - OptimizerSpec (+ LRSchedule) -> td_optimizer (spec_build_optimizer).
 *
 * Unset fields take torch's defaults from td_*_defaults(); every set field is
 * checked here against torch's rules so that an error names it by path
 * ("optimizer.adam.beta1: must be in [0, 1), got 1.5"). The engine validates
 * again when creating; its message, should it ever differ, is prefixed with
 * the algorithm's path.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "core/alloc.h"
#include "spec/internal.h"
#include "spec/spec.h"

/* "<prefix>.<field>: <what>" as INVALID_ARGUMENT. */
TD_PRINTF(3, 4)
static td_status bad_field(const char *prefix, const char *field, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s.%s: %s", prefix, field, what);
}

/* torch's `0.0 <= v` checks; infinities are refused too, as the engine does. */
static td_status nonneg(const char *prefix, const char *field, double v) {
  if (v >= 0 && isfinite(v)) return TD_OK;
  return bad_field(prefix, field, "must be a finite value >= 0, got %g", v);
}

static td_status beta(const char *prefix, const char *field, double v) {
  if (v >= 0 && v < 1) return TD_OK;
  return bad_field(prefix, field, "must be in [0, 1), got %g", v);
}

#define FIELD(msg, name, dflt) ((msg)->has_##name ? (msg)->name : (dflt))

static td_status read_sgd(const Traind__V1__SGD *m, td_optim_config *cfg) {
  const char *p = "optimizer.sgd";
  td_sgd_config *c = &cfg->sgd;
  *c = td_sgd_defaults();
  if (!m->has_lr) return bad_field(p, "lr", "is required (torch.optim.SGD has no default)");
  c->lr = m->lr;
  c->momentum = FIELD(m, momentum, c->momentum);
  c->dampening = FIELD(m, dampening, c->dampening);
  c->weight_decay = FIELD(m, weight_decay, c->weight_decay);
  c->nesterov = FIELD(m, nesterov, c->nesterov);
  td_status st;
  if ((st = nonneg(p, "lr", c->lr)) || (st = nonneg(p, "momentum", c->momentum)) ||
      (st = nonneg(p, "weight_decay", c->weight_decay)))
    return st;
  if (!isfinite(c->dampening))
    return bad_field(p, "dampening", "must be finite, got %g", c->dampening);
  if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
    return bad_field(p, "nesterov",
                     "needs momentum > 0 and dampening 0 (momentum %g, dampening %g)", c->momentum,
                     c->dampening);
  return TD_OK;
}

static td_status read_adam(const Traind__V1__Adam *m, bool adamw, td_optim_config *cfg) {
  const char *p = adamw ? "optimizer.adamw" : "optimizer.adam";
  td_adam_config *c = &cfg->adam;
  *c = adamw ? td_adamw_defaults() : td_adam_defaults();
  c->lr = FIELD(m, lr, c->lr);
  c->beta1 = FIELD(m, beta1, c->beta1);
  c->beta2 = FIELD(m, beta2, c->beta2);
  c->eps = FIELD(m, eps, c->eps);
  c->weight_decay = FIELD(m, weight_decay, c->weight_decay);
  c->amsgrad = FIELD(m, amsgrad, c->amsgrad);
  td_status st;
  if ((st = nonneg(p, "lr", c->lr)) || (st = beta(p, "beta1", c->beta1)) ||
      (st = beta(p, "beta2", c->beta2)) || (st = nonneg(p, "eps", c->eps)) ||
      (st = nonneg(p, "weight_decay", c->weight_decay)))
    return st;
  return TD_OK;
}

static td_status read_rmsprop(const Traind__V1__RMSprop *m, td_optim_config *cfg) {
  const char *p = "optimizer.rmsprop";
  td_rmsprop_config *c = &cfg->rmsprop;
  *c = td_rmsprop_defaults();
  c->lr = FIELD(m, lr, c->lr);
  c->alpha = FIELD(m, alpha, c->alpha);
  c->eps = FIELD(m, eps, c->eps);
  c->weight_decay = FIELD(m, weight_decay, c->weight_decay);
  c->momentum = FIELD(m, momentum, c->momentum);
  c->centered = FIELD(m, centered, c->centered);
  td_status st;
  if ((st = nonneg(p, "lr", c->lr)) || (st = nonneg(p, "alpha", c->alpha)) ||
      (st = nonneg(p, "eps", c->eps)) || (st = nonneg(p, "weight_decay", c->weight_decay)) ||
      (st = nonneg(p, "momentum", c->momentum)))
    return st;
  return TD_OK;
}

static td_status read_adagrad(const Traind__V1__Adagrad *m, td_optim_config *cfg) {
  const char *p = "optimizer.adagrad";
  td_adagrad_config *c = &cfg->adagrad;
  *c = td_adagrad_defaults();
  c->lr = FIELD(m, lr, c->lr);
  c->lr_decay = FIELD(m, lr_decay, c->lr_decay);
  c->weight_decay = FIELD(m, weight_decay, c->weight_decay);
  c->eps = FIELD(m, eps, c->eps);
  c->initial_accumulator_value = FIELD(m, initial_accumulator_value, c->initial_accumulator_value);
  td_status st;
  if ((st = nonneg(p, "lr", c->lr)) || (st = nonneg(p, "lr_decay", c->lr_decay)) ||
      (st = nonneg(p, "weight_decay", c->weight_decay)) || (st = nonneg(p, "eps", c->eps)) ||
      (st = nonneg(p, "initial_accumulator_value", c->initial_accumulator_value)))
    return st;
  return TD_OK;
}

/* A oneof member whose pointer is NULL (only when a message is built in C)
 * reads as that message with nothing set. */
#define OR_DEFAULT(ptr, type, init) ((ptr) ? (ptr) : &(const type)init)

static td_status read_algorithm(const Traind__V1__OptimizerSpec *spec, td_optim_config *cfg) {
  switch (spec->algorithm_case) {
  case TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD:
    cfg->algo = TD_OPTIM_SGD;
    return read_sgd(OR_DEFAULT(spec->sgd, Traind__V1__SGD, TRAIND__V1__SGD__INIT), cfg);
  case TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAM:
    cfg->algo = TD_OPTIM_ADAM;
    return read_adam(OR_DEFAULT(spec->adam, Traind__V1__Adam, TRAIND__V1__ADAM__INIT), false, cfg);
  case TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAMW:
    cfg->algo = TD_OPTIM_ADAMW;
    return read_adam(OR_DEFAULT(spec->adamw, Traind__V1__Adam, TRAIND__V1__ADAM__INIT), true, cfg);
  case TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_RMSPROP:
    cfg->algo = TD_OPTIM_RMSPROP;
    return read_rmsprop(OR_DEFAULT(spec->rmsprop, Traind__V1__RMSprop, TRAIND__V1__RMSPROP__INIT),
                        cfg);
  case TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAGRAD:
    cfg->algo = TD_OPTIM_ADAGRAD;
    return read_adagrad(OR_DEFAULT(spec->adagrad, Traind__V1__Adagrad, TRAIND__V1__ADAGRAD__INIT),
                        cfg);
  case TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM__NOT_SET: {
    uint32_t field = spec_unknown_field(&spec->base);
    if (field)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "optimizer: unknown algorithm (field %u, from a newer client?); this "
                      "server knows sgd, adam, adamw, rmsprop, adagrad",
                      field);
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "optimizer: no algorithm set (expected one of sgd, adam, adamw, rmsprop, "
                    "adagrad)");
  }
  default:
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "optimizer: unknown algorithm (oneof case %d); this server knows sgd, adam, "
                    "adamw, rmsprop, adagrad",
                    (int)spec->algorithm_case);
  }
}

/* ---- schedules ------------------------------------------------------------ */

static td_status read_gamma(const char *p, bool has, double v, double *gamma) {
  *gamma = has ? v : 0.1; /* torch's StepLR / MultiStepLR default */
  return nonneg(p, "gamma", *gamma);
}

static td_status read_main_schedule(const Traind__V1__LRSchedule *m, td_lr_schedule *s) {
  switch (m->kind_case) {
  case TRAIND__V1__LRSCHEDULE__KIND__NOT_SET: {
    uint32_t field = spec_unknown_field(&m->base);
    if (field)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "optimizer.schedule: unknown kind (field %u, from a newer client?); this "
                      "server knows step, multistep, cosine",
                      field);
    *s = td_lr_constant();
    return TD_OK;
  }
  case TRAIND__V1__LRSCHEDULE__KIND_STEP: {
    const char *p = "optimizer.schedule.step";
    const Traind__V1__StepLR *k =
        OR_DEFAULT(m->step, Traind__V1__StepLR, TRAIND__V1__STEP_LR__INIT);
    if (k->step_size < 1)
      return bad_field(p, "step_size", "must be >= 1, got %lld", (long long)k->step_size);
    *s = td_lr_step(k->step_size, 0.1);
    return read_gamma(p, k->has_gamma, k->gamma, &s->gamma);
  }
  case TRAIND__V1__LRSCHEDULE__KIND_MULTISTEP: {
    const char *p = "optimizer.schedule.multistep";
    const Traind__V1__MultiStepLR *k =
        OR_DEFAULT(m->multistep, Traind__V1__MultiStepLR, TRAIND__V1__MULTI_STEP_LR__INIT);
    if (k->n_milestones > TD_LR_MAX_MILESTONES)
      return bad_field(p, "milestones", "has %zu values, at most %d", k->n_milestones,
                       TD_LR_MAX_MILESTONES);
    for (size_t i = 0; i < k->n_milestones; i++) {
      if (k->milestones[i] < 0)
        return bad_field(p, "milestones", "value %zu must be >= 0, got %lld", i,
                         (long long)k->milestones[i]);
      if (i > 0 && k->milestones[i] < k->milestones[i - 1])
        return bad_field(p, "milestones", "must not decrease (value %zu is %lld after %lld)", i,
                         (long long)k->milestones[i], (long long)k->milestones[i - 1]);
    }
    *s = td_lr_multistep(k->milestones, (int)k->n_milestones, 0.1);
    return read_gamma(p, k->has_gamma, k->gamma, &s->gamma);
  }
  case TRAIND__V1__LRSCHEDULE__KIND_COSINE: {
    const char *p = "optimizer.schedule.cosine";
    const Traind__V1__CosineAnnealingLR *k =
        OR_DEFAULT(m->cosine, Traind__V1__CosineAnnealingLR, TRAIND__V1__COSINE_ANNEALING_LR__INIT);
    if (k->t_max < 1) return bad_field(p, "t_max", "must be >= 1, got %lld", (long long)k->t_max);
    *s = td_lr_cosine(k->t_max, k->eta_min);
    return nonneg(p, "eta_min", k->eta_min);
  }
  default:
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "optimizer.schedule: unknown kind (oneof case %d); this server knows step, "
                    "multistep, cosine",
                    (int)m->kind_case);
  }
}

static td_status read_schedule(const Traind__V1__LRSchedule *m, td_lr_schedule *s) {
  td_status st = read_main_schedule(m, s);
  if (st) return st;
  const char *p = "optimizer.schedule";
  if (m->warmup_steps < 0)
    return bad_field(p, "warmup_steps", "must be >= 0, got %lld", (long long)m->warmup_steps);
  /* Unset: torch's LinearLR default start_factor. */
  double f = m->has_warmup_start_factor ? m->warmup_start_factor : 1.0 / 3.0;
  if (!(f > 0 && f <= 1))
    return bad_field(p, "warmup_start_factor", "must be in (0, 1], got %g", f);
  s->warmup_steps = m->warmup_steps;
  s->warmup_start_factor = f;
  if ((st = td_lr_schedule_validate(s))) td_error_prefix("%s: ", p);
  return st;
}

td_status spec_build_optimizer(const Traind__V1__OptimizerSpec *spec, td_module *model,
                               spec_optimizer *out) {
  *out = (spec_optimizer){NULL, 0};
  if (!spec) return td_error(TD_ERR_INVALID_ARGUMENT, "optimizer: is required");
  td_optim_config cfg;
  td_status st = read_algorithm(spec, &cfg);
  if (st) return st;
  double clip = spec->grad_clip_norm;
  if (!(clip >= 0)) return bad_field("optimizer", "grad_clip_norm", "must be >= 0, got %g", clip);
  td_lr_schedule schedule = td_lr_constant();
  if (spec->schedule && (st = read_schedule(spec->schedule, &schedule))) return st;

  td_tensor **params = NULL;
  int n = 0;
  if ((st = td_module_parameters(model, &params, &n))) return st;
  if (n == 0)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "optimizer: the model has no parameters to optimize (torch: empty parameter "
                    "list)");
  td_optimizer *opt = NULL;
  if ((st = td_optimizer_create(&cfg, params, n, &opt))) {
    td_error_prefix("optimizer.%s: ", td_optim_algo_name(cfg.algo));
  } else if ((st = td_optimizer_set_schedule(opt, &schedule))) {
    td_error_prefix("optimizer.schedule: ");
    td_optimizer_destroy(opt);
  }
  td_free(params);
  if (st) return st;
  out->optimizer = opt;
  out->grad_clip_norm = clip;
  return TD_OK;
}
