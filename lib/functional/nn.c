/* nn.c - dropout (random mask from a td_rng) and embedding (row gather, scatter-add grad). */
#include "functional/nn.h"

#include <string.h>

#include "core/alloc.h"
#include "functional/op.h"

/* ---- dropout --------------------------------------------------------------- */

/* Fills m[0..n) with the dropout multipliers: scale where kept, 0 where
 * dropped. Each u64 from the generator decides two elements (its low then
 * its high 32 bits), kept when the 32-bit draw is below (1-p) * 2^32, so the
 * mask is a function of the seed and the element order alone. */
static void draw_mask(float *m, int64_t n, double p, td_rng *rng, float scale) {
  const uint64_t threshold = (uint64_t)((1.0 - p) * 4294967296.0);
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    uint64_t r = td_rng_next_u64(rng);
    m[i] = (r & 0xffffffffu) < threshold ? scale : 0.0f;
    m[i + 1] = (r >> 32) < threshold ? scale : 0.0f;
  }
  if (i < n) m[i] = (td_rng_next_u64(rng) & 0xffffffffu) < threshold ? scale : 0.0f;
}

static td_status dropout_forward(td_op_ctx *ctx, td_tensor **out) {
  const td_dropout_params *p = ctx->params;
  td_tensor *x = ctx->inputs[0];
  if (!x) return td_error(TD_ERR_INVALID_ARGUMENT, "dropout: input is NULL");
  td_status st = td_op_check_dtype(ctx, 0, TD_FLOAT32, "input");
  if (st) return st;
  if (!(p->p >= 0.0f && p->p <= 1.0f))
    return td_error(TD_ERR_INVALID_ARGUMENT, "dropout: probability has to be in [0, 1], got %g",
                    (double)p->p);
  /* Identity: a new handle over the same storage; backward passes gy through
   * (no mask saved). */
  if (!p->training || p->p == 0.0f) {
    int perm[TD_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
      perm[i] = i;
    return td_tensor_permute(x, perm, out);
  }
  if (p->p < 1.0f && !p->rng)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "dropout: training with p = %g needs a random generator, got NULL",
                    (double)p->p);
  td_tensor *xc = NULL, *mask = NULL, *y = NULL;
  if ((st = td_tensor_contiguous(x, &xc))) return st;
  if ((st = td_tensor_empty(TD_FLOAT32, x->ndim, x->shape, &y))) goto fail;
  if (ctx->recording && (st = td_tensor_empty(TD_FLOAT32, x->ndim, x->shape, &mask))) goto fail;
  /* The multipliers go into the mask (kept for backward) or straight into y,
   * which is then multiplied in place. x * 0 keeps NaN/inf propagating as
   * PyTorch's input * mask does. p == 1 draws nothing: all are dropped. */
  float *m = td_tensor_f32(mask ? mask : y);
  if (p->p == 1.0f)
    memset(m, 0, sizeof(float) * (size_t)x->numel);
  else
    draw_mask(m, x->numel, p->p, p->rng, 1.0f / (1.0f - p->p));
  const float *xp = td_tensor_f32(xc);
  float *yp = td_tensor_f32(y);
  for (int64_t i = 0; i < x->numel; i++)
    yp[i] = xp[i] * m[i];
  if (mask) {
    st = td_op_save(ctx, mask);
    TD_RELEASE(mask);
    if (st) goto fail;
  }
  td_tensor_release(xc);
  *out = y;
  return TD_OK;
fail:
  td_tensor_release(xc);
  td_tensor_release(mask);
  td_tensor_release(y);
  return st;
}

static td_status dropout_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  td_tensor *mask = ctx->saved_tensors[0];
  if (!mask) { /* identity forward */
    gx[0] = td_tensor_retain(gy);
    return TD_OK;
  }
  td_tensor *g;
  td_status st = td_tensor_contiguous(gy, &g);
  if (st) return st;
  td_tensor *r;
  if ((st = td_tensor_empty(TD_FLOAT32, mask->ndim, mask->shape, &r))) {
    td_tensor_release(g);
    return st;
  }
  const float *gp = td_tensor_f32(g), *mp = td_tensor_f32(mask);
  float *rp = td_tensor_f32(r);
  for (int64_t i = 0; i < r->numel; i++)
    rp[i] = gp[i] * mp[i];
  td_tensor_release(g);
  gx[0] = r;
  return TD_OK;
}

const td_op_def td_op_dropout = {
    "dropout", 1, sizeof(td_dropout_params), TD_SAVE_NONE, dropout_forward, dropout_backward};

td_status td_dropout(td_tensor *x, float p, bool training, td_rng *rng, td_tensor **out) {
  td_dropout_params params = {.p = p, .training = training, .rng = rng};
  return td_apply(TD_OP_DROPOUT, &params, &x, 1, out);
}

/* ---- embedding ------------------------------------------------------------- */

/* Backward reads the indices; their version at forward time lets it refuse
 * indices rewritten in place since (the tape checks only TD_SAVE_INPUTS). */
typedef struct embedding_saved {
  uint64_t indices_version;
} embedding_saved;

/* "[1,2]": the multi-index of flat position `pos` in `t`. */
static char *position_str(char *buf, size_t size, const td_tensor *t, int64_t pos) {
  int64_t index[TD_MAX_DIMS];
  for (int d = t->ndim - 1; d >= 0; d--) {
    index[d] = pos % t->shape[d];
    pos /= t->shape[d];
  }
  return td_shape_str(buf, size, t->ndim, index);
}

static td_status embedding_forward(td_op_ctx *ctx, td_tensor **out) {
  td_tensor *idx_in = ctx->inputs[0], *w = ctx->inputs[1];
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  if (!idx_in || !w)
    return td_error(TD_ERR_INVALID_ARGUMENT, "embedding: %s is NULL",
                    idx_in ? "weight" : "indices");
  td_status st = td_op_check_dtype(ctx, 0, TD_INT64, "indices");
  if (st) return st;
  if ((st = td_op_check_dtype(ctx, 1, TD_FLOAT32, "weight"))) return st;
  if ((st = td_op_check_ndim(ctx, 1, 2, 2, "weight"))) return st;
  if (idx_in->ndim >= TD_MAX_DIMS)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "embedding: indices %s have %d dims; the output would exceed %d",
                    td_tensor_shape_str(a, idx_in), idx_in->ndim, TD_MAX_DIMS);
  const int64_t V = w->shape[0], D = w->shape[1];
  td_tensor *idx;
  if ((st = td_tensor_contiguous(idx_in, &idx))) return st;
  const int64_t *ip = td_tensor_i64(idx);
  for (int64_t i = 0; i < idx->numel; i++) {
    if (ip[i] < 0 || ip[i] >= V) {
      char pos[TD_SHAPE_STR_MAX];
      st = td_error(TD_ERR_OUT_OF_RANGE,
                    "embedding: index %lld at position %s is out of range for %lld embeddings "
                    "(indices %s, weight %s)",
                    (long long)ip[i], position_str(pos, sizeof pos, idx, i), (long long)V,
                    td_tensor_shape_str(a, idx), td_tensor_shape_str(b, w));
      td_tensor_release(idx);
      return st;
    }
  }
  int64_t shape[TD_MAX_DIMS];
  memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
  shape[idx->ndim] = D;
  td_tensor *y;
  if ((st = td_tensor_empty(TD_FLOAT32, idx->ndim + 1, shape, &y))) {
    td_tensor_release(idx);
    return st;
  }
  const float *wp = td_tensor_f32(w);
  float *yp = td_tensor_f32(y);
  const int64_t s0 = w->strides[0], s1 = w->strides[1];
  for (int64_t i = 0; i < idx->numel; i++) {
    const float *row = wp + ip[i] * s0;
    float *dst = yp + i * D;
    if (s1 == 1)
      memcpy(dst, row, sizeof(float) * (size_t)D);
    else
      for (int64_t j = 0; j < D; j++)
        dst[j] = row[j * s1];
  }
  if (ctx->recording) {
    embedding_saved *sv = td_alloc(sizeof *sv, "embedding saved state");
    if (!sv || (st = td_op_save(ctx, idx))) {
      td_free(sv);
      td_tensor_release(idx);
      td_tensor_release(y);
      return sv ? st : TD_ERR_NO_MEMORY;
    }
    sv->indices_version = td_tensor_version(idx);
    ctx->saved = sv;
  }
  td_tensor_release(idx);
  *out = y;
  return TD_OK;
}

static td_status embedding_backward(td_op_ctx *ctx, td_tensor *gy, td_tensor **gx) {
  if (!ctx->needs_input_grad[1]) return TD_OK;
  const td_tensor *idx = ctx->saved_tensors[0];
  const embedding_saved *sv = ctx->saved;
  if (td_tensor_version(idx) != sv->indices_version)
    return td_error(TD_ERR_FAILED_PRECONDITION,
                    "embedding backward: the indices were modified in place after the forward");
  const td_tensor_meta *wm = &ctx->input_meta[1];
  const int64_t D = wm->shape[1];
  td_tensor *g, *gw;
  td_status st = td_tensor_contiguous(gy, &g);
  if (st) return st;
  if ((st = td_tensor_zeros(TD_FLOAT32, 2, wm->shape, &gw))) {
    td_tensor_release(g);
    return st;
  }
  /* Scatter-add: repeated indices accumulate. */
  const int64_t *ip = td_tensor_i64(idx);
  const float *gp = td_tensor_f32(g);
  float *wp = td_tensor_f32(gw);
  for (int64_t i = 0; i < idx->numel; i++) {
    float *dst = wp + ip[i] * D;
    const float *src = gp + i * D;
    for (int64_t j = 0; j < D; j++)
      dst[j] += src[j];
  }
  td_tensor_release(g);
  gx[1] = gw;
  return TD_OK;
}

const td_op_def td_op_embedding = {"embedding",       2, 0, TD_SAVE_NONE, embedding_forward,
                                   embedding_backward};

td_status td_embedding(td_tensor *indices, td_tensor *weight, td_tensor **out) {
  td_tensor *inputs[2] = {indices, weight};
  return td_apply(TD_OP_EMBEDDING, NULL, inputs, 2, out);
}
