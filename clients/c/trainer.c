/* libtraind-client: the unary Trainer RPCs, health, and raw unary calls. */
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>

#include "client_internal.h"

#define TRAINER "/traind.v1.Trainer/"

/* Checks the arguments every call shares. */
#define CHECK_ARGS(fn, c, req)                                                           \
  do {                                                                                   \
    if (!(c) || !(req)) return tc_error(TRAIND_INVALID_ARGUMENT, fn ": %s is NULL",     \
                                        !(c) ? "client" : "request");                   \
  } while (0)

#define UNARY(c, method, req, resp_type, out)                                            \
  tc_unary_msg((c), TRAINER method, &(req)->base, &resp_type##__descriptor,             \
               (ProtobufCMessage **)(out))

traind_status traind_create_model(traind_client *c, const Traind__V1__CreateModelRequest *req,
                                  Traind__V1__CreateModelResponse **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_create_model", c, req);
  return UNARY(c, "CreateModel", req, traind__v1__create_model_response, out);
}

traind_status traind_create_model_packed(traind_client *c, const uint8_t *req, size_t len,
                                         Traind__V1__CreateModelResponse **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_create_model_packed", c, req);
  /* Refuse bytes that are not a request here, with a local message, rather than send them. */
  Traind__V1__CreateModelRequest *m = traind__v1__create_model_request__unpack(NULL, len, req);
  if (!m)
    return tc_error(TRAIND_INVALID_ARGUMENT,
                    "traind_create_model_packed: %zu bytes are not a CreateModelRequest", len);
  traind__v1__create_model_request__free_unpacked(m, NULL);
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  traind_status st = traind_unary_raw(c, TRAINER "CreateModel", req, len, &resp, &resp_len);
  if (st.code != TRAIND_OK) return st;
  Traind__V1__CreateModelResponse *r =
      traind__v1__create_model_response__unpack(NULL, resp_len, resp);
  free(resp);
  if (!r)
    return tc_error(TRAIND_DATA_LOSS, "CreateModel: the response is not a valid message");
  if (out)
    *out = r;
  else
    traind__v1__create_model_response__free_unpacked(r, NULL);
  return tc_ok();
}

traind_status traind_forward(traind_client *c, const Traind__V1__ForwardRequest *req,
                             Traind__V1__ForwardResponse **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_forward", c, req);
  return UNARY(c, "Forward", req, traind__v1__forward_response, out);
}

traind_status traind_backward(traind_client *c, const Traind__V1__BackwardRequest *req,
                              Traind__V1__BackwardResponse **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_backward", c, req);
  return UNARY(c, "Backward", req, traind__v1__backward_response, out);
}

traind_status traind_train_step(traind_client *c, const Traind__V1__TrainStepRequest *req,
                                Traind__V1__TrainStepResponse **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_train_step", c, req);
  return UNARY(c, "TrainStep", req, traind__v1__train_step_response, out);
}

traind_status traind_step(traind_client *c, const char *session_id, bool keep_grad,
                          Traind__V1__StepResponse **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_step", c, session_id);
  Traind__V1__StepRequest req = TRAIND__V1__STEP_REQUEST__INIT;
  req.session_id = (char *)session_id;
  req.has_keep_grad = true;
  req.keep_grad = keep_grad;
  return UNARY(c, "Step", &req, traind__v1__step_response, out);
}

traind_status traind_clear_grad(traind_client *c, const char *session_id) {
  CHECK_ARGS("traind_clear_grad", c, session_id);
  Traind__V1__ClearGradRequest req = TRAIND__V1__CLEAR_GRAD_REQUEST__INIT;
  req.session_id = (char *)session_id;
  return UNARY(c, "ClearGrad", &req, traind__v1__clear_grad_response, NULL);
}

traind_status traind_set_training(traind_client *c, const char *session_id, bool training) {
  CHECK_ARGS("traind_set_training", c, session_id);
  Traind__V1__SetTrainingRequest req = TRAIND__V1__SET_TRAINING_REQUEST__INIT;
  req.session_id = (char *)session_id;
  req.has_training = true;
  req.training = training;
  return UNARY(c, "SetTraining", &req, traind__v1__set_training_response, NULL);
}

traind_status traind_get_session(traind_client *c, const char *session_id,
                                 Traind__V1__SessionInfo **out) {
  if (out) *out = NULL;
  CHECK_ARGS("traind_get_session", c, session_id);
  Traind__V1__GetSessionRequest req = TRAIND__V1__GET_SESSION_REQUEST__INIT;
  req.session_id = (char *)session_id;
  return UNARY(c, "GetSession", &req, traind__v1__session_info, out);
}

traind_status traind_list_sessions(traind_client *c, Traind__V1__ListSessionsResponse **out) {
  if (out) *out = NULL;
  if (!c) return tc_error(TRAIND_INVALID_ARGUMENT, "traind_list_sessions: client is NULL");
  Traind__V1__ListSessionsRequest req = TRAIND__V1__LIST_SESSIONS_REQUEST__INIT;
  return UNARY(c, "ListSessions", &req, traind__v1__list_sessions_response, out);
}

traind_status traind_close_session(traind_client *c, const char *session_id) {
  CHECK_ARGS("traind_close_session", c, session_id);
  Traind__V1__CloseSessionRequest req = TRAIND__V1__CLOSE_SESSION_REQUEST__INIT;
  req.session_id = (char *)session_id;
  return UNARY(c, "CloseSession", &req, traind__v1__close_session_response, NULL);
}

traind_status traind_health_check(traind_client *c, const char *service,
                                  Grpc__Health__V1__HealthCheckResponse__ServingStatus *serving) {
  if (serving) *serving = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__UNKNOWN;
  if (!c) return tc_error(TRAIND_INVALID_ARGUMENT, "traind_health_check: client is NULL");
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service ? service : "");
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  traind_status st = tc_unary_msg(c, "/grpc.health.v1.Health/Check", &req.base,
                                  &grpc__health__v1__health_check_response__descriptor,
                                  (ProtobufCMessage **)&resp);
  if (st.code == TRAIND_OK && serving) *serving = resp->status;
  traind_message_free(resp);
  return st;
}

traind_status traind_unary_raw(traind_client *c, const char *method, const uint8_t *req,
                               size_t req_len, uint8_t **resp, size_t *resp_len) {
  if (resp) *resp = NULL;
  if (resp_len) *resp_len = 0;
  if (!c || !method || (!req && req_len) || !resp || !resp_len)
    return tc_error(TRAIND_INVALID_ARGUMENT, "traind_unary_raw: NULL argument");
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)req, req_len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_byte_buffer *rb = NULL;
  traind_status st = tc_unary(c, method, bb, &rb);
  grpc_byte_buffer_destroy(bb);
  if (st.code != TRAIND_OK) return st;
  grpc_byte_buffer_reader rd;
  size_t n = grpc_byte_buffer_length(rb);
  uint8_t *out = malloc(n ? n : 1);
  if (!out || !grpc_byte_buffer_reader_init(&rd, rb)) {
    free(out);
    grpc_byte_buffer_destroy(rb);
    return tc_error(TRAIND_RESOURCE_EXHAUSTED, "%s: out of memory for %zu bytes", method, n);
  }
  size_t at = 0;
  grpc_slice piece;
  while (grpc_byte_buffer_reader_next(&rd, &piece)) {
    memcpy(out + at, GRPC_SLICE_START_PTR(piece), GRPC_SLICE_LENGTH(piece));
    at += GRPC_SLICE_LENGTH(piece);
    grpc_slice_unref(piece);
  }
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(rb);
  *resp = out;
  *resp_len = at;
  return tc_ok();
}
