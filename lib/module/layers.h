/* layers.h - every concrete module and its constructor (torch.nn's layers).
 *
 * Constructors take a config struct where a layer has hyperparameters. A zero
 * field means PyTorch's default where that is unambiguous (eps, momentum,
 * stride, dilation, groups); booleans are phrased so that false is PyTorch's
 * default (no_bias = false means a bias, as nn.Linear(bias=True)). Invalid
 * hyperparameters are INVALID_ARGUMENT naming the layer and the value; a
 * failed constructor leaves *out NULL.
 *
 * Layers with random initialisation take a td_rng and draw from it in
 * construction order, with PyTorch's algorithms (kaiming_uniform_(a=sqrt(5))
 * for weights, so U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the same bound for
 * biases; N(0, 1) for embeddings): the same seed gives the same weights.
 *
 * Every *out is a new module the caller frees with td_module_destroy (or
 * hands to a container, which then owns it).
 */
#ifndef TD_MODULE_LAYERS_H
#define TD_MODULE_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "module/module.h"
#include "tensor/random.h"

/* ---- containers ----------------------------------------------------- */

/* An empty Sequential; forward chains the children (no children: identity). */
td_status td_module_sequential(td_module **out);
/* Appends child to seq. Its key is `name` when non-NULL and non-empty, else
 * its index among seq's children ("0", "1", ...). Takes ownership of child in
 * every case (destroyed on failure); a child already in a tree is refused and
 * left there. */
td_status td_sequential_append(td_module *seq, const char *name, td_module *child);

/* output = body(x) + shortcut(x); shortcut NULL means identity (and adds no
 * state-dict keys). The two outputs must have the same shape (no
 * broadcasting: a mismatch is a bug in the model, reported with both shapes).
 * Children are keyed "body" and "shortcut". Takes ownership of body and
 * shortcut in every case, as td_sequential_append does. */
td_status td_module_residual(td_module *body, td_module *shortcut, td_module **out);

/* ---- linear and convolution ------------------------------------------- */

typedef struct td_linear_config {
  int64_t in_features;  /* > 0 */
  int64_t out_features; /* > 0 */
  bool no_bias;
} td_linear_config;

/* weight [out, in], bias [out]. Input [..., in] -> [..., out]. */
td_status td_module_linear(const td_linear_config *cfg, td_rng *rng, td_module **out);

typedef struct td_conv2d_config {
  int64_t in_channels;  /* > 0, divisible by groups */
  int64_t out_channels; /* > 0, divisible by groups */
  int kernel_size;      /* > 0 (square kernels) */
  int stride;           /* 0: 1 */
  int padding;          /* >= 0, zeros */
  int dilation;         /* 0: 1 */
  int groups;           /* 0: 1 */
  bool no_bias;
} td_conv2d_config;

/* weight [out, in/groups, k, k], bias [out]. Input [N, in, H, W]. */
td_status td_module_conv2d(const td_conv2d_config *cfg, td_rng *rng, td_module **out);

/* ---- normalisation ---------------------------------------------------- */

typedef struct td_batch_norm_config {
  int64_t num_features;  /* > 0 */
  float eps;             /* 0: 1e-5; > 0 */
  float momentum;        /* 0: 0.1; in (0, 1] */
  bool no_affine;        /* affine=False: no weight and bias */
  bool no_running_stats; /* track_running_stats=False: always batch statistics */
} td_batch_norm_config;

/* Keys: weight, bias (affine), running_mean, running_var, num_batches_tracked
 * (int64 0-d; tracked stats). Training forward normalises with the batch
 * statistics and updates the running ones; eval uses the running ones.
 * 1d takes [N, C] or [N, C, L]; 2d takes [N, C, H, W]. */
td_status td_module_batch_norm1d(const td_batch_norm_config *cfg, td_module **out);
td_status td_module_batch_norm2d(const td_batch_norm_config *cfg, td_module **out);

typedef struct td_layer_norm_config {
  int normalized_ndim;                   /* 1 .. TD_MAX_DIMS */
  int64_t normalized_shape[TD_MAX_DIMS]; /* each > 0 */
  float eps;                             /* 0: 1e-5; > 0 */
  bool no_elementwise_affine;
} td_layer_norm_config;

/* Normalises over the trailing dims, which must equal normalized_shape.
 * weight (ones) and bias (zeros) have normalized_shape. */
td_status td_module_layer_norm(const td_layer_norm_config *cfg, td_module **out);

/* ---- activations (any shape, float32) ---------------------------------- */

#define TD_LEAKY_RELU_DEFAULT_SLOPE 0.01f

td_status td_module_relu(td_module **out);
td_status td_module_leaky_relu(float negative_slope, td_module **out);
td_status td_module_sigmoid(td_module **out);
td_status td_module_tanh(td_module **out);
td_status td_module_gelu(td_module **out);
td_status td_module_silu(td_module **out);
/* Softmax along `axis` (negative counts from the end; checked at forward). */
td_status td_module_softmax(int axis, td_module **out);

/* ---- pooling (NCHW) ------------------------------------------------------ */

typedef struct td_pool2d_config {
  int kernel_size; /* > 0 (square) */
  int stride;      /* 0: kernel_size (PyTorch's stride=None) */
  int padding;     /* 0 .. kernel_size / 2 */
} td_pool2d_config;

td_status td_module_max_pool2d(const td_pool2d_config *cfg, td_module **out);
td_status td_module_avg_pool2d(const td_pool2d_config *cfg, td_module **out);
/* Output [N, C, out_h, out_w]; both > 0. */
td_status td_module_adaptive_avg_pool2d(int out_h, int out_w, td_module **out);

/* ---- the rest ------------------------------------------------------------ */

/* Inverted dropout with probability p in [0, 1] (1 zeroes everything).
 * Identity in eval. Owns its own generator, seeded from one draw of rng, so
 * the model seed fixes the masks. */
td_status td_module_dropout(float p, td_rng *rng, td_module **out);

/* nn.Flatten(): dims 1.. merged, [N, ...] -> [N, prod(...)]. */
td_status td_module_flatten(td_module **out);

typedef struct td_embedding_config {
  int64_t num_embeddings; /* > 0 */
  int64_t embedding_dim;  /* > 0 */
} td_embedding_config;

/* weight [num_embeddings, embedding_dim] ~ N(0, 1). Input: int64 indices of
 * any shape -> [..., embedding_dim]. */
td_status td_module_embedding(const td_embedding_config *cfg, td_rng *rng, td_module **out);

/* Returns its input (a new reference to the same tensor). */
td_status td_module_identity(td_module **out);

#endif
