/* config.c - hyperparameter defaults, names and validation dispatch. */
#include <math.h>

#include "optimizer/optimizer_impl.h"

td_sgd_config td_sgd_defaults(void) {
  return (td_sgd_config){
      .lr = NAN, .momentum = 0, .dampening = 0, .weight_decay = 0, .nesterov = false};
}

td_adam_config td_adam_defaults(void) {
  return (td_adam_config){
      .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .amsgrad = false};
}

td_adam_config td_adamw_defaults(void) {
  td_adam_config c = td_adam_defaults();
  c.weight_decay = 1e-2;
  return c;
}

td_rmsprop_config td_rmsprop_defaults(void) {
  return (td_rmsprop_config){
      .lr = 1e-2, .alpha = 0.99, .eps = 1e-8, .weight_decay = 0, .momentum = 0, .centered = false};
}

td_adagrad_config td_adagrad_defaults(void) {
  return (td_adagrad_config){
      .lr = 1e-2, .lr_decay = 0, .weight_decay = 0, .initial_accumulator_value = 0, .eps = 1e-10};
}

td_optim_config td_optim_defaults(td_optim_algo algo) {
  td_optim_config c = {.algo = algo};
  switch (algo) {
  case TD_OPTIM_SGD: c.sgd = td_sgd_defaults(); break;
  case TD_OPTIM_ADAM: c.adam = td_adam_defaults(); break;
  case TD_OPTIM_ADAMW: c.adam = td_adamw_defaults(); break;
  case TD_OPTIM_RMSPROP: c.rmsprop = td_rmsprop_defaults(); break;
  case TD_OPTIM_ADAGRAD: c.adagrad = td_adagrad_defaults(); break;
  }
  return c;
}

const td_optim_def *td_optim_def_for(td_optim_algo algo) {
  switch (algo) {
  case TD_OPTIM_SGD: return &td_optim_sgd_def;
  case TD_OPTIM_ADAM: return &td_optim_adam_def;
  case TD_OPTIM_ADAMW: return &td_optim_adamw_def;
  case TD_OPTIM_RMSPROP: return &td_optim_rmsprop_def;
  case TD_OPTIM_ADAGRAD: return &td_optim_adagrad_def;
  }
  return NULL;
}

const char *td_optim_algo_name(td_optim_algo algo) {
  const td_optim_def *d = td_optim_def_for(algo);
  return d ? d->name : "?";
}

double td_optim_config_lr(const td_optim_config *cfg) {
  switch (cfg->algo) {
  case TD_OPTIM_SGD: return cfg->sgd.lr;
  case TD_OPTIM_ADAM:
  case TD_OPTIM_ADAMW: return cfg->adam.lr;
  case TD_OPTIM_RMSPROP: return cfg->rmsprop.lr;
  case TD_OPTIM_ADAGRAD: return cfg->adagrad.lr;
  }
  return NAN;
}

td_status td_optim_check_nonneg(const char *algo, const char *field, double v) {
  /* torch checks `0.0 <= v`; infinities are refused too, since no update
   * survives them. */
  if (v >= 0 && isfinite(v)) return TD_OK;
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s: invalid %s %g (expected a finite value >= 0)", algo,
                  field, v);
}

td_status td_optim_config_validate(const td_optim_config *cfg) {
  const td_optim_def *d = td_optim_def_for(cfg->algo);
  if (!d)
    return td_error(TD_ERR_INVALID_ARGUMENT, "optimizer: unknown algorithm %d", (int)cfg->algo);
  return d->validate(cfg);
}
