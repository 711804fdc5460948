/* main.c - the traind daemon: flags, the libuv loop, signals, start and stop.
 *
 * The loop owns the process. Start: parse the configuration, create the
 * compute pool and the session registry, bind the gRPC server, log the
 * address. Run: the loop dispatches calls (rpc/), expires idle sessions on
 * a timer and waits for SIGTERM/SIGINT. Stop: health turns NOT_SERVING and
 * new work is refused while calls in flight finish (up to the grace
 * period); then gRPC shuts down, the pool drains, every session is saved
 * and freed, and the process exits 0. Sessions saved by an earlier run
 * (persist/) are restored before the port opens. */
#include <errno.h>
#include <grpc/grpc.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/alloc.h"
#include "rpc/rpc.h"
#include "service/service.h"
#include "session/pool.h"
#include "session/session.h"
#include "util/config.h"
#include "util/log.h"

typedef struct daemon_state {
  traind_config config;
  uv_loop_t loop;
  uv_signal_t sigterm, sigint, sighup;
  uv_timer_t expiry;
  uv_timer_t trim;
  service svc;
  bool stopping;
} daemon_state;

static void on_expired(session *s, void *ctx) {
  daemon_state *d = ctx;
  log_info("session %s expired after %.0f s idle (name \"%s\")", s->id, d->config.idle_timeout,
           s->name);
  service_forget(&d->svc, s, NULL);
  session_release(s);
}

static void on_expiry_timer(uv_timer_t *timer) {
  daemon_state *d = timer->data;
  int64_t cutoff = session_now_ms() - (int64_t)(d->config.idle_timeout * 1000);
  registry_expire(d->svc.sessions, cutoff, on_expired, d);
}

/* The thresholds set in main() keep large request buffers in the heap, so
 * that the next request of the same size does not fault them in again; the
 * price is that the heap holds on to the worst burst it has seen (many
 * checkpoints downloading at once). Every few seconds, free pages go back to
 * the kernel: resident memory follows what the sessions hold, not the peak. */
#define TRIM_EVERY_MS 5000
static void on_trim_timer(uv_timer_t *timer) {
  (void)timer;
  malloc_trim(0);
}

static void on_closed(uv_handle_t *h) { (void)h; }


static void on_drained(rpc_server *server);

static void on_signal(uv_signal_t *sig, int signum) {
  daemon_state *d = sig->data;
  if (d->stopping) {
    log_info("%s again: already draining", signum == SIGINT ? "SIGINT" : "SIGTERM");
    return;
  }
  d->stopping = true;
  log_info("%s: draining (health NOT_SERVING, new work refused, %d call%s in flight, grace %.0f s)",
           signum == SIGINT ? "SIGINT" : "SIGTERM", rpc_server_calls_in_flight(d->svc.rpc),
           rpc_server_calls_in_flight(d->svc.rpc) == 1 ? "" : "s", d->config.grace_period);
  uv_timer_stop(&d->expiry);
  uv_timer_stop(&d->trim);
  rpc_server_shutdown(d->svc.rpc, (uint64_t)(d->config.grace_period * 1000), on_drained);
}

/* SIGHUP: the tokens file again. A file that does not parse changes
 * nothing (the error says where). */
static void on_sighup(uv_signal_t *sig, int signum) {
  (void)signum;
  daemon_state *d = sig->data;
  if (!d->svc.tokens) {
    log_info("SIGHUP: no --tokens-file to reload");
    return;
  }
  char error[512];
  if (tokens_reload(d->svc.tokens, error, sizeof error))
    log_error("SIGHUP: tokens not reloaded, the previous ones stay: %s", error);
  else
    log_info("SIGHUP: tokens reloaded (%d)", tokens_count(d->svc.tokens));
}

static daemon_state *the_daemon;

static void on_drained(rpc_server *server) {
  daemon_state *d = the_daemon;
  rpc_server_destroy(server);
  d->svc.rpc = NULL;
  uv_close((uv_handle_t *)&d->sigterm, on_closed);
  uv_close((uv_handle_t *)&d->sigint, on_closed);
  uv_close((uv_handle_t *)&d->sighup, on_closed);
  uv_close((uv_handle_t *)&d->expiry, on_closed);
  uv_close((uv_handle_t *)&d->trim, on_closed);
}

/* "HOST:PORT" with the bound port in place of the asked one (port 0). */
static void format_address(const char *listen, int port, char *out, size_t size) {
  const char *colon = strrchr(listen, ':');
  int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);
  snprintf(out, size, "%.*s:%d", host_len, listen, port);
}

/* The whole of a (small) PEM file as a string, or NULL with a logged error. */
static char *read_pem(const char *flag, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    log_error("%s %s: %s", flag, path, strerror(errno));
    return NULL;
  }
  char *text = malloc(1 << 20);
  size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
  fclose(f);
  if (!text || n == 0 || n == (1 << 20) - 1) {
    log_error("%s %s: empty, unreadable or over 1 MiB", flag, path);
    free(text);
    return NULL;
  }
  text[n] = 0;
  return text;
}

/* 80% of what this process may use: the machine's RAM, or the container's
 * cgroup limit when that is lower. The rest is for gRPC's buffers, request
 * messages and the process itself, which the engine's accounting does not
 * see: the point is that the kernel never has to kill traind. */
static int64_t default_memory_limit(void) {
  double bytes = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
  if (f) {
    long long cg;
    if (fscanf(f, "%lld", &cg) == 1 && cg > 0 && (double)cg < bytes) bytes = (double)cg;
    fclose(f);
  }
  return (int64_t)(bytes * 0.8);
}

/* 127.0.0.0/8, ::1 and localhost: reachable only from this machine. */
static bool listen_is_loopback(const char *listen) {
  return !strncmp(listen, "127.", 4) || !strncmp(listen, "localhost:", 10) ||
         !strncmp(listen, "[::1]:", 6) || !strncmp(listen, "ipv4:127.", 9);
}

static int make_data_dir(const char *dir) {
  if (mkdir(dir, 0750) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    log_error("--data-dir %s exists and is not a directory", dir);
    return -1;
  }
  log_error("cannot create --data-dir %s: %s", dir, strerror(errno));
  return -1;
}

int main(int argc, char **argv) {
  static daemon_state d;
  the_daemon = &d;
  switch (config_parse(&d.config, argc, argv)) {
  case CONFIG_HELP: return 0;
  case CONFIG_ERROR: return 2;
  case CONFIG_OK: break;
  }
  log_set_level(d.config.log_level);
  /* Secure by default: anything beyond this machine needs TLS or tokens,
   * unless the operator says otherwise in so many words. */
  if (!listen_is_loopback(d.config.listen) && !*d.config.tls_cert && !*d.config.tokens_file &&
      !d.config.insecure) {
    fprintf(stderr,
            "traind: refusing to listen on %s without TLS (--tls-cert/--tls-key) or tokens "
            "(--tokens-file): anyone who can reach it could use and read every session. "
            "Add --insecure (TRAIND_INSECURE=1) if the network is private.\n",
            d.config.listen);
    return 2;
  }
  /* Requests allocate and free the same large buffers over and over (a
   * batch, its activations, a checkpoint); keep them in the heap. */
  td_mem_keep_heap();
  signal(SIGPIPE, SIG_IGN);
  if (make_data_dir(d.config.data_dir)) return 1;

  int64_t memory_limit = d.config.max_memory ? d.config.max_memory : default_memory_limit();
  td_mem_set_limit((size_t)memory_limit);
  grpc_init();
  uv_loop_init(&d.loop);
  d.svc.config = &d.config;
  d.svc.limits.max_parameters = d.config.max_parameters;
  d.svc.limits.max_tensor_elements = d.config.max_tensor_elements;
  int rc = 1;
  char *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL;
  if (*d.config.tokens_file) {
    char error[512];
    if (tokens_load(d.config.tokens_file, &d.svc.tokens, error, sizeof error)) {
      log_error("--tokens-file: %s", error);
      goto out;
    }
  }
  if (*d.config.tls_cert) {
    tls_cert = read_pem("--tls-cert", d.config.tls_cert);
    tls_key = read_pem("--tls-key", d.config.tls_key);
    if (*d.config.tls_client_ca) tls_ca = read_pem("--tls-client-ca", d.config.tls_client_ca);
    if (!tls_cert || !tls_key || (*d.config.tls_client_ca && !tls_ca)) goto out;
  }
  if (pool_create(d.config.workers, d.config.blas_threads, &d.svc.pool) ||
      registry_create(d.config.max_sessions, &d.svc.sessions)) {
    log_error("out of memory at start");
    goto out;
  }
  if (store_open(d.config.data_dir, &d.svc.store)) {
    log_error("--data-dir: %s", td_error_message());
    goto out;
  }
  int restored = service_restore(&d.svc);
  if (restored) log_info("%d session%s restored from %s", restored, restored == 1 ? "" : "s",
                         store_dir(d.svc.store));
  rpc_server_options opts = {.listen = d.config.listen,
                             .max_message_size = d.config.max_message_size,
                             .user = &d.svc,
                             .tls_cert = tls_cert,
                             .tls_key = tls_key,
                             .tls_client_ca = tls_ca};
  int port = 0;
  if (rpc_server_create(&d.loop, &opts, service_methods, service_n_methods, &d.svc.rpc, &port))
    goto out;
  if (rpc_server_start(d.svc.rpc)) {
    log_error("cannot start the completion-queue thread");
    goto out;
  }

  uv_signal_init(&d.loop, &d.sigterm);
  uv_signal_init(&d.loop, &d.sigint);
  d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_signal_init(&d.loop, &d.sighup);
  d.sighup.data = &d;
  uv_signal_start(&d.sighup, on_sighup, SIGHUP);
  uv_timer_init(&d.loop, &d.trim);
  uv_timer_start(&d.trim, on_trim_timer, TRIM_EVERY_MS, TRIM_EVERY_MS);
  uv_timer_init(&d.loop, &d.expiry);
  d.expiry.data = &d;
  if (d.config.idle_timeout > 0) {
    /* Check often enough that a session outlives its timeout by at most a
     * quarter of it (and at most 30 s). */
    double every = d.config.idle_timeout / 4 < 30 ? d.config.idle_timeout / 4 : 30;
    uint64_t ms = every < 0.05 ? 50 : (uint64_t)(every * 1000);
    uv_timer_start(&d.expiry, on_expiry_timer, ms, ms);
  }

  char address[300];
  format_address(d.config.listen, port, address, sizeof address);
  log_info("traind started: %d workers, max %d sessions, max message %lld bytes, memory limit "
           "%lld MiB, data dir %s",
           d.config.workers, d.config.max_sessions, (long long)d.config.max_message_size,
           (long long)(memory_limit >> 20), d.config.data_dir);
  log_info("security: %s, %s", tls_cert ? (tls_ca ? "mutual TLS" : "TLS") : "plaintext",
           d.svc.tokens ? "bearer tokens required" : "no authentication");
  log_info("listening on %s", address);

  uv_run(&d.loop, UV_RUN_DEFAULT);
  rc = 0;

out:
  if (rc && d.svc.rpc) { /* failed before it started serving */
    rpc_server_destroy(d.svc.rpc);
    uv_run(&d.loop, UV_RUN_DEFAULT);
  }
  pool_destroy(d.svc.pool);
  if (rc == 0) {
    /* Nothing runs any more: the sessions can be read from this thread. */
    int open = registry_count(d.svc.sessions);
    int failed = service_save_all(&d.svc);
    log_info("stopped: %d of %d session%s saved in %s%s", open - failed, open,
             open == 1 ? "" : "s", store_dir(d.svc.store),
             failed ? " (the others keep their previous save)" : "");
  }
  registry_destroy(d.svc.sessions);
  store_close(d.svc.store);
  tokens_free(d.svc.tokens);
  free(tls_cert);
  if (tls_key) memset(tls_key, 0, strlen(tls_key)); /* a private key: wipe before freeing */
  free(tls_key);
  free(tls_ca);
  uv_loop_close(&d.loop);
  grpc_shutdown();
  return rc;
}
