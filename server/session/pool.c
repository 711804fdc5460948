/* pool.c - a fixed set of worker threads over one FIFO of jobs. */
#include "session/pool.h"

#include <stdlib.h>
#include <uv.h>

#include "core/parallel.h"


struct pool {
  uv_mutex_t lock;
  uv_cond_t ready;
  pool_job *head, *tail;
  bool stopping;
  int n_threads;
  uv_thread_t *threads;
};

static void worker_main(void *arg) {
  pool *p = arg;
  for (;;) {
    uv_mutex_lock(&p->lock);
    while (!p->head && !p->stopping) uv_cond_wait(&p->ready, &p->lock);
    pool_job *job = p->head;
    if (!job) { /* stopping and nothing left */
      uv_mutex_unlock(&p->lock);
      return;
    }
    p->head = job->next;
    if (!p->head) p->tail = NULL;
    uv_mutex_unlock(&p->lock);
    job->next = NULL;
    job->run(job);
  }
}

int pool_create(int n_workers, int op_threads, pool **out) {
  *out = NULL;
  pool *p = calloc(1, sizeof *p);
  if (!p) return -1;
  p->threads = calloc((size_t)n_workers, sizeof *p->threads);
  if (!p->threads) {
    free(p);
    return -1;
  }
  uv_mutex_init(&p->lock);
  uv_cond_init(&p->ready);
  td_set_num_threads(op_threads);
  for (int i = 0; i < n_workers; i++) {
    if (uv_thread_create(&p->threads[i], worker_main, p)) {
      pool_destroy(p);
      return -1;
    }
    p->n_threads++;
  }
  *out = p;
  return 0;
}

void pool_submit(pool *p, pool_job *job) {
  job->next = NULL;
  uv_mutex_lock(&p->lock);
  if (p->tail)
    p->tail->next = job;
  else
    p->head = job;
  p->tail = job;
  uv_cond_signal(&p->ready);
  uv_mutex_unlock(&p->lock);
}

void pool_destroy(pool *p) {
  if (!p) return;
  uv_mutex_lock(&p->lock);
  p->stopping = true;
  uv_cond_broadcast(&p->ready);
  uv_mutex_unlock(&p->lock);
  for (int i = 0; i < p->n_threads; i++) uv_thread_join(&p->threads[i]);
  uv_cond_destroy(&p->ready);
  uv_mutex_destroy(&p->lock);
  free(p->threads);
  free(p);
}
