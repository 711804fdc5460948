/* test_module.c - the Module tree: keys, parameters, state_dict and
 * load_state_dict, initialisation, constructor errors, and the input checks
 * that fail before any op runs. Forward computations: test_module_forward.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "module/init.h"
#include "module/layers.h"
#include "module_test_util.h"

/* ---- state-dict keys, exactly as PyTorch names the same tree ------------- */

typedef struct key_spec {
  const char *key, *dtype, *shape;
} key_spec;

/* Printed by PyTorch 1.13 for the same tree built from nn.Sequential
 * (OrderedDict names), a Residual nn.Module with attributes body/shortcut
 * (shortcut unset when identity), Conv2d(bias=False), BatchNorm2d, Linear. */
static const key_spec resnet_keys[] = {
    {"stem.0.weight", "float32", "[16,3,3,3]"},
    {"stem.1.weight", "float32", "[16]"},
    {"stem.1.bias", "float32", "[16]"},
    {"stem.1.running_mean", "float32", "[16]"},
    {"stem.1.running_var", "float32", "[16]"},
    {"stem.1.num_batches_tracked", "int64", "[]"},
    {"layer1.0.body.conv1.weight", "float32", "[16,16,3,3]"},
    {"layer1.0.body.bn1.weight", "float32", "[16]"},
    {"layer1.0.body.bn1.bias", "float32", "[16]"},
    {"layer1.0.body.bn1.running_mean", "float32", "[16]"},
    {"layer1.0.body.bn1.running_var", "float32", "[16]"},
    {"layer1.0.body.bn1.num_batches_tracked", "int64", "[]"},
    {"layer1.0.body.conv2.weight", "float32", "[16,16,3,3]"},
    {"layer1.0.body.bn2.weight", "float32", "[16]"},
    {"layer1.0.body.bn2.bias", "float32", "[16]"},
    {"layer1.0.body.bn2.running_mean", "float32", "[16]"},
    {"layer1.0.body.bn2.running_var", "float32", "[16]"},
    {"layer1.0.body.bn2.num_batches_tracked", "int64", "[]"},
    {"layer2.0.body.conv1.weight", "float32", "[32,16,3,3]"},
    {"layer2.0.body.bn1.weight", "float32", "[32]"},
    {"layer2.0.body.bn1.bias", "float32", "[32]"},
    {"layer2.0.body.bn1.running_mean", "float32", "[32]"},
    {"layer2.0.body.bn1.running_var", "float32", "[32]"},
    {"layer2.0.body.bn1.num_batches_tracked", "int64", "[]"},
    {"layer2.0.body.conv2.weight", "float32", "[32,32,3,3]"},
    {"layer2.0.body.bn2.weight", "float32", "[32]"},
    {"layer2.0.body.bn2.bias", "float32", "[32]"},
    {"layer2.0.body.bn2.running_mean", "float32", "[32]"},
    {"layer2.0.body.bn2.running_var", "float32", "[32]"},
    {"layer2.0.body.bn2.num_batches_tracked", "int64", "[]"},
    {"layer2.0.shortcut.0.weight", "float32", "[32,16,1,1]"},
    {"layer2.0.shortcut.1.weight", "float32", "[32]"},
    {"layer2.0.shortcut.1.bias", "float32", "[32]"},
    {"layer2.0.shortcut.1.running_mean", "float32", "[32]"},
    {"layer2.0.shortcut.1.running_var", "float32", "[32]"},
    {"layer2.0.shortcut.1.num_batches_tracked", "int64", "[]"},
    {"layer3.0.body.conv1.weight", "float32", "[64,32,3,3]"},
    {"layer3.0.body.bn1.weight", "float32", "[64]"},
    {"layer3.0.body.bn1.bias", "float32", "[64]"},
    {"layer3.0.body.bn1.running_mean", "float32", "[64]"},
    {"layer3.0.body.bn1.running_var", "float32", "[64]"},
    {"layer3.0.body.bn1.num_batches_tracked", "int64", "[]"},
    {"layer3.0.body.conv2.weight", "float32", "[64,64,3,3]"},
    {"layer3.0.body.bn2.weight", "float32", "[64]"},
    {"layer3.0.body.bn2.bias", "float32", "[64]"},
    {"layer3.0.body.bn2.running_mean", "float32", "[64]"},
    {"layer3.0.body.bn2.running_var", "float32", "[64]"},
    {"layer3.0.body.bn2.num_batches_tracked", "int64", "[]"},
    {"layer3.0.shortcut.0.weight", "float32", "[64,32,1,1]"},
    {"layer3.0.shortcut.1.weight", "float32", "[64]"},
    {"layer3.0.shortcut.1.bias", "float32", "[64]"},
    {"layer3.0.shortcut.1.running_mean", "float32", "[64]"},
    {"layer3.0.shortcut.1.running_var", "float32", "[64]"},
    {"layer3.0.shortcut.1.num_batches_tracked", "int64", "[]"},
    {"fc.weight", "float32", "[10,64]"},
    {"fc.bias", "float32", "[10]"},
};

static void assert_keys(const td_tensor_map *sd, const key_spec *want, size_t n) {
  assert_int_equal(sd->count, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(sd->entries[i].name, want[i].key);
    assert_string_equal(td_dtype_name(sd->entries[i].tensor->dtype), want[i].dtype);
    assert_shape_str(sd->entries[i].tensor, want[i].shape);
  }
}

static void test_resnet_state_dict_keys_match_torch(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 1);
  td_module *net = mk_resnet_tiny(&rng);
  td_tensor_map sd;
  OK(td_module_state_dict(net, &sd));
  assert_keys(&sd, resnet_keys, sizeof resnet_keys / sizeof *resnet_keys);
  td_tensor_map_free(&sd);
  /* torch: sum(p.numel() for p in m.parameters()) */
  assert_int_equal(td_module_num_parameters(net), 78042);
  td_module_destroy(net);
}

/* Mixed naming: unnamed children take their index, named ones their name;
 * Dropout and parameterless layers add no keys, BatchNorm1d(affine=False)
 * only buffers, Linear(bias=False) only its weight. */
static td_module *mk_mixed(td_rng *rng) {
  td_module *net = mk_seq(), *inner = mk_seq(), *m;
  seq_add(net, NULL, mk_linear(8, 4, true, rng));
  OK(td_module_dropout(0.5f, rng, &m));
  seq_add(net, "drop", m);
  td_layer_norm_config ln = {.normalized_ndim = 1, .normalized_shape = {4}};
  OK(td_module_layer_norm(&ln, &m));
  seq_add(inner, NULL, m);
  td_embedding_config emb = {.num_embeddings = 3, .embedding_dim = 2};
  OK(td_module_embedding(&emb, rng, &m));
  seq_add(inner, NULL, m);
  seq_add(net, "", inner);
  td_batch_norm_config bn = {.num_features = 4, .no_affine = true};
  OK(td_module_batch_norm1d(&bn, &m));
  seq_add(net, NULL, m);
  seq_add(net, "head", mk_linear(4, 2, false, rng));
  return net;
}

static const key_spec mixed_keys[] = {
    {"0.weight", "float32", "[4,8]"},    {"0.bias", "float32", "[4]"},
    {"2.0.weight", "float32", "[4]"},    {"2.0.bias", "float32", "[4]"},
    {"2.1.weight", "float32", "[3,2]"},  {"3.running_mean", "float32", "[4]"},
    {"3.running_var", "float32", "[4]"}, {"3.num_batches_tracked", "int64", "[]"},
    {"head.weight", "float32", "[2,4]"},
};

static void test_mixed_names_modules_and_buffers(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 2);
  td_module *net = mk_mixed(&rng);
  td_tensor_map sd, params, buffers;
  OK(td_module_state_dict(net, &sd));
  assert_keys(&sd, mixed_keys, sizeof mixed_keys / sizeof *mixed_keys);

  OK(td_module_named_parameters(net, &params));
  const char *pnames[] = {"0.weight", "0.bias",     "2.0.weight",
                          "2.0.bias", "2.1.weight", "head.weight"};
  assert_int_equal(params.count, 6);
  for (int i = 0; i < 6; i++)
    assert_string_equal(params.entries[i].name, pnames[i]);
  OK(td_module_named_buffers(net, &buffers));
  assert_int_equal(buffers.count, 3);
  assert_string_equal(buffers.entries[0].name, "3.running_mean");
  assert_string_equal(buffers.entries[2].name, "3.num_batches_tracked");

  /* torch: [n for n, _ in m.named_modules()] */
  td_module_list mods;
  OK(td_module_named_modules(net, &mods));
  const char *mnames[] = {"", "0", "drop", "2", "2.0", "2.1", "3", "head"};
  const char *kinds[] = {"sequential", "linear",    "dropout",      "sequential",
                         "layer_norm", "embedding", "batch_norm1d", "linear"};
  assert_int_equal(mods.count, 8);
  for (int i = 0; i < 8; i++) {
    assert_string_equal(mods.items[i].name, mnames[i]);
    assert_string_equal(td_module_kind(mods.items[i].module), kinds[i]);
  }
  assert_ptr_equal(mods.items[0].module, net);
  td_module_list_free(&mods);

  td_module_list kids;
  OK(td_module_named_children(net, &kids));
  assert_int_equal(kids.count, 5);
  assert_string_equal(kids.items[1].name, "drop");
  assert_string_equal(kids.items[3].name, "3");
  td_module_list_free(&kids);

  td_tensor_map_free(&sd);
  td_tensor_map_free(&params);
  td_tensor_map_free(&buffers);
  td_module_destroy(net);
}

/* named_parameters hands out the parameters themselves; state_dict hands
 * out new handles on the same storage (PyTorch's detach()). */
static void test_state_dict_aliases_parameter_storage(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 3);
  td_module *lin = mk_linear(3, 2, true, &rng);
  td_tensor_map sd, params;
  OK(td_module_state_dict(lin, &sd));
  OK(td_module_named_parameters(lin, &params));
  td_tensor *w = td_tensor_map_get(&params, "weight");
  td_tensor *sw = td_tensor_map_get(&sd, "weight");
  assert_ptr_equal(w, lin->params[0].tensor);
  assert_ptr_not_equal(sw, w);
  assert_ptr_equal(sw->storage, w->storage);
  td_tensor_f32(w)[0] = 42.0f;
  assert_float_equal(td_tensor_f32(sw)[0], 42.0f, 0);
  td_tensor_map_free(&sd);
  td_tensor_map_free(&params);
  td_module_destroy(lin);
}

static void test_parameters_array_and_attach(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 4);
  td_module *net = mk_mixed(&rng);
  td_tensor **ps;
  int n;
  OK(td_module_parameters(net, &ps, &n));
  td_tensor_map named;
  OK(td_module_named_parameters(net, &named));
  assert_int_equal(n, (int)named.count);
  for (int i = 0; i < n; i++)
    assert_ptr_equal(ps[i], named.entries[i].tensor);

  td_grad_manager *gm;
  OK(td_gm_create(&gm));
  OK(td_module_attach(net, gm));
  assert_int_equal(td_gm_num_attached(gm), n);
  for (int i = 0; i < n; i++)
    assert_ptr_equal(td_gm_attached(gm, i), ps[i]);
  td_gm_destroy(gm);

  td_module *act = mk_relu();
  td_tensor **none = (td_tensor **)&act; /* must be overwritten */
  OK(td_module_parameters(act, &none, &n));
  assert_null(none);
  assert_int_equal(n, 0);
  assert_int_equal(td_module_num_parameters(act), 0);

  td_free(ps);
  td_tensor_map_free(&named);
  td_module_destroy(act);
  td_module_destroy(net);
}

static void test_train_eval_is_recursive(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 5);
  td_module *net = mk_resnet_tiny(&rng);
  td_module_list mods;
  OK(td_module_named_modules(net, &mods));
  for (int i = 0; i < mods.count; i++)
    assert_true(mods.items[i].module->training);
  td_module_eval(net);
  for (int i = 0; i < mods.count; i++)
    assert_false(mods.items[i].module->training);
  td_module_train(net, true);
  for (int i = 0; i < mods.count; i++)
    assert_true(mods.items[i].module->training);
  td_module_list_free(&mods);
  td_module_destroy(net);
}

/* ---- layouts and initial values ------------------------------------------- */

static void test_layer_layouts(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 6);
  td_conv2d_config cc = {.in_channels = 4, .out_channels = 6, .kernel_size = 3, .groups = 2};
  td_module *conv;
  OK(td_module_conv2d(&cc, &rng, &conv));
  assert_int_equal(conv->n_params, 2);
  assert_string_equal(conv->params[0].name, "weight");
  assert_shape_str(conv->params[0].tensor, "[6,2,3,3]");
  assert_string_equal(conv->params[1].name, "bias");
  assert_shape_str(conv->params[1].tensor, "[6]");
  assert_int_equal(td_module_num_parameters(conv), 6 * 2 * 9 + 6);
  td_module_destroy(conv);

  td_module *lin = mk_linear(784, 256, false, &rng);
  assert_int_equal(lin->n_params, 1);
  assert_shape_str(lin->params[0].tensor, "[256,784]");
  assert_true(td_tensor_is_contiguous(lin->params[0].tensor));
  td_module_destroy(lin);

  /* BatchNorm: weight ones, bias zeros, running_mean zeros, running_var
   * ones, num_batches_tracked an int64 0-d zero. */
  td_module *bn = mk_bn2d(3);
  td_tensor_map sd;
  OK(td_module_state_dict(bn, &sd));
  const char *names[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
  const float vals[] = {1, 0, 0, 1};
  assert_int_equal(sd.count, 5);
  for (int i = 0; i < 5; i++)
    assert_string_equal(sd.entries[i].name, names[i]);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      assert_float_equal(td_tensor_f32(sd.entries[i].tensor)[j], vals[i], 0);
  td_tensor *nbt = sd.entries[4].tensor;
  assert_int_equal(nbt->dtype, TD_INT64);
  assert_int_equal(nbt->ndim, 0);
  assert_int_equal(td_tensor_i64(nbt)[0], 0);
  assert_int_equal(bn->n_params, 2); /* buffers are not parameters */
  td_tensor_map_free(&sd);
  td_module_destroy(bn);

  td_batch_norm_config plain = {.num_features = 3, .no_affine = true, .no_running_stats = true};
  OK(td_module_batch_norm1d(&plain, &bn));
  OK(td_module_state_dict(bn, &sd));
  assert_int_equal(sd.count, 0);
  td_tensor_map_free(&sd);
  td_module_destroy(bn);

  td_layer_norm_config lc = {.normalized_ndim = 2, .normalized_shape = {5, 4}};
  td_module *ln;
  OK(td_module_layer_norm(&lc, &ln));
  OK(td_module_state_dict(ln, &sd));
  assert_int_equal(sd.count, 2);
  assert_shape_str(sd.entries[0].tensor, "[5,4]");
  assert_float_equal(td_tensor_f32(sd.entries[0].tensor)[19], 1.0f, 0);
  assert_float_equal(td_tensor_f32(sd.entries[1].tensor)[19], 0.0f, 0);
  td_tensor_map_free(&sd);
  td_module_destroy(ln);
}

typedef struct stats {
  double mean, var, min, max;
} stats;

static stats stats_of(const td_tensor *t) {
  const float *p = td_tensor_f32(t);
  stats s = {0, 0, INFINITY, -INFINITY};
  for (int64_t i = 0; i < t->numel; i++) {
    s.mean += p[i];
    if (p[i] < s.min) s.min = p[i];
    if (p[i] > s.max) s.max = p[i];
  }
  s.mean /= (double)t->numel;
  for (int64_t i = 0; i < t->numel; i++)
    s.var += (p[i] - s.mean) * (p[i] - s.mean);
  s.var /= (double)t->numel;
  return s;
}

/* U(-b, b) has mean 0 and variance b^2/3; with n samples the sample mean is
 * within a few b/sqrt(3n) of 0. */
static void assert_uniform(const td_tensor *t, double bound) {
  stats s = stats_of(t);
  double n = (double)t->numel;
  assert_true(s.min >= -bound && s.max <= bound);
  assert_true(s.max > bound * (1 - 20 / n) && s.min < -bound * (1 - 20 / n));
  assert_true(fabs(s.mean) < 5 * bound / sqrt(3 * n));
  assert_true(fabs(s.var / (bound * bound / 3) - 1) < 10 / sqrt(n));
}

static void test_init_distributions(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 7);
  /* Linear(400, 300): kaiming_uniform_(a=sqrt(5)) is U(-1/20, 1/20). */
  td_module *lin = mk_linear(400, 300, true, &rng);
  assert_uniform(lin->params[0].tensor, 0.05);
  stats b = stats_of(lin->params[1].tensor);
  assert_true(b.min >= -0.05 && b.max <= 0.05 && b.max > 0.04 && b.min < -0.04);
  td_module_destroy(lin);

  /* Conv2d(32, 64, 3, groups=2): fan_in = 16 * 3 * 3 = 144, bound 1/12. */
  td_conv2d_config cc = {.in_channels = 32, .out_channels = 64, .kernel_size = 3, .groups = 2};
  td_module *conv;
  OK(td_module_conv2d(&cc, &rng, &conv));
  assert_uniform(conv->params[0].tensor, 1.0 / 12);
  stats cb = stats_of(conv->params[1].tensor);
  assert_true(cb.min >= -1.0 / 12 && cb.max <= 1.0 / 12);
  td_module_destroy(conv);

  /* Embedding: N(0, 1). */
  td_embedding_config ec = {.num_embeddings = 1000, .embedding_dim = 64};
  td_module *emb;
  OK(td_module_embedding(&ec, &rng, &emb));
  stats e = stats_of(emb->params[0].tensor);
  assert_true(fabs(e.mean) < 0.02);
  assert_true(fabs(sqrt(e.var) - 1) < 0.02);
  td_module_destroy(emb);

  /* The generic initialisers: kaiming_uniform_ with a = 0 is ReLU's gain. */
  int64_t shape[2] = {200, 50};
  td_tensor *t;
  OK(td_tensor_empty(TD_FLOAT32, 2, shape, &t));
  assert_int_equal(td_init_fan_in(t), 50);
  OK(td_init_kaiming_uniform_(t, 0.0, 50, &rng));
  assert_uniform(t, sqrt(6.0 / 50));
  assert_error(td_init_kaiming_uniform_(t, 0.0, 0, &rng), TD_ERR_INVALID_ARGUMENT,
               "fan_in must be positive, got 0");
  td_tensor_release(t);
}

static bool same_values(const td_tensor_map *a, const td_tensor_map *b) {
  if (a->count != b->count) return false;
  for (size_t i = 0; i < a->count; i++) {
    const td_tensor *x = a->entries[i].tensor, *y = b->entries[i].tensor;
    if (strcmp(a->entries[i].name, b->entries[i].name) || x->numel != y->numel ||
        memcmp(td_tensor_data(x), td_tensor_data(y), td_tensor_nbytes(x)))
      return false;
  }
  return true;
}

static void test_same_seed_same_weights(void **state) {
  (void)state;
  td_rng r1, r2, r3;
  td_rng_seed(&r1, 42);
  td_rng_seed(&r2, 42);
  td_rng_seed(&r3, 43);
  td_module *a = mk_resnet_tiny(&r1), *b = mk_resnet_tiny(&r2), *c = mk_resnet_tiny(&r3);
  td_tensor_map sa, sb, sc;
  OK(td_module_state_dict(a, &sa));
  OK(td_module_state_dict(b, &sb));
  OK(td_module_state_dict(c, &sc));
  assert_true(same_values(&sa, &sb));
  assert_false(same_values(&sa, &sc));
  td_tensor_map_free(&sa);
  td_tensor_map_free(&sb);
  td_tensor_map_free(&sc);
  td_module_destroy(a);
  td_module_destroy(b);
  td_module_destroy(c);
}

/* ---- load_state_dict ------------------------------------------------------ */

/* Sequential[Linear(4,3), BatchNorm1d(3), Linear(3,2)] */
static td_module *mk_small(uint64_t seed) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  td_module *net = mk_seq(), *bn;
  seq_add(net, NULL, mk_linear(4, 3, true, &rng));
  td_batch_norm_config c = {.num_features = 3};
  OK(td_module_batch_norm1d(&c, &bn));
  seq_add(net, NULL, bn);
  seq_add(net, NULL, mk_linear(3, 2, true, &rng));
  return net;
}

/* A deep copy of a state dict (so later loads cannot alias it). */
static void snapshot(const td_module *m, td_tensor_map *out) {
  td_tensor_map sd;
  OK(td_module_state_dict(m, &sd));
  map_clone(&sd, out);
  td_tensor_map_free(&sd);
}

static uint64_t version_sum(const td_module *m) {
  td_tensor_map sd;
  OK(td_module_state_dict(m, &sd));
  uint64_t v = 0;
  for (size_t i = 0; i < sd.count; i++)
    v += td_tensor_version(sd.entries[i].tensor);
  td_tensor_map_free(&sd);
  return v;
}

static void test_load_roundtrip_keeps_parameter_handles(void **state) {
  (void)state;
  td_module *a = mk_small(10), *b = mk_small(11);
  td_tensor_map sa, sb;
  snapshot(a, &sa);
  td_tensor_i64(td_tensor_map_get(&sa, "1.num_batches_tracked"))[0] = 7;
  td_tensor **before;
  int n;
  OK(td_module_parameters(b, &before, &n));
  uint64_t v0 = version_sum(b);
  td_load_result r;
  OK(td_module_load_state_dict(b, &sa, true, &r));
  assert_int_equal(r.n_missing + r.n_unexpected + r.n_mismatched, 0);
  td_load_result_free(&r);
  snapshot(b, &sb);
  assert_true(same_values(&sa, &sb));
  assert_int_equal(td_tensor_i64(td_tensor_map_get(&sb, "1.num_batches_tracked"))[0], 7);
  /* Values were copied into the same tensors (optimizers keep them), and
   * every copy bumped a version. */
  td_tensor **after;
  OK(td_module_parameters(b, &after, &n));
  for (int i = 0; i < n; i++)
    assert_ptr_equal(before[i], after[i]);
  assert_int_equal(version_sum(b), v0 + sa.count);
  /* NULL result is allowed. */
  OK(td_module_load_state_dict(b, &sa, true, NULL));
  td_free(before);
  td_free(after);
  td_tensor_map_free(&sa);
  td_tensor_map_free(&sb);
  td_module_destroy(a);
  td_module_destroy(b);
}

static td_tensor *filled(td_dtype dtype, int ndim, const int64_t *shape, double v) {
  td_tensor *t;
  OK(td_tensor_full(dtype, ndim, shape, v, &t));
  return t;
}

/* The dict for mk_small with every problem at once: '0.bias' missing,
 * '1.weight' the wrong shape, '1.num_batches_tracked' the wrong dtype,
 * 'extra.weight' unexpected. */
static void bad_dict(td_tensor_map *sd) {
  int64_t s34[] = {3, 4}, s3[] = {3}, s4[] = {4}, s23[] = {2, 3}, s2[] = {2};
  td_tensor_map_init(sd);
  map_put(sd, "0.weight", filled(TD_FLOAT32, 2, s34, 0.5));
  map_put(sd, "1.weight", filled(TD_FLOAT32, 1, s4, 0.5));
  map_put(sd, "1.bias", filled(TD_FLOAT32, 1, s3, 0.5));
  map_put(sd, "extra.weight", filled(TD_FLOAT32, 1, s3, 0.5));
  map_put(sd, "1.running_mean", filled(TD_FLOAT32, 1, s3, 0.5));
  map_put(sd, "1.running_var", filled(TD_FLOAT32, 1, s3, 0.5));
  map_put(sd, "1.num_batches_tracked", filled(TD_FLOAT32, 0, s3, 3));
  map_put(sd, "2.weight", filled(TD_FLOAT32, 2, s23, 0.5));
  map_put(sd, "2.bias", filled(TD_FLOAT32, 1, s2, 0.5));
}

static void test_strict_load_reports_everything_and_changes_nothing(void **state) {
  (void)state;
  td_module *net = mk_small(12);
  td_tensor_map before, after, sd;
  snapshot(net, &before);
  uint64_t v0 = version_sum(net);
  bad_dict(&sd);
  td_load_result r;
  assert_int_equal(td_module_load_state_dict(net, &sd, true, &r), TD_ERR_INVALID_ARGUMENT);
  assert_string_equal(td_error_message(),
                      "load_state_dict: 1 missing key, 1 unexpected key, 2 with the wrong shape "
                      "or dtype: missing '0.bias'; unexpected 'extra.weight'; 1.weight: expected "
                      "float32 [3], got float32 [4]; 1.num_batches_tracked: expected int64 [], "
                      "got float32 []");
  assert_int_equal(r.n_missing, 1);
  assert_string_equal(r.missing_keys[0], "0.bias");
  assert_int_equal(r.n_unexpected, 1);
  assert_string_equal(r.unexpected_keys[0], "extra.weight");
  assert_int_equal(r.n_mismatched, 2);
  assert_string_equal(r.mismatched[0], "1.weight: expected float32 [3], got float32 [4]");
  td_load_result_free(&r);
  assert_int_equal(r.n_missing, 0); /* free leaves an empty, reusable struct */

  snapshot(net, &after);
  assert_true(same_values(&before, &after));
  assert_int_equal(version_sum(net), v0);

  /* Non-strict still refuses the shape and dtype mismatches (and says
   * nothing of the missing/unexpected keys, which are not errors there). */
  assert_int_equal(td_module_load_state_dict(net, &sd, false, &r), TD_ERR_INVALID_ARGUMENT);
  assert_string_equal(td_error_message(),
                      "load_state_dict: 2 with the wrong shape or dtype: 1.weight: expected "
                      "float32 [3], got float32 [4]; 1.num_batches_tracked: expected int64 [], "
                      "got float32 []");
  assert_int_equal(r.n_missing, 1);
  td_load_result_free(&r);
  td_tensor_map_free(&after);
  snapshot(net, &after);
  assert_true(same_values(&before, &after));
  assert_int_equal(version_sum(net), v0);

  td_tensor_map_free(&sd);
  td_tensor_map_free(&before);
  td_tensor_map_free(&after);
  td_module_destroy(net);
}

static void test_non_strict_load_loads_matching_keys(void **state) {
  (void)state;
  td_module *net = mk_small(13);
  td_tensor_map sd, before;
  snapshot(net, &before);
  int64_t s34[] = {3, 4}, s3[] = {3};
  td_tensor_map_init(&sd);
  map_put(&sd, "0.weight", filled(TD_FLOAT32, 2, s34, 0.25));
  map_put(&sd, "1.running_var", filled(TD_FLOAT32, 1, s3, 2.0));
  map_put(&sd, "fc.bias", filled(TD_FLOAT32, 1, s3, 0));
  td_load_result r;
  /* strict: two error kinds, nothing loaded */
  assert_error(td_module_load_state_dict(net, &sd, true, &r), TD_ERR_INVALID_ARGUMENT,
               "load_state_dict: 7 missing keys, 1 unexpected key: missing '0.bias', "
               "'1.weight', '1.bias', '1.running_mean', '1.num_batches_tracked', '2.weight', "
               "'2.bias'; unexpected 'fc.bias'");
  td_load_result_free(&r);
  assert_float_equal(td_tensor_f32(net->children[0]->params[0].tensor)[0],
                     td_tensor_f32(td_tensor_map_get(&before, "0.weight"))[0], 0);

  OK(td_module_load_state_dict(net, &sd, false, &r));
  assert_int_equal(r.n_missing, 7);
  assert_string_equal(r.missing_keys[6], "2.bias");
  assert_int_equal(r.n_unexpected, 1);
  assert_string_equal(r.unexpected_keys[0], "fc.bias");
  assert_int_equal(r.n_mismatched, 0);
  td_load_result_free(&r);
  td_tensor_map now;
  snapshot(net, &now);
  for (int i = 0; i < 12; i++)
    assert_float_equal(td_tensor_f32(td_tensor_map_get(&now, "0.weight"))[i], 0.25f, 0);
  assert_float_equal(td_tensor_f32(td_tensor_map_get(&now, "1.running_var"))[2], 2.0f, 0);
  /* untouched keys keep their values */
  assert_float_equal(td_tensor_f32(td_tensor_map_get(&now, "2.bias"))[1],
                     td_tensor_f32(td_tensor_map_get(&before, "2.bias"))[1], 0);
  td_tensor_map_free(&now);
  td_tensor_map_free(&sd);
  td_tensor_map_free(&before);
  td_module_destroy(net);
}

/* A dict for a different model: every key wrong. The message stays within
 * the error buffer, counts first, and ends with "..." when cut; the result
 * still holds every key. */
static void test_load_message_is_bounded(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 14);
  td_module *net = mk_resnet_tiny(&rng);
  td_module *other = mk_small(15);
  td_tensor_map sd;
  OK(td_module_state_dict(other, &sd));
  td_load_result r;
  assert_int_equal(td_module_load_state_dict(net, &sd, true, &r), TD_ERR_INVALID_ARGUMENT);
  const char *msg = td_error_message();
  const char *start = "load_state_dict: 56 missing keys, 9 unexpected keys: missing "
                      "'stem.0.weight', 'stem.1.weight', ";
  assert_true(strncmp(msg, start, strlen(start)) == 0);
  size_t len = strlen(msg);
  assert_true(len < 1000);
  assert_string_equal(msg + len - 3, "...");
  assert_int_equal(r.n_missing, 56);
  assert_string_equal(r.missing_keys[55], "fc.bias");
  assert_int_equal(r.n_unexpected, 9);
  td_load_result_free(&r);
  td_tensor_map_free(&sd);
  td_module_destroy(other);
  td_module_destroy(net);
}

/* ---- constructor errors ---------------------------------------------------- */

#define EXPECT_CTOR_ERROR(call, part)                                                              \
  do {                                                                                             \
    td_module *m_ = (td_module *)&rng;                                                             \
    assert_error(call(&m_), TD_ERR_INVALID_ARGUMENT, part);                                        \
    assert_null(m_);                                                                               \
  } while (0)

static td_rng rng;
static td_linear_config lin_cfg;
static td_conv2d_config conv_cfg;
static td_batch_norm_config bn_cfg;
static td_layer_norm_config ln_cfg;
static td_pool2d_config pool_cfg;
static td_embedding_config emb_cfg;
static float drop_p;
static int adapt_h;

static td_status new_linear(td_module **m) { return td_module_linear(&lin_cfg, &rng, m); }
static td_status new_linear_no_rng(td_module **m) { return td_module_linear(&lin_cfg, NULL, m); }
static td_status new_conv(td_module **m) { return td_module_conv2d(&conv_cfg, &rng, m); }
static td_status new_bn1d(td_module **m) { return td_module_batch_norm1d(&bn_cfg, m); }
static td_status new_bn2d(td_module **m) { return td_module_batch_norm2d(&bn_cfg, m); }
static td_status new_ln(td_module **m) { return td_module_layer_norm(&ln_cfg, m); }
static td_status new_max(td_module **m) { return td_module_max_pool2d(&pool_cfg, m); }
static td_status new_avg(td_module **m) { return td_module_avg_pool2d(&pool_cfg, m); }
static td_status new_emb(td_module **m) { return td_module_embedding(&emb_cfg, &rng, m); }
static td_status new_drop(td_module **m) { return td_module_dropout(drop_p, &rng, m); }
static td_status new_adapt(td_module **m) { return td_module_adaptive_avg_pool2d(adapt_h, 1, m); }
static td_status new_leaky_inf(td_module **m) { return td_module_leaky_relu(INFINITY, m); }
static td_status new_residual_null(td_module **m) { return td_module_residual(NULL, NULL, m); }

static void test_constructor_errors(void **state) {
  (void)state;
  td_rng_seed(&rng, 16);
  lin_cfg = (td_linear_config){.in_features = 0, .out_features = 5};
  EXPECT_CTOR_ERROR(new_linear,
                    "linear: in_features and out_features must be positive, got 0 and 5");
  lin_cfg = (td_linear_config){.in_features = 3, .out_features = -2};
  EXPECT_CTOR_ERROR(new_linear, "got 3 and -2");
  lin_cfg.out_features = 2;
  EXPECT_CTOR_ERROR(new_linear_no_rng, "linear: a random generator is needed");
  /* A shape too large to describe is refused before any allocation. */
  lin_cfg = (td_linear_config){.in_features = INT64_MAX / 2, .out_features = 1 << 20};
  EXPECT_CTOR_ERROR(new_linear, "linear: weight: ");

  const td_conv2d_config good = {.in_channels = 4, .out_channels = 8, .kernel_size = 3};
  conv_cfg = good;
  conv_cfg.in_channels = 0;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: in_channels and out_channels must be positive, got 0 and 8");
  conv_cfg = good;
  conv_cfg.kernel_size = 0;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: kernel_size must be positive, got 0");
  conv_cfg = good;
  conv_cfg.stride = -1;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: stride must be positive, got -1");
  conv_cfg = good;
  conv_cfg.padding = -1;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: padding must be >= 0, got -1");
  conv_cfg = good;
  conv_cfg.dilation = -2;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: dilation must be positive, got -2");
  conv_cfg = good;
  conv_cfg.groups = 3;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: in_channels 4 is not divisible by groups 3");
  conv_cfg = good;
  conv_cfg.out_channels = 6;
  conv_cfg.groups = 4;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: out_channels 6 is not divisible by groups 4");
  conv_cfg = good;
  conv_cfg.groups = -1;
  EXPECT_CTOR_ERROR(new_conv, "conv2d: groups must be positive, got -1");

  bn_cfg = (td_batch_norm_config){.num_features = 0};
  EXPECT_CTOR_ERROR(new_bn1d, "batch_norm1d: num_features must be positive, got 0");
  bn_cfg = (td_batch_norm_config){.num_features = 4, .eps = -1e-5f};
  EXPECT_CTOR_ERROR(new_bn2d, "batch_norm2d: eps must be positive, got -1e-05");
  bn_cfg = (td_batch_norm_config){.num_features = 4, .momentum = 1.5f};
  EXPECT_CTOR_ERROR(new_bn2d, "batch_norm2d: momentum must be in (0, 1], got 1.5");
  bn_cfg = (td_batch_norm_config){.num_features = 4, .momentum = -0.1f};
  EXPECT_CTOR_ERROR(new_bn1d, "batch_norm1d: momentum must be in (0, 1], got -0.1");
  bn_cfg = (td_batch_norm_config){.num_features = 4, .momentum = NAN};
  EXPECT_CTOR_ERROR(new_bn1d, "momentum must be in (0, 1], got nan");

  ln_cfg = (td_layer_norm_config){.normalized_ndim = 0};
  EXPECT_CTOR_ERROR(new_ln, "layer_norm: normalized_shape must have 1 to 8 dims, got 0");
  ln_cfg = (td_layer_norm_config){.normalized_ndim = 9};
  EXPECT_CTOR_ERROR(new_ln, "got 9");
  ln_cfg = (td_layer_norm_config){.normalized_ndim = 2, .normalized_shape = {3, 0}};
  EXPECT_CTOR_ERROR(new_ln, "layer_norm: normalized_shape [3,0] must have positive extents");
  ln_cfg = (td_layer_norm_config){.normalized_ndim = 1, .normalized_shape = {3}, .eps = NAN};
  EXPECT_CTOR_ERROR(new_ln, "layer_norm: eps must be positive, got nan");

  pool_cfg = (td_pool2d_config){.kernel_size = 0};
  EXPECT_CTOR_ERROR(new_max, "max_pool2d: kernel_size must be positive, got 0");
  pool_cfg = (td_pool2d_config){.kernel_size = 2, .stride = -1};
  EXPECT_CTOR_ERROR(new_avg, "avg_pool2d: stride must be positive, got -1");
  pool_cfg = (td_pool2d_config){.kernel_size = 3, .padding = 2};
  EXPECT_CTOR_ERROR(new_max, "max_pool2d: padding must be between 0 and half the kernel size, "
                             "got padding 2 with kernel_size 3");
  adapt_h = 0;
  EXPECT_CTOR_ERROR(new_adapt, "adaptive_avg_pool2d: output size must be positive, got 0x1");

  emb_cfg = (td_embedding_config){.num_embeddings = 0, .embedding_dim = 4};
  EXPECT_CTOR_ERROR(new_emb,
                    "embedding: num_embeddings and embedding_dim must be positive, got 0 and 4");

  drop_p = -0.1f;
  EXPECT_CTOR_ERROR(new_drop, "dropout: p must be between 0 and 1, got -0.1");
  drop_p = 1.5f;
  EXPECT_CTOR_ERROR(new_drop, "got 1.5");
  drop_p = NAN;
  EXPECT_CTOR_ERROR(new_drop, "got nan");
  EXPECT_CTOR_ERROR(new_leaky_inf, "leaky_relu: negative_slope must be finite, got inf");
  EXPECT_CTOR_ERROR(new_residual_null, "residual: body is NULL");

  /* The edges PyTorch allows: p == 1 and p == 0, stride 0 = default. */
  td_module *m;
  OK(td_module_dropout(1.0f, &rng, &m));
  td_module_destroy(m);
  OK(td_module_dropout(0.0f, &rng, &m));
  td_module_destroy(m);
  pool_cfg = (td_pool2d_config){.kernel_size = 3, .padding = 1};
  OK(td_module_max_pool2d(&pool_cfg, &m));
  td_module_destroy(m);
}

/* ---- building trees ------------------------------------------------------- */

static void test_tree_building_errors(void **state) {
  (void)state;
  td_module *seq = mk_seq();
  seq_add(seq, "fc", mk_identity());
  assert_int_equal(td_sequential_append(seq, "fc", mk_identity()), TD_ERR_INVALID_ARGUMENT);
  assert_string_equal(td_error_message(), "sequential: two children named 'fc'");
  /* an unnamed child's index collides with an earlier child's name */
  seq_add(seq, "2", mk_identity());
  assert_int_equal(td_sequential_append(seq, NULL, mk_identity()), TD_ERR_INVALID_ARGUMENT);
  assert_string_equal(td_error_message(), "sequential: two children named '2'");
  assert_error(td_sequential_append(seq, "a.b", mk_identity()), TD_ERR_INVALID_ARGUMENT,
               "sequential: invalid child name 'a.b': use 1 to 64 characters");
  char long_name[70];
  memset(long_name, 'x', 65);
  long_name[65] = '\0';
  assert_int_equal(td_sequential_append(seq, long_name, mk_identity()), TD_ERR_INVALID_ARGUMENT);
  assert_int_equal(seq->n_children, 2);

  /* appending to a non-container */
  td_module *relu = mk_relu();
  assert_int_equal(td_sequential_append(relu, NULL, mk_identity()), TD_ERR_INVALID_ARGUMENT);
  assert_string_equal(td_error_message(),
                      "sequential_append: the parent is a relu, not a sequential");

  /* a module already in a tree is refused and stays where it is */
  td_module *owned = seq->children[0], *other = mk_seq();
  assert_error(td_sequential_append(other, NULL, owned), TD_ERR_INVALID_ARGUMENT,
               "already belongs to a sequential");
  assert_ptr_equal(seq->children[0], owned);
  td_module_destroy(other);

  /* no module may contain its own ancestor */
  td_module *inner = mk_seq();
  seq_add(seq, "inner", inner);
  assert_error(td_sequential_append(inner, NULL, seq), TD_ERR_INVALID_ARGUMENT,
               "cannot add '0', it contains this module");
  td_module_destroy(relu);
  td_module_destroy(seq);
}

static void test_depth_limit(void **state) {
  (void)state;
  /* A chain 64 levels deep is fine; the 65th level is refused. */
  td_module *leaf = mk_identity();
  for (int level = 2; level <= TD_MODULE_MAX_DEPTH; level++) {
    td_module *s = mk_seq();
    seq_add(s, NULL, leaf);
    leaf = s;
  }
  td_module *top = mk_seq();
  assert_error(td_sequential_append(top, NULL, leaf), TD_ERR_INVALID_ARGUMENT,
               "nests modules deeper than 64 levels");
  /* Building top-down hits the same limit. */
  td_module *root = mk_seq(), *cur = root;
  td_status st = TD_OK;
  for (int level = 2; level <= TD_MODULE_MAX_DEPTH + 1 && !st; level++) {
    td_module *s = mk_seq();
    st = td_sequential_append(cur, NULL, s);
    cur = s;
  }
  assert_int_equal(st, TD_ERR_INVALID_ARGUMENT);
  td_tensor_map sd;
  OK(td_module_state_dict(root, &sd));
  td_tensor_map_free(&sd);
  td_module_destroy(root);
  td_module_destroy(top);
  td_module_destroy(NULL);
}

/* ---- input checks that fail before any op runs ----------------------------- */

static td_tensor *input(td_dtype dtype, int ndim, const int64_t *shape) {
  td_tensor *t;
  OK(td_tensor_zeros(dtype, ndim, shape, &t));
  return t;
}

static void expect_forward_error(td_module *m, td_dtype dtype, int ndim, const int64_t *shape,
                                 const char *message) {
  td_tensor *x = input(dtype, ndim, shape), *y = (td_tensor *)&y;
  assert_int_equal(td_module_forward(m, x, &y), TD_ERR_INVALID_ARGUMENT);
  assert_null(y);
  assert_string_equal(td_error_message(), message);
  td_tensor_release(x);
}

static void test_forward_errors_name_the_layer_path(void **state) {
  (void)state;
  td_rng_seed(&rng, 17);
  td_module *net = mk_seq();
  seq_add(net, NULL, mk_identity());
  seq_add(net, NULL, mk_identity());
  seq_add(net, NULL, mk_linear(784, 10, true, &rng));
  int64_t s[] = {32, 100};
  expect_forward_error(net, TD_FLOAT32, 2, s,
                       "sequential: linear '2': linear: input has 100 features, expected 784 "
                       "(input shape [32,100])");
  expect_forward_error(net, TD_INT64, 2, s,
                       "sequential: linear '2': linear: expected float32 input, got int64 "
                       "(input shape [32,100])");
  td_module_destroy(net);

  net = mk_seq();
  td_module *features = mk_seq();
  seq_add(features, NULL, mk_conv(3, 8, 3, 1, 0, true, &rng));
  seq_add(net, "features", features);
  int64_t img[] = {8, 1, 28, 28};
  expect_forward_error(net, TD_FLOAT32, 4, img,
                       "sequential: sequential 'features': conv2d '0': conv2d: input has 1 "
                       "channels, expected 3 (input shape [8,1,28,28])");
  td_module_destroy(net);

  /* the root alone: "<kind>: " */
  td_module *lin = mk_linear(4, 4, true, &rng), *res;
  OK(td_module_residual(lin, NULL, &res));
  int64_t s25[] = {2, 5};
  expect_forward_error(res, TD_FLOAT32, 2, s25,
                       "residual: linear 'body': linear: input has 5 features, expected 4 "
                       "(input shape [2,5])");
  td_tensor *y = (td_tensor *)&y;
  assert_int_equal(td_module_forward(res, NULL, &y), TD_ERR_INVALID_ARGUMENT);
  assert_null(y);
  assert_string_equal(td_error_message(), "residual: input is NULL");
  td_module_destroy(res);
}

static void test_forward_shape_checks(void **state) {
  (void)state;
  td_rng_seed(&rng, 18);
  td_module *conv = mk_conv(3, 4, 5, 1, 0, true, &rng);
  int64_t chw[] = {3, 32, 32}, small[] = {1, 3, 3, 3};
  expect_forward_error(conv, TD_FLOAT32, 3, chw,
                       "conv2d: expected input [N,C,H,W], got shape [3,32,32]");
  expect_forward_error(conv, TD_FLOAT32, 4, small,
                       "conv2d: kernel 5x5 is larger than the padded input 3x3 "
                       "(input shape [1,3,3,3], padding 0)");
  td_module_destroy(conv);
  td_conv2d_config dil = {
      .in_channels = 3, .out_channels = 3, .kernel_size = 3, .padding = 1, .dilation = 2};
  OK(td_module_conv2d(&dil, &rng, &conv));
  int64_t tiny[] = {1, 3, 2, 2};
  expect_forward_error(conv, TD_FLOAT32, 4, tiny,
                       "conv2d: kernel 3x3 with dilation 2 is larger than the padded "
                       "input 4x4 (input shape [1,3,2,2], padding 1)");
  td_module_destroy(conv);

  td_pool2d_config pc = {.kernel_size = 3};
  td_module *pool;
  OK(td_module_max_pool2d(&pc, &pool));
  int64_t p2[] = {1, 1, 2, 2};
  expect_forward_error(pool, TD_FLOAT32, 4, p2,
                       "max_pool2d: kernel 3x3 is larger than the padded input 2x2 "
                       "(input shape [1,1,2,2], padding 0)");
  td_module_destroy(pool);
  OK(td_module_avg_pool2d(&pc, &pool));
  int64_t p1[] = {4, 4};
  expect_forward_error(pool, TD_FLOAT32, 2, p1,
                       "avg_pool2d: expected input [N,C,H,W], got shape [4,4]");
  td_module_destroy(pool);
  OK(td_module_adaptive_avg_pool2d(2, 2, &pool));
  int64_t empty[] = {1, 1, 0, 4};
  expect_forward_error(pool, TD_FLOAT32, 4, empty,
                       "adaptive_avg_pool2d: input has an empty spatial "
                       "dim (input shape [1,1,0,4])");
  td_module_destroy(pool);

  td_batch_norm_config bc = {.num_features = 3};
  td_module *bn;
  OK(td_module_batch_norm1d(&bc, &bn));
  int64_t f4[] = {8, 4}, f4d[] = {8, 3, 2, 2};
  expect_forward_error(bn, TD_FLOAT32, 2, f4,
                       "batch_norm1d: input has 4 features, expected 3 (input "
                       "shape [8,4])");
  expect_forward_error(bn, TD_FLOAT32, 4, f4d,
                       "batch_norm1d: expected input [N,C] or [N,C,L], got shape "
                       "[8,3,2,2]");
  td_module_destroy(bn);
  OK(td_module_batch_norm2d(&bc, &bn));
  int64_t c5[] = {2, 5, 4, 4};
  expect_forward_error(bn, TD_FLOAT32, 2, f4,
                       "batch_norm2d: expected input [N,C,H,W], got shape [8,4]");
  expect_forward_error(bn, TD_FLOAT32, 4, c5,
                       "batch_norm2d: input has 5 channels, expected 3 (input "
                       "shape [2,5,4,4])");
  td_module_destroy(bn);

  td_layer_norm_config lc = {.normalized_ndim = 2, .normalized_shape = {3, 4}};
  td_module *ln;
  OK(td_module_layer_norm(&lc, &ln));
  int64_t l1[] = {2, 4, 3}, l2[] = {4};
  expect_forward_error(ln, TD_FLOAT32, 3, l1,
                       "layer_norm: input shape [2,4,3] does not end with "
                       "normalized_shape [3,4]");
  expect_forward_error(ln, TD_FLOAT32, 1, l2,
                       "layer_norm: input shape [4] does not end with "
                       "normalized_shape [3,4]");
  td_module_destroy(ln);

  td_embedding_config ec = {.num_embeddings = 10, .embedding_dim = 3};
  td_module *emb;
  OK(td_module_embedding(&ec, &rng, &emb));
  int64_t idx[] = {2, 5};
  expect_forward_error(emb, TD_FLOAT32, 2, idx,
                       "embedding: expected int64 input, got float32 (input shape "
                       "[2,5])");
  td_module_destroy(emb);

  td_module *flat, *soft;
  OK(td_module_flatten(&flat));
  int64_t v3[] = {3};
  expect_forward_error(flat, TD_FLOAT32, 1, v3,
                       "flatten: expected input [N, ...] with at least 2 dims, got "
                       "shape [3]");
  td_module_destroy(flat);
  OK(td_module_softmax(2, &soft));
  expect_forward_error(soft, TD_FLOAT32, 2, f4,
                       "softmax: axis 2 is out of range for input shape [8,4]");
  td_module_destroy(soft);
}

/* Modules that compute nothing hand back the input itself (nn.Identity and
 * an empty nn.Sequential return their argument). */
static void test_empty_sequential_and_identity_pass_input(void **state) {
  (void)state;
  int64_t s[] = {2, 3};
  td_tensor *x = input(TD_FLOAT32, 2, s), *y;
  td_module *seq = mk_seq();
  OK(td_module_forward(seq, x, &y));
  assert_ptr_equal(y, x);
  td_tensor_release(y);
  seq_add(seq, NULL, mk_identity());
  seq_add(seq, NULL, mk_identity());
  OK(td_module_forward(seq, x, &y));
  assert_ptr_equal(y, x);
  td_tensor_release(y);
  assert_int_equal(x->refcount, 1);
  td_module_destroy(seq);
  td_tensor_release(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resnet_state_dict_keys_match_torch),
      cmocka_unit_test(test_mixed_names_modules_and_buffers),
      cmocka_unit_test(test_state_dict_aliases_parameter_storage),
      cmocka_unit_test(test_parameters_array_and_attach),
      cmocka_unit_test(test_train_eval_is_recursive),
      cmocka_unit_test(test_layer_layouts),
      cmocka_unit_test(test_init_distributions),
      cmocka_unit_test(test_same_seed_same_weights),
      cmocka_unit_test(test_load_roundtrip_keeps_parameter_handles),
      cmocka_unit_test(test_strict_load_reports_everything_and_changes_nothing),
      cmocka_unit_test(test_non_strict_load_loads_matching_keys),
      cmocka_unit_test(test_load_message_is_bounded),
      cmocka_unit_test(test_constructor_errors),
      cmocka_unit_test(test_tree_building_errors),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_forward_errors_name_the_layer_path),
      cmocka_unit_test(test_forward_shape_checks),
      cmocka_unit_test(test_empty_sequential_and_identity_pass_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
