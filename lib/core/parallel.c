/* parallel.c - the intra-op thread setting and its worker pool. */
#include "core/parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

static atomic_int num_threads;

static int clamp_threads(int n) { return n < 1 ? 1 : n > TD_MAX_THREADS ? TD_MAX_THREADS : n; }

/* Once, before anything is multiplied: the default thread count is what
 * OpenBLAS chose for itself (it reads OPENBLAS_NUM_THREADS, then
 * OMP_NUM_THREADS, else counts the CPUs), and OpenBLAS is then held to one. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_threads(void) {
  atomic_store(&num_threads, clamp_threads(openblas_get_num_threads()));
  openblas_set_num_threads(1);
}

void td_set_num_threads(int n) {
  pthread_once(&init_once, init_threads);
  atomic_store(&num_threads, clamp_threads(n));
}

int td_get_num_threads(void) {
  pthread_once(&init_once, init_threads);
  return atomic_load(&num_threads);
}

int td_parallel_threads(int64_t units) {
  int t = td_get_num_threads();
  if (t > units) t = (int)units;
  return t > 1 ? t : 1;
}

/* ---- the pool -------------------------------------------------------------
 *
 * A training step hands the pool a few hundred jobs, many of them tens of
 * microseconds long (a BatchNorm pass, a small convolution's backward). A
 * futex wake-up and the switch it causes cost a good part of that on both
 * sides, so both sides spin a little before they sleep: a worker that just
 * finished watches for the next job, and the caller watches for its helpers
 * to finish. Sleepers are counted, so nobody makes the wake-up syscall when
 * everyone is still spinning. The spin is short (about 25 us) so that an
 * idle engine gives its cores back at once. */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

enum { SPIN_ROUNDS = 1000 }; /* pauses: about 25 us here (Zen 4) */

static struct {
  pthread_mutex_t busy; /* held by the caller whose job is running */
  pthread_mutex_t m;    /* guards the fields below; the atomics are also read spinning */
  pthread_cond_t start, done;
  int nworkers;                      /* threads started so far (worker i runs share i) */
  pthread_t threads[TD_MAX_THREADS]; /* worker i's handle at [i] */
  bool stopping;                     /* set at exit: workers return, callers run alone */
  atomic_uint_fast64_t generation;   /* bumped for every job */
  int participants;                  /* workers in the current job */
  atomic_int pending;                /* ...and those not finished */
  int sleeping_workers;              /* waiting on start */
  bool caller_sleeping;              /* waiting on done */
  td_work_fn fn;
  void *job;
  int nt;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
          .m = PTHREAD_MUTEX_INITIALIZER,
          .start = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* The generation current when worker i was started: its first job is the next one. */
static uint64_t pool_born[TD_MAX_THREADS];

static void *pool_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  pthread_mutex_lock(&pool.m);
  uint64_t seen = pool_born[id];
  for (;;) {
    if (atomic_load(&pool.generation) == seen) {
      pthread_mutex_unlock(&pool.m);
      for (int i = 0;
           i < SPIN_ROUNDS && atomic_load_explicit(&pool.generation, memory_order_relaxed) == seen;
           i++)
        cpu_relax();
      pthread_mutex_lock(&pool.m);
    }
    while (atomic_load(&pool.generation) == seen) {
      pool.sleeping_workers++;
      pthread_cond_wait(&pool.start, &pool.m);
      pool.sleeping_workers--;
    }
    seen = atomic_load(&pool.generation);
    if (pool.stopping) break;
    if (id > pool.participants) continue;
    td_work_fn fn = pool.fn;
    void *job = pool.job;
    int nt = pool.nt;
    pthread_mutex_unlock(&pool.m);
    fn(job, id, nt);
    pthread_mutex_lock(&pool.m);
    if (atomic_fetch_sub(&pool.pending, 1) == 1 && pool.caller_sleeping)
      pthread_cond_signal(&pool.done);
  }
  pthread_mutex_unlock(&pool.m);
  return NULL;
}

/* Run at exit, so that nothing of the workers (stacks, thread-local
 * storage) is left for a leak checker to report as lost. */
void td_parallel_shutdown(void) {
  pthread_mutex_lock(&pool.m);
  pool.stopping = true;
  int n = pool.nworkers;
  pool.nworkers = 0; /* joined below: a second call has none to join */
  atomic_fetch_add(&pool.generation, 1);
  pthread_cond_broadcast(&pool.start);
  pthread_mutex_unlock(&pool.m);
  for (int i = 1; i <= n; i++)
    pthread_join(pool.threads[i], NULL);
}

/* A forked child has none of the workers (and maybe a lock some other
 * thread held): it starts with an empty pool. */
static void pool_after_fork(void) {
  pthread_mutex_init(&pool.busy, NULL);
  pthread_mutex_init(&pool.m, NULL);
  pthread_cond_init(&pool.start, NULL);
  pthread_cond_init(&pool.done, NULL);
  pool.nworkers = pool.participants = pool.sleeping_workers = 0;
  atomic_store(&pool.pending, 0);
  pool.caller_sleeping = false;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static void pool_register(void) {
  pthread_atfork(NULL, NULL, pool_after_fork);
  atexit(td_parallel_shutdown);
}

void td_parallel_run(int nt, td_work_fn fn, void *job) {
  if (nt > TD_MAX_THREADS) nt = TD_MAX_THREADS;
  if (nt > 1) pthread_once(&pool_once, pool_register);
  if (nt > 1 && pthread_mutex_trylock(&pool.busy) == 0) {
    pthread_mutex_lock(&pool.m);
    if (pool.stopping) {
      pthread_mutex_unlock(&pool.m);
      pthread_mutex_unlock(&pool.busy);
      goto alone;
    }
    while (pool.nworkers < nt - 1) {
      int id = pool.nworkers + 1;
      pool_born[id] = atomic_load(&pool.generation);
      if (pthread_create(&pool.threads[id], NULL, pool_worker, (void *)(intptr_t)id)) break;
      pool.nworkers++;
    }
    int helpers = pool.nworkers < nt - 1 ? pool.nworkers : nt - 1;
    pool.fn = fn, pool.job = job, pool.nt = nt;
    pool.participants = helpers;
    atomic_store(&pool.pending, helpers);
    atomic_fetch_add(&pool.generation, 1);
    if (pool.sleeping_workers) pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.m);
    fn(job, 0, nt);
    for (int t = helpers + 1; t < nt; t++) /* shares no worker could be started for */
      fn(job, t, nt);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&pool.pending) > 0; i++)
      cpu_relax();
    pthread_mutex_lock(&pool.m);
    while (atomic_load(&pool.pending) > 0) {
      pool.caller_sleeping = true;
      pthread_cond_wait(&pool.done, &pool.m);
    }
    pool.caller_sleeping = false;
    pthread_mutex_unlock(&pool.m);
    pthread_mutex_unlock(&pool.busy);
    return;
  }
alone:
  for (int t = 0; t < nt; t++)
    fn(job, t, nt);
}

typedef struct range_job {
  td_range_fn fn;
  void *arg;
  int64_t n, step;
} range_job;

static void range_share(void *arg, int t, int nt) {
  (void)nt;
  const range_job *j = arg;
  int64_t lo = t * j->step;
  if (lo < j->n) j->fn(j->arg, lo, j->n - lo < j->step ? j->n : lo + j->step);
}

void td_parallel_for(int64_t n, int64_t grain, int nt, td_range_fn fn, void *arg) {
  if (n <= 0) return;
  if (nt <= 1) {
    fn(arg, 0, n);
    return;
  }
  if (grain < 1) grain = 1;
  int64_t pieces = (n + grain - 1) / grain;
  range_job j = {fn, arg, n, (pieces + nt - 1) / nt * grain};
  td_parallel_run(nt, range_share, &j);
}
