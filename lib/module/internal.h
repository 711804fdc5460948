/* internal.h - shared by the files of lib/module only: the dotted-key walk
 * behind named_parameters/state_dict/load_state_dict, and the input checks
 * layers use to name themselves and the shapes in their messages. */
#ifndef TD_MODULE_INTERNAL_H
#define TD_MODULE_INTERNAL_H

#include "module/module.h"
#include "tensor/random.h"

enum {
  TD_WALK_PARAMS = 1,  /* each module's parameters ... */
  TD_WALK_BUFFERS = 2, /* ... then its buffers, then its children */
  TD_WALK_DETACH = 4,  /* new handles sharing storage instead of the tensors themselves */
};

/* Fills *out (initialised here) with the tree's tensors selected by flags,
 * under dotted keys in PyTorch's state_dict order. On error *out is empty. */
td_status td_module_collect_tensors(const td_module *m, unsigned flags, td_tensor_map *out);

/* "linear: expected float32 input, got int64 (input shape [2,3])". */
td_status td_layer_expect_dtype(const char *kind, const td_tensor *x, td_dtype dtype);

/* For [N, C, H, W] layers: x is float32, 4-d with `channels` channels (0:
 * any), and a k x k window with this padding and dilation fits in the padded
 * input (k == 0: no window to check). */
td_status td_layer_check_nchw(const char *kind, const td_tensor *x, int64_t channels, int k,
                              int padding, int dilation);

/* Constructors that draw initial weights need a generator. */
td_status td_layer_need_rng(const char *kind, const td_rng *rng);

#endif
