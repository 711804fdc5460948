/* test_module_forward.c - what modules compute: output shapes, values on
 * hand-checked inputs, train/eval behaviour (BatchNorm's running statistics,
 * Dropout), op errors carrying the layer path, and a training step through
 * the GradManager. Needs the op families. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "functional/functional.h"
#include "module/layers.h"
#include "module_test_util.h"

static td_tensor *random_input(td_rng *rng, int ndim, const int64_t *shape) {
  td_tensor *t;
  OK(td_tensor_rand_normal(rng, ndim, shape, 0.0f, 1.0f, &t));
  return t;
}

static void set_values(td_tensor *t, const float *values) {
  memcpy(td_tensor_f32(t), values, td_tensor_nbytes(t));
}

static td_tensor *run(td_module *m, td_tensor *x) {
  td_tensor *y;
  td_status st = td_module_forward(m, x, &y);
  if (st) fail_msg("%s: %s", td_module_kind(m), td_error_message());
  return y;
}

static void assert_values(const td_tensor *t, const float *expected, float tol) {
  td_tensor *c;
  OK(td_tensor_contiguous((td_tensor *)t, &c));
  for (int64_t i = 0; i < c->numel; i++)
    if (fabsf(td_tensor_f32(c)[i] - expected[i]) > tol)
      fail_msg("element %lld: got %.7g, expected %.7g", (long long)i, td_tensor_f32(c)[i],
               expected[i]);
  td_tensor_release(c);
}

/* ---- output shapes --------------------------------------------------------- */

static void expect_shape(td_module *m, int ndim, const int64_t *in, const char *out, td_rng *rng) {
  td_tensor *x = random_input(rng, ndim, in);
  for (int mode = 0; mode < 2; mode++) {
    td_module_train(m, mode == 0);
    td_tensor *y = run(m, x);
    assert_shape_str(y, out);
    td_tensor_release(y);
  }
  td_tensor_release(x);
  td_module_destroy(m);
}

static void test_output_shapes(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 100);
  td_module *m;
  int64_t s2[] = {32, 784}, s3[] = {2, 5, 784};
  expect_shape(mk_linear(784, 256, true, &rng), 2, s2, "[32,256]", &rng);
  expect_shape(mk_linear(784, 10, false, &rng), 3, s3, "[2,5,10]", &rng);

  int64_t img[] = {2, 3, 32, 32}, img9[] = {1, 4, 9, 9};
  expect_shape(mk_conv(3, 16, 3, 1, 1, true, &rng), 4, img, "[2,16,32,32]", &rng);
  td_conv2d_config grouped = {.in_channels = 4,
                              .out_channels = 8,
                              .kernel_size = 3,
                              .stride = 2,
                              .padding = 1,
                              .groups = 2};
  OK(td_module_conv2d(&grouped, &rng, &m));
  expect_shape(m, 4, img9, "[1,8,5,5]", &rng);
  td_conv2d_config dilated = {.in_channels = 4, .out_channels = 2, .kernel_size = 3, .dilation = 2};
  OK(td_module_conv2d(&dilated, &rng, &m));
  expect_shape(m, 4, img9, "[1,2,5,5]", &rng);

  td_batch_norm_config bc = {.num_features = 3};
  int64_t nc[] = {4, 3}, ncl[] = {4, 3, 5}, nchw[] = {2, 3, 4, 4};
  OK(td_module_batch_norm1d(&bc, &m));
  expect_shape(m, 2, nc, "[4,3]", &rng);
  OK(td_module_batch_norm1d(&bc, &m));
  expect_shape(m, 3, ncl, "[4,3,5]", &rng);
  OK(td_module_batch_norm2d(&bc, &m));
  expect_shape(m, 4, nchw, "[2,3,4,4]", &rng);
  td_layer_norm_config lc = {.normalized_ndim = 2, .normalized_shape = {5, 4}};
  int64_t ln_in[] = {2, 3, 5, 4};
  OK(td_module_layer_norm(&lc, &m));
  expect_shape(m, 4, ln_in, "[2,3,5,4]", &rng);

  int64_t any[] = {2, 3, 4};
  expect_shape(mk_relu(), 3, any, "[2,3,4]", &rng);
  OK(td_module_leaky_relu(TD_LEAKY_RELU_DEFAULT_SLOPE, &m));
  expect_shape(m, 3, any, "[2,3,4]", &rng);
  td_status (*plain[])(td_module **) = {td_module_sigmoid, td_module_tanh, td_module_gelu,
                                        td_module_silu, td_module_identity};
  for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
    OK(plain[i](&m));
    expect_shape(m, 3, any, "[2,3,4]", &rng);
  }
  OK(td_module_softmax(-1, &m));
  expect_shape(m, 3, any, "[2,3,4]", &rng);
  OK(td_module_dropout(0.3f, &rng, &m));
  expect_shape(m, 3, any, "[2,3,4]", &rng);

  td_pool2d_config p2 = {.kernel_size = 2}, p3 = {.kernel_size = 3, .stride = 2, .padding = 1};
  int64_t mnist[] = {1, 3, 28, 28}, seven[] = {1, 1, 7, 7}, big[] = {2, 64, 8, 8},
          odd[] = {1, 1, 7, 5};
  OK(td_module_max_pool2d(&p2, &m));
  expect_shape(m, 4, mnist, "[1,3,14,14]", &rng);
  OK(td_module_max_pool2d(&p3, &m));
  expect_shape(m, 4, seven, "[1,1,4,4]", &rng);
  OK(td_module_avg_pool2d(&p2, &m));
  expect_shape(m, 4, seven, "[1,1,3,3]", &rng);
  OK(td_module_adaptive_avg_pool2d(1, 1, &m));
  expect_shape(m, 4, big, "[2,64,1,1]", &rng);
  OK(td_module_adaptive_avg_pool2d(3, 2, &m));
  expect_shape(m, 4, odd, "[1,1,3,2]", &rng);

  int64_t f[] = {2, 3, 4, 5};
  OK(td_module_flatten(&m));
  expect_shape(m, 4, f, "[2,60]", &rng);

  /* Embedding takes int64 indices. */
  td_embedding_config ec = {.num_embeddings = 10, .embedding_dim = 3};
  OK(td_module_embedding(&ec, &rng, &m));
  int64_t ids_shape[] = {2, 5};
  td_tensor *ids, *y;
  OK(td_tensor_arange(TD_INT64, 0, 10, 1, &ids));
  td_tensor *ids2;
  OK(td_tensor_view(ids, 2, ids_shape, &ids2));
  y = run(m, ids2);
  assert_shape_str(y, "[2,5,3]");
  /* row 7 of the table is the output at [1, 2] */
  const float *w = td_tensor_f32(m->params[0].tensor);
  for (int j = 0; j < 3; j++)
    assert_float_equal(td_tensor_f32(y)[7 * 3 + j], w[7 * 3 + j], 0);
  td_tensor_release(y);
  td_tensor_release(ids);
  td_tensor_release(ids2);
  td_module_destroy(m);
}

static void test_whole_models(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 101);
  /* LeNet from torch_bench.py. */
  td_module *lenet = mk_seq(), *m;
  td_pool2d_config p2 = {.kernel_size = 2};
  seq_add(lenet, NULL, mk_conv(1, 6, 5, 1, 2, true, &rng));
  seq_add(lenet, NULL, mk_relu());
  OK(td_module_max_pool2d(&p2, &m));
  seq_add(lenet, NULL, m);
  seq_add(lenet, NULL, mk_conv(6, 16, 5, 1, 0, true, &rng));
  seq_add(lenet, NULL, mk_relu());
  OK(td_module_max_pool2d(&p2, &m));
  seq_add(lenet, NULL, m);
  OK(td_module_flatten(&m));
  seq_add(lenet, NULL, m);
  seq_add(lenet, NULL, mk_linear(400, 120, true, &rng));
  seq_add(lenet, NULL, mk_relu());
  seq_add(lenet, NULL, mk_linear(120, 84, true, &rng));
  seq_add(lenet, NULL, mk_relu());
  seq_add(lenet, NULL, mk_linear(84, 10, true, &rng));
  int64_t mnist[] = {4, 1, 28, 28};
  expect_shape(lenet, 4, mnist, "[4,10]", &rng);

  /* ResNetTiny: train-mode forwards count batches in every BatchNorm. */
  td_module *net = mk_resnet_tiny(&rng);
  int64_t cifar[] = {2, 3, 32, 32};
  td_tensor *x = random_input(&rng, 4, cifar);
  td_tensor *y = run(net, x);
  assert_shape_str(y, "[2,10]");
  td_tensor_release(y);
  td_module_eval(net);
  y = run(net, x);
  td_tensor_release(y);
  td_tensor_map buffers;
  OK(td_module_named_buffers(net, &buffers));
  int nbt = 0;
  for (size_t i = 0; i < buffers.count; i++) {
    if (!strstr(buffers.entries[i].name, "num_batches_tracked")) continue;
    assert_int_equal(td_tensor_i64(buffers.entries[i].tensor)[0], 1);
    nbt++;
  }
  assert_int_equal(nbt, 9);
  td_tensor_map_free(&buffers);
  td_tensor_release(x);
  td_module_destroy(net);
}

/* ---- values --------------------------------------------------------------- */

static void test_linear_and_residual_values(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 102);
  td_module *lin = mk_linear(3, 2, true, &rng);
  const float w[] = {1, 2, 3, -1, 0, 1}, b[] = {0.5f, -0.5f};
  set_values(lin->params[0].tensor, w);
  set_values(lin->params[1].tensor, b);
  int64_t s[] = {2, 3};
  const float xv[] = {1, 1, 1, 2, 0, -1};
  td_tensor *x = tensor_f32(2, s, xv);
  td_tensor *y = run(lin, x);
  const float want[] = {6.5f, -0.5f, -0.5f, -3.5f};
  assert_values(y, want, 1e-6f);
  td_tensor_release(y);
  td_tensor_release(x);

  /* Residual(body = Linear(2,2) with W = 2I, b = 0): y = 2x + x. */
  td_module *body = mk_linear(2, 2, true, &rng), *res;
  const float w2[] = {2, 0, 0, 2}, zero[] = {0, 0};
  set_values(body->params[0].tensor, w2);
  set_values(body->params[1].tensor, zero);
  OK(td_module_residual(body, NULL, &res));
  int64_t s2[] = {1, 2};
  const float x2[] = {1, -2};
  x = tensor_f32(2, s2, x2);
  y = run(res, x);
  const float want2[] = {3, -6};
  assert_values(y, want2, 1e-6f);
  td_tensor_release(y);
  td_module_destroy(res);

  /* With a shortcut: body(x) + shortcut(x) = 2x + (-x). */
  td_module *neg = mk_linear(2, 2, false, &rng);
  const float wn[] = {-1, 0, 0, -1};
  set_values(neg->params[0].tensor, wn);
  body = mk_linear(2, 2, true, &rng);
  set_values(body->params[0].tensor, w2);
  set_values(body->params[1].tensor, zero);
  OK(td_module_residual(body, neg, &res));
  y = run(res, x);
  assert_values(y, x2, 1e-6f);
  td_tensor_release(y);
  td_module_destroy(res);

  /* Shapes that do not add up are named. */
  OK(td_module_residual(mk_linear(2, 3, true, &rng), NULL, &res));
  td_tensor *bad = (td_tensor *)&bad;
  assert_int_equal(td_module_forward(res, x, &bad), TD_ERR_INVALID_ARGUMENT);
  assert_null(bad);
  assert_string_equal(td_error_message(), "residual: body output [1,3] and identity shortcut "
                                          "[1,2] differ (input shape [1,2])");
  td_module_destroy(res);
  td_tensor_release(x);
  td_module_destroy(lin);
}

static void test_activation_values(void **state) {
  (void)state;
  int64_t s[] = {1, 4};
  const float xv[] = {-2, -0.5f, 0.5f, 3};
  td_tensor *x = tensor_f32(2, s, xv);
  float want[4];
  td_module *m;
  td_tensor *y;

  OK(td_module_leaky_relu(0.1f, &m));
  y = run(m, x);
  for (int i = 0; i < 4; i++)
    want[i] = xv[i] > 0 ? xv[i] : 0.1f * xv[i];
  assert_values(y, want, 1e-6f);
  td_tensor_release(y);
  td_module_destroy(m);

  OK(td_module_gelu(&m));
  y = run(m, x);
  for (int i = 0; i < 4; i++)
    want[i] = 0.5f * xv[i] * (1 + erff(xv[i] / sqrtf(2)));
  assert_values(y, want, 1e-5f);
  td_tensor_release(y);
  td_module_destroy(m);

  OK(td_module_silu(&m));
  y = run(m, x);
  for (int i = 0; i < 4; i++)
    want[i] = xv[i] / (1 + expf(-xv[i]));
  assert_values(y, want, 1e-5f);
  td_tensor_release(y);
  td_module_destroy(m);

  OK(td_module_softmax(1, &m));
  y = run(m, x);
  float z = 0;
  for (int i = 0; i < 4; i++)
    z += expf(xv[i]);
  for (int i = 0; i < 4; i++)
    want[i] = expf(xv[i]) / z;
  assert_values(y, want, 1e-6f);
  td_tensor_release(y);
  td_module_destroy(m);

  /* Identity hands back the input itself, as nn.Identity does. */
  OK(td_module_identity(&m));
  y = run(m, x);
  assert_ptr_equal(y, x);
  td_tensor_release(y);
  td_module_destroy(m);
  td_tensor_release(x);
}

/* ---- train / eval ----------------------------------------------------------- */

static void test_batch_norm_train_and_eval(void **state) {
  (void)state;
  td_batch_norm_config c = {.num_features = 2};
  td_module *bn;
  OK(td_module_batch_norm1d(&c, &bn));
  td_tensor *rm = bn->buffers[0].tensor, *rv = bn->buffers[1].tensor;
  td_tensor *nbt = bn->buffers[2].tensor;
  int64_t s[] = {4, 2};
  const float xv[] = {1, 10, 2, 20, 3, 30, 4, 40};
  td_tensor *x = tensor_f32(2, s, xv);
  const float mean[] = {2.5f, 25}, var[] = {1.25f, 125}, unbiased[] = {5.0f / 3, 500.0f / 3};

  /* Training: batch statistics (biased variance), running statistics move
   * by momentum 0.1 (unbiased variance), one more batch tracked. */
  td_tensor *y = run(bn, x);
  float want[8];
  for (int i = 0; i < 8; i++)
    want[i] = (xv[i] - mean[i % 2]) / sqrtf(var[i % 2] + 1e-5f);
  assert_values(y, want, 1e-5f);
  td_tensor_release(y);
  const float rm1[] = {0.25f, 2.5f};
  const float rv1[] = {0.9f + 0.1f * unbiased[0], 0.9f + 0.1f * unbiased[1]};
  assert_values(rm, rm1, 1e-6f);
  assert_values(rv, rv1, 1e-5f);
  assert_int_equal(td_tensor_i64(nbt)[0], 1);

  /* Eval: running statistics, and nothing changes. */
  td_module_eval(bn);
  y = run(bn, x);
  for (int i = 0; i < 8; i++)
    want[i] = (xv[i] - rm1[i % 2]) / sqrtf(rv1[i % 2] + 1e-5f);
  assert_values(y, want, 1e-5f);
  td_tensor_release(y);
  assert_values(rm, rm1, 0);
  assert_values(rv, rv1, 1e-5f);
  assert_int_equal(td_tensor_i64(nbt)[0], 1);

  /* One value per channel cannot be normalised in training: an error that
   * names the layer, and no batch is counted. */
  td_module_train(bn, true);
  int64_t one[] = {1, 2};
  td_tensor *x1 = tensor_f32(2, one, xv);
  td_tensor *bad = (td_tensor *)&bad;
  assert_int_equal(td_module_forward(bn, x1, &bad), TD_ERR_INVALID_ARGUMENT);
  assert_null(bad);
  assert_true(strncmp(td_error_message(), "batch_norm", 10) == 0);
  assert_int_equal(td_tensor_i64(nbt)[0], 1);
  td_tensor_release(x1);
  td_module_destroy(bn);

  /* Without running statistics, eval still normalises with the batch's. */
  td_batch_norm_config plain = {.num_features = 2, .no_running_stats = true};
  OK(td_module_batch_norm1d(&plain, &bn));
  td_module_eval(bn);
  y = run(bn, x);
  for (int i = 0; i < 8; i++)
    want[i] = (xv[i] - mean[i % 2]) / sqrtf(var[i % 2] + 1e-5f);
  assert_values(y, want, 1e-5f);
  td_tensor_release(y);
  td_module_destroy(bn);

  /* Custom momentum and eps, and affine weight/bias applied. */
  td_batch_norm_config custom = {.num_features = 2, .momentum = 0.5f, .eps = 0.1f};
  OK(td_module_batch_norm1d(&custom, &bn));
  const float gamma[] = {2, 3}, beta[] = {1, -1};
  set_values(bn->params[0].tensor, gamma);
  set_values(bn->params[1].tensor, beta);
  y = run(bn, x);
  for (int i = 0; i < 8; i++)
    want[i] = gamma[i % 2] * (xv[i] - mean[i % 2]) / sqrtf(var[i % 2] + 0.1f) + beta[i % 2];
  assert_values(y, want, 1e-5f);
  const float rm2[] = {1.25f, 12.5f};
  assert_values(bn->buffers[0].tensor, rm2, 1e-6f);
  td_tensor_release(y);
  td_module_destroy(bn);
  td_tensor_release(x);
}

static void test_dropout_train_and_eval(void **state) {
  (void)state;
  td_rng r1, r2;
  td_rng_seed(&r1, 7);
  td_rng_seed(&r2, 7);
  td_module *a, *b;
  OK(td_module_dropout(0.5f, &r1, &a));
  OK(td_module_dropout(0.5f, &r2, &b));
  int64_t n = 10000;
  td_tensor *x;
  OK(td_tensor_ones(TD_FLOAT32, 1, &n, &x));

  td_tensor *ya = run(a, x), *yb = run(b, x);
  int zeros = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = td_tensor_f32(ya)[i];
    assert_true(v == 0.0f || v == 2.0f); /* kept values scaled by 1/(1-p) */
    zeros += v == 0.0f;
  }
  assert_true(abs(zeros - 5000) < 300);
  /* the same seed gives the same mask; the next call a new one */
  assert_memory_equal(td_tensor_f32(ya), td_tensor_f32(yb), (size_t)n * sizeof(float));
  td_tensor *ya2 = run(a, x);
  assert_true(memcmp(td_tensor_f32(ya), td_tensor_f32(ya2), (size_t)n * sizeof(float)) != 0);
  td_tensor_release(ya);
  td_tensor_release(yb);
  td_tensor_release(ya2);

  td_module_eval(a);
  ya = run(a, x);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(td_tensor_f32(ya)[i], 1.0f, 0);
  td_tensor_release(ya);
  td_module_destroy(a);
  td_module_destroy(b);

  OK(td_module_dropout(1.0f, &r1, &a));
  ya = run(a, x);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(td_tensor_f32(ya)[i], 0.0f, 0);
  td_tensor_release(ya);
  td_module_destroy(a);
  td_tensor_release(x);
}

/* ---- op errors carry the layer path -------------------------------------- */

static void test_op_errors_carry_the_layer_path(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 103);
  td_module *net = mk_seq(), *emb;
  td_embedding_config ec = {.num_embeddings = 4, .embedding_dim = 2};
  OK(td_module_embedding(&ec, &rng, &emb));
  seq_add(net, "tokens", emb);
  int64_t s[] = {3};
  const int64_t ids[] = {0, 4, 1};
  td_tensor *x, *y = (td_tensor *)&y;
  x = tensor_i64(1, s, ids);
  assert_int_equal(td_module_forward(net, x, &y), TD_ERR_OUT_OF_RANGE);
  assert_null(y);
  assert_true(strncmp(td_error_message(), "sequential: embedding 'tokens': embedding: ", 43) == 0);
  assert_message_has("4");
  td_tensor_release(x);
  td_module_destroy(net);

  /* An op's own dtype check, under two levels of path. */
  net = mk_seq();
  td_module *inner = mk_seq();
  seq_add(inner, NULL, mk_relu());
  seq_add(net, "act", inner);
  x = tensor_i64(1, s, ids);
  assert_int_equal(td_module_forward(net, x, &y), TD_ERR_INVALID_ARGUMENT);
  assert_true(strncmp(td_error_message(), "sequential: sequential 'act': relu '0': relu: ", 46) ==
              0);
  td_tensor_release(x);
  td_module_destroy(net);
}

/* ---- training through the GradManager -------------------------------------- */

static float mse(td_module *net, td_tensor *x, td_tensor *target) {
  td_tensor *y = run(net, x), *loss;
  OK(td_mse_loss(y, target, TD_REDUCTION_MEAN, &loss));
  float v = td_tensor_f32(loss)[0];
  td_tensor_release(y);
  td_tensor_release(loss);
  return v;
}

static void test_training_step_reaches_every_parameter(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 104);
  td_module *net = mk_seq();
  seq_add(net, NULL, mk_linear(4, 8, true, &rng));
  seq_add(net, NULL, mk_relu());
  td_layer_norm_config lc = {.normalized_ndim = 1, .normalized_shape = {8}};
  td_module *ln;
  OK(td_module_layer_norm(&lc, &ln));
  seq_add(net, NULL, ln);
  seq_add(net, NULL, mk_linear(8, 3, true, &rng));
  int64_t xs[] = {5, 4}, ts[] = {5, 3};
  td_tensor *x = random_input(&rng, 2, xs), *target = random_input(&rng, 2, ts);

  td_grad_manager *gm;
  OK(td_gm_create(&gm));
  OK(td_module_attach(net, gm));
  OK(td_gm_record(gm));
  td_tensor *y = run(net, x), *loss;
  OK(td_mse_loss(y, target, TD_REDUCTION_MEAN, &loss));
  OK(td_gm_backward(gm, loss, NULL));
  td_tensor_release(y);
  td_tensor_release(loss);

  td_tensor **ps;
  int n;
  OK(td_module_parameters(net, &ps, &n));
  assert_int_equal(n, 6);
  for (int i = 0; i < n; i++) {
    assert_non_null(ps[i]->grad);
    assert_true(td_shape_equal(ps[i]->ndim, ps[i]->shape, ps[i]->grad->ndim, ps[i]->grad->shape));
  }
  /* The first layer's weight gradient agrees with central differences, so
   * the module wiring (not just each op) is differentiated correctly. */
  float *w = td_tensor_f32(ps[0]);
  for (int k = 0; k < 3; k++) {
    int i = 7 * k + 1;
    float saved = w[i], h = 1e-2f;
    w[i] = saved + h;
    float up = mse(net, x, target);
    w[i] = saved - h;
    float down = mse(net, x, target);
    w[i] = saved;
    float numeric = (up - down) / (2 * h), analytic = td_tensor_f32(ps[0]->grad)[i];
    assert_true(fabsf(numeric - analytic) <= 2e-3f + 2e-2f * fabsf(analytic));
  }
  td_free(ps);
  td_gm_destroy(gm);
  td_tensor_release(x);
  td_tensor_release(target);
  td_module_destroy(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_output_shapes),
      cmocka_unit_test(test_whole_models),
      cmocka_unit_test(test_linear_and_residual_values),
      cmocka_unit_test(test_activation_values),
      cmocka_unit_test(test_batch_norm_train_and_eval),
      cmocka_unit_test(test_dropout_train_and_eval),
      cmocka_unit_test(test_op_errors_carry_the_layer_path),
      cmocka_unit_test(test_training_step_reaches_every_parameter),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
