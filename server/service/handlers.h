/* handlers.h - one entry point per RPC, called on the loop with the decoded
 * request (the method table in methods.c points at these). */
#ifndef TRAIND_SERVICE_HANDLERS_H
#define TRAIND_SERVICE_HANDLERS_H

#include "rpc/rpc.h"

void handle_create_model(rpc_call *call, const ProtobufCMessage *request);
void handle_forward(rpc_call *call, const ProtobufCMessage *request);
void handle_backward(rpc_call *call, const ProtobufCMessage *request);
void handle_step(rpc_call *call, const ProtobufCMessage *request);
void handle_clear_grad(rpc_call *call, const ProtobufCMessage *request);
void handle_train_step(rpc_call *call, const ProtobufCMessage *request);
void handle_set_training(rpc_call *call, const ProtobufCMessage *request);
void handle_state_dict(rpc_call *call, const ProtobufCMessage *request);
void handle_get_session(rpc_call *call, const ProtobufCMessage *request);
void handle_list_sessions(rpc_call *call, const ProtobufCMessage *request);
void handle_close_session(rpc_call *call, const ProtobufCMessage *request);
void handle_health_check(rpc_call *call, const ProtobufCMessage *request);

/* LoadStateDict is client streaming. */
void load_state_dict_message(rpc_call *call, const ProtobufCMessage *message);
void load_state_dict_end(rpc_call *call);
void load_state_dict_abort(rpc_call *call);

#endif
