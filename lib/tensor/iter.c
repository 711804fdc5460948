/* iter.c - row-major walk over up to three strided operands.
 *
 * Kernels' contiguous fast paths never come here; this is the general path
 * for permuted, sliced and broadcast views. Adjacent dimensions that are
 * contiguous in every operand are merged first, so the common "broadcast a
 * row vector over a matrix" case becomes a 2-d walk with a long inner loop.
 */
#include <string.h>

#include "tensor/tensor.h"

void td_iter_init(td_iter *it, int ndim, const int64_t *shape, int nops,
                  const int64_t *const *op_strides, const int64_t *offsets) {
  memset(it, 0, sizeof *it);
  it->nops = nops;
  int64_t total = 1;
  for (int i = 0; i < ndim; i++) total *= shape[i];
  it->remaining = total;
  for (int k = 0; k < nops; k++) it->offset[k] = offsets ? offsets[k] : 0;

  /* Drop extent-1 dims and merge dim i into the dim after it when every
   * operand steps across i by exactly (extent of next) * (stride of next). */
  int nd = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 1) continue;
    if (nd > 0) {
      bool mergeable = true;
      for (int k = 0; k < nops; k++)
        if (it->strides[k][nd - 1] != op_strides[k][i] * shape[i]) mergeable = false;
      if (mergeable) {
        it->shape[nd - 1] *= shape[i];
        for (int k = 0; k < nops; k++) it->strides[k][nd - 1] = op_strides[k][i];
        continue;
      }
    }
    it->shape[nd] = shape[i];
    for (int k = 0; k < nops; k++) it->strides[k][nd] = op_strides[k][i];
    nd++;
  }
  if (nd == 0) { /* a scalar, or all extents 1 */
    it->shape[0] = 1;
    for (int k = 0; k < nops; k++) it->strides[k][0] = 0;
    nd = 1;
  }
  it->ndim = nd;
}

int64_t td_iter_next(td_iter *it, int64_t *offs, int64_t *inner_strides) {
  if (it->remaining <= 0) return 0;
  int last = it->ndim - 1;
  int64_t n = it->shape[last];
  for (int k = 0; k < it->nops; k++) {
    offs[k] = it->offset[k];
    inner_strides[k] = it->strides[k][last];
  }
  it->remaining -= n;
  /* Advance the outer index (odometer), updating offsets incrementally. */
  for (int d = last - 1; d >= 0; d--) {
    it->index[d]++;
    for (int k = 0; k < it->nops; k++) it->offset[k] += it->strides[k][d];
    if (it->index[d] < it->shape[d]) break;
    for (int k = 0; k < it->nops; k++) it->offset[k] -= it->strides[k][d] * it->shape[d];
    it->index[d] = 0;
  }
  return n;
}
