/* A tiny test harness: CHECK counts failures and keeps going, so one run lists every
   broken case; main returns non-zero if any failed. */
#ifndef TT_CHECK_H
#define TT_CHECK_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures, check_count;

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    check_count++;                                                                                                     \
    if (!(cond)) {                                                                                                     \
      check_failures++;                                                                                                \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fprintf(stderr, "\n");                                                                                           \
    }                                                                                                                  \
  } while (0)

/* Largest |a-b| / (1 + |b|) over n values: absolute near zero, relative for large. */
static inline float check_maxrel(const float *a, const float *b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) {
    float d = fabsf(a[i] - b[i]) / (1.0f + fabsf(b[i]));
    if (!(d <= m)) m = d; /* NaN propagates as a failure */
  }
  return m;
}

/* The bytes of dir/name (dir NULL: $TT_FIXTURES, else tests/fixtures/images; tests run
   from the repository's root), *len of them; NULL and a failed CHECK if the file cannot
   be read. Free with free(). */
static inline uint8_t *check_read_file(const char *dir, const char *name, size_t *len) {
  char path[1024];
  if (!dir) dir = getenv("TT_FIXTURES") ? getenv("TT_FIXTURES") : "tests/fixtures/images";
  snprintf(path, sizeof path, "%s/%s", dir, name);
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    CHECK(0, "cannot open %s", path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
    CHECK(0, "cannot read %s", path);
    free(b);
    fclose(f);
    return NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

static inline int check_report(const char *name) {
  printf("%s: %d passed, %d failed\n", name, check_count - check_failures, check_failures);
  return check_failures != 0;
}
#endif
