/* optimizer.h - MegEngine's optimizer module with torch.optim's update rules.
 *
 *   td_adam_config cfg = td_adam_defaults();
 *   cfg.lr = 3e-4;
 *   td_optimizer *opt;
 *   td_optimizer_create_adam(&cfg, params, nparams, &opt);   // one param group
 *   td_lr_schedule s = td_lr_cosine(1000, 0.0);  s.warmup_steps = 100;
 *   td_optimizer_set_schedule(opt, &s);
 *   loop: backward (fills param->grad)
 *         td_optimizer_clip_grad_norm(opt, 1.0, &grad_norm);   // optional
 *         td_optimizer_step(opt);
 *         td_optimizer_clear_grad(opt);
 *
 * Algorithms: SGD, Adam, AdamW, RMSprop, Adagrad. Each update is the float32
 * arithmetic of torch 1.13's single-tensor (foreach=False) CPU implementation,
 * operation for operation, including where torch's kernels fuse a multiply
 * and add (add with alpha, addcmul) and where they round in between (mul_ then
 * add_, addcdiv), so results track torch.optim to the last bit or so.
 *
 * Param groups: each group has its own hyperparameters (a td_optim_config of
 * the optimizer's algorithm). Parameters are float32 tensors, retained by the
 * optimizer, updated in place (views are fine) with their storage version
 * bumped. A parameter whose ->grad is NULL is skipped by a step: no state is
 * created for it and its step count does not move (torch's behaviour).
 *
 * Steps and the LR schedule: td_optimizer_step() counts calls; the count is
 * the schedule position. A step uses the LR of the current position, then
 * advances it, which is torch's `optimizer.step(); scheduler.step()`. The LR
 * is always computed in closed form from the group's base lr and the
 * position (schedule.h), so a run resumed from td_optimizer_state_dict()
 * continues the LR exactly where it was, never from the initial LR.
 *
 * Per-parameter state and checkpoints: see td_optimizer_state_dict().
 *
 * Ownership: the optimizer retains every parameter until destroyed; configs
 * and schedules are plain values, copied.
 */
#ifndef TD_OPTIMIZER_OPTIMIZER_H
#define TD_OPTIMIZER_OPTIMIZER_H

#include <stdbool.h>
#include <stdint.h>

#include "io/tensor_map.h"
#include "optimizer/schedule.h"
#include "tensor/tensor.h"

typedef enum td_optim_algo {
  TD_OPTIM_SGD = 0,
  TD_OPTIM_ADAM,
  TD_OPTIM_ADAMW,
  TD_OPTIM_RMSPROP,
  TD_OPTIM_ADAGRAD,
} td_optim_algo;

#define TD_OPTIM_ALGO_COUNT 5

/* Hyperparameters, with torch.optim's names and defaults (td_*_defaults()).
 * Every value is validated when an optimizer or group is created: a bad one
 * is INVALID_ARGUMENT naming the algorithm, the field and the value. */

/* torch.optim.SGD. lr has no default in torch: td_sgd_defaults() leaves it
 * NAN so that forgetting it is an error. momentum 0, dampening 0,
 * weight_decay 0 (L2 added to the gradient), nesterov false (needs
 * momentum > 0 and dampening 0). The momentum buffer starts as the first
 * gradient (torch's rule), not zero. */
typedef struct td_sgd_config {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
} td_sgd_config;

/* torch.optim.Adam and AdamW: lr 1e-3, betas (0.9, 0.999) in [0, 1), eps
 * 1e-8, amsgrad false. weight_decay: Adam 0, added to the gradient (L2);
 * AdamW 1e-2, decoupled (param *= 1 - lr * weight_decay before the update). */
typedef struct td_adam_config {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad;
} td_adam_config;

/* torch.optim.RMSprop: lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0,
 * momentum 0, centered false. */
typedef struct td_rmsprop_config {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
} td_rmsprop_config;

/* torch.optim.Adagrad: lr 1e-2, lr_decay 0, weight_decay 0,
 * initial_accumulator_value 0, eps 1e-10. */
typedef struct td_adagrad_config {
  double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
} td_adagrad_config;

td_sgd_config td_sgd_defaults(void);
td_adam_config td_adam_defaults(void);
td_adam_config td_adamw_defaults(void);
td_rmsprop_config td_rmsprop_defaults(void);
td_adagrad_config td_adagrad_defaults(void);

/* Any algorithm's hyperparameters; `algo` says which member is meant
 * (adam for both TD_OPTIM_ADAM and TD_OPTIM_ADAMW). */
typedef struct td_optim_config {
  td_optim_algo algo;
  union {
    td_sgd_config sgd;
    td_adam_config adam;
    td_rmsprop_config rmsprop;
    td_adagrad_config adagrad;
  };
} td_optim_config;

/* The config of `algo` with torch's defaults. */
td_optim_config td_optim_defaults(td_optim_algo algo);
/* "sgd", "adam", "adamw", "rmsprop", "adagrad"; "?" for an invalid value. */
const char *td_optim_algo_name(td_optim_algo algo);
/* Checks every hyperparameter against torch's rules. */
td_status td_optim_config_validate(const td_optim_config *cfg);

typedef struct td_optimizer td_optimizer;

/* An optimizer whose first param group holds params[0..n) with `cfg`; cfg
 * also becomes the default for later groups. n must be >= 1 (torch: "empty
 * parameter list"). Parameters must be distinct float32 tensors (views are
 * allowed, broadcast views are not). */
td_status td_optimizer_create(const td_optim_config *cfg, td_tensor *const *params, int n,
                              td_optimizer **out);
td_status td_optimizer_create_sgd(const td_sgd_config *cfg, td_tensor *const *params, int n,
                                  td_optimizer **out);
td_status td_optimizer_create_adam(const td_adam_config *cfg, td_tensor *const *params, int n,
                                   td_optimizer **out);
td_status td_optimizer_create_adamw(const td_adam_config *cfg, td_tensor *const *params, int n,
                                    td_optimizer **out);
td_status td_optimizer_create_rmsprop(const td_rmsprop_config *cfg, td_tensor *const *params, int n,
                                      td_optimizer **out);
td_status td_optimizer_create_adagrad(const td_adagrad_config *cfg, td_tensor *const *params, int n,
                                      td_optimizer **out);
/* Releases the parameters and all state. NULL is ignored. */
void td_optimizer_destroy(td_optimizer *opt);

/* torch's add_param_group: a new group of params[0..n) (n may be 0) with
 * `cfg` (NULL: the creation config). cfg->algo must be the optimizer's, and
 * no parameter may already be in the optimizer. */
td_status td_optimizer_add_param_group(td_optimizer *opt, td_tensor *const *params, int n,
                                       const td_optim_config *cfg);

/* One update of every parameter that has a grad (float32, the parameter's
 * shape), with each group's LR at the current schedule position; then the
 * position advances. All grads are checked and all new state allocated before
 * anything is written: on error nothing changes. */
td_status td_optimizer_step(td_optimizer *opt);
/* Drops every parameter's grad (set_to_none, as MegEngine and torch). */
void td_optimizer_clear_grad(td_optimizer *opt);

/* The schedule of every group's LR; replaces the previous one (the default
 * is constant). The position is kept: a schedule set after k steps starts at
 * position k. */
td_status td_optimizer_set_schedule(td_optimizer *opt, const td_lr_schedule *schedule);
const td_lr_schedule *td_optimizer_schedule(const td_optimizer *opt);

td_optim_algo td_optimizer_algo(const td_optimizer *opt);
/* Completed td_optimizer_step() calls: the schedule position. */
int64_t td_optimizer_num_steps(const td_optimizer *opt);
int td_optimizer_num_groups(const td_optimizer *opt);
int td_optimizer_num_params(const td_optimizer *opt);
/* Borrowed: parameter i in group order (torch's state_dict index). */
td_tensor *td_optimizer_param(const td_optimizer *opt, int i);
/* Borrowed: group g's hyperparameters (lr is the base lr). */
const td_optim_config *td_optimizer_group_config(const td_optimizer *opt, int g);
/* The LR group g uses at the next step (torch's param_group['lr'] after
 * scheduler.step(); read it before td_optimizer_step() for the LR of that
 * step). NAN for a group that does not exist. */
double td_optimizer_lr(const td_optimizer *opt, int g);
/* Updates parameter i has received (torch's state['step']); 0 = no state. */
int64_t td_optimizer_param_steps(const td_optimizer *opt, int i);

/* ---- gradient clipping (clip.c) ----------------------------------------- */

/* torch.nn.utils.clip_grad_norm_(params, max_norm) (L2 norm): the norm of
 * all grads of params[0..n) taken together (params without a grad are
 * skipped), returned in *total_norm as float32; if
 * clip_coef = max_norm / (total_norm + 1e-6) (float32, as torch) is below 1
 * (or NaN), every grad is multiplied by it. max_norm = INFINITY only
 * measures. max_norm must be >= 0. The sum of squares is accumulated in
 * double, so the norm is within an ulp or two of torch's float32 one. */
td_status td_clip_grad_norm(td_tensor *const *params, int n, double max_norm, float *total_norm);
/* The same over all of the optimizer's parameters. */
td_status td_optimizer_clip_grad_norm(td_optimizer *opt, double max_norm, float *total_norm);

/* ---- checkpoints (state_dict.c) ----------------------------------------- */

/* Appends the optimizer's state to `out`, everything a resumed run needs to
 * continue bit for bit, torch's optimizer.state_dict() laid out flat:
 *
 *   tensors  <prefix>state.<i>.step   int64 [] updates of parameter i
 *            <prefix>state.<i>.<buf>  float32, parameter i's shape; buffers
 *              sgd: momentum_buffer (when momentum != 0)
 *              adam, adamw: exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)
 *              rmsprop: square_avg, momentum_buffer (momentum > 0),
 *                       grad_avg (centered)
 *              adagrad: sum
 *            (only parameters that have state: updated at least once)
 *   metadata <prefix>optimizer     "adam", ...
 *            <prefix>param_groups  JSON: [{"lr": current LR, "initial_lr":
 *              base LR, <torch's hyperparameter names>..., "params": [i...]}]
 *            <prefix>lr_schedule   JSON (td_lr_schedule, see schedule.h)
 *            <prefix>step          completed steps (the schedule position)
 *
 * <i> is the parameter's index in group order; prefix may be "" or NULL
 * (at most 256 characters). Metadata already in `out` under these keys is
 * replaced; an existing tensor key is an error. The tensors share the live
 * state (no copy): write them out before the next step. On error `out` may
 * hold part of the state; the caller discards it. */
td_status td_optimizer_state_dict(const td_optimizer *opt, td_tensor_map *out, const char *prefix);

/* Restores what td_optimizer_state_dict() wrote under `prefix`: state,
 * step counts, each group's hyperparameters, the schedule and its position
 * (torch's optimizer.load_state_dict + scheduler.load_state_dict: the saved
 * hyperparameters win over the ones the optimizer was created with). The
 * algorithm, the group sizes and every buffer's shape must match; missing and
 * unexpected "<prefix>state." entries are errors. All-or-nothing: everything
 * is checked and copied first, and on any error the optimizer is unchanged.
 * The map's tensors are copied, not kept. */
td_status td_optimizer_load_state_dict(td_optimizer *opt, const td_tensor_map *in,
                                       const char *prefix);

#endif
