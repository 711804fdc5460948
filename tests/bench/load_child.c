/* load_child.c - a client that vanishes: a child process starts a call, says so, and is
 * killed with SIGKILL. The kernel then closes its TCP connection with no goodbye from
 * gRPC (no RST_STREAM, no GOAWAY), which is what a crashed client looks like to the
 * server and what an in-process cancel cannot show.
 *
 * The child is this program again (--child ...), started with posix_spawn: fork()
 * without exec in a process running gRPC's threads is not safe. */
#define _GNU_SOURCE /* pipe2: the pipe must be close-on-exec from birth, other threads spawn too */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "load_gen.h"

extern char **environ;

static const char *const kind_names[] = {"train", "read", "load"};

static void child_fail(const char *what, traind_status *st) {
  fprintf(stderr, "load_gen child: %s: %s: %s\n", what, traind_code_name(st->code),
          st->message ? st->message : "");
  _exit(3);
}

/* Tells the parent the call is in flight, then waits for the SIGKILL. */
static void in_flight(void) {
  if (write(1, "s", 1) != 1) _exit(3);
}

static void wait_for_kill(void) {
  for (;;) pause();
}

int child_main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "load_gen child: KIND TARGET SESSION_ID SEED INDEX K\n");
    return 2;
  }
  const char *kind = argv[0], *target = argv[1], *id = argv[2];
  uint64_t seed = strtoull(argv[3], NULL, 10), k = strtoull(argv[5], NULL, 10);
  int index = atoi(argv[4]);
  const char *token = getenv(LOAD_TOKEN_ENV);
  raw_conn *conn = raw_open(target, token);
  ProtobufCMessage *resp = NULL;

  if (!strcmp(kind, "train")) {
    static batch b;
    batch_fill(&b, id, seed, index, k);
    raw_call *call = raw_start(conn, "/traind.v1.Trainer/TrainStep", 0);
    if (!raw_send(call, &b.train.base, true)) {
      traind_status st = raw_finish(call, false);
      child_fail("TrainStep", &st);
    }
    in_flight();
    (void)raw_recv(call, &traind__v1__train_step_response__descriptor, &resp);
  } else if (!strcmp(kind, "read")) {
    Traind__V1__StateDictRequest req = TRAIND__V1__STATE_DICT_REQUEST__INIT;
    req.session_id = (char *)id;
    req.has_include_optimizer = req.include_optimizer = true;
    raw_call *call = raw_start(conn, "/traind.v1.Trainer/StateDict", 0);
    if (!raw_send(call, &req.base, true) ||
        raw_recv(call, &traind__v1__state_dict_chunk__descriptor, &resp) != 1) {
      traind_status st = raw_finish(call, false);
      child_fail("StateDict", &st);
    }
    in_flight();
    while (raw_recv(call, &traind__v1__state_dict_chunk__descriptor, &resp) == 1)
      protobuf_c_message_free_unpacked(resp, NULL);
  } else if (!strcmp(kind, "load")) {
    /* The whole of a real checkpoint, but the stream is never closed: the server must
     * not load it. */
    traind_client_options o;
    traind_client_options_init(&o);
    o.target = target;
    o.token = token;
    o.timeout_ms = 60000;
    o.connect_timeout_ms = 10000;
    traind_client *c;
    traind_status st = traind_connect(&o, &c);
    if (st.code) child_fail("connect", &st);
    uint8_t *data;
    size_t len;
    st = traind_state_dict_to_buffer(c, id, true, &data, &len);
    if (st.code) child_fail("StateDict", &st);
    raw_call *call = raw_start(conn, "/traind.v1.Trainer/LoadStateDict", 0);
    for (size_t off = 0; off < len; off += 1u << 20) {
      Traind__V1__LoadStateDictRequest req = TRAIND__V1__LOAD_STATE_DICT_REQUEST__INIT;
      if (off == 0) req.session_id = (char *)id;
      req.has_data = true;
      req.data.data = data + off;
      req.data.len = len - off < (1u << 20) ? len - off : 1u << 20;
      if (!raw_send(call, &req.base, false)) {
        st = raw_finish(call, false);
        child_fail("LoadStateDict", &st);
      }
    }
    in_flight();
  } else {
    fprintf(stderr, "load_gen child: unknown kind %s\n", kind);
    return 2;
  }
  wait_for_kill();
  return 0;
}

bool child_run(client_ctx *cx, child_kind kind, uint64_t k, double max_delay_ms) {
  const load_opts *o = cx->run->o;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    load_unexpectedf(cx->who, "pipe2: %s", strerror(errno));
    return false;
  }
  char seed[32], index[16], kstr[32];
  snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
  snprintf(index, sizeof index, "%d", cx->session->index);
  snprintf(kstr, sizeof kstr, "%" PRIu64, k);
  char *argv[] = {(char *)o->self_exe, "--child", (char *)kind_names[kind], (char *)o->target,
                  cx->session->id, seed, index, kstr, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1); /* a dup2'd descriptor stays open */
  pid_t pid;
  int err = posix_spawn(&pid, o->self_exe, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err) {
    close(fds[0]);
    load_unexpectedf(cx->who, "posix_spawn %s: %s", o->self_exe, strerror(err));
    return false;
  }
  struct pollfd p = {fds[0], POLLIN, 0};
  char c = 0;
  bool started = poll(&p, 1, 30000) == 1 && read(fds[0], &c, 1) == 1 && c == 's';
  if (started) sleep_s(rng_unit(&cx->rng) * max_delay_ms / 1e3);
  kill(pid, SIGKILL);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(fds[0]);
  if (!started)
    load_unexpectedf(cx->who, "child (%s) failed before its call was in flight (exit %d)",
                     kind_names[kind], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return started;
}
