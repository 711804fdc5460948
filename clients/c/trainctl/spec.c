/* trainctl: JSON model and optimizer specs -> protoc-c messages.
 *
 * The JSON mirrors the proto 1:1: an object's keys are the message's field names, so the
 * decoder walks the protoc-c descriptors instead of knowing each message. Two shorthands
 * keep specs readable: a message whose only field is repeated may be given as that array
 * ({"sequential": [...]} for {"sequential": {"modules": [...]}}), and a string names a
 * field set to an empty message ("relu" for {"relu": {}}). Errors name the JSON path:
 * "spec.sequential[2].linear.in_features: expected an integer". */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "trainctl.h"

typedef struct decoder {
  char path[512];
  size_t len;
  char err[1024];
} decoder;

static bool fail(decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(decoder *d, const char *fmt, ...) {
  int n = snprintf(d->err, sizeof d->err, "%.*s: ", (int)d->len, d->path);
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < sizeof d->err)
    vsnprintf(d->err + n, sizeof d->err - (size_t)n, fmt, ap);
  va_end(ap);
  return false;
}

/* Appends ".name" or "[i]" to the path; returns the old length for path_pop. */
static size_t path_push(decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(decoder *d, const char *fmt, ...) {
  size_t old = d->len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(d->path + d->len, sizeof d->path - d->len, fmt, ap);
  va_end(ap);
  if (n > 0)
    d->len += (size_t)n < sizeof d->path - d->len ? (size_t)n : sizeof d->path - d->len - 1;
  return old;
}

static void path_pop(decoder *d, size_t old) {
  d->len = old;
  d->path[old] = 0;
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  default: return "null";
  }
}

/* "a, b or c": the field names of desc (only message fields when messages_only), for
 * "unknown field" messages. */
static void field_names(const ProtobufCMessageDescriptor *desc, bool messages_only, char *buf,
                        size_t size) {
  size_t n = 0;
  unsigned last = 0, count = 0;
  buf[0] = 0;
  for (unsigned i = 0; i < desc->n_fields; i++)
    if (!messages_only || desc->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) last = i;
  for (unsigned i = 0; i < desc->n_fields && n < size; i++) {
    if (messages_only && desc->fields[i].type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *sep = count++ == 0 ? "" : i == last ? " or " : ", ";
    int k = snprintf(buf + n, size - n, "%s%s", sep, desc->fields[i].name);
    if (k < 0) break;
    n += (size_t)k;
  }
}

static bool decode_message(decoder *d, const json_t *v, const ProtobufCMessageDescriptor *desc,
                           ProtobufCMessage **out);

static size_t element_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64: return 8;
  case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
  case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
  default: return 4; /* int32 kinds, uint32 kinds, float, enum */
  }
}

static bool get_integer(decoder *d, const json_t *v, json_int_t min, json_int_t max,
                        json_int_t *out) {
  if (json_is_real(v)) return fail(d, "expected an integer, got %g", json_real_value(v));
  if (!json_is_integer(v)) return fail(d, "expected an integer, got %s", json_kind(v));
  *out = json_integer_value(v);
  if (*out < min || *out > max)
    return fail(d, "%lld is out of range [%lld, %lld]", (long long)*out, (long long)min,
                (long long)max);
  return true;
}

static bool decode_enum(decoder *d, const json_t *v, const ProtobufCEnumDescriptor *e, int *out) {
  if (json_is_string(v)) {
    char name[64];
    const char *s = json_string_value(v);
    size_t i = 0;
    for (; s[i] && i + 1 < sizeof name; i++)
      name[i] = (char)toupper((unsigned char)s[i]);
    name[i] = 0;
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(e, name);
    if (ev && !s[i]) {
      *out = ev->value;
      return true;
    }
  }
  char names[256];
  size_t n = 0;
  for (unsigned i = 0; i < e->n_values && n < sizeof names; i++) {
    int k = snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", e->values[i].name);
    if (k < 0) break;
    n += (size_t)k;
  }
  if (json_is_string(v))
    return fail(d, "unknown value \"%s\"; expected one of %s", json_string_value(v), names);
  return fail(d, "expected a string (one of %s), got %s", names, json_kind(v));
}

/* Decodes one value of field f into the element at `slot`. */
static bool decode_value(decoder *d, const json_t *v, const ProtobufCFieldDescriptor *f,
                         void *slot) {
  json_int_t i;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    if (!get_integer(d, v, INT32_MIN, INT32_MAX, &i)) return false;
    *(int32_t *)slot = (int32_t)i;
    return true;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    if (!get_integer(d, v, 0, UINT32_MAX, &i)) return false;
    *(uint32_t *)slot = (uint32_t)i;
    return true;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    if (!get_integer(d, v, INT64_MIN, INT64_MAX, &i)) return false;
    *(int64_t *)slot = (int64_t)i;
    return true;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    if (!get_integer(d, v, 0, INT64_MAX, &i)) return false;
    *(uint64_t *)slot = (uint64_t)i;
    return true;
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE: {
    if (!json_is_number(v)) return fail(d, "expected a number, got %s", json_kind(v));
    double x = json_number_value(v);
    if (f->type == PROTOBUF_C_TYPE_DOUBLE)
      *(double *)slot = x;
    else if (x > FLT_MAX || x < -FLT_MAX)
      return fail(d, "%g is too large for a float", x);
    else
      *(float *)slot = (float)x;
    return true;
  }
  case PROTOBUF_C_TYPE_BOOL:
    if (!json_is_boolean(v)) return fail(d, "expected true or false, got %s", json_kind(v));
    *(protobuf_c_boolean *)slot = json_is_true(v);
    return true;
  case PROTOBUF_C_TYPE_ENUM: return decode_enum(d, v, f->descriptor, (int *)slot);
  case PROTOBUF_C_TYPE_STRING: {
    if (!json_is_string(v)) return fail(d, "expected a string, got %s", json_kind(v));
    char *s = strdup(json_string_value(v));
    if (!s) return fail(d, "out of memory");
    *(char **)slot = s;
    return true;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    return decode_message(d, v, f->descriptor, (ProtobufCMessage **)slot);
  default: return fail(d, "bytes fields cannot be given in JSON");
  }
}

/* Sets field f of msg from v (an array, or one value, for a repeated field). */
static bool decode_field(decoder *d, const json_t *v, const ProtobufCFieldDescriptor *f,
                         ProtobufCMessage *msg) {
  char *base = (char *)msg;
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    size_t *count = (size_t *)(base + f->quantifier_offset);
    void **array = (void **)(base + f->offset);
    if (!(*array = calloc(n ? n : 1, element_size(f)))) return fail(d, "out of memory");
    for (size_t k = 0; k < n; k++) {
      size_t old = json_is_array(v) ? path_push(d, "[%zu]", k) : d->len;
      const json_t *item = json_is_array(v) ? json_array_get(v, k) : v;
      /* Counted first: a message element half-built by a failure is freed with the rest
       * (the array is zeroed, and freeing a NULL element is a no-op). */
      (*count)++;
      if (!decode_value(d, item, f, (char *)*array + k * element_size(f))) return false;
      path_pop(d, old);
    }
    return true;
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
    if (*which) {
      const ProtobufCFieldDescriptor *other =
          protobuf_c_message_descriptor_get_field(msg->descriptor, (unsigned)*which);
      return fail(d, "\"%s\" and \"%s\" both given; only one may be set", other->name, f->name);
    }
    *which = f->id; /* first, so that a half-built member is freed with msg */
    return decode_value(d, v, f, base + f->offset);
  }
  if (!decode_value(d, v, f, base + f->offset)) return false;
  if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
      f->label == PROTOBUF_C_LABEL_OPTIONAL)
    *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
  return true;
}

/* Messages whose point is a oneof: one member must be chosen. */
static bool check_oneof_chosen(decoder *d, const ProtobufCMessage *msg) {
  const char *what;
  uint32_t which;
  if (msg->descriptor == &traind__v1__module__descriptor) {
    what = "module kind", which = ((const Traind__V1__Module *)msg)->kind_case;
  } else if (msg->descriptor == &traind__v1__optimizer_spec__descriptor) {
    what = "optimizer algorithm", which = ((const Traind__V1__OptimizerSpec *)msg)->algorithm_case;
  } else if (msg->descriptor == &traind__v1__lrschedule__descriptor) {
    what = "schedule kind", which = ((const Traind__V1__LRSchedule *)msg)->kind_case;
  } else {
    return true;
  }
  if (which) return true;
  char names[512];
  size_t n = 0;
  names[0] = 0;
  for (unsigned i = 0; i < msg->descriptor->n_fields && n < sizeof names; i++) {
    const ProtobufCFieldDescriptor *f = &msg->descriptor->fields[i];
    if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) continue;
    int k = snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", f->name);
    if (k < 0) break;
    n += (size_t)k;
  }
  return fail(d, "no %s given; expected one of %s", what, names);
}

static bool decode_message(decoder *d, const json_t *v, const ProtobufCMessageDescriptor *desc,
                           ProtobufCMessage **out) {
  ProtobufCMessage *msg = calloc(1, desc->sizeof_message);
  if (!msg) return fail(d, "out of memory");
  protobuf_c_message_init(desc, msg);
  *out = msg; /* owned by the parent from here, so a failure below is freed with it */

  if (json_is_null(v)) return check_oneof_chosen(d, msg);
  if (json_is_array(v) && desc->n_fields == 1 && desc->fields[0].label == PROTOBUF_C_LABEL_REPEATED)
    return decode_field(d, v, &desc->fields[0], msg);
  if (json_is_string(v)) { /* "relu" for {"relu": {}} */
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, json_string_value(v));
    if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED) {
      size_t old = path_push(d, ".%s", f->name);
      json_t *empty = json_object();
      bool ok = empty && decode_field(d, empty, f, msg);
      json_decref(empty);
      if (!ok) return empty ? false : fail(d, "out of memory");
      path_pop(d, old);
      return check_oneof_chosen(d, msg);
    }
  }
  if (!json_is_object(v)) {
    char names[512];
    field_names(desc, json_is_string(v), names, sizeof names);
    if (json_is_string(v))
      return fail(d, "unknown name \"%s\"; expected %s (or an object)", json_string_value(v),
                  names);
    return fail(d, "expected an object (with %s), got %s", names, json_kind(v));
  }
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)v, key, value) {
    size_t old = path_push(d, ".%s", key);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
    if (!f) {
      char names[512];
      field_names(desc, false, names, sizeof names);
      return fail(d, "unknown field; expected %s", names);
    }
    if (!decode_field(d, value, f, msg)) return false;
    path_pop(d, old);
  }
  return check_oneof_chosen(d, msg);
}

/* Decodes v as a `desc` message at `root` ("spec"); prints the error and returns NULL. */
static ProtobufCMessage *decode(const tc_ctx *ctx, const json_t *v,
                                const ProtobufCMessageDescriptor *desc, const char *root,
                                const char *source) {
  decoder d = {.len = 0};
  path_push(&d, "%s", root);
  ProtobufCMessage *msg = NULL;
  if (decode_message(&d, v, desc, &msg)) return msg;
  traind_message_free(msg);
  tc_usage_error(ctx, "%s: %s", source, d.err);
  return NULL;
}

static json_t *load_json_file(const tc_ctx *ctx, const char *path) {
  json_error_t e;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
  if (!root) {
    if (e.line < 0)
      tc_usage_error(ctx, "%s: %s", path, e.text);
    else
      tc_usage_error(ctx, "%s:%d:%d: invalid JSON: %s", path, e.line, e.column, e.text);
  }
  return root;
}

/* The request a parsed spec describes (root is consumed). */
static int spec_from_json(const tc_ctx *ctx, json_t *root, const char *path,
                          Traind__V1__CreateModelRequest **out) {
  /* {"model": ...} is a whole CreateModelRequest; anything else is the model itself. */
  if (json_is_object(root) && json_object_get(root, "model")) {
    *out = (Traind__V1__CreateModelRequest *)decode(
        ctx, root, &traind__v1__create_model_request__descriptor, "spec", path);
  } else {
    Traind__V1__Module *m =
        (Traind__V1__Module *)decode(ctx, root, &traind__v1__module__descriptor, "spec", path);
    Traind__V1__CreateModelRequest *req = m ? malloc(sizeof *req) : NULL;
    if (m && !req) {
      traind_message_free(m);
      json_decref(root);
      return tc_fail(ctx, TC_EXIT_FAILURE, "out of memory");
    }
    if (req) {
      traind__v1__create_model_request__init(req);
      req->model = m;
      *out = req;
    }
  }
  json_decref(root);
  return *out ? 0 : TC_EXIT_USAGE;
}

int tc_load_spec(const tc_ctx *ctx, const char *path, Traind__V1__CreateModelRequest **out) {
  *out = NULL;
  json_t *root = load_json_file(ctx, path);
  if (!root) return TC_EXIT_USAGE;
  return spec_from_json(ctx, root, path, out);
}

int tc_parse_spec(const tc_ctx *ctx, const char *text, size_t len, const char *source,
                  Traind__V1__CreateModelRequest **out) {
  *out = NULL;
  json_error_t e;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
  if (!root) return tc_usage_error(ctx, "%s:%d:%d: invalid JSON: %s", source, e.line, e.column,
                                   e.text);
  return spec_from_json(ctx, root, source, out);
}

/* --optimizer's value: JSON text, a file, or an algorithm's name ("adam"). */
static json_t *optimizer_json(const tc_ctx *ctx, const char *arg, const char **source) {
  const char *p = arg;
  while (isspace((unsigned char)*p))
    p++;
  struct stat sb;
  if (*p == '{' || *p == '"') {
    *source = "--optimizer";
    json_error_t e;
    json_t *v = json_loads(arg, JSON_REJECT_DUPLICATES, &e);
    if (!v) tc_usage_error(ctx, "--optimizer: invalid JSON at column %d: %s", e.column, e.text);
    return v;
  }
  if (stat(arg, &sb) == 0) {
    *source = arg;
    return load_json_file(ctx, arg);
  }
  *source = "--optimizer";
  for (const char *c = arg; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '_') {
      tc_usage_error(ctx,
                     "--optimizer: '%s' is neither JSON, an existing file nor an "
                     "algorithm name (sgd, adam, adamw, rmsprop, adagrad)",
                     arg);
      return NULL;
    }
  return json_string(arg);
}

/* Sets the `lr` field of the chosen algorithm (every algorithm has one). */
static void set_lr(Traind__V1__OptimizerSpec *opt, double lr) {
  const ProtobufCFieldDescriptor *alg = protobuf_c_message_descriptor_get_field(
      &traind__v1__optimizer_spec__descriptor, (unsigned)opt->algorithm_case);
  ProtobufCMessage *m = *(ProtobufCMessage **)((char *)opt + alg->offset);
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "lr");
  *(double *)((char *)m + f->offset) = lr;
  *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
}

int tc_apply_optimizer_options(const tc_ctx *ctx, Traind__V1__CreateModelRequest *req) {
  const char *arg = tc_opt(ctx, "optimizer");
  if (arg) {
    const char *source;
    json_t *v = optimizer_json(ctx, arg, &source);
    if (!v) return TC_EXIT_USAGE;
    ProtobufCMessage *opt =
        decode(ctx, v, &traind__v1__optimizer_spec__descriptor, "optimizer", source);
    json_decref(v);
    if (!opt) return TC_EXIT_USAGE;
    traind_message_free(req->optimizer);
    req->optimizer = (Traind__V1__OptimizerSpec *)opt;
  }
  double lr;
  if (!tc_opt(ctx, "lr")) return 0;
  if (!tc_opt_double(ctx, "lr", 0, 1e9, &lr)) return TC_EXIT_USAGE;
  if (!req->optimizer) { /* --lr alone: plain SGD */
    Traind__V1__OptimizerSpec *opt = malloc(sizeof *opt);
    Traind__V1__SGD *sgd = malloc(sizeof *sgd);
    if (!opt || !sgd) {
      free(opt);
      free(sgd);
      return tc_fail(ctx, TC_EXIT_FAILURE, "out of memory");
    }
    traind__v1__optimizer_spec__init(opt);
    traind__v1__sgd__init(sgd);
    opt->algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD;
    opt->sgd = sgd;
    req->optimizer = opt;
  }
  set_lr(req->optimizer, lr);
  return 0;
}
