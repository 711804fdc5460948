/* trainctl: classification data from CSV (features, then an integer label, per row). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainctl.h"

/* Appends to a growing array of `elem` bytes per item; false when out of memory. */
static bool grow(void **array, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t cap2 = *cap ? *cap * 2 : 4096;
  while (cap2 < need)
    cap2 *= 2;
  void *p = realloc(*array, cap2 * elem);
  if (!p) return false;
  *array = p;
  *cap = cap2;
  return true;
}

static bool blank(const char *s) {
  while (isspace((unsigned char)*s))
    s++;
  return !*s;
}

/* A header is a first line whose first field is not a number. */
static bool is_header(const char *line) {
  char *end;
  strtod(line, &end);
  return end == line;
}

void tc_dataset_free(tc_dataset *d) {
  free(d->x);
  free(d->y);
  memset(d, 0, sizeof *d);
}

int tc_load_csv(const tc_ctx *ctx, const char *path, tc_dataset *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "r");
  if (!f) return tc_usage_error(ctx, "cannot open %s: %s", path, strerror(errno));
  char *line = NULL;
  size_t line_cap = 0, row_cap = 0, x_cap = 0, y_cap = 0;
  int64_t lineno = 0, columns = -1;
  int code = 0;
  float *row = NULL; /* the row being parsed, so that a bad row leaves out->x unchanged */
  ssize_t len;
  while ((len = getline(&line, &line_cap, f)) >= 0) {
    lineno++;
    if (blank(line) || (lineno == 1 && is_header(line))) continue;
    int64_t col = 0;
    char *p = line;
    for (;;) {
      char *end;
      errno = 0;
      double v = strtod(p, &end);
      char *field_end = end;
      while (*field_end == ' ' || *field_end == '\t' || *field_end == '\r')
        field_end++;
      if (end == p || errno == ERANGE || !isfinite(v) ||
          (*field_end && *field_end != ',' && *field_end != '\n')) {
        int n = (int)strcspn(p, ",\r\n");
        code = tc_usage_error(ctx, "%s:%lld: column %lld: '%.*s' is not a number", path,
                              (long long)lineno, (long long)col + 1, n, p);
        goto done;
      }
      if (columns >= 0 && col >= columns) {
        code = tc_usage_error(ctx, "%s:%lld: more than %lld columns (as in the first row)", path,
                              (long long)lineno, (long long)columns);
        goto done;
      }
      if (!grow((void **)&row, &row_cap, (size_t)col + 1, sizeof *row)) goto oom;
      row[col++] = (float)v;
      if (*field_end != ',') break;
      p = field_end + 1;
    }
    if (columns < 0) {
      if (col < 2) {
        code = tc_usage_error(ctx, "%s:%lld: a row needs at least one feature and a label", path,
                              (long long)lineno);
        goto done;
      }
      columns = col;
    } else if (col != columns) {
      code = tc_usage_error(ctx, "%s:%lld: %lld columns, but the first row has %lld", path,
                            (long long)lineno, (long long)col, (long long)columns);
      goto done;
    }
    float label = row[columns - 1];
    if (label < 0 || label != floorf(label) || label > 1e9f) {
      code = tc_usage_error(ctx, "%s:%lld: the label (last column) must be an integer >= 0, got %g",
                            path, (long long)lineno, (double)label);
      goto done;
    }
    int64_t features = columns - 1, n = out->n;
    if (!grow((void **)&out->x, &x_cap, (size_t)(n + 1) * (size_t)features, sizeof(float)) ||
        !grow((void **)&out->y, &y_cap, (size_t)n + 1, sizeof(int64_t)))
      goto oom;
    memcpy(out->x + n * features, row, (size_t)features * sizeof(float));
    out->y[n] = (int64_t)label;
    if (out->y[n] + 1 > out->classes) out->classes = out->y[n] + 1;
    out->n++;
    out->features = features;
  }
  if (ferror(f)) {
    code = tc_usage_error(ctx, "cannot read %s: %s", path, strerror(errno));
  } else if (out->n == 0) {
    code = tc_usage_error(ctx, "%s: no data rows", path);
  }
  goto done;
oom:
  code = tc_fail(ctx, TC_EXIT_FAILURE, "%s: out of memory", path);
done:
  free(row);
  free(line);
  fclose(f);
  if (code) tc_dataset_free(out);
  return code;
}
