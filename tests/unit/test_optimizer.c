/* test_optimizer.c - optimizers, schedules, clipping, checkpoints and their errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/test_util.h"
#include "io/tensor_map.h"
#include "optimizer/optimizer.h"
#include "tensor/random.h"

/* ---- helpers ------------------------------------------------------------- */

static td_tensor *scalar_param(float v) { return vec_f32(1, &v); }

static void set_grad(td_tensor *p, const float *values) {
  td_tensor_release(p->grad);
  assert_int_equal(td_tensor_from_data(TD_FLOAT32, p->ndim, p->shape, values, &p->grad), TD_OK);
}

static void set_grad1(td_tensor *p, float g) { set_grad(p, &g); }

static float value(const td_tensor *t) { return td_tensor_f32(t)[0]; }

/* Runs steps with the given scalar grads on a one-element parameter. */
static void scalar_steps(const td_optim_config *cfg, const float *grads, int n,
                         const double *expect) {
  td_tensor *p = scalar_param(1.0f);
  td_optimizer *opt;
  assert_int_equal(td_optimizer_create(cfg, &p, 1, &opt), TD_OK);
  for (int i = 0; i < n; i++) {
    set_grad1(p, grads[i]);
    assert_int_equal(td_optimizer_step(opt), TD_OK);
    td_optimizer_clear_grad(opt);
    if (fabs(value(p) - expect[i]) > 1e-6 * fabs(expect[i]))
      fail_msg("%s step %d: got %.9g, expected %.9g", td_optim_algo_name(cfg->algo), i + 1,
               value(p), expect[i]);
  }
  td_optimizer_destroy(opt);
  td_tensor_release(p);
}

/* ---- each algorithm on a hand-computed example --------------------------- */

static void test_sgd_momentum_and_nesterov(void **state) {
  (void)state;
  td_optim_config c = td_optim_defaults(TD_OPTIM_SGD);
  /* p = 1, g = 0.5, lr 0.1. Plain: p -= 0.05 each step. */
  c.sgd.lr = 0.1;
  float g[] = {0.5f, 0.5f};
  scalar_steps(&c, g, 2, (double[]){0.95, 0.9});
  /* momentum 0.9: buf = g (torch's first step), then 0.9 * 0.5 + 0.5 = 0.95 */
  c.sgd.momentum = 0.9;
  scalar_steps(&c, g, 2, (double[]){0.95, 0.855});
  /* dampening 0.5: the first buf is still g; then 0.45 + 0.25 = 0.7 */
  c.sgd.dampening = 0.5;
  scalar_steps(&c, g, 2, (double[]){0.95, 0.88});
  /* nesterov + weight decay 0.1: d = 0.5 + 0.1 = 0.6, buf = 0.6, d = 0.6 + 0.54;
   * step 2: d = 0.5 + 0.0886 = 0.5886, buf = 0.54 + 0.5886, d = 0.5886 + 0.9 * 1.1286 */
  c.sgd.dampening = 0;
  c.sgd.nesterov = true;
  c.sgd.weight_decay = 0.1;
  scalar_steps(&c, g, 2, (double[]){0.886, 0.886 - 0.1 * (0.5886 + 0.9 * 1.1286)});
}

static void test_adam_adamw_amsgrad(void **state) {
  (void)state;
  td_optim_config c = td_optim_defaults(TD_OPTIM_ADAM);
  c.adam.lr = 0.1;
  /* The first Adam step moves by lr (bias-corrected m / sqrt(v) = sign(g)). */
  float g[] = {0.5f, 0.25f};
  scalar_steps(&c, g, 2, (double[]){0.900000002, 0.8067820404774624});
  c.adam.weight_decay = 0.1; /* L2: g += 0.1 * p */
  scalar_steps(&c, g, 2, (double[]){0.9000000016666666, 0.8050097658613199});
  c = td_optim_defaults(TD_OPTIM_ADAMW);
  c.adam.lr = 0.1;
  c.adam.weight_decay = 0.1; /* decoupled: p *= 0.99 first */
  scalar_steps(&c, g, 2, (double[]){0.890000002, 0.7878820404574624});
  c = td_optim_defaults(TD_OPTIM_ADAM);
  c.adam.lr = 0.1;
  c.adam.amsgrad = true; /* v falls at step 2; the max keeps 0.00025 */
  float g2[] = {0.5f, 0.01f};
  scalar_steps(&c, g2, 2, (double[]){0.900000002, 0.8315394161677112});
}

static void test_rmsprop(void **state) {
  (void)state;
  td_optim_config c = td_optim_defaults(TD_OPTIM_RMSPROP);
  float g[] = {0.5f, 0.5f};
  /* square_avg = 0.0025, avg = 0.05: p -= 0.01 * 0.5 / 0.05 */
  scalar_steps(&c, g, 1, (double[]){0.9});
  c.rmsprop.momentum = 0.9;
  scalar_steps(&c, g, 2, (double[]){0.900000019999996, 0.7391119275494087});
  c.rmsprop.momentum = 0;
  c.rmsprop.centered = true;
  float g2[] = {0.5f, 0.25f};
  scalar_steps(&c, g2, 2, (double[]){0.899496238676095, 0.8541874846842107});
}

static void test_adagrad(void **state) {
  (void)state;
  td_optim_config c = td_optim_defaults(TD_OPTIM_ADAGRAD);
  c.adagrad.lr = 0.1;
  c.adagrad.lr_decay = 0.5;
  c.adagrad.initial_accumulator_value = 0.1;
  float g[] = {0.5f, 0.5f};
  /* sum 0.35 then 0.6; clr 0.1 then 0.1 / 1.5 */
  scalar_steps(&c, g, 2, (double[]){0.9154845745414341, 0.8724514262557961});
}

/* ---- skipping, clear_grad, views, groups ---------------------------------- */

static void test_skips_params_without_grad(void **state) {
  (void)state;
  td_tensor *p[2] = {vec_f32(2, (float[]){1, 2}), vec_f32(2, (float[]){3, 4})};
  td_adam_config cfg = td_adam_defaults();
  td_optimizer *opt;
  assert_int_equal(td_optimizer_create_adam(&cfg, p, 2, &opt), TD_OK);
  set_grad(p[0], (float[]){1, 1});
  uint64_t v0 = td_tensor_version(p[0]), v1 = td_tensor_version(p[1]);
  assert_int_equal(td_optimizer_step(opt), TD_OK);
  assert_true(td_tensor_version(p[0]) > v0);
  assert_int_equal(td_tensor_version(p[1]), v1);
  assert_float_equal(td_tensor_f32(p[1])[0], 3, 0);
  assert_float_equal(td_tensor_f32(p[1])[1], 4, 0);
  assert_int_equal(td_optimizer_param_steps(opt, 0), 1);
  assert_int_equal(td_optimizer_param_steps(opt, 1), 0);
  assert_int_equal(td_optimizer_num_steps(opt), 1);
  td_tensor_map m = {0};
  assert_int_equal(td_optimizer_state_dict(opt, &m, ""), TD_OK);
  assert_non_null(td_tensor_map_get(&m, "state.0.exp_avg"));
  assert_null(td_tensor_map_get(&m, "state.1.step"));
  assert_null(td_tensor_map_get(&m, "state.1.exp_avg"));
  td_tensor_map_free(&m);
  /* p[1] joins later: its own step count starts at 1 (bias correction of step 1) */
  set_grad(p[1], (float[]){1, 1});
  assert_int_equal(td_optimizer_step(opt), TD_OK);
  assert_int_equal(td_optimizer_param_steps(opt, 0), 2);
  assert_int_equal(td_optimizer_param_steps(opt, 1), 1);
  assert_float_equal(td_tensor_f32(p[1])[0], 3 - 1e-3, 1e-7);
  td_optimizer_destroy(opt);
  td_tensor_release(p[0]);
  td_tensor_release(p[1]);
}

static void test_clear_grad(void **state) {
  (void)state;
  td_tensor *p[2] = {scalar_param(1), scalar_param(2)};
  td_sgd_config cfg = td_sgd_defaults();
  cfg.lr = 0.1;
  td_optimizer *opt;
  assert_int_equal(td_optimizer_create_sgd(&cfg, p, 2, &opt), TD_OK);
  set_grad1(p[0], 1);
  td_tensor *held = td_tensor_retain(p[0]->grad); /* someone else's reference survives */
  td_optimizer_clear_grad(opt);
  assert_null(p[0]->grad);
  assert_null(p[1]->grad);
  assert_float_equal(value(held), 1, 0);
  td_tensor_release(held);
  /* a step with no grads changes no parameter but still advances the position */
  assert_int_equal(td_optimizer_step(opt), TD_OK);
  assert_float_equal(value(p[0]), 1, 0);
  assert_int_equal(td_optimizer_num_steps(opt), 1);
  td_optimizer_destroy(opt);
  td_tensor_release(p[0]);
  td_tensor_release(p[1]);
}

static void test_view_params_update_in_place(void **state) {
  (void)state;
  /* A transposed view and a strided slice of one storage, against the same
   * values held contiguously. */
  int64_t shape[] = {3, 4};
  td_tensor *base, *t, *s, *ref[2];
  assert_int_equal(td_tensor_arange(TD_FLOAT32, 0, 12, 1, &base), TD_OK);
  td_tensor *m;
  assert_int_equal(td_tensor_view(base, 2, shape, &m), TD_OK);
  assert_int_equal(td_tensor_transpose(m, 0, 1, &t), TD_OK); /* [4,3] view, rows 0..2 */
  td_tensor *other;
  assert_int_equal(td_tensor_arange(TD_FLOAT32, 0, 8, 1, &other), TD_OK);
  assert_int_equal(td_tensor_slice(other, 0, 0, 8, 2, &s), TD_OK); /* [4]: 0, 2, 4, 6 */
  assert_int_equal(td_tensor_clone(t, &ref[0]), TD_OK);
  assert_int_equal(td_tensor_clone(s, &ref[1]), TD_OK);
  td_tensor *views[2] = {t, s};
  td_optim_config cfg = td_optim_defaults(TD_OPTIM_SGD);
  cfg.sgd.lr = 0.5;
  cfg.sgd.momentum = 0.9;
  td_optimizer *a, *b;
  assert_int_equal(td_optimizer_create(&cfg, views, 2, &a), TD_OK);
  assert_int_equal(td_optimizer_create(&cfg, ref, 2, &b), TD_OK);
  for (int step = 0; step < 2; step++) {
    for (int i = 0; i < 2; i++) {
      float g[12];
      for (int k = 0; k < 12; k++)
        g[k] = (float)(k + 1) * (step ? -0.25f : 0.5f);
      set_grad(views[i], g);
      set_grad(ref[i], g);
    }
    assert_int_equal(td_optimizer_step(a), TD_OK);
    assert_int_equal(td_optimizer_step(b), TD_OK);
  }
  for (int i = 0; i < 2; i++) {
    td_tensor *c;
    assert_int_equal(td_tensor_clone(views[i], &c), TD_OK);
    assert_memory_equal(td_tensor_f32(c), td_tensor_f32(ref[i]), td_tensor_nbytes(c));
    td_tensor_release(c);
  }
  assert_float_equal(td_tensor_f32(other)[1], 1, 0); /* the skipped elements are untouched */
  td_optimizer_destroy(a);
  td_optimizer_destroy(b);
  release_tensors(base, m, t, other, s, ref[0], ref[1]);
}

static void test_param_groups_have_own_hyperparameters(void **state) {
  (void)state;
  td_tensor *p[2] = {scalar_param(1), scalar_param(1)};
  td_optim_config c = td_optim_defaults(TD_OPTIM_SGD);
  c.sgd.lr = 0.1;
  td_optimizer *opt;
  assert_int_equal(td_optimizer_create(&c, p, 1, &opt), TD_OK);
  td_optim_config c2 = c;
  c2.sgd.lr = 0.01;
  c2.sgd.weight_decay = 1;
  assert_int_equal(td_optimizer_add_param_group(opt, p + 1, 1, &c2), TD_OK);
  td_lr_schedule s = td_lr_step(1, 0.5);
  assert_int_equal(td_optimizer_set_schedule(opt, &s), TD_OK);
  set_grad1(p[0], 1);
  set_grad1(p[1], 1);
  assert_int_equal(td_optimizer_step(opt), TD_OK);
  assert_float_equal(value(p[0]), 0.9, 1e-7);  /* 1 - 0.1 * 1 */
  assert_float_equal(value(p[1]), 0.98, 1e-7); /* 1 - 0.01 * (1 + 1) */
  assert_int_equal(td_optimizer_num_groups(opt), 2);
  assert_float_equal(td_optimizer_lr(opt, 0), 0.05, 1e-15);
  assert_float_equal(td_optimizer_lr(opt, 1), 0.005, 1e-15);
  assert_true(isnan(td_optimizer_lr(opt, 2)));
  assert_float_equal(td_optimizer_group_config(opt, 1)->sgd.weight_decay, 1, 0);
  td_optimizer_destroy(opt);
  td_tensor_release(p[0]);
  td_tensor_release(p[1]);
}

/* ---- validation ------------------------------------------------------------ */

typedef struct bad_config {
  td_optim_config cfg;
  const char *needle;
} bad_config;

static void test_config_validation(void **state) {
  (void)state;
  td_optim_config sgd = td_optim_defaults(TD_OPTIM_SGD), adam = td_optim_defaults(TD_OPTIM_ADAM);
  td_optim_config adamw = td_optim_defaults(TD_OPTIM_ADAMW);
  td_optim_config rms = td_optim_defaults(TD_OPTIM_RMSPROP);
  td_optim_config ada = td_optim_defaults(TD_OPTIM_ADAGRAD);
  sgd.sgd.lr = 0.1;
  bad_config bad[32];
  int n = 0;
#define BAD(base, field, v, text)                                                                  \
  do {                                                                                             \
    bad[n].cfg = base;                                                                             \
    bad[n].cfg.field = v;                                                                          \
    bad[n++].needle = text;                                                                        \
  } while (0)
  BAD(sgd, sgd.lr, NAN, "sgd: lr is required");
  BAD(sgd, sgd.lr, -1, "sgd: invalid lr -1");
  BAD(sgd, sgd.momentum, -0.5, "sgd: invalid momentum -0.5");
  BAD(sgd, sgd.weight_decay, -1e-4, "sgd: invalid weight_decay -0.0001");
  BAD(sgd, sgd.dampening, INFINITY, "sgd: invalid dampening inf");
  BAD(sgd, sgd.nesterov, true, "sgd: nesterov requires momentum > 0 and dampening 0 (momentum 0,");
  BAD(adam, adam.lr, -0.001, "adam: invalid lr -0.001");
  BAD(adam, adam.lr, INFINITY, "adam: invalid lr inf");
  BAD(adam, adam.beta1, 1.0, "adam: invalid beta1 1 (expected 0 <= beta1 < 1)");
  BAD(adam, adam.beta2, -0.1, "adam: invalid beta2 -0.1");
  BAD(adam, adam.beta2, NAN, "adam: invalid beta2 nan");
  BAD(adam, adam.eps, -1e-8, "adam: invalid eps -1e-08");
  BAD(adam, adam.weight_decay, -1, "adam: invalid weight_decay -1");
  BAD(adamw, adam.beta1, 1.5, "adamw: invalid beta1 1.5");
  BAD(rms, rmsprop.alpha, -0.99, "rmsprop: invalid alpha -0.99");
  BAD(rms, rmsprop.momentum, -1, "rmsprop: invalid momentum -1");
  BAD(rms, rmsprop.eps, -1, "rmsprop: invalid eps -1");
  BAD(rms, rmsprop.weight_decay, -2, "rmsprop: invalid weight_decay -2");
  BAD(ada, adagrad.lr_decay, -0.1, "adagrad: invalid lr_decay -0.1");
  BAD(ada, adagrad.initial_accumulator_value, -1, "adagrad: invalid initial_accumulator_value -1");
  BAD(ada, adagrad.eps, -1, "adagrad: invalid eps -1");
  BAD(ada, adagrad.weight_decay, -1, "adagrad: invalid weight_decay -1");
#undef BAD
  bad[n].cfg = sgd;
  bad[n].cfg.sgd.momentum = 0.9;
  bad[n].cfg.sgd.dampening = 0.1;
  bad[n].cfg.sgd.nesterov = true;
  bad[n++].needle = "dampening 0.1";
  td_tensor *p = scalar_param(1);
  for (int i = 0; i < n; i++) {
    td_optimizer *opt;
    assert_error(td_optimizer_create(&bad[i].cfg, &p, 1, &opt), TD_ERR_INVALID_ARGUMENT,
                 bad[i].needle);
    assert_null(opt);
    assert_int_equal(td_optim_config_validate(&bad[i].cfg), TD_ERR_INVALID_ARGUMENT);
  }
  /* the defaults themselves are valid (SGD once given an lr) */
  td_optim_algo algos[] = {TD_OPTIM_ADAM, TD_OPTIM_ADAMW, TD_OPTIM_RMSPROP, TD_OPTIM_ADAGRAD};
  for (int i = 0; i < 4; i++) {
    td_optim_config c = td_optim_defaults(algos[i]);
    assert_int_equal(td_optim_config_validate(&c), TD_OK);
  }
  assert_int_equal(td_optim_config_validate(&sgd), TD_OK);
  td_tensor_release(p);
}

static void test_param_validation(void **state) {
  (void)state;
  td_optim_config c = td_optim_defaults(TD_OPTIM_ADAM);
  td_optimizer *opt;
  td_tensor *p = scalar_param(1), *q = scalar_param(2), *labels, *wide;
  assert_error(td_optimizer_create(&c, &p, 0, &opt), TD_ERR_INVALID_ARGUMENT,
               "adam: optimizer got an empty parameter list");
  int64_t shape[] = {3};
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, shape, &labels), TD_OK);
  td_tensor *mixed[] = {p, labels};
  assert_error(td_optimizer_create(&c, mixed, 2, &opt), TD_ERR_INVALID_ARGUMENT,
               "adam: parameter 1 is int64 [3], expected float32");
  td_tensor *twice[] = {p, q, p};
  assert_error(td_optimizer_create(&c, twice, 3, &opt), TD_ERR_INVALID_ARGUMENT,
               "parameter 2 [1] appears more than once");
  int64_t big[] = {4, 1};
  assert_int_equal(td_tensor_expand(p, 2, big, &wide), TD_OK);
  assert_error(td_optimizer_create(&c, &wide, 1, &opt), TD_ERR_INVALID_ARGUMENT,
               "parameter 0 [4,1] is a broadcast view");
  td_tensor *nul = NULL;
  assert_error(td_optimizer_create(&c, &nul, 1, &opt), TD_ERR_INVALID_ARGUMENT,
               "parameter 0 is NULL");

  assert_int_equal(td_optimizer_create(&c, &p, 1, &opt), TD_OK);
  td_optim_config s = td_optim_defaults(TD_OPTIM_SGD);
  s.sgd.lr = 1;
  assert_error(td_optimizer_add_param_group(opt, &q, 1, &s), TD_ERR_INVALID_ARGUMENT,
               "the group's config is for sgd, this optimizer is adam");
  assert_error(td_optimizer_add_param_group(opt, &p, 1, NULL), TD_ERR_INVALID_ARGUMENT,
               "parameter 1 [1] appears more than once");
  assert_int_equal(td_optimizer_num_params(opt), 1);
  assert_int_equal(td_optimizer_add_param_group(opt, &q, 1, NULL), TD_OK);
  assert_ptr_equal(td_optimizer_param(opt, 1), q);

  /* A wrong grad fails the whole step before anything moves. */
  set_grad1(p, 1);
  int64_t two[] = {2};
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, two, &q->grad), TD_OK);
  assert_error(td_optimizer_step(opt), TD_ERR_INVALID_ARGUMENT,
               "adam step: parameter 1 is float32 [1] but its grad is float32 [2]");
  assert_float_equal(value(p), 1, 0);
  assert_int_equal(td_optimizer_param_steps(opt, 0), 0);
  assert_int_equal(td_optimizer_num_steps(opt), 0);
  td_optimizer_destroy(opt);
  release_tensors(p, q, labels, wide);
}

static void test_schedule_validation(void **state) {
  (void)state;
  td_lr_schedule s = td_lr_step(0, 0.1);
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT,
               "lr schedule step: invalid step_size 0");
  s = td_lr_step(2, -0.5);
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT,
               "lr schedule step: invalid gamma -0.5");
  s = td_lr_cosine(0, 0);
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT,
               "lr schedule cosine: invalid t_max 0");
  s = td_lr_cosine(10, -1e-3);
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT, "invalid eta_min -0.001");
  int64_t ms[] = {5, 3};
  s = td_lr_multistep(ms, 2, 0.1);
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT,
               "milestones must not decrease (milestones[1] = 3 after 5)");
  int64_t many[TD_LR_MAX_MILESTONES + 1] = {0};
  s = td_lr_multistep(many, TD_LR_MAX_MILESTONES + 1, 0.1);
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT,
               "invalid n_milestones 33 (expected 0..32)");
  s = td_lr_cosine(10, 0);
  s.warmup_steps = 5;
  s.warmup_start_factor = 0;
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT,
               "invalid warmup_start_factor 0");
  s.warmup_start_factor = 1.5;
  assert_int_equal(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT);
  s.warmup_start_factor = 1;
  s.warmup_steps = -1;
  assert_error(td_lr_schedule_validate(&s), TD_ERR_INVALID_ARGUMENT, "invalid warmup_steps -1");
  /* an optimizer keeps its schedule when given a bad one */
  td_tensor *p = scalar_param(1);
  td_optimizer *opt;
  td_adam_config c = td_adam_defaults();
  assert_int_equal(td_optimizer_create_adam(&c, &p, 1, &opt), TD_OK);
  assert_int_equal(td_optimizer_set_schedule(opt, &s), TD_ERR_INVALID_ARGUMENT);
  assert_int_equal(td_optimizer_schedule(opt)->kind, TD_LR_CONSTANT);
  td_optimizer_destroy(opt);
  td_tensor_release(p);
}

/* ---- clipping ---------------------------------------------------------------- */

static void test_clip_grad_norm(void **state) {
  (void)state;
  td_tensor *p[3] = {vec_f32(2, (float[]){0, 0}), scalar_param(0), scalar_param(0)};
  set_grad(p[0], (float[]){3, 4});
  set_grad1(p[1], 12); /* |(3, 4, 12)| = 13; p[2] has no grad */
  float norm;
  assert_int_equal(td_clip_grad_norm(p, 3, 100, &norm), TD_OK);
  assert_float_equal(norm, 13, 0);
  assert_float_equal(td_tensor_f32(p[0]->grad)[0], 3, 0); /* below max_norm: untouched */
  assert_int_equal(td_clip_grad_norm(p, 3, INFINITY, &norm), TD_OK);
  assert_float_equal(norm, 13, 0);
  assert_float_equal(value(p[1]->grad), 12, 0);
  uint64_t v = td_tensor_version(p[1]->grad);
  assert_int_equal(td_clip_grad_norm(p, 3, 6.5, &norm), TD_OK);
  assert_float_equal(norm, 13, 0);
  /* coef = 6.5 / (13 + 1e-6), in float32 as torch */
  float coef = (1.0f / (13.0f + 1e-6f)) * 6.5f;
  assert_float_equal(td_tensor_f32(p[0]->grad)[0], 3 * coef, 0);
  assert_float_equal(td_tensor_f32(p[0]->grad)[1], 4 * coef, 0);
  assert_float_equal(value(p[1]->grad), 12 * coef, 0);
  assert_true(td_tensor_version(p[1]->grad) > v);
  assert_null(p[2]->grad);

  assert_error(td_clip_grad_norm(p, 3, -1, &norm), TD_ERR_INVALID_ARGUMENT,
               "clip_grad_norm: invalid max_norm -1");
  int64_t two[] = {2};
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, two, &p[2]->grad), TD_OK);
  float before = value(p[1]->grad);
  assert_error(td_clip_grad_norm(p, 3, 1, &norm), TD_ERR_INVALID_ARGUMENT,
               "parameter 2 is float32 [1] but its grad is float32 [2]");
  assert_float_equal(value(p[1]->grad), before, 0);

  /* through an optimizer; no grads at all: 0, as torch */
  td_sgd_config c = td_sgd_defaults();
  c.lr = 1;
  td_optimizer *opt;
  assert_int_equal(td_optimizer_create_sgd(&c, p, 2, &opt), TD_OK);
  assert_int_equal(td_optimizer_clip_grad_norm(opt, 0.5, &norm), TD_OK);
  assert_float_equal(norm, 6.5f, 1e-5);
  td_optimizer_clear_grad(opt);
  assert_int_equal(td_optimizer_clip_grad_norm(opt, 0.5, &norm), TD_OK);
  assert_float_equal(norm, 0, 0);
  td_optimizer_destroy(opt);
  for (int i = 0; i < 3; i++)
    td_tensor_release(p[i]);
}

/* ---- schedules ---------------------------------------------------------------- */

static void expect_lrs(const td_lr_schedule *s, double base, const double *want, int n) {
  assert_int_equal(td_lr_schedule_validate(s), TD_OK);
  for (int i = 0; i < n; i++) {
    double got = td_lr_schedule_lr(s, base, i);
    if (fabs(got - want[i]) > 1e-12)
      fail_msg("%s at %d: got %.15g, expected %.15g", td_lr_schedule_kind_name(s->kind), i, got,
               want[i]);
  }
}

static void test_schedule_values(void **state) {
  (void)state;
  td_lr_schedule s = td_lr_step(3, 0.5);
  expect_lrs(&s, 2, (double[]){2, 2, 2, 1, 1, 1, 0.5, 0.5}, 8);
  int64_t ms[] = {2, 5, 5};
  s = td_lr_multistep(ms, 3, 0.1);
  expect_lrs(&s, 1, (double[]){1, 1, 0.1, 0.1, 0.1, 0.001, 0.001}, 7);
  s = td_lr_cosine(10, 0.1);
  double cosine[16];
  for (int i = 0; i < 16; i++)
    cosine[i] = 0.1 + 0.9 * (1 + cos(3.141592653589793 * i / 10)) / 2;
  expect_lrs(&s, 1, cosine, 16);
  assert_float_equal(td_lr_schedule_lr(&s, 1, 5), 0.55, 1e-15);
  assert_float_equal(td_lr_schedule_lr(&s, 1, 10), 0.1, 1e-15);
  assert_float_equal(td_lr_schedule_lr(&s, 1, 15), 0.55, 1e-15); /* torch's cosine rises again */
  /* warm-up 4 from 0.25, then the cosine counted from the end of the warm-up */
  s.warmup_steps = 4;
  s.warmup_start_factor = 0.25;
  expect_lrs(&s, 1, (double[]){0.25, 0.4375, 0.625, 0.8125, 1, cosine[1], cosine[2]}, 7);
  assert_float_equal(td_lr_schedule_lr(&s, 1, 9), 0.55, 1e-15);
  assert_float_equal(td_lr_schedule_lr(&s, 1, 14), 0.1, 1e-15);
  s = td_lr_constant();
  s.warmup_steps = 2;
  s.warmup_start_factor = 0.5;
  expect_lrs(&s, 4, (double[]){2, 3, 4, 4}, 4);

  /* the optimizer's LR follows its step count */
  td_tensor *p = scalar_param(0);
  td_optimizer *opt;
  td_adam_config c = td_adam_defaults();
  c.lr = 1;
  assert_int_equal(td_optimizer_create_adam(&c, &p, 1, &opt), TD_OK);
  s = td_lr_step(2, 0.1);
  assert_int_equal(td_optimizer_set_schedule(opt, &s), TD_OK);
  double want[] = {1, 1, 0.1, 0.1, 0.01};
  for (int i = 0; i < 5; i++) {
    assert_float_equal(td_optimizer_lr(opt, 0), want[i], 1e-15);
    assert_int_equal(td_optimizer_step(opt), TD_OK);
  }
  td_optimizer_destroy(opt);
  td_tensor_release(p);
}

/* ---- checkpoints: resume bit for bit ------------------------------------------- */

#define RP 3
static const int64_t resume_shape[RP][2] = {{5, 3}, {7, 1}, {2, 2}};

static void make_params(td_tensor **p) {
  td_rng rng;
  td_rng_seed(&rng, 42);
  for (int i = 0; i < RP; i++)
    assert_int_equal(td_tensor_rand_normal(&rng, 2, resume_shape[i], 0, 1, &p[i]), TD_OK);
}

/* Seeded grads for a step; parameter 1 has none for the first two steps and
 * parameter 2 none on odd steps, so state appears at different times. */
static void run_steps(td_optimizer *opt, td_tensor **p, int from, int to) {
  for (int s = from; s < to; s++) {
    td_rng rng;
    td_rng_seed(&rng, 1000 + (uint64_t)s);
    for (int i = 0; i < RP; i++) {
      td_tensor *g;
      assert_int_equal(td_tensor_rand_normal(&rng, 2, resume_shape[i], 0, 1, &g), TD_OK);
      if ((i == 1 && s < 2) || (i == 2 && s % 2)) {
        td_tensor_release(g);
        continue;
      }
      p[i]->grad = g;
    }
    float norm;
    assert_int_equal(td_optimizer_clip_grad_norm(opt, 2.0, &norm), TD_OK);
    assert_int_equal(td_optimizer_step(opt), TD_OK);
    td_optimizer_clear_grad(opt);
  }
}

static td_optimizer *make_optimizer(const td_optim_config *cfg, const td_lr_schedule *s,
                                    td_tensor **p) {
  td_optimizer *opt;
  assert_int_equal(td_optimizer_create(cfg, p, 2, &opt), TD_OK);
  assert_int_equal(td_optimizer_add_param_group(opt, p + 2, 1, NULL), TD_OK);
  if (s) assert_int_equal(td_optimizer_set_schedule(opt, s), TD_OK);
  return opt;
}

static void check_resume(const td_optim_config *cfg, const td_lr_schedule *s) {
  const int N = 5, M = 6;
  td_tensor *a[RP], *b[RP];
  make_params(a);
  make_params(b);
  td_optimizer *ref = make_optimizer(cfg, s, a);
  run_steps(ref, a, 0, N + M);

  td_optimizer *first = make_optimizer(cfg, s, b);
  run_steps(first, b, 0, N);
  double lr_before = td_optimizer_lr(first, 0);
  td_tensor_map m = {0};
  assert_int_equal(td_optimizer_state_dict(first, &m, "optimizer."), TD_OK);
  td_optimizer_destroy(first); /* the map keeps the state alive */

  /* A fresh optimizer with torch's defaults and no schedule: everything
   * needed must come from the checkpoint. */
  td_optim_config fresh = td_optim_defaults(cfg->algo);
  if (cfg->algo == TD_OPTIM_SGD) fresh.sgd.lr = 1;
  td_optimizer *second = make_optimizer(&fresh, NULL, b);
  assert_int_equal(td_optimizer_load_state_dict(second, &m, "optimizer."), TD_OK);
  td_tensor_map_free(&m);
  assert_int_equal(td_optimizer_num_steps(second), N);
  assert_true(td_optimizer_lr(second, 0) == lr_before);
  run_steps(second, b, N, N + M);

  for (int i = 0; i < RP; i++) {
    if (memcmp(td_tensor_f32(a[i]), td_tensor_f32(b[i]), td_tensor_nbytes(a[i])) != 0)
      fail_msg("%s: parameter %d differs after resume", td_optim_algo_name(cfg->algo), i);
    assert_int_equal(td_optimizer_param_steps(ref, i), td_optimizer_param_steps(second, i));
  }
  assert_true(td_optimizer_lr(ref, 0) == td_optimizer_lr(second, 0));
  td_optimizer_destroy(ref);
  td_optimizer_destroy(second);
  for (int i = 0; i < RP; i++) {
    td_tensor_release(a[i]);
    td_tensor_release(b[i]);
  }
}

static void test_resume_is_bit_exact(void **state) {
  (void)state;
  td_lr_schedule warm_cos = td_lr_cosine(8, 1e-4);
  warm_cos.warmup_steps = 3;
  warm_cos.warmup_start_factor = 0.1;
  td_lr_schedule step = td_lr_step(2, 0.7);
  int64_t ms[] = {4, 7};
  td_lr_schedule multi = td_lr_multistep(ms, 2, 0.5);

  td_optim_config c = td_optim_defaults(TD_OPTIM_SGD);
  c.sgd = (td_sgd_config){.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true};
  check_resume(&c, &warm_cos);
  c.sgd = (td_sgd_config){.lr = 0.1, .momentum = 0.5, .dampening = 0.2};
  check_resume(&c, &step);
  c = td_optim_defaults(TD_OPTIM_ADAM);
  c.adam.amsgrad = true;
  c.adam.weight_decay = 1e-2;
  check_resume(&c, &warm_cos);
  c = td_optim_defaults(TD_OPTIM_ADAMW);
  check_resume(&c, &multi);
  c = td_optim_defaults(TD_OPTIM_RMSPROP);
  c.rmsprop.centered = true;
  c.rmsprop.momentum = 0.9;
  check_resume(&c, &warm_cos);
  c = td_optim_defaults(TD_OPTIM_ADAGRAD);
  c.adagrad.lr_decay = 0.1;
  c.adagrad.initial_accumulator_value = 0.5;
  check_resume(&c, &step);
}

static void test_state_dict_layout(void **state) {
  (void)state;
  td_tensor *p[RP];
  make_params(p);
  td_optim_config c = td_optim_defaults(TD_OPTIM_ADAM);
  c.adam.amsgrad = true;
  td_optimizer *opt = make_optimizer(&c, NULL, p);
  run_steps(opt, p, 0, 3);
  td_tensor_map m = {0};
  assert_int_equal(td_optimizer_state_dict(opt, &m, "opt."), TD_OK);
  /* parameter 1 had its first grad at step 2: one update */
  const char *names[] = {
      "opt.state.0.step",           "opt.state.0.exp_avg",        "opt.state.0.exp_avg_sq",
      "opt.state.0.max_exp_avg_sq", "opt.state.1.step",           "opt.state.1.exp_avg",
      "opt.state.1.exp_avg_sq",     "opt.state.1.max_exp_avg_sq", "opt.state.2.step"};
  assert_int_equal(m.count, 12);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    assert_non_null(td_tensor_map_get(&m, names[i]));
  td_tensor *step = td_tensor_map_get(&m, "opt.state.1.step");
  assert_int_equal(step->dtype, TD_INT64);
  assert_int_equal(step->ndim, 0);
  assert_int_equal(td_tensor_i64(step)[0], 1);
  assert_int_equal(td_tensor_i64(td_tensor_map_get(&m, "opt.state.2.step"))[0], 2);
  td_tensor *ea = td_tensor_map_get(&m, "opt.state.1.exp_avg");
  assert_true(td_shape_equal(ea->ndim, ea->shape, 2, resume_shape[1]));
  assert_string_equal(td_tensor_map_get_meta(&m, "opt.optimizer"), "adam");
  assert_string_equal(td_tensor_map_get_meta(&m, "opt.step"), "3");
  const char *groups = td_tensor_map_get_meta(&m, "opt.param_groups");
  assert_non_null(groups);
  assert_non_null(strstr(groups, "\"initial_lr\":0.001"));
  assert_non_null(strstr(groups, "\"amsgrad\":true"));
  assert_non_null(strstr(groups, "\"params\":[0,1]"));
  assert_non_null(strstr(groups, "\"params\":[2]"));
  assert_non_null(strstr(td_tensor_map_get_meta(&m, "opt.lr_schedule"), "\"kind\":\"constant\""));
  /* a second export into the same map collides */
  assert_error(td_optimizer_state_dict(opt, &m, "opt."), TD_ERR_INVALID_ARGUMENT,
               "duplicate key 'opt.state.0.step'");
  td_tensor_map_free(&m);
  td_optimizer_destroy(opt);
  for (int i = 0; i < RP; i++)
    td_tensor_release(p[i]);
}

/* ---- checkpoints: every load error leaves the optimizer as it was ---------------- */

/* A copy of src without entry or metadata `drop` (NULL: none). Tensors are
 * shared, metadata copied. */
static void map_copy(const td_tensor_map *src, td_tensor_map *dst, const char *drop) {
  td_tensor_map_init(dst);
  for (size_t i = 0; i < src->count; i++)
    if (!drop || strcmp(src->entries[i].name, drop) != 0)
      assert_int_equal(td_tensor_map_put(dst, src->entries[i].name, src->entries[i].tensor), TD_OK);
  for (size_t i = 0; i < src->meta_count; i++)
    if (!drop || strcmp(src->meta[i].key, drop) != 0)
      assert_int_equal(td_tensor_map_set_meta(dst, src->meta[i].key, src->meta[i].value), TD_OK);
}

/* Deep snapshot (tensor copies) of an optimizer's exported state. */
static void snapshot(const td_optimizer *opt, td_tensor_map *out) {
  td_tensor_map live = {0};
  assert_int_equal(td_optimizer_state_dict(opt, &live, ""), TD_OK);
  map_clone(&live, out);
  td_tensor_map_free(&live);
}

static void assert_maps_equal(const td_tensor_map *a, const td_tensor_map *b) {
  assert_int_equal(a->count, b->count);
  assert_int_equal(a->meta_count, b->meta_count);
  for (size_t i = 0; i < a->count; i++) {
    const td_tensor *x = a->entries[i].tensor, *y = td_tensor_map_get(b, a->entries[i].name);
    assert_non_null(y);
    assert_int_equal(x->dtype, y->dtype);
    assert_true(td_shape_equal(x->ndim, x->shape, y->ndim, y->shape));
    assert_memory_equal(td_tensor_data(x), td_tensor_data(y), td_tensor_nbytes(x));
  }
  for (size_t i = 0; i < a->meta_count; i++)
    assert_string_equal(a->meta[i].value, td_tensor_map_get_meta(b, a->meta[i].key));
}

static void test_load_errors_change_nothing(void **state) {
  (void)state;
  td_tensor *src_p[RP], *dst_p[RP];
  make_params(src_p);
  make_params(dst_p);
  td_optim_config c = td_optim_defaults(TD_OPTIM_ADAM);
  c.adam.amsgrad = true;
  td_lr_schedule cos = td_lr_cosine(10, 0);
  td_optimizer *src = make_optimizer(&c, &cos, src_p);
  run_steps(src, src_p, 0, 4);
  td_optimizer *dst = make_optimizer(&c, NULL, dst_p);
  run_steps(dst, dst_p, 0, 1);
  td_tensor_map good = {0}, before = {0};
  assert_int_equal(td_optimizer_state_dict(src, &good, ""), TD_OK);
  snapshot(dst, &before);

  int64_t three[] = {3};
  td_tensor *small, *f32_step;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, three, &small), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 0, NULL, &f32_step), TD_OK);
  /* group 0 with betas[0] and params filled in, then group 1 */
  const char *group_fmt = "[{\"initial_lr\":0.001,\"lr\":0.001,\"betas\":[%s,0.999],\"eps\":1e-08,"
                          "\"weight_decay\":0,\"amsgrad\":true,\"params\":[%s]},%s]";
  const char *group1 = "{\"initial_lr\":0.001,\"lr\":0.001,\"betas\":[0.9,0.999],\"eps\":1e-08,"
                       "\"weight_decay\":0,\"amsgrad\":true,\"params\":[2]}";
  char groups_bad_beta[512], groups_bad_ids[512], groups_empty[512];
  snprintf(groups_bad_beta, sizeof groups_bad_beta, group_fmt, "1.5", "0,1", group1);
  snprintf(groups_bad_ids, sizeof groups_bad_ids, group_fmt, "0.9", "0,5", group1);
  snprintf(groups_empty, sizeof groups_empty, group_fmt, "0.9", "0,1", "{}");
  struct {
    const char *drop;     /* entry or metadata to leave out */
    const char *put_name; /* entry to add or replace */
    td_tensor *put;
    const char *meta_key; /* metadata to set */
    const char *meta_value;
    const char *needle;
  } bad[] = {
      {NULL, NULL, NULL, "optimizer", "sgd",
       "checkpoint is for optimizer 'sgd', this one is 'adam'"},
      {"optimizer", NULL, NULL, NULL, NULL, "missing metadata 'optimizer'"},
      {"state.0.exp_avg", NULL, NULL, NULL, NULL, "missing 'state.0.exp_avg'"},
      {"state.1.max_exp_avg_sq", NULL, NULL, NULL, NULL, "missing 'state.1.max_exp_avg_sq'"},
      {"state.1.exp_avg_sq", "state.1.exp_avg_sq", small, NULL, NULL,
       "'state.1.exp_avg_sq' is float32 [3], parameter 1 is float32 [7,1]"},
      {"state.0.step", "state.0.step", f32_step, NULL, NULL,
       "'state.0.step' should be one int64, got float32 []"},
      {"state.1.step", NULL, NULL, NULL, NULL, "unexpected entry 'state.1.exp_avg'"},
      {NULL, "state.0.bogus", small, NULL, NULL, "unexpected entry 'state.0.bogus'"},
      {NULL, "state.3.step", small, NULL, NULL, "unexpected entry 'state.3.step'"},
      {NULL, "state.00.step", small, NULL, NULL, "unexpected entry 'state.00.step'"},
      {"param_groups", NULL, NULL, NULL, NULL, "missing metadata 'param_groups'"},
      {NULL, NULL, NULL, "param_groups", "[{", "'param_groups' is not valid JSON"},
      {NULL, NULL, NULL, "param_groups", "[]",
       "the optimizer has 2 param groups, the checkpoint 0"},
      {NULL, NULL, NULL, "param_groups", groups_bad_beta,
       "param_groups[0]: adam: invalid beta1 1.5"},
      {NULL, NULL, NULL, "param_groups", groups_bad_ids, "param_groups[0].params[1] should be 1"},
      {NULL, NULL, NULL, "param_groups", groups_empty, "param_groups[1].initial_lr is missing"},
      {NULL, NULL, NULL, "lr_schedule", "{\"kind\":\"cosine\"}",
       "lr_schedule.step_size is missing"},
      {NULL, NULL, NULL, "lr_schedule",
       "{\"kind\":\"cosine\",\"step_size\":0,\"gamma\":0.1,\"milestones\":[],\"t_max\":0,"
       "\"eta_min\":0,\"warmup_steps\":0,\"warmup_start_factor\":0.3}",
       "lr schedule cosine: invalid t_max 0"},
      {NULL, NULL, NULL, "lr_schedule", "{\"kind\":\"linear\"}",
       "lr_schedule.kind is missing or unknown"},
      {NULL, NULL, NULL, "step", "abc", "metadata 'step' is missing or not a count (abc)"},
      {NULL, NULL, NULL, "step", "-3", "not a count (-3)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    td_tensor_map m;
    map_copy(&good, &m, bad[i].drop);
    if (bad[i].put_name)
      assert_int_equal(td_tensor_map_put(&m, bad[i].put_name, bad[i].put), TD_OK);
    if (bad[i].meta_key)
      assert_int_equal(td_tensor_map_set_meta(&m, bad[i].meta_key, bad[i].meta_value), TD_OK);
    assert_error(td_optimizer_load_state_dict(dst, &m, ""), TD_ERR_INVALID_ARGUMENT, bad[i].needle);
    td_tensor_map_free(&m);
    td_tensor_map after;
    snapshot(dst, &after);
    assert_maps_equal(&before, &after);
    td_tensor_map_free(&after);
    assert_int_equal(td_optimizer_num_steps(dst), 1);
    assert_int_equal(td_optimizer_schedule(dst)->kind, TD_LR_CONSTANT);
  }
  /* a different algorithm under the same keys, and a wrong prefix */
  td_optim_config w = td_optim_defaults(TD_OPTIM_ADAMW);
  td_optimizer *other = make_optimizer(&w, NULL, dst_p);
  assert_error(td_optimizer_load_state_dict(other, &good, ""), TD_ERR_INVALID_ARGUMENT,
               "this one is 'adamw'");
  assert_error(td_optimizer_load_state_dict(dst, &good, "opt."), TD_ERR_INVALID_ARGUMENT,
               "missing metadata 'opt.optimizer'");
  /* and the good one loads */
  assert_int_equal(td_optimizer_load_state_dict(dst, &good, ""), TD_OK);
  assert_int_equal(td_optimizer_num_steps(dst), 4);
  assert_int_equal(td_optimizer_schedule(dst)->kind, TD_LR_COSINE);
  td_optimizer_destroy(other);
  td_tensor_release(small);
  td_tensor_release(f32_step);
  td_tensor_map_free(&good);
  td_tensor_map_free(&before);
  td_optimizer_destroy(src);
  td_optimizer_destroy(dst);
  for (int i = 0; i < RP; i++) {
    td_tensor_release(src_p[i]);
    td_tensor_release(dst_p[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgd_momentum_and_nesterov),
      cmocka_unit_test(test_adam_adamw_amsgrad),
      cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_adagrad),
      cmocka_unit_test(test_skips_params_without_grad),
      cmocka_unit_test(test_clear_grad),
      cmocka_unit_test(test_view_params_update_in_place),
      cmocka_unit_test(test_param_groups_have_own_hyperparameters),
      cmocka_unit_test(test_config_validation),
      cmocka_unit_test(test_param_validation),
      cmocka_unit_test(test_schedule_validation),
      cmocka_unit_test(test_clip_grad_norm),
      cmocka_unit_test(test_schedule_values),
      cmocka_unit_test(test_resume_is_bit_exact),
      cmocka_unit_test(test_state_dict_layout),
      cmocka_unit_test(test_load_errors_change_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
