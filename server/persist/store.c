/* store.c - the sessions directory (see store.h). */
#include "persist/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "util/log.h"

#define SUFFIX ".session"

struct session_store {
  char dir[1100];
};

const char *store_dir(const session_store *st) { return st->dir; }

/* The file of session `id` into out; -1 unless id is a server id. */
static int path_of(const session_store *st, const char *id, char *out, size_t size) {
  if (!session_id_is_valid(id, strlen(id))) return -1;
  int n = snprintf(out, size, "%s/%s" SUFFIX, st->dir, id);
  return n > 0 && (size_t)n < size ? 0 : -1;
}

/* "<id>.session" exactly: what store_scan restores. */
static bool is_session_file(const char *name) {
  size_t n = strlen(name);
  return n == SESSION_ID_LEN + strlen(SUFFIX) && !strcmp(name + SESSION_ID_LEN, SUFFIX) &&
         session_id_is_valid(name, SESSION_ID_LEN);
}

/* "<id>.session.tmp-*": what a crash during a save leaves. */
static bool is_leftover_temp(const char *name) {
  return strlen(name) > SESSION_ID_LEN + strlen(SUFFIX) && session_id_is_valid(name, SESSION_ID_LEN) &&
         !strncmp(name + SESSION_ID_LEN, SUFFIX TD_ATOMIC_TMP_MARK,
                  strlen(SUFFIX TD_ATOMIC_TMP_MARK));
}

static td_status remove_leftovers(session_store *st) {
  DIR *d = opendir(st->dir);
  if (!d) return td_error(TD_ERR_IO, "cannot read '%s': %s", st->dir, strerror(errno));
  int removed = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_leftover_temp(e->d_name)) continue;
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", st->dir, e->d_name);
    if (unlink(path) == 0) {
      removed++;
      log_info("removed %s, a save that a crash interrupted", path);
    } else {
      log_warn("cannot remove %s, a save that a crash interrupted: %s", path, strerror(errno));
    }
  }
  closedir(d);
  if (removed && td_sync_dir(st->dir)) log_warn("%s", td_error_message());
  return TD_OK;
}

td_status store_open(const char *data_dir, session_store **out) {
  *out = NULL;
  session_store *st = calloc(1, sizeof *st);
  if (!st) return td_error(TD_ERR_NO_MEMORY, "out of memory");
  int n = snprintf(st->dir, sizeof st->dir, "%s/sessions", data_dir);
  if (n < 0 || (size_t)n >= sizeof st->dir) {
    free(st);
    return td_error(TD_ERR_INVALID_ARGUMENT, "--data-dir is too long");
  }
  struct stat sb;
  if (mkdir(st->dir, 0750) && errno != EEXIST) {
    td_status e = td_error(TD_ERR_IO, "cannot create '%s': %s", st->dir, strerror(errno));
    free(st);
    return e;
  }
  if (stat(st->dir, &sb) || !S_ISDIR(sb.st_mode)) {
    free(st);
    return td_error(TD_ERR_IO, "'%s/sessions' is not a directory", data_dir);
  }
  td_status e = remove_leftovers(st);
  if (e) {
    free(st);
    return e;
  }
  *out = st;
  return TD_OK;
}

void store_close(session_store *st) { free(st); }

td_status store_save(session_store *st, session *s) {
  char path[1400];
  if (path_of(st, s->id, path, sizeof path))
    return td_error(TD_ERR_INTERNAL, "session id '%s' is not a server id", s->id);
  return session_file_write(s, path);
}

td_status store_remove(session_store *st, const char *id) {
  char path[1400];
  if (path_of(st, id, path, sizeof path))
    return td_error(TD_ERR_INTERNAL, "session id '%s' is not a server id", id);
  if (unlink(path) && errno != ENOENT)
    return td_error(TD_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
  return td_sync_parent_dir(path);
}

/* A file that does not verify goes aside, so that it is neither restored
 * nor overwritten, and a person can look at it. */
static void set_aside(const char *path) {
  char aside[1500];
  snprintf(aside, sizeof aside, "%s.corrupt", path);
  if (rename(path, aside))
    log_error("cannot rename %s aside: %s", path, strerror(errno));
  else
    log_error("renamed it to %s; the session is not restored", aside);
}

int store_scan(session_store *st, void (*fn)(session_record *rec, void *ctx), void *ctx) {
  DIR *d = opendir(st->dir);
  if (!d) {
    log_error("cannot read %s: %s; no session restored", st->dir, strerror(errno));
    return 1;
  }
  int skipped = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_session_file(e->d_name)) continue;
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", st->dir, e->d_name);
    session_record rec;
    td_status err = session_file_read(path, &rec);
    if (!err && strncmp(rec.id, e->d_name, SESSION_ID_LEN)) {
      session_record_free(&rec);
      err = td_error(TD_ERR_FORMAT, "session file '%s': it holds session %.32s", path, rec.id);
    }
    if (err) {
      skipped++;
      log_error("%s", td_error_message());
      if (err == TD_ERR_FORMAT) set_aside(path);
      continue;
    }
    fn(&rec, ctx);
  }
  closedir(d);
  return skipped;
}
