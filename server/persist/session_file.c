/* session_file.c - encode, write, read and verify session files (see session_file.h). */
#include "persist/session_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/crc32c.h"
#include "io/safetensors.h"

#define META(key) "traind.session." key

/* ---- hex ------------------------------------------------------------------ */

/* A new malloc'd string of 2n hex digits, or NULL. */
static char *hex_encode(const uint8_t *data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char *out = malloc(2 * n + 1);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  out[2 * n] = '\0';
  return out;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Decodes hex into a new malloc'd buffer (one spare byte, zeroed, so that a
 * string decodes NUL-terminated). -1 for odd length or a non-hex digit. */
static int hex_decode(const char *hex, uint8_t **out, size_t *n) {
  size_t len = strlen(hex);
  if (len % 2) return -1;
  uint8_t *buf = malloc(len / 2 + 1);
  if (!buf) return -1;
  for (size_t i = 0; i < len / 2; i++) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(buf);
      return -1;
    }
    buf[i] = (uint8_t)(hi << 4 | lo);
  }
  buf[len / 2] = 0;
  *out = buf;
  *n = len / 2;
  return 0;
}

/* ---- writing ---------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* The checkpoint plus the session's metadata. */
static td_status session_state(session *s, td_tensor_map *state) {
  td_status st = td_checkpoint_state(s->model, s->optimizer, state);
  if (st) return st;
  char created[32];
  snprintf(created, sizeof created, "%" PRId64, s->created_ms);
  char *tenant = hex_encode((const uint8_t *)s->tenant, strlen(s->tenant));
  char *request = hex_encode(s->create_request, s->create_request_len);
  const char *meta[][2] = {{META("id"), s->id},
                           {META("tenant"), tenant},
                           {META("created_ms"), created},
                           {META("training"), s->model->training ? "1" : "0"},
                           {META("create_request"), request}};
  if (!tenant || !request)
    st = td_error(TD_ERR_NO_MEMORY, "out of memory encoding the session's metadata");
  for (size_t i = 0; !st && i < sizeof meta / sizeof *meta; i++)
    st = td_tensor_map_set_meta(state, meta[i][0], meta[i][1]);
  free(tenant);
  free(request);
  if (st) td_tensor_map_free(state);
  return st;
}

/* Streams the payload into the file, checksumming it on the way: a save
 * needs no second copy of the model in memory. */
typedef struct payload_sink {
  td_atomic_file *file;
  uint32_t crc;
  uint64_t len;
} payload_sink;

static td_status sink_write(void *ctx, const void *data, size_t n) {
  payload_sink *p = ctx;
  p->crc = td_crc32c(p->crc, data, n);
  p->len += n;
  return td_atomic_file_write(p->file, data, n);
}

td_status session_file_write(session *s, const char *path) {
  td_tensor_map state;
  td_status st = session_state(s, &state);
  if (st) return st;
  td_atomic_file f;
  if ((st = td_atomic_file_begin(&f, path))) {
    td_tensor_map_free(&state);
    return st;
  }
  /* The header goes last, over zeros, once length and checksum are known:
   * until the rename, nobody reads the file anyway. */
  uint8_t header[SESSION_FILE_HEADER] = {0};
  payload_sink sink = {&f, 0, 0};
  st = td_atomic_file_write(&f, header, sizeof header);
  if (!st) st = td_safetensors_write_stream(&state, sink_write, &sink);
  td_tensor_map_free(&state);
  if (!st) {
    memcpy(header, SESSION_FILE_MAGIC, 8);
    put_le(header + 8, sink.len, 8);
    put_le(header + 16, sink.crc, 4);
    st = td_atomic_file_write_at(&f, 0, header, sizeof header);
  }
  if (st) {
    td_atomic_file_abort(&f);
    return st;
  }
  return td_atomic_file_commit(&f);
}

/* ---- reading ---------------------------------------------------------------- */

void session_record_free(session_record *r) {
  free(r->create_request);
  r->create_request = NULL;
  td_tensor_map_free(&r->state);
}

static td_status bad(const char *what) { return td_error(TD_ERR_FORMAT, "%s", what); }

/* The metadata into *out; the tensors are already in out->state. */
static td_status parse_metadata(session_record *out) {
  const td_tensor_map *m = &out->state;
  const char *id = td_tensor_map_get_meta(m, META("id"));
  const char *tenant = td_tensor_map_get_meta(m, META("tenant"));
  const char *created = td_tensor_map_get_meta(m, META("created_ms"));
  const char *training = td_tensor_map_get_meta(m, META("training"));
  const char *request = td_tensor_map_get_meta(m, META("create_request"));
  if (!id || !tenant || !created || !training || !request)
    return bad("metadata: a traind.session.* key is missing: not a session file");
  if (!session_id_is_valid(id, strlen(id))) return bad("metadata: traind.session.id is not 32 hex digits");
  snprintf(out->id, sizeof out->id, "%s", id);

  uint8_t *bytes;
  size_t n;
  if (hex_decode(tenant, &bytes, &n)) return bad("metadata: traind.session.tenant is not hex");
  bool fits = n < sizeof out->tenant && memchr(bytes, 0, n) == NULL;
  if (fits) memcpy(out->tenant, bytes, n + 1);
  free(bytes);
  if (!fits) return bad("metadata: traind.session.tenant is too long or has a NUL");

  char *end;
  errno = 0;
  long long ms = strtoll(created, &end, 10);
  if (errno || end == created || *end || ms < 0)
    return bad("metadata: traind.session.created_ms is not a time");
  out->created_ms = ms;
  if (strcmp(training, "0") && strcmp(training, "1"))
    return bad("metadata: traind.session.training is not 0 or 1");
  out->training = training[0] == '1';
  if (hex_decode(request, &out->create_request, &out->create_request_len))
    return bad("metadata: traind.session.create_request is not hex");
  return TD_OK;
}

td_status session_file_parse(const uint8_t *data, size_t len, session_record *out) {
  memset(out, 0, sizeof *out);
  td_tensor_map_init(&out->state);
  if (len < SESSION_FILE_HEADER) return bad("shorter than the 24-byte header");
  if (memcmp(data, SESSION_FILE_MAGIC, 8)) return bad("no TRAINDS1 magic: not a session file");
  uint64_t payload = get_le(data + 8, 8);
  if (payload != len - SESSION_FILE_HEADER)
    return td_error(TD_ERR_FORMAT, "the header says %" PRIu64 " payload bytes, the file has %zu",
                    payload, len - SESSION_FILE_HEADER);
  if (get_le(data + 20, 4) != 0) return bad("reserved header bytes are not zero");
  uint32_t want = (uint32_t)get_le(data + 16, 4);
  uint32_t got = td_crc32c(0, data + SESSION_FILE_HEADER, payload);
  if (want != got)
    return td_error(TD_ERR_FORMAT, "checksum mismatch (CRC-32C %08x in the header, %08x of the "
                    "payload): the file was damaged", want, got);
  td_status st = td_safetensors_read_buffer(data + SESSION_FILE_HEADER, payload, &out->state);
  if (!st) st = parse_metadata(out);
  if (st) session_record_free(out);
  return st;
}

/* The whole file in a new td_alloc'd buffer (charged like any tensor, so a
 * huge file meets the server's memory limit rather than the OOM killer). */
static td_status read_whole(const char *path, uint8_t **data, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return td_error(errno == ENOENT ? TD_ERR_NOT_FOUND : TD_ERR_IO, "cannot open: %s",
                    strerror(errno));
  struct stat sb;
  td_status st = TD_OK;
  uint8_t *buf = NULL;
  if (fstat(fd, &sb)) {
    st = td_error(TD_ERR_IO, "cannot stat: %s", strerror(errno));
  } else if (!S_ISREG(sb.st_mode)) {
    st = bad("not a regular file");
  } else if (!(buf = td_alloc(sb.st_size ? (size_t)sb.st_size : 1, "session file"))) {
    st = TD_ERR_NO_MEMORY;
  }
  size_t got = 0;
  while (!st && got < (size_t)sb.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) st = td_error(TD_ERR_IO, "cannot read: %s", strerror(errno));
    if (r == 0) st = bad("the file shrank while it was read");
    if (r > 0) got += (size_t)r;
  }
  close(fd);
  if (st) {
    td_free(buf);
    return st;
  }
  *data = buf;
  *len = got;
  return TD_OK;
}

td_status session_file_read(const char *path, session_record *out) {
  uint8_t *data = NULL;
  size_t len = 0;
  td_status st = read_whole(path, &data, &len);
  if (!st) {
    st = session_file_parse(data, len, out);
    td_free(data);
  }
  if (st) td_error_prefix("session file '%s': ", path);
  return st;
}
