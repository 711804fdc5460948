/* status.h - status codes and the per-thread error message.
 *
 * Every fallible function in libtraind returns a td_status. TD_OK is zero, so
 * `if (st) return st;` propagates. On failure the function has also written a
 * message a person can act on ("conv2d: input has 3 channels, weight expects
 * 4 (input [8,3,32,32], weight [16,4,3,3])"), readable with td_error_message()
 * on the same thread until the next error is raised.
 *
 * Callers that add context (a module adding its name) use td_error_prefix(),
 * which keeps the original message and prepends to it, so the final text reads
 * outermost-first: "sequential '0': linear '2': linear: ...".
 *
 * The message is thread-local because each session's work runs on one thread
 * at a time; a status never needs to cross threads without its text, and
 * td_error_copy() exists for the one place (the server) where it does.
 */
#ifndef TD_CORE_STATUS_H
#define TD_CORE_STATUS_H

#include <stddef.h>

typedef enum td_status {
  TD_OK = 0,
  TD_ERR_INVALID_ARGUMENT,   /* bad shape, dtype, hyperparameter or value */
  TD_ERR_OUT_OF_RANGE,       /* an index (class target, embedding id) outside its range */
  TD_ERR_FAILED_PRECONDITION,/* the call is valid but the state is not (backward with no record) */
  TD_ERR_NOT_FOUND,          /* a named thing (key, file) does not exist */
  TD_ERR_NO_MEMORY,          /* an allocation failed or would exceed a limit */
  TD_ERR_IO,                 /* the operating system refused a read or write */
  TD_ERR_FORMAT,             /* a file or buffer is malformed (safetensors, JSON) */
  TD_ERR_INTERNAL,           /* a bug in traind: please report it */
  TD_ERR_CANCELLED,          /* the caller's cancellation check said stop (see cancel.h) */
} td_status;

#ifdef __GNUC__
#define TD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define TD_NODISCARD __attribute__((warn_unused_result))
#else
#define TD_PRINTF(f, a)
#define TD_NODISCARD
#endif

/* Sets this thread's message from a printf format and returns `code`, so a
 * failure site reads `return td_error(TD_ERR_INVALID_ARGUMENT, "...", ...);`. */
td_status td_error(td_status code, const char *fmt, ...) TD_PRINTF(2, 3);

/* Prepends formatted context to the current message ("linear '0': " + msg). */
void td_error_prefix(const char *fmt, ...) TD_PRINTF(1, 2);

/* The last message raised on this thread ("" if none). Borrowed: valid until
 * the next td_error/td_error_prefix/td_error_clear on this thread. */
const char *td_error_message(void);

/* Copies the current message into buf (always NUL-terminated). */
void td_error_copy(char *buf, size_t size);

void td_error_clear(void);

/* "INVALID_ARGUMENT", "OUT_OF_RANGE", ... for logs and tests. Static string. */
const char *td_status_name(td_status code);

#endif
