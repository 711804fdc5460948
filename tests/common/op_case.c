/* op_case.c - the registry of op case families and input generation. */
#include "common/op_case.h"

#include <math.h>

#include "tensor/random.h"

/* Weak so that a partial build (one op family being written) still links;
 * in the full build every family is defined and test_gradcheck asserts it. */
#define FAMILY(n) extern const op_case op_cases_##n[] __attribute__((weak));
#define FAMILIES(X) \
  X(elementwise) X(activation) X(reduce) X(loss) X(linalg) X(conv) X(pool) X(norm) X(nn) X(shape)
FAMILIES(FAMILY)
#undef FAMILY

const op_case_family *op_case_families(void) {
  static op_case_family list[16];
  static int n = 0;
  if (n == 0) {
#define ADD(name) if (op_cases_##name) list[n++] = (op_case_family){#name, op_cases_##name};
    FAMILIES(ADD)
#undef ADD
    list[n] = (op_case_family){NULL, NULL};
  }
  return list;
}

static td_status make_one(const op_case_input *in, td_rng *rng, td_tensor **out) {
  *out = NULL;
  if (in->ndim < 0) return TD_OK; /* optional input left out */
  td_tensor *t;
  td_status st = td_tensor_empty(in->dtype, in->ndim, in->shape, &t);
  if (st) return st;
  if (in->dtype == TD_INT64) {
    int64_t lo = (int64_t)in->lo, hi = (int64_t)in->hi;
    if (hi <= lo) hi = lo + 1;
    for (int64_t i = 0; i < t->numel; i++)
      td_tensor_i64(t)[i] = lo + (int64_t)(td_rng_next_u64(rng) % (uint64_t)(hi - lo));
  } else {
    double lo = in->lo, hi = in->hi;
    if (lo == 0 && hi == 0) lo = -1, hi = 1;
    float *p = td_tensor_f32(t);
    for (int64_t i = 0; i < t->numel; i++) {
      double v;
      do v = lo + (hi - lo) * td_rng_uniform_f64(rng);
      while (in->avoid && fabs(v - in->avoid_at) < in->avoid_gap);
      p[i] = (float)v;
    }
  }
  if (in->strided && t->ndim >= 2) {
    /* Same values, transposed storage: materialise the transpose, then view
     * it transposed back. */
    td_tensor *tr, *copy, *back;
    if ((st = td_tensor_transpose(t, -1, -2, &tr))) goto fail;
    st = td_tensor_clone(tr, &copy);
    td_tensor_release(tr);
    if (st) goto fail;
    st = td_tensor_transpose(copy, -1, -2, &back);
    td_tensor_release(copy);
    if (st) goto fail;
    td_tensor_release(t);
    t = back;
  }
  *out = t;
  return TD_OK;
fail:
  td_tensor_release(t);
  return st;
}

td_status op_case_make_inputs(const op_case *c, uint64_t seed, td_tensor **inputs) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  for (int i = 0; i < c->n_inputs; i++) inputs[i] = NULL;
  for (int i = 0; i < c->n_inputs; i++) {
    td_status st = make_one(&c->inputs[i], &rng, &inputs[i]);
    if (st) {
      for (int j = 0; j < i; j++) TD_RELEASE(inputs[j]);
      return st;
    }
  }
  return TD_OK;
}

td_status op_case_run(const op_case *c, uint64_t seed, td_tensor **inputs, bool grad,
                      td_grad_manager **gm, td_tensor **out, td_tensor **dy) {
  *gm = NULL;
  *out = *dy = NULL;
  td_status st = td_gm_create(gm);
  if (st) return st;
  if (grad) {
    for (int i = 0; i < c->n_inputs; i++)
      if (c->inputs[i].grad && (st = td_gm_attach(*gm, inputs[i]))) return st;
    td_gm_record(*gm);
  }
  st = c->run(inputs, out);
  td_gm_pause(*gm);
  if (st || !grad) return st;
  td_rng rng;
  td_rng_seed(&rng, seed ^ 0x5bd1e995);
  if ((st = td_tensor_rand_normal(&rng, (*out)->ndim, (*out)->shape, 0, 1, dy))) return st;
  return td_gm_backward(*gm, *out, *dy);
}
