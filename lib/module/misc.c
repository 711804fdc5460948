/* misc.c - Dropout, Flatten, Embedding and Identity modules. */
#include "functional/nn.h"
#include "functional/shape_ops.h"
#include "module/internal.h"
#include "module/layers.h"

/* ---- Dropout ------------------------------------------------------------ */

typedef struct dropout_module {
  td_module base;
  float p;
  td_rng rng; /* its own stream, so other layers' draws do not shift the masks */
} dropout_module;

static td_status dropout_forward(td_module *m, td_tensor *x, td_tensor **out) {
  dropout_module *d = (dropout_module *)m;
  return td_dropout(x, d->p, m->training, &d->rng, out);
}

static td_rng *dropout_rng(td_module *m) { return &((dropout_module *)m)->rng; }

static const td_module_vtable dropout_vt = {
    .kind = "dropout", .forward = dropout_forward, .rng = dropout_rng};

td_status td_module_dropout(float p, td_rng *rng, td_module **out) {
  *out = NULL;
  if (!(p >= 0 && p <= 1))
    return td_error(TD_ERR_INVALID_ARGUMENT, "dropout: p must be between 0 and 1, got %g", p);
  td_status st = td_layer_need_rng("dropout", rng);
  if (st) return st;
  dropout_module *d = (dropout_module *)td_module_alloc(&dropout_vt, sizeof *d);
  if (!d) return TD_ERR_NO_MEMORY;
  d->p = p;
  td_rng_seed(&d->rng, td_rng_next_u64(rng));
  *out = &d->base;
  return TD_OK;
}

/* ---- Flatten ------------------------------------------------------------ */

static td_status flatten_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  if (x->ndim < 2) {
    char s[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "flatten: expected input [N, ...] with at least 2 dims, got shape %s",
                    td_tensor_shape_str(s, x));
  }
  return td_flatten(x, 1, -1, out);
}

static const td_module_vtable flatten_vt = {.kind = "flatten", .forward = flatten_forward};

td_status td_module_flatten(td_module **out) {
  *out = td_module_alloc(&flatten_vt, sizeof(td_module));
  return *out ? TD_OK : TD_ERR_NO_MEMORY;
}

/* ---- Embedding ---------------------------------------------------------- */

typedef struct embedding_module {
  td_module base;
  td_tensor *weight; /* [num_embeddings, embedding_dim], borrowed from base.params */
} embedding_module;

static td_status embedding_forward(td_module *m, td_tensor *x, td_tensor **out) {
  td_status st = td_layer_expect_dtype("embedding", x, TD_INT64);
  if (st) return st;
  return td_embedding(x, ((embedding_module *)m)->weight, out);
}

static const td_module_vtable embedding_vt = {.kind = "embedding", .forward = embedding_forward};

td_status td_module_embedding(const td_embedding_config *cfg, td_rng *rng, td_module **out) {
  *out = NULL;
  if (cfg->num_embeddings <= 0 || cfg->embedding_dim <= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "embedding: num_embeddings and embedding_dim must be positive, got %lld and "
                    "%lld",
                    (long long)cfg->num_embeddings, (long long)cfg->embedding_dim);
  td_status st = td_layer_need_rng("embedding", rng);
  if (st) return st;
  embedding_module *e = (embedding_module *)td_module_alloc(&embedding_vt, sizeof *e);
  if (!e) return TD_ERR_NO_MEMORY;
  int64_t shape[2] = {cfg->num_embeddings, cfg->embedding_dim};
  if ((st = td_module_add_parameter(&e->base, "weight", 2, shape, &e->weight)) ||
      (st = td_tensor_normal_(e->weight, rng, 0.0f, 1.0f))) {
    td_module_destroy(&e->base);
    return st;
  }
  *out = &e->base;
  return TD_OK;
}

/* ---- Identity ----------------------------------------------------------- */

static td_status identity_forward(td_module *m, td_tensor *x, td_tensor **out) {
  (void)m;
  *out = td_tensor_retain(x);
  return TD_OK;
}

static const td_module_vtable identity_vt = {.kind = "identity", .forward = identity_forward};

td_status td_module_identity(td_module **out) {
  *out = td_module_alloc(&identity_vt, sizeof(td_module));
  return *out ? TD_OK : TD_ERR_NO_MEMORY;
}
