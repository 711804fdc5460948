/* shape_ops.h - differentiable shape manipulation.
 *
 * reshape/flatten/squeeze/expand_dims/permute/transpose/broadcast_to return
 * views sharing the input's storage when they can (reshape copies a
 * non-contiguous input, as torch.reshape). concat and diag copy.
 */
#ifndef TD_FUNCTIONAL_SHAPE_OPS_H
#define TD_FUNCTIONAL_SHAPE_OPS_H

#include "tensor/tensor.h"

typedef struct td_shape_params {
  int ndim;
  int64_t shape[TD_MAX_DIMS]; /* reshape, broadcast_to */
  int perm[TD_MAX_DIMS];      /* permute */
  int axis;                   /* concat */
} td_shape_params;

/* One extent may be -1 (inferred). */
td_status td_reshape(td_tensor *x, int ndim, const int64_t *shape, td_tensor **out);
/* Dims start_dim..end_dim (inclusive, negatives from the end) merged into
 * one, as torch.flatten. */
td_status td_flatten(td_tensor *x, int start_dim, int end_dim, td_tensor **out);
td_status td_permute(td_tensor *x, const int *perm, td_tensor **out);
td_status td_transpose(td_tensor *x, int dim0, int dim1, td_tensor **out);
/* Removes the listed size-1 dims (naxes == 0: all size-1 dims). Listing a
 * dim whose extent is not 1 is an error naming it. */
td_status td_squeeze(td_tensor *x, const int *axes, int naxes, td_tensor **out);
/* Inserts a size-1 dim at `axis` (in [-ndim-1, ndim]). */
td_status td_expand_dims(td_tensor *x, int axis, td_tensor **out);
/* Joins tensors of equal shape except along axis. */
td_status td_concat(td_tensor *const *xs, int n, int axis, td_tensor **out);
td_status td_broadcast_to(td_tensor *x, int ndim, const int64_t *shape, td_tensor **out);
/* 1-d [n] -> [n, n] diagonal matrix; 2-d [n, m] -> its main diagonal. */
td_status td_diag(td_tensor *x, td_tensor **out);

#endif
