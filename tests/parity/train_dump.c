/* train_dump.c - trains every test model with every optimizer and writes what
 * tests/parity/train_parity.py needs to check each step against PyTorch.
 *
 * usage: train_dump OUTDIR [STEPS] [WORKLOAD-SUBSTRING]
 *
 * Per run <workload>.<optimizer>: the batches, the full checkpoint state
 * (model + optimizer, td_checkpoint_state) before the first step and after
 * every step (with that step's loss), every step's gradient, and the
 * eval-mode output of the final model on the first batch (see
 * train_parity.py for the file layout). The optimizer settings, and why the
 * adaptive ones use eps = 1e-3, are below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "common/models.h"
#include "functional/functional.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "optimizer/optimizer.h"

typedef struct optim_case {
  const char *name;
  const char *torch_json; /* torch.optim keyword arguments, plus "kind" */
  td_optim_config cfg;
} optim_case;

static optim_case optim_cases[5];

/* eps = 1e-3 for the adaptive optimizers, not torch's 1e-8. Per element,
 * their update lr * m / (sqrt(v) + eps) is a function of the gradient with a
 * slope of up to lr / eps. Every large weight tensor has elements whose true
 * gradient is below its float32 rounding error, and at eps = 1e-8 such an
 * element moves by a rounding-decided fraction of lr, in PyTorch's float32 as
 * much as here: the parameters then compare noise, not the engine. Measured
 * with train_parity.py at eps = 1e-8: resnet_tiny + Adagrad, step 0, a conv
 * weight element with gradient 2.3e-9 in float64 (2.3e-10 in float32) moves
 * 0.96 lr in float64 and 0.70 lr here, which puts that 18432-element tensor
 * 5.6e-4 off; RMSprop's momentum buffers are 1.7e-4 off. At eps = 1e-3 a
 * gradient error of 1e-9 moves a parameter by at most lr * 1e-6. The update
 * rules at the default eps are checked bit for bit, on given gradients, by
 * parity.optim. */

static void init_optim_cases(void) {
  td_optim_config c;
  c = td_optim_defaults(TD_OPTIM_SGD);
  c.sgd.lr = 0.01, c.sgd.momentum = 0.9, c.sgd.weight_decay = 5e-4, c.sgd.nesterov = true;
  optim_cases[0] = (optim_case){"sgd",
                                "{\"kind\": \"sgd\", \"lr\": 0.01, \"momentum\": 0.9, "
                                "\"weight_decay\": 0.0005, \"nesterov\": true}",
                                c};
  c = td_optim_defaults(TD_OPTIM_ADAM);
  c.adam.lr = 1e-3, c.adam.weight_decay = 1e-4, c.adam.eps = 1e-3;
  optim_cases[1] = (optim_case){
      "adam", "{\"kind\": \"adam\", \"lr\": 0.001, \"weight_decay\": 0.0001, \"eps\": 0.001}", c};
  c = td_optim_defaults(TD_OPTIM_ADAMW);
  c.adam.lr = 1e-3, c.adam.weight_decay = 0.01, c.adam.amsgrad = true, c.adam.eps = 1e-3;
  optim_cases[2] = (optim_case){"adamw",
                                "{\"kind\": \"adamw\", \"lr\": 0.001, \"weight_decay\": 0.01, "
                                "\"amsgrad\": true, \"eps\": 0.001}",
                                c};
  c = td_optim_defaults(TD_OPTIM_RMSPROP);
  c.rmsprop.lr = 1e-3, c.rmsprop.momentum = 0.9, c.rmsprop.centered = true, c.rmsprop.eps = 1e-3;
  optim_cases[3] = (optim_case){"rmsprop",
                                "{\"kind\": \"rmsprop\", \"lr\": 0.001, \"momentum\": 0.9, "
                                "\"centered\": true, \"eps\": 0.001}",
                                c};
  c = td_optim_defaults(TD_OPTIM_ADAGRAD);
  c.adagrad.lr = 0.01, c.adagrad.lr_decay = 1e-3, c.adagrad.eps = 1e-3;
  optim_cases[4] = (optim_case){
      "adagrad", "{\"kind\": \"adagrad\", \"lr\": 0.01, \"lr_decay\": 0.001, \"eps\": 0.001}",
      c};
}

#define CHECK(expr)                                                                               \
  do {                                                                                            \
    if ((st = (expr))) goto out;                                                                  \
  } while (0)

/* <dir>/<run>.state.<k>.safetensors: the checkpoint after k steps; `loss`
 * (the loss of step k - 1, as text) goes in the metadata when given. */
static td_status write_state(const td_module *model, const td_optimizer *opt, const char *loss,
                             const char *dir, const char *run_name, int k) {
  char path[1024];
  td_tensor_map m = {0};
  td_status st;
  CHECK(td_checkpoint_state(model, opt, &m));
  if (loss) CHECK(td_tensor_map_set_meta(&m, "__parity__.loss", loss));
  snprintf(path, sizeof path, "%s/%s.state.%d.safetensors", dir, run_name, k);
  CHECK(td_safetensors_write_file(&m, path));
out:
  td_tensor_map_free(&m);
  return st;
}

/* <dir>/<run>.grad.<k>.safetensors: the gradient of step k under each
 * parameter's name, as the optimizer step is about to use it. */
static td_status write_grads(const td_module *model, const char *dir, const char *run_name, int k) {
  char path[1024];
  td_tensor_map params, m = {0};
  td_status st = td_module_named_parameters(model, &params);
  if (st) return st;
  for (size_t i = 0; i < params.count; i++) {
    const td_tensor_map_entry *e = &params.entries[i];
    if (!e->tensor->grad) {
      st = td_error(TD_ERR_INVALID_ARGUMENT, "train_dump: parameter '%s' has no gradient", e->name);
      goto out;
    }
    CHECK(td_tensor_map_put(&m, e->name, e->tensor->grad));
  }
  snprintf(path, sizeof path, "%s/%s.grad.%d.safetensors", dir, run_name, k);
  CHECK(td_safetensors_write_file(&m, path));
out:
  td_tensor_map_free(&params);
  td_tensor_map_free(&m);
  return st;
}

static td_status run(const char *dir, const char *workload, const optim_case *oc, int steps) {
  char path[1024], run_name[128], buf[64];
  snprintf(run_name, sizeof run_name, "%s.%s", workload, oc->name);
  td_module *model = NULL;
  td_grad_manager *gm = NULL;
  td_optimizer *opt = NULL;
  td_tensor **params = NULL;
  int n_params = 0;
  td_tensor_map data = {0}, eval = {0};
  td_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
  test_model_info info;
  td_rng rng;
  td_status st;

  CHECK(test_model_build(workload, 1234, &model, &info));
  td_rng_seed(&rng, 99);
  for (int i = 0; i < steps; i++) {
    CHECK(test_model_batch(&info, &rng, &x, &y));
    snprintf(buf, sizeof buf, "x.%d", i);
    CHECK(td_tensor_map_put(&data, buf, x));
    snprintf(buf, sizeof buf, "y.%d", i);
    CHECK(td_tensor_map_put(&data, buf, y));
    TD_RELEASE(x);
    TD_RELEASE(y);
  }
  CHECK(td_tensor_map_set_meta(&data, "workload", workload));
  CHECK(td_tensor_map_set_meta(&data, "optimizer", oc->torch_json));
  snprintf(buf, sizeof buf, "%d", steps);
  CHECK(td_tensor_map_set_meta(&data, "steps", buf));
  snprintf(path, sizeof path, "%s/%s.data.safetensors", dir, run_name);
  CHECK(td_safetensors_write_file(&data, path));

  CHECK(td_module_parameters(model, &params, &n_params));
  CHECK(td_gm_create(&gm));
  CHECK(td_module_attach(model, gm));
  CHECK(td_optimizer_create(&oc->cfg, params, n_params, &opt));
  CHECK(write_state(model, opt, NULL, dir, run_name, 0));
  for (int i = 0; i < steps; i++) {
    snprintf(buf, sizeof buf, "x.%d", i);
    td_tensor *xi = td_tensor_map_get(&data, buf);
    snprintf(buf, sizeof buf, "y.%d", i);
    td_tensor *yi = td_tensor_map_get(&data, buf);
    td_optimizer_clear_grad(opt);
    CHECK(td_gm_record(gm));
    CHECK(td_module_forward(model, xi, &logits));
    CHECK(td_cross_entropy(logits, yi, TD_REDUCTION_MEAN, 0.0f, &loss));
    td_gm_pause(gm);
    CHECK(td_gm_backward(gm, loss, NULL));
    CHECK(write_grads(model, dir, run_name, i));
    CHECK(td_optimizer_step(opt));
    snprintf(buf, sizeof buf, "%.9g", (double)td_tensor_f32(loss)[0]);
    CHECK(write_state(model, opt, buf, dir, run_name, i + 1));
    TD_RELEASE(logits);
    TD_RELEASE(loss);
  }
  td_module_train(model, false);
  CHECK(td_module_forward(model, td_tensor_map_get(&data, "x.0"), &logits));
  CHECK(td_tensor_map_put(&eval, "eval_out", logits));
  snprintf(path, sizeof path, "%s/%s.eval.safetensors", dir, run_name);
  CHECK(td_safetensors_write_file(&eval, path));
out:
  if (st) td_error_prefix("%s: ", run_name);
  td_gm_destroy(gm);
  td_optimizer_destroy(opt);
  td_module_destroy(model);
  td_free(params);
  td_tensor_map_free(&data);
  td_tensor_map_free(&eval);
  td_tensor_release(x);
  td_tensor_release(y);
  td_tensor_release(logits);
  td_tensor_release(loss);
  return st;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: train_dump OUTDIR [STEPS] [WORKLOAD-SUBSTRING]\n");
    return 2;
  }
  int steps = argc > 2 ? atoi(argv[2]) : 10;
  const char *only = argc > 3 ? argv[3] : NULL;
  mkdir(argv[1], 0777);
  init_optim_cases();
  int failures = 0, runs = 0;
  for (const char *const *w = test_model_names; *w; w++) {
    if (only && !strstr(*w, only)) continue;
    for (int k = 0; k < 5; k++) {
      runs++;
      td_status st = run(argv[1], *w, &optim_cases[k], steps);
      if (st) {
        fprintf(stderr, "train_dump: %s: %s\n", td_status_name(st), td_error_message());
        failures++;
      }
    }
  }
  fprintf(stderr, "train_dump: %d runs written, %d failed\n", runs - failures, failures);
  return failures ? 1 : 0;
}
