/* libtraind-client: checkpoint download (StateDict stream) and upload (LoadStateDict). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>

#include "client_internal.h"

#define CHUNK_SIZE (1u << 20) /* the API's chunk limit, both directions */

/* ---------------------------------------------------------------- download */

/* Where downloaded bytes go. `total` is the server's announced size (0 if none), given
 * before the first bytes. */
typedef struct sink {
  traind_status (*begin)(struct sink *s, uint64_t total);
  traind_status (*write)(struct sink *s, const uint8_t *data, size_t len);
} sink;

static traind_status download(traind_client *c, const char *session_id, bool include_optimizer,
                              sink *out, size_t *received) {
  *received = 0;
  Traind__V1__StateDictRequest req = TRAIND__V1__STATE_DICT_REQUEST__INIT;
  req.session_id = (char *)session_id;
  req.has_include_optimizer = true;
  req.include_optimizer = include_optimizer;
  tc_reader r;
  traind_status st = tc_reader_start(c, &r, "/traind.v1.Trainer/StateDict", &req.base);
  if (st.code != TRAIND_OK) {
    tc_reader_finish(&r, true);
    return st;
  }
  uint64_t total = 0;
  bool first = true;
  for (;;) {
    grpc_byte_buffer *bb;
    tc_reader_next(&r, &bb);
    if (!bb) break;
    Traind__V1__StateDictChunk *chunk = NULL;
    st = tc_unpack(bb, &traind__v1__state_dict_chunk__descriptor, (ProtobufCMessage **)&chunk);
    grpc_byte_buffer_destroy(bb);
    if (st.code == TRAIND_OK && first) {
      total = chunk->has_total_size ? chunk->total_size : 0;
      st = out->begin(out, total);
      first = false;
    }
    if (st.code == TRAIND_OK && chunk->data.len) {
      st = out->write(out, chunk->data.data, chunk->data.len);
      *received += chunk->data.len;
    }
    traind_message_free(chunk);
    if (st.code != TRAIND_OK) {
      traind_status ignored = tc_reader_finish(&r, true);
      traind_status_clear(&ignored);
      return st;
    }
  }
  st = tc_reader_finish(&r, false);
  if (st.code != TRAIND_OK) return st;
  if (first) {
    st = out->begin(out, 0); /* an empty stream: an empty file */
    if (st.code != TRAIND_OK) return st;
  }
  if (total && total != *received)
    return tc_error(TRAIND_DATA_LOSS,
                    "StateDict: received %zu bytes but the server announced %llu", *received,
                    (unsigned long long)total);
  return tc_ok();
}

typedef struct buffer_sink {
  sink base;
  uint8_t *data;
  size_t len, cap;
} buffer_sink;

static traind_status buffer_reserve(buffer_sink *b, size_t cap) {
  if (cap <= b->cap) return tc_ok();
  uint8_t *p = realloc(b->data, cap ? cap : 1);
  if (!p)
    return tc_error(TRAIND_RESOURCE_EXHAUSTED, "StateDict: out of memory for %zu bytes", cap);
  b->data = p;
  b->cap = cap;
  return tc_ok();
}

static traind_status buffer_begin(sink *s, uint64_t total) {
  buffer_sink *b = (buffer_sink *)s;
  /* The announced size is a hint: it is checked against what arrives, not trusted. */
  if (total > (uint64_t)SIZE_MAX / 2)
    return tc_error(TRAIND_DATA_LOSS, "StateDict: announced size %llu is too large",
                    (unsigned long long)total);
  return buffer_reserve(b, (size_t)total);
}

static traind_status buffer_write(sink *s, const uint8_t *data, size_t len) {
  buffer_sink *b = (buffer_sink *)s;
  if (b->len + len > b->cap) {
    traind_status st = buffer_reserve(b, b->len + len > 2 * b->cap ? b->len + len : 2 * b->cap);
    if (st.code != TRAIND_OK) return st;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return tc_ok();
}

traind_status traind_state_dict_to_buffer(traind_client *c, const char *session_id,
                                          bool include_optimizer, uint8_t **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  if (!c || !session_id || !data || !len)
    return tc_error(TRAIND_INVALID_ARGUMENT, "traind_state_dict_to_buffer: NULL argument");
  buffer_sink b = {{buffer_begin, buffer_write}, NULL, 0, 0};
  size_t n;
  traind_status st = download(c, session_id, include_optimizer, &b.base, &n);
  if (st.code == TRAIND_OK) st = buffer_reserve(&b, 1); /* non-NULL even when empty */
  if (st.code != TRAIND_OK) {
    free(b.data);
    return st;
  }
  *data = b.data;
  *len = b.len;
  return tc_ok();
}

typedef struct file_sink {
  sink base;
  int fd;
  const char *tmp_path;
} file_sink;

static traind_status file_begin(sink *s, uint64_t total) {
  (void)s;
  (void)total;
  return tc_ok();
}

static traind_status file_write(sink *s, const uint8_t *data, size_t len) {
  file_sink *f = (file_sink *)s;
  while (len) {
    ssize_t n = write(f->fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return tc_errno(errno, "write %s", f->tmp_path);
    data += n;
    len -= (size_t)n;
  }
  return tc_ok();
}

/* fsync of the directory holding path, so that the rename itself is durable. */
static traind_status sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return tc_error(TRAIND_RESOURCE_EXHAUSTED, "out of memory");
  traind_status st = tc_ok();
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) st = tc_errno(errno, "fsync directory %s", dir);
  if (fd >= 0) close(fd);
  free(dir);
  return st;
}

traind_status traind_state_dict_to_file(traind_client *c, const char *session_id,
                                        bool include_optimizer, const char *path,
                                        size_t *len) {
  if (len) *len = 0;
  if (!c || !session_id || !path)
    return tc_error(TRAIND_INVALID_ARGUMENT, "traind_state_dict_to_file: NULL argument");
  size_t plen = strlen(path);
  char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
  if (!tmp) return tc_error(TRAIND_RESOURCE_EXHAUSTED, "out of memory");
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
  int fd = mkstemp(tmp);
  if (fd < 0) {
    traind_status st = tc_errno(errno, "create %s", tmp);
    free(tmp);
    return st;
  }
  fchmod(fd, 0644); /* mkstemp's 0600 would hide a checkpoint from its readers */
  file_sink f = {{file_begin, file_write}, fd, tmp};
  size_t n = 0;
  traind_status st = download(c, session_id, include_optimizer, &f.base, &n);
  if (st.code == TRAIND_OK && fsync(fd) != 0) st = tc_errno(errno, "fsync %s", tmp);
  if (close(fd) != 0 && st.code == TRAIND_OK) st = tc_errno(errno, "close %s", tmp);
  if (st.code == TRAIND_OK && rename(tmp, path) != 0)
    st = tc_errno(errno, "rename %s to %s", tmp, path);
  if (st.code != TRAIND_OK) {
    unlink(tmp);
    free(tmp);
    return st;
  }
  free(tmp);
  st = sync_parent_dir(path);
  if (st.code == TRAIND_OK && len) *len = n;
  return st;
}

/* ---------------------------------------------------------------- upload */

/* Where uploaded bytes come from: next() sets *data and *len to the next piece (len 0 at the
 * end); pieces are at most CHUNK_SIZE bytes and valid until the next call. */
typedef struct source {
  traind_status (*next)(struct source *s, const uint8_t **data, size_t *len);
} source;

static traind_status upload(traind_client *c, const char *session_id, bool strict, source *src,
                            Traind__V1__LoadStateDictResponse **out) {
  tc_writer w;
  traind_status st = tc_writer_start(c, &w, "/traind.v1.Trainer/LoadStateDict");
  if (st.code != TRAIND_OK) {
    tc_writer_finish(&w, true, NULL, NULL);
    return st;
  }
  Traind__V1__LoadStateDictRequest req = TRAIND__V1__LOAD_STATE_DICT_REQUEST__INIT;
  req.session_id = (char *)session_id; /* the ids go in the first message only */
  req.has_strict = true;
  req.strict = strict;
  req.has_data = true;
  bool first = true;
  for (;;) {
    const uint8_t *data;
    size_t len;
    st = src->next(src, &data, &len);
    if (st.code != TRAIND_OK) {
      traind_status ignored = tc_writer_finish(&w, true, NULL, NULL);
      traind_status_clear(&ignored);
      return st;
    }
    if (len == 0 && !first) break;
    req.data.data = (uint8_t *)data;
    req.data.len = len;
    if (!tc_writer_write(&w, &req.base)) break; /* the server answered early: see finish */
    if (len == 0) break;
    if (first) {
      req.session_id = NULL;
      req.has_strict = false;
      first = false;
    }
  }
  return tc_writer_finish(&w, false, &traind__v1__load_state_dict_response__descriptor,
                          (ProtobufCMessage **)out);
}

typedef struct buffer_source {
  source base;
  const uint8_t *data;
  size_t len, at;
} buffer_source;

static traind_status buffer_next(source *s, const uint8_t **data, size_t *len) {
  buffer_source *b = (buffer_source *)s;
  size_t n = b->len - b->at < CHUNK_SIZE ? b->len - b->at : CHUNK_SIZE;
  *data = b->data + b->at;
  *len = n;
  b->at += n;
  return tc_ok();
}

traind_status traind_load_state_dict_from_buffer(traind_client *c, const char *session_id,
                                                 bool strict, const uint8_t *data,
                                                 size_t len,
                                                 Traind__V1__LoadStateDictResponse **out) {
  if (out) *out = NULL;
  if (!c || !session_id || (!data && len))
    return tc_error(TRAIND_INVALID_ARGUMENT, "traind_load_state_dict_from_buffer: NULL argument");
  buffer_source b = {{buffer_next}, data, len, 0};
  return upload(c, session_id, strict, &b.base, out);
}

typedef struct file_source {
  source base;
  int fd;
  const char *path;
  uint8_t *buf; /* CHUNK_SIZE bytes */
} file_source;

static traind_status file_next(source *s, const uint8_t **data, size_t *len) {
  file_source *f = (file_source *)s;
  size_t n = 0;
  while (n < CHUNK_SIZE) { /* fill whole chunks: fewer, larger messages */
    ssize_t r = read(f->fd, f->buf + n, CHUNK_SIZE - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return tc_errno(errno, "read %s", f->path);
    if (r == 0) break;
    n += (size_t)r;
  }
  *data = f->buf;
  *len = n;
  return tc_ok();
}

traind_status traind_load_state_dict_from_file(traind_client *c, const char *session_id,
                                               bool strict, const char *path,
                                               Traind__V1__LoadStateDictResponse **out) {
  if (out) *out = NULL;
  if (!c || !session_id || !path)
    return tc_error(TRAIND_INVALID_ARGUMENT, "traind_load_state_dict_from_file: NULL argument");
  file_source f = {{file_next}, -1, path, NULL};
  f.fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return tc_errno(errno, "open %s", path);
  f.buf = malloc(CHUNK_SIZE);
  traind_status st = f.buf ? upload(c, session_id, strict, &f.base, out)
                           : tc_error(TRAIND_RESOURCE_EXHAUSTED, "out of memory");
  free(f.buf);
  close(f.fd);
  return st;
}
