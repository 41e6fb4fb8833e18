/* The functions the WebAssembly module exports: plain ints, floats and pointers into
   linear memory, so the JS side needs no knowledge of C structs. Every call that can
   fail returns a negative code or NULL with the reason in tt_error(). */
#include "image.h"
#include "net.h"
#include "tt.h"
#include "weights.h"
#include <stdlib.h>
#include <string.h>

#ifdef __EMSCRIPTEN__
#define API(name) __attribute__((export_name(#name)))
#else
#define API(name)
#endif

API(tt_alloc) void *tt_alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) tt_fail(TT_ENOMEM, "out of memory allocating %zu bytes", n);
  return p;
}
API(tt_free) void tt_free(void *p) { free(p); }
API(tt_error) const char *tt_error(void) { return tt_last_error(); }

API(tt_decode_weights)
int tt_decode_weights(const char *name, const uint8_t *src, size_t len, size_t count, int enc,
                      double qmin, double qscale, float *dst) {
  return tt_weights_decode(name, src, len, count, enc, qmin, qscale, dst);
}

API(tt_hash) void tt_hash(const uint8_t *p, size_t n, uint32_t *out2) {
  uint64_t h = tt_hash64(p, n, TT_HASH64_INIT);
  out2[0] = (uint32_t)h, out2[1] = (uint32_t)(h >> 32);
}

/* ---- networks ---- */

API(tt_net_new) tt_net *tt_net_new(int h, int w, int c) { return tt_net_create(h, w, c); }
API(tt_net_delete) void tt_net_delete(tt_net *net) { tt_net_free(net); }

/* p: type, in0, in1, kh, kw, sh, sw, same, pt, pb, pl, pr, channels, act */
API(tt_net_add_op)
int tt_net_add_op(tt_net *net, const char *name, const int *p, float scale, float offset,
                  const float *w, size_t wn, const float *b, size_t bn) {
  tt_op_desc d = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11],
                  p[12], p[13], scale, offset};
  return tt_net_add(net, name, &d, w, wn, b, bn);
}

API(tt_net_fold)
int tt_net_fold(tt_net *net, int i, const float *gamma, const float *beta, const float *mean,
                const float *var, size_t n, float eps) {
  return tt_net_fold_bn(net, i, gamma, beta, mean, var, n, eps);
}

API(tt_net_run) const float *tt_net_run(tt_net *net, const float *x, int n, int last) {
  return tt_net_forward(net, x, n, last);
}

/* out3: h, w, c of op i's output. */
API(tt_net_shape) int tt_net_shape(const tt_net *net, int i, int *out3) {
  const tt_op *o = tt_net_op(net, i);
  if (!o) return tt_fail(TT_EINVAL, "op %d does not exist", i);
  out3[0] = o->h, out3[1] = o->w, out3[2] = o->c;
  return TT_OK;
}

API(tt_net_memory) size_t tt_net_memory(const tt_net *net) { return tt_net_activation_bytes(net); }

/* ---- images ---- */

API(tt_img_decode) tt_image *tt_img_decode(const uint8_t *data, size_t len) {
  tt_image *im = malloc(sizeof *im);
  if (!im) { tt_fail(TT_ENOMEM, "out of memory"); return NULL; }
  if (tt_image_decode(data, len, im) < 0) { free(im); return NULL; }
  return im;
}
API(tt_img_delete) void tt_img_delete(tt_image *im) {
  if (im) tt_image_free(im), free(im);
}
API(tt_img_width) int tt_img_width(const tt_image *im) { return im->w; }
API(tt_img_height) int tt_img_height(const tt_image *im) { return im->h; }
API(tt_img_pixels) const uint8_t *tt_img_pixels(const tt_image *im) { return im->rgb; }

/* mode 0: whole image; 1: centre square; 2: the view in v (x0, y0, cw, ch, flip,
   brightness, contrast, saturation). */
API(tt_img_sample)
int tt_img_sample(const tt_image *im, int mode, const float *v, int dw, int dh, int align,
                  float *dst) {
  tt_view view;
  if (mode == 0) view = tt_view_full(im);
  else if (mode == 1) view = tt_view_center_square(im);
  else view = (tt_view){v[0], v[1], v[2], v[3], v[4] != 0, v[5], v[6], v[7]};
  return tt_image_sample(im, &view, dw, dh, align, dst);
}
