/* tensor.c - creation, lifetime and copies of tensors. */
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"

static td_storage *storage_new(size_t nbytes) {
  td_storage *s = td_alloc(sizeof *s, "tensor storage header");
  if (!s) return NULL;
  s->data = NULL;
  s->nbytes = nbytes;
  if (nbytes) {
    s->data = td_alloc(nbytes, "tensor data");
    if (!s->data) {
      td_free(s);
      return NULL;
    }
  }
  atomic_init(&s->refcount, 1);
  atomic_init(&s->version, 0);
  return s;
}

static void storage_release(td_storage *s) {
  if (s && atomic_fetch_sub(&s->refcount, 1) == 1) {
    td_free(s->data);
    td_free(s);
  }
}

/* A handle over `storage` (whose reference the handle takes over). */
static td_tensor *handle_new(td_dtype dtype, int ndim, const int64_t *shape, int64_t numel,
                             td_storage *storage) {
  td_tensor *t = td_alloc(sizeof *t, "tensor handle");
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  atomic_init(&t->refcount, 1);
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
  td_contiguous_strides(ndim, shape, t->strides);
  t->numel = numel;
  t->storage = storage;
  t->tape_slot = -1;
  return t;
}

td_status td_tensor_empty(td_dtype dtype, int ndim, const int64_t *shape, td_tensor **out) {
  *out = NULL;
  if (!td_dtype_valid(dtype)) return td_error(TD_ERR_INVALID_ARGUMENT, "tensor: invalid dtype %d", dtype);
  int64_t numel;
  td_status st = td_shape_check("tensor", ndim, shape, &numel);
  if (st) return st;
  td_storage *s = storage_new((size_t)numel * td_dtype_size(dtype));
  if (!s) return TD_ERR_NO_MEMORY;
  td_tensor *t = handle_new(dtype, ndim, shape, numel, s);
  if (!t) {
    storage_release(s);
    return TD_ERR_NO_MEMORY;
  }
  *out = t;
  return TD_OK;
}

td_status td_tensor_fill_(td_tensor *t, double value) {
  td_iter it;
  const int64_t *strides[1] = {t->strides};
  td_iter_init(&it, t->ndim, t->shape, 1, strides, &t->offset);
  int64_t off, inner, n;
  char *base = t->storage->data;
  while ((n = td_iter_next(&it, &off, &inner)) > 0) {
    switch (t->dtype) {
    case TD_FLOAT32: {
      float *p = (float *)base + off, v = (float)value;
      for (int64_t i = 0; i < n; i++) p[i * inner] = v;
      break;
    }
    case TD_INT64: {
      int64_t *p = (int64_t *)base + off, v = (int64_t)value;
      for (int64_t i = 0; i < n; i++) p[i * inner] = v;
      break;
    }
    case TD_INT32: {
      int32_t *p = (int32_t *)base + off, v = (int32_t)value;
      for (int64_t i = 0; i < n; i++) p[i * inner] = v;
      break;
    }
    }
  }
  td_tensor_bump_version(t);
  return TD_OK;
}

td_status td_tensor_zeros(td_dtype dtype, int ndim, const int64_t *shape, td_tensor **out) {
  td_status st = td_tensor_empty(dtype, ndim, shape, out);
  if (st) return st;
  if ((*out)->storage->nbytes) memset((*out)->storage->data, 0, (*out)->storage->nbytes);
  return TD_OK;
}

td_status td_tensor_full(td_dtype dtype, int ndim, const int64_t *shape, double value,
                         td_tensor **out) {
  td_status st = td_tensor_empty(dtype, ndim, shape, out);
  if (st) return st;
  return td_tensor_fill_(*out, value);
}

td_status td_tensor_ones(td_dtype dtype, int ndim, const int64_t *shape, td_tensor **out) {
  return td_tensor_full(dtype, ndim, shape, 1.0, out);
}

td_status td_tensor_zeros_like(const td_tensor *like, td_tensor **out) {
  return td_tensor_zeros(like->dtype, like->ndim, like->shape, out);
}

td_status td_tensor_from_data(td_dtype dtype, int ndim, const int64_t *shape, const void *data,
                              td_tensor **out) {
  td_status st = td_tensor_empty(dtype, ndim, shape, out);
  if (st) return st;
  if ((*out)->storage->nbytes) memcpy((*out)->storage->data, data, (*out)->storage->nbytes);
  return TD_OK;
}

td_status td_tensor_arange(td_dtype dtype, double start, double stop, double step,
                           td_tensor **out) {
  *out = NULL;
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "arange: start %g, stop %g, step %g: step must be non-zero and all finite",
                    start, stop, step);
  double count = ceil((stop - start) / step);
  if (count < 0) count = 0;
  if (count > (double)(INT64_MAX / 8))
    return td_error(TD_ERR_INVALID_ARGUMENT, "arange: %g elements is too many", count);
  int64_t n = (int64_t)count;
  td_status st = td_tensor_empty(dtype, 1, &n, out);
  if (st) return st;
  for (int64_t i = 0; i < n; i++) {
    double v = start + (double)i * step;
    switch (dtype) {
    case TD_FLOAT32: td_tensor_f32(*out)[i] = (float)v; break;
    case TD_INT64: td_tensor_i64(*out)[i] = (int64_t)v; break;
    case TD_INT32: ((int32_t *)td_tensor_data(*out))[i] = (int32_t)v; break;
    }
  }
  return TD_OK;
}

td_tensor *td_tensor_retain(td_tensor *t) {
  if (t) atomic_fetch_add(&t->refcount, 1);
  return t;
}

void td_tensor_release(td_tensor *t) {
  if (!t) return;
  if (atomic_fetch_sub(&t->refcount, 1) != 1) return;
  td_tensor_release(t->grad);
  storage_release(t->storage);
  td_free(t);
}

bool td_tensor_is_contiguous(const td_tensor *t) {
  int64_t expect = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != expect) return false;
    expect *= t->shape[i];
  }
  return true;
}

/* A walk over dst and src, two views of the same shape, side by side. */
static void iter_dst_src(td_iter *it, const td_tensor *dst, const td_tensor *src) {
  const int64_t *strides[2] = {dst->strides, src->strides};
  int64_t offsets[2] = {dst->offset, src->offset};
  td_iter_init(it, src->ndim, src->shape, 2, strides, offsets);
}

/* The error of an in-place op (copy_, add_) whose source does not fit. */
static td_status dst_src_mismatch(const char *op, const td_tensor *dst, const td_tensor *src) {
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s: destination %s %s, source %s %s", op,
                  td_dtype_name(dst->dtype), td_tensor_shape_str(a, dst), td_dtype_name(src->dtype),
                  td_tensor_shape_str(b, src));
}

/* Copy any view into a contiguous destination buffer of the same dtype. */
static void copy_strided(td_tensor *dst, const td_tensor *src) {
  size_t isz = td_dtype_size(src->dtype);
  td_iter it;
  iter_dst_src(&it, dst, src);
  int64_t off[2], inner[2], n;
  char *d = dst->storage->data;
  const char *s = src->storage->data;
  while ((n = td_iter_next(&it, off, inner)) > 0) {
    if (inner[0] == 1 && inner[1] == 1) {
      memcpy(d + (size_t)off[0] * isz, s + (size_t)off[1] * isz, (size_t)n * isz);
    } else if (isz == 4) {
      float *dp = (float *)d + off[0];
      const float *sp = (const float *)s + off[1];
      for (int64_t i = 0; i < n; i++) dp[i * inner[0]] = sp[i * inner[1]];
    } else {
      int64_t *dp = (int64_t *)d + off[0];
      const int64_t *sp = (const int64_t *)s + off[1];
      for (int64_t i = 0; i < n; i++) dp[i * inner[0]] = sp[i * inner[1]];
    }
  }
}

td_status td_tensor_clone(const td_tensor *t, td_tensor **out) {
  td_status st = td_tensor_empty(t->dtype, t->ndim, t->shape, out);
  if (st) return st;
  copy_strided(*out, t);
  return TD_OK;
}

td_status td_tensor_contiguous(td_tensor *t, td_tensor **out) {
  if (td_tensor_is_contiguous(t)) {
    *out = td_tensor_retain(t);
    return TD_OK;
  }
  return td_tensor_clone(t, out);
}

td_status td_tensor_copy_(td_tensor *dst, const td_tensor *src) {
  if (dst->dtype != src->dtype || !td_shape_equal(dst->ndim, dst->shape, src->ndim, src->shape))
    return dst_src_mismatch("copy", dst, src);
  copy_strided(dst, src);
  td_tensor_bump_version(dst);
  return TD_OK;
}

td_status td_tensor_add_(td_tensor *dst, const td_tensor *src) {
  if (dst->dtype != TD_FLOAT32 || src->dtype != TD_FLOAT32 ||
      !td_shape_equal(dst->ndim, dst->shape, src->ndim, src->shape))
    return dst_src_mismatch("add_", dst, src);
  td_iter it;
  iter_dst_src(&it, dst, src);
  int64_t off[2], inner[2], n;
  float *d = dst->storage->data;
  const float *s = src->storage->data;
  while ((n = td_iter_next(&it, off, inner)) > 0) {
    float *dp = d + off[0];
    const float *sp = s + off[1];
    if (inner[0] == 1 && inner[1] == 1) {
      for (int64_t i = 0; i < n; i++) dp[i] += sp[i];
    } else {
      for (int64_t i = 0; i < n; i++) dp[i * inner[0]] += sp[i * inner[1]];
    }
  }
  td_tensor_bump_version(dst);
  return TD_OK;
}

td_status td_tensor_sum_to_shape(const td_tensor *src, int ndim, const int64_t *shape,
                                 td_tensor **out) {
  *out = NULL;
  /* Check that src's shape is a broadcast of `shape`. */
  bool ok = src->dtype == TD_FLOAT32 && ndim <= src->ndim;
  for (int i = 0; ok && i < ndim; i++) {
    int64_t e = shape[i], s = src->shape[src->ndim - ndim + i];
    if (e != s && e != 1) ok = false;
  }
  if (!ok) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT, "sum_to_shape: %s %s is not a broadcast of %s",
                    td_dtype_name(src->dtype), td_tensor_shape_str(a, src),
                    td_shape_str(b, sizeof b, ndim, shape));
  }
  td_tensor *r;
  td_status st = td_tensor_zeros(TD_FLOAT32, ndim, shape, &r);
  if (st) return st;
  /* Walk src; the destination index uses r's strides with 0 on summed dims. */
  int64_t dst_strides[TD_MAX_DIMS];
  td_broadcast_strides(r, src->ndim, src->shape, dst_strides);
  const int64_t *strides[2] = {dst_strides, src->strides};
  int64_t offsets[2] = {0, src->offset};
  td_iter it;
  td_iter_init(&it, src->ndim, src->shape, 2, strides, offsets);
  int64_t off[2], inner[2], n;
  float *d = r->storage->data;
  const float *s = src->storage->data;
  while ((n = td_iter_next(&it, off, inner)) > 0) {
    float *dp = d + off[0];
    const float *sp = s + off[1];
    if (inner[0] == 0) {
      /* Reducing along the inner dim: accumulate in double for accuracy on
       * long rows (bias gradients over big batches). */
      double acc = 0;
      for (int64_t i = 0; i < n; i++) acc += sp[i * inner[1]];
      *dp += (float)acc;
    } else {
      for (int64_t i = 0; i < n; i++) dp[i * inner[0]] += sp[i * inner[1]];
    }
  }
  *out = r;
  return TD_OK;
}
