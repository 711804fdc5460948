/* loss.c - LossSpec -> the loss functions of lib/functional/loss.h (spec_compute_loss). */
#include "functional/loss.h"

#include "functional/shape_ops.h"
#include "spec/spec.h"

static const char *kind_name(Traind__V1__LossSpec__Kind kind) {
  switch (kind) {
  case TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY: return "cross_entropy";
  case TRAIND__V1__LOSS_SPEC__KIND__MSE: return "mse";
  case TRAIND__V1__LOSS_SPEC__KIND__L1: return "l1";
  case TRAIND__V1__LOSS_SPEC__KIND__BCE_WITH_LOGITS: return "bce_with_logits";
  case TRAIND__V1__LOSS_SPEC__KIND__NLL: return "nll";
  default: return NULL;
  }
}

static bool class_kind(Traind__V1__LossSpec__Kind kind) {
  return kind == TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY ||
         kind == TRAIND__V1__LOSS_SPEC__KIND__NLL;
}

static td_status class_loss_2d(const Traind__V1__LossSpec *spec, td_reduction r, td_tensor *x,
                               td_tensor *target, td_tensor **loss) {
  if (spec->kind == TRAIND__V1__LOSS_SPEC__KIND__NLL) return td_nll_loss(x, target, r, loss);
  return td_cross_entropy(x, target, r, spec->label_smoothing, loss);
}

/* torch's K-dimensional form: output [N, C, d1..dk] and target [N, d1..dk]
 * are the 2-d loss of output moved to [N*d1*..*dk, C] and the flat target
 * (the mean runs over the same N*d1*..*dk terms, as torch's). */
static td_status class_loss(const Traind__V1__LossSpec *spec, td_reduction r, td_tensor *output,
                            td_tensor *target, td_tensor **loss) {
  if (output->ndim <= 2) return class_loss_2d(spec, r, output, target, loss);
  bool match = target->ndim == output->ndim - 1 && target->shape[0] == output->shape[0];
  for (int i = 1; match && i < target->ndim; i++)
    match = target->shape[i] == output->shape[i + 1];
  if (!match) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "target has shape %s, expected [N, d1, ...] = output %s without dim 1",
                    td_tensor_shape_str(a, target), td_tensor_shape_str(b, output));
  }
  int perm[TD_MAX_DIMS];
  perm[0] = 0;
  for (int i = 1; i < output->ndim - 1; i++)
    perm[i] = i + 1;
  perm[output->ndim - 1] = 1;
  int64_t rows = target->numel, flat_x[2] = {rows, output->shape[1]};
  td_tensor *moved = NULL, *x2 = NULL, *t1 = NULL;
  td_status st = td_permute(output, perm, &moved);
  if (!st) st = td_reshape(moved, 2, flat_x, &x2);
  if (!st) st = td_reshape(target, 1, &rows, &t1);
  if (!st) st = class_loss_2d(spec, r, x2, t1, loss);
  td_tensor_release(moved);
  td_tensor_release(x2);
  td_tensor_release(t1);
  return st;
}

/* BCE's target is a probability; torch does not check, the API promises it. */
static td_status check_probabilities(td_tensor *target) {
  td_tensor *c = NULL;
  td_status st = td_tensor_contiguous(target, &c);
  if (st) return st;
  const float *p = td_tensor_f32(c);
  for (int64_t i = 0; i < c->numel && !st; i++)
    if (!(p[i] >= 0 && p[i] <= 1))
      st = td_error(TD_ERR_INVALID_ARGUMENT,
                    "target element %lld (flat index) is %g, expected a probability in [0, 1]",
                    (long long)i, (double)p[i]);
  td_tensor_release(c);
  return st;
}

static td_status compute(const Traind__V1__LossSpec *spec, td_tensor *output, td_tensor *target,
                         td_tensor **loss) {
  td_reduction r;
  if (spec->reduction == TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN)
    r = TD_REDUCTION_MEAN;
  else if (spec->reduction == TRAIND__V1__LOSS_SPEC__REDUCTION__SUM)
    r = TD_REDUCTION_SUM;
  else
    return td_error(TD_ERR_INVALID_ARGUMENT, "reduction: unknown value %d (expected MEAN or SUM)",
                    (int)spec->reduction);
  float smoothing = spec->label_smoothing;
  if (spec->kind == TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY) {
    if (!(smoothing >= 0 && smoothing <= 1))
      return td_error(TD_ERR_INVALID_ARGUMENT, "label_smoothing: must be in [0, 1], got %g",
                      (double)smoothing);
  } else if (smoothing != 0) {
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "label_smoothing: applies to cross_entropy only, got %g", (double)smoothing);
  }
  if (!target) return td_error(TD_ERR_INVALID_ARGUMENT, "target: is required");
  char s[TD_SHAPE_STR_MAX];
  if (class_kind(spec->kind)) {
    if (target->dtype != TD_INT64)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "target must be INT64 class indices, got %s target %s",
                      td_dtype_name(target->dtype), td_tensor_shape_str(s, target));
    return class_loss(spec, r, output, target, loss);
  }
  if (target->dtype != TD_FLOAT32)
    return td_error(TD_ERR_INVALID_ARGUMENT, "target must be FLOAT32, got %s target %s",
                    td_dtype_name(target->dtype), td_tensor_shape_str(s, target));
  switch (spec->kind) {
  case TRAIND__V1__LOSS_SPEC__KIND__MSE: return td_mse_loss(output, target, r, loss);
  case TRAIND__V1__LOSS_SPEC__KIND__L1: return td_l1_loss(output, target, r, loss);
  default: {
    td_status st = check_probabilities(target);
    return st ? st : td_binary_cross_entropy_with_logits(output, target, r, loss);
  }
  }
}

td_status spec_compute_loss(const Traind__V1__LossSpec *spec, td_tensor *output, td_tensor *target,
                            td_tensor **loss) {
  *loss = NULL;
  if (!spec) return td_error(TD_ERR_INVALID_ARGUMENT, "loss: is required");
  const char *name = kind_name(spec->kind);
  if (!name) {
    if (!spec->has_kind || spec->kind == TRAIND__V1__LOSS_SPEC__KIND__KIND_UNSPECIFIED)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "loss.kind: must be set (CROSS_ENTROPY, MSE, L1, BCE_WITH_LOGITS or NLL)");
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "loss.kind: unknown value %d (this server knows CROSS_ENTROPY, MSE, L1, "
                    "BCE_WITH_LOGITS and NLL)",
                    (int)spec->kind);
  }
  td_status st = compute(spec, output, target, loss);
  if (st) td_error_prefix("loss (%s): ", name);
  return st;
}
