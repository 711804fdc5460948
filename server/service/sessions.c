/* sessions.c - GetSession, ListSessions, CloseSession and SetTraining. */
#include <stdlib.h>
#include <string.h>

#include "service/handlers.h"
#include "service/service.h"
#include "util/log.h"

/* Info comes from the summary, so GetSession and ListSessions answer on the
 * loop at once instead of waiting behind a session's training work. */
void handle_get_session(rpc_call *call, const ProtobufCMessage *msg) {
  const Traind__V1__GetSessionRequest *req = (const Traind__V1__GetSessionRequest *)msg;
  if (!service_admit(call)) return;
  session *s = service_find(call, req->session_id, false);
  if (!s) return;
  Traind__V1__SessionInfo info;
  if (service_info_fill(s, &info))
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
  else
    rpc_call_finish(call, GRPC_STATUS_OK, NULL, &info.base);
  service_info_clear(&info);
  session_release(s);
}

void handle_list_sessions(rpc_call *call, const ProtobufCMessage *msg) {
  (void)msg;
  if (!service_admit(call)) return;
  session **list;
  int n;
  if (registry_list(service_of(call)->sessions, &list, &n)) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  Traind__V1__ListSessionsResponse resp = TRAIND__V1__LIST_SESSIONS_RESPONSE__INIT;
  Traind__V1__SessionInfo *infos = calloc((size_t)(n ? n : 1), sizeof *infos);
  Traind__V1__SessionInfo **ptrs = calloc((size_t)(n ? n : 1), sizeof *ptrs);
  bool ok = infos && ptrs;
  int filled = 0;
  const char *tenant = rpc_call_principal(call);
  for (int i = 0; ok && i < n; i++) {
    if (strcmp(list[i]->tenant, tenant)) continue; /* only the caller's own */
    if (service_info_fill(list[i], &infos[filled])) ok = false;
    ptrs[filled] = &infos[filled];
    filled++;
  }
  if (ok) {
    resp.sessions = ptrs;
    resp.n_sessions = (size_t)filled;
    rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
  } else {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
  }
  for (int i = 0; i < filled; i++) service_info_clear(&infos[i]);
  for (int i = 0; i < n; i++) session_release(list[i]);
  free(infos);
  free(ptrs);
  free(list);
}

/* The session leaves the registry now (its id is NOT_FOUND from here on);
 * requests already queued still run, then its file is deleted and the
 * close answered (service_forget); the last reference frees it. */
void handle_close_session(rpc_call *call, const ProtobufCMessage *msg) {
  const Traind__V1__CloseSessionRequest *req = (const Traind__V1__CloseSessionRequest *)msg;
  if (!service_admit(call)) return;
  session *s = service_find(call, req->session_id, true);
  if (!s) return;
  log_info("session %s closed (name \"%s\", %lld steps)", s->id, s->name,
           (long long)session_get_summary(s).step);
  service_forget(service_of(call), s, call);
  session_release(s);
}

static void set_training_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  const Traind__V1__SetTrainingRequest *req = (const Traind__V1__SetTrainingRequest *)msg;
  bool changed = s->model->training != req->training;
  td_module_train(s->model, req->training);
  session_update_summary(s);
  if (changed) service_save(service_of(call), s, "train/eval switched");
  Traind__V1__SetTrainingResponse resp = TRAIND__V1__SET_TRAINING_RESPONSE__INIT;
  resp.has_training = true;
  resp.training = req->training;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
}

void handle_set_training(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__SetTrainingRequest *)msg)->session_id,
                set_training_work);
}
