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

td_status service_build_session(service *svc, const Traind__V1__CreateModelRequest *req,
                                session **out) {
  *out = NULL;
  if (!req->model) return td_error(TD_ERR_INVALID_ARGUMENT, "model is required");
  if (req->name && strlen(req->name) > SESSION_NAME_MAX)
    return td_error(TD_ERR_INVALID_ARGUMENT, "name: at most %d bytes, got %zu", SESSION_NAME_MAX,
                    strlen(req->name));
  /* The request as its file will keep it (persist/session_file.h). */
  size_t packed_len = protobuf_c_message_get_packed_size(&req->base);
  uint8_t *packed = malloc(packed_len ? packed_len : 1);
  if (!packed) return td_error(TD_ERR_NO_MEMORY, "out of memory creating the session");
  protobuf_c_message_pack(&req->base, packed);
  td_module *model = NULL;
  spec_optimizer opt = {0};
  /* Everything the session will own is charged to its account from the
   * first weight on (and the server's memory limit applies). */
  td_mem_account *mem = calloc(1, sizeof *mem);
  if (!mem) {
    free(packed);
    return td_error(TD_ERR_NO_MEMORY, "out of memory creating the session");
  }
  td_mem_account *previous = td_mem_set_account(mem);
  td_status st = spec_build_model(req->model, req->seed, &svc->limits, &model);
  if (!st && req->optimizer) st = spec_build_optimizer(req->optimizer, model, &opt);
  session *s = NULL;
  if (!st && session_create(svc->pool, req->name, model, opt.optimizer, opt.grad_clip_norm, mem,
                            &s))
    st = td_error(TD_ERR_NO_MEMORY, "out of memory creating the session");
  td_mem_set_account(previous);
  if (st) {
    td_optimizer_destroy(opt.optimizer);
    td_module_destroy(model);
    free(mem);
    free(packed);
    return st;
  }
  s->create_request = packed;
  s->create_request_len = packed_len;
  *out = s;
  return TD_OK;
}

/* Builds everything, then registers the session: a refused spec or a full
 * server leaves nothing behind. */
static td_status build_session(rpc_call *call, const Traind__V1__CreateModelRequest *req,
                               session **out) {
  service *svc = service_of(call);
  session *s;
  td_status st = service_build_session(svc, req, &s);
  if (st) return st;
  snprintf(s->tenant, sizeof s->tenant, "%s", rpc_call_principal(call));
  registry_quota quota = {svc->config->tenant_max_sessions, svc->config->tenant_max_parameters};
  registry_refusal refusal = registry_add(svc->sessions, s, &quota);
  int64_t params = s->num_parameters;
  if (refusal != REGISTRY_ADDED) session_release(s);
  switch (refusal) {
  case REGISTRY_ADDED:
    *out = s;
    return TD_OK;
  case REGISTRY_FULL:
    return td_error(TD_ERR_NO_MEMORY,
                    "this server already has its maximum of %d sessions (--max-sessions): close "
                    "one first",
                    svc->config->max_sessions);
  case REGISTRY_TENANT_SESSIONS:
    return td_error(TD_ERR_NO_MEMORY,
                    "your tenant already has its quota of %d open sessions "
                    "(--tenant-max-sessions): close one first",
                    svc->config->tenant_max_sessions);
  case REGISTRY_TENANT_PARAMETERS:
    return td_error(TD_ERR_NO_MEMORY,
                    "this model's %lld parameters would take your tenant over its quota of "
                    "%lld parameters in open sessions (--tenant-max-parameters): close a session "
                    "first",
                    (long long)params, (long long)svc->config->tenant_max_parameters);
  case REGISTRY_NO_ID:
    break;
  }
  return td_error(TD_ERR_INTERNAL, "no random bytes for a session id (getrandom failed)");
}

/* The session's first job, queued as soon as the registry lists it, so its
 * file is written on its queue like any later save, never alongside a
 * request. It always runs: a client that gave up before it learnt the id
 * could never use or close the session, so that session is removed rather
 * than left to count against the tenant's quota until it expires. */
typedef struct created_job {
  session_job job; /* first */
  rpc_call *call;
  session *session;
} created_job;

static void run_created(session_job *job) {
  created_job *cj = (created_job *)job;
  rpc_call *call = cj->call;
  session *s = cj->session;
  free(cj);
  service *svc = service_of(call);
  if (rpc_call_cancelled(call)) {
    session *own = registry_remove_owned(svc->sessions, s->id, s->tenant);
    if (own) {
      atomic_store(&own->closed, true); /* never saved */
      session_release(own);
    }
    log_info("session %s removed: its CreateModel was cancelled before it answered", s->id);
    rpc_call_finish(call, GRPC_STATUS_CANCELLED, "cancelled before the session was returned",
                    NULL);
    return;
  }
  /* Durable before it is acknowledged: a restart brings back every
   * session a client was told exists. */
  service_save(svc, s, "created");
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
}

static void create_session(void *arg) {
  rpc_call *call = arg;
  const Traind__V1__CreateModelRequest *req =
      (const Traind__V1__CreateModelRequest *)rpc_call_request(call);
  session *s = NULL;
  td_status st = build_session(call, req, &s);
  if (st) {
    service_fail(call, st);
    return;
  }
  created_job *cj = malloc(sizeof *cj);
  if (!cj) {
    session *own = registry_remove_owned(service_of(call)->sessions, s->id, s->tenant);
    session_release(own);
    session_release(s);
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  cj->job.run = run_created;
  cj->call = call;
  cj->session = s; /* session_submit takes the job's own reference */
  /* The call outlives the job: it is finished only by run_created. */
  session_submit(s, &cj->job);
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
