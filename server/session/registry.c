/* registry.c - open sessions by id: a small locked list, oldest first.
 *
 * max_sessions is small (tens to thousands) and every operation but lookup
 * is rare, so a linear scan over an array is simpler than a hash table and
 * fast enough: a lookup compares 33-byte strings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "session/session.h"

struct registry {
  uv_mutex_t lock;
  session **items;
  int count, max;
};

int registry_create(int max_sessions, registry **out) {
  registry *r = calloc(1, sizeof *r);
  if (!r) return -1;
  r->items = calloc((size_t)max_sessions, sizeof *r->items);
  if (!r->items) {
    free(r);
    return -1;
  }
  r->max = max_sessions;
  uv_mutex_init(&r->lock);
  *out = r;
  return 0;
}

void registry_destroy(registry *r) {
  if (!r) return;
  for (int i = 0; i < r->count; i++) session_release(r->items[i]);
  uv_mutex_destroy(&r->lock);
  free(r->items);
  free(r);
}

/* 128 bits from the kernel's CSPRNG: ids cannot be guessed from others. */
static int random_id(char out[SESSION_ID_LEN + 1]) {
  unsigned char bytes[SESSION_ID_LEN / 2];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += (size_t)n;
  }
  for (size_t i = 0; i < sizeof bytes; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
  return 0;
}

bool session_id_is_valid(const char *s, size_t n) {
  if (n != SESSION_ID_LEN) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static int find(registry *r, const char *id) {
  for (int i = 0; i < r->count; i++)
    if (!strcmp(r->items[i]->id, id)) return i;
  return -1;
}

/* -1 also when the session is another tenant's. */
static int find_owned(registry *r, const char *id, const char *tenant) {
  int i = find(r, id);
  return i >= 0 && !strcmp(r->items[i]->tenant, tenant) ? i : -1;
}

session *registry_get_owned(registry *r, const char *id, const char *tenant) {
  uv_mutex_lock(&r->lock);
  int i = find_owned(r, id, tenant);
  session *s = i >= 0 ? r->items[i] : NULL;
  if (s) session_retain(s);
  uv_mutex_unlock(&r->lock);
  return s;
}

registry_refusal registry_add(registry *r, session *s, const registry_quota *quota) {
  uv_mutex_lock(&r->lock);
  int sessions = 0;
  int64_t parameters = s->num_parameters;
  for (int i = 0; i < r->count; i++) {
    if (strcmp(r->items[i]->tenant, s->tenant)) continue;
    sessions++;
    parameters += r->items[i]->num_parameters;
  }
  registry_refusal rc = REGISTRY_ADDED;
  if (r->count >= r->max)
    rc = REGISTRY_FULL;
  else if (quota->max_sessions > 0 && sessions >= quota->max_sessions)
    rc = REGISTRY_TENANT_SESSIONS;
  else if (quota->max_parameters > 0 && parameters > quota->max_parameters)
    rc = REGISTRY_TENANT_PARAMETERS;
  while (rc == REGISTRY_ADDED) {
    if (random_id(s->id)) {
      rc = REGISTRY_NO_ID;
    } else if (find(r, s->id) < 0) {
      session_retain(s);
      r->items[r->count++] = s;
      break;
    }
  }
  uv_mutex_unlock(&r->lock);
  return rc;
}

registry_refusal registry_restore(registry *r, session *s) {
  uv_mutex_lock(&r->lock);
  registry_refusal rc = REGISTRY_FULL;
  if (r->count < r->max && find(r, s->id) < 0) {
    session_retain(s);
    r->items[r->count++] = s;
    rc = REGISTRY_ADDED;
  }
  uv_mutex_unlock(&r->lock);
  return rc;
}

session *registry_get(registry *r, const char *id) {
  uv_mutex_lock(&r->lock);
  int i = find(r, id);
  session *s = i >= 0 ? r->items[i] : NULL;
  if (s) session_retain(s);
  uv_mutex_unlock(&r->lock);
  return s;
}

static session *take(registry *r, int i) {
  session *s = r->items[i];
  memmove(&r->items[i], &r->items[i + 1], (size_t)(r->count - i - 1) * sizeof *r->items);
  r->count--;
  return s;
}

session *registry_remove_owned(registry *r, const char *id, const char *tenant) {
  uv_mutex_lock(&r->lock);
  int i = find_owned(r, id, tenant);
  session *s = i >= 0 ? take(r, i) : NULL;
  uv_mutex_unlock(&r->lock);
  return s;
}

int registry_list(registry *r, session ***out, int *n) {
  uv_mutex_lock(&r->lock);
  session **list = malloc((size_t)(r->count ? r->count : 1) * sizeof *list);
  if (!list) {
    uv_mutex_unlock(&r->lock);
    return -1;
  }
  for (int i = 0; i < r->count; i++) {
    list[i] = r->items[i];
    session_retain(list[i]);
  }
  *n = r->count;
  uv_mutex_unlock(&r->lock);
  *out = list;
  return 0;
}

int registry_count(registry *r) {
  uv_mutex_lock(&r->lock);
  int n = r->count;
  uv_mutex_unlock(&r->lock);
  return n;
}

void registry_expire(registry *r, int64_t cutoff_ms, void (*expired)(session *s, void *ctx),
                     void *ctx) {
  for (;;) {
    session *victim = NULL;
    uv_mutex_lock(&r->lock);
    for (int i = 0; i < r->count && !victim; i++) {
      session *s = r->items[i];
      uv_mutex_lock(&s->lock);
      bool idle = s->pending == 0 && s->summary.last_used_ms < cutoff_ms;
      uv_mutex_unlock(&s->lock);
      if (idle) victim = take(r, i);
    }
    uv_mutex_unlock(&r->lock);
    if (!victim) return;
    expired(victim, ctx);
  }
}
