/* tensor.h - n-dimensional arrays over refcounted storage.
 *
 * A td_tensor is a view: dtype, shape, strides and an offset into a
 * td_storage that several views may share (reshape of contiguous data,
 * permute, slice, broadcast all share). Both are reference counted:
 *
 *   - td_tensor_retain()/td_tensor_release() manage the tensor handle;
 *   - the handle holds one reference on its storage, dropped when the handle
 *     is freed. Storage dies with its last view.
 *
 * Every function that hands out a tensor through `td_tensor **out` gives the
 * caller a NEW reference, which the caller must release. Functions that take
 * `td_tensor *` arguments borrow them (they retain internally if they keep
 * them). On error, *out is left NULL and nothing the caller owns changes.
 *
 * Strides and offset are counted in elements, not bytes. Shapes are int64;
 * every shape passes td_shape_check() (at most TD_MAX_DIMS dims, no negative
 * extent, element count and byte size that fit in int64/size_t) before any
 * buffer is allocated, so a hostile shape is an error, not a huge malloc.
 *
 * Autodiff fields (grad, tape_id, tape_slot) belong to lib/autodiff; see
 * grad_manager.h.
 */
#ifndef TD_TENSOR_TENSOR_H
#define TD_TENSOR_TENSOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define TD_MAX_DIMS 8

typedef enum td_dtype {
  TD_FLOAT32 = 0,
  TD_INT64 = 1,
  TD_INT32 = 2,
} td_dtype;

#define TD_DTYPE_COUNT 3

size_t td_dtype_size(td_dtype dtype);
/* "float32", "int64", "int32"; "?" for an invalid value. Static string. */
const char *td_dtype_name(td_dtype dtype);
bool td_dtype_valid(int dtype);

typedef struct td_storage {
  void *data;            /* owned, 64-byte aligned (or NULL when nbytes == 0) */
  size_t nbytes;
  atomic_int refcount;
  /* Bumped by every in-place write (optimizer steps, loads). The tape keeps
   * the version it saw, so backward can refuse to use a tensor that changed
   * after it was recorded, instead of silently computing a wrong gradient. */
  atomic_uint_fast64_t version;
} td_storage;

typedef struct td_tensor {
  atomic_int refcount;
  td_dtype dtype;
  int ndim;
  int64_t shape[TD_MAX_DIMS];
  int64_t strides[TD_MAX_DIMS]; /* in elements; 0 on broadcast dims */
  int64_t offset;               /* in elements, into storage */
  int64_t numel;
  td_storage *storage;          /* one reference owned by this handle */

  /* autodiff (lib/autodiff): */
  struct td_tensor *grad; /* owned; NULL until a backward reaches this tensor */
  uint64_t tape_id;       /* the recording that tracks this tensor, 0 = none */
  int32_t tape_slot;      /* its slot in that recording's tape */
} td_tensor;

/* ---- shapes ---------------------------------------------------------- */

/* Validates ndim and extents and returns the element count in *numel.
 * `what` names the caller in the message ("reshape", "tensor"). */
td_status td_shape_check(const char *what, int ndim, const int64_t *shape, int64_t *numel);

/* Writes "[32,3,28,28]" into buf (truncated with "..." if it does not fit).
 * Returns buf, so it can be used inline in a message. */
char *td_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);
#define TD_SHAPE_STR_MAX 160
/* Convenience for messages: a tensor's shape in a caller-supplied buffer. */
#define td_tensor_shape_str(buf, t) td_shape_str((buf), sizeof(buf), (t)->ndim, (t)->shape)

bool td_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b);

/* NumPy broadcasting of two shapes. `what` names the op in the message:
 * "add: shapes [2,3] and [4] cannot broadcast (dim -1: 3 vs 4)". */
td_status td_shape_broadcast(const char *what, int ndim_a, const int64_t *a, int ndim_b,
                             const int64_t *b, int *ndim_out, int64_t *out);

/* Normalises a possibly negative axis against ndim (PyTorch's wrap rule);
 * raises INVALID_ARGUMENT naming `what` if out of range. */
td_status td_axis_normalize(const char *what, int axis, int ndim, int *out);

/* ---- creation (each returns a new contiguous tensor) ------------------ */

/* Uninitialised contents. */
td_status td_tensor_empty(td_dtype dtype, int ndim, const int64_t *shape, td_tensor **out);
td_status td_tensor_zeros(td_dtype dtype, int ndim, const int64_t *shape, td_tensor **out);
td_status td_tensor_ones(td_dtype dtype, int ndim, const int64_t *shape, td_tensor **out);
td_status td_tensor_full(td_dtype dtype, int ndim, const int64_t *shape, double value,
                         td_tensor **out);
/* Copies numel * itemsize bytes from `data` (row-major, native endian). */
td_status td_tensor_from_data(td_dtype dtype, int ndim, const int64_t *shape, const void *data,
                              td_tensor **out);
/* 1-d [start, stop) by step, as torch.arange (step != 0). */
td_status td_tensor_arange(td_dtype dtype, double start, double stop, double step,
                           td_tensor **out);
/* A same-shape zero tensor with the dtype of `like`. */
td_status td_tensor_zeros_like(const td_tensor *like, td_tensor **out);

/* ---- lifetime --------------------------------------------------------- */

td_tensor *td_tensor_retain(td_tensor *t);
/* Drops one reference; frees the handle (and its grad, and the storage if
 * this was the last view) when it reaches zero. NULL is ignored. */
void td_tensor_release(td_tensor *t);
/* Release and set the pointer to NULL. */
#define TD_RELEASE(p) (td_tensor_release(p), (p) = NULL)

/* ---- access ----------------------------------------------------------- */

/* Pointer to element 0 of the view (storage data + offset). Borrowed. */
static inline void *td_tensor_data(const td_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * ((t->dtype == TD_FLOAT32 || t->dtype == TD_INT32) ? 4 : 8);
}
static inline float *td_tensor_f32(const td_tensor *t) { return (float *)td_tensor_data(t); }
static inline int64_t *td_tensor_i64(const td_tensor *t) { return (int64_t *)td_tensor_data(t); }
static inline size_t td_tensor_nbytes(const td_tensor *t) {
  return (size_t)t->numel * td_dtype_size(t->dtype);
}

bool td_tensor_is_contiguous(const td_tensor *t);
/* Row-major strides for a shape. */
void td_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);

/* A contiguous tensor with the same contents: a new reference to `t` itself
 * when already contiguous, otherwise a copy. */
td_status td_tensor_contiguous(td_tensor *t, td_tensor **out);
/* Always a fresh contiguous copy with its own storage. */
td_status td_tensor_clone(const td_tensor *t, td_tensor **out);
/* Copies src into dst elementwise; shapes and dtypes must match; dst may be
 * any view (strided), src any view. Bumps dst's storage version. */
td_status td_tensor_copy_(td_tensor *dst, const td_tensor *src);

/* Marks an in-place write to t's storage (see td_storage.version). */
static inline void td_tensor_bump_version(td_tensor *t) {
  atomic_fetch_add(&t->storage->version, 1);
}
static inline uint64_t td_tensor_version(const td_tensor *t) {
  return atomic_load(&t->storage->version);
}

/* ---- views (share storage; no copy) ----------------------------------- */

/* New shape over contiguous data; one extent may be -1 (inferred). A
 * non-contiguous input is an error here: the functional td_reshape copies. */
td_status td_tensor_view(td_tensor *t, int ndim, const int64_t *shape, td_tensor **out);
td_status td_tensor_permute(td_tensor *t, const int *perm, td_tensor **out);
td_status td_tensor_transpose(td_tensor *t, int dim0, int dim1, td_tensor **out);
/* Elements start, start+step, ... < stop along `axis` (step >= 1; start and
 * stop clamp like Python slices, negatives count from the end). */
td_status td_tensor_slice(td_tensor *t, int axis, int64_t start, int64_t stop, int64_t step,
                          td_tensor **out);
/* Broadcast view (stride 0 on expanded dims), as torch.Tensor.expand. */
td_status td_tensor_expand(td_tensor *t, int ndim, const int64_t *shape, td_tensor **out);

/* ---- small in-place helpers used by autodiff and optimizers ------------ */

/* dst += src for float32 tensors of equal shape (any strides). */
td_status td_tensor_add_(td_tensor *dst, const td_tensor *src);
/* Every element of a float32 or integer tensor set to value. */
td_status td_tensor_fill_(td_tensor *t, double value);
/* The gradient of a broadcast: sums `src` over the dimensions that were
 * broadcast to reach its shape from `shape`, giving a new contiguous tensor of
 * `shape` (float32). src's shape must be a broadcast of `shape`. */
td_status td_tensor_sum_to_shape(const td_tensor *src, int ndim, const int64_t *shape,
                                 td_tensor **out);

/* ---- iteration over strided views ------------------------------------- */

/* Walks the elements of a view in row-major order, yielding element offsets
 * for up to 3 operands that share one iteration shape (each with its own
 * strides, 0 for broadcast dims). Kernels use it for the strided slow path;
 * contiguous fast paths do not need it. Dimensions are coalesced first so a
 * contiguous operand costs one inner loop. */
typedef struct td_iter {
  int ndim;                       /* after coalescing, >= 1 */
  int nops;
  int64_t shape[TD_MAX_DIMS];
  int64_t strides[3][TD_MAX_DIMS];
  int64_t index[TD_MAX_DIMS];
  int64_t offset[3];
  int64_t remaining;              /* elements not yet yielded */
} td_iter;

/* shape/ndim: the iteration shape. op_strides[k]: operand k's strides for
 * that shape (length ndim). offsets: starting element offsets. */
void td_iter_init(td_iter *it, int ndim, const int64_t *shape, int nops,
                  const int64_t *const *op_strides, const int64_t *offsets);
/* Returns the inner-loop length n (elements along the innermost dim) and
 * writes each operand's starting offset and inner stride; the caller
 * processes n elements then calls again. Returns 0 when done. */
int64_t td_iter_next(td_iter *it, int64_t *offs, int64_t *inner_strides);

/* Strides of `t` aligned to a broadcast shape of ndim dims (0 on dims that t
 * lacks or has extent 1 against a larger extent). */
void td_broadcast_strides(const td_tensor *t, int ndim, const int64_t *shape, int64_t *strides);

#endif
