/* test_parallel.c - the engine's intra-op thread setting and pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>

#include "core/parallel.h"

enum { SLOTS = 4096 };

/* Each share marks its slice of the slots with its own index, and counts itself. */
typedef struct mark_job {
  int slots[SLOTS];
  atomic_int calls;
  atomic_int distinct_threads;
  pthread_t seen[TD_MAX_THREADS];
} mark_job;

static void mark(void *arg, int t, int nt) {
  mark_job *j = arg;
  for (int i = SLOTS * t / nt; i < SLOTS * (t + 1) / nt; i++)
    j->slots[i] += t + 1;
  j->seen[t] = pthread_self();
  atomic_fetch_add(&j->calls, 1);
}

/* Whether every share ran exactly once (-1), else the first bad slot. */
static int first_bad_slot(mark_job *j, int nt) {
  if (atomic_load(&j->calls) != nt) return 0;
  for (int t = 0; t < nt; t++)
    for (int i = SLOTS * t / nt; i < SLOTS * (t + 1) / nt; i++)
      if (j->slots[i] != t + 1) return i;
  return -1;
}

static void check_marked(mark_job *j, int nt) {
  int bad = first_bad_slot(j, nt);
  if (bad >= 0)
    fail_msg("%d shares: %d calls, slot %d holds %d", nt, atomic_load(&j->calls), bad,
             j->slots[bad]);
}

static void test_every_share_runs_once(void **state) {
  (void)state;
  static mark_job j; /* big: off the stack */
  for (int nt = 1; nt <= TD_MAX_THREADS; nt++) {
    memset(&j, 0, sizeof j);
    td_parallel_run(nt, mark, &j);
    check_marked(&j, nt);
  }
  /* Over and over: the pool's workers are reused, never lose a job. */
  for (int round = 0; round < 2000; round++) {
    memset(&j, 0, sizeof j);
    td_parallel_run(2 + round % 3, mark, &j);
    check_marked(&j, 2 + round % 3);
  }
}

static void test_shares_run_on_other_threads(void **state) {
  (void)state;
  static mark_job j;
  memset(&j, 0, sizeof j);
  td_parallel_run(2, mark, &j);
  check_marked(&j, 2);
  assert_true(pthread_equal(j.seen[0], pthread_self()));
  assert_false(pthread_equal(j.seen[1], pthread_self()));
}

/* Two callers at once (two sessions' ops): one gets the pool, the other runs
 * its shares itself; both complete, every share exactly once. */
static void *caller(void *arg) {
  mark_job *jobs = arg;
  for (int round = 0; round < 500; round++) {
    memset(jobs + round % 2, 0, sizeof *jobs);
    td_parallel_run(3, mark, jobs + round % 2);
    if (first_bad_slot(jobs + round % 2, 3) >= 0) return (void *)1;
  }
  return NULL;
}

static void test_concurrent_callers(void **state) {
  (void)state;
  static mark_job jobs[2][2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, caller, jobs[i]), 0);
  for (int i = 0; i < 2; i++) {
    void *rc;
    assert_int_equal(pthread_join(th[i], &rc), 0);
    assert_null(rc);
  }
}

/* The forked child exits 0 within 10 s. A share left to a worker that
 * never runs it would hang the child: that fails here instead of hanging
 * the suite. */
static void expect_child_ok(pid_t pid) {
  assert_true(pid > 0);
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 1000 && (done = waitpid(pid, &status, WNOHANG)) == 0; i++)
    usleep(10000);
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("the child's td_parallel_run did not return in 10 s");
  }
  assert_int_equal(done, pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* A forked child has none of the parent's workers; its pool starts afresh. */
static void test_pool_after_fork(void **state) {
  (void)state;
#ifdef __SANITIZE_THREAD__
  skip(); /* TSan cannot start threads in a child forked from a threaded process */
#endif
  static mark_job j;
  td_parallel_run(2, mark, &j); /* the parent's worker exists */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    memset(&j, 0, sizeof j);
    td_parallel_run(2, mark, &j);
    _exit(atomic_load(&j.calls) == 2 && j.slots[SLOTS - 1] == 2 ? 0 : 1);
  }
  expect_child_ok(pid);
}

/* After td_parallel_shutdown (what exit runs), every share still runs,
 * once, on the calling thread; a second shutdown is harmless. In a forked
 * child, so the rest of the suite keeps its pool. */
static void test_run_after_shutdown(void **state) {
  (void)state;
#ifdef __SANITIZE_THREAD__
  skip(); /* TSan cannot start threads in a child forked from a threaded process */
#endif
  static mark_job j;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    td_parallel_run(2, mark, &j); /* the child's worker exists */
    td_parallel_shutdown();
    td_parallel_shutdown();
    memset(&j, 0, sizeof j);
    td_parallel_run(2, mark, &j);
    int ok = first_bad_slot(&j, 2) < 0 && pthread_equal(j.seen[0], pthread_self()) &&
             pthread_equal(j.seen[1], pthread_self());
    _exit(ok ? 0 : 1);
  }
  expect_child_ok(pid);
}

/* Each piece counts its elements and checks it starts on a grain. */
typedef struct cover_job {
  int counts[SLOTS];
  int64_t grain;
  atomic_int pieces, misaligned;
} cover_job;

static void cover(void *arg, int64_t lo, int64_t hi) {
  cover_job *j = arg;
  if (lo % j->grain || lo >= hi) atomic_fetch_add(&j->misaligned, 1);
  for (int64_t i = lo; i < hi; i++)
    j->counts[i]++;
  atomic_fetch_add(&j->pieces, 1);
}

static void test_parallel_for_covers_the_range(void **state) {
  (void)state;
  static cover_job j;
  const int64_t ns[] = {1, 15, 16, 17, 1000, SLOTS};
  const int64_t grains[] = {1, 16, 100};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof grains / sizeof *grains; b++)
      for (int nt = 1; nt <= 5; nt++) {
        memset(&j, 0, sizeof j);
        j.grain = grains[b];
        td_parallel_for(ns[a], grains[b], nt, cover, &j);
        for (int64_t i = 0; i < SLOTS; i++)
          if (j.counts[i] != (i < ns[a]))
            fail_msg("n %lld grain %lld nt %d: element %lld covered %d times", (long long)ns[a],
                     (long long)grains[b], nt, (long long)i, j.counts[i]);
        assert_int_equal(atomic_load(&j.misaligned), 0);
        assert_true(atomic_load(&j.pieces) >= 1 && atomic_load(&j.pieces) <= nt);
      }
  memset(&j, 0, sizeof j);
  j.grain = 1;
  td_parallel_for(0, 1, 2, cover, &j); /* an empty range: no piece at all */
  assert_int_equal(atomic_load(&j.pieces), 0);
}

static void test_thread_setting(void **state) {
  (void)state;
  int saved = td_get_num_threads();
  td_set_num_threads(0);
  assert_int_equal(td_get_num_threads(), 1);
  td_set_num_threads(1000);
  assert_int_equal(td_get_num_threads(), TD_MAX_THREADS);
  td_set_num_threads(3);
  assert_int_equal(td_parallel_threads(100), 3);
  assert_int_equal(td_parallel_threads(2), 2);
  assert_int_equal(td_parallel_threads(0), 1);
  /* OpenBLAS itself stays at one thread: the engine splits products. */
  assert_int_equal(openblas_get_num_threads(), 1);
  td_set_num_threads(saved);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_share_runs_once),
      cmocka_unit_test(test_shares_run_on_other_threads),
      cmocka_unit_test(test_concurrent_callers),
      cmocka_unit_test(test_pool_after_fork),
      cmocka_unit_test(test_run_after_shutdown),
      cmocka_unit_test(test_parallel_for_covers_the_range),
      cmocka_unit_test(test_thread_setting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
