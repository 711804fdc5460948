/* cancel.h - stopping long work between ops.
 *
 * A server runs a request's forward and backward on a worker thread; when
 * the client goes away or its deadline passes, the rest of the work is
 * wasted. The caller installs a check for the thread, and the engine polls
 * it at every op boundary (td_apply, each step of a backward pass): when it
 * returns true, the op fails with TD_ERR_CANCELLED, and the usual failure
 * rules apply (a failed backward changes no gradient).
 *
 *   td_cancel_set(call_is_cancelled, call);
 *   st = td_module_forward(model, x, &y);     // TD_ERR_CANCELLED if asked
 *   td_cancel_set(NULL, NULL);
 *
 * The check runs on the installing thread only and must be cheap (an
 * atomic load): it runs once per op.
 */
#ifndef TD_CORE_CANCEL_H
#define TD_CORE_CANCEL_H

#include <stdbool.h>

#include "core/status.h"

typedef bool (*td_cancel_fn)(void *arg);

/* Installs fn(arg) as this thread's check; NULL removes it. */
void td_cancel_set(td_cancel_fn fn, void *arg);

/* TD_OK, or TD_ERR_CANCELLED (with a message) when the check says stop. */
td_status td_cancel_poll(void);

#endif
