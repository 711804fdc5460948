/* train_step.c - TrainStep: forward, loss, backward, step and clear in one call. */
#include "core/cancel.h"
#include "core/status.h"
#include "service/handlers.h"
#include "service/service.h"


static void train_step_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  const Traind__V1__TrainStepRequest *req = (const Traind__V1__TrainStepRequest *)msg;
  service *svc = service_of(call);
  td_tensor *x = NULL, *target = NULL, *y = NULL, *loss = NULL;
  double lr = 0;
  float norm = 0;
  td_status st = TD_OK;
  /* Everything that can be refused is checked before the model runs. */
  if (!req->loss)
    st = td_error(TD_ERR_INVALID_ARGUMENT, "loss is required (e.g. CROSS_ENTROPY)");
  else if (!s->optimizer)
    st = td_error(TD_ERR_FAILED_PRECONDITION,
                  "this session has no optimizer: give CreateModel an optimizer to train");
  if (!st) st = decode_batch(&svc->limits, req->input, req->target, req->loss, &x, &target);
  if (!st) st = session_forward(s, x, target, req->loss, true, &y, &loss);
  /* Past the forward the step is seen through even if the client leaves:
   * stopping inside backward or step would leave a moved BatchNorm and a
   * half-done step behind, and a failed request must change nothing. */
  td_cancel_set(NULL, NULL);
  if (!st) {
    st = td_gm_backward(s->gm, loss, NULL);
    session_drop_recording(s);
  }
  if (!st) st = session_step(s, false, &lr, &norm);
  td_tensor_release(x);
  td_tensor_release(target);
  Traind__V1__TrainStepResponse resp = TRAIND__V1__TRAIN_STEP_RESPONSE__INIT;
  Traind__V1__Tensor out = TRAIND__V1__TENSOR__INIT;
  if (!st && req->return_output) {
    st = spec_tensor_to_proto(y, &out);
    resp.output = &out;
  }
  session_update_summary(s);
  if (st) {
    service_fail(call, st);
  } else {
    resp.has_loss = resp.has_step = resp.has_grad_norm = resp.has_lr = true;
    resp.loss = scalar_value(loss);
    resp.step = td_optimizer_num_steps(s->optimizer);
    resp.grad_norm = norm;
    resp.lr = lr;
    service_autosave(service_of(call), s);
    rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
  }
  spec_tensor_proto_clear(&out);
  td_tensor_release(y);
  td_tensor_release(loss);
}

void handle_train_step(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__TrainStepRequest *)msg)->session_id, train_step_work);
}
