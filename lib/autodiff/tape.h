/* tape.h - the interface between td_apply() and the active GradManager.
 * Internal to libtraind: only lib/functional/apply.c uses it. */
#ifndef TD_AUTODIFF_TAPE_H
#define TD_AUTODIFF_TAPE_H

#include "autodiff/grad_manager.h"
#include "functional/op.h"

/* The manager recording on this thread, or NULL. */
td_grad_manager *td_tape_active(void);

/* Whether any of ctx's inputs is tracked by gm (so the op must be recorded). */
bool td_tape_needs_record(const td_grad_manager *gm, const td_op_ctx *ctx);

/* Appends an entry for a finished forward: copies params, retains what
 * def->saves asks for plus ctx->saved_tensors, takes ownership of ctx->saved,
 * and marks `out` as tracked. On failure nothing is appended and ctx's saved
 * state is still the caller's to free. */
td_status td_tape_push(td_grad_manager *gm, td_op_ctx *ctx, td_tensor *out);

/* Frees what a forward stashed in ctx (for forwards that are not recorded). */
void td_op_ctx_free_saved(td_op_ctx *ctx);

#endif
