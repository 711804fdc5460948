/* train_digits_rpc.c - libtraind-client end to end: an MLP learns the digits over RPC.
 *
 * usage: train_digits_rpc DIGITS.csv [EPOCHS] [CHECKPOINT.safetensors]
 * The server is $TRAIND_SERVER (default 127.0.0.1:50051).
 *
 * Builds Linear(64,128)-ReLU-Linear(128,10) with SGD (lr 0.1, momentum 0.9) as protoc-c
 * messages, holds out a shuffled 20% of tests/data/digits.csv, trains with one TrainStep
 * per batch of 32, reports the held-out accuracy (Forward in eval mode) and optionally
 * downloads the checkpoint (which PyTorch loads with strict=True).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind_client.h"

#define FEATURES 64
#define CLASSES 10
#define MAX_ROWS 4096
#define BATCH 32

static float xs[MAX_ROWS][FEATURES];
static int64_t ys[MAX_ROWS];

/* The digits CSV: a header, then 64 pixels (0-16) and a label per row. */
static int load_digits(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[2048];
  int n = 0;
  if (!fgets(line, sizeof line, f)) n = -1;
  while (n >= 0 && n < MAX_ROWS && fgets(line, sizeof line, f)) {
    char *p = line;
    for (int j = 0; j <= FEATURES; j++, p++) {
      long v = strtol(p, &p, 10);
      if (j < FEATURES)
        xs[n][j] = (float)v / 16.0f;
      else
        ys[n] = v;
    }
    n++;
  }
  fclose(f);
  return n;
}

static int fail(const char *what, traind_status *st) {
  fprintf(stderr, "train_digits_rpc: %s: %s: %s\n", what, traind_code_name(st->code),
          st->message ? st->message : "");
  traind_status_clear(st);
  return 1;
}

/* Fills input [n, 64] and target [n] from rows idx[0..n) (buffers are static). */
static void batch(const int *idx, int n, Traind__V1__Tensor *input, Traind__V1__Tensor *target) {
  static float bx[MAX_ROWS][FEATURES];
  static int64_t by[MAX_ROWS], xshape[2], yshape[1];
  for (int i = 0; i < n; i++) {
    memcpy(bx[i], xs[idx[i]], sizeof bx[i]);
    by[i] = ys[idx[i]];
  }
  xshape[0] = yshape[0] = n, xshape[1] = FEATURES;
  traind_tensor_view(input, TRAIND__V1__DTYPE__FLOAT32, 2, xshape, bx, sizeof bx[0] * n);
  traind_tensor_view(target, TRAIND__V1__DTYPE__INT64, 1, yshape, by, sizeof by[0] * n);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: train_digits_rpc DIGITS.csv [EPOCHS] [CHECKPOINT.safetensors]\n");
    return 2;
  }
  int epochs = argc > 2 ? atoi(argv[2]) : 30, n = load_digits(argv[1]);
  if (n <= 0) {
    fprintf(stderr, "train_digits_rpc: cannot read %s\n", argv[1]);
    return 1;
  }
  int order[MAX_ROWS];
  srand(0);
  for (int i = 0; i < n; i++)
    order[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = rand() % (i + 1), t = order[i];
    order[i] = order[j], order[j] = t;
  }
  int n_test = n / 5, n_train = n - n_test, *test = order, *train = order + n_test;

  /* The model: Sequential(Linear(64, 128), ReLU(), Linear(128, 10)). */
  Traind__V1__Linear l1 = TRAIND__V1__LINEAR__INIT, l2 = TRAIND__V1__LINEAR__INIT;
  l1.has_in_features = l1.has_out_features = l2.has_in_features = l2.has_out_features = 1;
  l1.in_features = FEATURES, l1.out_features = 128, l2.in_features = 128, l2.out_features = 10;
  Traind__V1__ReLU relu = TRAIND__V1__RE_LU__INIT;
  Traind__V1__Module m[3] = {TRAIND__V1__MODULE__INIT, TRAIND__V1__MODULE__INIT,
                             TRAIND__V1__MODULE__INIT};
  m[0].kind_case = TRAIND__V1__MODULE__KIND_LINEAR, m[0].linear = &l1;
  m[1].kind_case = TRAIND__V1__MODULE__KIND_RELU, m[1].relu = &relu;
  m[2].kind_case = TRAIND__V1__MODULE__KIND_LINEAR, m[2].linear = &l2;
  Traind__V1__Module *children[] = {&m[0], &m[1], &m[2]};
  Traind__V1__Sequential seq = TRAIND__V1__SEQUENTIAL__INIT;
  seq.n_modules = 3, seq.modules = children;
  Traind__V1__Module model = TRAIND__V1__MODULE__INIT;
  model.kind_case = TRAIND__V1__MODULE__KIND_SEQUENTIAL, model.sequential = &seq;
  /* SGD(lr=0.1, momentum=0.9). */
  Traind__V1__SGD sgd = TRAIND__V1__SGD__INIT;
  sgd.has_lr = sgd.has_momentum = 1, sgd.lr = 0.1, sgd.momentum = 0.9;
  Traind__V1__OptimizerSpec opt = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD, opt.sgd = &sgd;
  Traind__V1__CreateModelRequest create = TRAIND__V1__CREATE_MODEL_REQUEST__INIT;
  create.model = &model, create.optimizer = &opt, create.name = "digits-mlp-c";

  traind_client_options o;
  traind_client_options_init(&o);
  o.target = getenv("TRAIND_SERVER"); /* NULL: the default */
  o.timeout_ms = 30000;
  traind_client *c;
  Traind__V1__CreateModelResponse *created;
  traind_status st = traind_connect(&o, &c);
  if (st.code) return fail("connect", &st);
  if ((st = traind_create_model(c, &create, &created)).code) {
    traind_client_close(c);
    return fail("CreateModel", &st);
  }
  const char *sid = created->session_id;
  printf("session %s: %d training rows, %d held out\n", sid, n_train, n_test);

  Traind__V1__LossSpec loss = TRAIND__V1__LOSS_SPEC__INIT;
  loss.has_kind = 1, loss.kind = TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY;
  int rc = 0;
  for (int epoch = 1; epoch <= epochs && !rc; epoch++) {
    double loss_sum = 0;
    for (int b = 0; b < n_train && !rc; b += BATCH) {
      int k = n_train - b < BATCH ? n_train - b : BATCH;
      Traind__V1__TrainStepRequest req = TRAIND__V1__TRAIN_STEP_REQUEST__INIT;
      Traind__V1__Tensor input, target;
      batch(train + b, k, &input, &target);
      req.session_id = (char *)sid, req.input = &input, req.target = &target, req.loss = &loss;
      Traind__V1__TrainStepResponse *resp;
      if ((st = traind_train_step(c, &req, &resp)).code)
        rc = fail("TrainStep", &st);
      else
        loss_sum += resp->loss * k;
      traind_message_free(resp);
    }
    if (!rc) printf("epoch %2d: loss %.4f\n", epoch, loss_sum / n_train);
  }

  /* Held-out accuracy: one Forward of the whole test set in eval mode. */
  Traind__V1__ForwardRequest fwd = TRAIND__V1__FORWARD_REQUEST__INIT;
  Traind__V1__Tensor input, target;
  Traind__V1__ForwardResponse *out = NULL;
  batch(test, n_test, &input, &target);
  fwd.session_id = (char *)sid, fwd.input = &input;
  if (!rc && (st = traind_set_training(c, sid, false)).code) rc = fail("SetTraining", &st);
  if (!rc && (st = traind_forward(c, &fwd, &out)).code) rc = fail("Forward", &st);
  if (!rc && (!out->output || out->output->data.len != sizeof(float) * CLASSES * n_test)) {
    fprintf(stderr, "train_digits_rpc: Forward: the output is not [%d, %d]\n", n_test, CLASSES);
    rc = 1;
  }
  if (!rc) {
    int correct = 0;
    for (int i = 0; i < n_test; i++) {
      float row[CLASSES];
      memcpy(row, out->output->data.data + sizeof row * i, sizeof row);
      int best = 0;
      for (int j = 1; j < CLASSES; j++)
        if (row[j] > row[best]) best = j;
      correct += best == ys[test[i]];
    }
    printf("test accuracy: %.2f%% (%d/%d)\n", 100.0 * correct / n_test, correct, n_test);
  }
  traind_message_free(out);
  if (!rc && argc > 3) {
    if ((st = traind_state_dict_to_file(c, sid, false, argv[3], NULL)).code)
      rc = fail("StateDict", &st);
    else
      printf("checkpoint: %s\n", argv[3]);
  }
  if ((st = traind_close_session(c, sid)).code && !rc) rc = fail("CloseSession", &st);
  traind_status_clear(&st);
  traind_message_free(created);
  traind_client_close(c);
  return rc;
}
