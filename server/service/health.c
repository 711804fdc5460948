/* health.c - grpc.health.v1.Health/Check. */
#include <stdio.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "service/handlers.h"
#include "service/service.h"

/* Answered on the loop at once, also while draining: that is when a load
 * balancer most needs to hear NOT_SERVING. */
void handle_health_check(rpc_call *call, const ProtobufCMessage *msg) {
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)msg;
  const char *name = req->service ? req->service : "";
  if (*name && strcmp(name, "traind.v1.Trainer") != 0) {
    char text[256];
    snprintf(text, sizeof text,
             "unknown service \"%.100s\" (this server has \"\" and \"traind.v1.Trainer\")", name);
    rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, text, NULL);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = rpc_server_draining(service_of(call)->rpc)
                    ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL, &resp.base);
}
