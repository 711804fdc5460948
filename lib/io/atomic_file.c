/* atomic_file.c - temp file, fsync, rename, directory fsync (see atomic_file.h). */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"

static td_status io_error(const char *what, const char *path, int err) {
  return td_error(TD_ERR_IO, "%s '%s': %s", what, path, strerror(err));
}

static char *copy_string(const char *s, const char *what) {
  size_t n = strlen(s);
  char *out = td_alloc(n + 1, what);
  if (out) memcpy(out, s, n + 1);
  return out;
}

/* The directory holding path ("." for a bare name), in a new td_alloc'd string. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
  char *dir = td_alloc(n + 1, "directory name");
  if (!dir) return NULL;
  memcpy(dir, !slash ? "." : path, n);
  dir[n] = '\0';
  return dir;
}

td_status td_sync_dir(const char *dir) {
  td_status st = TD_OK;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd)) st = io_error("cannot sync the directory", dir, errno);
  if (fd >= 0) close(fd);
  return st;
}

td_status td_sync_parent_dir(const char *path) {
  char *dir = dir_of(path);
  if (!dir) return TD_ERR_NO_MEMORY;
  td_status st = td_sync_dir(dir);
  td_free(dir);
  return st;
}

static void clear(td_atomic_file *f) {
  td_free(f->path);
  td_free(f->tmp);
  f->path = f->tmp = NULL;
  f->fd = -1;
}

/* O_EXCL with a name unique to this process and call means two writers
 * never share a temporary file; mode 0666 lets the umask give the file the
 * usual permissions. */
td_status td_atomic_file_begin(td_atomic_file *f, const char *path) {
  static atomic_uint counter;
  f->fd = -1;
  f->tmp = NULL;
  f->path = copy_string(path, "file name");
  size_t size = strlen(path) + sizeof TD_ATOMIC_TMP_MARK + 32;
  if (f->path) f->tmp = td_alloc(size, "temporary file name");
  if (!f->tmp) {
    clear(f);
    return TD_ERR_NO_MEMORY;
  }
  for (int attempt = 0; attempt < 100; attempt++) {
    snprintf(f->tmp, size, "%s" TD_ATOMIC_TMP_MARK "%ld-%u", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd >= 0) return TD_OK;
    if (errno != EEXIST) break;
  }
  td_status st = io_error("cannot create temporary file", f->tmp, errno);
  clear(f);
  return st;
}

td_status td_atomic_file_write(td_atomic_file *f, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(f->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return io_error("cannot write", f->tmp, w < 0 ? errno : EIO);
    p += w;
    n -= (size_t)w;
  }
  return TD_OK;
}

td_status td_atomic_file_write_at(td_atomic_file *f, size_t offset, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = pwrite(f->fd, p, n, (off_t)offset);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return io_error("cannot write", f->tmp, w < 0 ? errno : EIO);
    p += w;
    n -= (size_t)w;
    offset += (size_t)w;
  }
  return TD_OK;
}

void td_atomic_file_abort(td_atomic_file *f) {
  if (f->fd >= 0) close(f->fd);
  if (f->tmp) unlink(f->tmp);
  clear(f);
}

td_status td_atomic_file_commit(td_atomic_file *f) {
  td_status st = TD_OK;
  if (fsync(f->fd)) st = io_error("cannot sync", f->tmp, errno);
  int fd = f->fd;
  f->fd = -1;
  if (close(fd) && !st) st = io_error("cannot close", f->tmp, errno);
  if (!st && rename(f->tmp, f->path))
    st = io_error("cannot rename the temporary file onto", f->path, errno);
  if (st) {
    td_atomic_file_abort(f);
    return st;
  }
  /* The new file is in place; only the durability of its name is left. */
  st = td_sync_parent_dir(f->path);
  clear(f);
  return st;
}
