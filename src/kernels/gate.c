/* The newer backbones' extra kernels: MobileNetV3's hard-swish and hard-sigmoid with the
   constants the graph stores, the global spatial mean, the channel gate of
   squeeze-and-excitation (y = x * s, one s per image and channel), and MobileFaceNet's
   PReLU (a learned slope per channel for negative inputs). In net.c they are the 'act'
   op with act TT_ACT_HSWISH / TT_ACT_HSIGMOID, and the 'mean', 'gate' and 'prelu' ops.

   The activations take their constants (a, the 1/6; b, the 3) as arguments rather than
   fixing them: the graphs store 1/6 as float16 (0.16662598), and the reference computes
   with that, so a fixed 1/6 would be off by 2.4e-4 at each of 20 layers. The evaluation
   order is the graph's, (x*a) * relu6(x + b), so results match tfjs to the last bit
   where it multiplies in the same order. All are memory-bound; the SIMD versions keep
   the scalar evaluation order (a lane is a channel), so both give identical results. */
#include <string.h>
#include "kernels.h"
#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

static inline float relu6_f(float v) {
  v = v < 0.0f ? 0.0f : v;
  return 6.0f < v ? 6.0f : v;
}

void tt_hswish_scalar(size_t n, const float *x, float a, float b, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = (x[i] * a) * relu6_f(x[i] + b);
}

void tt_hsigmoid_scalar(size_t n, const float *x, float a, float b, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = relu6_f(x[i] + b) * a;
}

/* d/dx (x*a)*relu6(x+b) = a*relu6(x+b) + a*x*[0 < x+b < 6]: TensorFlow's relu6 gradient,
   open at both kinks. Judged from the input x: hard-swish is not monotonic, so its
   output does not tell where the input was. */
void tt_hswish_backward_scalar(size_t n, const float *x, float a, float b, const float *dy, float *dx) {
  for (size_t i = 0; i < n; i++) {
    const float t = x[i] + b;
    const float d = a * relu6_f(t) + (t > 0.0f && t < 6.0f ? a * x[i] : 0.0f);
    dx[i] += dy[i] * d;
  }
}

void tt_hsigmoid_backward_scalar(size_t n, const float *x, float a, float b, const float *dy, float *dx) {
  for (size_t i = 0; i < n; i++) {
    const float t = x[i] + b;
    dx[i] += t > 0.0f && t < 6.0f ? dy[i] * a : 0.0f;
  }
}

void tt_mean_scalar(int n, int hw, int c, const float *x, float *y) {
  const float inv = 1.0f / (float)hw;
  for (int b = 0; b < n; b++) {
    float *restrict yb = y + (size_t)b * c;
    const float *xb = x + (size_t)b * hw * c;
    memset(yb, 0, (size_t)c * sizeof *yb);
    for (int p = 0; p < hw; p++)
      for (int j = 0; j < c; j++) yb[j] += xb[(size_t)p * c + j];
    for (int j = 0; j < c; j++) yb[j] *= inv;
  }
}

void tt_mean_backward_scalar(int n, int hw, int c, const float *dy, float *dx) {
  const float inv = 1.0f / (float)hw;
  for (int b = 0; b < n; b++)
    for (int p = 0; p < hw; p++)
      for (int j = 0; j < c; j++) dx[((size_t)b * hw + p) * c + j] += dy[(size_t)b * c + j] * inv;
}

void tt_gate_scalar(int n, int hw, int c, const float *x, const float *s, float *y) {
  for (int b = 0; b < n; b++)
    for (int p = 0; p < hw; p++) {
      const size_t o = ((size_t)b * hw + p) * c;
      for (int j = 0; j < c; j++) y[o + j] = s[(size_t)b * c + j] * x[o + j];
    }
}

/* dx += dy*s; ds += sum over pixels of dy*x. dx or ds may be NULL. */
void tt_gate_backward_scalar(int n, int hw, int c, const float *x, const float *s, const float *dy, float *dx,
                             float *ds) {
  for (int b = 0; b < n; b++)
    for (int p = 0; p < hw; p++) {
      const size_t o = ((size_t)b * hw + p) * c;
      for (int j = 0; j < c; j++) {
        if (dx) dx[o + j] += dy[o + j] * s[(size_t)b * c + j];
        if (ds) ds[(size_t)b * c + j] += dy[o + j] * x[o + j];
      }
    }
}

/* y = x > 0 ? x : alpha[c]*x over rows of c channels */
void tt_prelu_scalar(size_t rows, int c, const float *x, const float *alpha, float *y) {
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < c; j++) {
      const float v = x[r * c + j];
      y[r * c + j] = v > 0.0f ? v : alpha[j] * v;
    }
}

/* dx += dy * (x > 0 ? 1 : alpha); dalpha += dy * x where x <= 0 (dx may be NULL) */
void tt_prelu_backward_scalar(size_t rows, int c, const float *x, const float *alpha, const float *dy, float *dx,
                              float *dalpha) {
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < c; j++) {
      const float v = x[r * c + j], g = dy[r * c + j];
      if (dx) dx[r * c + j] += v > 0.0f ? g : g * alpha[j];
      if (!(v > 0.0f)) dalpha[j] += g * v;
    }
}

#ifdef __wasm_simd128__
void tt_prelu_simd(size_t rows, int c, const float *x, const float *alpha, float *y) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    float *yr = y + r * c;
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      const v128_t v = wasm_v128_load(xr + j);
      wasm_v128_store(yr + j,
                      wasm_v128_bitselect(v, wasm_f32x4_mul(wasm_v128_load(alpha + j), v), wasm_f32x4_gt(v, zero)));
    }
    for (; j < c; j++) yr[j] = xr[j] > 0.0f ? xr[j] : alpha[j] * xr[j];
  }
}

void tt_prelu_backward_simd(size_t rows, int c, const float *x, const float *alpha, const float *dy, float *dx,
                            float *dalpha) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * c, *gr = dy + r * c;
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      const v128_t v = wasm_v128_load(xr + j), g = wasm_v128_load(gr + j), pos = wasm_f32x4_gt(v, zero);
      if (dx)
        wasm_v128_store(dx + r * c + j,
                        wasm_f32x4_add(wasm_v128_load(dx + r * c + j),
                                       wasm_v128_bitselect(g, wasm_f32x4_mul(g, wasm_v128_load(alpha + j)), pos)));
      wasm_v128_store(dalpha + j,
                      wasm_f32x4_add(wasm_v128_load(dalpha + j), wasm_v128_andnot(wasm_f32x4_mul(g, v), pos)));
    }
    for (; j < c; j++) {
      const float v = xr[j], g = gr[j];
      if (dx) dx[r * c + j] += v > 0.0f ? g : g * alpha[j];
      if (!(v > 0.0f)) dalpha[j] += g * v;
    }
  }
}

static inline v128_t relu6_v(v128_t v) {
  return wasm_f32x4_pmin(wasm_f32x4_pmax(v, wasm_f32x4_splat(0.0f)), wasm_f32x4_splat(6.0f));
}
/* lanes where 0 < t < 6 */
static inline v128_t open6_v(v128_t t) {
  return wasm_v128_and(wasm_f32x4_gt(t, wasm_f32x4_splat(0.0f)), wasm_f32x4_lt(t, wasm_f32x4_splat(6.0f)));
}

void tt_hswish_simd(size_t n, const float *x, float a, float b, float *y) {
  const v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(x + i);
    wasm_v128_store(y + i, wasm_f32x4_mul(wasm_f32x4_mul(v, va), relu6_v(wasm_f32x4_add(v, vb))));
  }
  for (; i < n; i++) y[i] = (x[i] * a) * relu6_f(x[i] + b);
}

void tt_hsigmoid_simd(size_t n, const float *x, float a, float b, float *y) {
  const v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    wasm_v128_store(y + i, wasm_f32x4_mul(relu6_v(wasm_f32x4_add(wasm_v128_load(x + i), vb)), va));
  for (; i < n; i++) y[i] = relu6_f(x[i] + b) * a;
}

void tt_hswish_backward_simd(size_t n, const float *x, float a, float b, const float *dy, float *dx) {
  const v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(x + i), t = wasm_f32x4_add(v, vb);
    const v128_t d = wasm_f32x4_add(wasm_f32x4_mul(va, relu6_v(t)), wasm_v128_and(wasm_f32x4_mul(va, v), open6_v(t)));
    wasm_v128_store(dx + i, wasm_f32x4_add(wasm_v128_load(dx + i), wasm_f32x4_mul(wasm_v128_load(dy + i), d)));
  }
  tt_hswish_backward_scalar(n - i, x + i, a, b, dy + i, dx + i);
}

void tt_hsigmoid_backward_simd(size_t n, const float *x, float a, float b, const float *dy, float *dx) {
  const v128_t va = wasm_f32x4_splat(a), vb = wasm_f32x4_splat(b);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t t = wasm_f32x4_add(wasm_v128_load(x + i), vb);
    const v128_t g = wasm_v128_and(wasm_f32x4_mul(wasm_v128_load(dy + i), va), open6_v(t));
    wasm_v128_store(dx + i, wasm_f32x4_add(wasm_v128_load(dx + i), g));
  }
  tt_hsigmoid_backward_scalar(n - i, x + i, a, b, dy + i, dx + i);
}

void tt_mean_simd(int n, int hw, int c, const float *x, float *y) {
  const float inv = 1.0f / (float)hw;
  for (int b = 0; b < n; b++) {
    float *yb = y + (size_t)b * c;
    const float *xb = x + (size_t)b * hw * c;
    memset(yb, 0, (size_t)c * sizeof *yb);
    for (int p = 0; p < hw; p++) {
      const float *xp = xb + (size_t)p * c;
      int j = 0;
      for (; j + 4 <= c; j += 4)
        wasm_v128_store(yb + j, wasm_f32x4_add(wasm_v128_load(yb + j), wasm_v128_load(xp + j)));
      for (; j < c; j++) yb[j] += xp[j];
    }
    for (int j = 0; j < c; j++) yb[j] *= inv;
  }
}

void tt_mean_backward_simd(int n, int hw, int c, const float *dy, float *dx) {
  const float inv = 1.0f / (float)hw;
  const v128_t vi = wasm_f32x4_splat(inv);
  for (int b = 0; b < n; b++)
    for (int p = 0; p < hw; p++) {
      float *d = dx + ((size_t)b * hw + p) * c;
      const float *g = dy + (size_t)b * c;
      int j = 0;
      for (; j + 4 <= c; j += 4)
        wasm_v128_store(d + j, wasm_f32x4_add(wasm_v128_load(d + j), wasm_f32x4_mul(wasm_v128_load(g + j), vi)));
      for (; j < c; j++) d[j] += g[j] * inv;
    }
}

void tt_gate_simd(int n, int hw, int c, const float *x, const float *s, float *y) {
  for (int b = 0; b < n; b++)
    for (int p = 0; p < hw; p++) {
      const size_t o = ((size_t)b * hw + p) * c;
      const float *sb = s + (size_t)b * c;
      int j = 0;
      for (; j + 4 <= c; j += 4)
        wasm_v128_store(y + o + j, wasm_f32x4_mul(wasm_v128_load(sb + j), wasm_v128_load(x + o + j)));
      for (; j < c; j++) y[o + j] = sb[j] * x[o + j];
    }
}

void tt_gate_backward_simd(int n, int hw, int c, const float *x, const float *s, const float *dy, float *dx,
                           float *ds) {
  for (int b = 0; b < n; b++)
    for (int p = 0; p < hw; p++) {
      const size_t o = ((size_t)b * hw + p) * c;
      const float *sb = s + (size_t)b * c;
      float *db = ds ? ds + (size_t)b * c : NULL;
      int j = 0;
      for (; j + 4 <= c; j += 4) {
        const v128_t g = wasm_v128_load(dy + o + j);
        if (dx)
          wasm_v128_store(dx + o + j,
                          wasm_f32x4_add(wasm_v128_load(dx + o + j), wasm_f32x4_mul(g, wasm_v128_load(sb + j))));
        if (db)
          wasm_v128_store(db + j, wasm_f32x4_add(wasm_v128_load(db + j), wasm_f32x4_mul(g, wasm_v128_load(x + o + j))));
      }
      for (; j < c; j++) {
        if (dx) dx[o + j] += dy[o + j] * sb[j];
        if (db) db[j] += dy[o + j] * x[o + j];
      }
    }
}
#define PICK(f) f##_simd
#else
#define PICK(f) f##_scalar
#endif

void tt_hswish(size_t n, const float *x, float a, float b, float *y) { PICK(tt_hswish)(n, x, a, b, y); }
void tt_hsigmoid(size_t n, const float *x, float a, float b, float *y) { PICK(tt_hsigmoid)(n, x, a, b, y); }
void tt_hswish_backward(size_t n, const float *x, float a, float b, const float *dy, float *dx) {
  PICK(tt_hswish_backward)(n, x, a, b, dy, dx);
}
void tt_hsigmoid_backward(size_t n, const float *x, float a, float b, const float *dy, float *dx) {
  PICK(tt_hsigmoid_backward)(n, x, a, b, dy, dx);
}
void tt_mean(int n, int hw, int c, const float *x, float *y) { PICK(tt_mean)(n, hw, c, x, y); }
void tt_prelu(size_t rows, int c, const float *x, const float *alpha, float *y) {
  PICK(tt_prelu)(rows, c, x, alpha, y);
}
void tt_prelu_backward(size_t rows, int c, const float *x, const float *alpha, const float *dy, float *dx,
                       float *dalpha) {
  PICK(tt_prelu_backward)(rows, c, x, alpha, dy, dx, dalpha);
}
void tt_mean_backward(int n, int hw, int c, const float *dy, float *dx) { PICK(tt_mean_backward)(n, hw, c, dy, dx); }
void tt_gate(int n, int hw, int c, const float *x, const float *s, float *y) { PICK(tt_gate)(n, hw, c, x, s, y); }
void tt_gate_backward(int n, int hw, int c, const float *x, const float *s, const float *dy, float *dx, float *ds) {
  PICK(tt_gate_backward)(n, hw, c, x, s, dy, dx, ds);
}
