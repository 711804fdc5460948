/* common.c - what every handler shares: status mapping, the session queue,
 * model snapshots. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cancel.h"
#include "core/status.h"
#include "service/service.h"
#include "util/log.h"

grpc_status_code service_status_code(td_status st) {
  switch (st) {
  case TD_OK: return GRPC_STATUS_OK;
  case TD_ERR_INVALID_ARGUMENT: return GRPC_STATUS_INVALID_ARGUMENT;
  case TD_ERR_OUT_OF_RANGE: return GRPC_STATUS_OUT_OF_RANGE;
  case TD_ERR_FAILED_PRECONDITION: return GRPC_STATUS_FAILED_PRECONDITION;
  case TD_ERR_NOT_FOUND: return GRPC_STATUS_NOT_FOUND;
  case TD_ERR_NO_MEMORY: return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case TD_ERR_FORMAT: return GRPC_STATUS_INVALID_ARGUMENT; /* a client's bytes were bad */
  case TD_ERR_IO: return GRPC_STATUS_INTERNAL;
  case TD_ERR_INTERNAL: return GRPC_STATUS_INTERNAL;
  case TD_ERR_CANCELLED: return GRPC_STATUS_CANCELLED;
  }
  return GRPC_STATUS_INTERNAL;
}

void service_fail(rpc_call *call, td_status st) {
  grpc_status_code code = service_status_code(st);
  const char *msg = td_error_message();
  if (code == GRPC_STATUS_INTERNAL)
    log_error("%s: %s", rpc_call_method(call)->path, msg);
  else
    log_debug("%s: %s", rpc_call_method(call)->path, msg);
  rpc_call_finish(call, code, msg, NULL);
}

void service_failf(rpc_call *call, grpc_status_code code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_debug("%s: %s", rpc_call_method(call)->path, msg);
  rpc_call_finish(call, code, msg, NULL);
}

bool service_admit(rpc_call *call) {
  service *svc = service_of(call);
  if (rpc_server_draining(svc->rpc)) {
    rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE,
                    "the server is shutting down and takes no new work; retry on another replica",
                    NULL);
    return false;
  }
  if (!svc->tokens) return true;
  char tenant[TOKENS_TENANT_MAX + 1];
  if (!tokens_authenticate(svc->tokens, rpc_call_authorization(call), tenant)) {
    /* One message whatever was wrong: missing, malformed or unknown. */
    rpc_call_finish(call, GRPC_STATUS_UNAUTHENTICATED,
                    "this server requires a valid bearer token (metadata 'authorization: Bearer "
                    "TOKEN')",
                    NULL);
    return false;
  }
  rpc_call_set_principal(call, tenant);
  return true;
}

typedef struct queued_work {
  session_job job; /* first: the job pointer is the struct's */
  rpc_call *call;
  session *session;
  session_work work;
} queued_work;

static bool call_cancelled(void *call) { return rpc_call_cancelled(call); }

/* The hold keeps the check's pointer valid even after run() has finished
 * the call (which may free it at once otherwise). */
void service_run_cancellable(rpc_call *call, void (*run)(void *arg), void *arg) {
  rpc_call_hold(call);
  td_cancel_set(call_cancelled, call);
  run(arg);
  td_cancel_set(NULL, NULL);
  rpc_call_release(call);
}

/* The work's allocations are charged to its session. */
static void run_work(void *arg) {
  queued_work *q = arg;
  td_mem_account *previous = td_mem_set_account(q->session->mem);
  q->work(q->call, q->session, rpc_call_request(q->call));
  td_mem_set_account(previous);
}

/* A call whose client went away (or whose deadline passed) while it waited
 * is not started; one that goes away while it runs stops at the next op
 * (core/cancel.h) and, like any failure, leaves the session unchanged. */
static void run_queued(session_job *job) {
  queued_work *q = (queued_work *)job;
  if (rpc_call_cancelled(q->call)) {
    rpc_call_finish(q->call, GRPC_STATUS_CANCELLED, "cancelled before it ran", NULL);
  } else {
    log_debug("session %s: %s running", q->session->id, rpc_call_method(q->call)->path);
    service_run_cancellable(q->call, run_work, q);
  }
  free(q);
}

session *service_find(rpc_call *call, const char *session_id, bool take) {
  if (!session_id || !*session_id) {
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "session_id is required", NULL);
    return NULL;
  }
  registry *r = service_of(call)->sessions;
  const char *tenant = rpc_call_principal(call);
  session *s = take ? registry_remove_owned(r, session_id, tenant)
                    : registry_get_owned(r, session_id, tenant);
  if (!s)
    service_failf(call, GRPC_STATUS_NOT_FOUND,
                  "session \"%.64s\" not found (never created, closed, or expired)", session_id);
  return s;
}

void service_queue(rpc_call *call, const char *session_id, session_work work) {
  if (!service_admit(call)) return;
  session *s = service_find(call, session_id, false);
  if (!s) return;
  service_queue_on(call, s, work);
  session_release(s);
}

void service_queue_on(rpc_call *call, session *s, session_work work) {
  queued_work *q = malloc(sizeof *q);
  if (!q) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  q->job.run = run_queued;
  q->call = call;
  q->session = s; /* session_submit takes the job's own reference */
  q->work = work;
  session_submit(s, &q->job);
}

/* ---- session state helpers ---------------------------------------------------- */

void session_clear_grads(session *s) {
  for (int i = 0; i < td_gm_num_attached(s->gm); i++) {
    td_tensor *p = td_gm_attached(s->gm, i);
    td_tensor_release(p->grad);
    p->grad = NULL;
  }
  session_drop_recording(s);
}

void session_drop_recording(session *s) {
  td_gm_release(s->gm);
  td_gm_release(s->gm_next);
  td_tensor_release(s->recorded_output);
  td_tensor_release(s->recorded_loss);
  s->recorded_output = s->recorded_loss = NULL;
}

float session_grad_norm(session *s) {
  int n = td_gm_num_attached(s->gm);
  td_tensor **params = malloc((size_t)(n ? n : 1) * sizeof *params);
  if (!params) return NAN;
  for (int i = 0; i < n; i++) params[i] = td_gm_attached(s->gm, i);
  float norm = 0;
  if (td_clip_grad_norm(params, n, INFINITY, &norm)) norm = NAN;
  free(params);
  return norm;
}

td_status model_snapshot_take(td_module *m, model_snapshot *snap) {
  td_tensor_map_init(&snap->buffers);
  td_tensor_map_init(&snap->rng);
  td_tensor_map live;
  td_status st = td_module_named_buffers(m, &live);
  for (size_t i = 0; !st && i < live.count; i++) {
    td_tensor *copy = NULL;
    st = td_tensor_clone(live.entries[i].tensor, &copy);
    if (!st) st = td_tensor_map_put(&snap->buffers, live.entries[i].name, copy);
    td_tensor_release(copy);
  }
  td_tensor_map_free(&live);
  if (!st) st = td_module_rng_state(m, &snap->rng, "");
  if (st) model_snapshot_free(snap);
  return st;
}

void model_snapshot_restore(td_module *m, model_snapshot *snap) {
  td_tensor_map live;
  if (td_module_named_buffers(m, &live) == TD_OK) {
    for (size_t i = 0; i < live.count && i < snap->buffers.count; i++)
      (void)td_tensor_copy_(live.entries[i].tensor, snap->buffers.entries[i].tensor);
    td_tensor_map_free(&live);
  }
  (void)td_module_load_rng_state(m, &snap->rng, "");
}

void model_snapshot_free(model_snapshot *snap) {
  td_tensor_map_free(&snap->buffers);
  td_tensor_map_free(&snap->rng);
}
