/* Kernel micro-benchmark: GFLOP/s of the scalar and (in a -msimd128 WASM build) SIMD
   kernels on MobileNetV2-sized layers. Not part of the build. An optional argument sets
   the seconds spent per measurement (default 0.3). Build and run, from the repo root: */
// native: gcc -O2 -std=c99 -Isrc bench/kernels_bench.c src/kernels/*.c -lm -o build/kernels_bench
//         build/kernels_bench
// wasm:   emcc -O3 -std=c99 -Isrc -msimd128 -sSTANDALONE_WASM -sALLOW_MEMORY_GROWTH=1
//           bench/kernels_bench.c src/kernels/*.c -o build/kernels_bench.wasm
//         node --no-warnings -e "const {WASI}=require('node:wasi'),fs=require('fs');
//           const w=new WASI({version:'preview1',args:['bench'],env:{},returnOnExit:true});
//           const m=new WebAssembly.Module(fs.readFileSync('build/kernels_bench.wasm'));
//           const imp={wasi_snapshot_preview1:w.wasiImport};
//           for(const i of WebAssembly.Module.imports(m))if(i.module!=='wasi_snapshot_preview1')
//             (imp[i.module]??={})[i.name]=()=>0;
//           process.exitCode=w.start(new WebAssembly.Instance(m,imp));"
//         (a standalone module: its non-WASI imports only notify, so they are stubbed)
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kernels/kernels.h"

static double min_seconds = 0.3;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *buf(size_t n) {
  float *p = malloc(n * sizeof *p);
  if (!p) {
    fprintf(stderr, "kernels_bench: out of memory\n");
    exit(2);
  }
  for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  return p;
}

/* Everything a timed call needs; `run` dispatches on `kind`. Function pointers keep the
   compiler from hoisting work out of the timing loop. */
typedef void (*gemm_fn)(int, int, int, int, int, const float *, int, const float *, int,
                        float *, int, int, const float *, int);
typedef void (*spatial_fn)(const tt_shape *, const float *, const float *, const float *,
                           int, float *);
typedef void (*qgemm_fn)(int, const tt_qmat *, const float *, int, float *, int, int,
                         const float *, int);
typedef struct {
  int kind; /* 0 gemm, 1 spatial, 2 qgemm */
  gemm_fn gemm;
  qgemm_fn qgemm;
  tt_qmat q;
  spatial_fn spatial;
  int ta, tb, M, N, K;
  tt_shape s;
  const float *a, *b, *bias;
  float *c;
} job;

static void run(const job *j) {
  if (j->kind == 0) {
    const int lda = j->ta ? j->M : j->K, ldb = j->tb ? j->K : j->N;
    j->gemm(j->ta, j->tb, j->M, j->N, j->K, j->a, lda, j->b, ldb, j->c, j->N, 0, j->bias,
            TT_ACT_RELU6);
  } else if (j->kind == 2) {
    j->qgemm(j->M, &j->q, j->a, j->K, j->c, j->N, 0, j->bias, TT_ACT_RELU6);
  } else {
    j->spatial(&j->s, j->a, j->b, j->bias, TT_ACT_RELU6, j->c);
  }
}

/* Best GFLOP/s over repeated batches: the minimum time is the least disturbed one, which
   matters on a shared machine. */
static double gflops(const job *j, double flops) {
  /* Warm caches and, in V8, let the kernel tier up from Liftoff to TurboFan, which can
     take a fraction of a second; timing before that measures the baseline compiler. */
  for (const double t0 = now(); now() - t0 < 0.1;) run(j);
  double best = 1e30, spent = 0;
  int reps = 1;
  while (spent < min_seconds) {
    const double t0 = now();
    for (int r = 0; r < reps; r++) run(j);
    const double dt = (now() - t0) / reps;
    spent += dt * reps;
    if (dt < best) best = dt;
    if (dt * reps < 0.02) reps *= 2;
  }
  return flops / best * 1e-9;
}

static void bench_gemm(int ta, int tb, int M, int N, int K) {
  job j = {0};
  j.kind = 0;
  j.ta = ta, j.tb = tb, j.M = M, j.N = N, j.K = K;
  float *a = buf((size_t)M * K), *b = buf((size_t)K * N), *bias = buf((size_t)N);
  j.a = a, j.b = b, j.bias = bias;
  j.c = buf((size_t)M * N);
  const double flops = 2.0 * M * N * K;
  printf("gemm ta=%d tb=%d M=%-5d N=%-5d K=%-5d", ta, tb, M, N, K);
  j.gemm = tt_gemm_scalar;
  printf("  scalar %7.2f GFLOP/s", gflops(&j, flops));
#ifdef __wasm_simd128__
  j.gemm = tt_gemm_simd;
  printf("  simd %7.2f GFLOP/s", gflops(&j, flops));
#endif
  if (!ta && !tb && K <= TT_QGEMM_MAX_K) { /* the same product by 8-bit weight codes */
    int16_t *codes = malloc((size_t)K * N * sizeof *codes);
    int16_t *w = malloc(tt_qpack_size(K, N) * sizeof *w);
    float *wb = buf((size_t)N + 8), *ws = buf((size_t)N + 8);
    for (size_t i = 0; i < (size_t)K * N; i++) codes[i] = (int16_t)((i * 2654435761u) >> 24) - 128;
    const int qmax = tt_qpack(K, N, codes, w);
    j.kind = 2, j.q = (tt_qmat){K, N, qmax, w, wb, ws};
#ifdef __wasm_simd128__
    j.qgemm = tt_qgemm_simd;
#else
    j.qgemm = tt_qgemm_scalar;
#endif
    printf("  int16 %7.2f GFLOP/s", gflops(&j, flops));
    free(codes); free(w); free(wb); free(ws);
  }
  printf("\n");
  fflush(stdout);
  free(a); free(b); free(bias); free(j.c);
}

static void bench_spatial(const char *name, int depthwise, int h, int c, int oc, int stride) {
  job j = {0};
  j.kind = 1;
  tt_shape *s = &j.s;
  s->n = 1, s->h = h, s->w = h, s->c = c, s->kh = 3, s->kw = 3, s->sh = stride,
  s->sw = stride;
  /* TF SAME: out = ceil(in/stride), padding split with the extra row at the bottom. */
  s->oh = s->ow = (h + stride - 1) / stride;
  const int total = (s->oh - 1) * stride + 3 - h;
  s->pt = s->pl = (total > 0 ? total : 0) / 2;
  s->oc = depthwise ? c : oc;
  float *x = buf((size_t)h * h * c);
  float *w = buf((size_t)9 * c * s->oc), *bias = buf((size_t)s->oc);
  j.a = x, j.b = w, j.bias = bias;
  j.c = buf((size_t)s->oh * s->ow * s->oc);
  const double flops = 2.0 * 9 * s->oh * s->ow * s->oc * (depthwise ? 1 : c);
  printf("%-6s 3x3 s%d %3dx%3dx%-4d -> %3dx%3dx%-4d", name, stride, h, h, c, s->oh, s->ow, s->oc);
  j.spatial = depthwise ? tt_dwconv_scalar : tt_conv2d_scalar;
  printf("  scalar %7.2f GFLOP/s", gflops(&j, flops));
#ifdef __wasm_simd128__
  j.spatial = depthwise ? tt_dwconv_simd : tt_conv2d_simd;
  printf("  simd %7.2f GFLOP/s", gflops(&j, flops));
#endif
  printf("\n");
  fflush(stdout);
  free(x); free(w); free(bias); free(j.c);
}

int main(int argc, char **argv) {
  if (argc > 1 && atof(argv[1]) > 0) min_seconds = atof(argv[1]);
  /* Pointwise convolutions of MobileNetV2 (M = pixels, K = in, N = out channels). */
  bench_gemm(0, 0, 12544, 96, 16);
  /* MobileNetV2 1.4, batch 1: the largest expansion, the last blocks, a middle block. */
  bench_gemm(0, 0, 12544, 144, 24);
  bench_gemm(0, 0, 49, 1792, 448);
  bench_gemm(0, 0, 49, 448, 1344);
  bench_gemm(0, 0, 196, 816, 136);
  bench_gemm(0, 0, 3136, 192, 32);
  bench_gemm(0, 0, 784, 64, 192);
  bench_gemm(0, 0, 196, 96, 384);
  bench_gemm(0, 0, 49, 320, 960);
  bench_gemm(0, 0, 49, 1280, 320);
  /* The transposed forms used by backward passes: dW = X^T dY, dX = dY W^T. */
  bench_gemm(1, 0, 320, 1280, 49);
  bench_gemm(0, 1, 49, 320, 1280);
  bench_gemm(1, 1, 256, 256, 256);
  bench_gemm(0, 0, 256, 256, 256);
  /* Head training at batch 16, Dense(1792 -> 100): forward, weight gradient. */
  bench_gemm(0, 0, 16, 100, 1792);
  bench_gemm(1, 0, 1792, 100, 16);
  bench_gemm(0, 0, 16, 96, 1792); /* without the 4-column tail, for comparison */
  bench_gemm(1, 0, 1792, 96, 16);
  /* The classifier head on one image: a GEMV. */
  bench_gemm(0, 0, 1, 1000, 1280);
  bench_spatial("dwconv", 1, 112, 96, 0, 1);
  bench_spatial("dwconv", 1, 112, 96, 0, 2);
  bench_spatial("dwconv", 1, 28, 192, 0, 1);
  bench_spatial("dwconv", 1, 28, 192, 0, 2);
  bench_spatial("dwconv", 1, 7, 960, 0, 1);
  bench_spatial("conv", 0, 224, 3, 32, 2);
  return 0;
}
