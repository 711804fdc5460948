/* model.c - a Module message tree -> a td_module tree (spec_build_model).
 *
 * Two walks over the message. The first checks everything (kinds, fields,
 * child names, depth) and counts the parameter and buffer elements the model
 * will hold, so a bad or oversized spec is refused before anything is
 * allocated. The second constructs, drawing every layer's initialisation from
 * one generator in the order tests/common/models.c builds in-process models
 * (children in order, a residual's body before its shortcut), so a spec and
 * a seed reproduce the same weights as the engine does directly.
 */
#include <ctype.h>
#include <string.h>

#include "spec/internal.h"
#include "spec/layer.h"
#include "spec/spec.h"

typedef struct model_totals {
  int64_t parameters, buffers; /* saturating */
} model_totals;

/* Module.name as the key in a parent Sequential, or NULL when unset (the
 * engine then uses the index). */
static const char *child_name(const Traind__V1__Module *m) {
  return m->name && m->name[0] ? m->name : NULL;
}

static td_status check_name(const char *name, const spec_path *path) {
  size_t n = strlen(name);
  if (n > TD_MODULE_MAX_KEY)
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s.name: has %zu characters, at most %d from [A-Za-z0-9_-]",
                    spec_path_text(path), n, TD_MODULE_MAX_KEY);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (isalnum(c) || c == '_' || c == '-') continue;
    if (isprint(c))
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s.name: character %zu '%c' is not allowed (use [A-Za-z0-9_-])",
                      spec_path_text(path), i, c);
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s.name: character %zu (byte 0x%02x) is not allowed (use [A-Za-z0-9_-])",
                    spec_path_text(path), i, c);
  }
  return TD_OK;
}

/* A module whose kind this server cannot build: none set, or one it does
 * not know (a newer client's; protobuf-c keeps such a field as unknown and
 * leaves the case unset, while a struct built in C may carry any number). */
static td_status check_kind(const Traind__V1__Module *m, const spec_path *path) {
  if (m->kind_case == TRAIND__V1__MODULE__KIND__NOT_SET) {
    uint32_t field = spec_unknown_field(&m->base);
    if (field)
      return td_error(TD_ERR_INVALID_ARGUMENT,
                      "%s: unknown kind (field %u, from a newer client?); this server knows %s",
                      spec_path_text(path), field, spec_module_kind_list());
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: no kind set (expected one of %s)",
                    spec_path_text(path), spec_module_kind_list());
  }
  if (!spec_module_kind_name(m->kind_case))
    return td_error(TD_ERR_INVALID_ARGUMENT,
                    "%s: unknown kind (oneof case %d); this server knows %s", spec_path_text(path),
                    (int)m->kind_case, spec_module_kind_list());
  return TD_OK;
}

/* ---- first walk: check and count ----------------------------------------- */

static td_status check_module(const Traind__V1__Module *m, spec_path *path, int depth,
                              model_totals *totals);

static td_status check_children(const Traind__V1__Module *m, spec_path *path, int depth,
                                model_totals *totals) {
  td_status st = TD_OK;
  if (m->kind_case == TRAIND__V1__MODULE__KIND_SEQUENTIAL) {
    const Traind__V1__Sequential *seq = m->sequential;
    for (size_t i = 0; seq && i < seq->n_modules && !st; i++) {
      size_t mark = spec_path_push(path, ".sequential.modules[%zu]", i);
      const Traind__V1__Module *child = seq->modules[i];
      if (!child) {
        st = td_error(TD_ERR_INVALID_ARGUMENT, "%s: is NULL", spec_path_text(path));
      } else {
        const char *name = child_name(child);
        if (!(name && (st = check_name(name, path)))) st = check_module(child, path, depth, totals);
      }
      spec_path_pop(path, mark);
    }
  } else {
    const Traind__V1__Residual *res = m->residual;
    size_t mark = spec_path_push(path, ".residual.body");
    if (!res || !res->body)
      st = td_error(TD_ERR_INVALID_ARGUMENT, "%s: is required", spec_path_text(path));
    else
      st = check_module(res->body, path, depth, totals);
    spec_path_pop(path, mark);
    if (!st && res->shortcut) {
      mark = spec_path_push(path, ".residual.shortcut");
      st = check_module(res->shortcut, path, depth, totals);
      spec_path_pop(path, mark);
    }
  }
  return st;
}

/* depth: m's level, the root being 1, as the engine counts. */
static td_status check_module(const Traind__V1__Module *m, spec_path *path, int depth,
                              model_totals *totals) {
  if (depth > TD_MODULE_MAX_DEPTH)
    return td_error(TD_ERR_INVALID_ARGUMENT, "%s: modules nest deeper than %d levels",
                    spec_path_text(path), TD_MODULE_MAX_DEPTH);
  td_status st = check_kind(m, path);
  if (st) return st;
  if (m->kind_case == TRAIND__V1__MODULE__KIND_SEQUENTIAL ||
      m->kind_case == TRAIND__V1__MODULE__KIND_RESIDUAL)
    return check_children(m, path, depth + 1, totals);
  spec_layer layer;
  if ((st = spec_layer_read(m, path, &layer))) return st;
  totals->parameters = spec_count_add(totals->parameters, layer.n_parameters);
  totals->buffers = spec_count_add(totals->buffers, layer.n_buffers);
  return TD_OK;
}

static td_status check_limit(const char *what, int64_t count, int64_t limit) {
  if (limit <= 0 || count <= limit) return TD_OK;
  return td_error(TD_ERR_NO_MEMORY,
                  "model: %s%lld %s, over this server's limit of %lld "
                  "(--max-parameters)",
                  count == INT64_MAX ? "more than " : "", (long long)count, what, (long long)limit);
}

/* ---- second walk: construct ------------------------------------------------ */

static td_status build_module(const Traind__V1__Module *m, spec_path *path, td_rng *rng,
                              td_module **out);

static td_status build_sequential(const Traind__V1__Sequential *seq, spec_path *path, td_rng *rng,
                                  td_module **out) {
  td_module *s = NULL;
  td_status st = td_module_sequential(&s);
  for (size_t i = 0; seq && i < seq->n_modules && !st; i++) {
    size_t mark = spec_path_push(path, ".sequential.modules[%zu]", i);
    td_module *child = NULL;
    if (!(st = build_module(seq->modules[i], path, rng, &child)) &&
        (st = td_sequential_append(s, child_name(seq->modules[i]), child)))
      td_error_prefix("%s: ", spec_path_text(path)); /* "two children named 'fc'" */
    spec_path_pop(path, mark);
  }
  if (st) {
    td_module_destroy(s);
    return st;
  }
  *out = s;
  return TD_OK;
}

static td_status build_residual(const Traind__V1__Residual *res, spec_path *path, td_rng *rng,
                                td_module **out) {
  td_module *body = NULL, *shortcut = NULL;
  size_t mark = spec_path_push(path, ".residual.body");
  td_status st = build_module(res->body, path, rng, &body);
  spec_path_pop(path, mark);
  if (!st && res->shortcut) {
    mark = spec_path_push(path, ".residual.shortcut");
    st = build_module(res->shortcut, path, rng, &shortcut);
    spec_path_pop(path, mark);
  }
  if (st) {
    td_module_destroy(body);
    return st;
  }
  mark = spec_path_push(path, ".residual");
  if ((st = td_module_residual(body, shortcut, out))) td_error_prefix("%s: ", spec_path_text(path));
  spec_path_pop(path, mark);
  return st;
}

static td_status build_module(const Traind__V1__Module *m, spec_path *path, td_rng *rng,
                              td_module **out) {
  *out = NULL;
  if (m->kind_case == TRAIND__V1__MODULE__KIND_SEQUENTIAL)
    return build_sequential(m->sequential, path, rng, out);
  if (m->kind_case == TRAIND__V1__MODULE__KIND_RESIDUAL)
    return build_residual(m->residual, path, rng, out);
  spec_layer layer;
  td_status st = spec_layer_read(m, path, &layer); /* passed the first walk: cannot fail */
  if (!st && (st = spec_layer_construct(&layer, rng, out)))
    td_error_prefix("%s.%s: ", spec_path_text(path), spec_module_kind_name(m->kind_case));
  return st;
}

td_status spec_build_model(const Traind__V1__Module *spec, uint64_t seed, const spec_limits *limits,
                           td_module **out) {
  *out = NULL;
  if (!spec) return td_error(TD_ERR_INVALID_ARGUMENT, "model: is required");
  spec_path path;
  spec_path_init(&path, "model");
  model_totals totals = {0, 0};
  td_status st = check_module(spec, &path, 1, &totals);
  if (st) return st;
  int64_t limit = limits ? limits->max_parameters : 0;
  if ((st = check_limit("parameters", totals.parameters, limit))) return st;
  /* Batch-norm statistics are not parameters, but they cost the same memory. */
  if ((st = check_limit("buffer elements (batch-norm running statistics)", totals.buffers, limit)))
    return st;
  td_rng rng;
  td_rng_seed(&rng, seed);
  return build_module(spec, &path, &rng, out);
}
