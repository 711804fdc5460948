/* spec.h - protobuf messages <-> engine objects.
 *
 * The only place that knows both the API (proto/traind/v1/trainer.proto, as
 * protoc-c structs) and libtraind. Everything a client sends is validated
 * here before the engine sees it, and every error names the field the client
 * wrote, as a path from the request:
 *
 *   "model.sequential.modules[2].linear.in_features: must be > 0, got 0"
 *   "input: data has 396 bytes, shape [3,33] float32 needs 396 * ... "
 *   "optimizer.adam.beta1: must be in [0, 1), got 1.5"
 *
 * Statuses: a bad value is TD_ERR_INVALID_ARGUMENT; going over a server
 * limit (parameters, tensor elements) is TD_ERR_NO_MEMORY, which the service
 * layer reports as RESOURCE_EXHAUSTED.
 *
 * Ownership: nothing here keeps a pointer into a protobuf message after it
 * returns; engine objects handed out through `**out` belong to the caller.
 */
#ifndef TRAIND_SPEC_SPEC_H
#define TRAIND_SPEC_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "module/module.h"
#include "optimizer/optimizer.h"
#include "tensor/tensor.h"
#include "traind/v1/trainer.pb-c.h"

/* Server limits that apply to what a client may build or send (<= 0, or a
 * NULL limits pointer: no limit). */
typedef struct spec_limits {
  int64_t max_parameters;      /* total parameter elements of one model */
  int64_t max_tensor_elements; /* elements of one tensor in a request */
} spec_limits;

/* ---- models ------------------------------------------------------------- */

/* Builds the module tree `spec` describes, initialised from a generator
 * seeded with `seed` (the same spec and seed give the same weights, and the
 * same weights as the in-process engine given the same td_rng). Refuses a
 * missing or unknown kind, bad hyperparameters (the layer constructors'
 * checks, prefixed with the field path), trees deeper than
 * TD_MODULE_MAX_DEPTH, and more than limits->max_parameters parameter
 * elements (checked before any weight is allocated). */
td_status spec_build_model(const Traind__V1__Module *spec, uint64_t seed, const spec_limits *limits,
                           td_module **out);

/* ---- optimizers ----------------------------------------------------------- */

/* What an OptimizerSpec becomes: the optimizer over every parameter of the
 * model (named_parameters order, one param group), with its schedule set,
 * and the clipping norm Step applies first (0: none). */
typedef struct spec_optimizer {
  td_optimizer *optimizer; /* owned by the caller (td_optimizer_destroy) */
  double grad_clip_norm;
} spec_optimizer;

/* Unset hyperparameters take torch's defaults; SGD's lr is required. A
 * model without parameters cannot have an optimizer (INVALID_ARGUMENT). */
td_status spec_build_optimizer(const Traind__V1__OptimizerSpec *spec, td_module *model,
                               spec_optimizer *out);

/* ---- losses ----------------------------------------------------------------- */

/* The scalar loss of (output, target) for `spec` (float32 []), a new
 * reference; recorded on the active GradManager like any op. Checks the
 * kind, the target's dtype against the kind (INT64 class indices for
 * CROSS_ENTROPY and NLL, FLOAT32 otherwise) and shapes, and reports
 * out-of-range classes as TD_ERR_OUT_OF_RANGE; messages start with
 * "loss (cross_entropy): ". */
td_status spec_compute_loss(const Traind__V1__LossSpec *spec, td_tensor *output, td_tensor *target,
                            td_tensor **loss);

/* ---- tensors -------------------------------------------------------------- */

/* A new contiguous tensor holding a copy of t's data. `field` names the
 * request field in messages ("input", "target", "grad_output"). Refuses: a
 * NULL t ("input: is required"), an unspecified or unknown dtype, more than
 * TD_MAX_DIMS dims, a negative dim, an element count that overflows or
 * exceeds limits->max_tensor_elements, data whose length is not
 * numel * itemsize, and NaN or Inf in float32 data (named by flat index). */
td_status spec_tensor_from_proto(const Traind__V1__Tensor *t, const char *field,
                                 const spec_limits *limits, td_tensor **out);

/* Fills *out (initialised here with TRAIND__V1__TENSOR__INIT) from t, copying
 * the data into a new malloc'd buffer that *out owns: release it with
 * spec_tensor_proto_clear. t may be strided. */
td_status spec_tensor_to_proto(const td_tensor *t, Traind__V1__Tensor *out);
void spec_tensor_proto_clear(Traind__V1__Tensor *t);

/* TD_FLOAT32 -> TRAIND__V1__DTYPE__FLOAT32, ...; DTYPE_UNSPECIFIED for a
 * dtype the API does not carry. */
Traind__V1__DType spec_dtype_to_proto(td_dtype dtype);

#endif
