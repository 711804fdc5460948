/* tensor_map.h - an ordered list of named tensors plus string metadata.
 *
 * The common currency of checkpoints: a module's state_dict, an optimizer's
 * state, and a safetensors file are all a td_tensor_map. Order is insertion
 * order (PyTorch's state_dict order), names are unique.
 *
 * Ownership: the map retains every tensor put into it and copies every
 * string; td_tensor_map_free releases them. Lookups return borrowed pointers.
 */
#ifndef TD_IO_TENSOR_MAP_H
#define TD_IO_TENSOR_MAP_H

#include <stddef.h>

#include "tensor/tensor.h"

typedef struct td_tensor_map_entry {
  char *name;        /* owned */
  td_tensor *tensor; /* one reference owned */
} td_tensor_map_entry;

typedef struct td_tensor_map_meta {
  char *key;   /* owned */
  char *value; /* owned */
} td_tensor_map_meta;

typedef struct td_tensor_map {
  td_tensor_map_entry *entries;
  size_t count, cap;
  td_tensor_map_meta *meta; /* safetensors "__metadata__" */
  size_t meta_count, meta_cap;
} td_tensor_map;

/* An empty map is all zeros: `td_tensor_map m = {0};` is valid. */
void td_tensor_map_init(td_tensor_map *m);
void td_tensor_map_free(td_tensor_map *m);

/* Appends name -> t (retained). A duplicate name is INVALID_ARGUMENT. */
td_status td_tensor_map_put(td_tensor_map *m, const char *name, td_tensor *t);
/* Borrowed tensor for name, or NULL. */
td_tensor *td_tensor_map_get(const td_tensor_map *m, const char *name);
/* Index of name, or -1. */
long td_tensor_map_find(const td_tensor_map *m, const char *name);

/* Sets (or replaces) a metadata string. */
td_status td_tensor_map_set_meta(td_tensor_map *m, const char *key, const char *value);
/* Borrowed value for key, or NULL. */
const char *td_tensor_map_get_meta(const td_tensor_map *m, const char *key);

#endif
