/* layer.h - one leaf Module message (every kind but sequential and residual)
 * as a checked engine config, its parameter count, and its construction.
 *
 * Reading validates every field against PyTorch's rules, naming it by path
 * ("model.sequential.modules[2].linear.in_features: must be > 0, got 0"),
 * and counts what the layer will allocate, all before any allocation: the
 * model builder reads the whole tree first, checks the totals against the
 * server's limits, and only then constructs.
 */
#ifndef TRAIND_SPEC_LAYER_H
#define TRAIND_SPEC_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "module/layers.h"
#include "spec/internal.h"
#include "traind/v1/trainer.pb-c.h"

typedef struct spec_layer {
  Traind__V1__Module__KindCase kind;
  union {
    td_linear_config linear;
    td_conv2d_config conv2d;
    td_batch_norm_config batch_norm;
    td_layer_norm_config layer_norm;
    td_pool2d_config pool;
    td_embedding_config embedding;
    float negative_slope; /* leaky_relu */
    int axis;             /* softmax */
    float p;              /* dropout */
    int output_size[2];   /* adaptive_avg_pool2d: h, w */
  };
  int64_t n_parameters; /* parameter elements it will create (saturating) */
  int64_t n_buffers;    /* buffer elements (batch-norm statistics) */
} spec_layer;

/* The kind's field name in Module ("linear", "batch_norm1d", ...), or NULL
 * for a case this server does not know. */
const char *spec_module_kind_name(Traind__V1__Module__KindCase kind);
/* "sequential, residual, linear, ..." for messages. */
const char *spec_module_kind_list(void);

/* Reads and checks m, a leaf kind (m->kind_case is neither sequential nor
 * residual, and known). `path` names m; the fields' paths extend it. */
td_status spec_layer_read(const Traind__V1__Module *m, spec_path *path, spec_layer *out);

/* Constructs the layer from what spec_layer_read filled, drawing its
 * initialisation from rng. *out: a new module owned by the caller. */
td_status spec_layer_construct(const spec_layer *l, td_rng *rng, td_module **out);

#endif
