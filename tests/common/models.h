/* models.h - the test and benchmark model zoo.
 *
 * The workloads of ../shared/anchors/torch_bench.py (mlp, mlp_small, lenet,
 * cnn_bn, resnet_tiny) plus embed_ln (Embedding + LayerNorm + GELU), built
 * from traind modules. tests/parity/train_models.py builds the PyTorch twins
 * with the same module tree, so state_dict keys match one for one.
 */
#ifndef TD_TESTS_MODELS_H
#define TD_TESTS_MODELS_H

#include <stdbool.h>
#include <stdint.h>

#include "module/layers.h"

typedef struct test_model_info {
  int input_ndim;
  int64_t input_shape[TD_MAX_DIMS]; /* including the batch */
  bool int_input;                   /* int64 token ids in [0, vocab) */
  int64_t vocab;
  int64_t classes;
} test_model_info;

/* Names of every workload, NULL-terminated. */
extern const char *const test_model_names[];

/* Builds workload `name` with weights from `seed`. *out is owned by the
 * caller (td_module_destroy). Unknown names are NOT_FOUND. */
td_status test_model_build(const char *name, uint64_t seed, td_module **out,
                           test_model_info *info);

/* A random batch for the model: x (normal, or token ids) and int64 labels in
 * [0, classes). New references. */
td_status test_model_batch(const test_model_info *info, td_rng *rng, td_tensor **x,
                           td_tensor **y);

#endif
