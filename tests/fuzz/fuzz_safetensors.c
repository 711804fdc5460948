/* fuzz_safetensors.c - the safetensors reader on arbitrary bytes, and what a
 * checkpoint upload does with what it reads: load it into a model (strict
 * and not) and an optimizer. */
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "module/layers.h"

typedef struct target {
  td_module *model;
  td_optimizer *opt;
} target;

/* Sequential(Linear(4, 3), BatchNorm1d(3)) with SGD momentum: parameters,
 * buffers (one int64) and optimizer state, as real checkpoints have. */
static target *fixed_target(void) {
  static target t;
  if (t.model) return &t;
  td_rng rng;
  td_rng_seed(&rng, 0);
  td_module *lin, *bn;
  td_linear_config lc = {.in_features = 4, .out_features = 3};
  td_batch_norm_config bc = {.num_features = 3};
  if (td_module_sequential(&t.model) || td_module_linear(&lc, &rng, &lin) ||
      td_sequential_append(t.model, NULL, lin) || td_module_batch_norm1d(&bc, &bn) ||
      td_sequential_append(t.model, NULL, bn))
    abort();
  td_tensor **params;
  int n;
  td_optim_config cfg = td_optim_defaults(TD_OPTIM_SGD);
  cfg.sgd.lr = 0.1;
  cfg.sgd.momentum = 0.9;
  if (td_module_parameters(t.model, &params, &n) || td_optimizer_create(&cfg, params, n, &t.opt))
    abort();
  td_free(params);
  return &t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  td_mem_set_limit(256 << 20);
  target *t = fixed_target();
  td_tensor_map state;
  td_tensor_map_init(&state);
  if (!td_safetensors_read_buffer(data, size, &state)) {
    for (int strict = 0; strict < 2; strict++) {
      td_load_result result = {0};
      (void)td_checkpoint_load_state(t->model, strict ? t->opt : NULL, &state, strict, &result);
      td_load_result_free(&result);
    }
    void *again = NULL;
    size_t len = 0;
    if (!td_safetensors_write_buffer(&state, &again, &len)) td_free(again);
  }
  td_tensor_map_free(&state);
  return 0;
}
