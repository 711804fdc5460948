/* elementwise_map.c - the drivers feeding elementwise inner loops (see elementwise_map.h). */
#include "functional/elementwise_map.h"

#include "core/parallel.h"

/* Below this many elements a loop is done before a pool worker could be
 * woken (tens of microseconds); above it the engine's threads split it. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 16 };
/* Shares start at multiples of this many elements (a cache line of y, which
 * is 64-byte aligned), so no two threads write the same line. */
enum { SHARE_ALIGN = 16 };

/* One elementwise loop over n elements of contiguous y. Exactly one of
 * unary / binary is set. For a binary loop with row_len > 0, b (or a, with
 * a_is_row) is a row of row_len elements repeating along y, and pieces are
 * whole rows. */
typedef struct ew_job {
  td_ew_unary_loop unary;
  td_ew_binary_loop binary;
  const float *a, *b;
  int64_t sa, sb; /* element strides: 1, or 0 for a broadcast scalar */
  float *y;
  float p0, p1;
  int64_t n, row_len;
  bool a_is_row;
} ew_job;

/* Elements [lo, hi) of y. */
static void ew_range(void *arg, int64_t lo, int64_t hi) {
  const ew_job *j = arg;
  if (j->unary)
    j->unary(hi - lo, j->a + lo * j->sa, j->sa, j->y + lo, j->p0, j->p1);
  else if (!j->row_len)
    j->binary(hi - lo, j->a + lo * j->sa, j->sa, j->b + lo * j->sb, j->sb, j->y + lo, j->p0, j->p1);
  else
    for (int64_t r = lo; r < hi; r += j->row_len)
      j->binary(j->row_len, j->a_is_row ? j->a : j->a + r, 1, j->a_is_row ? j->b + r : j->b, 1,
                j->y + r, j->p0, j->p1);
}

static void ew_run(ew_job *j) {
  int64_t grain = j->row_len ? j->row_len : SHARE_ALIGN;
  int nt = j->n < PARALLEL_MIN_ELEMENTS ? 1 : td_parallel_threads(j->n / grain);
  td_parallel_for(j->n, grain, nt, ew_range, j);
}

td_status td_ew_check_float_input(const td_op_ctx *ctx) {
  const td_tensor *x = ctx->inputs[0];
  if (x->dtype == TD_FLOAT32) return TD_OK;
  char shape[TD_SHAPE_STR_MAX];
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected a float32 input, got %s %s",
                  ctx->def->name, td_dtype_name(x->dtype), td_tensor_shape_str(shape, x));
}

td_status td_ew_unary(td_ew_unary_loop loop, const td_tensor *x, float p0, float p1,
                      td_tensor **out) {
  td_tensor *y;
  td_status st = td_tensor_empty(TD_FLOAT32, x->ndim, x->shape, &y);
  if (st) return st;
  const float *xp = td_tensor_f32(x);
  float *yp = td_tensor_f32(y);
  if (td_tensor_is_contiguous(x)) {
    ew_job j = {.unary = loop, .a = xp, .sa = 1, .y = yp, .p0 = p0, .p1 = p1, .n = y->numel};
    ew_run(&j);
  } else if (y->numel > 0) {
    int64_t ys[TD_MAX_DIMS];
    td_contiguous_strides(y->ndim, y->shape, ys);
    const int64_t *strides[2] = {ys, x->strides};
    td_iter it;
    td_iter_init(&it, y->ndim, y->shape, 2, strides, NULL);
    int64_t off[2], inner[2], n;
    while ((n = td_iter_next(&it, off, inner)) > 0)
      loop(n, xp + off[1], inner[1], yp + off[0], p0, p1);
  }
  *out = y;
  return TD_OK;
}

/* Whether t, contiguous, holds exactly the trailing block of y's shape that
 * repeats along y's leading dims (after dropping t's leading 1s): the
 * [C] + [N,C] "bias row" shape. */
static bool is_trailing_row(const td_tensor *t, const td_tensor *y) {
  int lead = 0;
  while (lead < t->ndim && t->shape[lead] == 1)
    lead++;
  int m = t->ndim - lead;
  if (m > y->ndim || !td_tensor_is_contiguous(t)) return false;
  for (int i = 0; i < m; i++)
    if (t->shape[lead + i] != y->shape[y->ndim - m + i]) return false;
  return true;
}

static void binary_run(td_ew_binary_loop loop, const td_tensor *a, const td_tensor *b, float p0,
                       float p1, td_tensor *y) {
  const int64_t n = y->numel;
  if (n == 0) return;
  const float *ap = td_tensor_f32(a), *bp = td_tensor_f32(b);
  float *yp = td_tensor_f32(y);
  /* An operand that broadcasts to y with y's element count has y's shape up
   * to leading 1s, so when contiguous it is laid out exactly like y. */
  bool a_full = a->numel == n && td_tensor_is_contiguous(a);
  bool b_full = b->numel == n && td_tensor_is_contiguous(b);
  ew_job j = {
      .binary = loop, .a = ap, .b = bp, .sa = 1, .sb = 1, .y = yp, .p0 = p0, .p1 = p1, .n = n};
  if (a_full && b_full) {
    ew_run(&j);
  } else if (a_full && b->numel == 1) {
    j.sb = 0;
    ew_run(&j);
  } else if (b_full && a->numel == 1) {
    j.sa = 0;
    ew_run(&j);
  } else if (a_full && is_trailing_row(b, y)) {
    j.row_len = b->numel;
    ew_run(&j);
  } else if (b_full && is_trailing_row(a, y)) {
    j.row_len = a->numel, j.a_is_row = true;
    ew_run(&j);
  } else {
    int64_t ys[TD_MAX_DIMS], as[TD_MAX_DIMS], bs[TD_MAX_DIMS];
    td_contiguous_strides(y->ndim, y->shape, ys);
    td_broadcast_strides(a, y->ndim, y->shape, as);
    td_broadcast_strides(b, y->ndim, y->shape, bs);
    const int64_t *strides[3] = {ys, as, bs};
    td_iter it;
    td_iter_init(&it, y->ndim, y->shape, 3, strides, NULL);
    /* y is contiguous over the iteration shape, so its inner stride is 1. */
    int64_t off[3], inner[3], len;
    while ((len = td_iter_next(&it, off, inner)) > 0)
      loop(len, ap + off[1], inner[1], bp + off[2], inner[2], yp + off[0], p0, p1);
  }
}

td_status td_ew_binary(td_ew_binary_loop loop, const td_tensor *a, const td_tensor *b, float p0,
                       float p1, int ndim, const int64_t *shape, td_tensor **out) {
  td_tensor *y;
  td_status st = td_tensor_empty(TD_FLOAT32, ndim, shape, &y);
  if (st) return st;
  binary_run(loop, a, b, p0, p1, y);
  *out = y;
  return TD_OK;
}
