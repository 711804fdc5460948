/* trainctl: the command line, help, dispatch to a subcommand, and error reporting. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainctl.h"

#define DEFAULT_TIMEOUT_S 60.0
/* A health check must answer fast (a container HEALTHCHECK waits on it). */
#define HEALTH_DEFAULT_TIMEOUT_S 2.0

static const tc_command *const commands[] = {
    &tc_cmd_health, &tc_cmd_sessions,   &tc_cmd_info, &tc_cmd_create,
    &tc_cmd_train,  &tc_cmd_checkpoint, &tc_cmd_load, &tc_cmd_close,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

enum { G_SERVER, G_TOKEN, G_TIMEOUT, G_HELP, N_GLOBAL };
static const tc_option global_opts[] = {
    {"server", 0, true, "HOST:PORT",
     "the daemon's address (env TRAIND_SERVER; default " TRAIND_DEFAULT_TARGET ")"},
    {"token", 0, true, "TOKEN", "bearer token sent with every call (env TRAIND_TOKEN)"},
    {"timeout", 0, true, "SECONDS", "deadline of each call, 0 for none (default 60; 2 for health)"},
    {"help", 'h', false, NULL, "show help (trainctl COMMAND --help for a command)"},
    {NULL, 0, false, NULL, NULL},
};

/* ---------------------------------------------------------------- help */

static void print_options(FILE *f, const tc_option *opts) {
  for (const tc_option *o = opts; o->name; o++) {
    char left[80];
    if (o->short_name)
      snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->arg_name ? " " : "",
               o->arg_name ? o->arg_name : "");
    else
      snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg_name ? " " : "",
               o->arg_name ? o->arg_name : "");
    fprintf(f, "  %-30s %s\n", left, o->help);
  }
}

static void print_main_help(FILE *f) {
  fprintf(f, "usage: trainctl [--server HOST:PORT] [--token TOKEN] [--timeout SECONDS] COMMAND "
             "[ARGS]\n\n"
             "Drives a traind training server over gRPC.\n\ncommands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
  fprintf(f, "\nglobal options (before or after the command):\n");
  print_options(f, global_opts);
  fprintf(f, "\nexit codes:\n"
             "  0  success\n"
             "  1  other failure (e.g. a local file could not be written)\n"
             "  2  bad arguments, or an invalid spec, optimizer or CSV file\n"
             "  3  the server is unreachable or did not answer in time\n"
             "  4  the server refused the request (its gRPC code and message are printed)\n"
             "  5  health: the server answered but is not SERVING\n"
             "\nRun 'trainctl COMMAND --help' for a command's arguments.\n");
}

static void print_command_help(FILE *f, const tc_command *cmd) {
  fprintf(f, "usage: trainctl %s%s%s\n\n%s\n\n%s\n", cmd->name, *cmd->args ? " " : "", cmd->args,
          cmd->summary, cmd->help);
  if (cmd->opts[0].name) {
    fprintf(f, "\noptions:\n");
    print_options(f, cmd->opts);
  }
  fprintf(f, "\nglobal options:\n");
  print_options(f, global_opts);
}

/* ---------------------------------------------------------------- errors */

static void vreport(const tc_ctx *ctx, const char *fmt, va_list ap) {
  fprintf(stderr, "%s%s%s: ", ctx->prog, ctx->cmd ? " " : "", ctx->cmd ? ctx->cmd : "");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int tc_usage_error(const tc_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(ctx, fmt, ap);
  va_end(ap);
  return TC_EXIT_USAGE;
}

int tc_fail(const tc_ctx *ctx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(ctx, fmt, ap);
  va_end(ap);
  return code;
}

int tc_rpc_error(const tc_ctx *ctx, const char *what, traind_status *st) {
  const char *msg = st->message ? st->message : "(no message)";
  int code;
  if (st->sys_errno) {
    code = tc_fail(ctx, TC_EXIT_FAILURE, "%s: %s", what, msg);
  } else if (st->code == TRAIND_UNAVAILABLE || st->code == TRAIND_DEADLINE_EXCEEDED) {
    code = tc_fail(ctx, TC_EXIT_UNREACHABLE, "%s: cannot reach traind at %s: %s: %s", what,
                   ctx->server, traind_code_name(st->code), msg);
  } else {
    code = tc_fail(ctx, TC_EXIT_SERVER, "%s: %s: %s", what, traind_code_name(st->code), msg);
  }
  traind_status_clear(st);
  return code;
}

int tc_connect(tc_ctx *ctx) {
  traind_client_options o;
  traind_client_options_init(&o);
  o.target = ctx->server;
  o.token = ctx->token;
  o.timeout_ms = ctx->timeout_ms;
  traind_status st = traind_connect(&o, &ctx->client);
  return st.code ? tc_rpc_error(ctx, "connect", &st) : 0;
}

/* ---------------------------------------------------------------- option values */

static int opt_index(const tc_ctx *ctx, const char *name) {
  for (int i = 0; ctx->opts[i].name; i++)
    if (!strcmp(ctx->opts[i].name, name)) return i;
  return -1;
}

const char *tc_opt(const tc_ctx *ctx, const char *name) {
  int i = opt_index(ctx, name);
  return i >= 0 ? ctx->val[i] : NULL;
}

bool tc_flag(const tc_ctx *ctx, const char *name) {
  int i = opt_index(ctx, name);
  return i >= 0 && ctx->set[i];
}

static bool parse_int(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || errno) return false;
  *out = v;
  return true;
}

static bool parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v)) return false;
  *out = v;
  return true;
}

bool tc_opt_int(const tc_ctx *ctx, const char *name, int64_t min, int64_t max, int64_t *out) {
  const char *s = tc_opt(ctx, name);
  if (!s) return true;
  if (!parse_int(s, out) || *out < min || *out > max) {
    tc_usage_error(ctx, "--%s: expected an integer in [%lld, %lld], got '%s'", name, (long long)min,
                   (long long)max, s);
    return false;
  }
  return true;
}

bool tc_opt_double(const tc_ctx *ctx, const char *name, double min, double max, double *out) {
  const char *s = tc_opt(ctx, name);
  if (!s) return true;
  if (!parse_double(s, out) || *out < min || *out > max) {
    tc_usage_error(ctx, "--%s: expected a number in [%g, %g], got '%s'", name, min, max, s);
    return false;
  }
  return true;
}

/* ---------------------------------------------------------------- parsing */

static const tc_command *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(commands[i]->name, name)) return commands[i];
  return NULL;
}

/* Finds `arg` ("--name", "--name=value" or "-x") in opts; *inline_val gets the "=value". */
static int match_option(const tc_option *opts, const char *arg, const char **inline_val) {
  *inline_val = NULL;
  if (arg[1] != '-') {
    if (arg[2]) return -1; /* "-x" only: no bundling */
    for (int i = 0; opts[i].name; i++)
      if (opts[i].short_name == arg[1]) return i;
    return -1;
  }
  const char *name = arg + 2, *eq = strchr(name, '=');
  size_t len = eq ? (size_t)(eq - name) : strlen(name);
  for (int i = 0; opts[i].name; i++) {
    if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len)) {
      if (eq) *inline_val = eq + 1;
      return i;
    }
  }
  return -1;
}

/* Parses argv into ctx and *cmd. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, tc_ctx *ctx, const tc_command **cmd) {
  const char *gval[N_GLOBAL] = {0};
  bool help = false, only_positional = false;
  *cmd = NULL;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (only_positional || arg[0] != '-' || !arg[1]) {
      if (!*cmd) {
        if (!strcmp(arg, "help")) { /* "trainctl help [COMMAND]" */
          help = true;
          if (i + 1 < argc && !(*cmd = find_command(argv[i + 1])))
            return tc_usage_error(ctx, "unknown command '%s' (see trainctl --help)", argv[i + 1]);
          i++;
          continue;
        }
        if (!(*cmd = find_command(arg)))
          return tc_usage_error(ctx, "unknown command '%s' (see trainctl --help)", arg);
        ctx->cmd = (*cmd)->name;
        ctx->opts = (*cmd)->opts;
      } else {
        ctx->pos[ctx->n_pos++] = arg;
      }
      continue;
    }
    if (!strcmp(arg, "--")) {
      only_positional = true;
      continue;
    }
    const char *value;
    int g = match_option(global_opts, arg, &value), k = -1;
    const tc_option *o;
    if (g >= 0) {
      o = &global_opts[g];
    } else if (*cmd && (k = match_option(ctx->opts, arg, &value)) >= 0) {
      o = &ctx->opts[k];
    } else {
      return tc_usage_error(ctx, "unknown option '%s' (see trainctl %s%s--help)", arg,
                            *cmd ? (*cmd)->name : "", *cmd ? " " : "");
    }
    if (o->has_arg && !value) {
      if (i + 1 >= argc) return tc_usage_error(ctx, "option --%s needs a value", o->name);
      value = argv[++i];
    } else if (!o->has_arg && value) {
      return tc_usage_error(ctx, "option --%s takes no value", o->name);
    }
    if (g >= 0) {
      if (g == G_HELP) help = true;
      gval[g] = value;
    } else {
      ctx->val[k] = value;
      ctx->set[k] = true;
    }
  }

  if (help || !*cmd) {
    if (*cmd)
      print_command_help(stdout, *cmd);
    else
      print_main_help(help ? stdout : stderr);
    return help ? TC_EXIT_OK : TC_EXIT_USAGE;
  }
  if (ctx->n_pos < (*cmd)->min_pos || ctx->n_pos > (*cmd)->max_pos) {
    if (ctx->n_pos < (*cmd)->min_pos)
      return tc_usage_error(ctx, "missing argument: usage: trainctl %s %s", (*cmd)->name,
                            (*cmd)->args);
    return tc_usage_error(ctx, "unexpected argument '%s': usage: trainctl %s %s",
                          ctx->pos[(*cmd)->max_pos], (*cmd)->name, (*cmd)->args);
  }

  const char *env_server = getenv("TRAIND_SERVER"), *env_token = getenv("TRAIND_TOKEN");
  ctx->server = gval[G_SERVER]              ? gval[G_SERVER]
                : env_server && *env_server ? env_server
                                            : TRAIND_DEFAULT_TARGET;
  if (!*ctx->server) return tc_usage_error(ctx, "--server: empty address");
  ctx->token = gval[G_TOKEN] ? gval[G_TOKEN] : env_token;
  if (ctx->token && !*ctx->token) ctx->token = NULL;
  double timeout = *cmd == &tc_cmd_health ? HEALTH_DEFAULT_TIMEOUT_S : DEFAULT_TIMEOUT_S;
  if (gval[G_TIMEOUT] && (!parse_double(gval[G_TIMEOUT], &timeout) || timeout < 0 || timeout > 1e7))
    return tc_usage_error(ctx, "--timeout: expected seconds >= 0, got '%s'", gval[G_TIMEOUT]);
  ctx->timeout_ms = (int64_t)ceil(timeout * 1000.0);
  return -1;
}

int main(int argc, char **argv) {
  tc_ctx ctx = {.prog = "trainctl"};
  const char **pos = calloc((size_t)argc + 1, sizeof *pos);
  if (!pos) {
    fprintf(stderr, "trainctl: out of memory\n");
    return TC_EXIT_FAILURE;
  }
  ctx.pos = pos;
  const tc_command *cmd;
  int code = parse_args(argc, argv, &ctx, &cmd);
  if (code < 0) code = cmd->run(&ctx);
  traind_client_close(ctx.client);
  free(pos);
  return code;
}
