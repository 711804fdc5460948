/* alloc.c - aligned, checked allocation. */
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

void *td_alloc(size_t size, const char *what) {
  void *p = NULL;
  /* posix_memalign with size 0 may return NULL legitimately; ask for one
   * byte so that "empty tensor" and "out of memory" stay distinguishable. */
  if (posix_memalign(&p, TD_ALIGNMENT, size ? size : 1) != 0) {
    td_error(TD_ERR_NO_MEMORY, "out of memory allocating %zu bytes for %s", size,
             what ? what : "buffer");
    return NULL;
  }
  return p;
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

void td_free(void *p) { free(p); }

int td_mul_overflow_size(size_t a, size_t b, size_t *out) {
  return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
