/* pool.h - the compute pool: worker threads running jobs in FIFO order.
 *
 * Training work (forward, backward, step, building models, serialising
 * checkpoints) runs here, never on the loop or a completion-queue thread.
 * Sessions put their serial queues on top (session.h): the pool itself
 * knows nothing of sessions.
 */
#ifndef TRAIND_SESSION_POOL_H
#define TRAIND_SESSION_POOL_H

#include <stdbool.h>

typedef struct pool pool;

typedef struct pool_job {
  void (*run)(struct pool_job *job); /* on a worker; may free the job */
  struct pool_job *next;             /* the pool's */
} pool_job;

/* Starts n worker threads, after setting the engine's intra-op threads
 * (td_set_num_threads) to op_threads. */
int pool_create(int n_workers, int op_threads, pool **out);
/* Queues a job; any thread. The job struct must stay valid until run. */
void pool_submit(pool *p, pool_job *job);
/* Runs every job already queued, then joins the workers and frees the pool. */
void pool_destroy(pool *p);

#endif
