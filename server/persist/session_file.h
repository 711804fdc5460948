/* session_file.h - one session as one file: <data-dir>/sessions/<id>.session.
 *
 * Layout:
 *
 *   offset  size  field
 *   0       8     magic "TRAINDS1" (the 1 is the format's version)
 *   8       8     payload length N, little-endian
 *   16      4     CRC-32C of the payload, little-endian (io/crc32c.h)
 *   20      4     zero, reserved
 *   24      N     the payload: a safetensors file
 *
 * The payload is the session's checkpoint exactly as StateDict with
 * include_optimizer gives it (model state_dict, "rng/" generators,
 * "optimizer/" state with its step count and schedule), so `tail -c +25`
 * of a session file is a checkpoint PyTorch and LoadStateDict read. Its
 * __metadata__ adds what rebuilding the session takes, under
 * "traind.session.":
 *
 *   id              the session id (also the file's name)
 *   tenant          hex of the owner's tenant name ("" without tokens)
 *   created_ms      Unix milliseconds of CreateModel
 *   training        "1" train mode, "0" eval mode
 *   create_request  hex of the CreateModelRequest the client sent (packed):
 *                   the model and optimizer specs, seed and name
 *
 * Client strings go in hex so that any bytes round-trip and none can
 * reach a path or a JSON parser unescaped. The checksum covers the whole
 * payload: a file that was cut short, or changed on disk, is refused as a
 * whole rather than half restored.
 */
#ifndef TRAIND_PERSIST_SESSION_FILE_H
#define TRAIND_PERSIST_SESSION_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/tensor_map.h"
#include "session/session.h"

#define SESSION_FILE_MAGIC "TRAINDS1"
#define SESSION_FILE_HEADER 24

/* What a session file holds; session_record_free releases it. */
typedef struct session_record {
  char id[SESSION_ID_LEN + 1];
  char tenant[sizeof ((session *)0)->tenant];
  int64_t created_ms;
  bool training;
  uint8_t *create_request; /* malloc'd */
  size_t create_request_len;
  td_tensor_map state; /* the checkpoint: model, rng/ and optimizer/ keys */
} session_record;

void session_record_free(session_record *r);

/* Writes s's state to path atomically (io/atomic_file.h). Runs where s's
 * engine state may be read: on its serial queue, or when nothing else runs.
 * Allocations are charged to this thread's account. */
td_status session_file_write(session *s, const char *path);

/* Reads and verifies the file at path into *out (filled only on success).
 * TD_ERR_NOT_FOUND for a missing file, TD_ERR_IO for a failed read,
 * TD_ERR_FORMAT for anything malformed (short, bad magic, length, checksum,
 * payload, metadata); messages name what is wrong. */
td_status session_file_read(const char *path, session_record *out);

/* The same from bytes in memory (the fuzzer and tests use this). */
td_status session_file_parse(const uint8_t *data, size_t len, session_record *out);

#endif
