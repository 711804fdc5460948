/* shape_ops.c - reshape, permute, concat, broadcast_to and diag, and the wrappers over them. */
#include "functional/shape_ops.h"

#include <string.h>

#include "functional/op.h"

static td_status require_input(const td_op_ctx *ctx, int i) {
  if (!ctx->inputs[i])
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: input %d is NULL", ctx->def->name, i);
  return TD_OK;
}

/* ---- reshape --------------------------------------------------------------- */

/* Resolves one -1 extent of `shape` against x's element count, raising
 * messages that name both shapes and both counts. */
static td_status resolve_shape(const char *what, const td_tensor *x, int ndim, const int64_t *shape,
                               int64_t *resolved) {
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  if (ndim < 0 || ndim > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: %d dimensions, at most %d are supported", what,
                    ndim, TD_MAX_DIMS);
  const int64_t limit = INT64_MAX / 8; /* as td_shape_check: bytes must fit */
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    resolved[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0)
        return td_error(TD_ERR_INVALID_ARGUMENT, "%s: only one dimension can be -1 in %s", what,
                        td_shape_str(b, sizeof b, ndim, shape));
      infer = i;
      continue;
    }
    if (shape[i] < 0)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: target shape %s has a negative extent at dim %d", what,
                      td_shape_str(b, sizeof b, ndim, shape), i);
    if (shape[i] != 0 && known > limit / shape[i])
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: target shape %s has too many elements (overflow)", what,
                      td_shape_str(b, sizeof b, ndim, shape));
    known *= shape[i];
  }
  if (infer >= 0) {
    if (known == 0 || x->numel % known != 0)
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: cannot reshape %s (%lld elements) to %s", what,
                      td_tensor_shape_str(a, x), (long long)x->numel,
                      td_shape_str(b, sizeof b, ndim, shape));
    resolved[infer] = x->numel / known;
    known = x->numel;
  }
  if (known != x->numel)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: cannot reshape %s (%lld elements) to %s (%lld elements)", what,
                    td_tensor_shape_str(a, x), (long long)x->numel,
                    td_shape_str(b, sizeof b, ndim, shape), (long long)known);
  return TD_OK;
}

/* A view of x with a new shape of equal element count: shares storage when
 * x is contiguous, else views a contiguous copy. */
static td_status view_as(td_tensor *x, int ndim, const int64_t *shape, td_tensor **out) {
  td_tensor *c;
  td_status st = td_tensor_contiguous(x, &c);
  if (st) return st;
  st = td_tensor_view(c, ndim, shape, out);
  td_tensor_release(c);
  return st;
}

static td_status reshape_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_shape_params *p = ctx->params;
  td_status st = require_input(ctx, 0);
  if (st) return st;
  int64_t shape[TD_MAX_DIMS];
  if ((st = resolve_shape("reshape", ctx->inputs[0], p->ndim, p->shape, shape))) return st;
  return view_as(ctx->inputs[0], p->ndim, shape, out);
}

static td_status reshape_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[0];
  return view_as(gy, m->ndim, m->shape, &gx[0]);
}

const td_op_def td_op_reshape = {
    "reshape", 1, sizeof(td_shape_params), TD_SAVE_NONE, reshape_forward, reshape_backward};

/* flatten, squeeze and expand_dims compute the target shape and reshape too. */
static td_status reshape_to(td_tensor *x, int ndim, const int64_t *shape, td_tensor **out) {
  td_shape_params p;
  memset(&p, 0, sizeof p);
  p.ndim = ndim;
  if (ndim) memcpy(p.shape, shape, sizeof(int64_t) * (size_t)ndim);
  return td_apply(TD_OP_RESHAPE, &p, &x, 1, out);
}

td_status td_reshape(td_tensor *x, int ndim, const int64_t *shape, td_tensor **out) {
  *out = NULL;
  if (ndim < 0 || ndim > TD_MAX_DIMS || (ndim > 0 && !shape))
    return td_error(TD_ERR_INVALID_ARGUMENT, "reshape: %d dimensions, expected 0 to %d", ndim,
                    TD_MAX_DIMS);
  return reshape_to(x, ndim, shape, out);
}

static td_status null_input(const char *what) {
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s: input is NULL", what);
}

td_status td_flatten(td_tensor *x, int start_dim, int end_dim, td_tensor **out) {
  *out = NULL;
  if (!x) return null_input("flatten");
  int s, e;
  td_status st = td_axis_normalize("flatten", start_dim, x->ndim, &s);
  if (st) return st;
  if ((st = td_axis_normalize("flatten", end_dim, x->ndim, &e))) return st;
  if (s > e)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "flatten: start_dim %d comes after end_dim %d for a %d-d input", start_dim,
                    end_dim, x->ndim);
  if (x->ndim == 0) { /* a scalar flattens to [1], as torch.flatten */
    int64_t one = 1;
    return reshape_to(x, 1, &one, out);
  }
  int64_t shape[TD_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < s; i++)
    shape[nd++] = x->shape[i];
  int64_t merged = 1;
  for (int i = s; i <= e; i++)
    merged *= x->shape[i];
  shape[nd++] = merged;
  for (int i = e + 1; i < x->ndim; i++)
    shape[nd++] = x->shape[i];
  return reshape_to(x, nd, shape, out);
}

td_status td_squeeze(td_tensor *x, const int *axes, int naxes, td_tensor **out) {
  *out = NULL;
  if (!x) return null_input("squeeze");
  if (naxes < 0 || naxes > TD_MAX_DIMS || (naxes > 0 && !axes))
    return td_error(TD_ERR_INVALID_ARGUMENT, "squeeze: %d axes given, expected 0 to %d", naxes,
                    TD_MAX_DIMS);
  bool drop[TD_MAX_DIMS] = {false};
  char s[TD_SHAPE_STR_MAX];
  for (int i = 0; i < naxes; i++) {
    int a;
    td_status st = td_axis_normalize("squeeze", axes[i], x->ndim, &a);
    if (st) return st;
    if (x->ndim == 0) continue; /* squeezing a scalar's axis 0 is a no-op */
    if (drop[a])
      return td_error(TD_ERR_INVALID_ARGUMENT, "squeeze: dim %d is listed twice", axes[i]);
    if (x->shape[a] != 1)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "squeeze: dim %d has extent %lld; only size-1 dims can be squeezed "
                      "(input %s)",
                      axes[i], (long long)x->shape[a], td_tensor_shape_str(s, x));
    drop[a] = true;
  }
  if (naxes == 0)
    for (int i = 0; i < x->ndim; i++)
      drop[i] = x->shape[i] == 1;
  int64_t shape[TD_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (!drop[i]) shape[nd++] = x->shape[i];
  return reshape_to(x, nd, shape, out);
}

td_status td_expand_dims(td_tensor *x, int axis, td_tensor **out) {
  *out = NULL;
  if (!x) return null_input("expand_dims");
  if (x->ndim >= TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "expand_dims: the input already has %d dimensions, the most supported",
                    x->ndim);
  int a;
  /* Valid positions are [-ndim-1, ndim]: normalise against the output rank. */
  td_status st = td_axis_normalize("expand_dims", axis, x->ndim + 1, &a);
  if (st) return st;
  int64_t shape[TD_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < a; i++)
    shape[nd++] = x->shape[i];
  shape[nd++] = 1;
  for (int i = a; i < x->ndim; i++)
    shape[nd++] = x->shape[i];
  return reshape_to(x, nd, shape, out);
}

/* ---- permute --------------------------------------------------------------- */

static td_status permute_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_shape_params *p = ctx->params;
  td_status st = require_input(ctx, 0);
  if (st) return st;
  td_tensor *x = ctx->inputs[0];
  if (p->ndim != x->ndim) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT, "permute: %d axes given for input %s (%d-d)", p->ndim,
                    td_tensor_shape_str(s, x), x->ndim);
  }
  return td_tensor_permute(x, p->perm, out);
}

static td_status permute_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_shape_params *p = ctx->params;
  int inverse[TD_MAX_DIMS];
  for (int i = 0; i < p->ndim; i++) {
    int a = p->perm[i] < 0 ? p->perm[i] + p->ndim : p->perm[i]; /* validated in forward */
    inverse[a] = i;
  }
  return td_tensor_permute(gy, inverse, &gx[0]);
}

const td_op_def td_op_permute = {
    "permute", 1, sizeof(td_shape_params), TD_SAVE_NONE, permute_forward, permute_backward};

td_status td_permute(td_tensor *x, const int *perm, td_tensor **out) {
  *out = NULL;
  if (!x) return null_input("permute");
  if (x->ndim > 0 && !perm)
    return td_error(TD_ERR_INVALID_ARGUMENT, "permute: no axes given for a %d-d input", x->ndim);
  td_shape_params p;
  memset(&p, 0, sizeof p);
  p.ndim = x->ndim;
  for (int i = 0; i < x->ndim; i++)
    p.perm[i] = perm[i];
  return td_apply(TD_OP_PERMUTE, &p, &x, 1, out);
}

td_status td_transpose(td_tensor *x, int dim0, int dim1, td_tensor **out) {
  *out = NULL;
  if (!x) return null_input("transpose");
  int a, b;
  td_status st = td_axis_normalize("transpose", dim0, x->ndim, &a);
  if (st) return st;
  if ((st = td_axis_normalize("transpose", dim1, x->ndim, &b))) return st;
  td_shape_params p;
  memset(&p, 0, sizeof p);
  p.ndim = x->ndim;
  for (int i = 0; i < x->ndim; i++)
    p.perm[i] = i;
  if (x->ndim > 0) {
    p.perm[a] = b;
    p.perm[b] = a;
  }
  return td_apply(TD_OP_PERMUTE, &p, &x, 1, out);
}

/* ---- concat ---------------------------------------------------------------- */

static td_status concat_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_shape_params *p = ctx->params;
  int n = ctx->n_inputs;
  if (n < 1) return td_error(TD_ERR_INVALID_ARGUMENT, "concat: expected at least one tensor");
  for (int i = 0; i < n; i++) {
    td_status st = require_input(ctx, i);
    if (st) return st;
  }
  const td_tensor *first = ctx->inputs[0];
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  if (first->ndim == 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "concat: zero-dimensional tensors cannot be joined");
  int axis;
  td_status st = td_axis_normalize("concat", p->axis, first->ndim, &axis);
  if (st) return st;
  int64_t shape[TD_MAX_DIMS];
  memcpy(shape, first->shape, sizeof shape);
  shape[axis] = 0;
  for (int i = 0; i < n; i++) {
    const td_tensor *t = ctx->inputs[i];
    if (t->dtype != first->dtype)
      return td_error(TD_ERR_INVALID_ARGUMENT, "concat: input %d is %s, input 0 is %s", i,
                      td_dtype_name(t->dtype), td_dtype_name(first->dtype));
    if (t->ndim != first->ndim)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "concat: input %d has shape %s, input 0 has shape %s (different ranks)", i,
                      td_tensor_shape_str(a, t), td_tensor_shape_str(b, first));
    for (int d = 0; d < t->ndim; d++)
      if (d != axis && t->shape[d] != first->shape[d])
        return td_error(TD_ERR_INVALID_ARGUMENT,
                        "concat: input %d has shape %s, input 0 has shape %s; they must match "
                        "except along axis %d (dim %d: %lld vs %lld)",
                        i, td_tensor_shape_str(a, t), td_tensor_shape_str(b, first), axis, d,
                        (long long)t->shape[d], (long long)first->shape[d]);
    shape[axis] += t->shape[axis];
  }
  td_tensor *y;
  if ((st = td_tensor_empty(first->dtype, first->ndim, shape, &y))) return st;
  /* Each input goes into its slab of y; copy_ walks strided inputs and turns
   * contiguous rows into memcpy. */
  int64_t start = 0;
  for (int i = 0; i < n && !st; i++) {
    td_tensor *slab;
    int64_t len = ctx->inputs[i]->shape[axis];
    if ((st = td_tensor_slice(y, axis, start, start + len, 1, &slab))) break;
    st = td_tensor_copy_(slab, ctx->inputs[i]);
    td_tensor_release(slab);
    start += len;
  }
  if (st) {
    td_tensor_release(y);
    return st;
  }
  *out = y;
  return TD_OK;
}

static td_status concat_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_shape_params *p = ctx->params;
  int axis = p->axis < 0 ? p->axis + gy->ndim : p->axis;
  int64_t start = 0;
  for (int i = 0; i < ctx->n_inputs; i++) {
    int64_t len = ctx->input_meta[i].shape[axis];
    if (ctx->needs_input_grad[i]) {
      td_status st = td_tensor_slice(gy, axis, start, start + len, 1, &gx[i]);
      if (st) return st;
    }
    start += len;
  }
  return TD_OK;
}

const td_op_def td_op_concat = {
    "concat", -1, sizeof(td_shape_params), TD_SAVE_NONE, concat_forward, concat_backward};

td_status td_concat(td_tensor *const *xs, int n, int axis, td_tensor **out) {
  *out = NULL;
  if (n < 1 || !xs)
    return td_error(TD_ERR_INVALID_ARGUMENT, "concat: expected at least one tensor, got %d", n);
  td_shape_params p;
  memset(&p, 0, sizeof p);
  p.axis = axis;
  return td_apply(TD_OP_CONCAT, &p, xs, n, out);
}

/* ---- broadcast_to ---------------------------------------------------------- */

static td_status broadcast_to_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_shape_params *p = ctx->params;
  td_status st = require_input(ctx, 0);
  if (st) return st;
  return td_tensor_expand(ctx->inputs[0], p->ndim, p->shape, out);
}

static td_status broadcast_to_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[0];
  return td_tensor_sum_to_shape(gy, m->ndim, m->shape, &gx[0]);
}

const td_op_def td_op_broadcast_to = {"broadcast_to",          1,
                                      sizeof(td_shape_params), TD_SAVE_NONE,
                                      broadcast_to_forward,    broadcast_to_backward};

td_status td_broadcast_to(td_tensor *x, int ndim, const int64_t *shape, td_tensor **out) {
  *out = NULL;
  if (ndim < 0 || ndim > TD_MAX_DIMS || (ndim > 0 && !shape))
    return td_error(TD_ERR_INVALID_ARGUMENT, "broadcast_to: %d dimensions, expected 0 to %d", ndim,
                    TD_MAX_DIMS);
  td_shape_params p;
  memset(&p, 0, sizeof p);
  p.ndim = ndim;
  if (ndim) memcpy(p.shape, shape, sizeof(int64_t) * (size_t)ndim);
  return td_apply(TD_OP_BROADCAST_TO, &p, &x, 1, out);
}

/* ---- diag ------------------------------------------------------------------ */

/* dst[i * dst_step] = src[i * src_step] for n elements of `size` bytes. */
static void copy_elements(void *dst, int64_t dst_step, const void *src, int64_t src_step, int64_t n,
                          size_t size) {
  if (size == 8) {
    int64_t *d = dst;
    const int64_t *s = src;
    for (int64_t i = 0; i < n; i++)
      d[i * dst_step] = s[i * src_step];
  } else {
    int32_t *d = dst;
    const int32_t *s = src;
    for (int64_t i = 0; i < n; i++)
      d[i * dst_step] = s[i * src_step];
  }
}

/* 1-d [n] -> zero [n,n] with it on the diagonal; 2-d [n,m] -> its diagonal,
 * for any view and any 4- or 8-byte dtype. */
static td_status diag_of(const td_tensor *x, td_tensor **out) {
  size_t size = td_dtype_size(x->dtype);
  const char *base = (const char *)x->storage->data + (size_t)x->offset * size;
  td_tensor *y;
  td_status st;
  if (x->ndim == 1) {
    int64_t n = x->shape[0], shape[2] = {n, n};
    if ((st = td_tensor_zeros(x->dtype, 2, shape, &y))) return st;
    copy_elements(td_tensor_data(y), n + 1, base, x->strides[0], n, size);
  } else {
    int64_t n = x->shape[0] < x->shape[1] ? x->shape[0] : x->shape[1];
    if ((st = td_tensor_empty(x->dtype, 1, &n, &y))) return st;
    copy_elements(td_tensor_data(y), 1, base, x->strides[0] + x->strides[1], n, size);
  }
  *out = y;
  return TD_OK;
}

static td_status diag_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st = require_input(ctx, 0);
  if (st) return st;
  if ((st = td_op_check_ndim(ctx, 0, 1, 2, "input"))) return st;
  return diag_of(ctx->inputs[0], out);
}

static td_status diag_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[0];
  if (m->ndim == 1) return diag_of(gy, &gx[0]); /* the diagonal of gy [n,n] */
  /* 2-d input: gy [min(n,m)] goes onto the diagonal of a zero [n,m]. */
  td_tensor *g;
  td_status st = td_tensor_zeros(TD_FLOAT32, 2, m->shape, &g);
  if (st) return st;
  copy_elements(td_tensor_f32(g), m->shape[1] + 1, td_tensor_f32(gy), gy->strides[0], gy->shape[0],
                sizeof(float));
  gx[0] = g;
  return TD_OK;
}

const td_op_def td_op_diag = {"diag", 1, 0, TD_SAVE_NONE, diag_forward, diag_backward};

td_status td_diag(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_DIAG, NULL, &x, 1, out); }
