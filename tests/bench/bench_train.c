/* bench_train.c - one full training step of a test model, timed.
 *
 * usage: bench_train WORKLOAD THREADS [BUDGET_SECONDS]
 *
 * The step is what ../shared/anchors/torch_bench.py times for PyTorch:
 * clear_grad, forward, cross-entropy, backward, SGD (lr 0.01, momentum 0.9)
 * step, on one fixed random batch. 20 warm-up steps, then between 30 and 200
 * timed steps (as many as fit the budget); then an eval-mode forward. Prints
 * one JSON object: medians and percentiles in ms, and the process's peak
 * resident memory (ru_maxrss) in MiB, with the peak before the model was
 * built as the baseline (training memory = peak - baseline). bench_train.py runs it per workload
 * and thread count, beside PyTorch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>

#include "autodiff/grad_manager.h"
#include "common/models.h"
#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/functional.h"
#include "optimizer/optimizer.h"

#define WARMUP 20
#define MIN_STEPS 30
#define MAX_STEPS 200

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(double *xs, int n, double p) {
  double k = (n - 1) * p / 100.0;
  int lo = (int)k, hi = lo + 1 < n ? lo + 1 : n - 1;
  return xs[lo] + (xs[hi] - xs[lo]) * (k - lo);
}

typedef struct bench {
  td_module *model;
  td_grad_manager *gm;
  td_optimizer *opt;
  td_tensor *x, *y;
} bench;

static td_status train_step(bench *b) {
  td_tensor *logits = NULL, *loss = NULL;
  td_optimizer_clear_grad(b->opt);
  td_status st = td_gm_record(b->gm);
  if (!st) st = td_module_forward(b->model, b->x, &logits);
  if (!st) st = td_cross_entropy(logits, b->y, TD_REDUCTION_MEAN, 0.0f, &loss);
  td_gm_pause(b->gm);
  if (!st) st = td_gm_backward(b->gm, loss, NULL);
  if (!st) st = td_optimizer_step(b->opt);
  td_gm_release(b->gm);
  td_tensor_release(logits);
  td_tensor_release(loss);
  return st;
}

static td_status eval_step(bench *b) {
  td_tensor *logits = NULL;
  td_status st = td_module_forward(b->model, b->x, &logits);
  td_tensor_release(logits);
  return st;
}

/* Times fn like torch_bench.time_loop: warm-up, a step count from the
 * warm-up cost, then median/p10/p90 of the per-step times. */
static td_status time_loop(td_status (*fn)(bench *), bench *b, double budget_s, double *med,
                           double *p10, double *p90, int *steps) {
  td_status st;
  for (int i = 0; i < WARMUP; i++)
    if ((st = fn(b))) return st;
  double t0 = now_ms();
  for (int i = 0; i < 5; i++)
    if ((st = fn(b))) return st;
  double est = (now_ms() - t0) / 5;
  int n = (int)(budget_s * 1e3 / (est > 1e-6 ? est : 1e-6));
  n = n < MIN_STEPS ? MIN_STEPS : n > MAX_STEPS ? MAX_STEPS : n;
  double ts[MAX_STEPS];
  for (int i = 0; i < n; i++) {
    double t = now_ms();
    if ((st = fn(b))) return st;
    ts[i] = now_ms() - t;
  }
  qsort(ts, (size_t)n, sizeof ts[0], cmp_double);
  *med = pct(ts, n, 50), *p10 = pct(ts, n, 10), *p90 = pct(ts, n, 90), *steps = n;
  return TD_OK;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_train WORKLOAD THREADS [BUDGET_SECONDS]\n");
    return 2;
  }
  const char *workload = argv[1];
  int threads = atoi(argv[2]);
  double budget = argc > 3 ? atof(argv[3]) : 10.0;
  td_set_num_threads(threads);
  td_mem_keep_heap(); /* as the daemon does */

  bench b = {0};
  test_model_info info;
  td_rng rng;
  td_tensor **params = NULL;
  int n_params = 0;
  td_optim_config cfg = td_optim_defaults(TD_OPTIM_SGD);
  cfg.sgd.lr = 0.01, cfg.sgd.momentum = 0.9;
  double tm = 0, t10 = 0, t90 = 0, fm = 0, f10 = 0, f90 = 0;
  int tn = 0, fn = 0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double baseline_mib = ru.ru_maxrss / 1024.0; /* before the model exists */
  td_status st = test_model_build(workload, 0, &b.model, &info);
  td_rng_seed(&rng, 0);
  if (!st) st = test_model_batch(&info, &rng, &b.x, &b.y);
  if (!st) st = td_module_parameters(b.model, &params, &n_params);
  if (!st) st = td_gm_create(&b.gm);
  if (!st) st = td_module_attach(b.model, b.gm);
  if (!st) st = td_optimizer_create(&cfg, params, n_params, &b.opt);
  if (!st) st = time_loop(train_step, &b, budget, &tm, &t10, &t90, &tn);
  if (!st) {
    td_module_train(b.model, false);
    st = time_loop(eval_step, &b, budget / 2, &fm, &f10, &f90, &fn);
  }
  getrusage(RUSAGE_SELF, &ru);
  if (st) {
    fprintf(stderr, "bench_train %s: %s: %s\n", workload, td_status_name(st), td_error_message());
  } else {
    printf("{\"workload\": \"%s\", \"threads\": %d, \"params\": %lld, "
           "\"train\": {\"n\": %d, \"median_ms\": %.4f, \"p10_ms\": %.4f, \"p90_ms\": %.4f}, "
           "\"forward\": {\"n\": %d, \"median_ms\": %.4f, \"p10_ms\": %.4f, \"p90_ms\": %.4f}, "
           "\"peak_rss_mib\": %.1f, \"baseline_rss_mib\": %.1f}\n",
           workload, threads, (long long)td_module_num_parameters(b.model), tn, tm, t10, t90, fn,
           fm, f10, f90, ru.ru_maxrss / 1024.0, baseline_mib);
  }
  td_optimizer_destroy(b.opt);
  td_gm_destroy(b.gm);
  td_module_destroy(b.model);
  td_free(params);
  td_tensor_release(b.x);
  td_tensor_release(b.y);
  return st ? 1 : 0;
}
