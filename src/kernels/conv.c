/* General 2-D convolution, NHWC input, HWIO filter [kh][kw][c][oc].

   Only MobileNet's stem uses it (3x3, stride 2, c=3, oc=32 or 48), where a direct
   convolution beats im2col+GEMM: K = 27 is too short to amortise packing. With HWIO
   the oc values of one filter tap are contiguous, so the natural vectorisation is over
   oc: each input value is broadcast and multiplied into a block of output channels
   held in registers for the whole window. */
#include "kernels.h"
#include "window.h"
#include "act.h"
#ifdef __wasm_simd128__
#include "simd.h"
#endif

void tt_conv2d_scalar(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  const int C = s->c, OC = s->oc;
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        float *restrict yr = y + (((size_t)n * s->oh + oy) * s->ow + ox) * OC;
        for (int o = 0; o < OC; o++) yr[o] = bias ? bias[o] : 0.0f;
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            const int iy = oy * s->sh - s->pt + ky, ix = ox * s->sw - s->pl + kx;
            const float *xr = x + (((size_t)n * s->h + iy) * s->w + ix) * C;
            const float *wr = w + ((size_t)ky * s->kw + kx) * C * OC;
            for (int ci = 0; ci < C; ci++) {
              const float xv = xr[ci];
              const float *restrict wc = wr + (size_t)ci * OC;
              for (int o = 0; o < OC; o++) yr[o] += xv * wc[o];
            }
          }
        if (act != TT_ACT_NONE)
          for (int o = 0; o < OC; o++) yr[o] = act_f(yr[o], act);
      }
    }
}

#ifdef __wasm_simd128__

/* Two horizontally adjacent output pixels with the same window clipping, 16 output
   channels at a time: each weight vector loaded feeds both pixels, which halves the
   loads per multiply-add (stem: 25 -> 32 GFLOP/s). Output channels beyond a multiple
   of 16 (none in MobileNet) take a plain scalar loop. */
static void conv_pair(const tt_shape *s, const float *x, const float *w, const float *bias, int act, int n, int oy,
                      int ox, int ky0, int ky1, int kx0, int kx1, float *y) {
  const int C = s->c, OC = s->oc;
  const int iy0 = oy * s->sh - s->pt, ix0 = ox * s->sw - s->pl;
  const int span = (kx1 - kx0) * C;
  const size_t dx = (size_t)s->sw * C; /* input distance between the two windows */
  float *yr = y + (((size_t)n * s->oh + oy) * s->ow + ox) * OC;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  int o = 0;
  for (; o + 16 <= OC; o += 16) {
    v128_t a0 = bias ? wasm_v128_load(bias + o) : zero;
    v128_t a1 = bias ? wasm_v128_load(bias + o + 4) : zero;
    v128_t a2 = bias ? wasm_v128_load(bias + o + 8) : zero;
    v128_t a3 = bias ? wasm_v128_load(bias + o + 12) : zero;
    v128_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    for (int ky = ky0; ky < ky1; ky++) {
      const float *xr = x + (((size_t)n * s->h + iy0 + ky) * s->w + ix0 + kx0) * C;
      const float *wr = w + ((size_t)ky * s->kw + kx0) * C * OC + o;
      for (int t = 0; t < span; t++, wr += OC) {
        const v128_t xa = wasm_v128_load32_splat(xr + t), xb = wasm_v128_load32_splat(xr + dx + t);
        const v128_t w0 = wasm_v128_load(wr), w1 = wasm_v128_load(wr + 4);
        const v128_t w2 = wasm_v128_load(wr + 8), w3 = wasm_v128_load(wr + 12);
        a0 = TT_MADD(xa, w0, a0);
        a1 = TT_MADD(xa, w1, a1);
        a2 = TT_MADD(xa, w2, a2);
        a3 = TT_MADD(xa, w3, a3);
        b0 = TT_MADD(xb, w0, b0);
        b1 = TT_MADD(xb, w1, b1);
        b2 = TT_MADD(xb, w2, b2);
        b3 = TT_MADD(xb, w3, b3);
      }
    }
    wasm_v128_store(yr + o, act_v(a0, act));
    wasm_v128_store(yr + o + 4, act_v(a1, act));
    wasm_v128_store(yr + o + 8, act_v(a2, act));
    wasm_v128_store(yr + o + 12, act_v(a3, act));
    wasm_v128_store(yr + OC + o, act_v(b0, act));
    wasm_v128_store(yr + OC + o + 4, act_v(b1, act));
    wasm_v128_store(yr + OC + o + 8, act_v(b2, act));
    wasm_v128_store(yr + OC + o + 12, act_v(b3, act));
  }
  for (int q = 0; q < 2; q++)
    for (int oo = o; oo < OC; oo++) {
      float a = bias ? bias[oo] : 0.0f;
      for (int ky = ky0; ky < ky1; ky++) {
        const float *xr = x + (((size_t)n * s->h + iy0 + ky) * s->w + ix0 + kx0) * C + q * dx;
        const float *wr = w + ((size_t)ky * s->kw + kx0) * C * OC + oo;
        for (int t = 0; t < span; t++) a += xr[t] * wr[(size_t)t * OC];
      }
      yr[(size_t)q * OC + oo] = act_f(a, act);
    }
}

void tt_conv2d_simd(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  const int C = s->c, OC = s->oc;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const int iy0 = oy * s->sh - s->pt, ix0 = ox * s->sw - s->pl;
        if (ox + 1 < s->ow && OC >= 16) {
          int kx0b, kx1b;
          tap_range(ox + 1, s->sw, s->pl, s->kw, s->w, &kx0b, &kx1b);
          if (kx0b == kx0 && kx1b == kx1) { /* same clipping: share the weight loads */
            conv_pair(s, x, w, bias, act, n, oy, ox, ky0, ky1, kx0, kx1, y);
            ox++;
            continue;
          }
        }
        /* Within one filter row, the in-bounds taps (kx, ci) are contiguous in NHWC x
           and consecutive rows of HWIO w: one flat loop of (kx1-kx0)*C steps per row
           instead of two nested short ones (the stem has C = 3). */
        const int span = (kx1 - kx0) * C;
        float *yr = y + (((size_t)n * s->oh + oy) * s->ow + ox) * OC;
        int o = 0;
        /* 16 output channels (4 accumulators) per pass over the window: enough
           independent chains to hide add latency; oc=32/48 take 2/3 passes. */
        for (; o + 16 <= OC; o += 16) {
          v128_t a0 = bias ? wasm_v128_load(bias + o) : zero;
          v128_t a1 = bias ? wasm_v128_load(bias + o + 4) : zero;
          v128_t a2 = bias ? wasm_v128_load(bias + o + 8) : zero;
          v128_t a3 = bias ? wasm_v128_load(bias + o + 12) : zero;
          for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = x + (((size_t)n * s->h + iy0 + ky) * s->w + ix0 + kx0) * C;
            const float *wr = w + ((size_t)ky * s->kw + kx0) * C * OC + o;
            for (int t = 0; t < span; t++, wr += OC) {
              const v128_t xv = wasm_v128_load32_splat(xr + t);
              a0 = TT_MADD(xv, wasm_v128_load(wr), a0);
              a1 = TT_MADD(xv, wasm_v128_load(wr + 4), a1);
              a2 = TT_MADD(xv, wasm_v128_load(wr + 8), a2);
              a3 = TT_MADD(xv, wasm_v128_load(wr + 12), a3);
            }
          }
          wasm_v128_store(yr + o, act_v(a0, act));
          wasm_v128_store(yr + o + 4, act_v(a1, act));
          wasm_v128_store(yr + o + 8, act_v(a2, act));
          wasm_v128_store(yr + o + 12, act_v(a3, act));
        }
        for (; o + 4 <= OC; o += 4) {
          v128_t a0 = bias ? wasm_v128_load(bias + o) : zero;
          for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = x + (((size_t)n * s->h + iy0 + ky) * s->w + ix0 + kx0) * C;
            const float *wr = w + ((size_t)ky * s->kw + kx0) * C * OC + o;
            for (int t = 0; t < span; t++, wr += OC)
              a0 = TT_MADD(wasm_v128_load32_splat(xr + t), wasm_v128_load(wr), a0);
          }
          wasm_v128_store(yr + o, act_v(a0, act));
        }
        for (; o < OC; o++) {
          float a = bias ? bias[o] : 0.0f;
          for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = x + (((size_t)n * s->h + iy0 + ky) * s->w + ix0 + kx0) * C;
            const float *wr = w + ((size_t)ky * s->kw + kx0) * C * OC + o;
            for (int t = 0; t < span; t++) a += xr[t] * wr[(size_t)t * OC];
          }
          yr[o] = act_f(a, act);
        }
      }
    }
}
#endif

void tt_conv2d(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  const double macs = (double)s->kh * s->kw * s->c * s->oc;
#ifdef __wasm_simd128__
  tt_bands(tt_conv2d_simd, macs, s, x, w, bias, act, y);
#else
  tt_bands(tt_conv2d_scalar, macs, s, x, w, bias, act, y);
#endif
}
