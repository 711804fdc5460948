/* alloc.c - aligned, checked, accounted allocation. */
#include "core/alloc.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Before every block, one alignment unit: who pays for it and how much. */
typedef struct block_header {
  td_mem_account *account;
  size_t size;
} block_header;
_Static_assert(sizeof(block_header) <= TD_ALIGNMENT, "the header fits one alignment unit");

static atomic_size_t in_use;
static atomic_size_t limit;
static _Thread_local td_mem_account *current;

td_mem_account *td_mem_set_account(td_mem_account *account) {
  td_mem_account *previous = current;
  current = account;
  return previous;
}

void td_mem_set_limit(size_t bytes) { atomic_store(&limit, bytes); }
size_t td_mem_limit(void) { return atomic_load(&limit); }
size_t td_mem_in_use(void) { return atomic_load(&in_use); }

void *td_alloc(size_t size, const char *what) {
  size_t charged = size + TD_ALIGNMENT;
  if (charged < size) {
    td_error(TD_ERR_NO_MEMORY, "allocation of %zu bytes for %s overflows", size,
             what ? what : "buffer");
    return NULL;
  }
  /* Reserve first, so that threads racing for the last bytes cannot both
   * get them. */
  size_t cap = atomic_load(&limit);
  size_t before = atomic_fetch_add(&in_use, charged);
  if (cap && before + charged > cap) {
    atomic_fetch_sub(&in_use, charged);
    td_error(TD_ERR_NO_MEMORY,
             "memory limit: %zu bytes for %s would take traind past its limit of %zu bytes "
             "(%zu in use)",
             size, what ? what : "buffer", cap, before);
    return NULL;
  }
  void *p = NULL;
  if (posix_memalign(&p, TD_ALIGNMENT, charged) != 0) {
    atomic_fetch_sub(&in_use, charged);
    td_error(TD_ERR_NO_MEMORY, "out of memory allocating %zu bytes for %s", size,
             what ? what : "buffer");
    return NULL;
  }
  block_header *h = p;
  h->account = current;
  h->size = charged;
  if (current) atomic_fetch_add(&current->bytes, (long long)charged);
  return (char *)p + TD_ALIGNMENT;
}

void *td_calloc(size_t n, size_t size, const char *what) {
  size_t total;
  if (td_mul_overflow_size(n, size, &total)) {
    td_error(TD_ERR_NO_MEMORY, "allocation of %zu x %zu bytes for %s overflows", n, size,
             what ? what : "buffer");
    return NULL;
  }
  void *p = td_alloc(total, what);
  if (p) memset(p, 0, total);
  return p;
}

void td_free(void *p) {
  if (!p) return;
  block_header *h = (block_header *)((char *)p - TD_ALIGNMENT);
  if (h->account) atomic_fetch_sub(&h->account->bytes, (long long)h->size);
  atomic_fetch_sub(&in_use, h->size);
  free(h);
}

void td_mem_keep_heap(void) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int td_mul_overflow_size(size_t a, size_t b, size_t *out) {
  return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
