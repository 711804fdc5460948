/* shape.c - shape validation, formatting and broadcasting. */
#include <stdio.h>
#include <string.h>

#include "tensor/tensor.h"

size_t td_dtype_size(td_dtype dtype) {
  switch (dtype) {
  case TD_FLOAT32: return 4;
  case TD_INT64: return 8;
  case TD_INT32: return 4;
  }
  return 0;
}

const char *td_dtype_name(td_dtype dtype) {
  switch (dtype) {
  case TD_FLOAT32: return "float32";
  case TD_INT64: return "int64";
  case TD_INT32: return "int32";
  }
  return "?";
}

bool td_dtype_valid(int dtype) { return dtype >= 0 && dtype < TD_DTYPE_COUNT; }

char *td_shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
  size_t n = 0;
  if (size == 0) return buf;
  buf[0] = '\0';
  n += (size_t)snprintf(buf + n, size - n, "[");
  for (int i = 0; i < ndim && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (n < size) n += (size_t)snprintf(buf + n, size - n, "]");
  if (n >= size && size > 4) memcpy(buf + size - 4, "...", 4);
  return buf;
}

td_status td_shape_check(const char *what, int ndim, const int64_t *shape, int64_t *numel) {
  if (ndim < 0 || ndim > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: %d dimensions, at most %d are supported",
                    what, ndim, TD_MAX_DIMS);
  /* Largest element count we accept: its byte size at 8 bytes per element
   * must fit in int64 (and so in size_t on 64-bit). */
  const int64_t limit = INT64_MAX / 8;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      char s[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: shape %s has a negative extent at dim %d",
                      what, td_shape_str(s, sizeof s, ndim, shape), i);
    }
    if (shape[i] != 0 && n > limit / shape[i]) {
      char s[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: shape %s has too many elements (overflow)",
                      what, td_shape_str(s, sizeof s, ndim, shape));
    }
    n *= shape[i];
  }
  /* A zero extent after an overflowing prefix is still fine: n is 0. */
  if (numel) *numel = n;
  return TD_OK;
}

bool td_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b) {
  if (ndim_a != ndim_b) return false;
  for (int i = 0; i < ndim_a; i++)
    if (a[i] != b[i]) return false;
  return true;
}

td_status td_shape_broadcast(const char *what, int ndim_a, const int64_t *a, int ndim_b,
                             const int64_t *b, int *ndim_out, int64_t *out) {
  int nd = ndim_a > ndim_b ? ndim_a : ndim_b;
  int64_t res[TD_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int ia = ndim_a - nd + i, ib = ndim_b - nd + i;
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da == db || db == 1) {
      res[i] = da;
    } else if (da == 1) {
      res[i] = db;
    } else {
      char sa[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: shapes %s and %s cannot broadcast (dim %d: %lld vs %lld)", what,
                      td_shape_str(sa, sizeof sa, ndim_a, a), td_shape_str(sb, sizeof sb, ndim_b, b),
                      i - nd, (long long)da, (long long)db);
    }
  }
  memcpy(out, res, sizeof(int64_t) * (size_t)nd);
  *ndim_out = nd;
  return TD_OK;
}

td_status td_axis_normalize(const char *what, int axis, int ndim, int *out) {
  int n = ndim > 0 ? ndim : 1; /* a scalar accepts axis 0 / -1, as PyTorch */
  if (axis < -n || axis >= n)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: axis %d is out of range for a tensor with %d dimensions", what, axis,
                    ndim);
  *out = axis < 0 ? axis + n : axis;
  return TD_OK;
}

void td_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
}

void td_broadcast_strides(const td_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
  for (int i = 0; i < ndim; i++) {
    int j = t->ndim - ndim + i;
    strides[i] = (j >= 0 && t->shape[j] == shape[i]) ? t->strides[j] : 0;
  }
}
