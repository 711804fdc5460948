/* ckpt_forward.c - loads a checkpoint written by PyTorch and runs a forward.
 *
 * usage: ckpt_forward WORKLOAD IN.safetensors OUT.safetensors
 *
 * IN holds the twin model's state_dict (as torch wrote it) plus "__input__";
 * the model is built with an unrelated seed, loaded with strict=true, put in
 * eval mode, and its output on __input__ is written to OUT as "output".
 */
#include <stdio.h>

#include "common/models.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: ckpt_forward WORKLOAD IN.safetensors OUT.safetensors\n");
    return 2;
  }
  td_module *model = NULL;
  test_model_info info;
  td_tensor_map in, out;
  td_tensor_map_init(&in);
  td_tensor_map_init(&out);
  td_tensor *y = NULL;
  td_load_result r = {0};
  td_status st = test_model_build(argv[1], 999, &model, &info);
  if (!st) st = td_safetensors_read_file(argv[2], &in);
  td_tensor *x = st ? NULL : td_tensor_map_get(&in, "__input__");
  if (!st && !x) st = td_error(TD_ERR_NOT_FOUND, "%s has no __input__", argv[2]);
  if (!st) {
    /* Everything but the input is the state_dict: strict load. */
    td_tensor_map sd;
    td_tensor_map_init(&sd);
    for (size_t i = 0; i < in.count && !st; i++)
      if (in.entries[i].tensor != x) st = td_tensor_map_put(&sd, in.entries[i].name, in.entries[i].tensor);
    if (!st) st = td_checkpoint_load_state(model, NULL, &sd, true, &r);
    td_tensor_map_free(&sd);
  }
  if (!st) {
    td_module_train(model, false);
    st = td_module_forward(model, x, &y);
  }
  if (!st) st = td_tensor_map_put(&out, "output", y);
  if (!st) st = td_safetensors_write_file(&out, argv[3]);
  if (st) fprintf(stderr, "ckpt_forward %s: %s: %s\n", argv[1], td_status_name(st), td_error_message());
  td_load_result_free(&r);
  td_tensor_release(y);
  td_tensor_map_free(&in);
  td_tensor_map_free(&out);
  td_module_destroy(model);
  return st ? 1 : 0;
}
