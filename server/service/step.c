/* step.c - Step and ClearGrad: MegEngine's optimizer.step().clear_grad(). */
#include <math.h>

#include "core/status.h"
#include "service/handlers.h"
#include "service/service.h"

td_status session_step(session *s, bool keep_grad, double *lr, float *grad_norm) {
  if (!s->optimizer)
    return td_error(TD_ERR_FAILED_PRECONDITION,
                    "this session has no optimizer: give CreateModel an optimizer to train");
  /* Clipping measures the norm too; without it, measure only. */
  double max_norm = s->grad_clip_norm > 0 ? s->grad_clip_norm : INFINITY;
  td_status st = td_optimizer_clip_grad_norm(s->optimizer, max_norm, grad_norm);
  if (st) return st;
  *lr = td_optimizer_lr(s->optimizer, 0);
  st = td_optimizer_step(s->optimizer);
  if (st) return st;
  if (!keep_grad) session_clear_grads(s);
  return TD_OK;
}

static void step_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  const Traind__V1__StepRequest *req = (const Traind__V1__StepRequest *)msg;
  double lr = 0;
  float norm = 0;
  td_status st = session_step(s, req->keep_grad, &lr, &norm);
  session_update_summary(s);
  if (st) {
    service_fail(call, st);
    return;
  }
  Traind__V1__StepResponse resp = TRAIND__V1__STEP_RESPONSE__INIT;
  resp.has_step = resp.has_lr = resp.has_grad_norm = true;
  resp.step = td_optimizer_num_steps(s->optimizer);
  resp.lr = lr;
  resp.grad_norm = norm;
  service_autosave(service_of(call), s);
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
}

void handle_step(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__StepRequest *)msg)->session_id, step_work);
}

static void clear_grad_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  (void)msg;
  session_clear_grads(s);
  session_update_summary(s);
  Traind__V1__ClearGradResponse resp = TRAIND__V1__CLEAR_GRAD_RESPONSE__INIT;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
}

void handle_clear_grad(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__ClearGradRequest *)msg)->session_id, clear_grad_work);
}
