/* random.h - a reproducible random number generator.
 *
 * xoshiro256** seeded through splitmix64: integer-only state updates, so the
 * same seed gives the same bit stream on every machine and compiler. Uniform
 * floats take the top 24 bits (exactly representable in float32); normals use
 * Box-Muller in double, which rounds to the same float32 everywhere libm is
 * correctly rounded to within an ulp of double (glibc is).
 *
 * A td_rng is a plain value: embed it, copy it to fork a stream, save its
 * four words in a checkpoint to resume exactly.
 */
#ifndef TD_TENSOR_RANDOM_H
#define TD_TENSOR_RANDOM_H

#include <stdint.h>

#include "tensor/tensor.h"

typedef struct td_rng {
  uint64_t s[4];
} td_rng;

void td_rng_seed(td_rng *rng, uint64_t seed);
uint64_t td_rng_next_u64(td_rng *rng);
/* Uniform in [0, 1), 24-bit resolution. */
float td_rng_uniform(td_rng *rng);
/* Uniform in [0, 1), 53-bit resolution. */
double td_rng_uniform_f64(td_rng *rng);
/* Standard normal. */
double td_rng_normal(td_rng *rng);

/* Fill a float32 tensor (any view) in row-major order. Bumps its version. */
td_status td_tensor_uniform_(td_tensor *t, td_rng *rng, float low, float high);
td_status td_tensor_normal_(td_tensor *t, td_rng *rng, float mean, float std);

/* New contiguous float32 tensors of random values. */
td_status td_tensor_rand_uniform(td_rng *rng, int ndim, const int64_t *shape, float low,
                                 float high, td_tensor **out);
td_status td_tensor_rand_normal(td_rng *rng, int ndim, const int64_t *shape, float mean,
                                float std, td_tensor **out);

#endif
