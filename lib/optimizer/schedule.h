/* schedule.h - learning-rate schedules as closed-form functions of the step.
 *
 * A schedule maps (base lr, position) to the LR, where the position counts
 * optimizer steps taken (torch's scheduler.last_epoch when the scheduler is
 * stepped once per optimizer step). The main schedules are torch's:
 *
 *   TD_LR_CONSTANT   base
 *   TD_LR_STEP       StepLR:      base * gamma^floor(s / step_size)
 *   TD_LR_MULTISTEP  MultiStepLR: base * gamma^(number of milestones <= s)
 *   TD_LR_COSINE     CosineAnnealingLR:
 *                    eta_min + (base - eta_min) * (1 + cos(pi * s / t_max)) / 2
 *                    (eta_min is an absolute LR shared by all groups; past
 *                    t_max the cosine continues, rising again, as torch's)
 *
 * optionally preceded by a linear warm-up of warmup_steps positions, torch's
 * SequentialLR([LinearLR(start_factor, 1.0, total_iters=warmup_steps), main],
 * milestones=[warmup_steps]):
 *
 *   position p < warmup_steps:  base * (start + (1 - start) * p / warmup_steps)
 *   otherwise:                  main schedule at s = p - warmup_steps
 *
 * (without warm-up s = p). torch computes most of these recursively, each LR
 * from the previous one; here every LR comes from the formula, so a resumed
 * run gets the same LR as an uninterrupted one and no rounding accumulates.
 * The expressions are evaluated in double in the order of torch's
 * _get_closed_form_lr, so they agree with torch to ~1e-16 relative.
 *
 * A td_lr_schedule is a plain value (no pointers): copy it freely.
 */
#ifndef TD_OPTIMIZER_SCHEDULE_H
#define TD_OPTIMIZER_SCHEDULE_H

#include <stdint.h>

#include "core/status.h"

typedef enum td_lr_schedule_kind {
  TD_LR_CONSTANT = 0,
  TD_LR_STEP,
  TD_LR_MULTISTEP,
  TD_LR_COSINE,
} td_lr_schedule_kind;

#define TD_LR_MAX_MILESTONES 32

typedef struct td_lr_schedule {
  td_lr_schedule_kind kind;
  int64_t step_size; /* STEP: >= 1 */
  double gamma;      /* STEP, MULTISTEP: finite, >= 0 (torch's default 0.1) */
  int n_milestones;  /* MULTISTEP: 0..TD_LR_MAX_MILESTONES */
  int64_t milestones[TD_LR_MAX_MILESTONES]; /* non-decreasing, >= 0; a repeat decays twice */
  int64_t t_max;                            /* COSINE: >= 1 */
  double eta_min;                           /* COSINE: finite, >= 0 (torch's default 0) */
  int64_t warmup_steps;                     /* >= 0; 0 = no warm-up */
  double warmup_start_factor;               /* in (0, 1] when warmup_steps > 0 */
} td_lr_schedule;

/* Constructors for the common cases (no warm-up; set warmup_steps and
 * warmup_start_factor on the result to add one). */
td_lr_schedule td_lr_constant(void);
td_lr_schedule td_lr_step(int64_t step_size, double gamma);
td_lr_schedule td_lr_cosine(int64_t t_max, double eta_min);
/* Copies at most TD_LR_MAX_MILESTONES; a larger n stays in n_milestones and
 * fails td_lr_schedule_validate. */
td_lr_schedule td_lr_multistep(const int64_t *milestones, int n, double gamma);

/* INVALID_ARGUMENT naming the field and value for anything torch would reject
 * or that would make the formula meaningless (step_size 0, t_max 0, ...). */
td_status td_lr_schedule_validate(const td_lr_schedule *s);

/* The LR at `position` (>= 0) for a group whose base LR is base_lr. The
 * schedule must be valid. */
double td_lr_schedule_lr(const td_lr_schedule *s, double base_lr, int64_t position);

/* "constant", "step", "multistep", "cosine"; "?" for an invalid value. */
const char *td_lr_schedule_kind_name(td_lr_schedule_kind kind);

#endif
