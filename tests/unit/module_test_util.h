/* module_test_util.h - builders shared by the test_module*.c files (include
 * after cmocka.h). Each builder asserts its constructor succeeded. */
#ifndef TD_TESTS_MODULE_TEST_UTIL_H
#define TD_TESTS_MODULE_TEST_UTIL_H

#include "common/test_util.h"
#include "module/layers.h"

#define OK(expr) assert_int_equal((expr), TD_OK)

static inline td_module *mk_seq(void) {
  td_module *m;
  OK(td_module_sequential(&m));
  return m;
}

static inline void seq_add(td_module *seq, const char *name, td_module *child) {
  OK(td_sequential_append(seq, name, child));
}

static inline td_module *mk_linear(int64_t in, int64_t out, bool bias, td_rng *rng) {
  td_linear_config c = {.in_features = in, .out_features = out, .no_bias = !bias};
  td_module *m;
  OK(td_module_linear(&c, rng, &m));
  return m;
}

static inline td_module *mk_conv(int64_t in, int64_t out, int k, int stride, int pad, bool bias,
                                 td_rng *rng) {
  td_conv2d_config c = {.in_channels = in,
                        .out_channels = out,
                        .kernel_size = k,
                        .stride = stride,
                        .padding = pad,
                        .no_bias = !bias};
  td_module *m;
  OK(td_module_conv2d(&c, rng, &m));
  return m;
}

static inline td_module *mk_bn2d(int64_t c) {
  td_batch_norm_config cfg = {.num_features = c};
  td_module *m;
  OK(td_module_batch_norm2d(&cfg, &m));
  return m;
}

static inline td_module *mk_relu(void) {
  td_module *m;
  OK(td_module_relu(&m));
  return m;
}

static inline td_module *mk_identity(void) {
  td_module *m;
  OK(td_module_identity(&m));
  return m;
}

/* torch_bench.py's ResNetTiny as a Sequential/Residual tree (a BasicBlock is
 * Sequential[Residual(body, shortcut), ReLU]); see test_module.c for the keys
 * PyTorch gives the same tree. */
static inline td_module *mk_block(int64_t cin, int64_t cout, int stride, td_rng *rng) {
  td_module *body = mk_seq();
  seq_add(body, "conv1", mk_conv(cin, cout, 3, stride, 1, false, rng));
  seq_add(body, "bn1", mk_bn2d(cout));
  seq_add(body, "relu", mk_relu());
  seq_add(body, "conv2", mk_conv(cout, cout, 3, 1, 1, false, rng));
  seq_add(body, "bn2", mk_bn2d(cout));
  td_module *shortcut = NULL;
  if (stride != 1 || cin != cout) {
    shortcut = mk_seq();
    seq_add(shortcut, NULL, mk_conv(cin, cout, 1, stride, 0, false, rng));
    seq_add(shortcut, NULL, mk_bn2d(cout));
  }
  td_module *res, *block = mk_seq();
  OK(td_module_residual(body, shortcut, &res));
  seq_add(block, NULL, res);
  seq_add(block, NULL, mk_relu());
  return block;
}

static inline td_module *mk_resnet_tiny(td_rng *rng) {
  td_module *net = mk_seq(), *stem = mk_seq(), *pool, *flatten;
  seq_add(stem, NULL, mk_conv(3, 16, 3, 1, 1, false, rng));
  seq_add(stem, NULL, mk_bn2d(16));
  seq_add(stem, NULL, mk_relu());
  seq_add(net, "stem", stem);
  seq_add(net, "layer1", mk_block(16, 16, 1, rng));
  seq_add(net, "layer2", mk_block(16, 32, 2, rng));
  seq_add(net, "layer3", mk_block(32, 64, 2, rng));
  OK(td_module_adaptive_avg_pool2d(1, 1, &pool));
  seq_add(net, "pool", pool);
  OK(td_module_flatten(&flatten));
  seq_add(net, "flatten", flatten);
  seq_add(net, "fc", mk_linear(64, 10, true, rng));
  return net;
}

/* t's shape printed as td_tensor_shape_str does: "[2,3]". */
static inline void assert_shape_str(const td_tensor *t, const char *expected) {
  char s[TD_SHAPE_STR_MAX];
  assert_string_equal(td_tensor_shape_str(s, t), expected);
}

#endif
