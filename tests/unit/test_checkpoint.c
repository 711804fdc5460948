/* test_checkpoint.c - save, resume, and all-or-nothing loads of model + optimizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/models.h"
#include "common/test_util.h"
#include "core/alloc.h"
#include "functional/functional.h"
#include "io/checkpoint.h"

typedef struct run {
  td_module *model;
  td_grad_manager *gm;
  td_optimizer *opt;
  test_model_info info;
} run;

/* A ResNet (BatchNorm buffers, residuals) with Adam, warm-up + cosine LR.
 * `lr` differs between the original and the resumed run on purpose: the
 * checkpoint's hyperparameters and schedule position must win. */
static void run_init(run *r, uint64_t seed, double lr) {
  memset(r, 0, sizeof *r);
  assert_int_equal(test_model_build("resnet_tiny", seed, &r->model, &r->info), TD_OK);
  int64_t small[] = {4, 3, 8, 8};
  memcpy(r->info.input_shape, small, sizeof small);
  td_tensor **params;
  int n;
  assert_int_equal(td_module_parameters(r->model, &params, &n), TD_OK);
  td_optim_config cfg = td_optim_defaults(TD_OPTIM_ADAM);
  cfg.adam.lr = lr;
  assert_int_equal(td_optimizer_create(&cfg, params, n, &r->opt), TD_OK);
  td_free(params);
  td_lr_schedule s = td_lr_cosine(10, 1e-4);
  s.warmup_steps = 2;
  s.warmup_start_factor = 0.1;
  assert_int_equal(td_optimizer_set_schedule(r->opt, &s), TD_OK);
  assert_int_equal(td_gm_create(&r->gm), TD_OK);
  assert_int_equal(td_module_attach(r->model, r->gm), TD_OK);
}

static void run_free(run *r) {
  td_gm_destroy(r->gm);
  td_optimizer_destroy(r->opt);
  td_module_destroy(r->model);
}

/* `steps` training steps on batches drawn from rng. */
static void train(run *r, td_rng *rng, int steps) {
  for (int i = 0; i < steps; i++) {
    td_tensor *x, *y, *logits, *loss;
    assert_int_equal(test_model_batch(&r->info, rng, &x, &y), TD_OK);
    td_optimizer_clear_grad(r->opt);
    assert_int_equal(td_gm_record(r->gm), TD_OK);
    assert_int_equal(td_module_forward(r->model, x, &logits), TD_OK);
    assert_int_equal(td_cross_entropy(logits, y, TD_REDUCTION_MEAN, 0, &loss), TD_OK);
    assert_int_equal(td_gm_backward(r->gm, loss, NULL), TD_OK);
    assert_int_equal(td_optimizer_step(r->opt), TD_OK);
    td_tensor_release(x);
    td_tensor_release(y);
    td_tensor_release(logits);
    td_tensor_release(loss);
  }
}

static void assert_same_state(const td_module *a, const td_module *b) {
  td_tensor_map sa, sb;
  assert_int_equal(td_module_state_dict(a, &sa), TD_OK);
  assert_int_equal(td_module_state_dict(b, &sb), TD_OK);
  assert_int_equal(sa.count, sb.count);
  for (size_t i = 0; i < sa.count; i++) {
    td_tensor *ta, *tb;
    assert_string_equal(sa.entries[i].name, sb.entries[i].name);
    assert_int_equal(td_tensor_contiguous(sa.entries[i].tensor, &ta), TD_OK);
    assert_int_equal(td_tensor_contiguous(sb.entries[i].tensor, &tb), TD_OK);
    assert_int_equal(td_tensor_nbytes(ta), td_tensor_nbytes(tb));
    if (memcmp(td_tensor_data(ta), td_tensor_data(tb), td_tensor_nbytes(ta)) != 0)
      fail_msg("%s differs after resume", sa.entries[i].name);
    td_tensor_release(ta);
    td_tensor_release(tb);
  }
  td_tensor_map_free(&sa);
  td_tensor_map_free(&sb);
}

static void temp_path(char *buf, size_t n, const char *tag) {
  snprintf(buf, n, "/tmp/traind-test-ckpt-%d-%s.safetensors", (int)getpid(), tag);
}

static void test_resume_is_bit_identical(void **state) {
  (void)state;
  const int N = 3, M = 3;
  char path[256];
  temp_path(path, sizeof path, "resume");

  run a, b;
  run_init(&a, 1, 1e-3);
  td_rng data;
  td_rng_seed(&data, 7);
  train(&a, &data, N);
  assert_int_equal(td_checkpoint_save(a.model, a.opt, path), TD_OK);
  td_rng data_after_save = data;
  train(&a, &data, M); /* the uninterrupted run: N + M steps */

  run_init(&b, 2, 0.5); /* other weights, other lr: the checkpoint must win */
  assert_int_equal(td_checkpoint_load(b.model, b.opt, path, true, NULL), TD_OK);
  assert_int_equal(td_optimizer_num_steps(b.opt), N);
  train(&b, &data_after_save, M);

  assert_same_state(a.model, b.model);
  assert_int_equal(td_optimizer_num_steps(b.opt), N + M);
  assert_true(td_optimizer_lr(a.opt, 0) == td_optimizer_lr(b.opt, 0));
  run_free(&a);
  run_free(&b);
  unlink(path);
}

/* Linear(8,16)-Dropout(0.5)-Linear(16,3) with SGD: resuming must also resume
 * the dropout masks, whose generator lives outside the state_dict. */
static void dropout_run_init(run *r, uint64_t seed) {
  memset(r, 0, sizeof *r);
  td_rng rng;
  td_rng_seed(&rng, seed);
  td_module *m;
  td_linear_config a = {.in_features = 8, .out_features = 16}, b = {.in_features = 16, .out_features = 3};
  assert_int_equal(td_module_sequential(&r->model), TD_OK);
  assert_int_equal(td_module_linear(&a, &rng, &m), TD_OK);
  assert_int_equal(td_sequential_append(r->model, NULL, m), TD_OK);
  assert_int_equal(td_module_dropout(0.5f, &rng, &m), TD_OK);
  assert_int_equal(td_sequential_append(r->model, NULL, m), TD_OK);
  assert_int_equal(td_module_linear(&b, &rng, &m), TD_OK);
  assert_int_equal(td_sequential_append(r->model, NULL, m), TD_OK);
  r->info = (test_model_info){2, {6, 8}, false, 0, 3};
  td_tensor **params;
  int n;
  assert_int_equal(td_module_parameters(r->model, &params, &n), TD_OK);
  td_optim_config cfg = td_optim_defaults(TD_OPTIM_SGD);
  cfg.sgd.lr = 0.1;
  assert_int_equal(td_optimizer_create(&cfg, params, n, &r->opt), TD_OK);
  td_free(params);
  assert_int_equal(td_gm_create(&r->gm), TD_OK);
  assert_int_equal(td_module_attach(r->model, r->gm), TD_OK);
}

static void test_resume_continues_dropout_masks(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path, "dropout");
  run a, b;
  dropout_run_init(&a, 1);
  td_rng data;
  td_rng_seed(&data, 3);
  train(&a, &data, 2);
  td_tensor_map ck;
  assert_int_equal(td_checkpoint_state(a.model, a.opt, &ck), TD_OK);
  assert_non_null(td_tensor_map_get(&ck, "rng/1")); /* the Dropout is child "1" */
  td_tensor_map_free(&ck);
  assert_int_equal(td_checkpoint_save(a.model, a.opt, path), TD_OK);
  td_rng after = data;
  train(&a, &data, 3);

  dropout_run_init(&b, 2); /* another seed: other weights and other masks */
  assert_int_equal(td_checkpoint_load(b.model, b.opt, path, true, NULL), TD_OK);
  train(&b, &after, 3);
  assert_same_state(a.model, b.model);
  run_free(&a);
  run_free(&b);
  unlink(path);
}

static void test_failed_load_changes_nothing(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path, "model-only");
  run a, b;
  run_init(&a, 1, 1e-3);
  run_init(&b, 2, 1e-3);
  /* A checkpoint without optimizer state: loading it with an optimizer must
   * fail and leave the model as it was (the model part alone would load). */
  assert_int_equal(td_checkpoint_save(a.model, NULL, path), TD_OK);
  td_tensor_map before;
  assert_int_equal(td_checkpoint_state(b.model, NULL, &before), TD_OK);
  td_tensor_map snapshot;
  map_clone(&before, &snapshot);
  td_tensor_map_free(&before);
  assert_int_not_equal(td_checkpoint_load(b.model, b.opt, path, true, NULL), TD_OK);
  assert_message_has("optimizer");
  /* b's model still has its own weights: compare against the snapshot. */
  td_tensor_map now;
  assert_int_equal(td_module_state_dict(b.model, &now), TD_OK);
  for (size_t i = 0; i < now.count; i++) {
    td_tensor *t;
    assert_int_equal(td_tensor_contiguous(now.entries[i].tensor, &t), TD_OK);
    assert_memory_equal(td_tensor_data(t), td_tensor_data(snapshot.entries[i].tensor),
                        td_tensor_nbytes(t));
    td_tensor_release(t);
  }
  td_tensor_map_free(&now);
  td_tensor_map_free(&snapshot);
  /* Without the optimizer, the same file loads. */
  assert_int_equal(td_checkpoint_load(b.model, NULL, path, true, NULL), TD_OK);
  assert_same_state(a.model, b.model);
  run_free(&a);
  run_free(&b);
  unlink(path);
}

static void test_wrong_architecture_is_refused(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path, "arch");
  td_module *mlp, *lenet;
  test_model_info info;
  assert_int_equal(test_model_build("mlp_small", 1, &mlp, &info), TD_OK);
  assert_int_equal(test_model_build("lenet", 1, &lenet, &info), TD_OK);
  assert_int_equal(td_checkpoint_save(mlp, NULL, path), TD_OK);
  td_load_result r;
  assert_int_equal(td_checkpoint_load(lenet, NULL, path, true, &r), TD_ERR_INVALID_ARGUMENT);
  assert_true(r.n_missing > 0 || r.n_mismatched > 0);
  td_load_result_free(&r);
  /* A missing file names the path. */
  assert_error(td_checkpoint_load(lenet, NULL, "/nonexistent/x.safetensors", true, NULL),
               TD_ERR_NOT_FOUND, "/nonexistent/x.safetensors");
  td_module_destroy(mlp);
  td_module_destroy(lenet);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_is_bit_identical),
      cmocka_unit_test(test_resume_continues_dropout_masks),
      cmocka_unit_test(test_failed_load_changes_nothing),
      cmocka_unit_test(test_wrong_architecture_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
