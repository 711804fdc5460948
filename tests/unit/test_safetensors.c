/* test_safetensors.c - safetensors writer/reader: round trips, atomic files, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/test_util.h"
#include "core/alloc.h"
#include "io/safetensors.h"

/* ---- helpers ----------------------------------------------------------- */

/* Every dtype, 0-d and empty tensors, and strided views (transposed, sliced
 * with an offset, broadcast with stride 0), plus UTF-8 metadata. */
static void make_map(td_tensor_map *m) {
  td_tensor_map_init(m);
  int64_t s23[] = {2, 3};
  map_put(m, "w", ramp(2, s23, -1.0f, 0.5f));

  int64_t s4[] = {4};
  td_tensor *idx;
  assert_int_equal(td_tensor_empty(TD_INT64, 1, s4, &idx), TD_OK);
  const int64_t iv[] = {INT64_MIN, -1, 0, INT64_MAX};
  memcpy(td_tensor_i64(idx), iv, sizeof iv);
  map_put(m, "idx", idx);

  int64_t s3[] = {3};
  td_tensor *cnt;
  assert_int_equal(td_tensor_empty(TD_INT32, 1, s3, &cnt), TD_OK);
  const int32_t cv[] = {INT32_MIN, 7, INT32_MAX};
  memcpy(td_tensor_data(cnt), cv, sizeof cv);
  map_put(m, "cnt", cnt);

  map_put(m, "scalar", ramp(0, NULL, 3.25f, 0));
  int64_t s05[] = {0, 5};
  map_put(m, "empty", ramp(2, s05, 0, 0));
  int64_t s0[] = {0};
  td_tensor *e64;
  assert_int_equal(td_tensor_empty(TD_INT64, 1, s0, &e64), TD_OK);
  map_put(m, "empty_i64", e64);

  int64_t s34[] = {3, 4};
  td_tensor *base = ramp(2, s34, 0, 1), *view;
  assert_int_equal(td_tensor_transpose(base, 0, 1, &view), TD_OK);
  map_put(m, "transposed", view);
  td_tensor_release(base);

  int64_t s10[] = {10};
  base = ramp(1, s10, 100, 1);
  assert_int_equal(td_tensor_slice(base, 0, 1, 10, 2, &view), TD_OK);
  map_put(m, "sliced", view);
  td_tensor_release(base);

  int64_t s13[] = {1, 3}, s43[] = {4, 3};
  base = ramp(2, s13, 7, 1);
  assert_int_equal(td_tensor_expand(base, 2, s43, &view), TD_OK);
  map_put(m, "broadcast", view);
  td_tensor_release(base);

  td_tensor *nbt;
  assert_int_equal(td_tensor_zeros(TD_INT64, 0, NULL, &nbt), TD_OK);
  td_tensor_i64(nbt)[0] = 12345;
  map_put(m, "bn.num_batches_tracked", nbt);

  assert_int_equal(td_tensor_map_set_meta(m, "format", "pt"), TD_OK);
  assert_int_equal(
      td_tensor_map_set_meta(m, "note", "\xc3\xbcn\xc3\xaf \"quoted\" \\ / \xe2\x9c\x93"), TD_OK);
}

static void assert_tensor_equal(td_tensor *got, td_tensor *want) {
  assert_int_equal(got->dtype, want->dtype);
  assert_true(td_shape_equal(got->ndim, got->shape, want->ndim, want->shape));
  assert_true(td_tensor_is_contiguous(got));
  td_tensor *c;
  assert_int_equal(td_tensor_contiguous(want, &c), TD_OK);
  if (c->numel) assert_memory_equal(td_tensor_data(got), td_tensor_data(c), td_tensor_nbytes(c));
  td_tensor_release(c);
}

static void assert_map_equal(const td_tensor_map *got, const td_tensor_map *want) {
  assert_int_equal(got->count, want->count);
  for (size_t i = 0; i < want->count; i++) {
    assert_string_equal(got->entries[i].name, want->entries[i].name); /* same order */
    assert_tensor_equal(got->entries[i].tensor, want->entries[i].tensor);
  }
  assert_int_equal(got->meta_count, want->meta_count);
  for (size_t i = 0; i < want->meta_count; i++)
    assert_string_equal(td_tensor_map_get_meta(got, want->meta[i].key), want->meta[i].value);
}

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* A file image: length field for `json`, the JSON, then data_len bytes. */
static unsigned char *image(const char *json, size_t data_len, size_t *len) {
  size_t n = strlen(json);
  *len = 8 + n + data_len;
  unsigned char *b = calloc(1, *len);
  assert_non_null(b);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(b + 8, json, n);
  return b;
}

/* Reads buf through an exactly-sized heap copy (so ASan sees any overread)
 * and checks the result is a FORMAT error naming every needle, with out left
 * empty. */
static void expect_format(const void *buf, size_t len, const char *needle, const char *key) {
  unsigned char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  if (len) memcpy(copy, buf, len);
  td_tensor_map out = {0};
  td_error_clear();
  td_status st = td_safetensors_read_buffer(copy, len, &out);
  free(copy);
  if (st != TD_ERR_FORMAT)
    fail_msg("expected FORMAT for \"%s\", got %s: %s", needle, td_status_name(st),
             td_error_message());
  assert_int_equal(out.count, 0);
  assert_int_equal(out.meta_count, 0);
  assert_null(out.entries);
  assert_message_has("safetensors: ");
  if (needle) assert_message_has(needle);
  if (key) assert_message_has(key);
}

static td_status read_image(const char *json, size_t data_len, td_tensor_map *out) {
  size_t len;
  unsigned char *b = image(json, data_len, &len);
  td_status st = td_safetensors_read_buffer(b, len, out);
  free(b);
  return st;
}

static char *read_whole(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *b = malloc((size_t)n + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void write_whole(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static int count_dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* A fresh directory per test, removed (with its files) afterwards. */
static int setup_dir(void **state) {
  char *dir = strdup("/tmp/td-safetensors-XXXXXX");
  if (!dir || !mkdtemp(dir)) return -1;
  *state = dir;
  return 0;
}

static int teardown_dir(void **state) {
  char *dir = *state;
  chmod(dir, 0700);
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[512];
  while (d && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path)) rmdir(path);
  }
  if (d) closedir(d);
  rmdir(dir);
  free(dir);
  return 0;
}

/* ---- round trips --------------------------------------------------------- */

static void test_round_trip_buffer(void **state) {
  (void)state;
  td_tensor_map m, back = {0};
  make_map(&m);
  void *buf;
  size_t len;
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  assert_int_equal(td_safetensors_read_buffer(buf, len, &back), TD_OK);
  assert_map_equal(&back, &m);
  /* Spot values, so a writer and reader that agree on a wrong layout fail. */
  assert_float_equal(td_tensor_f32(td_tensor_map_get(&back, "scalar"))[0], 3.25f, 0);
  const float *tr = td_tensor_f32(td_tensor_map_get(&back, "transposed"));
  assert_float_equal(tr[1], 4.0f, 0); /* [0][1] of the transpose is [1][0] of the base */
  const float *sl = td_tensor_f32(td_tensor_map_get(&back, "sliced"));
  assert_float_equal(sl[0], 101.0f, 0);
  assert_float_equal(sl[4], 109.0f, 0);
  assert_float_equal(td_tensor_f32(td_tensor_map_get(&back, "broadcast"))[11], 9.0f, 0);
  assert_true(td_tensor_i64(td_tensor_map_get(&back, "idx"))[0] == INT64_MIN);
  assert_int_equal(td_tensor_map_get(&back, "empty")->shape[1], 5);
  assert_int_equal(td_tensor_map_get(&back, "scalar")->ndim, 0);
  td_free(buf);
  td_tensor_map_free(&back);
  td_tensor_map_free(&m);
}

static void test_header_layout(void **state) {
  (void)state;
  td_tensor_map m;
  make_map(&m);
  void *buf;
  size_t len;
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  const unsigned char *b = buf;
  uint64_t n = le64(b);
  assert_int_equal(n % 8, 0);
  const char *json = (const char *)b + 8;
  /* Metadata first, compact JSON, reference key order, offsets in insertion order. */
  const char *start = "{\"__metadata__\":{\"format\":\"pt\",\"note\":";
  assert_memory_equal(json, start, strlen(start));
  const char *w = "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}";
  const char *idx = "\"idx\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[24,56]}";
  const char *sc = "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[68,72]}";
  const char *em = "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[72,72]}";
  char *text = strndup(json, n);
  assert_non_null(strstr(text, w));
  assert_non_null(strstr(text, idx));
  assert_non_null(strstr(text, sc));
  assert_non_null(strstr(text, em));
  size_t end = strlen(text);
  while (end && text[end - 1] == ' ')
    end--;
  assert_int_equal(text[end - 1], '}');
  assert_true(n - end < 8); /* padding only to the next multiple of 8 */
  free(text);
  /* Data: w then idx, little-endian, right after the header. */
  float w0;
  memcpy(&w0, b + 8 + n, 4);
  assert_float_equal(w0, -1.0f, 0);
  assert_int_equal(b[8 + n + 24 + 7], 0x80); /* INT64_MIN's top byte, last in LE */
  td_free(buf);
  td_tensor_map_free(&m);
}

/* Byte vectors from the reference implementation's own tests (tensor.rs). */
static void test_reference_bytes(void **state) {
  (void)state;
  td_tensor_map m = {0};
  int64_t shape[] = {1, 1, 2, 3};
  map_put(&m, "attn0", ramp(4, shape, 0, 1));
  void *buf;
  size_t len;
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  const char *json = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
  assert_int_equal(len, 8 + 72 + 24);
  assert_int_equal(le64(buf), 72);
  assert_memory_equal((char *)buf + 8, json, strlen(json));
  assert_memory_equal((char *)buf + 8 + strlen(json), "       ", 7);
  const unsigned char data[] = {0, 0, 0,  0,  0, 0, 128, 63, 0, 0, 0,   64,
                                0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
  assert_memory_equal((char *)buf + 80, data, sizeof data);
  td_free(buf);
  td_tensor_map_free(&m);

  const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  assert_int_equal(len, sizeof empty);
  assert_memory_equal(buf, empty, sizeof empty);
  td_free(buf);

  assert_int_equal(td_tensor_map_set_meta(&m, "framework", "pt"), TD_OK);
  const char *meta = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  assert_int_equal(len, 8 + 40);
  assert_int_equal(le64(buf), 40);
  assert_memory_equal((char *)buf + 8, meta, 40);
  td_tensor_map back = {0};
  assert_int_equal(td_safetensors_read_buffer(buf, len, &back), TD_OK);
  assert_int_equal(back.count, 0);
  assert_string_equal(td_tensor_map_get_meta(&back, "framework"), "pt");
  td_tensor_map_free(&back);
  td_free(buf);
  td_tensor_map_free(&m);
}

static void test_file_matches_buffer(void **state) {
  const char *dir = *state;
  char path[256];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  td_tensor_map m, back = {0};
  make_map(&m);
  void *buf;
  size_t len, flen;
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  assert_int_equal(td_safetensors_write_file(&m, path), TD_OK);
  char *file = read_whole(path, &flen);
  assert_int_equal(flen, len);
  assert_memory_equal(file, buf, len);
  assert_int_equal(td_safetensors_read_file(path, &back), TD_OK);
  assert_map_equal(&back, &m);
  assert_int_equal(count_dir_entries(dir), 1); /* no temporary file left */
  /* Overwriting an existing file replaces it whole. */
  td_tensor_map small = {0};
  map_put(&small, "x", ramp(0, NULL, 1, 0));
  assert_int_equal(td_safetensors_write_file(&small, path), TD_OK);
  td_tensor_map back2 = {0};
  assert_int_equal(td_safetensors_read_file(path, &back2), TD_OK);
  assert_map_equal(&back2, &small);
  assert_int_equal(count_dir_entries(dir), 1);
  /* Files get the umask's permissions, not mkstemp's 0600. */
  struct stat sb;
  mode_t mask = umask(022);
  umask(mask);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0666 & ~mask);
  td_tensor_map_free(&back2);
  td_tensor_map_free(&small);
  free(file);
  td_free(buf);
  td_tensor_map_free(&back);
  td_tensor_map_free(&m);
}

/* ---- atomic writes ------------------------------------------------------- */

/* A write that fails midway (the file-size limit cuts it off) must leave the
 * old file as it was and no temporary file behind. */
static void test_failed_write_keeps_old_file(void **state) {
  const char *dir = *state;
  char path[256];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
  const char old[] = "previous checkpoint";
  write_whole(path, old, sizeof old);

  td_tensor_map m = {0};
  int64_t shape[] = {64, 1024};
  map_put(&m, "big", ramp(2, shape, 0, 1));
  struct rlimit saved, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
  small = saved;
  small.rlim_cur = 64 * 1024;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  td_status st = td_safetensors_write_file(&m, path);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, prev);

  assert_error(st, TD_ERR_IO, path, "File too large");
  size_t len;
  char *now = read_whole(path, &len);
  assert_int_equal(len, sizeof old);
  assert_memory_equal(now, old, sizeof old);
  assert_int_equal(count_dir_entries(dir), 1);
  free(now);
  td_tensor_map_free(&m);
}

/* The last step failing (rename onto a directory) also cleans up. */
static void test_failed_rename_cleans_up(void **state) {
  const char *dir = *state;
  char path[256];
  snprintf(path, sizeof path, "%s/taken", dir);
  assert_int_equal(mkdir(path, 0700), 0);
  td_tensor_map m = {0};
  map_put(&m, "x", ramp(0, NULL, 1, 0));
  assert_error(td_safetensors_write_file(&m, path), TD_ERR_IO, path, "rename");
  assert_int_equal(count_dir_entries(dir), 1);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  td_tensor_map_free(&m);
}

static void test_write_into_missing_dir(void **state) {
  const char *dir = *state;
  char path[256];
  snprintf(path, sizeof path, "%s/no/such/dir/model.safetensors", dir);
  td_tensor_map m = {0};
  map_put(&m, "x", ramp(0, NULL, 1, 0));
  assert_error(td_safetensors_write_file(&m, path), TD_ERR_IO, path, "No such file or directory");
  assert_int_equal(count_dir_entries(dir), 0);
  td_tensor_map_free(&m);
}

/* Can a file be created in dir? */
static int can_create_in(const char *dir) {
  char probe[512];
  snprintf(probe, sizeof probe, "%s/probe", dir);
  int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return 0;
  close(fd);
  unlink(probe);
  return 1;
}

static void test_write_into_read_only_dir(void **state) {
  const char *dir = *state;
  char ro[256];
  snprintf(ro, sizeof ro, "%s/ro", dir);
  assert_int_equal(mkdir(ro, 0500), 0);
  /* root ignores directory permissions; sysfs refuses new files even to root. */
  const char *target = can_create_in(ro) ? "/sys" : ro;
  if (can_create_in(target)) skip();
  char path[300];
  snprintf(path, sizeof path, "%s/model.safetensors", target);
  td_tensor_map m = {0};
  map_put(&m, "x", ramp(0, NULL, 1, 0));
  assert_error(td_safetensors_write_file(&m, path), TD_ERR_IO, path,
               "cannot create temporary file");
  assert_int_equal(count_dir_entries(ro), 0);
  td_tensor_map_free(&m);
}

static void test_write_rejects_bad_names(void **state) {
  const char *dir = *state;
  char path[256];
  snprintf(path, sizeof path, "%s/bad.safetensors", dir);
  void *buf = (void *)1;
  size_t len = 1;

  td_tensor_map m = {0};
  map_put(&m, "__metadata__", ramp(0, NULL, 1, 0));
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_ERR_INVALID_ARGUMENT);
  assert_null(buf);
  assert_int_equal(len, 0);
  assert_message_has("'__metadata__' is reserved");
  assert_error(td_safetensors_write_file(&m, path), TD_ERR_INVALID_ARGUMENT, path);
  td_tensor_map_free(&m);

  map_put(&m, "w\xff", ramp(0, NULL, 1, 0));
  assert_error(td_safetensors_write_buffer(&m, &buf, &len), TD_ERR_INVALID_ARGUMENT,
               "tensor name 'w\xff' is not valid UTF-8");
  td_tensor_map_free(&m);

  assert_int_equal(td_tensor_map_set_meta(&m, "k", "v\xc3"), TD_OK);
  assert_error(td_safetensors_write_buffer(&m, &buf, &len), TD_ERR_INVALID_ARGUMENT,
               "metadata value of 'k' is not valid UTF-8");
  assert_int_equal(td_safetensors_write_file(&m, path), TD_ERR_INVALID_ARGUMENT);
  td_tensor_map_free(&m);
  assert_int_equal(count_dir_entries(dir), 0); /* refused before touching the disk */
}

/* ---- reading: valid but unusual files ------------------------------------ */

static void test_read_accepts_any_offset_order(void **state) {
  (void)state;
  /* Listed b first although its data comes second; unpadded header with
   * surrounding whitespace; an empty tensor sharing an offset. */
  const char *json = " {\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                     "\"e\":{\"dtype\":\"I64\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                     "\"a\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\","
                     "\"extra\":\"ignored\"}}\n";
  size_t len;
  unsigned char *b = image(json, 12, &len);
  float a[] = {1.5f, -2.0f};
  int32_t bv = 42;
  memcpy(b + len - 12, a, 8);
  memcpy(b + len - 4, &bv, 4);
  td_tensor_map m = {0};
  assert_int_equal(td_safetensors_read_buffer(b, len, &m), TD_OK);
  assert_int_equal(m.count, 3);
  assert_string_equal(m.entries[0].name, "a"); /* data order */
  assert_string_equal(m.entries[1].name, "e");
  assert_string_equal(m.entries[2].name, "b");
  assert_float_equal(td_tensor_f32(m.entries[0].tensor)[1], -2.0f, 0);
  assert_int_equal(((int32_t *)td_tensor_data(m.entries[2].tensor))[0], 42);
  assert_int_equal(m.entries[1].tensor->numel, 0);
  td_tensor_map_free(&m);
  free(b);

  assert_int_equal(read_image("{}", 0, &m), TD_OK);
  assert_int_equal(m.count, 0);
}

static void test_read_requires_empty_output(void **state) {
  (void)state;
  td_tensor_map m = {0};
  map_put(&m, "x", ramp(0, NULL, 1, 0));
  assert_error(read_image("{}", 0, &m), TD_ERR_INVALID_ARGUMENT, "must be empty");
  assert_int_equal(m.count, 1);
  td_tensor_map_free(&m);
}

static void test_read_file_errors(void **state) {
  const char *dir = *state;
  char path[256];
  snprintf(path, sizeof path, "%s/missing.safetensors", dir);
  td_tensor_map m = {0};
  assert_error(td_safetensors_read_file(path, &m), TD_ERR_NOT_FOUND, path);
  assert_error(td_safetensors_read_file(dir, &m), TD_ERR_IO, "not a regular file");

  /* A valid file cut short on disk is a format error naming the path. */
  td_tensor_map full;
  make_map(&full);
  void *buf;
  size_t len;
  assert_int_equal(td_safetensors_write_buffer(&full, &buf, &len), TD_OK);
  snprintf(path, sizeof path, "%s/cut.safetensors", dir);
  const size_t cuts[] = {0, 7, 8, 100, len - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    write_whole(path, buf, cuts[i]);
    assert_error(td_safetensors_read_file(path, &m), TD_ERR_FORMAT, path);
    assert_int_equal(m.count, 0);
  }
  write_whole(path, buf, len);
  assert_int_equal(td_safetensors_read_file(path, &m), TD_OK);
  assert_map_equal(&m, &full);
  td_tensor_map_free(&m);
  td_free(buf);
  td_tensor_map_free(&full);
}

/* ---- hostile input --------------------------------------------------------- */

static void test_every_truncation_is_rejected(void **state) {
  (void)state;
  td_tensor_map m;
  make_map(&m);
  void *buf;
  size_t len;
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  for (size_t cut = 0; cut < len; cut++)
    expect_format(buf, cut, NULL, NULL);
  expect_format(buf, 3, "too short", NULL);
  expect_format(buf, 40, "exceeds", NULL);
  expect_format(buf, len - 1, "truncated", NULL);
  td_free(buf);
  td_tensor_map_free(&m);
}

static void test_bad_header_length(void **state) {
  (void)state;
  unsigned char b[64];
  memset(b, ' ', sizeof b);
  memset(b, 0xff, 8); /* 2^64 - 1 */
  expect_format(b, sizeof b, "above the limit", NULL);
  memset(b, 0, 8);
  b[7] = 0x80; /* 2^63: negative if someone used int64 */
  expect_format(b, sizeof b, "above the limit", NULL);
  uint64_t n = TD_SAFETENSORS_MAX_HEADER + 1ull;
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(n >> (8 * i));
  expect_format(b, sizeof b, "above the limit", NULL);
  memset(b, 0, 8);
  b[0] = 57; /* one more than the 56 bytes that follow */
  expect_format(b, sizeof b, "exceeds the 56 bytes", NULL);
  b[0] = 0; /* an empty header is not JSON */
  expect_format(b, 8, "not valid JSON", NULL);
}

typedef struct hostile_case {
  const char *json;
  size_t data_len;
  const char *problem; /* what the message must say */
  const char *key;     /* the tensor it must name, or NULL */
} hostile_case;

#define E(body) "{\"w\":{" body "}}"
#define F32_2 "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"

static const hostile_case k_hostile[] = {
    {"{\"w\":", 0, "not valid JSON", NULL},
    {"{\"w\":{}} trailing", 0, "not valid JSON", NULL},
    {"{\"w\xff\":{}}", 0, "not valid JSON", NULL},
    {"{\"w\\u0000x\":{}}", 0, "not valid JSON", NULL},
    {"[]", 0, "not a JSON object", NULL},
    {"{\"w\":3}", 0, "entry is not an object", "'w'"},
    {E("\"shape\":[2],\"data_offsets\":[0,8]"), 8, "missing \"dtype\"", "'w'"},
    {E("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), 8, "missing \"shape\"", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2]"), 8, "missing \"data_offsets\"", "'w'"},
    {E("\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]"), 8, "\"dtype\" is not a string", "'w'"},
    {E("\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]"), 4,
     "dtype \"F16\" is not supported", "'w'"},
    {E("\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]"), 4,
     "dtype \"BF16\" is not supported", "'w'"},
    {E("\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]"), 8, "unknown dtype \"f32\"",
     "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"), 8, "\"shape\" is not an array",
     "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]"), 8,
     "shape dim 0 is not an integer", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,8]"), 8,
     "shape dim 1 is negative (-3)", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4,
     "9 dimensions, at most 8", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]"), 8,
     "shape [1099511627776,1099511627776] overflows", "'w'"},
    {E("\"dtype\":\"I64\",\"shape\":[1152921504606846976,8],\"data_offsets\":[0,8]"), 8,
     "overflows", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]"), 8,
     "too big integer", NULL},
    {E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":8"), 8, "two non-negative integers",
     "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]"), 8, "two non-negative integers",
     "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]"), 8, "two non-negative integers",
     "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]"), 8,
     "two non-negative integers", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]"), 8, "end before they begin",
     "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]"), 4,
     "[0,4] hold 4 bytes, but F32 [2] needs 8", "'w'"},
    {E("\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]"), 8,
     "hold 8 bytes, but I64 [2] needs 16", "'w'"},
    {E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]"), 12,
     "gap of 4 bytes after byte 0", "'w'"},
    {"{\"a\":{" F32_2 "},\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16,
     "gap of 4 bytes after byte 8", "'b'"},
    {"{\"a\":{" F32_2 "},\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
     "overlap tensor 'a', which ends at 8", "'b'"},
    {"{\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[12,16]},\"a\":{" F32_2 "}}", 16,
     "gap", "'b'"},
    {"{\"a\":{" F32_2 "},\"b\":{" F32_2 "}}", 16, "overlap tensor 'a'", "'b'"},
    {E(F32_2), 12, "trailing bytes", NULL},
    {E(F32_2), 4, "only 4 data bytes follow the header (truncated?)", "'w'"},
    {"{\"w\":{" F32_2 "},\"w\":{" F32_2 "}}", 8, "duplicate object key", NULL},
    {"{\"__metadata__\":{\"epoch\":3}}", 0, "\"__metadata__\" value of 'epoch' is not a string",
     NULL},
    {"{\"__metadata__\":{\"a\":\"b\",\"c\":null}}", 0, "value of 'c' is not a string", NULL},
    {"{\"__metadata__\":[\"a\"]}", 0, "\"__metadata__\" is not an object", NULL},
    {"{\"__metadata__\":\"a\"}", 0, "\"__metadata__\" is not an object", NULL},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate object key", NULL},
};

static void test_hostile_headers(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof k_hostile / sizeof *k_hostile; i++) {
    const hostile_case *c = &k_hostile[i];
    size_t len;
    unsigned char *b = image(c->json, c->data_len, &len);
    expect_format(b, len, c->problem, c->key);
    free(b);
  }
}

/* A header of many tensors: validation cost stays linear-ish, and a map of
 * 1000 entries round-trips. */
static void test_many_tensors(void **state) {
  (void)state;
  td_tensor_map m = {0}, back = {0};
  char name[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(name, sizeof name, "layer.%d.weight", i);
    int64_t shape[] = {i % 3};
    map_put(&m, name, ramp(1, shape, (float)i, 1));
  }
  void *buf;
  size_t len;
  assert_int_equal(td_safetensors_write_buffer(&m, &buf, &len), TD_OK);
  assert_int_equal(td_safetensors_read_buffer(buf, len, &back), TD_OK);
  assert_map_equal(&back, &m);
  td_free(buf);
  td_tensor_map_free(&back);
  td_tensor_map_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_buffer),
      cmocka_unit_test(test_header_layout),
      cmocka_unit_test(test_reference_bytes),
      cmocka_unit_test_setup_teardown(test_file_matches_buffer, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_failed_write_keeps_old_file, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_failed_rename_cleans_up, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_into_missing_dir, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_into_read_only_dir, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_rejects_bad_names, setup_dir, teardown_dir),
      cmocka_unit_test(test_read_accepts_any_offset_order),
      cmocka_unit_test(test_read_requires_empty_output),
      cmocka_unit_test_setup_teardown(test_read_file_errors, setup_dir, teardown_dir),
      cmocka_unit_test(test_every_truncation_is_rejected),
      cmocka_unit_test(test_bad_header_length),
      cmocka_unit_test(test_hostile_headers),
      cmocka_unit_test(test_many_tensors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
