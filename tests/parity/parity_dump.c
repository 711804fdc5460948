/* parity_dump.c - runs every op case and writes what PyTorch must reproduce.
 *
 * usage: parity_dump OUTDIR [NAME-SUBSTRING]
 *
 * For each case: OUTDIR/<case>.json describes the op, params, and the raw
 * little-endian files holding the inputs, dy, our output and our gradients.
 * tests/parity/parity.py reads them back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff/grad_manager.h"
#include "common/gradcheck.h"

static const char *outdir;

static int write_tensor(FILE *js, const char *key, const char *case_name, const char *suffix,
                        const td_tensor *t, int grad_flag) {
  if (!t) {
    fprintf(js, "\"%s\": null", key);
    return 0;
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.%s.bin", outdir, case_name, suffix);
  td_tensor *c;
  if (td_tensor_clone(t, &c)) return -1;
  FILE *f = fopen(path, "wb");
  if (!f) {
    td_tensor_release(c);
    return -1;
  }
  size_t nb = td_tensor_nbytes(c);
  int ok = nb == 0 || fwrite(td_tensor_data(c), 1, nb, f) == nb;
  fclose(f);
  td_tensor_release(c);
  if (!ok) return -1;
  fprintf(js, "\"%s\": {\"file\": \"%s.%s.bin\", \"dtype\": \"%s\", \"shape\": [", key,
          case_name, suffix, td_dtype_name(t->dtype));
  for (int d = 0; d < t->ndim; d++) fprintf(js, d ? ", %lld" : "%lld", (long long)t->shape[d]);
  fprintf(js, "]");
  if (grad_flag >= 0) fprintf(js, ", \"grad\": %s", grad_flag ? "true" : "false");
  fprintf(js, "}");
  return 0;
}

static int dump_case(const op_case *c) {
  uint64_t seed = op_case_seed(c->name);
  td_tensor *inputs[OP_CASE_MAX_INPUTS];
  td_tensor *out = NULL, *dy = NULL;
  td_grad_manager *gm = NULL;
  td_status st = op_case_make_inputs(c, seed, inputs);
  if (st) goto fail;
  bool grad = !c->no_grad;
  if ((st = op_case_run(c, seed, inputs, grad, &gm, &out, &dy))) goto fail;

  char path[1024];
  snprintf(path, sizeof path, "%s/%s.json", outdir, c->name);
  FILE *js = fopen(path, "w");
  if (!js) {
    fprintf(stderr, "parity_dump: cannot write %s: %s\n", path, strerror(errno));
    goto fail_io;
  }
  fprintf(js, "{\"name\": \"%s\", \"op\": \"%s\", \"params\": %s,\n \"inputs\": [", c->name,
          c->op, c->params_json ? c->params_json : "{}");
  int rc = 0;
  for (int i = 0; i < c->n_inputs; i++) {
    char key[16], suffix[16];
    snprintf(key, sizeof key, "in%d", i);
    snprintf(suffix, sizeof suffix, "in%d", i);
    fprintf(js, i ? ", {" : "{");
    rc |= write_tensor(js, "t", c->name, suffix, inputs[i], c->inputs[i].grad && grad);
    fprintf(js, "}");
  }
  fprintf(js, "],\n ");
  rc |= write_tensor(js, "out", c->name, "out", out, -1);
  fprintf(js, ",\n ");
  rc |= write_tensor(js, "dy", c->name, "dy", dy, -1);
  fprintf(js, ",\n \"grads\": [");
  for (int i = 0; i < c->n_inputs; i++) {
    char suffix[16];
    snprintf(suffix, sizeof suffix, "grad%d", i);
    fprintf(js, i ? ", {" : "{");
    rc |= write_tensor(js, "t", c->name, suffix,
                       (grad && c->inputs[i].grad && inputs[i]) ? inputs[i]->grad : NULL, -1);
    fprintf(js, "}");
  }
  fprintf(js, "]}\n");
  if (fclose(js) || rc) {
    fprintf(stderr, "parity_dump: failed writing case %s\n", c->name);
    goto fail_io;
  }
  td_tensor_release(out);
  td_tensor_release(dy);
  td_gm_destroy(gm);
  for (int i = 0; i < c->n_inputs; i++) td_tensor_release(inputs[i]);
  return 0;
fail:
  fprintf(stderr, "parity_dump: case %s: %s: %s\n", c->name, td_status_name(st),
          td_error_message());
fail_io:
  td_tensor_release(out);
  td_tensor_release(dy);
  td_gm_destroy(gm);
  for (int i = 0; i < c->n_inputs; i++) td_tensor_release(inputs[i]);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: parity_dump OUTDIR [NAME-SUBSTRING]\n");
    return 2;
  }
  outdir = argv[1];
  mkdir(outdir, 0777);
  int failures = 0, n = 0;
  for (const op_case_family *f = op_case_families(); f->name; f++)
    for (const op_case *c = f->cases; c->name; c++) {
      if (argc > 2 && !strstr(c->name, argv[2])) continue;
      failures += dump_case(c);
      n++;
    }
  fprintf(stderr, "parity_dump: %d cases written, %d failed\n", n - failures, failures);
  return failures ? 1 : 0;
}
