/* tensor_map.c - ordered named tensors with metadata. */
#include "io/tensor_map.h"

#include <string.h>

#include "core/alloc.h"

void td_tensor_map_init(td_tensor_map *m) { memset(m, 0, sizeof *m); }

void td_tensor_map_free(td_tensor_map *m) {
  for (size_t i = 0; i < m->count; i++) {
    td_free(m->entries[i].name);
    td_tensor_release(m->entries[i].tensor);
  }
  for (size_t i = 0; i < m->meta_count; i++) {
    td_free(m->meta[i].key);
    td_free(m->meta[i].value);
  }
  td_free(m->entries);
  td_free(m->meta);
  memset(m, 0, sizeof *m);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = td_alloc(n, "string");
  if (d) memcpy(d, s, n);
  return d;
}

/* Grows *arr (of elem-sized items) to hold one more; NULL-safe. */
static td_status grow(void **arr, size_t *cap, size_t count, size_t elem) {
  if (count < *cap) return TD_OK;
  size_t ncap = *cap ? *cap * 2 : 16;
  void *p = td_calloc(ncap, elem, "tensor map");
  if (!p) return TD_ERR_NO_MEMORY;
  if (count) memcpy(p, *arr, count * elem);
  td_free(*arr);
  *arr = p;
  *cap = ncap;
  return TD_OK;
}

long td_tensor_map_find(const td_tensor_map *m, const char *name) {
  for (size_t i = 0; i < m->count; i++)
    if (strcmp(m->entries[i].name, name) == 0) return (long)i;
  return -1;
}

td_tensor *td_tensor_map_get(const td_tensor_map *m, const char *name) {
  long i = td_tensor_map_find(m, name);
  return i < 0 ? NULL : m->entries[i].tensor;
}

td_status td_tensor_map_put(td_tensor_map *m, const char *name, td_tensor *t) {
  if (td_tensor_map_find(m, name) >= 0)
    return td_error(TD_ERR_INVALID_ARGUMENT, "tensor map: duplicate key '%s'", name);
  td_status st = grow((void **)&m->entries, &m->cap, m->count, sizeof *m->entries);
  if (st) return st;
  char *n = dup_str(name);
  if (!n) return TD_ERR_NO_MEMORY;
  m->entries[m->count].name = n;
  m->entries[m->count].tensor = td_tensor_retain(t);
  m->count++;
  return TD_OK;
}

const char *td_tensor_map_get_meta(const td_tensor_map *m, const char *key) {
  for (size_t i = 0; i < m->meta_count; i++)
    if (strcmp(m->meta[i].key, key) == 0) return m->meta[i].value;
  return NULL;
}

td_status td_tensor_map_set_meta(td_tensor_map *m, const char *key, const char *value) {
  char *v = dup_str(value);
  if (!v) return TD_ERR_NO_MEMORY;
  for (size_t i = 0; i < m->meta_count; i++) {
    if (strcmp(m->meta[i].key, key) == 0) {
      td_free(m->meta[i].value);
      m->meta[i].value = v;
      return TD_OK;
    }
  }
  td_status st = grow((void **)&m->meta, &m->meta_cap, m->meta_count, sizeof *m->meta);
  char *k = st ? NULL : dup_str(key);
  if (!k) {
    td_free(v);
    return st ? st : TD_ERR_NO_MEMORY;
  }
  m->meta[m->meta_count].key = k;
  m->meta[m->meta_count].value = v;
  m->meta_count++;
  return TD_OK;
}
