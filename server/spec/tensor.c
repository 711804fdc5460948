/* tensor.c - Tensor messages <-> td_tensor, with every check a request needs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spec/internal.h"
#include "spec/spec.h"

/* The wire format is little-endian and data is copied as it is. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "spec/tensor.c copies tensor bytes unchanged: a big-endian host needs byte swaps here"
#endif

Traind__V1__DType spec_dtype_to_proto(td_dtype dtype) {
  switch (dtype) {
  case TD_FLOAT32: return TRAIND__V1__DTYPE__FLOAT32;
  case TD_INT64: return TRAIND__V1__DTYPE__INT64;
  default: return TRAIND__V1__DTYPE__DTYPE_UNSPECIFIED;
  }
}

static td_status dtype_from_proto(const Traind__V1__Tensor *t, const char *field, td_dtype *out) {
  if (!t->has_dtype || t->dtype == TRAIND__V1__DTYPE__DTYPE_UNSPECIFIED)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s.dtype: must be set (FLOAT32 or INT64)", field);
  switch (t->dtype) {
  case TRAIND__V1__DTYPE__FLOAT32: *out = TD_FLOAT32; return TD_OK;
  case TRAIND__V1__DTYPE__INT64: *out = TD_INT64; return TD_OK;
  default:
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s.dtype: unknown value %d (this server knows FLOAT32 = 1 and INT64 = 2)",
                    field, (int)t->dtype);
  }
}

/* The element count of t's shape, checked dim by dim and against the limit
 * before anything the size of the tensor exists. */
static td_status shape_numel(const Traind__V1__Tensor *t, const char *field,
                             const spec_limits *limits, int64_t *numel) {
  if (t->n_shape > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s.shape: has %zu dims, at most %d", field,
                    t->n_shape, TD_MAX_DIMS);
  int64_t n = 1;
  for (size_t i = 0; i < t->n_shape; i++) {
    if (t->shape[i] < 0)
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s.shape: dim %zu must be >= 0, got %lld", field, i,
                      (long long)t->shape[i]);
    n = spec_count_mul(n, t->shape[i]);
  }
  char s[TD_SHAPE_STR_MAX];
  /* A count whose bytes do not fit in int64 cannot be a buffer anywhere. */
  if (n > INT64_MAX / 8)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s.shape: %s has more elements than any tensor can",
                    field, td_shape_str(s, sizeof s, (int)t->n_shape, t->shape));
  int64_t limit = limits ? limits->max_tensor_elements : 0;
  if (limit > 0 && n > limit)
    return td_error(TD_ERR_NO_MEMORY,
                    "%s: shape %s has %lld elements, over this server's limit of %lld "
                    "(--max-tensor-elements)",
                    field, td_shape_str(s, sizeof s, (int)t->n_shape, t->shape), (long long)n,
                    (long long)limit);
  *numel = n;
  return TD_OK;
}

/* The flat index of the first NaN or infinity, or -1. */
static int64_t first_non_finite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return i;
  return -1;
}

td_status spec_tensor_from_proto(const Traind__V1__Tensor *t, const char *field,
                                 const spec_limits *limits, td_tensor **out) {
  *out = NULL;
  if (!t) return td_error(TD_ERR_INVALID_ARGUMENT, "%s: is required", field);
  td_dtype dtype = TD_FLOAT32;
  int64_t numel = 0;
  td_status st = dtype_from_proto(t, field, &dtype);
  if (st || (st = shape_numel(t, field, limits, &numel))) return st;
  size_t item = td_dtype_size(dtype);
  size_t len = t->has_data ? t->data.len : 0;
  if (len != (size_t)numel * item) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: data has %zu bytes, shape %s %s needs %lld (%lld elements x %zu bytes)",
                    field, len, td_shape_str(s, sizeof s, (int)t->n_shape, t->shape),
                    td_dtype_name(dtype), (long long)numel * (long long)item, (long long)numel,
                    item);
  }
  td_tensor *x = NULL;
  if ((st = td_tensor_empty(dtype, (int)t->n_shape, t->shape, &x))) return st;
  if (len) memcpy(td_tensor_data(x), t->data.data, len);
  if (dtype == TD_FLOAT32) {
    int64_t bad = first_non_finite(td_tensor_f32(x), numel);
    if (bad >= 0) {
      float v = td_tensor_f32(x)[bad];
      td_tensor_release(x);
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: element %lld (flat index) is %s; values must be finite", field,
                      (long long)bad,
                      isnan(v) ? "NaN"
                      : v > 0  ? "+Inf"
                               : "-Inf");
    }
  }
  *out = x;
  return TD_OK;
}

td_status spec_tensor_to_proto(const td_tensor *t, Traind__V1__Tensor *out) {
  *out = (Traind__V1__Tensor)TRAIND__V1__TENSOR__INIT;
  Traind__V1__DType dtype = spec_dtype_to_proto(t->dtype);
  if (dtype == TRAIND__V1__DTYPE__DTYPE_UNSPECIFIED)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "tensor: dtype %s cannot be sent (the API carries float32 and int64)",
                    td_dtype_name(t->dtype));
  td_tensor *c = NULL;
  /* Only t's refcount changes (when it is already contiguous). */
  td_status st = td_tensor_contiguous((td_tensor *)t, &c);
  if (st) return st;
  size_t nbytes = td_tensor_nbytes(c);
  int64_t *shape = t->ndim ? malloc(sizeof *shape * (size_t)t->ndim) : NULL;
  uint8_t *data = nbytes ? malloc(nbytes) : NULL;
  if ((t->ndim && !shape) || (nbytes && !data)) {
    free(shape);
    free(data);
    td_tensor_release(c);
    return td_error(TD_ERR_NO_MEMORY, "tensor: out of memory copying %zu bytes for a response",
                    nbytes);
  }
  if (t->ndim) memcpy(shape, t->shape, sizeof *shape * (size_t)t->ndim);
  if (nbytes) memcpy(data, td_tensor_data(c), nbytes);
  td_tensor_release(c);
  out->has_dtype = 1;
  out->dtype = dtype;
  out->n_shape = (size_t)t->ndim;
  out->shape = shape;
  out->has_data = 1;
  out->data.len = nbytes;
  out->data.data = data;
  return TD_OK;
}

void spec_tensor_proto_clear(Traind__V1__Tensor *t) {
  free(t->shape);
  free(t->data.data);
  *t = (Traind__V1__Tensor)TRAIND__V1__TENSOR__INIT;
}
