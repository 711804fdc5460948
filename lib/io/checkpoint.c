/* checkpoint.c - model + optimizer state in one safetensors file. */
#include "io/checkpoint.h"

#include <string.h>

#include "io/safetensors.h"

#define PREFIX TD_CHECKPOINT_OPTIMIZER_PREFIX
#define RNG_PREFIX TD_CHECKPOINT_RNG_PREFIX

static bool has_prefix(const char *name, const char *prefix) {
  return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* Keys that are not the model's: they never reach load_state_dict. */
static bool is_training_key(const char *name) {
  return has_prefix(name, PREFIX) || has_prefix(name, RNG_PREFIX);
}

static bool has_rng_keys(const td_tensor_map *state) {
  for (size_t i = 0; i < state->count; i++)
    if (has_prefix(state->entries[i].name, RNG_PREFIX)) return true;
  return false;
}

td_status td_checkpoint_state(const td_module *model, const td_optimizer *opt, td_tensor_map *out) {
  td_status st = td_module_state_dict(model, out);
  if (!st) st = td_module_rng_state(model, out, RNG_PREFIX);
  if (!st && opt) st = td_optimizer_state_dict(opt, out, PREFIX);
  if (st) td_tensor_map_free(out);
  return st;
}

/* The model's part of a checkpoint: every entry outside the optimizer's
 * prefix (borrowed tensors, retained by the new map). */
static td_status model_part(const td_tensor_map *state, td_tensor_map *out) {
  td_tensor_map_init(out);
  for (size_t i = 0; i < state->count; i++) {
    if (is_training_key(state->entries[i].name)) continue;
    td_status st = td_tensor_map_put(out, state->entries[i].name, state->entries[i].tensor);
    if (st) {
      td_tensor_map_free(out);
      return st;
    }
  }
  return TD_OK;
}

/* A private copy of the model's current values, to roll back to. */
static td_status snapshot(const td_module *model, td_tensor_map *out) {
  td_tensor_map live;
  td_status st = td_module_state_dict(model, &live);
  if (st) return st;
  td_tensor_map_init(out);
  for (size_t i = 0; i < live.count && !st; i++) {
    td_tensor *copy;
    st = td_tensor_clone(live.entries[i].tensor, &copy);
    if (!st) {
      st = td_tensor_map_put(out, live.entries[i].name, copy);
      td_tensor_release(copy);
    }
  }
  td_tensor_map_free(&live);
  if (st) td_tensor_map_free(out);
  return st;
}

td_status td_checkpoint_load_state(td_module *model, td_optimizer *opt, const td_tensor_map *state,
                                   bool strict, td_load_result *result) {
  td_tensor_map model_state, backup = {0}, old_rng = {0};
  bool rng = has_rng_keys(state);
  td_status st = model_part(state, &model_state);
  if (st) return st;
  /* Generators, model and optimizer each load all-or-nothing; to make the
   * three so together, keep the old values of what loaded first until what
   * loads after it has succeeded. */
  if (rng) st = td_module_rng_state(model, &old_rng, RNG_PREFIX);
  if (!st && rng) st = td_module_load_rng_state(model, state, RNG_PREFIX);
  if (!st && opt) st = snapshot(model, &backup);
  if (!st) {
    st = td_module_load_state_dict(model, &model_state, strict, result);
    if (!st && opt) {
      st = td_optimizer_load_state_dict(opt, state, PREFIX);
      /* Restoring the values just loaded over cannot fail: same keys, shapes. */
      if (st) td_module_load_state_dict(model, &backup, true, NULL);
    }
    if (st && rng) td_module_load_rng_state(model, &old_rng, RNG_PREFIX);
  }
  td_tensor_map_free(&model_state);
  td_tensor_map_free(&backup);
  td_tensor_map_free(&old_rng);
  return st;
}

td_status td_checkpoint_save(const td_module *model, const td_optimizer *opt, const char *path) {
  td_tensor_map state;
  td_status st = td_checkpoint_state(model, opt, &state);
  if (st) return st;
  st = td_safetensors_write_file(&state, path);
  td_tensor_map_free(&state);
  return st;
}

td_status td_checkpoint_load(td_module *model, td_optimizer *opt, const char *path, bool strict,
                             td_load_result *result) {
  td_tensor_map state;
  td_tensor_map_init(&state);
  td_status st = td_safetensors_read_file(path, &state);
  if (!st) st = td_checkpoint_load_state(model, opt, &state, strict, result);
  td_tensor_map_free(&state);
  return st;
}
