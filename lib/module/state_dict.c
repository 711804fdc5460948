/* state_dict.c - load_state_dict: check every key first, then copy all-or-nothing. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "module/internal.h"
#include "module/module.h"

void td_load_result_free(td_load_result *r) {
  for (int i = 0; i < r->n_missing; i++)
    td_free(r->missing_keys[i]);
  for (int i = 0; i < r->n_unexpected; i++)
    td_free(r->unexpected_keys[i]);
  for (int i = 0; i < r->n_mismatched; i++)
    td_free(r->mismatched[i]);
  td_free(r->missing_keys);
  td_free(r->unexpected_keys);
  td_free(r->mismatched);
  memset(r, 0, sizeof *r);
}

/* Appends a copy of s to a list that was allocated with room for every key
 * (so it never grows). */
static td_status push_string(char **list, int *n, const char *s) {
  size_t len = strlen(s) + 1;
  char *copy = td_alloc(len, "load_state_dict key");
  if (!copy) return TD_ERR_NO_MEMORY;
  memcpy(copy, s, len);
  list[(*n)++] = copy;
  return TD_OK;
}

static td_status push_mismatch(td_load_result *r, const char *key, const td_tensor *want,
                               const td_tensor *got) {
  char a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  int len = snprintf(NULL, 0, "%s: expected %s %s, got %s %s", key, td_dtype_name(want->dtype),
                     td_tensor_shape_str(a, want), td_dtype_name(got->dtype),
                     td_tensor_shape_str(b, got));
  char *s = td_alloc((size_t)len + 1, "load_state_dict message");
  if (!s) return TD_ERR_NO_MEMORY;
  snprintf(s, (size_t)len + 1, "%s: expected %s %s, got %s %s", key, td_dtype_name(want->dtype), a,
           td_dtype_name(got->dtype), b);
  r->mismatched[r->n_mismatched++] = s;
  return TD_OK;
}

static bool same_layout(const td_tensor *a, const td_tensor *b) {
  return a->dtype == b->dtype && td_shape_equal(a->ndim, a->shape, b->ndim, b->shape);
}

/* Compares the module's tensors with the dict and fills r (zeroed). */
static td_status compare(const td_tensor_map *want, const td_tensor_map *state, td_load_result *r) {
  size_t nw = want->count ? want->count : 1, ns = state->count ? state->count : 1;
  r->missing_keys = td_calloc(nw, sizeof(char *), "load_state_dict");
  r->mismatched = td_calloc(nw, sizeof(char *), "load_state_dict");
  r->unexpected_keys = td_calloc(ns, sizeof(char *), "load_state_dict");
  if (!r->missing_keys || !r->mismatched || !r->unexpected_keys) return TD_ERR_NO_MEMORY;
  td_status st;
  for (size_t i = 0; i < want->count; i++) {
    const td_tensor_map_entry *w = &want->entries[i];
    const td_tensor *got = td_tensor_map_get(state, w->name);
    if (!got)
      st = push_string(r->missing_keys, &r->n_missing, w->name);
    else if (!same_layout(w->tensor, got))
      st = push_mismatch(r, w->name, w->tensor, got);
    else
      st = TD_OK;
    if (st) return st;
  }
  for (size_t i = 0; i < state->count; i++) {
    const char *name = state->entries[i].name;
    if (td_tensor_map_find(want, name) < 0 &&
        (st = push_string(r->unexpected_keys, &r->n_unexpected, name)))
      return st;
  }
  return TD_OK;
}

/* A bounded message builder: text past the end is dropped and marked "...". */
typedef struct msg_buf {
  char text[1000];
  size_t len;
  bool truncated;
} msg_buf;

static void msg_add(msg_buf *b, const char *fmt, ...) TD_PRINTF(2, 3);
static void msg_add(msg_buf *b, const char *fmt, ...) {
  if (b->truncated) return;
  size_t room = sizeof b->text - 4 - b->len; /* keep space for "..." */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->text + b->len, room + 1, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n > room) {
    b->len = sizeof b->text - 4;
    memcpy(b->text + b->len, "...", 4);
    b->truncated = true;
    return;
  }
  b->len += (size_t)n;
}

/* `label` before the first item, ", " between quoted keys. */
static void msg_keys(msg_buf *b, const char *label, char **keys, int n) {
  for (int i = 0; i < n; i++)
    msg_add(b, "%s'%s'", i ? ", " : label, keys[i]);
}

/* "load_state_dict: 1 missing key, 2 with the wrong shape or dtype: missing
 * '0.bias'; 1.weight: expected ..., got ...". Counts come first so they
 * survive truncation. */
static td_status load_error(const td_load_result *r, bool strict) {
  int nmiss = strict ? r->n_missing : 0, nunex = strict ? r->n_unexpected : 0;
  int nbad = r->n_mismatched;
  msg_buf b = {.len = 0};
  msg_add(&b, "load_state_dict: ");
  bool first = true;
  if (nmiss) {
    msg_add(&b, "%d missing key%s", nmiss, nmiss == 1 ? "" : "s");
    first = false;
  }
  if (nunex) {
    msg_add(&b, "%s%d unexpected key%s", first ? "" : ", ", nunex, nunex == 1 ? "" : "s");
    first = false;
  }
  if (nbad) msg_add(&b, "%s%d with the wrong shape or dtype", first ? "" : ", ", nbad);
  const char *sep = ": ";
  if (nmiss) {
    msg_add(&b, "%s", sep);
    msg_keys(&b, "missing ", r->missing_keys, nmiss);
    sep = "; ";
  }
  if (nunex) {
    msg_add(&b, "%s", sep);
    msg_keys(&b, "unexpected ", r->unexpected_keys, nunex);
    sep = "; ";
  }
  /* Mismatch texts contain commas themselves, so these are split by "; ". */
  for (int i = 0; i < nbad; i++)
    msg_add(&b, "%s%s", i ? "; " : sep, r->mismatched[i]);
  return td_error(TD_ERR_INVALID_ARGUMENT, "%s", b.text);
}

td_status td_module_load_state_dict(td_module *m, const td_tensor_map *state, bool strict,
                                    td_load_result *result) {
  td_load_result r = {0};
  if (result) memset(result, 0, sizeof *result);
  td_tensor_map want;
  td_status st = td_module_collect_tensors(m, TD_WALK_PARAMS | TD_WALK_BUFFERS, &want);
  if (st) return st;
  if ((st = compare(&want, state, &r))) goto done;
  if (r.n_mismatched || (strict && (r.n_missing || r.n_unexpected))) {
    st = load_error(&r, strict);
    goto done;
  }
  /* Every present key matches in shape and dtype, so no copy below can fail;
   * the check above is what makes the load all-or-nothing. */
  for (size_t i = 0; i < want.count; i++) {
    const td_tensor *src = td_tensor_map_get(state, want.entries[i].name);
    if (src && (st = td_tensor_copy_(want.entries[i].tensor, src))) {
      td_error_prefix("load_state_dict: '%s': ", want.entries[i].name);
      st = TD_ERR_INTERNAL;
      goto done;
    }
  }
done:
  td_tensor_map_free(&want);
  if (result && st != TD_ERR_NO_MEMORY)
    *result = r;
  else
    td_load_result_free(&r);
  return st;
}
