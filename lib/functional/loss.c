/* loss.c - cross_entropy, nll_loss, mse_loss, l1_loss and bce_with_logits. */
#include "functional/loss.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "functional/op.h"
#include "functional/vec.h"

/* ---- shared checks and reduction ------------------------------------------ */

static td_status check_reduction(const char *op, const td_loss_params *p) {
  if (!p) return td_error(TD_ERR_INVALID_ARGUMENT, "%s: params are NULL", op);
  if (p->reduction != TD_REDUCTION_MEAN && p->reduction != TD_REDUCTION_SUM &&
      p->reduction != TD_REDUCTION_NONE)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: unknown reduction %d (expected MEAN = 0, SUM = 1 or NONE = 2)", op,
                    (int)p->reduction);
  return TD_OK;
}

static td_status check_present(const td_op_ctx *ctx) {
  for (int i = 0; i < ctx->n_inputs; i++)
    if (!ctx->inputs[i])
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: %s is NULL", ctx->def->name,
                      i ? "target" : "input");
  return TD_OK;
}

/* The reduced loss: a 0-d tensor holding the sum, or the mean over n terms
 * (NaN for n == 0, as PyTorch). */
static td_status scalar_loss(td_reduction reduction, double total, int64_t n, td_tensor **out) {
  double v = reduction == TD_REDUCTION_SUM ? total : n ? total / (double)n : NAN;
  int64_t no_dims[1] = {0};
  return td_tensor_full(TD_FLOAT32, 0, no_dims, v, out);
}

/* How backward scales term i of the loss: g[i * stride] * factor, where a
 * reduced loss has one output gradient (stride 0) and MEAN divides it by n. */
typedef struct grad_scale {
  const float *g;
  int64_t stride;
  float factor;
} grad_scale;

static grad_scale grad_scale_of(td_reduction reduction, const td_tensor *gy, int64_t n) {
  grad_scale s = {td_tensor_f32(gy), 0, 1.0f};
  if (reduction == TD_REDUCTION_NONE)
    s.stride = 1;
  else if (reduction == TD_REDUCTION_MEAN)
    s.factor = n ? (float)(1.0 / (double)n) : NAN;
  return s;
}

/* ---- class-index losses: cross_entropy, nll_loss --------------------------- */

/* Validates input [N, C] float32 and target [N] int64 with 0 <= target < C,
 * before anything is allocated. */
static td_status check_class_target(const td_op_ctx *ctx, const char *input_role) {
  const char *op = ctx->def->name;
  td_status st = check_present(ctx);
  if (st) return st;
  if ((st = td_op_check_dtype(ctx, 0, TD_FLOAT32, input_role))) return st;
  if ((st = td_op_check_ndim(ctx, 0, 2, 2, input_role))) return st;
  if ((st = td_op_check_dtype(ctx, 1, TD_INT64, "class indices as target"))) return st;
  const td_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
  if (t->ndim != 1 || t->shape[0] != x->shape[0]) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(
        TD_ERR_INVALID_ARGUMENT, "%s: target has shape %s, expected [%lld] to match %s %s", op,
        td_tensor_shape_str(a, t), (long long)x->shape[0], input_role, td_tensor_shape_str(b, x));
  }
  int64_t c = x->shape[1];
  const int64_t *tp = td_tensor_i64(t);
  for (int64_t i = 0; i < t->shape[0]; i++) {
    int64_t v = tp[i * t->strides[0]];
    if (v < 0 || v >= c)
      return td_error(TD_ERR_OUT_OF_RANGE,
                      "%s: target[%lld] = %lld is out of range for %lld classes (expected 0 <= "
                      "target < %lld)%s",
                      op, (long long)i, (long long)v, (long long)c, (long long)c,
                      v == -100 ? "; ignore_index is not supported" : "");
  }
  return TD_OK;
}

static inline int64_t target_at(const td_tensor *t, int64_t i) {
  return td_tensor_i64(t)[i * t->strides[0]];
}

/* exp(z - max z) of one row into e, normalised to the softmax if asked;
 * returns log(sum(exp(z))). Needs c >= 1. */
TD_KERNEL static double softmax_row(const float *restrict z, int64_t c, float *restrict e,
                                    bool normalize) {
  float m = td_extreme_f32(z, c, 1.0f);
  TD_VLOOP(k, c, e[k] = td_vexpf(z[k] - m));
  double s = td_sum_f64(e, c);
  if (normalize) {
    float inv = (float)(1.0 / s);
    TD_VLOOP(k, c, e[k] *= inv);
  }
  return m + log(s);
}

/* Cross-entropy of logits [N, C] against class indices, with PyTorch's label
 * smoothing: each sample's loss is
 *   (1 - eps) * -log p[t] + (eps / C) * sum_c -log p[c]
 *   = lse - (1 - eps) * z[t] - (eps / C) * sum_c z[c],   lse = log sum exp z,
 * so one pass per row (max, exp-sum, logit sum) gives it. The gradient is
 * softmax - (1 - eps) * onehot - eps / C, scaled; when recording, the
 * softmax probabilities are kept for it. */
static td_status cross_entropy_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_loss_params *p = ctx->params;
  td_status st = check_reduction("cross_entropy", p);
  if (st) return st;
  if (!(p->label_smoothing >= 0.0f && p->label_smoothing <= 1.0f))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "cross_entropy: label_smoothing must be in [0, 1], got %g",
                    (double)p->label_smoothing);
  if ((st = check_class_target(ctx, "logits"))) return st;
  td_tensor *target = ctx->inputs[1], *x = NULL, *prob = NULL, *y = NULL;
  float *scratch = NULL;
  if ((st = td_tensor_contiguous(ctx->inputs[0], &x))) return st;
  int64_t n = x->shape[0], c = x->shape[1];
  /* The exponentials go into the saved probabilities when recording, else
   * into one row of scratch. */
  if (ctx->recording) {
    if ((st = td_tensor_empty(TD_FLOAT32, 2, x->shape, &prob))) goto fail;
  } else if (!(scratch = td_alloc(sizeof(float) * (size_t)c, "cross_entropy row"))) {
    st = TD_ERR_NO_MEMORY;
    goto fail;
  }
  if (p->reduction == TD_REDUCTION_NONE && (st = td_tensor_empty(TD_FLOAT32, 1, &n, &y))) goto fail;

  double eps = p->label_smoothing, total = 0;
  const float *xp = td_tensor_f32(x);
  for (int64_t i = 0; i < n; i++) {
    const float *z = xp + i * c;
    double lse = softmax_row(z, c, prob ? td_tensor_f32(prob) + i * c : scratch, prob != NULL);
    double loss = lse - (1 - eps) * z[target_at(target, i)];
    if (eps > 0) loss -= eps / (double)c * td_sum_f64(z, c);
    if (y)
      td_tensor_f32(y)[i] = (float)loss;
    else
      total += loss;
  }
  td_free(scratch);
  scratch = NULL;
  if (!y && (st = scalar_loss(p->reduction, total, n, &y))) goto fail;
  if (prob && ((st = td_op_save(ctx, prob)) || (st = td_op_save(ctx, target)))) goto fail;
  td_tensor_release(prob);
  td_tensor_release(x);
  *out = y;
  return TD_OK;
fail:
  td_free(scratch);
  td_tensor_release(prob);
  td_tensor_release(x);
  td_tensor_release(y);
  return st;
}

/* d[k] = (p[k] - shift) * w */
static void shifted_scale(const float *restrict p, int64_t c, float shift, float w,
                          float *restrict d) {
  TD_VLOOP(k, c, d[k] = (p[k] - shift) * w);
}

static td_status cross_entropy_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  if (!ctx->needs_input_grad[0]) return TD_OK;
  const td_loss_params *p = ctx->params;
  td_tensor *prob = ctx->saved_tensors[0], *target = ctx->saved_tensors[1], *g, *dx;
  int64_t n = prob->shape[0], c = prob->shape[1];
  td_status st = td_tensor_contiguous(gy, &g);
  if (st) return st;
  if ((st = td_tensor_empty(TD_FLOAT32, 2, prob->shape, &dx))) {
    td_tensor_release(g);
    return st;
  }
  grad_scale s = grad_scale_of(p->reduction, g, n);
  float eps = p->label_smoothing, smooth = c ? eps / (float)c : 0.0f;
  for (int64_t i = 0; i < n; i++) {
    float *d = td_tensor_f32(dx) + i * c, w = s.g[i * s.stride] * s.factor;
    shifted_scale(td_tensor_f32(prob) + i * c, c, smooth, w, d);
    d[target_at(target, i)] -= (1 - eps) * w;
  }
  td_tensor_release(g);
  gx[0] = dx;
  return TD_OK;
}

/* nll_loss: -log_probs[i, target[i]] per sample. */
static td_status nll_loss_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_loss_params *p = ctx->params;
  td_status st = check_reduction("nll_loss", p);
  if (st) return st;
  if ((st = check_class_target(ctx, "log_probs"))) return st;
  td_tensor *x = ctx->inputs[0], *target = ctx->inputs[1], *y = NULL;
  int64_t n = x->shape[0];
  if (p->reduction == TD_REDUCTION_NONE && (st = td_tensor_empty(TD_FLOAT32, 1, &n, &y))) return st;
  const float *xp = td_tensor_f32(x);
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = -xp[i * x->strides[0] + target_at(target, i) * x->strides[1]];
    if (y)
      td_tensor_f32(y)[i] = v;
    else
      total += v;
  }
  if (!y && (st = scalar_loss(p->reduction, total, n, &y))) return st;
  if (ctx->recording && (st = td_op_save(ctx, target))) {
    td_tensor_release(y);
    return st;
  }
  *out = y;
  return TD_OK;
}

static td_status nll_loss_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  if (!ctx->needs_input_grad[0]) return TD_OK;
  const td_loss_params *p = ctx->params;
  const td_tensor_meta *m = &ctx->input_meta[0];
  td_tensor *target = ctx->saved_tensors[0], *g, *dx;
  int64_t n = m->shape[0], c = m->shape[1];
  td_status st = td_tensor_contiguous(gy, &g);
  if (st) return st;
  if ((st = td_tensor_zeros(TD_FLOAT32, 2, m->shape, &dx))) {
    td_tensor_release(g);
    return st;
  }
  grad_scale s = grad_scale_of(p->reduction, g, n);
  float *d = td_tensor_f32(dx);
  for (int64_t i = 0; i < n; i++)
    d[i * c + target_at(target, i)] = -s.g[i * s.stride] * s.factor;
  td_tensor_release(g);
  gx[0] = dx;
  return TD_OK;
}

/* ---- pointwise losses: mse_loss, l1_loss, bce_with_logits ------------------- */

typedef enum pointwise_kind { PW_MSE, PW_L1, PW_BCE } pointwise_kind;

/* out[i] = loss(a[i], b[i]); a switch outside the loops keeps each loop
 * simple enough to vectorize. */
static void pointwise_loss(pointwise_kind kind, const float *restrict a, const float *restrict b,
                           int64_t n, float *restrict out) {
  switch (kind) {
  case PW_MSE: TD_VLOOP(i, n, float d = a[i] - b[i]; out[i] = d * d); break;
  case PW_L1: TD_VLOOP(i, n, out[i] = fabsf(a[i] - b[i])); break;
  case PW_BCE:
    /* max(x, 0) - x * y + log(1 + exp(-|x|)): no overflow for any x. */
    for (int64_t i = 0; i < n; i++) {
      float x = a[i];
      out[i] = (x > 0 ? x : 0) - x * b[i] + log1pf(td_vexpf(-fabsf(x)));
    }
    break;
  }
}

static td_status pointwise_forward(td_op_ctx *ctx, pointwise_kind kind, td_tensor **out) {
  const char *op = ctx->def->name;
  const td_loss_params *p = ctx->params;
  td_status st = check_reduction(op, p);
  if (st) return st;
  if ((st = check_present(ctx))) return st;
  if ((st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input"))) return st;
  if ((st = td_op_check_dtype(ctx, 1, TD_FLOAT32, "target"))) return st;
  td_tensor *in = ctx->inputs[0], *tg = ctx->inputs[1];
  if (!td_shape_equal(in->ndim, in->shape, tg->ndim, tg->shape)) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: input %s and target %s must have the same shape",
                    op, td_tensor_shape_str(a, in), td_tensor_shape_str(b, tg));
  }
  td_tensor *a = NULL, *b = NULL, *y = NULL;
  if ((st = td_tensor_contiguous(in, &a)) || (st = td_tensor_contiguous(tg, &b))) goto done;
  const float *ap = td_tensor_f32(a), *bp = td_tensor_f32(b);
  int64_t n = a->numel;
  if (p->reduction == TD_REDUCTION_NONE) {
    if ((st = td_tensor_empty(TD_FLOAT32, a->ndim, a->shape, &y))) goto done;
    pointwise_loss(kind, ap, bp, n, td_tensor_f32(y));
  } else {
    /* Chunks through a stack buffer: no temporary the size of the input. */
    float buf[512];
    double total = 0;
    for (int64_t i = 0; i < n; i += 512) {
      int64_t len = n - i < 512 ? n - i : 512;
      pointwise_loss(kind, ap + i, bp + i, len, buf);
      total += td_sum_f64(buf, len);
    }
    st = scalar_loss(p->reduction, total, n, &y);
  }
done:
  td_tensor_release(a);
  td_tensor_release(b);
  if (!st) *out = y;
  return st;
}

/* d loss / d input, unscaled: 2 (a - b); sign(a - b) with sign(0) = 0;
 * sigmoid(a) - b. */
static void pointwise_grad(pointwise_kind kind, const float *restrict a, const float *restrict b,
                           int64_t n, float *restrict d) {
  switch (kind) {
  case PW_MSE: TD_VLOOP(i, n, d[i] = 2 * (a[i] - b[i])); break;
  case PW_L1: TD_VLOOP(i, n, d[i] = (float)((a[i] > b[i]) - (a[i] < b[i]))); break;
  case PW_BCE:
    /* sigmoid through e = exp(-|x|), which never overflows: 1 / (1 + e)
     * for x >= 0, e / (1 + e) below. */
    TD_VLOOP(i, n, float e = td_vexpf(-fabsf(a[i]));
             d[i] = (a[i] >= 0 ? 1.0f : e) / (1 + e) - b[i]);
    break;
  }
}

/* d[i] *= scale of term i (a per-term gradient, or one shared one). */
static void scale_terms(float *restrict d, grad_scale s, float sign, int64_t n) {
  if (s.stride == 0) {
    float w = sign * s.g[0] * s.factor;
    TD_VLOOP(i, n, d[i] *= w);
    return;
  }
  const float *restrict g = s.g;
  float w = sign * s.factor;
  TD_VLOOP(i, n, d[i] *= g[i] * w);
}

/* Float targets of the pointwise losses get their true gradient if they are
 * tracked (as in PyTorch): minus the input's for mse and l1, -x for bce. */
static td_status pointwise_backward(td_op_ctx *ctx, pointwise_kind kind, td_tensor *gy,
                                    td_tensor **gx) {
  const td_loss_params *p = ctx->params;
  td_tensor *a = NULL, *b = NULL, *g = NULL, *da = NULL, *db = NULL;
  td_status st;
  if ((st = td_tensor_contiguous(ctx->inputs[0], &a)) ||
      (st = td_tensor_contiguous(ctx->inputs[1], &b)) || (st = td_tensor_contiguous(gy, &g)))
    goto fail;
  int64_t n = a->numel;
  grad_scale s = grad_scale_of(p->reduction, g, n);
  const float *ap = td_tensor_f32(a), *bp = td_tensor_f32(b);
  if (ctx->needs_input_grad[0]) {
    if ((st = td_tensor_empty(TD_FLOAT32, a->ndim, a->shape, &da))) goto fail;
    pointwise_grad(kind, ap, bp, n, td_tensor_f32(da));
    scale_terms(td_tensor_f32(da), s, 1.0f, n);
  }
  if (ctx->needs_input_grad[1]) {
    if ((st = td_tensor_empty(TD_FLOAT32, b->ndim, b->shape, &db))) goto fail;
    float *d = td_tensor_f32(db);
    if (kind == PW_BCE)
      memcpy(d, ap, sizeof(float) * (size_t)n); /* d loss / d target = -x */
    else
      pointwise_grad(kind, ap, bp, n, d); /* minus d loss / d input */
    scale_terms(d, s, -1.0f, n);
  }
  td_tensor_release(a);
  td_tensor_release(b);
  td_tensor_release(g);
  gx[0] = da;
  gx[1] = db;
  return TD_OK;
fail:
  td_tensor_release(a);
  td_tensor_release(b);
  td_tensor_release(g);
  td_tensor_release(da);
  return st;
}

#define POINTWISE_OP(name, kind)                                                                   \
  static td_status name##_forward(td_op_ctx *ctx, td_tensor **out) {                               \
    return pointwise_forward(ctx, kind, out);                                                      \
  }                                                                                                \
  static td_status name##_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {                \
    return pointwise_backward(ctx, kind, gy, gx);                                                  \
  }                                                                                                \
  const td_op_def td_op_##name = {                                                                 \
      #name, 2, sizeof(td_loss_params), TD_SAVE_INPUTS, name##_forward, name##_backward};

POINTWISE_OP(mse_loss, PW_MSE)
POINTWISE_OP(l1_loss, PW_L1)
POINTWISE_OP(bce_with_logits, PW_BCE)

/* Both save what they need themselves (probabilities, targets) when recording. */
const td_op_def td_op_cross_entropy = {.name = "cross_entropy",
                                       .n_inputs = 2,
                                       .params_size = sizeof(td_loss_params),
                                       .saves = TD_SAVE_NONE,
                                       .forward = cross_entropy_forward,
                                       .backward = cross_entropy_backward};
const td_op_def td_op_nll_loss = {.name = "nll_loss",
                                  .n_inputs = 2,
                                  .params_size = sizeof(td_loss_params),
                                  .saves = TD_SAVE_NONE,
                                  .forward = nll_loss_forward,
                                  .backward = nll_loss_backward};

/* ---- public wrappers ------------------------------------------------------ */

static td_status loss_apply(td_op op, td_tensor *a, td_tensor *b, td_reduction reduction,
                            float label_smoothing, td_tensor **out) {
  td_loss_params p;
  memset(&p, 0, sizeof p);
  p.reduction = reduction;
  p.label_smoothing = label_smoothing;
  td_tensor *inputs[2] = {a, b};
  return td_apply(op, &p, inputs, 2, out);
}

td_status td_cross_entropy(td_tensor *logits, td_tensor *target, td_reduction reduction,
                           float label_smoothing, td_tensor **out) {
  return loss_apply(TD_OP_CROSS_ENTROPY, logits, target, reduction, label_smoothing, out);
}
td_status td_nll_loss(td_tensor *log_probs, td_tensor *target, td_reduction reduction,
                      td_tensor **out) {
  return loss_apply(TD_OP_NLL_LOSS, log_probs, target, reduction, 0, out);
}
td_status td_mse_loss(td_tensor *pred, td_tensor *target, td_reduction reduction, td_tensor **out) {
  return loss_apply(TD_OP_MSE_LOSS, pred, target, reduction, 0, out);
}
td_status td_l1_loss(td_tensor *pred, td_tensor *target, td_reduction reduction, td_tensor **out) {
  return loss_apply(TD_OP_L1_LOSS, pred, target, reduction, 0, out);
}
td_status td_binary_cross_entropy_with_logits(td_tensor *logits, td_tensor *target,
                                              td_reduction reduction, td_tensor **out) {
  return loss_apply(TD_OP_BCE_WITH_LOGITS, logits, target, reduction, 0, out);
}
