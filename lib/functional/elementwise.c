/* elementwise.c - broadcasting binary ops and unary math on float32, PyTorch's semantics. */
#include "functional/elementwise.h"

#include <math.h>

#include "functional/elementwise_map.h"
#include "functional/op.h"

/* ---- inner loops ----------------------------------------------------------
 * u, v: the elements of the first and second operand; p0, p1: op scalars. */

TD_EW_BINARY_LOOP(add_loop, u + v)
TD_EW_BINARY_LOOP(sub_loop, u - v)
TD_EW_BINARY_LOOP(mul_loop, u * v)
TD_EW_BINARY_LOOP(div_loop, u / v)
/* NaN in either operand wins, as torch.maximum / torch.minimum. */
TD_EW_BINARY_LOOP(maximum_loop, (u != u || u > v) ? u : v)
TD_EW_BINARY_LOOP(minimum_loop, (u != u || u < v) ? u : v)
/* The share of the gradient that goes to u: all of it when u is the winner,
 * half on a tie, none when v wins. Neither wins against NaN, so both operands
 * then get the whole gradient (torch's where/masked_fill formula does too). */
TD_EW_BINARY_LOOP(max_share_loop, u < v ? 0.0f : (u == v ? 0.5f : 1.0f))
TD_EW_BINARY_LOOP(min_share_loop, u > v ? 0.0f : (u == v ? 0.5f : 1.0f))
TD_EW_BINARY_LOOP(neg_mul_loop, -(u * v))
TD_EW_BINARY_LOOP(scaled_mul_loop, u * (p0 * v))
TD_EW_BINARY_LOOP(half_div_loop, u / (2.0f * v))
/* u: gradient, v: input. sgn(0) = 0 (and 0 for NaN, as torch.sgn). */
TD_EW_BINARY_LOOP(abs_grad_loop, u * (float)((v > 0.0f) - (v < 0.0f)))
TD_EW_BINARY_LOOP(clamp_grad_loop, (v >= p0 && v <= p1) ? u : 0.0f)

TD_EW_UNARY_LOOP(neg_loop, -u)
TD_EW_UNARY_LOOP(exp_loop, td_ew_expf(u))
TD_EW_UNARY_LOOP(log_loop, td_ew_logf(u))
TD_EW_UNARY_LOOP(abs_loop, fabsf(u))
TD_EW_UNARY_LOOP(clamp_loop, u < p0 ? p0 : (u > p1 ? p1 : u)) /* NaN stays NaN */
TD_EW_UNARY_LOOP(add_scalar_loop, u + p0)
TD_EW_UNARY_LOOP(mul_scalar_loop, u * p0)
/* Vectorized because the build uses -fno-math-errno (sqrtf need not set
 * errno, so it becomes the correctly rounded vector square root). */
TD_EW_UNARY_LOOP(sqrt_loop, sqrtf(u))
/* 1 / sqrt(x), for x ** -0.5 (PyTorch's rsqrt). */
TD_EW_UNARY_LOOP(rsqrt_loop, 1.0f / sqrtf(u))

/* x ** p: the exponents PyTorch special-cases get exact, fast forms; the rest
 * go through powf. */
TD_EW_UNARY_LOOP(pow0_loop, ((void)u, 1.0f)) /* 1 even for NaN, as torch */
TD_EW_UNARY_LOOP(copy_loop, u)
TD_EW_UNARY_LOOP(square_loop, u * u)
TD_EW_UNARY_LOOP(cube_loop, u * u * u)
TD_EW_UNARY_LOOP(reciprocal_loop, 1.0f / u)
TD_EW_UNARY_LOOP(inv_square_loop, 1.0f / (u * u))
TD_EW_UNARY_LOOP(powf_loop, powf(u, p0))

static td_ew_unary_loop pow_loop_for(float p) {
  if (p == 0.0f) return pow0_loop;
  if (p == 1.0f) return copy_loop;
  if (p == 2.0f) return square_loop;
  if (p == 3.0f) return cube_loop;
  if (p == 0.5f) return sqrt_loop;
  if (p == -0.5f) return rsqrt_loop;
  if (p == -1.0f) return reciprocal_loop;
  if (p == -2.0f) return inv_square_loop;
  return powf_loop;
}

/* ---- shared pieces of forward and backward --------------------------------- */

/* A binary op's inputs: both float32 and broadcastable; writes the output shape. */
static td_status check_binary(td_op_ctx *ctx, int *ndim, int64_t *shape) {
  const td_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
  if (a->dtype != TD_FLOAT32 || b->dtype != TD_FLOAT32) {
    char sa[TD_SHAPE_STR_MAX], sb[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected float32 inputs, got a %s %s and b %s %s",
                    ctx->def->name, td_dtype_name(a->dtype), td_tensor_shape_str(sa, a),
                    td_dtype_name(b->dtype), td_tensor_shape_str(sb, b));
  }
  return td_shape_broadcast(ctx->def->name, a->ndim, a->shape, b->ndim, b->shape, ndim, shape);
}

static td_status binary_forward(td_op_ctx *ctx, td_ew_binary_loop loop, td_tensor **out) {
  int ndim;
  int64_t shape[TD_MAX_DIMS];
  td_status st = check_binary(ctx, &ndim, shape);
  if (st) return st;
  return td_ew_binary(loop, ctx->inputs[0], ctx->inputs[1], 0, 0, ndim, shape, out);
}

/* *gx = `full` (the gradient at the output's shape) summed back to input i's
 * shape. Takes ownership of full. */
static td_status reduce_to_input(const td_op_ctx *ctx, int i, td_tensor *full, td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[i];
  if (td_shape_equal(full->ndim, full->shape, m->ndim, m->shape)) {
    *gx = full;
    return TD_OK;
  }
  td_status st = td_tensor_sum_to_shape(full, m->ndim, m->shape, gx);
  td_tensor_release(full);
  return st;
}

/* ---- add, sub ---------------------------------------------------------------- */

static td_status add_forward(td_op_ctx *ctx, td_tensor **out) {
  return binary_forward(ctx, add_loop, out);
}

static td_status sub_forward(td_op_ctx *ctx, td_tensor **out) {
  return binary_forward(ctx, sub_loop, out);
}

/* gy summed to input i's shape, negated if `negate`. */
static td_status pass_through(const td_op_ctx *ctx, int i, td_tensor *gy, bool negate,
                              td_tensor **gx) {
  const td_tensor_meta *m = &ctx->input_meta[i];
  if (td_shape_equal(gy->ndim, gy->shape, m->ndim, m->shape)) {
    if (!negate) {
      *gx = td_tensor_retain(gy);
      return TD_OK;
    }
    return td_ew_unary(neg_loop, gy, 0, 0, gx);
  }
  if (!negate) return td_tensor_sum_to_shape(gy, m->ndim, m->shape, gx);
  td_tensor *sum;
  td_status st = td_tensor_sum_to_shape(gy, m->ndim, m->shape, &sum);
  if (st) return st;
  st = td_ew_unary(neg_loop, sum, 0, 0, gx);
  td_tensor_release(sum);
  return st;
}

static td_status add_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  td_status st = TD_OK;
  for (int i = 0; i < 2 && !st; i++)
    if (ctx->needs_input_grad[i]) st = pass_through(ctx, i, gy, false, &gx[i]);
  return st;
}

static td_status sub_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  td_status st = TD_OK;
  for (int i = 0; i < 2 && !st; i++)
    if (ctx->needs_input_grad[i]) st = pass_through(ctx, i, gy, i == 1, &gx[i]);
  return st;
}

/* ---- mul, div ------------------------------------------------------------------ */

static td_status mul_forward(td_op_ctx *ctx, td_tensor **out) {
  return binary_forward(ctx, mul_loop, out);
}

static td_status mul_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  for (int i = 0; i < 2; i++) {
    if (!ctx->needs_input_grad[i]) continue;
    td_tensor *full;
    td_status st = td_ew_binary(mul_loop, gy, ctx->inputs[1 - i], 0, 0, gy->ndim, gy->shape, &full);
    if (!st) st = reduce_to_input(ctx, i, full, &gx[i]);
    if (st) return st;
  }
  return TD_OK;
}

static td_status div_forward(td_op_ctx *ctx, td_tensor **out) {
  return binary_forward(ctx, div_loop, out);
}

/* y = a / b: da = gy / b, db = -gy * a / b^2 = -(gy / b) * y. */
static td_status div_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  td_tensor *q;
  td_status st = td_ew_binary(div_loop, gy, ctx->inputs[1], 0, 0, gy->ndim, gy->shape, &q);
  if (st) return st;
  if (ctx->needs_input_grad[1]) {
    td_tensor *full;
    st = td_ew_binary(neg_mul_loop, q, ctx->output, 0, 0, gy->ndim, gy->shape, &full);
    if (!st) st = reduce_to_input(ctx, 1, full, &gx[1]);
    if (st) {
      td_tensor_release(q);
      return st;
    }
  }
  if (ctx->needs_input_grad[0]) return reduce_to_input(ctx, 0, q, &gx[0]);
  td_tensor_release(q);
  return TD_OK;
}

/* ---- maximum, minimum ------------------------------------------------------------ */

static td_status maximum_forward(td_op_ctx *ctx, td_tensor **out) {
  return binary_forward(ctx, maximum_loop, out);
}

static td_status minimum_forward(td_op_ctx *ctx, td_tensor **out) {
  return binary_forward(ctx, minimum_loop, out);
}

/* Input i's gradient is gy times its share share(x_i, x_other). */
static td_status shared_backward(td_op_ctx *ctx, td_ew_binary_loop share, td_tensor *gy,
                                 td_tensor **gx) {
  for (int i = 0; i < 2; i++) {
    if (!ctx->needs_input_grad[i]) continue;
    td_tensor *weight, *full;
    td_status st = td_ew_binary(share, ctx->inputs[i], ctx->inputs[1 - i], 0, 0, gy->ndim,
                                gy->shape, &weight);
    if (st) return st;
    st = td_ew_binary(mul_loop, weight, gy, 0, 0, gy->ndim, gy->shape, &full);
    td_tensor_release(weight);
    if (st || (st = reduce_to_input(ctx, i, full, &gx[i]))) return st;
  }
  return TD_OK;
}

static td_status maximum_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return shared_backward(ctx, max_share_loop, gy, gx);
}

static td_status minimum_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return shared_backward(ctx, min_share_loop, gy, gx);
}

/* ---- unary math --------------------------------------------------------------- */

/* y = loop(x) for a float32 input. */
static td_status unary_forward(td_op_ctx *ctx, td_ew_unary_loop loop, td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  return st ? st : td_ew_unary(loop, ctx->inputs[0], 0, 0, out);
}

/* gx = loop(gy, t; p0, p1): a unary op's gradient from gy and what it saved
 * (its input or its output), at gy's shape. */
static td_status unary_backward(td_ew_binary_loop loop, td_tensor *gy, const td_tensor *t, float p0,
                                float p1, td_tensor **gx) {
  return td_ew_binary(loop, gy, t, p0, p1, gy->ndim, gy->shape, gx);
}

/* The scalar of pow, add_scalar and mul_scalar. */
static float scalar_param(const td_op_ctx *ctx) {
  return ((const td_scalar_params *)ctx->params)->a;
}

static td_status neg_forward(td_op_ctx *ctx, td_tensor **out) {
  return unary_forward(ctx, neg_loop, out);
}

static td_status neg_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return td_ew_unary(neg_loop, gy, 0, 0, &gx[0]);
}

static td_status exp_forward(td_op_ctx *ctx, td_tensor **out) {
  return unary_forward(ctx, exp_loop, out);
}

static td_status exp_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return unary_backward(mul_loop, gy, ctx->output, 0, 0, &gx[0]);
}

/* Out-of-domain inputs give NaN (x < 0) and -inf (x == 0), as PyTorch. */
static td_status log_forward(td_op_ctx *ctx, td_tensor **out) {
  return unary_forward(ctx, log_loop, out);
}

static td_status log_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return unary_backward(div_loop, gy, ctx->inputs[0], 0, 0, &gx[0]);
}

static td_status sqrt_forward(td_op_ctx *ctx, td_tensor **out) {
  return unary_forward(ctx, sqrt_loop, out);
}

static td_status sqrt_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return unary_backward(half_div_loop, gy, ctx->output, 0, 0, &gx[0]);
}

static td_status abs_forward(td_op_ctx *ctx, td_tensor **out) {
  return unary_forward(ctx, abs_loop, out);
}

static td_status abs_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return unary_backward(abs_grad_loop, gy, ctx->inputs[0], 0, 0, &gx[0]);
}

/* The scalar ops check their input before reading params. */
static td_status pow_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  if (st) return st;
  float p = scalar_param(ctx);
  return td_ew_unary(pow_loop_for(p), ctx->inputs[0], p, 0, out);
}

/* d(x^p)/dx = p * x^(p-1); exactly 0 for p == 0 (even where x^-1 is inf). */
static td_status pow_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  float p = scalar_param(ctx);
  if (p == 0.0f) return td_tensor_zeros(TD_FLOAT32, gy->ndim, gy->shape, &gx[0]);
  td_tensor *t;
  td_status st = td_ew_unary(pow_loop_for(p - 1.0f), ctx->inputs[0], p - 1.0f, 0, &t);
  if (st) return st;
  st = unary_backward(scaled_mul_loop, gy, t, p, 0, &gx[0]);
  td_tensor_release(t);
  return st;
}

static td_status clamp_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  if (st) return st;
  const td_scalar_params *p = ctx->params;
  if (isnan(p->a) || isnan(p->b))
    return td_error(TD_ERR_INVALID_ARGUMENT, "clamp: bounds must not be NaN (lo %g, hi %g)",
                    (double)p->a, (double)p->b);
  if (p->a > p->b)
    return td_error(TD_ERR_INVALID_ARGUMENT, "clamp: lo %g is greater than hi %g", (double)p->a,
                    (double)p->b);
  return td_ew_unary(clamp_loop, ctx->inputs[0], p->a, p->b, out);
}

static td_status clamp_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  const td_scalar_params *p = ctx->params;
  return unary_backward(clamp_grad_loop, gy, ctx->inputs[0], p->a, p->b, &gx[0]);
}

static td_status add_scalar_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  return st ? st : td_ew_unary(add_scalar_loop, ctx->inputs[0], scalar_param(ctx), 0, out);
}

static td_status add_scalar_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  gx[0] = td_tensor_retain(gy);
  return TD_OK;
}

static td_status mul_scalar_forward(td_op_ctx *ctx, td_tensor **out) {
  td_status st = td_ew_check_float_input(ctx);
  return st ? st : td_ew_unary(mul_scalar_loop, ctx->inputs[0], scalar_param(ctx), 0, out);
}

static td_status mul_scalar_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  return td_ew_unary(mul_scalar_loop, gy, scalar_param(ctx), 0, &gx[0]);
}

/* ---- the table rows and the public wrappers --------------------------------------- */

#define PARAMS sizeof(td_scalar_params)
const td_op_def td_op_add = {"add", 2, 0, TD_SAVE_NONE, add_forward, add_backward};
const td_op_def td_op_sub = {"sub", 2, 0, TD_SAVE_NONE, sub_forward, sub_backward};
const td_op_def td_op_mul = {"mul", 2, 0, TD_SAVE_INPUTS, mul_forward, mul_backward};
const td_op_def td_op_div = {"div", 2, 0, TD_SAVE_INPUTS | TD_SAVE_OUTPUT, div_forward,
                             div_backward};
const td_op_def td_op_maximum = {"maximum", 2, 0, TD_SAVE_INPUTS, maximum_forward,
                                 maximum_backward};
const td_op_def td_op_minimum = {"minimum", 2, 0, TD_SAVE_INPUTS, minimum_forward,
                                 minimum_backward};
const td_op_def td_op_neg = {"neg", 1, 0, TD_SAVE_NONE, neg_forward, neg_backward};
const td_op_def td_op_exp = {"exp", 1, 0, TD_SAVE_OUTPUT, exp_forward, exp_backward};
const td_op_def td_op_log = {"log", 1, 0, TD_SAVE_INPUTS, log_forward, log_backward};
const td_op_def td_op_sqrt = {"sqrt", 1, 0, TD_SAVE_OUTPUT, sqrt_forward, sqrt_backward};
const td_op_def td_op_abs = {"abs", 1, 0, TD_SAVE_INPUTS, abs_forward, abs_backward};
const td_op_def td_op_pow = {"pow", 1, PARAMS, TD_SAVE_INPUTS, pow_forward, pow_backward};
const td_op_def td_op_clamp = {"clamp", 1, PARAMS, TD_SAVE_INPUTS, clamp_forward, clamp_backward};
const td_op_def td_op_add_scalar = {"add_scalar", 1, PARAMS, TD_SAVE_NONE, add_scalar_forward,
                                    add_scalar_backward};
const td_op_def td_op_mul_scalar = {"mul_scalar", 1, PARAMS, TD_SAVE_NONE, mul_scalar_forward,
                                    mul_scalar_backward};
#undef PARAMS

static td_status binary(td_op op, td_tensor *a, td_tensor *b, td_tensor **out) {
  td_tensor *inputs[2] = {a, b};
  return td_apply(op, NULL, inputs, 2, out);
}

static td_status scalar_op(td_op op, td_tensor *x, float a, float b, td_tensor **out) {
  td_scalar_params p = {a, b};
  return td_apply(op, &p, &x, 1, out);
}

td_status td_add(td_tensor *a, td_tensor *b, td_tensor **out) {
  return binary(TD_OP_ADD, a, b, out);
}
td_status td_sub(td_tensor *a, td_tensor *b, td_tensor **out) {
  return binary(TD_OP_SUB, a, b, out);
}
td_status td_mul(td_tensor *a, td_tensor *b, td_tensor **out) {
  return binary(TD_OP_MUL, a, b, out);
}
td_status td_div(td_tensor *a, td_tensor *b, td_tensor **out) {
  return binary(TD_OP_DIV, a, b, out);
}
td_status td_maximum(td_tensor *a, td_tensor *b, td_tensor **out) {
  return binary(TD_OP_MAXIMUM, a, b, out);
}
td_status td_minimum(td_tensor *a, td_tensor *b, td_tensor **out) {
  return binary(TD_OP_MINIMUM, a, b, out);
}
td_status td_neg(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_NEG, NULL, &x, 1, out); }
td_status td_exp(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_EXP, NULL, &x, 1, out); }
td_status td_log(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_LOG, NULL, &x, 1, out); }
td_status td_sqrt(td_tensor *x, td_tensor **out) {
  return td_apply(TD_OP_SQRT, NULL, &x, 1, out);
}
td_status td_abs(td_tensor *x, td_tensor **out) { return td_apply(TD_OP_ABS, NULL, &x, 1, out); }
td_status td_pow(td_tensor *x, float exponent, td_tensor **out) {
  return scalar_op(TD_OP_POW, x, exponent, 0, out);
}
td_status td_clamp(td_tensor *x, float lo, float hi, td_tensor **out) {
  return scalar_op(TD_OP_CLAMP, x, lo, hi, out);
}
td_status td_add_scalar(td_tensor *x, float s, td_tensor **out) {
  return scalar_op(TD_OP_ADD_SCALAR, x, s, 0, out);
}
td_status td_mul_scalar(td_tensor *x, float s, td_tensor **out) {
  return scalar_op(TD_OP_MUL_SCALAR, x, s, 0, out);
}
