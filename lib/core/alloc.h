/* alloc.h - allocation for libtraind, and what it is charged to.
 *
 * All engine memory goes through these so that a failed allocation becomes a
 * TD_ERR_NO_MEMORY status with a message naming the size, never an abort, and
 * so that tensor buffers are aligned for vector loads (64 bytes: one cache
 * line, enough for AVX-512 should a build target it).
 *
 * Accounting. Every block is counted in the process total and charged to the
 * calling thread's account (td_mem_set_account), and a limit on the total
 * (td_mem_set_limit) turns an allocation that would pass it into
 * TD_ERR_NO_MEMORY, so that a server refuses a request instead of being
 * killed by the kernel. Each block remembers its account in a header (one
 * alignment unit before the block), so td_free credits the right account on
 * whatever thread it runs. An account must outlive every block charged to it.
 */
#ifndef TD_CORE_ALLOC_H
#define TD_CORE_ALLOC_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/status.h"

#define TD_ALIGNMENT 64

/* Allocate `size` bytes, 64-byte aligned. On failure returns NULL and raises
 * TD_ERR_NO_MEMORY naming `what` (and the limit, when that was the reason).
 * Free with td_free(), never free(). */
void *td_alloc(size_t size, const char *what);
/* As td_alloc, zero-filled; n * size is checked for overflow. */
void *td_calloc(size_t n, size_t size, const char *what);
void td_free(void *p);

/* Tunes glibc's heap for a process that trains: large freed blocks stay in
 * the heap instead of going back to the kernel. A training step allocates and
 * frees the same activation-sized buffers every step; with glibc's defaults
 * each one above 128 KiB is mmap'd and unmapped, and the next step pays a
 * page fault per 4 KiB to get it back (a tenth of a CNN step's time).
 * Blocks over 32 MiB are still mapped; the heap's top is trimmed past
 * 256 MiB free. A long-running process may call malloc_trim() to give idle
 * memory back. Call once, at program start, before threads start. */
void td_mem_keep_heap(void);

/* a * b without overflow: returns 0 and sets *out, or -1 on overflow. */
int td_mul_overflow_size(size_t a, size_t b, size_t *out);

/* ---- accounting ------------------------------------------------------------ */

typedef struct td_mem_account {
  atomic_llong bytes; /* charged and not yet freed */
} td_mem_account;

/* Charges this thread's allocations to `account` from now on (NULL: none).
 * Returns the previous one, so that callers can restore it. */
td_mem_account *td_mem_set_account(td_mem_account *account);
/* The process-wide limit on bytes in use (0: none, the default). */
void td_mem_set_limit(size_t bytes);
size_t td_mem_limit(void);
/* Bytes allocated through td_alloc and not yet freed, process-wide. */
size_t td_mem_in_use(void);

#endif
