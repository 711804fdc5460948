/* config.h - the daemon's settings from flags and environment variables.
 *
 * Every flag has an environment variable (--listen / TRAIND_LISTEN, ...); a
 * flag given on the command line wins over the variable, which wins over the
 * default. `traind --help` prints the table in config.c.
 */
#ifndef TRAIND_UTIL_CONFIG_H
#define TRAIND_UTIL_CONFIG_H

#include <stdint.h>

#include "util/log.h"

typedef struct traind_config {
  char listen[256];            /* HOST:PORT; port 0 picks a free one */
  char data_dir[1024];         /* durable state: sessions/<id>.session (persist/store.h) */
  int autosave_steps;          /* save a session every this many optimizer steps; 0: never
                                  between creation, loads and shutdown */
  int workers;                 /* compute threads: sessions run in parallel on them */
  int blas_threads;            /* intra-op threads (td_set_num_threads) */
  int64_t max_message_size;    /* bytes, both directions */
  int max_sessions;
  int64_t max_parameters;      /* parameter elements per model */
  int tenant_max_sessions;     /* open sessions per tenant; 0: no quota */
  int64_t tenant_max_parameters; /* parameter elements in one tenant's open sessions; 0: none */
  int64_t max_tensor_elements; /* elements per tensor in a request */
  int64_t max_memory;          /* bytes of tensors in all sessions; 0: the default (main.c) */
  double idle_timeout;         /* seconds without a request before a session expires; 0: never */
  double grace_period;         /* seconds in-flight calls get after SIGTERM */
  log_level log_level;
  /* Security (all optional; see server/auth/auth.h). Empty string: unset. */
  char tls_cert[1024];      /* PEM certificate chain: serve TLS */
  char tls_key[1024];       /* its PEM private key */
  char tls_client_ca[1024]; /* PEM CA: require and verify client certificates */
  char tokens_file[1024];   /* "TOKEN TENANT" lines: require a bearer token */
  int insecure;             /* allow a non-loopback address without TLS or tokens */
} traind_config;

typedef enum config_result {
  CONFIG_OK = 0,
  CONFIG_HELP,  /* --help was printed: exit 0 */
  CONFIG_ERROR, /* a message was printed: exit 2 */
} config_result;

/* Fills cfg from defaults, then the environment, then argv. Errors and help
 * go to stderr/stdout. */
config_result config_parse(traind_config *cfg, int argc, char **argv);

#endif
