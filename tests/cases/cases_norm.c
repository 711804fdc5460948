/* cases_norm.c - op cases for batch_norm (train/eval, 2-d to 4-d, with and without affine or
 * running statistics) and layer_norm. */
#include "common/op_case.h"

#define IN(nd, ...)                                                                                \
  { .ndim = nd, .shape = {__VA_ARGS__}, .grad = true }
#define IN_STRIDED(nd, ...)                                                                        \
  { .ndim = nd, .shape = {__VA_ARGS__}, .grad = true, .strided = true }
#define NONE                                                                                       \
  { .ndim = -1 }
#define CASE(nm, o, js, fn, n, ...)                                                                \
  {                                                                                                \
    .name = nm, .op = o, .params_json = js, .run = fn, .n_inputs = n, .inputs = { __VA_ARGS__ }    \
  }

/* Running statistics made inside the run (tests/parity/torch_norm.py builds
 * the same values): exact in float32, so both sides start identical. */
static td_status make_running(int64_t C, td_tensor **rm, td_tensor **rv) {
  td_status st = td_tensor_empty(TD_FLOAT32, 1, &C, rm);
  if (st) return st;
  if ((st = td_tensor_empty(TD_FLOAT32, 1, &C, rv))) {
    TD_RELEASE(*rm);
    return st;
  }
  for (int64_t c = 0; c < C; c++) {
    td_tensor_f32(*rm)[c] = 0.125f * (float)(c % 5 - 2);
    td_tensor_f32(*rv)[c] = 0.5f + 0.25f * (float)(c % 4);
  }
  return TD_OK;
}

static td_status run_bn(td_tensor **in, td_tensor **out, bool training, bool running, float eps) {
  td_tensor *rm = NULL, *rv = NULL;
  if (running) {
    td_status st = make_running(in[0]->shape[1], &rm, &rv);
    if (st) return st;
  }
  td_batch_norm_params p = {
      .training = training, .momentum = 0.1f, .eps = eps, .running_mean = rm, .running_var = rv};
  td_status st = td_batch_norm(in[0], in[1], in[2], &p, out);
  td_tensor_release(rm);
  td_tensor_release(rv);
  return st;
}

static td_status run_bn_train(td_tensor **in, td_tensor **out) {
  return run_bn(in, out, true, true, 1e-5f);
}
static td_status run_bn_eval(td_tensor **in, td_tensor **out) {
  return run_bn(in, out, false, true, 1e-5f);
}
static td_status run_bn_eval_eps(td_tensor **in, td_tensor **out) {
  return run_bn(in, out, false, true, 1e-3f);
}
static td_status run_bn_no_running(td_tensor **in, td_tensor **out) {
  return run_bn(in, out, false, false, 1e-5f);
}

#define BN_TRAIN "{\"training\": true, \"momentum\": 0.1, \"eps\": 1e-5, \"running\": true}"
#define BN_EVAL "{\"training\": false, \"momentum\": 0.1, \"eps\": 1e-5, \"running\": true}"

static td_status run_ln1(td_tensor **in, td_tensor **out) {
  return td_layer_norm(in[0], 1, in[1], in[2], 1e-5f, out);
}
static td_status run_ln2(td_tensor **in, td_tensor **out) {
  return td_layer_norm(in[0], 2, in[1], in[2], 1e-5f, out);
}
static td_status run_ln3(td_tensor **in, td_tensor **out) {
  return td_layer_norm(in[0], 3, in[1], in[2], 1e-3f, out);
}

const op_case op_cases_norm[] = {
    CASE("batch_norm_2d_train", "batch_norm", BN_TRAIN, run_bn_train, 3, IN(2, 8, 3), IN(1, 3),
         IN(1, 3)),
    CASE("batch_norm_2d_eval", "batch_norm", BN_EVAL, run_bn_eval, 3, IN(2, 8, 3), IN(1, 3),
         IN(1, 3)),
    CASE("batch_norm_2d_train_strided_noaffine", "batch_norm", BN_TRAIN, run_bn_train, 3,
         IN_STRIDED(2, 6, 5), NONE, NONE),
    CASE("batch_norm_3d_train_strided", "batch_norm", BN_TRAIN, run_bn_train, 3,
         IN_STRIDED(3, 4, 3, 5), IN(1, 3), IN(1, 3)),
    CASE("batch_norm_3d_eval_noaffine", "batch_norm", BN_EVAL, run_bn_eval, 3, IN(3, 4, 3, 5), NONE,
         NONE),
    CASE("batch_norm_3d_train_batch1", "batch_norm", BN_TRAIN, run_bn_train, 3, IN(3, 1, 3, 4),
         IN(1, 3), IN(1, 3)),
    CASE("batch_norm_4d_train", "batch_norm", BN_TRAIN, run_bn_train, 3, IN(4, 2, 3, 4, 5),
         IN(1, 3), IN(1, 3)),
    CASE("batch_norm_4d_train_noaffine", "batch_norm", BN_TRAIN, run_bn_train, 3, IN(4, 3, 2, 3, 3),
         NONE, NONE),
    CASE("batch_norm_4d_eval_eps", "batch_norm",
         "{\"training\": false, \"momentum\": 0.1, \"eps\": 1e-3, \"running\": true}",
         run_bn_eval_eps, 3, IN_STRIDED(4, 2, 3, 4, 5), IN(1, 3), IN(1, 3)),
    CASE("batch_norm_4d_train_weight_only", "batch_norm", BN_TRAIN, run_bn_train, 3,
         IN(4, 2, 4, 3, 3), IN(1, 4), NONE),
    CASE("batch_norm_4d_eval_bias_only", "batch_norm", BN_EVAL, run_bn_eval, 3, IN(4, 2, 4, 3, 3),
         NONE, IN(1, 4)),
    CASE("batch_norm_no_running_stats", "batch_norm",
         "{\"training\": false, \"momentum\": 0.1, \"eps\": 1e-5, \"running\": false}",
         run_bn_no_running, 3, IN(3, 5, 2, 3), IN(1, 2), IN(1, 2)),
    CASE("layer_norm_last_dim", "layer_norm", "{\"normalized_ndim\": 1, \"eps\": 1e-5}", run_ln1, 3,
         IN(2, 4, 6), IN(1, 6), IN(1, 6)),
    CASE("layer_norm_two_dims_strided", "layer_norm", "{\"normalized_ndim\": 2, \"eps\": 1e-5}",
         run_ln2, 3, IN_STRIDED(4, 2, 3, 4, 5), IN_STRIDED(2, 4, 5), IN(2, 4, 5)),
    CASE("layer_norm_noaffine", "layer_norm", "{\"normalized_ndim\": 1, \"eps\": 1e-5}", run_ln1, 3,
         IN(3, 3, 2, 8), NONE, NONE),
    CASE("layer_norm_weight_only", "layer_norm", "{\"normalized_ndim\": 1, \"eps\": 1e-5}", run_ln1,
         3, IN(2, 5, 7), IN(1, 7), NONE),
    CASE("layer_norm_bias_only", "layer_norm", "{\"normalized_ndim\": 2, \"eps\": 1e-5}", run_ln2,
         3, IN(3, 2, 3, 4), NONE, IN(2, 3, 4)),
    CASE("layer_norm_whole_tensor", "layer_norm", "{\"normalized_ndim\": 3, \"eps\": 1e-3}",
         run_ln3, 3, IN(3, 2, 3, 4), IN(3, 2, 3, 4), IN(3, 2, 3, 4)),
    {0},
};
