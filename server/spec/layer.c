/* layer.c - leaf Module messages -> checked layer configs -> td_module. */
#include "spec/layer.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const kind_names[] = {
    [TRAIND__V1__MODULE__KIND_SEQUENTIAL] = "sequential",
    [TRAIND__V1__MODULE__KIND_RESIDUAL] = "residual",
    [TRAIND__V1__MODULE__KIND_LINEAR] = "linear",
    [TRAIND__V1__MODULE__KIND_CONV2D] = "conv2d",
    [TRAIND__V1__MODULE__KIND_BATCH_NORM1D] = "batch_norm1d",
    [TRAIND__V1__MODULE__KIND_BATCH_NORM2D] = "batch_norm2d",
    [TRAIND__V1__MODULE__KIND_LAYER_NORM] = "layer_norm",
    [TRAIND__V1__MODULE__KIND_RELU] = "relu",
    [TRAIND__V1__MODULE__KIND_LEAKY_RELU] = "leaky_relu",
    [TRAIND__V1__MODULE__KIND_SIGMOID] = "sigmoid",
    [TRAIND__V1__MODULE__KIND_TANH] = "tanh",
    [TRAIND__V1__MODULE__KIND_GELU] = "gelu",
    [TRAIND__V1__MODULE__KIND_SILU] = "silu",
    [TRAIND__V1__MODULE__KIND_SOFTMAX] = "softmax",
    [TRAIND__V1__MODULE__KIND_DROPOUT] = "dropout",
    [TRAIND__V1__MODULE__KIND_MAX_POOL2D] = "max_pool2d",
    [TRAIND__V1__MODULE__KIND_AVG_POOL2D] = "avg_pool2d",
    [TRAIND__V1__MODULE__KIND_ADAPTIVE_AVG_POOL2D] = "adaptive_avg_pool2d",
    [TRAIND__V1__MODULE__KIND_FLATTEN] = "flatten",
    [TRAIND__V1__MODULE__KIND_EMBEDDING] = "embedding",
    [TRAIND__V1__MODULE__KIND_IDENTITY] = "identity",
};

const char *spec_module_kind_name(Traind__V1__Module__KindCase kind) {
  int k = (int)kind;
  if (k < 0 || k >= (int)(sizeof kind_names / sizeof kind_names[0])) return NULL;
  return kind_names[k];
}

const char *spec_module_kind_list(void) {
  return "sequential, residual, linear, conv2d, batch_norm1d, batch_norm2d, layer_norm, relu, "
         "leaky_relu, sigmoid, tanh, gelu, silu, softmax, dropout, max_pool2d, avg_pool2d, "
         "adaptive_avg_pool2d, flatten, embedding, identity";
}

/* "<path>.<field>: <what>" as INVALID_ARGUMENT. */
TD_PRINTF(3, 4)
static td_status bad_field(const spec_path *path, const char *field, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s.%s: %s", spec_path_text(path), field, what);
}

static td_status positive(const spec_path *path, const char *field, int64_t v) {
  return v > 0 ? TD_OK : bad_field(path, field, "must be > 0, got %lld", (long long)v);
}

/* "0: default" ints (stride, dilation, groups). */
static td_status zero_or_positive(const spec_path *path, const char *field, int64_t v) {
  return v >= 0 ? TD_OK
                : bad_field(path, field, "must be >= 0 (0: default), got %lld", (long long)v);
}

static td_status norm_eps(const spec_path *path, float eps) {
  if (eps >= 0 && isfinite(eps)) return TD_OK;
  return bad_field(path, "eps", "must be a finite value >= 0 (0: 1e-5), got %g", (double)eps);
}

/* ---- one reader per kind ------------------------------------------------ */

static td_status read_linear(const Traind__V1__Linear *m, const spec_path *path, spec_layer *l) {
  td_status st;
  if ((st = positive(path, "in_features", m->in_features))) return st;
  if ((st = positive(path, "out_features", m->out_features))) return st;
  l->linear = (td_linear_config){m->in_features, m->out_features, !m->bias};
  l->n_parameters = spec_count_mul(m->in_features, m->out_features);
  if (m->bias) l->n_parameters = spec_count_add(l->n_parameters, m->out_features);
  return TD_OK;
}

static td_status read_conv2d(const Traind__V1__Conv2d *m, const spec_path *path, spec_layer *l) {
  td_status st;
  if ((st = positive(path, "in_channels", m->in_channels))) return st;
  if ((st = positive(path, "out_channels", m->out_channels))) return st;
  if ((st = positive(path, "kernel_size", m->kernel_size))) return st;
  if ((st = zero_or_positive(path, "stride", m->stride))) return st;
  if (m->padding < 0) return bad_field(path, "padding", "must be >= 0, got %d", m->padding);
  if ((st = zero_or_positive(path, "dilation", m->dilation))) return st;
  if ((st = zero_or_positive(path, "groups", m->groups))) return st;
  int64_t groups = m->groups ? m->groups : 1;
  if (m->in_channels % groups)
    return bad_field(path, "in_channels", "%lld is not divisible by groups %lld",
                     (long long)m->in_channels, (long long)groups);
  if (m->out_channels % groups)
    return bad_field(path, "out_channels", "%lld is not divisible by groups %lld",
                     (long long)m->out_channels, (long long)groups);
  l->conv2d = (td_conv2d_config){.in_channels = m->in_channels,
                                 .out_channels = m->out_channels,
                                 .kernel_size = m->kernel_size,
                                 .stride = m->stride,
                                 .padding = m->padding,
                                 .dilation = m->dilation,
                                 .groups = m->groups,
                                 .no_bias = !m->bias};
  int64_t k2 = spec_count_mul(m->kernel_size, m->kernel_size);
  l->n_parameters = spec_count_mul(spec_count_mul(m->out_channels, m->in_channels / groups), k2);
  if (m->bias) l->n_parameters = spec_count_add(l->n_parameters, m->out_channels);
  return TD_OK;
}

static td_status read_batch_norm(const Traind__V1__BatchNorm *m, const spec_path *path,
                                 spec_layer *l) {
  td_status st;
  if ((st = positive(path, "num_features", m->num_features))) return st;
  if ((st = norm_eps(path, m->eps))) return st;
  if (!(m->momentum == 0 || (m->momentum > 0 && m->momentum <= 1)))
    return bad_field(path, "momentum", "must be in (0, 1] (0: 0.1), got %g", (double)m->momentum);
  l->batch_norm = (td_batch_norm_config){.num_features = m->num_features,
                                         .eps = m->eps,
                                         .momentum = m->momentum,
                                         .no_affine = !m->affine,
                                         .no_running_stats = !m->track_running_stats};
  l->n_parameters = m->affine ? spec_count_mul(2, m->num_features) : 0;
  /* running_mean, running_var and the 0-d num_batches_tracked */
  l->n_buffers = m->track_running_stats ? spec_count_add(spec_count_mul(2, m->num_features), 1) : 0;
  return TD_OK;
}

static td_status read_layer_norm(const Traind__V1__LayerNorm *m, const spec_path *path,
                                 spec_layer *l) {
  if (m->n_normalized_shape < 1 || m->n_normalized_shape > TD_MAX_DIMS)
    return bad_field(path, "normalized_shape", "must have 1 to %d dims, got %zu", TD_MAX_DIMS,
                     m->n_normalized_shape);
  td_layer_norm_config *c = &l->layer_norm;
  *c = (td_layer_norm_config){.normalized_ndim = (int)m->n_normalized_shape,
                              .eps = m->eps,
                              .no_elementwise_affine = !m->elementwise_affine};
  int64_t numel = 1;
  for (size_t i = 0; i < m->n_normalized_shape; i++) {
    int64_t d = m->normalized_shape[i];
    if (d <= 0)
      return bad_field(path, "normalized_shape", "dim %zu must be > 0, got %lld", i, (long long)d);
    c->normalized_shape[i] = d;
    numel = spec_count_mul(numel, d);
  }
  td_status st = norm_eps(path, m->eps);
  if (st) return st;
  l->n_parameters = m->elementwise_affine ? spec_count_mul(2, numel) : 0;
  return TD_OK;
}

static td_status read_pool(const Traind__V1__Pool2d *m, const spec_path *path, spec_layer *l) {
  td_status st;
  if ((st = positive(path, "kernel_size", m->kernel_size))) return st;
  if ((st = zero_or_positive(path, "stride", m->stride))) return st;
  if (m->padding < 0 || m->padding > m->kernel_size / 2)
    return bad_field(path, "padding", "must be in [0, kernel_size / 2] = [0, %d], got %d",
                     m->kernel_size / 2, m->padding);
  l->pool = (td_pool2d_config){m->kernel_size, m->stride, m->padding};
  return TD_OK;
}

static td_status read_adaptive(const Traind__V1__AdaptiveAvgPool2d *m, const spec_path *path,
                               spec_layer *l) {
  if (m->n_output_size != 1 && m->n_output_size != 2)
    return bad_field(path, "output_size", "must have 1 or 2 values, got %zu", m->n_output_size);
  for (size_t i = 0; i < m->n_output_size; i++) {
    int64_t v = m->output_size[i];
    if (v <= 0 || v > INT_MAX)
      return bad_field(path, "output_size", "value %zu must be in [1, %d], got %lld", i, INT_MAX,
                       (long long)v);
    l->output_size[i] = (int)v;
  }
  if (m->n_output_size == 1) l->output_size[1] = l->output_size[0];
  return TD_OK;
}

static td_status read_embedding(const Traind__V1__Embedding *m, const spec_path *path,
                                spec_layer *l) {
  td_status st;
  if ((st = positive(path, "num_embeddings", m->num_embeddings))) return st;
  if ((st = positive(path, "embedding_dim", m->embedding_dim))) return st;
  l->embedding = (td_embedding_config){m->num_embeddings, m->embedding_dim};
  l->n_parameters = spec_count_mul(m->num_embeddings, m->embedding_dim);
  return TD_OK;
}

/* A kind whose sub-message pointer is NULL (possible only when a message is
 * built in C, never after unpacking) reads as that message with every field
 * unset, so its declared defaults apply. */
#define OR_DEFAULT(ptr, type, init) ((ptr) ? (ptr) : &(const type)init)

td_status spec_layer_read(const Traind__V1__Module *m, spec_path *path, spec_layer *out) {
  *out = (spec_layer){.kind = m->kind_case};
  size_t mark = spec_path_push(path, ".%s", spec_module_kind_name(m->kind_case));
  td_status st = TD_OK;
  switch (m->kind_case) {
  case TRAIND__V1__MODULE__KIND_LINEAR:
    st =
        read_linear(OR_DEFAULT(m->linear, Traind__V1__Linear, TRAIND__V1__LINEAR__INIT), path, out);
    break;
  case TRAIND__V1__MODULE__KIND_CONV2D:
    st =
        read_conv2d(OR_DEFAULT(m->conv2d, Traind__V1__Conv2d, TRAIND__V1__CONV2D__INIT), path, out);
    break;
  case TRAIND__V1__MODULE__KIND_BATCH_NORM1D:
  case TRAIND__V1__MODULE__KIND_BATCH_NORM2D: {
    const Traind__V1__BatchNorm *bn =
        m->kind_case == TRAIND__V1__MODULE__KIND_BATCH_NORM1D ? m->batch_norm1d : m->batch_norm2d;
    st = read_batch_norm(OR_DEFAULT(bn, Traind__V1__BatchNorm, TRAIND__V1__BATCH_NORM__INIT), path,
                         out);
    break;
  }
  case TRAIND__V1__MODULE__KIND_LAYER_NORM:
    st = read_layer_norm(
        OR_DEFAULT(m->layer_norm, Traind__V1__LayerNorm, TRAIND__V1__LAYER_NORM__INIT), path, out);
    break;
  case TRAIND__V1__MODULE__KIND_LEAKY_RELU: {
    const Traind__V1__LeakyReLU *lr =
        OR_DEFAULT(m->leaky_relu, Traind__V1__LeakyReLU, TRAIND__V1__LEAKY_RE_LU__INIT);
    if (!isfinite(lr->negative_slope))
      st = bad_field(path, "negative_slope", "must be finite, got %g", (double)lr->negative_slope);
    out->negative_slope = lr->negative_slope;
    break;
  }
  case TRAIND__V1__MODULE__KIND_SOFTMAX:
    /* The axis is checked against the input's rank at forward. */
    out->axis = OR_DEFAULT(m->softmax, Traind__V1__Softmax, TRAIND__V1__SOFTMAX__INIT)->axis;
    break;
  case TRAIND__V1__MODULE__KIND_DROPOUT:
    out->p = OR_DEFAULT(m->dropout, Traind__V1__Dropout, TRAIND__V1__DROPOUT__INIT)->p;
    if (!(out->p >= 0 && out->p <= 1))
      st = bad_field(path, "p", "must be in [0, 1], got %g", (double)out->p);
    break;
  case TRAIND__V1__MODULE__KIND_MAX_POOL2D:
    st = read_pool(OR_DEFAULT(m->max_pool2d, Traind__V1__Pool2d, TRAIND__V1__POOL2D__INIT), path,
                   out);
    break;
  case TRAIND__V1__MODULE__KIND_AVG_POOL2D:
    st = read_pool(OR_DEFAULT(m->avg_pool2d, Traind__V1__Pool2d, TRAIND__V1__POOL2D__INIT), path,
                   out);
    break;
  case TRAIND__V1__MODULE__KIND_ADAPTIVE_AVG_POOL2D:
    st = read_adaptive(OR_DEFAULT(m->adaptive_avg_pool2d, Traind__V1__AdaptiveAvgPool2d,
                                  TRAIND__V1__ADAPTIVE_AVG_POOL2D__INIT),
                       path, out);
    break;
  case TRAIND__V1__MODULE__KIND_EMBEDDING:
    st = read_embedding(
        OR_DEFAULT(m->embedding, Traind__V1__Embedding, TRAIND__V1__EMBEDDING__INIT), path, out);
    break;
  case TRAIND__V1__MODULE__KIND_RELU:
  case TRAIND__V1__MODULE__KIND_SIGMOID:
  case TRAIND__V1__MODULE__KIND_TANH:
  case TRAIND__V1__MODULE__KIND_GELU:
  case TRAIND__V1__MODULE__KIND_SILU:
  case TRAIND__V1__MODULE__KIND_FLATTEN:
  case TRAIND__V1__MODULE__KIND_IDENTITY: break; /* nothing to configure */
  default:
    st = td_error(TD_ERR_INTERNAL, "%s: spec_layer_read called for a non-leaf kind %d",
                  spec_path_text(path), (int)m->kind_case);
    break;
  }
  spec_path_pop(path, mark);
  return st;
}

td_status spec_layer_construct(const spec_layer *l, td_rng *rng, td_module **out) {
  switch (l->kind) {
  case TRAIND__V1__MODULE__KIND_LINEAR: return td_module_linear(&l->linear, rng, out);
  case TRAIND__V1__MODULE__KIND_CONV2D: return td_module_conv2d(&l->conv2d, rng, out);
  case TRAIND__V1__MODULE__KIND_BATCH_NORM1D: return td_module_batch_norm1d(&l->batch_norm, out);
  case TRAIND__V1__MODULE__KIND_BATCH_NORM2D: return td_module_batch_norm2d(&l->batch_norm, out);
  case TRAIND__V1__MODULE__KIND_LAYER_NORM: return td_module_layer_norm(&l->layer_norm, out);
  case TRAIND__V1__MODULE__KIND_RELU: return td_module_relu(out);
  case TRAIND__V1__MODULE__KIND_LEAKY_RELU: return td_module_leaky_relu(l->negative_slope, out);
  case TRAIND__V1__MODULE__KIND_SIGMOID: return td_module_sigmoid(out);
  case TRAIND__V1__MODULE__KIND_TANH: return td_module_tanh(out);
  case TRAIND__V1__MODULE__KIND_GELU: return td_module_gelu(out);
  case TRAIND__V1__MODULE__KIND_SILU: return td_module_silu(out);
  case TRAIND__V1__MODULE__KIND_SOFTMAX: return td_module_softmax(l->axis, out);
  case TRAIND__V1__MODULE__KIND_DROPOUT: return td_module_dropout(l->p, rng, out);
  case TRAIND__V1__MODULE__KIND_MAX_POOL2D: return td_module_max_pool2d(&l->pool, out);
  case TRAIND__V1__MODULE__KIND_AVG_POOL2D: return td_module_avg_pool2d(&l->pool, out);
  case TRAIND__V1__MODULE__KIND_ADAPTIVE_AVG_POOL2D:
    return td_module_adaptive_avg_pool2d(l->output_size[0], l->output_size[1], out);
  case TRAIND__V1__MODULE__KIND_FLATTEN: return td_module_flatten(out);
  case TRAIND__V1__MODULE__KIND_EMBEDDING: return td_module_embedding(&l->embedding, rng, out);
  case TRAIND__V1__MODULE__KIND_IDENTITY: return td_module_identity(out);
  default:
    *out = NULL;
    return td_error(TD_ERR_INTERNAL, "spec_layer_construct: not a leaf kind %d", (int)l->kind);
  }
}
