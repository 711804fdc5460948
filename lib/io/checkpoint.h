/* checkpoint.h - a model (and optionally its optimizer) as one safetensors file.
 *
 * The model's state_dict goes under its PyTorch keys, so a checkpoint saved
 * without the optimizer loads into the same architecture in PyTorch with
 * load_state_dict(strict=True) as it is. With the optimizer, its state goes
 * under the TD_CHECKPOINT_OPTIMIZER_PREFIX ("optimizer/"; '/' never appears
 * in a module key) together with its step count and LR schedule position, so
 * a run resumed from the file continues exactly, bit for bit. Layers that
 * draw random numbers (Dropout) keep their generators' states under
 * TD_CHECKPOINT_RNG_PREFIX ("rng/"), for the same reason. A PyTorch user
 * drops both with
 *   {k: v for k, v in sd.items() if not k.startswith(("optimizer/", "rng/"))}.
 *
 * Loading is all-or-nothing across model and optimizer: on any error neither
 * changes. Ownership: nothing is kept; the caller owns everything passed in.
 */
#ifndef TD_IO_CHECKPOINT_H
#define TD_IO_CHECKPOINT_H

#include <stdbool.h>

#include "io/tensor_map.h"
#include "module/module.h"
#include "optimizer/optimizer.h"

#define TD_CHECKPOINT_OPTIMIZER_PREFIX "optimizer/"
#define TD_CHECKPOINT_RNG_PREFIX "rng/"

/* Fills *out (initialised here; td_tensor_map_free) with the model's
 * state_dict, its layers' generator states and, when opt is non-NULL, the
 * optimizer's state. The model and optimizer tensors share live storage:
 * serialise before the next training step. */
td_status td_checkpoint_state(const td_module *model, const td_optimizer *opt, td_tensor_map *out);

/* Loads `state` into the model (strict or not, as td_module_load_state_dict,
 * ignoring the optimizer's and generators' keys), the generators (when the
 * file has any "rng/" key: a file from PyTorch has none, and then they keep
 * their state) and, when opt is non-NULL, the optimizer (its keys must then
 * be present). result may be NULL. */
td_status td_checkpoint_load_state(td_module *model, td_optimizer *opt, const td_tensor_map *state,
                                   bool strict, td_load_result *result);

/* The same through a file, written atomically (temp file, fsync, rename). */
td_status td_checkpoint_save(const td_module *model, const td_optimizer *opt, const char *path);
td_status td_checkpoint_load(td_module *model, td_optimizer *opt, const char *path, bool strict,
                             td_load_result *result);

#endif
