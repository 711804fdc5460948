/* schedule.c - closed-form LR schedules (StepLR, MultiStepLR, cosine, warm-up). */
#include "optimizer/schedule.h"

#include <math.h>
#include <string.h>

/* Python's math.pi; M_PI needs feature macros we do not want to rely on. */
static const double PI = 3.141592653589793;

td_lr_schedule td_lr_constant(void) {
  td_lr_schedule s;
  memset(&s, 0, sizeof s);
  s.kind = TD_LR_CONSTANT;
  s.gamma = 0.1;
  s.warmup_start_factor = 1.0 / 3; /* torch's LinearLR default */
  return s;
}

td_lr_schedule td_lr_step(int64_t step_size, double gamma) {
  td_lr_schedule s = td_lr_constant();
  s.kind = TD_LR_STEP;
  s.step_size = step_size;
  s.gamma = gamma;
  return s;
}

td_lr_schedule td_lr_cosine(int64_t t_max, double eta_min) {
  td_lr_schedule s = td_lr_constant();
  s.kind = TD_LR_COSINE;
  s.t_max = t_max;
  s.eta_min = eta_min;
  return s;
}

td_lr_schedule td_lr_multistep(const int64_t *milestones, int n, double gamma) {
  td_lr_schedule s = td_lr_constant();
  s.kind = TD_LR_MULTISTEP;
  s.gamma = gamma;
  /* n is kept as given, so that td_lr_schedule_validate reports a count that
   * does not fit instead of the schedule silently losing milestones */
  s.n_milestones = n;
  for (int i = 0; i < n && i < TD_LR_MAX_MILESTONES; i++)
    s.milestones[i] = milestones[i];
  return s;
}

const char *td_lr_schedule_kind_name(td_lr_schedule_kind kind) {
  switch (kind) {
  case TD_LR_CONSTANT: return "constant";
  case TD_LR_STEP: return "step";
  case TD_LR_MULTISTEP: return "multistep";
  case TD_LR_COSINE: return "cosine";
  }
  return "?";
}

td_status td_lr_schedule_validate(const td_lr_schedule *s) {
  const char *k = td_lr_schedule_kind_name(s->kind);
  switch (s->kind) {
  case TD_LR_CONSTANT: break;
  case TD_LR_STEP:
    if (s->step_size < 1)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "lr schedule step: invalid step_size %lld (expected >= 1)",
                      (long long)s->step_size);
    break;
  case TD_LR_MULTISTEP:
    if (s->n_milestones < 0 || s->n_milestones > TD_LR_MAX_MILESTONES)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "lr schedule multistep: invalid n_milestones %d (expected 0..%d)",
                      s->n_milestones, TD_LR_MAX_MILESTONES);
    for (int i = 0; i < s->n_milestones; i++) {
      if (s->milestones[i] < 0)
        return td_error(TD_ERR_INVALID_ARGUMENT,
                        "lr schedule multistep: invalid milestones[%d] %lld (expected >= 0)", i,
                        (long long)s->milestones[i]);
      if (i > 0 && s->milestones[i] < s->milestones[i - 1])
        return td_error(TD_ERR_INVALID_ARGUMENT,
                        "lr schedule multistep: milestones must not decrease (milestones[%d] = "
                        "%lld after %lld)",
                        i, (long long)s->milestones[i], (long long)s->milestones[i - 1]);
    }
    break;
  case TD_LR_COSINE:
    if (s->t_max < 1)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "lr schedule cosine: invalid t_max %lld (expected >= 1)",
                      (long long)s->t_max);
    if (!(s->eta_min >= 0) || !isfinite(s->eta_min))
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "lr schedule cosine: invalid eta_min %g (expected a finite value >= 0)",
                      s->eta_min);
    break;
  default: return td_error(TD_ERR_INVALID_ARGUMENT, "lr schedule: unknown kind %d", (int)s->kind);
  }
  if ((s->kind == TD_LR_STEP || s->kind == TD_LR_MULTISTEP) &&
      (!(s->gamma >= 0) || !isfinite(s->gamma)))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "lr schedule %s: invalid gamma %g (expected a finite value >= 0)", k, s->gamma);
  if (s->warmup_steps < 0)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "lr schedule %s: invalid warmup_steps %lld (expected >= 0)", k,
                    (long long)s->warmup_steps);
  if (s->warmup_steps > 0 && !(s->warmup_start_factor > 0 && s->warmup_start_factor <= 1))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "lr schedule %s: invalid warmup_start_factor %g (expected 0 < factor <= 1)", k,
                    s->warmup_start_factor);
  return TD_OK;
}

double td_lr_schedule_lr(const td_lr_schedule *s, double base_lr, int64_t position) {
  if (position < s->warmup_steps) {
    /* LinearLR._get_closed_form_lr with end_factor 1 */
    double start = s->warmup_start_factor;
    return base_lr * (start + (1.0 - start) * (double)position / (double)s->warmup_steps);
  }
  int64_t e = position - s->warmup_steps;
  switch (s->kind) {
  case TD_LR_CONSTANT: return base_lr;
  case TD_LR_STEP: return base_lr * pow(s->gamma, (double)(e / s->step_size));
  case TD_LR_MULTISTEP: {
    int passed = 0; /* bisect_right(milestones, e) */
    while (passed < s->n_milestones && s->milestones[passed] <= e)
      passed++;
    return base_lr * pow(s->gamma, (double)passed);
  }
  case TD_LR_COSINE:
    return s->eta_min + (base_lr - s->eta_min) * (1 + cos(PI * (double)e / (double)s->t_max)) / 2;
  }
  return base_lr;
}
