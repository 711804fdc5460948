/* load_writer.c - the one client per session that changes its state.
 *
 * One writer means the order of the state-changing requests is this thread's program
 * order, so the session's history is the log kept here: TRAIN k (the batch number, from
 * which the batch is rebuilt), SNAP id (a StateDict(include_optimizer) download, kept by
 * hash) and LOAD id (that download uploaded again). load_replay.c replays the log.
 *
 * Every TrainStep answer carries the step count, and the writer knows what it must be:
 * one more than before, or the snapshot's count after a load. A mismatch means the
 * session did something the log does not say (an abandoned call applied late, a partial
 * upload applied) and is reported at once.
 *
 * Now and then the writer abandons a TrainStep (a deadline of 1-64 ms, a channel
 * destroyed under it, or a child process killed mid-call). Whether the server applied
 * it is then learnt after the fact: a Forward queued behind it on the session (the
 * session runs its requests in arrival order, so when the Forward answers the abandoned
 * call has run or been dropped), then GetSession's step count.
 */
#include <stdlib.h>
#include <string.h>

#include "load_gen.h"

#define POOL 3 /* snapshots kept for later loads */

typedef struct snap {
  uint64_t id;
  uint8_t *data;
  size_t len;
  int64_t step;
} snap;

typedef struct writer {
  client_ctx *cx;
  load_run *run;
  load_session *s;
  traind_client *c;
  uint64_t k;    /* the next batch number */
  int64_t step;  /* the step count the session has */
  snap pool[POOL];
  int npool;
  uint64_t next_snap;
  batch b;
} writer;

static void reconnect(writer *w) {
  traind_client_close(w->c);
  w->c = NULL;
  traind_status st = load_connect(w->run->o, w->cx->slot, &w->c);
  if (st.code) {
    load_unexpected(w->cx->who, "reconnect", &st);
    atomic_store(&w->run->stop, true); /* nothing sensible is left to do */
  }
}

/* Logs the k-th batch as applied with the step count `step`. */
static void applied(writer *w, uint64_t k, int64_t step) {
  if (step < w->step + 1)
    load_unexpectedf(w->cx->who,
                     "TrainStep %llu: step count %lld, expected %lld: the session went back "
                     "%lld steps: an older checkpoint was loaded that this writer did not send "
                     "(readers only send LoadStateDict streams they abandon)",
                     (unsigned long long)k, (long long)step, (long long)(w->step + 1),
                     (long long)(w->step + 1 - step));
  else if (step != w->step + 1)
    load_unexpectedf(w->cx->who,
                     "TrainStep %llu: step count %lld, expected %lld: an abandoned TrainStep "
                     "ran after the request that was queued behind it had answered",
                     (unsigned long long)k, (long long)step, (long long)(w->step + 1));
  w->step = step;
  wlog_add(&w->s->log, WL_TRAIN, k, 0, step);
}

static void train(writer *w) {
  uint64_t k = w->k++;
  batch_fill(&w->b, w->s->id, w->run->o->seed, w->s->index, k);
  stall_class cls = stall_class_of(w->run, w->s);
  double t0 = now_s();
  Traind__V1__TrainStepResponse *resp = NULL;
  traind_status st = traind_train_step(w->c, &w->b.train, &resp);
  if (st.code == TRAIND_OK) {
    rec_add(&w->cx->rec, OP_TRAIN_STEP, cls, (now_s() - t0) * 1e3);
    applied(w, k, resp->step);
  } else {
    load_unexpected(w->cx->who, "TrainStep", &st);
    atomic_store(&w->run->stop, true); /* the log can no longer be trusted */
  }
  traind_message_free(resp);
}

/* Queued behind everything sent before it, then reads the step count: whether batch k's
 * abandoned TrainStep was applied. */
static bool resolve(writer *w, uint64_t k) {
  batch_fill(&w->b, w->s->id, w->run->o->seed, w->s->index, k);
  stall_class cls = stall_class_of(w->run, w->s);
  double t0 = now_s();
  traind_status st = traind_forward(w->c, &w->b.forward, NULL);
  if (st.code != TRAIND_OK) {
    load_unexpected(w->cx->who, "Forward (after an abandoned TrainStep)", &st);
    return false;
  }
  double t1 = now_s();
  rec_add(&w->cx->rec, OP_FORWARD, cls, (t1 - t0) * 1e3);
  Traind__V1__SessionInfo *info = NULL;
  st = traind_get_session(w->c, w->s->id, &info);
  if (st.code != TRAIND_OK) {
    load_unexpected(w->cx->who, "GetSession (after an abandoned TrainStep)", &st);
    return false;
  }
  rec_add(&w->cx->rec, OP_GET_SESSION, cls, (now_s() - t1) * 1e3);
  int64_t step = info->step;
  traind_message_free(info);
  if (step == w->step + 1) {
    applied(w, k, step);
    return true;
  }
  if (step != w->step) {
    load_unexpectedf(w->cx->who, "after abandoning TrainStep %llu the step count is %lld, not "
                                 "%lld or %lld",
                     (unsigned long long)k, (long long)step, (long long)w->step,
                     (long long)(w->step + 1));
    atomic_store(&w->run->stop, true);
  }
  return false;
}

static void abandon(writer *w) {
  uint64_t k = w->k++;
  batch_fill(&w->b, w->s->id, w->run->o->seed, w->s->index, k);
  double r = rng_unit(&w->cx->rng);
  chaos_kind kind = r < 0.5 ? CH_W_DEADLINE : r < 0.8 ? CH_W_DROP : CH_W_KILL;
  w->cx->rec.chaos[kind]++;
  bool done = false;
  if (kind == CH_W_DEADLINE) {
    /* Same connection as the Forward of resolve(): its request cannot overtake. */
    traind_client_set_timeout(w->c, abandon_deadline_ms(&w->cx->rng));
    Traind__V1__TrainStepResponse *resp = NULL;
    traind_status st = traind_train_step(w->c, &w->b.train, &resp);
    traind_client_set_timeout(w->c, 60000);
    if (st.code == TRAIND_OK) {
      applied(w, k, resp->step);
      done = true;
    } else {
      if (!abandon_expected(st.code)) load_unexpected(w->cx->who, "TrainStep (deadline)", &st);
      traind_status_clear(&st);
      done = resolve(w, k);
    }
    traind_message_free(resp);
    if (rng_unit(&w->cx->rng) < 0.5) reconnect(w);
  } else {
    if (kind == CH_W_DROP) {
      raw_conn *rc = raw_open(w->run->o->target, w->run->o->token);
      raw_call *call = raw_start(rc, "/traind.v1.Trainer/TrainStep", 0);
      raw_send(call, &w->b.train.base, true);
      sleep_s(rng_unit(&w->cx->rng) * 2e-3);
      traind_status st = raw_drop(rc, call);
      if (!abandon_expected(st.code)) load_unexpected(w->cx->who, "TrainStep (dropped)", &st);
      traind_status_clear(&st);
    } else {
      child_run(w->cx, CHILD_TRAIN, k, 3.0);
    }
    /* The abandoned request came on another connection: give the server a moment to
     * have read it (or its end) before the Forward on this one. The step check of the
     * next TrainStep catches one that still ran later. */
    sleep_s(0.03);
    done = resolve(w, k);
  }
  if (done) w->cx->rec.chaos_done[kind]++;
}

static void snapshot(writer *w) {
  stall_class cls = stall_class_of(w->run, w->s);
  double t0 = now_s();
  uint8_t *data = NULL;
  size_t len = 0;
  traind_status st = traind_state_dict_to_buffer(w->c, w->s->id, true, &data, &len);
  if (st.code != TRAIND_OK) {
    load_unexpected(w->cx->who, "StateDict", &st);
    return;
  }
  rec_add(&w->cx->rec, OP_STATE_DICT, cls, (now_s() - t0) * 1e3);
  uint64_t id = w->next_snap++;
  wlog_add(&w->s->log, WL_SNAP, id, hash_bytes(data, len), w->step);
  if (w->npool == POOL) { /* the oldest goes */
    free(w->pool[0].data);
    memmove(&w->pool[0], &w->pool[1], (POOL - 1) * sizeof w->pool[0]);
    w->npool--;
  }
  w->pool[w->npool++] = (snap){id, data, len, w->step};
}

static void load(writer *w) {
  snap *p = &w->pool[rng_next(&w->cx->rng) % (uint64_t)w->npool];
  stall_class cls = stall_class_of(w->run, w->s);
  double t0 = now_s();
  Traind__V1__LoadStateDictResponse *resp = NULL;
  traind_status st = traind_load_state_dict_from_buffer(w->c, w->s->id, true, p->data, p->len,
                                                        &resp);
  if (st.code != TRAIND_OK) {
    load_unexpected(w->cx->who, "LoadStateDict", &st);
    atomic_store(&w->run->stop, true);
    return;
  }
  rec_add(&w->cx->rec, OP_LOAD_STATE_DICT, cls, (now_s() - t0) * 1e3);
  if (resp->n_missing_keys || resp->n_unexpected_keys)
    load_unexpectedf(w->cx->who, "LoadStateDict of its own snapshot: %zu missing, %zu "
                                 "unexpected keys",
                     resp->n_missing_keys, resp->n_unexpected_keys);
  traind_message_free(resp);
  w->step = p->step;
  wlog_add(&w->s->log, WL_LOAD, p->id, 0, w->step);
}

void *writer_main(void *arg) {
  client_ctx *cx = arg;
  writer *w = calloc(1, sizeof *w);
  if (!w) abort();
  w->cx = cx;
  w->run = cx->run;
  w->s = cx->session;
  const load_opts *o = w->run->o;
  traind_status st = load_connect(o, cx->slot, &w->c);
  if (st.code) {
    load_unexpected(cx->who, "connect", &st);
    free(w);
    return NULL;
  }
  double next_abandon = now_s() + o->chaos_every_s * (0.5 + rng_unit(&cx->rng));
  while (!atomic_load(&w->run->stop) && w->c) {
    if (o->chaos_every_s > 0 && now_s() >= next_abandon) {
      abandon(w);
      next_abandon = now_s() + o->chaos_every_s * (0.5 + rng_unit(&cx->rng));
      continue;
    }
    double r = rng_unit(&cx->rng);
    if (r < 0.04)
      snapshot(w);
    else if (r < 0.06 && w->npool)
      load(w);
    else
      train(w);
  }
  w->s->final_step = w->step;
  for (int i = 0; i < w->npool; i++) free(w->pool[i].data);
  traind_client_close(w->c);
  free(w);
  return NULL;
}
