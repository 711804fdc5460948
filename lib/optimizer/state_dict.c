/* state_dict.c - optimizer checkpoints: export to and all-or-nothing load from a tensor map. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/alloc.h"
#include "optimizer/optimizer_impl.h"

/* Keys are "<prefix>state.<i>.<name>"; a bounded prefix keeps them in a
 * fixed buffer. */
#define MAX_PREFIX 256
#define KEY_SIZE (MAX_PREFIX + 96)

static td_status check_prefix(const char *prefix, const char *what) {
  if (strlen(prefix) > MAX_PREFIX)
    return td_error(TD_ERR_INVALID_ARGUMENT, "optimizer %s: prefix longer than %d characters", what,
                    MAX_PREFIX);
  return TD_OK;
}

static void meta_key(char *key, const char *prefix, const char *name) {
  snprintf(key, KEY_SIZE, "%s%s", prefix, name);
}

static void state_key(char *key, const char *prefix, int i, const char *name) {
  snprintf(key, KEY_SIZE, "%sstate.%d.%s", prefix, i, name);
}

/* ---- hyperparameters and schedule as JSON ------------------------------- */

static json_t *group_to_json(const td_optimizer *opt, int g) {
  const td_optim_group *grp = &opt->groups[g];
  json_t *o = json_object(), *ids = json_array();
  if (!o || !ids) goto fail;
  for (int f = 0; f < opt->def->nfields; f++) {
    const td_hparam_field *fd = &opt->def->fields[f];
    const char *base = (const char *)&grp->cfg + fd->offset;
    json_t *v = NULL;
    switch (fd->type) {
    case TD_HP_DOUBLE: {
      double x;
      memcpy(&x, base, sizeof x);
      if (strcmp(fd->name, "lr") == 0) {
        /* torch's layout: "lr" is the current LR, "initial_lr" the base */
        if (json_object_set_new(o, "initial_lr", json_real(x))) goto fail;
        x = td_optimizer_lr(opt, g);
      }
      v = json_real(x);
      break;
    }
    case TD_HP_BOOL: v = json_boolean(*(const bool *)base); break;
    case TD_HP_DOUBLE_PAIR: {
      double x[2];
      memcpy(x, base, sizeof x);
      v = json_pack("[ff]", x[0], x[1]);
      break;
    }
    }
    if (json_object_set_new(o, fd->name, v)) goto fail;
  }
  for (int i = 0; i < grp->count; i++)
    if (json_array_append_new(ids, json_integer(grp->first + i))) goto fail;
  if (json_object_set_new(o, "params", ids)) {
    ids = NULL;
    goto fail;
  }
  return o;
fail:
  json_decref(o);
  json_decref(ids);
  return NULL;
}

static json_t *schedule_to_json(const td_lr_schedule *s) {
  json_t *ms = json_array();
  for (int i = 0; ms && i < s->n_milestones; i++)
    if (json_array_append_new(ms, json_integer(s->milestones[i]))) {
      json_decref(ms);
      return NULL;
    }
  if (!ms) return NULL;
  return json_pack("{sssIsfsosIsfsIsf}", "kind", td_lr_schedule_kind_name(s->kind), "step_size",
                   (json_int_t)s->step_size, "gamma", s->gamma, "milestones", ms, "t_max",
                   (json_int_t)s->t_max, "eta_min", s->eta_min, "warmup_steps",
                   (json_int_t)s->warmup_steps, "warmup_start_factor", s->warmup_start_factor);
}

/* Dumps and stores a JSON value (consumed) as metadata. */
static td_status set_json_meta(td_tensor_map *out, const char *key, json_t *v) {
  char *text = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(v);
  if (!text) return td_error(TD_ERR_NO_MEMORY, "optimizer state_dict: cannot encode '%s'", key);
  td_status st = td_tensor_map_set_meta(out, key, text);
  free(text);
  return st;
}

td_status td_optimizer_state_dict(const td_optimizer *opt, td_tensor_map *out, const char *prefix) {
  if (!prefix) prefix = "";
  td_status st = check_prefix(prefix, "state_dict");
  if (st) return st;
  char key[KEY_SIZE];
  for (int i = 0; i < opt->nparams; i++) {
    const td_optim_param *p = &opt->params[i];
    if (p->step == 0) continue;
    td_tensor *step;
    if ((st = td_tensor_empty(TD_INT64, 0, NULL, &step))) return st;
    td_tensor_i64(step)[0] = p->step;
    state_key(key, prefix, i, "step");
    st = td_tensor_map_put(out, key, step);
    td_tensor_release(step);
    if (st) return st;
    for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++) {
      if (!p->buf[b]) continue;
      state_key(key, prefix, i, opt->def->buffer_names[b]);
      if ((st = td_tensor_map_put(out, key, p->buf[b]))) return st;
    }
  }
  meta_key(key, prefix, "optimizer");
  if ((st = td_tensor_map_set_meta(out, key, opt->def->name))) return st;
  json_t *groups = json_array();
  for (int g = 0; groups && g < opt->ngroups; g++) {
    json_t *o = group_to_json(opt, g);
    if (!o || json_array_append_new(groups, o)) {
      json_decref(groups);
      groups = NULL;
    }
  }
  meta_key(key, prefix, "param_groups");
  if ((st = set_json_meta(out, key, groups))) return st;
  meta_key(key, prefix, "lr_schedule");
  if ((st = set_json_meta(out, key, schedule_to_json(&opt->schedule)))) return st;
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)opt->steps);
  meta_key(key, prefix, "step");
  return td_tensor_map_set_meta(out, key, num);
}

/* ---- load ---------------------------------------------------------------- */

#define LOAD_ERR(...) td_error(TD_ERR_INVALID_ARGUMENT, __VA_ARGS__)

/* Everything a load will install, built before the optimizer is touched. */
typedef struct staged_param {
  int64_t step;
  td_tensor *buf[TD_OPTIM_MAX_BUFFERS];
} staged_param;

typedef struct staged {
  td_optim_config *cfgs; /* one per group */
  staged_param *params;
  td_lr_schedule schedule;
  int64_t steps;
} staged;

static void staged_free(staged *s, int nparams) {
  if (s->params)
    for (int i = 0; i < nparams; i++)
      for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++)
        td_tensor_release(s->params[i].buf[b]);
  td_free(s->params);
  td_free(s->cfgs);
}

static json_t *parse_json_meta(const td_tensor_map *in, const char *key, const char *who) {
  const char *text = td_tensor_map_get_meta(in, key);
  if (!text) {
    LOAD_ERR("%s load_state_dict: missing metadata '%s'", who, key);
    return NULL;
  }
  json_error_t err;
  json_t *v = json_loads(text, 0, &err);
  if (!v)
    LOAD_ERR("%s load_state_dict: metadata '%s' is not valid JSON: %s (line %d, column %d)", who,
             key, err.text, err.line, err.column);
  return v;
}

static bool parse_int64(const char *text, int64_t *out) {
  if (!text || !*text) return false;
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

static td_status parse_group(const td_optimizer *opt, int g, json_t *o, td_optim_config *cfg) {
  const char *who = opt->def->name;
  if (!json_is_object(o))
    return LOAD_ERR("%s load_state_dict: param_groups[%d] is not an object", who, g);
  *cfg = td_optim_defaults(opt->def->algo);
  for (int f = 0; f < opt->def->nfields; f++) {
    const td_hparam_field *fd = &opt->def->fields[f];
    /* the base LR is "initial_lr"; "lr" holds the scheduled one */
    const char *name = strcmp(fd->name, "lr") == 0 ? "initial_lr" : fd->name;
    json_t *v = json_object_get(o, name);
    char *base = (char *)cfg + fd->offset;
    switch (fd->type) {
    case TD_HP_DOUBLE: {
      if (!json_is_number(v))
        return LOAD_ERR("%s load_state_dict: param_groups[%d].%s is missing or not a number", who,
                        g, name);
      double x = json_number_value(v);
      memcpy(base, &x, sizeof x);
      break;
    }
    case TD_HP_BOOL:
      if (!json_is_boolean(v))
        return LOAD_ERR("%s load_state_dict: param_groups[%d].%s is missing or not a boolean", who,
                        g, name);
      *(bool *)base = json_is_true(v);
      break;
    case TD_HP_DOUBLE_PAIR: {
      if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_number(json_array_get(v, 0)) ||
          !json_is_number(json_array_get(v, 1)))
        return LOAD_ERR("%s load_state_dict: param_groups[%d].%s is missing or not a pair of "
                        "numbers",
                        who, g, name);
      double x[2] = {json_number_value(json_array_get(v, 0)),
                     json_number_value(json_array_get(v, 1))};
      memcpy(base, x, sizeof x);
      break;
    }
    }
  }
  td_status st = opt->def->validate(cfg);
  if (st) {
    td_error_prefix("%s load_state_dict: param_groups[%d]: ", who, g);
    return st;
  }
  const td_optim_group *grp = &opt->groups[g];
  json_t *ids = json_object_get(o, "params");
  if (!json_is_array(ids))
    return LOAD_ERR("%s load_state_dict: param_groups[%d].params is missing", who, g);
  if (json_array_size(ids) != (size_t)grp->count)
    return LOAD_ERR("%s load_state_dict: param_groups[%d] has %d parameters in this optimizer, "
                    "%zu in the checkpoint",
                    who, g, grp->count, json_array_size(ids));
  for (int i = 0; i < grp->count; i++) {
    json_t *id = json_array_get(ids, (size_t)i);
    if (!json_is_integer(id) || json_integer_value(id) != grp->first + i)
      return LOAD_ERR("%s load_state_dict: param_groups[%d].params[%d] should be %d", who, g, i,
                      grp->first + i);
  }
  return TD_OK;
}

static td_status parse_schedule(json_t *o, const char *who, td_lr_schedule *s) {
  *s = td_lr_constant();
  const char *kind = json_string_value(json_object_get(o, "kind"));
  int k = 0;
  while (kind && k <= TD_LR_COSINE && strcmp(kind, td_lr_schedule_kind_name(k)) != 0)
    k++;
  if (!kind || k > TD_LR_COSINE)
    return LOAD_ERR("%s load_state_dict: lr_schedule.kind is missing or unknown ('%s')", who,
                    kind ? kind : "");
  s->kind = (td_lr_schedule_kind)k;
  static const struct {
    const char *name;
    size_t offset;
    bool integer;
  } fields[] = {
      {"step_size", offsetof(td_lr_schedule, step_size), true},
      {"gamma", offsetof(td_lr_schedule, gamma), false},
      {"t_max", offsetof(td_lr_schedule, t_max), true},
      {"eta_min", offsetof(td_lr_schedule, eta_min), false},
      {"warmup_steps", offsetof(td_lr_schedule, warmup_steps), true},
      {"warmup_start_factor", offsetof(td_lr_schedule, warmup_start_factor), false},
  };
  for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
    json_t *v = json_object_get(o, fields[f].name);
    char *dst = (char *)s + fields[f].offset;
    if (fields[f].integer ? !json_is_integer(v) : !json_is_number(v))
      return LOAD_ERR("%s load_state_dict: lr_schedule.%s is missing or not %s", who,
                      fields[f].name, fields[f].integer ? "an integer" : "a number");
    if (fields[f].integer) {
      int64_t x = json_integer_value(v);
      memcpy(dst, &x, sizeof x);
    } else {
      double x = json_number_value(v);
      memcpy(dst, &x, sizeof x);
    }
  }
  json_t *ms = json_object_get(o, "milestones");
  if (!json_is_array(ms) || json_array_size(ms) > TD_LR_MAX_MILESTONES)
    return LOAD_ERR("%s load_state_dict: lr_schedule.milestones is missing or has more than %d "
                    "entries",
                    who, TD_LR_MAX_MILESTONES);
  s->n_milestones = (int)json_array_size(ms);
  for (int i = 0; i < s->n_milestones; i++) {
    json_t *m = json_array_get(ms, (size_t)i);
    if (!json_is_integer(m))
      return LOAD_ERR("%s load_state_dict: lr_schedule.milestones[%d] is not an integer", who, i);
    s->milestones[i] = json_integer_value(m);
  }
  td_status st = td_lr_schedule_validate(s);
  if (st) td_error_prefix("%s load_state_dict: ", who);
  return st;
}

/* Parameter i's state from the map into sp (buffers copied). */
static td_status stage_param(const td_optimizer *opt, const td_tensor_map *in, const char *prefix,
                             const td_optim_config *cfg, int i, staged_param *sp) {
  const char *who = opt->def->name;
  const td_tensor *param = opt->params[i].tensor;
  char key[KEY_SIZE], a[TD_SHAPE_STR_MAX], b[TD_SHAPE_STR_MAX];
  state_key(key, prefix, i, "step");
  const td_tensor *step = td_tensor_map_get(in, key);
  if (step) {
    if (step->dtype != TD_INT64 || step->numel != 1)
      return LOAD_ERR("%s load_state_dict: '%s' should be one int64, got %s %s", who, key,
                      td_dtype_name(step->dtype), td_tensor_shape_str(a, step));
    sp->step = td_tensor_i64(step)[0];
    if (sp->step < 1)
      return LOAD_ERR("%s load_state_dict: '%s' is %lld (expected >= 1)", who, key,
                      (long long)sp->step);
  }
  for (int k = 0; k < TD_OPTIM_MAX_BUFFERS; k++) {
    const char *name = opt->def->buffer_names[k];
    if (!name || !opt->def->has_buffer(cfg, k)) continue;
    if (!step) continue; /* a buffer without a step is reported by check_unexpected */
    state_key(key, prefix, i, name);
    const td_tensor *t = td_tensor_map_get(in, key);
    if (!t) return LOAD_ERR("%s load_state_dict: missing '%s'", who, key);
    if (t->dtype != TD_FLOAT32 || !td_shape_equal(t->ndim, t->shape, param->ndim, param->shape))
      return LOAD_ERR("%s load_state_dict: '%s' is %s %s, parameter %d is float32 %s", who, key,
                      td_dtype_name(t->dtype), td_tensor_shape_str(a, t), i,
                      td_tensor_shape_str(b, param));
    td_status st = td_tensor_clone(t, &sp->buf[k]);
    if (st) return st;
  }
  return TD_OK;
}

/* Every "<prefix>state." entry must be one stage_param consumed. */
static td_status check_unexpected(const td_optimizer *opt, const td_tensor_map *in,
                                  const char *prefix, const staged *s) {
  char head[KEY_SIZE], key[KEY_SIZE];
  meta_key(head, prefix, "state.");
  size_t hl = strlen(head);
  for (size_t e = 0; e < in->count; e++) {
    const char *name = in->entries[e].name;
    if (strncmp(name, head, hl) != 0) continue;
    char *end;
    long idx = strtol(name + hl, &end, 10);
    bool ok = false;
    if (end != name + hl && *end == '.' && idx >= 0 && idx < opt->nparams) {
      const staged_param *sp = &s->params[idx];
      const td_optim_config *cfg = &s->cfgs[opt->params[idx].group];
      const char *suffix = end + 1;
      state_key(key, prefix, (int)idx, suffix);
      if (strcmp(key, name) == 0 && sp->step > 0) {
        ok = strcmp(suffix, "step") == 0;
        for (int k = 0; !ok && k < TD_OPTIM_MAX_BUFFERS; k++)
          ok = opt->def->buffer_names[k] && strcmp(suffix, opt->def->buffer_names[k]) == 0 &&
               opt->def->has_buffer(cfg, k);
      }
    }
    if (!ok)
      return LOAD_ERR("%s load_state_dict: unexpected entry '%s' (%d parameters; state needs "
                      "'%sstate.<i>.step' and the algorithm's buffers)",
                      opt->def->name, name, opt->nparams, prefix);
  }
  return TD_OK;
}

static td_status stage(const td_optimizer *opt, const td_tensor_map *in, const char *prefix,
                       staged *s) {
  const char *who = opt->def->name;
  char key[KEY_SIZE];
  meta_key(key, prefix, "optimizer");
  const char *algo = td_tensor_map_get_meta(in, key);
  if (!algo) return LOAD_ERR("%s load_state_dict: missing metadata '%s'", who, key);
  if (strcmp(algo, who) != 0)
    return LOAD_ERR("%s load_state_dict: the checkpoint is for optimizer '%s', this one is '%s'",
                    who, algo, who);
  meta_key(key, prefix, "step");
  if (!parse_int64(td_tensor_map_get_meta(in, key), &s->steps) || s->steps < 0)
    return LOAD_ERR("%s load_state_dict: metadata '%s' is missing or not a count (%s)", who, key,
                    td_tensor_map_get_meta(in, key) ? td_tensor_map_get_meta(in, key) : "absent");

  meta_key(key, prefix, "param_groups");
  json_t *groups = parse_json_meta(in, key, who);
  if (!groups) return TD_ERR_INVALID_ARGUMENT;
  td_status st = TD_OK;
  if (!json_is_array(groups))
    st = LOAD_ERR("%s load_state_dict: '%s' is not a list", who, key);
  else if (json_array_size(groups) != (size_t)opt->ngroups)
    st = LOAD_ERR("%s load_state_dict: the optimizer has %d param groups, the checkpoint %zu", who,
                  opt->ngroups, json_array_size(groups));
  if (!st && !(s->cfgs = td_calloc((size_t)opt->ngroups, sizeof *s->cfgs, "optimizer load")))
    st = TD_ERR_NO_MEMORY;
  for (int g = 0; !st && g < opt->ngroups; g++)
    st = parse_group(opt, g, json_array_get(groups, (size_t)g), &s->cfgs[g]);
  json_decref(groups);
  if (st) return st;

  meta_key(key, prefix, "lr_schedule");
  json_t *sched = parse_json_meta(in, key, who);
  if (!sched) return TD_ERR_INVALID_ARGUMENT;
  st = json_is_object(sched) ? parse_schedule(sched, who, &s->schedule)
                             : LOAD_ERR("%s load_state_dict: '%s' is not an object", who, key);
  json_decref(sched);
  if (st) return st;

  s->params =
      td_calloc((size_t)(opt->nparams > 0 ? opt->nparams : 1), sizeof *s->params, "optimizer load");
  if (!s->params) return TD_ERR_NO_MEMORY;
  for (int i = 0; i < opt->nparams; i++)
    if ((st = stage_param(opt, in, prefix, &s->cfgs[opt->params[i].group], i, &s->params[i])))
      return st;
  return check_unexpected(opt, in, prefix, s);
}

td_status td_optimizer_load_state_dict(td_optimizer *opt, const td_tensor_map *in,
                                       const char *prefix) {
  if (!prefix) prefix = "";
  td_status st = check_prefix(prefix, "load_state_dict");
  if (st) return st;
  staged s = {0};
  if ((st = stage(opt, in, prefix, &s))) {
    staged_free(&s, opt->nparams);
    return st;
  }
  for (int g = 0; g < opt->ngroups; g++)
    opt->groups[g].cfg = s.cfgs[g];
  for (int i = 0; i < opt->nparams; i++) {
    td_optim_param *p = &opt->params[i];
    p->step = s.params[i].step;
    for (int b = 0; b < TD_OPTIM_MAX_BUFFERS; b++) {
      td_tensor_release(p->buf[b]);
      p->buf[b] = s.params[i].buf[b];
      s.params[i].buf[b] = NULL;
    }
  }
  opt->schedule = s.schedule;
  opt->steps = s.steps;
  staged_free(&s, opt->nparams);
  return TD_OK;
}
