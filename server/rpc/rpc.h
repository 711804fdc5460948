/* rpc.h - a small generic layer over the gRPC C core, driven by a libuv loop.
 *
 * The layer knows gRPC and protobuf-c, nothing about training. A service
 * hands it a table of methods; for each call the layer decodes the request
 * and gives it to the method's handler, and the handler answers with
 * rpc_call_finish() (from any thread: compute runs on worker threads and
 * answers from there, without another hop through the loop).
 *
 * Threads:
 *   - one completion-queue thread blocks in grpc_completion_queue_next().
 *     A new unary or server-streaming call arrives with its request, and
 *     the thread dispatches it at once: on_request runs there, so it must
 *     not block or compute; it finds its session and queues the work. Every
 *     other event goes onto a locked list and the thread uv_async_send()s
 *     the loop (sends coalesce, so the loop drains the whole list each time).
 *     Dispatching on the queue's thread saves a thread wake-up per call,
 *     about a quarter of a small TrainStep's round trip (DESIGN.md has calls
 *     go through the loop; this is the one departure, measured in
 *     tests/bench/bench_rpc.c);
 *   - the libuv loop thread runs the streaming callbacks (on_message,
 *     on_end, on_abort, sent), timers, shutdown and all freeing;
 *   - rpc_call_finish / rpc_call_send may be called from any thread.
 *
 * Call kinds and their state machines:
 *   UNARY          request -> on_request -> finish(status, response)
 *   SERVER_STREAM  request -> on_request -> send, send, ... -> finish(status)
 *   CLIENT_STREAM  on_message, on_message, ... -> on_end -> finish(status, response)
 *
 * A call may be cancelled by its client (disconnect, deadline) at any time;
 * rpc_call_cancelled() says so, handlers check it between units of work, and
 * finish still must be called exactly once (it then sends nothing).
 *
 * Ownership: the layer owns every rpc_call. A handler may keep its pointer
 * until it calls rpc_call_finish, after which the call may be freed at any
 * moment. Decoded request messages are owned by the call and freed with it.
 */
#ifndef TRAIND_RPC_RPC_H
#define TRAIND_RPC_RPC_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef enum rpc_kind { RPC_UNARY, RPC_SERVER_STREAM, RPC_CLIENT_STREAM } rpc_kind;

typedef struct rpc_method {
  const char *path; /* "/traind.v1.Trainer/Forward" */
  rpc_kind kind;
  const ProtobufCMessageDescriptor *request;
  /* UNARY, SERVER_STREAM: the decoded request (owned by the call). Runs on
   * the completion-queue thread: queue work, never block. */
  void (*on_request)(rpc_call *call, const ProtobufCMessage *request);
  /* CLIENT_STREAM: each decoded message in order (owned by the call until
   * the callback returns), then on_end when the client closes its side. */
  void (*on_message)(rpc_call *call, const ProtobufCMessage *message);
  void (*on_end)(rpc_call *call);
  /* CLIENT_STREAM: the client went away or the call was cancelled before
   * on_end; the handler drops what it accumulated (finish is not needed
   * then, and must not be called after this). May be NULL. */
  void (*on_abort)(rpc_call *call);
} rpc_method;

typedef struct rpc_server_options {
  const char *listen;       /* "127.0.0.1:0" */
  int64_t max_message_size; /* receive and send limit, bytes */
  void *user;               /* handed to handlers through rpc_call_server_user */
  /* TLS: PEM text (not paths); NULL cert: plaintext. client_ca: require
   * client certificates it signed. */
  const char *tls_cert, *tls_key, *tls_client_ca;
} rpc_server_options;

/* Creates the server on `loop` and binds options->listen. *bound_port is
 * the port actually bound (useful with port 0). Nothing runs until
 * rpc_server_start. Methods are borrowed and must outlive the server. */
int rpc_server_create(uv_loop_t *loop, const rpc_server_options *options,
                      const rpc_method *methods, int n_methods, rpc_server **out,
                      int *bound_port);

/* Starts the completion-queue thread and accepts calls. */
int rpc_server_start(rpc_server *server);

/* Stops accepting calls: new ones get UNAVAILABLE from gRPC. Calls in flight
 * run on; after `grace_ms` they are cancelled. `done` runs on the loop once
 * every call has ended and the completion queue is drained; then
 * rpc_server_destroy may be called. */
void rpc_server_shutdown(rpc_server *server, uint64_t grace_ms, void (*done)(rpc_server *));

/* Frees the server (only after shutdown's `done`, or if never started);
 * the memory goes when the loop has closed its handles (run the loop). */
void rpc_server_destroy(rpc_server *server);

/* rpc_server_shutdown has been called: handlers refuse new work with
 * UNAVAILABLE (health answers NOT_SERVING) while calls in flight finish. */
bool rpc_server_draining(const rpc_server *server);

/* Calls that have started and not yet ended. */
int rpc_server_calls_in_flight(const rpc_server *server);

/* ---- inside a handler ---------------------------------------------------- */

void *rpc_call_server_user(const rpc_call *call);
const rpc_method *rpc_call_method(const rpc_call *call);
/* UNARY, SERVER_STREAM: the decoded request (NULL for CLIENT_STREAM). */
const ProtobufCMessage *rpc_call_request(const rpc_call *call);
/* Per-call slot for the handler's state. `destroy` (may be NULL) frees it
 * if it is still set when the call ends, whichever way the call ends. */
void rpc_call_set_user(rpc_call *call, void *user, void (*destroy)(void *user));
void *rpc_call_user(const rpc_call *call);
/* Keeps the call allocated (not alive: it may finish meanwhile) until
 * rpc_call_release, so that code running on after rpc_call_finish, such as
 * a cancellation check, may still read it. Any thread. */
void rpc_call_hold(rpc_call *call);
void rpc_call_release(rpc_call *call);
/* The client cancelled, disconnected or its deadline passed. Any thread. */
bool rpc_call_cancelled(const rpc_call *call);
/* The value of the call's "authorization" metadata, or NULL. */
const char *rpc_call_authorization(const rpc_call *call);
/* Who the service has decided the caller is (a tenant name; at most 64
 * characters), "" until set. Set once, before the work is queued. */
void rpc_call_set_principal(rpc_call *call, const char *principal);
const char *rpc_call_principal(const rpc_call *call);
/* The peer address, for logs ("ipv4:127.0.0.1:51234"). */
const char *rpc_call_peer(const rpc_call *call);

/* Ends the call: sends `response` (unless NULL, or the status is not OK) and
 * the status with `message` (may be NULL). Exactly once per call; any
 * thread. The response is packed before this returns: the caller keeps
 * ownership of it. */
void rpc_call_finish(rpc_call *call, grpc_status_code status, const char *message,
                     const ProtobufCMessage *response);

/* SERVER_STREAM: sends one message. `sent` runs on the loop when gRPC is done
 * with it (ok false: the client is gone), and the next send may start then:
 * one send at a time. The message is packed before this returns. */
void rpc_call_send(rpc_call *call, const ProtobufCMessage *message,
                   void (*sent)(rpc_call *call, bool ok));

#endif
