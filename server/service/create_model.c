/* create_model.c - CreateModel: a model and optimizer from their specs, and a
 * new session for them. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "service/handlers.h"
#include "service/service.h"
#include "util/log.h"

typedef struct create_job {
  pool_job job; /* first */
  rpc_call *call;
} create_job;

/* Builds everything, then registers the session: a refused spec or a full
 * server leaves nothing behind. */
static td_status build_session(service *svc, const Traind__V1__CreateModelRequest *req,
                               session **out) {
  *out = NULL;
  if (!req->model) return td_error(TD_ERR_INVALID_ARGUMENT, "model is required");
  if (req->name && strlen(req->name) > SESSION_NAME_MAX)
    return td_error(TD_ERR_INVALID_ARGUMENT, "name: at most %d bytes, got %zu", SESSION_NAME_MAX,
                    strlen(req->name));
  td_module *model = NULL;
  spec_optimizer opt = {0};
  td_status st = spec_build_model(req->model, req->seed, &svc->limits, &model);
  if (!st && req->optimizer) st = spec_build_optimizer(req->optimizer, model, &opt);
  session *s = NULL;
  if (!st && session_create(svc->pool, req->name, model, opt.optimizer, opt.grad_clip_norm, &s))
    st = td_error(TD_ERR_NO_MEMORY, "out of memory creating the session");
  if (st) {
    td_optimizer_destroy(opt.optimizer);
    td_module_destroy(model);
    return st;
  }
  if (registry_add(svc->sessions, s)) {
    session_release(s);
    return td_error(TD_ERR_NO_MEMORY,
                    "this server already has its maximum of %d sessions (--max-sessions): close "
                    "one first",
                    svc->config->max_sessions);
  }
  *out = s;
  return TD_OK;
}

static void create_session(void *arg) {
  rpc_call *call = arg;
  service *svc = service_of(call);
  const Traind__V1__CreateModelRequest *req =
      (const Traind__V1__CreateModelRequest *)rpc_call_request(call);
  session *s;
  td_status st = build_session(svc, req, &s);
  if (st) {
    service_fail(call, st);
    return;
  }
  log_info("session %s created (name \"%s\", %lld parameters, optimizer %s)", s->id, s->name,
           (long long)s->num_parameters, *s->optimizer_name ? s->optimizer_name : "none");
  Traind__V1__CreateModelResponse resp = TRAIND__V1__CREATE_MODEL_RESPONSE__INIT;
  Traind__V1__SessionInfo info;
  if (service_info_fill(s, &info)) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
  } else {
    resp.session_id = s->id;
    resp.info = &info;
    rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
  }
  service_info_clear(&info);
  session_release(s);
}

static void create_work(pool_job *job) {
  create_job *cj = (create_job *)job;
  rpc_call *call = cj->call;
  free(cj);
  if (rpc_call_cancelled(call))
    rpc_call_finish(call, GRPC_STATUS_CANCELLED, "cancelled before it ran", NULL);
  else
    service_run_cancellable(call, create_session, call);
}

void handle_create_model(rpc_call *call, const ProtobufCMessage *msg) {
  (void)msg;
  if (!service_admit(call)) return;
  service *svc = service_of(call);
  /* Refuse early when full; registry_add checks again after the build. */
  if (registry_count(svc->sessions) >= svc->config->max_sessions) {
    service_failf(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                  "this server already has its maximum of %d sessions (--max-sessions): close "
                  "one first",
                  svc->config->max_sessions);
    return;
  }
  create_job *cj = malloc(sizeof *cj);
  if (!cj) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  cj->job.run = create_work;
  cj->call = call;
  pool_submit(svc->pool, &cj->job);
}
