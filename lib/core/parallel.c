/* parallel.c - the intra-op thread setting and its worker pool. */
#include "core/parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

static atomic_int num_threads;

/* Once, before anything is multiplied: the default thread count is what
 * OpenBLAS chose for itself (it reads OPENBLAS_NUM_THREADS, then
 * OMP_NUM_THREADS, else counts the CPUs), and OpenBLAS is then held to one. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_threads(void) {
  int n = openblas_get_num_threads();
  atomic_store(&num_threads, n < 1 ? 1 : n > TD_MAX_THREADS ? TD_MAX_THREADS : n);
  openblas_set_num_threads(1);
}

void td_set_num_threads(int n) {
  pthread_once(&init_once, init_threads);
  atomic_store(&num_threads, n < 1 ? 1 : n > TD_MAX_THREADS ? TD_MAX_THREADS : n);
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

/* ---- the pool ------------------------------------------------------------- */

static struct {
  pthread_mutex_t busy; /* held by the caller whose job is running */
  pthread_mutex_t m;    /* guards the fields below */
  pthread_cond_t start, done;
  int nworkers;              /* threads started so far (worker i runs share i) */
  uint64_t generation;       /* bumped for every job */
  int participants, pending; /* workers in the current job, and those not finished */
  td_work_fn fn;
  void *job;
  int nt;
} pool = {PTHREAD_MUTEX_INITIALIZER,
          PTHREAD_MUTEX_INITIALIZER,
          PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER,
          0,
          0,
          0,
          0,
          NULL,
          NULL,
          0};

/* The generation current when worker i was started: its first job is the next one. */
static uint64_t pool_born[TD_MAX_THREADS];

static void *pool_worker(void *arg) {
  int id = (int)(intptr_t)arg;
  pthread_mutex_lock(&pool.m);
  uint64_t seen = pool_born[id];
  for (;;) {
    while (pool.generation == seen)
      pthread_cond_wait(&pool.start, &pool.m);
    seen = pool.generation;
    if (id > pool.participants) continue;
    td_work_fn fn = pool.fn;
    void *job = pool.job;
    int nt = pool.nt;
    pthread_mutex_unlock(&pool.m);
    fn(job, id, nt);
    pthread_mutex_lock(&pool.m);
    if (--pool.pending == 0) pthread_cond_signal(&pool.done);
  }
  return NULL;
}

/* A forked child has none of the workers (and maybe a lock some other
 * thread held): it starts with an empty pool. */
static void pool_after_fork(void) {
  pthread_mutex_init(&pool.busy, NULL);
  pthread_mutex_init(&pool.m, NULL);
  pthread_cond_init(&pool.start, NULL);
  pthread_cond_init(&pool.done, NULL);
  pool.nworkers = pool.participants = pool.pending = 0;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static void pool_register_fork(void) { pthread_atfork(NULL, NULL, pool_after_fork); }

void td_parallel_run(int nt, td_work_fn fn, void *job) {
  if (nt > TD_MAX_THREADS) nt = TD_MAX_THREADS;
  if (nt > 1) pthread_once(&pool_once, pool_register_fork);
  if (nt > 1 && pthread_mutex_trylock(&pool.busy) == 0) {
    pthread_mutex_lock(&pool.m);
    while (pool.nworkers < nt - 1) {
      pthread_t th;
      pool_born[pool.nworkers + 1] = pool.generation;
      if (pthread_create(&th, NULL, pool_worker, (void *)(intptr_t)(pool.nworkers + 1))) break;
      pthread_detach(th);
      pool.nworkers++;
    }
    int helpers = pool.nworkers < nt - 1 ? pool.nworkers : nt - 1;
    pool.fn = fn, pool.job = job, pool.nt = nt;
    pool.participants = pool.pending = helpers;
    pool.generation++;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.m);
    fn(job, 0, nt);
    for (int t = helpers + 1; t < nt; t++) /* shares no worker could be started for */
      fn(job, t, nt);
    pthread_mutex_lock(&pool.m);
    while (pool.pending > 0)
      pthread_cond_wait(&pool.done, &pool.m);
    pthread_mutex_unlock(&pool.m);
    pthread_mutex_unlock(&pool.busy);
    return;
  }
  for (int t = 0; t < nt; t++)
    fn(job, t, nt);
}
