/* test_spec.c - server/spec: Module trees, optimizers, losses and tensors
 * from protobuf messages, and every error a client can cause there. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/models.h"
#include "common/test_util.h"
#include "core/alloc.h"
#include "module/layers.h"
#include "spec/spec.h"

static const spec_limits no_limits = {0, 0};
static const spec_limits limits_10k = {10000, 10000};

/* ---- building messages ------------------------------------------------------ */

/* Messages are malloc'd like protobuf-c's unpacker does, so that
 * protobuf_c_message_free_unpacked(m, NULL) frees a whole tree. */
static void *msg(const ProtobufCMessageDescriptor *d) {
  void *p = malloc(d->sizeof_message);
  assert_non_null(p);
  protobuf_c_message_init(d, p);
  return p;
}

static void free_msg(void *m) { protobuf_c_message_free_unpacked(m, NULL); }

/* A Module of `kind` holding sub-message `sub` (every member of the oneof
 * union is a message pointer, so one store sets any of them). */
static Traind__V1__Module *module(Traind__V1__Module__KindCase kind, void *sub) {
  Traind__V1__Module *m = msg(&traind__v1__module__descriptor);
  m->kind_case = kind;
  m->sequential = sub;
  return m;
}

static int64_t *i64s(size_t n, const int64_t *v) {
  int64_t *p = malloc(sizeof *p * (n ? n : 1));
  assert_non_null(p);
  memcpy(p, v, sizeof *p * n);
  return p;
}

static Traind__V1__Module *named(const char *name, Traind__V1__Module *m) {
  m->name = strdup(name);
  return m;
}

/* Sequential of the NULL-terminated list of modules. */
static Traind__V1__Module *seq(Traind__V1__Module *first, ...) {
  Traind__V1__Sequential *s = msg(&traind__v1__sequential__descriptor);
  s->modules = malloc(sizeof *s->modules * 32);
  va_list ap;
  va_start(ap, first);
  for (Traind__V1__Module *m = first; m; m = va_arg(ap, Traind__V1__Module *)) {
    assert_true(s->n_modules < 32);
    s->modules[s->n_modules++] = m;
  }
  va_end(ap);
  return module(TRAIND__V1__MODULE__KIND_SEQUENTIAL, s);
}

static Traind__V1__Module *residual(Traind__V1__Module *body, Traind__V1__Module *shortcut) {
  Traind__V1__Residual *r = msg(&traind__v1__residual__descriptor);
  r->body = body;
  r->shortcut = shortcut;
  return module(TRAIND__V1__MODULE__KIND_RESIDUAL, r);
}

static Traind__V1__Module *linear(int64_t in, int64_t out, bool bias) {
  Traind__V1__Linear *l = msg(&traind__v1__linear__descriptor);
  l->has_in_features = l->has_out_features = 1;
  l->in_features = in;
  l->out_features = out;
  if (!bias) l->has_bias = 1, l->bias = 0;
  return module(TRAIND__V1__MODULE__KIND_LINEAR, l);
}

static Traind__V1__Module *conv(int64_t in, int64_t out, int k, int stride, int pad, int groups,
                                bool bias) {
  Traind__V1__Conv2d *c = msg(&traind__v1__conv2d__descriptor);
  c->has_in_channels = c->has_out_channels = c->has_kernel_size = 1;
  c->in_channels = in;
  c->out_channels = out;
  c->kernel_size = k;
  c->has_stride = c->has_padding = c->has_groups = 1;
  c->stride = stride;
  c->padding = pad;
  c->groups = groups;
  if (!bias) c->has_bias = 1, c->bias = 0;
  return module(TRAIND__V1__MODULE__KIND_CONV2D, c);
}

static Traind__V1__Module *batch_norm(Traind__V1__Module__KindCase kind, int64_t c, bool affine) {
  Traind__V1__BatchNorm *b = msg(&traind__v1__batch_norm__descriptor);
  b->has_num_features = 1;
  b->num_features = c;
  if (!affine) b->has_affine = 1, b->affine = 0;
  return module(kind, b);
}

static Traind__V1__Module *bn2d(int64_t c) {
  return batch_norm(TRAIND__V1__MODULE__KIND_BATCH_NORM2D, c, true);
}

static Traind__V1__Module *layer_norm(size_t n, const int64_t *shape, bool affine) {
  Traind__V1__LayerNorm *l = msg(&traind__v1__layer_norm__descriptor);
  l->n_normalized_shape = n;
  l->normalized_shape = i64s(n, shape);
  if (!affine) l->has_elementwise_affine = 1, l->elementwise_affine = 0;
  return module(TRAIND__V1__MODULE__KIND_LAYER_NORM, l);
}

static Traind__V1__Module *pool(Traind__V1__Module__KindCase kind, int k, int stride, int pad) {
  Traind__V1__Pool2d *p = msg(&traind__v1__pool2d__descriptor);
  p->has_kernel_size = p->has_stride = p->has_padding = 1;
  p->kernel_size = k;
  p->stride = stride;
  p->padding = pad;
  return module(kind, p);
}

static Traind__V1__Module *adaptive(size_t n, const int64_t *size) {
  Traind__V1__AdaptiveAvgPool2d *a = msg(&traind__v1__adaptive_avg_pool2d__descriptor);
  a->n_output_size = n;
  a->output_size = i64s(n, size);
  return module(TRAIND__V1__MODULE__KIND_ADAPTIVE_AVG_POOL2D, a);
}

static Traind__V1__Module *embedding(int64_t n, int64_t dim) {
  Traind__V1__Embedding *e = msg(&traind__v1__embedding__descriptor);
  e->has_num_embeddings = e->has_embedding_dim = 1;
  e->num_embeddings = n;
  e->embedding_dim = dim;
  return module(TRAIND__V1__MODULE__KIND_EMBEDDING, e);
}

static Traind__V1__Module *dropout(float p) {
  Traind__V1__Dropout *d = msg(&traind__v1__dropout__descriptor);
  d->has_p = 1;
  d->p = p;
  return module(TRAIND__V1__MODULE__KIND_DROPOUT, d);
}

/* The kinds without fields (and leaky_relu / softmax with their defaults). */
static Traind__V1__Module *leaf(Traind__V1__Module__KindCase kind) {
  const ProtobufCMessageDescriptor *d = NULL;
  switch (kind) {
  case TRAIND__V1__MODULE__KIND_RELU: d = &traind__v1__re_lu__descriptor; break;
  case TRAIND__V1__MODULE__KIND_LEAKY_RELU: d = &traind__v1__leaky_re_lu__descriptor; break;
  case TRAIND__V1__MODULE__KIND_SIGMOID: d = &traind__v1__sigmoid__descriptor; break;
  case TRAIND__V1__MODULE__KIND_TANH: d = &traind__v1__tanh__descriptor; break;
  case TRAIND__V1__MODULE__KIND_GELU: d = &traind__v1__gelu__descriptor; break;
  case TRAIND__V1__MODULE__KIND_SILU: d = &traind__v1__si_lu__descriptor; break;
  case TRAIND__V1__MODULE__KIND_SOFTMAX: d = &traind__v1__softmax__descriptor; break;
  case TRAIND__V1__MODULE__KIND_FLATTEN: d = &traind__v1__flatten__descriptor; break;
  case TRAIND__V1__MODULE__KIND_IDENTITY: d = &traind__v1__identity__descriptor; break;
  default: fail_msg("leaf(%d)", (int)kind);
  }
  return module(kind, msg(d));
}

#define RELU leaf(TRAIND__V1__MODULE__KIND_RELU)

/* ---- checking models ------------------------------------------------------------- */

typedef struct key_spec {
  const char *key, *shape;
} key_spec;

/* m's state_dict has exactly these keys, in this order, with these shapes. */
static void assert_state_keys(const td_module *m, const key_spec *want) {
  td_tensor_map sd;
  assert_int_equal(td_module_state_dict(m, &sd), TD_OK);
  size_t n = 0;
  while (want[n].key)
    n++;
  for (size_t i = 0; i < sd.count && i < n; i++) {
    char s[TD_SHAPE_STR_MAX];
    assert_string_equal(sd.entries[i].name, want[i].key);
    assert_string_equal(td_tensor_shape_str(s, sd.entries[i].tensor), want[i].shape);
  }
  assert_int_equal(sd.count, n);
  td_tensor_map_free(&sd);
}

/* Same keys, shapes, dtypes and bit-identical values. */
static void assert_same_state(const td_module *a, const td_module *b) {
  td_tensor_map sa, sb;
  assert_int_equal(td_module_state_dict(a, &sa), TD_OK);
  assert_int_equal(td_module_state_dict(b, &sb), TD_OK);
  assert_int_equal(sa.count, sb.count);
  for (size_t i = 0; i < sa.count; i++) {
    td_tensor *x = sa.entries[i].tensor, *y = sb.entries[i].tensor;
    assert_string_equal(sa.entries[i].name, sb.entries[i].name);
    assert_int_equal(x->dtype, y->dtype);
    assert_true(td_shape_equal(x->ndim, x->shape, y->ndim, y->shape));
    assert_memory_equal(td_tensor_data(x), td_tensor_data(y), td_tensor_nbytes(x));
  }
  td_tensor_map_free(&sa);
  td_tensor_map_free(&sb);
}

static td_module *build_ok(const Traind__V1__Module *spec, uint64_t seed) {
  td_module *m = NULL;
  td_status st = spec_build_model(spec, seed, &no_limits, &m);
  if (st) fail_msg("spec_build_model: %s", td_error_message());
  assert_non_null(m);
  return m;
}

/* Building spec fails with `code` and the message names every string given. */
#define assert_build_error(spec, limits, code, ...)                                                \
  do {                                                                                             \
    td_module *m_ = (td_module *)1;                                                                \
    assert_error(spec_build_model((spec), 1, (limits), &m_), (code), __VA_ARGS__);                 \
    assert_null(m_);                                                                               \
  } while (0)

/* ---- models: every kind and its keys ------------------------------------------------- */

static void every_kind_builds_with_torch_keys(void **state) {
  (void)state;
  int64_t ln_shape[] = {2, 3}, out_hw[] = {2, 3};
  Traind__V1__Module *spec =
      seq(named("fc", linear(4, 3, true)),                                             /* fc */
          conv(4, 8, 3, 1, 1, 2, true),                                                /* 1 */
          batch_norm(TRAIND__V1__MODULE__KIND_BATCH_NORM1D, 5, true),                  /* 2 */
          batch_norm(TRAIND__V1__MODULE__KIND_BATCH_NORM2D, 6, false),                 /* 3 */
          layer_norm(2, ln_shape, true),                                               /* 4 */
          RELU, leaf(TRAIND__V1__MODULE__KIND_LEAKY_RELU),                             /* 5, 6 */
          leaf(TRAIND__V1__MODULE__KIND_SIGMOID), leaf(TRAIND__V1__MODULE__KIND_TANH), /* 7, 8 */
          leaf(TRAIND__V1__MODULE__KIND_GELU), leaf(TRAIND__V1__MODULE__KIND_SILU),    /* 9, 10 */
          leaf(TRAIND__V1__MODULE__KIND_SOFTMAX), dropout(0.25f),                      /* 11, 12 */
          pool(TRAIND__V1__MODULE__KIND_MAX_POOL2D, 3, 0, 1),                          /* 13 */
          pool(TRAIND__V1__MODULE__KIND_AVG_POOL2D, 2, 2, 0),                          /* 14 */
          adaptive(2, out_hw), leaf(TRAIND__V1__MODULE__KIND_FLATTEN),                 /* 15, 16 */
          embedding(10, 6), leaf(TRAIND__V1__MODULE__KIND_IDENTITY),                   /* 17, 18 */
          residual(seq(linear(3, 3, false), RELU, NULL), linear(3, 3, true)),          /* 19 */
          named("res", residual(linear(2, 2, true), NULL)), linear(3, 1, false),       /* res, 21 */
          NULL);
  td_module *m = build_ok(spec, 1);
  static const key_spec want[] = {
      {"fc.weight", "[3,4]"},
      {"fc.bias", "[3]"},
      {"1.weight", "[8,2,3,3]"},
      {"1.bias", "[8]"},
      {"2.weight", "[5]"},
      {"2.bias", "[5]"},
      {"2.running_mean", "[5]"},
      {"2.running_var", "[5]"},
      {"2.num_batches_tracked", "[]"},
      {"3.running_mean", "[6]"},
      {"3.running_var", "[6]"},
      {"3.num_batches_tracked", "[]"},
      {"4.weight", "[2,3]"},
      {"4.bias", "[2,3]"},
      {"17.weight", "[10,6]"},
      {"19.body.0.weight", "[3,3]"},
      {"19.shortcut.weight", "[3,3]"},
      {"19.shortcut.bias", "[3]"},
      {"res.body.weight", "[2,2]"},
      {"res.body.bias", "[2]"},
      {"21.weight", "[1,3]"},
      {NULL, NULL},
  };
  assert_state_keys(m, want);
  /* Each child is the layer its kind names, under the key PyTorch gives it. */
  static const char *const kinds[] = {
      "linear",     "conv2d",     "batch_norm1d", "batch_norm2d",
      "layer_norm", "relu",       "leaky_relu",   "sigmoid",
      "tanh",       "gelu",       "silu",         "softmax",
      "dropout",    "max_pool2d", "avg_pool2d",   "adaptive_avg_pool2d",
      "flatten",    "embedding",  "identity",     "residual",
      "residual",   "linear"};
  td_module_list children;
  assert_int_equal(td_module_named_children(m, &children), TD_OK);
  assert_int_equal(children.count, 22);
  for (int i = 0; i < children.count; i++)
    assert_string_equal(td_module_kind(children.items[i].module), kinds[i]);
  assert_string_equal(children.items[20].name, "res");
  assert_string_equal(children.items[13].name, "13");
  td_module_list_free(&children);
  assert_int_equal(td_module_num_parameters(m), 15 + 8 * 2 * 9 + 8 + 10 + 12 + 60 + 9 + 12 + 6 + 3);
  td_module_destroy(m);
  free_msg(spec);
}

/* The hyperparameters reach the layers: a forward through them gives the
 * shapes their settings imply (stride, padding, groups, output_size). */
static void hyperparameters_reach_the_layers(void **state) {
  (void)state;
  int64_t hw[] = {3};
  Traind__V1__Module *spec =
      seq(conv(2, 4, 3, 2, 1, 2, true), pool(TRAIND__V1__MODULE__KIND_MAX_POOL2D, 2, 1, 1),
          adaptive(1, hw), leaf(TRAIND__V1__MODULE__KIND_FLATTEN), NULL);
  td_module *m = build_ok(spec, 3);
  int64_t xs[] = {1, 2, 9, 9};
  td_tensor *x = iota(4, xs), *y = NULL;
  assert_int_equal(td_module_forward(m, x, &y), TD_OK);
  /* conv: (9 + 2 - 3) / 2 + 1 = 5; pool k2 s1 p1: 6; adaptive: 3x3 */
  assert_shape(y, 2, (int64_t[]){1, 4 * 3 * 3});
  release_tensors(x, y);
  td_module_destroy(m);
  free_msg(spec);
}

/* Proto2 defaults as protoc-c applies them: an unset bias is on, an unset
 * dropout p is 0.5, an unset leaky slope 0.01, an unset softmax axis -1. */
static void unset_fields_take_torch_defaults(void **state) {
  (void)state;
  Traind__V1__Linear lin = TRAIND__V1__LINEAR__INIT;
  lin.has_in_features = lin.has_out_features = 1;
  lin.in_features = 2;
  lin.out_features = 3;
  Traind__V1__Module spec = TRAIND__V1__MODULE__INIT;
  spec.kind_case = TRAIND__V1__MODULE__KIND_LINEAR;
  spec.linear = &lin;
  td_module *m = build_ok(&spec, 1);
  static const key_spec want[] = {{"weight", "[3,2]"}, {"bias", "[3]"}, {NULL, NULL}};
  assert_state_keys(m, want);
  td_module_destroy(m);

  Traind__V1__Dropout d = TRAIND__V1__DROPOUT__INIT;
  spec.kind_case = TRAIND__V1__MODULE__KIND_DROPOUT;
  spec.dropout = &d;
  m = build_ok(&spec, 1);
  int64_t xs[] = {4000};
  td_tensor *x = ramp(1, xs, 1, 0), *y = NULL;
  assert_int_equal(td_module_forward(m, x, &y), TD_OK);
  int64_t zeros = 0;
  for (int64_t i = 0; i < 4000; i++) {
    float v = td_tensor_f32(y)[i];
    zeros += v == 0;
    if (v != 0) assert_float_equal(v, 2.0f, 0); /* 1 / (1 - 0.5) */
  }
  assert_in_range(zeros, 1800, 2200);
  release_tensors(x, y);
  td_module_destroy(m);

  Traind__V1__LeakyReLU lr = TRAIND__V1__LEAKY_RE_LU__INIT;
  spec.kind_case = TRAIND__V1__MODULE__KIND_LEAKY_RELU;
  spec.leaky_relu = &lr;
  m = build_ok(&spec, 1);
  x = ramp(1, (int64_t[]){1}, -1, 0);
  assert_int_equal(td_module_forward(m, x, &y), TD_OK);
  assert_float_equal(td_tensor_f32(y)[0], -0.01f, 1e-9);
  release_tensors(x, y);
  td_module_destroy(m);
}

/* ---- models: reproducible initialisation ------------------------------------------- */

static void same_seed_same_weights_as_the_engine(void **state) {
  (void)state;
  Traind__V1__Module *spec = seq(linear(5, 8, true), RELU, linear(8, 3, true), NULL);
  td_module *a = build_ok(spec, 42), *b = build_ok(spec, 42), *c = build_ok(spec, 43);
  assert_same_state(a, b);
  td_tensor_map sa, sc;
  assert_int_equal(td_module_state_dict(a, &sa), TD_OK);
  assert_int_equal(td_module_state_dict(c, &sc), TD_OK);
  assert_memory_not_equal(td_tensor_data(sa.entries[0].tensor),
                          td_tensor_data(sc.entries[0].tensor),
                          td_tensor_nbytes(sa.entries[0].tensor));
  td_tensor_map_free(&sa);
  td_tensor_map_free(&sc);

  /* The same MLP built in-process from a td_rng with the same seed. */
  td_rng rng;
  td_rng_seed(&rng, 42);
  td_module *direct = NULL, *l = NULL;
  td_linear_config c1 = {5, 8, false}, c2 = {8, 3, false};
  assert_int_equal(td_module_sequential(&direct), TD_OK);
  assert_int_equal(td_module_linear(&c1, &rng, &l), TD_OK);
  assert_int_equal(td_sequential_append(direct, NULL, l), TD_OK);
  assert_int_equal(td_module_relu(&l), TD_OK);
  assert_int_equal(td_sequential_append(direct, NULL, l), TD_OK);
  assert_int_equal(td_module_linear(&c2, &rng, &l), TD_OK);
  assert_int_equal(td_sequential_append(direct, NULL, l), TD_OK);
  assert_same_state(a, direct);
  td_module_destroy(direct);
  td_module_destroy(a);
  td_module_destroy(b);
  td_module_destroy(c);
  free_msg(spec);
}

/* tests/common/models.c's BasicBlock: Sequential(Residual(body, shortcut), ReLU). */
static Traind__V1__Module *basic_block(int64_t cin, int64_t cout, int stride) {
  Traind__V1__Module *body = seq(conv(cin, cout, 3, stride, 1, 1, false), bn2d(cout), RELU,
                                 conv(cout, cout, 3, 1, 1, 1, false), bn2d(cout), NULL);
  Traind__V1__Module *shortcut =
      stride != 1 || cin != cout ? seq(conv(cin, cout, 1, stride, 0, 1, false), bn2d(cout), NULL)
                                 : NULL;
  return seq(residual(body, shortcut), RELU, NULL);
}

/* The zoo's resnet_tiny and embed_ln as specs give the zoo's weights: the
 * construction order (children in order, body before shortcut) is the
 * engine's. */
static void zoo_models_from_specs_match_the_engine(void **state) {
  (void)state;
  int64_t one[] = {1}, sixteen[] = {16};
  Traind__V1__Module *resnet =
      seq(named("stem", seq(conv(3, 16, 3, 1, 1, 1, false), bn2d(16), RELU, NULL)),
          named("layer1", basic_block(16, 16, 1)), named("layer2", basic_block(16, 32, 2)),
          named("layer3", basic_block(32, 64, 2)), named("pool", adaptive(1, one)),
          named("flatten", leaf(TRAIND__V1__MODULE__KIND_FLATTEN)),
          named("fc", linear(64, 10, true)), NULL);
  Traind__V1__Module *embed_ln =
      seq(embedding(50, 16), layer_norm(1, sixteen, true), linear(16, 32, true),
          leaf(TRAIND__V1__MODULE__KIND_GELU), leaf(TRAIND__V1__MODULE__KIND_FLATTEN),
          linear(8 * 32, 10, true), NULL);
  struct {
    const char *name;
    Traind__V1__Module *spec;
  } cases[] = {{"resnet_tiny", resnet}, {"embed_ln", embed_ln}};
  for (size_t i = 0; i < 2; i++) {
    td_module *zoo = NULL;
    test_model_info info;
    assert_int_equal(test_model_build(cases[i].name, 1234, &zoo, &info), TD_OK);
    td_module *m = build_ok(cases[i].spec, 1234);
    assert_same_state(m, zoo);
    td_module_destroy(m);
    td_module_destroy(zoo);
    free_msg(cases[i].spec);
  }
}

/* The daemon sees unpacked messages: a CreateModelRequest packed and
 * unpacked again builds the same model as the message it came from. */
static void packed_request_builds_the_same_model(void **state) {
  (void)state;
  int64_t hw[] = {1};
  Traind__V1__CreateModelRequest *req = msg(&traind__v1__create_model_request__descriptor);
  req->model = seq(named("features", seq(conv(1, 4, 3, 1, 1, 1, true), bn2d(4), RELU, NULL)),
                   named("block", residual(seq(conv(4, 4, 3, 1, 1, 1, false), NULL), NULL)),
                   adaptive(1, hw), leaf(TRAIND__V1__MODULE__KIND_FLATTEN), dropout(0.1f),
                   named("head", linear(4, 2, false)), NULL);
  req->has_seed = 1;
  req->seed = 77;
  size_t size = protobuf_c_message_get_packed_size(&req->base);
  uint8_t *buf = malloc(size);
  assert_int_equal(protobuf_c_message_pack(&req->base, buf), size);
  Traind__V1__CreateModelRequest *got = traind__v1__create_model_request__unpack(NULL, size, buf);
  assert_non_null(got);
  td_module *a = build_ok(req->model, req->seed), *b = build_ok(got->model, got->seed);
  assert_same_state(a, b);
  static const key_spec want[] = {
      {"features.0.weight", "[4,1,3,3]"},
      {"features.0.bias", "[4]"},
      {"features.1.weight", "[4]"},
      {"features.1.bias", "[4]"},
      {"features.1.running_mean", "[4]"},
      {"features.1.running_var", "[4]"},
      {"features.1.num_batches_tracked", "[]"},
      {"block.body.0.weight", "[4,4,3,3]"},
      {"head.weight", "[2,4]"}, /* bias = false survived the round trip */
      {NULL, NULL},
  };
  assert_state_keys(b, want);
  td_module_destroy(a);
  td_module_destroy(b);
  traind__v1__create_model_request__free_unpacked(got, NULL);
  free(buf);
  free_msg(req);
}

/* ---- models: errors name the field ------------------------------------------------- */

static void bad_fields_are_named_by_path(void **state) {
  (void)state;
  Traind__V1__Module *spec = seq(RELU, RELU, linear(0, 3, true), NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[2].linear.in_features: must be > 0, got 0");
  free_msg(spec);
  spec = seq(residual(seq(RELU, linear(3, -2, true), NULL), NULL), NULL);
  assert_build_error(
      spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
      "model.sequential.modules[0].residual.body.sequential.modules[1].linear.out_features: "
      "must be > 0, got -2");
  free_msg(spec);
  spec = residual(RELU, seq(embedding(5, 0), NULL));
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.residual.shortcut.sequential.modules[0].embedding.embedding_dim: must "
                     "be > 0, got 0");
  free_msg(spec);

  /* Every kind's checks, each as the root so the path is short. */
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, zero_dim[] = {3, 0}, hw3[] = {1, 2, 3},
          hw0[] = {4, 0};
  struct {
    Traind__V1__Module *spec;
    const char *want;
  } cases[] = {
      {conv(3, 4, 3, 1, 0, 2, true), "model.conv2d.in_channels: 3 is not divisible by groups 2"},
      {conv(4, 3, 3, 1, 0, 2, true), "model.conv2d.out_channels: 3 is not divisible by groups 2"},
      {conv(4, 4, 0, 1, 0, 1, true), "model.conv2d.kernel_size: must be > 0, got 0"},
      {conv(4, 4, 3, -1, 0, 1, true), "model.conv2d.stride: must be >= 0 (0: default), got -1"},
      {conv(4, 4, 3, 1, -1, 1, true), "model.conv2d.padding: must be >= 0, got -1"},
      {conv(4, 4, 3, 1, 0, -2, true), "model.conv2d.groups: must be >= 0 (0: default), got -2"},
      {batch_norm(TRAIND__V1__MODULE__KIND_BATCH_NORM1D, 0, true),
       "model.batch_norm1d.num_features: must be > 0, got 0"},
      {layer_norm(9, nine, true),
       "model.layer_norm.normalized_shape: must have 1 to 8 dims, got 9"},
      {layer_norm(0, nine, true),
       "model.layer_norm.normalized_shape: must have 1 to 8 dims, got 0"},
      {layer_norm(2, zero_dim, true),
       "model.layer_norm.normalized_shape: dim 1 must be > 0, got 0"},
      {dropout(1.5f), "model.dropout.p: must be in [0, 1], got 1.5"},
      {dropout(-0.25f), "model.dropout.p: must be in [0, 1], got -0.25"},
      {dropout(NAN), "model.dropout.p: must be in [0, 1], got nan"},
      {pool(TRAIND__V1__MODULE__KIND_MAX_POOL2D, 3, 0, 2),
       "model.max_pool2d.padding: must be in [0, kernel_size / 2] = [0, 1], got 2"},
      {pool(TRAIND__V1__MODULE__KIND_AVG_POOL2D, 2, 0, -1),
       "model.avg_pool2d.padding: must be in [0, kernel_size / 2] = [0, 1], got -1"},
      {pool(TRAIND__V1__MODULE__KIND_AVG_POOL2D, 0, 0, 0),
       "model.avg_pool2d.kernel_size: must be > 0, got 0"},
      {pool(TRAIND__V1__MODULE__KIND_MAX_POOL2D, 2, -1, 0),
       "model.max_pool2d.stride: must be >= 0"},
      {adaptive(0, hw3), "model.adaptive_avg_pool2d.output_size: must have 1 or 2 values, got 0"},
      {adaptive(3, hw3), "model.adaptive_avg_pool2d.output_size: must have 1 or 2 values, got 3"},
      {adaptive(2, hw0), "model.adaptive_avg_pool2d.output_size: value 1 must be in [1, "},
      {embedding(0, 4), "model.embedding.num_embeddings: must be > 0, got 0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_build_error(cases[i].spec, &no_limits, TD_ERR_INVALID_ARGUMENT, cases[i].want);
    free_msg(cases[i].spec);
  }

  /* Float hyperparameters: batch norm eps and momentum, layer norm eps, slope. */
  Traind__V1__Module *bn = batch_norm(TRAIND__V1__MODULE__KIND_BATCH_NORM2D, 4, true);
  bn->batch_norm2d->has_eps = 1;
  bn->batch_norm2d->eps = -1e-5f;
  assert_build_error(bn, &no_limits, TD_ERR_INVALID_ARGUMENT, "model.batch_norm2d.eps: must be",
                     "got -1e-05");
  bn->batch_norm2d->eps = 0;
  bn->batch_norm2d->has_momentum = 1;
  bn->batch_norm2d->momentum = 1.5f;
  assert_build_error(bn, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.batch_norm2d.momentum: must be in (0, 1] (0: 0.1), got 1.5");
  free_msg(bn);
  Traind__V1__Module *ln = layer_norm(1, nine, true);
  ln->layer_norm->has_eps = 1;
  ln->layer_norm->eps = INFINITY;
  assert_build_error(ln, &no_limits, TD_ERR_INVALID_ARGUMENT, "model.layer_norm.eps: must be");
  free_msg(ln);
  Traind__V1__Module *leaky = leaf(TRAIND__V1__MODULE__KIND_LEAKY_RELU);
  leaky->leaky_relu->negative_slope = NAN;
  assert_build_error(leaky, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.leaky_relu.negative_slope: must be finite");
  free_msg(leaky);
}

static void missing_and_unknown_kinds(void **state) {
  (void)state;
  Traind__V1__Module *spec = seq(RELU, msg(&traind__v1__module__descriptor), NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[1]: no kind set (expected one of sequential, "
                     "residual, linear, ",
                     "identity)");
  free_msg(spec);

  /* A case number this server does not know, as a newer protoc-c would set. */
  Traind__V1__ReLU relu = TRAIND__V1__RE_LU__INIT;
  Traind__V1__Module m = TRAIND__V1__MODULE__INIT;
  m.kind_case = (Traind__V1__Module__KindCase)31;
  m.relu = &relu;
  assert_build_error(&m, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model: unknown kind (oneof case 31)");

  /* What this protoc-c actually does with a newer client's kind (field 31,
   * an empty message): an unknown field, the case left unset. */
  static const uint8_t wire[] = {0xfa, 0x01, 0x00};
  Traind__V1__Module *got = traind__v1__module__unpack(NULL, sizeof wire, wire);
  assert_non_null(got);
  assert_int_equal(got->kind_case, TRAIND__V1__MODULE__KIND__NOT_SET);
  assert_build_error(got, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model: unknown kind (field 31, from a newer client?)");
  traind__v1__module__free_unpacked(got, NULL);

  Traind__V1__Module *res = residual(NULL, RELU);
  assert_build_error(res, &no_limits, TD_ERR_INVALID_ARGUMENT, "model.residual.body: is required");
  free_msg(res);
  assert_build_error(NULL, &no_limits, TD_ERR_INVALID_ARGUMENT, "model: is required");
}

static void child_names(void **state) {
  (void)state;
  Traind__V1__Module *spec = seq(named("a.b", RELU), NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[0].name: character 1 '.' is not allowed");
  free_msg(spec);
  spec = seq(RELU, named("caf\xc3\xa9", RELU), NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[1].name: character 3 (byte 0xc3)");
  free_msg(spec);
  char long_name[TD_MODULE_MAX_KEY + 2];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  spec = seq(named(long_name, RELU), NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[0].name: has 65 characters, at most 64");
  free_msg(spec);
  /* The longest name is fine; the engine's own refusals carry the path. */
  long_name[TD_MODULE_MAX_KEY] = '\0';
  spec = seq(named(long_name, RELU), named("fc", linear(2, 2, true)), named("fc", RELU), NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[2]: ", "two children named 'fc'");
  free_msg(spec);
  /* A name that collides with a sibling's index key. */
  spec = seq(named("1", RELU), RELU, NULL);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[1]: ", "two children named '1'");
  free_msg(spec);
  /* The root's name and a residual child's name are not keys: ignored. */
  spec = named("not a key!", residual(named("also ignored", linear(2, 2, false)), NULL));
  td_module *m = build_ok(spec, 1);
  static const key_spec want[] = {{"body.weight", "[2,2]"}, {NULL, NULL}};
  assert_state_keys(m, want);
  td_module_destroy(m);
  free_msg(spec);
}

/* A chain of `levels` modules: Sequentials around a Linear. */
static Traind__V1__Module *chain(int levels) {
  Traind__V1__Module *m = linear(2, 2, true);
  for (int i = 1; i < levels; i++)
    m = seq(m, NULL);
  return m;
}

static void depth_is_limited_before_recursion(void **state) {
  (void)state;
  Traind__V1__Module *spec = chain(TD_MODULE_MAX_DEPTH);
  td_module *m = build_ok(spec, 1);
  td_module_destroy(m);
  free_msg(spec);
  spec = chain(TD_MODULE_MAX_DEPTH + 1);
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[0].sequential.modules[0]", " ... ",
                     ".sequential.modules[0]: modules nest deeper than 64 levels");
  free_msg(spec);
  spec = chain(3000); /* refused at level 65, not walked to the bottom */
  assert_build_error(spec, &no_limits, TD_ERR_INVALID_ARGUMENT, "nest deeper than 64");
  free_msg(spec);
}

static void parameter_limit_is_checked_before_allocating(void **state) {
  (void)state;
  /* 99 * 100 + 100 = 10000: exactly the limit. */
  Traind__V1__Module *spec = seq(linear(99, 100, true), RELU, NULL);
  td_module *m = NULL;
  assert_int_equal(spec_build_model(spec, 1, &limits_10k, &m), TD_OK);
  assert_int_equal(td_module_num_parameters(m), 10000);
  td_module_destroy(m);
  free_msg(spec);
  spec = seq(linear(99, 100, true), linear(1, 1, false), NULL);
  assert_build_error(spec, &limits_10k, TD_ERR_NO_MEMORY,
                     "model: 10001 parameters, over this server's limit of 10000 "
                     "(--max-parameters)");
  free_msg(spec);
  /* 2^40 x 2^40 weights: the count saturates instead of wrapping, and the
   * refusal comes before any allocation is tried. */
  spec = linear(INT64_C(1) << 40, INT64_C(1) << 40, true);
  assert_build_error(spec, &limits_10k, TD_ERR_NO_MEMORY,
                     "model: more than 9223372036854775807 "
                     "parameters");
  free_msg(spec);
  spec = conv(1 << 20, 1 << 20, 1 << 30, 1, 0, 1, true);
  assert_build_error(spec, &limits_10k, TD_ERR_NO_MEMORY, "model: more than");
  free_msg(spec);
  /* Batch-norm statistics are buffers, but they are memory all the same. */
  spec = batch_norm(TRAIND__V1__MODULE__KIND_BATCH_NORM1D, 1 << 20, false);
  assert_build_error(spec, &limits_10k, TD_ERR_NO_MEMORY,
                     "model: 2097153 buffer elements (batch-norm running statistics), over this "
                     "server's limit of 10000");
  free_msg(spec);
  /* Layer norm and embedding count too. */
  int64_t big[] = {100, 100};
  spec = seq(layer_norm(2, big, true), NULL);
  assert_build_error(spec, &limits_10k, TD_ERR_NO_MEMORY, "model: 20000 parameters");
  free_msg(spec);
  spec = embedding(1000, 11);
  assert_build_error(spec, &limits_10k, TD_ERR_NO_MEMORY, "model: 11000 parameters");
  free_msg(spec);
  /* Field errors come first: the spec is checked, then counted. */
  spec = seq(linear(1000, 1000, true), linear(0, 1, true), NULL);
  assert_build_error(spec, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                     "model.sequential.modules[1].linear.in_features");
  free_msg(spec);
}

/* ---- optimizers ----------------------------------------------------------------------- */

static td_module *small_model(void) {
  Traind__V1__Module *spec = seq(linear(3, 4, true), RELU, linear(4, 2, true), NULL);
  td_module *m = build_ok(spec, 5);
  free_msg(spec);
  return m;
}

static void optimizer_defaults_per_algorithm(void **state) {
  (void)state;
  td_module *model = small_model();
  Traind__V1__SGD sgd = TRAIND__V1__SGD__INIT;
  Traind__V1__Adam adam = TRAIND__V1__ADAM__INIT;
  Traind__V1__RMSprop rms = TRAIND__V1__RMSPROP__INIT;
  Traind__V1__Adagrad ada = TRAIND__V1__ADAGRAD__INIT;
  sgd.has_lr = 1;
  sgd.lr = 0.5;
  Traind__V1__OptimizerSpec spec = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  struct {
    Traind__V1__OptimizerSpec__AlgorithmCase kind;
    void *sub;
    td_optim_algo algo;
  } cases[] = {{TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD, &sgd, TD_OPTIM_SGD},
               {TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAM, &adam, TD_OPTIM_ADAM},
               {TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAMW, &adam, TD_OPTIM_ADAMW},
               {TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_RMSPROP, &rms, TD_OPTIM_RMSPROP},
               {TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAGRAD, &ada, TD_OPTIM_ADAGRAD}};
  for (size_t i = 0; i < 5; i++) {
    spec.algorithm_case = cases[i].kind;
    spec.sgd = cases[i].sub;
    spec_optimizer out;
    assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
    assert_int_equal(td_optimizer_algo(out.optimizer), cases[i].algo);
    assert_int_equal(td_optimizer_num_params(out.optimizer), 4);
    assert_int_equal(td_optimizer_num_groups(out.optimizer), 1);
    assert_true(out.grad_clip_norm == 0);
    assert_int_equal(td_optimizer_schedule(out.optimizer)->kind, TD_LR_CONSTANT);
    td_optim_config want = td_optim_defaults(cases[i].algo);
    if (cases[i].algo == TD_OPTIM_SGD) want.sgd.lr = 0.5;
    const td_optim_config *got = td_optimizer_group_config(out.optimizer, 0);
    assert_int_equal(got->algo, want.algo);
    switch (want.algo) {
    case TD_OPTIM_SGD: {
      const td_sgd_config *g = &got->sgd, *w = &want.sgd;
      assert_true(g->lr == w->lr && g->momentum == w->momentum && g->dampening == w->dampening);
      assert_true(g->weight_decay == w->weight_decay && g->nesterov == w->nesterov);
      break;
    }
    case TD_OPTIM_ADAM:
    case TD_OPTIM_ADAMW: {
      const td_adam_config *g = &got->adam, *w = &want.adam;
      assert_true(g->lr == w->lr && g->beta1 == w->beta1 && g->beta2 == w->beta2);
      assert_true(g->eps == w->eps && g->weight_decay == w->weight_decay);
      assert_true(g->amsgrad == w->amsgrad);
      break;
    }
    case TD_OPTIM_RMSPROP: {
      const td_rmsprop_config *g = &got->rmsprop, *w = &want.rmsprop;
      assert_true(g->lr == w->lr && g->alpha == w->alpha && g->eps == w->eps);
      assert_true(g->weight_decay == w->weight_decay && g->momentum == w->momentum);
      assert_true(g->centered == w->centered);
      break;
    }
    case TD_OPTIM_ADAGRAD: {
      const td_adagrad_config *g = &got->adagrad, *w = &want.adagrad;
      assert_true(g->lr == w->lr && g->lr_decay == w->lr_decay && g->eps == w->eps);
      assert_true(g->weight_decay == w->weight_decay);
      assert_true(g->initial_accumulator_value == w->initial_accumulator_value);
      break;
    }
    }
    td_optimizer_destroy(out.optimizer);
  }
  /* AdamW's own default, and the parameters in named_parameters order. */
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAMW;
  spec.adamw = &adam;
  spec_optimizer out;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  assert_true(td_optimizer_group_config(out.optimizer, 0)->adam.weight_decay == 1e-2);
  td_tensor **params;
  int n;
  assert_int_equal(td_module_parameters(model, &params, &n), TD_OK);
  for (int i = 0; i < n; i++)
    assert_ptr_equal(td_optimizer_param(out.optimizer, i), params[i]);
  td_free(params);
  td_optimizer_destroy(out.optimizer);
  td_module_destroy(model);
}

static void optimizer_fields_and_clipping(void **state) {
  (void)state;
  td_module *model = small_model();
  Traind__V1__Adam adam = TRAIND__V1__ADAM__INIT;
  adam.has_lr = adam.has_beta2 = adam.has_amsgrad = adam.has_weight_decay = 1;
  adam.lr = 0.01;
  adam.beta2 = 0.5;
  adam.amsgrad = 1;
  adam.weight_decay = 0; /* set to AdamW's non-default: kept */
  Traind__V1__OptimizerSpec spec = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAMW;
  spec.adamw = &adam;
  spec.has_grad_clip_norm = 1;
  spec.grad_clip_norm = 1.5;
  spec_optimizer out;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  const td_adam_config *c = &td_optimizer_group_config(out.optimizer, 0)->adam;
  assert_true(c->lr == 0.01 && c->beta1 == 0.9 && c->beta2 == 0.5 && c->eps == 1e-8);
  assert_true(c->amsgrad && c->weight_decay == 0);
  assert_true(out.grad_clip_norm == 1.5);
  td_optimizer_destroy(out.optimizer);

  spec.grad_clip_norm = -1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.grad_clip_norm: must be >= 0, got -1");
  spec.grad_clip_norm = NAN;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.grad_clip_norm");
  assert_null(out.optimizer);
  td_module_destroy(model);
}

static void bad_hyperparameters_name_the_field(void **state) {
  (void)state;
  td_module *model = small_model();
  Traind__V1__OptimizerSpec spec = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  spec_optimizer out;

  Traind__V1__SGD sgd = TRAIND__V1__SGD__INIT;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD;
  spec.sgd = &sgd;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.sgd.lr: is required (torch.optim.SGD has no default)");
  sgd.has_lr = 1;
  sgd.lr = -0.1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.sgd.lr: must be a finite value >= 0, got -0.1");
  sgd.lr = 0.1;
  sgd.has_nesterov = 1;
  sgd.nesterov = 1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.sgd.nesterov: needs momentum > 0 and dampening 0");
  sgd.has_momentum = 1;
  sgd.momentum = 0.9;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  assert_true(td_optimizer_group_config(out.optimizer, 0)->sgd.nesterov);
  td_optimizer_destroy(out.optimizer);

  Traind__V1__Adam adam = TRAIND__V1__ADAM__INIT;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAM;
  spec.adam = &adam;
  adam.has_beta1 = 1;
  adam.beta1 = 1.5;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.adam.beta1: must be in [0, 1), got 1.5");
  adam.beta1 = 0.9;
  adam.has_beta2 = 1;
  adam.beta2 = 1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.adam.beta2: must be in [0, 1), got 1");
  adam.has_beta2 = 0;
  adam.has_eps = 1;
  adam.eps = -1;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAMW;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.adamw.eps: must be a finite value >= 0, got -1");

  Traind__V1__RMSprop rms = TRAIND__V1__RMSPROP__INIT;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_RMSPROP;
  spec.rmsprop = &rms;
  rms.has_alpha = 1;
  rms.alpha = INFINITY;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.rmsprop.alpha: must be a finite value >= 0, got inf");

  Traind__V1__Adagrad ada = TRAIND__V1__ADAGRAD__INIT;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAGRAD;
  spec.adagrad = &ada;
  ada.has_initial_accumulator_value = 1;
  ada.initial_accumulator_value = -2;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.adagrad.initial_accumulator_value: must be a finite value >= 0, got -2");

  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM__NOT_SET;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer: no algorithm set (expected one of sgd, adam, adamw, rmsprop, adagrad)");
  spec.algorithm_case = (Traind__V1__OptimizerSpec__AlgorithmCase)6;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer: unknown algorithm (oneof case 6)");
  assert_null(out.optimizer);
  td_module_destroy(model);

  /* A model without parameters cannot have an optimizer. */
  Traind__V1__Module *relu = seq(RELU, NULL);
  model = build_ok(relu, 1);
  ada.has_initial_accumulator_value = 0;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAGRAD;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer: the model has no parameters");
  td_module_destroy(model);
  free_msg(relu);
}

static void schedules(void **state) {
  (void)state;
  td_module *model = small_model();
  Traind__V1__Adam adam = TRAIND__V1__ADAM__INIT;
  Traind__V1__LRSchedule sched = TRAIND__V1__LRSCHEDULE__INIT;
  Traind__V1__OptimizerSpec spec = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  spec.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAM;
  spec.adam = &adam;
  spec.schedule = &sched;
  spec_optimizer out;

  /* No kind, warm-up only: torch's LinearLR start factor 1/3. */
  sched.has_warmup_steps = 1;
  sched.warmup_steps = 4;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  const td_lr_schedule *s = td_optimizer_schedule(out.optimizer);
  assert_int_equal(s->kind, TD_LR_CONSTANT);
  assert_true(s->warmup_start_factor == 1.0 / 3.0);
  assert_true(fabs(td_optimizer_lr(out.optimizer, 0) - 1e-3 / 3) < 1e-18);
  td_optimizer_destroy(out.optimizer);

  Traind__V1__StepLR step = TRAIND__V1__STEP_LR__INIT;
  sched.kind_case = TRAIND__V1__LRSCHEDULE__KIND_STEP;
  sched.step = &step;
  sched.has_warmup_start_factor = 1;
  sched.warmup_start_factor = 0.5;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.step.step_size: must be >= 1, got 0");
  step.has_step_size = 1;
  step.step_size = 3;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  s = td_optimizer_schedule(out.optimizer);
  assert_true(s->kind == TD_LR_STEP && s->step_size == 3 && s->gamma == 0.1);
  assert_true(s->warmup_steps == 4 && s->warmup_start_factor == 0.5);
  td_optimizer_destroy(out.optimizer);
  step.has_gamma = 1;
  step.gamma = -1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.step.gamma: must be a finite value >= 0, got -1");

  sched.warmup_start_factor = 0;
  Traind__V1__MultiStepLR ms = TRAIND__V1__MULTI_STEP_LR__INIT;
  int64_t milestones[40] = {2, 5, 5};
  ms.n_milestones = 3;
  ms.milestones = milestones;
  ms.has_gamma = 1;
  ms.gamma = 0.5;
  sched.kind_case = TRAIND__V1__LRSCHEDULE__KIND_MULTISTEP;
  sched.multistep = &ms;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.warmup_start_factor: must be in (0, 1], got 0");
  sched.warmup_start_factor = 1.5;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.warmup_start_factor: must be in (0, 1], got 1.5");
  sched.has_warmup_start_factor = 0;
  sched.warmup_steps = 0;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  s = td_optimizer_schedule(out.optimizer);
  assert_true(s->kind == TD_LR_MULTISTEP && s->n_milestones == 3 && s->milestones[2] == 5);
  assert_true(td_lr_schedule_lr(s, 1.0, 5) == 0.125);
  td_optimizer_destroy(out.optimizer);
  milestones[1] = 1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.multistep.milestones: must not decrease (value 1 is 1 after 2)");
  milestones[1] = -1;
  milestones[0] = -1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.multistep.milestones: value 0 must be >= 0, got -1");
  ms.n_milestones = 40;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.multistep.milestones: has 40 values, at most 32");

  Traind__V1__CosineAnnealingLR cos = TRAIND__V1__COSINE_ANNEALING_LR__INIT;
  sched.kind_case = TRAIND__V1__LRSCHEDULE__KIND_COSINE;
  sched.cosine = &cos;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.cosine.t_max: must be >= 1, got 0");
  cos.has_t_max = cos.has_eta_min = 1;
  cos.t_max = 10;
  cos.eta_min = -1e-4;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.cosine.eta_min: must be a finite value >= 0, got -0.0001");
  cos.eta_min = 1e-4;
  assert_int_equal(spec_build_optimizer(&spec, model, &out), TD_OK);
  s = td_optimizer_schedule(out.optimizer);
  assert_true(s->kind == TD_LR_COSINE && s->t_max == 10 && s->eta_min == 1e-4);
  td_optimizer_destroy(out.optimizer);
  sched.warmup_steps = -1;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule.warmup_steps: must be >= 0, got -1");
  sched.warmup_steps = 0;
  sched.kind_case = (Traind__V1__LRSchedule__KindCase)7;
  assert_error(spec_build_optimizer(&spec, model, &out), TD_ERR_INVALID_ARGUMENT,
               "optimizer.schedule: unknown kind (oneof case 7)");
  td_module_destroy(model);
}

/* ---- losses ---------------------------------------------------------------------------- */

static Traind__V1__LossSpec loss_spec(Traind__V1__LossSpec__Kind kind,
                                      Traind__V1__LossSpec__Reduction reduction) {
  Traind__V1__LossSpec s = TRAIND__V1__LOSS_SPEC__INIT;
  s.has_kind = 1;
  s.kind = kind;
  s.has_reduction = 1;
  s.reduction = reduction;
  return s;
}

static float loss_value(const Traind__V1__LossSpec *spec, td_tensor *out, td_tensor *target) {
  td_tensor *l = NULL;
  td_status st = spec_compute_loss(spec, out, target, &l);
  if (st) fail_msg("spec_compute_loss: %s", td_error_message());
  assert_int_equal(l->ndim, 0);
  float v = td_tensor_f32(l)[0];
  td_tensor_release(l);
  return v;
}

static double log_sum_exp(const float *z, int n, int stride) {
  double s = 0;
  for (int i = 0; i < n; i++)
    s += exp(z[i * stride]);
  return log(s);
}

static void every_loss_kind(void **state) {
  (void)state;
  const float logits[] = {1, 2, 3, 1, 0, -1};
  td_tensor *x = tensor_f32(2, (int64_t[]){2, 3}, logits);
  td_tensor *cls = tensor_i64(1, (int64_t[]){2}, (const int64_t[]){2, 0});
  double ce0 = log_sum_exp(logits, 3, 1) - 3, ce1 = log_sum_exp(logits + 3, 3, 1) - 1;

  Traind__V1__LossSpec s =
      loss_spec(TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY, TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN);
  assert_float_equal(loss_value(&s, x, cls), (ce0 + ce1) / 2, 1e-6);
  s.reduction = TRAIND__V1__LOSS_SPEC__REDUCTION__SUM;
  assert_float_equal(loss_value(&s, x, cls), ce0 + ce1, 1e-6);
  /* torch: (1 - eps) * nll + eps / C * sum_c -log p_c */
  s.has_label_smoothing = 1;
  s.label_smoothing = 0.3f;
  double smooth = 0;
  for (int r = 0; r < 2; r++) {
    double lse = log_sum_exp(logits + 3 * r, 3, 1), all = 0;
    for (int c = 0; c < 3; c++)
      all += lse - logits[3 * r + c];
    smooth += (1 - 0.3) * (r ? ce1 : ce0) + 0.3 / 3 * all;
  }
  assert_float_equal(loss_value(&s, x, cls), smooth, 1e-5);

  /* nll of the logits themselves as "log-probabilities": -z[target] */
  s = loss_spec(TRAIND__V1__LOSS_SPEC__KIND__NLL, TRAIND__V1__LOSS_SPEC__REDUCTION__SUM);
  assert_float_equal(loss_value(&s, x, cls), -(3 + 1), 1e-6);

  const float tv[] = {0.5f, 1, 0, 1, 0.25f, 0};
  td_tensor *t = tensor_f32(2, (int64_t[]){2, 3}, tv);
  double mse = 0, l1 = 0, bce = 0;
  for (int i = 0; i < 6; i++) {
    double d = logits[i] - tv[i];
    mse += d * d;
    l1 += fabs(d);
    bce += log1p(exp(-fabs(logits[i]))) + fmax(logits[i], 0) - logits[i] * tv[i];
  }
  s = loss_spec(TRAIND__V1__LOSS_SPEC__KIND__MSE, TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN);
  assert_float_equal(loss_value(&s, x, t), mse / 6, 1e-6);
  s = loss_spec(TRAIND__V1__LOSS_SPEC__KIND__L1, TRAIND__V1__LOSS_SPEC__REDUCTION__SUM);
  assert_float_equal(loss_value(&s, x, t), l1, 1e-6);
  s = loss_spec(TRAIND__V1__LOSS_SPEC__KIND__BCE_WITH_LOGITS,
                TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN);
  assert_float_equal(loss_value(&s, x, t), bce / 6, 1e-6);
  /* An unset reduction is MEAN. */
  s.has_reduction = 0;
  assert_float_equal(loss_value(&s, x, t), bce / 6, 1e-6);
  release_tensors(x, cls, t);
}

/* torch's K-dimensional cross-entropy: logits [N, C, d], target [N, d];
 * the loss and its gradient. */
static void cross_entropy_over_extra_dims(void **state) {
  (void)state;
  int64_t xs[] = {2, 3, 2};
  td_tensor *x = ramp(3, xs, -1, 0.37f);
  td_tensor *cls = tensor_i64(2, (int64_t[]){2, 2}, (const int64_t[]){0, 2, 1, 1});
  const float *z = td_tensor_f32(x);
  const int64_t *tp = td_tensor_i64(cls);
  double want = 0;
  for (int n = 0; n < 2; n++)
    for (int d = 0; d < 2; d++) {
      const float *col = z + n * 6 + d; /* class c at col[2 * c] */
      want += log_sum_exp(col, 3, 2) - col[2 * tp[n * 2 + d]];
    }
  td_grad_manager *gm = NULL;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, x), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  Traind__V1__LossSpec s =
      loss_spec(TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY, TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN);
  td_tensor *l = NULL;
  assert_int_equal(spec_compute_loss(&s, x, cls, &l), TD_OK);
  assert_float_equal(td_tensor_f32(l)[0], want / 4, 1e-6);
  assert_int_equal(td_gm_backward(gm, l, NULL), TD_OK);
  TD_RELEASE(l);
  assert_non_null(x->grad);
  assert_shape(x->grad, 3, xs);
  /* d/dz[n, c, d] = (softmax - onehot) / 4 */
  const float *g = td_tensor_f32(x->grad);
  for (int n = 0; n < 2; n++)
    for (int d = 0; d < 2; d++) {
      const float *col = z + n * 6 + d;
      double lse = log_sum_exp(col, 3, 2);
      for (int c = 0; c < 3; c++) {
        double p = exp(col[2 * c] - lse) - (c == tp[n * 2 + d]);
        assert_float_equal(g[n * 6 + c * 2 + d], p / 4, 1e-6);
      }
    }
  td_tensor *bad = tensor_i64(2, (int64_t[]){2, 3}, (const int64_t[]){0, 0, 0, 0, 0, 0});
  assert_error(spec_compute_loss(&s, x, bad, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (cross_entropy): target has shape [2,3], expected [N, d1, ...] = output "
               "[2,3,2] without dim 1");
  td_tensor *wide = tensor_i64(2, (int64_t[]){2, 2}, (const int64_t[]){0, 3, 1, 1});
  assert_error(spec_compute_loss(&s, x, wide, &l), TD_ERR_OUT_OF_RANGE,
               "loss (cross_entropy): ", "= 3 is out of range for 3 classes");
  td_gm_destroy(gm);
  release_tensors(x, cls, l, bad, wide);
}

static void loss_errors(void **state) {
  (void)state;
  td_tensor *x = iota(2, (int64_t[]){2, 3}), *l = (td_tensor *)1;
  td_tensor *f = iota(1, (int64_t[]){2});
  td_tensor *cls = tensor_i64(1, (int64_t[]){2}, (const int64_t[]){0, 3});
  Traind__V1__LossSpec s =
      loss_spec(TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY, TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN);
  assert_error(spec_compute_loss(&s, x, f, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (cross_entropy): target must be INT64 class indices, got float32 target [2]");
  assert_null(l);
  assert_error(spec_compute_loss(&s, x, cls, &l), TD_ERR_OUT_OF_RANGE,
               "loss (cross_entropy): ", "target[1] = 3 is out of range for 3 classes");
  s.kind = TRAIND__V1__LOSS_SPEC__KIND__NLL;
  assert_error(spec_compute_loss(&s, x, cls, &l), TD_ERR_OUT_OF_RANGE,
               "loss (nll): ", "target[1] = 3");
  s.kind = TRAIND__V1__LOSS_SPEC__KIND__MSE;
  assert_error(spec_compute_loss(&s, x, cls, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (mse): target must be FLOAT32, got int64 target [2]");
  assert_error(spec_compute_loss(&s, x, f, &l), TD_ERR_INVALID_ARGUMENT, "loss (mse): ", "[2,3]",
               "[2]");
  assert_error(spec_compute_loss(&s, x, NULL, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (mse): target: is required");
  s.has_label_smoothing = 1;
  s.label_smoothing = 0.1f;
  assert_error(spec_compute_loss(&s, x, x, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (mse): label_smoothing: applies to cross_entropy only, got 0.1");
  s.kind = TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY;
  s.label_smoothing = 1.5f;
  assert_error(spec_compute_loss(&s, x, cls, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (cross_entropy): label_smoothing: must be in [0, 1], got 1.5");
  s.has_label_smoothing = 0;
  s.label_smoothing = 0;
  s.reduction = (Traind__V1__LossSpec__Reduction)7;
  assert_error(spec_compute_loss(&s, x, cls, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (cross_entropy): reduction: unknown value 7 (expected MEAN or SUM)");
  s.reduction = TRAIND__V1__LOSS_SPEC__REDUCTION__MEAN;
  s.kind = TRAIND__V1__LOSS_SPEC__KIND__BCE_WITH_LOGITS;
  td_tensor *p = tensor_f32(2, (int64_t[]){2, 3}, (const float[]){0, 1, 0.5f, 1.5f, 0, 0});
  assert_error(spec_compute_loss(&s, x, p, &l), TD_ERR_INVALID_ARGUMENT,
               "loss (bce_with_logits): target element 3 (flat index) is 1.5, expected a "
               "probability in [0, 1]");
  s.has_kind = 0;
  s.kind = TRAIND__V1__LOSS_SPEC__KIND__KIND_UNSPECIFIED;
  assert_error(spec_compute_loss(&s, x, p, &l), TD_ERR_INVALID_ARGUMENT,
               "loss.kind: must be set (CROSS_ENTROPY, MSE, L1, BCE_WITH_LOGITS or NLL)");
  s.has_kind = 1;
  s.kind = (Traind__V1__LossSpec__Kind)42;
  assert_error(spec_compute_loss(&s, x, p, &l), TD_ERR_INVALID_ARGUMENT,
               "loss.kind: unknown value 42");
  assert_error(spec_compute_loss(NULL, x, p, &l), TD_ERR_INVALID_ARGUMENT, "loss: is required");
  release_tensors(x, f, cls, p);
}

/* ---- tensors ---------------------------------------------------------------------------- */

static Traind__V1__Tensor proto_tensor(Traind__V1__DType dtype, size_t ndim, int64_t *shape,
                                       const void *data, size_t len) {
  Traind__V1__Tensor t = TRAIND__V1__TENSOR__INIT;
  t.has_dtype = 1;
  t.dtype = dtype;
  t.n_shape = ndim;
  t.shape = shape;
  t.has_data = 1;
  t.data.len = len;
  t.data.data = (uint8_t *)data;
  return t;
}

static void tensor_from_proto(void **state) {
  (void)state;
  float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[] = {2, 3};
  Traind__V1__Tensor t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, shape, v, sizeof v);
  td_tensor *x = NULL;
  assert_int_equal(spec_tensor_from_proto(&t, "input", &limits_10k, &x), TD_OK);
  assert_shape(x, 2, shape);
  assert_memory_equal(td_tensor_f32(x), v, sizeof v);
  td_tensor_release(x);

  int64_t ids[3] = {7, -1, 1LL << 40}, n3[] = {3};
  t = proto_tensor(TRAIND__V1__DTYPE__INT64, 1, n3, ids, sizeof ids);
  assert_int_equal(spec_tensor_from_proto(&t, "input", &limits_10k, &x), TD_OK);
  assert_int_equal(x->dtype, TD_INT64);
  assert_memory_equal(td_tensor_i64(x), ids, sizeof ids);
  td_tensor_release(x);

  /* A scalar has one element; a zero-size tensor none. */
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 0, NULL, v, 4);
  assert_int_equal(spec_tensor_from_proto(&t, "target", &limits_10k, &x), TD_OK);
  assert_int_equal(x->ndim, 0);
  assert_int_equal(x->numel, 1);
  td_tensor_release(x);
  int64_t empty[] = {0, 3};
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, empty, NULL, 0);
  t.has_data = 0;
  assert_int_equal(spec_tensor_from_proto(&t, "input", &limits_10k, &x), TD_OK);
  assert_int_equal(x->numel, 0);
  td_tensor_release(x);
}

#define assert_tensor_error(t, limits, code, ...)                                                  \
  do {                                                                                             \
    td_tensor *x_ = (td_tensor *)1;                                                                \
    assert_error(spec_tensor_from_proto((t), "input", (limits), &x_), (code), __VA_ARGS__);        \
    assert_null(x_);                                                                               \
  } while (0)

static void tensor_validation(void **state) {
  (void)state;
  float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[] = {2, 3};
  assert_tensor_error(NULL, &limits_10k, TD_ERR_INVALID_ARGUMENT, "input: is required");

  Traind__V1__Tensor t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, shape, v, sizeof v);
  t.has_dtype = 0;
  t.dtype = TRAIND__V1__DTYPE__DTYPE_UNSPECIFIED;
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input.dtype: must be set (FLOAT32 or INT64)");
  t.has_dtype = 1;
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT, "input.dtype: must be set");
  t.dtype = (Traind__V1__DType)7;
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT, "input.dtype: unknown value 7");

  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, shape, v, 20);
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input: data has 20 bytes, shape [2,3] float32 needs 24 (6 elements x 4 "
                      "bytes)");
  t = proto_tensor(TRAIND__V1__DTYPE__INT64, 2, shape, v, sizeof v);
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input: data has 24 bytes, shape [2,3] int64 needs 48");

  int64_t negative[] = {2, -3};
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, negative, v, sizeof v);
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input.shape: dim 1 must be >= 0, got -3");
  int64_t huge[] = {INT64_C(1) << 40, INT64_C(1) << 40};
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, huge, v, sizeof v);
  assert_tensor_error(&t, &no_limits, TD_ERR_INVALID_ARGUMENT,
                      "input.shape: [1099511627776,1099511627776] has more elements than any "
                      "tensor can");
  int64_t big[] = {101, 100};
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, big, v, sizeof v);
  assert_tensor_error(&t, &limits_10k, TD_ERR_NO_MEMORY,
                      "input: shape [101,100] has 10100 elements, over this server's limit of "
                      "10000 (--max-tensor-elements)");
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 9, nine, v, 4);
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input.shape: has 9 dims, at most 8");

  /* Non-finite float32 values, named by flat index. int64 data has none. */
  float w[6] = {0, 1, 2, 3, NAN, INFINITY};
  t = proto_tensor(TRAIND__V1__DTYPE__FLOAT32, 2, shape, w, sizeof w);
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input: element 4 (flat index) is NaN");
  w[4] = 0;
  assert_tensor_error(&t, &limits_10k, TD_ERR_INVALID_ARGUMENT,
                      "input: element 5 (flat index) is +Inf");
  w[0] = -INFINITY;
  td_tensor *x = (td_tensor *)1;
  assert_error(spec_tensor_from_proto(&t, "grad_output", &limits_10k, &x), TD_ERR_INVALID_ARGUMENT,
               "grad_output: element 0 (flat index) is -Inf");
  assert_null(x);
}

static void tensor_to_proto(void **state) {
  (void)state;
  td_tensor *a = iota(2, (int64_t[]){2, 3}), *at = NULL;
  assert_int_equal(td_tensor_transpose(a, 0, 1, &at), TD_OK);
  assert_false(td_tensor_is_contiguous(at));
  Traind__V1__Tensor p;
  assert_int_equal(spec_tensor_to_proto(at, &p), TD_OK);
  assert_true(p.has_dtype && p.dtype == TRAIND__V1__DTYPE__FLOAT32);
  assert_int_equal(p.n_shape, 2);
  assert_true(p.shape[0] == 3 && p.shape[1] == 2);
  const float want[] = {0, 3, 1, 4, 2, 5};
  assert_int_equal(p.data.len, sizeof want);
  assert_memory_equal(p.data.data, want, sizeof want);

  /* It packs and comes back through spec_tensor_from_proto unchanged. */
  size_t size = traind__v1__tensor__get_packed_size(&p);
  uint8_t *buf = malloc(size);
  traind__v1__tensor__pack(&p, buf);
  Traind__V1__Tensor *back = traind__v1__tensor__unpack(NULL, size, buf);
  td_tensor *x = NULL;
  assert_int_equal(spec_tensor_from_proto(back, "output", &no_limits, &x), TD_OK);
  assert_shape(x, 2, (int64_t[]){3, 2});
  assert_memory_equal(td_tensor_f32(x), want, sizeof want);
  traind__v1__tensor__free_unpacked(back, NULL);
  free(buf);
  spec_tensor_proto_clear(&p);
  assert_null(p.shape);
  assert_null(p.data.data);

  td_tensor *i = tensor_i64(0, NULL, (const int64_t[]){-5});
  assert_int_equal(spec_tensor_to_proto(i, &p), TD_OK);
  assert_true(p.dtype == TRAIND__V1__DTYPE__INT64 && p.n_shape == 0 && p.data.len == 8);
  assert_int_equal(*(const int64_t *)p.data.data, -5);
  spec_tensor_proto_clear(&p);

  td_tensor *i32 = NULL;
  assert_int_equal(td_tensor_zeros(TD_INT32, 1, (int64_t[]){2}, &i32), TD_OK);
  assert_error(spec_tensor_to_proto(i32, &p), TD_ERR_INVALID_ARGUMENT,
               "tensor: dtype int32 cannot be sent");
  assert_int_equal(spec_dtype_to_proto(TD_FLOAT32), TRAIND__V1__DTYPE__FLOAT32);
  assert_int_equal(spec_dtype_to_proto(TD_INT64), TRAIND__V1__DTYPE__INT64);
  assert_int_equal(spec_dtype_to_proto(TD_INT32), TRAIND__V1__DTYPE__DTYPE_UNSPECIFIED);
  release_tensors(a, at, x, i, i32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_kind_builds_with_torch_keys),
      cmocka_unit_test(hyperparameters_reach_the_layers),
      cmocka_unit_test(unset_fields_take_torch_defaults),
      cmocka_unit_test(same_seed_same_weights_as_the_engine),
      cmocka_unit_test(zoo_models_from_specs_match_the_engine),
      cmocka_unit_test(packed_request_builds_the_same_model),
      cmocka_unit_test(bad_fields_are_named_by_path),
      cmocka_unit_test(missing_and_unknown_kinds),
      cmocka_unit_test(child_names),
      cmocka_unit_test(depth_is_limited_before_recursion),
      cmocka_unit_test(parameter_limit_is_checked_before_allocating),
      cmocka_unit_test(optimizer_defaults_per_algorithm),
      cmocka_unit_test(optimizer_fields_and_clipping),
      cmocka_unit_test(bad_hyperparameters_name_the_field),
      cmocka_unit_test(schedules),
      cmocka_unit_test(every_loss_kind),
      cmocka_unit_test(cross_entropy_over_extra_dims),
      cmocka_unit_test(loss_errors),
      cmocka_unit_test(tensor_from_proto),
      cmocka_unit_test(tensor_validation),
      cmocka_unit_test(tensor_to_proto),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
