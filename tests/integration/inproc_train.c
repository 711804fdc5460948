/* inproc_train.c - the in-process twin of a TrainStep run, for test_training.py.
 *
 *   inproc_train REQUEST.pb BATCHES.bin OUT.safetensors
 *
 * REQUEST.pb is a serialised CreateModelRequest; BATCHES.bin is a sequence of
 * serialised TrainStepRequests (input, target, loss), each preceded by its
 * length as a little-endian uint32. The model and optimizer are built by
 * server/spec exactly as the daemon builds them, each batch is trained with
 * the engine (record, forward, loss, backward, clip when set, step,
 * clear_grad) and the final model + optimizer state is written with
 * td_checkpoint_save. The test compares it with the daemon's StateDict.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/grad_manager.h"
#include "core/status.h"
#include "io/checkpoint.h"
#include "spec/spec.h"

/* The whole file in a malloc'd buffer (*len bytes); NULL on failure. */
static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  long size = -1;
  if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)size + 1);
  if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
    free(buf);
    buf = NULL;
  }
  if (!buf) fprintf(stderr, "inproc_train: cannot read %s: %s\n", path, strerror(errno));
  if (f) fclose(f);
  *len = buf ? (size_t)size : 0;
  return buf;
}

/* One TrainStep: what the daemon's handler does with the same request. */
static td_status train_step(td_module *model, td_grad_manager *gm, const spec_optimizer *opt,
                            const Traind__V1__TrainStepRequest *req, const spec_limits *limits) {
  td_tensor *x = NULL, *y = NULL, *out = NULL, *loss = NULL;
  td_status st = spec_tensor_from_proto(req->input, "input", limits, &x);
  if (!st) st = spec_tensor_from_proto(req->target, "target", limits, &y);
  if (!st) st = td_gm_record(gm);
  if (!st) st = td_module_forward(model, x, &out);
  if (!st) st = spec_compute_loss(req->loss, out, y, &loss);
  td_gm_pause(gm);
  if (!st) st = td_gm_backward(gm, loss, NULL);
  if (!st && opt->grad_clip_norm > 0) {
    float norm;
    st = td_optimizer_clip_grad_norm(opt->optimizer, opt->grad_clip_norm, &norm);
  }
  if (!st) st = td_optimizer_step(opt->optimizer);
  td_optimizer_clear_grad(opt->optimizer);
  td_gm_release(gm);
  td_tensor_release(x);
  td_tensor_release(y);
  td_tensor_release(out);
  td_tensor_release(loss);
  return st;
}

static int run(const char *request_path, const char *batches_path, const char *out_path) {
  size_t req_len = 0, batches_len = 0;
  uint8_t *req_bytes = read_file(request_path, &req_len);
  uint8_t *batches = req_bytes ? read_file(batches_path, &batches_len) : NULL;
  Traind__V1__CreateModelRequest *req = NULL;
  td_module *model = NULL;
  td_grad_manager *gm = NULL;
  spec_optimizer opt = {0};
  td_status st = TD_OK;
  int rc = 1, steps = 0;
  const spec_limits limits = {INT64_MAX, INT64_MAX};

  if (!batches) goto out;
  req = traind__v1__create_model_request__unpack(NULL, req_len, req_bytes);
  if (!req || !req->model || !req->optimizer) {
    fprintf(stderr, "inproc_train: %s: not a CreateModelRequest with model and optimizer\n",
            request_path);
    goto out;
  }
  st = spec_build_model(req->model, req->has_seed ? req->seed : 0, &limits, &model);
  if (!st) st = spec_build_optimizer(req->optimizer, model, &opt);
  if (!st) st = td_gm_create(&gm);
  if (!st) st = td_module_attach(model, gm);
  for (size_t pos = 0; !st && pos < batches_len; steps++) {
    uint32_t n;
    if (batches_len - pos < 4) break;
    memcpy(&n, batches + pos, 4); /* little-endian host (x86-64) */
    pos += 4;
    if (n > batches_len - pos) {
      fprintf(stderr, "inproc_train: %s: truncated at byte %zu\n", batches_path, pos);
      goto out;
    }
    Traind__V1__TrainStepRequest *step =
        traind__v1__train_step_request__unpack(NULL, n, batches + pos);
    pos += n;
    if (!step) {
      fprintf(stderr, "inproc_train: batch %d is not a TrainStepRequest\n", steps);
      goto out;
    }
    st = train_step(model, gm, &opt, step, &limits);
    traind__v1__train_step_request__free_unpacked(step, NULL);
  }
  if (!st) st = td_checkpoint_save(model, opt.optimizer, out_path);
  if (st) {
    fprintf(stderr, "inproc_train: step %d: %s: %s\n", steps, td_status_name(st),
            td_error_message());
    goto out;
  }
  rc = 0;
out:
  td_gm_destroy(gm);
  td_optimizer_destroy(opt.optimizer);
  td_module_destroy(model);
  if (req) traind__v1__create_model_request__free_unpacked(req, NULL);
  free(req_bytes);
  free(batches);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REQUEST.pb BATCHES.bin OUT.safetensors\n", argv[0]);
    return 2;
  }
  return run(argv[1], argv[2], argv[3]);
}
