/* status.c - the per-thread error message behind td_status. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Long enough for a message naming a layer path and two 8-d shapes. */
#define TD_ERROR_MAX 1024

static _Thread_local char error_message[TD_ERROR_MAX];

td_status td_error(td_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  return code;
}

void td_error_prefix(const char *fmt, ...) {
  char prefix[TD_ERROR_MAX];
  char old[TD_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, error_message, sizeof old);
  /* Truncation is fine (and intended) when the combined text is too long. */
  size_t n = strnlen(prefix, sizeof prefix);
  memcpy(error_message, prefix, n);
  size_t rest = sizeof error_message - 1 - n;
  size_t m = strnlen(old, rest);
  memcpy(error_message + n, old, m);
  error_message[n + m] = '\0';
}

const char *td_error_message(void) { return error_message; }

void td_error_copy(char *buf, size_t size) {
  if (size == 0) return;
  snprintf(buf, size, "%s", error_message);
}

void td_error_clear(void) { error_message[0] = '\0'; }

const char *td_status_name(td_status code) {
  switch (code) {
  case TD_OK: return "OK";
  case TD_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
  case TD_ERR_OUT_OF_RANGE: return "OUT_OF_RANGE";
  case TD_ERR_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
  case TD_ERR_NOT_FOUND: return "NOT_FOUND";
  case TD_ERR_NO_MEMORY: return "NO_MEMORY";
  case TD_ERR_IO: return "IO";
  case TD_ERR_FORMAT: return "FORMAT";
  case TD_ERR_INTERNAL: return "INTERNAL";
  case TD_ERR_CANCELLED: return "CANCELLED";
  }
  return "UNKNOWN";
}
