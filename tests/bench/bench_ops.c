/* bench_ops.c - forward+backward time of linear and conv2d at the benchmark workloads' layers.
 *
 * usage: bench_ops [--threads N] [--layer NAME] [--budget-ms MS] [--cpu-time] [--peak] [--list]
 *
 * The layers are every distinct Linear/Conv2d shape (with its batch size) of
 * the mlp, lenet, cnn_bn and resnet_tiny workloads in
 * /work/shared/anchors/torch_bench.py. One step is what a training step does
 * for the layer: record, forward, backward with a fixed dy (dX only when the
 * layer is not the network's first), then drop the grads. Prints one JSON
 * object per line; tests/bench/bench_ops.py runs PyTorch on the same layers
 * (it reads the table from --list) and prints them side by side.
 * --peak measures cblas_sgemm at n = 512 instead, the ceiling for GFLOP/s.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/functional.h"
#include "tensor/random.h"

typedef struct layer {
  const char *name; /* workload.layer */
  bool conv;
  int64_t x[4]; /* input shape: [N, in] for linear, [N, C, H, W] for conv */
  int64_t w[4]; /* weight: [out, in] / [O, C/g, kh, kw] */
  bool bias;
  bool x_grad; /* false for a network's first layer */
  int stride, padding;
} layer;

#define LIN(name, n, in, out, xg)                                                                  \
  { name, false, {n, in}, {out, in}, true, xg, 1, 0 }
#define CONV(name, n, c, h, o, k, s, p, b, xg)                                                     \
  { name, true, {n, c, h, h}, {o, c, k, k}, b, xg, s, p }

static const layer layers[] = {
    LIN("mlp.fc1", 128, 784, 256, false),
    LIN("mlp.fc2", 128, 256, 128, true),
    LIN("mlp.fc3", 128, 128, 10, true),
    LIN("lenet.fc1", 64, 400, 120, true),
    LIN("lenet.fc2", 64, 120, 84, true),
    LIN("lenet.fc3", 64, 84, 10, true),
    LIN("cnn_bn.fc", 32, 4096, 10, true),
    LIN("resnet_tiny.fc", 32, 64, 10, true),
    CONV("lenet.conv1", 64, 1, 28, 6, 5, 1, 2, true, false),
    CONV("lenet.conv2", 64, 6, 14, 16, 5, 1, 0, true, true),
    CONV("cnn_bn.conv1", 32, 3, 32, 32, 3, 1, 1, true, false),
    CONV("cnn_bn.conv2", 32, 32, 32, 32, 3, 1, 1, true, true),
    CONV("cnn_bn.conv3", 32, 32, 16, 64, 3, 1, 1, true, true),
    CONV("resnet_tiny.stem", 32, 3, 32, 16, 3, 1, 1, false, false),
    CONV("resnet_tiny.layer1.conv", 32, 16, 32, 16, 3, 1, 1, false, true),
    CONV("resnet_tiny.layer2.conv1", 32, 16, 32, 32, 3, 2, 1, false, true),
    CONV("resnet_tiny.layer2.conv2", 32, 32, 16, 32, 3, 1, 1, false, true),
    CONV("resnet_tiny.layer2.shortcut", 32, 16, 32, 32, 1, 2, 0, false, true),
    CONV("resnet_tiny.layer3.conv1", 32, 32, 16, 64, 3, 2, 1, false, true),
    CONV("resnet_tiny.layer3.conv2", 32, 64, 8, 64, 3, 1, 1, false, true),
    CONV("resnet_tiny.layer3.shortcut", 32, 32, 16, 64, 1, 2, 0, false, true),
};
enum { N_LAYERS = sizeof layers / sizeof layers[0] };

/* Wall time, or with --cpu-time the calling thread's CPU time: on a shared
 * machine that is steadier, but it only sees work done on this thread, so it
 * means something with one thread only (OpenBLAS's idle workers, which spin
 * for a while after each call, are left out too). */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(clock_id, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct timing {
  int n;
  double median, p10, p90;
} timing;

typedef int (*step_fn)(void *arg);

/* Warm-up (at least 5 steps and 200 ms), then as many steps as fit in the
 * budget (20 to 2000): median and 10th/90th percentiles. */
static int time_steps(step_fn step, void *arg, double budget_ms, timing *t) {
  enum { MIN_REPS = 20, MAX_REPS = 2000 };
  double t0 = now_ms();
  int warm = 0;
  while (warm < 5 || now_ms() - t0 < 200) {
    if (step(arg)) return -1;
    warm++;
  }
  double est = (now_ms() - t0) / warm;
  int n = (int)(budget_ms / (est > 1e-6 ? est : 1e-6));
  n = n < MIN_REPS ? MIN_REPS : n > MAX_REPS ? MAX_REPS : n;
  double *ts = malloc(sizeof *ts * (size_t)n);
  if (!ts) return -1;
  for (int i = 0; i < n; i++) {
    double s = now_ms();
    if (step(arg)) {
      free(ts);
      return -1;
    }
    ts[i] = now_ms() - s;
  }
  qsort(ts, (size_t)n, sizeof *ts, cmp_double);
  t->n = n;
  t->median = n % 2 ? ts[n / 2] : (ts[n / 2 - 1] + ts[n / 2]) / 2;
  t->p10 = ts[n / 10];
  t->p90 = ts[n * 9 / 10];
  free(ts);
  return 0;
}

/* ---- one layer's training step ----------------------------------------- */

typedef struct layer_state {
  const layer *l;
  td_grad_manager *gm;
  td_tensor *x, *w, *b, *dy;
} layer_state;

static int layer_step(void *arg) {
  layer_state *s = arg;
  td_tensor *y = NULL;
  td_status st = td_gm_record(s->gm);
  if (!st) {
    if (s->l->conv) {
      td_conv2d_params p = {
          {s->l->stride, s->l->stride}, {s->l->padding, s->l->padding}, {1, 1}, 1};
      st = td_conv2d(s->x, s->w, s->b, &p, &y);
    } else {
      st = td_linear(s->x, s->w, s->b, &y);
    }
  }
  if (!st) st = td_gm_backward(s->gm, y, s->dy);
  td_tensor_release(y);
  for (int i = 0; i < td_gm_num_attached(s->gm); i++)
    TD_RELEASE(td_gm_attached(s->gm, i)->grad);
  if (st) fprintf(stderr, "bench_ops: %s: %s\n", s->l->name, td_error_message());
  return st ? -1 : 0;
}

static double layer_flop(const layer *l, const int64_t *yshape) {
  double macs;
  if (l->conv)
    macs = (double)yshape[0] * yshape[1] * yshape[2] * yshape[3] * l->w[1] * l->w[2] * l->w[3];
  else
    macs = (double)l->x[0] * l->w[0] * l->w[1];
  return 2 * macs * (l->x_grad ? 3 : 2); /* forward, dW, and dX unless first */
}

static int bench_layer(const layer *l, int threads, double budget_ms) {
  layer_state s = {l, NULL, NULL, NULL, NULL, NULL};
  td_rng rng;
  td_rng_seed(&rng, 42);
  int xd = l->conv ? 4 : 2, rc = -1;
  int64_t bshape[1] = {l->w[0]};
  td_tensor *y = NULL;
  if (td_gm_create(&s.gm) || td_tensor_rand_normal(&rng, xd, l->x, 0, 1, &s.x) ||
      td_tensor_rand_normal(&rng, xd, l->w, 0, 0.1f, &s.w) ||
      (l->bias && td_tensor_rand_normal(&rng, 1, bshape, 0, 0.1f, &s.b)))
    goto done;
  if (td_gm_attach(s.gm, s.w) || (s.b && td_gm_attach(s.gm, s.b)) ||
      (l->x_grad && td_gm_attach(s.gm, s.x)))
    goto done;
  /* The output shape, for dy and the FLOP count. */
  if (l->conv) {
    td_conv2d_params p = {{l->stride, l->stride}, {l->padding, l->padding}, {1, 1}, 1};
    if (td_conv2d(s.x, s.w, s.b, &p, &y)) goto done;
  } else if (td_linear(s.x, s.w, s.b, &y)) {
    goto done;
  }
  if (td_tensor_rand_normal(&rng, y->ndim, y->shape, 0, 1, &s.dy)) goto done;
  timing t;
  if (time_steps(layer_step, &s, budget_ms, &t)) goto done;
  double flop = layer_flop(l, y->shape);
  printf("{\"name\": \"%s\", \"op\": \"%s\", \"threads\": %d, \"n\": %d, \"median_ms\": %.5f, "
         "\"p10_ms\": %.5f, \"p90_ms\": %.5f, \"gflop\": %.6f, \"gflops\": %.3f}\n",
         l->name, l->conv ? "conv2d" : "linear", threads, t.n, t.median, t.p10, t.p90, flop / 1e9,
         flop / (t.median * 1e6));
  fflush(stdout);
  rc = 0;
done:
  if (rc) fprintf(stderr, "bench_ops: %s failed: %s\n", l->name, td_error_message());
  td_tensor_release(y);
  td_tensor_release(s.x);
  td_tensor_release(s.w);
  td_tensor_release(s.b);
  td_tensor_release(s.dy);
  td_gm_destroy(s.gm);
  return rc;
}

/* ---- sgemm peak ---------------------------------------------------------- */

typedef struct gemm_state {
  int n;
  float *a, *b, *c;
} gemm_state;

static int gemm_step(void *arg) {
  gemm_state *g = arg;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b,
              g->n, 0.0f, g->c, g->n);
  return 0;
}

static int bench_peak(int threads, double budget_ms) {
  gemm_state g = {512, NULL, NULL, NULL};
  size_t nn = (size_t)g.n * g.n;
  g.a = malloc(nn * sizeof(float)), g.b = malloc(nn * sizeof(float));
  g.c = malloc(nn * sizeof(float));
  if (!g.a || !g.b || !g.c) return -1;
  for (size_t i = 0; i < nn; i++)
    g.a[i] = (float)(i % 7) * 0.1f, g.b[i] = (float)(i % 5) * 0.1f;
  timing t;
  int rc = time_steps(gemm_step, &g, budget_ms, &t);
  if (!rc) {
    double flop = 2.0 * g.n * g.n * g.n;
    printf("{\"name\": \"sgemm_peak\", \"op\": \"sgemm\", \"threads\": %d, \"n\": %d, "
           "\"median_ms\": %.5f, \"p10_ms\": %.5f, \"p90_ms\": %.5f, \"gflop\": %.6f, "
           "\"gflops\": %.3f}\n",
           threads, t.n, t.median, t.p10, t.p90, flop / 1e9, flop / (t.median * 1e6));
  }
  free(g.a), free(g.b), free(g.c);
  return rc;
}

/* The layer table as JSON, so the PyTorch side builds the same layers. */
static void list_layers(void) {
  printf("[\n");
  for (int i = 0; i < N_LAYERS; i++) {
    const layer *l = &layers[i];
    int xd = l->conv ? 4 : 2;
    printf("  {\"name\": \"%s\", \"op\": \"%s\", \"x\": [", l->name, l->conv ? "conv2d" : "linear");
    for (int d = 0; d < xd; d++)
      printf(d ? ", %lld" : "%lld", (long long)l->x[d]);
    printf("], \"w\": [");
    for (int d = 0; d < xd; d++)
      printf(d ? ", %lld" : "%lld", (long long)l->w[d]);
    printf("], \"bias\": %s, \"x_grad\": %s, \"stride\": %d, \"padding\": %d}%s\n",
           l->bias ? "true" : "false", l->x_grad ? "true" : "false", l->stride, l->padding,
           i + 1 < N_LAYERS ? "," : "");
  }
  printf("]\n");
}

int main(int argc, char **argv) {
  int threads = 1;
  const char *only = NULL;
  double budget_ms = 1500;
  bool peak = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--layer") && i + 1 < argc) {
      only = argv[++i];
    } else if (!strcmp(argv[i], "--budget-ms") && i + 1 < argc) {
      budget_ms = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--cpu-time")) {
      clock_id = CLOCK_THREAD_CPUTIME_ID;
    } else if (!strcmp(argv[i], "--peak")) {
      peak = true;
    } else if (!strcmp(argv[i], "--list")) {
      list_layers();
      return 0;
    } else {
      fprintf(stderr,
              "usage: %s [--threads N] [--layer NAME] [--budget-ms MS] [--cpu-time] [--peak] "
              "[--list]\n",
              argv[0]);
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  td_set_num_threads(threads);
  td_mem_keep_heap(); /* as the daemon does */
  /* The ceiling is OpenBLAS's own threaded sgemm (the engine holds it at
   * one thread and splits products itself, core/parallel.h). */
  if (peak) openblas_set_num_threads(threads);
  if (peak) return bench_peak(threads, budget_ms) ? 1 : 0;
  int failures = 0;
  for (int i = 0; i < N_LAYERS; i++) {
    if (only && strcmp(layers[i].name, only)) continue;
    failures += bench_layer(&layers[i], threads, budget_ms) != 0;
  }
  return failures ? 1 : 0;
}
