/* random.c - xoshiro256** and the distributions built on it. */
#include "tensor/random.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void td_rng_seed(td_rng *rng, uint64_t seed) {
  for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t td_rng_next_u64(td_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

float td_rng_uniform(td_rng *rng) {
  return (float)(td_rng_next_u64(rng) >> 40) * 0x1.0p-24f;
}

double td_rng_uniform_f64(td_rng *rng) {
  return (double)(td_rng_next_u64(rng) >> 11) * 0x1.0p-53;
}

double td_rng_normal(td_rng *rng) {
  /* Box-Muller, one value per call (the second is dropped so the stream
   * position is a function of the call count alone, which keeps saving and
   * restoring a generator trivial). 1 - u is in (0, 1], so log is finite. */
  double u1 = 1.0 - td_rng_uniform_f64(rng);
  double u2 = td_rng_uniform_f64(rng);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

typedef float (*sample_fn)(td_rng *rng, float a, float b);

static float sample_uniform(td_rng *rng, float low, float high) {
  return low + (high - low) * td_rng_uniform(rng);
}

static float sample_normal(td_rng *rng, float mean, float std) {
  return mean + std * (float)td_rng_normal(rng);
}

static td_status fill(td_tensor *t, td_rng *rng, sample_fn f, float a, float b) {
  if (t->dtype != TD_FLOAT32)
    return td_error(TD_ERR_INVALID_ARGUMENT, "random fill: float32 tensor required, got %s",
                    td_dtype_name(t->dtype));
  td_iter it;
  const int64_t *strides[1] = {t->strides};
  td_iter_init(&it, t->ndim, t->shape, 1, strides, &t->offset);
  int64_t off, inner, n;
  float *base = t->storage->data;
  while ((n = td_iter_next(&it, &off, &inner)) > 0)
    for (int64_t i = 0; i < n; i++) base[off + i * inner] = f(rng, a, b);
  td_tensor_bump_version(t);
  return TD_OK;
}

td_status td_tensor_uniform_(td_tensor *t, td_rng *rng, float low, float high) {
  return fill(t, rng, sample_uniform, low, high);
}

td_status td_tensor_normal_(td_tensor *t, td_rng *rng, float mean, float std) {
  return fill(t, rng, sample_normal, mean, std);
}

td_status td_tensor_rand_uniform(td_rng *rng, int ndim, const int64_t *shape, float low,
                                 float high, td_tensor **out) {
  td_status st = td_tensor_empty(TD_FLOAT32, ndim, shape, out);
  if (st) return st;
  return td_tensor_uniform_(*out, rng, low, high);
}

td_status td_tensor_rand_normal(td_rng *rng, int ndim, const int64_t *shape, float mean,
                                float std, td_tensor **out) {
  td_status st = td_tensor_empty(TD_FLOAT32, ndim, shape, out);
  if (st) return st;
  return td_tensor_normal_(*out, rng, mean, std);
}
