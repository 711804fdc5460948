/* load_reader.c - the clients that must not change anything: readers, chaos clients
 * and stallers.
 *
 * All three mostly read (Forward with grad=false, StateDict); those calls are timed.
 * A chaos client also abandons calls at random moments: a deadline of 1 to 64 ms, a channel destroyed mid-stream or mid-upload, a child process killed mid-call. A
 * staller stops halfway for seconds: it reads one chunk of a StateDict stream and stops
 * reading (on a wide session the rest then waits on HTTP/2 flow control), or sends part
 * of a LoadStateDict, or all of it without closing the stream, and stops sending.
 *
 * None of them ever closes a LoadStateDict stream, so none may change the session: the
 * writer's step checks and the replay (load_replay.c) prove that they did not. While a
 * staller is stopped, the session's and the run's stall counters are up, so every timed
 * call is classed by whether a stall was in progress on its own session, on another,
 * or nowhere: stalled clients must not slow anyone down.
 */
#include <stdlib.h>
#include <string.h>

#include "load_gen.h"

typedef struct reader {
  client_ctx *cx;
  load_run *run;
  load_session *s;
  traind_client *c;
  batch b;
  uint8_t *ckpt; /* a checkpoint of this session downloaded earlier, for uploads */
  size_t ckpt_len;
} reader;

static void reconnect(reader *r) {
  traind_client_close(r->c);
  r->c = NULL;
  traind_status st = load_connect(r->run->o, r->cx->slot, &r->c);
  if (st.code) {
    load_unexpected(r->cx->who, "reconnect", &st);
    atomic_store(&r->run->stop, true);
  }
}

static void do_forward(reader *r) {
  batch_fill(&r->b, r->s->id, rng_next(&r->cx->rng), r->s->index, 0);
  stall_class cls = stall_class_of(r->run, r->s);
  double t0 = now_s();
  Traind__V1__ForwardResponse *resp = NULL;
  traind_status st = traind_forward(r->c, &r->b.forward, &resp);
  if (st.code != TRAIND_OK) {
    load_unexpected(r->cx->who, "Forward", &st);
    return;
  }
  rec_add(&r->cx->rec, OP_FORWARD, cls, (now_s() - t0) * 1e3);
  if (!resp->output || resp->output->n_shape != 2 || resp->output->shape[0] != LOAD_BATCH ||
      resp->output->shape[1] != LOAD_CLASSES || !resp->has_loss)
    load_unexpectedf(r->cx->who, "Forward answered without a [%d, %d] output and a loss",
                     LOAD_BATCH, LOAD_CLASSES);
  traind_message_free(resp);
}

static void do_state_dict(reader *r, bool keep) {
  bool with_optimizer = keep || rng_unit(&r->cx->rng) < 0.5;
  stall_class cls = stall_class_of(r->run, r->s);
  double t0 = now_s();
  uint8_t *data = NULL;
  size_t len = 0;
  traind_status st = traind_state_dict_to_buffer(r->c, r->s->id, with_optimizer, &data, &len);
  if (st.code != TRAIND_OK) {
    load_unexpected(r->cx->who, "StateDict", &st);
    return;
  }
  rec_add(&r->cx->rec, OP_STATE_DICT, cls, (now_s() - t0) * 1e3);
  if (with_optimizer) { /* the latest one is kept for the uploads that never finish */
    free(r->ckpt);
    r->ckpt = data;
    r->ckpt_len = len;
  } else {
    free(data);
  }
}

static void normal(reader *r) {
  /* Wide sessions' checkpoints are megabytes: fewer downloads there. */
  double p_state = r->s->hidden == r->run->o->hidden ? 0.3 : 0.05;
  if (rng_unit(&r->cx->rng) < p_state)
    do_state_dict(r, false);
  else
    do_forward(r);
  sleep_s(r->run->o->reader_think_ms / 1e3);
}

/* The first LoadStateDict message: the session, and `len` bytes of the checkpoint from
 * `off`. A stale checkpoint: applying it would roll the session back, which the writer
 * would see. */
static bool send_upload(reader *r, raw_call *call, size_t off, size_t len) {
  for (size_t done = 0; done < len;) {
    Traind__V1__LoadStateDictRequest req = TRAIND__V1__LOAD_STATE_DICT_REQUEST__INIT;
    if (off + done == 0) req.session_id = r->s->id;
    size_t n = len - done < (1u << 20) ? len - done : 1u << 20;
    req.has_data = true;
    req.data.data = r->ckpt + off + done;
    req.data.len = n;
    if (!raw_send(call, &req.base, false)) return false;
    done += n;
  }
  return true;
}

/* StateDict(include_optimizer) of the reader's session on a connection of its own
 * (*rc), through the core API: the chaos and stall clients drop or stop it at will. */
static raw_call *start_raw_download(reader *r, raw_conn **rc) {
  *rc = raw_open(r->run->o->target, r->run->o->token);
  raw_call *call = raw_start(*rc, "/traind.v1.Trainer/StateDict", 0);
  Traind__V1__StateDictRequest req = TRAIND__V1__STATE_DICT_REQUEST__INIT;
  req.session_id = r->s->id;
  req.has_include_optimizer = req.include_optimizer = true;
  raw_send(call, &req.base, true);
  return call;
}

static void expect_abandoned(reader *r, const char *what, traind_status *st) {
  if (!abandon_expected(st->code)) load_unexpected(r->cx->who, what, st);
  traind_status_clear(st);
}

/* A chaos client's abandon. */
static void chaos(reader *r) {
  recorder *rec = &r->cx->rec;
  double x = rng_unit(&r->cx->rng);
  if (x < 0.35) {
    rec->chaos[CH_R_DEADLINE]++;
    traind_client_set_timeout(r->c, abandon_deadline_ms(&r->cx->rng));
    traind_status st;
    if (rng_unit(&r->cx->rng) < 0.5) {
      batch_fill(&r->b, r->s->id, rng_next(&r->cx->rng), r->s->index, 0);
      st = traind_forward(r->c, &r->b.forward, NULL);
    } else {
      uint8_t *data = NULL;
      size_t len;
      st = traind_state_dict_to_buffer(r->c, r->s->id, true, &data, &len);
      free(data);
    }
    traind_client_set_timeout(r->c, 60000);
    if (st.code == TRAIND_OK) rec->chaos_done[CH_R_DEADLINE]++;
    expect_abandoned(r, "call with a short deadline", &st);
    if (rng_unit(&r->cx->rng) < 0.5) reconnect(r);
  } else if (x < 0.6) {
    rec->chaos[CH_R_DROP_READ]++;
    raw_conn *rc;
    raw_call *call = start_raw_download(r, &rc);
    if (rng_unit(&r->cx->rng) < 0.5) { /* else: dropped before the first chunk */
      ProtobufCMessage *chunk = NULL;
      if (raw_recv(call, &traind__v1__state_dict_chunk__descriptor, &chunk) == 1)
        protobuf_c_message_free_unpacked(chunk, NULL);
    }
    traind_status st = raw_drop(rc, call);
    expect_abandoned(r, "StateDict (channel dropped)", &st);
  } else if (x < 0.85) {
    if (!r->ckpt) do_state_dict(r, true);
    if (!r->ckpt) return;
    rec->chaos[CH_R_DROP_LOAD]++;
    raw_conn *rc = raw_open(r->run->o->target, r->run->o->token);
    raw_call *call = raw_start(rc, "/traind.v1.Trainer/LoadStateDict", 0);
    send_upload(r, call, 0, r->ckpt_len / 2);
    traind_status st = raw_drop(rc, call);
    expect_abandoned(r, "LoadStateDict (channel dropped mid-upload)", &st);
  } else if (rng_unit(&r->cx->rng) < 0.5) {
    rec->chaos[CH_R_KILL_READ]++;
    child_run(r->cx, CHILD_READ, 0, 5.0);
  } else {
    rec->chaos[CH_R_KILL_LOAD]++;
    child_run(r->cx, CHILD_LOAD, 0, 5.0);
  }
}

/* Holds still for about stall_s while the stall counters are up (ends early when the
 * run stops). */
static void stall(reader *r) {
  atomic_fetch_add(&r->s->stalls, 1);
  atomic_fetch_add(&r->run->stalls, 1);
  double end = now_s() + r->run->o->stall_s * (0.5 + rng_unit(&r->cx->rng));
  while (now_s() < end && !atomic_load(&r->run->stop)) sleep_s(0.05);
  atomic_fetch_sub(&r->run->stalls, 1);
  atomic_fetch_sub(&r->s->stalls, 1);
}

static void stall_read(reader *r) {
  recorder *rec = &r->cx->rec;
  rec->chaos[CH_S_READ]++;
  raw_conn *rc;
  raw_call *call = start_raw_download(r, &rc);
  Traind__V1__StateDictChunk *chunk = NULL;
  size_t got = 0, total = 0;
  if (raw_recv(call, &traind__v1__state_dict_chunk__descriptor, (ProtobufCMessage **)&chunk)) {
    got = chunk->data.len;
    total = chunk->has_total_size ? (size_t)chunk->total_size : 0;
    protobuf_c_message_free_unpacked(&chunk->base, NULL);
  }
  if (got < total) rec->multi_chunk++;
  stall(r);
  if (rng_unit(&r->cx->rng) < 0.5) { /* gives up */
    traind_status st = raw_drop(rc, call);
    expect_abandoned(r, "StateDict (stalled, then dropped)", &st);
    return;
  }
  /* Reads on: the rest must arrive whole. */
  while (raw_recv(call, &traind__v1__state_dict_chunk__descriptor, (ProtobufCMessage **)&chunk)) {
    got += chunk->data.len;
    protobuf_c_message_free_unpacked(&chunk->base, NULL);
  }
  traind_status st = raw_finish(call, false);
  raw_close(rc);
  if (st.code != TRAIND_OK)
    load_unexpected(r->cx->who, "StateDict (stalled, then read on)", &st);
  else if (got != total || total == 0)
    load_unexpectedf(r->cx->who, "StateDict after a stall: %zu bytes of %zu", got, total);
  else
    rec->chaos_done[CH_S_READ]++;
}

static void stall_load(reader *r) {
  if (!r->ckpt) do_state_dict(r, true);
  if (!r->ckpt) return;
  bool whole = rng_unit(&r->cx->rng) < 0.5;
  r->cx->rec.chaos[whole ? CH_S_LOAD_OPEN : CH_S_LOAD_PART]++;
  raw_conn *rc = raw_open(r->run->o->target, r->run->o->token);
  raw_call *call = raw_start(rc, "/traind.v1.Trainer/LoadStateDict", 0);
  send_upload(r, call, 0, whole ? r->ckpt_len : r->ckpt_len / 2);
  stall(r);
  traind_status st = raw_drop(rc, call);
  expect_abandoned(r, "LoadStateDict (stalled, then dropped)", &st);
}

void *reader_main(void *arg) {
  client_ctx *cx = arg;
  reader *r = calloc(1, sizeof *r);
  if (!r) abort();
  r->cx = cx;
  r->run = cx->run;
  r->s = cx->session;
  const load_opts *o = r->run->o;
  traind_status st = load_connect(o, cx->slot, &r->c);
  if (st.code) {
    load_unexpected(cx->who, "connect", &st);
    free(r);
    return NULL;
  }
  double every = cx->role == ROLE_CHAOS ? o->chaos_every_s
                 : cx->role == ROLE_STALLER ? o->stall_every_s
                                           : 0;
  double next = now_s() + every * (0.5 + rng_unit(&cx->rng));
  while (!atomic_load(&r->run->stop) && r->c) {
    if (every > 0 && now_s() >= next) {
      if (cx->role == ROLE_CHAOS)
        chaos(r);
      else if (rng_unit(&cx->rng) < 0.5)
        stall_read(r);
      else
        stall_load(r);
      next = now_s() + every * (0.5 + rng_unit(&cx->rng));
      continue;
    }
    normal(r);
  }
  free(r->ckpt);
  traind_client_close(r->c);
  free(r);
  return NULL;
}
