/* trainctl: train (a classifier on CSV data, over RPC: TrainStep per batch, Forward to
 * evaluate). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trainctl.h"

#define EVAL_BATCH 512

typedef struct trainer {
  tc_ctx *ctx;
  const char *sid;
  const tc_dataset *data;
  int64_t shape[9]; /* [batch, input shape...] */
  size_t ndim;
  float *x;   /* one batch of inputs, [batch_cap, features] */
  int64_t *y; /* one batch of labels */
} trainer;

/* splitmix64: a small seeded generator, enough for shuffling. */
static uint64_t next_random(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void shuffle(int64_t *idx, int64_t n, uint64_t *rng) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(next_random(rng) % (uint64_t)(i + 1)), t = idx[i];
    idx[i] = idx[j], idx[j] = t;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copies rows idx[0..n) into t->x / t->y; fills the input and target tensors. */
static void gather(trainer *t, const int64_t *idx, int64_t n, Traind__V1__Tensor *input,
                   Traind__V1__Tensor *target) {
  int64_t f = t->data->features;
  for (int64_t i = 0; i < n; i++) {
    memcpy(t->x + i * f, t->data->x + idx[i] * f, (size_t)f * sizeof(float));
    t->y[i] = t->data->y[idx[i]];
  }
  t->shape[0] = n;
  traind_tensor_view(input, TRAIND__V1__DTYPE__FLOAT32, t->ndim, t->shape, t->x,
                     (size_t)(n * f) * sizeof(float));
  if (target)
    traind_tensor_view(target, TRAIND__V1__DTYPE__INT64, 1, t->shape, t->y,
                       (size_t)n * sizeof(int64_t));
}

/* Correct argmax predictions of logits [n, C] for t->y; -1 if the output is not that. */
static int64_t count_correct(const trainer *t, const Traind__V1__Tensor *out, int64_t n) {
  if (!out || out->dtype != TRAIND__V1__DTYPE__FLOAT32 || out->n_shape != 2 || out->shape[0] != n ||
      out->shape[1] < 1 || out->data.len != (size_t)(n * out->shape[1]) * sizeof(float))
    return -1;
  int64_t classes = out->shape[1], correct = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t best = 0;
    float best_v = -INFINITY, v;
    for (int64_t c = 0; c < classes; c++) { /* bytes may be unaligned: memcpy each value */
      memcpy(&v, out->data.data + (size_t)(i * classes + c) * sizeof(float), sizeof v);
      if (c == 0 || v > best_v) best_v = v, best = c;
    }
    correct += best == t->y[i];
  }
  return correct;
}

static int bad_output(trainer *t, const char *what) {
  return tc_fail(t->ctx, TC_EXIT_FAILURE,
                 "%s: the model's output is not logits [batch, classes] (float32); train "
                 "needs a classifier",
                 what);
}

/* Accuracy of the rows idx[0..n) in eval mode (then back to train mode). */
static int evaluate(trainer *t, const int64_t *idx, int64_t n, int64_t *correct) {
  traind_status st = traind_set_training(t->ctx->client, t->sid, false);
  if (st.code) return tc_rpc_error(t->ctx, "SetTraining", &st);
  *correct = 0;
  for (int64_t b = 0; b < n; b += EVAL_BATCH) {
    int64_t m = n - b < EVAL_BATCH ? n - b : EVAL_BATCH;
    Traind__V1__ForwardRequest req = TRAIND__V1__FORWARD_REQUEST__INIT;
    Traind__V1__Tensor input;
    gather(t, idx + b, m, &input, NULL);
    req.session_id = (char *)t->sid;
    req.input = &input;
    Traind__V1__ForwardResponse *resp;
    if ((st = traind_forward(t->ctx->client, &req, &resp)).code)
      return tc_rpc_error(t->ctx, "Forward", &st);
    int64_t c = count_correct(t, resp->output, m);
    traind_message_free(resp);
    if (c < 0) return bad_output(t, "Forward");
    *correct += c;
  }
  if ((st = traind_set_training(t->ctx->client, t->sid, true)).code)
    return tc_rpc_error(t->ctx, "SetTraining", &st);
  return 0;
}

static void progress(int epoch, int64_t epochs, int64_t done, int64_t total, double loss) {
  const int width = 30;
  int filled = (int)(width * done / (total ? total : 1));
  fprintf(stderr, "\r\033[Kepoch %d/%lld [%.*s%*s] %lld/%lld loss %.4f", epoch, (long long)epochs,
          filled, "##############################", width - filled, "", (long long)done,
          (long long)total, loss);
  fflush(stderr);
}

/* One pass over the training rows; prints the epoch's line. */
static int run_epoch(trainer *t, int epoch, int64_t epochs, int64_t *train_idx, int64_t n_train,
                     int64_t batch, uint64_t *rng, bool tty, double *mean_loss, double *accuracy) {
  shuffle(train_idx, n_train, rng);
  double loss_sum = 0, last_draw = 0;
  int64_t correct = 0;
  for (int64_t b = 0; b < n_train; b += batch) {
    int64_t m = n_train - b < batch ? n_train - b : batch;
    Traind__V1__TrainStepRequest req = TRAIND__V1__TRAIN_STEP_REQUEST__INIT;
    Traind__V1__LossSpec loss = TRAIND__V1__LOSS_SPEC__INIT;
    Traind__V1__Tensor input, target;
    gather(t, train_idx + b, m, &input, &target);
    loss.has_kind = true;
    loss.kind = TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY;
    req.session_id = (char *)t->sid;
    req.input = &input;
    req.target = &target;
    req.loss = &loss;
    req.has_return_output = req.return_output = true; /* for the running accuracy */
    Traind__V1__TrainStepResponse *resp;
    traind_status st = traind_train_step(t->ctx->client, &req, &resp);
    if (st.code) {
      if (tty) fprintf(stderr, "\n");
      return tc_rpc_error(t->ctx, "TrainStep", &st);
    }
    int64_t c = count_correct(t, resp->output, m);
    loss_sum += (double)resp->loss * (double)m;
    traind_message_free(resp);
    if (c < 0) return bad_output(t, "TrainStep");
    correct += c;
    if (tty && (now_s() - last_draw > 0.05 || b + m == n_train)) {
      progress(epoch, epochs, b + m, n_train, loss_sum / (double)(b + m));
      last_draw = now_s();
    }
  }
  if (tty) fprintf(stderr, "\r\033[K");
  *mean_loss = loss_sum / (double)n_train;
  *accuracy = 100.0 * (double)correct / (double)n_train;
  return 0;
}

/* --input-shape "1,8,8" into t->shape[1..]; its product must be the feature count. */
static int parse_input_shape(trainer *t, const char *s) {
  t->ndim = 2;
  t->shape[1] = t->data->features;
  if (!s) return 0;
  t->ndim = 1;
  int64_t product = 1;
  const char *p = s;
  for (;;) {
    char *end;
    long long d = strtoll(p, &end, 10);
    if (end == p || d <= 0 || t->ndim >= 9)
      return tc_usage_error(t->ctx,
                            "--input-shape: expected up to 8 positive integers "
                            "separated by commas, got '%s'",
                            s);
    t->shape[t->ndim++] = d;
    product *= d;
    if (product > t->data->features) break;
    if (!*end) break;
    if (*end != ',')
      return tc_usage_error(t->ctx, "--input-shape: unexpected '%c' in '%s'", *end, s);
    p = end + 1;
  }
  if (product != t->data->features)
    return tc_usage_error(t->ctx, "--input-shape %s does not hold the %lld features of each row", s,
                          (long long)t->data->features);
  return 0;
}

static const tc_option train_options[] = {
    {"spec", 0, true, "FILE.json", "the model (as for create); required"},
    {"data", 0, true, "FILE.csv", "rows of features then an integer label; required"},
    {"epochs", 0, true, "N", "passes over the training rows (default 10)"},
    {"batch-size", 0, true, "N", "rows per TrainStep (default 32)"},
    {"lr", 0, true, "LR", "learning rate (alone: SGD with this lr)"},
    {"optimizer", 0, true, "JSON|FILE|NAME", "the optimizer (replaces the spec's)"},
    {"val-split", 0, true, "F", "fraction of rows held out for validation (default 0.2)"},
    {"seed", 0, true, "N", "seeds the weights, the split and the shuffling (default 0)"},
    {"scale", 0, true, "F", "multiply every feature by F (e.g. 0.0625 for 0-16 pixels)"},
    {"input-shape", 0, true, "D1,D2,..", "one row's shape, e.g. 1,8,8 for a CNN (default: flat)"},
    {"name", 0, true, "NAME", "the session's name"},
    {"output", 'o', true, "FILE", "save the trained model there (safetensors)"},
    {"keep", 0, false, NULL, "keep the session open (its id is printed) instead of closing it"},
    {NULL, 0, false, NULL, NULL},
};

typedef struct train_args {
  int64_t epochs, batch;
  double val_split, scale;
  uint64_t seed;
} train_args;

static int train_loop(trainer *t, const train_args *a, int64_t *order) {
  tc_ctx *ctx = t->ctx;
  int64_t n = t->data->n, n_val = (int64_t)llround((double)n * a->val_split);
  if (a->val_split > 0 && n_val == 0) n_val = 1;
  if (n_val >= n)
    return tc_usage_error(ctx, "--val-split %g leaves no training rows of %lld", a->val_split,
                          (long long)n);
  int64_t *val_idx = order, *train_idx = order + n_val, n_train = n - n_val;
  printf("data: %lld rows, %lld features, %lld classes; %lld for training, %lld held out\n",
         (long long)n, (long long)t->data->features, (long long)t->data->classes,
         (long long)n_train, (long long)n_val);
  fflush(stdout);
  bool tty = isatty(STDERR_FILENO);
  uint64_t rng = a->seed ^ 0x5eed5eed5eedull;
  double t0 = now_s();
  for (int epoch = 1; epoch <= a->epochs; epoch++) {
    double e0 = now_s(), loss = 0, acc = 0;
    int code = run_epoch(t, epoch, a->epochs, train_idx, n_train, a->batch, &rng, tty, &loss, &acc);
    if (code) return code;
    printf("epoch %d/%lld: loss %.4f, accuracy %.2f%%", epoch, (long long)a->epochs, loss, acc);
    if (n_val) {
      int64_t correct;
      if ((code = evaluate(t, val_idx, n_val, &correct))) return code;
      printf(", val accuracy %.2f%%", 100.0 * (double)correct / (double)n_val);
    }
    printf(" (%.2f s)\n", now_s() - e0);
    fflush(stdout);
  }
  double elapsed = now_s() - t0;
  int64_t correct;
  const int64_t *idx = n_val ? val_idx : train_idx;
  int64_t m = n_val ? n_val : n_train;
  int code = evaluate(t, idx, m, &correct);
  if (code) return code;
  printf("final accuracy: %.2f%% (%lld/%lld %s rows), trained in %.2f s\n",
         100.0 * (double)correct / (double)m, (long long)correct, (long long)m,
         n_val ? "held-out" : "training", elapsed);
  return 0;
}

static int run_train(tc_ctx *ctx) {
  train_args a = {.epochs = 10, .batch = 32, .val_split = 0.2, .scale = 1};
  int64_t seed = 0;
  const char *data_path = tc_opt(ctx, "data");
  if (!data_path) return tc_usage_error(ctx, "missing --data FILE.csv (the training data)");
  if (!tc_opt_int(ctx, "epochs", 1, 1000000, &a.epochs) ||
      !tc_opt_int(ctx, "batch-size", 1, 1 << 24, &a.batch) ||
      !tc_opt_int(ctx, "seed", 0, INT64_MAX, &seed) ||
      !tc_opt_double(ctx, "val-split", 0, 0.99, &a.val_split) ||
      !tc_opt_double(ctx, "scale", -1e30, 1e30, &a.scale))
    return TC_EXIT_USAGE;
  a.seed = (uint64_t)seed;
  Traind__V1__CreateModelRequest *req;
  int code = tc_build_request(ctx, &req);
  if (code) return code;
  if (!req->optimizer) {
    traind_message_free(req);
    return tc_usage_error(ctx, "no optimizer: give --lr, --optimizer, or \"optimizer\" in the "
                               "spec ({\"model\": ..., \"optimizer\": ...})");
  }
  tc_dataset data;
  if ((code = tc_load_csv(ctx, data_path, &data))) {
    traind_message_free(req);
    return code;
  }
  for (int64_t i = 0; a.scale != 1 && i < data.n * data.features; i++)
    data.x[i] *= (float)a.scale;

  trainer t = {.ctx = ctx, .data = &data};
  int64_t cap = a.batch > EVAL_BATCH ? a.batch : EVAL_BATCH;
  if (cap > data.n) cap = data.n;
  int64_t *order = malloc((size_t)data.n * sizeof *order);
  t.x = malloc((size_t)(cap * data.features) * sizeof(float));
  t.y = malloc((size_t)cap * sizeof(int64_t));
  Traind__V1__CreateModelResponse *created = NULL;
  if (!order || !t.x || !t.y) code = tc_fail(ctx, TC_EXIT_FAILURE, "out of memory");
  if (!code) code = parse_input_shape(&t, tc_opt(ctx, "input-shape"));
  if (!code) code = tc_connect(ctx);
  if (!code) {
    traind_status st = traind_create_model(ctx->client, req, &created);
    if (st.code) code = tc_rpc_error(ctx, "CreateModel", &st);
  }
  if (!code) {
    t.sid = created->session_id;
    for (int64_t i = 0; i < data.n; i++)
      order[i] = i;
    uint64_t rng = a.seed;
    shuffle(order, data.n, &rng);
    code = train_loop(&t, &a, order);
  }
  const char *out = tc_opt(ctx, "output");
  if (!code && out) {
    size_t len;
    traind_status st = traind_state_dict_to_file(ctx->client, t.sid, false, out, &len);
    if (st.code)
      code = tc_rpc_error(ctx, "StateDict", &st);
    else
      printf("wrote %s (%zu bytes)\n", out, len);
  }
  if (t.sid && tc_flag(ctx, "keep")) {
    printf("session: %s\n", t.sid);
  } else if (t.sid) {
    traind_status st = traind_close_session(ctx->client, t.sid);
    if (st.code && !code) code = tc_rpc_error(ctx, "CloseSession", &st);
    traind_status_clear(&st);
  }
  traind_message_free(created);
  traind_message_free(req);
  free(order);
  free(t.x);
  free(t.y);
  tc_dataset_free(&data);
  return code;
}

const tc_command tc_cmd_train = {
    .name = "train",
    .args = "--spec FILE.json --data FILE.csv [options]",
    .min_pos = 0,
    .max_pos = 0,
    .summary = "train a classifier on CSV data and report its accuracy",
    .help =
        "Creates a session from the spec, holds out --val-split of the rows (a seeded shuffle),\n"
        "and trains with cross-entropy: one TrainStep per batch of shuffled rows. Each epoch\n"
        "prints its mean loss and training accuracy, and the held-out accuracy (a Forward in\n"
        "eval mode); a progress bar is drawn on stderr when it is a terminal. Ends with the\n"
        "final held-out accuracy, then closes the session (unless --keep). E.g. the digits:\n"
        "  trainctl train --spec clients/c/examples/digits_mlp.json --data tests/data/digits.csv\n"
        "      --scale 0.0625 --epochs 20",
    .opts = train_options,
    .run = run_train,
};
