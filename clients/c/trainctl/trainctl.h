/* trainctl: what the command files share (context, exit codes, option values, errors). */
#ifndef TRAINCTL_H
#define TRAINCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "traind_client.h"

/* Exit codes (documented in clients/c/README.md and `trainctl --help`). */
enum {
  TC_EXIT_OK = 0,
  TC_EXIT_FAILURE = 1,     /* anything else: a local file could not be written, ... */
  TC_EXIT_USAGE = 2,       /* bad command line, or an invalid spec / CSV / optimizer */
  TC_EXIT_UNREACHABLE = 3, /* the server did not answer (UNAVAILABLE, DEADLINE_EXCEEDED) */
  TC_EXIT_SERVER = 4,      /* the server refused the request (its gRPC code is printed) */
  TC_EXIT_NOT_SERVING = 5, /* `health`: the server answered, but not SERVING */
};

#define TC_MAX_OPTS 24

/* One option a command accepts. */
typedef struct tc_option {
  const char *name; /* long name without "--" */
  char short_name;  /* 0: none */
  bool has_arg;
  const char *arg_name; /* shown in help ("FILE"); NULL without an argument */
  const char *help;
} tc_option;

/* The parsed command line of one run. Strings point into argv. */
typedef struct tc_ctx {
  const char *prog;             /* "trainctl" */
  const char *cmd;              /* the subcommand's name */
  const char *server;           /* --server, $TRAIND_SERVER, or the default */
  const char *token;            /* --token, $TRAIND_TOKEN, or NULL */
  const char *tls_ca;           /* --tls-ca, $TRAIND_TLS_CA, or NULL (plaintext) */
  const char *tls_cert;         /* --tls-cert / --tls-key: mutual TLS, or NULL */
  const char *tls_key;
  int64_t timeout_ms;           /* per-call deadline; 0: none */
  const tc_option *opts;        /* the subcommand's options, NULL-name terminated */
  const char *val[TC_MAX_OPTS]; /* val[i]: the value of opts[i] (last one given), or NULL */
  bool set[TC_MAX_OPTS];        /* opts[i] was given */
  const char **pos;             /* positional arguments */
  int n_pos;
  traind_client *client; /* opened by tc_connect, closed by main */
} tc_ctx;

/* A subcommand. run returns the exit code. */
typedef struct tc_command {
  const char *name;
  const char *args; /* positional arguments for the usage line ("ID FILE") */
  int min_pos, max_pos;
  const char *summary; /* one line for `trainctl --help` */
  const char *help;    /* the rest of `trainctl CMD --help` */
  const tc_option *opts;
  int (*run)(tc_ctx *ctx);
} tc_command;

extern const tc_command tc_cmd_health, tc_cmd_sessions, tc_cmd_info, tc_cmd_create, tc_cmd_train,
    tc_cmd_checkpoint, tc_cmd_load, tc_cmd_close;

/* ---- options (main.c) */
/* The value of the option named `name`, or NULL when not given. */
const char *tc_opt(const tc_ctx *ctx, const char *name);
bool tc_flag(const tc_ctx *ctx, const char *name);
/* Parse an option's value; on a bad value print why and return false. */
bool tc_opt_int(const tc_ctx *ctx, const char *name, int64_t min, int64_t max, int64_t *out);
bool tc_opt_double(const tc_ctx *ctx, const char *name, double min, double max, double *out);

/* ---- errors (main.c) */
/* Prints "trainctl CMD: <formatted>" to stderr; returns TC_EXIT_USAGE. */
int tc_usage_error(const tc_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "trainctl CMD: <formatted>" to stderr; returns `code`. */
int tc_fail(const tc_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports a failed call `what` (e.g. "GetSession") and returns its exit code: 3 for an
 * unreachable server or a timeout (the message names the address), 1 for a local system
 * error, 4 for anything the server refused (with its code name and message). Clears *st. */
int tc_rpc_error(const tc_ctx *ctx, const char *what, traind_status *st);

/* Opens ctx->client (lazily connected: an unreachable server fails the first call). */
int tc_connect(tc_ctx *ctx);

/* ---- specs (spec.c) */
/* Reads a model spec file: a Module, or {"model": Module, "optimizer": ..., "seed": ...,
 * "name": ...}. On success *out is a new request (free with traind_message_free). On
 * failure prints the problem (with the JSON path) and returns TC_EXIT_USAGE. */
int tc_load_spec(const tc_ctx *ctx, const char *path, Traind__V1__CreateModelRequest **out);
/* The same from JSON text in memory; `source` names it in messages. */
int tc_parse_spec(const tc_ctx *ctx, const char *text, size_t len, const char *source,
                  Traind__V1__CreateModelRequest **out);
/* Applies --optimizer (JSON text, a file, or an algorithm name) and --lr (sets the
 * optimizer's lr; without an optimizer, SGD with that lr) to req. 0 or an exit code. */
int tc_apply_optimizer_options(const tc_ctx *ctx, Traind__V1__CreateModelRequest *req);

/* ---- create (cmd_create.c) */
/* The CreateModelRequest of --spec with --optimizer, --lr, --seed and --name applied.
 * 0 or an exit code; *out is then a new request (free with traind_message_free). */
int tc_build_request(const tc_ctx *ctx, Traind__V1__CreateModelRequest **out);

/* ---- data (csv.c) */
typedef struct tc_dataset {
  float *x;                     /* [n, features], malloc'd */
  int64_t *y;                   /* [n], malloc'd */
  int64_t n, features, classes; /* classes: the largest label + 1 */
} tc_dataset;

/* Reads a CSV of rows "f1,...,fK,label" (an optional header line). 0 or an exit code
 * (the message names the file, line and column). */
int tc_load_csv(const tc_ctx *ctx, const char *path, tc_dataset *out);
void tc_dataset_free(tc_dataset *d);

#endif /* TRAINCTL_H */
