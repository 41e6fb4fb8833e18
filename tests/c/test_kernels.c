/* Kernel tests, built natively (scalar kernels) and as WASM with -msimd128 (scalar and
   SIMD kernels). Every kernel is compared with a naive reference written here in the
   plainest possible form (straight loops, double accumulation, bounds checks instead of
   clipped windows, gather instead of scatter for adjoints), so a shared bug in the
   kernels' indexing cannot hide. Backward kernels are also checked against central
   finite differences of the forward kernels. Shapes deliberately include sizes that
   are not multiples of the SIMD widths (4 lanes, 4x8 GEMM tiles, 256/128 GEMM blocks)
   and every padding/stride combination the engine can produce. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "kernels/kernels.h"
#include "check.h"

#define TOL      1e-5f /* kernels vs double reference */
#define FD_TOL   1e-2f /* analytic vs central differences in float */
#define FD_EPS   1e-3f
#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void) { /* xorshift64: deterministic across native and wasm */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}
static float frand(void) { return (float)(rnd_u32() >> 8) * (2.0f / 16777216.0f) - 1.0f; }
static int irand(int n) { return (int)(rnd_u32() % (uint32_t)n); }

static float *alloc_f(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) {
    fprintf(stderr, "test_kernels: out of memory\n");
    exit(2);
  }
  return p;
}
static float *rand_f(size_t n, float scale) {
  float *p = alloc_f(n);
  for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
  return p;
}
static float *copy_f(const float *src, size_t n) {
  float *p = alloc_f(n);
  memcpy(p, src, (n ? n : 1) * sizeof *p);
  return p;
}

static double ref_act(double v, int act) {
  if (act == TT_ACT_RELU) return v > 0 ? v : 0;
  if (act == TT_ACT_RELU6) return v < 0 ? 0 : v > 6 ? 6 : v;
  return v;
}

/* Each kernel is tested as its scalar version, its SIMD version (WASM only) and the
   dispatching entry point the engine calls. */
#ifdef __wasm_simd128__
#define IMPLS(f)                                                                                                       \
  {                                                                                                                    \
    {"scalar", f##_scalar}, {"simd", f##_simd}, { "dispatch", f }                                                      \
  }
#else
#define IMPLS(f)                                                                                                       \
  {                                                                                                                    \
    {"scalar", f##_scalar}, { "dispatch", f }                                                                          \
  }
#endif

typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int, float *, int, int,
                        const float *, int);
typedef void (*fwd_fn)(const tt_shape *, const float *, const float *, const float *, int, float *);
typedef void (*bwd_in_fn)(const tt_shape *, const float *, const float *, float *);
typedef void (*pool_fn)(const tt_shape *, const float *, float *);
typedef void (*binary_fn)(size_t, const float *, const float *, float *);
typedef void (*unary_fn)(size_t, const float *, float *);
typedef void (*scale_fn)(size_t, const float *, float, float, float *);
typedef void (*bias_act_fn)(int, int, float *, const float *, int);
typedef void (*act_bwd_fn)(size_t, const float *, float *, int);
typedef void (*bias_bwd_fn)(int, int, const float *, float *);
typedef void (*softmax_fn)(int, int, const float *, float *);

static const struct {
  const char *name;
  gemm_fn f;
} gemm_impls[] = IMPLS(tt_gemm);
static const struct {
  const char *name;
  fwd_fn f;
} dwconv_impls[] = IMPLS(tt_dwconv);
static const struct {
  const char *name;
  fwd_fn f;
} conv_impls[] = IMPLS(tt_conv2d);
static const struct {
  const char *name;
  bwd_in_fn f;
} dw_bin_impls[] = IMPLS(tt_dwconv_backward_input);
static const struct {
  const char *name;
  bwd_in_fn f;
} dw_bfil_impls[] = IMPLS(tt_dwconv_backward_filter);
static const struct {
  const char *name;
  pool_fn f;
} pool_impls[] = IMPLS(tt_avgpool);
static const struct {
  const char *name;
  pool_fn f;
} pool_bwd_impls[] = IMPLS(tt_avgpool_backward);
static const struct {
  const char *name;
  binary_fn f;
} add_impls[] = IMPLS(tt_add);
static const struct {
  const char *name;
  unary_fn f;
} acc_impls[] = IMPLS(tt_acc);
static const struct {
  const char *name;
  scale_fn f;
} scale_impls[] = IMPLS(tt_scale_shift);
static const struct {
  const char *name;
  bias_act_fn f;
} bias_act_impls[] = IMPLS(tt_bias_act);
static const struct {
  const char *name;
  act_bwd_fn f;
} act_bwd_impls[] = IMPLS(tt_act_backward);
static const struct {
  const char *name;
  bias_bwd_fn f;
} bias_bwd_impls[] = IMPLS(tt_bias_backward);
static const struct {
  const char *name;
  softmax_fn f;
} softmax_impls[] = IMPLS(tt_softmax);
typedef void (*adam_fn)(size_t, float *, const float *, float *, float *, const tt_adam_cfg *);
static const struct {
  const char *name;
  adam_fn f;
} adam_impls[] = IMPLS(tt_adam);

/* ---- gemm --------------------------------------------------------------------------- */

static void test_gemm(void) {
  /* {M, N, K}: edge tiles in M (mod 4) and N (mod 8), K and N across the SIMD
     version's 256/128 blocks, M < 4 (its unpacked path), and degenerate K = 0
     (epilogue only). */
  static const int shapes[][3] = {{1, 1, 1},
                                  {1, 8, 4},
                                  {3, 7, 5},
                                  {4, 8, 16},
                                  {7, 17, 33},
                                  {17, 33, 7},
                                  {33, 100, 17},
                                  {100, 3, 64},
                                  {5, 129, 257},
                                  {64, 136, 300},
                                  {2, 300, 513},
                                  {13, 9, 1},
                                  {3, 5, 0},
                                  {9, 260, 40},
                                  {36, 24, 256},
                                  {1, 13, 257},
                                  {3, 33, 2},
                                  {4, 5, 0},
                                  {8, 16, 600},
                                  /* the unpacked ta=tb=0 path: many full panels, K blocks, N split into equal
         column blocks (N8 > 512 with kc = 256), edge rows and columns beside it */
                                  {12, 144, 24},
                                  {49, 448, 300},
                                  {8, 1040, 300},
                                  {6, 1030, 260},
                                  /* a 4-column tile after the 8-column ones (N % 8 >= 4), over K blocks */
                                  {8, 13, 300},
                                  {12, 44, 520},
                                  {16, 100, 40},
                                  /* short and deep: tt_gemm cuts K into parts (a dense head on a batch, one image) */
                                  {16, 100, 1792},
                                  {5, 30, 1100},
                                  {1, 64, 2100}};
  for (int si = 0; si < COUNT(shapes); si++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int acc = 0; acc < 2; acc++)
          for (int hb = 0; hb < 2; hb++)
            for (int act = 0; act < 3; act++) {
              const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
              /* Leading dimensions with slack, so row strides are really honoured. */
              const int lda = (ta ? M : K) + irand(3) + (K == 0);
              const int ldb = (tb ? K : N) + irand(3) + (K == 0);
              const int ldc = N + irand(3);
              const int arows = ta ? K : M, brows = tb ? N : K;
              float *A = rand_f((size_t)arows * lda, 1.0f);
              float *B = rand_f((size_t)brows * ldb, 1.0f);
              float *bias = hb ? rand_f((size_t)N, 2.0f) : NULL;
              float *C0 = rand_f((size_t)M * ldc, 4.0f);
              float *ref = alloc_f((size_t)M * N);
              for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                  double s = acc ? C0[(size_t)i * ldc + j] : 0.0;
                  for (int k = 0; k < K; k++) {
                    const double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                    const double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                    s += a * b;
                  }
                  if (bias) s += bias[j];
                  ref[(size_t)i * N + j] = (float)ref_act(s, act);
                }
              for (int v = 0; v < COUNT(gemm_impls); v++) {
                float *C = copy_f(C0, (size_t)M * ldc);
                /* Without acc the old C must not be read at all: poison it. */
                if (!acc)
                  for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
                gemm_impls[v].f(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, bias, act);
                float err = 0;
                int slack_ok = 1;
                for (int i = 0; i < M; i++) {
                  const float e = check_maxrel(C + (size_t)i * ldc, ref + (size_t)i * N, (size_t)N);
                  if (!(e <= err)) err = e;
                  for (int j = N; j < ldc; j++) slack_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
                }
                /* a float sum's rounding error grows with its length */
                CHECK(err < TOL * (K > 256 ? K / 256.0f : 1.0f) && slack_ok,
                      "gemm %s ta=%d tb=%d M=%d N=%d K=%d acc=%d bias=%d act=%d: maxrel %g%s", gemm_impls[v].name, ta,
                      tb, M, N, K, acc, hb, act, err, slack_ok ? "" : ", wrote past N");
                free(C);
              }
              free(A);
              free(B);
              free(bias);
              free(C0);
              free(ref);
            }
}

/* ---- qgemm: the product by 8-bit weight codes ----------------------------------------
   Against the exact product (double) with W = wb*code: each element of a row of A is
   rounded to the nearest of its row's levels (level = half the row's range, or its
   largest magnitude when the row sits far from zero, over qmax - 1), so the error of an
   output is at most half a level times sum_k |W[k][n]|, plus float rounding. The
   activation does not widen it. In WASM the SIMD version must equal the scalar one bit
   for bit (same rounding, same epilogue order). */
typedef void (*qgemm_fn)(int, const tt_qmat *, const float *, int, float *, int, int, const float *, int);
static const struct {
  const char *name;
  qgemm_fn f;
} qgemm_impls[] = IMPLS(tt_qgemm);

/* mode 0: random codes; 1: every code -255; 2: all codes positive, where a rounding
   that errs the same way on every element shows in every output. */
static void test_qgemm_case(int M, int N, int K, int mode) {
  const int extreme = mode == 1;
  const int lda = K + irand(3), ldc = N + irand(3), N8 = (N + 7) / 8 * 8;
  int16_t *codes = malloc((size_t)K * N * sizeof *codes);
  int16_t *w = malloc(tt_qpack_size(K, N) * sizeof *w);
  float *wb = alloc_f((size_t)N8), *ws = alloc_f((size_t)N8);
  double *W = malloc((size_t)K * N * sizeof *W);
  for (size_t i = 0; i < (size_t)K * N; i++) codes[i] = extreme ? -255 : mode == 2 ? 1 + irand(255) : irand(511) - 255;
  for (int n = 0; n < N8; n++) {
    wb[n] = n < N ? 0.002f * (1.5f + frand()) : 0.0f;
    double sum = 0;
    for (int k = 0; n < N && k < K; k++) sum += W[(size_t)k * N + n] = (double)wb[n] * codes[(size_t)k * N + n];
    ws[n] = (float)sum;
  }
  const int qmax = tt_qpack(K, N, codes, w);
  CHECK(qmax >= 4096 && qmax <= 32767, "qgemm K=%d: qmax %d", K, qmax);
  const tt_qmat q = {K, N, qmax, w, wb, ws};
  float *A = rand_f((size_t)M * lda, 3.0f);
  /* Rows the rounding must get right: constant (exact), zero, NaN and infinite (NaN
     out), one of ReLU6-like values (>= 0), with extreme codes the largest rows, one
     whose values sit 0.6 of a level above a level (range [-1, 1]: levels 1/(qmax-1)),
     which rounding to nearest errs by 0.4 of a level and truncation by 0.6, and one
     narrow and far from zero (rounded about zero instead of its middle). Every third
     group of four rows holds none of the special rows, since the SIMD version scales
     four rows at a time and takes another path for a group holding any. */
  for (int i = 0; i < M; i++) {
    float *a = A + (size_t)i * lda;
    static const int plain[4] = {0, 4, 6, 4};
    const int kind = extreme ? 5 : (i / 4) % 3 == 2 ? plain[i % 4] : i % 8;
    for (int k = 0; k < K; k++) {
      if (kind == 1)
        a[k] = 1.25f;
      else if (kind == 2)
        a[k] = 0.0f;
      else if (kind == 4)
        a[k] = 6.0f * fabsf(a[k]) / 3.0f;
      else if (kind == 5)
        a[k] = k % 2 ? -1.0f : 1.0f; /* every code +-qmax */
      else if (kind == 6)
        a[k] = k < 2 ? (k ? 1.0f : -1.0f) : (float)(irand(100) + 0.6) / (qmax - 1);
      else if (kind == 7)
        a[k] = 1000.0f + 1e-4f * a[k];
    }
    if (kind == 3 && K > 1) a[irand(K)] = i % 2 ? NAN : -INFINITY;
  }
  for (int acc = 0; acc < 2; acc++)
    for (int hb = 0; hb < 2; hb++)
      for (int act = 0; act < 3; act++) {
        float *bias = hb ? rand_f((size_t)N, 2.0f) : NULL;
        float *C0 = rand_f((size_t)M * ldc, 4.0f), *first = NULL;
        for (int v = 0; v < COUNT(qgemm_impls); v++) {
          float *C = copy_f(C0, (size_t)M * ldc);
          qgemm_impls[v].f(M, &q, A, lda, C, ldc, acc, bias, act);
          int ok = 1, same = 1, slack_ok = 1;
          double worst = 0;
          for (int i = 0; i < M && ok; i++) {
            const float *a = A + (size_t)i * lda;
            float lo = a[0], hi = a[0];
            int bad = 0;
            for (int k = 0; k < K; k++) {
              bad |= !isfinite(a[k]);
              lo = a[k] < lo ? a[k] : lo, hi = a[k] > hi ? a[k] : hi;
            }
            double half = ((double)hi - lo) / 2;
            if (fabs(((double)hi + lo) / 2) > half * (2097152.0 / (qmax - 1))) half = fmax(fabs(lo), fabs(hi));
            const double level = half / (qmax - 1);
            for (int j = 0; j < N; j++) {
              const float got = C[(size_t)i * ldc + j];
              if (bad) {
                ok &= isnan(got);
                continue;
              }
              double ref = acc ? C0[(size_t)i * ldc + j] : 0.0, wabs = 0, mag = fabs(ref);
              for (int k = 0; k < K; k++) {
                ref += a[k] * W[(size_t)k * N + j];
                wabs += fabs(W[(size_t)k * N + j]);
                mag += fabs(a[k] * W[(size_t)k * N + j]);
              }
              if (bias) ref += bias[j], mag += fabs(bias[j]);
              ref = ref_act(ref, act);
              const double err = fabs(got - ref), bound = 0.51 * level * wabs + 2e-6 * (1 + mag);
              worst = err / bound > worst ? err / bound : worst;
              ok &= err <= bound;
            }
            for (int j = N; j < ldc; j++) slack_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
          }
          for (size_t e = 0; first && e < (size_t)M * ldc; e++) /* NaN payloads may differ */
            same &= (isnan(first[e]) && isnan(C[e])) || memcmp(first + e, C + e, sizeof *C) == 0;
          CHECK(ok && same && slack_ok,
                "qgemm %s M=%d N=%d K=%d mode=%d acc=%d bias=%d act=%d: %s (worst %.2f of the bound)",
                qgemm_impls[v].name, M, N, K, mode, acc, hb, act,
                !ok     ? "outside the rounding bound"
                : !same ? "differs from scalar"
                        : "wrote past N",
                worst);
          if (!first)
            first = C;
          else
            free(C);
        }
        free(first);
        free(bias);
        free(C0);
      }
  free(codes);
  free(w);
  free(wb);
  free(ws);
  free(W);
  free(A);
}

static void test_qgemm(void) {
  /* {M, N, K}: edge rows (M mod 4) and columns (N mod 8), odd K (a zero-padded pair),
     row blocks (M past the rows a call quantizes at once), MobileNetV2's shapes. */
  static const int shapes[][3] = {{1, 1, 1},      {3, 7, 5},      {4, 8, 16},    {7, 17, 33},    {13, 9, 2},
                                  {33, 100, 17},  {100, 3, 64},   {5, 129, 257}, {64, 136, 300}, {12, 144, 24},
                                  {300, 24, 144}, {9, 448, 1344}, {6, 12, 2046}};
  for (int si = 0; si < COUNT(shapes); si++)
    test_qgemm_case(shapes[si][0], shapes[si][1], shapes[si][2], si % 2 ? 2 : 0);
  /* Every product at its extreme: the sums must still fit int32. */
  test_qgemm_case(8, 16, 2046, 1);
  test_qgemm_case(5, 9, 1343, 1);
}

/* ---- spatial references ------------------------------------------------------------- */

static size_t xsize(const tt_shape *s) { return (size_t)s->n * s->h * s->w * s->c; }
static size_t ysize(const tt_shape *s) { return (size_t)s->n * s->oh * s->ow * s->oc; }

/* pb/pr are the implied bottom/right padding; 0 if the shape is impossible. */
static int make_shape(tt_shape *s, int n, int h, int w, int c, int oc, int kh, int kw, int sh, int sw, int pt, int pl,
                      int pb, int pr) {
  if (h + pt + pb < kh || w + pl + pr < kw) return 0;
  s->n = n;
  s->h = h;
  s->w = w;
  s->c = c;
  s->kh = kh;
  s->kw = kw;
  s->sh = sh;
  s->sw = sw;
  s->pt = pt;
  s->pl = pl;
  s->oh = (h + pt + pb - kh) / sh + 1;
  s->ow = (w + pl + pr - kw) / sw + 1;
  s->oc = oc;
  return 1;
}

static int in_x(const tt_shape *s, int iy, int ix) { return iy >= 0 && iy < s->h && ix >= 0 && ix < s->w; }
static size_t xi(const tt_shape *s, int n, int iy, int ix, int c) {
  return (((size_t)n * s->h + iy) * s->w + ix) * s->c + c;
}
static size_t yi(const tt_shape *s, int n, int oy, int ox, int c) {
  return (((size_t)n * s->oh + oy) * s->ow + ox) * s->oc + c;
}

static void ref_dwconv(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int c = 0; c < s->c; c++) {
          double a = bias ? bias[c] : 0.0;
          for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
              const int iy = oy * s->sh - s->pt + ky, ix = ox * s->sw - s->pl + kx;
              if (in_x(s, iy, ix)) a += (double)x[xi(s, n, iy, ix, c)] * w[((size_t)ky * s->kw + kx) * s->c + c];
            }
          y[yi(s, n, oy, ox, c)] = (float)ref_act(a, act);
        }
}

/* Output position reached from input index i through tap k, or -1. */
static int out_of(int i, int k, int stride, int pad, int osize) {
  const int t = i + pad - k;
  if (t < 0 || t % stride) return -1;
  return t / stride < osize ? t / stride : -1;
}

/* Adjoints in gather form: each input cell sums over the outputs that read it. */
static void ref_dwconv_bwd_input(const tt_shape *s, const float *dy, const float *w, float *dx) {
  for (int n = 0; n < s->n; n++)
    for (int iy = 0; iy < s->h; iy++)
      for (int ix = 0; ix < s->w; ix++)
        for (int c = 0; c < s->c; c++) {
          double a = 0;
          for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
              const int oy = out_of(iy, ky, s->sh, s->pt, s->oh);
              const int ox = out_of(ix, kx, s->sw, s->pl, s->ow);
              if (oy >= 0 && ox >= 0) a += (double)dy[yi(s, n, oy, ox, c)] * w[((size_t)ky * s->kw + kx) * s->c + c];
            }
          dx[xi(s, n, iy, ix, c)] = (float)a;
        }
}

static void ref_dwconv_bwd_filter(const tt_shape *s, const float *x, const float *dy, float *dw) {
  for (int ky = 0; ky < s->kh; ky++)
    for (int kx = 0; kx < s->kw; kx++)
      for (int c = 0; c < s->c; c++) {
        double a = dw[((size_t)ky * s->kw + kx) * s->c + c];
        for (int n = 0; n < s->n; n++)
          for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
              const int iy = oy * s->sh - s->pt + ky, ix = ox * s->sw - s->pl + kx;
              if (in_x(s, iy, ix)) a += (double)x[xi(s, n, iy, ix, c)] * dy[yi(s, n, oy, ox, c)];
            }
        dw[((size_t)ky * s->kw + kx) * s->c + c] = (float)a;
      }
}

static void ref_conv2d(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int o = 0; o < s->oc; o++) {
          double a = bias ? bias[o] : 0.0;
          for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++)
              for (int c = 0; c < s->c; c++) {
                const int iy = oy * s->sh - s->pt + ky, ix = ox * s->sw - s->pl + kx;
                if (in_x(s, iy, ix))
                  a += (double)x[xi(s, n, iy, ix, c)] * w[(((size_t)ky * s->kw + kx) * s->c + c) * s->oc + o];
              }
          y[yi(s, n, oy, ox, o)] = (float)ref_act(a, act);
        }
}

static int pool_count(const tt_shape *s, int oy, int ox) {
  int cnt = 0;
  for (int ky = 0; ky < s->kh; ky++)
    for (int kx = 0; kx < s->kw; kx++) cnt += in_x(s, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
  return cnt;
}

static void ref_avgpool(const tt_shape *s, const float *x, float *y) {
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++)
      for (int ox = 0; ox < s->ow; ox++)
        for (int c = 0; c < s->c; c++) {
          double a = 0;
          for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
              const int iy = oy * s->sh - s->pt + ky, ix = ox * s->sw - s->pl + kx;
              if (in_x(s, iy, ix)) a += x[xi(s, n, iy, ix, c)];
            }
          const int cnt = pool_count(s, oy, ox);
          y[yi(s, n, oy, ox, c)] = cnt ? (float)(a / cnt) : 0.0f;
        }
}

static void ref_avgpool_bwd(const tt_shape *s, const float *dy, float *dx) {
  for (int n = 0; n < s->n; n++)
    for (int iy = 0; iy < s->h; iy++)
      for (int ix = 0; ix < s->w; ix++)
        for (int c = 0; c < s->c; c++) {
          double a = 0;
          for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
              const int oy = out_of(iy, ky, s->sh, s->pt, s->oh);
              const int ox = out_of(ix, kx, s->sw, s->pl, s->ow);
              if (oy >= 0 && ox >= 0) a += (double)dy[yi(s, n, oy, ox, c)] / pool_count(s, oy, ox);
            }
          dx[xi(s, n, iy, ix, c)] = (float)a;
        }
}

/* ---- spatial cases ------------------------------------------------------------------ */

#define MAX_CASES 4096
static tt_shape cases[MAX_CASES];
static int ncases;

static void add_case(int n, int h, int w, int c, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr) {
  tt_shape s;
  if (ncases < MAX_CASES && make_shape(&s, n, h, w, c, c, kh, kw, sh, sw, pt, pl, pb, pr)) cases[ncases++] = s;
}

/* Depthwise and pooling share these: every 3x3 stride 1/2 case with each of the four
   paddings 0/1 (which covers TF SAME for even and odd sizes, and VALID) on small odd
   and even images with channel counts around the 4- and 8-lane boundaries; then
   random other kernel sizes and unequal strides. Paddings stay below the kernel size,
   as TF's do, so no window lies wholly in padding. */
static void build_cases(void) {
  static const int hw[][2] = {{1, 1}, {2, 3}, {3, 3}, {4, 4}, {5, 6}, {7, 7}, {8, 5}, {12, 13}};
  static const int cs[] = {1, 3, 4, 5, 8, 12, 17, 33};
  int idx = 0;
  for (int st = 1; st <= 2; st++)
    for (int pads = 0; pads < 16; pads++)
      for (int i = 0; i < COUNT(hw); i++)
        for (int j = 0; j < COUNT(cs); j++, idx++)
          add_case(1 + (idx / 7) % 2, hw[i][0], hw[i][1], cs[j], 3, 3, st, st, pads & 1, (pads >> 1) & 1,
                   (pads >> 2) & 1, (pads >> 3) & 1);
  static const int ks[] = {1, 2, 3, 5};
  for (int i = 0; i < 400; i++) {
    const int kh = ks[irand(4)], kw = ks[irand(4)];
    add_case(1 + irand(2), 1 + irand(10), 1 + irand(10), 1 + irand(20), kh, kw, 1 + irand(3), 1 + irand(3), irand(kh),
             irand(kw), irand(kh), irand(kw));
  }
  /* MobileNet-sized layers: long interior rows, c a multiple of 8 plus tails. */
  add_case(1, 28, 28, 40, 3, 3, 1, 1, 1, 1, 1, 1);
  add_case(1, 28, 28, 36, 3, 3, 2, 2, 0, 0, 1, 1);
  add_case(1, 15, 15, 67, 3, 3, 2, 2, 1, 1, 1, 1);
  add_case(2, 7, 7, 160, 3, 3, 1, 1, 1, 1, 1, 1);
  /* MobileNetV3's 5x5 depthwise layers (TF SAME: stride 2 pads 1 before, 2 after). */
  add_case(1, 16, 16, 72, 5, 5, 2, 2, 1, 1, 2, 2);
  add_case(1, 9, 9, 120, 5, 5, 1, 1, 2, 2, 2, 2);
  /* More channels than any kernel-internal channel blocking (2048 in dwconv). */
  add_case(1, 3, 4, 2053, 3, 3, 1, 1, 1, 1, 1, 1);
  add_case(1, 5, 5, 4099, 3, 3, 2, 2, 1, 0, 1, 0);
}

static const char *shape_str(const tt_shape *s) {
  static char buf[160];
  snprintf(buf, sizeof buf, "n%d %dx%dx%d k%dx%d s%d,%d pad t%d l%d -> %dx%dx%d", s->n, s->h, s->w, s->c, s->kh, s->kw,
           s->sh, s->sw, s->pt, s->pl, s->oh, s->ow, s->oc);
  return buf;
}

static void test_dwconv(void) {
  for (int ci = 0; ci < ncases; ci++) {
    const tt_shape *s = &cases[ci];
    const int act = ci % 3, hb = (ci / 3) % 2;
    float *x = rand_f(xsize(s), 2.0f);
    float *w = rand_f((size_t)s->kh * s->kw * s->c, 1.5f);
    float *bias = hb ? rand_f((size_t)s->c, 1.0f) : NULL;
    float *ref = alloc_f(ysize(s)), *y = alloc_f(ysize(s));
    ref_dwconv(s, x, w, bias, act, ref);
    for (int v = 0; v < COUNT(dwconv_impls); v++) {
      for (size_t i = 0; i < ysize(s); i++) y[i] = NAN; /* every output must be written */
      dwconv_impls[v].f(s, x, w, bias, act, y);
      const float err = check_maxrel(y, ref, ysize(s));
      CHECK(err < TOL, "dwconv %s %s bias=%d act=%d: maxrel %g", dwconv_impls[v].name, shape_str(s), hb, act, err);
    }
    free(x);
    free(w);
    free(bias);
    free(ref);
    free(y);
  }
}

static void test_dwconv_backward(void) {
  for (int ci = 0; ci < ncases; ci++) {
    const tt_shape *s = &cases[ci];
    const size_t nw = (size_t)s->kh * s->kw * s->c;
    float *x = rand_f(xsize(s), 1.0f), *dy = rand_f(ysize(s), 1.0f);
    float *w = rand_f(nw, 1.0f), *dw0 = rand_f(nw, 1.0f);
    float *ref_dx = alloc_f(xsize(s)), *dx = alloc_f(xsize(s));
    float *ref_dw = copy_f(dw0, nw);
    ref_dwconv_bwd_input(s, dy, w, ref_dx);
    ref_dwconv_bwd_filter(s, x, dy, ref_dw);
    for (int v = 0; v < COUNT(dw_bin_impls); v++) {
      for (size_t i = 0; i < xsize(s); i++) dx[i] = NAN; /* overwritten, not accumulated */
      dw_bin_impls[v].f(s, dy, w, dx);
      const float err = check_maxrel(dx, ref_dx, xsize(s));
      CHECK(err < TOL, "dwconv_backward_input %s %s: maxrel %g", dw_bin_impls[v].name, shape_str(s), err);
    }
    for (int v = 0; v < COUNT(dw_bfil_impls); v++) {
      float *dw = copy_f(dw0, nw); /* accumulated into */
      dw_bfil_impls[v].f(s, x, dy, dw);
      const float err = check_maxrel(dw, ref_dw, nw);
      CHECK(err < TOL, "dwconv_backward_filter %s %s: maxrel %g", dw_bfil_impls[v].name, shape_str(s), err);
      free(dw);
    }
    free(x);
    free(dy);
    free(w);
    free(dw0);
    free(ref_dx);
    free(dx);
    free(ref_dw);
  }
}

static void test_avgpool(void) {
  for (int ci = 0; ci < ncases + 4; ci++) {
    tt_shape g, *s = &g;
    if (ci < ncases) {
      s = &cases[ci];
    } else { /* global average pooling, as in MobileNet's head */
      static const int gc[] = {1, 5, 8, 1280};
      make_shape(&g, 2, 7, 7, gc[ci - ncases], gc[ci - ncases], 7, 7, 1, 1, 0, 0, 0, 0);
    }
    float *x = rand_f(xsize(s), 3.0f), *dy = rand_f(ysize(s), 1.0f);
    float *ref = alloc_f(ysize(s)), *y = alloc_f(ysize(s));
    float *ref_dx = alloc_f(xsize(s)), *dx = alloc_f(xsize(s));
    ref_avgpool(s, x, ref);
    ref_avgpool_bwd(s, dy, ref_dx);
    for (int v = 0; v < COUNT(pool_impls); v++) {
      for (size_t i = 0; i < ysize(s); i++) y[i] = NAN;
      pool_impls[v].f(s, x, y);
      const float err = check_maxrel(y, ref, ysize(s));
      CHECK(err < TOL, "avgpool %s %s: maxrel %g", pool_impls[v].name, shape_str(s), err);
    }
    for (int v = 0; v < COUNT(pool_bwd_impls); v++) {
      for (size_t i = 0; i < xsize(s); i++) dx[i] = NAN;
      pool_bwd_impls[v].f(s, dy, dx);
      const float err = check_maxrel(dx, ref_dx, xsize(s));
      CHECK(err < TOL, "avgpool_backward %s %s: maxrel %g", pool_bwd_impls[v].name, shape_str(s), err);
    }
    free(x);
    free(dy);
    free(ref);
    free(y);
    free(ref_dx);
    free(dx);
  }
}

static void test_conv2d(void) {
  /* {kh, kw, sh, sw}: the stem (3x3 s2) first, then other geometries. */
  static const int geo[][4] = {{3, 3, 2, 2}, {3, 3, 1, 1}, {1, 1, 1, 1}, {2, 3, 2, 1}, {5, 5, 1, 2}};
  static const int pads[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {0, 0, 1, 1}, {1, 0, 0, 1}};
  static const int hw[][2] = {{1, 1}, {3, 4}, {7, 7}, {8, 8}, {9, 6}};
  static const int cs[] = {1, 3, 4, 5};
  static const int ocs[] = {1, 3, 4, 7, 16, 20, 32, 33, 48};
  int idx = 0;
  for (int g = 0; g < COUNT(geo); g++)
    for (int p = 0; p < COUNT(pads); p++)
      for (int i = 0; i < COUNT(hw) + 2; i++)
        for (int j = 0; j < COUNT(cs); j++)
          for (int o = 0; o < COUNT(ocs); o++, idx++) {
            tt_shape s;
            int h, w;
            if (i < COUNT(hw)) {
              h = hw[i][0], w = hw[i][1];
            } else { /* stem-like sizes, even (SAME pads 0/1) and odd (1/1) */
              if (j != 1 || g != 0 || (ocs[o] != 32 && ocs[o] != 48)) continue;
              h = w = i == COUNT(hw) ? 64 : 65;
            }
            if (!make_shape(&s, 1 + idx % 2, h, w, cs[j], ocs[o], geo[g][0], geo[g][1], geo[g][2], geo[g][3],
                            pads[p][0], pads[p][1], pads[p][2], pads[p][3]))
              continue;
            const int act = idx % 3, hb = (idx / 3) % 2;
            float *x = rand_f(xsize(&s), 2.0f);
            float *wt = rand_f((size_t)s.kh * s.kw * s.c * s.oc, 1.0f);
            float *bias = hb ? rand_f((size_t)s.oc, 1.0f) : NULL;
            float *ref = alloc_f(ysize(&s)), *y = alloc_f(ysize(&s));
            ref_conv2d(&s, x, wt, bias, act, ref);
            for (int v = 0; v < COUNT(conv_impls); v++) {
              for (size_t k = 0; k < ysize(&s); k++) y[k] = NAN;
              conv_impls[v].f(&s, x, wt, bias, act, y);
              const float err = check_maxrel(y, ref, ysize(&s));
              CHECK(err < TOL, "conv2d %s %s bias=%d act=%d: maxrel %g", conv_impls[v].name, shape_str(&s), hb, act,
                    err);
            }
            free(x);
            free(wt);
            free(bias);
            free(ref);
            free(y);
          }
}

/* ---- finite differences ------------------------------------------------------------- */

/* L = sum(y * r), accumulated in double so the differences measure the kernels. */
static double loss(const float *y, const float *r, size_t n) {
  double l = 0;
  for (size_t i = 0; i < n; i++) l += (double)y[i] * r[i];
  return l;
}

/* Central differences of L with respect to every entry of p (perturbed in place and
   restored); f recomputes y from the current parameters. */
typedef void (*eval_fn)(const void *ctx, float *y);
static void fd_grad(eval_fn f, const void *ctx, float *p, size_t np, const float *r, float *y, size_t ny, float *g) {
  for (size_t i = 0; i < np; i++) {
    const float p0 = p[i];
    p[i] = p0 + FD_EPS;
    f(ctx, y);
    const double lp = loss(y, r, ny);
    p[i] = p0 - FD_EPS;
    f(ctx, y);
    const double lm = loss(y, r, ny);
    p[i] = p0;
    g[i] = (float)((lp - lm) / (2.0 * FD_EPS));
  }
}

typedef struct {
  const tt_shape *s;
  const float *x, *w, *bias;
  int act, rows, c;
  float *z; /* eltwise: pre-activation input, copied before each evaluation */
  size_t n;
} fd_ctx;

static void eval_dwconv(const void *p, float *y) {
  const fd_ctx *k = p;
  tt_dwconv_scalar(k->s, k->x, k->w, k->bias, TT_ACT_NONE, y);
}
static void eval_avgpool(const void *p, float *y) {
  const fd_ctx *k = p;
  tt_avgpool_scalar(k->s, k->x, y);
}
static void eval_act(const void *p, float *y) {
  const fd_ctx *k = p;
  memcpy(y, k->z, k->n * sizeof *y);
  tt_bias_act_scalar(1, (int)k->n, y, NULL, k->act);
}
static void eval_bias(const void *p, float *y) {
  const fd_ctx *k = p;
  memcpy(y, k->z, (size_t)k->rows * k->c * sizeof *y);
  tt_bias_act_scalar(k->rows, k->c, y, k->bias, TT_ACT_NONE);
}

static void test_finite_differences(void) {
  int tested = 0;
  for (int ci = 0; ci < ncases && tested < 60; ci += 7) {
    const tt_shape *s = &cases[ci];
    if (xsize(s) > 400) continue;
    tested++;
    const size_t nx = xsize(s), ny = ysize(s), nw = (size_t)s->kh * s->kw * s->c;
    float *x = rand_f(nx, 1.0f), *w = rand_f(nw, 1.0f), *bias = rand_f((size_t)s->c, 1.0f);
    float *r = rand_f(ny, 1.0f), *y = alloc_f(ny);
    float *fd = alloc_f(nx > nw ? nx : nw), *an = alloc_f(nx > nw ? nx : nw);
    fd_ctx k = {s, x, w, bias, 0, 0, 0, NULL, 0};

    fd_grad(eval_dwconv, &k, x, nx, r, y, ny, fd);
    for (int v = 0; v < COUNT(dw_bin_impls); v++) {
      dw_bin_impls[v].f(s, r, w, an);
      const float err = check_maxrel(an, fd, nx);
      CHECK(err < FD_TOL, "dwconv_backward_input %s vs finite differences %s: maxrel %g", dw_bin_impls[v].name,
            shape_str(s), err);
    }
    fd_grad(eval_dwconv, &k, w, nw, r, y, ny, fd);
    for (int v = 0; v < COUNT(dw_bfil_impls); v++) {
      memset(an, 0, nw * sizeof *an);
      dw_bfil_impls[v].f(s, x, r, an);
      const float err = check_maxrel(an, fd, nw);
      CHECK(err < FD_TOL, "dwconv_backward_filter %s vs finite differences %s: maxrel %g", dw_bfil_impls[v].name,
            shape_str(s), err);
    }
    fd_grad(eval_avgpool, &k, x, nx, r, y, ny, fd);
    for (int v = 0; v < COUNT(pool_bwd_impls); v++) {
      pool_bwd_impls[v].f(s, r, an);
      const float err = check_maxrel(an, fd, nx);
      CHECK(err < FD_TOL, "avgpool_backward %s vs finite differences %s: maxrel %g", pool_bwd_impls[v].name,
            shape_str(s), err);
    }
    free(x);
    free(w);
    free(bias);
    free(r);
    free(y);
    free(fd);
    free(an);
  }
  CHECK(tested >= 30, "only %d spatial finite-difference cases", tested);

  for (int act = 0; act < 3; act++)
    for (size_t n = 1; n <= 67; n += 11) {
      float *z = alloc_f(n), *r = rand_f(n, 1.0f), *y = alloc_f(n), *fd = alloc_f(n);
      /* Spread over both relu6 kinks but keep clear of them, where the derivative
         is undefined and central differences straddle the kink. */
      for (size_t i = 0; i < n; i++) {
        do z[i] = frand() * 8.0f;
        while (fabsf(z[i]) < 0.01f || fabsf(z[i] - 6.0f) < 0.01f);
      }
      fd_ctx k = {NULL, NULL, NULL, NULL, act, 0, 0, z, n};
      fd_grad(eval_act, &k, z, n, r, y, n, fd);
      eval_act(&k, y);
      for (int v = 0; v < COUNT(act_bwd_impls); v++) {
        float *g = copy_f(r, n);
        act_bwd_impls[v].f(n, y, g, act);
        const float err = check_maxrel(g, fd, n);
        CHECK(err < FD_TOL, "act_backward %s vs finite differences act=%d n=%d: maxrel %g", act_bwd_impls[v].name, act,
              (int)n, err);
        free(g);
      }
      free(z);
      free(r);
      free(y);
      free(fd);
    }

  for (int rows = 1; rows <= 5; rows += 2)
    for (int c = 1; c <= 19; c += 6) {
      const size_t n = (size_t)rows * c;
      float *z = rand_f(n, 2.0f), *bias = rand_f((size_t)c, 1.0f), *r = rand_f(n, 1.0f);
      float *y = alloc_f(n), *fd = alloc_f((size_t)c), *db0 = rand_f((size_t)c, 1.0f);
      fd_ctx k = {NULL, NULL, NULL, bias, 0, rows, c, z, 0};
      fd_grad(eval_bias, &k, bias, (size_t)c, r, y, n, fd);
      for (int v = 0; v < COUNT(bias_bwd_impls); v++) {
        float *db = copy_f(db0, (size_t)c);
        bias_bwd_impls[v].f(rows, c, r, db);
        for (int j = 0; j < c; j++) db[j] -= db0[j];
        const float err = check_maxrel(db, fd, (size_t)c);
        CHECK(err < FD_TOL, "bias_backward %s vs finite differences rows=%d c=%d: maxrel %g", bias_bwd_impls[v].name,
              rows, c, err);
        free(db);
      }
      free(z);
      free(bias);
      free(r);
      free(y);
      free(fd);
      free(db0);
    }
}

/* ---- eltwise ------------------------------------------------------------------------ */

static const size_t lens[] = {0, 1, 3, 4, 5, 8, 17, 33, 100, 1001};

static void test_eltwise(void) {
  for (int li = 0; li < COUNT(lens); li++) {
    const size_t n = lens[li];
    float *a = rand_f(n, 5.0f), *b = rand_f(n, 5.0f), *ref = alloc_f(n);
    for (size_t i = 0; i < n; i++) ref[i] = (float)((double)a[i] + b[i]);
    for (int v = 0; v < COUNT(add_impls); v++) {
      float *y = alloc_f(n), *ya = copy_f(a, n), *yb = copy_f(b, n);
      add_impls[v].f(n, a, b, y);
      add_impls[v].f(n, ya, b, ya); /* y aliasing either input */
      add_impls[v].f(n, a, yb, yb);
      CHECK(check_maxrel(y, ref, n) < TOL && check_maxrel(ya, ref, n) < TOL && check_maxrel(yb, ref, n) < TOL,
            "add %s n=%d", add_impls[v].name, (int)n);
      free(y);
      free(ya);
      free(yb);
    }
    for (int v = 0; v < COUNT(acc_impls); v++) {
      float *y = copy_f(b, n);
      acc_impls[v].f(n, a, y);
      CHECK(check_maxrel(y, ref, n) < TOL, "acc %s n=%d", acc_impls[v].name, (int)n);
      free(y);
    }
    for (size_t i = 0; i < n; i++) ref[i] = (float)(1.7 * a[i] - 0.3);
    for (int v = 0; v < COUNT(scale_impls); v++) {
      float *y = alloc_f(n);
      scale_impls[v].f(n, a, 1.7f, -0.3f, y);
      CHECK(check_maxrel(y, ref, n) < TOL, "scale_shift %s n=%d", scale_impls[v].name, (int)n);
      free(y);
    }
    free(a);
    free(b);
    free(ref);
  }

  static const int rows_l[] = {1, 3, 7};
  static const int cols_l[] = {1, 3, 4, 5, 8, 17, 33, 100};
  for (int ri = 0; ri < COUNT(rows_l); ri++)
    for (int cj = 0; cj < COUNT(cols_l); cj++) {
      const int rows = rows_l[ri], c = cols_l[cj];
      const size_t n = (size_t)rows * c;
      float *y0 = rand_f(n, 8.0f), *bias = rand_f((size_t)c, 2.0f), *ref = alloc_f(n);
      for (int hb = 0; hb < 2; hb++)
        for (int act = 0; act < 3; act++) {
          for (size_t i = 0; i < n; i++) ref[i] = (float)ref_act((double)y0[i] + (hb ? bias[i % c] : 0.0), act);
          for (int v = 0; v < COUNT(bias_act_impls); v++) {
            float *y = copy_f(y0, n);
            bias_act_impls[v].f(rows, c, y, hb ? bias : NULL, act);
            CHECK(check_maxrel(y, ref, n) < TOL, "bias_act %s rows=%d c=%d bias=%d act=%d", bias_act_impls[v].name,
                  rows, c, hb, act);
            free(y);
          }
        }
      /* bias_backward: db += column sums. */
      float *db0 = rand_f((size_t)c, 1.0f), *dref = alloc_f((size_t)c);
      for (int j = 0; j < c; j++) {
        double s = db0[j];
        for (int r = 0; r < rows; r++) s += y0[(size_t)r * c + j];
        dref[j] = (float)s;
      }
      for (int v = 0; v < COUNT(bias_bwd_impls); v++) {
        float *db = copy_f(db0, (size_t)c);
        bias_bwd_impls[v].f(rows, c, y0, db);
        CHECK(check_maxrel(db, dref, (size_t)c) < TOL, "bias_backward %s rows=%d c=%d", bias_bwd_impls[v].name, rows,
              c);
        free(db);
      }
      free(y0);
      free(bias);
      free(ref);
      free(db0);
      free(dref);
    }

  /* act_backward, including outputs exactly at the kinks 0 and 6 where TF passes no
     gradient (y > 0 for relu, 0 < y < 6 for relu6). */
  for (int li = 0; li < COUNT(lens); li++)
    for (int act = 0; act < 3; act++) {
      const size_t n = lens[li];
      float *y = rand_f(n, 8.0f), *g0 = rand_f(n, 1.0f), *ref = alloc_f(n);
      for (size_t i = 0; i < n; i++) {
        if (i % 5 == 1) y[i] = 0.0f;
        if (i % 5 == 3) y[i] = 6.0f;
        y[i] = (float)ref_act(y[i], act);
        const int pass = act == TT_ACT_RELU ? y[i] > 0 : act == TT_ACT_RELU6 ? y[i] > 0 && y[i] < 6 : 1;
        ref[i] = pass ? g0[i] : 0.0f;
      }
      for (int v = 0; v < COUNT(act_bwd_impls); v++) {
        float *g = copy_f(g0, n);
        act_bwd_impls[v].f(n, y, g, act);
        CHECK(check_maxrel(g, ref, n) == 0.0f, "act_backward %s n=%d act=%d", act_bwd_impls[v].name, (int)n, act);
        free(g);
      }
      free(y);
      free(g0);
      free(ref);
    }

  /* softmax on logits far from 0: only max subtraction keeps expf finite. */
  static const int sm_cols[] = {1, 2, 3, 4, 5, 7, 8, 10, 17, 100, 1000};
  for (int rows = 1; rows <= 5; rows += 2)
    for (int cj = 0; cj < COUNT(sm_cols); cj++) {
      const int c = sm_cols[cj];
      const size_t n = (size_t)rows * c;
      float *x = rand_f(n, 30.0f), *ref = alloc_f(n);
      for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * c;
        for (int j = 0; j < c; j++) xr[j] += r == 1 ? -500.0f : 500.0f;
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < c; j++) m = xr[j] > m ? xr[j] : m;
        for (int j = 0; j < c; j++) sum += exp((double)xr[j] - m);
        for (int j = 0; j < c; j++) ref[(size_t)r * c + j] = (float)(exp((double)xr[j] - m) / sum);
      }
      for (int v = 0; v < COUNT(softmax_impls); v++) {
        float *y = alloc_f(n);
        softmax_impls[v].f(rows, c, x, y);
        double rowsum_err = 0;
        for (int r = 0; r < rows; r++) {
          double s = 0;
          for (int j = 0; j < c; j++) s += y[(size_t)r * c + j];
          if (fabs(s - 1.0) > rowsum_err) rowsum_err = fabs(s - 1.0);
        }
        const float err = check_maxrel(y, ref, n);
        CHECK(err < TOL && rowsum_err < 1e-5, "softmax %s rows=%d c=%d: maxrel %g, row sum off by %g",
              softmax_impls[v].name, rows, c, err, rowsum_err);
        free(y);
      }
      free(x);
      free(ref);
    }
}

/* ---- optimiser ------------------------------------------------------------------------ */

static void test_adam(void) {
  /* Lengths around the 4-lane width; moments that flush to zero; a NaN gradient. */
  static const int lens[] = {1, 3, 4, 7, 64, 1001};
  for (int li = 0; li < COUNT(lens); li++)
    for (int dec = 0; dec < 2; dec++)
      for (int flush = 0; flush < 2; flush++) {
        const int n = lens[li];
        const tt_adam_cfg c = {0.9f,
                               0.999f,
                               1e-7f,
                               3e-3f,
                               dec ? 1e-2f : 5e-3f,
                               1.0f / (1.0f - 0.9f * 0.9f),
                               1.0f / (1.0f - 0.999f * 0.999f),
                               dec,
                               flush};
        float *w0 = rand_f(n, 1.0f), *g = rand_f(n, 0.5f), *m0 = rand_f(n, 0.1f), *v0 = alloc_f(n);
        for (int j = 0; j < n; j++) v0[j] = fabsf(frand()) * 0.01f;
        if (n > 5) {
          g[1] = 0.0f, m0[1] = 1e-31f, v0[1] = 1e-31f, w0[1] = 0.0f; /* flushed moments */
          g[4] = NAN;
        }
        float *out[COUNT(adam_impls)][3];
        for (int v = 0; v < COUNT(adam_impls); v++) {
          float *w = copy_f(w0, n), *m = copy_f(m0, n), *vv = copy_f(v0, n);
          adam_impls[v].f((size_t)n, w, g, m, vv, &c);
          out[v][0] = w, out[v][1] = m, out[v][2] = vv;
          double err = 0;
          int nan_ok = 1, flush_ok = 1;
          for (int j = 0; j < n; j++) {
            if (isnan(g[j])) {
              nan_ok &= isnan(w[j]) && isnan(m[j]) && isnan(vv[j]);
              continue;
            }
            double gj = g[j] + (dec ? 0.0 : (double)c.wd * w0[j]);
            double mj = 0.9 * m0[j] + 0.1 * gj, vj = 0.999 * v0[j] + 0.001 * gj * gj;
            if (flush && fabs(mj) < 1e-30) mj = 0;
            if (flush && vj < 1e-30) vj = 0;
            if (n > 5 && j == 1) /* flushed: exactly 0; else tiny moments and a tiny step */
              flush_ok &= flush ? m[j] == 0.0f && vv[j] == 0.0f && w[j] == 0.0f
                                : m[j] != 0.0f && vv[j] != 0.0f && fabsf(w[j]) < 1e-20f;
            double upd = mj * c.ibc1 / (sqrt(vj * c.ibc2) + c.eps) + (dec ? (double)c.wd * w0[j] : 0.0);
            double want = w0[j] - (double)c.lr * upd;
            /* relative to the terms of w0 - lr*upd, which can cancel */
            double e = fabs(w[j] - want) / (fabs(w0[j]) + fabs((double)c.lr * upd) + 1e-6);
            /* m relative to its terms: it can cancel to near zero */
            const double em = fabs(m[j] - mj) / (0.9 * fabs(m0[j]) + 0.1 * fabs(gj) + 1e-6);
            e = e > em ? e : em;
            if (e > err) err = e;
          }
          CHECK(err < 1e-5 && nan_ok && flush_ok, "adam %s n=%d decoupled=%d flush=%d: maxrel %g%s%s",
                adam_impls[v].name, n, dec, flush, err, nan_ok ? "" : ", NaN lost",
                flush_ok ? "" : ", flushed when it should not be or not when it should");
        }
        /* The SIMD version is the scalar one four lanes at a time: bit for bit equal. */
        for (int v = 1; v < COUNT(adam_impls); v++)
          for (int k = 0; k < 3; k++)
            CHECK(memcmp(out[v][k], out[0][k], (size_t)n * sizeof(float)) == 0,
                  "adam %s n=%d decoupled=%d: array %d differs from scalar", adam_impls[v].name, n, dec, k);
        for (int v = 0; v < COUNT(adam_impls); v++) free(out[v][0]), free(out[v][1]), free(out[v][2]);
        free(w0), free(g), free(m0), free(v0);
      }
}

/* ---- gate.c: hard activations, global mean, channel gate ------------------------------ */

typedef void (*hard_fn)(size_t, const float *, float, float, float *);
typedef void (*hard_bwd_fn)(size_t, const float *, float, float, const float *, float *);
typedef void (*mean_fn)(int, int, int, const float *, float *);
typedef void (*gate_fn)(int, int, int, const float *, const float *, float *);
typedef void (*gate_bwd_fn)(int, int, int, const float *, const float *, const float *, float *, float *);
static const struct {
  const char *name;
  hard_fn f;
} hswish_impls[] = IMPLS(tt_hswish);
static const struct {
  const char *name;
  hard_fn f;
} hsigmoid_impls[] = IMPLS(tt_hsigmoid);
static const struct {
  const char *name;
  hard_bwd_fn f;
} hswish_bwd_impls[] = IMPLS(tt_hswish_backward);
static const struct {
  const char *name;
  hard_bwd_fn f;
} hsigmoid_bwd_impls[] = IMPLS(tt_hsigmoid_backward);
static const struct {
  const char *name;
  mean_fn f;
} mean_impls[] = IMPLS(tt_mean);
static const struct {
  const char *name;
  mean_fn f;
} mean_bwd_impls[] = IMPLS(tt_mean_backward);
static const struct {
  const char *name;
  gate_fn f;
} gate_impls[] = IMPLS(tt_gate);
static const struct {
  const char *name;
  gate_bwd_fn f;
} gate_bwd_impls[] = IMPLS(tt_gate_backward);
typedef void (*prelu_fn)(size_t, int, const float *, const float *, float *);
typedef void (*prelu_bwd_fn)(size_t, int, const float *, const float *, const float *, float *, float *);
static const struct {
  const char *name;
  prelu_fn f;
} prelu_impls[] = IMPLS(tt_prelu);
static const struct {
  const char *name;
  prelu_bwd_fn f;
} prelu_bwd_impls[] = IMPLS(tt_prelu_backward);

static double relu6_d(double v) { return v < 0 ? 0 : v > 6 ? 6 : v; }

typedef struct {
  size_t n;
  float a, b;
  const float *x, *s;
  int hsig, imgs, hw, c;
} hard_ctx;
static void eval_hard(const void *p, float *y) {
  const hard_ctx *k = p;
  (k->hsig ? tt_hsigmoid_scalar : tt_hswish_scalar)(k->n, k->x, k->a, k->b, y);
}
static void eval_mean(const void *p, float *y) {
  const hard_ctx *k = p;
  tt_mean_scalar(k->imgs, k->hw, k->c, k->x, y);
}
static void eval_gate(const void *p, float *y) {
  const hard_ctx *k = p;
  tt_gate_scalar(k->imgs, k->hw, k->c, k->x, k->s, y);
}
static void eval_prelu(const void *p, float *y) {
  const hard_ctx *k = p;
  tt_prelu_scalar((size_t)k->hw, k->c, k->x, k->s, y);
}

static void test_gate_kernels(void) {
  /* The graph's constants: 1/6 as float16 stores it, and 3. Inputs span both kinks. */
  const float a = 0.1666259765625f, b = 3.0f;
  static const size_t lens[] = {1, 3, 4, 7, 64, 1001};
  for (int li = 0; li < COUNT(lens); li++) {
    const size_t n = lens[li];
    float *x = rand_f(n, 8.0f), *dy = rand_f(n, 1.0f), *y = alloc_f(n), *ref = alloc_f(n);
    float *dx0 = rand_f(n, 1.0f), *dx = alloc_f(n), *rdx = alloc_f(n);
    if (n > 3) x[0] = -3.0f, x[1] = 3.0f, x[2] = 0.0f; /* the kinks */
    for (int hsig = 0; hsig < 2; hsig++) {
      for (size_t i = 0; i < n; i++) {
        const double t = (double)x[i] + b;
        ref[i] = (float)(hsig ? relu6_d(t) * a : (double)x[i] * a * relu6_d(t));
        const double d = hsig ? (t > 0 && t < 6 ? a : 0) : a * relu6_d(t) + (t > 0 && t < 6 ? a * (double)x[i] : 0);
        rdx[i] = (float)(dx0[i] + dy[i] * d);
      }
      for (int v = 0; v < COUNT(hswish_impls); v++) {
        (hsig ? hsigmoid_impls[v].f : hswish_impls[v].f)(n, x, a, b, y);
        float err = check_maxrel(y, ref, n);
        CHECK(err < TOL, "%s %s n=%zu: maxrel %g", hsig ? "hsigmoid" : "hswish", hswish_impls[v].name, n, err);
        memcpy(dx, dx0, n * sizeof *dx);
        (hsig ? hsigmoid_bwd_impls[v].f : hswish_bwd_impls[v].f)(n, x, a, b, dy, dx);
        err = check_maxrel(dx, rdx, n);
        CHECK(err < TOL, "%s_backward %s n=%zu: maxrel %g", hsig ? "hsigmoid" : "hswish", hswish_impls[v].name, n, err);
      }
      /* finite differences, away from the kinks (where a difference straddles one) */
      float *xs = copy_f(x, n), *fd = alloc_f(n), *an = alloc_f(n);
      for (size_t i = 0; i < n; i++)
        if (fabsf(xs[i] + b) < 0.01f || fabsf(xs[i] + b - 6.0f) < 0.01f) xs[i] += 0.05f;
      hard_ctx k = {n, a, b, xs, NULL, hsig, 0, 0, 0};
      fd_grad(eval_hard, &k, xs, n, dy, y, n, fd);
      memset(an, 0, n * sizeof *an);
      (hsig ? tt_hsigmoid_backward : tt_hswish_backward)(n, xs, a, b, dy, an);
      const float err = check_maxrel(an, fd, n);
      CHECK(err < FD_TOL, "%s_backward vs finite differences n=%zu: maxrel %g", hsig ? "hsigmoid" : "hswish", n, err);
      free(xs), free(fd), free(an);
    }
    free(x), free(dy), free(y), free(ref), free(dx0), free(dx), free(rdx);
  }
  /* mean and gate: images x pixels x channels around the 4-lane boundary */
  static const int shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {1, 49, 8}, {3, 16, 13}, {2, 64, 72}};
  for (int si = 0; si < COUNT(shapes); si++) {
    const int imgs = shapes[si][0], hw = shapes[si][1], c = shapes[si][2];
    const size_t nx = (size_t)imgs * hw * c, ns = (size_t)imgs * c;
    float *x = rand_f(nx, 2.0f), *s = rand_f(ns, 1.0f), *gy = rand_f(nx, 1.0f), *gs = rand_f(ns, 1.0f);
    float *y = alloc_f(nx), *ref = alloc_f(nx), *m = alloc_f(ns), *rm = alloc_f(ns);
    float *dx0 = rand_f(nx, 1.0f), *ds0 = rand_f(ns, 1.0f), *dx = alloc_f(nx), *ds = alloc_f(ns);
    float *rdx = alloc_f(nx), *rds = alloc_f(ns), *rmdx = alloc_f(nx);
    for (int bi = 0; bi < imgs; bi++)
      for (int j = 0; j < c; j++) {
        double sum = 0, sds = ds0[(size_t)bi * c + j];
        for (int p = 0; p < hw; p++) {
          const size_t o = ((size_t)bi * hw + p) * c + j;
          sum += x[o];
          ref[o] = (float)((double)x[o] * s[(size_t)bi * c + j]);
          rdx[o] = (float)(dx0[o] + (double)gy[o] * s[(size_t)bi * c + j]);
          rmdx[o] = (float)(dx0[o] + (double)gs[(size_t)bi * c + j] / hw);
          sds += (double)gy[o] * x[o];
        }
        rm[(size_t)bi * c + j] = (float)(sum / hw);
        rds[(size_t)bi * c + j] = (float)sds;
      }
    for (int v = 0; v < COUNT(mean_impls); v++) {
      mean_impls[v].f(imgs, hw, c, x, m);
      float err = check_maxrel(m, rm, ns);
      CHECK(err < TOL, "mean %s %dx%dx%d: maxrel %g", mean_impls[v].name, imgs, hw, c, err);
      memcpy(dx, dx0, nx * sizeof *dx);
      mean_bwd_impls[v].f(imgs, hw, c, gs, dx);
      err = check_maxrel(dx, rmdx, nx);
      CHECK(err < TOL, "mean_backward %s %dx%dx%d: maxrel %g", mean_impls[v].name, imgs, hw, c, err);
      gate_impls[v].f(imgs, hw, c, x, s, y);
      err = check_maxrel(y, ref, nx);
      CHECK(err < TOL, "gate %s %dx%dx%d: maxrel %g", gate_impls[v].name, imgs, hw, c, err);
      memcpy(dx, dx0, nx * sizeof *dx), memcpy(ds, ds0, ns * sizeof *ds);
      gate_bwd_impls[v].f(imgs, hw, c, x, s, gy, dx, ds);
      err = check_maxrel(dx, rdx, nx);
      float err2 = check_maxrel(ds, rds, ns);
      CHECK(err < TOL && err2 < TOL, "gate_backward %s %dx%dx%d: dx maxrel %g, ds maxrel %g", gate_bwd_impls[v].name,
            imgs, hw, c, err, err2);
      gate_bwd_impls[v].f(imgs, hw, c, x, s, gy, NULL, ds); /* either gradient may be unwanted */
      gate_bwd_impls[v].f(imgs, hw, c, x, s, gy, dx, NULL);
    }
    if (nx <= 2000) { /* finite differences of the scalar forwards */
      float *fd = alloc_f(nx), *an = alloc_f(nx), *ym = alloc_f(ns);
      hard_ctx k = {0, 0, 0, x, s, 0, imgs, hw, c};
      fd_grad(eval_mean, &k, x, nx, gs, ym, ns, fd);
      memset(an, 0, nx * sizeof *an);
      tt_mean_backward(imgs, hw, c, gs, an);
      float err = check_maxrel(an, fd, nx);
      CHECK(err < FD_TOL, "mean_backward vs finite differences %dx%dx%d: maxrel %g", imgs, hw, c, err);
      fd_grad(eval_gate, &k, x, nx, gy, y, nx, fd);
      memset(an, 0, nx * sizeof *an);
      tt_gate_backward(imgs, hw, c, x, s, gy, an, NULL);
      err = check_maxrel(an, fd, nx);
      CHECK(err < FD_TOL, "gate_backward dx vs finite differences %dx%dx%d: maxrel %g", imgs, hw, c, err);
      fd_grad(eval_gate, &k, s, ns, gy, y, nx, fd);
      memset(an, 0, ns * sizeof *an);
      tt_gate_backward(imgs, hw, c, x, s, gy, NULL, an);
      err = check_maxrel(an, fd, ns);
      CHECK(err < FD_TOL, "gate_backward ds vs finite differences %dx%dx%d: maxrel %g", imgs, hw, c, err);
      free(fd), free(an), free(ym);
    }
    free(x), free(s), free(gy), free(gs), free(y), free(ref), free(m), free(rm);
    free(dx0), free(ds0), free(dx), free(ds), free(rdx), free(rds), free(rmdx);
  }
  /* PReLU: rows x channels, a slope per channel */
  static const int pr[][2] = {{1, 1}, {3, 5}, {7, 8}, {16, 13}, {40, 64}};
  for (int si = 0; si < COUNT(pr); si++) {
    const int rows = pr[si][0], c = pr[si][1];
    const size_t nx = (size_t)rows * c;
    float *x = rand_f(nx, 2.0f), *al = rand_f((size_t)c, 0.5f), *gy = rand_f(nx, 1.0f);
    float *y = alloc_f(nx), *ref = alloc_f(nx), *dx0 = rand_f(nx, 1.0f), *dx = alloc_f(nx), *rdx = alloc_f(nx);
    float *da0 = rand_f((size_t)c, 1.0f), *da = alloc_f((size_t)c), *rda = copy_f(da0, (size_t)c);
    x[0] = 0.0f; /* the kink: the slope side, as x <= 0 */
    for (size_t i = 0; i < nx; i++) {
      const int j = (int)(i % (size_t)c);
      ref[i] = x[i] > 0 ? x[i] : (float)((double)al[j] * x[i]);
      rdx[i] = (float)(dx0[i] + (x[i] > 0 ? (double)gy[i] : (double)gy[i] * al[j]));
    }
    for (int j = 0; j < c; j++) {
      double a = da0[j];
      for (int r = 0; r < rows; r++)
        if (!(x[(size_t)r * c + j] > 0)) a += (double)gy[(size_t)r * c + j] * x[(size_t)r * c + j];
      rda[j] = (float)a;
    }
    for (int v = 0; v < COUNT(prelu_impls); v++) {
      prelu_impls[v].f((size_t)rows, c, x, al, y);
      float err = check_maxrel(y, ref, nx);
      CHECK(err < TOL, "prelu %s %dx%d: maxrel %g", prelu_impls[v].name, rows, c, err);
      memcpy(dx, dx0, nx * sizeof *dx), memcpy(da, da0, (size_t)c * sizeof *da);
      prelu_bwd_impls[v].f((size_t)rows, c, x, al, gy, dx, da);
      err = check_maxrel(dx, rdx, nx);
      const float err2 = check_maxrel(da, rda, (size_t)c);
      CHECK(err < TOL && err2 < TOL, "prelu_backward %s %dx%d: dx maxrel %g, dalpha maxrel %g", prelu_bwd_impls[v].name,
            rows, c, err, err2);
      prelu_bwd_impls[v].f((size_t)rows, c, x, al, gy, NULL, da); /* no dx wanted */
    }
    /* finite differences, away from the kink */
    x[0] = 0.5f;
    for (size_t i = 0; i < nx; i++)
      if (fabsf(x[i]) < 0.01f) x[i] = 0.05f;
    float *fd = alloc_f(nx), *an = alloc_f(nx);
    hard_ctx k = {0, 0, 0, x, al, 0, 1, rows, c};
    fd_grad(eval_prelu, &k, x, nx, gy, y, nx, fd);
    memset(an, 0, nx * sizeof *an);
    float *sink = alloc_f((size_t)c);
    memset(sink, 0, (size_t)c * sizeof *sink);
    tt_prelu_backward((size_t)rows, c, x, al, gy, an, sink);
    float err = check_maxrel(an, fd, nx);
    CHECK(err < FD_TOL, "prelu_backward dx vs finite differences %dx%d: maxrel %g", rows, c, err);
    fd_grad(eval_prelu, &k, al, (size_t)c, gy, y, nx, fd);
    memset(an, 0, (size_t)c * sizeof *an);
    tt_prelu_backward((size_t)rows, c, x, al, gy, NULL, an);
    err = check_maxrel(an, fd, (size_t)c);
    CHECK(err < FD_TOL, "prelu_backward dalpha vs finite differences %dx%d: maxrel %g", rows, c, err);
    free(fd), free(an), free(sink);
    free(x), free(al), free(gy), free(y), free(ref), free(dx0), free(dx), free(rdx), free(da0), free(da), free(rda);
  }
}

/* Half precision: every code survives a round trip; floats round to the nearest code
   (ties to even), within 2^-11 relative in the normal range; out of range is infinity. */
static void test_half(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    const float f = tt_f16_to_f32((uint16_t)h);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
      bad += !(f != f) || (tt_f16_from_f32(f) & 0x7e00) != 0x7e00;
    else
      bad += tt_f16_from_f32(f) != h;
  }
  CHECK(bad == 0, "%d half codes do not survive a round trip", bad);
  /* halfway between two codes: to the even one */
  for (uint32_t h = 0x0001; h < 0x7bff; h += 97) {
    const float a = tt_f16_to_f32((uint16_t)h), b = tt_f16_to_f32((uint16_t)(h + 1));
    const float mid = a + (b - a) * 0.5f; /* exact: one more bit than a half has */
    const uint16_t want = (uint16_t)(h & 1 ? h + 1 : h);
    bad += tt_f16_from_f32(mid) != want || tt_f16_from_f32(-mid) != (want | 0x8000);
  }
  CHECK(bad == 0, "%d ties not rounded to even", bad);
  uint32_t rng = 5;
  double worst = 0;
  for (int i = 0; i < 100000; i++) {
    rng = rng * 1664525u + 1013904223u;
    const float u = 1 + (float)(rng >> 8) / 16777216.0f; /* [1, 2): the normal range */
    rng = rng * 1664525u + 1013904223u;
    const float f = (rng & 1 ? -u : u) * ldexpf(1.0f, (int)(rng >> 27) % 29 - 14);
    const float g = tt_f16_to_f32(tt_f16_from_f32(f));
    const double rel = f ? fabs((double)g - f) / fabs((double)f) : 0;
    worst = rel > worst ? rel : worst;
  }
  CHECK(worst <= ldexp(1, -11), "half rounding error %g > 2^-11", worst);
  CHECK(tt_f16_from_f32(65504.0f) == 0x7bff && tt_f16_from_f32(65519.0f) == 0x7bff &&
            tt_f16_from_f32(65520.0f) == 0x7c00 && tt_f16_from_f32(-1e9f) == 0xfc00,
        "half range: %04x %04x %04x", tt_f16_from_f32(65504.0f), tt_f16_from_f32(65519.0f), tt_f16_from_f32(65520.0f));
  CHECK(tt_f16_from_f32(ldexpf(1.0f, -25)) == 0 && tt_f16_from_f32(ldexpf(1.5f, -25)) == 1 &&
            tt_f16_from_f32(-0.0f) == 0x8000,
        "half: tiny values");
}

int main(void) {
  build_cases();
  test_gate_kernels();
  test_gemm();
  test_qgemm();
  test_dwconv();
  test_dwconv_backward();
  test_avgpool();
  test_conv2d();
  test_finite_differences();
  test_eltwise();
  test_adam();
  test_half();
  return check_report("kernels");
}
