/* RPC benchmark: traind over loopback through libtraind-client, against a bare gRPC echo.
 *
 * usage: bench_rpc [--server HOST:PORT] [--torch-ms MS] [--calls N] [--seconds S]
 *
 * Always: (a) a bare gRPC C-core unary echo served in this process (its own completion
 * queue thread answering each call with the request bytes) timed from libtraind-client,
 * 64-byte round trips, p50/p99. With --server (a running traind; start it with
 * --max-parameters >= 26000000 for the StateDict row): (b) TrainStep of mlp_small (Linear
 * 64->64, ReLU, Linear 64->10, batch 32, cross-entropy, SGD lr 0.01 momentum 0.9) p50/p99
 * and its ratios to the echo and to --torch-ms (PyTorch's local step, measured by
 * run_bench_rpc.sh), measured interleaved with (a) and with an echo of the TrainStep
 * request's size, in alternating blocks; (d) Forward with a 16 MiB input and StateDict
 * download / LoadStateDict upload of a 100 MB model in MB/s (1 MB = 1e6 bytes); (e)
 * aggregate TrainStep/s with 1, 2, 4 and 8 sessions, one thread and one client (channel)
 * each.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "traind_client.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v. */
static double pct(const double *v, size_t n, double p) {
  size_t k = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
  return v[k < n ? k : n - 1];
}

static void die_status(const char *what, traind_status st) {
  fprintf(stderr, "bench_rpc: %s: %s: %s\n", what, traind_code_name(st.code),
          st.message ? st.message : "");
  traind_status_clear(&st);
  exit(1);
}

#define CHECK(what, expr)                      \
  do {                                         \
    traind_status st_ = (expr);                \
    if (st_.code != TRAIND_OK) die_status(what, st_); \
  } while (0)

/* ---------------------------------------------------------------- echo server */

typedef struct echo_call {
  int stage; /* 0: waiting for a call, 1: reading its message, 2: answering */
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
  grpc_byte_buffer *msg;
  int cancelled;
} echo_call;

typedef struct echo_server {
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t thread;
  int port;
  int outstanding; /* tags we started and have not seen back (cq thread only) */
  int shutdown_tag;
} echo_server;

static void echo_arm(echo_server *e) {
  echo_call *c = calloc(1, sizeof *c);
  if (!c) abort();
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->md);
  if (grpc_server_request_call(e->server, &c->call, &c->details, &c->md, e->cq, e->cq, c) !=
      GRPC_CALL_OK)
    abort();
  e->outstanding++;
}

static void echo_free(echo_call *c) {
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->md);
  if (c->msg) grpc_byte_buffer_destroy(c->msg);
  if (c->call) grpc_call_unref(c->call);
  free(c);
}

/* Starts a call's next batch; false when it could not start (the call is then freed). */
static bool echo_batch(echo_call *c, const grpc_op *ops, size_t n) {
  if (grpc_call_start_batch(c->call, ops, n, c, NULL) == GRPC_CALL_OK) return true;
  echo_free(c);
  return false;
}

/* Advances a call one stage; returns false when it is finished (and freed). */
static bool echo_advance(echo_server *e, echo_call *c, bool ok, bool draining) {
  if (!ok || c->stage == 2) {
    echo_free(c);
    return false;
  }
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  if (c->stage == 0) {
    if (!draining) echo_arm(e); /* keep one armed for the next caller */
    ops[0].op = GRPC_OP_RECV_MESSAGE;
    ops[0].data.recv_message.recv_message = &c->msg;
    c->stage = 1;
    return echo_batch(c, ops, 1);
  }
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (c->msg) { /* a call without a message gets an empty answer */
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->msg;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n++].data.send_status_from_server.status = GRPC_STATUS_OK;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->stage = 2;
  return echo_batch(c, ops, n);
}

static void *echo_loop(void *arg) {
  echo_server *e = arg;
  bool draining = false, shut = false;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(e->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.tag == &e->shutdown_tag) {
      draining = true;
    } else {
      e->outstanding--;
      if (echo_advance(e, ev.tag, ev.success, draining)) e->outstanding++;
    }
    /* Only once the server is gone and nothing is in flight may the queue shut down
     * (a later start_batch on a shut-down queue aborts). */
    if (draining && e->outstanding == 0 && !shut) {
      grpc_server_destroy(e->server);
      grpc_completion_queue_shutdown(e->cq);
      shut = true;
    }
  }
  return NULL;
}

static void echo_start(echo_server *e) {
  memset(e, 0, sizeof *e);
  e->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_arg args[2] = {
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       .value.integer = 64 << 20},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
       .value.integer = 64 << 20},
  };
  grpc_channel_args chargs = {2, args};
  e->server = grpc_server_create(&chargs, NULL);
  grpc_server_register_completion_queue(e->server, e->cq, NULL);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  e->port = grpc_server_add_http2_port(e->server, "127.0.0.1:0", creds);
  grpc_server_credentials_release(creds);
  if (e->port == 0) {
    fprintf(stderr, "bench_rpc: echo server: cannot bind a loopback port\n");
    exit(1);
  }
  grpc_server_start(e->server);
  for (int i = 0; i < 4; i++) echo_arm(e);
  pthread_create(&e->thread, NULL, echo_loop, e);
}

static void echo_stop(echo_server *e) {
  grpc_server_shutdown_and_notify(e->server, e->cq, &e->shutdown_tag);
  grpc_server_cancel_all_calls(e->server);
  pthread_join(e->thread, NULL);
  grpc_completion_queue_destroy(e->cq);
}

/* ---------------------------------------------------------------- measurements */

typedef struct latency {
  double p50, p99;
  size_t n;
} latency;

static latency summarize(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return (latency){pct(v, n, 50), pct(v, n, 99), n};
}

/* A client of the echo server sending `size` bytes a call. */
typedef struct echo_client {
  traind_client *c;
  uint8_t *req;
  size_t size;
} echo_client;

static echo_client echo_open(int port, size_t size) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  traind_client_options o;
  traind_client_options_init(&o);
  o.target = target;
  o.connect_timeout_ms = 5000;
  echo_client e = {NULL, malloc(size), size};
  CHECK("connect to the echo server", traind_connect(&o, &e.c));
  for (size_t i = 0; i < size; i++) e.req[i] = (uint8_t)i;
  return e;
}

/* One round trip, in microseconds; the answer must be the request's bytes. */
static double echo_once(echo_client *e) {
  uint8_t *resp;
  size_t len;
  double t0 = now_us();
  CHECK("echo", traind_unary_raw(e->c, "/bench.Echo/Echo", e->req, e->size, &resp, &len));
  double dt = now_us() - t0;
  if (len != e->size || memcmp(resp, e->req, len) != 0) {
    fprintf(stderr, "bench_rpc: echo returned different bytes\n");
    exit(1);
  }
  free(resp);
  return dt;
}

static void echo_close(echo_client *e) {
  traind_client_close(e->c);
  free(e->req);
}

/* Round trips of `size` bytes each way; the first quarter of the calls warms up. */
static latency bench_echo(int port, size_t size, size_t calls) {
  echo_client e = echo_open(port, size);
  double *t = malloc(calls * sizeof *t);
  for (size_t i = 0; i < calls / 4 + calls; i++) {
    double dt = echo_once(&e);
    if (i >= calls / 4) t[i - calls / 4] = dt;
  }
  latency l = summarize(t, calls);
  free(t);
  echo_close(&e);
  return l;
}

static traind_client *connect_daemon(const char *target) {
  traind_client_options o;
  traind_client_options_init(&o);
  o.target = target;
  o.connect_timeout_ms = 5000;
  o.timeout_ms = 120000;
  traind_client *c;
  CHECK("connect to traind", traind_connect(&o, &c));
  return c;
}

/* Module trees are built on the stack: nodes[] holds them, the caller owns nothing. */
typedef struct linear_stack {
  Traind__V1__Module root, layers[8];
  Traind__V1__Module *children[8];
  Traind__V1__Sequential seq;
  Traind__V1__Linear lin[8];
  Traind__V1__ReLU relu[8];
} linear_stack;

/* Sequential of Linear(dims[i] -> dims[i+1]) with ReLU between when relu is set. */
static Traind__V1__Module *linear_stack_build(linear_stack *s, const int64_t *dims,
                                              size_t nlin, bool relu) {
  traind__v1__module__init(&s->root);
  traind__v1__sequential__init(&s->seq);
  size_t n = 0;
  for (size_t i = 0; i < nlin; i++) {
    Traind__V1__Module *m = &s->layers[n];
    traind__v1__module__init(m);
    traind__v1__linear__init(&s->lin[i]);
    s->lin[i].has_in_features = s->lin[i].has_out_features = true;
    s->lin[i].in_features = dims[i];
    s->lin[i].out_features = dims[i + 1];
    m->kind_case = TRAIND__V1__MODULE__KIND_LINEAR;
    m->linear = &s->lin[i];
    s->children[n++] = m;
    if (relu && i + 1 < nlin) {
      m = &s->layers[n];
      traind__v1__module__init(m);
      traind__v1__re_lu__init(&s->relu[i]);
      m->kind_case = TRAIND__V1__MODULE__KIND_RELU;
      m->relu = &s->relu[i];
      s->children[n++] = m;
    }
  }
  s->seq.n_modules = n;
  s->seq.modules = s->children;
  s->root.kind_case = TRAIND__V1__MODULE__KIND_SEQUENTIAL;
  s->root.sequential = &s->seq;
  return &s->root;
}

/* A new session holding the stack; SGD lr 0.01 momentum 0.9. Caller frees the id. */
static char *create_stack(traind_client *c, const int64_t *dims, size_t nlin, bool relu) {
  linear_stack s;
  Traind__V1__SGD sgd = TRAIND__V1__SGD__INIT;
  sgd.has_lr = sgd.has_momentum = true;
  sgd.lr = 0.01;
  sgd.momentum = 0.9;
  Traind__V1__OptimizerSpec opt = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD;
  opt.sgd = &sgd;
  Traind__V1__CreateModelRequest req = TRAIND__V1__CREATE_MODEL_REQUEST__INIT;
  req.model = linear_stack_build(&s, dims, nlin, relu);
  req.optimizer = &opt;
  req.has_seed = true;
  req.seed = 1;
  req.name = "bench_rpc";
  Traind__V1__CreateModelResponse *resp;
  CHECK("CreateModel", traind_create_model(c, &req, &resp));
  char *id = strdup(resp->session_id);
  traind_message_free(resp);
  return id;
}

static void close_session(traind_client *c, char *id) {
  CHECK("CloseSession", traind_close_session(c, id));
  free(id);
}

/* One mlp_small batch: input [32,64] float32, targets [32] int64. */
typedef struct batch {
  float x[32 * 64];
  int64_t y[32];
  int64_t xshape[2], yshape[1];
  Traind__V1__Tensor input, target;
  Traind__V1__LossSpec loss;
  Traind__V1__TrainStepRequest req;
} batch;

static void batch_init(batch *b, const char *session_id, unsigned seed) {
  for (size_t i = 0; i < 32 * 64; i++) {
    seed = seed * 1103515245u + 12345u;
    b->x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
  }
  for (size_t i = 0; i < 32; i++) b->y[i] = (int64_t)(i % 10);
  b->xshape[0] = 32;
  b->xshape[1] = 64;
  b->yshape[0] = 32;
  traind_tensor_view(&b->input, TRAIND__V1__DTYPE__FLOAT32, 2, b->xshape, b->x, sizeof b->x);
  traind_tensor_view(&b->target, TRAIND__V1__DTYPE__INT64, 1, b->yshape, b->y, sizeof b->y);
  traind__v1__loss_spec__init(&b->loss);
  b->loss.has_kind = true;
  b->loss.kind = TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY;
  traind__v1__train_step_request__init(&b->req);
  b->req.session_id = (char *)session_id;
  b->req.input = &b->input;
  b->req.target = &b->target;
  b->req.loss = &b->loss;
}

static const int64_t MLP_SMALL[] = {64, 64, 10};

/* The latency rows, measured interleaved: blocks of BLOCK calls of each
 * kind in turn, so that the echo and TrainStep see the same machine (on a
 * shared VM the echo alone drifts 58-180 us between runs, which made a
 * ratio of two separate runs mean little). The first quarter of each kind's
 * calls warms up. */
enum { BLOCK = 50 };

typedef struct latencies {
  latency echo, echo_sized, step;
  size_t step_bytes; /* the TrainStep request's size, which echo_sized sends */
} latencies;

static latencies bench_latency(int echo_port, const char *target, size_t calls) {
  traind_client *c = connect_daemon(target);
  char *id = create_stack(c, MLP_SMALL, 2, true);
  batch *b = malloc(sizeof *b);
  batch_init(b, id, 7);
  latencies r;
  r.step_bytes = traind__v1__train_step_request__get_packed_size(&b->req);
  echo_client small = echo_open(echo_port, 64), sized = echo_open(echo_port, r.step_bytes);
  size_t warm = calls / 4, total = warm + calls;
  double *t[3];
  for (int k = 0; k < 3; k++) t[k] = malloc(total * sizeof *t[k]);
  for (size_t i0 = 0; i0 < total; i0 += BLOCK)
    for (int k = 0; k < 3; k++)
      for (size_t i = i0; i < i0 + BLOCK && i < total; i++) {
        if (k == 0) {
          t[0][i] = echo_once(&small);
        } else if (k == 1) {
          t[1][i] = echo_once(&sized);
        } else {
          double t0 = now_us();
          CHECK("TrainStep", traind_train_step(c, &b->req, NULL));
          t[2][i] = now_us() - t0;
        }
      }
  r.echo = summarize(t[0] + warm, calls);
  r.echo_sized = summarize(t[1] + warm, calls);
  r.step = summarize(t[2] + warm, calls);
  for (int k = 0; k < 3; k++) free(t[k]);
  echo_close(&small);
  echo_close(&sized);
  free(b);
  close_session(c, id);
  traind_client_close(c);
  return r;
}

/* Median of `reps` timed calls of fn, in microseconds. */
typedef void (*timed_fn)(void *ctx);
static double median_us(timed_fn fn, void *ctx, int reps) {
  double t[64];
  fn(ctx); /* warm-up */
  for (int i = 0; i < reps; i++) {
    double t0 = now_us();
    fn(ctx);
    t[i] = now_us() - t0;
  }
  qsort(t, (size_t)reps, sizeof t[0], cmp_double);
  return t[reps / 2];
}

typedef struct bulk_ctx {
  traind_client *c;
  char *id;
  Traind__V1__ForwardRequest fwd;
  uint8_t *ckpt;
  size_t ckpt_len;
  char *upload_error; /* malloc'd; NULL while uploads succeed */
} bulk_ctx;

static void do_forward(void *p) {
  bulk_ctx *b = p;
  CHECK("Forward 16 MiB", traind_forward(b->c, &b->fwd, NULL));
}

static void do_download(void *p) {
  bulk_ctx *b = p;
  free(b->ckpt);
  CHECK("StateDict", traind_state_dict_to_buffer(b->c, b->id, false, &b->ckpt, &b->ckpt_len));
}

/* The upload row reports a failure instead of ending the run: the rows after it still
 * measure something, and main exits 1. */
static void do_upload(void *p) {
  bulk_ctx *b = p;
  if (b->upload_error) return;
  traind_status st =
      traind_load_state_dict_from_buffer(b->c, b->id, true, b->ckpt, b->ckpt_len, NULL);
  if (st.code != TRAIND_OK) {
    b->upload_error = st.message ? st.message : strdup(traind_code_name(st.code));
    st.message = NULL;
  }
  traind_status_clear(&st);
}

typedef struct bulk_result {
  double fwd_mbps, fwd_ms, dl_mbps, dl_ms, ul_mbps, ul_ms, ckpt_mb;
  char *upload_error; /* malloc'd, or NULL */
} bulk_result;

static bulk_result bench_bulk(const char *target) {
  bulk_result r;
  bulk_ctx b = {0};
  b.c = connect_daemon(target);

  /* Forward: Linear 1024->16 on [4096,1024] float32 = 16 MiB in, 256 KiB out. */
  static const int64_t fdims[] = {1024, 16};
  b.id = create_stack(b.c, fdims, 1, false);
  size_t n = 4096 * 1024;
  float *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = (float)(i % 97) / 97.0f;
  int64_t shape[2] = {4096, 1024};
  Traind__V1__Tensor input;
  traind_tensor_view(&input, TRAIND__V1__DTYPE__FLOAT32, 2, shape, x, n * sizeof *x);
  traind__v1__forward_request__init(&b.fwd);
  b.fwd.session_id = b.id;
  b.fwd.input = &input;
  double us = median_us(do_forward, &b, 9);
  r.fwd_ms = us / 1e3;
  r.fwd_mbps = (double)(n * sizeof *x) / us;
  free(x);
  close_session(b.c, b.id);

  /* StateDict of 4 x Linear(2500 -> 2500) = 25.01 M parameters = 100 MB. */
  static const int64_t bdims[] = {2500, 2500, 2500, 2500, 2500};
  b.id = create_stack(b.c, bdims, 4, false);
  us = median_us(do_download, &b, 5);
  r.ckpt_mb = (double)b.ckpt_len / 1e6;
  r.dl_ms = us / 1e3;
  r.dl_mbps = (double)b.ckpt_len / us;
  us = median_us(do_upload, &b, 5);
  r.ul_ms = us / 1e3;
  r.ul_mbps = (double)b.ckpt_len / us;
  r.upload_error = b.upload_error;
  free(b.ckpt);
  close_session(b.c, b.id);
  traind_client_close(b.c);
  return r;
}

/* ---------------------------------------------------------------- concurrency */

typedef struct worker {
  const char *target;
  double seconds;
  pthread_barrier_t *ready;
  long steps;
  double elapsed_s;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  traind_client *c = connect_daemon(w->target);
  char *id = create_stack(c, MLP_SMALL, 2, true);
  batch *b = malloc(sizeof *b);
  batch_init(b, id, (unsigned)(uintptr_t)w);
  for (int i = 0; i < 50; i++) CHECK("TrainStep", traind_train_step(c, &b->req, NULL));
  pthread_barrier_wait(w->ready);
  double t0 = now_us(), end = t0 + w->seconds * 1e6, t = t0;
  long steps = 0;
  while (t < end) {
    CHECK("TrainStep", traind_train_step(c, &b->req, NULL));
    steps++;
    t = now_us();
  }
  w->steps = steps;
  w->elapsed_s = (t - t0) / 1e6;
  pthread_barrier_wait(w->ready); /* nobody closes while others still measure */
  free(b);
  close_session(c, id);
  traind_client_close(c);
  return NULL;
}

static double bench_concurrent(const char *target, int sessions, double seconds) {
  pthread_t th[8];
  worker w[8];
  pthread_barrier_t ready;
  pthread_barrier_init(&ready, NULL, (unsigned)sessions);
  for (int i = 0; i < sessions; i++) {
    w[i] = (worker){target, seconds, &ready, 0, 0};
    pthread_create(&th[i], NULL, worker_main, &w[i]);
  }
  double rate = 0;
  for (int i = 0; i < sessions; i++) {
    pthread_join(th[i], NULL);
    rate += (double)w[i].steps / w[i].elapsed_s;
  }
  pthread_barrier_destroy(&ready);
  return rate;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  const char *server = NULL;
  double torch_ms = 0, seconds = 2.0;
  size_t calls = 2000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--server") && i + 1 < argc) {
      server = argv[++i];
    } else if (!strcmp(argv[i], "--torch-ms") && i + 1 < argc) {
      torch_ms = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--calls") && i + 1 < argc) {
      calls = (size_t)atol(argv[++i]);
    } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = atof(argv[++i]);
    } else {
      fprintf(stderr,
              "usage: bench_rpc [--server HOST:PORT] [--torch-ms MS] [--calls N] "
              "[--seconds S]\n");
      return 2;
    }
  }
  if (calls < 10) calls = 10;

  grpc_init();
  echo_server e;
  echo_start(&e);
  latency echo_big = bench_echo(e.port, 16u << 20, 12);

  printf("traind RPC benchmark, loopback, libtraind-client (times in us)\n");
  if (!server) {
    latency echo = bench_echo(e.port, 64, calls);
    echo_stop(&e);
    printf("%-44s %9s %9s %6s\n", "round trip", "p50", "p99", "n");
    printf("%-44s %9.1f %9.1f %6zu\n", "bare gRPC unary echo, 64 B", echo.p50, echo.p99, echo.n);
    printf("(no --server: daemon rows skipped)\n");
    grpc_shutdown();
    return 0;
  }
  latencies l = bench_latency(e.port, server, calls);
  echo_stop(&e);
  char sized_row[64];
  snprintf(sized_row, sizeof sized_row, "bare gRPC unary echo, %zu B (TrainStep's)",
           l.step_bytes);
  printf("%-44s %9s %9s %6s   (interleaved in blocks of %d)\n", "round trip", "p50", "p99", "n",
         BLOCK);
  printf("%-44s %9.1f %9.1f %6zu\n", "bare gRPC unary echo, 64 B", l.echo.p50, l.echo.p99,
         l.echo.n);
  printf("%-44s %9.1f %9.1f %6zu\n", sized_row, l.echo_sized.p50, l.echo_sized.p99,
         l.echo_sized.n);
  printf("%-44s %9.1f %9.1f %6zu\n", "TrainStep mlp_small, batch 32", l.step.p50, l.step.p99,
         l.step.n);
  printf("%-44s %9.0f MB/s (16 MiB each way, p50 %.1f ms)\n", "bare gRPC unary echo, 16 MiB",
         (double)(16u << 20) / echo_big.p50, echo_big.p50 / 1e3);
  printf("\nTrainStep p50 / echo p50 (64 B)     = %.2f   (target <= 1.3)\n",
         l.step.p50 / l.echo.p50);
  printf("TrainStep p50 / echo p50 (%zu B)   = %.2f\n", l.step_bytes,
         l.step.p50 / l.echo_sized.p50);
  if (torch_ms > 0)
    printf("TrainStep p50 / torch local step    = %.2f   (torch %.3f ms; target <= 0.5)\n",
           l.step.p50 / (torch_ms * 1e3), torch_ms);
  else
    printf("TrainStep p50 / torch local step    = n/a (no --torch-ms)\n");

  bulk_result b = bench_bulk(server);
  printf("\n%-44s %9s %9s\n", "bulk transfer (median)", "ms", "MB/s");
  printf("%-44s %9.1f %9.0f\n", "Forward, 16 MiB float32 input", b.fwd_ms, b.fwd_mbps);
  char row[64];
  snprintf(row, sizeof row, "StateDict download, %.1f MB model", b.ckpt_mb);
  printf("%-44s %9.1f %9.0f\n", row, b.dl_ms, b.dl_mbps);
  snprintf(row, sizeof row, "LoadStateDict upload, %.1f MB model", b.ckpt_mb);
  if (b.upload_error)
    printf("%-44s FAILED: %s\n", row, b.upload_error);
  else
    printf("%-44s %9.1f %9.0f\n", row, b.ul_ms, b.ul_mbps);

  printf("\n%-44s %9s\n", "concurrent sessions (thread + channel each)", "steps/s");
  static const int counts[] = {1, 2, 4, 8};
  for (int i = 0; i < 4; i++) {
    snprintf(row, sizeof row, "TrainStep mlp_small, %d session%s", counts[i],
             counts[i] > 1 ? "s" : "");
    printf("%-44s %9.0f\n", row, bench_concurrent(server, counts[i], seconds));
    fflush(stdout);
  }
  int rc = b.upload_error ? 1 : 0;
  free(b.upload_error);
  grpc_shutdown();
  return rc;
}
