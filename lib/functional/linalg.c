/* linalg.c - matmul and linear: strided views handed to cblas_sgemm without copies. */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "core/alloc.h"
#include "functional/gemm.h"
#include "functional/linalg.h"
#include "functional/op.h"

/* One sgemm operand: a [rows, cols] matrix read in place. `trans` means the
 * memory holds it column-major (a transposed view), which sgemm takes as
 * CblasTrans of the stored [cols, rows] row-major matrix. Batch strides are
 * aligned to the broadcast batch shape (0 on broadcast dims). */
typedef struct gemm_mat {
  float *p;
  bool trans;
  int64_t ld;
  int64_t bstr[TD_MAX_DIMS];
} gemm_mat;

/* Can a [rows, cols] view with row stride rs and column stride cs be read by
 * sgemm in place? Size-1 dims place no constraint on their stride. BLAS
 * takes int leading dimensions, so larger ones force a copy. */
static bool gemm_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, gemm_mat *m) {
  int64_t r1 = rows > 1 ? rows : 1, c1 = cols > 1 ? cols : 1;
  if ((cs == 1 || cols <= 1) && (rows <= 1 || rs >= c1)) {
    m->trans = false;
    m->ld = rows <= 1 ? c1 : rs;
  } else if ((rs == 1 || rows <= 1) && (cols <= 1 || cs >= r1)) {
    m->trans = true;
    m->ld = cols <= 1 ? r1 : cs;
  } else {
    return false;
  }
  return m->ld <= INT_MAX;
}

/* Whether the batch dims of m continue its stored rows with the same row
 * stride, so batch x rows is one taller matrix (`rows` = stored rows). */
static bool rows_fold(const gemm_mat *m, int64_t rows, int nb, const int64_t *bshape) {
  int64_t expect = rows * m->ld;
  for (int d = nb - 1; d >= 0; d--) {
    if (bshape[d] == 1) continue;
    if (m->bstr[d] != expect) return false;
    expect *= bshape[d];
  }
  return true;
}

static bool batch_broadcast(const gemm_mat *m, int nb, const int64_t *bshape) {
  for (int d = 0; d < nb; d++)
    if (bshape[d] != 1 && m->bstr[d] != 0) return false;
  return true;
}

static int64_t batch_count(int nb, const int64_t *bshape) {
  int64_t n = 1;
  for (int d = 0; d < nb; d++)
    n *= bshape[d];
  return n;
}

/* C[b] = A[b] @ B[b] + beta * C[b] for every batch index b (C is row-major,
 * never transposed). C may be broadcast over some batch dims (a gradient
 * summed over them): then the caller zeroes it and passes beta = 1. Batches
 * that are really one big product (a shared B, or a C summed over the batch)
 * go to sgemm as one call, which is much faster than many small ones. */
static void gemm_batched(int nb, const int64_t *bshape, int64_t M, int64_t N, int64_t K,
                         const gemm_mat *a, const gemm_mat *b, const gemm_mat *c, float beta) {
  int64_t count = batch_count(nb, bshape);
  if (M == 0 || N == 0 || count == 0) return;
  if (K == 0) { /* sgemm would be handed ld 0; the product is empty */
    if (beta == 0) {
      int64_t idx[TD_MAX_DIMS] = {0}, off = 0;
      for (int64_t i = 0; i < count; i++) {
        for (int64_t r = 0; r < M; r++)
          memset(c->p + off + r * c->ld, 0, sizeof(float) * N);
        for (int d = nb - 1; d >= 0; d--) {
          off += c->bstr[d];
          if (++idx[d] < bshape[d]) break;
          off -= c->bstr[d] * bshape[d];
          idx[d] = 0;
        }
      }
    }
    return;
  }
  if (count > 1 && batch_broadcast(b, nb, bshape) && !a->trans && rows_fold(a, M, nb, bshape) &&
      rows_fold(c, M, nb, bshape) && M * count <= INT_MAX) {
    td_sgemm(false, b->trans, M * count, N, K, a->p, a->ld, b->p, b->ld, beta, c->p, c->ld);
    return;
  }
  if (count > 1 && batch_broadcast(c, nb, bshape) && a->trans && !b->trans &&
      rows_fold(a, K, nb, bshape) && rows_fold(b, K, nb, bshape) && K * count <= INT_MAX) {
    td_sgemm(true, false, M, N, K * count, a->p, a->ld, b->p, b->ld, beta, c->p, c->ld);
    return;
  }
  int64_t idx[TD_MAX_DIMS] = {0}, oa = 0, ob = 0, oc = 0;
  for (int64_t i = 0; i < count; i++) {
    td_sgemm(a->trans, b->trans, M, N, K, a->p + oa, a->ld, b->p + ob, b->ld, beta, c->p + oc,
             c->ld);
    for (int d = nb - 1; d >= 0; d--) {
      oa += a->bstr[d], ob += b->bstr[d], oc += c->bstr[d];
      if (++idx[d] < bshape[d]) break;
      oa -= a->bstr[d] * bshape[d], ob -= b->bstr[d] * bshape[d], oc -= c->bstr[d] * bshape[d];
      idx[d] = 0;
    }
  }
}

/* t's batch strides aligned (right-justified) to the batch shape. */
static void batch_strides(const td_tensor *t, int nb, int64_t *bstr) {
  int tb = t->ndim - 2;
  for (int d = 0; d < nb; d++) {
    int j = d - (nb - tb);
    bstr[d] = (j >= 0 && t->shape[j] != 1) ? t->strides[j] : 0;
  }
}

/* The last two dims of t as a gemm operand, in place when possible, else
 * from a contiguous copy kept alive in *hold (released by the caller). */
static td_status matrix_operand(td_tensor *t, int nb, gemm_mat *m, td_tensor **hold) {
  *hold = NULL;
  int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
  if (!gemm_layout(rows, cols, t->strides[t->ndim - 2], t->strides[t->ndim - 1], m)) {
    td_status st = td_tensor_contiguous(t, hold);
    if (st) return st;
    t = *hold;
    gemm_layout(rows, cols, cols, 1, m);
  }
  m->p = td_tensor_f32(t);
  batch_strides(t, nb, m->bstr);
  return TD_OK;
}

/* A new zero-or-uninitialised result of `ndim`/`shape` as a gemm output. If
 * the shape's batch dims are broadcast against bshape, results are summed
 * into it (*beta = 1 on zeroed memory). */
static td_status result_operand(int ndim, const int64_t *shape, int nb, const int64_t *bshape,
                                gemm_mat *m, float *beta, td_tensor **out) {
  td_tensor *t;
  td_status st = td_tensor_empty(TD_FLOAT32, ndim, shape, &t);
  if (st) return st;
  m->p = td_tensor_f32(t);
  m->trans = false;
  m->ld = shape[ndim - 1] > 1 ? shape[ndim - 1] : 1;
  batch_strides(t, nb, m->bstr);
  bool summed = false;
  for (int d = 0; d < nb; d++)
    summed |= bshape[d] != 1 && m->bstr[d] == 0;
  *beta = summed ? 1.0f : 0.0f;
  if (summed && t->numel) memset(m->p, 0, td_tensor_nbytes(t));
  *out = t;
  return TD_OK;
}

static td_status check_blas_dims(const char *op, const td_tensor *a, const td_tensor *b, int64_t d0,
                                 int64_t d1, int64_t d2) {
  if (d0 > INT_MAX || d1 > INT_MAX || d2 > INT_MAX) {
    char sa[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: a matrix dimension exceeds BLAS's int range (%s and %s)", op,
                    td_tensor_shape_str(sa, a), td_tensor_shape_str(sb, b));
  }
  return TD_OK;
}

/* ---- matmul -------------------------------------------------------------- */

static td_status matmul_batch_shape(const td_tensor *a, const td_tensor *b, int *nb,
                                    int64_t *bshape) {
  int na = a->ndim - 2, nbb = b->ndim - 2;
  *nb = na > nbb ? na : nbb;
  for (int d = 0; d < *nb; d++) {
    int ja = d - (*nb - na), jb = d - (*nb - nbb);
    int64_t ea = ja >= 0 ? a->shape[ja] : 1, eb = jb >= 0 ? b->shape[jb] : 1;
    if (ea != eb && ea != 1 && eb != 1) {
      char sa[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "matmul: batch dimensions cannot broadcast: a %s @ b %s",
                      td_tensor_shape_str(sa, a), td_tensor_shape_str(sb, b));
    }
    bshape[d] = ea == 1 ? eb : ea;
  }
  return TD_OK;
}

static td_status matmul_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st;
  if (!ctx->inputs[0] || !ctx->inputs[1])
    return td_error(TD_ERR_INVALID_ARGUMENT, "matmul: a or b is NULL");
  if ((st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "a")) ||
      (st = td_op_check_dtype(ctx, 1, TD_FLOAT32, "b")) ||
      (st = td_op_check_ndim(ctx, 0, 2, TD_MAX_DIMS, "a")) ||
      (st = td_op_check_ndim(ctx, 1, 2, TD_MAX_DIMS, "b")))
    return st;
  td_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
  int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], m = b->shape[b->ndim - 1];
  if (b->shape[b->ndim - 2] != k) {
    char sa[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT, "matmul: inner dimensions differ: a %s @ b %s",
                    td_tensor_shape_str(sa, a), td_tensor_shape_str(sb, b));
  }
  if ((st = check_blas_dims("matmul", a, b, n, k, m))) return st;
  int nb;
  int64_t shape[TD_MAX_DIMS];
  if ((st = matmul_batch_shape(a, b, &nb, shape))) return st;
  shape[nb] = n, shape[nb + 1] = m;

  gemm_mat ma = {0}, mb = {0}, mc = {0};
  td_tensor *ha = NULL, *hb = NULL, *y = NULL;
  float beta;
  if (!(st = matrix_operand(a, nb, &ma, &ha)) && !(st = matrix_operand(b, nb, &mb, &hb)) &&
      !(st = result_operand(nb + 2, shape, nb, shape, &mc, &beta, &y)))
    gemm_batched(nb, shape, n, m, k, &ma, &mb, &mc, beta);
  td_tensor_release(ha);
  td_tensor_release(hb);
  if (st) return st;
  *out = y;
  return TD_OK;
}

static td_status matmul_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  td_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
  int nb;
  int64_t bshape[TD_MAX_DIMS];
  td_status st = matmul_batch_shape(a, b, &nb, bshape);
  if (st) return st;
  int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], m = b->shape[b->ndim - 1];
  gemm_mat mg = {0}, ma = {0}, mb = {0}, mc = {0};
  td_tensor *hg = NULL, *ha = NULL, *hb = NULL;
  float beta;
  if ((st = matrix_operand(gy, nb, &mg, &hg))) return st;
  if (ctx->needs_input_grad[0]) { /* dA = dY @ B^T */
    if (!(st = matrix_operand(b, nb, &mb, &hb)) &&
        !(st = result_operand(a->ndim, a->shape, nb, bshape, &mc, &beta, &gx[0]))) {
      mb.trans = !mb.trans;
      gemm_batched(nb, bshape, n, k, m, &mg, &mb, &mc, beta);
    }
  }
  if (!st && ctx->needs_input_grad[1]) { /* dB = A^T @ dY */
    if (!(st = matrix_operand(a, nb, &ma, &ha)) &&
        !(st = result_operand(b->ndim, b->shape, nb, bshape, &mc, &beta, &gx[1]))) {
      ma.trans = !ma.trans;
      gemm_batched(nb, bshape, k, m, n, &ma, &mg, &mc, beta);
    }
  }
  td_tensor_release(hg);
  td_tensor_release(ha);
  td_tensor_release(hb);
  return st;
}

const td_op_def td_op_matmul = {"matmul", 2, 0, TD_SAVE_INPUTS, matmul_forward, matmul_backward};

td_status td_matmul(td_tensor *a, td_tensor *b, td_tensor **out) {
  td_tensor *in[2] = {a, b};
  return td_apply(TD_OP_MATMUL, NULL, in, 2, out);
}

/* ---- linear -------------------------------------------------------------- */

/* t [..., cols] seen as one [rows, cols] matrix (all leading dims folded into
 * rows), in place when its strides allow, else from a contiguous copy. */
static td_status rows_operand(td_tensor *t, gemm_mat *m, int64_t *rows, td_tensor **hold) {
  *hold = NULL;
  int64_t cols = t->shape[t->ndim - 1], r = 1, rs = 0, expect = -1;
  bool folds = true;
  for (int d = t->ndim - 2; d >= 0; d--) {
    r *= t->shape[d];
    if (t->shape[d] == 1) continue;
    if (expect < 0) rs = t->strides[d], expect = rs;
    if (t->strides[d] != expect) folds = false;
    expect *= t->shape[d];
  }
  *rows = r;
  if (!folds || !gemm_layout(r, cols, rs, t->strides[t->ndim - 1], m)) {
    td_status st = td_tensor_contiguous(t, hold);
    if (st) return st;
    t = *hold;
    gemm_layout(r, cols, cols, 1, m);
  }
  m->p = td_tensor_f32(t);
  return TD_OK;
}

static td_status linear_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st;
  td_tensor *x = ctx->inputs[0], *w = ctx->inputs[1], *bias = ctx->inputs[2];
  if (!x || !w) return td_error(TD_ERR_INVALID_ARGUMENT, "linear: input or weight is NULL");
  if ((st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input")) ||
      (st = td_op_check_dtype(ctx, 1, TD_FLOAT32, "weight")) ||
      (bias && (st = td_op_check_dtype(ctx, 2, TD_FLOAT32, "bias"))) ||
      (st = td_op_check_ndim(ctx, 0, 1, TD_MAX_DIMS, "input")) ||
      (st = td_op_check_ndim(ctx, 1, 2, 2, "weight")))
    return st;
  int64_t in = w->shape[1], nout = w->shape[0];
  char sx[TD_SHAPE_STR_MAX], sw[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
  if (x->shape[x->ndim - 1] != in)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "linear: input has %lld features, expected %lld (input %s, weight %s)",
                    (long long)x->shape[x->ndim - 1], (long long)in, td_tensor_shape_str(sx, x),
                    td_tensor_shape_str(sw, w));
  if (bias && (bias->ndim != 1 || bias->shape[0] != nout))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "linear: bias %s does not match weight %s (want [%lld])",
                    td_tensor_shape_str(sb, bias), td_tensor_shape_str(sw, w), (long long)nout);
  int64_t rows = 1;
  for (int d = 0; d < x->ndim - 1; d++)
    rows *= x->shape[d];
  if ((st = check_blas_dims("linear", x, w, rows, in, nout))) return st;

  int64_t shape[TD_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = nout;
  gemm_mat mx = {0}, mw = {0};
  td_tensor *hx = NULL, *hw = NULL, *hb = NULL, *y = NULL;
  if ((st = rows_operand(x, &mx, &rows, &hx)) || (st = matrix_operand(w, 0, &mw, &hw)) ||
      (bias && (st = td_tensor_contiguous(bias, &hb))) ||
      (st = td_tensor_empty(TD_FLOAT32, x->ndim, shape, &y)))
    goto done;
  float *yp = td_tensor_f32(y);
  if (hb) /* y = bias, then y += x @ w^T (addmm's order) */
    for (int64_t r = 0; r < rows; r++)
      memcpy(yp + r * nout, td_tensor_f32(hb), sizeof(float) * nout);
  else if (in == 0)
    memset(yp, 0, td_tensor_nbytes(y));
  if (rows && nout && in)
    td_sgemm(mx.trans, !mw.trans, rows, nout, in, mx.p, mx.ld, mw.p, mw.ld, hb ? 1.0f : 0.0f, yp,
             nout);
done:
  td_tensor_release(hx);
  td_tensor_release(hw);
  td_tensor_release(hb);
  if (st) {
    td_tensor_release(y);
    return st;
  }
  *out = y;
  return TD_OK;
}

/* Column sums of a [rows, cols] operand, accumulated in double. */
static td_status column_sums(const gemm_mat *g, int64_t rows, int64_t cols, td_tensor **out) {
  td_tensor *t;
  td_status st = td_tensor_empty(TD_FLOAT32, 1, &cols, &t);
  if (st) return st;
  double *acc = td_calloc((size_t)(cols ? cols : 1), sizeof *acc, "linear bias gradient");
  if (!acc) {
    td_tensor_release(t);
    return TD_ERR_NO_MEMORY;
  }
  if (!g->trans) {
    for (int64_t r = 0; r < rows; r++) {
      const float *row = g->p + r * g->ld;
      for (int64_t j = 0; j < cols; j++)
        acc[j] += row[j];
    }
  } else {
    for (int64_t j = 0; j < cols; j++) {
      const float *col = g->p + j * g->ld;
      double s = 0;
      for (int64_t r = 0; r < rows; r++)
        s += col[r];
      acc[j] = s;
    }
  }
  float *p = td_tensor_f32(t);
  for (int64_t j = 0; j < cols; j++)
    p[j] = (float)acc[j];
  td_free(acc);
  *out = t;
  return TD_OK;
}

/* A product over an empty inner dimension is zero (sgemm is not called). */
static void zeros_if_empty(td_tensor *t, int64_t k) {
  if (k == 0 && t->numel) memset(td_tensor_f32(t), 0, td_tensor_nbytes(t));
}

static td_status linear_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  td_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
  int64_t in = w->shape[1], nout = w->shape[0], rows;
  gemm_mat mg = {0}, mx = {0}, mw = {0};
  td_tensor *hg = NULL, *hx = NULL, *hw = NULL;
  td_status st = rows_operand(gy, &mg, &rows, &hg);
  if (!st && ctx->needs_input_grad[0]) { /* dX [rows, in] = dY @ W */
    if (!(st = matrix_operand(w, 0, &mw, &hw)) &&
        !(st = td_tensor_empty(TD_FLOAT32, x->ndim, x->shape, &gx[0]))) {
      zeros_if_empty(gx[0], nout);
      if (rows && in && nout)
        td_sgemm(mg.trans, mw.trans, rows, in, nout, mg.p, mg.ld, mw.p, mw.ld, 0.0f,
                 td_tensor_f32(gx[0]), in);
    }
  }
  if (!st && ctx->needs_input_grad[1]) { /* dW [out, in] = dY^T @ X */
    int64_t xrows;
    if (!(st = rows_operand(x, &mx, &xrows, &hx)) &&
        !(st = td_tensor_empty(TD_FLOAT32, 2, w->shape, &gx[1]))) {
      zeros_if_empty(gx[1], rows);
      if (rows && in && nout)
        td_sgemm(!mg.trans, mx.trans, nout, in, rows, mg.p, mg.ld, mx.p, mx.ld, 0.0f,
                 td_tensor_f32(gx[1]), in);
    }
  }
  if (!st && ctx->n_inputs > 2 && ctx->needs_input_grad[2])
    st = column_sums(&mg, rows, nout, &gx[2]);
  td_tensor_release(hg);
  td_tensor_release(hx);
  td_tensor_release(hw);
  return st;
}

const td_op_def td_op_linear = {"linear", 3, 0, TD_SAVE_INPUTS, linear_forward, linear_backward};

td_status td_linear(td_tensor *x, td_tensor *weight, td_tensor *bias, td_tensor **out) {
  td_tensor *in[3] = {x, weight, bias};
  return td_apply(TD_OP_LINEAR, NULL, in, 3, out);
}
