/* clip.c - gradient clipping by global L2 norm (torch.nn.utils.clip_grad_norm_). */
#include <math.h>

#include "core/alloc.h"
#include "optimizer/optimizer_impl.h"

/* Sum of squares of a float32 tensor (any view), accumulated in double over
 * eight independent lanes so the loop pipelines. */
static double sum_squares(const td_tensor *t) {
  double lane[8] = {0};
  const int64_t *strides[1] = {t->strides};
  td_iter it;
  td_iter_init(&it, t->ndim, t->shape, 1, strides, &t->offset);
  int64_t off, inner, n;
  const float *base = t->storage->data;
  while ((n = td_iter_next(&it, &off, &inner)) > 0) {
    const float *x = base + off;
    int64_t i = 0;
    if (inner == 1) {
      for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
          lane[k] += (double)x[i + k] * x[i + k];
    }
    for (; i < n; i++)
      lane[0] += (double)x[i * inner] * x[i * inner];
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

static void scale_(td_tensor *t, float coef) {
  const int64_t *strides[1] = {t->strides};
  td_iter it;
  td_iter_init(&it, t->ndim, t->shape, 1, strides, &t->offset);
  int64_t off, inner, n;
  float *base = t->storage->data;
  while ((n = td_iter_next(&it, &off, &inner)) > 0) {
    float *x = base + off;
    if (inner == 1)
      for (int64_t i = 0; i < n; i++)
        x[i] *= coef;
    else
      for (int64_t i = 0; i < n; i++)
        x[i * inner] *= coef;
  }
  td_tensor_bump_version(t);
}

td_status td_clip_grad_norm(td_tensor *const *params, int n, double max_norm, float *total_norm) {
  *total_norm = 0;
  if (!(max_norm >= 0))
    return td_error(TD_ERR_INVALID_ARGUMENT, "clip_grad_norm: invalid max_norm %g (expected >= 0)",
                    max_norm);
  if (n < 0 || (n > 0 && !params))
    return td_error(TD_ERR_INVALID_ARGUMENT, "clip_grad_norm: invalid parameter list (%d)", n);
  for (int i = 0; i < n; i++) {
    const td_tensor *p = params[i];
    if (!p) return td_error(TD_ERR_INVALID_ARGUMENT, "clip_grad_norm: parameter %d is NULL", i);
    const td_tensor *g = p->grad;
    if (g && (g->dtype != TD_FLOAT32 || !td_shape_equal(g->ndim, g->shape, p->ndim, p->shape))) {
      char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "clip_grad_norm: parameter %d is %s %s but its grad is %s %s", i,
                      td_dtype_name(p->dtype), td_tensor_shape_str(a, p), td_dtype_name(g->dtype),
                      td_tensor_shape_str(b, g));
    }
  }
  double sum = 0;
  bool any = false;
  for (int i = 0; i < n; i++) {
    if (!params[i]->grad) continue;
    sum += sum_squares(params[i]->grad);
    any = true;
  }
  if (!any) return TD_OK; /* torch returns tensor(0.) and touches nothing */
  float norm = (float)sqrt(sum);
  /* torch: clip_coef = max_norm / (total_norm + 1e-6), a float32 tensor,
   * which Tensor.__rtruediv__ evaluates as reciprocal(t) * max_norm; then
   * grads *= clamp(clip_coef, max=1), a no-op unless below 1 or NaN. */
  float coef = (1.0f / (norm + 1e-6f)) * (float)max_norm;
  if (!(coef >= 1.0f))
    for (int i = 0; i < n; i++)
      if (params[i]->grad) scale_(params[i]->grad, coef);
  *total_norm = norm;
  return TD_OK;
}

td_status td_optimizer_clip_grad_norm(td_optimizer *opt, double max_norm, float *total_norm) {
  td_tensor **params =
      td_alloc((size_t)(opt->nparams > 0 ? opt->nparams : 1) * sizeof *params, "clip_grad_norm");
  if (!params) {
    *total_norm = 0;
    return TD_ERR_NO_MEMORY;
  }
  for (int i = 0; i < opt->nparams; i++)
    params[i] = opt->params[i].tensor;
  td_status st = td_clip_grad_norm(params, opt->nparams, max_norm, total_norm);
  td_free(params);
  return st;
}
