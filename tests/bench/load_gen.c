/* load_gen - drives a running traind with N concurrent clients over M sessions and checks
 * that it stayed correct, responsive and flat in memory.
 *
 * usage: load_gen --target HOST:PORT [--clients 64] [--sessions 16] [--seconds 120]
 *                 [--server-pid PID] [--seed 1] [--token TOKEN] [more: --help]
 *
 * Each session has exactly one writer (TrainStep, now and then a StateDict snapshot and
 * a LoadStateDict of an earlier one, and abandoned TrainSteps) and the other clients
 * read it: plain readers, chaos clients that abandon calls abruptly, and stallers that
 * stop mid-stream for seconds (load_writer.c, load_reader.c). After the run every
 * session's writer log is replayed on a fresh session and the states compared byte for
 * byte, and each idle live session gets a few whole uploads that are never closed and
 * then abandoned, which must not load (load_replay.c).
 *
 * Pass: no unexpected error (anything but DEADLINE_EXCEEDED / CANCELLED on a call
 * abandoned on purpose), every replay identical, no abandoned upload loaded, and with
 * --rss-growth-pct the server's RSS after warm-up within that much of its warm-up level.
 * Exit 1 otherwise, 2 on usage.
 * The report gives p50/p99 per request type (normal calls only), the same split by
 * whether a stall was in progress, requests/s, the RSS (sampled every second from
 * /proc/PID/status) and the replays; lines starting "load: " are for machines.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "load_gen.h"

/* ---------------------------------------------------------------- options */

static void usage(FILE *f) {
  fprintf(f,
          "usage: load_gen --target HOST:PORT [options]\n"
          "  --clients N         concurrent clients, >= sessions (64)\n"
          "  --sessions M        sessions, one writer each (16)\n"
          "  --seconds S         length of the run (120)\n"
          "  --warmup S          RSS is compared from here on (30, at most a quarter of S)\n"
          "  --server-pid PID    sample the server's VmRSS every second\n"
          "  --seed N            sessions, batches and choices (1)\n"
          "  --token TOKEN       bearer token\n"
          "  --hidden H          hidden width of the MLPs (64)\n"
          "  --wide-hidden H     hidden width of the wide sessions (16384)\n"
          "  --wide-every K      every K-th session is wide (8; 0: none)\n"
          "  --stall-seconds S   a stall lasts 0.5x-1.5x this (3)\n"
          "  --stall-every S     mean gap between a staller's stalls (10)\n"
          "  --chaos-every S     mean gap between a writer's or chaos client's abandons (2)\n"
          "  --think-ms MS       readers' pause between requests (0)\n"
          "  --share-connections all clients on one connection (libtraind-client's default)\n"
          "  --rss-growth-pct P  fail when RSS after warm-up exceeds warm-up by P%% (0: off)\n"
          "  --replay-jobs J     sessions replayed at once (2)\n");
}

static int parse(load_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->clients = 64;
  o->sessions = 16;
  o->seconds = 120;
  o->warmup_s = -1;
  o->seed = 1;
  o->hidden = 64;
  o->wide_hidden = 16384;
  o->wide_every = 8;
  o->stall_s = 3;
  o->stall_every_s = 10;
  o->chaos_every_s = 2;
  o->replay_jobs = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(a, "--share-connections")) {
      o->share_connections = true;
      continue;
    }
    if (!v) goto bad;
    i++;
    if (!strcmp(a, "--target")) o->target = v;
    else if (!strcmp(a, "--token")) o->token = v;
    else if (!strcmp(a, "--clients")) o->clients = atoi(v);
    else if (!strcmp(a, "--sessions")) o->sessions = atoi(v);
    else if (!strcmp(a, "--seconds")) o->seconds = atof(v);
    else if (!strcmp(a, "--warmup")) o->warmup_s = atof(v);
    else if (!strcmp(a, "--server-pid")) o->server_pid = atoi(v);
    else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--hidden")) o->hidden = atoi(v);
    else if (!strcmp(a, "--wide-hidden")) o->wide_hidden = atoi(v);
    else if (!strcmp(a, "--wide-every")) o->wide_every = atoi(v);
    else if (!strcmp(a, "--stall-seconds")) o->stall_s = atof(v);
    else if (!strcmp(a, "--stall-every")) o->stall_every_s = atof(v);
    else if (!strcmp(a, "--chaos-every")) o->chaos_every_s = atof(v);
    else if (!strcmp(a, "--think-ms")) o->reader_think_ms = atof(v);
    else if (!strcmp(a, "--rss-growth-pct")) o->rss_growth_pct = atof(v);
    else if (!strcmp(a, "--replay-jobs")) o->replay_jobs = atoi(v);
    else goto bad;
  }
  if (!o->target || o->sessions < 1 || o->clients < o->sessions || o->seconds <= 0 ||
      o->hidden < 1 || o->wide_hidden < 1 || o->replay_jobs < 1)
    goto bad;
  if (o->warmup_s < 0) o->warmup_s = o->seconds / 4 < 30 ? floor(o->seconds / 4) : 30;
  return 0;
bad:
  usage(stderr);
  return 2;
}

/* ---------------------------------------------------------------- server RSS */

/* Every second: the server's VmRSS and what its sessions say they hold (the sum of
 * SessionInfo.memory_bytes: parameters, gradients, optimizer state, checkpoints being
 * sent). RSS growing while the sessions' own memory stays flat points at the allocator
 * or at memory outside the sessions. */
typedef struct rss_sampler {
  const load_opts *o;
  int pid;
  double t0;
  long kb[4096];         /* kb[i]: at i seconds (-1: unread) */
  long session_kb[4096]; /* the same for the sessions' memory_bytes (-1: unknown) */
  int n;
  atomic_bool stop;
  pthread_t thread;
} rss_sampler;

static long read_rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static long sessions_kb(traind_client *c) {
  Traind__V1__ListSessionsResponse *list = NULL;
  traind_status st = traind_list_sessions(c, &list);
  if (st.code) {
    load_unexpected("rss sampler", "ListSessions", &st);
    return -1;
  }
  int64_t bytes = 0;
  for (size_t i = 0; i < list->n_sessions; i++) bytes += list->sessions[i]->memory_bytes;
  traind_message_free(list);
  return (long)(bytes / 1024);
}

static void *rss_main(void *arg) {
  rss_sampler *r = arg;
  traind_client *c = NULL;
  traind_status st = load_connect(r->o, r->o->clients + r->o->replay_jobs + 1, &c);
  if (st.code) load_unexpected("rss sampler", "connect", &st);
  while (!atomic_load(&r->stop) && r->n < 4096) {
    sleep_s(r->t0 + r->n - now_s());
    r->kb[r->n] = read_rss_kb(r->pid);
    r->session_kb[r->n] = c ? sessions_kb(c) : -1;
    r->n++;
  }
  traind_client_close(c);
  return NULL;
}

/* CPU seconds (user + system) the process has used, from /proc/PID/stat; -1 if gone. */
static double cpu_seconds(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long utime, stime;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                   &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The sample at second t (the last one before it if the run was shorter). */
static long rss_at(const rss_sampler *r, int t) {
  if (r->n == 0) return -1;
  return r->kb[t < r->n ? t : r->n - 1];
}

/* ---------------------------------------------------------------- report */

typedef struct lat {
  size_t n;
  double p50, p99, max;
} lat;

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Percentiles of the samples of `op` (and class `cls`; -1: any) over every client. */
static lat latency(client_ctx *cx, int n, int op, int cls) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += cx[i].rec.n;
  float *v = malloc((total ? total : 1) * sizeof *v);
  if (!v) abort();
  size_t m = 0;
  for (int i = 0; i < n; i++)
    for (size_t j = 0; j < cx[i].rec.n; j++) {
      const sample *s = &cx[i].rec.v[j];
      if ((op < 0 || s->op == op) && (cls < 0 || s->cls == cls)) v[m++] = s->ms;
    }
  lat l = {m, 0, 0, 0};
  if (m) {
    qsort(v, m, sizeof *v, cmp_float);
    l.p50 = v[(size_t)(0.50 * (double)(m - 1) + 0.5)];
    l.p99 = v[(size_t)(0.99 * (double)(m - 1) + 0.5)];
    l.max = v[m - 1];
  }
  free(v);
  return l;
}

static const char *const class_names[CLS_N] = {"quiet", "other_stalled", "own_stalled"};

static void report_latency(client_ctx *cx, int n, double seconds) {
  printf("\n%-16s %9s %9s %9s %9s %9s\n", "normal calls", "count", "per s", "p50 ms",
         "p99 ms", "max ms");
  for (int op = -1; op < OP_N; op++) {
    lat l = latency(cx, n, op, -1);
    const char *name = op < 0 ? "all" : op_names[op];
    printf("%-16s %9zu %9.1f %9.3f %9.3f %9.1f\n", name, l.n, (double)l.n / seconds, l.p50,
           l.p99, l.max);
  }
  printf("\nthe same while a staller was stopped (n, p50 / p99 / max ms)\n%-16s", "");
  static const char *const heads[CLS_N] = {"no stall anywhere", "stall on other session",
                                           "stall on own session"};
  for (int c = 0; c < CLS_N; c++) printf(" %32s", heads[c]);
  printf("\n");
  for (int op = 0; op < OP_N; op++) {
    printf("%-16s", op_names[op]);
    for (int c = 0; c < CLS_N; c++) {
      lat l = latency(cx, n, op, c);
      char cell[64];
      snprintf(cell, sizeof cell, "%zu, %.2f / %.2f / %.0f", l.n, l.p50, l.p99, l.max);
      printf(" %32s", cell);
    }
    printf("\n");
  }
  lat all = latency(cx, n, -1, -1);
  printf("load: requests=%zu seconds=%.1f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.1f\n",
         all.n, seconds, (double)all.n / seconds, all.p50, all.p99, all.max);
  for (int op = 0; op < OP_N; op++) {
    lat l = latency(cx, n, op, -1);
    printf("load: op=%s n=%zu p50_ms=%.3f p99_ms=%.3f max_ms=%.1f\n", op_names[op], l.n,
           l.p50, l.p99, l.max);
  }
  for (int op = 0; op < OP_N; op++)
    for (int c = 0; c < CLS_N; c++) {
      lat l = latency(cx, n, op, c);
      printf("load: stall_class=%s op=%s n=%zu p50_ms=%.3f p99_ms=%.3f max_ms=%.1f\n",
             class_names[c], op_names[op], l.n, l.p50, l.p99, l.max);
    }
}

static void report_chaos(client_ctx *cx, int n) {
  static const char *const keys[CH_N] = {
      "writer_deadline", "writer_drop",    "writer_kill",      "reader_deadline",
      "reader_drop_read", "reader_drop_load", "reader_kill_read", "reader_kill_load",
      "stall_read",       "stall_load_part",  "stall_load_open"};
  long count[CH_N] = {0}, done[CH_N] = {0}, multi = 0;
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < CH_N; k++) {
      count[k] += cx[i].rec.chaos[k];
      done[k] += cx[i].rec.chaos_done[k];
    }
    multi += cx[i].rec.multi_chunk;
  }
  printf("\n%-38s %7s %s\n", "abandoned and stalled calls", "count", "completed anyway");
  for (int k = 0; k < CH_N; k++) {
    const char *what = k <= CH_W_KILL ? "applied" : k == CH_S_READ ? "read on, whole" : "";
    if (k <= CH_R_DEADLINE || k == CH_S_READ)
      printf("%-38s %7ld %ld %s\n", chaos_names[k], count[k], done[k], what);
    else
      printf("%-38s %7ld\n", chaos_names[k], count[k]);
    printf("load: chaos=%s count=%ld completed=%ld\n", keys[k], count[k], done[k]);
  }
  printf("stalled downloads with chunks still to come when the reading stopped: %ld of %ld\n",
         multi, count[CH_S_READ]);
}

/* ---------------------------------------------------------------- replay */

typedef struct replay_pool {
  const load_opts *o;
  load_session *sessions;
  replay_result *results;
  atomic_int next;
} replay_pool;

typedef struct replay_job {
  replay_pool *pool;
  int slot;
} replay_job;

static void *replay_main(void *arg) {
  replay_job *job = arg;
  replay_pool *p = job->pool;
  traind_client *c;
  traind_status st = load_connect(p->o, job->slot, &c);
  if (st.code) {
    load_unexpected("replay", "connect", &st);
    return NULL;
  }
  int i;
  while ((i = atomic_fetch_add(&p->next, 1)) < p->o->sessions)
    replay_session(p->o, &p->sessions[i], c, &p->results[i]);
  traind_client_close(c);
  return NULL;
}

static const char *const optimizer_names[4] = {"sgd", "adam", "sgd-nesterov-steplr",
                                               "adamw-cosine"};

static int run_replays(const load_opts *o, load_session *sessions) {
  replay_result *res = calloc((size_t)o->sessions, sizeof *res);
  pthread_t *th = calloc((size_t)o->replay_jobs, sizeof *th);
  replay_job *jobs = calloc((size_t)o->replay_jobs, sizeof *jobs);
  if (!res || !th || !jobs) abort();
  for (int i = 0; i < o->sessions; i++) snprintf(res[i].detail, sizeof res[i].detail, "not run");
  replay_pool p = {o, sessions, res, 0};
  double t0 = now_s();
  for (int j = 0; j < o->replay_jobs; j++) {
    jobs[j] = (replay_job){&p, o->clients + j};
    pthread_create(&th[j], NULL, replay_main, &jobs[j]);
  }
  for (int j = 0; j < o->replay_jobs; j++) pthread_join(th[j], NULL);
  printf("\nreplay: each writer's log on a fresh session (same spec and seed), alone; then, "
         "on the idle live session,\nuploads never closed and then abandoned (must not load): "
         "%.1f s\n",
         now_s() - t0);
  int ok = 0, probes = 0, applied = 0;
  for (int i = 0; i < o->sessions; i++) {
    const replay_result *r = &res[i];
    printf("  session %2d %-20s hidden %5d  steps %6lld  trains %6zu  snapshots %4zu  loads %4zu"
           "  %s",
           i, optimizer_names[i % 4], sessions[i].hidden, (long long)sessions[i].final_step,
           r->trains, r->snaps, r->loads, r->ok ? "identical" : "DIFFERENT");
    if (r->ok)
      printf(" (%zu bytes)", r->bytes);
    else
      printf(": %s", r->detail);
    if (r->applied)
      printf("; ABANDONED UPLOAD LOADED: %s\n", r->probe_detail);
    else
      printf("; %d abandoned uploads not loaded\n", r->probes);
    printf("load: replay session=%d ok=%d trains=%zu snapshots=%zu loads=%zu bytes=%zu "
           "abandoned_upload_probes=%d applied=%d\n",
           i, r->ok, r->trains, r->snaps, r->loads, r->bytes, r->probes, r->applied);
    ok += r->ok;
    probes += r->probes;
    applied += r->applied;
  }
  printf("load: abandoned_upload_probes=%d applied=%d\n", probes, applied);
  printf("load: replay_ok=%d/%d\n", ok, o->sessions);
  free(res);
  free(th);
  free(jobs);
  return ok == o->sessions && !applied ? 0 : 1;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--child")) return child_main(argc - 2, argv + 2);
  load_opts o;
  if (parse(&o, argc, argv)) return 2;
  static char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) {
    perror("load_gen: /proc/self/exe");
    return 1;
  }
  self[len] = 0;
  o.self_exe = self;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (o.token && setenv(LOAD_TOKEN_ENV, o.token, 1) != 0) { /* for the children */
    perror("load_gen: setenv");
    return 1;
  }
  grpc_init(); /* held for the whole run: reconnects do not restart gRPC */

  load_run run = {.o = &o};
  run.sessions = calloc((size_t)o.sessions, sizeof *run.sessions);
  client_ctx *cx = calloc((size_t)o.clients, sizeof *cx);
  pthread_t *th = calloc((size_t)o.clients, sizeof *th);
  if (!run.sessions || !cx || !th) abort();

  traind_client *setup;
  traind_status st = load_connect(&o, o.clients + o.replay_jobs, &setup);
  if (st.code) {
    load_unexpected("setup", "connect", &st);
    return 1;
  }
  int wide = 0;
  for (int i = 0; i < o.sessions; i++) {
    load_session *s = &run.sessions[i];
    s->index = i;
    s->hidden = o.wide_every > 0 && i % o.wide_every == o.wide_every - 1 ? o.wide_hidden
                                                                         : o.hidden;
    wide += s->hidden != o.hidden;
    st = create_session(setup, o.seed, i, s->hidden, s->id);
    if (st.code) {
      load_unexpected("setup", "CreateModel", &st);
      return 1;
    }
  }
  traind_client_close(setup);

  int readers = o.clients - o.sessions;
  printf("traind load: %d clients over %d sessions for %.0f s: %d writers, %d readers "
         "(plain, chaos, stalling in turn); %d wide session%s (hidden %d), the rest hidden %d\n",
         o.clients, o.sessions, o.seconds, o.sessions, readers, wide, wide == 1 ? "" : "s",
         o.wide_hidden, o.hidden);

  rss_sampler *rss = calloc(1, sizeof *rss);
  if (!rss) abort();
  double t0 = now_s();
  double server_cpu0 = o.server_pid ? cpu_seconds(o.server_pid) : -1;
  double self_cpu0 = cpu_seconds(getpid());
  rss->o = &o;
  rss->pid = o.server_pid;
  rss->t0 = t0;
  if (o.server_pid) pthread_create(&rss->thread, NULL, rss_main, rss);

  static const client_role reader_roles[3] = {ROLE_READER, ROLE_CHAOS, ROLE_STALLER};
  static const char *const role_names[] = {"writer", "reader", "chaos", "staller"};
  for (int i = 0; i < o.clients; i++) {
    client_ctx *c = &cx[i];
    c->run = &run;
    c->slot = i;
    c->rng = o.seed * 0x9e3779b97f4a7c15ull + (uint64_t)i + 1;
    if (i < o.sessions) {
      c->session = &run.sessions[i];
      c->role = ROLE_WRITER;
    } else {
      int j = i - o.sessions;
      c->session = &run.sessions[j % o.sessions];
      c->role = reader_roles[(j / o.sessions) % 3];
    }
    snprintf(c->who, sizeof c->who, "session %d %s %d", c->session->index, role_names[c->role],
             i);
    pthread_create(&th[i], NULL, c->role == ROLE_WRITER ? writer_main : reader_main, c);
  }

  for (double next = 10; !atomic_load(&run.stop);) {
    double t = now_s() - t0;
    if (t >= o.seconds) break;
    sleep_s(fmin(0.1, o.seconds - t));
    if (now_s() - t0 >= next) {
      long kb = o.server_pid ? read_rss_kb(o.server_pid) : -1;
      printf("load: t=%.0fs requests=%ld stalls_now=%d rss_kb=%ld unexpected=%ld\n", next,
             load_requests(), atomic_load(&run.stalls), kb, load_unexpected_count());
      next += 10;
    }
  }
  double elapsed = now_s() - t0;
  double server_cpu = o.server_pid ? cpu_seconds(o.server_pid) - server_cpu0 : -1;
  double self_cpu = cpu_seconds(getpid()) - self_cpu0;
  atomic_store(&run.stop, true);
  atomic_store(&rss->stop, true);
  for (int i = 0; i < o.clients; i++) pthread_join(th[i], NULL);
  if (o.server_pid) pthread_join(rss->thread, NULL);

  /* On a small machine the generator competes with the server for the same cores. */
  printf("\nCPU over the run: server %.2f cores, load_gen %.2f cores (of %ld)\n",
         server_cpu / elapsed, self_cpu / elapsed, sysconf(_SC_NPROCESSORS_ONLN));
  printf("load: server_cpu_cores=%.2f load_gen_cpu_cores=%.2f\n", server_cpu / elapsed,
         self_cpu / elapsed);
  report_latency(cx, o.clients, elapsed);
  report_chaos(cx, o.clients);

  int rc = 0;
  if (o.server_pid) {
    int warm = (int)o.warmup_s, end = (int)elapsed;
    long w = rss_at(rss, warm), e = rss_at(rss, end), start = rss_at(rss, 0), max = -1;
    long sw = rss->n ? rss->session_kb[warm < rss->n ? warm : rss->n - 1] : -1;
    long se = rss->n ? rss->session_kb[end < rss->n ? end : rss->n - 1] : -1;
    for (int i = warm; i < rss->n; i++)
      if (rss->kb[i] > max) max = rss->kb[i];
    printf("\nserver RSS: %.1f MiB at start, %.1f MiB at %d s (warm-up), %.1f MiB at %d s, "
           "max after warm-up %.1f MiB (%+.1f%% over warm-up)\n",
           start / 1024.0, w / 1024.0, warm, e / 1024.0, end, max / 1024.0,
           w > 0 ? 100.0 * (double)(max - w) / (double)w : 0.0);
    printf("load: rss_kb_start=%ld rss_kb_warmup=%ld warmup_s=%d rss_kb_end=%ld end_s=%d "
           "rss_kb_max_after_warmup=%ld sessions_kb_warmup=%ld sessions_kb_end=%ld\n",
           start, w, warm, e, end, max, sw, se);
    printf("server RSS and the sessions' memory_bytes, every 10 s (MiB):");
    for (int i = 0; i < rss->n; i += 10)
      printf(" %ds %.0f/%.0f", i, rss->kb[i] / 1024.0, rss->session_kb[i] / 1024.0);
    printf("\n");
    if (o.rss_growth_pct > 0 && w > 0 && (double)max > (double)w * (1 + o.rss_growth_pct / 100)) {
      printf("load: FAIL: RSS grew more than %.0f%% after warm-up\n", o.rss_growth_pct);
      rc = 1;
    }
  }

  if (run_replays(&o, run.sessions)) rc = 1;
  long unexpected = load_unexpected_count();
  printf("load: unexpected_errors=%ld\n", unexpected);
  if (unexpected) rc = 1;
  printf("load: result=%s\n", rc ? "FAIL" : "PASS");

  for (int i = 0; i < o.clients; i++) rec_free(&cx[i].rec);
  for (int i = 0; i < o.sessions; i++) free(run.sessions[i].log.v);
  free(run.sessions);
  free(cx);
  free(th);
  free(rss);
  grpc_shutdown();
  return rc;
}
