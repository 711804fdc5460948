/* module.h - the Module base: a tree of layers with named parameters and buffers.
 *
 * MegEngine's / PyTorch's Module in C. A td_module is a base struct that every
 * layer embeds first, plus a vtable {kind, forward, destroy}. The base owns:
 *
 *   - parameters: float32 contiguous tensors ("weight", "bias") that training
 *     updates; their gradients accumulate in param->grad (see grad_manager.h);
 *   - buffers: state that is saved but not trained (BatchNorm's running
 *     statistics and num_batches_tracked);
 *   - children: sub-modules in declaration order, each with a key ("0",
 *     "fc", "body") that becomes one segment of dotted state-dict names.
 *
 * Walks (named_parameters, state_dict, ...) visit a module's own parameters,
 * then its buffers, then each child recursively: PyTorch's state_dict order.
 *
 * Errors: td_module_forward prefixes any failure with the layer's kind and key,
 * so the message reads outermost-first and names the path:
 *   "sequential: linear '2': linear: input has 100 features, expected 784
 *    (input shape [32,100])".
 *
 * Ownership: a module owns its parameters, buffers and children;
 * td_module_destroy frees the whole tree. Anything handed out through a
 * `td_tensor **` or a map is a new reference the caller releases; module
 * pointers handed out in lists are borrowed from the tree.
 *
 * The concrete layers and their constructors are in module/layers.h.
 */
#ifndef TD_MODULE_MODULE_H
#define TD_MODULE_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "autodiff/grad_manager.h"
#include "io/tensor_map.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

/* Trees deeper than this are refused when built, so every recursive walk
 * (forward, state_dict) has a bounded stack and key length. */
#define TD_MODULE_MAX_DEPTH 64
/* A child's key: 1 to this many characters from [A-Za-z0-9_-]. */
#define TD_MODULE_MAX_KEY 64

typedef struct td_module td_module;

typedef struct td_module_vtable {
  const char *kind; /* "linear", "conv2d", ...: used in messages */
  /* x borrowed (never NULL); *out a new reference, left NULL on error. */
  td_status (*forward)(td_module *m, td_tensor *x, td_tensor **out);
  /* Frees state the layer keeps beyond the base (NULL if none). The base then
   * frees parameters, buffers, children and the struct itself. */
  void (*destroy)(td_module *m);
  /* The layer's own random generator (Dropout), or NULL when it has none.
   * Not part of the state_dict (PyTorch has no such key); checkpoints save
   * and restore it beside the optimizer so a resumed run draws the same
   * masks (see td_module_rng_state). */
  td_rng *(*rng)(td_module *m);
} td_module_vtable;

typedef struct td_module_tensor {
  const char *name;  /* a string literal of the layer ("weight") */
  td_tensor *tensor; /* one reference owned */
} td_module_tensor;

struct td_module {
  const td_module_vtable *vt;
  bool training;     /* true after construction, as in PyTorch */
  char *key;         /* owned; this module's name in its parent, NULL at the root */
  td_module *parent; /* borrowed; NULL at the root */
  td_module_tensor *params;
  int n_params, cap_params;
  td_module_tensor *buffers;
  int n_buffers, cap_buffers;
  td_module **children; /* each owned */
  int n_children, cap_children;
};

/* ---- using a module -------------------------------------------------- */

/* y = m(x). x borrowed, *out a new reference (NULL on error). Records on the
 * active GradManager like any op. On failure the message is prefixed with
 * "<kind> '<key>': ", or at the root with "<kind>: " unless the message
 * already starts so ("conv2d: expected input [N,C,H,W], got shape [3,32]"). */
td_status td_module_forward(td_module *m, td_tensor *x, td_tensor **out);

/* Frees the module, its parameters, buffers and children. NULL is ignored.
 * Only for a root: a child belongs to its parent. */
void td_module_destroy(td_module *m);

/* Sets `training` on m and every descendant (PyTorch's train(mode)). */
void td_module_train(td_module *m, bool training);
static inline void td_module_eval(td_module *m) { td_module_train(m, false); }

const char *td_module_kind(const td_module *m);

/* Total number of parameter elements (PyTorch's sum(p.numel())). */
int64_t td_module_num_parameters(const td_module *m);

/* Every parameter of the tree in named_parameters order. *params is a new
 * td_alloc'd array of borrowed tensor pointers (free it with td_free); *n its
 * length. With no parameters *params is NULL and *n is 0. */
td_status td_module_parameters(const td_module *m, td_tensor ***params, int *n);

/* Attaches every parameter to gm (in named_parameters order). */
td_status td_module_attach(const td_module *m, td_grad_manager *gm);

/* Dotted name -> the parameter tensor itself (retained: the same handles the
 * optimizer updates). *out is initialised here; free it with
 * td_tensor_map_free. On error *out is empty. */
td_status td_module_named_parameters(const td_module *m, td_tensor_map *out);
/* As named_parameters, for buffers. */
td_status td_module_named_buffers(const td_module *m, td_tensor_map *out);

typedef struct td_named_module {
  char *name;        /* owned; "" for the root in named_modules */
  td_module *module; /* borrowed from the tree */
} td_named_module;

typedef struct td_module_list {
  td_named_module *items;
  int count, cap;
} td_module_list;

void td_module_list_free(td_module_list *list);

/* Every module of the tree, pre-order, the root first with name "".
 * *out is initialised here; free it with td_module_list_free. */
td_status td_module_named_modules(const td_module *m, td_module_list *out);
/* The direct children with their keys. */
td_status td_module_named_children(const td_module *m, td_module_list *out);

/* ---- state dict --------------------------------------------------------- */

/* PyTorch's state_dict: parameters and buffers under dotted keys, in
 * declaration order. Each entry is a new handle sharing the module's storage
 * (like tensor.detach()): later training steps show through, so serialise it
 * before training on. *out is initialised here; free with td_tensor_map_free. */
td_status td_module_state_dict(const td_module *m, td_tensor_map *out);

/* What load_state_dict found. Every string is owned; free with
 * td_load_result_free. A zeroed struct is valid and empty. */
typedef struct td_load_result {
  char **missing_keys; /* the module has them, the dict does not */
  int n_missing;
  char **unexpected_keys; /* the dict has them, the module does not */
  int n_unexpected;
  char **mismatched; /* "0.weight: expected float32 [2,3], got float32 [3,2]" */
  int n_mismatched;
} td_load_result;

void td_load_result_free(td_load_result *r);

/* Copies the dict's values into the existing parameter and buffer storage
 * (td_tensor_copy_, which bumps versions), so optimizers holding the
 * parameters keep working. All-or-nothing: every key is checked first.
 *
 *   strict:  any missing or unexpected key, or any shape/dtype mismatch, is
 *            an INVALID_ARGUMENT error and nothing changes.
 *   !strict: keys present on both sides are loaded; missing and unexpected
 *            keys are only reported. Shape/dtype mismatches are still errors.
 *
 * The message gives the counts, then every offending key (as many as fit).
 * `result` (may be NULL) is initialised here and filled with the complete
 * lists whether or not the load fails; the caller frees it. */
td_status td_module_load_state_dict(td_module *m, const td_tensor_map *state, bool strict,
                                    td_load_result *result);

/* The random generators of the tree's layers (vtable rng), each as a new
 * int64 [4] tensor (a copy of its state) keyed "<prefix><module path>", in
 * named_modules order. *out must be initialised; entries are appended. */
td_status td_module_rng_state(const td_module *m, td_tensor_map *out, const char *prefix);

/* Restores what td_module_rng_state wrote: every generator in the tree must
 * have its key, int64 [4]; keys under prefix that match no generator are
 * errors. All-or-nothing: on error no generator changes. */
td_status td_module_load_rng_state(td_module *m, const td_tensor_map *in, const char *prefix);

/* ---- for layer implementations ---------------------------------------- */

/* A zeroed module of `size` bytes (the layer's struct, base first) with
 * training = true. Returns NULL and raises NO_MEMORY on failure. */
td_module *td_module_alloc(const td_module_vtable *vt, size_t size);

/* Creates a zero-filled float32 parameter named `name` (a string literal) and
 * registers it; *param is a borrowed pointer to it (owned by m). */
td_status td_module_add_parameter(td_module *m, const char *name, int ndim, const int64_t *shape,
                                  td_tensor **param);
/* Registers an existing tensor as a buffer under `name` (a string literal);
 * the module retains it. */
td_status td_module_add_buffer(td_module *m, const char *name, td_tensor *buffer);

/* Appends `child` under `key` (see TD_MODULE_MAX_KEY; unique among m's
 * children; the tree stays within TD_MODULE_MAX_DEPTH). Takes ownership of
 * child and destroys it on failure, except when child already has a parent
 * or is an ancestor of m: then it is refused and left where it is. */
td_status td_module_add_child(td_module *m, const char *key, td_module *child);

#endif
