/* module.c - the Module base: lifetime, forward dispatch, tree walks. */
#include "module/module.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "module/internal.h"

td_module *td_module_alloc(const td_module_vtable *vt, size_t size) {
  td_module *m = td_calloc(1, size, vt->kind);
  if (!m) return NULL;
  m->vt = vt;
  m->training = true;
  return m;
}

void td_module_destroy(td_module *m) {
  if (!m) return;
  if (m->vt->destroy) m->vt->destroy(m);
  for (int i = 0; i < m->n_params; i++)
    td_tensor_release(m->params[i].tensor);
  for (int i = 0; i < m->n_buffers; i++)
    td_tensor_release(m->buffers[i].tensor);
  for (int i = 0; i < m->n_children; i++)
    td_module_destroy(m->children[i]);
  td_free(m->params);
  td_free(m->buffers);
  td_free(m->children);
  td_free(m->key);
  td_free(m);
}

const char *td_module_kind(const td_module *m) { return m->vt->kind; }

td_status td_module_forward(td_module *m, td_tensor *x, td_tensor **out) {
  *out = NULL;
  td_status st;
  if (!x)
    st = td_error(TD_ERR_INVALID_ARGUMENT, "%s: input is NULL", m->vt->kind);
  else
    st = m->vt->forward(m, x, out);
  if (st) {
    TD_RELEASE(*out);
    const char *kind = m->vt->kind, *msg = td_error_message();
    size_t k = strlen(kind);
    if (m->key)
      td_error_prefix("%s '%s': ", kind, m->key);
    else if (strncmp(msg, kind, k) != 0 || strncmp(msg + k, ": ", 2) != 0)
      td_error_prefix("%s: ", kind); /* a root layer's own message already names it */
  }
  return st;
}

void td_module_train(td_module *m, bool training) {
  m->training = training;
  for (int i = 0; i < m->n_children; i++)
    td_module_train(m->children[i], training);
}

/* ---- building ----------------------------------------------------------- */

/* Makes room for one more item in a growable array of `elem`-sized items. */
static td_status reserve_one(void **items, int *cap, int count, size_t elem, const char *what) {
  if (count < *cap) return TD_OK;
  int ncap = *cap ? *cap * 2 : 4;
  void *p = td_calloc((size_t)ncap, elem, what);
  if (!p) return TD_ERR_NO_MEMORY;
  if (count) memcpy(p, *items, (size_t)count * elem);
  td_free(*items);
  *items = p;
  *cap = ncap;
  return TD_OK;
}

td_status td_module_add_parameter(td_module *m, const char *name, int ndim, const int64_t *shape,
                                  td_tensor **param) {
  *param = NULL;
  td_status st = reserve_one((void **)&m->params, &m->cap_params, m->n_params, sizeof *m->params,
                             "module parameters");
  if (st) return st;
  td_tensor *t;
  if ((st = td_tensor_zeros(TD_FLOAT32, ndim, shape, &t))) {
    td_error_prefix("%s: %s: ", m->vt->kind, name);
    return st;
  }
  m->params[m->n_params++] = (td_module_tensor){name, t};
  *param = t;
  return TD_OK;
}

td_status td_module_add_buffer(td_module *m, const char *name, td_tensor *buffer) {
  td_status st = reserve_one((void **)&m->buffers, &m->cap_buffers, m->n_buffers,
                             sizeof *m->buffers, "module buffers");
  if (st) return st;
  m->buffers[m->n_buffers++] = (td_module_tensor){name, td_tensor_retain(buffer)};
  return TD_OK;
}

static bool valid_key(const char *key) {
  size_t n = strlen(key);
  if (n == 0 || n > TD_MODULE_MAX_KEY) return false;
  for (size_t i = 0; i < n; i++) {
    char c = key[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

/* Levels below m, counting m itself as 1. Bounded: every tree was built
 * through add_child, which keeps depth <= TD_MODULE_MAX_DEPTH. */
static int subtree_height(const td_module *m) {
  int h = 0;
  for (int i = 0; i < m->n_children; i++) {
    int c = subtree_height(m->children[i]);
    if (c > h) h = c;
  }
  return h + 1;
}

td_status td_module_add_child(td_module *m, const char *key, td_module *child) {
  if (child->parent)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: child '%s' (%s) already belongs to a %s",
                    m->vt->kind, key, child->vt->kind, child->parent->vt->kind);
  int depth = 1; /* levels from the root down to m */
  for (const td_module *a = m; a; a = a->parent, depth++)
    if (a == child)
      return td_error(TD_ERR_INVALID_ARGUMENT, "%s: cannot add '%s', it contains this module",
                      m->vt->kind, key);
  depth--;
  td_status st;
  if (!valid_key(key)) {
    st = td_error(TD_ERR_INVALID_ARGUMENT,
                  "%s: invalid child name '%.80s': use 1 to %d characters from [A-Za-z0-9_-]",
                  m->vt->kind, key, TD_MODULE_MAX_KEY);
    goto fail;
  }
  for (int i = 0; i < m->n_children; i++) {
    if (strcmp(m->children[i]->key, key) == 0) {
      st = td_error(TD_ERR_INVALID_ARGUMENT, "%s: two children named '%s'", m->vt->kind, key);
      goto fail;
    }
  }
  if (depth + subtree_height(child) > TD_MODULE_MAX_DEPTH) {
    st = td_error(TD_ERR_INVALID_ARGUMENT, "%s: adding '%s' nests modules deeper than %d levels",
                  m->vt->kind, key, TD_MODULE_MAX_DEPTH);
    goto fail;
  }
  if ((st = reserve_one((void **)&m->children, &m->cap_children, m->n_children, sizeof *m->children,
                        "module children")))
    goto fail;
  size_t n = strlen(key) + 1;
  child->key = td_alloc(n, "module key");
  if (!child->key) {
    st = TD_ERR_NO_MEMORY;
    goto fail;
  }
  memcpy(child->key, key, n);
  child->parent = m;
  m->children[m->n_children++] = child;
  return TD_OK;
fail:
  td_module_destroy(child);
  return st;
}

/* ---- walks -------------------------------------------------------------- */

int64_t td_module_num_parameters(const td_module *m) {
  int64_t n = 0;
  for (int i = 0; i < m->n_params; i++)
    n += m->params[i].tensor->numel;
  for (int i = 0; i < m->n_children; i++)
    n += td_module_num_parameters(m->children[i]);
  return n;
}

static int count_parameters(const td_module *m) {
  int n = m->n_params;
  for (int i = 0; i < m->n_children; i++)
    n += count_parameters(m->children[i]);
  return n;
}

static void collect_parameters(const td_module *m, td_tensor **out, int *n) {
  for (int i = 0; i < m->n_params; i++)
    out[(*n)++] = m->params[i].tensor;
  for (int i = 0; i < m->n_children; i++)
    collect_parameters(m->children[i], out, n);
}

td_status td_module_parameters(const td_module *m, td_tensor ***params, int *n) {
  *params = NULL;
  *n = 0;
  int total = count_parameters(m);
  if (total == 0) return TD_OK;
  td_tensor **arr = td_calloc((size_t)total, sizeof *arr, "module parameter list");
  if (!arr) return TD_ERR_NO_MEMORY;
  collect_parameters(m, arr, n);
  *params = arr;
  return TD_OK;
}

td_status td_module_attach(const td_module *m, td_grad_manager *gm) {
  for (int i = 0; i < m->n_params; i++) {
    td_status st = td_gm_attach(gm, m->params[i].tensor);
    if (st) return st;
  }
  for (int i = 0; i < m->n_children; i++) {
    td_status st = td_module_attach(m->children[i], gm);
    if (st) return st;
  }
  return TD_OK;
}

/* Longest dotted path: every level's key plus its dot, plus a tensor name. */
#define PATH_MAX_LEN (TD_MODULE_MAX_DEPTH * (TD_MODULE_MAX_KEY + 1) + 64)

static td_status put_tensor(td_tensor_map *out, char *path, size_t len, const char *name,
                            td_tensor *t, unsigned flags) {
  size_t n = strlen(name);
  if (len + n + 1 > PATH_MAX_LEN)
    return td_error(TD_ERR_INTERNAL, "module: key for '%s' too long", name);
  memcpy(path + len, name, n + 1);
  if (!(flags & TD_WALK_DETACH)) return td_tensor_map_put(out, path, t);
  td_tensor *alias;
  td_status st = td_tensor_view(t, t->ndim, t->shape, &alias);
  if (st) return st;
  st = td_tensor_map_put(out, path, alias);
  td_tensor_release(alias);
  return st;
}

/* path[0..len) holds the dotted prefix of m ("" or "layer1.0."). */
static td_status walk_tensors(const td_module *m, char *path, size_t len, unsigned flags,
                              td_tensor_map *out) {
  td_status st;
  if (flags & TD_WALK_PARAMS)
    for (int i = 0; i < m->n_params; i++)
      if ((st = put_tensor(out, path, len, m->params[i].name, m->params[i].tensor, flags)))
        return st;
  if (flags & TD_WALK_BUFFERS)
    for (int i = 0; i < m->n_buffers; i++)
      if ((st = put_tensor(out, path, len, m->buffers[i].name, m->buffers[i].tensor, flags)))
        return st;
  for (int i = 0; i < m->n_children; i++) {
    const td_module *c = m->children[i];
    size_t k = strlen(c->key);
    if (len + k + 2 > PATH_MAX_LEN)
      return td_error(TD_ERR_INTERNAL, "module: key path too long at '%s'", c->key);
    memcpy(path + len, c->key, k);
    path[len + k] = '.';
    path[len + k + 1] = '\0';
    if ((st = walk_tensors(c, path, len + k + 1, flags, out))) return st;
  }
  return TD_OK;
}

td_status td_module_collect_tensors(const td_module *m, unsigned flags, td_tensor_map *out) {
  td_tensor_map_init(out);
  char *path = td_alloc(PATH_MAX_LEN, "module key path");
  if (!path) return TD_ERR_NO_MEMORY;
  path[0] = '\0';
  td_status st = walk_tensors(m, path, 0, flags, out);
  td_free(path);
  if (st) td_tensor_map_free(out);
  return st;
}

td_status td_module_named_parameters(const td_module *m, td_tensor_map *out) {
  return td_module_collect_tensors(m, TD_WALK_PARAMS, out);
}

td_status td_module_named_buffers(const td_module *m, td_tensor_map *out) {
  return td_module_collect_tensors(m, TD_WALK_BUFFERS, out);
}

td_status td_module_state_dict(const td_module *m, td_tensor_map *out) {
  return td_module_collect_tensors(m, TD_WALK_PARAMS | TD_WALK_BUFFERS | TD_WALK_DETACH, out);
}

void td_module_list_free(td_module_list *list) {
  for (int i = 0; i < list->count; i++)
    td_free(list->items[i].name);
  td_free(list->items);
  memset(list, 0, sizeof *list);
}

static td_status list_push(td_module_list *list, const char *name, size_t name_len, td_module *m) {
  td_status st = reserve_one((void **)&list->items, &list->cap, list->count, sizeof *list->items,
                             "module list");
  if (st) return st;
  char *copy = td_alloc(name_len + 1, "module name");
  if (!copy) return TD_ERR_NO_MEMORY;
  memcpy(copy, name, name_len);
  copy[name_len] = '\0';
  list->items[list->count++] = (td_named_module){copy, m};
  return TD_OK;
}

/* path[0..len) is m's dotted name ("" at the root). */
static td_status walk_modules(td_module *m, char *path, size_t len, td_module_list *out) {
  td_status st = list_push(out, path, len, m);
  if (st) return st;
  for (int i = 0; i < m->n_children; i++) {
    td_module *c = m->children[i];
    size_t k = strlen(c->key);
    size_t start = len ? len + 1 : 0;
    if (start + k + 1 > PATH_MAX_LEN)
      return td_error(TD_ERR_INTERNAL, "module: key path too long at '%s'", c->key);
    if (len) path[len] = '.';
    memcpy(path + start, c->key, k);
    path[start + k] = '\0';
    if ((st = walk_modules(c, path, start + k, out))) return st;
  }
  return TD_OK;
}

td_status td_module_named_modules(const td_module *m, td_module_list *out) {
  memset(out, 0, sizeof *out);
  char *path = td_alloc(PATH_MAX_LEN, "module key path");
  if (!path) return TD_ERR_NO_MEMORY;
  path[0] = '\0';
  /* The list hands out non-const pointers into the caller's tree, as
   * PyTorch's named_modules does; the walk itself changes nothing. */
  td_status st = walk_modules((td_module *)m, path, 0, out);
  td_free(path);
  if (st) td_module_list_free(out);
  return st;
}

td_status td_module_named_children(const td_module *m, td_module_list *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < m->n_children; i++) {
    td_module *c = m->children[i];
    td_status st = list_push(out, c->key, strlen(c->key), c);
    if (st) {
      td_module_list_free(out);
      return st;
    }
  }
  return TD_OK;
}

/* ---- input checks shared by the layers ----------------------------------- */

td_status td_layer_expect_dtype(const char *kind, const td_tensor *x, td_dtype dtype) {
  if (x->dtype == dtype) return TD_OK;
  char s[TD_SHAPE_STR_MAX];
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected %s input, got %s (input shape %s)", kind,
                  td_dtype_name(dtype), td_dtype_name(x->dtype), td_tensor_shape_str(s, x));
}

td_status td_layer_check_nchw(const char *kind, const td_tensor *x, int64_t channels, int k,
                              int padding, int dilation) {
  char s[TD_SHAPE_STR_MAX];
  td_status st = td_layer_expect_dtype(kind, x, TD_FLOAT32);
  if (st) return st;
  if (x->ndim != 4)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: expected input [N,C,H,W], got shape %s", kind,
                    td_tensor_shape_str(s, x));
  if (channels && x->shape[1] != channels)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: input has %lld channels, expected %lld (input shape %s)", kind,
                    (long long)x->shape[1], (long long)channels, td_tensor_shape_str(s, x));
  if (k == 0) return TD_OK;
  int64_t window = (int64_t)dilation * (k - 1) + 1;
  int64_t ph = x->shape[2] + 2 * (int64_t)padding, pw = x->shape[3] + 2 * (int64_t)padding;
  if (ph < window || pw < window) {
    char dil[32] = "";
    if (dilation != 1) snprintf(dil, sizeof dil, " with dilation %d", dilation);
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: kernel %dx%d%s is larger than the padded input %lldx%lld "
                    "(input shape %s, padding %d)",
                    kind, k, k, dil, (long long)ph, (long long)pw, td_tensor_shape_str(s, x),
                    padding);
  }
  return TD_OK;
}

td_status td_layer_need_rng(const char *kind, const td_rng *rng) {
  if (rng) return TD_OK;
  return td_error(TD_ERR_INVALID_ARGUMENT,
                  "%s: a random generator is needed for the initial "
                  "weights, got NULL",
                  kind);
}
