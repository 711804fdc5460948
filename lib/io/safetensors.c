/* safetensors.c - safetensors checkpoints: writer (buffer, atomic file) and validating reader. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/atomic_file.h"

/* Tensor bytes are copied as they are in memory; the format is little-endian. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define LEN_FIELD 8 /* the u64 header length that starts every file */
#define METADATA_KEY "__metadata__"

/* ---- dtypes ------------------------------------------------------------ */

static const struct {
  const char *name;
  td_dtype dtype;
} k_dtypes[] = {{"F32", TD_FLOAT32}, {"I64", TD_INT64}, {"I32", TD_INT32}};

/* The format's other dtypes, so that a real file in one of them is reported
 * as unsupported rather than as garbage. */
static const char *const k_other_dtypes[] = {
    "BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16",     "U16",     "F16", "BF16",
    "U32",  "F64", "U64", "F8_E8M0", "F4",      "F6_E2M3", "F6_E3M2", NULL};

static const char *dtype_to_st(td_dtype dtype) {
  for (size_t i = 0; i < sizeof k_dtypes / sizeof *k_dtypes; i++)
    if (k_dtypes[i].dtype == dtype) return k_dtypes[i].name;
  return NULL;
}

static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ======================================================================== */
/* Writer                                                                    */
/* ======================================================================== */

static td_status header_oom(void) {
  return td_error(TD_ERR_NO_MEMORY, "out of memory building the header");
}

/* jansson refuses non-UTF-8 text and fails on out-of-memory alike; retrying
 * without its check tells the two apart, so the message can say which. */
static td_status set_checked(json_t *obj, const char *key, json_t *value, const char *what) {
  if (!json_object_set_new(obj, key, value)) return TD_OK;
  json_t *probe = json_object();
  int bad_utf8 = probe && json_object_set_new_nocheck(probe, key, json_null()) == 0;
  json_decref(probe);
  if (bad_utf8) return td_error(TD_ERR_INVALID_ARGUMENT, "%s '%s' is not valid UTF-8", what, key);
  return header_oom();
}

static td_status metadata_json(const td_tensor_map *m, json_t **out) {
  json_t *meta = json_object();
  if (!meta) return header_oom();
  for (size_t i = 0; i < m->meta_count; i++) {
    const td_tensor_map_meta *kv = &m->meta[i];
    json_t *v = json_string(kv->value);
    if (!v) {
      json_t *probe = json_string_nocheck(kv->value);
      json_decref(meta);
      if (!probe) return header_oom();
      json_decref(probe);
      return td_error(TD_ERR_INVALID_ARGUMENT, "metadata value of '%s' is not valid UTF-8",
                      kv->key);
    }
    td_status st = set_checked(meta, kv->key, v, "metadata key");
    if (st) {
      json_decref(meta);
      return st;
    }
  }
  *out = meta;
  return TD_OK;
}

static td_status tensor_json(const td_tensor *t, uint64_t begin, uint64_t end, json_t **out) {
  /* Key order as the reference writes it; the shape is filled in after. */
  json_t *info = json_pack("{s:s, s:[], s:[I,I]}", "dtype", dtype_to_st(t->dtype), "shape",
                           "data_offsets", (json_int_t)begin, (json_int_t)end);
  if (!info) return header_oom();
  json_t *shape = json_object_get(info, "shape");
  for (int d = 0; d < t->ndim; d++) {
    if (json_array_append_new(shape, json_integer(t->shape[d]))) {
      json_decref(info);
      return header_oom();
    }
  }
  *out = info;
  return TD_OK;
}

/* The header object for m, and the size of the data section it describes. */
static td_status header_json(const td_tensor_map *m, json_t **root_out, uint64_t *data_len) {
  json_t *root = json_object();
  if (!root) return header_oom();
  td_status st = TD_OK;
  if (m->meta_count) { /* first, as the reference writes it; absent when empty */
    json_t *meta = NULL;
    if ((st = metadata_json(m, &meta))) goto fail;
    if (json_object_set_new(root, METADATA_KEY, meta)) {
      st = header_oom();
      goto fail;
    }
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < m->count; i++) {
    const char *name = m->entries[i].name;
    const td_tensor *t = m->entries[i].tensor;
    if (strcmp(name, METADATA_KEY) == 0) {
      st = td_error(TD_ERR_INVALID_ARGUMENT,
                    "tensor name '" METADATA_KEY "' is reserved for the metadata");
      goto fail;
    }
    if (!dtype_to_st(t->dtype)) {
      st = td_error(TD_ERR_INVALID_ARGUMENT, "tensor '%s' has dtype %d, which has no format name",
                    name, (int)t->dtype);
      goto fail;
    }
    /* Broadcast views can be huge without using memory: keep offsets in int64. */
    uint64_t nbytes = td_tensor_nbytes(t);
    if (nbytes > (uint64_t)INT64_MAX - offset) {
      st = td_error(TD_ERR_INVALID_ARGUMENT, "tensor '%s' takes the data past 2^63 bytes", name);
      goto fail;
    }
    json_t *info = NULL;
    if ((st = tensor_json(t, offset, offset + nbytes, &info))) goto fail;
    if ((st = set_checked(root, name, info, "tensor name"))) goto fail;
    offset += nbytes;
  }
  *root_out = root;
  *data_len = offset;
  return TD_OK;
fail:
  json_decref(root);
  return st;
}

/* Bytes the length field + padded JSON take. */
static td_status header_size(json_t *root, size_t *json_len, size_t *head_len) {
  *json_len = json_dumpb(root, NULL, 0, JSON_COMPACT);
  if (*json_len == 0) return header_oom();
  *head_len = LEN_FIELD + pad8(*json_len);
  return TD_OK;
}

/* Writes the length field, the JSON and its space padding into dst. */
static void header_put(json_t *root, size_t json_len, size_t head_len, unsigned char *dst) {
  put_le64(dst, head_len - LEN_FIELD);
  json_dumpb(root, (char *)dst + LEN_FIELD, json_len, JSON_COMPACT);
  memset(dst + LEN_FIELD + json_len, ' ', head_len - LEN_FIELD - json_len);
}

static td_status write_buffer(const td_tensor_map *m, void **buf, size_t *len) {
  json_t *root;
  uint64_t data_len;
  size_t json_len = 0, head_len = 0;
  td_status st = header_json(m, &root, &data_len);
  if (st) return st;
  if ((st = header_size(root, &json_len, &head_len))) goto out;
  if (data_len > SIZE_MAX - head_len) {
    st = td_error(TD_ERR_NO_MEMORY, "%llu bytes of tensor data do not fit in memory",
                  (unsigned long long)data_len);
    goto out;
  }
  unsigned char *dst = td_alloc(head_len + data_len, "safetensors buffer");
  if (!dst) {
    st = TD_ERR_NO_MEMORY;
    goto out;
  }
  header_put(root, json_len, head_len, dst);
  size_t pos = head_len;
  for (size_t i = 0; i < m->count; i++) {
    td_tensor *t = m->entries[i].tensor;
    if (t->numel == 0) continue;
    td_tensor *c;
    if ((st = td_tensor_contiguous(t, &c))) {
      td_free(dst);
      goto out;
    }
    memcpy(dst + pos, td_tensor_data(c), td_tensor_nbytes(c));
    pos += td_tensor_nbytes(c);
    td_tensor_release(c);
  }
  *buf = dst;
  *len = pos;
out:
  json_decref(root);
  return st;
}

td_status td_safetensors_write_buffer(const td_tensor_map *m, void **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  td_status st = write_buffer(m, buf, len);
  if (st) td_error_prefix("safetensors: ");
  return st;
}

/* ---- streaming ---------------------------------------------------------- */

static td_status write_stream(const td_tensor_map *m, td_write_sink sink, void *ctx) {
  json_t *root;
  uint64_t data_len;
  size_t json_len = 0, head_len = 0;
  /* Everything that can be refused (names, metadata) is checked before the
   * sink sees a byte. */
  td_status st = header_json(m, &root, &data_len);
  if (st) return st;
  unsigned char *head = NULL;
  if (!(st = header_size(root, &json_len, &head_len))) {
    head = td_alloc(head_len, "safetensors header");
    if (head)
      header_put(root, json_len, head_len, head);
    else
      st = TD_ERR_NO_MEMORY;
  }
  json_decref(root);
  if (!st) st = sink(ctx, head, head_len);
  td_free(head);
  /* Then each tensor's row-major bytes (a copy only for strided views). */
  for (size_t i = 0; !st && i < m->count; i++) {
    td_tensor *t = m->entries[i].tensor;
    if (t->numel == 0) continue;
    td_tensor *c;
    if ((st = td_tensor_contiguous(t, &c))) break;
    st = sink(ctx, td_tensor_data(c), td_tensor_nbytes(c));
    td_tensor_release(c);
  }
  return st;
}

td_status td_safetensors_write_stream(const td_tensor_map *m, td_write_sink sink, void *ctx) {
  td_status st = write_stream(m, sink, ctx);
  if (st) td_error_prefix("safetensors: ");
  return st;
}

/* ---- atomic file writing ------------------------------------------------ */

static td_status file_sink(void *f, const void *data, size_t n) {
  return td_atomic_file_write(f, data, n);
}

static td_status write_file(const td_tensor_map *m, const char *path) {
  td_atomic_file f;
  td_status st = td_atomic_file_begin(&f, path);
  if (st) return st;
  if ((st = write_stream(m, file_sink, &f))) {
    td_atomic_file_abort(&f);
    return st;
  }
  return td_atomic_file_commit(&f);
}

td_status td_safetensors_write_file(const td_tensor_map *m, const char *path) {
  td_status st = write_file(m, path);
  if (st) td_error_prefix("safetensors '%s': ", path);
  return st;
}

/* ======================================================================== */
/* Reader                                                                    */
/* ======================================================================== */

typedef struct st_entry {
  const char *name; /* borrowed from the parsed JSON */
  td_dtype dtype;
  int ndim;
  int64_t shape[TD_MAX_DIMS];
  uint64_t begin, end; /* byte range in the data section */
  size_t order;        /* position in the header: a tie-break, so sorting is deterministic */
} st_entry;

typedef struct st_header {
  json_t *root;      /* owned */
  json_t *meta;      /* borrowed from root; NULL when absent */
  st_entry *entries; /* owned; sorted by data offsets once validated */
  size_t count;
} st_header;

static void header_free(st_header *h) {
  json_decref(h->root);
  td_free(h->entries);
  memset(h, 0, sizeof *h);
}

static td_status bad(const char *fmt, ...) TD_PRINTF(1, 2);
static td_status bad(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return td_error(TD_ERR_FORMAT, "%s", msg);
}

/* The checks that need only the length field and the total size. */
static td_status check_header_length(uint64_t n, uint64_t total) {
  if (n > TD_SAFETENSORS_MAX_HEADER)
    return bad("header length %llu is above the limit of %u bytes", (unsigned long long)n,
               TD_SAFETENSORS_MAX_HEADER);
  if (n > total - LEN_FIELD)
    return bad("header length %llu exceeds the %llu bytes after the length field (truncated?)",
               (unsigned long long)n, (unsigned long long)(total - LEN_FIELD));
  return TD_OK;
}

static td_status check_total_size(uint64_t total) {
  if (total < LEN_FIELD)
    return bad("%llu bytes is too short: the header length field alone is 8 bytes",
               (unsigned long long)total);
  return TD_OK;
}

static td_status parse_dtype(const char *key, json_t *v, td_dtype *out) {
  if (!v) return bad("tensor '%s': missing \"dtype\"", key);
  if (!json_is_string(v)) return bad("tensor '%s': \"dtype\" is not a string", key);
  const char *s = json_string_value(v);
  for (size_t i = 0; i < sizeof k_dtypes / sizeof *k_dtypes; i++) {
    if (strcmp(s, k_dtypes[i].name) == 0) {
      *out = k_dtypes[i].dtype;
      return TD_OK;
    }
  }
  for (const char *const *o = k_other_dtypes; *o; o++)
    if (strcmp(s, *o) == 0)
      return bad("tensor '%s': dtype \"%s\" is not supported (traind reads F32, I64, I32)", key, s);
  return bad("tensor '%s': unknown dtype \"%s\" (traind reads F32, I64, I32)", key, s);
}

/* Shape and its byte size. The element count is checked exactly as
 * td_tensor_empty will check it, so a shape accepted here is creatable. */
static td_status parse_shape(const char *key, json_t *v, td_dtype dtype, st_entry *e,
                             uint64_t *nbytes) {
  if (!v) return bad("tensor '%s': missing \"shape\"", key);
  if (!json_is_array(v)) return bad("tensor '%s': \"shape\" is not an array", key);
  size_t nd = json_array_size(v);
  if (nd > TD_MAX_DIMS)
    return bad("tensor '%s': shape has %zu dimensions, at most %d are supported", key, nd,
               TD_MAX_DIMS);
  for (size_t d = 0; d < nd; d++) {
    json_t *x = json_array_get(v, d);
    if (!json_is_integer(x)) return bad("tensor '%s': shape dim %zu is not an integer", key, d);
    if (json_integer_value(x) < 0)
      return bad("tensor '%s': shape dim %zu is negative (%lld)", key, d,
                 (long long)json_integer_value(x));
    e->shape[d] = json_integer_value(x);
  }
  e->ndim = (int)nd;
  int64_t numel;
  if (td_shape_check("shape", e->ndim, e->shape, &numel)) {
    char s[TD_SHAPE_STR_MAX];
    return bad("tensor '%s': shape %s overflows (too many elements)", key,
               td_shape_str(s, sizeof s, e->ndim, e->shape));
  }
  /* td_shape_check keeps numel * 8 within int64: this cannot overflow. */
  *nbytes = (uint64_t)numel * td_dtype_size(dtype);
  return TD_OK;
}

static td_status parse_offsets(const char *key, json_t *v, st_entry *e) {
  if (!v) return bad("tensor '%s': missing \"data_offsets\"", key);
  json_t *b = json_array_get(v, 0), *x = json_array_get(v, 1);
  if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(b) || !json_is_integer(x) ||
      json_integer_value(b) < 0 || json_integer_value(x) < 0)
    return bad("tensor '%s': \"data_offsets\" is not an array of two non-negative integers", key);
  e->begin = (uint64_t)json_integer_value(b);
  e->end = (uint64_t)json_integer_value(x);
  if (e->end < e->begin)
    return bad("tensor '%s': data_offsets [%llu,%llu] end before they begin", key,
               (unsigned long long)e->begin, (unsigned long long)e->end);
  return TD_OK;
}

static td_status parse_entry(const char *key, json_t *v, st_entry *e) {
  if (!json_is_object(v)) return bad("tensor '%s': entry is not an object", key);
  e->name = key;
  uint64_t nbytes = 0;
  td_status st;
  if ((st = parse_dtype(key, json_object_get(v, "dtype"), &e->dtype))) return st;
  if ((st = parse_shape(key, json_object_get(v, "shape"), e->dtype, e, &nbytes))) return st;
  if ((st = parse_offsets(key, json_object_get(v, "data_offsets"), e))) return st;
  if (e->end - e->begin != nbytes) {
    char s[TD_SHAPE_STR_MAX];
    return bad("tensor '%s': data_offsets [%llu,%llu] hold %llu bytes, but %s %s needs %llu", key,
               (unsigned long long)e->begin, (unsigned long long)e->end,
               (unsigned long long)(e->end - e->begin), dtype_to_st(e->dtype),
               td_shape_str(s, sizeof s, e->ndim, e->shape), (unsigned long long)nbytes);
  }
  return TD_OK;
}

static td_status parse_metadata(json_t *meta) {
  if (!json_is_object(meta)) return bad("\"" METADATA_KEY "\" is not an object of strings");
  const char *k;
  json_t *v;
  json_object_foreach(meta, k, v) {
    if (!json_is_string(v)) return bad("\"" METADATA_KEY "\" value of '%s' is not a string", k);
  }
  return TD_OK;
}

static int by_offsets(const void *pa, const void *pb) {
  const st_entry *a = pa, *b = pb;
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* The data ranges, sorted, must tile [0, data_len) exactly: any order in the
 * header is fine (the reference sorts too), gaps and overlaps are not. */
static td_status check_layout(st_header *h, uint64_t data_len) {
  qsort(h->entries, h->count, sizeof *h->entries, by_offsets);
  uint64_t pos = 0;
  const char *prev = NULL;
  for (size_t i = 0; i < h->count; i++) {
    const st_entry *e = &h->entries[i];
    if (e->begin > pos)
      return bad("tensor '%s': data_offsets [%llu,%llu] leave a gap of %llu bytes after byte %llu",
                 e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                 (unsigned long long)(e->begin - pos), (unsigned long long)pos);
    if (e->begin < pos)
      return bad("tensor '%s': data_offsets [%llu,%llu] overlap tensor '%s', which ends at %llu",
                 e->name, (unsigned long long)e->begin, (unsigned long long)e->end, prev,
                 (unsigned long long)pos);
    pos = e->end;
    prev = e->name;
  }
  if (pos < data_len)
    return bad("tensors cover %llu data bytes, but %llu follow the header (trailing bytes)",
               (unsigned long long)pos, (unsigned long long)data_len);
  if (pos > data_len)
    return bad("tensor '%s': data ends at byte %llu, but only %llu data bytes follow the header "
               "(truncated?)",
               prev, (unsigned long long)pos, (unsigned long long)data_len);
  return TD_OK;
}

/* Parses and validates the JSON header; data_len is what follows it. */
static td_status parse_header(const char *text, size_t n, uint64_t data_len, st_header *h) {
  memset(h, 0, sizeof *h);
  json_error_t err;
  h->root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &err);
  if (!h->root)
    return bad("header is not valid JSON: %s (line %d, column %d)", err.text, err.line, err.column);
  td_status st;
  if (!json_is_object(h->root)) {
    st = bad("header is not a JSON object");
    goto fail;
  }
  size_t cap = json_object_size(h->root);
  h->entries = td_calloc(cap ? cap : 1, sizeof *h->entries, "safetensors header");
  if (!h->entries) {
    st = TD_ERR_NO_MEMORY;
    goto fail;
  }
  const char *key;
  json_t *v;
  json_object_foreach(h->root, key, v) {
    if (strcmp(key, METADATA_KEY) == 0) {
      if ((st = parse_metadata(v))) goto fail;
      h->meta = v;
      continue;
    }
    st_entry *e = &h->entries[h->count];
    e->order = h->count;
    if ((st = parse_entry(key, v, e))) goto fail;
    h->count++;
  }
  if ((st = check_layout(h, data_len))) goto fail;
  return TD_OK;
fail:
  header_free(h);
  return st;
}

static td_status copy_metadata(const st_header *h, td_tensor_map *m) {
  if (!h->meta) return TD_OK;
  const char *k;
  json_t *v;
  json_object_foreach(h->meta, k, v) {
    td_status st = td_tensor_map_set_meta(m, k, json_string_value(v));
    if (st) return st;
  }
  return TD_OK;
}

static td_status check_out_empty(const td_tensor_map *out) {
  if (out->count || out->meta_count)
    return td_error(TD_ERR_INVALID_ARGUMENT, "the output map must be empty (it has %zu tensors)",
                    out->count);
  return TD_OK;
}

/* The end of a read, `st` the status of loading the tensors into m: on
 * success out takes m plus the header's metadata; either way the header is
 * freed, and nothing half-built is left behind. */
static td_status finish_read(td_status st, st_header *h, td_tensor_map *m, td_tensor_map *out) {
  if (!st) st = copy_metadata(h, m);
  header_free(h);
  if (st) {
    td_tensor_map_free(m);
    return st;
  }
  *out = *m;
  return TD_OK;
}

static td_status read_buffer(const unsigned char *buf, size_t len, td_tensor_map *out) {
  td_status st;
  if ((st = check_out_empty(out)) || (st = check_total_size(len))) return st;
  uint64_t n = get_le64(buf);
  if ((st = check_header_length(n, len))) return st;
  st_header h;
  if ((st = parse_header((const char *)buf + LEN_FIELD, n, len - LEN_FIELD - n, &h))) return st;
  const unsigned char *data = buf + LEN_FIELD + n;
  td_tensor_map m = {0};
  for (size_t i = 0; !st && i < h.count; i++) {
    const st_entry *e = &h.entries[i];
    td_tensor *t;
    if ((st = td_tensor_from_data(e->dtype, e->ndim, e->shape, data + e->begin, &t))) break;
    st = td_tensor_map_put(&m, e->name, t);
    td_tensor_release(t);
  }
  return finish_read(st, &h, &m, out);
}

td_status td_safetensors_read_buffer(const void *buf, size_t len, td_tensor_map *out) {
  td_status st = read_buffer(buf, len, out);
  if (st) td_error_prefix("safetensors: ");
  return st;
}

/* ---- files ------------------------------------------------------------- */

static td_status pread_all(int fd, void *dst, size_t n, uint64_t offset) {
  char *p = dst;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)offset);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return td_error(TD_ERR_IO, "read failed: %s", strerror(errno));
    if (r == 0) return td_error(TD_ERR_IO, "file ended early (was it changed while being read?)");
    p += r;
    n -= (size_t)r;
    offset += (uint64_t)r;
  }
  return TD_OK;
}

static td_status read_fd(int fd, td_tensor_map *out) {
  struct stat sb;
  if (fstat(fd, &sb)) return td_error(TD_ERR_IO, "cannot stat: %s", strerror(errno));
  if (!S_ISREG(sb.st_mode)) return td_error(TD_ERR_IO, "not a regular file");
  uint64_t total = (uint64_t)sb.st_size;
  td_status st = check_total_size(total);
  if (st) return st;
  unsigned char len_field[LEN_FIELD];
  if ((st = pread_all(fd, len_field, LEN_FIELD, 0))) return st;
  uint64_t n = get_le64(len_field);
  if ((st = check_header_length(n, total))) return st;
  /* n is now at most the cap and the file's real size. */
  char *text = td_alloc(n, "safetensors header");
  if (!text) return TD_ERR_NO_MEMORY;
  st_header h;
  if (!(st = pread_all(fd, text, n, LEN_FIELD)))
    st = parse_header(text, n, total - LEN_FIELD - n, &h);
  td_free(text);
  if (st) return st;
  /* json_loadb copied the keys, so the entries stay valid without text. */
  td_tensor_map m = {0};
  for (size_t i = 0; !st && i < h.count; i++) {
    const st_entry *e = &h.entries[i];
    td_tensor *t;
    if ((st = td_tensor_empty(e->dtype, e->ndim, e->shape, &t))) break;
    if (e->end > e->begin)
      st = pread_all(fd, t->storage->data, e->end - e->begin, LEN_FIELD + n + e->begin);
    if (!st) st = td_tensor_map_put(&m, e->name, t);
    td_tensor_release(t);
  }
  return finish_read(st, &h, &m, out);
}

td_status td_safetensors_read_file(const char *path, td_tensor_map *out) {
  td_status st = check_out_empty(out);
  if (!st) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      st = td_error(errno == ENOENT ? TD_ERR_NOT_FOUND : TD_ERR_IO, "cannot open: %s",
                    strerror(errno));
    } else {
      st = read_fd(fd, out);
      close(fd);
    }
  }
  if (st) td_error_prefix("safetensors '%s': ", path);
  return st;
}
