/* load_stats.c - latency samples per client thread, and the one shared tally that must
 * stay zero: unexpected errors. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "load_gen.h"

const char *const op_names[OP_N] = {"TrainStep", "Forward", "StateDict", "LoadStateDict",
                                    "GetSession"};

const char *const chaos_names[CH_N] = {
    "writer TrainStep, deadline 1-64 ms",
    "writer TrainStep, channel dropped",
    "writer TrainStep, child killed",
    "reader call, deadline 1-64 ms",
    "reader StateDict, channel dropped",
    "reader LoadStateDict part, dropped",
    "reader StateDict, child killed",
    "reader LoadStateDict open, killed",
    "staller StateDict, stops reading",
    "staller LoadStateDict part, stops",
    "staller LoadStateDict unclosed",
};

static atomic_long requests; /* for the progress lines */

long load_requests(void) { return atomic_load(&requests); }

void rec_add(recorder *r, op_kind op, stall_class cls, double ms) {
  atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4096;
    sample *v = realloc(r->v, cap * sizeof *v);
    if (!v) abort(); /* a benchmark without memory has nothing left to say */
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = (sample){(float)ms, (uint8_t)op, (uint8_t)cls};
}

void rec_free(recorder *r) {
  free(r->v);
  r->v = NULL;
  r->n = r->cap = 0;
}

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long unexpected;

#define PRINT_MAX 50 /* then only counted: the first ones say what is wrong */

static void report(const char *who, const char *fmt, va_list ap) {
  long n = atomic_fetch_add(&unexpected, 1) + 1;
  if (n > PRINT_MAX) return;
  pthread_mutex_lock(&print_lock);
  fprintf(stderr, "load: UNEXPECTED [%s] ", who);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  if (n == PRINT_MAX) fprintf(stderr, "load: (further unexpected errors only counted)\n");
  pthread_mutex_unlock(&print_lock);
}

static void reportf(const char *who, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report(who, fmt, ap);
  va_end(ap);
}

void load_unexpected(const char *who, const char *what, traind_status *st) {
  reportf(who, "%s: %s: %s", what, traind_code_name(st->code),
          st->message ? st->message : "(no message)");
  traind_status_clear(st);
}

void load_unexpectedf(const char *who, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report(who, fmt, ap);
  va_end(ap);
}

long load_unexpected_count(void) { return atomic_load(&unexpected); }

stall_class stall_class_of(load_run *run, load_session *s) {
  if (atomic_load(&s->stalls) > 0) return CLS_OWN;
  return atomic_load(&run->stalls) > 0 ? CLS_OTHER : CLS_QUIET;
}

void wlog_add(wlog *l, int kind, uint64_t arg, uint64_t hash, int64_t step) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 1024;
    wlog_entry *v = realloc(l->v, cap * sizeof *v);
    if (!v) abort();
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (wlog_entry){(uint8_t)kind, arg, hash, step};
}
