/* durability.c - when a session is saved, deleted, and brought back.
 *
 * What a crash can lose is what happened since the session's last save:
 * at most --autosave-steps - 1 optimizer steps (and the gradients and
 * BatchNorm statistics of requests since), never a session that CreateModel
 * acknowledged, a LoadStateDict or SetTraining that was acknowledged, or a
 * CloseSession that was (the close answers after the file is gone). The
 * file I/O runs on the session's serial queue, so a save is a consistent
 * state between two requests and never races another request's changes.
 */
#include <stdlib.h>
#include <string.h>

#include "core/cancel.h"
#include "io/checkpoint.h"
#include "rpc/wire.h"
#include "service/service.h"
#include "util/log.h"

static int64_t steps_of(const session *s) {
  return s->optimizer ? td_optimizer_num_steps(s->optimizer) : 0;
}

void service_save(service *svc, session *s, const char *why) {
  if (!svc->store || atomic_load(&s->closed)) return;
  td_cancel_set(NULL, NULL);
  int64_t step = steps_of(s);
  td_mem_account *previous = td_mem_set_account(s->mem);
  td_status st = store_save(svc->store, s);
  td_mem_set_account(previous);
  session_save_state before = session_get_save_state(s);
  if (st) {
    /* Once per distinct failure: a full disk would otherwise log every
     * autosave until someone frees space. */
    if (strcmp(before.error, td_error_message()))
      log_error("session %s: save (%s, step %lld) failed; its previous save stays: %s", s->id,
                why, (long long)step, td_error_message());
    session_note_save(s, step, td_error_message());
    return;
  }
  if (before.error[0])
    log_info("session %s: saved again (%s, step %lld) after failing with: %s", s->id, why,
             (long long)step, before.error);
  else
    log_debug("session %s: saved (%s, step %lld)", s->id, why, (long long)step);
  session_note_save(s, step, NULL);
}

void service_autosave(service *svc, session *s) {
  int every = svc->config->autosave_steps;
  if (every <= 0) return;
  if (steps_of(s) - session_get_save_state(s).saved_step >= every)
    service_save(svc, s, "autosave");
}

/* ---- deletion -------------------------------------------------------------- */

typedef struct forget_job {
  session_job job; /* first */
  service *svc;
  session *session;
  rpc_call *call;
} forget_job;

static void run_forget(session_job *job) {
  forget_job *f = (forget_job *)job;
  if (f->svc->store) {
    td_status st = store_remove(f->svc->store, f->session->id);
    if (st)
      log_error("session %s: closed, but its file stays and a restart would restore it: %s",
                f->session->id, td_error_message());
  }
  if (f->call) {
    Traind__V1__CloseSessionResponse resp = TRAIND__V1__CLOSE_SESSION_RESPONSE__INIT;
    rpc_call_finish(f->call, GRPC_STATUS_OK, NULL, &resp.base);
  }
  free(f);
}

void service_forget(service *svc, session *s, rpc_call *close_call) {
  atomic_store(&s->closed, true);
  forget_job *f = malloc(sizeof *f);
  if (!f) {
    log_error("session %s: out of memory deleting its file; a restart would restore it", s->id);
    if (close_call) rpc_call_finish(close_call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                                    NULL);
    return;
  }
  f->job.run = run_forget;
  f->svc = svc;
  f->session = s; /* session_submit takes the job's reference */
  f->call = close_call;
  session_submit(s, &f->job);
}

/* ---- restore and shutdown -------------------------------------------------- */

td_status service_session_from_record(service *svc, const session_record *rec, session **out) {
  *out = NULL;
  if (!rpc_wire_depth_ok(&traind__v1__create_model_request__descriptor, rec->create_request,
                         rec->create_request_len, RPC_WIRE_MAX_DEPTH))
    return td_error(TD_ERR_FORMAT, "its create_request nests too deep");
  Traind__V1__CreateModelRequest *req =
      traind__v1__create_model_request__unpack(NULL, rec->create_request_len, rec->create_request);
  if (!req) return td_error(TD_ERR_FORMAT, "its create_request does not decode");
  session *s;
  td_status st = service_build_session(svc, req, &s);
  traind__v1__create_model_request__free_unpacked(req, NULL);
  if (st) return st;
  td_mem_account *previous = td_mem_set_account(s->mem);
  st = td_checkpoint_load_state(s->model, s->optimizer, &rec->state, true, NULL);
  td_mem_set_account(previous);
  if (st) {
    session_release(s);
    return st;
  }
  td_module_train(s->model, rec->training);
  memcpy(s->id, rec->id, sizeof s->id);
  memcpy(s->tenant, rec->tenant, sizeof s->tenant);
  s->created_ms = rec->created_ms;
  session_update_summary(s);
  session_note_save(s, steps_of(s), NULL);
  *out = s;
  return TD_OK;
}

typedef struct restore_ctx {
  service *svc;
  int restored;
} restore_ctx;

static void restore_one(session_record *rec, void *arg) {
  restore_ctx *ctx = arg;
  session *s;
  td_status st = service_session_from_record(ctx->svc, rec, &s);
  if (st) {
    /* The file stays: a later start with other limits may take it. */
    log_error("session %s not restored: %s", rec->id, td_error_message());
  } else if (registry_restore(ctx->svc->sessions, s) != REGISTRY_ADDED) {
    log_error("session %s not restored: --max-sessions (%d) are open", rec->id,
              ctx->svc->config->max_sessions);
    session_release(s);
  } else {
    log_info("session %s restored (name \"%s\", step %lld, %s mode)", s->id, s->name,
             (long long)steps_of(s), rec->training ? "train" : "eval");
    session_release(s);
    ctx->restored++;
  }
  session_record_free(rec);
}

int service_restore(service *svc) {
  restore_ctx ctx = {svc, 0};
  if (svc->store) store_scan(svc->store, restore_one, &ctx);
  return ctx.restored;
}

int service_save_all(service *svc) {
  session **list;
  int n, failed = 0;
  if (!svc->store || registry_list(svc->sessions, &list, &n)) return 0;
  for (int i = 0; i < n; i++) {
    service_save(svc, list[i], "shutdown");
    if (session_get_save_state(list[i]).error[0]) failed++;
    session_release(list[i]);
  }
  free(list);
  return failed;
}
