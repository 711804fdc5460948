/* gemm.c - cblas_sgemm, split over the engine's threads. */
#include "functional/gemm.h"

#include <cblas.h>
#include <string.h>

#include "core/parallel.h"

/* Below this many multiply-adds (about 20 us of single-core sgemm at
 * 100 GFLOP/s) a product is done about as soon as a sleeping pool worker
 * would be awake to help. */
enum { SPLIT_MIN_MACS = 1 << 20 };
/* Blocks are cut at multiples of this many rows or columns, sgemm's
 * register tile, so no thread gets a ragged edge in the middle. */
enum { SPLIT_ALIGN = 16 };

typedef struct gemm_job {
  bool ta, tb, by_cols;
  int64_t m, n, k, lda, ldb, ldc;
  const float *a, *b;
  float beta;
  float *c;
} gemm_job;

static CBLAS_TRANSPOSE op_of(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

static void serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                   const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, op_of(ta), op_of(tb), (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b,
              (int)ldb, beta, c, (int)ldc);
}

/* Columns [lo, hi) of B and C, or rows of A and C. */
static void gemm_range(void *arg, int64_t lo, int64_t hi) {
  const gemm_job *j = arg;
  if (j->by_cols)
    serial(j->ta, j->tb, j->m, hi - lo, j->k, j->a, j->lda, j->tb ? j->b + lo * j->ldb : j->b + lo,
           j->ldb, j->beta, j->c + lo, j->ldc);
  else
    serial(j->ta, j->tb, hi - lo, j->n, j->k, j->ta ? j->a + lo : j->a + lo * j->lda, j->lda, j->b,
           j->ldb, j->beta, j->c + lo * j->ldc, j->ldc);
}

void td_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; i++) {
      if (beta == 0)
        memset(c + i * ldc, 0, sizeof(float) * (size_t)n);
      else
        for (int64_t j = 0; j < n; j++)
          c[i * ldc + j] *= beta;
    }
    return;
  }
  /* Split the longer side of C, so each share keeps a full-width tile. */
  bool by_cols = n >= m;
  int64_t side = by_cols ? n : m;
  int nt = m * n * k < SPLIT_MIN_MACS ? 1 : td_parallel_threads(side / SPLIT_ALIGN);
  gemm_job j = {ta, tb, by_cols, m, n, k, lda, ldb, ldc, a, b, beta, c};
  td_parallel_for(side, SPLIT_ALIGN, nt, gemm_range, &j);
}
