/* Average pooling, NHWC. TensorFlow's SAME semantics: the divisor is the number of
   window cells inside the input, not kh*kw, so border outputs are true means of what
   they see. Global average pooling is the kh=h, kw=w, oh=ow=1 case. */
#include <string.h>
#include "kernels.h"
#include "window.h"
#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

/* 1/count of in-bounds cells; a window wholly in padding averages nothing and yields 0
   rather than a division by zero. */
static inline float inv_count(int ky0, int ky1, int kx0, int kx1) {
  const int cnt = (ky1 - ky0) * (kx1 - kx0);
  return cnt > 0 ? 1.0f / (float)cnt : 0.0f;
}

static inline size_t pix(const tt_shape *s, int n, int iy, int ix) {
  return (((size_t)n * s->h + iy) * s->w + ix) * s->c;
}

void tt_avgpool_scalar(const tt_shape *s, const float *x, float *y) {
  const int C = s->c;
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        float *restrict yr = y + (((size_t)n * s->oh + oy) * s->ow + ox) * C;
        for (int c = 0; c < C; c++) yr[c] = 0.0f;
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            const float *restrict xr = x + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
            for (int c = 0; c < C; c++) yr[c] += xr[c];
          }
        const float inv = inv_count(ky0, ky1, kx0, kx1);
        for (int c = 0; c < C; c++) yr[c] *= inv;
      }
    }
}

void tt_avgpool_backward_scalar(const tt_shape *s, const float *dy, float *dx) {
  const int C = s->c;
  memset(dx, 0, (size_t)s->n * s->h * s->w * C * sizeof(float));
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const float *restrict g = dy + (((size_t)n * s->oh + oy) * s->ow + ox) * C;
        const float inv = inv_count(ky0, ky1, kx0, kx1);
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            float *restrict d = dx + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
            for (int c = 0; c < C; c++) d[c] += g[c] * inv;
          }
      }
    }
}

#ifdef __wasm_simd128__
void tt_avgpool_simd(const tt_shape *s, const float *x, float *y) {
  const int C = s->c;
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const int iy = oy * s->sh - s->pt, ix = ox * s->sw - s->pl;
        float *yr = y + (((size_t)n * s->oh + oy) * s->ow + ox) * C;
        const float inv = inv_count(ky0, ky1, kx0, kx1);
        const v128_t vinv = wasm_f32x4_splat(inv);
        int c = 0;
        /* Channel block outermost so the sums stay in registers over the window;
           two blocks per pass for two independent add chains. */
        for (; c + 8 <= C; c += 8) {
          v128_t a = wasm_f32x4_splat(0.0f), b = a;
          for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) {
              const float *xr = x + pix(s, n, iy + ky, ix + kx) + c;
              a = wasm_f32x4_add(a, wasm_v128_load(xr));
              b = wasm_f32x4_add(b, wasm_v128_load(xr + 4));
            }
          wasm_v128_store(yr + c, wasm_f32x4_mul(a, vinv));
          wasm_v128_store(yr + c + 4, wasm_f32x4_mul(b, vinv));
        }
        for (; c + 4 <= C; c += 4) {
          v128_t a = wasm_f32x4_splat(0.0f);
          for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++)
              a = wasm_f32x4_add(a, wasm_v128_load(x + pix(s, n, iy + ky, ix + kx) + c));
          wasm_v128_store(yr + c, wasm_f32x4_mul(a, vinv));
        }
        for (; c < C; c++) {
          float a = 0.0f;
          for (int ky = ky0; ky < ky1; ky++)
            for (int kx = kx0; kx < kx1; kx++) a += x[pix(s, n, iy + ky, ix + kx) + c];
          yr[c] = a * inv;
        }
      }
    }
}

void tt_avgpool_backward_simd(const tt_shape *s, const float *dy, float *dx) {
  const int C = s->c;
  memset(dx, 0, (size_t)s->n * s->h * s->w * C * sizeof(float));
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const float *g = dy + (((size_t)n * s->oh + oy) * s->ow + ox) * C;
        const float inv = inv_count(ky0, ky1, kx0, kx1);
        const v128_t vinv = wasm_f32x4_splat(inv);
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            float *d = dx + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
            int c = 0;
            for (; c + 4 <= C; c += 4)
              wasm_v128_store(d + c,
                              wasm_f32x4_add(wasm_v128_load(d + c), wasm_f32x4_mul(wasm_v128_load(g + c), vinv)));
            for (; c < C; c++) d[c] += g[c] * inv;
          }
      }
    }
}
#endif

void tt_avgpool(const tt_shape *s, const float *x, float *y) {
#ifdef __wasm_simd128__
  tt_avgpool_simd(s, x, y);
#else
  tt_avgpool_scalar(s, x, y);
#endif
}

void tt_avgpool_backward(const tt_shape *s, const float *dy, float *dx) {
#ifdef __wasm_simd128__
  tt_avgpool_backward_simd(s, dy, dx);
#else
  tt_avgpool_backward_scalar(s, dy, dx);
#endif
}
