/* trainctl: health, sessions, info, close. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "trainctl.h"

static const tc_option no_options[] = {{NULL, 0, false, NULL, NULL}};

/* ---------------------------------------------------------------- health */

static int run_health(tc_ctx *ctx) {
  int code = tc_connect(ctx);
  if (code) return code;
  Grpc__Health__V1__HealthCheckResponse__ServingStatus serving;
  traind_status st = traind_health_check(ctx->client, "", &serving);
  if (st.code) return tc_rpc_error(ctx, "Health/Check", &st);
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
      &grpc__health__v1__health_check_response__serving_status__descriptor, (int)serving);
  const char *name = v ? v->name : "UNKNOWN";
  printf("%s\n", name);
  if (serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) return 0;
  return tc_fail(ctx, TC_EXIT_NOT_SERVING, "traind at %s is %s", ctx->server, name);
}

const tc_command tc_cmd_health = {
    .name = "health",
    .args = "",
    .min_pos = 0,
    .max_pos = 0,
    .summary = "check that the server is up (exit 0 only when SERVING)",
    .help =
        "Calls grpc.health.v1.Health/Check and prints the status. Exit 0 when SERVING, 5 when\n"
        "the server answers otherwise, 3 when it does not answer within --timeout (default 2 s),\n"
        "so it serves as a container HEALTHCHECK:\n"
        "  HEALTHCHECK CMD [\"trainctl\", \"health\"]",
    .opts = no_options,
    .run = run_health,
};

/* ---------------------------------------------------------------- sessions, info */

static const char *mode_name(const Traind__V1__SessionInfo *s) {
  return s->training ? "train" : "eval";
}

static void format_time(int64_t unix_ms, char *buf, size_t size) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  if (unix_ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
    snprintf(buf, size, "-");
}

static int run_sessions(tc_ctx *ctx) {
  int code = tc_connect(ctx);
  if (code) return code;
  Traind__V1__ListSessionsResponse *resp;
  traind_status st = traind_list_sessions(ctx->client, &resp);
  if (st.code) return tc_rpc_error(ctx, "ListSessions", &st);
  printf("%-32s  %-20s  %10s  %8s  %-5s  %s\n", "SESSION", "NAME", "PARAMETERS", "STEP", "MODE",
         "OPTIMIZER");
  for (size_t i = 0; i < resp->n_sessions; i++) {
    const Traind__V1__SessionInfo *s = resp->sessions[i];
    printf("%-32s  %-20s  %10lld  %8lld  %-5s  %s\n", s->session_id ? s->session_id : "",
           s->name && *s->name ? s->name : "-", (long long)s->num_parameters, (long long)s->step,
           mode_name(s), s->optimizer && *s->optimizer ? s->optimizer : "-");
  }
  traind_message_free(resp);
  return 0;
}

const tc_command tc_cmd_sessions = {
    .name = "sessions",
    .args = "",
    .min_pos = 0,
    .max_pos = 0,
    .summary = "list the open sessions",
    .help = "Prints one line per open session, oldest first: id, name, parameter count, optimizer\n"
            "steps taken, train/eval mode and optimizer.",
    .opts = no_options,
    .run = run_sessions,
};

static void print_shape(const int64_t *shape, size_t n) {
  printf("[");
  for (size_t i = 0; i < n; i++)
    printf("%s%lld", i ? ", " : "", (long long)shape[i]);
  printf("]");
}

static int run_info(tc_ctx *ctx) {
  int code = tc_connect(ctx);
  if (code) return code;
  Traind__V1__SessionInfo *s;
  traind_status st = traind_get_session(ctx->client, ctx->pos[0], &s);
  if (st.code) return tc_rpc_error(ctx, "GetSession", &st);
  char created[32], used[32];
  format_time(s->created_unix_ms, created, sizeof created);
  format_time(s->last_used_unix_ms, used, sizeof used);
  printf("session:    %s\n", s->session_id ? s->session_id : "");
  printf("name:       %s\n", s->name && *s->name ? s->name : "-");
  printf("parameters: %lld in %zu tensors\n", (long long)s->num_parameters, s->n_parameters);
  printf("mode:       %s\n", mode_name(s));
  if (s->optimizer && *s->optimizer)
    printf("optimizer:  %s, step %lld, next lr %g\n", s->optimizer, (long long)s->step, s->lr);
  else
    printf("optimizer:  none\n");
  printf("gradients:  %s%s\n", s->has_grad ? "accumulated" : "none",
         s->recorded ? " (a recorded forward awaits backward)" : "");
  printf("created:    %s\nlast used:  %s\n", created, used);
  if (s->saved_step < 0) {
    printf("saved:      never\n");
  } else {
    char saved[32];
    format_time(s->saved_unix_ms, saved, sizeof saved);
    printf("saved:      step %lld, %s\n", (long long)s->saved_step, saved);
  }
  if (s->save_error && *s->save_error) printf("save error: %s\n", s->save_error);
  for (size_t i = 0; i < s->n_parameters; i++) {
    const Traind__V1__ParameterInfo *p = s->parameters[i];
    printf("  %-30s %-8s ", p->name ? p->name : "",
           p->dtype == TRAIND__V1__DTYPE__INT64 ? "int64" : "float32");
    print_shape(p->shape, p->n_shape);
    printf("\n");
  }
  traind_message_free(s);
  return 0;
}

const tc_command tc_cmd_info = {
    .name = "info",
    .args = "ID",
    .min_pos = 1,
    .max_pos = 1,
    .summary = "show a session: mode, optimizer, step, parameter shapes",
    .help = "Prints what GetSession returns for the session ID, with one line per parameter\n"
            "(its state-dict key, dtype and shape).",
    .opts = no_options,
    .run = run_info,
};

/* ---------------------------------------------------------------- close */

static int run_close(tc_ctx *ctx) {
  int code = tc_connect(ctx);
  if (code) return code;
  traind_status st = traind_close_session(ctx->client, ctx->pos[0]);
  if (st.code) return tc_rpc_error(ctx, "CloseSession", &st);
  printf("closed %s\n", ctx->pos[0]);
  return 0;
}

const tc_command tc_cmd_close = {
    .name = "close",
    .args = "ID",
    .min_pos = 1,
    .max_pos = 1,
    .summary = "close a session and free its memory",
    .help = "Closes the session ID; its id is NOT_FOUND from then on.",
    .opts = no_options,
    .run = run_close,
};
