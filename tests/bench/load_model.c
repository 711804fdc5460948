/* load_model.c - what every client agrees on: the session's spec, the writer's batches
 * (a pure function of seed, session and batch number, so a replay or a child rebuilds
 * them), random numbers, hashing and connecting. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "load_gen.h"

uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double rng_unit(uint64_t *state) { return (double)(rng_next(state) >> 11) / 9007199254740992.0; }

int64_t abandon_deadline_ms(uint64_t *rng) { return (int64_t)exp2(rng_unit(rng) * 6.0); }

uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

void batch_fill(batch *b, const char *session_id, uint64_t seed, int index, uint64_t k) {
  uint64_t r = seed ^ ((uint64_t)index << 40) ^ (k * 0x2545f4914f6cdd1dull);
  for (size_t i = 0; i < LOAD_BATCH * LOAD_IN; i++)
    b->x[i] = (float)(rng_unit(&r) * 2.0 - 1.0);
  for (size_t i = 0; i < LOAD_BATCH; i++) b->y[i] = (int64_t)(rng_next(&r) % LOAD_CLASSES);
  b->xshape[0] = LOAD_BATCH;
  b->xshape[1] = LOAD_IN;
  b->yshape[0] = LOAD_BATCH;
  traind_tensor_view(&b->input, TRAIND__V1__DTYPE__FLOAT32, 2, b->xshape, b->x, sizeof b->x);
  traind_tensor_view(&b->target, TRAIND__V1__DTYPE__INT64, 1, b->yshape, b->y, sizeof b->y);
  traind__v1__loss_spec__init(&b->loss);
  b->loss.has_kind = true;
  b->loss.kind = TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY;
  traind__v1__train_step_request__init(&b->train);
  b->train.session_id = (char *)session_id;
  b->train.input = &b->input;
  b->train.target = &b->target;
  b->train.loss = &b->loss;
  traind__v1__forward_request__init(&b->forward);
  b->forward.session_id = (char *)session_id;
  b->forward.input = &b->input;
  b->forward.target = &b->target;
  b->forward.loss = &b->loss;
  b->forward.has_grad = true;
  b->forward.grad = false;
}

traind_status create_session(traind_client *c, uint64_t seed, int index, int hidden,
                             char id[33]) {
  Traind__V1__Linear l1 = TRAIND__V1__LINEAR__INIT, l2 = TRAIND__V1__LINEAR__INIT;
  l1.has_in_features = l1.has_out_features = l2.has_in_features = l2.has_out_features = true;
  l1.in_features = LOAD_IN;
  l1.out_features = l2.in_features = hidden;
  l2.out_features = LOAD_CLASSES;
  Traind__V1__ReLU relu = TRAIND__V1__RE_LU__INIT;
  Traind__V1__Module m[3] = {TRAIND__V1__MODULE__INIT, TRAIND__V1__MODULE__INIT,
                             TRAIND__V1__MODULE__INIT};
  m[0].kind_case = TRAIND__V1__MODULE__KIND_LINEAR;
  m[0].linear = &l1;
  m[1].kind_case = TRAIND__V1__MODULE__KIND_RELU;
  m[1].relu = &relu;
  m[2].kind_case = TRAIND__V1__MODULE__KIND_LINEAR;
  m[2].linear = &l2;
  Traind__V1__Module *children[3] = {&m[0], &m[1], &m[2]};
  Traind__V1__Sequential seq = TRAIND__V1__SEQUENTIAL__INIT;
  seq.n_modules = 3;
  seq.modules = children;
  Traind__V1__Module root = TRAIND__V1__MODULE__INIT;
  root.kind_case = TRAIND__V1__MODULE__KIND_SEQUENTIAL;
  root.sequential = &seq;

  /* Four optimizers, two with LR schedules, so that a load must restore the step count
   * and schedule position exactly for the replay to match. */
  Traind__V1__OptimizerSpec opt = TRAIND__V1__OPTIMIZER_SPEC__INIT;
  Traind__V1__SGD sgd = TRAIND__V1__SGD__INIT;
  Traind__V1__Adam adam = TRAIND__V1__ADAM__INIT;
  Traind__V1__LRSchedule sched = TRAIND__V1__LRSCHEDULE__INIT;
  Traind__V1__StepLR steplr = TRAIND__V1__STEP_LR__INIT;
  Traind__V1__CosineAnnealingLR cosine = TRAIND__V1__COSINE_ANNEALING_LR__INIT;
  sgd.has_lr = sgd.has_momentum = true;
  sgd.lr = 0.01;
  sgd.momentum = 0.9;
  adam.has_lr = true;
  adam.lr = 1e-3;
  switch (index % 4) {
  case 0:
    opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD;
    opt.sgd = &sgd;
    break;
  case 1:
    opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAM;
    opt.adam = &adam;
    break;
  case 2:
    sgd.has_nesterov = true;
    sgd.nesterov = true;
    opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD;
    opt.sgd = &sgd;
    steplr.has_step_size = steplr.has_gamma = true;
    steplr.step_size = 50;
    steplr.gamma = 0.95;
    sched.kind_case = TRAIND__V1__LRSCHEDULE__KIND_STEP;
    sched.step = &steplr;
    opt.schedule = &sched;
    break;
  default:
    opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_ADAMW;
    opt.adamw = &adam;
    cosine.has_t_max = true;
    cosine.t_max = 5000;
    sched.kind_case = TRAIND__V1__LRSCHEDULE__KIND_COSINE;
    sched.cosine = &cosine;
    sched.has_warmup_steps = true;
    sched.warmup_steps = 20;
    opt.schedule = &sched;
    opt.has_grad_clip_norm = true;
    opt.grad_clip_norm = 5.0;
    break;
  }

  char name[64];
  snprintf(name, sizeof name, "load-%d", index);
  Traind__V1__CreateModelRequest req = TRAIND__V1__CREATE_MODEL_REQUEST__INIT;
  req.model = &root;
  req.optimizer = &opt;
  req.has_seed = true;
  req.seed = seed * 1000003u + (uint64_t)index;
  req.name = name;
  Traind__V1__CreateModelResponse *resp = NULL;
  traind_status st = traind_create_model(c, &req, &resp);
  if (st.code == TRAIND_OK) snprintf(id, 33, "%s", resp->session_id);
  traind_message_free(resp);
  return st;
}

traind_status load_connect(const load_opts *o, int slot, traind_client **out) {
  traind_client_options opts;
  traind_client_options_init(&opts);
  opts.target = o->target;
  opts.token = o->token;
  opts.connect_timeout_ms = 10000;
  opts.timeout_ms = 60000; /* a blocked call shows up as an error, not a hang */
  if (!o->share_connections) opts.max_message_size = (64u << 20) + (size_t)slot;
  return traind_connect(&opts, out);
}
