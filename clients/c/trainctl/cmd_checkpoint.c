/* trainctl: checkpoint (download a session's safetensors file) and load (upload one). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "trainctl.h"

static const tc_option checkpoint_options[] = {
    {"output", 'o', true, "FILE", "where to write the .safetensors file (required)"},
    {"include-optimizer", 0, false, NULL,
     "also save the optimizer's and dropout's state (\"optimizer/\", \"rng/\" keys) for an "
     "exact resume"},
    {NULL, 0, false, NULL, NULL},
};

static int run_checkpoint(tc_ctx *ctx) {
  const char *path = tc_opt(ctx, "output");
  if (!path) return tc_usage_error(ctx, "missing -o FILE (where to write the checkpoint)");
  int code = tc_connect(ctx);
  if (code) return code;
  size_t len = 0;
  traind_status st = traind_state_dict_to_file(ctx->client, ctx->pos[0],
                                               tc_flag(ctx, "include-optimizer"), path, &len);
  if (st.code) return tc_rpc_error(ctx, "StateDict", &st);
  printf("wrote %s (%zu bytes)\n", path, len);
  return 0;
}

const tc_command tc_cmd_checkpoint = {
    .name = "checkpoint",
    .args = "ID -o FILE.safetensors",
    .min_pos = 1,
    .max_pos = 1,
    .summary = "download a session's checkpoint",
    .help =
        "Writes the session's state dict as a safetensors file (atomically: FILE is replaced only\n"
        "once complete). It is PyTorch's state_dict for the same architecture, so in Python\n"
        "  net.load_state_dict(safetensors.torch.load_file(FILE))   # strict\n"
        "With --include-optimizer it also holds \"optimizer/\" and \"rng/\" keys; drop those\n"
        "before loading into torch.",
    .opts = checkpoint_options,
    .run = run_checkpoint,
};

static const tc_option load_options[] = {
    {"no-strict", 0, false, NULL,
     "accept missing and unexpected keys (they are listed); shapes must still match"},
    {NULL, 0, false, NULL, NULL},
};

static void print_keys(const char *what, char **keys, size_t n) {
  if (!n) return;
  printf("%s keys (%zu):", what, n);
  for (size_t i = 0; i < n; i++)
    printf(" %s", keys[i]);
  printf("\n");
}

static int run_load(tc_ctx *ctx) {
  FILE *f = fopen(ctx->pos[1], "rb"); /* a missing file is a bad argument, not a failed call */
  if (!f) return tc_usage_error(ctx, "cannot open %s: %s", ctx->pos[1], strerror(errno));
  fclose(f);
  int code = tc_connect(ctx);
  if (code) return code;
  Traind__V1__LoadStateDictResponse *resp;
  traind_status st = traind_load_state_dict_from_file(
      ctx->client, ctx->pos[0], !tc_flag(ctx, "no-strict"), ctx->pos[1], &resp);
  if (st.code) return tc_rpc_error(ctx, "LoadStateDict", &st);
  printf("loaded %s into %s\n", ctx->pos[1], ctx->pos[0]);
  print_keys("missing", resp->missing_keys, resp->n_missing_keys);
  print_keys("unexpected", resp->unexpected_keys, resp->n_unexpected_keys);
  traind_message_free(resp);
  return 0;
}

const tc_command tc_cmd_load = {
    .name = "load",
    .args = "ID FILE.safetensors",
    .min_pos = 2,
    .max_pos = 2,
    .summary = "upload a checkpoint into a session",
    .help =
        "Loads a safetensors file (one written by `trainctl checkpoint`, or a PyTorch state_dict\n"
        "saved with safetensors) into the session ID, all-or-nothing. Strict by default, as\n"
        "torch's load_state_dict: every key must match. A file with \"optimizer/\" keys also\n"
        "restores the optimizer.",
    .opts = load_options,
    .run = run_load,
};
