/* A kernel micro-benchmark exported from the engine build itself, so bench/bench.mjs can
   report the GFLOP/s of the exact code users run (plain and relaxed SIMD builds) beside
   tfjs-wasm's kernels, timed from JS (a standalone module has no clock of its own). Not
   used by the engine; allocates, unlike the kernels. */
#ifdef __EMSCRIPTEN__
#include <stdlib.h>
#include "kernels.h"

static float *filled(size_t n) {
  float *p = malloc(n * sizeof *p);
  if (p)
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  return p;
}

/* kind 0: C[a,b] = relu6(A[a,c] B[c,b] + bias), the pointwise-convolution GEMM.
   kind 1: 3x3 depthwise, SAME, relu6, on an a x a x b image with stride c.
   kind 2: 3x3 convolution, SAME, relu6, a x a x 3 -> b channels, stride c (the stem).
   kind 3: kind 0 by 8-bit weight codes (tt_qgemm), as frozen pointwise layers run.
   kind 4: the same layer's weight gradient in training, C[c,b] = A[a,c]^T G[a,b].
   kind 5: its input gradient, C[a,c] += G[a,b] W[c,b]^T.
   reps = 0 allocates and fills the operands (kept for the next calls, so timing them
   measures the kernel alone); reps > 0 runs the kernel that many times on them. Returns
   0, or -1 when out of memory, the kind is unknown or nothing was set up. */
static struct {
  int kind;
  tt_shape s;
  int a, b, c;
  float *x, *w, *y, *bias;
  int16_t *q;
  tt_qmat qm;
} mb;

__attribute__((export_name("tt_bench_kernel"))) int tt_bench_kernel(int kind, int a, int b, int c, int reps) {
  if (reps > 0) {
    if (!mb.x || mb.kind != kind || mb.a != a || mb.b != b || mb.c != c) return -1;
    for (int r = 0; r < reps; r++) {
      if (kind == 0)
        tt_gemm(0, 0, a, b, c, mb.x, c, mb.w, b, mb.y, b, 0, mb.bias, TT_ACT_RELU6);
      else if (kind == 3)
        tt_qgemm(a, &mb.qm, mb.x, c, mb.y, b, 0, mb.bias, TT_ACT_RELU6);
      else if (kind == 4)
        tt_gemm(1, 0, c, b, a, mb.x, c, mb.w, b, mb.y, b, 0, NULL, TT_ACT_NONE);
      else if (kind == 5)
        tt_gemm(0, 1, a, c, b, mb.w, b, mb.x, b, mb.y, c, 1, NULL, TT_ACT_NONE);
      else if (kind == 1)
        tt_dwconv(&mb.s, mb.x, mb.w, mb.bias, TT_ACT_RELU6, mb.y);
      else
        tt_conv2d(&mb.s, mb.x, mb.w, mb.bias, TT_ACT_RELU6, mb.y);
    }
    return 0;
  }
  free(mb.x), free(mb.w), free(mb.y), free(mb.bias), free(mb.q);
  mb.x = mb.w = mb.y = mb.bias = NULL, mb.q = NULL;
  tt_shape s = {1, a, a, kind == 2 ? 3 : b, 3, 3, c, c, 0, 0, 0, 0, 0};
  size_t nx, nw, ny, nb;
  if (kind == 0 || kind == 3) {
    if (kind == 3 && c > TT_QGEMM_MAX_K) return -1;
    /* kind 3: w holds the per-column factors wb, wsum (padded), not weights */
    nx = (size_t)a * c, nw = kind == 0 ? (size_t)c * b : 2 * ((size_t)b + 8), ny = (size_t)a * b, nb = (size_t)b;
  } else if (kind == 4 || kind == 5) {
    /* kind 4: x = A [a,c], w = G [a,b]; kind 5: w = G [a,b], x = W [c,b] */
    nx = kind == 4 ? (size_t)a * c : (size_t)c * b, nw = (size_t)a * b;
    ny = kind == 4 ? (size_t)c * b : (size_t)a * c, nb = 1;
  } else if (kind == 1 || kind == 2) {
    s.oh = s.ow = (a + c - 1) / c;
    const int pad = (s.oh - 1) * c + 3 - a;
    s.pt = s.pl = pad > 0 ? pad / 2 : 0;
    s.oc = b;
    nx = (size_t)a * a * s.c, nw = (size_t)9 * s.c * (kind == 1 ? 1 : (size_t)b);
    ny = (size_t)s.oh * s.ow * s.oc, nb = (size_t)s.oc;
  } else {
    return -1;
  }
  mb.kind = kind, mb.s = s, mb.a = a, mb.b = b, mb.c = c;
  mb.x = filled(nx), mb.w = filled(nw), mb.y = filled(ny), mb.bias = filled(nb);
  if (!mb.x || !mb.w || !mb.y || !mb.bias) return -1;
  if (kind == 3) {
    int16_t *codes = malloc((size_t)c * b * sizeof *codes);
    mb.q = malloc(tt_qpack_size(c, b) * sizeof *mb.q);
    if (!codes || !mb.q) {
      free(codes);
      return -1;
    }
    for (size_t i = 0; i < (size_t)c * b; i++) codes[i] = (int16_t)((i * 2654435761u) >> 24) - 128;
    const int qmax = tt_qpack(c, b, codes, mb.q);
    free(codes);
    mb.qm = (tt_qmat){c, b, qmax, mb.q, mb.w, mb.w + b + 8};
  }
  return 0;
}
#endif
