/* Sampling: a view of a decoded image (crop box, flip, colour jitter) rendered into the
   model's float input by bilinear interpolation, bit-compatible with TensorFlow.js's
   resizeBilinear on the WASM backend (XNNPACK, float32 throughout). The step between the
   decoder (decode.c) or a canvas's pixels (tt_image_from_pixels, here) and the network:
   every training view and every prediction's input is made here. See image.h for the
   contract. */
#include "image.h"

#include <stdint.h>
#include <stdlib.h>

#include "tt.h"

/* ---- raw pixels ---------------------------------------------------------------------- */

int tt_image_from_pixels(const uint8_t *px, int w, int h, int channels, tt_image *out) {
  if (!out) return tt_fail(TT_EINVAL, "tt_image_from_pixels: out is NULL");
  out->w = out->h = 0;
  out->rgb = NULL;
  if (!px || w < 1 || h < 1 || w > TT_IMAGE_MAX_DIM || h > TT_IMAGE_MAX_DIM || (int64_t)w * h > TT_IMAGE_MAX_PIXELS ||
      channels < 1 || channels > 4)
    return tt_fail(TT_EINVAL, "pixels: %dx%d with %d channels is out of range%s", w, h, channels,
                   px ? "" : " (no data)");
  const size_t n = (size_t)w * h;
  uint8_t *rgb = malloc(n * 3);
  if (!rgb) return tt_fail(TT_ENOMEM, "out of memory for a %dx%d image", w, h);
  const int grey = channels < 3;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = px + i * channels;
    rgb[i * 3] = p[0], rgb[i * 3 + 1] = p[grey ? 0 : 1], rgb[i * 3 + 2] = p[grey ? 0 : 2];
  }
  out->w = w, out->h = h, out->rgb = rgb;
  return TT_OK;
}

/* ---- views ------------------------------------------------------------------------------ */

tt_view tt_view_full(const tt_image *im) {
  tt_view v;
  v.x0 = 0;
  v.y0 = 0;
  v.cw = im ? (float)im->w : 0;
  v.ch = im ? (float)im->h : 0;
  v.flip = 0;
  v.brightness = 0;
  v.contrast = 1;
  v.saturation = 1;
  return v;
}

/* Whole-pixel offsets (floor), so the crop equals tf.slice(img, [top, left], [s, s]). */
tt_view tt_view_center_square(const tt_image *im) {
  tt_view v = tt_view_full(im);
  if (!im) return v;
  int s = im->w < im->h ? im->w : im->h;
  v.x0 = (float)((im->w - s) / 2);
  v.y0 = (float)((im->h - s) / 2);
  v.cw = (float)s;
  v.ch = (float)s;
  return v;
}

/* ---- sampling ----------------------------------------------------------------------------- */

/* One output coordinate on one axis, with XNNPACK's arithmetic (what tfjs-backend-wasm
   runs for resizeBilinear with alignCorners or the legacy non-half-pixel rule):
     input = (float)o * scale;  i0 = (int)input;  i1 = min(i0+1, in-1);  a = input - i0
   all in float32. A crop adds its origin and clamps to the image; for the full view the
   origin is 0 and adding it is exact, so the result is bit-identical. */
typedef struct {
  int i0, i1;
  float a;
} tap;

static tap axis_tap(float origin, float scale, int o, int in) {
  tap t;
  float s = (float)o * scale;
  s = origin + s;
  float hi = (float)(in - 1);
  if (!(s > 0.0f)) s = 0.0f; /* also catches NaN */
  if (s > hi) s = hi;
  t.i0 = (int)s;
  t.i1 = t.i0 + 1 < in ? t.i0 + 1 : in - 1;
  t.a = s - (float)t.i0;
  return t;
}

/* A crop narrower than one pixel maps every corner-aligned sample onto its origin
   (rather than running backwards, as extent-1 < 0 would). */
static float axis_scale(float extent, int out, int align_corners) {
  if (align_corners && out > 1) return extent > 1.0f ? (extent - 1.0f) / (float)(out - 1) : 0.0f;
  return extent / (float)out;
}

static int finite_f(float x) { return x == x && x - x == 0.0f; }

int tt_image_sample(const tt_image *im, const tt_view *v, int dw, int dh, int align_corners, float *dst) {
  if (!im || !v || !dst) return tt_fail(TT_EINVAL, "tt_image_sample: NULL argument");
  if (!im->rgb || im->w <= 0 || im->h <= 0 || im->w > TT_IMAGE_MAX_DIM || im->h > TT_IMAGE_MAX_DIM)
    return tt_fail(TT_EINVAL, "tt_image_sample: no decoded image (%dx%d)", im->w, im->h);
  if (dw <= 0 || dh <= 0 || dw > (1 << 24) || dh > (1 << 24))
    return tt_fail(TT_EINVAL, "tt_image_sample: bad output size %dx%d", dw, dh);
  if ((size_t)dw > SIZE_MAX / 3 / (size_t)dh)
    return tt_fail(TT_EINVAL, "tt_image_sample: output %dx%d is too large", dw, dh);
  if (!finite_f(v->x0) || !finite_f(v->y0) || !finite_f(v->cw) || !finite_f(v->ch) || !(v->cw > 0) || !(v->ch > 0))
    return tt_fail(TT_EINVAL, "tt_image_sample: bad crop box (%g,%g %gx%g)", (double)v->x0, (double)v->y0,
                   (double)v->cw, (double)v->ch);
  if (!finite_f(v->brightness) || !finite_f(v->contrast) || !finite_f(v->saturation))
    return tt_fail(TT_EINVAL, "tt_image_sample: bad colour jitter (%g, %g, %g)", (double)v->brightness,
                   (double)v->contrast, (double)v->saturation);

  /* value/255 in float32, as tfjs's img.div(255) does before resizing */
  float lut[256];
  for (int i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;

  const size_t W = (size_t)im->w;
  const uint8_t *px = im->rgb;
  const float sx = axis_scale(v->cw, dw, align_corners);
  const float sy = axis_scale(v->ch, dh, align_corners);

  for (int oy = 0; oy < dh; oy++) {
    tap ty = axis_tap(v->y0, sy, oy, im->h);
    const uint8_t *top = px + (size_t)ty.i0 * W * 3;
    const uint8_t *bot = px + (size_t)ty.i1 * W * 3;
    float *row = dst + (size_t)oy * (size_t)dw * 3;
    for (int ox = 0; ox < dw; ox++) {
      /* flip mirrors output columns: column ox shows what column dw-1-ox would */
      tap tx = axis_tap(v->x0, sx, v->flip ? dw - 1 - ox : ox, im->w);
      const uint8_t *tl = top + (size_t)tx.i0 * 3, *tr = top + (size_t)tx.i1 * 3;
      const uint8_t *bl = bot + (size_t)tx.i0 * 3, *br = bot + (size_t)tx.i1 * 3;
      float *o = row + (size_t)ox * 3;
      for (int c = 0; c < 3; c++) {
        /* XNNPACK f32-ibilinear order; separate statements keep each product rounded
           (no fused multiply-add under any -ffp-contract). */
        float vtl = lut[tl[c]], vtr = lut[tr[c]], vbl = lut[bl[c]], vbr = lut[br[c]];
        float vtd = vtr - vtl;
        float vbd = vbr - vbl;
        float mt = vtd * tx.a;
        float mb = vbd * tx.a;
        float vt = vtl + mt;
        float vb = vbl + mb;
        float vd = vb - vt;
        float md = vd * ty.a;
        o[c] = vt + md;
      }
    }
  }

  /* Colour jitter, skipped entirely when it is the identity. */
  const float b = v->brightness, k = v->contrast, s = v->saturation;
  if (b == 0.0f && k == 1.0f && s == 1.0f) return TT_OK;
  const size_t n = (size_t)dw * (size_t)dh;
  if (b != 0.0f)
    for (size_t i = 0; i < n * 3; i++) dst[i] += b;
  float mean = 0;
  if (k != 1.0f) {
    double acc = 0;
    for (size_t i = 0; i < n; i++)
      acc += 0.299 * (double)dst[3 * i] + 0.587 * (double)dst[3 * i + 1] + 0.114 * (double)dst[3 * i + 2];
    mean = (float)(acc / (double)n);
  }
  for (size_t i = 0; i < n; i++) {
    float *p = dst + 3 * i;
    for (int c = 0; c < 3; c++)
      if (k != 1.0f) p[c] = mean + (p[c] - mean) * k;
    if (s != 1.0f) {
      float g = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
      for (int c = 0; c < 3; c++) p[c] = g + (p[c] - g) * s;
    }
    /* clamp; extreme (finite) jitter can overflow to inf and then NaN: that becomes 0 */
    for (int c = 0; c < 3; c++) p[c] = p[c] >= 0.0f ? (p[c] > 1.0f ? 1.0f : p[c]) : 0.0f;
  }
  return TT_OK;
}
