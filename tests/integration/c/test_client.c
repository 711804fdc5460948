/* Integration test: libtraind-client drives every RPC of a real traind over loopback.
 * usage: test_client PATH/TO/traind   (started here on a free port, stopped with SIGTERM) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "traind_client.h"

static const char *daemon_path;

typedef struct fixture {
  pid_t pid;
  char dir[64];   /* temporary: data dir, daemon log, downloads */
  char addr[64];  /* HOST:PORT the daemon listens on */
  traind_client *c;
} fixture;

/* ---------------------------------------------------------------- helpers */

/* Asserts a status's code, that the message contains `needle` (NULL: any non-empty
 * message for errors), and clears it. */
static void expect_status(traind_status st, int code, const char *needle) {
  if (st.code != code)
    fail_msg("expected %s, got %s: %s", traind_code_name(code), traind_code_name(st.code),
             st.message ? st.message : "(no message)");
  if (code != TRAIND_OK) {
    assert_non_null(st.message);
    assert_true(strlen(st.message) > 0);
    if (needle && !strstr(st.message, needle))
      fail_msg("%s message \"%s\" does not mention \"%s\"", traind_code_name(code), st.message,
               needle);
  }
  traind_status_clear(&st);
}
#define EXPECT_OK(expr) expect_status((expr), TRAIND_OK, NULL)

static void read_log(const fixture *f, char *buf, size_t cap) {
  char path[128];
  snprintf(path, sizeof path, "%s/traind.log", f->dir);
  buf[0] = 0;
  FILE *fp = fopen(path, "r");
  if (!fp) return;
  size_t n = fread(buf, 1, cap - 1, fp);
  buf[n] = 0;
  fclose(fp);
}

/* Starts the daemon with its log in the temporary dir and waits for "listening on". */
static int start_daemon(void **state) {
  fixture *f = calloc(1, sizeof *f);
  strcpy(f->dir, "/tmp/traind-c-client-XXXXXX");
  if (!f || !mkdtemp(f->dir)) return -1;
  char data_dir[96], log_path[96];
  snprintf(data_dir, sizeof data_dir, "%s/data", f->dir);
  snprintf(log_path, sizeof log_path, "%s/traind.log", f->dir);
  f->pid = fork();
  if (f->pid == 0) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    execl(daemon_path, daemon_path, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
          "--log-level", "info", (char *)NULL);
    _exit(127);
  }
  char log[8192];
  for (int i = 0; i < 200 && !f->addr[0]; i++) { /* up to 10 s */
    read_log(f, log, sizeof log);
    const char *p = strstr(log, "listening on ");
    if (p) sscanf(p + strlen("listening on "), "%63[^ \n]", f->addr);
    if (!f->addr[0]) {
      if (waitpid(f->pid, NULL, WNOHANG) == f->pid) break;
      nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
  }
  if (!f->addr[0]) {
    fprintf(stderr, "traind did not start:\n%s\n", log);
    return -1;
  }
  traind_client_options o;
  traind_client_options_init(&o);
  o.target = f->addr;
  o.connect_timeout_ms = 5000;
  o.timeout_ms = 30000;
  traind_status st = traind_connect(&o, &f->c);
  if (st.code != TRAIND_OK) {
    fprintf(stderr, "connect %s: %s\n", f->addr, st.message);
    traind_status_clear(&st);
    return -1;
  }
  *state = f;
  return 0;
}

static void remove_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    struct stat sb;
    if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
      remove_dir(p);
    else
      unlink(p);
  }
  closedir(d);
  rmdir(path);
}

/* SIGTERM must drain and exit 0. */
static int stop_daemon(void **state) {
  fixture *f = *state;
  traind_client_close(f->c);
  kill(f->pid, SIGTERM);
  int ws = 0;
  waitpid(f->pid, &ws, 0);
  int ok = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
  if (!ok) {
    char log[8192];
    read_log(f, log, sizeof log);
    fprintf(stderr, "traind exited with status 0x%x; log:\n%s\n", ws, log);
  }
  remove_dir(f->dir);
  free(f);
  return ok ? 0 : -1;
}

/* mlp_small: Linear(64,64), ReLU, Linear(64,10); SGD lr 0.01 momentum 0.9. */
typedef struct mlp_spec {
  Traind__V1__Module root, l0, relu, l2;
  Traind__V1__Module *children[3];
  Traind__V1__Sequential seq;
  Traind__V1__Linear lin0, lin2;
  Traind__V1__ReLU r;
  Traind__V1__SGD sgd;
  Traind__V1__OptimizerSpec opt;
  Traind__V1__CreateModelRequest req;
} mlp_spec;

static void mlp_spec_init(mlp_spec *s, const char *name) {
  traind__v1__module__init(&s->root);
  traind__v1__module__init(&s->l0);
  traind__v1__module__init(&s->relu);
  traind__v1__module__init(&s->l2);
  traind__v1__sequential__init(&s->seq);
  traind__v1__linear__init(&s->lin0);
  traind__v1__linear__init(&s->lin2);
  traind__v1__re_lu__init(&s->r);
  s->lin0.has_in_features = s->lin0.has_out_features = true;
  s->lin0.in_features = 64;
  s->lin0.out_features = 64;
  s->lin2 = s->lin0;
  s->lin2.out_features = 10;
  s->l0.kind_case = TRAIND__V1__MODULE__KIND_LINEAR;
  s->l0.linear = &s->lin0;
  s->relu.kind_case = TRAIND__V1__MODULE__KIND_RELU;
  s->relu.relu = &s->r;
  s->l2.kind_case = TRAIND__V1__MODULE__KIND_LINEAR;
  s->l2.linear = &s->lin2;
  s->children[0] = &s->l0;
  s->children[1] = &s->relu;
  s->children[2] = &s->l2;
  s->seq.n_modules = 3;
  s->seq.modules = s->children;
  s->root.kind_case = TRAIND__V1__MODULE__KIND_SEQUENTIAL;
  s->root.sequential = &s->seq;
  traind__v1__sgd__init(&s->sgd);
  s->sgd.has_lr = s->sgd.has_momentum = true;
  s->sgd.lr = 0.01;
  s->sgd.momentum = 0.9;
  traind__v1__optimizer_spec__init(&s->opt);
  s->opt.algorithm_case = TRAIND__V1__OPTIMIZER_SPEC__ALGORITHM_SGD;
  s->opt.sgd = &s->sgd;
  traind__v1__create_model_request__init(&s->req);
  s->req.model = &s->root;
  s->req.optimizer = &s->opt;
  s->req.has_seed = true;
  s->req.seed = 42;
  s->req.name = (char *)name;
}

#define MLP_SMALL_PARAMS (64 * 64 + 64 + 64 * 10 + 10)

/* A new mlp_small session; the caller frees the id. */
static char *create_mlp(traind_client *c, const char *name) {
  mlp_spec s;
  mlp_spec_init(&s, name);
  Traind__V1__CreateModelResponse *resp = NULL;
  EXPECT_OK(traind_create_model(c, &s.req, &resp));
  assert_non_null(resp);
  char *id = strdup(resp->session_id);
  traind_message_free(resp);
  return id;
}

/* A fixed batch: input [32,64] float32, targets [32] int64 in 0..9. */
typedef struct batch {
  float x[32 * 64];
  int64_t y[32];
  int64_t xshape[2], yshape[1];
  Traind__V1__Tensor input, target;
  Traind__V1__LossSpec loss;
} batch;

static void batch_init(batch *b) {
  unsigned s = 12345;
  for (size_t i = 0; i < 32 * 64; i++) {
    s = s * 1103515245u + 12345u;
    b->x[i] = (float)((s >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
  }
  for (int i = 0; i < 32; i++) b->y[i] = i % 10;
  b->xshape[0] = 32;
  b->xshape[1] = 64;
  b->yshape[0] = 32;
  traind_tensor_view(&b->input, TRAIND__V1__DTYPE__FLOAT32, 2, b->xshape, b->x, sizeof b->x);
  traind_tensor_view(&b->target, TRAIND__V1__DTYPE__INT64, 1, b->yshape, b->y, sizeof b->y);
  traind__v1__loss_spec__init(&b->loss);
  b->loss.has_kind = true;
  b->loss.kind = TRAIND__V1__LOSS_SPEC__KIND__CROSS_ENTROPY;
}

static void forward_with_loss(traind_client *c, const char *id, batch *b, bool grad,
                              Traind__V1__ForwardResponse **out) {
  Traind__V1__ForwardRequest req = TRAIND__V1__FORWARD_REQUEST__INIT;
  req.session_id = (char *)id;
  req.input = &b->input;
  req.target = &b->target;
  req.loss = &b->loss;
  req.has_grad = true;
  req.grad = grad;
  EXPECT_OK(traind_forward(c, &req, out));
}

static Traind__V1__SessionInfo *get_info(traind_client *c, const char *id) {
  Traind__V1__SessionInfo *info = NULL;
  EXPECT_OK(traind_get_session(c, id, &info));
  assert_non_null(info);
  return info;
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)n + 1);
  assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  *len = (size_t)n;
  return buf;
}

static bool contains(const uint8_t *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(hay + i, needle, m) == 0) return true;
  return false;
}

/* ---------------------------------------------------------------- tests */

static void test_health(void **state) {
  fixture *f = *state;
  Grpc__Health__V1__HealthCheckResponse__ServingStatus s;
  EXPECT_OK(traind_health_check(f->c, NULL, &s));
  assert_int_equal(s, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  EXPECT_OK(traind_health_check(f->c, "traind.v1.Trainer", &s));
  assert_int_equal(s, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  expect_status(traind_health_check(f->c, "no.such.Service", &s), TRAIND_NOT_FOUND, NULL);
}

static void test_create_get_list_close(void **state) {
  fixture *f = *state;
  mlp_spec s;
  mlp_spec_init(&s, "create-test");
  Traind__V1__CreateModelResponse *resp = NULL;
  EXPECT_OK(traind_create_model(f->c, &s.req, &resp));
  assert_int_equal(strlen(resp->session_id), 32);
  assert_int_equal(strspn(resp->session_id, "0123456789abcdef"), 32);
  assert_non_null(resp->info);
  assert_int_equal(resp->info->num_parameters, MLP_SMALL_PARAMS);
  assert_int_equal(resp->info->n_parameters, 4);
  assert_string_equal(resp->info->parameters[0]->name, "0.weight");
  assert_string_equal(resp->info->parameters[3]->name, "2.bias");
  char *id = strdup(resp->session_id);
  traind_message_free(resp);

  Traind__V1__SessionInfo *info = get_info(f->c, id);
  assert_string_equal(info->session_id, id);
  assert_string_equal(info->name, "create-test");
  assert_int_equal(info->step, 0);
  assert_true(info->training);
  assert_string_equal(info->optimizer, "sgd");
  traind_message_free(info);

  Traind__V1__ListSessionsResponse *list = NULL;
  EXPECT_OK(traind_list_sessions(f->c, &list));
  bool found = false;
  for (size_t i = 0; i < list->n_sessions; i++)
    found |= !strcmp(list->sessions[i]->session_id, id);
  assert_true(found);
  traind_message_free(list);

  EXPECT_OK(traind_close_session(f->c, id));
  expect_status(traind_get_session(f->c, id, &info), TRAIND_NOT_FOUND, NULL);
  assert_null(info);
  expect_status(traind_close_session(f->c, id), TRAIND_NOT_FOUND, NULL);
  free(id);
}

/* A request serialised elsewhere creates the same model. */
static void test_create_packed(void **state) {
  fixture *f = *state;
  mlp_spec s;
  mlp_spec_init(&s, "packed");
  size_t n = traind__v1__create_model_request__get_packed_size(&s.req);
  uint8_t *buf = malloc(n);
  traind__v1__create_model_request__pack(&s.req, buf);
  Traind__V1__CreateModelResponse *resp = NULL;
  EXPECT_OK(traind_create_model_packed(f->c, buf, n, &resp));
  assert_int_equal(resp->info->num_parameters, MLP_SMALL_PARAMS);
  EXPECT_OK(traind_close_session(f->c, resp->session_id));
  traind_message_free(resp);
  /* Bytes that are no request are refused here, before anything is sent. */
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
  expect_status(traind_create_model_packed(f->c, junk, sizeof junk, &resp),
                TRAIND_INVALID_ARGUMENT, "CreateModelRequest");
  assert_null(resp);
  free(buf);
}

/* Forward (grad) + Backward + Step, then the same as one TrainStep. */
static void test_forward_backward_step(void **state) {
  fixture *f = *state;
  char *id = create_mlp(f->c, "fbs");
  batch b;
  batch_init(&b);

  Traind__V1__ForwardResponse *fw = NULL;
  forward_with_loss(f->c, id, &b, true, &fw);
  assert_non_null(fw->output);
  assert_int_equal(fw->output->n_shape, 2);
  assert_int_equal(fw->output->shape[0], 32);
  assert_int_equal(fw->output->shape[1], 10);
  assert_int_equal(fw->output->data.len, 32 * 10 * sizeof(float));
  assert_true(fw->has_loss);
  float loss0 = fw->loss;
  assert_true(loss0 > 1.0f && loss0 < 4.0f); /* about ln(10) at initialisation */
  traind_message_free(fw);

  Traind__V1__SessionInfo *info = get_info(f->c, id);
  assert_true(info->recorded);
  traind_message_free(info);

  Traind__V1__BackwardRequest bw = TRAIND__V1__BACKWARD_REQUEST__INIT;
  bw.session_id = id;
  Traind__V1__BackwardResponse *bresp = NULL;
  EXPECT_OK(traind_backward(f->c, &bw, &bresp));
  assert_true(bresp->grad_norm > 0.0f && isfinite(bresp->grad_norm));
  traind_message_free(bresp);
  info = get_info(f->c, id);
  assert_true(info->has_grad);
  assert_false(info->recorded);
  traind_message_free(info);

  Traind__V1__StepResponse *sresp = NULL;
  EXPECT_OK(traind_step(f->c, id, false, &sresp));
  assert_int_equal(sresp->step, 1);
  assert_true(fabs(sresp->lr - 0.01) < 1e-12);
  traind_message_free(sresp);
  info = get_info(f->c, id);
  assert_int_equal(info->step, 1);
  assert_false(info->has_grad); /* keep_grad false clears */
  traind_message_free(info);

  /* The step changed the model: the loss on the same batch went down. */
  forward_with_loss(f->c, id, &b, false, &fw);
  assert_true(fw->loss < loss0);
  float loss1 = fw->loss;
  traind_message_free(fw);

  Traind__V1__TrainStepRequest ts = TRAIND__V1__TRAIN_STEP_REQUEST__INIT;
  ts.session_id = id;
  ts.input = &b.input;
  ts.target = &b.target;
  ts.loss = &b.loss;
  ts.has_return_output = true;
  ts.return_output = true;
  Traind__V1__TrainStepResponse *tr = NULL;
  EXPECT_OK(traind_train_step(f->c, &ts, &tr));
  assert_int_equal(tr->step, 2);
  assert_true(fabsf(tr->loss - loss1) < 1e-5f); /* the loss before this step's update */
  assert_non_null(tr->output);
  assert_int_equal(tr->output->data.len, 32 * 10 * sizeof(float));
  traind_message_free(tr);
  ts.return_output = false;
  for (int i = 0; i < 10; i++) {
    EXPECT_OK(traind_train_step(f->c, &ts, &tr));
    if (i < 9) traind_message_free(tr);
  }
  assert_int_equal(tr->step, 12);
  assert_null(tr->output);
  assert_true(tr->loss < loss1);
  traind_message_free(tr);

  EXPECT_OK(traind_close_session(f->c, id));
  free(id);
}

/* Gradients accumulate across Backward calls; ClearGrad drops them. */
static void test_clear_grad_and_keep_grad(void **state) {
  fixture *f = *state;
  char *id = create_mlp(f->c, "clear");
  batch b;
  batch_init(&b);
  Traind__V1__BackwardRequest bw = TRAIND__V1__BACKWARD_REQUEST__INIT;
  bw.session_id = id;
  Traind__V1__BackwardResponse *r1 = NULL, *r2 = NULL;
  forward_with_loss(f->c, id, &b, true, NULL);
  EXPECT_OK(traind_backward(f->c, &bw, &r1));
  forward_with_loss(f->c, id, &b, true, NULL);
  EXPECT_OK(traind_backward(f->c, &bw, &r2));
  /* Same batch twice: the accumulated gradient is twice the first. */
  assert_true(fabsf(r2->grad_norm - 2 * r1->grad_norm) < 1e-4f * r1->grad_norm);
  traind_message_free(r1);
  traind_message_free(r2);

  Traind__V1__StepResponse *s = NULL;
  EXPECT_OK(traind_step(f->c, id, true, &s)); /* keep_grad */
  traind_message_free(s);
  Traind__V1__SessionInfo *info = get_info(f->c, id);
  assert_true(info->has_grad);
  traind_message_free(info);
  EXPECT_OK(traind_clear_grad(f->c, id));
  info = get_info(f->c, id);
  assert_false(info->has_grad);
  traind_message_free(info);
  EXPECT_OK(traind_close_session(f->c, id));
  free(id);
}

static void test_set_training(void **state) {
  fixture *f = *state;
  char *id = create_mlp(f->c, "mode");
  EXPECT_OK(traind_set_training(f->c, id, false));
  Traind__V1__SessionInfo *info = get_info(f->c, id);
  assert_false(info->training);
  traind_message_free(info);
  EXPECT_OK(traind_set_training(f->c, id, true));
  info = get_info(f->c, id);
  assert_true(info->training);
  traind_message_free(info);
  EXPECT_OK(traind_close_session(f->c, id));
  free(id);
}

/* Download to a buffer and to a file (same bytes), train, upload the old state back,
 * and download it again unchanged. */
static void test_state_dict_roundtrip(void **state) {
  fixture *f = *state;
  char *id = create_mlp(f->c, "ckpt");
  uint8_t *sd = NULL;
  size_t sd_len = 0;
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id, false, &sd, &sd_len));
  /* safetensors: 8-byte little-endian header length, then a JSON header. */
  assert_true(sd_len > MLP_SMALL_PARAMS * 4 + 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | sd[i];
  assert_true(hlen + 8 + MLP_SMALL_PARAMS * 4 == sd_len);
  assert_int_equal(sd[8], '{');

  char path[128];
  snprintf(path, sizeof path, "%s/model.safetensors", f->dir);
  size_t file_len = 0;
  EXPECT_OK(traind_state_dict_to_file(f->c, id, false, path, &file_len));
  assert_int_equal(file_len, sd_len);
  size_t n;
  uint8_t *fb = read_file(path, &n);
  assert_int_equal(n, sd_len);
  assert_memory_equal(fb, sd, n);
  free(fb);

  /* With the optimizer state after a step: a bigger file with "optimizer/" keys. */
  batch b;
  batch_init(&b);
  Traind__V1__TrainStepRequest ts = TRAIND__V1__TRAIN_STEP_REQUEST__INIT;
  ts.session_id = id;
  ts.input = &b.input;
  ts.target = &b.target;
  ts.loss = &b.loss;
  for (int i = 0; i < 3; i++) EXPECT_OK(traind_train_step(f->c, &ts, NULL));
  uint8_t *full = NULL;
  size_t full_len = 0;
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id, true, &full, &full_len));
  assert_true(full_len > sd_len);
  assert_true(contains(full, full_len, "optimizer/"));
  free(full);

  uint8_t *trained = NULL;
  size_t trained_len = 0;
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id, false, &trained, &trained_len));
  assert_int_equal(trained_len, sd_len);
  assert_true(memcmp(trained, sd, sd_len) != 0);
  free(trained);

  Traind__V1__LoadStateDictResponse *lr = NULL;
  EXPECT_OK(traind_load_state_dict_from_buffer(f->c, id, true, sd, sd_len, &lr));
  assert_int_equal(lr->n_missing_keys, 0);
  assert_int_equal(lr->n_unexpected_keys, 0);
  traind_message_free(lr);
  uint8_t *again = NULL;
  size_t again_len = 0;
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id, false, &again, &again_len));
  assert_int_equal(again_len, sd_len);
  assert_memory_equal(again, sd, sd_len);
  free(again);

  /* The file uploads the same way, into a fresh session of the same architecture. */
  char *id2 = create_mlp(f->c, "ckpt2");
  EXPECT_OK(traind_load_state_dict_from_file(f->c, id2, true, path, NULL));
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id2, false, &again, &again_len));
  assert_memory_equal(again, sd, sd_len);
  free(again);

  EXPECT_OK(traind_close_session(f->c, id2));
  EXPECT_OK(traind_close_session(f->c, id));
  free(id2);
  free(id);
  free(sd);
}

/* A larger upload than one chunk is refused as a whole when it is corrupt, and the
 * session keeps its state. */
static void test_state_dict_errors(void **state) {
  fixture *f = *state;
  char *id = create_mlp(f->c, "ckpt-errors");
  uint8_t *sd = NULL;
  size_t sd_len = 0;
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id, false, &sd, &sd_len));

  /* Truncated upload: refused, nothing changes. */
  traind_status st = traind_load_state_dict_from_buffer(f->c, id, true, sd, sd_len / 2, NULL);
  assert_int_not_equal(st.code, TRAIND_OK);
  assert_non_null(st.message);
  traind_status_clear(&st);
  /* Three chunks of garbage. */
  size_t junk_len = (5u << 20) / 2;
  uint8_t *junk = malloc(junk_len);
  memset(junk, 0x5a, junk_len);
  st = traind_load_state_dict_from_buffer(f->c, id, true, junk, junk_len, NULL);
  assert_int_not_equal(st.code, TRAIND_OK);
  traind_status_clear(&st);
  free(junk);
  uint8_t *after = NULL;
  size_t after_len = 0;
  EXPECT_OK(traind_state_dict_to_buffer(f->c, id, false, &after, &after_len));
  assert_int_equal(after_len, sd_len);
  assert_memory_equal(after, sd, sd_len);
  free(after);

  /* Unknown session, both directions; a failed download leaves no file behind. */
  static const char *ghost = "0123456789abcdef0123456789abcdef";
  uint8_t *data = (uint8_t *)"x";
  size_t len = 1;
  expect_status(traind_state_dict_to_buffer(f->c, ghost, false, &data, &len), TRAIND_NOT_FOUND,
                NULL);
  assert_null(data);
  assert_int_equal(len, 0);
  char path[128];
  snprintf(path, sizeof path, "%s/ghost.safetensors", f->dir);
  expect_status(traind_state_dict_to_file(f->c, ghost, false, path, NULL), TRAIND_NOT_FOUND,
                NULL);
  assert_int_equal(access(path, F_OK), -1);
  DIR *d = opendir(f->dir);
  struct dirent *e;
  while ((e = readdir(d))) assert_null(strstr(e->d_name, "ghost"));
  closedir(d);
  expect_status(traind_load_state_dict_from_buffer(f->c, ghost, true, sd, sd_len, NULL),
                TRAIND_NOT_FOUND, NULL);
  /* A local failure: the file's directory does not exist. */
  snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", f->dir);
  st = traind_state_dict_to_file(f->c, id, false, path, NULL);
  assert_int_equal(st.code, TRAIND_UNKNOWN);
  assert_int_equal(st.sys_errno, ENOENT);
  assert_non_null(strstr(st.message, "no/such/dir"));
  traind_status_clear(&st);
  expect_status(traind_load_state_dict_from_file(f->c, id, true, path, NULL), TRAIND_UNKNOWN,
                "no/such/dir");

  EXPECT_OK(traind_close_session(f->c, id));
  free(id);
  free(sd);
}

/* Server errors come back with their code and message. */
static void test_error_statuses(void **state) {
  fixture *f = *state;
  static const char *ghost = "fedcba9876543210fedcba9876543210";
  expect_status(traind_step(f->c, ghost, false, NULL), TRAIND_NOT_FOUND, ghost);
  expect_status(traind_get_session(f->c, ghost, NULL), TRAIND_NOT_FOUND, ghost);
  expect_status(traind_clear_grad(f->c, ghost), TRAIND_NOT_FOUND, ghost);
  expect_status(traind_set_training(f->c, ghost, false), TRAIND_NOT_FOUND, ghost);

  char *id = create_mlp(f->c, "errors");
  Traind__V1__BackwardRequest bw = TRAIND__V1__BACKWARD_REQUEST__INIT;
  bw.session_id = id;
  Traind__V1__BackwardResponse *br = NULL;
  expect_status(traind_backward(f->c, &bw, &br), TRAIND_FAILED_PRECONDITION, NULL);
  assert_null(br);

  /* Wrong input width: the message names the layer's expectation and the shape. */
  batch b;
  batch_init(&b);
  b.xshape[1] = 32; /* [64,32] from the same bytes */
  b.xshape[0] = 64;
  Traind__V1__ForwardRequest fr = TRAIND__V1__FORWARD_REQUEST__INIT;
  fr.session_id = id;
  fr.input = &b.input;
  expect_status(traind_forward(f->c, &fr, NULL), TRAIND_INVALID_ARGUMENT, "64");
  /* Class targets out of range. */
  batch_init(&b);
  b.y[3] = 10;
  Traind__V1__TrainStepRequest ts = TRAIND__V1__TRAIN_STEP_REQUEST__INIT;
  ts.session_id = id;
  ts.input = &b.input;
  ts.target = &b.target;
  ts.loss = &b.loss;
  expect_status(traind_train_step(f->c, &ts, NULL), TRAIND_OUT_OF_RANGE, NULL);
  Traind__V1__SessionInfo *info = get_info(f->c, id);
  assert_int_equal(info->step, 0); /* a failed request changes nothing */
  traind_message_free(info);

  /* Arguments this library refuses itself. */
  expect_status(traind_forward(f->c, NULL, NULL), TRAIND_INVALID_ARGUMENT, "request");
  expect_status(traind_step(NULL, id, false, NULL), TRAIND_INVALID_ARGUMENT, "client");
  EXPECT_OK(traind_close_session(f->c, id));
  free(id);
}

/* A raw call of a method the server does not have. */
static void test_unimplemented_raw(void **state) {
  fixture *f = *state;
  uint8_t *resp = (uint8_t *)"x";
  size_t len = 1;
  expect_status(traind_unary_raw(f->c, "/traind.v1.Trainer/NoSuchMethod", NULL, 0, &resp, &len),
                TRAIND_UNIMPLEMENTED, NULL);
  assert_null(resp);
  assert_int_equal(len, 0);
}

/* No daemon at the address: UNAVAILABLE, at connect (with a connect timeout) or on the
 * first call (without). Deadlines become DEADLINE_EXCEEDED or UNAVAILABLE. */
static void test_unreachable(void **state) {
  (void)state;
  traind_client_options o;
  traind_client_options_init(&o);
  o.target = "127.0.0.1:1";
  o.connect_timeout_ms = 300;
  traind_client *c = (traind_client *)&o;
  expect_status(traind_connect(&o, &c), TRAIND_UNAVAILABLE, "127.0.0.1:1");
  assert_null(c);
  o.connect_timeout_ms = 0;
  o.timeout_ms = 500;
  EXPECT_OK(traind_connect(&o, &c));
  traind_status st = traind_health_check(c, NULL, NULL);
  assert_true(st.code == TRAIND_UNAVAILABLE || st.code == TRAIND_DEADLINE_EXCEEDED);
  traind_status_clear(&st);
  traind_client_close(c);
  assert_string_equal(traind_code_name(TRAIND_FAILED_PRECONDITION), "FAILED_PRECONDITION");
  assert_string_equal(traind_code_name(99), "UNKNOWN_CODE");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_client PATH/TO/traind\n");
    return 2;
  }
  daemon_path = argv[1];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health),
      cmocka_unit_test(test_create_get_list_close),
      cmocka_unit_test(test_create_packed),
      cmocka_unit_test(test_forward_backward_step),
      cmocka_unit_test(test_clear_grad_and_keep_grad),
      cmocka_unit_test(test_set_training),
      cmocka_unit_test(test_state_dict_roundtrip),
      cmocka_unit_test(test_state_dict_errors),
      cmocka_unit_test(test_error_statuses),
      cmocka_unit_test(test_unimplemented_raw),
      cmocka_unit_test(test_unreachable),
  };
  return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
