/* session.h - a training session, its serial queue, and the registry.
 *
 * A session is one model with its optimizer and GradManager. Its requests
 * run one at a time, in arrival order, on the compute pool (session_submit);
 * different sessions run in parallel. Engine state (model, optimizer,
 * gm, recorded tensors) is touched only by the session's own jobs, so it
 * needs no lock. What other threads read (GetSession, ListSessions, idle
 * expiry) is the `summary`, which jobs update under `lock` when they end.
 *
 * Lifetime: sessions are refcounted. The registry holds one reference while
 * the session is open; every lookup and every queued job holds another. A
 * closed or expired session leaves the registry at once (later lookups get
 * NOT_FOUND), jobs already queued still run, and the last reference frees it.
 */
#ifndef TRAIND_SESSION_SESSION_H
#define TRAIND_SESSION_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "module/module.h"
#include "optimizer/optimizer.h"
#include "session/pool.h"

#define SESSION_ID_LEN 32 /* hex characters: 128 random bits */
#define SESSION_NAME_MAX 256

typedef struct session_param {
  char *name; /* owned */
  int ndim;
  int64_t shape[TD_MAX_DIMS];
  td_dtype dtype;
} session_param;

/* What anyone may read without queueing behind the session's work. */
typedef struct session_summary {
  int64_t step;
  double lr;
  bool training;
  bool recorded;
  bool has_grad;
  int64_t last_used_ms;
} session_summary;

/* How the session's durable copy stands (persist/). */
typedef struct session_save_state {
  int64_t saved_step;  /* the optimizer step of the last completed save; -1: none yet */
  int64_t saved_ms;    /* when it completed (Unix ms); 0: none yet */
  char error[256];     /* why the last save failed; "" when it succeeded */
} session_save_state;

typedef struct session_job session_job;
struct session_job {
  void (*run)(session_job *job); /* on a worker, alone in its session */
  session_job *next;
};

typedef struct session {
  atomic_int refs;
  char id[SESSION_ID_LEN + 1];
  char name[SESSION_NAME_MAX + 1];
  char tenant[65]; /* who created it ("" without authentication) */
  int64_t created_ms;
  int64_t num_parameters;
  td_mem_account *mem;   /* owned: what the session's tensors take (core/alloc.h) */
  session_param *params; /* state-dict order; fixed for the session's life */
  int n_params;
  const char *optimizer_name; /* static string, "" without an optimizer */
  uint8_t *create_request;    /* owned: the CreateModelRequest, packed, as the client sent */
  size_t create_request_len;  /* it (what a restart rebuilds the session from) */
  atomic_bool closed;         /* closed or expired: its file is being deleted, never saved */

  /* Engine state: only the session's jobs touch these. */
  td_module *model;
  td_optimizer *optimizer; /* NULL: no optimizer */
  double grad_clip_norm;   /* 0: none */
  td_grad_manager *gm;      /* holds the recording Backward will use */
  td_grad_manager *gm_next; /* records the next Forward(grad=true): swapped with gm when
                               it succeeds, so a failed one leaves gm's recording alone */
  td_tensor *recorded_output; /* Forward(grad=true)'s output, for Backward */
  td_tensor *recorded_loss;   /* its loss when one was asked for, else NULL */

  /* The serial queue and the summary. */
  uv_mutex_t lock;
  session_job *head, *tail;
  bool scheduled; /* a runner is queued on (or running on) the pool */
  int pending;    /* jobs queued or running */
  session_summary summary;
  session_save_state save;
  pool_job runner;
  pool *pool;
} session;

/* Takes ownership of model, optimizer (may be NULL) and mem (the account
 * they were allocated under) on success; creates the GradManagers with every
 * parameter attached. Call with mem as this thread's account. */
int session_create(pool *p, const char *name, td_module *model, td_optimizer *optimizer,
                   double grad_clip_norm, td_mem_account *mem, session **out);
void session_retain(session *s);
void session_release(session *s);

/* Queues job behind the session's earlier ones; it holds a reference to
 * the session until it has run (taken here, dropped after job->run). */
void session_submit(session *s, session_job *job);

/* Refreshes the summary from the engine state. Called by jobs (on the
 * session's worker) after they change something. */
void session_update_summary(session *s);
session_summary session_get_summary(session *s);
/* The save state, and its update after a save (error NULL: it succeeded). */
session_save_state session_get_save_state(session *s);
void session_note_save(session *s, int64_t step, const char *error);

/* Number of jobs queued or running. */
int session_pending(session *s);

int64_t session_now_ms(void);

/* Whether s[0..n) has the form of a session id this server generates:
 * SESSION_ID_LEN lowercase hex digits. What persist/ checks before a string
 * may name a file. */
bool session_id_is_valid(const char *s, size_t n);

/* ---- the registry ------------------------------------------------------------ */

typedef struct registry registry;

int registry_create(int max_sessions, registry **out);
/* Releases every session. */
void registry_destroy(registry *r);
/* Per-tenant limits (0: none), checked when a session is added. */
typedef struct registry_quota {
  int max_sessions;
  int64_t max_parameters; /* summed over the tenant's open sessions */
} registry_quota;

typedef enum registry_refusal {
  REGISTRY_ADDED = 0,
  REGISTRY_FULL,              /* the server's max_sessions are open */
  REGISTRY_TENANT_SESSIONS,   /* the tenant's quota of sessions */
  REGISTRY_TENANT_PARAMETERS, /* the tenant's quota of parameters */
  REGISTRY_NO_ID,             /* the kernel gave no random bytes */
} registry_refusal;

/* Gives s a fresh random id and adds it, unless a limit says no (checked
 * under the same lock, so concurrent creations cannot overshoot). The
 * registry takes one reference. */
registry_refusal registry_add(registry *r, session *s, const registry_quota *quota);
/* Adds s under the id it already has (a session restored from disk), with
 * no tenant quota: it was admitted when it was created. REGISTRY_FULL also
 * when the id is taken. */
registry_refusal registry_restore(registry *r, session *s);
/* A new reference to the open session with this id, or NULL. */
session *registry_get(registry *r, const char *id);
/* The same for a session of `tenant` only (another tenant's is absent). */
session *registry_get_owned(registry *r, const char *id, const char *tenant);
/* Removes the session of `tenant` with this id (the registry's reference
 * goes to the caller); NULL if absent. */
session *registry_remove_owned(registry *r, const char *id, const char *tenant);
/* New references to every open session, oldest first: *out is malloc'd. */
int registry_list(registry *r, session ***out, int *n);
int registry_count(registry *r);
/* Removes sessions idle (nothing pending) since before cutoff_ms; calls
 * expired(s) for each, which takes the registry's reference. */
void registry_expire(registry *r, int64_t cutoff_ms, void (*expired)(session *s, void *ctx),
                     void *ctx);

#endif
