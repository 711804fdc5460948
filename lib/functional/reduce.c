/* reduce.c - sum, mean, max, min, var, logsumexp and argmax over a set of axes. */
#include "functional/reduce.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "functional/op.h"
#include "functional/vec.h"

/* ---- the plan: how a reduction walks its input ---------------------------
 *
 * Every reduction sees its input as a contiguous [outer, r, inner] block of
 * floats and reduces the middle extent, producing outer * inner values in the
 * output's row-major order. When the reduced dims are one run of adjacent
 * dims (ignoring extent-1 dims, which do not move anything) the input itself,
 * made contiguous, is that block: reducing trailing dims gives inner == 1 (row
 * sums), leading dims gives outer == 1 (column sums). Otherwise the kept dims
 * are permuted to the front and the reduced dims to the back and the view is
 * copied once, giving [kept, reduced, 1].
 *
 * The plan depends only on the shape and the params, so backward rebuilds the
 * same plan from input_meta and lays its gradient out the same way. */
typedef struct reduce_plan {
  int ndim;
  int64_t shape[TD_MAX_DIMS];
  bool reduced[TD_MAX_DIMS];
  int out_ndim;
  int64_t out_shape[TD_MAX_DIMS];
  int64_t outer, r, inner;
  bool permuted;         /* layout = permute(x, perm), copied contiguous */
  int perm[TD_MAX_DIMS]; /* kept dims in order, then reduced dims in order */
} reduce_plan;

static td_status make_plan(const char *op, const td_reduce_params *p, int ndim,
                           const int64_t *shape, reduce_plan *pl) {
  char s[TD_SHAPE_STR_MAX];
  memset(pl, 0, sizeof *pl);
  pl->ndim = ndim;
  memcpy(pl->shape, shape, sizeof(int64_t) * (size_t)ndim);
  if (p->naxes < 0 || p->naxes > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: %d axes given, expected 0 to %d", op, p->naxes,
                    TD_MAX_DIMS);
  /* A 0-d input accepts axis 0 / -1, as PyTorch; there is nothing to reduce. */
  int wrap = ndim > 0 ? ndim : 1;
  bool seen[TD_MAX_DIMS] = {false};
  for (int i = 0; i < p->naxes; i++) {
    int a = p->axes[i];
    if (a < -wrap || a >= wrap)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: axis %d is out of range for input %s (%d dims, axes %d..%d)", op, a,
                      td_shape_str(s, sizeof s, ndim, shape), ndim, -wrap, wrap - 1);
    int d = a < 0 ? a + wrap : a;
    if (seen[d])
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: axis %d is given twice (dim %d is already reduced) for input %s", op, a,
                      d, td_shape_str(s, sizeof s, ndim, shape));
    seen[d] = true;
    if (ndim > 0) pl->reduced[d] = true;
  }
  if (p->naxes == 0)
    for (int d = 0; d < ndim; d++)
      pl->reduced[d] = true;

  for (int d = 0; d < ndim; d++) {
    if (!pl->reduced[d])
      pl->out_shape[pl->out_ndim++] = shape[d];
    else if (p->keepdims)
      pl->out_shape[pl->out_ndim++] = 1;
  }

  /* Block test: among dims of extent != 1 the pattern must be kept* reduced* kept*. */
  int phase = 0; /* 0: before the reduced run, 1: inside it, 2: after it */
  bool block = true;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1) continue;
    if (pl->reduced[d]) {
      if (phase == 2) block = false;
      phase = 1;
    } else if (phase == 1) {
      phase = 2;
    }
  }
  pl->outer = pl->r = pl->inner = 1;
  if (block) {
    bool after = false;
    for (int d = 0; d < ndim; d++) {
      if (pl->reduced[d]) {
        pl->r *= shape[d];
        if (shape[d] != 1) after = true;
      } else if (after) {
        pl->inner *= shape[d];
      } else {
        pl->outer *= shape[d];
      }
    }
    return TD_OK;
  }
  pl->permuted = true;
  int n = 0;
  for (int d = 0; d < ndim; d++)
    if (!pl->reduced[d]) pl->perm[n++] = d, pl->outer *= shape[d];
  for (int d = 0; d < ndim; d++)
    if (pl->reduced[d]) pl->perm[n++] = d, pl->r *= shape[d];
  return TD_OK;
}

/* max, min and argmax have no value over an empty set. */
static td_status check_nonempty(const char *op, const reduce_plan *pl) {
  if (pl->r != 0) return TD_OK;
  char s[TD_SHAPE_STR_MAX];
  int axis = 0;
  while (axis < pl->ndim && !(pl->reduced[axis] && pl->shape[axis] == 0))
    axis++;
  return td_error(TD_ERR_INVALID_ARGUMENT,
                  "%s: cannot reduce over axis %d of extent 0 (input %s): the result has no "
                  "value",
                  op, axis, td_shape_str(s, sizeof s, pl->ndim, pl->shape));
}

/* x as the plan's contiguous [outer, r, inner] block (a new reference). */
static td_status layout_of(const reduce_plan *pl, td_tensor *x, td_tensor **xl) {
  if (!pl->permuted) return td_tensor_contiguous(x, xl);
  td_tensor *v;
  td_status st = td_tensor_permute(x, pl->perm, &v);
  if (st) return st;
  st = td_tensor_contiguous(v, xl);
  td_tensor_release(v);
  return st;
}

/* A new contiguous float32 tensor shaped like the plan's layout, for a
 * gradient computed in layout order. */
static td_status layout_empty(const reduce_plan *pl, td_tensor **gl) {
  int64_t shape[TD_MAX_DIMS];
  for (int d = 0; d < pl->ndim; d++)
    shape[d] = pl->shape[pl->permuted ? pl->perm[d] : d];
  return td_tensor_empty(TD_FLOAT32, pl->ndim, shape, gl);
}

/* The gradient in input order: takes ownership of gl (the layout gradient). */
static td_status grad_from_layout(const reduce_plan *pl, td_tensor *gl, td_tensor **gx) {
  if (!pl->permuted) {
    *gx = gl;
    return TD_OK;
  }
  td_tensor *g = NULL, *view = NULL;
  td_status st = td_tensor_empty(TD_FLOAT32, pl->ndim, pl->shape, &g);
  if (!st) st = td_tensor_permute(g, pl->perm, &view);
  if (!st) st = td_tensor_copy_(view, gl);
  td_tensor_release(view);
  td_tensor_release(gl);
  if (st) {
    td_tensor_release(g);
    return st;
  }
  *gx = g;
  return TD_OK;
}

/* ---- forward kernels on [outer, r, inner] ---------------------------------
 * Each has a row path (inner == 1: one contiguous run per output) and a
 * column path (inner > 1: rows of `inner` outputs updated together). `work`
 * holds at least 2 * inner doubles when inner > 1. */

/* Sum of (x - mean)^2 in double, in lanes as td_sum_f64. */
static double sqdev_f64(const float *x, int64_t n, double mean) {
  double lane[8] = {0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; j++) {
      double d = x[k + j] - mean;
      lane[j] += d * d;
    }
  double s = 0;
  for (; k < n; k++)
    s += (x[k] - mean) * (x[k] - mean);
  for (int j = 0; j < 8; j++)
    s += lane[j];
  return s;
}

/* Per-column sums of an [r, inner] block into acc (inner doubles). */
static void col_sum(const float *restrict x, int64_t r, int64_t inner, double *restrict acc) {
  TD_VLOOP(i, inner, acc[i] = 0);
  for (int64_t k = 0; k < r; k++) {
    const float *restrict row = x + k * inner;
    TD_VLOOP(i, inner, acc[i] += row[i]);
  }
}

static void sum_kernel(const float *restrict x, const reduce_plan *pl, double scale,
                       float *restrict y, double *restrict work) {
  int64_t r = pl->r, inner = pl->inner;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *xo = x + o * r * inner;
    float *restrict yo = y + o * inner;
    if (inner == 1) {
      yo[0] = (float)(td_sum_f64(xo, r) * scale);
      continue;
    }
    col_sum(xo, r, inner, work);
    TD_VLOOP(i, inner, yo[i] = (float)(work[i] * scale));
  }
}

/* The means (in double) of one outer slice [r, inner], r >= 1: mean[i] for
 * each of the inner positions. */
static void group_mean(const float *xo, int64_t r, int64_t inner, double *restrict mean) {
  if (inner == 1) {
    mean[0] = td_sum_f64(xo, r) / (double)r;
    return;
  }
  col_sum(xo, r, inner, mean);
  const double inv = 1.0 / (double)r;
  TD_VLOOP(i, inner, mean[i] *= inv);
}

/* Per-column sums of (x - mean)^2 of an [r, inner] block into ss. */
static void col_sqdev(const float *restrict x, int64_t r, int64_t inner,
                      const double *restrict mean, double *restrict ss) {
  TD_VLOOP(i, inner, ss[i] = 0);
  for (int64_t k = 0; k < r; k++) {
    const float *restrict row = x + k * inner;
    TD_VLOOP(i, inner, double d = row[i] - mean[i]; ss[i] += d * d);
  }
}

/* PyTorch divides by max(0, r - correction); a zero divisor gives inf or NaN. */
static double var_scale(int64_t r, int correction) {
  int64_t denom = r - correction;
  return denom > 0 ? 1.0 / (double)denom : INFINITY;
}

static void var_kernel(const float *restrict x, const reduce_plan *pl, int correction,
                       float *restrict y, double *restrict work) {
  int64_t r = pl->r, inner = pl->inner;
  double scale = var_scale(r, correction);
  double *restrict mean = work, *restrict ss = work + inner;
  for (int64_t o = 0; o < pl->outer; o++) {
    float *restrict yo = y + o * inner;
    if (r == 0) { /* the mean of nothing is NaN, as PyTorch */
      for (int64_t i = 0; i < inner; i++)
        yo[i] = NAN;
      continue;
    }
    const float *xo = x + o * r * inner;
    if (inner == 1) {
      double m = td_sum_f64(xo, r) / (double)r;
      yo[0] = (float)(sqdev_f64(xo, r, m) * scale);
      continue;
    }
    group_mean(xo, r, inner, mean);
    col_sqdev(xo, r, inner, mean, ss);
    TD_VLOOP(i, inner, yo[i] = (float)(ss[i] * scale));
  }
}

/* max (sign = 1) or min (sign = -1), NaN-propagating. Needs r >= 1. */
static void extreme_kernel(const float *restrict x, const reduce_plan *pl, float sign,
                           float *restrict y) {
  int64_t r = pl->r, inner = pl->inner;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *restrict xo = x + o * r * inner;
    float *restrict yo = y + o * inner;
    if (inner == 1) {
      yo[0] = td_extreme_f32(xo, r, sign);
      continue;
    }
    TD_VLOOP(i, inner, yo[i] = xo[i]);
    for (int64_t k = 1; k < r; k++) {
      const float *restrict row = xo + k * inner;
      TD_VLOOP(i, inner, float v = row[i];
               yo[i] = ((sign * v > sign * yo[i]) | (v != v)) ? v : yo[i]);
    }
  }
}

/* Index of the first maximum; a NaN counts as the maximum (torch.argmax).
 * Needs r >= 1. */
static void argmax_kernel(const float *x, const reduce_plan *pl, int64_t *y, double *work) {
  int64_t r = pl->r, inner = pl->inner;
  double *best = work;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *xo = x + o * r * inner;
    int64_t *yo = y + o * inner;
    if (inner == 1) {
      float b = xo[0];
      int64_t at = 0;
      for (int64_t k = 1; k < r && b == b; k++)
        if (xo[k] > b || xo[k] != xo[k]) b = xo[k], at = k;
      yo[0] = at;
      continue;
    }
    for (int64_t i = 0; i < inner; i++)
      best[i] = xo[i], yo[i] = 0;
    for (int64_t k = 1; k < r; k++) {
      const float *row = xo + k * inner;
      for (int64_t i = 0; i < inner; i++) {
        double v = row[i];
        if (v > best[i] || (v != v && best[i] == best[i])) best[i] = v, yo[i] = k;
      }
    }
  }
}

/* The shift for logsumexp: the maximum, except that an infinite maximum is
 * not used (PyTorch's rule), so all -inf gives -inf rather than NaN. */
static float lse_shift(float m) { return isinf(m) ? 0.0f : m; }

/* exp(x[k] - shift) summed in double, through a stack buffer so that the
 * exponentials vectorize. */
static double sum_exp(const float *x, int64_t n, float shift) {
  float buf[256];
  double s = 0;
  for (int64_t k = 0; k < n; k += 256) {
    int64_t len = n - k < 256 ? n - k : 256;
    const float *restrict xk = x + k;
    float *restrict b = buf;
    TD_VLOOP(i, len, b[i] = td_vexpf(xk[i] - shift));
    s += td_sum_f64(buf, len);
  }
  return s;
}

static void logsumexp_kernel(const float *restrict x, const reduce_plan *pl, float *restrict y,
                             double *restrict work) {
  int64_t r = pl->r, inner = pl->inner;
  double *restrict acc = work;
  float *restrict shift = (float *)(work + inner);
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *xo = x + o * r * inner;
    float *restrict yo = y + o * inner;
    if (inner == 1) {
      float s = lse_shift(r ? td_extreme_f32(xo, r, 1.0f) : -INFINITY);
      yo[0] = (float)(log(sum_exp(xo, r, s)) + s);
      continue;
    }
    TD_VLOOP(i, inner, shift[i] = -INFINITY);
    for (int64_t k = 0; k < r; k++) {
      const float *restrict row = xo + k * inner;
      TD_VLOOP(i, inner, float v = row[i]; shift[i] = ((v > shift[i]) | (v != v)) ? v : shift[i]);
    }
    for (int64_t i = 0; i < inner; i++)
      shift[i] = lse_shift(shift[i]);
    TD_VLOOP(i, inner, acc[i] = 0);
    for (int64_t k = 0; k < r; k++) {
      const float *restrict row = xo + k * inner;
      TD_VLOOP(i, inner, acc[i] += td_vexpf(row[i] - shift[i]));
    }
    for (int64_t i = 0; i < inner; i++)
      yo[i] = (float)(log(acc[i]) + shift[i]);
  }
}

/* ---- ops ------------------------------------------------------------------ */

typedef enum reduce_kind { K_SUM, K_MEAN, K_MAX, K_MIN, K_VAR, K_LOGSUMEXP, K_ARGMAX } reduce_kind;

static td_status reduce_forward(td_op_ctx *ctx, reduce_kind kind, td_tensor **out) {
  const char *op = ctx->def->name;
  const td_reduce_params *p = ctx->params;
  td_tensor *x = ctx->inputs[0];
  if (!x) return td_error(TD_ERR_INVALID_ARGUMENT, "%s: input is NULL", op);
  if (!p) return td_error(TD_ERR_INVALID_ARGUMENT, "%s: params are NULL", op);
  td_status st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input");
  if (st) return st;
  if (kind == K_ARGMAX && p->naxes > 1)
    return td_error(TD_ERR_INVALID_ARGUMENT, "argmax: reduces one axis, got %d axes", p->naxes);
  reduce_plan pl;
  if ((st = make_plan(op, p, x->ndim, x->shape, &pl))) return st;
  if ((kind == K_MAX || kind == K_MIN || kind == K_ARGMAX) && (st = check_nonempty(op, &pl)))
    return st;

  td_tensor *xl = NULL, *y = NULL;
  double *work = NULL;
  if ((st = layout_of(&pl, x, &xl))) return st;
  if ((st = td_tensor_empty(kind == K_ARGMAX ? TD_INT64 : TD_FLOAT32, pl.out_ndim, pl.out_shape,
                            &y)))
    goto fail;
  if (pl.inner > 1 && !(work = td_alloc(sizeof(double) * 2 * (size_t)pl.inner, op))) {
    st = TD_ERR_NO_MEMORY;
    goto fail;
  }
  const float *xp = td_tensor_f32(xl);
  switch (kind) {
  case K_SUM: sum_kernel(xp, &pl, 1.0, td_tensor_f32(y), work); break;
  case K_MEAN: sum_kernel(xp, &pl, pl.r ? 1.0 / (double)pl.r : NAN, td_tensor_f32(y), work); break;
  case K_MAX: extreme_kernel(xp, &pl, 1.0f, td_tensor_f32(y)); break;
  case K_MIN: extreme_kernel(xp, &pl, -1.0f, td_tensor_f32(y)); break;
  case K_VAR: var_kernel(xp, &pl, p->correction, td_tensor_f32(y), work); break;
  case K_LOGSUMEXP: logsumexp_kernel(xp, &pl, td_tensor_f32(y), work); break;
  case K_ARGMAX: argmax_kernel(xp, &pl, td_tensor_i64(y), work); break;
  }
  td_free(work);
  td_tensor_release(xl);
  *out = y;
  return TD_OK;
fail:
  td_free(work);
  td_tensor_release(xl);
  td_tensor_release(y);
  return st;
}

/* ---- backward kernels: the layout gradient gl from g (outer * inner) ------
 * Row and column paths as in forward. `work` holds at least inner doubles. */

static void broadcast_grad(const float *restrict g, const reduce_plan *pl, float scale,
                           float *restrict gl) {
  int64_t r = pl->r, inner = pl->inner;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *restrict go = g + o * inner;
    float *restrict glo = gl + o * r * inner;
    if (inner == 1) {
      float v = go[0] * scale;
      TD_VLOOP(k, r, glo[k] = v);
      continue;
    }
    for (int64_t k = 0; k < r; k++) {
      float *restrict row = glo + k * inner;
      TD_VLOOP(i, inner, row[i] = go[i] * scale);
    }
  }
}

/* Gradient of max/min: split evenly among the elements equal to the result.
 * A NaN result matches nothing, and 0 * (g / 0) makes the group NaN, as in
 * PyTorch. */
static void extreme_grad(const float *restrict x, const float *restrict y, const float *restrict g,
                         const reduce_plan *pl, float *restrict gl, double *restrict work) {
  int64_t r = pl->r, inner = pl->inner;
  double *restrict share = work;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *restrict xo = x + o * r * inner, *yo = y + o * inner, *go = g + o * inner;
    float *restrict glo = gl + o * r * inner;
    if (inner == 1) {
      float m = yo[0];
      int64_t ties = 0;
      for (int64_t k = 0; k < r; k++)
        ties += xo[k] == m;
      float v = ties ? (float)((double)go[0] / (double)ties) : NAN;
      if (ties)
        TD_VLOOP(k, r, glo[k] = xo[k] == m ? v : 0.0f);
      else
        TD_VLOOP(k, r, glo[k] = v);
      continue;
    }
    TD_VLOOP(i, inner, share[i] = 0);
    for (int64_t k = 0; k < r; k++) {
      const float *restrict row = xo + k * inner;
      TD_VLOOP(i, inner, share[i] += (double)(row[i] == yo[i]));
    }
    TD_VLOOP(i, inner, share[i] = go[i] / share[i]);
    for (int64_t k = 0; k < r; k++) {
      const float *restrict row = xo + k * inner;
      float *restrict grow = glo + k * inner;
      TD_VLOOP(i, inner, grow[i] = (row[i] == yo[i] ? 1.0f : 0.0f) * (float)share[i]);
    }
  }
}

static void var_grad(const float *restrict x, const float *restrict g, const reduce_plan *pl,
                     int correction, float *restrict gl, double *restrict work) {
  int64_t r = pl->r, inner = pl->inner;
  double two_scale = 2 * var_scale(r, correction);
  double *restrict mean = work;
  if (r == 0) return;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *restrict xo = x + o * r * inner, *go = g + o * inner;
    float *restrict glo = gl + o * r * inner;
    group_mean(xo, r, inner, mean);
    if (inner == 1) {
      double m = mean[0], v = go[0] * two_scale;
      TD_VLOOP(k, r, glo[k] = (float)(v * (xo[k] - m)));
      continue;
    }
    for (int64_t k = 0; k < r; k++) {
      const float *restrict row = xo + k * inner;
      float *restrict grow = glo + k * inner;
      TD_VLOOP(i, inner, grow[i] = (float)(go[i] * two_scale * (row[i] - mean[i])));
    }
  }
}

static void logsumexp_grad(const float *restrict x, const float *restrict y,
                           const float *restrict g, const reduce_plan *pl, float *restrict gl) {
  int64_t r = pl->r, inner = pl->inner;
  for (int64_t o = 0; o < pl->outer; o++) {
    const float *restrict xo = x + o * r * inner, *yo = y + o * inner, *go = g + o * inner;
    float *restrict glo = gl + o * r * inner;
    if (inner == 1) {
      float gv = go[0], yv = yo[0];
      TD_VLOOP(k, r, glo[k] = gv * td_vexpf(xo[k] - yv));
      continue;
    }
    for (int64_t k = 0; k < r; k++) {
      const float *restrict row = xo + k * inner;
      float *restrict grow = glo + k * inner;
      TD_VLOOP(i, inner, grow[i] = go[i] * td_vexpf(row[i] - yo[i]));
    }
  }
}

static td_status reduce_backward(td_op_ctx *ctx, reduce_kind kind, td_tensor *gy, td_tensor **gx) {
  if (!ctx->needs_input_grad[0]) return TD_OK;
  const td_reduce_params *p = ctx->params;
  const td_tensor_meta *m = &ctx->input_meta[0];
  reduce_plan pl;
  td_status st = make_plan(ctx->def->name, p, m->ndim, m->shape, &pl);
  if (st) return st;
  td_tensor *g = NULL, *gl = NULL, *xl = NULL, *y = NULL;
  double *work = NULL;
  if ((st = td_tensor_contiguous(gy, &g))) return st;
  if ((st = layout_empty(&pl, &gl))) goto done;
  bool needs_x = kind != K_SUM && kind != K_MEAN;
  if (needs_x && (st = layout_of(&pl, ctx->inputs[0], &xl))) goto done;
  if ((kind == K_MAX || kind == K_MIN || kind == K_LOGSUMEXP) &&
      (st = td_tensor_contiguous(ctx->output, &y)))
    goto done;
  if (!(work = td_alloc(sizeof(double) * (size_t)pl.inner, "reduce backward"))) {
    st = TD_ERR_NO_MEMORY;
    goto done;
  }
  const float *gp = td_tensor_f32(g);
  float *glp = td_tensor_f32(gl);
  switch (kind) {
  case K_SUM: broadcast_grad(gp, &pl, 1.0f, glp); break;
  case K_MEAN: broadcast_grad(gp, &pl, pl.r ? (float)(1.0 / (double)pl.r) : NAN, glp); break;
  case K_MAX:
  case K_MIN: extreme_grad(td_tensor_f32(xl), td_tensor_f32(y), gp, &pl, glp, work); break;
  case K_VAR: var_grad(td_tensor_f32(xl), gp, &pl, p->correction, glp, work); break;
  case K_LOGSUMEXP: logsumexp_grad(td_tensor_f32(xl), td_tensor_f32(y), gp, &pl, glp); break;
  case K_ARGMAX: break; /* not differentiable: never recorded */
  }
  st = grad_from_layout(&pl, gl, &gx[0]);
  gl = NULL;
done:
  td_free(work);
  td_tensor_release(g);
  td_tensor_release(gl);
  td_tensor_release(xl);
  td_tensor_release(y);
  return st;
}

#define REDUCE_OP(name, kind, saves)                                                               \
  static td_status name##_forward(td_op_ctx *ctx, td_tensor **out) {                               \
    return reduce_forward(ctx, kind, out);                                                         \
  }                                                                                                \
  static td_status name##_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {                \
    return reduce_backward(ctx, kind, gy, gx);                                                     \
  }                                                                                                \
  const td_op_def td_op_##name = {                                                                 \
      #name, 1, sizeof(td_reduce_params), saves, name##_forward, name##_backward};

REDUCE_OP(sum, K_SUM, TD_SAVE_NONE)
REDUCE_OP(mean, K_MEAN, TD_SAVE_NONE)
REDUCE_OP(max, K_MAX, TD_SAVE_INPUTS | TD_SAVE_OUTPUT)
REDUCE_OP(min, K_MIN, TD_SAVE_INPUTS | TD_SAVE_OUTPUT)
REDUCE_OP(var, K_VAR, TD_SAVE_INPUTS)
REDUCE_OP(logsumexp, K_LOGSUMEXP, TD_SAVE_INPUTS | TD_SAVE_OUTPUT)

static td_status argmax_forward(td_op_ctx *ctx, td_tensor **out) {
  return reduce_forward(ctx, K_ARGMAX, out);
}
const td_op_def td_op_argmax = {"argmax",       1,   sizeof(td_reduce_params), TD_SAVE_NONE,
                                argmax_forward, NULL};

/* ---- public wrappers ------------------------------------------------------ */

static td_status reduce_apply(td_op op, const char *name, td_tensor *x, const int *axes, int naxes,
                              bool keepdims, int correction, td_tensor **out) {
  *out = NULL;
  if (naxes < 0 || naxes > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: %d axes given, expected 0 to %d", name, naxes,
                    TD_MAX_DIMS);
  if (naxes > 0 && !axes)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: axes is NULL with naxes %d", name, naxes);
  td_reduce_params p;
  memset(&p, 0, sizeof p);
  p.naxes = naxes;
  if (naxes > 0) memcpy(p.axes, axes, sizeof(int) * (size_t)naxes);
  p.keepdims = keepdims;
  p.correction = correction;
  return td_apply(op, &p, &x, 1, out);
}

td_status td_sum(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out) {
  return reduce_apply(TD_OP_SUM, "sum", x, axes, naxes, keepdims, 0, out);
}
td_status td_mean(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out) {
  return reduce_apply(TD_OP_MEAN, "mean", x, axes, naxes, keepdims, 0, out);
}
td_status td_max(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out) {
  return reduce_apply(TD_OP_MAX, "max", x, axes, naxes, keepdims, 0, out);
}
td_status td_min(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out) {
  return reduce_apply(TD_OP_MIN, "min", x, axes, naxes, keepdims, 0, out);
}
td_status td_var(td_tensor *x, const int *axes, int naxes, int correction, bool keepdims,
                 td_tensor **out) {
  return reduce_apply(TD_OP_VAR, "var", x, axes, naxes, keepdims, correction, out);
}
td_status td_logsumexp(td_tensor *x, const int *axes, int naxes, bool keepdims, td_tensor **out) {
  return reduce_apply(TD_OP_LOGSUMEXP, "logsumexp", x, axes, naxes, keepdims, 0, out);
}
td_status td_argmax(td_tensor *x, int axis, bool keepdims, td_tensor **out) {
  return reduce_apply(TD_OP_ARGMAX, "argmax", x, &axis, 1, keepdims, 0, out);
}
