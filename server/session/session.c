/* session.c - a session's lifetime, serial queue and summary. */
#include "session/session.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

int64_t session_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_session(session *s) {
  td_tensor_release(s->recorded_output);
  td_tensor_release(s->recorded_loss);
  td_gm_destroy(s->gm);
  td_gm_destroy(s->gm_next);
  td_optimizer_destroy(s->optimizer);
  td_module_destroy(s->model);
  for (int i = 0; i < s->n_params; i++) free(s->params[i].name);
  free(s->params);
  free(s->create_request);
  uv_mutex_destroy(&s->lock);
  free(s->mem); /* after everything charged to it */
  free(s);
}

void session_retain(session *s) { atomic_fetch_add(&s->refs, 1); }

void session_release(session *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) free_session(s);
}

/* Runs one job of the session, then puts the session back on the pool if
 * more are waiting: one job per turn keeps a busy session from starving the
 * others. */
static void run_next(pool_job *runner) {
  session *s = (session *)((char *)runner - offsetof(session, runner));
  uv_mutex_lock(&s->lock);
  session_job *job = s->head;
  s->head = job->next;
  if (!s->head) s->tail = NULL;
  uv_mutex_unlock(&s->lock);

  job->next = NULL;
  job->run(job);

  uv_mutex_lock(&s->lock);
  s->pending--;
  s->summary.last_used_ms = session_now_ms();
  bool more = s->head != NULL;
  if (!more) s->scheduled = false;
  uv_mutex_unlock(&s->lock);
  if (more)
    pool_submit(s->pool, &s->runner);
  session_release(s); /* the job's reference */
}

void session_submit(session *s, session_job *job) {
  session_retain(s);
  job->next = NULL;
  uv_mutex_lock(&s->lock);
  if (s->tail)
    s->tail->next = job;
  else
    s->head = job;
  s->tail = job;
  s->pending++;
  s->summary.last_used_ms = session_now_ms();
  bool start = !s->scheduled;
  s->scheduled = true;
  uv_mutex_unlock(&s->lock);
  if (start) pool_submit(s->pool, &s->runner);
}

void session_update_summary(session *s) {
  session_summary now;
  now.step = s->optimizer ? td_optimizer_num_steps(s->optimizer) : 0;
  now.lr = s->optimizer ? td_optimizer_lr(s->optimizer, 0) : 0;
  now.training = s->model->training;
  now.recorded = td_gm_has_tape(s->gm);
  now.has_grad = false;
  for (int i = 0; i < td_gm_num_attached(s->gm); i++)
    if (td_gm_attached(s->gm, i)->grad) now.has_grad = true;
  uv_mutex_lock(&s->lock);
  now.last_used_ms = s->summary.last_used_ms;
  s->summary = now;
  uv_mutex_unlock(&s->lock);
}

session_summary session_get_summary(session *s) {
  uv_mutex_lock(&s->lock);
  session_summary out = s->summary;
  uv_mutex_unlock(&s->lock);
  return out;
}

session_save_state session_get_save_state(session *s) {
  uv_mutex_lock(&s->lock);
  session_save_state out = s->save;
  uv_mutex_unlock(&s->lock);
  return out;
}

void session_note_save(session *s, int64_t step, const char *error) {
  uv_mutex_lock(&s->lock);
  if (error) {
    snprintf(s->save.error, sizeof s->save.error, "%s", error);
  } else {
    s->save.saved_step = step;
    s->save.saved_ms = session_now_ms();
    s->save.error[0] = '\0';
  }
  uv_mutex_unlock(&s->lock);
}

int session_pending(session *s) {
  uv_mutex_lock(&s->lock);
  int n = s->pending;
  uv_mutex_unlock(&s->lock);
  return n;
}

int session_create(pool *p, const char *name, td_module *model, td_optimizer *optimizer,
                   double grad_clip_norm, td_mem_account *mem, session **out) {
  *out = NULL;
  session *s = calloc(1, sizeof *s);
  if (!s) return -1;
  if (td_gm_create(&s->gm) || td_gm_create(&s->gm_next) || td_module_attach(model, s->gm) ||
      td_module_attach(model, s->gm_next)) {
    td_gm_destroy(s->gm);
    td_gm_destroy(s->gm_next);
    free(s);
    return -1;
  }
  td_tensor_map params;
  if (td_module_named_parameters(model, &params)) {
    td_gm_destroy(s->gm);
    td_gm_destroy(s->gm_next);
    free(s);
    return -1;
  }
  s->params = calloc((size_t)(params.count ? params.count : 1), sizeof *s->params);
  if (!s->params) goto fail;
  for (int i = 0; i < (int)params.count; i++) {
    const td_tensor *t = params.entries[i].tensor;
    session_param *sp = &s->params[s->n_params];
    sp->name = strdup(params.entries[i].name);
    if (!sp->name) goto fail;
    sp->ndim = t->ndim;
    memcpy(sp->shape, t->shape, sizeof t->shape);
    sp->dtype = t->dtype;
    s->n_params++;
  }
  td_tensor_map_free(&params);
  atomic_init(&s->refs, 1);
  snprintf(s->name, sizeof s->name, "%s", name ? name : "");
  s->created_ms = session_now_ms();
  s->num_parameters = td_module_num_parameters(model);
  s->optimizer_name = optimizer ? td_optim_algo_name(td_optimizer_algo(optimizer)) : "";
  s->model = model;
  s->optimizer = optimizer;
  s->grad_clip_norm = grad_clip_norm;
  s->mem = mem;
  s->pool = p;
  s->runner.run = run_next;
  uv_mutex_init(&s->lock);
  s->summary.last_used_ms = s->created_ms;
  s->save.saved_step = -1;
  atomic_init(&s->closed, false);
  session_update_summary(s);
  *out = s;
  return 0;

fail:
  td_tensor_map_free(&params);
  td_gm_destroy(s->gm);
  td_gm_destroy(s->gm_next);
  for (int i = 0; i < s->n_params; i++) free(s->params[i].name);
  free(s->params);
  free(s);
  return -1;
}
