/* Depthwise convolution (channel multiplier 1), NHWC, filter [kh][kw][c].

   Channels are the innermost dimension of x, w and y alike, so every kernel here walks
   channels with unit stride: that is what gcc vectorises in the scalar versions and
   what the SIMD versions do 4 lanes at a time. Padding is never materialised: each
   output pixel clips its window to the taps that land inside the input (the SIMD 3x3
   forward instead splits rows into interior runs without any bounds logic and border
   pixels whose padded taps read a zero vector; see below). */
#include <string.h>
#include "kernels.h"
#include "window.h"
#include "act.h"
#include "threads.h"
#ifdef __wasm_simd128__
#include "simd.h"
#endif

static inline size_t pix(const tt_shape *s, int n, int iy, int ix) {
  return (((size_t)n * s->h + iy) * s->w + ix) * s->c;
}
static inline size_t opix(const tt_shape *s, int n, int oy, int ox) {
  return (((size_t)n * s->oh + oy) * s->ow + ox) * s->c;
}

void tt_dwconv_scalar(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  const int C = s->c;
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        float *restrict yr = y + opix(s, n, oy, ox);
        for (int c = 0; c < C; c++) yr[c] = bias ? bias[c] : 0.0f;
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            const float *restrict xr = x + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
            const float *restrict wr = w + ((size_t)ky * s->kw + kx) * C;
            for (int c = 0; c < C; c++) yr[c] += xr[c] * wr[c];
          }
        if (act != TT_ACT_NONE)
          for (int c = 0; c < C; c++) yr[c] = act_f(yr[c], act);
      }
    }
}

/* Scatter form of the adjoint: each output gradient is pushed back through the taps
   that produced it. Same window clipping as the forward, so no padding buffer.
   The backward kernels work on channels [c0, c1) of every pixel (each channel is its own
   convolution): across threads, each task takes a slice of channels (see
   tt_dwconv_backward_input), and a channel's arithmetic does not depend on the slice. */
static void bwd_input_scalar(const tt_shape *s, const float *dy, const float *w, float *dx, int c0, int c1) {
  const int C = s->c;
  for (size_t p = 0; p < (size_t)s->n * s->h * s->w; p++) memset(dx + p * C + c0, 0, (size_t)(c1 - c0) * sizeof(float));
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const float *restrict g = dy + opix(s, n, oy, ox);
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            float *restrict d = dx + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
            const float *restrict wr = w + ((size_t)ky * s->kw + kx) * C;
            for (int c = c0; c < c1; c++) d[c] += g[c] * wr[c];
          }
      }
    }
}

void tt_dwconv_backward_input_scalar(const tt_shape *s, const float *dy, const float *w, float *dx) {
  bwd_input_scalar(s, dy, w, dx, 0, s->c);
}

static void bwd_filter_scalar(const tt_shape *s, const float *x, const float *dy, float *dw, int c0, int c1) {
  const int C = s->c;
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const float *restrict g = dy + opix(s, n, oy, ox);
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++) {
            const float *restrict xr = x + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx);
            float *restrict d = dw + ((size_t)ky * s->kw + kx) * C;
            for (int c = c0; c < c1; c++) d[c] += xr[c] * g[c];
          }
      }
    }
}

void tt_dwconv_backward_filter_scalar(const tt_shape *s, const float *x, const float *dy, float *dw) {
  bwd_filter_scalar(s, x, dy, dw, 0, s->c);
}

#ifdef __wasm_simd128__

/* d[c] += a[c] * b[c] */
static inline void vmuladd(int C, float *restrict d, const float *restrict a, const float *restrict b) {
  int c = 0;
  for (; c + 4 <= C; c += 4)
    wasm_v128_store(d + c, TT_MADD(wasm_v128_load(a + c), wasm_v128_load(b + c), wasm_v128_load(d + c)));
  for (; c < C; c++) d[c] += a[c] * b[c];
}

/* The 3x3 SIMD forward has two kernels, both shaped by what V8 makes of WASM SIMD on
   x86 (16 xmm and ~12 usable general registers; TurboFan hoists a block's loads ahead of
   its arithmetic, so a loop body with more live vectors than registers spills):

   - dw3x3_row, for runs of interior pixels: 4 channels at a time with the 9 weight
     vectors and the bias held in registers while it walks along the output row. The
     three input rows it reads stay in L1 across channel groups. (The XNNPACK-style
     loop over channels per pixel ran at 12-17 GFLOP/s here, against ~20 for this.)
   - dw3x3_pixel, for pixels whose window crosses the padding: per pixel, nine input
     pointers advance with the channels, and taps in the padding point at a zero vector,
     so borders need no bounds checks either. Its weights are packed with the bias as
     [bias, w0..w8] per 4 channels so that one pointer with constant offsets reaches
     them all. */
#define DW_CHUNK 2048 /* channels packed per pass; MobileNetV2 1.4 tops out at 1344 */
static const float dw_zero[DW_CHUNK];

/* Packs bias and weights of the 4-channel groups of channels [c0, c0+cn) into p. */
static void dw3x3_pack(const float *w, const float *bias, int C, int c0, int cn, float *p) {
  for (int c = 0; c + 4 <= cn; c += 4) {
    for (int j = 0; j < 4; j++) p[j] = bias ? bias[c0 + c + j] : 0.0f;
    p += 4;
    for (int t = 0; t < 9; t++, p += 4)
      for (int j = 0; j < 4; j++) p[j] = w[(size_t)t * C + c0 + c + j];
  }
}

/* One output pixel over cn channels; in[t] is tap t's input or dw_zero, wp the packed
   weights. The last cn % 4 channels use the unpacked weights wt (row stride C) and
   bias bt. */
static void dw3x3_pixel(const float *const in[9], int cn, int C, const float *wp, const float *wt, const float *bt,
                        int act, float *restrict y) {
  const float *i0 = in[0], *i1 = in[1], *i2 = in[2], *i3 = in[3], *i4 = in[4], *i5 = in[5], *i6 = in[6], *i7 = in[7],
              *i8 = in[8];
  const float *w = wp;
  int c = 0;
#define DW_TAP(acc, ip, wk) acc = TT_MADD(wasm_v128_load(ip), wasm_v128_load(w + (wk)), acc)
  for (; c + 4 <= cn; c += 4) {
    v128_t a = wasm_v128_load(w);
    DW_TAP(a, i0, 4);
    DW_TAP(a, i1, 8);
    DW_TAP(a, i2, 12);
    DW_TAP(a, i3, 16);
    DW_TAP(a, i4, 20);
    DW_TAP(a, i5, 24);
    DW_TAP(a, i6, 28);
    DW_TAP(a, i7, 32);
    DW_TAP(a, i8, 36);
    i0 += 4;
    i1 += 4;
    i2 += 4;
    i3 += 4;
    i4 += 4;
    i5 += 4;
    i6 += 4;
    i7 += 4;
    i8 += 4;
    w += 40;
    wasm_v128_store(y + c, act_v(a, act));
  }
#undef DW_TAP
  for (int j = 0; c < cn; j++, c++) {
    float a = bt ? bt[c] : 0.0f;
    a += i0[j] * wt[c];
    a += i1[j] * wt[C + c];
    a += i2[j] * wt[2 * C + c];
    a += i3[j] * wt[3 * C + c];
    a += i4[j] * wt[4 * C + c];
    a += i5[j] * wt[5 * C + c];
    a += i6[j] * wt[6 * C + c];
    a += i7[j] * wt[7 * C + c];
    a += i8[j] * wt[8 * C + c];
    y[c] = act_f(a, act);
  }
}

/* A pixel whose window crosses the padding. */
static void dw3x3_border(const tt_shape *s, const float *x, int n, int oy, int ox, int c0, int cn, const float *wp,
                         const float *wt, const float *bt, int act, float *yrow) {
  const int iy = oy * s->sh - s->pt, ix = ox * s->sw - s->pl;
  const float *in[9];
  for (int ky = 0; ky < 3; ky++)
    for (int kx = 0; kx < 3; kx++) {
      const int yy = iy + ky, xx = ix + kx;
      in[ky * 3 + kx] = yy >= 0 && yy < s->h && xx >= 0 && xx < s->w ? x + pix(s, n, yy, xx) + c0 : dw_zero;
    }
  dw3x3_pixel(in, cn, s->c, wp, wt, bt, act, yrow + (size_t)ox * s->c);
}

/* npx interior output pixels of one row, all C channels. p is the top-left input of the
   first window, step the input distance between consecutive windows (sw*C), rs the
   input row stride (w*C); consecutive outputs are C apart. Pixels go in blocks of 16
   so that the input lines a block touches stay in L1 across its channel groups (a
   whole 112-pixel row at stride 2 did not; blocking gained ~7% there). */
static void dw3x3_row(const float *p, size_t step, size_t rs, int npx, int C, const float *w, const float *bias,
                      int act, float *y) {
  const size_t C2 = 2 * (size_t)C;
  for (int px0 = 0; px0 < npx; px0 += 16) {
    const int nb = npx - px0 < 16 ? npx - px0 : 16;
    const float *pb = p + (size_t)px0 * step;
    float *yb = y + (size_t)px0 * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t k0 = wasm_v128_load(w + c), k1 = wasm_v128_load(w + C + c), k2 = wasm_v128_load(w + C2 + c),
                   k3 = wasm_v128_load(w + 3 * C + c), k4 = wasm_v128_load(w + 4 * C + c),
                   k5 = wasm_v128_load(w + 5 * C + c), k6 = wasm_v128_load(w + 6 * C + c),
                   k7 = wasm_v128_load(w + 7 * C + c), k8 = wasm_v128_load(w + 8 * C + c);
      const v128_t b = bias ? wasm_v128_load(bias + c) : wasm_f32x4_splat(0.0f);
      const float *r0 = pb + c, *r1 = r0 + rs, *r2 = r1 + rs;
      float *o = yb + c;
      int px = 0;
      if (step == (size_t)C) /* stride 1: two outputs share two of their three columns */
        for (; px + 2 <= nb; px += 2, r0 += C2, r1 += C2, r2 += C2, o += C2) {
          v128_t u = wasm_v128_load(r0), v = wasm_v128_load(r0 + C);
          v128_t a = TT_MADD(u, k0, b), e = TT_MADD(v, k0, b);
          a = TT_MADD(v, k1, a);
          u = wasm_v128_load(r0 + C2), v = wasm_v128_load(r0 + C2 + C);
          e = TT_MADD(u, k1, e), a = TT_MADD(u, k2, a), e = TT_MADD(v, k2, e);
          u = wasm_v128_load(r1), v = wasm_v128_load(r1 + C);
          a = TT_MADD(u, k3, a), e = TT_MADD(v, k3, e), a = TT_MADD(v, k4, a);
          u = wasm_v128_load(r1 + C2), v = wasm_v128_load(r1 + C2 + C);
          e = TT_MADD(u, k4, e), a = TT_MADD(u, k5, a), e = TT_MADD(v, k5, e);
          u = wasm_v128_load(r2), v = wasm_v128_load(r2 + C);
          a = TT_MADD(u, k6, a), e = TT_MADD(v, k6, e), a = TT_MADD(v, k7, a);
          u = wasm_v128_load(r2 + C2), v = wasm_v128_load(r2 + C2 + C);
          e = TT_MADD(u, k7, e), a = TT_MADD(u, k8, a), e = TT_MADD(v, k8, e);
          wasm_v128_store(o, act_v(a, act));
          wasm_v128_store(o + C, act_v(e, act));
        }
      for (; px < nb; px++, r0 += step, r1 += step, r2 += step, o += C) {
        v128_t a = TT_MADD(wasm_v128_load(r0), k0, b);
        a = TT_MADD(wasm_v128_load(r0 + C), k1, a);
        a = TT_MADD(wasm_v128_load(r0 + C2), k2, a);
        a = TT_MADD(wasm_v128_load(r1), k3, a);
        a = TT_MADD(wasm_v128_load(r1 + C), k4, a);
        a = TT_MADD(wasm_v128_load(r1 + C2), k5, a);
        a = TT_MADD(wasm_v128_load(r2), k6, a);
        a = TT_MADD(wasm_v128_load(r2 + C), k7, a);
        a = TT_MADD(wasm_v128_load(r2 + C2), k8, a);
        wasm_v128_store(o, act_v(a, act));
      }
    }
    for (; c < C; c++) {
      const float *r0 = pb + c, *r1 = r0 + rs, *r2 = r1 + rs;
      for (int px = 0; px < nb; px++, r0 += step, r1 += step, r2 += step) {
        float a = bias ? bias[c] : 0.0f;
        a += r0[0] * w[c];
        a += r0[C] * w[C + c];
        a += r0[C2] * w[C2 + c];
        a += r1[0] * w[3 * C + c];
        a += r1[C] * w[4 * C + c];
        a += r1[C2] * w[5 * C + c];
        a += r2[0] * w[6 * C + c];
        a += r2[C] * w[7 * C + c];
        a += r2[C2] * w[8 * C + c];
        yb[(size_t)px * C + c] = act_f(a, act);
      }
    }
  }
}

/* Output pixels (oy, ox) for oy in [oy0, oy1) and ox in [ox0, ox1), a run along a row or
   a column of the border whose windows lose one row (ky = kr) or one column (kx = kc) of
   taps to the padding (the other is -1): the six taps left, in the scalar version's
   order, 4 channels at a time with their weights in registers, 16 pixels at a time as in
   dw3x3_row. Cheaper than dw3x3_pixel's nine pointers, packed weights and zero taps,
   and at 14x14 and 7x7 a quarter to half the pixels are on the border. */
static void dw3x3_edge(const tt_shape *s, const float *x, int n, int oy0, int oy1, int ox0, int ox1, int kr, int kc,
                       const float *w, const float *bias, int act, float *y) {
  const int C = s->c, along_x = oy1 - oy0 == 1, len = along_x ? ox1 - ox0 : oy1 - oy0;
  int tap[6], nt = 0;
  for (int t = 0; t < 9; t++)
    if (t / 3 != kr && t % 3 != kc) tap[nt++] = t;
  /* Inputs relative to the first tap kept (the window's corner may be in the padding). */
  size_t off[6];
  for (int i = 0; i < 6; i++)
    off[i] = ((size_t)(tap[i] / 3 - tap[0] / 3) * s->w + (size_t)(tap[i] % 3 - tap[0] % 3)) * C;
  const size_t istep = along_x ? (size_t)s->sw * C : (size_t)s->sh * s->w * C;
  const size_t ostep = along_x ? (size_t)C : (size_t)s->ow * C;
  const float *p0 = x + pix(s, n, oy0 * s->sh - s->pt + tap[0] / 3, ox0 * s->sw - s->pl + tap[0] % 3);
  float *y0 = y + opix(s, n, oy0, ox0);
  for (int q0 = 0; q0 < len; q0 += 16) {
    const int nb = len - q0 < 16 ? len - q0 : 16;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t k0 = wasm_v128_load(w + (size_t)tap[0] * C + c), k1 = wasm_v128_load(w + (size_t)tap[1] * C + c),
                   k2 = wasm_v128_load(w + (size_t)tap[2] * C + c), k3 = wasm_v128_load(w + (size_t)tap[3] * C + c),
                   k4 = wasm_v128_load(w + (size_t)tap[4] * C + c), k5 = wasm_v128_load(w + (size_t)tap[5] * C + c);
      const v128_t b = bias ? wasm_v128_load(bias + c) : wasm_f32x4_splat(0.0f);
      const float *p = p0 + (size_t)q0 * istep + c;
      float *o = y0 + (size_t)q0 * ostep + c;
      for (int q = 0; q < nb; q++, p += istep, o += ostep) {
        v128_t a = TT_MADD(wasm_v128_load(p), k0, b);
        a = TT_MADD(wasm_v128_load(p + off[1]), k1, a);
        a = TT_MADD(wasm_v128_load(p + off[2]), k2, a);
        a = TT_MADD(wasm_v128_load(p + off[3]), k3, a);
        a = TT_MADD(wasm_v128_load(p + off[4]), k4, a);
        a = TT_MADD(wasm_v128_load(p + off[5]), k5, a);
        wasm_v128_store(o, act_v(a, act));
      }
    }
    for (; c < C; c++)
      for (int q = q0; q < q0 + nb; q++) {
        const float *p = p0 + (size_t)q * istep + c;
        float a = bias ? bias[c] : 0.0f;
        for (int i = 0; i < 6; i++) a += p[off[i]] * w[(size_t)tap[i] * C + c];
        y0[(size_t)q * ostep + c] = act_f(a, act);
      }
  }
}

/* Where a 3x3 window at output index o lies: 0 inside, 1 losing its first row (or
   column) of taps to the padding, 2 its last, 3 more. */
static int dw3x3_where(int o, int stride, int pad, int size) {
  int k0, k1;
  tap_range(o, stride, pad, 3, size, &k0, &k1);
  return k0 == 0 && k1 == 3 ? 0 : k0 == 1 && k1 == 3 ? 1 : k0 == 0 && k1 == 2 ? 2 : 3;
}

/* The outputs [*a, *b) along one axis whose windows lie wholly inside the input (3x3
   windows: those are consecutive). */
static void dw3x3_inside(int n_out, int stride, int pad, int size, int *a, int *b) {
  for (*a = 0; *a < n_out && dw3x3_where(*a, stride, pad, size);) ++*a;
  for (*b = *a; *b < n_out && !dw3x3_where(*b, stride, pad, size);) ++*b;
}

/* Any kernel size, any position: the window is clipped per pixel. Used for kernels
   other than 3x3, which MobileNet does not have. */
static void dw_pixel_clipped(const tt_shape *s, const float *x, const float *w, const float *bias, int act, int n,
                             int oy, int ox, float *restrict y) {
  const int C = s->c;
  int ky0, ky1, kx0, kx1;
  tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
  tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
  const int iy = oy * s->sh - s->pt, ix = ox * s->sw - s->pl;
  int c = 0;
  for (; c + 4 <= C; c += 4) {
    v128_t a = bias ? wasm_v128_load(bias + c) : wasm_f32x4_splat(0.0f);
    for (int ky = ky0; ky < ky1; ky++)
      for (int kx = kx0; kx < kx1; kx++)
        a = TT_MADD(wasm_v128_load(x + pix(s, n, iy + ky, ix + kx) + c),
                    wasm_v128_load(w + ((size_t)ky * s->kw + kx) * C + c), a);
    wasm_v128_store(y + c, act_v(a, act));
  }
  for (; c < C; c++) {
    float a = bias ? bias[c] : 0.0f;
    for (int ky = ky0; ky < ky1; ky++)
      for (int kx = kx0; kx < kx1; kx++) a += x[pix(s, n, iy + ky, ix + kx) + c] * w[((size_t)ky * s->kw + kx) * C + c];
    y[c] = act_f(a, act);
  }
}

void tt_dwconv_simd(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
  const int C = s->c;
  if (s->kh != 3 || s->kw != 3) {
    for (int n = 0; n < s->n; n++)
      for (int oy = 0; oy < s->oh; oy++)
        for (int ox = 0; ox < s->ow; ox++) dw_pixel_clipped(s, x, w, bias, act, n, oy, ox, y + opix(s, n, oy, ox));
    return;
  }
  /* Output rows [oya, oyb) and columns [oxa, oxb) have their whole window inside. */
  int oya, oyb, oxa, oxb;
  dw3x3_inside(s->oh, s->sh, s->pt, s->h, &oya, &oyb);
  dw3x3_inside(s->ow, s->sw, s->pl, s->w, &oxa, &oxb);
  const size_t rs = (size_t)s->w * C;
  for (int n = 0; n < s->n; n++)
    for (int oy = oya; oy < oyb && oxa < oxb; oy++)
      dw3x3_row(x + pix(s, n, oy * s->sh - s->pt, oxa * s->sw - s->pl), (size_t)s->sw * C, rs, oxb - oxa, C, w, bias,
                act, y + opix(s, n, oy, oxa));
  /* The border: runs along a row or a column whose windows lose one row or one column
     of taps go to dw3x3_edge; the rest (corners, windows losing more) pixel by pixel. */
  for (int n = 0; n < s->n; n++) {
    for (int ox = 0; ox < s->ow; ox++) { /* border columns, interior rows */
      const int k = ox < oxa || ox >= oxb ? dw3x3_where(ox, s->sw, s->pl, s->w) : 0;
      if ((k == 1 || k == 2) && oya < oyb)
        dw3x3_edge(s, x, n, oya, oyb, ox, ox + 1, -1, k == 1 ? 0 : 2, w, bias, act, y);
    }
    for (int oy = 0; oy < s->oh; oy++) { /* border rows, interior columns */
      const int k = oy < oya || oy >= oyb ? dw3x3_where(oy, s->sh, s->pt, s->h) : 0;
      if ((k == 1 || k == 2) && oxa < oxb)
        dw3x3_edge(s, x, n, oy, oy + 1, oxa, oxb, k == 1 ? 0 : 2, -1, w, bias, act, y);
    }
  }
  /* A chunk of channels at a time so the packed weights fit (on the stack: each thread
     running the kernel needs its own). */
  float wp[10 * DW_CHUNK];
  for (int c0 = 0; c0 < C; c0 += DW_CHUNK) {
    const int cn = C - c0 < DW_CHUNK ? C - c0 : DW_CHUNK;
    const float *wt = w + c0, *bt = bias ? bias + c0 : NULL;
    dw3x3_pack(w, bias, C, c0, cn, wp);
    for (int n = 0; n < s->n; n++)
      for (int oy = 0; oy < s->oh; oy++) {
        const int ky = oy < oya || oy >= oyb ? dw3x3_where(oy, s->sh, s->pt, s->h) : 0;
        float *yrow = y + opix(s, n, oy, 0) + c0;
        for (int ox = 0; ox < s->ow; ox++) {
          if (ky == 0 && ox == oxa && oxa < oxb) ox = oxb; /* the row kernel's */
          if (ox == s->ow) break;
          const int kx = ox < oxa || ox >= oxb ? dw3x3_where(ox, s->sw, s->pl, s->w) : 0;
          if ((ky == 0 && kx < 3) || (kx == 0 && ky < 3)) continue; /* done above */
          dw3x3_border(s, x, n, oy, ox, c0, cn, wp, wt, bt, act, yrow);
        }
      }
  }
}

static void bwd_input_simd(const tt_shape *s, const float *dy, const float *w, float *dx, int c0, int c1) {
  const int C = s->c, cn = c1 - c0;
  for (size_t p = 0; p < (size_t)s->n * s->h * s->w; p++) memset(dx + p * C + c0, 0, (size_t)cn * sizeof(float));
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const float *g = dy + opix(s, n, oy, ox) + c0;
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++)
            vmuladd(cn, dx + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx) + c0, g,
                    w + ((size_t)ky * s->kw + kx) * C + c0);
      }
    }
}

void tt_dwconv_backward_input_simd(const tt_shape *s, const float *dy, const float *w, float *dx) {
  bwd_input_simd(s, dy, w, dx, 0, s->c);
}

static void bwd_filter_simd(const tt_shape *s, const float *x, const float *dy, float *dw, int c0, int c1) {
  const int C = s->c, cn = c1 - c0;
  for (int n = 0; n < s->n; n++)
    for (int oy = 0; oy < s->oh; oy++) {
      int ky0, ky1;
      tap_range(oy, s->sh, s->pt, s->kh, s->h, &ky0, &ky1);
      for (int ox = 0; ox < s->ow; ox++) {
        int kx0, kx1;
        tap_range(ox, s->sw, s->pl, s->kw, s->w, &kx0, &kx1);
        const float *g = dy + opix(s, n, oy, ox) + c0;
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++)
            vmuladd(cn, dw + ((size_t)ky * s->kw + kx) * C + c0,
                    x + pix(s, n, oy * s->sh - s->pt + ky, ox * s->sw - s->pl + kx) + c0, g);
      }
    }
}

void tt_dwconv_backward_filter_simd(const tt_shape *s, const float *x, const float *dy, float *dw) {
  bwd_filter_simd(s, x, dy, dw, 0, s->c);
}
#endif

void tt_dwconv(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y) {
#ifdef __wasm_simd128__
  tt_bands(tt_dwconv_simd, (double)s->kh * s->kw * s->c, s, x, w, bias, act, y);
#else
  tt_bands(tt_dwconv_scalar, (double)s->kh * s->kw * s->c, s, x, w, bias, act, y);
#endif
}

#ifdef __wasm_simd128__
#define BWD_INPUT  bwd_input_simd
#define BWD_FILTER bwd_filter_simd
#else
#define BWD_INPUT  bwd_input_scalar
#define BWD_FILTER bwd_filter_scalar
#endif

/* The backward kernels across threads: slices of channels, taken by whichever thread is
   free (several slices a thread, so a slower core takes fewer). Slices start at
   multiples of 4, so each channel runs in the same SIMD lane, or the same scalar tail,
   as without the cut: the results do not depend on the number of threads. */
typedef struct {
  const tt_shape *s;
  const float *a, *b; /* input: dy, w; filter: x, dy */
  float *out;
  int filter, step;
} bwd_split;

static void bwd_task(void *p, int t) {
  const bwd_split *b = p;
  const int c0 = t * b->step, c1 = c0 + b->step < b->s->c ? c0 + b->step : b->s->c;
  if (b->filter)
    BWD_FILTER(b->s, b->a, b->b, b->out, c0, c1);
  else
    BWD_INPUT(b->s, b->a, b->b, b->out, c0, c1);
}

#define BWD_PAR_MIN (1 << 17) /* multiply-adds below which a pool trip does not pay */

static void bwd_run(const tt_shape *s, const float *a, const float *b, float *out, int filter) {
  const int T = tt_threads(), C = s->c;
  const double macs = (double)s->n * s->oh * s->ow * s->kh * s->kw * C;
  if (T < 2 || C < 16 || macs < BWD_PAR_MIN) {
    if (filter)
      BWD_FILTER(s, a, b, out, 0, C);
    else
      BWD_INPUT(s, a, b, out, 0, C);
    return;
  }
  int step = (C + 4 * T - 1) / (4 * T); /* about four slices a thread */
  step = step < 16 ? 16 : (step + 3) / 4 * 4;
  bwd_split sp = {s, a, b, out, filter, step};
  tt_parallel((C + step - 1) / step, bwd_task, &sp);
}

void tt_dwconv_backward_input(const tt_shape *s, const float *dy, const float *w, float *dx) {
  bwd_run(s, dy, w, dx, 0);
}

void tt_dwconv_backward_filter(const tt_shape *s, const float *x, const float *dy, float *dw) {
  bwd_run(s, x, dy, dw, 1);
}
