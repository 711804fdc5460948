/* internal.h - helpers shared by the spec translators (not part of spec.h).
 *
 * spec_path: the field path an error names ("model.sequential.modules[2]"),
 * built while walking a message tree. Pushing returns the length to pop back
 * to, so a walk restores its path on the way out. Paths that would not fit
 * the buffer are cut with "..." (a tree deep enough for that is refused
 * anyway).
 *
 * spec_count: overflow-safe element counts that saturate at INT64_MAX, so a
 * hostile spec ([2^40, 2^40]) reports "more than ..." instead of wrapping.
 */
#ifndef TRAIND_SPEC_INTERNAL_H
#define TRAIND_SPEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "protobuf-c/protobuf-c.h"

/* Enough for TD_MODULE_MAX_DEPTH levels of ".sequential.modules[4294967295]". */
#define SPEC_PATH_MAX 4096

typedef struct spec_path {
  char buf[SPEC_PATH_MAX];
  size_t len;
} spec_path;

void spec_path_init(spec_path *p, const char *root);
/* Appends printf-formatted text; returns the length before it (for pop). */
size_t spec_path_push(spec_path *p, const char *fmt, ...) TD_PRINTF(2, 3);
void spec_path_pop(spec_path *p, size_t len);
/* The path as messages show it: whole when short, else its start and end
 * around " ... " (a message holds 1 KiB, a path 64 levels deep does not
 * fit). Borrowed: valid until the next call on this thread. */
const char *spec_path_text(const spec_path *p);

/* a * b and a + b for non-negative counts, saturating at INT64_MAX. */
int64_t spec_count_mul(int64_t a, int64_t b);
int64_t spec_count_add(int64_t a, int64_t b);

/* The field number of the first unknown field a message carried (a oneof
 * case from a newer client that protobuf-c could not place), or 0. */
uint32_t spec_unknown_field(const ProtobufCMessage *m);

#endif
