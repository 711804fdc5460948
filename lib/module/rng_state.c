/* rng_state.c - saving and restoring the layers' random generators.
 *
 * A Dropout layer owns a td_rng. Its four words are not model weights
 * (PyTorch's state_dict has no key for them, so they stay out of ours), but a
 * run resumed without them would draw different masks than the run that
 * never stopped. Checkpoints therefore carry them under their own prefix.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "module/module.h"

/* "<prefix><path>" into key; the path of the root is "". */
static void rng_key(char *key, size_t n, const char *prefix, const char *path) {
  snprintf(key, n, "%s%s", prefix, path);
}

#define KEY_MAX (TD_MODULE_MAX_DEPTH * (TD_MODULE_MAX_KEY + 1) + 64)

td_status td_module_rng_state(const td_module *m, td_tensor_map *out, const char *prefix) {
  td_module_list list;
  td_status st = td_module_named_modules(m, &list);
  if (st) return st;
  char key[KEY_MAX];
  for (int i = 0; i < list.count && !st; i++) {
    td_module *mod = list.items[i].module;
    if (!mod->vt->rng) continue;
    td_rng *rng = mod->vt->rng(mod);
    int64_t shape[] = {4};
    td_tensor *t;
    if ((st = td_tensor_from_data(TD_INT64, 1, shape, rng->s, &t))) break;
    rng_key(key, sizeof key, prefix, list.items[i].name);
    st = td_tensor_map_put(out, key, t);
    td_tensor_release(t);
  }
  td_module_list_free(&list);
  return st;
}

td_status td_module_load_rng_state(td_module *m, const td_tensor_map *in, const char *prefix) {
  td_module_list list;
  td_status st = td_module_named_modules(m, &list);
  if (st) return st;
  char key[KEY_MAX];
  size_t plen = strlen(prefix);
  /* Read every generator's new state first; only then change any. */
  td_rng *states = td_calloc((size_t)list.count + 1, sizeof *states, "rng states");
  if (!states) st = TD_ERR_NO_MEMORY;
  int expected = 0;
  for (int i = 0; i < list.count && !st; i++) {
    if (!list.items[i].module->vt->rng) continue;
    expected++;
    rng_key(key, sizeof key, prefix, list.items[i].name);
    td_tensor *t = td_tensor_map_get(in, key), *c;
    char shape[TD_SHAPE_STR_MAX];
    if (!t) {
      st = td_error(TD_ERR_INVALID_ARGUMENT, "load rng state: missing key '%s' (%s layer)", key,
                    list.items[i].module->vt->kind);
    } else if (t->dtype != TD_INT64 || t->ndim != 1 || t->shape[0] != 4) {
      st = td_error(TD_ERR_INVALID_ARGUMENT, "load rng state: '%s' must be int64 [4], got %s %s",
                    key, td_dtype_name(t->dtype), td_tensor_shape_str(shape, t));
    } else if (!(st = td_tensor_contiguous(t, &c))) {
      memcpy(states[i].s, td_tensor_data(c), sizeof states[i].s);
      td_tensor_release(c);
    }
  }
  int present = 0;
  for (size_t i = 0; i < in->count && !st; i++) {
    if (strncmp(in->entries[i].name, prefix, plen) == 0 && ++present > expected)
      st = td_error(TD_ERR_INVALID_ARGUMENT,
                    "load rng state: '%s' matches no layer with a random generator",
                    in->entries[i].name);
  }
  for (int i = 0; i < list.count && !st; i++)
    if (list.items[i].module->vt->rng)
      *list.items[i].module->vt->rng(list.items[i].module) = states[i];
  td_free(states);
  td_module_list_free(&list);
  return st;
}
