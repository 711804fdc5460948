/* call.c - one call's life: accept, decode, the handler's replies, the end. */
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"
#include "rpc/wire.h"
#include "util/log.h"

void *rpc_call_server_user(const rpc_call *call) { return call->server->user; }
const rpc_method *rpc_call_method(const rpc_call *call) { return call->method; }
const ProtobufCMessage *rpc_call_request(const rpc_call *call) { return call->request; }
const char *rpc_call_authorization(const rpc_call *call) { return call->authorization; }
const char *rpc_call_principal(const rpc_call *call) { return call->principal; }
void rpc_call_set_principal(rpc_call *call, const char *principal) {
  snprintf(call->principal, sizeof call->principal, "%s", principal);
}

/* Keeps a copy of the authorization metadata (gRPC's array is the slot's,
 * re-armed right away). Longer values than any token are not kept. */
static char *find_authorization(const grpc_metadata_array *md) {
  for (size_t i = 0; i < md->count; i++) {
    const grpc_metadata *m = &md->metadata[i];
    if (grpc_slice_str_cmp(m->key, "authorization") != 0) continue;
    size_t len = GRPC_SLICE_LENGTH(m->value);
    if (len > 1024) return NULL;
    char *value = malloc(len + 1);
    if (!value) return NULL;
    memcpy(value, GRPC_SLICE_START_PTR(m->value), len);
    value[len] = 0;
    return value;
  }
  return NULL;
}
void rpc_call_set_user(rpc_call *call, void *user, void (*destroy)(void *user)) {
  call->user = user;
  call->destroy_user = destroy;
}
void *rpc_call_user(const rpc_call *call) { return call->user; }
bool rpc_call_cancelled(const rpc_call *call) { return atomic_load(&call->cancelled); }
const char *rpc_call_peer(const rpc_call *call) { return call->peer ? call->peer : "?"; }

/* ---- bytes <-> messages --------------------------------------------------- */

/* Packs msg into a new byte buffer (NULL when out of memory). */
static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  grpc_slice slice = grpc_slice_malloc(len);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

/* Decodes a received buffer; NULL if it is not a valid `desc` message, with
 * *too_deep set when the reason is nesting beyond RPC_WIRE_MAX_DEPTH. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                bool *too_deep) {
  *too_deep = false;
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return NULL;
  grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  ProtobufCMessage *msg = NULL;
  if (rpc_wire_depth_ok(desc, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all),
                        RPC_WIRE_MAX_DEPTH))
    msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
  else
    *too_deep = true;
  grpc_slice_unref(all);
  return msg;
}

static void describe_bad_message(char *out, size_t size, const char *what, size_t len,
                                 const ProtobufCMessageDescriptor *desc, bool too_deep) {
  if (too_deep)
    snprintf(out, size, "%s (%zu bytes) nests messages more than %d deep", what, len,
             RPC_WIRE_MAX_DEPTH);
  else
    snprintf(out, size, "%s (%zu bytes) is not a valid %s message", what, len, desc->name);
}

static size_t buffer_length(grpc_byte_buffer *bb) { return grpc_byte_buffer_length(bb); }

/* ---- batches ------------------------------------------------------------------ */

/* Starts a batch holding a reference; false if gRPC refused it (the
 * reference is then given back). */
static bool start(rpc_call *call, const grpc_op *ops, size_t n, rpc_tag *tag) {
  atomic_fetch_add(&call->refs, 1);
  grpc_call *c = call->call;
  RPC_HANDOFF_RELEASE(tag); /* after the last read of the batch's fields */
  grpc_call_error err = grpc_call_start_batch(c, ops, n, tag, NULL);
  if (err == GRPC_CALL_OK) return true;
  log_error("rpc: %s: grpc_call_start_batch failed (error %d)",
            call->method ? call->method->path : "?", (int)err);
  rpc_call_unref(call);
  return false;
}

static void start_recv(rpc_call *call) {
  grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
  op.data.recv_message.recv_message = &call->recv_buffer;
  call->recv_buffer = NULL;
  start(call, &op, 1, &call->tag_recv);
}

void rpc_call_finish(rpc_call *call, grpc_status_code status, const char *message,
                     const ProtobufCMessage *response) {
  if (atomic_exchange(&call->finished, true)) {
    log_error("rpc: %s finished twice (a bug in its handler)",
              call->method ? call->method->path : "?");
    return;
  }
  grpc_op ops[3];
  size_t n = 0;
  if (!call->initial_metadata_sent) {
    ops[n++] = (grpc_op){.op = GRPC_OP_SEND_INITIAL_METADATA};
    call->initial_metadata_sent = true;
  }
  if (status == GRPC_STATUS_OK && response) {
    call->finish_buffer = pack(response);
    ops[n] = (grpc_op){.op = GRPC_OP_SEND_MESSAGE};
    ops[n++].data.send_message.send_message = call->finish_buffer;
  }
  call->finish_details = grpc_slice_from_copied_string(message ? message : "");
  ops[n] = (grpc_op){.op = GRPC_OP_SEND_STATUS_FROM_SERVER};
  ops[n].data.send_status_from_server.status = status;
  ops[n++].data.send_status_from_server.status_details = &call->finish_details;
  if (!atomic_load(&call->cancelled)) start(call, ops, n, &call->tag_finish);
  rpc_call_unref(call); /* the handler's reference */
}

void rpc_call_send(rpc_call *call, const ProtobufCMessage *message,
                   void (*sent)(rpc_call *call, bool ok)) {
  grpc_op ops[2];
  size_t n = 0;
  if (!call->initial_metadata_sent) {
    ops[n++] = (grpc_op){.op = GRPC_OP_SEND_INITIAL_METADATA};
    call->initial_metadata_sent = true;
  }
  call->sent = sent;
  call->send_buffer = pack(message);
  ops[n] = (grpc_op){.op = GRPC_OP_SEND_MESSAGE};
  ops[n++].data.send_message.send_message = call->send_buffer;
  if (!start(call, ops, n, &call->tag_send)) {
    grpc_byte_buffer_destroy(call->send_buffer);
    call->send_buffer = NULL;
    /* Report it as a send that failed in flight would be. */
    call->sent = NULL;
    if (sent) sent(call, false);
  }
}

/* ---- accepting ----------------------------------------------------------------- */

static void answer_unimplemented(rpc_call *call, grpc_call_details *details) {
  char *method = grpc_slice_to_c_string(details->method);
  char msg[512];
  snprintf(msg, sizeof msg, "unknown method %s (this server offers traind.v1.Trainer and "
           "grpc.health.v1.Health/Check)", method);
  gpr_free(method);
  rpc_call_finish(call, GRPC_STATUS_UNIMPLEMENTED, msg, NULL);
}

rpc_call *rpc_call_accept(rpc_server *s, rpc_slot *slot) {
  rpc_call *call = calloc(1, sizeof *call);
  if (!call) {
    /* Without a struct there is no tag to finish with: cancel and drop. */
    grpc_call_cancel_with_status(slot->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(slot->call);
    if (slot->payload) grpc_byte_buffer_destroy(slot->payload);
    slot->payload = NULL;
    atomic_fetch_sub(&s->n_calls, 1); /* counted by the caller */
    return NULL;
  }
  call->server = s;
  call->method = slot->method;
  call->call = slot->call;
  /* Only debug lines name the peer: asking gRPC allocates. */
  call->peer = log_enabled(LOG_DEBUG) ? grpc_call_get_peer(call->call) : NULL;
  call->tag_recv = (rpc_tag){TAG_RECV, call};
  call->tag_send = (rpc_tag){TAG_SEND, call};
  call->tag_finish = (rpc_tag){TAG_FINISH, call};
  call->tag_close = (rpc_tag){TAG_CLOSE, call};
  call->tag_confirm = (rpc_tag){TAG_CONFIRM, call};
  call->finish_details = grpc_empty_slice();
  call->authorization = find_authorization(&slot->metadata);
  atomic_init(&call->refs, 1); /* the handler's */
  uv_mutex_lock(&s->calls_lock);
  call->next = s->calls;
  if (s->calls) s->calls->prev = call;
  s->calls = call;
  uv_mutex_unlock(&s->calls_lock);

  /* Learn about cancellation as soon as it happens. */
  grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
  close_op.data.recv_close_on_server.cancelled = &call->close_cancelled;
  start(call, &close_op, 1, &call->tag_close);

  grpc_byte_buffer *payload = slot->payload;
  slot->payload = NULL;
  if (!call->method) {
    answer_unimplemented(call, &slot->details);
    return call;
  }
  log_debug("rpc: %s from %s", call->method->path, call->peer);
  if (call->method->kind == RPC_CLIENT_STREAM) {
    start_recv(call);
    return call;
  }
  if (!payload) {
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "the call carried no request message",
                    NULL);
    return call;
  }
  bool too_deep;
  call->request = unpack(call->method->request, payload, &too_deep);
  size_t len = buffer_length(payload);
  grpc_byte_buffer_destroy(payload);
  if (!call->request) {
    char msg[256];
    describe_bad_message(msg, sizeof msg, "the request", len, call->method->request, too_deep);
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
    return call;
  }
  call->method->on_request(call, call->request);
  return call;
}

/* ---- events ---------------------------------------------------------------------- */

static void stream_abort(rpc_call *call) {
  if (call->stream_over) return;
  call->stream_over = true;
  if (call->method->on_abort) call->method->on_abort(call);
  /* The handler is done with it; nothing more will be sent. */
  if (!atomic_exchange(&call->finished, true)) rpc_call_unref(call);
}

static void on_recv(rpc_call *call, bool ok) {
  grpc_byte_buffer *bb = call->recv_buffer;
  call->recv_buffer = NULL;
  if (call->stream_over || atomic_load(&call->finished)) {
    if (bb) grpc_byte_buffer_destroy(bb);
    return;
  }
  if (!ok) {
    stream_abort(call);
    return;
  }
  if (!bb) {
    /* The end of the stream, or a stream that was reset: gRPC reports a
     * client's RST_STREAM (a cancel, a process that died) to RECV_MESSAGE
     * exactly as a half-close, and the close event that tells them apart
     * may come later. Sending initial metadata settles it: a reset stream
     * is closed for writing, so the send fails. Only then is the stream
     * complete (a cancelled upload must never be applied). */
    grpc_op op = {.op = GRPC_OP_SEND_INITIAL_METADATA};
    call->initial_metadata_sent = true;
    if (!start(call, &op, 1, &call->tag_confirm)) stream_abort(call);
    return;
  }
  bool too_deep;
  ProtobufCMessage *msg = unpack(call->method->request, bb, &too_deep);
  size_t len = buffer_length(bb);
  grpc_byte_buffer_destroy(bb);
  if (!msg) {
    char text[256];
    describe_bad_message(text, sizeof text, "a stream message", len, call->method->request,
                         too_deep);
    call->stream_over = true;
    if (call->method->on_abort) call->method->on_abort(call);
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, text, NULL);
    return;
  }
  call->method->on_message(call, msg);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (!atomic_load(&call->finished)) start_recv(call);
}

static void free_call(rpc_call *call) {
  rpc_server *s = call->server;
  if (call->user && call->destroy_user) call->destroy_user(call->user);
  if (call->authorization) { /* a secret: do not leave it in freed memory */
    memset(call->authorization, 0, strlen(call->authorization));
    free(call->authorization);
  }
  if (call->request) protobuf_c_message_free_unpacked(call->request, NULL);
  if (call->finish_buffer) grpc_byte_buffer_destroy(call->finish_buffer);
  if (call->send_buffer) grpc_byte_buffer_destroy(call->send_buffer);
  if (call->recv_buffer) grpc_byte_buffer_destroy(call->recv_buffer);
  grpc_slice_unref(call->finish_details);
  gpr_free(call->peer);
  grpc_call_unref(call->call);
  rpc_server_call_ended(s, call);
  free(call);
}

/* Any thread: the last reference frees the call where it drops. */
void rpc_call_unref(rpc_call *call) {
  if (atomic_fetch_sub(&call->refs, 1) == 1) free_call(call);
}

void rpc_call_hold(rpc_call *call) { atomic_fetch_add(&call->refs, 1); }
void rpc_call_release(rpc_call *call) { rpc_call_unref(call); }

bool rpc_call_event_needs_loop(const rpc_call *call, rpc_tag_kind kind) {
  /* Streaming callbacks run on the loop; a client stream's close may call
   * on_abort. The rest only flips a flag and drops a reference. */
  return kind == TAG_RECV || kind == TAG_SEND || kind == TAG_CONFIRM ||
         (kind == TAG_CLOSE && call->method && call->method->kind == RPC_CLIENT_STREAM);
}

void rpc_call_on_event(rpc_call *call, rpc_tag_kind kind, bool ok) {
  switch (kind) {
  case TAG_CLOSE:
    if (call->close_cancelled || !ok) {
      atomic_store(&call->cancelled, true);
      if (call->method && call->method->kind == RPC_CLIENT_STREAM) stream_abort(call);
    }
    break;
  case TAG_RECV:
    on_recv(call, ok);
    break;
  case TAG_CONFIRM:
    if (call->stream_over || atomic_load(&call->finished)) break; /* aborted meanwhile */
    if (!ok || atomic_load(&call->cancelled)) {
      stream_abort(call);
    } else {
      call->stream_over = true;
      call->method->on_end(call);
    }
    break;
  case TAG_SEND: {
    grpc_byte_buffer_destroy(call->send_buffer);
    call->send_buffer = NULL;
    void (*sent)(rpc_call *, bool) = call->sent;
    call->sent = NULL;
    if (sent) sent(call, ok && !atomic_load(&call->cancelled));
    break;
  }
  case TAG_FINISH:
  default:
    break;
  }
  rpc_call_unref(call);
}
