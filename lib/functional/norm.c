/* norm.c - batch_norm (batch or running statistics) and layer_norm, with their gradients. */
#include "functional/norm.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/op.h"

/* ---- accurate fast sums ------------------------------------------------------
 * Float partial sums over blocks of 256 elements in 8 independent lanes (so
 * the compiler vectorizes them), blocks added in double: close to double
 * accuracy for long rows at float speed. */

#define SUM_BLOCK 256

static double lanes_total(const float acc[8]) {
  return ((double)acc[0] + acc[1]) + ((double)acc[2] + acc[3]) + ((double)acc[4] + acc[5]) +
         ((double)acc[6] + acc[7]);
}

/* sum(p) */
static double sum_f32(const float *p, int64_t n) {
  double total = 0;
  int64_t i = 0;
  for (; i + SUM_BLOCK <= n; i += SUM_BLOCK) {
    float acc[8] = {0};
    for (int j = 0; j < SUM_BLOCK; j += 8)
      for (int k = 0; k < 8; k++)
        acc[k] += p[i + j + k];
    total += lanes_total(acc);
  }
  for (; i < n; i++)
    total += p[i];
  return total;
}

/* sum((p - c)^2) */
static double sum_sq_dev(const float *p, int64_t n, float c) {
  double total = 0;
  int64_t i = 0;
  for (; i + SUM_BLOCK <= n; i += SUM_BLOCK) {
    float acc[8] = {0};
    for (int j = 0; j < SUM_BLOCK; j += 8)
      for (int k = 0; k < 8; k++) {
        float d = p[i + j + k] - c;
        acc[k] += d * d;
      }
    total += lanes_total(acc);
  }
  for (; i < n; i++)
    total += ((double)p[i] - c) * ((double)p[i] - c);
  return total;
}

/* sum(g * (x - c)) */
static double dot_dev(const float *g, const float *x, int64_t n, float c) {
  double total = 0;
  int64_t i = 0;
  for (; i + SUM_BLOCK <= n; i += SUM_BLOCK) {
    float acc[8] = {0};
    for (int j = 0; j < SUM_BLOCK; j += 8)
      for (int k = 0; k < 8; k++)
        acc[k] += g[i + j + k] * (x[i + j + k] - c);
    total += lanes_total(acc);
  }
  for (; i < n; i++)
    total += (double)g[i] * ((double)x[i] - c);
  return total;
}

/* What backward needs besides the inputs: per channel (batch_norm) or per
 * row (layer_norm), the mean and 1/sqrt(var + eps) forward used. */
typedef struct norm_saved {
  bool batch_stats; /* batch_norm: statistics came from the batch */
  int64_t n;
  double stats[]; /* mean[n], then invstd[n] */
} norm_saved;

static norm_saved *norm_saved_new(int64_t n, const char *what) {
  norm_saved *sv = td_alloc(sizeof *sv + sizeof(double) * 2 * (size_t)n, what);
  if (sv) sv->n = n;
  return sv;
}

static bool valid_eps(float eps) { return isfinite(eps) && eps >= 0; }

/* A new float32 tensor of `shape` holding v rounded: the affine gradients sum
 * over the whole batch, so they accumulate in double. */
static td_status f32_from_f64(int ndim, const int64_t *shape, const double *v, td_tensor **out) {
  td_status st = td_tensor_empty(TD_FLOAT32, ndim, shape, out);
  if (st) return st;
  float *p = td_tensor_f32(*out);
  for (int64_t i = 0; i < (*out)->numel; i++)
    p[i] = (float)v[i];
  return TD_OK;
}

/* Element i of a 1-d float32 view. */
static inline float at1(const td_tensor *t, int64_t i) {
  return td_tensor_f32(t)[i * t->strides[0]];
}

/* ---- batch_norm -------------------------------------------------------------- */

/* x viewed as [N, C, S]. */
typedef struct bn_dims {
  int64_t N, C, S, M; /* M = N * S values per channel */
} bn_dims;

static bn_dims bn_dims_of(int ndim, const int64_t *shape) {
  bn_dims d = {shape[0], shape[1], 1, 0};
  for (int i = 2; i < ndim; i++)
    d.S *= shape[i];
  d.M = d.N * d.S;
  return d;
}

/* BatchNorm2d's passes over [N, C, S] split over the engine's threads once
 * the tensor is big enough to pay for waking them: the statistics by
 * channel, the elementwise passes by plane (n, c). One thread forms each
 * channel's sums, in the same order as without threads, so results do not
 * depend on the thread count. */
enum { BN_PARALLEL_MIN_ELEMENTS = 1 << 16 };

typedef struct bn_job {
  bn_dims d;
  const float *x, *gy;
  float *y;
  double *s0, *s1;                /* per-channel sums a pass writes */
  const double *mean;             /* the sums' centre */
  const float *meanf, *a, *k, *e; /* per-channel coefficients of a pass */
} bn_job;

/* Runs range over [0, units) (channels or planes) of j's tensor, in pieces. */
static void bn_run(bn_job *j, int64_t units, td_range_fn range) {
  int64_t elements = j->d.N * j->d.C * j->d.S;
  int nt = elements < BN_PARALLEL_MIN_ELEMENTS ? 1 : td_parallel_threads(units);
  td_parallel_for(units, 1, nt, range, j);
}

/* A per-channel vector (weight, bias, running stat) must be float32 [C]. */
static td_status check_channel_vector(const td_tensor *t, const char *role, const td_tensor *x) {
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  if (t->dtype != TD_FLOAT32)
    return td_error(TD_ERR_INVALID_ARGUMENT, "batch_norm: expected float32 %s, got %s", role,
                    td_dtype_name(t->dtype));
  if (t->ndim != 1 || t->shape[0] != x->shape[1])
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "batch_norm: %s has shape %s, expected [%lld] for input %s", role,
                    td_tensor_shape_str(a, t), (long long)x->shape[1], td_tensor_shape_str(b, x));
  return TD_OK;
}

static td_status batch_norm_validate(const td_op_ctx *ctx) {
  const td_batch_norm_params *p = ctx->params;
  const td_tensor *x = ctx->inputs[0];
  char s[TD_SHAPE_STR_MAX];
  if (!x) return td_error(TD_ERR_INVALID_ARGUMENT, "batch_norm: input is NULL");
  td_status st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input");
  if (st) return st;
  if ((st = td_op_check_ndim(ctx, 0, 2, 4, "input"))) return st;
  if (ctx->inputs[1] && (st = check_channel_vector(ctx->inputs[1], "weight", x))) return st;
  if (ctx->inputs[2] && (st = check_channel_vector(ctx->inputs[2], "bias", x))) return st;
  if (!p->running_mean != !p->running_var)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "batch_norm: running_mean and running_var must both be given or both be "
                    "NULL (%s is NULL)",
                    p->running_mean ? "running_var" : "running_mean");
  if (p->running_mean) {
    if ((st = check_channel_vector(p->running_mean, "running_mean", x))) return st;
    if ((st = check_channel_vector(p->running_var, "running_var", x))) return st;
  }
  if (!valid_eps(p->eps))
    return td_error(TD_ERR_INVALID_ARGUMENT, "batch_norm: eps must be finite and >= 0, got %g",
                    (double)p->eps);
  if (!isfinite(p->momentum))
    return td_error(TD_ERR_INVALID_ARGUMENT, "batch_norm: momentum must be finite, got %g",
                    (double)p->momentum);
  bn_dims d = bn_dims_of(x->ndim, x->shape);
  if (p->training && d.M <= 1)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "batch_norm: expected more than 1 value per channel when training, got "
                    "input %s",
                    td_tensor_shape_str(s, x));
  return TD_OK;
}

/* Channels [c0, c1) of bn_batch_stats for S > 1: mean into s0, variance into s1. */
static void bn_stats_range(void *arg, int64_t c0, int64_t c1) {
  const bn_job *j = arg;
  const bn_dims d = j->d;
  for (int64_t c = c0; c < c1; c++) {
    double s = 0;
    for (int64_t n = 0; n < d.N; n++)
      s += sum_f32(j->x + (n * d.C + c) * d.S, d.S);
    j->s0[c] = s / (double)d.M;
    double ss = 0;
    for (int64_t n = 0; n < d.N; n++)
      ss += sum_sq_dev(j->x + (n * d.C + c) * d.S, d.S, (float)j->s0[c]);
    j->s1[c] = ss / (double)d.M;
  }
}

/* Biased batch mean and variance per channel into mean[C], var[C]. */
static void bn_batch_stats(const float *x, bn_dims d, double *mean, double *var) {
  if (d.M == 0) {
    for (int64_t c = 0; c < d.C; c++)
      mean[c] = var[c] = 0;
    return;
  }
  if (d.S == 1) { /* [N, C]: accumulate whole rows, vectorized over channels */
    for (int64_t c = 0; c < d.C; c++)
      mean[c] = var[c] = 0;
    for (int64_t n = 0; n < d.N; n++)
      for (int64_t c = 0; c < d.C; c++)
        mean[c] += x[n * d.C + c];
    for (int64_t c = 0; c < d.C; c++)
      mean[c] /= (double)d.M;
    for (int64_t n = 0; n < d.N; n++)
      for (int64_t c = 0; c < d.C; c++) {
        double dev = x[n * d.C + c] - mean[c];
        var[c] += dev * dev;
      }
    for (int64_t c = 0; c < d.C; c++)
      var[c] /= (double)d.M;
    return;
  }
  bn_job j = {.d = d, .x = x, .s0 = mean, .s1 = var};
  bn_run(&j, d.C, bn_stats_range);
}

/* Planes [p0, p1) of bn_apply for S > 1 (scale in a, shift in e). */
static void bn_apply_range(void *arg, int64_t p0, int64_t p1) {
  const bn_job *j = arg;
  const int64_t C = j->d.C, S = j->d.S;
  for (int64_t pl = p0; pl < p1; pl++) {
    const int64_t c = pl % C;
    const float *xr = j->x + pl * S;
    float *yr = j->y + pl * S;
    const float m = j->meanf[c], a = j->a[c], b = j->e[c];
    for (int64_t s = 0; s < S; s++)
      yr[s] = (xr[s] - m) * a + b;
  }
}

/* y = (x - mean[c]) * scale[c] + shift[c] */
static void bn_apply(const float *x, float *y, bn_dims d, const float *mean, const float *scale,
                     const float *shift) {
  if (d.S == 1) {
    for (int64_t n = 0; n < d.N; n++) {
      const float *xr = x + n * d.C;
      float *yr = y + n * d.C;
      for (int64_t c = 0; c < d.C; c++)
        yr[c] = (xr[c] - mean[c]) * scale[c] + shift[c];
    }
    return;
  }
  bn_job j = {.d = d, .x = x, .y = y, .meanf = mean, .a = scale, .e = shift};
  bn_run(&j, d.N * d.C, bn_apply_range);
}

/* PyTorch's update: running = (1 - m) * running + m * batch, with the
 * unbiased batch variance. */
static void bn_update_running(const td_batch_norm_params *p, bn_dims d, const double *mean,
                              const double *var) {
  const double m = p->momentum, unbias = (double)d.M / (double)(d.M - 1);
  float *rm = td_tensor_f32(p->running_mean), *rv = td_tensor_f32(p->running_var);
  const int64_t sm = p->running_mean->strides[0], sv = p->running_var->strides[0];
  for (int64_t c = 0; c < d.C; c++) {
    rm[c * sm] = (float)((1 - m) * rm[c * sm] + m * mean[c]);
    rv[c * sv] = (float)((1 - m) * rv[c * sv] + m * var[c] * unbias);
  }
  td_tensor_bump_version(p->running_mean);
  td_tensor_bump_version(p->running_var);
}

static td_status batch_norm_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_batch_norm_params *p = ctx->params;
  td_status st = batch_norm_validate(ctx);
  if (st) return st;
  td_tensor *x = ctx->inputs[0], *w = ctx->inputs[1], *b = ctx->inputs[2];
  const bn_dims d = bn_dims_of(x->ndim, x->shape);
  const bool batch = p->training || !p->running_mean;

  td_tensor *xc = NULL, *y = NULL;
  float *buf = td_alloc(sizeof(float) * 3 * (size_t)d.C, "batch_norm buffers");
  norm_saved *sv = norm_saved_new(d.C, "batch_norm statistics");
  st = (!buf || !sv) ? TD_ERR_NO_MEMORY : td_tensor_contiguous(x, &xc);
  if (!st) st = td_tensor_empty(TD_FLOAT32, x->ndim, x->shape, &y);
  if (st) goto fail;

  double *mean = sv->stats, *var = sv->stats + d.C;
  if (batch) {
    bn_batch_stats(td_tensor_f32(xc), d, mean, var);
  } else {
    for (int64_t c = 0; c < d.C; c++) {
      mean[c] = at1(p->running_mean, c);
      var[c] = at1(p->running_var, c);
    }
  }
  float *meanf = buf, *scale = buf + d.C, *shift = buf + 2 * d.C;
  for (int64_t c = 0; c < d.C; c++) {
    double invstd = 1.0 / sqrt(var[c] + p->eps);
    meanf[c] = (float)mean[c];
    scale[c] = (float)(w ? at1(w, c) * invstd : invstd);
    shift[c] = b ? at1(b, c) : 0.0f;
  }
  bn_apply(td_tensor_f32(xc), td_tensor_f32(y), d, meanf, scale, shift);

  /* Nothing below can fail, so a failed call never touches the running stats. */
  if (p->training && p->running_mean) bn_update_running(p, d, mean, var);
  for (int64_t c = 0; c < d.C; c++)
    var[c] = 1.0 / sqrt(var[c] + p->eps); /* now invstd */
  sv->batch_stats = batch;
  if (ctx->recording) {
    ctx->saved = sv;
    sv = NULL;
  }
  td_free(sv);
  td_free(buf);
  td_tensor_release(xc);
  *out = y;
  return TD_OK;
fail:
  td_free(sv);
  td_free(buf);
  td_tensor_release(xc);
  td_tensor_release(y);
  return st;
}

/* Channels [c0, c1) of bn_grad_sums for S > 1 (sum_gy in s0, dot in s1). */
static void bn_grad_sums_range(void *arg, int64_t c0, int64_t c1) {
  const bn_job *j = arg;
  const bn_dims d = j->d;
  for (int64_t c = c0; c < c1; c++)
    for (int64_t n = 0; n < d.N; n++) {
      const int64_t o = (n * d.C + c) * d.S;
      j->s0[c] += sum_f32(j->gy + o, d.S);
      j->s1[c] += dot_dev(j->gy + o, j->x + o, d.S, (float)j->mean[c]);
    }
}

/* Per channel: sum(gy) into sum_gy and sum(gy * (x - mean)) into dot. */
static void bn_grad_sums(const float *gy, const float *x, bn_dims d, const double *mean,
                         double *sum_gy, double *dot) {
  for (int64_t c = 0; c < d.C; c++)
    sum_gy[c] = dot[c] = 0;
  if (d.S == 1) {
    for (int64_t n = 0; n < d.N; n++)
      for (int64_t c = 0; c < d.C; c++) {
        double g = gy[n * d.C + c];
        sum_gy[c] += g;
        dot[c] += g * (x[n * d.C + c] - mean[c]);
      }
    return;
  }
  bn_job j = {.d = d, .x = x, .gy = gy, .s0 = sum_gy, .s1 = dot, .mean = mean};
  bn_run(&j, d.C, bn_grad_sums_range);
}

/* Planes [p0, p1) of bn_input_grad for S > 1 (gx in y). */
static void bn_input_grad_range(void *arg, int64_t p0, int64_t p1) {
  const bn_job *j = arg;
  const int64_t C = j->d.C, S = j->d.S;
  for (int64_t pl = p0; pl < p1; pl++) {
    const int64_t c = pl % C, o = pl * S;
    const float ac = j->a[c], kc = j->k[c], ec = j->e[c], mc = j->meanf[c];
    for (int64_t s = 0; s < S; s++)
      j->y[o + s] = ac * j->gy[o + s] + kc * (j->x[o + s] - mc) + ec;
  }
}

/* gx = a[c] * gy + k[c] * (x - mean[c]) + e[c]  (k = e = 0 for running statistics) */
static void bn_input_grad(const float *gy, const float *x, float *gx, bn_dims d, const float *mean,
                          const float *a, const float *k, const float *e) {
  if (d.S == 1) {
    for (int64_t n = 0; n < d.N; n++) {
      const int64_t o = n * d.C;
      for (int64_t c = 0; c < d.C; c++)
        gx[o + c] = a[c] * gy[o + c] + k[c] * (x[o + c] - mean[c]) + e[c];
    }
    return;
  }
  bn_job j = {.d = d, .x = x, .gy = gy, .y = gx, .meanf = mean, .a = a, .k = k, .e = e};
  bn_run(&j, d.N * d.C, bn_input_grad_range);
}

static td_status batch_norm_backward(td_op_ctx *ctx, td_tensor *gy_in, td_tensor **gx) {
  const norm_saved *sv = ctx->saved;
  const td_tensor *w = ctx->inputs[1];
  const td_tensor_meta *xm = &ctx->input_meta[0];
  const bn_dims d = bn_dims_of(xm->ndim, xm->shape);
  const double *mean = sv->stats, *invstd = sv->stats + d.C;

  /* Gradients go straight into gx: on failure the tape releases what is there. */
  td_tensor *gy = NULL, *x = NULL;
  double *sums = td_alloc(sizeof(double) * 2 * (size_t)d.C, "batch_norm backward");
  float *buf = td_alloc(sizeof(float) * 4 * (size_t)d.C, "batch_norm backward");
  td_status st = (!sums || !buf) ? TD_ERR_NO_MEMORY : td_tensor_contiguous(gy_in, &gy);
  if (!st) st = td_tensor_contiguous(ctx->inputs[0], &x);
  if (st) goto done;
  double *sum_gy = sums, *dot = sums + d.C;
  bn_grad_sums(td_tensor_f32(gy), td_tensor_f32(x), d, mean, sum_gy, dot);

  if (ctx->needs_input_grad[1]) {
    if ((st = td_tensor_empty(TD_FLOAT32, 1, &d.C, &gx[1]))) goto done;
    for (int64_t c = 0; c < d.C; c++)
      td_tensor_f32(gx[1])[c] = (float)(dot[c] * invstd[c]);
  }
  if (ctx->needs_input_grad[2] && (st = f32_from_f64(1, &d.C, sum_gy, &gx[2]))) goto done;
  if (ctx->needs_input_grad[0]) {
    /* Batch statistics: gx = w*invstd * (gy - mean(gy) - xhat * mean(gy*xhat)),
     * xhat = (x - mean) * invstd. Running statistics are constants: gx = w*invstd*gy. */
    float *meanf = buf, *a = buf + d.C, *k = buf + 2 * d.C, *e = buf + 3 * d.C;
    for (int64_t c = 0; c < d.C; c++) {
      double ac = w ? at1(w, c) * invstd[c] : invstd[c];
      meanf[c] = (float)mean[c];
      a[c] = (float)ac;
      k[c] = sv->batch_stats ? (float)(-ac * invstd[c] * invstd[c] * dot[c] / (double)d.M) : 0;
      e[c] = sv->batch_stats ? (float)(-ac * sum_gy[c] / (double)d.M) : 0;
    }
    if ((st = td_tensor_empty(TD_FLOAT32, xm->ndim, xm->shape, &gx[0]))) goto done;
    bn_input_grad(td_tensor_f32(gy), td_tensor_f32(x), td_tensor_f32(gx[0]), d, meanf, a, k, e);
  }
done:
  td_tensor_release(gy);
  td_tensor_release(x);
  td_free(sums);
  td_free(buf);
  return st;
}

const td_op_def td_op_batch_norm = {
    "batch_norm",       3, sizeof(td_batch_norm_params), TD_SAVE_INPUTS, batch_norm_forward,
    batch_norm_backward};

td_status td_batch_norm(td_tensor *x, td_tensor *weight, td_tensor *bias,
                        const td_batch_norm_params *p, td_tensor **out) {
  *out = NULL;
  if (!p) return td_error(TD_ERR_INVALID_ARGUMENT, "batch_norm: params are NULL");
  td_tensor *inputs[3] = {x, weight, bias};
  return td_apply(TD_OP_BATCH_NORM, p, inputs, 3, out);
}

/* ---- layer_norm -------------------------------------------------------------- */

/* weight/bias must have exactly the normalized (trailing) shape of x. */
static td_status check_affine(const td_tensor *t, const char *role, const td_tensor *x, int k) {
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX], c[TD_SHAPE_STR_MAX];
  if (t->dtype != TD_FLOAT32)
    return td_error(TD_ERR_INVALID_ARGUMENT, "layer_norm: expected float32 %s, got %s", role,
                    td_dtype_name(t->dtype));
  const int64_t *trailing = x->shape + (x->ndim - k);
  if (!td_shape_equal(t->ndim, t->shape, k, trailing))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "layer_norm: %s has shape %s, expected the normalized shape %s of input %s",
                    role, td_tensor_shape_str(a, t), td_shape_str(b, sizeof b, k, trailing),
                    td_tensor_shape_str(c, x));
  return TD_OK;
}

static td_status layer_norm_validate(const td_op_ctx *ctx) {
  const td_layer_norm_params *p = ctx->params;
  const td_tensor *x = ctx->inputs[0];
  char s[TD_SHAPE_STR_MAX];
  if (!x) return td_error(TD_ERR_INVALID_ARGUMENT, "layer_norm: input is NULL");
  td_status st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input");
  if (st) return st;
  if (p->normalized_ndim < 1 || p->normalized_ndim > x->ndim)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "layer_norm: normalized_ndim %d must be in [1, %d] for input %s",
                    p->normalized_ndim, x->ndim, td_tensor_shape_str(s, x));
  if (ctx->inputs[1] && (st = check_affine(ctx->inputs[1], "weight", x, p->normalized_ndim)))
    return st;
  if (ctx->inputs[2] && (st = check_affine(ctx->inputs[2], "bias", x, p->normalized_ndim)))
    return st;
  if (!valid_eps(p->eps))
    return td_error(TD_ERR_INVALID_ARGUMENT, "layer_norm: eps must be finite and >= 0, got %g",
                    (double)p->eps);
  return TD_OK;
}

/* x viewed as [R, D], D the normalized element count. */
static void ln_dims(const td_tensor_meta *m, int k, int64_t *R, int64_t *D) {
  *R = 1;
  *D = 1;
  for (int i = 0; i < m->ndim; i++)
    *(i < m->ndim - k ? R : D) *= m->shape[i];
}

static td_status layer_norm_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_layer_norm_params *p = ctx->params;
  td_status st = layer_norm_validate(ctx);
  if (st) return st;
  td_tensor_meta m = {.dtype = TD_FLOAT32, .ndim = ctx->inputs[0]->ndim};
  memcpy(m.shape, ctx->inputs[0]->shape, sizeof m.shape);
  int64_t R, D;
  ln_dims(&m, p->normalized_ndim, &R, &D);

  td_tensor *x = NULL, *w = NULL, *b = NULL, *y = NULL;
  norm_saved *sv = norm_saved_new(R, "layer_norm statistics");
  st = sv ? td_tensor_contiguous(ctx->inputs[0], &x) : TD_ERR_NO_MEMORY;
  if (!st && ctx->inputs[1]) st = td_tensor_contiguous(ctx->inputs[1], &w);
  if (!st && ctx->inputs[2]) st = td_tensor_contiguous(ctx->inputs[2], &b);
  if (!st) st = td_tensor_empty(TD_FLOAT32, m.ndim, m.shape, &y);
  if (st) goto done;

  const float *wp = w ? td_tensor_f32(w) : NULL, *bp = b ? td_tensor_f32(b) : NULL;
  for (int64_t r = 0; r < R; r++) {
    const float *xr = td_tensor_f32(x) + r * D;
    float *yr = td_tensor_f32(y) + r * D;
    double mean = D ? sum_f32(xr, D) / (double)D : 0;
    double var = D ? sum_sq_dev(xr, D, (float)mean) / (double)D : 0;
    double invstd = 1.0 / sqrt(var + p->eps);
    sv->stats[r] = mean;
    sv->stats[R + r] = invstd;
    const float mf = (float)mean, rs = (float)invstd;
    if (wp && bp)
      for (int64_t j = 0; j < D; j++)
        yr[j] = (xr[j] - mf) * rs * wp[j] + bp[j];
    else if (wp)
      for (int64_t j = 0; j < D; j++)
        yr[j] = (xr[j] - mf) * rs * wp[j];
    else if (bp)
      for (int64_t j = 0; j < D; j++)
        yr[j] = (xr[j] - mf) * rs + bp[j];
    else
      for (int64_t j = 0; j < D; j++)
        yr[j] = (xr[j] - mf) * rs;
  }
  if (ctx->recording) {
    ctx->saved = sv;
    sv = NULL;
  }
  *out = y;
  y = NULL;
done:
  td_free(sv);
  td_tensor_release(x);
  td_tensor_release(w);
  td_tensor_release(b);
  td_tensor_release(y);
  return st;
}

static td_status layer_norm_backward(td_op_ctx *ctx, td_tensor *gy_in, td_tensor **gx) {
  const td_layer_norm_params *p = ctx->params;
  const norm_saved *sv = ctx->saved;
  int64_t R, D;
  ln_dims(&ctx->input_meta[0], p->normalized_ndim, &R, &D);
  const bool need_x = ctx->needs_input_grad[0], need_w = ctx->needs_input_grad[1],
             need_b = ctx->needs_input_grad[2];

  /* Gradients go straight into gx: on failure the tape releases what is there. */
  td_tensor *gy = NULL, *x = NULL, *w = NULL;
  float *gxhat = td_alloc(sizeof(float) * (size_t)D, "layer_norm backward");
  double *acc = td_calloc(2 * (size_t)D, sizeof(double), "layer_norm backward");
  td_status st = (!gxhat || !acc) ? TD_ERR_NO_MEMORY : td_tensor_contiguous(gy_in, &gy);
  if (!st) st = td_tensor_contiguous(ctx->inputs[0], &x);
  if (!st && ctx->inputs[1]) st = td_tensor_contiguous(ctx->inputs[1], &w);
  if (!st && need_x) {
    const td_tensor_meta *m = &ctx->input_meta[0];
    st = td_tensor_empty(TD_FLOAT32, m->ndim, m->shape, &gx[0]);
  }
  if (st) goto done;

  const float *wp = w ? td_tensor_f32(w) : NULL;
  double *gw_acc = acc, *gb_acc = acc + D;
  for (int64_t r = 0; r < R; r++) {
    const float *xr = td_tensor_f32(x) + r * D, *gr = td_tensor_f32(gy) + r * D;
    const float mf = (float)sv->stats[r], rs = (float)sv->stats[R + r];
    if (need_w)
      for (int64_t j = 0; j < D; j++)
        gw_acc[j] += (double)(gr[j] * ((xr[j] - mf) * rs));
    if (need_b)
      for (int64_t j = 0; j < D; j++)
        gb_acc[j] += (double)gr[j];
    if (!need_x) continue;
    /* gx = invstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)), gxhat = gy * w */
    const float *gh = gr;
    if (wp) {
      for (int64_t j = 0; j < D; j++)
        gxhat[j] = gr[j] * wp[j];
      gh = gxhat;
    }
    const double inv_d = 1.0 / (double)D, inv = sv->stats[R + r];
    const float mean_gh = (float)(sum_f32(gh, D) * inv_d);
    const float k =
        (float)(dot_dev(gh, xr, D, mf) * inv_d * inv * inv); /* mean(gxhat*xhat)*invstd */
    float *out = td_tensor_f32(gx[0]) + r * D;
    for (int64_t j = 0; j < D; j++)
      out[j] = rs * (gh[j] - mean_gh - (xr[j] - mf) * k);
  }
  const td_tensor_meta *wm = &ctx->input_meta[1], *bm = &ctx->input_meta[2];
  if (need_w && (st = f32_from_f64(wm->ndim, wm->shape, gw_acc, &gx[1]))) goto done;
  if (need_b && (st = f32_from_f64(bm->ndim, bm->shape, gb_acc, &gx[2]))) goto done;
done:
  td_tensor_release(gy);
  td_tensor_release(x);
  td_tensor_release(w);
  td_free(gxhat);
  td_free(acc);
  return st;
}

const td_op_def td_op_layer_norm = {
    "layer_norm",       3, sizeof(td_layer_norm_params), TD_SAVE_INPUTS, layer_norm_forward,
    layer_norm_backward};

td_status td_layer_norm(td_tensor *x, int normalized_ndim, td_tensor *weight, td_tensor *bias,
                        float eps, td_tensor **out) {
  td_layer_norm_params p = {.normalized_ndim = normalized_ndim, .eps = eps};
  td_tensor *inputs[3] = {x, weight, bias};
  return td_apply(TD_OP_LAYER_NORM, &p, inputs, 3, out);
}
