/* gradcheck.h - backward vs central finite differences. */
#ifndef TD_TESTS_GRADCHECK_H
#define TD_TESTS_GRADCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "common/op_case.h"

typedef struct gradcheck_result {
  bool ok;
  double worst;        /* worst |fd - an| / (1 + |an|) over checked elements */
  int checked;         /* elements compared */
  char message[512];   /* why it failed, or "" */
} gradcheck_result;

/* Runs case c with inputs from `seed`: analytic gradients through the
 * GradManager, numerical ones by perturbing each checked element of every
 * grad input (at most max_elems per input, spread evenly). */
td_status gradcheck_case(const op_case *c, uint64_t seed, int max_elems, gradcheck_result *r);

/* A stable seed from a case name (FNV-1a). */
uint64_t op_case_seed(const char *name);

#endif
