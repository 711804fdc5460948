/* state_dict.c - StateDict: the checkpoint as a stream of safetensors chunks.
 *
 * The file is serialised on the session's queue, so it is one consistent
 * state between two requests; the chunks are then sent from the loop, one
 * at a time, while the session goes on with its next request. */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "service/handlers.h"
#include "service/service.h"

/* The API's limit: no chunk over 1 MiB, so a checkpoint never needs a
 * message-size setting of its own. */
#define CHUNK_BYTES (1 << 20)

typedef struct download {
  void *file;       /* td_alloc'd by the safetensors writer, charged to... */
  session *session; /* ...this session's account: a reference keeps it alive */
  size_t size, sent;
} download;

static void download_free(void *arg) {
  download *d = arg;
  td_free(d->file);
  session_release(d->session);
  free(d);
}

static void send_next(rpc_call *call, bool ok);

static void send_chunk(rpc_call *call, download *d) {
  Traind__V1__StateDictChunk chunk = TRAIND__V1__STATE_DICT_CHUNK__INIT;
  size_t n = d->size - d->sent < CHUNK_BYTES ? d->size - d->sent : CHUNK_BYTES;
  chunk.has_data = true;
  chunk.data.data = (uint8_t *)d->file + d->sent;
  chunk.data.len = n;
  if (d->sent == 0) {
    chunk.has_total_size = true;
    chunk.total_size = d->size;
  }
  d->sent += n;
  rpc_call_send(call, &chunk.base, send_next);
}

static void send_next(rpc_call *call, bool ok) {
  download *d = rpc_call_user(call);
  if (!ok) {
    rpc_call_finish(call, GRPC_STATUS_CANCELLED, "the client went away during the download",
                    NULL);
    return;
  }
  if (d->sent < d->size) {
    send_chunk(call, d);
    return;
  }
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, NULL);
}

static void state_dict_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  const Traind__V1__StateDictRequest *req = (const Traind__V1__StateDictRequest *)msg;
  download *d = calloc(1, sizeof *d);
  if (!d) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return;
  }
  session_retain(s);
  d->session = s;
  /* Without the optimizer, the file is the model's state_dict alone (no
   * "rng/" keys either), so PyTorch loads it strictly as it is. */
  td_tensor_map state;
  td_status st = req->include_optimizer ? td_checkpoint_state(s->model, s->optimizer, &state)
                                        : td_module_state_dict(s->model, &state);
  if (!st) {
    st = td_safetensors_write_buffer(&state, &d->file, &d->size);
    td_tensor_map_free(&state);
  }
  if (st) {
    download_free(d);
    service_fail(call, st);
    return;
  }
  rpc_call_set_user(call, d, download_free); /* freed with the call */
  send_chunk(call, d); /* a file always has its header: size > 0 */
}

void handle_state_dict(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__StateDictRequest *)msg)->session_id, state_dict_work);
}
