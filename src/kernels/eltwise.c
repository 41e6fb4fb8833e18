/* Elementwise and per-row kernels. All are memory-bound; the SIMD versions exist so
   the engine does not fall back to 1-lane code between the heavy layers, and they keep
   the scalar versions' evaluation order so both give bit-identical results except in
   softmax (vector exp polynomial vs libm expf). */
#include <math.h>
#include "kernels.h"
#include "act.h"
#include "threads.h"
#include <string.h>
#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

/* Derivative gate judged from the activation's output (see kernels.h). A select, not
   a multiply by 0/1, so a blocked inf/NaN gradient becomes 0 like in the SIMD mask. */
static inline float act_grad(float y, float g, int act) {
  if (act == TT_ACT_RELU) return y > 0.0f ? g : 0.0f;
  if (act == TT_ACT_RELU6) return y > 0.0f && y < 6.0f ? g : 0.0f;
  return g;
}

/* No restrict on the elementwise kernels: y may alias an input. */
void tt_add_scalar(size_t n, const float *a, const float *b, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void tt_acc_scalar(size_t n, const float *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void tt_scale_shift_scalar(size_t n, const float *x, float a, float b, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = a * x[i] + b;
}

void tt_bias_act_scalar(int rows, int c, float *y, const float *bias, int act) {
  for (int r = 0; r < rows; r++) {
    float *restrict yr = y + (size_t)r * c;
    if (bias)
      for (int j = 0; j < c; j++) yr[j] += bias[j];
    if (act != TT_ACT_NONE)
      for (int j = 0; j < c; j++) yr[j] = act_f(yr[j], act);
  }
}

void tt_act_backward_scalar(size_t n, const float *y, float *dy, int act) {
  if (act == TT_ACT_NONE) return;
  for (size_t i = 0; i < n; i++) dy[i] = act_grad(y[i], dy[i], act);
}

void tt_bias_backward_scalar(int rows, int c, const float *dy, float *db) {
  /* Row-major walk: dy is read once, sequentially, and db stays in cache. */
  for (int r = 0; r < rows; r++) {
    const float *restrict g = dy + (size_t)r * c;
    for (int j = 0; j < c; j++) db[j] += g[j];
  }
}

void tt_softmax_scalar(int rows, int c, const float *x, float *y) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    float m = -INFINITY;
    for (int j = 0; j < c; j++) m = xr[j] > m ? xr[j] : m;
    float sum = 0.0f;
    for (int j = 0; j < c; j++) {
      const float e = expf(xr[j] - m);
      yr[j] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < c; j++) yr[j] *= inv;
  }
}

#ifdef __wasm_simd128__
void tt_add_simd(size_t n, const float *a, const float *b, float *y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  for (; i < n; i++) y[i] = a[i] + b[i];
}

void tt_acc_simd(size_t n, const float *x, float *y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_v128_load(x + i)));
  for (; i < n; i++) y[i] += x[i];
}

void tt_scale_shift_simd(size_t n, const float *x, float a, float b, float *y) {
  const v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_f32x4_mul(va, wasm_v128_load(x + i)), vb));
  for (; i < n; i++) y[i] = a * x[i] + b;
}

void tt_bias_act_simd(int rows, int c, float *y, const float *bias, int act) {
  for (int r = 0; r < rows; r++) {
    float *yr = y + (size_t)r * c;
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      v128_t v = wasm_v128_load(yr + j);
      if (bias) v = wasm_f32x4_add(v, wasm_v128_load(bias + j));
      v = act_v(v, act);
      wasm_v128_store(yr + j, v);
    }
    for (; j < c; j++) yr[j] = act_f(bias ? yr[j] + bias[j] : yr[j], act);
  }
}

void tt_act_backward_simd(size_t n, const float *y, float *dy, int act) {
  if (act == TT_ACT_NONE) return;
  const v128_t zero = wasm_f32x4_splat(0.0f), six = wasm_f32x4_splat(6.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(y + i);
    v128_t m = wasm_f32x4_gt(v, zero);
    if (act == TT_ACT_RELU6) m = wasm_v128_and(m, wasm_f32x4_lt(v, six));
    wasm_v128_store(dy + i, wasm_v128_and(wasm_v128_load(dy + i), m));
  }
  for (; i < n; i++) dy[i] = act_grad(y[i], dy[i], act);
}

void tt_bias_backward_simd(int rows, int c, const float *dy, float *db) {
  for (int r = 0; r < rows; r++) {
    const float *g = dy + (size_t)r * c;
    int j = 0;
    for (; j + 4 <= c; j += 4) wasm_v128_store(db + j, wasm_f32x4_add(wasm_v128_load(db + j), wasm_v128_load(g + j)));
    for (; j < c; j++) db[j] += g[j];
  }
}

/* exp for x <= 88 (softmax feeds x - max <= 0): Cephes' expf, x = n ln2 + r with a
   degree-6 polynomial for e^r, about 2 ulp. Inputs below -87.3 are clamped so 2^n
   stays a normal float; the result there (~1e-38) is as good as 0 for softmax. */
static inline v128_t exp_v(v128_t x) {
  x = wasm_f32x4_pmax(x, wasm_f32x4_splat(-87.33654f));
  x = wasm_f32x4_pmin(x, wasm_f32x4_splat(88.0f));
  const v128_t fx = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  /* ln2 split in two so fx*ln2_hi is exact and r keeps its low bits. */
  x = wasm_f32x4_sub(x, wasm_f32x4_mul(fx, wasm_f32x4_splat(0.693359375f)));
  x = wasm_f32x4_sub(x, wasm_f32x4_mul(fx, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x), wasm_f32x4_splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x), wasm_f32x4_splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x), wasm_f32x4_splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x), wasm_f32x4_splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x), wasm_f32x4_splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, x), x), x);
  p = wasm_f32x4_add(p, wasm_f32x4_splat(1.0f));
  const v128_t n = wasm_i32x4_trunc_sat_f32x4(fx);
  const v128_t pow2n = wasm_i32x4_shl(wasm_i32x4_add(n, wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, pow2n);
}

void tt_softmax_simd(int rows, int c, const float *x, float *y) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    v128_t vm = wasm_f32x4_splat(-INFINITY);
    int j = 0;
    for (; j + 4 <= c; j += 4) vm = wasm_f32x4_pmax(vm, wasm_v128_load(xr + j));
    vm = wasm_f32x4_pmax(vm, wasm_i32x4_shuffle(vm, vm, 2, 3, 0, 1));
    vm = wasm_f32x4_pmax(vm, wasm_i32x4_shuffle(vm, vm, 1, 0, 3, 2));
    float m = wasm_f32x4_extract_lane(vm, 0);
    for (; j < c; j++) m = xr[j] > m ? xr[j] : m;
    const v128_t vmax = wasm_f32x4_splat(m);
    v128_t vs = wasm_f32x4_splat(0.0f);
    for (j = 0; j + 4 <= c; j += 4) {
      const v128_t e = exp_v(wasm_f32x4_sub(wasm_v128_load(xr + j), vmax));
      wasm_v128_store(yr + j, e);
      vs = wasm_f32x4_add(vs, e);
    }
    float sum = wasm_f32x4_extract_lane(vs, 0) + wasm_f32x4_extract_lane(vs, 1) + wasm_f32x4_extract_lane(vs, 2) +
                wasm_f32x4_extract_lane(vs, 3);
    if (j < c) { /* tail through the same polynomial, padded to one vector */
      float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int l = 0; l < c - j; l++) t[l] = xr[j + l] - m;
      wasm_v128_store(t, exp_v(wasm_v128_load(t)));
      for (int l = 0; l < c - j; l++) {
        yr[j + l] = t[l];
        sum += t[l];
      }
    }
    const float inv = 1.0f / sum;
    const v128_t vinv = wasm_f32x4_splat(inv);
    for (j = 0; j + 4 <= c; j += 4) wasm_v128_store(yr + j, wasm_f32x4_mul(wasm_v128_load(yr + j), vinv));
    for (; j < c; j++) yr[j] *= inv;
  }
}
#endif

#ifdef __wasm_simd128__
#define TT_PICK(f) f##_simd
#else
#define TT_PICK(f) f##_scalar
#endif

/* Across threads: the elementwise kernels in slices of elements, bias_backward in slices
   of channels, bias_act in blocks of rows, several slices a thread taken by whichever
   thread is free. Slices start at multiples of 4 elements (channels), so each element
   goes through the same SIMD lane or scalar tail as without the cut, and gets the same
   arithmetic: the results do not depend on the number of threads. */
enum { EW_ADD, EW_ACC, EW_ACT_BACKWARD, EW_ZERO, EW_BIAS_BACKWARD, EW_BIAS_ACT };
#define EW_PAR_MIN (1 << 16) /* elements below which a pool trip does not pay */

typedef struct {
  int kind, act, c;
  size_t n, step;
  const float *a, *b;
  float *y;
} ew_split;

static void ew_run(const ew_split *e, size_t lo, size_t len) {
  switch (e->kind) {
  case EW_ADD: TT_PICK(tt_add)(len, e->a + lo, e->b + lo, e->y + lo); break;
  case EW_ACC: TT_PICK(tt_acc)(len, e->a + lo, e->y + lo); break;
  case EW_ACT_BACKWARD: TT_PICK(tt_act_backward)(len, e->a + lo, e->y + lo, e->act); break;
  case EW_ZERO: memset(e->y + lo, 0, len * sizeof(float)); break;
  case EW_BIAS_BACKWARD: { /* lo, len: channels of every row */
    const int rows = (int)(e->n / (size_t)e->c);
    for (int r = 0; r < rows; r++) TT_PICK(tt_bias_backward)(1, (int)len, e->a + (size_t)r * e->c + lo, e->y + lo);
  } break;
  case EW_BIAS_ACT: /* lo, len: elements of whole rows */
    TT_PICK(tt_bias_act)((int)(len / (size_t)e->c), e->c, e->y + lo, e->a, e->act);
    break;
  }
}

static void ew_task(void *p, int t) {
  const ew_split *e = p;
  const size_t total = e->kind == EW_BIAS_BACKWARD ? (size_t)e->c : e->n;
  const size_t lo = (size_t)t * e->step;
  ew_run(e, lo, total - lo < e->step ? total - lo : e->step);
}

static void ew(int kind, size_t n, int c, const float *a, const float *b, float *y, int act) {
  ew_split e = {kind, act, c, n, 0, a, b, y};
  const size_t total = kind == EW_BIAS_BACKWARD ? (size_t)c : n;
  const int T = tt_threads();
  /* a unit: 4 elements, 4 channels, or (bias_act) whole rows */
  const size_t unit = kind == EW_BIAS_ACT ? (size_t)c : 4;
  if (T < 2 || n < EW_PAR_MIN || total < 2 * unit) {
    ew_run(&e, 0, total);
    return;
  }
  const size_t units = total / unit, per = (units + 4 * (size_t)T - 1) / (4 * (size_t)T);
  e.step = (per ? per : 1) * unit;
  tt_parallel((int)((total + e.step - 1) / e.step), ew_task, &e);
}

void tt_add(size_t n, const float *a, const float *b, float *y) { ew(EW_ADD, n, 1, a, b, y, 0); }
void tt_acc(size_t n, const float *x, float *y) { ew(EW_ACC, n, 1, x, NULL, y, 0); }
void tt_zero(size_t n, float *y) { ew(EW_ZERO, n, 1, NULL, NULL, y, 0); }
void tt_scale_shift(size_t n, const float *x, float a, float b, float *y) { TT_PICK(tt_scale_shift)(n, x, a, b, y); }
void tt_bias_act(int rows, int c, float *y, const float *bias, int act) {
  ew(EW_BIAS_ACT, (size_t)rows * c, c, bias, NULL, y, act);
}
void tt_act_backward(size_t n, const float *y, float *dy, int act) {
  if (act != TT_ACT_NONE) ew(EW_ACT_BACKWARD, n, 1, y, NULL, dy, act);
}
void tt_bias_backward(int rows, int c, const float *dy, float *db) {
  ew(EW_BIAS_BACKWARD, (size_t)rows * c, c, dy, NULL, db, 0);
}
void tt_softmax(int rows, int c, const float *x, float *y) { TT_PICK(tt_softmax)(rows, c, x, y); }
