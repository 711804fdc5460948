/* internal.c - field paths and saturating counts for the spec translators. */
#include "spec/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void spec_path_init(spec_path *p, const char *root) {
  p->len = 0;
  p->buf[0] = '\0';
  spec_path_push(p, "%s", root);
}

size_t spec_path_push(spec_path *p, const char *fmt, ...) {
  size_t before = p->len;
  size_t room = sizeof p->buf - p->len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(p->buf + p->len, room, fmt, ap);
  va_end(ap);
  if (n < 0) {
    p->buf[p->len] = '\0';
  } else if ((size_t)n >= room) {
    p->len = sizeof p->buf - 1;
    memcpy(p->buf + p->len - 3, "...", 3);
  } else {
    p->len += (size_t)n;
  }
  return before;
}

void spec_path_pop(spec_path *p, size_t len) {
  if (len < p->len) {
    p->len = len;
    p->buf[len] = '\0';
  }
}

/* Longest path shown whole, and how much of each end a longer one keeps. */
#define SHOWN_MAX 400
#define SHOWN_HEAD 120
#define SHOWN_TAIL 240

const char *spec_path_text(const spec_path *p) {
  static _Thread_local char shown[SHOWN_MAX + 8];
  if (p->len <= SHOWN_MAX) return p->buf;
  /* Cut at field boundaries ('.') so both ends read as paths. */
  size_t head = SHOWN_HEAD, tail = p->len - SHOWN_TAIL;
  while (head > 0 && p->buf[head] != '.')
    head--;
  while (tail < p->len && p->buf[tail] != '.')
    tail++;
  snprintf(shown, sizeof shown, "%.*s ... %s", (int)head, p->buf, p->buf + tail);
  return shown;
}

int64_t spec_count_mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return INT64_MAX;
  return r;
}

int64_t spec_count_add(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return INT64_MAX;
  return r;
}

uint32_t spec_unknown_field(const ProtobufCMessage *m) {
  return m->n_unknown_fields ? m->unknown_fields[0].tag : 0;
}
