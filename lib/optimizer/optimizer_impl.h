/* optimizer_impl.h - what the optimizer base shares with each algorithm file.
 *
 * An algorithm (sgd.c, adam.c, rmsprop.c, adagrad.c) is a td_optim_def: its
 * hyperparameter fields (for checkpoints), a validator, the names of its
 * per-parameter buffers and an update kernel. The base (optimizer.c) owns
 * groups, parameters and state, and calls the kernel once per parameter
 * with contiguous float arrays.
 *
 * Kernels reproduce torch's float32 arithmetic exactly. torch's CPU kernels
 * (AVX2 build) compute add(x, y, alpha) as fma(y, alpha, x) and
 * addcmul(s, a, b, value) as fma(value * a, b, s); addcdiv(s, a, b, value)
 * is s + (value * a) / b, and every separate torch op rounds. The kernels
 * spell each fusion with fmaf() and rely on the compiler contracting nothing
 * else (ISO C mode, -std=c11, implies -ffp-contract=off). Python-float
 * hyperparameters become float where torch casts them (a Scalar's
 * .to<float>()), and stay double where torch computes in Python (bias
 * corrections, step sizes).
 */
#ifndef TD_OPTIMIZER_OPTIMIZER_IMPL_H
#define TD_OPTIMIZER_OPTIMIZER_IMPL_H

#include <stddef.h>

#include "optimizer/optimizer.h"

#define TD_OPTIM_MAX_BUFFERS 3

/* One parameter's update, all arrays contiguous with n elements. */
typedef struct td_optim_update {
  const td_optim_config *cfg;
  double lr;    /* the group's scheduled LR for this step */
  int64_t step; /* this parameter's update count including this one (1 = first) */
  int64_t n;
  float *param;
  const float *grad;
  float *buf[TD_OPTIM_MAX_BUFFERS]; /* NULL where has_buffer is false */
} td_optim_update;

typedef enum td_hparam_type {
  TD_HP_DOUBLE,
  TD_HP_BOOL,
  TD_HP_DOUBLE_PAIR, /* two adjacent doubles, a JSON [a, b] (Adam's betas) */
} td_hparam_type;

/* A hyperparameter as it appears in checkpoints (torch's param_group key). */
typedef struct td_hparam_field {
  const char *name;
  td_hparam_type type;
  size_t offset; /* into td_optim_config */
} td_hparam_field;

typedef struct td_optim_def {
  td_optim_algo algo;
  const char *name;
  const td_hparam_field *fields;
  int nfields;
  const char *buffer_names[TD_OPTIM_MAX_BUFFERS]; /* torch's state keys; NULL-padded */
  /* cfg->algo is this algorithm. */
  td_status (*validate)(const td_optim_config *cfg);
  bool (*has_buffer)(const td_optim_config *cfg, int b);
  /* Buffer b's value before the first update; NULL: 0 (all but Adagrad). */
  float (*buffer_init)(const td_optim_config *cfg, int b);
  void (*update)(const td_optim_update *u);
} td_optim_def;

extern const td_optim_def td_optim_sgd_def;
extern const td_optim_def td_optim_adam_def;
extern const td_optim_def td_optim_adamw_def;
extern const td_optim_def td_optim_rmsprop_def;
extern const td_optim_def td_optim_adagrad_def;

/* NULL for an invalid algo. */
const td_optim_def *td_optim_def_for(td_optim_algo algo);

/* The base LR field of any config. */
double td_optim_config_lr(const td_optim_config *cfg);

/* Messages share one shape: "<algo>: invalid <field> <value> (expected ...)". */
td_status td_optim_check_nonneg(const char *algo, const char *field, double v);

typedef struct td_optim_group {
  td_optim_config cfg;
  int first, count; /* its parameters: params[first .. first + count) */
} td_optim_group;

typedef struct td_optim_param {
  td_tensor *tensor; /* retained */
  int group;
  int64_t step;                         /* updates so far; 0 = no state, every buf NULL */
  td_tensor *buf[TD_OPTIM_MAX_BUFFERS]; /* owned, contiguous float32, tensor's shape */
} td_optim_param;

struct td_optimizer {
  const td_optim_def *def;
  td_optim_config defaults;
  td_optim_group *groups;
  int ngroups, groups_cap;
  td_optim_param *params;
  int nparams, params_cap;
  td_lr_schedule schedule;
  int64_t steps;
};

#endif
