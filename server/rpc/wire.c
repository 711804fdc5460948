/* wire.c - the nesting depth of protobuf bytes, read with the descriptor. */
#include "rpc/wire.h"

/* Reads a varint at *p (< end); false when truncated or over 10 bytes. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* 1: fine (or malformed: left to protobuf-c), 0: too deep. */
static int walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end,
                int depth) {
  if (depth < 0) return 0;
  while (p < end) {
    uint64_t tag, len;
    if (!read_varint(&p, end, &tag)) return 1;
    switch (tag & 7) {
    case 0:
      if (!read_varint(&p, end, &len)) return 1;
      break;
    case 1:
      if (end - p < 8) return 1;
      p += 8;
      break;
    case 5:
      if (end - p < 4) return 1;
      p += 4;
      break;
    case 2: {
      if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p)) return 1;
      uint64_t id = tag >> 3;
      const ProtobufCFieldDescriptor *f =
          id <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)id) : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          !walk((const ProtobufCMessageDescriptor *)f->descriptor, p, p + len, depth - 1))
        return 0;
      p += len;
      break;
    }
    default: /* groups (3, 4) and invalid types: protobuf-c refuses them */
      return 1;
    }
  }
  return 1;
}

bool rpc_wire_depth_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                       int max_depth) {
  return walk(desc, data, data + len, max_depth) == 1;
}
