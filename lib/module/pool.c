/* pool.c - MaxPool2d, AvgPool2d and AdaptiveAvgPool2d modules. */
#include "functional/conv.h"
#include "module/internal.h"
#include "module/layers.h"

typedef struct pool2d_module {
  td_module base;
  td_pool2d_params params; /* max/avg */
  int out_h, out_w;        /* adaptive */
} pool2d_module;

static td_status max_pool2d_forward(td_module *m, td_tensor *x, td_tensor **out) {
  pool2d_module *p = (pool2d_module *)m;
  td_status st =
      td_layer_check_nchw("max_pool2d", x, 0, p->params.kernel[0], p->params.padding[0], 1);
  if (st) return st;
  return td_max_pool2d(x, &p->params, out);
}

static td_status avg_pool2d_forward(td_module *m, td_tensor *x, td_tensor **out) {
  pool2d_module *p = (pool2d_module *)m;
  td_status st =
      td_layer_check_nchw("avg_pool2d", x, 0, p->params.kernel[0], p->params.padding[0], 1);
  if (st) return st;
  return td_avg_pool2d(x, &p->params, out);
}

static td_status adaptive_avg_pool2d_forward(td_module *m, td_tensor *x, td_tensor **out) {
  pool2d_module *p = (pool2d_module *)m;
  td_status st = td_layer_check_nchw("adaptive_avg_pool2d", x, 0, 0, 0, 1);
  if (st) return st;
  if (x->shape[2] == 0 || x->shape[3] == 0) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "adaptive_avg_pool2d: input has an empty spatial dim (input shape %s)",
                    td_tensor_shape_str(s, x));
  }
  return td_adaptive_avg_pool2d(x, p->out_h, p->out_w, out);
}

static const td_module_vtable max_pool2d_vt = {.kind = "max_pool2d", .forward = max_pool2d_forward};
static const td_module_vtable avg_pool2d_vt = {.kind = "avg_pool2d", .forward = avg_pool2d_forward};
static const td_module_vtable adaptive_avg_pool2d_vt = {.kind = "adaptive_avg_pool2d",
                                                        .forward = adaptive_avg_pool2d_forward};

static td_status pool2d_create(const td_module_vtable *vt, const td_pool2d_config *cfg,
                               td_module **out) {
  *out = NULL;
  const char *kind = vt->kind;
  int k = cfg->kernel_size;
  if (k <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: kernel_size must be positive, got %d", kind, k);
  if (cfg->stride < 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: stride must be positive, got %d", kind,
                    cfg->stride);
  if (cfg->padding < 0 || cfg->padding > k / 2)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: padding must be between 0 and half the kernel size, got padding %d "
                    "with kernel_size %d",
                    kind, cfg->padding, k);
  pool2d_module *p = (pool2d_module *)td_module_alloc(vt, sizeof *p);
  if (!p) return TD_ERR_NO_MEMORY;
  int stride = cfg->stride ? cfg->stride : k; /* PyTorch's stride=None */
  p->params = (td_pool2d_params){{k, k}, {stride, stride}, {cfg->padding, cfg->padding}};
  *out = &p->base;
  return TD_OK;
}

td_status td_module_max_pool2d(const td_pool2d_config *cfg, td_module **out) {
  return pool2d_create(&max_pool2d_vt, cfg, out);
}

td_status td_module_avg_pool2d(const td_pool2d_config *cfg, td_module **out) {
  return pool2d_create(&avg_pool2d_vt, cfg, out);
}

td_status td_module_adaptive_avg_pool2d(int out_h, int out_w, td_module **out) {
  *out = NULL;
  if (out_h <= 0 || out_w <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "adaptive_avg_pool2d: output size must be positive, got %dx%d", out_h, out_w);
  pool2d_module *p = (pool2d_module *)td_module_alloc(&adaptive_avg_pool2d_vt, sizeof *p);
  if (!p) return TD_ERR_NO_MEMORY;
  p->out_h = out_h;
  p->out_w = out_w;
  *out = &p->base;
  return TD_OK;
}
