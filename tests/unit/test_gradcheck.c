/* test_gradcheck.c - every op case's backward against finite differences. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/gradcheck.h"

static void test_all_cases(void **state) {
  (void)state;
  int failures = 0, total = 0;
  double worst = 0;
  const char *worst_name = "";
  const char *only = getenv("GRADCHECK_ONLY"); /* substring filter for debugging */
  for (const op_case_family *f = op_case_families(); f->name; f++) {
    for (const op_case *c = f->cases; c->name; c++) {
      if (c->no_grad || c->skip_gradcheck) continue;
      if (only && !strstr(c->name, only)) continue;
      gradcheck_result r;
      td_status st = gradcheck_case(c, op_case_seed(c->name), 256, &r);
      total++;
      if (st) {
        printf("FAIL %-40s %s: %s\n", c->name, td_status_name(st), td_error_message());
        failures++;
      } else if (!r.ok) {
        printf("FAIL %-40s %s\n", c->name, r.message);
        failures++;
      } else {
        printf("ok   %-40s %4d elems, worst %.2e\n", c->name, r.checked, r.worst);
        if (r.worst > worst) worst = r.worst, worst_name = c->name;
      }
    }
  }
  printf("gradcheck: %d cases, %d failed, worst %.2e (%s)\n", total, failures, worst, worst_name);
  assert_true(total > 0);
  assert_int_equal(failures, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_all_cases)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
