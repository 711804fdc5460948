/* load_state_dict.c - LoadStateDict: a checkpoint uploaded as a stream,
 * loaded all-or-nothing once the stream is complete. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "service/handlers.h"
#include "service/service.h"
#include "util/log.h"

typedef struct upload {
  session *session; /* a reference, from the first message */
  bool strict;
  unsigned char *data;
  size_t size, cap, limit;
} upload;

static void upload_free(void *arg) {
  upload *u = arg;
  if (!u) return;
  td_free(u->data); /* credits the session's account (core/alloc.h) */
  session_release(u->session);
  free(u);
}

/* The largest upload accepted: the largest model this server builds, with
 * optimizer state for it (up to three buffers per parameter) and headroom
 * for the header and buffers. */
static size_t upload_limit(const service *svc) {
  return (size_t)svc->config->max_parameters * 4 * 4 + ((size_t)64 << 20);
}

/* Ends the call early: the rpc layer reads no further message after a
 * finish, so the upload is dropped here. */
static void fail_upload(rpc_call *call, upload *u, grpc_status_code code, const char *fmt,
                        const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  rpc_call_set_user(call, NULL, NULL);
  upload_free(u);
  rpc_call_finish(call, code, msg, NULL);
}

void load_state_dict_message(rpc_call *call, const ProtobufCMessage *msg) {
  const Traind__V1__LoadStateDictRequest *req = (const Traind__V1__LoadStateDictRequest *)msg;
  service *svc = service_of(call);
  upload *u = rpc_call_user(call);
  if (!u) { /* the first message names the session */
    u = calloc(1, sizeof *u);
    if (!u) {
      rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
      return;
    }
    u->strict = req->strict;
    u->limit = upload_limit(svc);
    if (!service_admit(call)) {
      free(u);
      return;
    }
    rpc_call_set_user(call, u, upload_free);
    u->session = service_find(call, req->session_id, false); /* finishes the call if not */
    if (!u->session) {
      rpc_call_set_user(call, NULL, NULL);
      upload_free(u);
      return;
    }
    log_debug("session %s: LoadStateDict receiving", u->session->id);
  }
  if (!req->has_data || req->data.len == 0) return;
  if (req->data.len > u->limit - u->size) {
    char limit[32];
    snprintf(limit, sizeof limit, "%zu", u->limit);
    fail_upload(call, u, GRPC_STATUS_RESOURCE_EXHAUSTED,
                "the checkpoint is larger than this server accepts (%s bytes, from "
                "--max-parameters)",
                limit);
    return;
  }
  if (u->size + req->data.len > u->cap) {
    size_t cap = u->cap ? u->cap : (size_t)1 << 20;
    while (cap < u->size + req->data.len) cap *= 2;
    if (cap > u->limit) cap = u->limit;
    /* Charged to the session like its tensors, so that uploads in flight
     * count against --max-memory too. */
    td_mem_account *previous = td_mem_set_account(u->session->mem);
    unsigned char *grown = td_alloc(cap, "checkpoint upload");
    td_mem_set_account(previous);
    if (!grown) {
      fail_upload(call, u, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", td_error_message());
      return;
    }
    if (u->size) memcpy(grown, u->data, u->size);
    td_free(u->data);
    u->data = grown;
    u->cap = cap;
  }
  memcpy(u->data + u->size, req->data.data, req->data.len);
  u->size += req->data.len;
}

static bool has_optimizer_keys(const td_tensor_map *m) {
  size_t n = strlen(TD_CHECKPOINT_OPTIMIZER_PREFIX);
  for (size_t i = 0; i < m->count; i++)
    if (!strncmp(m->entries[i].name, TD_CHECKPOINT_OPTIMIZER_PREFIX, n)) return true;
  for (size_t i = 0; i < m->meta_count; i++)
    if (!strncmp(m->meta[i].key, TD_CHECKPOINT_OPTIMIZER_PREFIX, n)) return true;
  return false;
}

static char **dup_list(char **src, int n) { return n ? src : NULL; }

static void load_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  (void)msg;
  upload *u = rpc_call_user(call);
  td_tensor_map state;
  td_tensor_map_init(&state);
  td_status st = td_safetensors_read_buffer(u->data, u->size, &state);
  if (st) td_error_prefix("checkpoint upload (%zu bytes): ", u->size);
  td_load_result result = {0};
  if (!st) {
    bool with_optimizer = s->optimizer && has_optimizer_keys(&state);
    st = td_checkpoint_load_state(s->model, with_optimizer ? s->optimizer : NULL, &state,
                                  u->strict, &result);
    td_tensor_map_free(&state);
  }
  if (!st) {
    /* The loaded values replaced what a recording saw: it cannot be used. */
    session_drop_recording(s);
  }
  session_update_summary(s);
  rpc_call_set_user(call, NULL, NULL);
  upload_free(u);
  if (st) {
    td_load_result_free(&result);
    service_fail(call, st);
    return;
  }
  service_save(service_of(call), s, "checkpoint loaded");
  Traind__V1__LoadStateDictResponse resp = TRAIND__V1__LOAD_STATE_DICT_RESPONSE__INIT;
  resp.missing_keys = dup_list(result.missing_keys, result.n_missing);
  resp.n_missing_keys = (size_t)result.n_missing;
  resp.unexpected_keys = dup_list(result.unexpected_keys, result.n_unexpected);
  resp.n_unexpected_keys = (size_t)result.n_unexpected;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
  td_load_result_free(&result);
}

void load_state_dict_end(rpc_call *call) {
  upload *u = rpc_call_user(call);
  if (!u) {
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
                    "the stream carried no message: the first must name the session", NULL);
    return;
  }
  /* A session closed during the upload refuses it, as any later request. */
  session *s = registry_get(service_of(call)->sessions, u->session->id);
  if (!s) {
    rpc_call_set_user(call, NULL, NULL);
    upload_free(u);
    rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, "the session was closed during the upload",
                    NULL);
    return;
  }
  session_release(s);
  service_queue_on(call, u->session, load_work);
}

/* The upload itself goes with the call (upload_free). */
void load_state_dict_abort(rpc_call *call) {
  log_debug("LoadStateDict from %s abandoned mid-stream: nothing loaded", rpc_call_peer(call));
}
