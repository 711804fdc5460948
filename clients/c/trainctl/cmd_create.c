/* trainctl: create (a session from a JSON model spec). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainctl.h"

int tc_build_request(const tc_ctx *ctx, Traind__V1__CreateModelRequest **out) {
  *out = NULL;
  const char *spec = tc_opt(ctx, "spec");
  if (!spec) return tc_usage_error(ctx, "missing --spec FILE.json (the model)");
  int64_t seed;
  if (!tc_opt_int(ctx, "seed", 0, INT64_MAX, &seed)) return TC_EXIT_USAGE;
  Traind__V1__CreateModelRequest *req;
  int code = tc_load_spec(ctx, spec, &req);
  if (code) return code;
  if ((code = tc_apply_optimizer_options(ctx, req))) {
    traind_message_free(req);
    return code;
  }
  if (tc_opt(ctx, "seed")) {
    req->has_seed = true;
    req->seed = (uint64_t)seed;
  }
  const char *name = tc_opt(ctx, "name");
  if (name) {
    char *copy = strdup(name);
    if (!copy) {
      traind_message_free(req);
      return tc_fail(ctx, TC_EXIT_FAILURE, "out of memory");
    }
    free(req->name);
    req->name = copy;
  }
  *out = req;
  return 0;
}

static const tc_option create_options[] = {
    {"spec", 0, true, "FILE.json", "the model (a Module, or {\"model\": ..., ...}); required"},
    {"optimizer", 0, true, "JSON|FILE|NAME",
     "the optimizer, e.g. '{\"adam\": {\"lr\": 0.001}}' (replaces the spec's)"},
    {"lr", 0, true, "LR", "the optimizer's learning rate (alone: SGD with this lr)"},
    {"seed", 0, true, "N", "seed of the initial weights and dropout (default: the spec's, or 0)"},
    {"name", 0, true, "NAME", "a name for humans, shown by `sessions`"},
    {NULL, 0, false, NULL, NULL},
};

static int run_create(tc_ctx *ctx) {
  Traind__V1__CreateModelRequest *req;
  int code = tc_build_request(ctx, &req);
  if (code) return code;
  Traind__V1__CreateModelResponse *resp = NULL;
  if (!(code = tc_connect(ctx))) {
    traind_status st = traind_create_model(ctx->client, req, &resp);
    if (st.code) code = tc_rpc_error(ctx, "CreateModel", &st);
  }
  traind_message_free(req);
  if (code) return code;
  printf("%s\n", resp->session_id);
  if (resp->info)
    fprintf(stderr, "created session %s: %lld parameters, optimizer %s\n", resp->session_id,
            (long long)resp->info->num_parameters,
            resp->info->optimizer && *resp->info->optimizer ? resp->info->optimizer : "none");
  traind_message_free(resp);
  return 0;
}

const tc_command tc_cmd_create = {
    .name = "create",
    .args = "--spec FILE.json [options]",
    .min_pos = 0,
    .max_pos = 0,
    .summary = "create a session from a JSON model spec",
    .help =
        "Builds the model (and optimizer) on the server and prints the new session id on stdout\n"
        "(alone, for scripts: ID=$(trainctl create --spec mlp.json --lr 0.1)). The spec format is\n"
        "described in clients/c/README.md; e.g.\n"
        "  {\"sequential\": [{\"linear\": {\"in_features\": 64, \"out_features\": 128}},\n"
        "                  \"relu\", {\"linear\": {\"in_features\": 128, \"out_features\": 10}}]}",
    .opts = create_options,
    .run = run_create,
};
