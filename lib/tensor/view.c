/* view.c - views that share storage: reshape, permute, slice, expand. */
#include <string.h>

#include "core/alloc.h"
#include "tensor/tensor.h"

/* A new handle over t's storage with the given geometry. */
static td_status make_view(td_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                           int64_t offset, td_tensor **out) {
  td_tensor *v = td_alloc(sizeof *v, "tensor view");
  if (!v) return TD_ERR_NO_MEMORY;
  memset(v, 0, sizeof *v);
  atomic_init(&v->refcount, 1);
  v->dtype = t->dtype;
  v->ndim = ndim;
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    v->shape[i] = shape[i];
    v->strides[i] = strides[i];
    numel *= shape[i];
  }
  v->numel = numel;
  v->offset = offset;
  v->storage = t->storage;
  atomic_fetch_add(&t->storage->refcount, 1);
  v->tape_slot = -1;
  *out = v;
  return TD_OK;
}

td_status td_tensor_view(td_tensor *t, int ndim, const int64_t *shape, td_tensor **out) {
  *out = NULL;
  int64_t resolved[TD_MAX_DIMS];
  if (ndim < 0 || ndim > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "reshape: %d dimensions, at most %d are supported",
                    ndim, TD_MAX_DIMS);
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    resolved[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0)
        return td_error(TD_ERR_INVALID_ARGUMENT, "reshape: only one dimension can be -1");
      infer = i;
      continue;
    }
    if (shape[i] < 0) {
      char s[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT, "reshape: invalid target shape %s",
                      td_shape_str(s, sizeof s, ndim, shape));
    }
    if (shape[i] != 0 && known > (INT64_MAX / 8) / shape[i]) {
      char s[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT, "reshape: target shape %s overflows",
                      td_shape_str(s, sizeof s, ndim, shape));
    }
    known *= shape[i];
  }
  if (infer >= 0) {
    if (known == 0 || t->numel % known != 0) {
      char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT, "reshape: cannot reshape %s (%lld elements) to %s",
                      td_tensor_shape_str(a, t), (long long)t->numel,
                      td_shape_str(b, sizeof b, ndim, shape));
    }
    resolved[infer] = t->numel / known;
    known = t->numel;
  }
  if (known != t->numel) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "reshape: cannot reshape %s (%lld elements) to %s (%lld elements)",
                    td_tensor_shape_str(a, t), (long long)t->numel,
                    td_shape_str(b, sizeof b, ndim, shape), (long long)known);
  }
  if (!td_tensor_is_contiguous(t))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "view: the input is not contiguous; use reshape, which copies");
  int64_t strides[TD_MAX_DIMS];
  td_contiguous_strides(ndim, resolved, strides);
  return make_view(t, ndim, resolved, strides, t->offset, out);
}

td_status td_tensor_permute(td_tensor *t, const int *perm, td_tensor **out) {
  *out = NULL;
  int64_t shape[TD_MAX_DIMS], strides[TD_MAX_DIMS];
  bool seen[TD_MAX_DIMS] = {false};
  for (int i = 0; i < t->ndim; i++) {
    int p;
    td_status st = td_axis_normalize("permute", perm[i], t->ndim, &p);
    if (st) return st;
    if (seen[p])
      return td_error(TD_ERR_INVALID_ARGUMENT, "permute: dimension %d appears twice", perm[i]);
    seen[p] = true;
    shape[i] = t->shape[p];
    strides[i] = t->strides[p];
  }
  return make_view(t, t->ndim, shape, strides, t->offset, out);
}

td_status td_tensor_transpose(td_tensor *t, int dim0, int dim1, td_tensor **out) {
  *out = NULL;
  int a, b;
  td_status st = td_axis_normalize("transpose", dim0, t->ndim, &a);
  if (st) return st;
  if ((st = td_axis_normalize("transpose", dim1, t->ndim, &b))) return st;
  int perm[TD_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) perm[i] = i;
  if (t->ndim == 0) return make_view(t, 0, t->shape, t->strides, t->offset, out);
  perm[a] = b;
  perm[b] = a;
  return td_tensor_permute(t, perm, out);
}

td_status td_tensor_slice(td_tensor *t, int axis, int64_t start, int64_t stop, int64_t step,
                          td_tensor **out) {
  *out = NULL;
  int ax;
  if (t->ndim == 0) return td_error(TD_ERR_INVALID_ARGUMENT, "slice: cannot slice a scalar");
  td_status st = td_axis_normalize("slice", axis, t->ndim, &ax);
  if (st) return st;
  if (step < 1)
    return td_error(TD_ERR_INVALID_ARGUMENT, "slice: step must be >= 1, got %lld",
                    (long long)step);
  int64_t n = t->shape[ax];
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  if (start < 0) start = 0;
  if (start > n) start = n;
  if (stop > n) stop = n;
  if (stop < start) stop = start;
  int64_t shape[TD_MAX_DIMS], strides[TD_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  memcpy(strides, t->strides, sizeof strides);
  shape[ax] = (stop - start + step - 1) / step;
  strides[ax] = t->strides[ax] * step;
  return make_view(t, t->ndim, shape, strides, t->offset + start * t->strides[ax], out);
}

td_status td_tensor_expand(td_tensor *t, int ndim, const int64_t *shape, td_tensor **out) {
  *out = NULL;
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  if (ndim < t->ndim || ndim > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "broadcast_to: cannot broadcast %s to %s",
                    td_tensor_shape_str(a, t), td_shape_str(b, sizeof b, ndim, shape));
  td_status st = td_shape_check("broadcast_to", ndim, shape, NULL);
  if (st) return st;
  int64_t strides[TD_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    int j = t->ndim - ndim + i;
    if (j < 0) {
      strides[i] = 0;
    } else if (t->shape[j] == shape[i]) {
      strides[i] = t->strides[j];
    } else if (t->shape[j] == 1) {
      strides[i] = 0;
    } else {
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "broadcast_to: cannot broadcast %s to %s (dim %d: %lld vs %lld)",
                      td_tensor_shape_str(a, t), td_shape_str(b, sizeof b, ndim, shape), i,
                      (long long)t->shape[j], (long long)shape[i]);
    }
  }
  return make_view(t, ndim, shape, strides, t->offset, out);
}
