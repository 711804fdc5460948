/* optimizer.c - the optimizer base: param groups, state, step, clear_grad. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "optimizer/optimizer_impl.h"

/* Grows *arr (of elem-sized items) to hold `need`. */
static td_status reserve(void **arr, int *cap, int need, size_t elem) {
  if (need <= *cap) return TD_OK;
  int ncap = *cap ? *cap : 8;
  while (ncap < need)
    ncap = ncap > (1 << 29) ? need : ncap * 2;
  void *p = td_calloc((size_t)ncap, elem, "optimizer");
  if (!p) return TD_ERR_NO_MEMORY;
  if (*cap) memcpy(p, *arr, (size_t)*cap * elem);
  td_free(*arr);
  *arr = p;
  *cap = ncap;
  return TD_OK;
}

static bool is_broadcast_view(const td_tensor *t) {
  for (int d = 0; d < t->ndim; d++)
    if (t->strides[d] == 0 && t->shape[d] > 1) return true;
  return false;
}

static bool already_added(const td_optimizer *opt, td_tensor *const *params, int upto,
                          const td_tensor *t) {
  for (int i = 0; i < opt->nparams; i++)
    if (opt->params[i].tensor == t) return true;
  for (int i = 0; i < upto; i++)
    if (params[i] == t) return true;
  return false;
}

td_status td_optimizer_add_param_group(td_optimizer *opt, td_tensor *const *params, int n,
                                       const td_optim_config *cfg) {
  const char *name = opt->def->name;
  if (!cfg) cfg = &opt->defaults;
  if (cfg->algo != opt->def->algo)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: add_param_group: the group's config is for %s, this optimizer is %s", name,
                    td_optim_algo_name(cfg->algo), name);
  td_status st = opt->def->validate(cfg);
  if (st) return st;
  if (n < 0 || (n > 0 && !params))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: invalid parameter list (%d parameters)", name, n);
  if (n > INT32_MAX / 2 - opt->nparams)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: too many parameters (%d + %d)", name,
                    opt->nparams, n);
  for (int i = 0; i < n; i++) {
    td_tensor *t = params[i];
    int idx = opt->nparams + i;
    if (!t) return td_error(TD_ERR_INVALID_ARGUMENT, "%s: parameter %d is NULL", name, idx);
    char s[TD_SHAPE_STR_MAX];
    if (t->dtype != TD_FLOAT32)
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: parameter %d is %s %s, expected float32", name,
                      idx, td_dtype_name(t->dtype), td_tensor_shape_str(s, t));
    if (is_broadcast_view(t))
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: parameter %d %s is a broadcast view (a stride of 0): it cannot be "
                      "updated in place",
                      name, idx, td_tensor_shape_str(s, t));
    if (already_added(opt, params, i, t))
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: parameter %d %s appears more than once in the optimizer", name, idx,
                      td_tensor_shape_str(s, t));
  }
  if ((st =
           reserve((void **)&opt->groups, &opt->groups_cap, opt->ngroups + 1, sizeof *opt->groups)))
    return st;
  if ((st =
           reserve((void **)&opt->params, &opt->params_cap, opt->nparams + n, sizeof *opt->params)))
    return st;
  td_optim_group *g = &opt->groups[opt->ngroups];
  g->cfg = *cfg;
  g->first = opt->nparams;
  g->count = n;
  for (int i = 0; i < n; i++) {
    td_optim_param *p = &opt->params[opt->nparams + i];
    memset(p, 0, sizeof *p);
    p->tensor = td_tensor_retain(params[i]);
    p->group = opt->ngroups;
  }
  opt->nparams += n;
  opt->ngroups++;
  return TD_OK;
}

td_status td_optimizer_create(const td_optim_config *cfg, td_tensor *const *params, int n,
                              td_optimizer **out) {
  *out = NULL;
  td_status st = td_optim_config_validate(cfg);
  if (st) return st;
  const td_optim_def *def = td_optim_def_for(cfg->algo);
  if (n < 1)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: optimizer got an empty parameter list",
                    def->name);
  td_optimizer *opt = td_calloc(1, sizeof *opt, "optimizer");
  if (!opt) return TD_ERR_NO_MEMORY;
  opt->def = def;
  opt->defaults = *cfg;
  opt->schedule = td_lr_constant();
  if ((st = td_optimizer_add_param_group(opt, params, n, cfg))) {
    td_optimizer_destroy(opt);
    return st;
  }
  *out = opt;
  return TD_OK;
}

td_status td_optimizer_create_sgd(const td_sgd_config *cfg, td_tensor *const *params, int n,
                                  td_optimizer **out) {
  td_optim_config c = {.algo = TD_OPTIM_SGD, .sgd = *cfg};
  return td_optimizer_create(&c, params, n, out);
}

td_status td_optimizer_create_adam(const td_adam_config *cfg, td_tensor *const *params, int n,
                                   td_optimizer **out) {
  td_optim_config c = {.algo = TD_OPTIM_ADAM, .adam = *cfg};
  return td_optimizer_create(&c, params, n, out);
}

td_status td_optimizer_create_adamw(const td_adam_config *cfg, td_tensor *const *params, int n,
                                    td_optimizer **out) {
  td_optim_config c = {.algo = TD_OPTIM_ADAMW, .adam = *cfg};
  return td_optimizer_create(&c, params, n, out);
}

td_status td_optimizer_create_rmsprop(const td_rmsprop_config *cfg, td_tensor *const *params, int n,
                                      td_optimizer **out) {
  td_optim_config c = {.algo = TD_OPTIM_RMSPROP, .rmsprop = *cfg};
  return td_optimizer_create(&c, params, n, out);
}

td_status td_optimizer_create_adagrad(const td_adagrad_config *cfg, td_tensor *const *params, int n,
                                      td_optimizer **out) {
  td_optim_config c = {.algo = TD_OPTIM_ADAGRAD, .adagrad = *cfg};
  return td_optimizer_create(&c, params, n, out);
}

void td_optimizer_destroy(td_optimizer *opt) {
  if (!opt) return;
  for (int i = 0; i < opt->nparams; i++) {
    td_tensor_release(opt->params[i].tensor);
    for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++)
      td_tensor_release(opt->params[i].buf[b]);
  }
  td_free(opt->params);
  td_free(opt->groups);
  td_free(opt);
}

/* What one parameter's update needs, gathered before anything is written. */
typedef struct step_plan {
  td_tensor *grad;                        /* contiguous grad; NULL = skip */
  td_tensor *work;                        /* the param, or a contiguous copy of a view */
  td_tensor *fresh[TD_OPTIM_MAX_BUFFERS]; /* state created by this (first) update */
} step_plan;

static void plan_free(step_plan *plan, int n) {
  if (!plan) return;
  for (int i = 0; i < n; i++) {
    td_tensor_release(plan[i].grad);
    td_tensor_release(plan[i].work);
    for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++)
      td_tensor_release(plan[i].fresh[b]);
  }
  td_free(plan);
}

static td_status plan_param(const td_optimizer *opt, int i, step_plan *pl) {
  const td_optim_param *p = &opt->params[i];
  td_tensor *t = p->tensor, *g = t->grad;
  if (g->dtype != TD_FLOAT32 || !td_shape_equal(g->ndim, g->shape, t->ndim, t->shape)) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s step: parameter %d is float32 %s but its grad is %s %s", opt->def->name, i,
                    td_tensor_shape_str(a, t), td_dtype_name(g->dtype), td_tensor_shape_str(b, g));
  }
  td_status st;
  if ((st = td_tensor_contiguous(g, &pl->grad))) return st;
  if ((st = td_tensor_contiguous(t, &pl->work))) return st;
  if (p->step > 0) return TD_OK;
  const td_optim_config *cfg = &opt->groups[p->group].cfg;
  for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++) {
    if (!opt->def->buffer_names[b] || !opt->def->has_buffer(cfg, b)) continue;
    double init = opt->def->buffer_init ? opt->def->buffer_init(cfg, b) : 0;
    if ((st = td_tensor_full(TD_FLOAT32, t->ndim, t->shape, init, &pl->fresh[b]))) return st;
  }
  return TD_OK;
}

td_status td_optimizer_step(td_optimizer *opt) {
  int n = opt->nparams;
  step_plan *plan = td_calloc(n > 0 ? (size_t)n : 1, sizeof *plan, "optimizer step");
  if (!plan) return TD_ERR_NO_MEMORY;
  for (int i = 0; i < n; i++) {
    if (!opt->params[i].tensor->grad) continue;
    td_status st = plan_param(opt, i, &plan[i]);
    if (st) {
      plan_free(plan, n);
      return st;
    }
  }
  /* From here on nothing can fail. */
  for (int i = 0; i < n; i++) {
    step_plan *pl = &plan[i];
    if (!pl->grad) continue;
    td_optim_param *p = &opt->params[i];
    const td_optim_group *g = &opt->groups[p->group];
    for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++) {
      if (!pl->fresh[b]) continue;
      p->buf[b] = pl->fresh[b];
      pl->fresh[b] = NULL;
    }
    td_optim_update u = {
        .cfg = &g->cfg,
        .lr = td_lr_schedule_lr(&opt->schedule, td_optim_config_lr(&g->cfg), opt->steps),
        .step = p->step + 1,
        .n = p->tensor->numel,
        .param = td_tensor_f32(pl->work),
        .grad = td_tensor_f32(pl->grad),
    };
    for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++)
      u.buf[b] = p->buf[b] ? td_tensor_f32(p->buf[b]) : NULL;
    opt->def->update(&u);
    if (pl->work != p->tensor)
      (void)td_tensor_copy_(p->tensor, pl->work); /* same shape and dtype: cannot fail */
    else
      td_tensor_bump_version(p->tensor);
    p->step++;
  }
  opt->steps++;
  plan_free(plan, n);
  return TD_OK;
}

void td_optimizer_clear_grad(td_optimizer *opt) {
  for (int i = 0; i < opt->nparams; i++)
    TD_RELEASE(opt->params[i].tensor->grad);
}

td_status td_optimizer_set_schedule(td_optimizer *opt, const td_lr_schedule *schedule) {
  td_status st = td_lr_schedule_validate(schedule);
  if (st) return st;
  opt->schedule = *schedule;
  return TD_OK;
}

const td_lr_schedule *td_optimizer_schedule(const td_optimizer *opt) { return &opt->schedule; }
td_optim_algo td_optimizer_algo(const td_optimizer *opt) { return opt->def->algo; }
int64_t td_optimizer_num_steps(const td_optimizer *opt) { return opt->steps; }
int td_optimizer_num_groups(const td_optimizer *opt) { return opt->ngroups; }
int td_optimizer_num_params(const td_optimizer *opt) { return opt->nparams; }

td_tensor *td_optimizer_param(const td_optimizer *opt, int i) {
  return i >= 0 && i < opt->nparams ? opt->params[i].tensor : NULL;
}

const td_optim_config *td_optimizer_group_config(const td_optimizer *opt, int g) {
  return g >= 0 && g < opt->ngroups ? &opt->groups[g].cfg : NULL;
}

double td_optimizer_lr(const td_optimizer *opt, int g) {
  const td_optim_config *cfg = td_optimizer_group_config(opt, g);
  if (!cfg) return NAN;
  return td_lr_schedule_lr(&opt->schedule, td_optim_config_lr(cfg), opt->steps);
}

int64_t td_optimizer_param_steps(const td_optimizer *opt, int i) {
  return i >= 0 && i < opt->nparams ? opt->params[i].step : 0;
}
