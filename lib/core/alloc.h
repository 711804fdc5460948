/* alloc.h - allocation for libtraind.
 *
 * All engine memory goes through these so that a failed allocation becomes a
 * TD_ERR_NO_MEMORY status with a message naming the size, never an abort, and
 * so that tensor buffers are aligned for vector loads (64 bytes: one cache
 * line, enough for AVX-512 should a build target it).
 */
#ifndef TD_CORE_ALLOC_H
#define TD_CORE_ALLOC_H

#include <stddef.h>

#include "core/status.h"

#define TD_ALIGNMENT 64

/* Allocate `size` bytes, 64-byte aligned. On failure returns NULL and raises
 * TD_ERR_NO_MEMORY naming `what`. Free with td_free(). */
void *td_alloc(size_t size, const char *what);
/* As td_alloc, zero-filled; n * size is checked for overflow. */
void *td_calloc(size_t n, size_t size, const char *what);
void td_free(void *p);

/* a * b without overflow: returns 0 and sets *out, or -1 on overflow. */
int td_mul_overflow_size(size_t a, size_t b, size_t *out);

#endif
