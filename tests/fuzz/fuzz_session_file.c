/* fuzz_session_file.c - what a restart does with a file in the sessions
 * directory: verify it (header, length, CRC-32C, safetensors, metadata),
 * then rebuild the session from its CreateModelRequest and load its state.
 *
 * The checksum would stop almost every mutation at the door, so the first
 * byte of an input chooses: odd, the rest is the file as it is; even, the
 * rest is a payload and the target writes a header with the right length
 * and CRC in front, which lets the fuzzer reach the decoders behind it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/crc32c.h"
#include "persist/session_file.h"
#include "service/service.h"

static service *fixed_service(void) {
  static traind_config config;
  static service svc;
  if (!svc.config) {
    config.max_sessions = 4;
    svc.config = &config;
    /* Small enough that no input can ask for gigabytes. */
    svc.limits.max_parameters = 1 << 20;
    svc.limits.max_tensor_elements = 1 << 18;
  }
  return &svc;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  td_mem_set_limit(256 << 20);
  bool as_is = data[0] & 1;
  data++;
  size--;
  uint8_t *file = malloc(size + SESSION_FILE_HEADER);
  if (!file) return 0;
  size_t len = size;
  if (as_is) {
    memcpy(file, data, size);
  } else {
    memcpy(file, SESSION_FILE_MAGIC, 8);
    put_le(file + 8, size, 8);
    put_le(file + 16, td_crc32c(0, data, size), 4);
    put_le(file + 20, 0, 4);
    memcpy(file + SESSION_FILE_HEADER, data, size);
    len += SESSION_FILE_HEADER;
  }
  session_record rec;
  if (!session_file_parse(file, len, &rec)) {
    session *s = NULL;
    if (!service_session_from_record(fixed_service(), &rec, &s)) session_release(s);
    session_record_free(&rec);
  }
  free(file);
  return 0;
}
