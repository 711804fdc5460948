/* optim_dump.c - runs every optimizer case and writes what torch.optim must reproduce.
 *
 * usage: optim_dump OUTDIR [NAME-SUBSTRING]
 *
 * Each case starts from seeded parameters, feeds seeded gradients for a
 * number of steps (some parameters skip some steps when the case says so),
 * optionally clips them and follows an LR schedule. It writes OUTDIR/<case>.json
 * (torch-named hyperparameters, schedule, shapes, which grads exist) and raw
 * little-endian files: initial params, every step's grads (before clipping),
 * params after every step, the LR of each group at each step (float64) and
 * the clipped total norm of each step. tests/parity/optim_parity.py replays
 * the same in torch and compares.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optimizer/optimizer.h"
#include "tensor/random.h"

#define NPARAMS 4
/* Sizes chosen to cover torch's vectorised body (16 floats per pass) and its
 * scalar tail, and a one-element parameter. */
static const int param_ndim[NPARAMS] = {2, 1, 3, 1};
static const int64_t param_shape[NPARAMS][3] = {{37, 3}, {16}, {5, 4, 3}, {1}};

typedef struct optim_case {
  const char *name;
  td_optim_config cfg;
  bool two_groups; /* params 2.. form a second group with cfg2 */
  td_optim_config cfg2;
  bool has_schedule;
  td_lr_schedule schedule;
  double clip; /* max_norm; 0 = no clipping */
  bool sparse; /* param 1 has no grad at step 0, param 3 only on even steps */
  int steps;
} optim_case;

/* Configs with torch's defaults (SGD: the given fields, lr has no default). */
// clang-format off
#define SGD(...) {.algo = TD_OPTIM_SGD, .sgd = {__VA_ARGS__}}
#define ADAM() {.algo = TD_OPTIM_ADAM, .adam = {1e-3, 0.9, 0.999, 1e-8, 0, false}}
#define ADAMW() {.algo = TD_OPTIM_ADAMW, .adam = {1e-3, 0.9, 0.999, 1e-8, 1e-2, false}}
#define RMSPROP() {.algo = TD_OPTIM_RMSPROP, .rmsprop = {1e-2, 0.99, 1e-8, 0, 0, false}}
#define ADAGRAD() {.algo = TD_OPTIM_ADAGRAD, .adagrad = {1e-2, 0, 0, 0, 1e-10}}
// clang-format on

static const int64_t milestones[] = {3, 6, 6, 9};

static optim_case cases[] = {
    {.name = "sgd_plain", .cfg = SGD(.lr = 0.1), .steps = 12},
    {.name = "sgd_momentum_dampening_wd",
     .cfg = SGD(.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-2),
     .steps = 12},
    {.name = "sgd_nesterov_wd_steplr",
     .cfg = SGD(.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-3, .nesterov = true),
     .has_schedule = true,
     .steps = 12},
    {.name = "sgd_two_groups_sparse_clip",
     .cfg = SGD(.lr = 0.1, .momentum = 0.8),
     .two_groups = true,
     .cfg2 = SGD(.lr = 0.03, .weight_decay = 1e-3),
     .clip = 1.0,
     .sparse = true,
     .steps = 12},
    {.name = "adam_default", .cfg = ADAM(), .steps = 12},
    {.name = "adam_wd_amsgrad_sparse",
     .cfg = {.algo = TD_OPTIM_ADAM, .adam = {2e-3, 0.8, 0.99, 1e-6, 1e-2, true}},
     .sparse = true,
     .steps = 14},
    {.name = "adam_warmup_cosine_clip",
     .cfg = ADAM(),
     .has_schedule = true,
     .clip = 2.0,
     .steps = 16},
    {.name = "adam_two_groups_steplr",
     .cfg = {.algo = TD_OPTIM_ADAM, .adam = {1e-2, 0.9, 0.999, 1e-8, 0, false}},
     .two_groups = true,
     .cfg2 = {.algo = TD_OPTIM_ADAM, .adam = {1e-3, 0.85, 0.995, 1e-7, 0.1, true}},
     .has_schedule = true,
     .steps = 12},
    {.name = "adamw_default", .cfg = ADAMW(), .steps = 12},
    {.name = "adamw_amsgrad_multistep",
     .cfg = {.algo = TD_OPTIM_ADAMW, .adam = {5e-3, 0.9, 0.999, 1e-8, 0.1, true}},
     .has_schedule = true,
     .clip = 5.0,
     .steps = 12},
    {.name = "rmsprop_default", .cfg = RMSPROP(), .steps = 12},
    {.name = "rmsprop_centered_momentum_wd",
     .cfg = {.algo = TD_OPTIM_RMSPROP, .rmsprop = {1e-2, 0.9, 1e-8, 1e-2, 0.9, true}},
     .steps = 12},
    {.name = "rmsprop_centered_clip",
     .cfg = {.algo = TD_OPTIM_RMSPROP, .rmsprop = {1e-2, 0.99, 1e-6, 0, 0, true}},
     .clip = 0.5,
     .steps = 12},
    {.name = "rmsprop_momentum_sparse_cosine",
     .cfg = {.algo = TD_OPTIM_RMSPROP, .rmsprop = {1e-2, 0.99, 1e-8, 0, 0.5, false}},
     .has_schedule = true,
     .sparse = true,
     .steps = 12},
    {.name = "adagrad_default", .cfg = ADAGRAD(), .steps = 12},
    {.name = "adagrad_decay_wd_init_warmup",
     .cfg = {.algo = TD_OPTIM_ADAGRAD, .adagrad = {5e-2, 0.05, 1e-2, 0.1, 1e-8}},
     .has_schedule = true,
     .sparse = true,
     .steps = 12},
};

/* Schedules are set in main (the struct has arrays): by case name. */
static void init_schedules(void) {
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    optim_case *k = &cases[c];
    if (!k->has_schedule) continue;
    if (strstr(k->name, "steplr")) {
      k->schedule = td_lr_step(4, 0.5);
    } else if (strstr(k->name, "warmup_cosine")) {
      k->schedule = td_lr_cosine(10, 1e-4);
      k->schedule.warmup_steps = 4;
      k->schedule.warmup_start_factor = 0.1;
    } else if (strstr(k->name, "multistep")) {
      k->schedule = td_lr_multistep(milestones, 4, 0.5);
    } else if (strstr(k->name, "cosine")) {
      k->schedule = td_lr_cosine(7, 0); /* 12 steps: past t_max, rising again */
    } else if (strstr(k->name, "warmup")) {
      k->schedule = td_lr_constant();
      k->schedule.warmup_steps = 5;
      k->schedule.warmup_start_factor = 0.25;
    }
  }
}

static uint64_t name_seed(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static bool has_grad(const optim_case *c, int step, int p) {
  if (!c->sparse) return true;
  if (p == 1) return step > 0;
  if (p == 3) return step % 2 == 0;
  return true;
}

static void json_config(FILE *js, const td_optim_config *cfg, int first, int count) {
  switch (cfg->algo) {
  case TD_OPTIM_SGD: {
    const td_sgd_config *c = &cfg->sgd;
    fprintf(js,
            "{\"lr\": %.17g, \"momentum\": %.17g, \"dampening\": %.17g, "
            "\"weight_decay\": %.17g, \"nesterov\": %s",
            c->lr, c->momentum, c->dampening, c->weight_decay, c->nesterov ? "true" : "false");
    break;
  }
  case TD_OPTIM_ADAM:
  case TD_OPTIM_ADAMW: {
    const td_adam_config *c = &cfg->adam;
    fprintf(js,
            "{\"lr\": %.17g, \"betas\": [%.17g, %.17g], \"eps\": %.17g, "
            "\"weight_decay\": %.17g, \"amsgrad\": %s",
            c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, c->amsgrad ? "true" : "false");
    break;
  }
  case TD_OPTIM_RMSPROP: {
    const td_rmsprop_config *c = &cfg->rmsprop;
    fprintf(js,
            "{\"lr\": %.17g, \"alpha\": %.17g, \"eps\": %.17g, \"weight_decay\": %.17g, "
            "\"momentum\": %.17g, \"centered\": %s",
            c->lr, c->alpha, c->eps, c->weight_decay, c->momentum, c->centered ? "true" : "false");
    break;
  }
  case TD_OPTIM_ADAGRAD: {
    const td_adagrad_config *c = &cfg->adagrad;
    fprintf(js,
            "{\"lr\": %.17g, \"lr_decay\": %.17g, \"weight_decay\": %.17g, "
            "\"initial_accumulator_value\": %.17g, \"eps\": %.17g",
            c->lr, c->lr_decay, c->weight_decay, c->initial_accumulator_value, c->eps);
    break;
  }
  }
  fprintf(js, ", \"params\": [");
  for (int i = 0; i < count; i++)
    fprintf(js, i ? ", %d" : "%d", first + i);
  fprintf(js, "]}");
}

static void json_schedule(FILE *js, const optim_case *c) {
  if (!c->has_schedule) {
    fprintf(js, "null");
    return;
  }
  const td_lr_schedule *s = &c->schedule;
  fprintf(js, "{\"kind\": \"%s\", \"step_size\": %lld, \"gamma\": %.17g, \"milestones\": [",
          td_lr_schedule_kind_name(s->kind), (long long)s->step_size, s->gamma);
  for (int i = 0; i < s->n_milestones; i++)
    fprintf(js, i ? ", %lld" : "%lld", (long long)s->milestones[i]);
  fprintf(js,
          "], \"t_max\": %lld, \"eta_min\": %.17g, \"warmup_steps\": %lld, "
          "\"warmup_start_factor\": %.17g}",
          (long long)s->t_max, s->eta_min, (long long)s->warmup_steps, s->warmup_start_factor);
}

typedef struct sink {
  FILE *f;
  const char *path;
} sink;

static int open_sink(sink *s, char *path, size_t size, const char *dir, const char *name,
                     const char *what) {
  snprintf(path, size, "%s/%s.%s.bin", dir, name, what);
  s->path = path;
  s->f = fopen(path, "wb");
  if (!s->f) fprintf(stderr, "optim_dump: cannot write %s: %s\n", path, strerror(errno));
  return s->f ? 0 : -1;
}

static int write_params(FILE *f, td_tensor *const *params) {
  for (int p = 0; p < NPARAMS; p++)
    if (fwrite(td_tensor_f32(params[p]), sizeof(float), (size_t)params[p]->numel, f) !=
        (size_t)params[p]->numel)
      return -1;
  return 0;
}

static int run_case(const optim_case *c, const char *dir) {
  td_tensor *params[NPARAMS] = {0};
  td_optimizer *opt = NULL;
  int rc = -1;
  char paths[5][1024];
  sink init = {0}, grads = {0}, after = {0}, lrs = {0}, norms = {0};
  td_rng rng;
  td_rng_seed(&rng, name_seed(c->name));
  for (int p = 0; p < NPARAMS; p++)
    if (td_tensor_rand_normal(&rng, param_ndim[p], param_shape[p], 0, 1, &params[p])) goto out;
  int n0 = c->two_groups ? 2 : NPARAMS;
  if (td_optimizer_create(&c->cfg, params, n0, &opt)) goto out;
  if (c->two_groups && td_optimizer_add_param_group(opt, params + 2, NPARAMS - 2, &c->cfg2))
    goto out;
  if (c->has_schedule && td_optimizer_set_schedule(opt, &c->schedule)) goto out;
  if (open_sink(&init, paths[0], sizeof paths[0], dir, c->name, "init") ||
      open_sink(&grads, paths[1], sizeof paths[1], dir, c->name, "grads") ||
      open_sink(&after, paths[2], sizeof paths[2], dir, c->name, "params") ||
      open_sink(&lrs, paths[3], sizeof paths[3], dir, c->name, "lrs") ||
      open_sink(&norms, paths[4], sizeof paths[4], dir, c->name, "norms"))
    goto out;
  if (write_params(init.f, params)) goto out;
  for (int s = 0; s < c->steps; s++) {
    for (int p = 0; p < NPARAMS; p++) {
      td_tensor *g;
      if (td_tensor_rand_normal(&rng, param_ndim[p], param_shape[p], 0, 1, &g)) goto out;
      if (!has_grad(c, s, p)) td_tensor_fill_(g, 0); /* the file holds zeros for "no grad" */
      if (fwrite(td_tensor_f32(g), sizeof(float), (size_t)g->numel, grads.f) != (size_t)g->numel) {
        td_tensor_release(g);
        goto out;
      }
      if (has_grad(c, s, p))
        params[p]->grad = g;
      else
        td_tensor_release(g);
    }
    float norm = 0;
    if (c->clip > 0 && td_optimizer_clip_grad_norm(opt, c->clip, &norm)) goto out;
    for (int g = 0; g < td_optimizer_num_groups(opt); g++) {
      double lr = td_optimizer_lr(opt, g);
      if (fwrite(&lr, sizeof lr, 1, lrs.f) != 1) goto out;
    }
    if (fwrite(&norm, sizeof norm, 1, norms.f) != 1) goto out;
    if (td_optimizer_step(opt)) goto out;
    td_optimizer_clear_grad(opt);
    if (write_params(after.f, params)) goto out;
  }

  char path[1024];
  snprintf(path, sizeof path, "%s/%s.json", dir, c->name);
  FILE *js = fopen(path, "w");
  if (!js) goto out;
  fprintf(js, "{\"name\": \"%s\", \"algo\": \"%s\", \"steps\": %d, \"clip\": %.17g,\n", c->name,
          td_optim_algo_name(c->cfg.algo), c->steps, c->clip);
  fprintf(js, " \"shapes\": [");
  for (int p = 0; p < NPARAMS; p++) {
    fprintf(js, p ? ", [" : "[");
    for (int d = 0; d < param_ndim[p]; d++)
      fprintf(js, d ? ", %lld" : "%lld", (long long)param_shape[p][d]);
    fprintf(js, "]");
  }
  fprintf(js, "],\n \"has_grad\": [");
  for (int s = 0; s < c->steps; s++) {
    fprintf(js, s ? ", [" : "[");
    for (int p = 0; p < NPARAMS; p++)
      fprintf(js, p ? ", %d" : "%d", has_grad(c, s, p));
    fprintf(js, "]");
  }
  fprintf(js, "],\n \"groups\": [");
  json_config(js, &c->cfg, 0, n0);
  if (c->two_groups) {
    fprintf(js, ", ");
    json_config(js, &c->cfg2, 2, NPARAMS - 2);
  }
  fprintf(js, "],\n \"schedule\": ");
  json_schedule(js, c);
  fprintf(js,
          ",\n \"files\": {\"init\": \"%s.init.bin\", \"grads\": \"%s.grads.bin\", "
          "\"params\": \"%s.params.bin\", \"lrs\": \"%s.lrs.bin\", \"norms\": \"%s.norms.bin\"}}\n",
          c->name, c->name, c->name, c->name, c->name);
  rc = fclose(js) ? -1 : 0;
out:
  if (rc) fprintf(stderr, "optim_dump: case %s failed: %s\n", c->name, td_error_message());
  sink *sinks[] = {&init, &grads, &after, &lrs, &norms};
  for (int i = 0; i < 5; i++)
    if (sinks[i]->f && fclose(sinks[i]->f)) rc = -1;
  td_optimizer_destroy(opt);
  for (int p = 0; p < NPARAMS; p++)
    td_tensor_release(params[p]);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s OUTDIR [NAME-SUBSTRING]\n", argv[0]);
    return 2;
  }
  init_schedules();
  int failed = 0, ran = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    if (argc == 3 && !strstr(cases[c].name, argv[2])) continue;
    ran++;
    if (run_case(&cases[c], argv[1])) failed++;
  }
  printf("optim_dump: %d cases written to %s, %d failed\n", ran - failed, argv[1], failed);
  return failed ? 1 : 0;
}
