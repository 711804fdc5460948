/* backward.c - Backward: gradients of the recorded forward, accumulated. */
#include "core/status.h"
#include "service/handlers.h"
#include "service/service.h"

static void backward_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  const Traind__V1__BackwardRequest *req = (const Traind__V1__BackwardRequest *)msg;
  service *svc = service_of(call);
  td_status st = TD_OK;
  td_tensor *dy = NULL, *from = NULL;
  if (!s->recorded_output) {
    st = td_error(TD_ERR_FAILED_PRECONDITION,
                  "nothing to backpropagate: call Forward with grad=true first (each "
                  "recording is consumed by one Backward)");
  } else if (req->grad_output) {
    st = spec_tensor_from_proto(req->grad_output, "grad_output", &svc->limits, &dy);
    from = s->recorded_output;
    if (!st && (dy->dtype != TD_FLOAT32 ||
                !td_shape_equal(dy->ndim, dy->shape, from->ndim, from->shape))) {
      char got[TD_SHAPE_STR_MAX], want[TD_SHAPE_STR_MAX];
      st = td_error(TD_ERR_INVALID_ARGUMENT,
                    "grad_output is %s %s; it must be float32 with the recorded output's shape %s",
                    td_dtype_name(dy->dtype), td_tensor_shape_str(got, dy),
                    td_tensor_shape_str(want, from));
    }
  } else if (s->recorded_loss) {
    from = s->recorded_loss;
  } else if (s->recorded_output->numel == 1) {
    from = s->recorded_output;
  } else {
    char shape[TD_SHAPE_STR_MAX];
    td_tensor_shape_str(shape, s->recorded_output);
    st = td_error(TD_ERR_INVALID_ARGUMENT,
                  "grad_output is required: the recorded Forward computed no loss and its "
                  "output has shape %s, not a scalar",
                  shape);
  }
  if (!st) st = td_gm_backward(s->gm, from, dy);
  td_tensor_release(dy);
  if (!st) {
    session_drop_recording(s);
  }
  session_update_summary(s);
  if (st) {
    service_fail(call, st);
    return;
  }
  Traind__V1__BackwardResponse resp = TRAIND__V1__BACKWARD_RESPONSE__INIT;
  resp.has_grad_norm = true;
  resp.grad_norm = session_grad_norm(s);
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
}

void handle_backward(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__BackwardRequest *)msg)->session_id, backward_work);
}
