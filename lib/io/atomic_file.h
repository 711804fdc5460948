/* atomic_file.h - replace a file so that a crash leaves the old one or the new one.
 *
 * The protocol every durable write here follows:
 *
 *   begin   create "<path>.tmp-<pid>-<n>" next to path (O_EXCL: never shared)
 *   write   append bytes to it, any number of times
 *   commit  fsync the file, close it, rename it onto path, fsync the directory
 *
 * rename(2) within one directory is atomic, so readers (and a daemon that
 * restarts after kill -9 or a power cut) see either the previous file or the
 * complete new one, never a mix; the first fsync makes sure the new name
 * cannot point at data still in the page cache, the second that the rename
 * itself survives. A failure anywhere (ENOSPC, EROFS, EIO) removes the
 * temporary file and leaves path as it was. A crash before commit can leave
 * the temporary file behind; its name says what it is (TD_ATOMIC_TMP_MARK),
 * so whoever owns the directory may delete such files at start.
 *
 * Errors are TD_ERR_IO with a message naming the step, the path and the
 * system error ("cannot write '/d/x.tmp-1-0': No space left on device").
 */
#ifndef TD_IO_ATOMIC_FILE_H
#define TD_IO_ATOMIC_FILE_H

#include <stddef.h>

#include "core/status.h"

/* Every temporary file's name is "<path>" TD_ATOMIC_TMP_MARK "<pid>-<n>". */
#define TD_ATOMIC_TMP_MARK ".tmp-"

typedef struct td_atomic_file {
  char *path; /* td_alloc'd copies, owned until commit or abort */
  char *tmp;
  int fd;
} td_atomic_file;

/* Creates the temporary file for path. On error *f is left empty (abort is
 * then a no-op). */
td_status td_atomic_file_begin(td_atomic_file *f, const char *path);
/* Appends n bytes. */
td_status td_atomic_file_write(td_atomic_file *f, const void *data, size_t n);
/* Overwrites n bytes at offset (within what was written: a header whose
 * contents are known only at the end, such as a checksum). */
td_status td_atomic_file_write_at(td_atomic_file *f, size_t offset, const void *data, size_t n);
/* Makes the file durable under its name and frees f. On error the
 * temporary file is removed (the previous file at path stays) and f freed. */
td_status td_atomic_file_commit(td_atomic_file *f);
/* Removes the temporary file and frees f (after a write failed, or to give
 * up). Safe on an empty or already finished f. */
void td_atomic_file_abort(td_atomic_file *f);

/* fsync of a directory, so that renames and unlinks in it are durable. */
td_status td_sync_dir(const char *dir);
/* The same for the directory holding path. */
td_status td_sync_parent_dir(const char *path);

#endif
