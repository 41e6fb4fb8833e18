/* Optimiser updates, one parameter tensor at a time (see kernels.h).

   Adam over the head's ~180k parameters runs once per batch, and with M = 16 the GEMMs
   of a step are short, so the update was the largest cost of head training (about half
   of it, scalar). Per element it is a division and a square root, which SIMD does four
   at a time. The scalar and SIMD versions perform the same IEEE operations in the same
   order, so they agree bit for bit (no FMA contraction: wasm has none, and the native
   build targets baseline x86-64). */
#include <math.h>
#include "kernels.h"
#include "threads.h"
#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

/* Moments of gradients that stay zero (dead ReLUs) decay into denormals, which run tens
   of times slower on x86 (in wasm and natively): they are flushed to zero. Not on every
   step (c->flush): the test costs about a fifth of the loop, and a moment needs 175
   steps at b1 = 0.9 (far more at b2) to decay from TINY to the denormal range. */
#define TINY 1e-30f

void tt_adam_scalar(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c) {
  const float c1 = 1.0f - c->b1, c2 = 1.0f - c->b2;
  for (size_t j = 0; j < n; j++) {
    float gj = g[j];
    if (!c->decoupled) gj += c->wd * w[j];
    float mj = c->b1 * m[j] + c1 * gj, vj = c->b2 * v[j] + (c2 * gj) * gj;
    if (c->flush) {
      mj = fabsf(mj) < TINY ? 0.0f : mj;
      vj = vj < TINY ? 0.0f : vj;
    }
    m[j] = mj, v[j] = vj;
    float upd = (mj * c->ibc1) / (sqrtf(vj * c->ibc2) + c->eps);
    if (c->decoupled) upd += c->wd * w[j];
    w[j] -= c->lr * upd;
  }
}

#ifdef __wasm_simd128__
/* One body, instantiated per (decoupled, flush) so that neither test is in the loop. */
static inline __attribute__((always_inline)) void adam_simd_body(size_t n, float *w, const float *g, float *m, float *v,
                                                                 const tt_adam_cfg *c, const int decoupled,
                                                                 const int flush) {
  const v128_t b1 = wasm_f32x4_splat(c->b1), b2 = wasm_f32x4_splat(c->b2);
  const v128_t c1 = wasm_f32x4_splat(1.0f - c->b1), c2 = wasm_f32x4_splat(1.0f - c->b2);
  const v128_t ibc1 = wasm_f32x4_splat(c->ibc1), ibc2 = wasm_f32x4_splat(c->ibc2);
  const v128_t eps = wasm_f32x4_splat(c->eps), lr = wasm_f32x4_splat(c->lr);
  const v128_t wd = wasm_f32x4_splat(c->wd), tiny = wasm_f32x4_splat(TINY);
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const v128_t wj = wasm_v128_load(w + j);
    v128_t gj = wasm_v128_load(g + j);
    if (!decoupled) gj = wasm_f32x4_add(gj, wasm_f32x4_mul(wd, wj));
    v128_t mj = wasm_f32x4_add(wasm_f32x4_mul(b1, wasm_v128_load(m + j)), wasm_f32x4_mul(c1, gj));
    v128_t vj = wasm_f32x4_add(wasm_f32x4_mul(b2, wasm_v128_load(v + j)), wasm_f32x4_mul(wasm_f32x4_mul(c2, gj), gj));
    if (flush) { /* x < TINY is false for NaN, which survives as in the scalar version */
      mj = wasm_v128_andnot(mj, wasm_f32x4_lt(wasm_f32x4_abs(mj), tiny));
      vj = wasm_v128_andnot(vj, wasm_f32x4_lt(vj, tiny));
    }
    wasm_v128_store(m + j, mj);
    wasm_v128_store(v + j, vj);
    v128_t upd =
        wasm_f32x4_div(wasm_f32x4_mul(mj, ibc1), wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_mul(vj, ibc2)), eps));
    if (decoupled) upd = wasm_f32x4_add(upd, wasm_f32x4_mul(wd, wj));
    wasm_v128_store(w + j, wasm_f32x4_sub(wj, wasm_f32x4_mul(lr, upd)));
  }
  if (j < n) tt_adam_scalar(n - j, w + j, g + j, m + j, v + j, c);
}

void tt_adam_simd(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c) {
  /* (decoupled, flush) as constants in each instance: no test inside the loop */
#define ADAM_CASE(d, f)                                                                                                \
  if (c->decoupled == d && !!c->flush == f) {                                                                          \
    adam_simd_body(n, w, g, m, v, c, d, f);                                                                            \
    return;                                                                                                            \
  }
  ADAM_CASE(1, 0) ADAM_CASE(1, 1) ADAM_CASE(0, 0) ADAM_CASE(0, 1)
#undef ADAM_CASE
}
#endif

static void adam_1(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c) {
#ifdef __wasm_simd128__
  tt_adam_simd(n, w, g, m, v, c);
#else
  tt_adam_scalar(n, w, g, m, v, c);
#endif
}

/* Across threads: slices of the parameters (per element, the update is the same
   arithmetic in any slice). */
typedef struct {
  size_t n, step;
  float *w, *m, *v;
  const float *g;
  const tt_adam_cfg *c;
} adam_split;

static void adam_task(void *ctx, int t) {
  const adam_split *a = ctx;
  const size_t lo = (size_t)t * a->step, len = a->n - lo < a->step ? a->n - lo : a->step;
  adam_1(len, a->w + lo, a->g + lo, a->m + lo, a->v + lo, a->c);
}

void tt_adam(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c) {
  const int T = tt_threads();
  if (T > 1 && n >= 16384) {
    /* a few slices a thread, taken by whichever thread is free (see tt_gemm_cut) */
    adam_split a = {n, ((n + 3 * (size_t)T - 1) / (3 * (size_t)T) + 3) & ~(size_t)3, w, m, v, g, c};
    tt_parallel((int)((n + a.step - 1) / a.step), adam_task, &a);
    return;
  }
  adam_1(n, w, g, m, v, c);
}
