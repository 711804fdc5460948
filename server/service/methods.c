/* methods.c - the method table: every RPC of both services, its kind, its
 * request type and its handler. */
#include "grpc/health/v1/health.pb-c.h"
#include "service/handlers.h"
#include "service/service.h"

#define UNARY(name, req, fn) \
  {"/traind.v1.Trainer/" name, RPC_UNARY, &traind__v1__##req##__descriptor, fn, NULL, NULL, NULL}

const rpc_method service_methods[] = {
    UNARY("CreateModel", create_model_request, handle_create_model),
    UNARY("Forward", forward_request, handle_forward),
    UNARY("Backward", backward_request, handle_backward),
    UNARY("Step", step_request, handle_step),
    UNARY("ClearGrad", clear_grad_request, handle_clear_grad),
    UNARY("TrainStep", train_step_request, handle_train_step),
    UNARY("SetTraining", set_training_request, handle_set_training),
    {"/traind.v1.Trainer/StateDict", RPC_SERVER_STREAM, &traind__v1__state_dict_request__descriptor,
     handle_state_dict, NULL, NULL, NULL},
    {"/traind.v1.Trainer/LoadStateDict", RPC_CLIENT_STREAM,
     &traind__v1__load_state_dict_request__descriptor, NULL, load_state_dict_message,
     load_state_dict_end, load_state_dict_abort},
    UNARY("GetSession", get_session_request, handle_get_session),
    UNARY("ListSessions", list_sessions_request, handle_list_sessions),
    UNARY("CloseSession", close_session_request, handle_close_session),
    {"/grpc.health.v1.Health/Check", RPC_UNARY,
     &grpc__health__v1__health_check_request__descriptor, handle_health_check, NULL, NULL, NULL},
};

const int service_n_methods = (int)(sizeof service_methods / sizeof service_methods[0]);
