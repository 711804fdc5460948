/* forward.c - Forward: the model (and a loss) on a batch, recorded or not. */
#include <stdlib.h>

#include "core/status.h"
#include "service/handlers.h"
#include "service/service.h"

float scalar_value(const td_tensor *t) { return td_tensor_f32(t)[0]; }

td_status decode_batch(const spec_limits *limits, const Traind__V1__Tensor *input,
                       const Traind__V1__Tensor *target, const Traind__V1__LossSpec *loss,
                       td_tensor **x, td_tensor **y) {
  *x = *y = NULL;
  if (!loss && target)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "target is set but loss is not: set loss (e.g. CROSS_ENTROPY) to compare "
                    "the output with it");
  if (loss && !target) return td_error(TD_ERR_INVALID_ARGUMENT, "target is required with loss");
  td_status st = spec_tensor_from_proto(input, "input", limits, x);
  if (!st && target) st = spec_tensor_from_proto(target, "target", limits, y);
  if (st) {
    td_tensor_release(*x);
    *x = NULL;
  }
  return st;
}

td_status session_forward(session *s, td_tensor *input, td_tensor *target,
                          const Traind__V1__LossSpec *loss_spec, bool grad, td_tensor **output,
                          td_tensor **loss) {
  *output = NULL;
  if (loss) *loss = NULL;
  model_snapshot snap;
  bool snapped = s->model->training;
  td_status st = snapped ? model_snapshot_take(s->model, &snap) : TD_OK;
  if (st) return st;
  if (grad) {
    td_tensor_release(s->recorded_output);
    td_tensor_release(s->recorded_loss);
    s->recorded_output = s->recorded_loss = NULL;
    st = td_gm_record(s->gm);
  }
  td_tensor *y = NULL, *l = NULL;
  if (!st) st = td_module_forward(s->model, input, &y);
  if (!st && loss_spec) st = spec_compute_loss(loss_spec, y, target, &l);
  if (grad) {
    td_gm_pause(s->gm);
    if (st) td_gm_release(s->gm);
  }
  if (st) {
    if (snapped) model_snapshot_restore(s->model, &snap);
    td_tensor_release(y);
    td_tensor_release(l);
  } else {
    if (grad) {
      s->recorded_output = y;
      td_tensor_retain(y);
      s->recorded_loss = l;
      if (l) td_tensor_retain(l);
    }
    *output = y;
    if (loss)
      *loss = l;
    else
      td_tensor_release(l);
  }
  if (snapped) model_snapshot_free(&snap);
  return st;
}

static void forward_work(rpc_call *call, session *s, const ProtobufCMessage *msg) {
  const Traind__V1__ForwardRequest *req = (const Traind__V1__ForwardRequest *)msg;
  service *svc = service_of(call);
  td_tensor *x, *target, *y = NULL, *loss = NULL;
  td_status st = decode_batch(&svc->limits, req->input, req->target, req->loss, &x, &target);
  if (!st) st = session_forward(s, x, target, req->loss, req->grad, &y, &loss);
  td_tensor_release(x);
  td_tensor_release(target);
  Traind__V1__ForwardResponse resp = TRAIND__V1__FORWARD_RESPONSE__INIT;
  Traind__V1__Tensor out = TRAIND__V1__TENSOR__INIT;
  if (!st) st = spec_tensor_to_proto(y, &out);
  session_update_summary(s);
  if (st) {
    service_fail(call, st);
  } else {
    resp.output = &out;
    if (loss) {
      resp.has_loss = true;
      resp.loss = scalar_value(loss);
    }
    rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
  }
  spec_tensor_proto_clear(&out);
  td_tensor_release(y);
  td_tensor_release(loss);
}

void handle_forward(rpc_call *call, const ProtobufCMessage *msg) {
  service_queue(call, ((const Traind__V1__ForwardRequest *)msg)->session_id, forward_work);
}
