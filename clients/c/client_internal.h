/* libtraind-client internals shared by its .c files (not installed). */
#ifndef TRAIND_CLIENT_INTERNAL_H
#define TRAIND_CLIENT_INTERNAL_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "traind_client.h"

/* Registered methods a client keeps (the Trainer's 12, health, and a few raw ones);
 * beyond this, calls go through the slower unregistered path. */
#define TC_MAX_METHODS 24

typedef struct tc_method {
  char *name;    /* owned; must outlive the channel (gRPC borrows it) */
  void *handle;  /* from grpc_channel_register_call */
} tc_method;

struct traind_client {
  grpc_channel *channel;
  grpc_completion_queue *cq;  /* GRPC_CQ_PLUCK: each wait names its own tag */
  int64_t timeout_ms;
  char *auth_value;           /* owned "Bearer <token>", or NULL */
  grpc_metadata auth_md;      /* borrows auth_value; sent when auth_value is set */
  tc_method methods[TC_MAX_METHODS];
  size_t n_methods;
};

/* ---- statuses (client.c) */
traind_status tc_ok(void);
/* A status with a formatted message; never fails (message NULL if out of memory). */
traind_status tc_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* UNKNOWN with sys_errno = err and ": strerror(err)" appended. */
traind_status tc_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- calls (call.c) */

/* A new call of `method` on c's channel and queue, with c's deadline. NULL only if the
 * gRPC core refuses (it does not for a valid channel). */
grpc_call *tc_call_new(traind_client *c, const char *method);

/* Serialises m into a new byte buffer (caller destroys), NULL when out of memory. */
grpc_byte_buffer *tc_pack(const ProtobufCMessage *m);
/* Parses a received message; DATA_LOSS when it is not a valid `desc`. *out is new. */
traind_status tc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                        ProtobufCMessage **out);

/* One unary round trip: sends `req` (borrowed), returns the response buffer in *resp
 * (new; caller destroys) when the server says OK. */
traind_status tc_unary(traind_client *c, const char *method, grpc_byte_buffer *req,
                       grpc_byte_buffer **resp);
/* The same with protoc-c messages; out NULL discards the response. */
traind_status tc_unary_msg(traind_client *c, const char *method, const ProtobufCMessage *req,
                           const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out);

/* Server streaming: start, then next until *bb is NULL (end of stream) or an error, then
 * finish (always, exactly once) for the server's status. */
typedef struct tc_reader {
  traind_client *c;
  grpc_call *call;
  grpc_metadata_array initial_md;
  bool failed;  /* a batch failed: the call is broken, finish reports why */
} tc_reader;
traind_status tc_reader_start(traind_client *c, tc_reader *r, const char *method,
                              const ProtobufCMessage *req);
/* *bb: the next message (new; caller destroys) or NULL at the end of the stream. */
void tc_reader_next(tc_reader *r, grpc_byte_buffer **bb);
/* Cancels the call first when cancel (the caller gives up mid-stream). Frees the call
 * and returns the server's status (CANCELLED after a cancel). */
traind_status tc_reader_finish(tc_reader *r, bool cancel);

/* Client streaming: start, write each message (one send in flight at a time), then
 * finish for the response. write returns false once the stream is broken (the server
 * answered early, e.g. with an error): stop writing and call finish. */
typedef struct tc_writer {
  traind_client *c;
  grpc_call *call;
  bool sent_initial_md;
  bool broken;
  /* the receive half, started with the call and completed by finish */
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *resp;
  grpc_status_code code;
  grpc_slice details;
  const char *error_string;
} tc_writer;
traind_status tc_writer_start(traind_client *c, tc_writer *w, const char *method);
bool tc_writer_write(tc_writer *w, const ProtobufCMessage *m);
/* Cancels first when cancel (a local failure while writing). Frees the call. */
traind_status tc_writer_finish(tc_writer *w, bool cancel,
                               const ProtobufCMessageDescriptor *resp_desc,
                               ProtobufCMessage **out);

#endif
