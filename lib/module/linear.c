/* linear.c - Linear: y = x W^T + b, PyTorch's nn.Linear. */
#include "functional/linalg.h"
#include "module/init.h"
#include "module/internal.h"
#include "module/layers.h"

typedef struct linear_module {
  td_module base;
  int64_t in_features, out_features;
  td_tensor *weight; /* [out, in], borrowed from base.params */
  td_tensor *bias;   /* [out] or NULL, borrowed */
} linear_module;

static td_status linear_forward(td_module *m, td_tensor *x, td_tensor **out) {
  linear_module *l = (linear_module *)m;
  td_status st = td_layer_expect_dtype("linear", x, TD_FLOAT32);
  if (st) return st;
  char s[TD_SHAPE_STR_MAX];
  if (x->ndim < 1)
    return td_error(TD_ERR_INVALID_ARGUMENT, "linear: expected input [..., %lld], got shape %s",
                    (long long)l->in_features, td_tensor_shape_str(s, x));
  if (x->shape[x->ndim - 1] != l->in_features)
    return td_error(
        TD_ERR_INVALID_ARGUMENT, "linear: input has %lld features, expected %lld (input shape %s)",
        (long long)x->shape[x->ndim - 1], (long long)l->in_features, td_tensor_shape_str(s, x));
  return td_linear(x, l->weight, l->bias, out);
}

static const td_module_vtable linear_vt = {.kind = "linear", .forward = linear_forward};

td_status td_module_linear(const td_linear_config *cfg, td_rng *rng, td_module **out) {
  *out = NULL;
  if (cfg->in_features <= 0 || cfg->out_features <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "linear: in_features and out_features must be positive, got %lld and %lld",
                    (long long)cfg->in_features, (long long)cfg->out_features);
  td_status st = td_layer_need_rng("linear", rng);
  if (st) return st;
  linear_module *l = (linear_module *)td_module_alloc(&linear_vt, sizeof *l);
  if (!l) return TD_ERR_NO_MEMORY;
  l->in_features = cfg->in_features;
  l->out_features = cfg->out_features;
  int64_t wshape[2] = {cfg->out_features, cfg->in_features};
  if ((st = td_module_add_parameter(&l->base, "weight", 2, wshape, &l->weight))) goto fail;
  /* reset_parameters(): kaiming_uniform_(a=sqrt(5)) then the bias, in that
   * order, both bounded by 1/sqrt(fan_in). */
  if ((st = td_init_kaiming_uniform_(l->weight, TD_INIT_SQRT5, cfg->in_features, rng))) goto fail;
  if (!cfg->no_bias) {
    if ((st = td_module_add_parameter(&l->base, "bias", 1, &cfg->out_features, &l->bias)))
      goto fail;
    if ((st = td_init_fan_in_uniform_(l->bias, cfg->in_features, rng))) goto fail;
  }
  *out = &l->base;
  return TD_OK;
fail:
  td_module_destroy(&l->base);
  return st;
}
