/* test_conv.c - conv2d: values on hand-checked inputs, gradients, and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/grad_manager.h"
#include "core/alloc.h"
#include "core/parallel.h"
#include "functional/conv.h"
#include "tensor/random.h"

#include "common/test_util.h"

static td_tensor *make(int ndim, const int64_t *shape, const float *values) {
  td_tensor *t;
  assert_int_equal(td_tensor_from_data(TD_FLOAT32, ndim, shape, values, &t), TD_OK);
  return t;
}

static td_tensor *iota4(int64_t n, int64_t c, int64_t h, int64_t w, float start) {
  int64_t shape[] = {n, c, h, w};
  td_tensor *t;
  assert_int_equal(td_tensor_empty(TD_FLOAT32, 4, shape, &t), TD_OK);
  for (int64_t i = 0; i < t->numel; i++)
    td_tensor_f32(t)[i] = start + (float)i;
  return t;
}

static td_tensor *filled4(int64_t n, int64_t c, int64_t h, int64_t w, float v) {
  int64_t shape[] = {n, c, h, w};
  td_tensor *t;
  assert_int_equal(td_tensor_full(TD_FLOAT32, 4, shape, v, &t), TD_OK);
  return t;
}

static void assert_values(const td_tensor *t, const float *want, int64_t n) {
  assert_int_equal(t->numel, n);
  for (int64_t i = 0; i < n; i++)
    assert_float_equal(td_tensor_f32(t)[i], want[i], 1e-4);
}

static const td_conv2d_params plain = {{1, 1}, {0, 0}, {1, 1}, 1};

static void test_conv_values(void **state) {
  (void)state;
  /* 3x3 image 1..9 with kernel [[1,0],[0,1]]: x[i][j] + x[i+1][j+1], + bias. */
  td_tensor *x = iota4(1, 1, 3, 3, 1), *y;
  int64_t sw[] = {1, 1, 2, 2}, sb[] = {1};
  float w[] = {1, 0, 0, 1}, b[] = {0.5f};
  td_tensor *tw = make(4, sw, w), *tb = make(1, sb, b);
  assert_int_equal(td_conv2d(x, tw, tb, &plain, &y), TD_OK);
  int64_t want_shape[] = {1, 1, 2, 2};
  assert_true(td_shape_equal(y->ndim, y->shape, 4, want_shape));
  float want[] = {6.5f, 8.5f, 12.5f, 14.5f};
  assert_values(y, want, 4);
  td_tensor_release(y);
  /* Dilation 2 spreads the same kernel over the corners: 1 + 9. */
  td_conv2d_params dil = {{1, 1}, {0, 0}, {2, 2}, 1};
  assert_int_equal(td_conv2d(x, tw, NULL, &dil, &y), TD_OK);
  float want_dil[] = {10};
  assert_values(y, want_dil, 1);
  td_tensor_release(y);
  td_tensor_release(x), td_tensor_release(tw), td_tensor_release(tb);
}

static void test_conv_stride_padding(void **state) {
  (void)state;
  /* Ones, 3x3 kernel of ones, padding 1, stride 2: every output window
   * covers a 2x2 corner of the image. */
  td_tensor *x = filled4(1, 1, 3, 3, 1), *w = filled4(1, 1, 3, 3, 1), *y;
  td_conv2d_params p = {{2, 2}, {1, 1}, {1, 1}, 1};
  assert_int_equal(td_conv2d(x, w, NULL, &p, &y), TD_OK);
  float want[] = {4, 4, 4, 4};
  assert_values(y, want, 4);
  td_tensor_release(y);
  /* Non-square: kernel 1x3, stride (1,2), padding (0,1) on a 2x4 image of 1..8. */
  td_tensor *x2 = iota4(1, 1, 2, 4, 1), *w2 = filled4(1, 1, 1, 3, 1);
  td_conv2d_params q = {{1, 2}, {0, 1}, {1, 1}, 1};
  assert_int_equal(td_conv2d(x2, w2, NULL, &q, &y), TD_OK);
  int64_t want_shape[] = {1, 1, 2, 2};
  assert_true(td_shape_equal(y->ndim, y->shape, 4, want_shape));
  float want2[] = {3, 9, 11, 21};
  assert_values(y, want2, 4);
  td_tensor_release(y);
  td_tensor_release(x), td_tensor_release(w), td_tensor_release(x2), td_tensor_release(w2);
}

static void test_conv_groups(void **state) {
  (void)state;
  /* Depthwise 1x1: each channel scaled by its own weight. */
  td_tensor *x = iota4(1, 2, 2, 2, 1), *y;
  int64_t sw[] = {2, 1, 1, 1};
  float w[] = {2, -1};
  td_tensor *tw = make(4, sw, w);
  td_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, 2};
  assert_int_equal(td_conv2d(x, tw, NULL, &p, &y), TD_OK);
  float want[] = {2, 4, 6, 8, -5, -6, -7, -8};
  assert_values(y, want, 8);
  td_tensor_release(y), td_tensor_release(x), td_tensor_release(tw);
}

/* Many output channels and a batch: the same result on every thread count
 * and against a direct sum (the threaded, tiled kernels against the definition). */
static void test_conv_matches_definition(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 7);
  int64_t sx[] = {3, 5, 6, 7}, sw[] = {9, 5, 3, 3}, sb[] = {9};
  td_tensor *x, *w, *b, *y;
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sx, -1, 1, &x), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sw, -1, 1, &w), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 1, sb, -1, 1, &b), TD_OK);
  td_conv2d_params p = {{2, 1}, {1, 2}, {1, 2}, 1};
  assert_int_equal(td_conv2d(x, w, b, &p, &y), TD_OK);
  int64_t oh = (6 + 2 - 2 - 1) / 2 + 1, ow = (7 + 4 - 4 - 1) / 1 + 1;
  assert_int_equal(y->shape[2], oh);
  assert_int_equal(y->shape[3], ow);
  const float *xp = td_tensor_f32(x), *wp = td_tensor_f32(w), *bp = td_tensor_f32(b);
  for (int64_t n = 0; n < 3; n++)
    for (int64_t o = 0; o < 9; o++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          double s = bp[o];
          for (int64_t c = 0; c < 5; c++)
            for (int64_t ki = 0; ki < 3; ki++)
              for (int64_t kj = 0; kj < 3; kj++) {
                int64_t iy = i * 2 - 1 + ki, ix = j - 2 + kj * 2;
                if (iy < 0 || iy >= 6 || ix < 0 || ix >= 7) continue;
                s += (double)xp[((n * 5 + c) * 6 + iy) * 7 + ix] *
                     wp[((o * 5 + c) * 3 + ki) * 3 + kj];
              }
          assert_float_equal(td_tensor_f32(y)[((n * 9 + o) * oh + i) * ow + j], s, 1e-4);
        }
  td_tensor_release(x), td_tensor_release(w), td_tensor_release(b), td_tensor_release(y);
}

/* One convolution with its gradients, against a double-precision sum of
 * the definition; each value within 1e-4 relative. in/k/st/pa/di are
 * (height, width) pairs. */
typedef struct conv_case {
  int64_t n, groups, cg, og, in[2], k[2], st[2], pa[2], di[2];
} conv_case;

static void check_conv_case(td_rng *rng, int trial, const conv_case *cc) {
  const int64_t n = cc->n, groups = cc->groups, cg = cc->cg, og = cc->og;
  const int64_t *in = cc->in, *k = cc->k, *st = cc->st, *pa = cc->pa, *di = cc->di;
  int64_t out[2];
  for (int a = 0; a < 2; a++)
    out[a] = (in[a] + 2 * pa[a] - ((k[a] - 1) * di[a] + 1)) / st[a] + 1;
  int64_t c = groups * cg, o = groups * og;
  int64_t sx[] = {n, c, in[0], in[1]}, sw[] = {o, cg, k[0], k[1]}, sb[] = {o};
  td_tensor *x, *w, *b, *y, *dy;
  assert_int_equal(td_tensor_rand_uniform(rng, 4, sx, -1, 1, &x), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(rng, 4, sw, -1, 1, &w), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(rng, 1, sb, -1, 1, &b), TD_OK);
  td_conv2d_params p = {
      {(int)st[0], (int)st[1]}, {(int)pa[0], (int)pa[1]}, {(int)di[0], (int)di[1]}, (int)groups};
  td_grad_manager *gm = record_grads(x, w, b);
  assert_int_equal(td_conv2d(x, w, b, &p, &y), TD_OK);
  assert_int_equal(y->shape[2], out[0]);
  assert_int_equal(y->shape[3], out[1]);
  assert_int_equal(td_tensor_rand_uniform(rng, 4, y->shape, -1, 1, &dy), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  double *gx = calloc((size_t)x->numel, sizeof(double)), *gw = calloc((size_t)w->numel, 8);
  double *gb = calloc((size_t)o, sizeof(double));
  const float *xp = td_tensor_f32(x), *wp = td_tensor_f32(w), *dp = td_tensor_f32(dy);
  for (int64_t s0 = 0; s0 < n; s0++)
    for (int64_t oc = 0; oc < o; oc++)
      for (int64_t i = 0; i < out[0]; i++)
        for (int64_t j = 0; j < out[1]; j++) {
          int64_t yi = ((s0 * o + oc) * out[0] + i) * out[1] + j, gi = oc / og;
          double acc = td_tensor_f32(b)[oc], g = dp[yi];
          gb[oc] += g;
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ki = 0; ki < k[0]; ki++)
              for (int64_t kj = 0; kj < k[1]; kj++) {
                int64_t iy = i * st[0] - pa[0] + ki * di[0], ix = j * st[1] - pa[1] + kj * di[1];
                if (iy < 0 || iy >= in[0] || ix < 0 || ix >= in[1]) continue;
                int64_t xi = ((s0 * c + gi * cg + ci) * in[0] + iy) * in[1] + ix;
                int64_t wi = ((oc * cg + ci) * k[0] + ki) * k[1] + kj;
                acc += (double)xp[xi] * wp[wi];
                gx[xi] += g * wp[wi];
                gw[wi] += g * xp[xi];
              }
          if (fabs(td_tensor_f32(y)[yi] - acc) > 1e-4 * (1 + fabs(acc)))
            fail_msg("trial %d: y[%lld] = %g, want %g", trial, (long long)yi, td_tensor_f32(y)[yi],
                     acc);
        }
  for (int64_t i = 0; i < x->numel; i++)
    if (fabs(td_tensor_f32(x->grad)[i] - gx[i]) > 1e-4 * (1 + fabs(gx[i])))
      fail_msg("trial %d: dx[%lld] = %g, want %g", trial, (long long)i, td_tensor_f32(x->grad)[i],
               gx[i]);
  for (int64_t i = 0; i < w->numel; i++)
    if (fabs(td_tensor_f32(w->grad)[i] - gw[i]) > 1e-4 * (1 + fabs(gw[i])))
      fail_msg("trial %d: dw[%lld] = %g, want %g", trial, (long long)i, td_tensor_f32(w->grad)[i],
               gw[i]);
  for (int64_t i = 0; i < o; i++)
    assert_float_equal(td_tensor_f32(b->grad)[i], gb[i], 1e-4 * (1 + fabs(gb[i])));
  free(gx), free(gw), free(gb);
  td_tensor_release(y), td_tensor_release(dy), td_gm_destroy(gm);
  td_tensor_release(x), td_tensor_release(w), td_tensor_release(b);
}

/* Random geometries (strides, dilations, paddings, kernels, groups, odd
 * sizes) through the whole op, forward and gradients, against sums over the
 * definition in double: the tiled kernels, their phases and padding margins
 * must agree with it everywhere, not only on the op cases' shapes. */
static void test_conv_random_geometries(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 2024);
  for (int trial = 0; trial < 60; trial++) {
    conv_case cc = {0};
    cc.groups = 1 + (int64_t)(td_rng_next_u64(&rng) % 2);
    cc.cg = 1 + (int64_t)(td_rng_next_u64(&rng) % 5);
    cc.og = 1 + (int64_t)(td_rng_next_u64(&rng) % 9);
    cc.n = 1 + (int64_t)(td_rng_next_u64(&rng) % 3);
    for (int a = 0; a < 2; a++) {
      cc.k[a] = 1 + (int64_t)(td_rng_next_u64(&rng) % 4);
      cc.st[a] = 1 + (int64_t)(td_rng_next_u64(&rng) % 3);
      cc.di[a] = 1 + (int64_t)(td_rng_next_u64(&rng) % 3);
      cc.pa[a] = (int64_t)(td_rng_next_u64(&rng) % 4);
      int64_t reach = (cc.k[a] - 1) * cc.di[a] + 1, least = reach - 2 * cc.pa[a];
      cc.in[a] = (least > 1 ? least : 1) + (int64_t)(td_rng_next_u64(&rng) % 7);
    }
    check_conv_case(&rng, trial, &cc);
  }
}

/* 24 random 3x3 convolutions of the given stride, with channels on each
 * side of least + step * (0, 1 or 2): odd and even sizes, every padding
 * the Winograd paths take, images smaller than a tile, and batches that
 * split into uneven chunks over 1 and 2 threads. */
static void check_winograd_cases(uint64_t seed, int64_t stride, int64_t least_channels,
                                 int64_t channel_step, int64_t max_extra_size) {
  td_rng rng;
  td_rng_seed(&rng, seed);
  int saved = td_get_num_threads();
  for (int trial = 0; trial < 24; trial++) {
    td_set_num_threads(1 + trial % 2);
    conv_case cc = {.groups = 1, .k = {3, 3}, .st = {stride, stride}, .di = {1, 1}};
    cc.cg = least_channels + channel_step * (int64_t)(td_rng_next_u64(&rng) % 3);
    cc.og = least_channels + channel_step * (int64_t)(td_rng_next_u64(&rng) % 3);
    cc.n = 1 + (int64_t)(td_rng_next_u64(&rng) % 5);
    for (int a = 0; a < 2; a++) {
      cc.pa[a] = (int64_t)(td_rng_next_u64(&rng) % 3);
      int64_t least = 3 - 2 * cc.pa[a];
      cc.in[a] = (least > 1 ? least : 1) + (int64_t)(td_rng_next_u64(&rng) % max_extra_size);
    }
    check_conv_case(&rng, trial, &cc);
  }
  td_set_num_threads(saved);
}

/* The stride-1 Winograd path: 3x3, 32+ channels each side. */
static void test_conv_winograd_geometries(void **state) {
  (void)state;
  check_winograd_cases(77, 1, 32, 3, 10);
}

/* The stride-2 Winograd path (conv_winograd_s2.c): 3x3, 16, 24 or 32
 * channels each side; sizes up to 18 give up to 5 tiles a side, with the
 * last input rows and columns inside the tiles or past them. */
static void test_conv_winograd_s2_geometries(void **state) {
  (void)state;
  check_winograd_cases(78, 2, 16, 8, 16);
}

/* The stride-2 Winograd path makes both gradients in one pass; asked for
 * one of them, it gives exactly what it gives with both. */
static void test_conv_winograd_s2_one_gradient(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 12);
  int64_t sx[] = {3, 16, 9, 10}, sw[] = {24, 16, 3, 3};
  td_tensor *x, *w, *dy = NULL, *both[2] = {NULL, NULL};
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sx, -1, 1, &x), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sw, -1, 1, &w), TD_OK);
  td_conv2d_params p = {{2, 2}, {1, 1}, {1, 1}, 1};
  for (int run = 0; run < 3; run++) { /* both, then x alone, then w alone */
    td_grad_manager *gm = run == 0   ? record_grads(x, w)
                          : run == 1 ? record_grads(x)
                                     : record_grads(w);
    td_tensor *y;
    assert_int_equal(td_conv2d(x, w, NULL, &p, &y), TD_OK);
    if (!dy) assert_int_equal(td_tensor_rand_uniform(&rng, 4, y->shape, -1, 1, &dy), TD_OK);
    assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
    td_tensor **got[2] = {&x->grad, &w->grad};
    for (int i = 0; i < 2; i++) {
      if (run == 0) {
        assert_non_null(*got[i]);
        both[i] = *got[i]; /* taken over, so the next run starts from no grad */
      } else if (run == 1 + i) {
        assert_memory_equal(td_tensor_f32(*got[i]), td_tensor_f32(both[i]),
                            sizeof(float) * (size_t)both[i]->numel);
        td_tensor_release(*got[i]);
      } else {
        assert_null(*got[i]);
      }
      *got[i] = NULL;
    }
    td_tensor_release(y);
    td_gm_destroy(gm);
  }
  release_tensors(x, w, dy, both[0], both[1]);
}

/* A Winograd path's buffers refused by the memory limit: the forward and
 * the backward fail with a message naming them, and nothing stays
 * allocated once the tensors are released. `room` is what the limit leaves
 * above the tensors: enough for y, dx and dW, not for the transformed
 * weights. */
static void check_winograd_out_of_memory(int64_t c, int64_t o, int64_t size, int stride,
                                         size_t room) {
  const size_t start = td_mem_in_use();
  td_rng rng;
  td_rng_seed(&rng, 9);
  int64_t sx[] = {1, c, size, size}, sw[] = {o, c, 3, 3};
  td_tensor *x, *w, *y = NULL, *dy;
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sx, -1, 1, &x), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sw, -1, 1, &w), TD_OK);
  td_conv2d_params p = {{stride, stride}, {1, 1}, {1, 1}, 1};
  size_t base = td_mem_in_use();
  td_mem_set_limit(base + room);
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_NO_MEMORY, "conv2d winograd buffers");
  td_mem_set_limit(0);
  assert_null(y);
  assert_int_equal(td_mem_in_use(), base);

  td_grad_manager *gm = record_grads(x, w);
  assert_int_equal(td_conv2d(x, w, NULL, &p, &y), TD_OK);
  assert_int_equal(td_tensor_full(TD_FLOAT32, 4, y->shape, 1.0f, &dy), TD_OK);
  td_mem_set_limit(td_mem_in_use() + room);
  assert_error(td_gm_backward(gm, y, dy), TD_ERR_NO_MEMORY, "conv2d winograd buffers");
  td_mem_set_limit(0);
  release_tensors(y, dy);
  td_gm_destroy(gm);
  release_tensors(x, w);
  assert_int_equal(td_mem_in_use(), start);
}

static void test_conv_winograd_out_of_memory(void **state) {
  (void)state;
  /* Stride 1, 32 -> 32 channels on 4x4: y 2 KiB, dx 2 KiB, dW 36 KiB; the
   * transformed weights alone take 64 KiB. */
  check_winograd_out_of_memory(32, 32, 4, 1, 64 << 10);
  /* Stride 2, 16 -> 16 channels on 8x8: y 1 KiB, dx 4 KiB, dW 9 KiB; the
   * transformed weights alone take 36 KiB. */
  check_winograd_out_of_memory(16, 16, 8, 2, 16 << 10);
}

/* 24 output channels are a pair of channel vectors and a single one, which
 * has its own tile (even and odd reduction rows on separate accumulators);
 * 3 input channels give an odd reduction length (27 rows), and an image 3
 * columns wide makes the position grid waste enough that the channel tiles
 * are taken. */
static void test_conv_single_vector_tile(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 31);
  const conv_case cc = {2, 1, 3, 24, {9, 3}, {3, 3}, {1, 1}, {1, 1}, {1, 1}};
  check_conv_case(&rng, 0, &cc);
}

/* A bias gradient large enough to be summed on two threads (2 MB of dY
 * and up), against a double-precision sum. */
static void test_conv_bias_grad_threads(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 21);
  int saved = td_get_num_threads();
  td_set_num_threads(2);
  int64_t sx[] = {2, 1, 130, 130}, sw[] = {17, 1, 3, 3}, sb[] = {17};
  td_tensor *x, *w, *b, *y, *dy;
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sx, -1, 1, &x), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, sw, -1, 1, &w), TD_OK);
  assert_int_equal(td_tensor_rand_uniform(&rng, 1, sb, -1, 1, &b), TD_OK);
  td_grad_manager *gm = record_grads(b);
  assert_int_equal(td_conv2d(x, w, b, &plain, &y), TD_OK);
  assert_true(y->numel >= (1 << 19));
  assert_int_equal(td_tensor_rand_uniform(&rng, 4, y->shape, -1, 1, &dy), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, dy), TD_OK);
  const int64_t plane = y->shape[2] * y->shape[3];
  for (int64_t o = 0; o < 17; o++) {
    double want = 0;
    for (int64_t n = 0; n < 2; n++)
      for (int64_t i = 0; i < plane; i++)
        want += td_tensor_f32(dy)[(n * 17 + o) * plane + i];
    assert_float_equal(td_tensor_f32(b->grad)[o], want, 1e-4 * (1 + fabs(want)));
  }
  td_set_num_threads(saved);
  release_tensors(y, dy);
  td_gm_destroy(gm);
  release_tensors(x, w, b);
}

/* Strided convolutions on rows long enough for the vector paths that write
 * a stride-2 phase of dX (and for the cost model to pick either tile
 * shape), odd and even widths, against the definition. */
static void test_conv_strided_wide_rows(void **state) {
  (void)state;
  td_rng rng;
  td_rng_seed(&rng, 5);
  /* n, groups, cg, og, input, kernel, stride, padding, dilation */
  const conv_case cases[] = {
      {2, 1, 3, 8, {34, 37}, {3, 3}, {2, 2}, {1, 1}, {1, 1}},
      {2, 1, 15, 32, {32, 41}, {3, 3}, {2, 2}, {1, 1}, {1, 1}}, /* below conv_winograd_s2 */
      {1, 1, 4, 4, {9, 50}, {1, 3}, {1, 2}, {0, 0}, {1, 1}},
  };
  for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
    check_conv_case(&rng, i, &cases[i]);
}

static void test_conv_gradients(void **state) {
  (void)state;
  /* y = 2x (1x1 kernel), dy = ones: dW = sum x, dX = 2, db = count. */
  int64_t sx[] = {1, 1, 2, 2}, sw[] = {1, 1, 1, 1}, sb[] = {1};
  float x[] = {1, 2, 3, 4}, w[] = {2}, b[] = {0};
  td_tensor *tx = make(4, sx, x), *tw = make(4, sw, w), *tb = make(1, sb, b), *y;
  td_grad_manager *gm = record_grads(tx, tw, tb);
  assert_int_equal(td_conv2d(tx, tw, tb, &plain, &y), TD_OK);
  assert_int_equal(td_gm_backward(gm, y, NULL), TD_OK);
  float gx[] = {2, 2, 2, 2}, gw[] = {10}, gb[] = {4};
  assert_values(tx->grad, gx, 4);
  assert_values(tw->grad, gw, 1);
  assert_values(tb->grad, gb, 1);
  td_tensor_release(y), td_gm_destroy(gm);
  td_tensor_release(tx), td_tensor_release(tw), td_tensor_release(tb);
}

static void test_conv_errors(void **state) {
  (void)state;
  td_tensor *x = filled4(1, 3, 5, 5, 0), *w = filled4(4, 3, 3, 3, 0), *y = NULL;
  td_conv2d_params p = plain;
  /* dtypes */
  int64_t s4[] = {1, 3, 5, 5}, s1[] = {4};
  td_tensor *xi, *bi;
  assert_int_equal(td_tensor_zeros(TD_INT64, 4, s4, &xi), TD_OK);
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, s1, &bi), TD_OK);
  assert_error(td_conv2d(xi, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: expected float32 input", "int64");
  assert_null(y);
  assert_error(td_conv2d(x, xi, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: expected float32 weight", "int64");
  assert_error(td_conv2d(x, w, bi, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: expected float32 bias", "int64");
  /* ranks */
  int64_t s3[] = {3, 5, 5};
  td_tensor *x3;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 3, s3, &x3), TD_OK);
  assert_error(td_conv2d(x3, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: expected a 4-d input", "[3,5,5]");
  assert_error(td_conv2d(x, x3, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: expected a 4-d weight", "[3,5,5]");
  /* params */
  p.stride[1] = 0;
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "conv2d: stride (1,0)",
               "must be >= 1");
  p = plain, p.dilation[0] = 0;
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "conv2d:", "dilation (0,1)");
  p = plain, p.padding[0] = -1;
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d:", "padding (-1,0) >= 0");
  p = plain, p.groups = 0;
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: groups must be >= 1, got 0");
  /* channels and groups */
  p = plain, p.groups = 2;
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: groups 2 must divide input channels 3",
               "(input [1,3,5,5], weight [4,3,3,3])");
  td_tensor *x4 = filled4(1, 4, 5, 5, 0), *w3 = filled4(3, 2, 3, 3, 0);
  assert_error(td_conv2d(x4, w3, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: groups 2 must divide", "output channels 3");
  td_tensor *w44 = filled4(4, 4, 3, 3, 0);
  p = plain;
  assert_error(td_conv2d(x, w44, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: input has 3 channels, weight expects 4",
               "(input [1,3,5,5], weight [4,4,3,3]");
  int64_t s5[] = {5};
  td_tensor *b5;
  assert_int_equal(td_tensor_zeros(TD_FLOAT32, 1, s5, &b5), TD_OK);
  assert_error(td_conv2d(x, w, b5, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: bias [5] does not match weight [4,3,3,3]", "want [4]");
  /* kernel larger than the padded input */
  td_tensor *small = filled4(1, 3, 2, 2, 0);
  assert_error(td_conv2d(small, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT, "conv2d: kernel 3x3",
               "larger than the padded input 2x2");
  p.dilation[0] = p.dilation[1] = 3;
  assert_error(td_conv2d(x, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: kernel 3x3 (dilation 3x3)", "padded input 5x5");
  /* sizes past BLAS's int range, refused before anything is allocated */
  p = plain;
  int64_t one[] = {1, 1, 1, 1}, big[] = {1, 1, 65536, 65536};
  float v = 1;
  td_tensor *o = make(4, one, &v), *hx, *w1 = make(4, one, &v);
  assert_int_equal(td_tensor_expand(o, 4, big, &hx), TD_OK);
  assert_error(td_conv2d(hx, w1, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: input [1,1,65536,65536]", "exceeds BLAS's int dimensions");
  /* missing arguments */
  assert_error(td_conv2d(NULL, w, NULL, &p, &y), TD_ERR_INVALID_ARGUMENT,
               "conv2d: input or weight is NULL");
  assert_error(td_conv2d(x, w, NULL, NULL, &y), TD_ERR_INVALID_ARGUMENT, "conv2d: params are NULL");
  td_tensor_release(x), td_tensor_release(w), td_tensor_release(xi), td_tensor_release(bi);
  td_tensor_release(x3), td_tensor_release(x4), td_tensor_release(w3), td_tensor_release(w44);
  td_tensor_release(b5), td_tensor_release(small), td_tensor_release(o), td_tensor_release(hx);
  td_tensor_release(w1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_values),
      cmocka_unit_test(test_conv_stride_padding),
      cmocka_unit_test(test_conv_groups),
      cmocka_unit_test(test_conv_matches_definition),
      cmocka_unit_test(test_conv_random_geometries),
      cmocka_unit_test(test_conv_winograd_geometries),
      cmocka_unit_test(test_conv_winograd_s2_geometries),
      cmocka_unit_test(test_conv_winograd_s2_one_gradient),
      cmocka_unit_test(test_conv_strided_wide_rows),
      cmocka_unit_test(test_conv_single_vector_tile),
      cmocka_unit_test(test_conv_bias_grad_threads),
      cmocka_unit_test(test_conv_winograd_out_of_memory),
      cmocka_unit_test(test_conv_gradients),
      cmocka_unit_test(test_conv_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
