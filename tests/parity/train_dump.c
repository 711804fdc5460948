/* train_dump.c - trains every test model with every optimizer and writes what
 * tests/parity/train_parity.py needs to replay the run in PyTorch.
 *
 * usage: train_dump OUTDIR [STEPS] [WORKLOAD-SUBSTRING]
 *
 * Per run <workload>.<optimizer>: the initial state_dict, the batches, and
 * the final state_dict with the loss of every step and the eval-mode output
 * on the first batch (see train_parity.py for the file layout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "common/models.h"
#include "functional/functional.h"
#include "io/safetensors.h"
#include "optimizer/optimizer.h"

typedef struct optim_case {
  const char *name;
  const char *torch_json; /* torch.optim keyword arguments, plus "kind" */
  td_optim_config cfg;
} optim_case;

static optim_case optim_cases[5];

/* eps = 1e-3 for the adaptive optimizers: their first steps are about
 * lr * sign(grad), so a gradient at rounding-noise level (a conv bias before
 * BatchNorm has a true gradient of zero) would otherwise move a parameter a
 * full random step in float32, in PyTorch as much as here. With a larger eps
 * such noise moves nothing, and the runs compare the model and the update
 * rules instead of the noise. The exact rules at default eps are checked bit
 * for bit by parity.optim. */

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

static td_status write_state(td_module *model, td_tensor *eval_out, const char *losses,
                             const char *path) {
  td_tensor_map m = {0};
  td_status st;
  CHECK(td_module_state_dict(model, &m));
  if (eval_out) CHECK(td_tensor_map_put(&m, "__parity__.eval_out", eval_out));
  if (losses) CHECK(td_tensor_map_set_meta(&m, "losses", losses));
  CHECK(td_safetensors_write_file(&m, path));
out:
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
  td_tensor_map data = {0};
  td_tensor *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
  char *losses = calloc(1, (size_t)steps * 32 + 8);
  test_model_info info;
  td_rng rng;
  td_status st;
  if (!losses) return td_error(TD_ERR_NO_MEMORY, "train_dump: out of memory");

  CHECK(test_model_build(workload, 1234, &model, &info));
  snprintf(path, sizeof path, "%s/%s.init.safetensors", dir, run_name);
  CHECK(write_state(model, NULL, NULL, path));

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
  strcat(losses, "[");
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
    CHECK(td_optimizer_step(opt));
    snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", (double)td_tensor_f32(loss)[0]);
    strcat(losses, buf);
    TD_RELEASE(logits);
    TD_RELEASE(loss);
  }
  strcat(losses, "]");
  td_module_train(model, false);
  CHECK(td_module_forward(model, td_tensor_map_get(&data, "x.0"), &logits));
  snprintf(path, sizeof path, "%s/%s.final.safetensors", dir, run_name);
  CHECK(write_state(model, logits, losses, path));
out:
  if (st) td_error_prefix("%s: ", run_name);
  td_gm_destroy(gm);
  td_optimizer_destroy(opt);
  td_module_destroy(model);
  td_free(params);
  td_tensor_map_free(&data);
  td_tensor_release(x);
  td_tensor_release(y);
  td_tensor_release(logits);
  td_tensor_release(loss);
  free(losses);
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
