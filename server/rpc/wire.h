/* wire.h - a bounded look at protobuf bytes before protobuf-c unpacks them.
 *
 * protobuf_c_message_unpack recurses once per nested message with no limit,
 * and a Module tree nests: a 64 MiB request of nested Modules is millions
 * of levels deep and would overflow the loop thread's stack. This walk
 * (depth-bounded itself) finds the nesting depth from the descriptor first.
 */
#ifndef TRAIND_RPC_WIRE_H
#define TRAIND_RPC_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deeper than any valid request: the engine refuses module trees deeper than
 * 64 levels, and each level is two messages (Module, then its kind). */
#define RPC_WIRE_MAX_DEPTH 160

/* false if `data` nests messages of `desc` deeper than max_depth. Malformed
 * bytes return true: protobuf-c then rejects them itself, safely. */
bool rpc_wire_depth_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                       int max_depth);

#endif
