/* gradcheck.c - finite-difference gradient checking.
 *
 * The scalar checked is f = sum(out * dy) for a fixed random dy, accumulated
 * in double so that the reference is limited by the op's float32 rounding
 * alone. The step is the float32 difference actually applied to the input
 * ((x + h) - (x - h) after rounding), not 2h.
 */
#include "common/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/grad_manager.h"

uint64_t op_case_seed(const char *name) {
  uint64_t h = 1469598103934665603ULL;
  for (; *name; name++) h = (h ^ (uint8_t)*name) * 1099511628211ULL;
  return h;
}

/* sum(out * dy) in double, out and dy any float32 views of one shape. */
static double dot(const td_tensor *out, const td_tensor *dy) {
  td_tensor *a, *b;
  if (td_tensor_clone(out, &a)) return NAN;
  if (td_tensor_clone(dy, &b)) {
    td_tensor_release(a);
    return NAN;
  }
  double s = 0;
  for (int64_t i = 0; i < a->numel; i++) s += (double)td_tensor_f32(a)[i] * td_tensor_f32(b)[i];
  td_tensor_release(a);
  td_tensor_release(b);
  return s;
}

/* Storage offset of logical element j of a view. */
static int64_t element_offset(const td_tensor *t, int64_t j) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (j % t->shape[d]) * t->strides[d];
    j /= t->shape[d];
  }
  return off;
}

static double f_at(const op_case *c, td_tensor **inputs, const td_tensor *dy) {
  td_tensor *out;
  if (c->run(inputs, &out)) return NAN;
  double v = dot(out, dy);
  td_tensor_release(out);
  return v;
}

td_status gradcheck_case(const op_case *c, uint64_t seed, int max_elems, gradcheck_result *r) {
  memset(r, 0, sizeof *r);
  r->ok = true;
  td_tensor *inputs[OP_CASE_MAX_INPUTS];
  td_status st = op_case_make_inputs(c, seed, inputs);
  if (st) return st;
  td_grad_manager *gm;
  td_tensor *out, *dy;
  if ((st = op_case_run(c, seed, inputs, true, &gm, &out, &dy))) goto done;

  double eps = c->fd_eps > 0 ? c->fd_eps : 1e-3, tol = c->fd_tol > 0 ? c->fd_tol : 1e-2;
  for (int i = 0; i < c->n_inputs && r->ok; i++) {
    if (!c->inputs[i].grad) continue;
    td_tensor *x = inputs[i];
    td_tensor *g = x->grad;
    if (!g) {
      snprintf(r->message, sizeof r->message, "input %d got no gradient", i);
      r->ok = false;
      break;
    }
    int64_t n = x->numel, step = n > max_elems ? (n + max_elems - 1) / max_elems : 1;
    float *base = x->storage->data;
    for (int64_t j = 0; j < n; j += step) {
      int64_t off = element_offset(x, j);
      float orig = base[off];
      float xp = orig + (float)eps, xm = orig - (float)eps;
      base[off] = xp;
      double fp = f_at(c, inputs, dy);
      base[off] = xm;
      double fm = f_at(c, inputs, dy);
      base[off] = orig;
      double fd = (fp - fm) / ((double)xp - (double)xm);
      double an = td_tensor_f32(g)[j];
      double err = fabs(fd - an) / (1 + fabs(an));
      r->checked++;
      if (err > r->worst) r->worst = err;
      if (!(err <= tol)) {
        snprintf(r->message, sizeof r->message,
                 "input %d element %lld: backward %.6g, finite difference %.6g (err %.3g > %.3g)",
                 i, (long long)j, an, fd, err, tol);
        r->ok = false;
        break;
      }
    }
  }
done:
  td_tensor_release(out);
  td_tensor_release(dy);
  td_gm_destroy(gm);
  for (int i = 0; i < c->n_inputs; i++) td_tensor_release(inputs[i]);
  return st;
}
