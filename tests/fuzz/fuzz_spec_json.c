/* fuzz_spec_json.c - trainctl's JSON model spec (clients/c/trainctl/spec.c)
 * on arbitrary text: parse, map onto the proto, and hand the result to the
 * daemon's spec builder as CreateModel would. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "spec/spec.h"
#include "trainctl.h"

/* trainctl's reporting lives beside its main(); the fuzzer has its own main,
 * so these stand in: the message is formatted (as trainctl would print it)
 * and dropped. */
static void format_and_drop(const char *fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
}

int tc_usage_error(const tc_ctx *ctx, const char *fmt, ...) {
  (void)ctx;
  va_list ap;
  va_start(ap, fmt);
  format_and_drop(fmt, ap);
  va_end(ap);
  return TC_EXIT_USAGE;
}

int tc_fail(const tc_ctx *ctx, int code, const char *fmt, ...) {
  (void)ctx;
  va_list ap;
  va_start(ap, fmt);
  format_and_drop(fmt, ap);
  va_end(ap);
  return code;
}

const char *tc_opt(const tc_ctx *ctx, const char *name) {
  (void)ctx, (void)name;
  return NULL;
}

bool tc_opt_double(const tc_ctx *ctx, const char *name, double min, double max, double *out) {
  (void)ctx, (void)name, (void)min, (void)max, (void)out;
  return true;
}

static const spec_limits limits = {.max_parameters = 1 << 20, .max_tensor_elements = 1 << 18};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tc_ctx ctx = {.prog = "trainctl", .cmd = "create"};
  Traind__V1__CreateModelRequest *req;
  if (tc_parse_spec(&ctx, (const char *)data, size, "spec.json", &req)) return 0;
  td_module *model = NULL;
  if (req->model && !spec_build_model(req->model, req->seed, &limits, &model)) {
    spec_optimizer opt = {0};
    if (req->optimizer && !spec_build_optimizer(req->optimizer, model, &opt))
      td_optimizer_destroy(opt.optimizer);
    td_module_destroy(model);
  }
  traind_message_free(req);
  return 0;
}
