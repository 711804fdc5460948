/* train_digits.c - the engine end to end: an MLP learns handwritten digits.
 *
 * usage: train_digits DIGITS.csv [EPOCHS] [OUTDIR]
 *
 * Reads the 1797 8x8 digits (tests/data/digits.csv), holds out a shuffled
 * 20% as the test set, and trains Linear(64,128)-ReLU-Linear(128,10) with
 * SGD (lr 0.1, momentum 0.9), batch 32, the way MegEngine's training loop
 * reads:
 *
 *     with gm: loss = cross_entropy(model(x), y); gm.backward(loss)
 *     opt.step().clear_grad()
 *
 * Prints per-epoch loss and accuracy and the final test accuracy. With OUTDIR,
 * saves the model as OUTDIR/digits_mlp.safetensors (a checkpoint PyTorch
 * loads with strict=True) and the held-out set with our logits as
 * OUTDIR/digits_test.safetensors, for verify_in_torch.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "functional/functional.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "module/layers.h"
#include "optimizer/optimizer.h"

#define FEATURES 64
#define CLASSES 10
#define MAX_ROWS 4096

typedef struct dataset {
  float x[MAX_ROWS][FEATURES];
  int64_t y[MAX_ROWS];
  int n;
} dataset;

/* Reads the CSV: a header line, then 64 pixel values (0-16) and a label. */
static int load_csv(const char *path, dataset *d) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "train_digits: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  char line[2048];
  if (!fgets(line, sizeof line, f)) goto bad;
  d->n = 0;
  while (fgets(line, sizeof line, f) && d->n < MAX_ROWS) {
    char *p = line, *end;
    for (int j = 0; j <= FEATURES; j++) {
      long v = strtol(p, &end, 10);
      if (end == p || v < 0 || (j < FEATURES && v > 16) || (j == FEATURES && v >= CLASSES))
        goto bad;
      if (j < FEATURES)
        d->x[d->n][j] = (float)v / 16.0f;
      else
        d->y[d->n] = v;
      p = end + (*end == ',');
    }
    d->n++;
  }
  fclose(f);
  return d->n > 0 ? 0 : -1;
bad:
  fprintf(stderr, "train_digits: %s line %d is not 64 pixels (0-16) and a label (0-9)\n", path,
          d->n + 2);
  fclose(f);
  return -1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Copies rows idx[0..n) of d into new tensors x [n,64] and y [n]. */
static td_status gather(const dataset *d, const int *idx, int n, td_tensor **x, td_tensor **y) {
  int64_t xs[] = {n, FEATURES}, ys[] = {n};
  td_status st = td_tensor_empty(TD_FLOAT32, 2, xs, x);
  if (!st) st = td_tensor_empty(TD_INT64, 1, ys, y);
  if (st) {
    TD_RELEASE(*x);
    return st;
  }
  for (int i = 0; i < n; i++) {
    memcpy(td_tensor_f32(*x) + (size_t)i * FEATURES, d->x[idx[i]], sizeof d->x[0]);
    td_tensor_i64(*y)[i] = d->y[idx[i]];
  }
  return TD_OK;
}

/* Correct predictions among logits [n, C] for labels y. */
static int count_correct(const td_tensor *logits, const td_tensor *y) {
  int correct = 0;
  for (int64_t i = 0; i < logits->shape[0]; i++) {
    const float *row = td_tensor_f32(logits) + i * CLASSES;
    int best = 0;
    for (int c = 1; c < CLASSES; c++)
      if (row[c] > row[best]) best = c;
    correct += best == td_tensor_i64(y)[i];
  }
  return correct;
}

/* The checkpoint, and the test set with our logits for the PyTorch check. */
static td_status save_outputs(const char *dir, const td_module *model, td_tensor *x, td_tensor *y,
                              td_tensor *logits) {
  char path[4096];
  snprintf(path, sizeof path, "%s/digits_mlp.safetensors", dir);
  td_status st = td_checkpoint_save(model, NULL, path);
  if (st) return st;
  printf("checkpoint: %s\n", path);
  td_tensor_map test;
  td_tensor_map_init(&test);
  st = td_tensor_map_put(&test, "x", x);
  if (!st) st = td_tensor_map_put(&test, "y", y);
  if (!st) st = td_tensor_map_put(&test, "logits", logits);
  snprintf(path, sizeof path, "%s/digits_test.safetensors", dir);
  if (!st) st = td_safetensors_write_file(&test, path);
  td_tensor_map_free(&test);
  return st;
}

static td_status build_model(td_rng *rng, td_module **out) {
  td_module *seq = NULL, *m = NULL;
  td_linear_config l1 = {.in_features = FEATURES, .out_features = 128};
  td_linear_config l2 = {.in_features = 128, .out_features = CLASSES};
  td_status st = td_module_sequential(&seq);
  if (!st) st = td_module_linear(&l1, rng, &m);
  if (!st) st = td_sequential_append(seq, NULL, m);
  if (!st) st = td_module_relu(&m);
  if (!st) st = td_sequential_append(seq, NULL, m);
  if (!st) st = td_module_linear(&l2, rng, &m);
  if (!st) st = td_sequential_append(seq, NULL, m);
  if (st) {
    td_module_destroy(seq);
    return st;
  }
  *out = seq;
  return TD_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: train_digits DIGITS.csv [EPOCHS] [OUTDIR]\n");
    return 2;
  }
  int epochs = argc > 2 ? atoi(argv[2]) : 30;
  const char *outdir = argc > 3 ? argv[3] : NULL;
  static dataset d;
  if (load_csv(argv[1], &d)) return 1;

  td_rng rng;
  td_rng_seed(&rng, 0);
  int *order = malloc(sizeof(int) * (size_t)d.n);
  if (!order) return 1;
  for (int i = 0; i < d.n; i++) order[i] = i;
  for (int i = d.n - 1; i > 0; i--) { /* Fisher-Yates */
    int j = (int)(td_rng_next_u64(&rng) % (uint64_t)(i + 1)), t = order[i];
    order[i] = order[j], order[j] = t;
  }
  int n_test = d.n / 5, n_train = d.n - n_test;
  int *train_idx = order + n_test, *test_idx = order;
  printf("digits: %d images, %d for training, %d held out for testing\n", d.n, n_train, n_test);

  td_module *model = NULL;
  td_grad_manager *gm = NULL;
  td_optimizer *opt = NULL;
  td_tensor **params = NULL, *x = NULL, *y = NULL, *logits = NULL, *loss = NULL;
  int n_params = 0;
  td_optim_config cfg = td_optim_defaults(TD_OPTIM_SGD);
  cfg.sgd.lr = 0.1, cfg.sgd.momentum = 0.9;
  td_status st = build_model(&rng, &model);
  if (!st) st = td_module_parameters(model, &params, &n_params);
  if (!st) st = td_optimizer_create(&cfg, params, n_params, &opt);
  if (!st) st = td_gm_create(&gm);
  if (!st) st = td_module_attach(model, gm);

  const int batch = 32;
  double train_time = 0;
  for (int epoch = 1; epoch <= epochs && !st; epoch++) {
    for (int i = n_train - 1; i > 0; i--) { /* reshuffle each epoch */
      int j = (int)(td_rng_next_u64(&rng) % (uint64_t)(i + 1)), t = train_idx[i];
      train_idx[i] = train_idx[j], train_idx[j] = t;
    }
    double t0 = now_s(), loss_sum = 0;
    int correct = 0;
    for (int b = 0; b < n_train && !st; b += batch) {
      int n = b + batch <= n_train ? batch : n_train - b;
      st = gather(&d, train_idx + b, n, &x, &y);
      if (!st) st = td_gm_record(gm);
      if (!st) st = td_module_forward(model, x, &logits);
      if (!st) st = td_cross_entropy(logits, y, TD_REDUCTION_MEAN, 0.0f, &loss);
      if (!st) st = td_gm_backward(gm, loss, NULL);
      if (!st) st = td_optimizer_step(opt);
      td_optimizer_clear_grad(opt);
      if (!st) {
        loss_sum += td_tensor_f32(loss)[0] * n;
        correct += count_correct(logits, y);
      }
      TD_RELEASE(x), TD_RELEASE(y), TD_RELEASE(logits), TD_RELEASE(loss);
    }
    train_time += now_s() - t0;
    if (!st && (epoch == 1 || epoch % 5 == 0 || epoch == epochs))
      printf("epoch %2d  loss %.4f  train accuracy %5.1f%%  (%.2f s training so far)\n", epoch,
             loss_sum / n_train, 100.0 * correct / n_train, train_time);
  }

  if (!st) {
    td_module_eval(model);
    st = gather(&d, test_idx, n_test, &x, &y);
    if (!st) st = td_module_forward(model, x, &logits);
    if (!st)
      printf("test accuracy: %.2f%% (%d/%d) after %d epochs, %.2f s of training\n",
             100.0 * count_correct(logits, y) / n_test, count_correct(logits, y), n_test, epochs,
             train_time);
  }
  if (!st && outdir) st = save_outputs(outdir, model, x, y, logits);
  if (st) fprintf(stderr, "train_digits: %s: %s\n", td_status_name(st), td_error_message());
  td_tensor_release(x);
  td_tensor_release(y);
  td_tensor_release(logits);
  td_tensor_release(loss);
  td_optimizer_destroy(opt);
  td_gm_destroy(gm);
  td_module_destroy(model);
  td_free(params);
  free(order);
  return st ? 1 : 0;
}
