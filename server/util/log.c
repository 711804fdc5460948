/* log.c - level-filtered, line-atomic logging to stderr. */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level level) { atomic_store(&current_level, (int)level); }

bool log_parse_level(const char *name, log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (!strcmp(name, level_names[i])) {
      *out = (log_level)i;
      return true;
    }
  }
  return false;
}

bool log_enabled(log_level level) { return (int)level >= atomic_load(&current_level); }

void log_write(log_level level, const char *fmt, ...) {
  if (!log_enabled(level)) return;
  char line[2048];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ", now.tv_nsec / 1000000,
                level_names[level]);
  char body[sizeof line];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  if (len < 0) len = 0;
  if (len > (int)sizeof body - 1) len = (int)sizeof body - 1;
  /* Messages carry clients' strings (a session name, a key of an uploaded
   * checkpoint): a newline in one would forge a log line of its own, an
   * escape sequence would reach the operator's terminal. So control bytes
   * are written escaped (tabs stay). A message longer than the buffer is
   * cut, never split across lines. */
  for (int i = 0; i < len && n < (int)sizeof line - 5; i++) {
    unsigned char c = (unsigned char)body[i];
    if ((c >= 0x20 && c != 0x7f) || c == '\t') {
      line[n++] = (char)c;
    } else if (c == '\n' || c == '\r') {
      line[n++] = '\\';
      line[n++] = c == '\n' ? 'n' : 'r';
    } else {
      n += snprintf(line + n, 5, "\\x%02x", c);
    }
  }
  line[n++] = '\n';
  ssize_t unused = write(STDERR_FILENO, line, (size_t)n);
  (void)unused;
}
