/* libtraind-client: a small C API for the traind daemon (service traind.v1.Trainer).
 *
 * Messages are the protoc-c types of proto/traind/v1/trainer.proto (Traind__V1__Xxx), so
 * every field the API has is reachable; the functions below add the transport: one
 * channel, deadlines, the bearer token, streaming of checkpoints, and statuses.
 *
 * Statuses. Every fallible function returns a traind_status by value. `code` is the gRPC
 * status code (TRAIND_OK = 0; the enum below has the same values as grpc_status_code)
 * and `message` a NUL-terminated string the CALLER OWNS: release it with
 * traind_status_clear() (safe on every status, also OK ones whose message is NULL).
 * Server failures carry the server's code and message unchanged. Failures on this side
 * use the nearest code: INVALID_ARGUMENT for bad arguments to this library,
 * RESOURCE_EXHAUSTED for out of memory, UNAVAILABLE / DEADLINE_EXCEEDED from the channel,
 * DATA_LOSS for a malformed or truncated response, and UNKNOWN for a failed system call
 * (`sys_errno` is then set and the message names the call and the path).
 *
 *   traind_status st = traind_step(client, id, false, NULL);
 *   if (st.code != TRAIND_OK) fprintf(stderr, "step: %s: %s\n",
 *                                     traind_code_name(st.code), st.message);
 *   traind_status_clear(&st);
 *
 * Ownership. Request messages and strings passed in are borrowed for the duration of
 * the call. A response returned through `Traind__V1__Xxx **out` is a NEW message the
 * caller frees with traind_message_free() (or the type's own *_free_unpacked(m, NULL));
 * on failure *out is set to NULL. Passing out = NULL discards the response. Byte buffers
 * returned through `uint8_t **data` are malloc'd; the caller frees them with free().
 *
 * Threads. A traind_client is NOT thread-safe: use it from one thread at a time (calls
 * are blocking). For parallel work open one client per thread; each has its own channel
 * (its own HTTP/2 connection) and completion queue. Why not a shared client: the gRPC
 * core allows at most 6 concurrent plucks on a queue, and a queue per call would add an
 * allocation and a shutdown handshake to every round trip, which is the path this library
 * is measured on; separate connections are also what parallel sessions want for
 * throughput. Distinct clients may be used concurrently; traind_connect and
 * traind_client_close may be called from any thread.
 */
#ifndef TRAIND_CLIENT_H
#define TRAIND_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc/health/v1/health.pb-c.h"
#include "traind/v1/trainer.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gRPC status codes (same numbers as grpc_status_code). */
typedef enum traind_code {
  TRAIND_OK = 0,
  TRAIND_CANCELLED = 1,
  TRAIND_UNKNOWN = 2,
  TRAIND_INVALID_ARGUMENT = 3,
  TRAIND_DEADLINE_EXCEEDED = 4,
  TRAIND_NOT_FOUND = 5,
  TRAIND_ALREADY_EXISTS = 6,
  TRAIND_PERMISSION_DENIED = 7,
  TRAIND_RESOURCE_EXHAUSTED = 8,
  TRAIND_FAILED_PRECONDITION = 9,
  TRAIND_ABORTED = 10,
  TRAIND_OUT_OF_RANGE = 11,
  TRAIND_UNIMPLEMENTED = 12,
  TRAIND_INTERNAL = 13,
  TRAIND_UNAVAILABLE = 14,
  TRAIND_DATA_LOSS = 15,
  TRAIND_UNAUTHENTICATED = 16,
} traind_code;

typedef struct traind_status {
  int code;       /* a traind_code */
  char *message;  /* owned by the status (malloc'd); NULL when code is OK or out of memory */
  int sys_errno;  /* errno of a failed local system call (file I/O), else 0 */
} traind_status;

/* Frees st->message and resets *st to OK. NULL is fine. */
void traind_status_clear(traind_status *st);
/* "NOT_FOUND" etc.; a static string, "UNKNOWN_CODE" for values outside the enum. */
const char *traind_code_name(int code);

/* ---------------------------------------------------------------- connection */

#define TRAIND_DEFAULT_TARGET "127.0.0.1:50051"
#define TRAIND_DEFAULT_MAX_MESSAGE_SIZE (64u << 20)

typedef struct traind_client_options {
  const char *target;          /* "host:port" (any gRPC target); NULL: the default above */
  size_t max_message_size;     /* send and receive limit on the channel; 0: 64 MiB */
  int64_t timeout_ms;          /* deadline of each call; 0: none */
  int64_t connect_timeout_ms;  /* > 0: traind_connect waits this long for the channel to
                                  be ready and fails with UNAVAILABLE otherwise;
                                  0: connect lazily on the first call */
  const char *token;           /* sent as "authorization: Bearer <token>"; NULL: none */
  /* TLS: a PEM file of the CA(s) that signed the server's certificate;
   * NULL: plaintext. tls_cert_file/tls_key_file: this client's certificate and
   * key, for a server that requires them (mutual TLS); both or neither. */
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
} traind_client_options;

typedef struct traind_client traind_client;

/* Sets the defaults above (every field zero / NULL). */
void traind_client_options_init(traind_client_options *opts);

/* Opens a channel to opts->target (opts NULL: all defaults). The strings in opts are
 * copied. On success *out is a new client released with traind_client_close; on failure
 * *out is NULL. Initialises the gRPC library (reference-counted with the close). */
traind_status traind_connect(const traind_client_options *opts, traind_client **out);

/* Closes the channel, frees the client and drops this client's reference to the gRPC
 * library (the last one shuts it down). NULL is fine. No call may be running on it. */
void traind_client_close(traind_client *c);

/* Changes the per-call deadline for subsequent calls (0: none). */
void traind_client_set_timeout(traind_client *c, int64_t timeout_ms);

/* ---------------------------------------------------------------- helpers */

/* Fills *t as a view of caller memory (nothing is copied; shape and data are borrowed
 * and must outlive every call that sends *t). data holds numel * itemsize bytes,
 * row-major; itemsize is 4 for FLOAT32 and 8 for INT64. ndim <= 8. */
void traind_tensor_view(Traind__V1__Tensor *t, Traind__V1__DType dtype, size_t ndim,
                        const int64_t *shape, const void *data, size_t nbytes);

/* Frees a response returned by this library (any protoc-c message). NULL is fine. */
void traind_message_free(void *message);

/* ---------------------------------------------------------------- the Trainer RPCs */
/* `out` may be NULL in all of these to discard the response. */

traind_status traind_create_model(traind_client *c, const Traind__V1__CreateModelRequest *req,
                                  Traind__V1__CreateModelResponse **out);
/* The same with a request already serialised (e.g. built by another language). */
traind_status traind_create_model_packed(traind_client *c, const uint8_t *req, size_t len,
                                         Traind__V1__CreateModelResponse **out);

traind_status traind_forward(traind_client *c, const Traind__V1__ForwardRequest *req,
                             Traind__V1__ForwardResponse **out);
traind_status traind_backward(traind_client *c, const Traind__V1__BackwardRequest *req,
                              Traind__V1__BackwardResponse **out);
traind_status traind_step(traind_client *c, const char *session_id, bool keep_grad,
                          Traind__V1__StepResponse **out);
traind_status traind_clear_grad(traind_client *c, const char *session_id);
traind_status traind_train_step(traind_client *c, const Traind__V1__TrainStepRequest *req,
                                Traind__V1__TrainStepResponse **out);
/* training: true = train mode, false = eval mode. */
traind_status traind_set_training(traind_client *c, const char *session_id, bool training);

traind_status traind_get_session(traind_client *c, const char *session_id,
                                 Traind__V1__SessionInfo **out);
traind_status traind_list_sessions(traind_client *c, Traind__V1__ListSessionsResponse **out);
traind_status traind_close_session(traind_client *c, const char *session_id);

/* grpc.health.v1.Health/Check for `service` ("" or NULL: the server as a whole).
 * *serving (may be NULL) receives the ServingStatus (1 = SERVING, 2 = NOT_SERVING). */
traind_status traind_health_check(traind_client *c, const char *service,
                                  Grpc__Health__V1__HealthCheckResponse__ServingStatus *serving);

/* ---------------------------------------------------------------- checkpoints */

/* StateDict: downloads the session's safetensors file (with the optimizer state when
 * include_optimizer) into a new malloc'd buffer: *data (caller frees with free()) of
 * *len bytes. The size is checked against the server's total_size. On failure *data is
 * NULL and *len 0. */
traind_status traind_state_dict_to_buffer(traind_client *c, const char *session_id,
                                          bool include_optimizer, uint8_t **data, size_t *len);

/* The same, written to `path` atomically: a temporary file next to it, fsync, rename,
 * fsync of the directory. On any failure `path` is untouched and the temporary removed.
 * *len (may be NULL) receives the file size. */
traind_status traind_state_dict_to_file(traind_client *c, const char *session_id,
                                        bool include_optimizer, const char *path,
                                        size_t *len);

/* LoadStateDict: uploads a safetensors file held in memory (borrowed) in 1 MiB chunks.
 * strict: as torch's load_state_dict. *out (may be NULL) lists the missing and
 * unexpected keys (non-strict loads). */
traind_status traind_load_state_dict_from_buffer(traind_client *c, const char *session_id,
                                                 bool strict, const uint8_t *data,
                                                 size_t len,
                                                 Traind__V1__LoadStateDictResponse **out);
/* The same, reading `path` in 1 MiB chunks (never whole in memory). */
traind_status traind_load_state_dict_from_file(traind_client *c, const char *session_id,
                                               bool strict, const char *path,
                                               Traind__V1__LoadStateDictResponse **out);

/* ---------------------------------------------------------------- raw calls */

/* A unary call of any method ("/package.Service/Method") with serialised bytes: the
 * request is borrowed; the response is a new malloc'd buffer *resp (caller frees with
 * free(); non-NULL even for an empty response) of *resp_len bytes. Same deadline, token and
 * statuses as the typed calls. For services this header does not wrap. */
traind_status traind_unary_raw(traind_client *c, const char *method, const uint8_t *req,
                               size_t req_len, uint8_t **resp, size_t *resp_len);

#ifdef __cplusplus
}
#endif
#endif /* TRAIND_CLIENT_H */
