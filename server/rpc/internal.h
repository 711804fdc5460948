/* internal.h - the rpc layer's structs, shared by server.c and call.c. */
#ifndef TRAIND_RPC_INTERNAL_H
#define TRAIND_RPC_INTERNAL_H

#include <grpc/grpc.h>
#include <stdatomic.h>

#include "rpc/rpc.h"

/* ThreadSanitizer cannot see the ordering gRPC (not instrumented) gives
 * between starting a batch on one thread and its completion on another, so
 * without help it reports the fields a batch carries as races. Starting a
 * batch releases its tag, taking the completion acquires it: the
 * happens-before gRPC guarantees, stated to the sanitizer. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define RPC_HANDOFF_RELEASE(p) __tsan_release(p)
#define RPC_HANDOFF_ACQUIRE(p) __tsan_acquire(p)
#else
#define RPC_HANDOFF_RELEASE(p) ((void)(p))
#define RPC_HANDOFF_ACQUIRE(p) ((void)(p))
#endif

/* What a completion-queue tag stands for. Every tag is one of these structs,
 * embedded in the object it belongs to, so an event leads back to it. */
typedef enum rpc_tag_kind {
  TAG_NEW_CALL,  /* a request slot got a call */
  TAG_RECV,      /* RECV_MESSAGE done (client streaming) */
  TAG_SEND,      /* SEND_MESSAGE done (server streaming) */
  TAG_FINISH,    /* status sent */
  TAG_CLOSE,     /* RECV_CLOSE_ON_SERVER: the call is over (cancelled or not) */
  TAG_CONFIRM,   /* SEND_INITIAL_METADATA after a client stream's end: was it a half-close? */
  TAG_SHUTDOWN,  /* grpc_server_shutdown_and_notify completed */
} rpc_tag_kind;

typedef struct rpc_tag {
  rpc_tag_kind kind;
  void *owner; /* rpc_call or rpc_slot */
} rpc_tag;

/* One armed grpc_server_request_registered_call (or request_call for
 * methods we do not know). Re-armed as soon as it delivers a call. */
typedef struct rpc_slot {
  rpc_tag tag;
  rpc_server *server;
  const rpc_method *method; /* NULL: the catch-all for unknown methods */
  void *registered;         /* grpc_server_register_method's handle */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array metadata;
  grpc_byte_buffer *payload;
  grpc_call_details details;
} rpc_slot;

struct rpc_call {
  rpc_server *server;
  const rpc_method *method; /* NULL for an unknown method (answered UNIMPLEMENTED) */
  grpc_call *call;
  /* One reference per batch in flight plus one for the handler until it
   * finishes; the call is freed on the loop when the count reaches zero. */
  atomic_int refs;
  atomic_bool cancelled;
  atomic_bool finished;
  bool initial_metadata_sent;
  bool stream_over; /* CLIENT_STREAM: on_end or on_abort has run */
  int close_cancelled;
  rpc_tag tag_recv, tag_send, tag_finish, tag_close, tag_confirm;
  grpc_byte_buffer *recv_buffer;
  grpc_byte_buffer *send_buffer;
  grpc_byte_buffer *finish_buffer;
  grpc_slice finish_details;
  void (*sent)(rpc_call *, bool);
  ProtobufCMessage *request;
  void *user;
  void (*destroy_user)(void *);
  char *authorization;  /* the request's "authorization" metadata, malloc'd; NULL if none */
  char principal[65];   /* who the service decided the caller is ("" until then) */
  char *peer; /* gpr_malloc'd by gRPC */
  rpc_call *prev, *next; /* the server's list of live calls */
};

typedef struct rpc_event {
  rpc_tag *tag;
  bool ok;
} rpc_event;

struct rpc_server {
  uv_loop_t *loop;
  grpc_server *server;
  grpc_completion_queue *cq;
  uv_thread_t cq_thread;
  bool cq_thread_started;
  void *user;
  const rpc_method *methods;
  int n_methods;
  rpc_slot *slots;
  int n_slots;
  atomic_int slots_armed;

  /* Events from the completion-queue thread for the loop, handed over
   * through `wakeup`. */
  uv_mutex_t events_lock;
  rpc_event *events;
  int n_events, cap_events;
  rpc_event *draining; /* the loop's copy, swapped with `events` */
  int cap_draining;
  uv_async_t wakeup;

  uv_mutex_t calls_lock; /* the list: calls are accepted on the cq thread, freed on the loop */
  rpc_call *calls;       /* live calls */
  atomic_int n_calls;

  /* Shutdown */
  atomic_bool shutting_down;
  atomic_bool grpc_shutdown_started;
  bool shutdown_tag_seen;
  bool cq_shut;
  bool lingering, lingered; /* the pause before connections close (server.c) */
  bool finished; /* queue drained and destroyed: `done` is due */
  int open_handles;
  rpc_tag shutdown_tag;
  uv_timer_t grace_timer;
  void (*done)(rpc_server *);
};

/* call.c */
rpc_call *rpc_call_accept(rpc_server *server, rpc_slot *slot);
void rpc_call_on_event(rpc_call *call, rpc_tag_kind kind, bool ok);
/* Whether this event of the call must be handled on the loop. */
bool rpc_call_event_needs_loop(const rpc_call *call, rpc_tag_kind kind);
void rpc_call_unref(rpc_call *call);
void rpc_call_cancel(rpc_call *call);

/* server.c */
void rpc_server_post(rpc_server *server, rpc_tag *tag, bool ok);
/* Takes a call off the live list (any thread) and lets a shutdown in
 * progress go on. */
void rpc_server_call_ended(rpc_server *server, rpc_call *call);

#endif
