/* load_raw.c - calls through the gRPC C core directly, for the misbehaving clients.
 *
 * libtraind-client always finishes what it starts: it reads a StateDict stream to the
 * end and sends an upload whole, and its client may not be closed while a call runs.
 * A stalled or vanishing client needs the call's pieces separately: send a message,
 * stop; read a message, stop; destroy the channel under a live call. Each raw_conn has a
 * channel of its own, on a connection of its own (a local subchannel pool), so that
 * dropping it closes a TCP connection as a client that goes away would. Plaintext only
 * (the load runs over loopback); a bearer token is sent when given.
 */
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "load_gen.h"

struct raw_conn {
  grpc_channel *ch; /* NULL once destroyed */
  grpc_completion_queue *cq;
  char *auth; /* "Bearer <token>" or NULL */
  grpc_metadata md;
};

struct raw_call {
  raw_conn *c;
  grpc_call *call;
  bool sent_md;
  /* The status batch, started with the call (tag: &code), so an early answer is seen. */
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code code;
  grpc_slice details;
  const char *error_string;
  int send_tag, recv_tag;
};

raw_conn *raw_open(const char *target, const char *token) {
  raw_conn *c = calloc(1, sizeof *c);
  if (!c) abort();
  if (token) {
    size_t n = strlen(token);
    c->auth = malloc(n + 8);
    if (!c->auth) abort();
    memcpy(c->auth, "Bearer ", 7);
    memcpy(c->auth + 7, token, n + 1);
    c->md.key = grpc_slice_from_static_string("authorization");
    c->md.value = grpc_slice_from_static_string(c->auth);
  }
  grpc_init();
  grpc_arg args[3] = {
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
       .value.integer = 64 << 20},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
       .value.integer = 64 << 20},
      /* Otherwise gRPC reuses another channel's connection to the same address. */
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
  };
  grpc_channel_args chargs = {3, args};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->ch = grpc_channel_create(target, creds, &chargs);
  grpc_channel_credentials_release(creds);
  c->cq = grpc_completion_queue_create_for_pluck(NULL);
  return c;
}

void raw_close(raw_conn *c) {
  if (!c) return;
  if (c->ch) grpc_channel_destroy(c->ch);
  grpc_completion_queue_shutdown(c->cq);
  while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
             .type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(c->cq);
  free(c->auth);
  free(c);
  grpc_shutdown();
}

static bool wait_tag(raw_conn *c, void *tag) {
  grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

raw_call *raw_start(raw_conn *c, const char *method, int64_t deadline_ms) {
  raw_call *call = calloc(1, sizeof *call);
  if (!call) abort();
  call->c = c;
  gpr_timespec deadline =
      deadline_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                     gpr_time_from_millis(deadline_ms, GPR_TIMESPAN))
                      : gpr_inf_future(GPR_CLOCK_MONOTONIC);
  call->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                        grpc_slice_from_static_string(method), NULL, deadline,
                                        NULL);
  grpc_metadata_array_init(&call->initial_md);
  grpc_metadata_array_init(&call->trailing_md);
  call->details = grpc_empty_slice();
  call->code = GRPC_STATUS_UNKNOWN;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[0].data.recv_initial_metadata.recv_initial_metadata = &call->initial_md;
  ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[1].data.recv_status_on_client.trailing_metadata = &call->trailing_md;
  ops[1].data.recv_status_on_client.status = &call->code;
  ops[1].data.recv_status_on_client.status_details = &call->details;
  ops[1].data.recv_status_on_client.error_string = &call->error_string;
  if (grpc_call_start_batch(call->call, ops, 2, &call->code, NULL) != GRPC_CALL_OK) abort();
  return call;
}

bool raw_send(raw_call *call, const ProtobufCMessage *m, bool close) {
  size_t len = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(len);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!call->sent_md) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    /* Every raw call is on a new connection, and the point is to abandon it once it is
     * in flight: wait for the connection rather than fail on a first connect attempt
     * that does not succeed (seen once in a ThreadSanitizer run). */
    ops[n].flags =
        GRPC_INITIAL_METADATA_WAIT_FOR_READY | GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
    if (call->c->auth) {
      ops[n].data.send_initial_metadata.count = 1;
      ops[n].data.send_initial_metadata.metadata = &call->c->md;
    }
    n++;
    call->sent_md = true;
  }
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = bb;
  if (close) ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  bool ok = grpc_call_start_batch(call->call, ops, n, &call->send_tag, NULL) == GRPC_CALL_OK &&
            wait_tag(call->c, &call->send_tag);
  grpc_byte_buffer_destroy(bb);
  return ok;
}

int raw_recv(raw_call *call, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out) {
  *out = NULL;
  grpc_byte_buffer *bb = NULL;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &bb;
  if (grpc_call_start_batch(call->call, &op, 1, &call->recv_tag, NULL) != GRPC_CALL_OK ||
      !wait_tag(call->c, &call->recv_tag) || !bb) {
    if (bb) grpc_byte_buffer_destroy(bb);
    return 0;
  }
  grpc_byte_buffer_reader rd;
  grpc_slice all = grpc_empty_slice();
  if (grpc_byte_buffer_reader_init(&rd, bb)) {
    all = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
  }
  *out = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
  grpc_slice_unref(all);
  grpc_byte_buffer_destroy(bb);
  return *out ? 1 : 0;
}

traind_status raw_finish(raw_call *call, bool cancel) {
  if (cancel) grpc_call_cancel(call->call, NULL);
  traind_status st = {0};
  if (!wait_tag(call->c, &call->code)) {
    st.code = TRAIND_INTERNAL;
    st.message = strdup("the call's status could not be received");
  } else if (call->code != GRPC_STATUS_OK) {
    st.code = (int)call->code;
    size_t n = GRPC_SLICE_LENGTH(call->details);
    if (n) {
      st.message = malloc(n + 1);
      if (st.message) {
        memcpy(st.message, GRPC_SLICE_START_PTR(call->details), n);
        st.message[n] = 0;
      }
    } else if (call->error_string) {
      st.message = strdup(call->error_string);
    }
  }
  grpc_metadata_array_destroy(&call->initial_md);
  grpc_metadata_array_destroy(&call->trailing_md);
  grpc_slice_unref(call->details);
  gpr_free((void *)call->error_string);
  grpc_call_unref(call->call);
  free(call);
  return st;
}

traind_status raw_drop(raw_conn *c, raw_call *call) {
  grpc_channel_destroy(c->ch);
  c->ch = NULL;
  traind_status st = raw_finish(call, true);
  raw_close(c);
  return st;
}
