/* st_roundtrip.c - the C side of the safetensors interop test (test_safetensors_interop.py).
 *
 *   st_roundtrip write OUT      write the fixed checkpoint below to OUT
 *   st_roundtrip dump IN        read IN, print it as JSON on stdout (float32 as bit patterns,
 *                               so the comparison is exact for NaN, -0 and denormals)
 *   st_roundtrip copy IN OUT    read IN and write it again to OUT
 *
 * Errors go to stderr as the library's message, with exit status 1.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "io/safetensors.h"

static int fail(const char *what, td_status st) {
  fprintf(stderr, "st_roundtrip %s: %s: %s\n", what, td_status_name(st), td_error_message());
  return 1;
}

static td_status put(td_tensor_map *m, const char *name, td_tensor *t) {
  td_status st = td_tensor_map_put(m, name, t);
  td_tensor_release(t);
  return st;
}

/* Keep in sync with expected_c_checkpoint() in test_safetensors_interop.py. */
static td_status build(td_tensor_map *m) {
  td_status st;
  td_tensor *base, *t;
  int64_t s43[] = {4, 3}, s1[] = {1}, s4[] = {4}, s5[] = {5}, s22[] = {2, 2}, s03[] = {0, 3};

  /* fc.weight [3,4]: the transpose of a [4,3] ramp, so written from a strided view. */
  if ((st = td_tensor_empty(TD_FLOAT32, 2, s43, &base))) return st;
  for (int i = 0; i < 12; i++)
    td_tensor_f32(base)[i] = (float)i * 0.25f - 1.0f;
  st = td_tensor_transpose(base, 0, 1, &t);
  td_tensor_release(base);
  if (st || (st = put(m, "fc.weight", t))) return st;

  /* fc.bias [3]: elements 1, 3, 5 of 0..5 (a slice with an offset and step). */
  if ((st = td_tensor_arange(TD_FLOAT32, 0, 6, 1, &base))) return st;
  st = td_tensor_slice(base, 0, 1, 6, 2, &t);
  td_tensor_release(base);
  if (st || (st = put(m, "fc.bias", t))) return st;

  /* bn.running_var [4]: one value broadcast (stride 0). */
  if ((st = td_tensor_full(TD_FLOAT32, 1, s1, 0.1, &base))) return st;
  st = td_tensor_expand(base, 1, s4, &t);
  td_tensor_release(base);
  if (st || (st = put(m, "bn.running_var", t))) return st;

  if ((st = td_tensor_full(TD_INT64, 0, NULL, 7, &t)) || (st = put(m, "bn.num_batches_tracked", t)))
    return st;

  if ((st = td_tensor_empty(TD_INT64, 1, s5, &t))) return st;
  const int64_t labels[] = {INT64_MIN, -1, 0, 1, INT64_MAX};
  memcpy(td_tensor_data(t), labels, sizeof labels);
  if ((st = put(m, "labels", t))) return st;

  if ((st = td_tensor_empty(TD_INT32, 2, s22, &t))) return st;
  const int32_t counts[] = {INT32_MIN, -7, 7, INT32_MAX};
  memcpy(td_tensor_data(t), counts, sizeof counts);
  if ((st = put(m, "counts", t))) return st;

  if ((st = td_tensor_empty(TD_FLOAT32, 1, s5, &t))) return st;
  const uint32_t special[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x80000000u, 0x00000001u};
  memcpy(td_tensor_data(t), special, sizeof special); /* NaN, inf, -inf, -0, denormal */
  if ((st = put(m, "special", t))) return st;

  if ((st = td_tensor_zeros(TD_FLOAT32, 2, s03, &t)) || (st = put(m, "empty", t))) return st;
  if ((st = td_tensor_full(TD_FLOAT32, 0, NULL, -2.5, &t)) || (st = put(m, "scalar", t))) return st;

  if ((st = td_tensor_map_set_meta(m, "format", "pt"))) return st;
  return td_tensor_map_set_meta(m, "producer", "traind st_roundtrip \xe2\x9c\x93");
}

static const char *st_dtype(td_dtype d) {
  return d == TD_FLOAT32 ? "F32" : d == TD_INT64 ? "I64" : "I32";
}

static json_t *tensor_json(const td_tensor *t) {
  json_t *shape = json_array(), *data = json_array();
  for (int d = 0; d < t->ndim; d++)
    json_array_append_new(shape, json_integer(t->shape[d]));
  for (int64_t i = 0; i < t->numel; i++) {
    json_int_t v;
    if (t->dtype == TD_FLOAT32) {
      uint32_t bits;
      memcpy(&bits, (const char *)td_tensor_data(t) + 4 * i, 4);
      v = bits;
    } else if (t->dtype == TD_INT64) {
      v = td_tensor_i64(t)[i];
    } else {
      v = ((const int32_t *)td_tensor_data(t))[i];
    }
    json_array_append_new(data, json_integer(v));
  }
  return json_pack("{s:s, s:o, s:o}", "dtype", st_dtype(t->dtype), "shape", shape, "data", data);
}

static int dump(const td_tensor_map *m) {
  json_t *tensors = json_array(), *meta = json_object();
  for (size_t i = 0; i < m->count; i++) {
    json_t *t = tensor_json(m->entries[i].tensor);
    json_object_set_new(t, "name", json_string(m->entries[i].name));
    json_array_append_new(tensors, t);
  }
  for (size_t i = 0; i < m->meta_count; i++)
    json_object_set_new(meta, m->meta[i].key, json_string(m->meta[i].value));
  json_t *root = json_pack("{s:o, s:o}", "tensors", tensors, "metadata", meta);
  int rc = json_dumpf(root, stdout, JSON_COMPACT) == 0 && putchar('\n') != EOF ? 0 : 1;
  json_decref(root);
  return rc;
}

int main(int argc, char **argv) {
  td_tensor_map m = {0};
  td_status st;
  int rc = 0;
  if (argc == 3 && strcmp(argv[1], "write") == 0) {
    if ((st = build(&m)) || (st = td_safetensors_write_file(&m, argv[2]))) rc = fail("write", st);
  } else if (argc == 3 && strcmp(argv[1], "dump") == 0) {
    rc = (st = td_safetensors_read_file(argv[2], &m)) ? fail("dump", st) : dump(&m);
  } else if (argc == 4 && strcmp(argv[1], "copy") == 0) {
    if ((st = td_safetensors_read_file(argv[2], &m)) ||
        (st = td_safetensors_write_file(&m, argv[3])))
      rc = fail("copy", st);
  } else {
    fprintf(stderr, "usage: st_roundtrip write OUT | dump IN | copy IN OUT\n");
    rc = 2;
  }
  td_tensor_map_free(&m);
  return rc;
}
