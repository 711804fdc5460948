/* gemm.h - the engine's one call into cblas_sgemm.
 * Internal to lib/functional: linalg.c and conv.c multiply through it. */
#ifndef TD_FUNCTIONAL_GEMM_H
#define TD_FUNCTIONAL_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* C[m,n] = op(A)[m,k] @ op(B)[k,n] + beta * C, row-major, where op
 * transposes when ta/tb is set. Every dimension and leading dimension must
 * fit in int. An empty inner dimension gives beta * C (zeros for beta 0);
 * sgemm itself is never handed ld 0. Large products are split into column
 * (or row) blocks over the engine's threads (core/parallel.h). */
void td_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
