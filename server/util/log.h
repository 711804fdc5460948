/* log.h - one line per event on stderr, filtered by level.
 *
 *   2026-11-28T09:30:00.123Z info  listening on 127.0.0.1:50051
 *   2026-11-28T09:30:05.456Z info  session 3f2a... created (name "mnist", 109386 parameters)
 *
 * Each line is formatted into a buffer first and written with one write(2),
 * so lines from different threads never interleave. Safe from any thread.
 * Messages never contain secrets: callers pass ids and names, not tokens.
 */
#ifndef TRAIND_UTIL_LOG_H
#define TRAIND_UTIL_LOG_H

#include <stdbool.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Lines below `level` are dropped. The default is LOG_INFO. */
void log_set_level(log_level level);
/* "debug", "info", "warn", "error" -> level; false for anything else. */
bool log_parse_level(const char *name, log_level *out);
bool log_enabled(log_level level);

void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
