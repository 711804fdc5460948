/* test_cancel.c - the per-thread cancellation check (core/cancel.h): polled
 * at every op and every backward step, failing cleanly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "autodiff/grad_manager.h"
#include "common/test_util.h"
#include "core/cancel.h"
#include "functional/functional.h"

/* Says stop once it has been asked `budget` times. */
typedef struct countdown {
  int polls, budget;
} countdown;

static bool after_budget(void *arg) {
  countdown *c = arg;
  return ++c->polls > c->budget;
}

static void test_no_check_no_effect(void **state) {
  (void)state;
  td_cancel_set(NULL, NULL);
  assert_int_equal(td_cancel_poll(), TD_OK);
}

static void test_op_refused_once_cancelled(void **state) {
  (void)state;
  const float v[] = {1, 2, 3};
  td_tensor *x = vec_f32(3, v), *y = NULL;
  countdown c = {0, 1};
  td_cancel_set(after_budget, &c);
  assert_int_equal(td_exp(x, &y), TD_OK); /* the first op still runs */
  td_tensor_release(y);
  y = NULL;
  assert_int_equal(td_exp(x, &y), TD_ERR_CANCELLED);
  assert_null(y);
  assert_message_has("cancelled");
  td_cancel_set(NULL, NULL);
  assert_int_equal(td_exp(x, &y), TD_OK); /* removed: ops run again */
  td_tensor_release(y);
  td_tensor_release(x);
}

/* A backward stopped halfway changes no gradient and keeps the recording,
 * so that the same backward can run again. */
static void test_backward_cancelled_changes_nothing(void **state) {
  (void)state;
  const float xv[] = {1, 2, 3}, wv[] = {0.5f, -1, 2};
  td_tensor *x = vec_f32(3, xv), *w = vec_f32(3, wv);
  td_grad_manager *gm;
  assert_int_equal(td_gm_create(&gm), TD_OK);
  assert_int_equal(td_gm_attach(gm, w), TD_OK);
  assert_int_equal(td_gm_record(gm), TD_OK);
  td_tensor *xw, *h, *loss;
  assert_int_equal(td_mul(x, w, &xw), TD_OK);
  assert_int_equal(td_exp(xw, &h), TD_OK);
  assert_int_equal(td_sum(h, NULL, 0, false, &loss), TD_OK);
  td_gm_pause(gm);

  countdown c = {0, 1}; /* the first backward step runs, the second is refused */
  td_cancel_set(after_budget, &c);
  assert_int_equal(td_gm_backward(gm, loss, NULL), TD_ERR_CANCELLED);
  td_cancel_set(NULL, NULL);
  assert_null(w->grad);
  assert_true(td_gm_has_tape(gm));

  assert_int_equal(td_gm_backward(gm, loss, NULL), TD_OK);
  assert_non_null(w->grad);
  for (int i = 0; i < 3; i++) /* d/dw sum(exp(x*w)) = x * exp(x*w) */
    assert_float_equal(td_tensor_f32(w->grad)[i], xv[i] * expf(xv[i] * wv[i]), 1e-4);
  td_tensor_release(xw);
  td_tensor_release(h);
  td_tensor_release(loss);
  td_gm_destroy(gm);
  td_tensor_release(x);
  td_tensor_release(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_check_no_effect),
      cmocka_unit_test(test_op_refused_once_cancelled),
      cmocka_unit_test(test_backward_cancelled_changes_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
