/* test_atomic_file.c - CRC-32C and the atomic replace protocol of lib/io. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/crc32c.h"

/* Bit by bit, straight from the definition: the oracle for the tables. */
static uint32_t crc32c_reference(const uint8_t *p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

static void test_crc32c_known_values(void **state) {
  (void)state;
  /* The check value of the CRC-32C catalogue, and RFC 3720's vectors. */
  assert_int_equal(td_crc32c(0, "123456789", 9), 0xE3069283u);
  uint8_t zeros[32] = {0}, ones[32];
  memset(ones, 0xFF, sizeof ones);
  assert_int_equal(td_crc32c(0, zeros, 32), 0x8A9136AAu);
  assert_int_equal(td_crc32c(0, ones, 32), 0x62A8AB43u);
  assert_int_equal(td_crc32c(0, NULL, 0), 0u);
}

static void test_crc32c_matches_reference_at_every_length_and_split(void **state) {
  (void)state;
  uint8_t buf[300];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
  for (size_t n = 0; n <= sizeof buf; n++) {
    uint32_t want = crc32c_reference(buf, n);
    assert_int_equal(td_crc32c(0, buf, n), want);
    size_t cut = n / 3; /* unaligned pieces, chained */
    assert_int_equal(td_crc32c(td_crc32c(0, buf, cut), buf + cut, n - cut), want);
  }
}

/* ---- atomic files ------------------------------------------------------- */

typedef struct dir_fixture {
  char dir[64];
  char path[128];
} dir_fixture;

static int make_dir(void **state) {
  dir_fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/td-atomic-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->path, sizeof f->path, "%s/file", f->dir);
  *state = f;
  return 0;
}

static int remove_dir(void **state) {
  dir_fixture *f = *state;
  DIR *d = opendir(f->dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[400];
    snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(f->dir);
  free(f);
  return 0;
}

static int count_entries(const char *dir) {
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

static void read_back(const char *path, char *out, size_t size) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  size_t n = fread(out, 1, size - 1, fp);
  out[n] = '\0';
  fclose(fp);
}

static void write_file(const char *path, const char *text) {
  td_atomic_file af;
  assert_int_equal(td_atomic_file_begin(&af, path), TD_OK);
  assert_int_equal(td_atomic_file_write(&af, text, strlen(text) / 2), TD_OK);
  assert_int_equal(td_atomic_file_write(&af, text + strlen(text) / 2,
                                        strlen(text) - strlen(text) / 2), TD_OK);
  assert_int_equal(td_atomic_file_commit(&af), TD_OK);
}

static void test_commit_replaces_and_leaves_no_temporary(void **state) {
  dir_fixture *f = *state;
  char got[64];
  write_file(f->path, "first version");
  read_back(f->path, got, sizeof got);
  assert_string_equal(got, "first version");
  write_file(f->path, "second");
  read_back(f->path, got, sizeof got);
  assert_string_equal(got, "second");
  assert_int_equal(count_entries(f->dir), 1);
}

static void test_abort_keeps_the_previous_file(void **state) {
  dir_fixture *f = *state;
  write_file(f->path, "kept");
  td_atomic_file af;
  assert_int_equal(td_atomic_file_begin(&af, f->path), TD_OK);
  assert_int_equal(td_atomic_file_write(&af, "lost", 4), TD_OK);
  assert_int_equal(count_entries(f->dir), 2); /* the temporary, next to it */
  td_atomic_file_abort(&af);
  td_atomic_file_abort(&af); /* twice is harmless */
  char got[64];
  read_back(f->path, got, sizeof got);
  assert_string_equal(got, "kept");
  assert_int_equal(count_entries(f->dir), 1);
}

static void test_missing_directory_is_an_io_error_naming_the_path(void **state) {
  dir_fixture *f = *state;
  char path[200];
  snprintf(path, sizeof path, "%s/no/such/file", f->dir);
  td_atomic_file af;
  assert_int_equal(td_atomic_file_begin(&af, path), TD_ERR_IO);
  assert_non_null(strstr(td_error_message(), "no/such/file"));
  assert_non_null(strstr(td_error_message(), "No such file or directory"));
  td_atomic_file_abort(&af); /* an empty one */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c_known_values),
      cmocka_unit_test(test_crc32c_matches_reference_at_every_length_and_split),
      cmocka_unit_test_setup_teardown(test_commit_replaces_and_leaves_no_temporary, make_dir,
                                      remove_dir),
      cmocka_unit_test_setup_teardown(test_abort_keeps_the_previous_file, make_dir, remove_dir),
      cmocka_unit_test_setup_teardown(test_missing_directory_is_an_io_error_naming_the_path,
                                      make_dir, remove_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
