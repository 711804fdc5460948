/* libtraind-client: the gRPC C core call helpers (unary, server- and client-streaming). */
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "client_internal.h"

/* The registered handle of `method`, registering it on first use (saves the per-call
 * method lookup). NULL when the table is full or out of memory. */
static void *method_handle(traind_client *c, const char *method) {
  for (size_t i = 0; i < c->n_methods; i++)
    if (strcmp(c->methods[i].name, method) == 0) return c->methods[i].handle;
  if (c->n_methods == TC_MAX_METHODS) return NULL;
  char *name = strdup(method);
  if (!name) return NULL;
  void *h = grpc_channel_register_call(c->channel, name, NULL, NULL);
  c->methods[c->n_methods++] = (tc_method){name, h};
  return h;
}

static gpr_timespec call_deadline(const traind_client *c) {
  if (c->timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(c->timeout_ms, GPR_TIMESPAN));
}

grpc_call *tc_call_new(traind_client *c, const char *method) {
  void *h = method_handle(c, method);
  if (h)
    return grpc_channel_create_registered_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                               h, call_deadline(c), NULL);
  return grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                  grpc_slice_from_static_string(method), NULL,
                                  call_deadline(c), NULL);
}

/* Runs one batch and waits for it. false: the batch could not start or completed with
 * ok=0 (the call is broken; its status says why). */
static bool run_batch(traind_client *c, grpc_call *call, const grpc_op *ops, size_t n,
                      void *tag) {
  if (grpc_call_start_batch(call, ops, n, tag, NULL) != GRPC_CALL_OK) return false;
  grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                              NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static void op_send_initial_md(const traind_client *c, grpc_op *op) {
  memset(op, 0, sizeof *op);
  op->op = GRPC_OP_SEND_INITIAL_METADATA;
  if (c->auth_value) {
    op->data.send_initial_metadata.count = 1;
    op->data.send_initial_metadata.metadata = (grpc_metadata *)&c->auth_md;
  }
}

grpc_byte_buffer *tc_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return NULL;
  protobuf_c_message_pack(m, buf);
  grpc_slice s = grpc_slice_new(buf, n, free); /* takes buf: no second copy */
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* The message as one contiguous slice (copies only when it arrived in several). */
static grpc_slice flatten(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) return grpc_empty_slice();
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  return s;
}

traind_status tc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                        ProtobufCMessage **out) {
  grpc_slice s = flatten(bb);
  *out = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  if (!*out)
    return tc_error(TRAIND_DATA_LOSS, "response is not a valid %s (%zu bytes)", desc->name,
                    (size_t)grpc_byte_buffer_length(bb));
  return tc_ok();
}

/* The status a call ended with: the server's code and details; for failures on this side
 * that carry no details, gRPC's error string. */
static traind_status status_from(grpc_status_code code, grpc_slice details,
                                 const char *error_string) {
  if (code == GRPC_STATUS_OK) return tc_ok();
  size_t n = GRPC_SLICE_LENGTH(details);
  if (n == 0 && error_string) return tc_error((int)code, "%s", error_string);
  return tc_error((int)code, "%.*s", (int)n, (const char *)GRPC_SLICE_START_PTR(details));
}

traind_status tc_unary(traind_client *c, const char *method, grpc_byte_buffer *req,
                       grpc_byte_buffer **resp) {
  *resp = NULL;
  grpc_call *call = tc_call_new(c, method);
  if (!call) return tc_error(TRAIND_INTERNAL, "%s: cannot create the call", method);
  grpc_metadata_array initial_md, trailing_md;
  grpc_metadata_array_init(&initial_md);
  grpc_metadata_array_init(&trailing_md);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  const char *error_string = NULL;

  grpc_op ops[6];
  op_send_initial_md(c, &ops[0]);
  memset(&ops[1], 0, sizeof ops - sizeof ops[0]);
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.error_string = &error_string;

  traind_status st;
  if (!run_batch(c, call, ops, 6, call))
    st = tc_error(TRAIND_INTERNAL, "%s: the call failed to run", method);
  else if (code != GRPC_STATUS_OK)
    st = status_from(code, details, error_string);
  else if (!*resp)
    st = tc_error(TRAIND_DATA_LOSS, "%s: the server sent no response message", method);
  else
    st = tc_ok();
  if (st.code != TRAIND_OK && *resp) {
    grpc_byte_buffer_destroy(*resp);
    *resp = NULL;
  }
  grpc_metadata_array_destroy(&initial_md);
  grpc_metadata_array_destroy(&trailing_md);
  grpc_slice_unref(details);
  gpr_free((void *)error_string);
  grpc_call_unref(call);
  return st;
}

traind_status tc_unary_msg(traind_client *c, const char *method, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out) {
  if (out) *out = NULL;
  grpc_byte_buffer *bb = tc_pack(req);
  if (!bb) return tc_error(TRAIND_RESOURCE_EXHAUSTED, "%s: out of memory", method);
  grpc_byte_buffer *resp = NULL;
  traind_status st = tc_unary(c, method, bb, &resp);
  grpc_byte_buffer_destroy(bb);
  if (st.code != TRAIND_OK) return st;
  ProtobufCMessage *m = NULL;
  st = tc_unpack(resp, resp_desc, &m);
  grpc_byte_buffer_destroy(resp);
  if (out)
    *out = m;
  else if (m)
    protobuf_c_message_free_unpacked(m, NULL);
  return st;
}

/* ---------------------------------------------------------------- server streaming */

traind_status tc_reader_start(traind_client *c, tc_reader *r, const char *method,
                              const ProtobufCMessage *req) {
  memset(r, 0, sizeof *r);
  r->c = c;
  grpc_metadata_array_init(&r->initial_md);
  grpc_byte_buffer *bb = tc_pack(req);
  if (!bb) return tc_error(TRAIND_RESOURCE_EXHAUSTED, "%s: out of memory", method);
  r->call = tc_call_new(c, method);
  if (!r->call) {
    grpc_byte_buffer_destroy(bb);
    return tc_error(TRAIND_INTERNAL, "%s: cannot create the call", method);
  }
  grpc_op ops[4];
  op_send_initial_md(c, &ops[0]);
  memset(&ops[1], 0, sizeof ops - sizeof ops[0]);
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &r->initial_md;
  /* A failure here (server unreachable, error before any message) shows in finish. */
  r->failed = !run_batch(c, r->call, ops, 4, r);
  grpc_byte_buffer_destroy(bb);
  return tc_ok();
}

void tc_reader_next(tc_reader *r, grpc_byte_buffer **bb) {
  *bb = NULL;
  if (r->failed) return;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = bb;
  if (!run_batch(r->c, r->call, &op, 1, r)) {
    r->failed = true;
    if (*bb) grpc_byte_buffer_destroy(*bb);
    *bb = NULL;
  }
}

traind_status tc_reader_finish(tc_reader *r, bool cancel) {
  if (!r->call) {
    grpc_metadata_array_destroy(&r->initial_md);
    return tc_ok(); /* start failed before the call existed; it returned that error */
  }
  if (cancel) grpc_call_cancel(r->call, NULL);
  grpc_metadata_array trailing_md;
  grpc_metadata_array_init(&trailing_md);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  const char *error_string = NULL;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &trailing_md;
  op.data.recv_status_on_client.status = &code;
  op.data.recv_status_on_client.status_details = &details;
  op.data.recv_status_on_client.error_string = &error_string;
  traind_status st;
  if (!run_batch(r->c, r->call, &op, 1, r))
    st = tc_error(TRAIND_INTERNAL, "the stream's status could not be received");
  else
    st = status_from(code, details, error_string);
  grpc_metadata_array_destroy(&trailing_md);
  grpc_metadata_array_destroy(&r->initial_md);
  grpc_slice_unref(details);
  gpr_free((void *)error_string);
  grpc_call_unref(r->call);
  r->call = NULL;
  return st;
}

/* ---------------------------------------------------------------- client streaming */

/* The receive half is one batch started with the call, so that a server that answers
 * early (an error after the first chunk) is seen while we are still sending. Its tag is
 * &w->resp; sends use w. */
traind_status tc_writer_start(traind_client *c, tc_writer *w, const char *method) {
  memset(w, 0, sizeof *w);
  w->c = c;
  grpc_metadata_array_init(&w->initial_md);
  grpc_metadata_array_init(&w->trailing_md);
  w->details = grpc_empty_slice();
  w->code = GRPC_STATUS_UNKNOWN;
  w->call = tc_call_new(c, method);
  if (!w->call) return tc_error(TRAIND_INTERNAL, "%s: cannot create the call", method);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[0].data.recv_initial_metadata.recv_initial_metadata = &w->initial_md;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &w->resp;
  ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[2].data.recv_status_on_client.trailing_metadata = &w->trailing_md;
  ops[2].data.recv_status_on_client.status = &w->code;
  ops[2].data.recv_status_on_client.status_details = &w->details;
  ops[2].data.recv_status_on_client.error_string = &w->error_string;
  if (grpc_call_start_batch(w->call, ops, 3, &w->resp, NULL) != GRPC_CALL_OK) {
    grpc_call_unref(w->call);
    w->call = NULL;
    return tc_error(TRAIND_INTERNAL, "%s: cannot start the call", method);
  }
  return tc_ok();
}

bool tc_writer_write(tc_writer *w, const ProtobufCMessage *m) {
  if (w->broken) return false;
  grpc_byte_buffer *bb = tc_pack(m);
  if (!bb) {
    w->broken = true;
    return false;
  }
  grpc_op ops[2];
  size_t n = 0;
  if (!w->sent_initial_md) op_send_initial_md(w->c, &ops[n++]);
  memset(&ops[n], 0, sizeof ops[n]);
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = bb;
  /* One SEND_MESSAGE in flight at a time: wait for this one before the next. */
  bool ok = run_batch(w->c, w->call, ops, n, w);
  w->sent_initial_md = true;
  grpc_byte_buffer_destroy(bb);
  if (!ok) w->broken = true;
  return ok;
}

traind_status tc_writer_finish(tc_writer *w, bool cancel,
                               const ProtobufCMessageDescriptor *resp_desc,
                               ProtobufCMessage **out) {
  if (out) *out = NULL;
  if (!w->call) {
    grpc_metadata_array_destroy(&w->initial_md);
    grpc_metadata_array_destroy(&w->trailing_md);
    return tc_ok(); /* start failed and said so */
  }
  if (cancel) {
    grpc_call_cancel(w->call, NULL);
  } else if (!w->broken) {
    grpc_op ops[2];
    size_t n = 0;
    if (!w->sent_initial_md) op_send_initial_md(w->c, &ops[n++]);
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    run_batch(w->c, w->call, ops, n, w); /* a failure shows in the status */
  }
  grpc_event ev = grpc_completion_queue_pluck(w->c->cq, &w->resp,
                                              gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  traind_status st;
  if (ev.type != GRPC_OP_COMPLETE || !ev.success)
    st = tc_error(TRAIND_INTERNAL, "the stream's status could not be received");
  else if (w->code != GRPC_STATUS_OK)
    st = status_from(w->code, w->details, w->error_string);
  else if (!w->resp)
    st = tc_error(TRAIND_DATA_LOSS, "the server sent no response message");
  else {
    ProtobufCMessage *m = NULL;
    st = tc_unpack(w->resp, resp_desc, &m);
    if (out)
      *out = m;
    else if (m)
      protobuf_c_message_free_unpacked(m, NULL);
  }
  if (w->resp) grpc_byte_buffer_destroy(w->resp);
  grpc_metadata_array_destroy(&w->initial_md);
  grpc_metadata_array_destroy(&w->trailing_md);
  grpc_slice_unref(w->details);
  gpr_free((void *)w->error_string);
  grpc_call_unref(w->call);
  w->call = NULL;
  return st;
}
