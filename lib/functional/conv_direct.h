/* conv_direct.h - conv2d's shape record and its direct (im2col-free) kernels.
 * Internal to lib/functional: conv.c validates, conv_direct.c computes. */
#ifndef TD_FUNCTIONAL_CONV_DIRECT_H
#define TD_FUNCTIONAL_CONV_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

/* Everything about one convolution's shapes, derived once from the inputs. */
typedef struct conv_geom {
  int64_t n, c, h, w; /* input [N, C, H, W] */
  int64_t o, kh, kw;  /* weight [O, C/groups, kh, kw] */
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t groups, cg, og; /* input and output channels per group */
  int64_t oh, ow;
  int64_t hw, ohw; /* plane sizes of input and output */
  int64_t kc;      /* reduction length per output: cg * kh * kw */
  bool unit;       /* 1x1, stride 1, no padding: the input is its own column matrix */
  int64_t chunk;   /* im2col path: samples whose columns go to one sgemm */
} conv_geom;

/* The range [lo, hi) of output positions whose tap lands inside [0, size):
 * 0 <= pos * stride + off < size, clipped to [0, n). */
static inline void conv_valid_range(int64_t off, int64_t stride, int64_t size, int64_t n,
                                    int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t h = size - off <= 0 ? 0 : (size - off + stride - 1) / stride;
  if (h > n) h = n;
  if (l > h) l = h;
  *lo = l, *hi = h;
}

/* Whether the direct kernels take this convolution (they need AVX2 + FMA at
 * build time and at least 4 output channels per group, or one group). */
bool td_conv_direct_supported(const conv_geom *g);

/* y [N, O, OH, OW] = conv(x, w) + bias (bias may be NULL); all contiguous.
 * Threads: td_get_num_threads(), at most one per sample. */
td_status td_conv_direct_forward(const conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y);

/* Whether td_conv_direct_input_grad takes it (also: stride area at most 64). */
bool td_conv_direct_input_grad_supported(const conv_geom *g);

/* dx [N, C, H, W] = the input gradient for output gradient dy. */
td_status td_conv_direct_input_grad(const conv_geom *g, const float *w, const float *dy, float *dx);

/* dw [O, C/groups, kh, kw] = the weight gradient for output gradient dy. */
td_status td_conv_direct_weight_grad(const conv_geom *g, const float *x, const float *dy,
                                     float *dw);

#endif
