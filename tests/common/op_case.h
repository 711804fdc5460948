/* op_case.h - one table of op test cases, two checks.
 *
 * Every differentiable op is described once, as a list of cases: input
 * shapes and value ranges, which inputs get gradients, the params (as JSON,
 * for the PyTorch side) and a function that runs the op. Two programs walk
 * the same tables:
 *   - tests/unit/test_gradcheck.c compares backward with central finite
 *     differences of sum(out * dy), accumulated in double;
 *   - tests/parity/parity_dump.c writes inputs, dy, outputs and gradients,
 *     and tests/parity/parity.py recomputes them with PyTorch in float64.
 * The PyTorch side finds the op by `op` in tests/parity/torch_*.py.
 */
#ifndef TD_TESTS_OP_CASE_H
#define TD_TESTS_OP_CASE_H

#include <stdbool.h>

#include "autodiff/grad_manager.h"
#include "functional/functional.h"

#define OP_CASE_MAX_INPUTS 6

typedef struct op_case_input {
  int ndim;
  int64_t shape[TD_MAX_DIMS];
  td_dtype dtype;   /* float32 (default 0) or int64 */
  bool grad;        /* attach and check its gradient */
  /* float32: uniform in [lo, hi) (both 0 means [-1, 1)); int64: integers in
   * [lo, hi). */
  double lo, hi;
  /* float32 only: rejection-sample so no value is within `avoid_gap` of
   * avoid_at (keeps finite differences off kinks like relu's 0). */
  bool avoid;
  double avoid_at, avoid_gap;
  /* Pass a non-contiguous view of this input (a transposed copy, transposed
   * back), so kernels' strided paths are tested. Needs ndim >= 2. */
  bool strided;
} op_case_input;

typedef struct op_case {
  const char *name;        /* unique, e.g. "conv2d_groups_dilation" */
  const char *op;          /* key of the PyTorch mapping, e.g. "conv2d" */
  const char *params_json; /* JSON object given to the mapping ("{}" if none) */
  int n_inputs;
  op_case_input inputs[OP_CASE_MAX_INPUTS];
  /* Runs the op under test on the inputs (optional inputs may be NULL and
   * are then declared with ndim == -1). */
  td_status (*run)(td_tensor **inputs, td_tensor **out);
  /* gradcheck: finite-difference step and tolerance (0 = defaults 1e-3 and
   * 1e-2; the test passes when |fd - an| <= tol * (1 + |an|)). */
  double fd_eps, fd_tol;
  bool no_grad;            /* op has no gradient (argmax): forward parity only */
  bool skip_gradcheck;     /* random ops: parity only, where masks can be compared */
} op_case;

/* Each family file in tests/cases defines one NULL-name-terminated table. */
typedef struct op_case_family {
  const char *name;
  const op_case *cases;
} op_case_family;

/* All families, terminated by {NULL, NULL}. Families not linked in (a
 * partial build) are skipped. */
const op_case_family *op_case_families(void);

/* Creates the case's inputs from a seeded RNG (new references in inputs[]). */
td_status op_case_make_inputs(const op_case *c, uint64_t seed, td_tensor **inputs);

/* Runs c on its inputs under a new GradManager *gm. With `grad`, the inputs
 * the case marks are attached, the run recorded and backpropagated with
 * dy ~ N(0, 1) drawn from `seed`, so their gradients are in inputs[i]->grad.
 * *out and *dy (NULL without grad) are new references; all three are the
 * caller's to release, also on failure. */
td_status op_case_run(const op_case *c, uint64_t seed, td_tensor **inputs, bool grad,
                      td_grad_manager **gm, td_tensor **out, td_tensor **dy);

#endif
