/* cases_nn.c - op cases for dropout and embedding. */
#include "common/op_case.h"

#define IN(nd, ...)                                                                                \
  { .ndim = nd, .shape = {__VA_ARGS__}, .grad = true }
#define IN_STRIDED(nd, ...)                                                                        \
  { .ndim = nd, .shape = {__VA_ARGS__}, .grad = true, .strided = true }
#define INDICES(v, nd, ...)                                                                        \
  { .ndim = nd, .shape = {__VA_ARGS__}, .dtype = TD_INT64, .hi = v }
#define CASE(nm, o, js, fn, n, ...)                                                                \
  {                                                                                                \
    .name = nm, .op = o, .params_json = js, .run = fn, .n_inputs = n, .inputs = { __VA_ARGS__ }    \
  }

/* A generator seeded inside the run gives the same mask on every call, so
 * finite differences see a fixed function; tests/parity/torch_nn.py replays
 * the generator to rebuild the mask. */
static td_status run_dropout_seeded(td_tensor **in, td_tensor **out, float p) {
  td_rng rng;
  td_rng_seed(&rng, 1234);
  return td_dropout(in[0], p, true, &rng, out);
}
static td_status run_dropout_p03(td_tensor **in, td_tensor **out) {
  return run_dropout_seeded(in, out, 0.3f);
}
static td_status run_dropout_p05(td_tensor **in, td_tensor **out) {
  return run_dropout_seeded(in, out, 0.5f);
}
static td_status run_dropout_p0(td_tensor **in, td_tensor **out) {
  return td_dropout(in[0], 0.0f, true, NULL, out);
}
static td_status run_dropout_p1(td_tensor **in, td_tensor **out) {
  return td_dropout(in[0], 1.0f, true, NULL, out);
}
static td_status run_dropout_eval(td_tensor **in, td_tensor **out) {
  return td_dropout(in[0], 0.5f, false, NULL, out);
}
static td_status run_embedding(td_tensor **in, td_tensor **out) {
  return td_embedding(in[0], in[1], out);
}

const op_case op_cases_nn[] = {
    CASE("dropout_p0_train", "dropout", "{\"p\": 0.0, \"training\": true}", run_dropout_p0, 1,
         IN(2, 4, 5)),
    CASE("dropout_eval_identity", "dropout", "{\"p\": 0.5, \"training\": false}", run_dropout_eval,
         1, IN_STRIDED(3, 2, 3, 4)),
    CASE("dropout_p1_zeroes", "dropout", "{\"p\": 1.0, \"training\": true}", run_dropout_p1, 1,
         IN(2, 3, 5)),
    CASE("dropout_p03_seeded", "dropout", "{\"p\": 0.3, \"training\": true, \"seed\": 1234}",
         run_dropout_p03, 1, IN(2, 10, 9)),
    CASE("dropout_p05_seeded_strided", "dropout",
         "{\"p\": 0.5, \"training\": true, \"seed\": 1234}", run_dropout_p05, 1,
         IN_STRIDED(3, 3, 4, 5)),
    CASE("embedding_repeated_indices", "embedding", "{}", run_embedding, 2, INDICES(4, 1, 9),
         IN(2, 4, 3)),
    CASE("embedding_2d_indices_strided_weight", "embedding", "{}", run_embedding, 2,
         INDICES(6, 2, 3, 5), IN_STRIDED(2, 6, 4)),
    CASE("embedding_3d_indices", "embedding", "{}", run_embedding, 2, INDICES(5, 3, 2, 2, 3),
         IN(2, 5, 2)),
    CASE("embedding_scalar_index", "embedding", "{}", run_embedding, 2, INDICES(7, 0, 0),
         IN(2, 7, 3)),
    {0},
};
