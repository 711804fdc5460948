/* server.c - the gRPC server, its completion-queue thread, and the bridge
 * that hands every completion to the libuv loop. */
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"
#include "util/log.h"

/* Armed requests per method: calls that arrive while none is armed wait in
 * gRPC until the loop re-arms, so a few spare ones absorb bursts. */
#define SLOTS_PER_METHOD 8

/* How long connections stay up after the last call of a shutdown ended. */
#define LINGER_MS 500

/* ---- the bridge ------------------------------------------------------------ */

/* Appends an event for the loop; any thread. */
void rpc_server_post(rpc_server *s, rpc_tag *tag, bool ok) {
  uv_mutex_lock(&s->events_lock);
  if (s->n_events == s->cap_events) {
    int cap = s->cap_events ? 2 * s->cap_events : 64;
    rpc_event *grown = realloc(s->events, (size_t)cap * sizeof *grown);
    if (!grown) abort(); /* an event we cannot queue would leak a call forever */
    s->events = grown;
    s->cap_events = cap;
  }
  s->events[s->n_events++] = (rpc_event){tag, ok};
  uv_mutex_unlock(&s->events_lock);
  uv_async_send(&s->wakeup);
}

static void arm_slot(rpc_slot *slot);
static void maybe_finish_shutdown(rpc_server *s);
static void on_linger_over(uv_timer_t *timer);
static void on_slot_event(rpc_slot *slot, bool ok);

/* What the completion-queue thread handles itself: a new unary or
 * server-streaming call (its request came with it, and its handler only
 * finds the session and queues the work, rpc.h), and the end of a batch
 * that needs no callback. A hop through the loop would cost a thread
 * wake-up each and buy nothing. Streaming callbacks and shutdown go to the
 * loop. */
static bool handle_here(const grpc_event *ev) {
  const rpc_tag *tag = ev->tag;
  if (tag->kind == TAG_SHUTDOWN) return false;
  if (tag->kind == TAG_NEW_CALL) {
    const rpc_slot *slot = tag->owner;
    return ev->success && slot->method && slot->method->kind != RPC_CLIENT_STREAM;
  }
  return !rpc_call_event_needs_loop(tag->owner, tag->kind);
}

static void cq_thread_main(void *arg) {
  rpc_server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    rpc_tag *tag = ev.tag;
    RPC_HANDOFF_ACQUIRE(tag);
    if (!handle_here(&ev))
      rpc_server_post(s, tag, ev.success != 0);
    else if (tag->kind == TAG_NEW_CALL)
      on_slot_event(tag->owner, true);
    else
      rpc_call_on_event(tag->owner, tag->kind, ev.success != 0);
  }
}

/* On the cq thread for dispatch_here's calls, on the loop otherwise. The
 * call is counted before its slot stops counting, so shutdown never sees a
 * moment with neither. */
static void on_slot_event(rpc_slot *slot, bool ok) {
  rpc_server *s = slot->server;
  if (ok) atomic_fetch_add(&s->n_calls, 1);
  atomic_fetch_sub(&s->slots_armed, 1);
  if (!ok) { /* on the loop: the server is shutting down */
    /* The server is shutting down: the slot is not re-armed. */
    grpc_metadata_array_destroy(&slot->metadata);
    grpc_call_details_destroy(&slot->details);
    if (slot->payload) grpc_byte_buffer_destroy(slot->payload);
    slot->payload = NULL;
    maybe_finish_shutdown(s);
    return;
  }
  /* Take what the slot received, re-arm it, then run the call. */
  rpc_slot got = *slot;
  if (!atomic_load(&s->grpc_shutdown_started)) arm_slot(slot);
  rpc_call_accept(s, &got); /* takes got.call and got.payload */
  grpc_metadata_array_destroy(&got.metadata);
  grpc_call_details_destroy(&got.details);
}

static void on_wakeup(uv_async_t *handle) {
  rpc_server *s = handle->data;
  for (;;) {
    uv_mutex_lock(&s->events_lock);
    /* Swap the two buffers, each with its own capacity. */
    rpc_event *batch = s->events;
    int n = s->n_events, cap = s->cap_events;
    s->events = s->draining;
    s->cap_events = s->cap_draining;
    s->n_events = 0;
    s->draining = batch;
    s->cap_draining = cap;
    uv_mutex_unlock(&s->events_lock);
    if (n == 0) {
      maybe_finish_shutdown(s); /* calls may have ended on other threads */
      if (s->finished && s->done) s->done(s);
      return;
    }
    for (int i = 0; i < n; i++) {
      rpc_tag *tag = batch[i].tag;
      if (tag->kind == TAG_NEW_CALL)
        on_slot_event(tag->owner, batch[i].ok);
      else if (tag->kind == TAG_SHUTDOWN) {
        s->shutdown_tag_seen = true;
        maybe_finish_shutdown(s);
      } else
        rpc_call_on_event(tag->owner, tag->kind, batch[i].ok);
    }
    if (s->finished) {
      if (s->done) s->done(s); /* may destroy s: nothing touches it after this */
      return;
    }
  }
}

/* ---- request slots ---------------------------------------------------------- */

static void arm_slot(rpc_slot *slot) {
  rpc_server *s = slot->server;
  slot->call = NULL;
  slot->payload = NULL;
  grpc_metadata_array_init(&slot->metadata);
  grpc_call_details_init(&slot->details);
  grpc_call_error err;
  RPC_HANDOFF_RELEASE(&slot->tag);
  if (slot->registered)
    err = grpc_server_request_registered_call(s->server, slot->registered, &slot->call,
                                              &slot->deadline, &slot->metadata,
                                              slot->method->kind == RPC_CLIENT_STREAM
                                                  ? NULL
                                                  : &slot->payload,
                                              s->cq, s->cq, &slot->tag);
  else
    err = grpc_server_request_call(s->server, &slot->call, &slot->details, &slot->metadata, s->cq,
                                   s->cq, &slot->tag);
  if (err != GRPC_CALL_OK) {
    log_error("rpc: cannot arm a request for %s (grpc error %d)",
              slot->method ? slot->method->path : "unknown methods", (int)err);
    grpc_metadata_array_destroy(&slot->metadata);
    grpc_call_details_destroy(&slot->details);
    return;
  }
  atomic_fetch_add(&s->slots_armed, 1);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int rpc_server_create(uv_loop_t *loop, const rpc_server_options *options,
                      const rpc_method *methods, int n_methods, rpc_server **out,
                      int *bound_port) {
  *out = NULL;
  rpc_server *s = calloc(1, sizeof *s);
  if (!s) return -1;
  s->loop = loop;
  s->user = options->user;
  s->methods = methods;
  s->n_methods = n_methods;
  s->shutdown_tag = (rpc_tag){TAG_SHUTDOWN, s};
  uv_mutex_init(&s->events_lock);
  uv_mutex_init(&s->calls_lock);

  int max_msg = options->max_message_size > 0x7fffffff ? 0x7fffffff
                                                         : (int)options->max_message_size;
  grpc_arg args[3] = {
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = max_msg},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = max_msg},
      /* gRPC sets SO_REUSEPORT by default, which would let a second daemon
       * "bind" a port the first one serves; we want the error instead. */
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
  };
  grpc_channel_args channel_args = {3, args};
  s->server = grpc_server_create(&channel_args, NULL);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);

  s->n_slots = (n_methods + 1) * SLOTS_PER_METHOD;
  s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
  if (!s->slots) goto fail;
  for (int m = 0; m <= n_methods; m++) {
    void *handle = NULL;
    if (m < n_methods) {
      handle = grpc_server_register_method(
          s->server, methods[m].path, NULL,
          methods[m].kind == RPC_CLIENT_STREAM ? GRPC_SRM_PAYLOAD_NONE
                                               : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
          0);
      if (!handle) {
        log_error("rpc: cannot register method %s", methods[m].path);
        goto fail;
      }
    }
    for (int k = 0; k < SLOTS_PER_METHOD; k++) {
      rpc_slot *slot = &s->slots[m * SLOTS_PER_METHOD + k];
      slot->tag = (rpc_tag){TAG_NEW_CALL, slot};
      slot->server = s;
      slot->method = m < n_methods ? &methods[m] : NULL;
      slot->registered = handle;
    }
  }

  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(s->server, options->listen, creds);
  grpc_server_credentials_release(creds);
  if (port == 0) {
    log_error("cannot listen on %s (address in use, or not an address of this machine)",
              options->listen);
    goto fail;
  }
  *bound_port = port;

  uv_async_init(loop, &s->wakeup, on_wakeup);
  s->wakeup.data = s;
  uv_timer_init(loop, &s->grace_timer);
  s->grace_timer.data = s;
  *out = s;
  return 0;

fail:
  /* Never started: gRPC allows destroying a server that was not started. */
  grpc_server_destroy(s->server);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(s->cq);
  uv_mutex_destroy(&s->events_lock);
  uv_mutex_destroy(&s->calls_lock);
  free(s->slots);
  free(s);
  return -1;
}

int rpc_server_start(rpc_server *s) {
  grpc_server_start(s->server);
  for (int i = 0; i < s->n_slots; i++) arm_slot(&s->slots[i]);
  if (uv_thread_create(&s->cq_thread, cq_thread_main, s)) return -1;
  s->cq_thread_started = true;
  return 0;
}

int rpc_server_calls_in_flight(const rpc_server *s) { return atomic_load(&s->n_calls); }

void rpc_server_call_ended(rpc_server *s, rpc_call *call) {
  /* All under the lock, so that the loop, which checks the count under it
   * before destroying the server, never sees zero while this thread has
   * yet to touch `wakeup`. The shutdown's bookkeeping belongs to the loop:
   * wake it to look. */
  uv_mutex_lock(&s->calls_lock);
  if (call->prev)
    call->prev->next = call->next;
  else
    s->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  atomic_fetch_sub(&s->n_calls, 1);
  if (atomic_load(&s->shutting_down)) uv_async_send(&s->wakeup);
  uv_mutex_unlock(&s->calls_lock);
}

/* Shutdown runs in two phases. Draining: gRPC still accepts calls (handlers
 * refuse training calls with UNAVAILABLE and health says NOT_SERVING, so
 * load balancers see it) while calls in flight finish. Then, when none is
 * left or the grace period is over, gRPC's own shutdown: cancel what
 * remains, and wait for every tag to come back before the queue is shut
 * (TOOLCHAIN.md: shutting the queue with batches outstanding aborts). */
static void start_grpc_shutdown(rpc_server *s, bool cancel_calls) {
  if (s->grpc_shutdown_started) return;
  atomic_store(&s->grpc_shutdown_started, true);
  uv_timer_stop(&s->grace_timer);
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
  /* Only when the grace period is over: a call we are done with may still
   * be sending its answer, and cancelling would cut it off. */
  if (!cancel_calls) return;
  grpc_server_cancel_all_calls(s->server);
  uv_mutex_lock(&s->calls_lock);
  for (rpc_call *c = s->calls; c; c = c->next) atomic_store(&c->cancelled, true);
  uv_mutex_unlock(&s->calls_lock);
}

static void on_linger_over(uv_timer_t *timer) {
  rpc_server *s = timer->data;
  s->lingered = true;
  maybe_finish_shutdown(s);
  if (s->finished && s->done) s->done(s); /* may destroy s */
}

static void on_grace_over(uv_timer_t *timer) {
  rpc_server *s = timer->data;
  int n = atomic_load(&s->n_calls);
  if (n) log_warn("grace period over: cancelling %d call%s still in flight", n, n == 1 ? "" : "s");
  start_grpc_shutdown(s, true);
}

static void maybe_finish_shutdown(rpc_server *s) {
  if (!atomic_load(&s->shutting_down)) return;
  if (!s->grpc_shutdown_started) {
    if (atomic_load(&s->n_calls) == 0) start_grpc_shutdown(s, false);
    return;
  }
  /* Slots first: a slot that delivers a call counts the call before it
   * stops counting itself (on_slot_event), so reading in this order never
   * misses one in between. */
  bool slots_left = atomic_load(&s->slots_armed) != 0;
  uv_mutex_lock(&s->calls_lock);
  bool calls_left = atomic_load(&s->n_calls) != 0;
  uv_mutex_unlock(&s->calls_lock);
  if (!s->shutdown_tag_seen || slots_left || calls_left || s->cq_shut) return;
  if (!s->lingered) {
    /* Every call is over, but the last answers may still be on their way
     * through the transport (a 16 MiB response takes a while), and closing
     * a connection with bytes unread makes the kernel reset it, losing
     * them. So the connections stay served a moment longer. */
    if (!s->lingering) {
      s->lingering = true;
      uv_timer_start(&s->grace_timer, on_linger_over, LINGER_MS, 0);
    }
    return;
  }
  s->cq_shut = true;
  grpc_server_destroy(s->server);
  s->server = NULL;
  grpc_completion_queue_shutdown(s->cq);
  uv_thread_join(&s->cq_thread); /* it leaves on GRPC_QUEUE_SHUTDOWN */
  s->cq_thread_started = false;
  grpc_completion_queue_destroy(s->cq);
  s->cq = NULL;
  s->finished = true; /* on_wakeup calls `done` once it is off the event list */
}

void rpc_server_shutdown(rpc_server *s, uint64_t grace_ms, void (*done)(rpc_server *)) {
  if (atomic_load(&s->shutting_down)) return;
  atomic_store(&s->shutting_down, true);
  s->done = done;
  if (grace_ms == 0 || atomic_load(&s->n_calls) == 0) {
    start_grpc_shutdown(s, grace_ms == 0);
  } else {
    uv_timer_start(&s->grace_timer, on_grace_over, grace_ms, 0);
  }
  maybe_finish_shutdown(s);
}

bool rpc_server_draining(const rpc_server *s) { return atomic_load(&s->shutting_down); }

/* The struct holds the two handles, so it is freed when libuv has closed
 * the second one. */
static void on_handle_closed(uv_handle_t *h) {
  rpc_server *s = h->data;
  if (--s->open_handles) return;
  uv_mutex_destroy(&s->events_lock);
  uv_mutex_destroy(&s->calls_lock);
  free(s->events);
  free(s->draining);
  free(s->slots);
  free(s);
}

void rpc_server_destroy(rpc_server *s) {
  if (!s) return;
  s->open_handles = 2;
  uv_close((uv_handle_t *)&s->wakeup, on_handle_closed);
  uv_close((uv_handle_t *)&s->grace_timer, on_handle_closed);
}
