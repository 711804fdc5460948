/* models.c - the test model zoo, built from traind modules. */
#include "common/models.h"

#include <string.h>

const char *const test_model_names[] = {"mlp",    "mlp_small",   "lenet",
                                        "cnn_bn", "resnet_tiny", "embed_ln", NULL};

/* Small builders that keep the zoo readable. Each appends to seq and returns
 * the status; on failure the Sequential (and what it holds) is the caller's
 * to destroy. `add` takes the constructor's status and a pointer to what it
 * built: arguments are all evaluated before the call, so *m is set by then. */
static td_status add(td_module *seq, const char *name, td_status st, td_module **m) {
  return st ? st : td_sequential_append(seq, name, *m);
}

static td_status linear(td_module *seq, int64_t in, int64_t out, td_rng *rng) {
  td_module *m = NULL;
  td_linear_config c = {.in_features = in, .out_features = out};
  td_status st = td_module_linear(&c, rng, &m);
  return add(seq, NULL, st, &m);
}

static td_status conv(td_module *seq, int64_t cin, int64_t cout, int k, int stride, int pad,
                      bool bias, td_rng *rng) {
  td_module *m = NULL;
  td_conv2d_config c = {.in_channels = cin, .out_channels = cout, .kernel_size = k,
                        .stride = stride, .padding = pad, .no_bias = !bias};
  td_status st = td_module_conv2d(&c, rng, &m);
  return add(seq, NULL, st, &m);
}

static td_status bn2d(td_module *seq, int64_t c) {
  td_module *m = NULL;
  td_batch_norm_config cfg = {.num_features = c};
  td_status st = td_module_batch_norm2d(&cfg, &m);
  return add(seq, NULL, st, &m);
}

static td_status relu(td_module *seq) {
  td_module *m = NULL;
  td_status st = td_module_relu(&m);
  return add(seq, NULL, st, &m);
}

static td_status max_pool(td_module *seq, int k) {
  td_module *m = NULL;
  td_pool2d_config c = {.kernel_size = k};
  td_status st = td_module_max_pool2d(&c, &m);
  return add(seq, NULL, st, &m);
}

static td_status flatten(td_module *seq) {
  td_module *m = NULL;
  td_status st = td_module_flatten(&m);
  return add(seq, NULL, st, &m);
}

/* CIFAR BasicBlock: Sequential(Residual(body, shortcut), ReLU). */
static td_status basic_block(td_module *parent, const char *name, int64_t cin, int64_t cout,
                             int stride, td_rng *rng) {
  td_module *body = NULL, *shortcut = NULL, *res = NULL, *block = NULL;
  td_status st = td_module_sequential(&body);
  if (!st) st = conv(body, cin, cout, 3, stride, 1, false, rng);
  if (!st) st = bn2d(body, cout);
  if (!st) st = relu(body);
  if (!st) st = conv(body, cout, cout, 3, 1, 1, false, rng);
  if (!st) st = bn2d(body, cout);
  if (!st && (stride != 1 || cin != cout)) {
    st = td_module_sequential(&shortcut);
    if (!st) st = conv(shortcut, cin, cout, 1, stride, 0, false, rng);
    if (!st) st = bn2d(shortcut, cout);
  }
  if (st) {
    td_module_destroy(body);
    td_module_destroy(shortcut);
    return st;
  }
  if ((st = td_module_residual(body, shortcut, &res))) return st; /* took both */
  if ((st = td_module_sequential(&block))) {
    td_module_destroy(res);
    return st;
  }
  st = td_sequential_append(block, NULL, res);
  if (!st) st = relu(block);
  if (st) {
    td_module_destroy(block);
    return st;
  }
  return td_sequential_append(parent, name, block);
}

static td_status build(const char *name, td_module *seq, td_rng *rng, test_model_info *info) {
  td_status st = TD_OK;
  info->classes = 10;
  if (!strcmp(name, "mlp")) {
    *info = (test_model_info){2, {128, 784}, false, 0, 10};
    if (!st) st = linear(seq, 784, 256, rng);
    if (!st) st = relu(seq);
    if (!st) st = linear(seq, 256, 128, rng);
    if (!st) st = relu(seq);
    if (!st) st = linear(seq, 128, 10, rng);
  } else if (!strcmp(name, "mlp_small")) {
    *info = (test_model_info){2, {32, 64}, false, 0, 10};
    if (!st) st = linear(seq, 64, 64, rng);
    if (!st) st = relu(seq);
    if (!st) st = linear(seq, 64, 10, rng);
  } else if (!strcmp(name, "lenet")) {
    *info = (test_model_info){4, {64, 1, 28, 28}, false, 0, 10};
    if (!st) st = conv(seq, 1, 6, 5, 1, 2, true, rng);
    if (!st) st = relu(seq);
    if (!st) st = max_pool(seq, 2);
    if (!st) st = conv(seq, 6, 16, 5, 1, 0, true, rng);
    if (!st) st = relu(seq);
    if (!st) st = max_pool(seq, 2);
    if (!st) st = flatten(seq);
    if (!st) st = linear(seq, 400, 120, rng);
    if (!st) st = relu(seq);
    if (!st) st = linear(seq, 120, 84, rng);
    if (!st) st = relu(seq);
    if (!st) st = linear(seq, 84, 10, rng);
  } else if (!strcmp(name, "cnn_bn")) {
    *info = (test_model_info){4, {32, 3, 32, 32}, false, 0, 10};
    if (!st) st = conv(seq, 3, 32, 3, 1, 1, true, rng);
    if (!st) st = bn2d(seq, 32);
    if (!st) st = relu(seq);
    if (!st) st = conv(seq, 32, 32, 3, 1, 1, true, rng);
    if (!st) st = bn2d(seq, 32);
    if (!st) st = relu(seq);
    if (!st) st = max_pool(seq, 2);
    if (!st) st = conv(seq, 32, 64, 3, 1, 1, true, rng);
    if (!st) st = bn2d(seq, 64);
    if (!st) st = relu(seq);
    if (!st) st = max_pool(seq, 2);
    if (!st) st = flatten(seq);
    if (!st) st = linear(seq, 64 * 8 * 8, 10, rng);
  } else if (!strcmp(name, "resnet_tiny")) {
    *info = (test_model_info){4, {32, 3, 32, 32}, false, 0, 10};
    td_module *stem = NULL, *m = NULL;
    st = td_module_sequential(&stem);
    if (!st) st = conv(stem, 3, 16, 3, 1, 1, false, rng);
    if (!st) st = bn2d(stem, 16);
    if (!st) st = relu(stem);
    if (st) {
      td_module_destroy(stem);
      return st;
    }
    if ((st = td_sequential_append(seq, "stem", stem))) return st;
    if (!st) st = basic_block(seq, "layer1", 16, 16, 1, rng);
    if (!st) st = basic_block(seq, "layer2", 16, 32, 2, rng);
    if (!st) st = basic_block(seq, "layer3", 32, 64, 2, rng);
    if (!st) st = add(seq, "pool", td_module_adaptive_avg_pool2d(1, 1, &m), &m);
    if (!st) st = add(seq, "flatten", td_module_flatten(&m), &m);
    if (!st) {
      td_linear_config c = {.in_features = 64, .out_features = 10};
      st = add(seq, "fc", td_module_linear(&c, rng, &m), &m);
    }
  } else if (!strcmp(name, "embed_ln")) {
    *info = (test_model_info){2, {16, 8}, true, 50, 10};
    td_module *m = NULL;
    td_embedding_config ec = {.num_embeddings = 50, .embedding_dim = 16};
    td_layer_norm_config lc = {.normalized_ndim = 1, .normalized_shape = {16}};
    if (!st) st = add(seq, NULL, td_module_embedding(&ec, rng, &m), &m);
    if (!st) st = add(seq, NULL, td_module_layer_norm(&lc, &m), &m);
    if (!st) st = linear(seq, 16, 32, rng);
    if (!st) st = add(seq, NULL, td_module_gelu(&m), &m);
    if (!st) st = flatten(seq);
    if (!st) st = linear(seq, 8 * 32, 10, rng);
  } else {
    return td_error(TD_ERR_NOT_FOUND, "test model '%s' does not exist", name);
  }
  return st;
}

td_status test_model_build(const char *name, uint64_t seed, td_module **out,
                           test_model_info *info) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  td_module *seq;
  td_status st = td_module_sequential(&seq);
  if (st) return st;
  if ((st = build(name, seq, &rng, info))) {
    td_module_destroy(seq);
    return st;
  }
  *out = seq;
  return TD_OK;
}

td_status test_model_batch(const test_model_info *info, td_rng *rng, td_tensor **x,
                           td_tensor **y) {
  *x = *y = NULL;
  td_status st;
  if (info->int_input) {
    st = td_tensor_empty(TD_INT64, info->input_ndim, info->input_shape, x);
    if (!st)
      for (int64_t i = 0; i < (*x)->numel; i++)
        td_tensor_i64(*x)[i] = (int64_t)(td_rng_next_u64(rng) % (uint64_t)info->vocab);
  } else {
    st = td_tensor_rand_normal(rng, info->input_ndim, info->input_shape, 0, 1, x);
  }
  if (!st) st = td_tensor_empty(TD_INT64, 1, info->input_shape, y);
  if (!st)
    for (int64_t i = 0; i < (*y)->numel; i++)
      td_tensor_i64(*y)[i] = (int64_t)(td_rng_next_u64(rng) % (uint64_t)info->classes);
  if (st) {
    TD_RELEASE(*x);
    TD_RELEASE(*y);
  }
  return st;
}
