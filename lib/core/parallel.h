/* parallel.h - the engine's intra-op threads: one setting and one pool.
 *
 * An op that can split its work (a convolution over samples, a matrix
 * product over column blocks) calls td_parallel_run(nt, fn, job), which runs
 * fn(job, t, nt) for t = 0..nt-1: share 0 on the calling thread, the others
 * on pool workers kept between calls (starting threads per op would cost
 * more than small ops take). One job runs at a time. A caller that finds the
 * pool busy (another session's op, from another compute worker) runs all its
 * shares itself, so concurrent sessions never ask for more cores than the
 * setting.
 *
 * OpenBLAS is held at one thread. Its own workers spin in sched_yield for a
 * long while after every threaded product, on the very cores this pool's
 * workers need next (on 2 cores that was half the machine, and lenet's step
 * ran no faster on 2 threads than on 1). Products are split here instead
 * (functional/gemm.c), so every intra-op thread is this pool's.
 */
#ifndef TD_CORE_PARALLEL_H
#define TD_CORE_PARALLEL_H

#include <stdint.h>

#define TD_MAX_THREADS 16

/* Sets the number of threads an op may use, clamped to 1..TD_MAX_THREADS.
 * The default is OpenBLAS's own: OPENBLAS_NUM_THREADS or OMP_NUM_THREADS
 * when set, else the number of CPUs. Safe to call at any time; ops already
 * running keep the count they started with. */
void td_set_num_threads(int n);
int td_get_num_threads(void);

/* The threads worth using for `units` independent pieces of work:
 * min(td_get_num_threads(), units), at least 1. */
int td_parallel_threads(int64_t units);

/* One share of a job. Shares must not fail: a job allocates everything
 * before it runs. */
typedef void (*td_work_fn)(void *job, int t, int nt);

/* Runs fn(job, t, nt) for every t in 0..nt-1 and returns when all are done. */
void td_parallel_run(int nt, td_work_fn fn, void *job);

/* Stops the pool's workers and joins them; registered with atexit when
 * the pool starts, so that no thread outlives main. A worker in the middle
 * of a share finishes it first. From then on td_parallel_run runs every
 * share on the calling thread. Calling it again does nothing. */
void td_parallel_shutdown(void);

/* One contiguous piece [lo, hi) of a range; must not fail, as a share. */
typedef void (*td_range_fn)(void *arg, int64_t lo, int64_t hi);

/* Splits [0, n) into at most nt contiguous pieces that start at multiples
 * of grain (a vector, a cache line, a row: whatever a piece must not cut)
 * and runs fn on each through td_parallel_run. With nt <= 1 it calls
 * fn(arg, 0, n) on this thread; with n <= 0, nothing. */
void td_parallel_for(int64_t n, int64_t grain, int nt, td_range_fn fn, void *arg);

#endif
