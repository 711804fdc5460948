/* test_autodiff.c - GradManager semantics (MegEngine's, as DESIGN.md states). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "functional/functional.h"

/* loss = sum(x * w) + sum(w), so dloss/dw = x + 1 and dloss/dx = w. */
static td_tensor *forward(td_tensor *x, td_tensor *w) {
  td_tensor *xw, *s1, *s2, *loss;
  assert_int_equal(td_mul(x, w, &xw), TD_OK);
  assert_int_equal(td_sum(xw, NULL, 0, false, &s1), TD_OK);
  assert_int_equal(td_sum(w, NULL, 0, false, &s2), TD_OK);
  assert_int_equal(td_add(s1, s2, &loss), TD_OK);
  td_tensor_release(xw);
  td_tensor_release(s1);
  td_tensor_release(s2);
  return loss;
}

typedef struct fixture {
  td_grad_manager *gm;
  td_tensor *x, *w;
} fixture;

static int setup(void **state) {
  static fixture f;
  const float xv[] = {1, 2, 3}, wv[] = {0.5f, -1, 2};
  f.x = vec_f32(3, xv);
  f.w = vec_f32(3, wv);
  assert_int_equal(td_gm_create(&f.gm), TD_OK);
  assert_int_equal(td_gm_attach(f.gm, f.w), TD_OK);
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  td_gm_destroy(f->gm);
  td_tensor_release(f->x);
  td_tensor_release(f->w);
  return 0;
}

static void test_backward_accumulates_into_attached_only(void **state) {
  fixture *f = *state;
  for (int round = 1; round <= 2; round++) {
    assert_int_equal(td_gm_record(f->gm), TD_OK);
    td_tensor *loss = forward(f->x, f->w);
    assert_true(td_gm_tape_length(f->gm) > 0);
    assert_int_equal(td_gm_backward(f->gm, loss, NULL), TD_OK);
    td_tensor_release(loss);
    /* grad += new: after `round` backwards, grad = round * (x + 1). */
    for (int i = 0; i < 3; i++)
      assert_float_equal(td_tensor_f32(f->w->grad)[i], round * (td_tensor_f32(f->x)[i] + 1), 1e-6);
  }
  assert_null(f->x->grad); /* not attached: no grad */
  assert_int_equal(td_gm_tape_length(f->gm), 0);
  assert_int_equal(td_gm_tape_bytes(f->gm), 0);
}

static void test_backward_needs_a_recording(void **state) {
  fixture *f = *state;
  td_tensor *loss = forward(f->x, f->w); /* not recorded */
  assert_error(td_gm_backward(f->gm, loss, NULL), TD_ERR_FAILED_PRECONDITION, "nothing recorded");
  td_tensor_release(loss);

  assert_int_equal(td_gm_record(f->gm), TD_OK);
  loss = forward(f->x, f->w);
  assert_int_equal(td_gm_backward(f->gm, loss, NULL), TD_OK);
  /* The recording is consumed: a second backward is an error, grads unchanged. */
  float before = td_tensor_f32(f->w->grad)[0];
  assert_error(td_gm_backward(f->gm, loss, NULL), TD_ERR_FAILED_PRECONDITION, "already consumed");
  assert_float_equal(td_tensor_f32(f->w->grad)[0], before, 0);
  td_tensor_release(loss);
}

static void test_bad_dy_keeps_the_tape(void **state) {
  fixture *f = *state;
  assert_int_equal(td_gm_record(f->gm), TD_OK);
  td_tensor *y = NULL;
  assert_int_equal(td_mul(f->x, f->w, &y), TD_OK); /* y [3] */
  td_gm_pause(f->gm);
  const float dv[] = {1, 1};
  td_tensor *bad = vec_f32(2, dv);
  assert_error(td_gm_backward(f->gm, y, bad), TD_ERR_INVALID_ARGUMENT, "[2]", "[3]");
  assert_null(f->w->grad);
  assert_true(td_gm_has_tape(f->gm));
  /* Retry with a correct dy works: dL/dw = dy * x. */
  const float dv3[] = {1, 10, 100};
  td_tensor *dy = vec_f32(3, dv3);
  assert_int_equal(td_gm_backward(f->gm, y, dy), TD_OK);
  assert_float_equal(td_tensor_f32(f->w->grad)[2], 300, 1e-5);
  td_tensor_release(bad);
  td_tensor_release(dy);
  td_tensor_release(y);
}

static void test_pause_stops_recording(void **state) {
  fixture *f = *state;
  assert_int_equal(td_gm_record(f->gm), TD_OK);
  td_tensor *y, *z;
  assert_int_equal(td_mul(f->x, f->w, &y), TD_OK);
  int len = td_gm_tape_length(f->gm);
  td_gm_pause(f->gm);
  assert_false(td_gm_is_recording(f->gm));
  assert_int_equal(td_mul(y, f->w, &z), TD_OK);
  assert_int_equal(td_gm_tape_length(f->gm), len);
  /* z was computed while paused: it is not part of the recording. */
  assert_int_equal(td_gm_backward(f->gm, z, NULL), TD_ERR_INVALID_ARGUMENT);
  assert_int_equal(td_gm_resume(f->gm), TD_OK);
  td_tensor_release(z);
  assert_int_equal(td_mul(y, f->w, &z), TD_OK);
  assert_int_equal(td_gm_tape_length(f->gm), len + 1);
  td_gm_release(f->gm);
  assert_false(td_gm_has_tape(f->gm));
  td_tensor_release(y);
  td_tensor_release(z);
}

static void test_in_place_change_after_forward_is_refused(void **state) {
  fixture *f = *state;
  assert_int_equal(td_gm_record(f->gm), TD_OK);
  td_tensor *loss = forward(f->x, f->w);
  td_gm_pause(f->gm);
  /* An optimizer step between forward and backward changes w in place. */
  assert_int_equal(td_tensor_fill_(f->w, 0.25), TD_OK);
  assert_error(td_gm_backward(f->gm, loss, NULL), TD_ERR_FAILED_PRECONDITION, "modified in place");
  assert_null(f->w->grad);
  td_tensor_release(loss);
}

static void test_attach_rejects_integers_and_recording(void **state) {
  fixture *f = *state;
  int64_t n = 2;
  td_tensor *idx;
  assert_int_equal(td_tensor_zeros(TD_INT64, 1, &n, &idx), TD_OK);
  assert_error(td_gm_attach(f->gm, idx), TD_ERR_INVALID_ARGUMENT, "int64");
  assert_int_equal(td_gm_record(f->gm), TD_OK);
  assert_int_equal(td_gm_attach(f->gm, f->x), TD_ERR_FAILED_PRECONDITION);
  td_gm_release(f->gm);
  assert_int_equal(td_gm_attach(f->gm, f->x), TD_OK);
  assert_int_equal(td_gm_attach(f->gm, f->x), TD_OK); /* twice: no-op */
  assert_int_equal(td_gm_num_attached(f->gm), 2);
  td_tensor_release(idx);
}

static void test_shared_subexpression_accumulates(void **state) {
  fixture *f = *state;
  /* y = w * w  (same tensor twice): dy/dw = 2w. */
  assert_int_equal(td_gm_record(f->gm), TD_OK);
  td_tensor *y, *s;
  assert_int_equal(td_mul(f->w, f->w, &y), TD_OK);
  assert_int_equal(td_sum(y, NULL, 0, false, &s), TD_OK);
  assert_int_equal(td_gm_backward(f->gm, s, NULL), TD_OK);
  for (int i = 0; i < 3; i++)
    assert_float_equal(td_tensor_f32(f->w->grad)[i], 2 * td_tensor_f32(f->w)[i], 1e-6);
  td_tensor_release(y);
  td_tensor_release(s);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_backward_accumulates_into_attached_only),
      T(test_backward_needs_a_recording),
      T(test_bad_dy_keeps_the_tape),
      T(test_pause_stops_recording),
      T(test_in_place_change_after_forward_is_refused),
      T(test_attach_rejects_integers_and_recording),
      T(test_shared_subexpression_accumulates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
