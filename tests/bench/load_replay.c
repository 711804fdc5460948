/* load_replay.c - the check that concurrency and chaos changed nothing they should not:
 * each session's writer log replayed on a fresh session (same spec, same seed), by one
 * client with nothing else running on that session, must give the same bytes.
 *
 * Snapshots are checked on the way (the replay downloads its own at the same points and
 * compares their hashes with the live ones), which locates a divergence; the replay's
 * own snapshot bytes are what it uploads for a LOAD (they are the live bytes, by hash),
 * so the live run never had to keep them all. The final StateDict(include_optimizer) of
 * the live and replayed sessions must be byte-identical: safetensors with the weights,
 * the optimizer's state, its step count and schedule position.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_gen.h"

static void failf(replay_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(replay_result *r, const char *fmt, ...) {
  if (!r->ok) return; /* the first difference is the one worth reading */
  r->ok = false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->detail, sizeof r->detail, fmt, ap);
  va_end(ap);
}

static void fail_status(replay_result *r, const char *what, traind_status *st) {
  failf(r, "%s: %s: %s", what, traind_code_name(st->code), st->message ? st->message : "");
  traind_status_clear(st);
}

/* Runs the log; false at the first difference. */
static bool run_log(const load_opts *o, load_session *s, traind_client *c, const char *rid,
                    replay_result *r) {
  const wlog *log = &s->log;
  size_t nsnap = 0;
  for (size_t i = 0; i < log->n; i++)
    if (log->v[i].kind == WL_SNAP) nsnap = log->v[i].arg + 1;
  /* Snapshot bytes are kept until their last LOAD. */
  size_t *last_load = malloc((nsnap + 1) * sizeof *last_load);
  uint8_t **bytes = calloc(nsnap + 1, sizeof *bytes);
  size_t *lens = calloc(nsnap + 1, sizeof *lens);
  batch *b = malloc(sizeof *b);
  if (!last_load || !bytes || !lens || !b) abort();
  for (size_t i = 0; i < nsnap; i++) last_load[i] = SIZE_MAX;
  for (size_t i = 0; i < log->n; i++)
    if (log->v[i].kind == WL_LOAD) last_load[log->v[i].arg] = i;

  for (size_t i = 0; i < log->n && r->ok; i++) {
    const wlog_entry *e = &log->v[i];
    traind_status st;
    if (e->kind == WL_TRAIN) {
      batch_fill(b, rid, o->seed, s->index, e->arg);
      Traind__V1__TrainStepResponse *resp = NULL;
      st = traind_train_step(c, &b->train, &resp);
      if (st.code != TRAIND_OK)
        fail_status(r, "replay TrainStep", &st);
      else if (resp->step != e->step)
        failf(r, "log entry %zu (TrainStep %llu): step %lld, the live session had %lld", i,
              (unsigned long long)e->arg, (long long)resp->step, (long long)e->step);
      traind_message_free(resp);
      r->trains++;
    } else if (e->kind == WL_SNAP) {
      uint8_t *data = NULL;
      size_t len = 0;
      st = traind_state_dict_to_buffer(c, rid, true, &data, &len);
      if (st.code != TRAIND_OK) {
        fail_status(r, "replay StateDict", &st);
      } else if (hash_bytes(data, len) != e->hash) {
        failf(r, "log entry %zu (snapshot %llu at step %lld): the replayed state differs from "
                 "the live one",
              i, (unsigned long long)e->arg, (long long)e->step);
      } else if (last_load[e->arg] != SIZE_MAX) {
        bytes[e->arg] = data;
        lens[e->arg] = len;
        data = NULL;
      }
      free(data);
      r->snaps++;
    } else {
      st = traind_load_state_dict_from_buffer(c, rid, true, bytes[e->arg], lens[e->arg], NULL);
      if (st.code != TRAIND_OK) fail_status(r, "replay LoadStateDict", &st);
      if (last_load[e->arg] == i) {
        free(bytes[e->arg]);
        bytes[e->arg] = NULL;
      }
      r->loads++;
    }
  }
  for (size_t i = 0; i < nsnap; i++) free(bytes[i]);
  free(bytes);
  free(lens);
  free(last_load);
  free(b);
  return r->ok;
}

static void compare_final(load_session *s, traind_client *c, const char *rid,
                          replay_result *r) {
  uint8_t *live = NULL, *again = NULL;
  size_t live_len = 0, again_len = 0;
  traind_status st = traind_state_dict_to_buffer(c, s->id, true, &live, &live_len);
  if (st.code != TRAIND_OK) {
    fail_status(r, "live StateDict", &st);
  } else if ((st = traind_state_dict_to_buffer(c, rid, true, &again, &again_len)).code) {
    fail_status(r, "replay StateDict", &st);
  } else if (live_len != again_len) {
    failf(r, "final state: %zu bytes live, %zu replayed", live_len, again_len);
  } else {
    size_t at = 0;
    while (at < live_len && live[at] == again[at]) at++;
    if (at < live_len) failf(r, "final state: the bytes differ from offset %zu of %zu", at, live_len);
    r->bytes = live_len;
  }
  free(live);
  free(again);
}

#define PROBES 4

/* The abandoned uploads of load_gen.h's comment: `ckpt` (the fresh session's initial
 * state, unlike the live one) sent whole, never closed, then abandoned. */
static void probe_abandoned_uploads(const load_opts *o, load_session *s, traind_client *c,
                                    const uint8_t *ckpt, size_t ckpt_len, replay_result *r) {
  uint8_t *before = NULL, *after = NULL;
  size_t before_len = 0, after_len = 0;
  traind_status st = traind_state_dict_to_buffer(c, s->id, true, &before, &before_len);
  for (int i = 0; st.code == TRAIND_OK && i < PROBES && !r->applied; i++) {
    raw_conn *rc = raw_open(o->target, o->token);
    raw_call *call = raw_start(rc, "/traind.v1.Trainer/LoadStateDict", 0);
    bool sent = true;
    for (size_t off = 0; sent && off < ckpt_len; off += 1u << 20) {
      Traind__V1__LoadStateDictRequest req = TRAIND__V1__LOAD_STATE_DICT_REQUEST__INIT;
      if (off == 0) req.session_id = s->id;
      req.has_data = true;
      req.data.data = (uint8_t *)ckpt + off;
      req.data.len = ckpt_len - off < (1u << 20) ? ckpt_len - off : 1u << 20;
      sent = raw_send(call, &req.base, false);
    }
    sleep_s(0.05); /* the server has every byte; only the close is missing */
    traind_status abandoned;
    bool cancel = i % 2 == 0;
    if (cancel) { /* RST_STREAM on a connection that stays */
      abandoned = raw_finish(call, true);
      raw_close(rc);
    } else { /* the connection goes too */
      abandoned = raw_drop(rc, call);
    }
    traind_status_clear(&abandoned);
    sleep_s(0.1);
    r->probes++;
    free(after);
    after = NULL;
    st = traind_state_dict_to_buffer(c, s->id, true, &after, &after_len);
    if (st.code == TRAIND_OK && (after_len != before_len || memcmp(after, before, after_len))) {
      r->applied++;
      snprintf(r->probe_detail, sizeof r->probe_detail,
               "upload %d of %d, never closed and then %s, was applied: the live session "
               "holds the uploaded checkpoint",
               i + 1, PROBES, cancel ? "cancelled" : "dropped with its connection");
    }
  }
  if (st.code != TRAIND_OK) {
    snprintf(r->probe_detail, sizeof r->probe_detail, "StateDict: %s: %s",
             traind_code_name(st.code), st.message ? st.message : "");
    r->applied++; /* counted as a failure: the probe could not tell */
    traind_status_clear(&st);
  }
  free(before);
  free(after);
}

void replay_session(const load_opts *o, load_session *s, traind_client *c, replay_result *r) {
  memset(r, 0, sizeof *r);
  r->ok = true;
  double t0 = now_s();
  char rid[33];
  traind_status st = create_session(c, o->seed, s->index, s->hidden, rid);
  if (st.code != TRAIND_OK) {
    fail_status(r, "CreateModel for the replay", &st);
    return;
  }
  /* The fresh state, for the probe after the replay (the replay then holds the live state). */
  uint8_t *fresh = NULL;
  size_t fresh_len = 0;
  st = traind_state_dict_to_buffer(c, rid, true, &fresh, &fresh_len);
  if (st.code != TRAIND_OK) fail_status(r, "StateDict of the fresh session", &st);
  if (r->ok && run_log(o, s, c, rid, r)) compare_final(s, c, rid, r);
  if (fresh) probe_abandoned_uploads(o, s, c, fresh, fresh_len, r);
  free(fresh);
  st = traind_close_session(c, rid);
  if (st.code) fail_status(r, "CloseSession (replay)", &st);
  st = traind_close_session(c, s->id);
  if (st.code) fail_status(r, "CloseSession (live)", &st);
  r->seconds = now_s() - t0;
}
