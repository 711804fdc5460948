/* activation.c - relu, leaky_relu, sigmoid, tanh, gelu, silu, softmax and log_softmax. */
#include "functional/activation.h"

#include <math.h>

#include "core/alloc.h"
#include "functional/elementwise_map.h"
#include "functional/op.h"

/* ---- pointwise activations ----------------------------------------------------
 * Forward loops see the input as u; backward loops see the gradient as u and
 * the saved input or output as v. */

/* -0 and NaN pass through unchanged, as torch.relu. */
TD_EW_UNARY_LOOP(relu_loop, u < 0.0f ? 0.0f : u)
/* torch's threshold_backward on the output: no gradient where y <= 0. */
TD_EW_BINARY_LOOP(relu_grad_loop, v <= 0.0f ? 0.0f : u)

/* Selects without a branch (see td_ew_select) so that the loops vectorize. */
TD_EW_UNARY_LOOP(leaky_relu_loop, td_ew_select(u > 0.0f, u, u * p0))
TD_EW_BINARY_LOOP(leaky_relu_grad_loop, td_ew_select(v > 0.0f, u, u * p0))

TD_EW_UNARY_LOOP(sigmoid_loop, 1.0f / (1.0f + td_ew_expf(-u)))
TD_EW_BINARY_LOOP(sigmoid_grad_loop, u * (1.0f - v) * v)

TD_EW_UNARY_LOOP(tanh_loop, td_ew_tanhf(u))
TD_EW_BINARY_LOOP(tanh_grad_loop, u * (1.0f - v * v))

/* gelu(x) = x * Phi(x); its derivative is Phi(x) + x * phi(x), phi the
 * standard normal density. */
TD_EW_INLINE float gelu_grad(float x) {
  float pdf;
  const float cdf = td_ew_normal_cdf_pdf(x, &pdf);
  return cdf + x * pdf;
}
TD_EW_UNARY_LOOP(gelu_loop, u * td_ew_normal_cdf(u))
TD_EW_BINARY_LOOP(gelu_grad_loop, u * gelu_grad(v))

/* silu(x) = x * s, s = sigmoid(x); derivative s * (1 + x * (1 - s)). */
TD_EW_INLINE float sigmoidf(float x) { return 1.0f / (1.0f + td_ew_expf(-x)); }
TD_EW_UNARY_LOOP(silu_loop, u * sigmoidf(u))
TD_EW_BINARY_LOOP(silu_grad_loop, u * sigmoidf(v) * (1.0f + v * (1.0f - sigmoidf(v))))

static td_status pointwise_forward(td_op_ctx *ctx, td_ew_unary_loop loop, float p0,
                                   td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  return st ? st : td_ew_unary(loop, ctx->inputs[0], p0, 0, out);
}

/* gx = loop(gy, v), v the saved input or output (same shape as gy). */
static td_status pointwise_backward(td_ew_binary_loop loop, td_tensor *gy, const td_tensor *v,
                                    float p0, td_tensor **gx) {
  return td_ew_binary(loop, gy, v, p0, 0, gy->ndim, gy->shape, &gx[0]);
}

static float slope_of(const td_op_ctx *ctx) {
  return ((const td_activation_params *)ctx->params)->negative_slope;
}

static td_status relu_forward(td_op_ctx *ctx, td_tensor **out) {
  return pointwise_forward(ctx, relu_loop, 0, out);
}
static td_status relu_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return pointwise_backward(relu_grad_loop, gy, ctx->output, 0, gx);
}
static td_status leaky_relu_forward(td_op_ctx *ctx, td_tensor **out) {
  return pointwise_forward(ctx, leaky_relu_loop, slope_of(ctx), out);
}
static td_status leaky_relu_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return pointwise_backward(leaky_relu_grad_loop, gy, ctx->inputs[0], slope_of(ctx), gx);
}
static td_status sigmoid_forward(td_op_ctx *ctx, td_tensor **out) {
  return pointwise_forward(ctx, sigmoid_loop, 0, out);
}
static td_status sigmoid_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return pointwise_backward(sigmoid_grad_loop, gy, ctx->output, 0, gx);
}
static td_status tanh_forward(td_op_ctx *ctx, td_tensor **out) {
  return pointwise_forward(ctx, tanh_loop, 0, out);
}
static td_status tanh_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return pointwise_backward(tanh_grad_loop, gy, ctx->output, 0, gx);
}
static td_status gelu_forward(td_op_ctx *ctx, td_tensor **out) {
  return pointwise_forward(ctx, gelu_loop, 0, out);
}
static td_status gelu_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return pointwise_backward(gelu_grad_loop, gy, ctx->inputs[0], 0, gx);
}
static td_status silu_forward(td_op_ctx *ctx, td_tensor **out) {
  return pointwise_forward(ctx, silu_loop, 0, out);
}
static td_status silu_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return pointwise_backward(silu_grad_loop, gy, ctx->inputs[0], 0, gx);
}

/* ---- softmax, log_softmax -------------------------------------------------------
 * The axis splits a contiguous tensor into [outer, d, inner] blocks. With
 * inner == 1 (the last axis) each softmax is one contiguous row; otherwise
 * the d elements of a softmax are inner apart, and the loops run across
 * inner (contiguous) so they still vectorize. */

typedef struct softmax_layout {
  int64_t outer, d, inner;
} softmax_layout;

static softmax_layout layout_of(const int64_t *shape, int ndim, int axis) {
  softmax_layout l = {1, ndim > 0 ? shape[axis] : 1, 1};
  for (int i = 0; i < axis; i++) l.outer *= shape[i];
  for (int i = axis + 1; i < ndim; i++) l.inner *= shape[i];
  return l;
}

/* Row reductions with TD_EW_BLOCK independent lanes: the compiler may not
 * reorder a float sum by itself, and lanes both vectorize and (in double) keep
 * long rows accurate. */
#define LANES TD_EW_BLOCK
static float row_max(const float *x, int64_t n) {
  float m[LANES];
  for (int k = 0; k < LANES; k++) m[k] = -INFINITY;
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES)
    for (int k = 0; k < LANES; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
  for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
  float r = m[0];
  for (int k = 1; k < LANES; k++) r = m[k] > r ? m[k] : r;
  return r;
}

static double lanes_total(const double *s) {
  double r = 0;
  for (int k = 0; k < LANES; k++) r += s[k];
  return r;
}

/* sum of a[i] * (b ? b[i] : 1). */
static double row_dot(const float *a, const float *b, int64_t n) {
  double s[LANES] = {0};
  int64_t i = 0;
  if (b) {
    for (; i + LANES <= n; i += LANES)
      for (int k = 0; k < LANES; k++) s[k] += (double)a[i + k] * b[i + k];
    for (; i < n; i++) s[0] += (double)a[i] * b[i];
  } else {
    for (; i + LANES <= n; i += LANES)
      for (int k = 0; k < LANES; k++) s[k] += a[i + k];
    for (; i < n; i++) s[0] += a[i];
  }
  return lanes_total(s);
}

/* sum of exp(x[i] - m), also storing each exp in y unless y is NULL. */
static double row_exp_sum(const float *restrict x, float m, float *restrict y, int64_t n) {
  double s[LANES] = {0};
  int64_t i = 0;
  if (y) {
    for (; i + LANES <= n; i += LANES)
      for (int k = 0; k < LANES; k++) s[k] += y[i + k] = td_ew_expf(x[i + k] - m);
    for (; i < n; i++) s[0] += y[i] = td_ew_expf(x[i] - m);
  } else {
    for (; i + LANES <= n; i += LANES)
      for (int k = 0; k < LANES; k++) s[k] += td_ew_expf(x[i + k] - m);
    for (; i < n; i++) s[0] += td_ew_expf(x[i] - m);
  }
  return lanes_total(s);
}
#undef LANES

/* One softmax of a row: y = exp(x - max) / sum, or for log_softmax
 * y = x - max - log(sum). x may contain -inf; a NaN spreads to the row. */
static void softmax_row(const float *restrict x, float *restrict y, int64_t n, bool log_out) {
  const float m = row_max(x, n);
  if (log_out) {
    /* (x - m) first: it is exact near the max, where x - (m + log(sum))
     * would lose the digits of log(sum) to m's magnitude. */
    const float log_sum = (float)log(row_exp_sum(x, m, NULL, n));
    TD_EW_FOR(i, n, y[i] = (x[i] - m) - log_sum);
  } else {
    const float inv = (float)(1.0 / row_exp_sum(x, m, y, n));
    TD_EW_FOR(i, n, y[i] *= inv);
  }
}

/* The same for the d elements of each of `inner` softmaxes interleaved with
 * stride inner; mx (floats) and sum (doubles) hold one entry per softmax. */
static void softmax_block(const float *restrict x, float *restrict y, softmax_layout l,
                          bool log_out, float *restrict mx, double *restrict sum) {
  const int64_t inner = l.inner;
  TD_EW_FOR(j, inner, mx[j] = -INFINITY; sum[j] = 0);
  for (int64_t k = 0; k < l.d; k++) {
    const float *xk = x + k * inner;
    TD_EW_FOR(j, inner, mx[j] = xk[j] > mx[j] ? xk[j] : mx[j]);
  }
  for (int64_t k = 0; k < l.d; k++) {
    const float *xk = x + k * inner;
    float *yk = y + k * inner;
    TD_EW_FOR(j, inner, yk[j] = td_ew_expf(xk[j] - mx[j]); sum[j] += yk[j]);
  }
  if (log_out) {
    for (int64_t j = 0; j < inner; j++) sum[j] = log(sum[j]);
    for (int64_t k = 0; k < l.d; k++) {
      const float *xk = x + k * inner;
      float *yk = y + k * inner;
      TD_EW_FOR(j, inner, yk[j] = (xk[j] - mx[j]) - (float)sum[j]);
    }
  } else {
    TD_EW_FOR(j, inner, mx[j] = (float)(1.0 / sum[j]));
    for (int64_t k = 0; k < l.d; k++) {
      float *yk = y + k * inner;
      TD_EW_FOR(j, inner, yk[j] *= mx[j]);
    }
  }
}

/* Scratch for the interleaved case: inner doubles then inner floats, one
 * block to free with td_free(*sum). */
static td_status block_scratch(softmax_layout l, float **mx, double **sum) {
  *mx = NULL;
  *sum = NULL;
  if (l.inner <= 1) return TD_OK; /* the row kernel, or no elements at all */
  *sum = td_alloc((size_t)l.inner * (sizeof(double) + sizeof(float)), "softmax scratch");
  if (!*sum) return TD_ERR_NO_MEMORY;
  *mx = (float *)(void *)(*sum + l.inner);
  return TD_OK;
}

static td_status softmax_forward_impl(td_op_ctx *ctx, bool log_out, td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  if (st) return st;
  td_tensor *x0 = ctx->inputs[0];
  int axis;
  if ((st = td_axis_normalize(ctx->def->name, ((const td_activation_params *)ctx->params)->axis,
                              x0->ndim, &axis)))
    return st;
  softmax_layout l = layout_of(x0->shape, x0->ndim, axis);
  float *mx;
  double *sum;
  if ((st = block_scratch(l, &mx, &sum))) return st;
  td_tensor *x = NULL, *y = NULL;
  if (!(st = td_tensor_contiguous(x0, &x)) &&
      !(st = td_tensor_empty(TD_FLOAT32, x0->ndim, x0->shape, &y)) && l.d > 0) {
    const float *xp = td_tensor_f32(x);
    float *yp = td_tensor_f32(y);
    const int64_t block = l.d * l.inner;
    for (int64_t o = 0; o < l.outer; o++) {
      if (l.inner == 1)
        softmax_row(xp + o * block, yp + o * block, l.d, log_out);
      else
        softmax_block(xp + o * block, yp + o * block, l, log_out, mx, sum);
    }
  }
  td_free(sum);
  td_tensor_release(x);
  if (st) {
    td_tensor_release(y);
    return st;
  }
  *out = y;
  return TD_OK;
}

/* softmax:     gx = y * (gy - sum(gy * y))
 * log_softmax: gx = gy - exp(y) * sum(gy)      (sums along the axis) */
static void softmax_grad_row(const float *restrict g, const float *restrict y,
                             float *restrict gx, int64_t n, bool log_out) {
  if (log_out) {
    const float s = (float)row_dot(g, NULL, n);
    TD_EW_FOR(i, n, gx[i] = g[i] - td_ew_expf(y[i]) * s);
  } else {
    const float s = (float)row_dot(g, y, n);
    TD_EW_FOR(i, n, gx[i] = y[i] * (g[i] - s));
  }
}

static void softmax_grad_block(const float *restrict g, const float *restrict y,
                               float *restrict gx, softmax_layout l, bool log_out,
                               float *restrict sf, double *restrict sum) {
  const int64_t inner = l.inner;
  TD_EW_FOR(j, inner, sum[j] = 0);
  for (int64_t k = 0; k < l.d; k++) {
    const float *gk = g + k * inner, *yk = y + k * inner;
    if (log_out)
      TD_EW_FOR(j, inner, sum[j] += gk[j]);
    else
      TD_EW_FOR(j, inner, sum[j] += (double)gk[j] * yk[j]);
  }
  TD_EW_FOR(j, inner, sf[j] = (float)sum[j]);
  for (int64_t k = 0; k < l.d; k++) {
    const float *gk = g + k * inner, *yk = y + k * inner;
    float *xk = gx + k * inner;
    if (log_out)
      TD_EW_FOR(j, inner, xk[j] = gk[j] - td_ew_expf(yk[j]) * sf[j]);
    else
      TD_EW_FOR(j, inner, xk[j] = yk[j] * (gk[j] - sf[j]));
  }
}

static td_status softmax_backward_impl(td_op_ctx *ctx, bool log_out, td_tensor *gy,
                                       td_tensor **gx) {
  const td_tensor *y = ctx->output; /* contiguous: forward made it */
  int axis;
  td_status st = td_axis_normalize(
      ctx->def->name, ((const td_activation_params *)ctx->params)->axis, y->ndim, &axis);
  if (st) return st;
  softmax_layout l = layout_of(y->shape, y->ndim, axis);
  float *sf;
  double *sum;
  if ((st = block_scratch(l, &sf, &sum))) return st;
  td_tensor *g = NULL, *r = NULL;
  if (!(st = td_tensor_contiguous(gy, &g)) &&
      !(st = td_tensor_empty(TD_FLOAT32, y->ndim, y->shape, &r)) && l.d > 0) {
    const float *gp = td_tensor_f32(g), *yp = td_tensor_f32(y);
    float *rp = td_tensor_f32(r);
    const int64_t block = l.d * l.inner;
    for (int64_t o = 0; o < l.outer; o++) {
      if (l.inner == 1)
        softmax_grad_row(gp + o * block, yp + o * block, rp + o * block, l.d, log_out);
      else
        softmax_grad_block(gp + o * block, yp + o * block, rp + o * block, l, log_out, sf, sum);
    }
  }
  td_free(sum);
  td_tensor_release(g);
  if (st) {
    td_tensor_release(r);
    return st;
  }
  gx[0] = r;
  return TD_OK;
}

static td_status softmax_forward(td_op_ctx *ctx, td_tensor **out) {
  return softmax_forward_impl(ctx, false, out);
}
static td_status softmax_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return softmax_backward_impl(ctx, false, gy, gx);
}
static td_status log_softmax_forward(td_op_ctx *ctx, td_tensor **out) {
  return softmax_forward_impl(ctx, true, out);
}
static td_status log_softmax_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return softmax_backward_impl(ctx, true, gy, gx);
}

/* ---- the table rows and the public wrappers -------------------------------------- */

#define PARAMS sizeof(td_activation_params)
const td_op_def td_op_relu = {"relu", 1, 0, TD_SAVE_OUTPUT, relu_forward, relu_backward};
const td_op_def td_op_leaky_relu = {"leaky_relu", 1, PARAMS, TD_SAVE_INPUTS, leaky_relu_forward,
                                    leaky_relu_backward};
const td_op_def td_op_sigmoid = {"sigmoid", 1, 0, TD_SAVE_OUTPUT, sigmoid_forward,
                                 sigmoid_backward};
const td_op_def td_op_tanh = {"tanh", 1, 0, TD_SAVE_OUTPUT, tanh_forward, tanh_backward};
const td_op_def td_op_gelu = {"gelu", 1, 0, TD_SAVE_INPUTS, gelu_forward, gelu_backward};
const td_op_def td_op_silu = {"silu", 1, 0, TD_SAVE_INPUTS, silu_forward, silu_backward};
const td_op_def td_op_softmax = {"softmax", 1, PARAMS, TD_SAVE_OUTPUT, softmax_forward,
                                 softmax_backward};
const td_op_def td_op_log_softmax = {"log_softmax", 1, PARAMS, TD_SAVE_OUTPUT,
                                     log_softmax_forward, log_softmax_backward};
#undef PARAMS

static td_status activation(td_op op, td_tensor *x, float negative_slope, int axis,
                            td_tensor **out) {
  td_activation_params p = {negative_slope, axis};
  return td_apply(op, &p, &x, 1, out);
}

td_status td_relu(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_RELU, NULL, &x, 1, out); }
td_status td_leaky_relu(td_tensor *x, float negative_slope, td_tensor **out) {
  return activation(TD_OP_LEAKY_RELU, x, negative_slope, 0, out);
}
td_status td_sigmoid(td_tensor *x, td_tensor **out) {
  return td_apply(TD_OP_SIGMOID, NULL, &x, 1, out);
}
td_status td_tanh(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_TANH, NULL, &x, 1, out); }
td_status td_gelu(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_GELU, NULL, &x, 1, out); }
td_status td_silu(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_SILU, NULL, &x, 1, out); }
td_status td_softmax(td_tensor *x, int axis, td_tensor **out) {
  return activation(TD_OP_SOFTMAX, x, 0, axis, out);
}
td_status td_log_softmax(td_tensor *x, int axis, td_tensor **out) {
  return activation(TD_OP_LOG_SOFTMAX, x, 0, axis, out);
}
