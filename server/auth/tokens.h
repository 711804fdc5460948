/* tokens.h - bearer tokens and the tenants they stand for.
 *
 * With --tokens-file, every Trainer call must carry the metadata
 * `authorization: Bearer TOKEN`, and the token names its tenant. The file
 * has one `TOKEN TENANT` pair a line ('#' starts a comment; blank lines are
 * skipped); SIGHUP reloads it, and a file that does not parse leaves the
 * tokens as they were.
 *
 * Tokens are compared in constant time (every known token is compared in
 * full, whichever matches), so response timing does not reveal how much of
 * a guess was right. Tokens never appear in logs or error messages.
 *
 * Thread-safe: lookups (any thread) and reloads (the loop) share a lock.
 */
#ifndef TRAIND_AUTH_TOKENS_H
#define TRAIND_AUTH_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#define TOKENS_TENANT_MAX 64 /* characters of a tenant name: [A-Za-z0-9_.-] */
#define TOKENS_TOKEN_MAX 512

typedef struct tokens tokens;

/* Reads `path`. On failure *out is NULL and `error` (size bytes) says which
 * line is wrong and why. */
int tokens_load(const char *path, tokens **out, char *error, size_t size);
/* Re-reads the file it was loaded from; on failure keeps the old table. */
int tokens_reload(tokens *t, char *error, size_t size);
void tokens_free(tokens *t);
int tokens_count(tokens *t);

/* The tenant of `authorization` (the whole header value, "Bearer TOKEN"),
 * copied into tenant[TOKENS_TENANT_MAX + 1]; false if it is missing,
 * malformed or unknown. */
bool tokens_authenticate(tokens *t, const char *authorization, char *tenant);

#endif
