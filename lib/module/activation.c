/* activation.c - ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU and Softmax modules. */
#include <math.h>

#include "functional/activation.h"
#include "module/internal.h"
#include "module/layers.h"

/* One struct for every activation; only LeakyReLU and Softmax have state. */
typedef struct activation_module {
  td_module base;
  float negative_slope; /* leaky_relu */
  int axis;             /* softmax */
} activation_module;

static td_status relu_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  return td_relu(x, out);
}

static td_status leaky_relu_forward(td_module *m, td_tensor *x, td_tensor **out) {
  return td_leaky_relu(x, ((activation_module *)m)->negative_slope, out);
}

static td_status sigmoid_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  return td_sigmoid(x, out);
}

static td_status tanh_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  return td_tanh(x, out);
}

static td_status gelu_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  return td_gelu(x, out);
}

static td_status silu_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  return td_silu(x, out);
}

static td_status softmax_forward(td_module *m, td_tensor *x, td_tensor **out) {
  activation_module *a = (activation_module *)m;
  int axis;
  if (td_axis_normalize("softmax", a->axis, x->ndim, &axis)) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT, "softmax: axis %d is out of range for input shape %s",
                    a->axis, td_tensor_shape_str(s, x));
  }
  return td_softmax(x, a->axis, out);
}

static const td_module_vtable relu_vt = {.kind = "relu", .forward = relu_forward};
static const td_module_vtable leaky_relu_vt = {.kind = "leaky_relu", .forward = leaky_relu_forward};
static const td_module_vtable sigmoid_vt = {.kind = "sigmoid", .forward = sigmoid_forward};
static const td_module_vtable tanh_vt = {.kind = "tanh", .forward = tanh_forward};
static const td_module_vtable gelu_vt = {.kind = "gelu", .forward = gelu_forward};
static const td_module_vtable silu_vt = {.kind = "silu", .forward = silu_forward};
static const td_module_vtable softmax_vt = {.kind = "softmax", .forward = softmax_forward};

static td_status create(const td_module_vtable *vt, float negative_slope, int axis,
                        td_module **out) {
  *out = NULL;
  activation_module *a = (activation_module *)td_module_alloc(vt, sizeof *a);
  if (!a) return TD_ERR_NO_MEMORY;
  a->negative_slope = negative_slope;
  a->axis = axis;
  *out = &a->base;
  return TD_OK;
}

td_status td_module_relu(td_module **out) { return create(&relu_vt, 0, 0, out); }
td_status td_module_sigmoid(td_module **out) { return create(&sigmoid_vt, 0, 0, out); }
td_status td_module_tanh(td_module **out) { return create(&tanh_vt, 0, 0, out); }
td_status td_module_gelu(td_module **out) { return create(&gelu_vt, 0, 0, out); }
td_status td_module_silu(td_module **out) { return create(&silu_vt, 0, 0, out); }
td_status td_module_softmax(int axis, td_module **out) { return create(&softmax_vt, 0, axis, out); }

td_status td_module_leaky_relu(float negative_slope, td_module **out) {
  *out = NULL;
  if (!isfinite(negative_slope))
    return td_error(TD_ERR_INVALID_ARGUMENT, "leaky_relu: negative_slope must be finite, got %g",
                    negative_slope);
  return create(&leaky_relu_vt, negative_slope, 0, out);
}
