/* apply.c - the op table and td_apply(). */
#include <string.h>

#include "autodiff/tape.h"
#include "core/alloc.h"
#include "core/cancel.h"
#include "functional/op.h"

/* TD_OP_LINKAGE is empty in the finished library: every op must be defined
 * or the link fails. Building one op family alone (while it is being
 * written) can define it as __attribute__((weak)) to leave the rest NULL. */
#ifndef TD_OP_LINKAGE
#define TD_OP_LINKAGE
#endif
#define TD_OP(e, n) extern const td_op_def td_op_##n TD_OP_LINKAGE;
#include "functional/ops.def"
#undef TD_OP

static const td_op_def *const op_table[TD_OP_COUNT] = {
#define TD_OP(e, n) [TD_OP_##e] = &td_op_##n,
#include "functional/ops.def"
#undef TD_OP
};

const td_op_def *td_op_get(td_op op) {
  if ((int)op < 0 || op >= TD_OP_COUNT) return NULL;
  return op_table[op]; /* NULL only in a partial (weak) build */
}

void td_op_ctx_free_saved(td_op_ctx *ctx) {
  if (ctx->saved) {
    if (ctx->saved_free)
      ctx->saved_free(ctx->saved);
    else
      td_free(ctx->saved);
    ctx->saved = NULL;
  }
  for (int i = 0; i < TD_OP_MAX_SAVED; i++) TD_RELEASE(ctx->saved_tensors[i]);
}

td_status td_op_save(td_op_ctx *ctx, td_tensor *t) {
  for (int i = 0; i < TD_OP_MAX_SAVED; i++) {
    if (!ctx->saved_tensors[i]) {
      ctx->saved_tensors[i] = td_tensor_retain(t);
      return TD_OK;
    }
  }
  return td_error(TD_ERR_INTERNAL, "%s: more than %d saved tensors", ctx->def->name,
                  TD_OP_MAX_SAVED);
}

td_status td_op_check_dtype(const td_op_ctx *ctx, int input, td_dtype dtype, const char *role) {
  const td_tensor *t = ctx->inputs[input];
  if (t->dtype != dtype)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected %s %s, got %s", ctx->def->name,
                    td_dtype_name(dtype), role, td_dtype_name(t->dtype));
  return TD_OK;
}

td_status td_op_check_ndim(const td_op_ctx *ctx, int input, int min_ndim, int max_ndim,
                           const char *role) {
  const td_tensor *t = ctx->inputs[input];
  if (t->ndim < min_ndim || t->ndim > max_ndim) {
    char s[TD_SHAPE_STR_MAX];
    if (min_ndim == max_ndim)
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected a %d-d %s, got shape %s",
                      ctx->def->name, min_ndim, role, td_tensor_shape_str(s, t));
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected a %d-d to %d-d %s, got shape %s",
                    ctx->def->name, min_ndim, max_ndim, role, td_tensor_shape_str(s, t));
  }
  return TD_OK;
}

td_status td_apply(td_op op, const void *params, td_tensor *const *inputs, int n_inputs,
                   td_tensor **out) {
  *out = NULL;
  const td_op_def *def = td_op_get(op);
  if (!def) return td_error(TD_ERR_INTERNAL, "apply: op %d is not built", (int)op);
  if (def->n_inputs >= 0 && n_inputs != def->n_inputs)
    return td_error(TD_ERR_INTERNAL, "%s: takes %d inputs, got %d", def->name, def->n_inputs,
                    n_inputs);
  if (n_inputs < 0 || (n_inputs > 0 && !inputs))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: no inputs", def->name);
  td_status cancelled = td_cancel_poll(); /* every op is a boundary (cancel.h) */
  if (cancelled) return cancelled;

  td_op_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.def = def;
  ctx.params = params;
  ctx.n_inputs = n_inputs;
  ctx.inputs = inputs;

  td_grad_manager *gm = def->backward ? td_tape_active() : NULL;
  ctx.recording = gm && td_tape_needs_record(gm, &ctx);

  td_status st = def->forward(&ctx, out);
  if (st) {
    td_op_ctx_free_saved(&ctx);
    TD_RELEASE(*out);
    return st;
  }
  if (!ctx.recording) {
    td_op_ctx_free_saved(&ctx);
    return TD_OK;
  }
  st = td_tape_push(gm, &ctx, *out);
  if (st) {
    td_op_ctx_free_saved(&ctx);
    TD_RELEASE(*out);
  }
  return st;
}
