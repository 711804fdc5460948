/* cancel.c - the per-thread cancellation check. */
#include "core/cancel.h"

#include <stddef.h>

static _Thread_local td_cancel_fn check;
static _Thread_local void *check_arg;

void td_cancel_set(td_cancel_fn fn, void *arg) {
  check = fn;
  check_arg = fn ? arg : NULL;
}

td_status td_cancel_poll(void) {
  if (check && check(check_arg))
    return td_error(TD_ERR_CANCELLED, "cancelled: the caller stopped waiting for this work");
  return TD_OK;
}
