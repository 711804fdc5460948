/* op.h - the op table and td_apply(), the one entry point every op goes through.
 *
 * As in ggml's op table and MegEngine's builtin op + apply(): an op is an enum
 * value with a row {name, forward, backward} in one table. The functional API
 * (td_add, td_conv2d, ...) is thin wrappers that fill a params struct and call
 * td_apply(). td_apply runs forward and, when a GradManager is recording on
 * this thread and some input is tracked by it, appends a tape entry holding
 * what backward needs: a copy of the params, the saved tensors, and whatever
 * the forward stashed in ctx->saved.
 *
 * Writing an op:
 *   forward(ctx, &out)  validates inputs (naming the op and shapes in the
 *                       message), computes a new output. If ctx->recording,
 *                       it may stash extra state for backward (ctx->saved,
 *                       td_op_save()); otherwise it saves nothing.
 *   backward(ctx, gy, gx) writes a new reference into gx[i] for every i with
 *                       ctx->needs_input_grad[i], of exactly input i's shape.
 *                       It reads inputs/outputs only if the op's `saves`
 *                       flags asked the tape to keep them; shapes are always
 *                       in ctx->input_meta. It may call td_apply-based
 *                       functions: nothing records during backward.
 *
 * Params are copied byte-for-byte into the tape (params_size). Pointer members
 * (an RNG, running statistics) are for forward only: backward must not follow
 * them, because by then they may be gone.
 */
#ifndef TD_FUNCTIONAL_OP_H
#define TD_FUNCTIONAL_OP_H

#include <stdbool.h>

#include "tensor/tensor.h"

typedef enum td_op {
#define TD_OP(e, n) TD_OP_##e,
#include "functional/ops.def"
#undef TD_OP
  TD_OP_COUNT
} td_op;

/* What the tape keeps alive for backward. */
enum {
  TD_SAVE_NONE = 0,
  TD_SAVE_INPUTS = 1 << 0,
  TD_SAVE_OUTPUT = 1 << 1,
};

#define TD_OP_MAX_SAVED 4

typedef struct td_tensor_meta {
  td_dtype dtype;
  int ndim;
  int64_t shape[TD_MAX_DIMS];
} td_tensor_meta;

typedef struct td_op_def td_op_def;

typedef struct td_op_ctx {
  const td_op_def *def;
  const void *params;          /* the op's params struct (a copy, in backward) */
  int n_inputs;
  /* forward: the caller's inputs (borrowed; optional inputs may be NULL).
   * backward: the saved inputs if def->saves has TD_SAVE_INPUTS, else NULLs. */
  td_tensor *const *inputs;
  td_tensor *output;           /* backward: the saved output if TD_SAVE_OUTPUT */
  const td_tensor_meta *input_meta; /* backward: every input's dtype and shape */
  const bool *needs_input_grad;     /* backward: which gx[i] to produce */
  bool recording;              /* forward: a backward will follow; save for it */
  /* Op-private state for backward, freed with saved_free (or td_free if NULL). */
  void *saved;
  void (*saved_free)(void *saved);
  td_tensor *saved_tensors[TD_OP_MAX_SAVED]; /* released with the entry */
} td_op_ctx;

typedef td_status (*td_op_forward_fn)(td_op_ctx *ctx, td_tensor **out);
typedef td_status (*td_op_backward_fn)(td_op_ctx *ctx, td_tensor *grad_output,
                                       td_tensor **grad_inputs);

struct td_op_def {
  const char *name;
  int n_inputs;          /* -1: variadic (concat) */
  size_t params_size;    /* bytes copied into the tape; 0 for no params */
  unsigned saves;        /* TD_SAVE_* */
  td_op_forward_fn forward;
  td_op_backward_fn backward; /* NULL: not differentiable (argmax) */
};

/* The table row for an op, or NULL for an invalid value. */
const td_op_def *td_op_get(td_op op);

/* Runs `op` on inputs and returns a new reference in *out. params points at
 * the op's params struct (NULL if it has none). On error *out is NULL, the
 * message names the op and the shapes, and nothing is recorded. */
td_status td_apply(td_op op, const void *params, td_tensor *const *inputs, int n_inputs,
                   td_tensor **out);

/* For op implementations: keep `t` alive for backward (retained). */
td_status td_op_save(td_op_ctx *ctx, td_tensor *t);

/* For op implementations: the common input checks, raising a message that
 * names the op ("relu: expected float32 input, got int64"). */
td_status td_op_check_dtype(const td_op_ctx *ctx, int input, td_dtype dtype, const char *role);
td_status td_op_check_ndim(const td_op_ctx *ctx, int input, int min_ndim, int max_ndim,
                           const char *role);

#endif
