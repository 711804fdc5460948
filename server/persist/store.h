/* store.h - the sessions directory: <data-dir>/sessions/<id>.session.
 *
 * Paths are built only from session ids the server generated (32 lowercase
 * hex digits, checked again here), never from anything a client wrote
 * (session names, tenants): no request can name a file.
 *
 * Files are replaced atomically (io/atomic_file.h), so after any crash each
 * session has its last completed save or, if it never completed one, no
 * file. What a crash can leave is a temporary file ("<id>.session.tmp-*");
 * store_open deletes those. A file that fails its checksum is renamed to
 * "<id>.session.corrupt" (kept for a person to look at, never restored).
 *
 * Thread-safety: calls for different ids may run at once; calls for one id
 * must not (the session's serial queue sees to that).
 */
#ifndef TRAIND_PERSIST_STORE_H
#define TRAIND_PERSIST_STORE_H

#include "persist/session_file.h"

typedef struct session_store session_store;

/* Creates <data_dir>/sessions if needed and removes leftover temporaries.
 * TD_ERR_IO (message names the path) if the directory cannot be made or
 * read. */
td_status store_open(const char *data_dir, session_store **out);
void store_close(session_store *st);

/* Writes s's state as its file (session_file_write). */
td_status store_save(session_store *st, session *s);

/* Deletes the file of session `id` (absent is fine) and syncs the
 * directory, so the deletion survives a crash. */
td_status store_remove(session_store *st, const char *id);

/* Reads every session file: fn(record, ctx) gets each valid one (and owns
 * it: session_record_free). Files that do not verify are logged, renamed
 * aside and skipped. Returns the number of files skipped. */
int store_scan(session_store *st, void (*fn)(session_record *rec, void *ctx), void *ctx);

/* "<data-dir>/sessions", for messages. */
const char *store_dir(const session_store *st);

#endif
