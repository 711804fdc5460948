/* norm.c - BatchNorm1d, BatchNorm2d and LayerNorm, PyTorch's nn layers. */
#include <math.h>

#include "functional/norm.h"
#include "module/internal.h"
#include "module/layers.h"

#define DEFAULT_EPS 1e-5f
#define DEFAULT_MOMENTUM 0.1f

typedef struct batch_norm_module {
  td_module base;
  int64_t num_features;
  bool is_2d; /* BatchNorm2d: [N,C,H,W]; else BatchNorm1d: [N,C] or [N,C,L] */
  float eps, momentum;
  /* Borrowed from base.params / base.buffers; NULL when absent. */
  td_tensor *weight, *bias;
  td_tensor *running_mean, *running_var, *num_batches_tracked;
} batch_norm_module;

static td_status batch_norm_forward(td_module *m, td_tensor *x, td_tensor **out) {
  batch_norm_module *b = (batch_norm_module *)m;
  const char *kind = m->vt->kind;
  bool is_2d = b->is_2d;
  td_status st = td_layer_expect_dtype(kind, x, TD_FLOAT32);
  if (st) return st;
  char s[TD_SHAPE_STR_MAX];
  if (is_2d ? x->ndim != 4 : (x->ndim != 2 && x->ndim != 3))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected input %s, got shape %s", kind,
                    is_2d ? "[N,C,H,W]" : "[N,C] or [N,C,L]", td_tensor_shape_str(s, x));
  if (x->shape[1] != b->num_features)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: input has %lld %s, expected %lld (input shape %s)", kind,
                    (long long)x->shape[1], is_2d ? "channels" : "features",
                    (long long)b->num_features, td_tensor_shape_str(s, x));
  bool tracking = b->running_mean != NULL;
  /* Without running statistics PyTorch normalises with the batch's even in
   * eval (bn_training = training or running_mean is None). */
  td_batch_norm_params p = {
      .training = m->training || !tracking,
      .momentum = b->momentum,
      .eps = b->eps,
      .running_mean = b->running_mean,
      .running_var = b->running_var,
  };
  if ((st = td_batch_norm(x, b->weight, b->bias, &p, out))) return st;
  if (m->training && tracking) {
    td_tensor_i64(b->num_batches_tracked)[0] += 1;
    td_tensor_bump_version(b->num_batches_tracked);
  }
  return TD_OK;
}

static const td_module_vtable batch_norm1d_vt = {.kind = "batch_norm1d",
                                                 .forward = batch_norm_forward};
static const td_module_vtable batch_norm2d_vt = {.kind = "batch_norm2d",
                                                 .forward = batch_norm_forward};

/* eps: 0 means the default; otherwise it must be a positive finite number. */
static td_status resolve_eps(const char *kind, float eps, float *out) {
  if (eps == 0) {
    *out = DEFAULT_EPS;
    return TD_OK;
  }
  if (!(eps > 0) || isinf(eps))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: eps must be positive, got %g", kind, eps);
  *out = eps;
  return TD_OK;
}

static td_status add_new_buffer(td_module *m, const char *name, td_dtype dtype, int ndim,
                                const int64_t *shape, double value, td_tensor **buffer) {
  td_tensor *t;
  td_status st = td_tensor_full(dtype, ndim, shape, value, &t);
  if (st) return st;
  st = td_module_add_buffer(m, name, t);
  td_tensor_release(t); /* the module holds it now (or it failed and t dies) */
  *buffer = st ? NULL : t;
  return st;
}

static td_status batch_norm_create(const td_module_vtable *vt, const td_batch_norm_config *cfg,
                                   td_module **out) {
  *out = NULL;
  const char *kind = vt->kind;
  if (cfg->num_features <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: num_features must be positive, got %lld", kind,
                    (long long)cfg->num_features);
  float eps = 0, momentum = cfg->momentum == 0 ? DEFAULT_MOMENTUM : cfg->momentum;
  td_status st = resolve_eps(kind, cfg->eps, &eps);
  if (st) return st;
  if (!(momentum > 0 && momentum <= 1))
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: momentum must be in (0, 1], got %g", kind,
                    cfg->momentum);
  batch_norm_module *b = (batch_norm_module *)td_module_alloc(vt, sizeof *b);
  if (!b) return TD_ERR_NO_MEMORY;
  b->num_features = cfg->num_features;
  b->is_2d = vt == &batch_norm2d_vt;
  b->eps = eps;
  b->momentum = momentum;
  const int64_t *c = &cfg->num_features;
  /* PyTorch's registration order, which is the state-dict order. */
  if (!cfg->no_affine) {
    if ((st = td_module_add_parameter(&b->base, "weight", 1, c, &b->weight)) ||
        (st = td_tensor_fill_(b->weight, 1.0)) ||
        (st = td_module_add_parameter(&b->base, "bias", 1, c, &b->bias)))
      goto fail;
  }
  if (!cfg->no_running_stats) {
    if ((st = add_new_buffer(&b->base, "running_mean", TD_FLOAT32, 1, c, 0.0, &b->running_mean)) ||
        (st = add_new_buffer(&b->base, "running_var", TD_FLOAT32, 1, c, 1.0, &b->running_var)) ||
        (st = add_new_buffer(&b->base, "num_batches_tracked", TD_INT64, 0, c, 0.0,
                             &b->num_batches_tracked)))
      goto fail;
  }
  *out = &b->base;
  return TD_OK;
fail:
  td_module_destroy(&b->base);
  return st;
}

td_status td_module_batch_norm1d(const td_batch_norm_config *cfg, td_module **out) {
  return batch_norm_create(&batch_norm1d_vt, cfg, out);
}

td_status td_module_batch_norm2d(const td_batch_norm_config *cfg, td_module **out) {
  return batch_norm_create(&batch_norm2d_vt, cfg, out);
}

/* ---- LayerNorm --------------------------------------------------------- */

typedef struct layer_norm_module {
  td_module base;
  int normalized_ndim;
  int64_t normalized_shape[TD_MAX_DIMS];
  float eps;
  td_tensor *weight, *bias; /* normalized_shape, or NULL; borrowed */
} layer_norm_module;

static td_status layer_norm_forward(td_module *m, td_tensor *x, td_tensor **out) {
  layer_norm_module *l = (layer_norm_module *)m;
  td_status st = td_layer_expect_dtype("layer_norm", x, TD_FLOAT32);
  if (st) return st;
  int nd = l->normalized_ndim;
  bool ok = x->ndim >= nd;
  for (int i = 0; ok && i < nd; i++)
    ok = x->shape[x->ndim - nd + i] == l->normalized_shape[i];
  if (!ok) {
    char s[TD_SHAPE_STR_MAX], n[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "layer_norm: input shape %s does not end with normalized_shape %s",
                    td_tensor_shape_str(s, x), td_shape_str(n, sizeof n, nd, l->normalized_shape));
  }
  return td_layer_norm(x, nd, l->weight, l->bias, l->eps, out);
}

static const td_module_vtable layer_norm_vt = {.kind = "layer_norm", .forward = layer_norm_forward};

td_status td_module_layer_norm(const td_layer_norm_config *cfg, td_module **out) {
  *out = NULL;
  int nd = cfg->normalized_ndim;
  if (nd < 1 || nd > TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "layer_norm: normalized_shape must have 1 to %d dims, got %d", TD_MAX_DIMS, nd);
  for (int i = 0; i < nd; i++) {
    if (cfg->normalized_shape[i] <= 0) {
      char n[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "layer_norm: normalized_shape %s must have positive extents",
                      td_shape_str(n, sizeof n, nd, cfg->normalized_shape));
    }
  }
  float eps = 0;
  td_status st = resolve_eps("layer_norm", cfg->eps, &eps);
  if (st) return st;
  layer_norm_module *l = (layer_norm_module *)td_module_alloc(&layer_norm_vt, sizeof *l);
  if (!l) return TD_ERR_NO_MEMORY;
  l->normalized_ndim = nd;
  for (int i = 0; i < nd; i++)
    l->normalized_shape[i] = cfg->normalized_shape[i];
  l->eps = eps;
  if (!cfg->no_elementwise_affine) {
    if ((st = td_module_add_parameter(&l->base, "weight", nd, l->normalized_shape, &l->weight)) ||
        (st = td_tensor_fill_(l->weight, 1.0)) ||
        (st = td_module_add_parameter(&l->base, "bias", nd, l->normalized_shape, &l->bias))) {
      td_module_destroy(&l->base);
      return st;
    }
  }
  *out = &l->base;
  return TD_OK;
}
