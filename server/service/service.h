/* service.h - traind.v1.Trainer and grpc.health.v1.Health over the rpc layer.
 *
 * Each handler is decode (done by the rpc layer), validate, run, encode.
 * Handlers run on the loop only long enough to find the session and queue
 * a job; everything that touches the engine runs on the session's serial
 * queue (session.h), and the job answers the call from its worker.
 */
#ifndef TRAIND_SERVICE_SERVICE_H
#define TRAIND_SERVICE_SERVICE_H

#include <stdatomic.h>

#include "auth/tokens.h"
#include "persist/store.h"
#include "rpc/rpc.h"
#include "session/session.h"
#include "spec/spec.h"
#include "traind/v1/trainer.pb-c.h"
#include "util/config.h"

typedef struct service {
  const traind_config *config;
  spec_limits limits;
  registry *sessions;
  pool *pool;
  rpc_server *rpc; /* set once the server exists */
  tokens *tokens;  /* NULL: no authentication (every caller is tenant "") */
  session_store *store; /* NULL: sessions are not persisted (tests of the service alone) */
} service;

/* The methods of both services, for rpc_server_create. */
extern const rpc_method service_methods[];
extern const int service_n_methods;

/* The service behind a call. */
static inline service *service_of(rpc_call *call) { return rpc_call_server_user(call); }

/* ---- helpers shared by the handlers (common.c) ---------------------------- */

/* The gRPC code for an engine status (TD_ERR_NO_MEMORY, which the engine
 * also raises for limits, is RESOURCE_EXHAUSTED). */
grpc_status_code service_status_code(td_status st);

/* Finishes the call with st and this thread's engine message. */
void service_fail(rpc_call *call, td_status st);

/* Finishes with a formatted message. */
void service_failf(rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Work on a session, run on its serial queue: finish the call exactly once. */
typedef void (*session_work)(rpc_call *call, session *s, const ProtobufCMessage *request);

/* On the loop: refuses calls while draining (UNAVAILABLE), finds the session
 * (INVALID_ARGUMENT for an empty id, NOT_FOUND for an unknown one) and
 * queues `work` behind its earlier requests. A call cancelled while queued
 * is finished with CANCELLED without running. */
void service_queue(rpc_call *call, const char *session_id, session_work work);

/* The open session with this id that belongs to the call's tenant, as a new
 * reference (take: removed from the registry, whose reference the caller
 * gets). NULL after finishing the call with INVALID_ARGUMENT (empty id) or
 * NOT_FOUND, which is also what another tenant's session gives: its
 * existence does not leak. */
session *service_find(rpc_call *call, const char *session_id, bool take);

/* Queues `work` on s (the caller keeps its own reference). */
void service_queue_on(rpc_call *call, session *s, session_work work);

/* Runs run(arg) on this thread with the engine polling the call's
 * cancellation at every op (core/cancel.h). */
void service_run_cancellable(rpc_call *call, void (*run)(void *arg), void *arg);

/* Whether the call may go on: false, and the call finished, while draining
 * (UNAVAILABLE) or when tokens are required and the call has no valid one
 * (UNAUTHENTICATED). On true the call's principal is its tenant. */
bool service_admit(rpc_call *call);

/* Fills info from s; free with service_info_clear. */
int service_info_fill(session *s, Traind__V1__SessionInfo *info);
void service_info_clear(Traind__V1__SessionInfo *info);

/* Model state a failed forward must not leave behind: BatchNorm's running
 * statistics and the Dropout generators, which a train-mode forward moves
 * before a later layer may refuse the input. */
typedef struct model_snapshot {
  td_tensor_map buffers; /* copies */
  td_tensor_map rng;
} model_snapshot;
td_status model_snapshot_take(td_module *m, model_snapshot *snap);
void model_snapshot_restore(td_module *m, model_snapshot *snap);
void model_snapshot_free(model_snapshot *snap);

/* Drops every gradient and any recording awaiting Backward. */
void session_clear_grads(session *s);
/* Drops the recording awaiting Backward (tape and kept tensors) only;
 * after a backward has consumed it, or a load made it stale. */
void session_drop_recording(session *s);

/* The global L2 norm of all parameter gradients (0 without any). */
float session_grad_norm(session *s);

/* ---- building sessions (create_model.c) ---------------------------------- */

/* A new session (not yet registered) from a CreateModelRequest: model,
 * optimizer, GradManagers, its memory account, and the request packed for
 * its file. Refusals name the field. */
td_status service_build_session(service *svc, const Traind__V1__CreateModelRequest *req,
                                session **out);

/* ---- durability (durability.c) ---------------------------------------------
 *
 * A session's file is written when it is created, every --autosave-steps
 * optimizer steps, after LoadStateDict and SetTraining, and at shutdown;
 * it is deleted when the session is closed or expires. A failed save is
 * logged and shown in SessionInfo (save_error) and leaves the previous file
 * as it was; the request that triggered it still succeeds, since what it
 * did to the session in memory is done. */

/* Saves s now (on its queue, or with nothing else running). Clears this
 * thread's cancellation check: a save is never cut short. */
void service_save(service *svc, session *s, const char *why);
/* After an optimizer step: saves when --autosave-steps steps have passed
 * since the last save. */
void service_autosave(service *svc, session *s);
/* For a session just taken out of the registry (closed, or expired): marks
 * it closed, so nothing saves it again, and queues the deletion of its file
 * behind its queued requests; then answers close_call (CloseSession; NULL
 * for an expiry), so a close is acknowledged only once it is durable. */
void service_forget(service *svc, session *s, rpc_call *close_call);
/* The session a file describes (not registered): built from its
 * CreateModelRequest as CreateModel built it, then given the file's state,
 * mode, id, owner and creation time. */
td_status service_session_from_record(service *svc, const session_record *rec, session **out);
/* At start: every session file back into the registry, under its old id.
 * Returns the number restored. */
int service_restore(service *svc);
/* At shutdown, once the pool has stopped: saves every open session.
 * Returns how many saves failed (each is logged). */
int service_save_all(service *svc);

/* ---- the training steps shared by Forward and TrainStep (forward.c) ----- */

/* Runs the model on `input` and, when loss_spec is set, the loss against
 * `target`. grad: record for backward (replacing an unconsumed recording),
 * keeping the output and loss in the session for Backward. On failure the
 * model's buffers and generators are as they were before. *output and *loss
 * (may be NULL) are new references. */
td_status session_forward(session *s, td_tensor *input, td_tensor *target,
                          const Traind__V1__LossSpec *loss_spec, bool grad, td_tensor **output,
                          td_tensor **loss);

/* Decodes input/target/loss fields common to Forward and TrainStep. */
td_status decode_batch(const spec_limits *limits, const Traind__V1__Tensor *input,
                       const Traind__V1__Tensor *target, const Traind__V1__LossSpec *loss,
                       td_tensor **x, td_tensor **y);

/* One optimizer update (step.c): clips (or measures) the gradients' norm,
 * steps with the current LR (*lr), then clears the gradients unless
 * keep_grad. FAILED_PRECONDITION without an optimizer. */
td_status session_step(session *s, bool keep_grad, double *lr, float *grad_norm);

/* The scalar value of a float32 [] tensor. */
float scalar_value(const td_tensor *t);

#endif
