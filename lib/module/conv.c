/* conv.c - Conv2d, PyTorch's nn.Conv2d (zero padding, square kernels). */
#include "functional/conv.h"
#include "module/init.h"
#include "module/internal.h"
#include "module/layers.h"

typedef struct conv2d_module {
  td_module base;
  int64_t in_channels;
  int kernel_size;
  td_conv2d_params params;
  td_tensor *weight; /* [out, in/groups, k, k], borrowed from base.params */
  td_tensor *bias;   /* [out] or NULL, borrowed */
} conv2d_module;

static td_status conv2d_forward(td_module *m, td_tensor *x, td_tensor **out) {
  conv2d_module *c = (conv2d_module *)m;
  td_status st = td_layer_check_nchw("conv2d", x, c->in_channels, c->kernel_size,
                                     c->params.padding[0], c->params.dilation[0]);
  if (st) return st;
  return td_conv2d(x, c->weight, c->bias, &c->params, out);
}

static const td_module_vtable conv2d_vt = {.kind = "conv2d", .forward = conv2d_forward};

static td_status check_config(const td_conv2d_config *cfg) {
  if (cfg->in_channels <= 0 || cfg->out_channels <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: in_channels and out_channels must be positive, got %lld and %lld",
                    (long long)cfg->in_channels, (long long)cfg->out_channels);
  if (cfg->kernel_size <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: kernel_size must be positive, got %d",
                    cfg->kernel_size);
  if (cfg->stride < 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: stride must be positive, got %d",
                    cfg->stride);
  if (cfg->padding < 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: padding must be >= 0, got %d", cfg->padding);
  if (cfg->dilation < 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: dilation must be positive, got %d",
                    cfg->dilation);
  if (cfg->groups < 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "conv2d: groups must be positive, got %d",
                    cfg->groups);
  int groups = cfg->groups ? cfg->groups : 1;
  if (cfg->in_channels % groups)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: in_channels %lld is not divisible by groups %d",
                    (long long)cfg->in_channels, groups);
  if (cfg->out_channels % groups)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "conv2d: out_channels %lld is not divisible by groups %d",
                    (long long)cfg->out_channels, groups);
  return TD_OK;
}

td_status td_module_conv2d(const td_conv2d_config *cfg, td_rng *rng, td_module **out) {
  *out = NULL;
  td_status st = check_config(cfg);
  if (st || (st = td_layer_need_rng("conv2d", rng))) return st;
  conv2d_module *c = (conv2d_module *)td_module_alloc(&conv2d_vt, sizeof *c);
  if (!c) return TD_ERR_NO_MEMORY;
  int stride = cfg->stride ? cfg->stride : 1;
  int dilation = cfg->dilation ? cfg->dilation : 1;
  int groups = cfg->groups ? cfg->groups : 1;
  c->in_channels = cfg->in_channels;
  c->kernel_size = cfg->kernel_size;
  c->params = (td_conv2d_params){
      {stride, stride}, {cfg->padding, cfg->padding}, {dilation, dilation}, groups};
  int64_t k = cfg->kernel_size;
  int64_t wshape[4] = {cfg->out_channels, cfg->in_channels / groups, k, k};
  if ((st = td_module_add_parameter(&c->base, "weight", 4, wshape, &c->weight))) goto fail;
  /* Same reset_parameters() as Linear, with fan_in = in/groups * k * k. */
  int64_t fan_in = td_init_fan_in(c->weight);
  if ((st = td_init_kaiming_uniform_(c->weight, TD_INIT_SQRT5, fan_in, rng))) goto fail;
  if (!cfg->no_bias) {
    if ((st = td_module_add_parameter(&c->base, "bias", 1, &cfg->out_channels, &c->bias)))
      goto fail;
    if ((st = td_init_fan_in_uniform_(c->bias, fan_in, rng))) goto fail;
  }
  *out = &c->base;
  return TD_OK;
fail:
  td_module_destroy(&c->base);
  return st;
}
