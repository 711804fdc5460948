/* container.c - Sequential and Residual, the modules made of modules. */
#include <stdio.h>
#include <string.h>

#include "functional/elementwise.h"
#include "module/internal.h"
#include "module/layers.h"

/* ---- Sequential --------------------------------------------------------- */

static td_status sequential_forward(td_module *m, td_tensor *x, td_tensor **out) {
  td_tensor *cur = td_tensor_retain(x);
  for (int i = 0; i < m->n_children; i++) {
    td_tensor *next;
    td_status st = td_module_forward(m->children[i], cur, &next);
    td_tensor_release(cur);
    if (st) return st;
    cur = next;
  }
  *out = cur;
  return TD_OK;
}

static const td_module_vtable sequential_vt = {.kind = "sequential", .forward = sequential_forward};

td_status td_module_sequential(td_module **out) {
  *out = td_module_alloc(&sequential_vt, sizeof(td_module));
  return *out ? TD_OK : TD_ERR_NO_MEMORY;
}

td_status td_sequential_append(td_module *seq, const char *name, td_module *child) {
  if (seq->vt != &sequential_vt) {
    if (!child->parent) td_module_destroy(child);
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "sequential_append: the parent is a %s, not a "
                    "sequential",
                    seq->vt->kind);
  }
  char index[16];
  if (!name || !name[0]) {
    snprintf(index, sizeof index, "%d", seq->n_children);
    name = index;
  }
  return td_module_add_child(seq, name, child);
}

/* ---- Residual ----------------------------------------------------------- */

typedef struct residual_module {
  td_module base;
  td_module *body;     /* borrowed from base.children */
  td_module *shortcut; /* borrowed; NULL: identity */
} residual_module;

static td_status residual_forward(td_module *m, td_tensor *x, td_tensor **out) {
  residual_module *r = (residual_module *)m;
  td_tensor *main_out, *skip;
  td_status st = td_module_forward(r->body, x, &main_out);
  if (st) return st;
  if (r->shortcut) {
    if ((st = td_module_forward(r->shortcut, x, &skip))) {
      td_tensor_release(main_out);
      return st;
    }
  } else {
    skip = td_tensor_retain(x);
  }
  if (!td_shape_equal(main_out->ndim, main_out->shape, skip->ndim, skip->shape)) {
    char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX], s[TD_SHAPE_STR_MAX];
    st = td_error(
        TD_ERR_INVALID_ARGUMENT, "residual: body output %s and %s %s differ (input shape %s)",
        td_tensor_shape_str(a, main_out), r->shortcut ? "shortcut output" : "identity shortcut",
        td_tensor_shape_str(b, skip), td_tensor_shape_str(s, x));
  } else {
    st = td_add(main_out, skip, out);
  }
  td_tensor_release(main_out);
  td_tensor_release(skip);
  return st;
}

static const td_module_vtable residual_vt = {.kind = "residual", .forward = residual_forward};

td_status td_module_residual(td_module *body, td_module *shortcut, td_module **out) {
  *out = NULL;
  if (!body) {
    td_module_destroy(shortcut);
    return td_error(TD_ERR_INVALID_ARGUMENT, "residual: body is NULL");
  }
  residual_module *r = (residual_module *)td_module_alloc(&residual_vt, sizeof *r);
  if (!r) {
    td_module_destroy(body);
    td_module_destroy(shortcut);
    return TD_ERR_NO_MEMORY;
  }
  td_status st = td_module_add_child(&r->base, "body", body);
  if (st) {
    td_module_destroy(shortcut);
    td_module_destroy(&r->base);
    return st;
  }
  r->body = body;
  if (shortcut) {
    if ((st = td_module_add_child(&r->base, "shortcut", shortcut))) {
      td_module_destroy(&r->base);
      return st;
    }
    r->shortcut = shortcut;
  }
  *out = &r->base;
  return TD_OK;
}
