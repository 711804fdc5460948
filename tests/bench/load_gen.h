/* load_gen.h - the parts of the load generator (tests/bench/load_gen.c says what it does).
 *
 *   load_gen.c     options, sessions, threads, the RSS sampler, the report
 *   load_model.c   the per-session model spec, deterministic batches, rng and hashing
 *   load_stats.c   latency samples, chaos tallies, unexpected errors
 *   load_writer.c  the one writer per session and its log of applied requests
 *   load_reader.c  readers, chaos clients and stallers (they never change state)
 *   load_raw.c     calls through the gRPC C core for what libtraind-client cannot do:
 *                  stop reading mid-stream, stop sending mid-upload, drop a channel
 *   load_child.c   a child process killed mid-call (a real TCP disconnect)
 *   load_replay.c  each writer's log replayed on a fresh session, states compared
 */
#ifndef TRAIND_LOAD_GEN_H
#define TRAIND_LOAD_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "traind_client.h"

/* ---------------------------------------------------------------- options (load_gen.c) */

typedef struct load_opts {
  const char *target;
  const char *token;       /* NULL: none */
  int clients, sessions;   /* clients >= sessions: one writer each, the rest read */
  double seconds;
  double warmup_s;         /* RSS is compared from here on */
  int server_pid;          /* 0: no RSS */
  uint64_t seed;
  int hidden;              /* hidden width of the ordinary sessions' MLP */
  int wide_hidden;         /* ... of the wide ones (checkpoints of several chunks) */
  int wide_every;          /* session i is wide when i % wide_every == wide_every - 1; 0: none */
  double stall_s;          /* a staller stops for 0.5x to 1.5x this */
  double stall_every_s;    /* mean gap between one staller's stalls */
  double chaos_every_s;    /* mean gap between one chaos client's (or writer's) abandons */
  double reader_think_ms;  /* pause between a reader's normal requests */
  bool share_connections;  /* libtraind-client's default: every client on one connection */
  double rss_growth_pct;   /* > 0: fail when the RSS after warm-up exceeds warm-up by this */
  int replay_jobs;         /* sessions replayed at once (each replay is sequential) */
  const char *self_exe;    /* this program, for the children */
} load_opts;

/* ---------------------------------------------------------------- model (load_model.c) */

#define LOAD_IN 32      /* input features */
#define LOAD_CLASSES 10 /* output classes */
#define LOAD_BATCH 32

uint64_t rng_next(uint64_t *state); /* splitmix64 */
double rng_unit(uint64_t *state);   /* [0, 1) */
/* FNV-1a, 64 bits: snapshots are logged by hash, not kept. */
uint64_t hash_bytes(const uint8_t *p, size_t n);
double now_s(void); /* monotonic */
void sleep_s(double s);

/* One batch and the request messages that borrow it. */
typedef struct batch {
  float x[LOAD_BATCH * LOAD_IN];
  int64_t y[LOAD_BATCH];
  int64_t xshape[2], yshape[1];
  Traind__V1__Tensor input, target;
  Traind__V1__LossSpec loss;
  Traind__V1__TrainStepRequest train;
  Traind__V1__ForwardRequest forward; /* grad false, with the loss */
} batch;

/* The writer's k-th batch of session `index` is a function of (seed, index, k) only, so
 * a replay (or a child process) rebuilds it. */
void batch_fill(batch *b, const char *session_id, uint64_t seed, int index, uint64_t k);

/* Sequential(Linear(32, hidden), ReLU, Linear(hidden, 10)): no BatchNorm or Dropout, so a
 * Forward changes nothing. The optimizer depends on index % 4 (SGD with momentum; Adam;
 * SGD nesterov with StepLR; AdamW with warm-up and cosine), the seed on (seed, index):
 * the same arguments give the same initial state. id receives the session id. */
traind_status create_session(traind_client *c, uint64_t seed, int index, int hidden,
                             char id[33]);

/* Connects with the options' target and token. `slot` keeps connections apart: gRPC
 * shares one TCP connection between channels whose arguments are equal, so each client
 * gets a distinct max_message_size (64 MiB + slot) unless share_connections. */
traind_status load_connect(const load_opts *o, int slot, traind_client **out);

/* ---------------------------------------------------------------- stats (load_stats.c) */

typedef enum op_kind {
  OP_TRAIN_STEP,
  OP_FORWARD,
  OP_STATE_DICT,
  OP_LOAD_STATE_DICT,
  OP_GET_SESSION,
  OP_N
} op_kind;
extern const char *const op_names[OP_N];

/* What was stalled when a normal call started. */
typedef enum stall_class {
  CLS_QUIET, /* no stall anywhere */
  CLS_OTHER, /* a stall on another session, none on this one */
  CLS_OWN,   /* a stall on this call's own session */
  CLS_N
} stall_class;

/* Deliberate abandons and stalls, by kind. */
typedef enum chaos_kind {
  CH_W_DEADLINE,   /* writer: TrainStep with a deadline of 1-64 ms */
  CH_W_DROP,       /* writer: TrainStep, channel destroyed while in flight */
  CH_W_KILL,       /* writer: TrainStep from a child process killed mid-call */
  CH_R_DEADLINE,   /* reader: Forward or StateDict with a deadline of 1-64 ms */
  CH_R_DROP_READ,  /* reader: StateDict stream, channel destroyed mid-stream */
  CH_R_DROP_LOAD,  /* reader: LoadStateDict, part sent, channel destroyed */
  CH_R_KILL_READ,  /* reader: StateDict from a child killed mid-stream */
  CH_R_KILL_LOAD,  /* reader: a whole LoadStateDict never closed, child killed */
  CH_S_READ,       /* staller: StateDict stream, stops reading for seconds */
  CH_S_LOAD_PART,  /* staller: LoadStateDict, part sent, stops for seconds, drops */
  CH_S_LOAD_OPEN,  /* staller: LoadStateDict, all sent but never closed, stops, drops */
  CH_N
} chaos_kind;
extern const char *const chaos_names[CH_N];

typedef struct sample {
  float ms;
  uint8_t op, cls;
} sample;

/* One per client thread, merged after the run. */
typedef struct recorder {
  sample *v;
  size_t n, cap;
  long chaos[CH_N];
  long chaos_done[CH_N]; /* the call had completed anyway (or, writer: the step applied) */
  long multi_chunk;      /* stalled downloads that had more chunks to come */
} recorder;

void rec_add(recorder *r, op_kind op, stall_class cls, double ms);
void rec_free(recorder *r);
long load_requests(void); /* normal calls so far, all threads */

/* Prints "load: UNEXPECTED ..." (the first 50 in full) and counts it. Clears st. */
void load_unexpected(const char *who, const char *what, traind_status *st);
/* The same for a failure that has no status (a wrong size, a wrong step). */
void load_unexpectedf(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long load_unexpected_count(void);

/* ---------------------------------------------------------------- the run */

typedef struct wlog_entry {
  uint8_t kind;  /* WL_TRAIN, WL_SNAP, WL_LOAD */
  uint64_t arg;  /* TRAIN: the batch number k; SNAP, LOAD: the snapshot id */
  uint64_t hash; /* SNAP: hash of the downloaded bytes */
  int64_t step;  /* the step count after the entry */
} wlog_entry;
enum { WL_TRAIN, WL_SNAP, WL_LOAD };

typedef struct wlog {
  wlog_entry *v;
  size_t n, cap;
} wlog;
void wlog_add(wlog *l, int kind, uint64_t arg, uint64_t hash, int64_t step);

typedef struct load_session {
  int index;
  int hidden;
  char id[33];
  atomic_int stalls; /* stalls in progress on this session */
  wlog log;          /* the writer's, read after it has joined */
  int64_t final_step;
} load_session;

typedef struct load_run {
  const load_opts *o;
  load_session *sessions;
  atomic_bool stop;
  atomic_int stalls; /* in progress on any session */
} load_run;

stall_class stall_class_of(load_run *run, load_session *s);

/* A client thread's context. */
typedef enum client_role { ROLE_WRITER, ROLE_READER, ROLE_CHAOS, ROLE_STALLER } client_role;
typedef struct client_ctx {
  load_run *run;
  load_session *session;
  client_role role;
  int slot; /* connection slot (load_connect) */
  uint64_t rng;
  recorder rec;
  char who[48]; /* "session 3 writer" */
} client_ctx;

void *writer_main(void *ctx); /* load_writer.c */
void *reader_main(void *ctx); /* load_reader.c */

/* A deadline for a call abandoned on purpose: 1 to 64 ms, log-uniform, so that calls are
 * cut off at every stage (still queued on the client, queued or running on the server,
 * answered in time). */
int64_t abandon_deadline_ms(uint64_t *rng);

/* After a deliberate abandon: whether a status is one of the expected outcomes. */
static inline bool abandon_expected(int code) {
  return code == TRAIND_OK || code == TRAIND_DEADLINE_EXCEEDED || code == TRAIND_CANCELLED;
}

/* ---------------------------------------------------------------- raw calls (load_raw.c) */

typedef struct raw_conn raw_conn;
typedef struct raw_call raw_call;

/* A channel of its own (its own TCP connection) and a completion queue. */
raw_conn *raw_open(const char *target, const char *token);
/* Destroys the channel (closing its connection once its calls are gone) and the queue.
 * Every call on it must have been finished. */
void raw_close(raw_conn *c);
/* Starts a call (deadline_ms 0: none); its status is awaited by raw_finish. */
raw_call *raw_start(raw_conn *c, const char *method, int64_t deadline_ms);
/* Sends one message (the first also sends the metadata); close: half-closes too.
 * false: the call is broken (see raw_finish). */
bool raw_send(raw_call *call, const ProtobufCMessage *m, bool close);
/* Receives one message into *out (a new message). 1: a message; 0: end of stream or a
 * broken call (raw_finish says which). */
int raw_recv(raw_call *call, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
/* cancel: cancels first. Waits for the status and frees the call. */
traind_status raw_finish(raw_call *call, bool cancel);
/* Abrupt: destroys the channel while the call is in flight, then cancels the call
 * and frees the connection. Returns the call's status. */
traind_status raw_drop(raw_conn *c, raw_call *call);

/* ---------------------------------------------------------------- children (load_child.c) */

/* argv after "--child": KIND TARGET SESSION_ID SEED INDEX K. The bearer token, if any,
 * comes in the environment (not in argv, which ps shows). Never returns normally: it
 * signals the parent mid-call and waits to be killed. */
#define LOAD_TOKEN_ENV "TRAIND_LOAD_GEN_TOKEN"
int child_main(int argc, char **argv);

typedef enum child_kind { CHILD_TRAIN, CHILD_READ, CHILD_LOAD } child_kind;
/* Spawns a child doing `kind` on s (batch k for CHILD_TRAIN), waits until its call is in
 * flight, lets it run up to max_delay_ms more, kills it (SIGKILL) and reaps it. false:
 * the child failed before its call was in flight (reported as unexpected). */
bool child_run(client_ctx *cx, child_kind kind, uint64_t k, double max_delay_ms);

/* ---------------------------------------------------------------- replay (load_replay.c) */

typedef struct replay_result {
  bool ok;
  size_t trains, snaps, loads;
  size_t bytes;         /* of the final state dict */
  char detail[256];     /* the first difference */
  int probes, applied;  /* abandoned uploads on the idle live session; applied: wrongly */
  char probe_detail[256];
  double seconds;
} replay_result;

/* Replays s's log on a fresh session (same spec and seed) through c, alone, and compares
 * every logged snapshot and the final StateDict(include_optimizer) byte for byte with
 * the live session's (r->ok, r->detail).
 * Then abandons a few uploads on the live session, now idle: a whole checkpoint (the
 * fresh session's initial state) sent, the stream never closed, then cancelled or its
 * channel dropped; the live state must not change (r->applied, r->probe_detail). During
 * the run such uploads mostly meet a busy session whose queue delays them past the
 * cancellation; an idle one shows whether the server tells a cancelled stream from a
 * completed one. Closes both sessions. */
void replay_session(const load_opts *o, load_session *s, traind_client *c, replay_result *r);

#endif
