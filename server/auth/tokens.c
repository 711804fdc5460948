/* tokens.c - the tokens file, its reload, and constant-time lookup. */
#include "auth/tokens.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct token_entry {
  char token[TOKENS_TOKEN_MAX + 1];
  size_t len;
  char tenant[TOKENS_TENANT_MAX + 1];
} token_entry;

struct tokens {
  uv_rwlock_t lock;
  char *path;
  token_entry *entries;
  int count;
};

static bool tenant_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > TOKENS_TENANT_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return false;
  return true;
}

/* Parses the whole file into a new array, or explains the first bad line. */
static int parse(const char *path, token_entry **out, int *count, char *error, size_t size) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(error, size, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  token_entry *entries = NULL;
  int n = 0, cap = 0, lineno = 0, rc = 0;
  char line[2048];
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char token[TOKENS_TOKEN_MAX + 2], tenant[TOKENS_TENANT_MAX + 2], extra[2];
    int fields = sscanf(line, "%513s %65s %1s", token, tenant, extra);
    if (fields <= 0) continue; /* blank or comment */
    if (fields != 2 || strlen(token) > TOKENS_TOKEN_MAX || !tenant_ok(tenant)) {
      snprintf(error, size,
               "%s:%d: expected 'TOKEN TENANT' (a token of at most %d characters, a tenant "
               "of 1 to %d characters from [A-Za-z0-9_.-])",
               path, lineno, TOKENS_TOKEN_MAX, TOKENS_TENANT_MAX);
      rc = -1;
      break;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      token_entry *grown = realloc(entries, (size_t)cap * sizeof *grown);
      if (!grown) {
        snprintf(error, size, "out of memory reading %s", path);
        rc = -1;
        break;
      }
      entries = grown;
    }
    token_entry *e = &entries[n++];
    memset(e, 0, sizeof *e);
    e->len = strlen(token);
    memcpy(e->token, token, e->len);
    memcpy(e->tenant, tenant, strlen(tenant) + 1);
  }
  fclose(f);
  if (rc == 0 && n == 0) {
    snprintf(error, size, "%s has no tokens: every call would be refused", path);
    rc = -1;
  }
  if (rc) {
    free(entries);
    return -1;
  }
  *out = entries;
  *count = n;
  return 0;
}

int tokens_load(const char *path, tokens **out, char *error, size_t size) {
  *out = NULL;
  tokens *t = calloc(1, sizeof *t);
  if (!t || !(t->path = strdup(path))) {
    free(t);
    snprintf(error, size, "out of memory");
    return -1;
  }
  if (parse(path, &t->entries, &t->count, error, size)) {
    free(t->path);
    free(t);
    return -1;
  }
  uv_rwlock_init(&t->lock);
  *out = t;
  return 0;
}

int tokens_reload(tokens *t, char *error, size_t size) {
  token_entry *entries;
  int count;
  if (parse(t->path, &entries, &count, error, size)) return -1;
  uv_rwlock_wrlock(&t->lock);
  token_entry *old = t->entries;
  t->entries = entries;
  t->count = count;
  uv_rwlock_wrunlock(&t->lock);
  memset(old, 0, sizeof *old); /* do not leave a token lying in freed memory */
  free(old);
  return 0;
}

void tokens_free(tokens *t) {
  if (!t) return;
  memset(t->entries, 0, (size_t)t->count * sizeof *t->entries);
  free(t->entries);
  free(t->path);
  uv_rwlock_destroy(&t->lock);
  free(t);
}

int tokens_count(tokens *t) {
  uv_rwlock_rdlock(&t->lock);
  int n = t->count;
  uv_rwlock_rdunlock(&t->lock);
  return n;
}

/* Compares a whole candidate against a whole token without stopping early;
 * the lengths differing is folded into the result, not returned first. */
static int differs(const char *candidate, size_t clen, const token_entry *e) {
  unsigned char diff = (unsigned char)(clen != e->len);
  for (size_t i = 0; i < TOKENS_TOKEN_MAX; i++) {
    unsigned char a = i < clen ? (unsigned char)candidate[i] : 0;
    diff |= (unsigned char)(a ^ (unsigned char)e->token[i]);
  }
  return diff != 0;
}

bool tokens_authenticate(tokens *t, const char *authorization, char *tenant) {
  static const char scheme[] = "Bearer ";
  if (!authorization || strncmp(authorization, scheme, sizeof scheme - 1)) return false;
  const char *candidate = authorization + sizeof scheme - 1;
  size_t clen = strnlen(candidate, TOKENS_TOKEN_MAX + 1);
  if (clen == 0 || clen > TOKENS_TOKEN_MAX) return false;
  int found = -1;
  uv_rwlock_rdlock(&t->lock);
  for (int i = 0; i < t->count; i++) {
    int match = !differs(candidate, clen, &t->entries[i]);
    found = match && found < 0 ? i : found; /* no branch on the secret's bytes */
  }
  if (found >= 0) memcpy(tenant, t->entries[found].tenant, TOKENS_TENANT_MAX + 1);
  uv_rwlock_rdunlock(&t->lock);
  return found >= 0;
}
