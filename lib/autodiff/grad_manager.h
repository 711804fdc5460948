/* grad_manager.h - MegEngine's GradManager: attach, record, backward.
 *
 *   td_grad_manager *gm;  td_gm_create(&gm);
 *   td_gm_attach(gm, weight);                  // float tensors only
 *   td_gm_record(gm);                          // `with gm:`
 *   td_linear(x, weight, bias, &y); ...        // ops append to the tape
 *   td_gm_backward(gm, loss, NULL);            // dy = ones; weight->grad += dL/dw
 *
 * Recording is per thread: td_gm_record() makes gm the active recorder on the
 * calling thread, and td_apply() appends to it while it is active. A server
 * runs a session's forward and backward as separate requests, possibly on
 * different threads, so td_gm_pause() detaches the recorder from the thread
 * while keeping the tape for a later td_gm_backward().
 *
 * Gradients accumulate: backward adds into each attached tensor's `grad`
 * (allocating it the first time) until something clears it (the optimizer's
 * clear_grad). Backward consumes the recording: a second backward without a
 * new record fails with FAILED_PRECONDITION, as does backward with nothing
 * recorded. If backward fails, no grad changes, and when the failure is a bad
 * argument (dy's shape) the tape is kept so the caller can retry.
 *
 * Ownership: the manager retains every attached tensor until destroyed; the
 * tape retains saved tensors until backward or release.
 */
#ifndef TD_AUTODIFF_GRAD_MANAGER_H
#define TD_AUTODIFF_GRAD_MANAGER_H

#include <stdbool.h>

#include "tensor/tensor.h"

typedef struct td_grad_manager td_grad_manager;

td_status td_gm_create(td_grad_manager **out);
/* Releases the tape and every attached tensor. NULL is ignored. */
void td_gm_destroy(td_grad_manager *gm);

/* Track `t` (float32 only). Attaching twice is a no-op. Not allowed while a
 * recording is in progress (the tape's slot numbering is fixed at record). */
td_status td_gm_attach(td_grad_manager *gm, td_tensor *t);
int td_gm_num_attached(const td_grad_manager *gm);
/* Borrowed pointer to the i-th attached tensor, in attach order. */
td_tensor *td_gm_attached(const td_grad_manager *gm, int i);

/* Start a new recording on this thread, dropping any previous tape. */
td_status td_gm_record(td_grad_manager *gm);
/* Stop appending ops (detach from this thread); the tape is kept. */
void td_gm_pause(td_grad_manager *gm);
/* Re-attach a paused recording to this thread. */
td_status td_gm_resume(td_grad_manager *gm);
/* Drop the tape and everything it holds. */
void td_gm_release(td_grad_manager *gm);

bool td_gm_is_recording(const td_grad_manager *gm); /* active on some thread */
bool td_gm_has_tape(const td_grad_manager *gm);     /* recorded, not yet consumed */
int td_gm_tape_length(const td_grad_manager *gm);
/* Bytes held by the tape's saved tensors and op state (for memory limits). */
size_t td_gm_tape_bytes(const td_grad_manager *gm);

/* Backpropagate from y (recorded in this tape) with output gradient dy
 * (same shape as y; NULL means ones), accumulate into attached tensors'
 * grads, and release the tape. */
td_status td_gm_backward(td_grad_manager *gm, td_tensor *y, td_tensor *dy);

/* Whether `t` is tracked by the recording active on this thread. */
bool td_gm_tracks(const td_tensor *t);

#endif
