/* config.c - flags, environment variables and `traind --help`. */
#include "util/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum opt_type { OPT_STRING, OPT_INT, OPT_SIZE, OPT_SECONDS, OPT_LEVEL, OPT_FLAG } opt_type;

/* One row per setting: the flag, its variable, where it goes, the range a
 * number must be in (for a string: its buffer's size), and the help text
 * (which shows the default). */
typedef struct option_def {
  const char *flag;
  const char *env;
  opt_type type;
  size_t offset;
  double min, max;
  const char *arg;
  const char *help;
} option_def;

#define FIELD(f) offsetof(traind_config, f)

static const option_def options[] = {
    {"--listen", "TRAIND_LISTEN", OPT_STRING, FIELD(listen), 0, 256, "HOST:PORT",
     "address to serve on (default 127.0.0.1:50051; port 0 picks a free port, logged)"},
    {"--data-dir", "TRAIND_DATA_DIR", OPT_STRING, FIELD(data_dir), 0, 1024, "DIR",
     "where sessions are kept across restarts (default ./traind-data)"},
    {"--autosave-steps", "TRAIND_AUTOSAVE_STEPS", OPT_INT, FIELD(autosave_steps), 0, 1e9, "N",
     "save each session every N optimizer steps (default 50; 0: only when created, loaded, "
     "switched train/eval and at shutdown); a crash loses at most the steps since"},
    {"--workers", "TRAIND_WORKERS", OPT_INT, FIELD(workers), 1, 256, "N",
     "compute threads; sessions run in parallel on them (default: the number of CPUs)"},
    {"--blas-threads", "TRAIND_BLAS_THREADS", OPT_INT, FIELD(blas_threads), 1, 256, "N",
     "threads one op (a product, a convolution) may use (default 1: parallelism comes from sessions)"},
    {"--max-message-size", "TRAIND_MAX_MESSAGE_SIZE", OPT_SIZE, FIELD(max_message_size), 1024,
     (double)INT_MAX, "BYTES", "largest request or response message (default 64M; K/M/G suffixes)"},
    {"--max-sessions", "TRAIND_MAX_SESSIONS", OPT_INT, FIELD(max_sessions), 1, 1e6, "N",
     "open sessions at a time (default 64)"},
    {"--max-parameters", "TRAIND_MAX_PARAMETERS", OPT_SIZE, FIELD(max_parameters), 1, 1e15, "N",
     "parameter elements in one model (default 100M)"},
    {"--max-memory", "TRAIND_MAX_MEMORY", OPT_SIZE, FIELD(max_memory), 0, 1e18, "BYTES",
     "tensor memory of all sessions together; a request that would pass it is refused "
     "(default: 80% of RAM, or of the cgroup's memory.max)"},
    {"--tenant-max-sessions", "TRAIND_TENANT_MAX_SESSIONS", OPT_INT, FIELD(tenant_max_sessions),
     0, 1e6, "N", "open sessions per tenant (default 0: no quota beyond --max-sessions)"},
    {"--tenant-max-parameters", "TRAIND_TENANT_MAX_PARAMETERS", OPT_SIZE,
     FIELD(tenant_max_parameters), 0, 1e15, "N",
     "parameter elements across one tenant's open sessions (default 0: no quota)"},
    {"--max-tensor-elements", "TRAIND_MAX_TENSOR_ELEMENTS", OPT_SIZE, FIELD(max_tensor_elements),
     1, 1e15, "N", "elements in one request tensor (default 64M)"},
    {"--idle-timeout", "TRAIND_IDLE_TIMEOUT", OPT_SECONDS, FIELD(idle_timeout), 0, 1e9, "SECONDS",
     "close sessions idle this long (default 3600; 0 never)"},
    {"--grace-period", "TRAIND_GRACE_PERIOD", OPT_SECONDS, FIELD(grace_period), 0, 3600,
     "SECONDS", "time in-flight calls get to finish after SIGTERM (default 10)"},
    {"--log-level", "TRAIND_LOG_LEVEL", OPT_LEVEL, FIELD(log_level), 0, 0,
     "debug|info|warn|error", "lowest level logged (default info)"},
    {"--tls-cert", "TRAIND_TLS_CERT", OPT_STRING, FIELD(tls_cert), 0, 1024, "FILE",
     "serve TLS with this PEM certificate chain (needs --tls-key)"},
    {"--tls-key", "TRAIND_TLS_KEY", OPT_STRING, FIELD(tls_key), 0, 1024, "FILE",
     "the PEM private key of --tls-cert"},
    {"--tls-client-ca", "TRAIND_TLS_CLIENT_CA", OPT_STRING, FIELD(tls_client_ca), 0, 1024, "FILE",
     "require client certificates signed by this PEM CA (mutual TLS)"},
    {"--tokens-file", "TRAIND_TOKENS_FILE", OPT_STRING, FIELD(tokens_file), 0, 1024, "FILE",
     "require 'authorization: Bearer TOKEN'; lines 'TOKEN TENANT' (reloaded on SIGHUP)"},
    {"--insecure", "TRAIND_INSECURE", OPT_FLAG, FIELD(insecure), 0, 1, "",
     "allow a non-loopback --listen without TLS or tokens (refused otherwise)"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static void set_defaults(traind_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->listen, sizeof cfg->listen, "127.0.0.1:50051");
  snprintf(cfg->data_dir, sizeof cfg->data_dir, "traind-data");
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cfg->workers = cpus > 0 ? (int)cpus : 1;
  cfg->blas_threads = 1;
  cfg->max_message_size = 64 << 20;
  cfg->max_sessions = 64;
  cfg->max_parameters = 100 * 1000 * 1000;
  cfg->max_tensor_elements = 64 << 20;
  cfg->autosave_steps = 50;
  cfg->idle_timeout = 3600;
  cfg->grace_period = 10;
  cfg->log_level = LOG_INFO;
}

static void print_help(void) {
  printf("usage: traind [options]\n\n"
         "The traind training server: remote clients create models and drive\n"
         "training over gRPC (traind.v1.Trainer, grpc.health.v1.Health).\n\n"
         "Every option can also be set through its environment variable;\n"
         "the command line wins.\n\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    char left[64];
    snprintf(left, sizeof left, "%s%s%s", options[i].flag, *options[i].arg ? " " : "",
             options[i].arg);
    printf("  %-34s %s\n  %-34s [%s]\n", left, options[i].help, "", options[i].env);
  }
  printf("  %-34s %s\n", "-h, --help", "show this help and exit");
  printf("\nSIGTERM or SIGINT: stop taking calls, let in-flight ones finish (up to\n"
         "the grace period), exit 0.\n");
}

/* Parses "123", "64M", "1.5G" (1024-based suffixes). */
static int parse_number(const char *s, opt_type type, double *out) {
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (end == s || errno) return -1;
  if (type == OPT_SIZE && *end) {
    double mult = *end == 'K' || *end == 'k'   ? 1024.0
                  : *end == 'M' || *end == 'm' ? 1048576.0
                  : *end == 'G' || *end == 'g' ? 1073741824.0
                                               : 0;
    if (mult == 0) return -1;
    v *= mult;
    end++;
  }
  if (*end || !isfinite(v)) return -1;
  if (type != OPT_SECONDS && v != floor(v)) return -1;
  *out = v;
  return 0;
}

static int apply_option(traind_config *cfg, const option_def *o, const char *value,
                        const char *source) {
  char *field = (char *)cfg + o->offset;
  if (o->type == OPT_FLAG) {
    if (strcmp(value, "1") && strcmp(value, "true") && strcmp(value, "0") &&
        strcmp(value, "false")) {
      fprintf(stderr, "traind: %s: %s takes 1/true or 0/false, got \"%s\"\n", source, o->flag,
              value);
      return -1;
    }
    *(int *)field = !strcmp(value, "1") || !strcmp(value, "true");
    return 0;
  }
  if (o->type == OPT_STRING) {
    size_t cap = (size_t)o->max;
    if (!*value || strlen(value) >= cap) {
      fprintf(stderr, "traind: %s: %s must be 1 to %zu characters\n", source, o->flag, cap - 1);
      return -1;
    }
    memcpy(field, value, strlen(value) + 1);
    return 0;
  }
  if (o->type == OPT_LEVEL) {
    log_level level;
    if (!log_parse_level(value, &level)) {
      fprintf(stderr, "traind: %s: %s must be one of debug, info, warn, error; got \"%s\"\n",
              source, o->flag, value);
      return -1;
    }
    *(log_level *)field = level;
    return 0;
  }
  double v;
  if (parse_number(value, o->type, &v) || v < o->min || v > o->max) {
    fprintf(stderr, "traind: %s: %s must be a %s between %.0f and %.0f; got \"%s\"\n", source,
            o->flag, o->type == OPT_SECONDS ? "number of seconds" : "whole number", o->min, o->max,
            value);
    return -1;
  }
  if (o->type == OPT_INT)
    *(int *)field = (int)v;
  else if (o->type == OPT_SIZE)
    *(int64_t *)field = (int64_t)v;
  else
    *(double *)field = v;
  return 0;
}

/* HOST:PORT with a port in 0..65535; [v6]:PORT is accepted as gRPC does. */
static int check_listen(const char *addr) {
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr || !colon[1]) return -1;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  return (*end || port < 0 || port > 65535) ? -1 : 0;
}

config_result config_parse(traind_config *cfg, int argc, char **argv) {
  set_defaults(cfg);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const char *v = getenv(options[i].env);
    if (v && *v && apply_option(cfg, &options[i], v, options[i].env)) return CONFIG_ERROR;
  }
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      print_help();
      return CONFIG_HELP;
    }
    const option_def *o = NULL;
    const char *value = NULL;
    for (size_t i = 0; i < N_OPTIONS && !o; i++) {
      size_t n = strlen(options[i].flag);
      if (!strncmp(arg, options[i].flag, n) && (arg[n] == '=' || arg[n] == 0)) {
        o = &options[i];
        value = arg[n] == '=' ? arg + n + 1 : NULL;
      }
    }
    if (!o) {
      fprintf(stderr, "traind: unknown option \"%s\" (see traind --help)\n", arg);
      return CONFIG_ERROR;
    }
    if (!value && o->type == OPT_FLAG) value = "1"; /* a flag alone means on */
    if (!value) {
      if (a + 1 >= argc) {
        fprintf(stderr, "traind: %s needs a value (%s)\n", o->flag, o->arg);
        return CONFIG_ERROR;
      }
      value = argv[++a];
    }
    if (apply_option(cfg, o, value, "command line")) return CONFIG_ERROR;
  }
  if (!*cfg->tls_cert != !*cfg->tls_key) {
    fprintf(stderr, "traind: --tls-cert and --tls-key go together; only %s was given\n",
            *cfg->tls_cert ? "--tls-cert" : "--tls-key");
    return CONFIG_ERROR;
  }
  if (*cfg->tls_client_ca && !*cfg->tls_cert) {
    fprintf(stderr, "traind: --tls-client-ca needs --tls-cert and --tls-key (it is mutual TLS)\n");
    return CONFIG_ERROR;
  }
  if (check_listen(cfg->listen)) {
    fprintf(stderr, "traind: --listen must be HOST:PORT with a port in 0..65535; got \"%s\"\n",
            cfg->listen);
    return CONFIG_ERROR;
  }
  return CONFIG_OK;
}
