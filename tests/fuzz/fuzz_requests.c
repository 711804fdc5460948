/* fuzz_requests.c - every Trainer request from raw bytes, through the
 * daemon's decode (the nesting check, then protobuf-c) and validation
 * (server/spec) into the engine work its handler would do, without a
 * network: what a hostile client's bytes can reach.
 *
 * Input: one byte choosing the request type, then the message's bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "module/layers.h"
#include "rpc/wire.h"
#include "spec/spec.h"

/* Small enough that no input can ask for gigabytes. */
static const spec_limits limits = {.max_parameters = 1 << 20, .max_tensor_elements = 1 << 18};

/* The session every Forward/TrainStep/LoadStateDict runs against: a
 * Linear(8, 4), as a client's model would be. */
static td_module *fixed_model(void) {
  static td_module *model;
  if (!model) {
    td_rng rng;
    td_rng_seed(&rng, 0);
    td_linear_config cfg = {.in_features = 8, .out_features = 4};
    if (td_module_linear(&cfg, &rng, &model)) abort();
  }
  return model;
}

static void run_batch(const Traind__V1__Tensor *input, const Traind__V1__Tensor *target,
                      const Traind__V1__LossSpec *loss) {
  td_tensor *x = NULL, *y = NULL, *out = NULL, *l = NULL;
  if (spec_tensor_from_proto(input, "input", &limits, &x)) goto done;
  if (target && spec_tensor_from_proto(target, "target", &limits, &y)) goto done;
  if (td_module_forward(fixed_model(), x, &out)) goto done;
  if (loss && y) (void)spec_compute_loss(loss, out, y, &l);
  Traind__V1__Tensor back = TRAIND__V1__TENSOR__INIT;
  if (!spec_tensor_to_proto(out, &back)) spec_tensor_proto_clear(&back);
done:
  td_tensor_release(x);
  td_tensor_release(y);
  td_tensor_release(out);
  td_tensor_release(l);
}

static void create_model(const Traind__V1__CreateModelRequest *req) {
  td_module *model = NULL;
  if (!req->model || spec_build_model(req->model, req->seed, &limits, &model)) return;
  spec_optimizer opt = {0};
  if (req->optimizer && !spec_build_optimizer(req->optimizer, model, &opt))
    td_optimizer_destroy(opt.optimizer);
  td_module_destroy(model);
}

static void load_state_dict(const Traind__V1__LoadStateDictRequest *req) {
  if (!req->has_data) return;
  td_tensor_map state;
  td_tensor_map_init(&state);
  if (!td_safetensors_read_buffer(req->data.data, req->data.len, &state)) {
    td_load_result result = {0};
    (void)td_checkpoint_load_state(fixed_model(), NULL, &state, req->strict, &result);
    td_load_result_free(&result);
  }
  td_tensor_map_free(&state);
}

static const ProtobufCMessageDescriptor *const requests[] = {
    &traind__v1__create_model_request__descriptor,
    &traind__v1__forward_request__descriptor,
    &traind__v1__backward_request__descriptor,
    &traind__v1__train_step_request__descriptor,
    &traind__v1__load_state_dict_request__descriptor,
    &traind__v1__step_request__descriptor,
    &traind__v1__set_training_request__descriptor,
    &traind__v1__state_dict_request__descriptor,
    &traind__v1__get_session_request__descriptor,
    &traind__v1__close_session_request__descriptor,
};
#define N_REQUESTS (sizeof requests / sizeof requests[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  td_mem_set_limit(256 << 20);
  const ProtobufCMessageDescriptor *desc = requests[data[0] % N_REQUESTS];
  data++, size--;
  if (!rpc_wire_depth_ok(desc, data, size, RPC_WIRE_MAX_DEPTH)) return 0;
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, size, data);
  if (!msg) return 0;
  if (desc == &traind__v1__create_model_request__descriptor) {
    create_model((const Traind__V1__CreateModelRequest *)msg);
  } else if (desc == &traind__v1__forward_request__descriptor) {
    const Traind__V1__ForwardRequest *r = (const Traind__V1__ForwardRequest *)msg;
    run_batch(r->input, r->target, r->loss);
  } else if (desc == &traind__v1__train_step_request__descriptor) {
    const Traind__V1__TrainStepRequest *r = (const Traind__V1__TrainStepRequest *)msg;
    run_batch(r->input, r->target, r->loss);
  } else if (desc == &traind__v1__backward_request__descriptor) {
    const Traind__V1__BackwardRequest *r = (const Traind__V1__BackwardRequest *)msg;
    td_tensor *dy = NULL;
    if (r->grad_output && !spec_tensor_from_proto(r->grad_output, "grad_output", &limits, &dy))
      td_tensor_release(dy);
  } else if (desc == &traind__v1__load_state_dict_request__descriptor) {
    load_state_dict((const Traind__V1__LoadStateDictRequest *)msg);
  }
  protobuf_c_message_free_unpacked(msg, NULL);
  return 0;
}
