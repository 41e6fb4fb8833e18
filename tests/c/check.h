/* A tiny test harness: CHECK counts failures and keeps going, so one run lists every
   broken case; main returns non-zero if any failed. */
#ifndef TT_CHECK_H
#define TT_CHECK_H
#include <math.h>
#include <stdio.h>

static int check_failures, check_count;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    check_count++;                                                         \
    if (!(cond)) {                                                         \
      check_failures++;                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
    }                                                                      \
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

static inline int check_report(const char *name) {
  printf("%s: %d passed, %d failed\n", name, check_count - check_failures, check_failures);
  return check_failures != 0;
}
#endif
