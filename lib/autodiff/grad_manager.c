/* grad_manager.c - the tape and reverse-mode backward.
 *
 * Tracking without pointers: each recording gets a process-unique id. A
 * tensor is tracked by the recording whose id is in its tape_id, at slot
 * tape_slot. Attached tensors take slots 0..n-1 at record time; every
 * recorded op output takes the next slot. Tensors never point at tape
 * entries, so outputs that outlive a release (the loss a caller keeps) hold
 * nothing dangling: their stale id simply matches no live recording.
 *
 * Backward walks the entries in reverse. Each entry's output was produced
 * once and consumed only by later entries, so when we reach it its gradient
 * is complete and can be handed to the op's backward and dropped.
 */
#include "autodiff/grad_manager.h"
#include "core/cancel.h"

#include <stdatomic.h>
#include <string.h>

#include "autodiff/tape.h"
#include "core/alloc.h"

typedef struct tape_entry {
  td_op_ctx ctx; /* params/inputs/input_meta/needs_input_grad point below */
  void *params_copy;
  td_tensor **saved_inputs;
  td_tensor_meta *input_meta;
  int32_t *input_slots; /* -1: untracked input */
  bool *needs_grad;
  uint64_t *input_versions;
  uint64_t output_version;
  td_tensor_meta output_meta;
  int32_t output_slot;
} tape_entry;

struct td_grad_manager {
  td_tensor **attached;
  int n_attached, cap_attached;
  uint64_t tape_id;  /* 0: no tape */
  tape_entry **entries;
  int n_entries, cap_entries;
  int32_t n_slots;
  bool consumed;     /* the last tape was used by a backward */
  size_t tape_bytes;
};

static atomic_uint_fast64_t next_tape_id = 1;
static _Thread_local td_grad_manager *active_gm;

/* ---- lifetime ------------------------------------------------------------ */

td_status td_gm_create(td_grad_manager **out) {
  td_grad_manager *gm = td_calloc(1, sizeof *gm, "grad manager");
  *out = gm;
  return gm ? TD_OK : TD_ERR_NO_MEMORY;
}

static void entry_free(tape_entry *e) {
  if (!e) return;
  td_op_ctx_free_saved(&e->ctx);
  for (int i = 0; i < e->ctx.n_inputs; i++) td_tensor_release(e->saved_inputs[i]);
  td_tensor_release(e->ctx.output);
  td_free(e->params_copy);
  td_free(e->saved_inputs);
  td_free(e->input_meta);
  td_free(e->input_slots);
  td_free(e->needs_grad);
  td_free(e->input_versions);
  td_free(e);
}

void td_gm_release(td_grad_manager *gm) {
  if (active_gm == gm) active_gm = NULL;
  for (int i = 0; i < gm->n_entries; i++) entry_free(gm->entries[i]);
  gm->n_entries = 0;
  gm->tape_id = 0;
  gm->n_slots = 0;
  gm->tape_bytes = 0;
}

void td_gm_destroy(td_grad_manager *gm) {
  if (!gm) return;
  td_gm_release(gm);
  td_free(gm->entries);
  for (int i = 0; i < gm->n_attached; i++) td_tensor_release(gm->attached[i]);
  td_free(gm->attached);
  td_free(gm);
}

/* ---- attach / record ----------------------------------------------------- */

td_status td_gm_attach(td_grad_manager *gm, td_tensor *t) {
  if (t->dtype != TD_FLOAT32)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "attach: only floating tensors can have gradients, got %s",
                    td_dtype_name(t->dtype));
  if (gm->tape_id)
    return td_error(TD_ERR_FAILED_PRECONDITION,
                    "attach: cannot attach while a recording is in progress");
  for (int i = 0; i < gm->n_attached; i++)
    if (gm->attached[i] == t) return TD_OK;
  if (gm->n_attached == gm->cap_attached) {
    int cap = gm->cap_attached ? gm->cap_attached * 2 : 16;
    td_tensor **p = td_alloc(sizeof *p * (size_t)cap, "attached tensors");
    if (!p) return TD_ERR_NO_MEMORY;
    if (gm->n_attached) memcpy(p, gm->attached, sizeof *p * (size_t)gm->n_attached);
    td_free(gm->attached);
    gm->attached = p;
    gm->cap_attached = cap;
  }
  gm->attached[gm->n_attached++] = td_tensor_retain(t);
  return TD_OK;
}

int td_gm_num_attached(const td_grad_manager *gm) { return gm->n_attached; }

td_tensor *td_gm_attached(const td_grad_manager *gm, int i) {
  return (i >= 0 && i < gm->n_attached) ? gm->attached[i] : NULL;
}

td_status td_gm_record(td_grad_manager *gm) {
  td_gm_release(gm);
  gm->tape_id = atomic_fetch_add(&next_tape_id, 1);
  gm->consumed = false;
  for (int i = 0; i < gm->n_attached; i++) {
    gm->attached[i]->tape_id = gm->tape_id;
    gm->attached[i]->tape_slot = i;
  }
  gm->n_slots = gm->n_attached;
  active_gm = gm;
  return TD_OK;
}

void td_gm_pause(td_grad_manager *gm) {
  if (active_gm == gm) active_gm = NULL;
}

td_status td_gm_resume(td_grad_manager *gm) {
  if (!gm->tape_id)
    return td_error(TD_ERR_FAILED_PRECONDITION, "resume: nothing is being recorded");
  active_gm = gm;
  return TD_OK;
}

bool td_gm_is_recording(const td_grad_manager *gm) { return active_gm == gm && gm->tape_id; }
bool td_gm_has_tape(const td_grad_manager *gm) { return gm->tape_id != 0; }
int td_gm_tape_length(const td_grad_manager *gm) { return gm->n_entries; }
size_t td_gm_tape_bytes(const td_grad_manager *gm) { return gm->tape_bytes; }

bool td_gm_tracks(const td_tensor *t) {
  return active_gm && t && active_gm->tape_id && t->tape_id == active_gm->tape_id;
}

/* ---- the tape interface used by td_apply --------------------------------- */

td_grad_manager *td_tape_active(void) { return active_gm; }

bool td_tape_needs_record(const td_grad_manager *gm, const td_op_ctx *ctx) {
  for (int i = 0; i < ctx->n_inputs; i++) {
    const td_tensor *t = ctx->inputs[i];
    if (t && t->dtype == TD_FLOAT32 && t->tape_id == gm->tape_id) return true;
  }
  return false;
}

static void meta_of(const td_tensor *t, td_tensor_meta *m) {
  m->dtype = t->dtype;
  m->ndim = t->ndim;
  memcpy(m->shape, t->shape, sizeof m->shape);
}

td_status td_tape_push(td_grad_manager *gm, td_op_ctx *ctx, td_tensor *out) {
  const td_op_def *def = ctx->def;
  int n = ctx->n_inputs;
  for (int i = 0; i < n; i++)
    if (ctx->inputs[i] == out)
      return td_error(TD_ERR_INTERNAL, "%s: forward returned its input (must be a new handle)",
                      def->name);
  if (gm->n_entries == gm->cap_entries) {
    int cap = gm->cap_entries ? gm->cap_entries * 2 : 64;
    tape_entry **p = td_alloc(sizeof *p * (size_t)cap, "tape");
    if (!p) return TD_ERR_NO_MEMORY;
    if (gm->n_entries) memcpy(p, gm->entries, sizeof *p * (size_t)gm->n_entries);
    td_free(gm->entries);
    gm->entries = p;
    gm->cap_entries = cap;
  }
  tape_entry *e = td_calloc(1, sizeof *e, "tape entry");
  if (!e) return TD_ERR_NO_MEMORY;
  size_t un = (size_t)(n ? n : 1);
  e->saved_inputs = td_calloc(un, sizeof *e->saved_inputs, "tape entry");
  e->input_meta = td_calloc(un, sizeof *e->input_meta, "tape entry");
  e->input_slots = td_calloc(un, sizeof *e->input_slots, "tape entry");
  e->needs_grad = td_calloc(un, sizeof *e->needs_grad, "tape entry");
  e->input_versions = td_calloc(un, sizeof *e->input_versions, "tape entry");
  if (def->params_size) e->params_copy = td_alloc(def->params_size, "tape params");
  if (!e->saved_inputs || !e->input_meta || !e->input_slots || !e->needs_grad ||
      !e->input_versions || (def->params_size && !e->params_copy)) {
    entry_free(e);
    return TD_ERR_NO_MEMORY;
  }
  if (def->params_size) memcpy(e->params_copy, ctx->params, def->params_size);

  size_t bytes = 0;
  for (int i = 0; i < n; i++) {
    td_tensor *t = ctx->inputs[i];
    e->input_slots[i] = -1;
    if (!t) continue;
    meta_of(t, &e->input_meta[i]);
    if (t->dtype == TD_FLOAT32 && t->tape_id == gm->tape_id) {
      e->input_slots[i] = t->tape_slot;
      e->needs_grad[i] = true;
    }
    if (def->saves & TD_SAVE_INPUTS) {
      e->saved_inputs[i] = td_tensor_retain(t);
      e->input_versions[i] = td_tensor_version(t);
      bytes += t->storage->nbytes;
    }
  }
  meta_of(out, &e->output_meta);
  if (def->saves & TD_SAVE_OUTPUT) {
    e->ctx.output = td_tensor_retain(out);
    e->output_version = td_tensor_version(out);
    bytes += out->storage->nbytes;
  }
  /* Move the forward's stash into the entry (ownership transfers). */
  e->ctx.saved = ctx->saved;
  e->ctx.saved_free = ctx->saved_free;
  memcpy(e->ctx.saved_tensors, ctx->saved_tensors, sizeof e->ctx.saved_tensors);
  for (int i = 0; i < TD_OP_MAX_SAVED; i++)
    if (ctx->saved_tensors[i]) bytes += ctx->saved_tensors[i]->storage->nbytes;
  ctx->saved = NULL;
  memset(ctx->saved_tensors, 0, sizeof ctx->saved_tensors);

  e->ctx.def = def;
  e->ctx.params = e->params_copy;
  e->ctx.n_inputs = n;
  e->ctx.inputs = e->saved_inputs;
  e->ctx.input_meta = e->input_meta;
  e->ctx.needs_input_grad = e->needs_grad;
  e->output_slot = gm->n_slots++;
  out->tape_id = gm->tape_id;
  out->tape_slot = e->output_slot;
  gm->entries[gm->n_entries++] = e;
  gm->tape_bytes += bytes;
  return TD_OK;
}

/* ---- backward ------------------------------------------------------------ */

/* A tensor we may add into in place: nobody else holds it or its storage. */
static bool exclusive(const td_tensor *t) {
  return atomic_load(&t->refcount) == 1 && atomic_load(&t->storage->refcount) == 1 &&
         td_tensor_is_contiguous(t);
}

/* *acc += g, taking ownership of g. */
static td_status accumulate(td_tensor **acc, td_tensor *g) {
  if (!*acc) {
    *acc = g;
    return TD_OK;
  }
  if (!exclusive(*acc)) {
    td_tensor *copy;
    td_status st = td_tensor_clone(*acc, &copy);
    if (st) {
      td_tensor_release(g);
      return st;
    }
    td_tensor_release(*acc);
    *acc = copy;
  }
  td_status st = td_tensor_add_(*acc, g);
  td_tensor_release(g);
  return st;
}

static td_status check_versions(const td_grad_manager *gm) {
  for (int k = 0; k < gm->n_entries; k++) {
    const tape_entry *e = gm->entries[k];
    for (int i = 0; i < e->ctx.n_inputs; i++) {
      if (e->saved_inputs[i] && td_tensor_version(e->saved_inputs[i]) != e->input_versions[i])
        return td_error(TD_ERR_FAILED_PRECONDITION,
                        "backward: input %d of %s was modified in place after the forward "
                        "(for example by an optimizer step); run the forward again",
                        i, e->ctx.def->name);
    }
    if (e->ctx.output && td_tensor_version(e->ctx.output) != e->output_version)
      return td_error(TD_ERR_FAILED_PRECONDITION,
                      "backward: the output of %s was modified in place after the forward",
                      e->ctx.def->name);
  }
  return TD_OK;
}

static td_status run_entry(tape_entry *e, td_tensor *gy, td_tensor **grads) {
  int n = e->ctx.n_inputs;
  td_tensor *local[8] = {NULL};
  td_tensor **gx = n <= 8 ? local : td_calloc((size_t)n, sizeof *gx, "backward grads");
  if (!gx) return TD_ERR_NO_MEMORY;
  td_status st = e->ctx.def->backward(&e->ctx, gy, gx);
  for (int i = 0; i < n; i++) {
    if (st || !e->needs_grad[i]) {
      TD_RELEASE(gx[i]);
      continue;
    }
    const td_tensor_meta *m = &e->input_meta[i];
    if (!gx[i] || !td_shape_equal(gx[i]->ndim, gx[i]->shape, m->ndim, m->shape)) {
      char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
      st = td_error(TD_ERR_INTERNAL, "%s backward: gradient for input %d has shape %s, want %s",
                    e->ctx.def->name, i,
                    gx[i] ? td_tensor_shape_str(a, gx[i]) : "(none)",
                    td_shape_str(b, sizeof b, m->ndim, m->shape));
      TD_RELEASE(gx[i]);
      continue;
    }
    st = accumulate(&grads[e->input_slots[i]], gx[i]);
    gx[i] = NULL;
  }
  if (gx != local) td_free(gx);
  return st;
}

td_status td_gm_backward(td_grad_manager *gm, td_tensor *y, td_tensor *dy) {
  if (!gm->tape_id)
    return td_error(TD_ERR_FAILED_PRECONDITION,
                    gm->consumed
                        ? "backward: the recording was already consumed by a previous "
                          "backward; record and run the forward again"
                        : "backward: nothing recorded; call record() and run a forward first");
  if (!y || y->tape_id != gm->tape_id || y->tape_slot < gm->n_attached)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "backward: y is not an output of the recorded computation (it does not "
                    "depend on any attached tensor)");
  if (dy && (dy->dtype != TD_FLOAT32 || !td_shape_equal(dy->ndim, dy->shape, y->ndim, y->shape))) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "backward: dy is %s %s, expected float32 of y's shape %s",
                    td_dtype_name(dy->dtype), td_tensor_shape_str(a, dy),
                    td_tensor_shape_str(b, y));
  }
  td_status st = check_versions(gm);
  if (st) return st;

  td_tensor **grads = td_calloc((size_t)gm->n_slots, sizeof *grads, "backward grads");
  if (!grads) return TD_ERR_NO_MEMORY;
  /* Ops called by backward functions must not record. */
  td_grad_manager *saved_active = active_gm;
  active_gm = NULL;

  if (dy)
    grads[y->tape_slot] = td_tensor_retain(dy);
  else
    st = td_tensor_ones(TD_FLOAT32, y->ndim, y->shape, &grads[y->tape_slot]);

  for (int k = gm->n_entries - 1; k >= 0 && !st; k--) {
    tape_entry *e = gm->entries[k];
    td_tensor *gy = grads[e->output_slot];
    if (!gy) continue;
    grads[e->output_slot] = NULL;
    st = td_cancel_poll();
    if (!st) st = run_entry(e, gy, grads);
    td_tensor_release(gy);
  }

  /* Commit: make every new grad an exclusive tensor first (the only step that
   * can fail), then add them in, so a failure leaves all grads untouched. */
  for (int i = 0; i < gm->n_attached && !st; i++) {
    if (grads[i] && !exclusive(grads[i])) {
      td_tensor *copy;
      st = td_tensor_clone(grads[i], &copy);
      if (!st) {
        td_tensor_release(grads[i]);
        grads[i] = copy;
      }
    }
  }
  if (!st) {
    for (int i = 0; i < gm->n_attached; i++) {
      td_tensor *p = gm->attached[i];
      if (!grads[i]) continue;
      if (!p->grad) {
        p->grad = grads[i];
        grads[i] = NULL;
      } else {
        td_tensor_add_(p->grad, grads[i]);
      }
    }
  }
  for (int i = 0; i < gm->n_slots; i++) td_tensor_release(grads[i]);
  td_free(grads);
  active_gm = saved_active == gm ? NULL : saved_active;
  if (!st) {
    td_gm_release(gm);
    gm->consumed = true;
  }
  return st;
}
