/* The functions the WebAssembly module exports: plain ints, floats and pointers into
   linear memory, so the JS side needs no knowledge of C structs. Every call that can
   fail returns a negative code or NULL with the reason in tt_error(). */
#include "augment.h"
#include "image.h"
#include "kernels/kernels.h"
#include "net.h"
#include "threads.h"
#include "train.h"
#include "tt.h"
#include "weights.h"
#include <math.h>
#include <pthread.h> /* pthread_self: the crash test hook below */
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

/* ---- threads (wasm/threads.mjs lends them; see threads.h) ---- */

API(tt_threads) int tt_api_threads(void) { return tt_threads(); }
API(tt_threads_lend) int tt_api_threads_lend(void) { return tt_threads_lend(); }
API(tt_threads_stop) void tt_api_threads_stop(void) { tt_threads_stop(); }
API(tt_threads_crashed) void tt_api_threads_crashed(void) { tt_threads_crashed(); }
API(tt_threads_lost) int tt_api_threads_lost(void) { return tt_threads_lost(); }

/* For tests of the above: a loop whose task traps on the first lent thread to run one,
   while the other tasks wait until that thread has left the pool. By thread, not by
   task: any thread may take a late thread's task, the caller included (which, trapping
   itself, left a waiting worker that close() then waited for forever). */
static struct { pthread_t caller; int lost, trapped; } crash;
static void crash_task(void *ctx, int i) {
  if (!pthread_equal(pthread_self(), crash.caller) &&
      !__atomic_exchange_n(&crash.trapped, 1, __ATOMIC_SEQ_CST))
    __builtin_trap();
  while (tt_threads_lost() == crash.lost) {}
}
API(tt_test_crash_thread) void tt_test_crash_thread(void) {
  crash.caller = pthread_self(), crash.lost = tt_threads_lost(), crash.trapped = 0;
  if (tt_threads() > 1) tt_parallel(2, crash_task, NULL);
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

API(tt_net_quant)
int tt_net_quant(tt_net *net, int i, double qmin, double qscale) {
  return tt_net_quantized(net, i, qmin, qscale);
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

/* ---- training ---- */

/* A new net holding copies of src's ops first..last, its input the output of first-1. */
API(tt_net_slice) tt_net *tt_net_slice(const tt_net *src, int first, int last) {
  const tt_op *b = tt_net_op(src, first - 1);
  if (!b) { tt_fail(TT_EINVAL, "cannot cut before op %d", first); return NULL; }
  tt_net *net = tt_net_create(b->h, b->w, b->c);
  if (net && first <= last && tt_net_append(net, src, first, last) < 0) { tt_net_free(net); return NULL; }
  return net;
}

/* Appends a dense layer with seeded initial weights: He-uniform before a ReLU, Glorot-
   uniform otherwise (the usual Keras defaults for such heads); zero biases. */
API(tt_net_add_dense)
int tt_net_add_dense(tt_net *net, const char *name, int in, int units, int act, uint32_t seed) {
  const tt_op *a = tt_net_op(net, in);
  if (!a) return tt_fail(TT_EINVAL, "dense '%s' reads op %d, which does not exist", name, in);
  size_t fan_in = (size_t)a->h * a->w * a->c, n = fan_in * (size_t)(units > 0 ? units : 0);
  /* 2^16 x 2^16 floats do not fit a 32-bit size_t (wasm32): n * sizeof *w wrapped to a
     small allocation the initialisation then overflowed. */
  if (units < 1 || units > 65536 || fan_in > 65536 || (uint64_t)fan_in * (uint64_t)units > ((uint64_t)1 << 28))
    return tt_fail(TT_EINVAL, "dense '%s': %d units on %zu features", name, units, fan_in);
  float *w = malloc(n * sizeof *w);
  if (!w) return tt_fail(TT_ENOMEM, "out of memory for dense '%s'", name);
  uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 1;
  float limit = act ? sqrtf(6.0f / (float)fan_in) : sqrtf(6.0f / (float)(fan_in + (size_t)units));
  for (size_t i = 0; i < n; i++) w[i] = (tt_rng_uniform(&rng) * 2 - 1) * limit;
  tt_op_desc d = {0};
  d.type = TT_OP_DENSE, d.in0 = in, d.channels = units, d.act = act;
  int rc = tt_net_add(net, name, &d, w, n, NULL, 0);
  free(w);
  return rc;
}

/* c: epochs, batch, optimizer, lr, weight_decay, momentum, warmup, cosine,
   label_smoothing, balanced, val_fraction, patience, seed (doubles); x: float32, or half
   precision. */
static tt_trainer *trainer_create(tt_net *net, const double *c, int classes, const void *x,
                                  int half, int n_images, int views, const int *labels) {
  tt_train_cfg cfg;
  tt_train_defaults(&cfg);
  cfg.epochs = (int)c[0], cfg.batch = (int)c[1], cfg.optimizer = (int)c[2];
  cfg.lr = (float)c[3], cfg.weight_decay = (float)c[4], cfg.momentum = (float)c[5];
  cfg.warmup = (float)c[6], cfg.cosine = (int)c[7], cfg.label_smoothing = (float)c[8];
  cfg.balanced = (int)c[9], cfg.val_fraction = (float)c[10], cfg.patience = (int)c[11];
  cfg.seed = (uint64_t)c[12];
  return half ? tt_trainer_new_half(net, &cfg, classes, x, n_images, views, labels)
              : tt_trainer_new(net, &cfg, classes, x, n_images, views, labels);
}

API(tt_trainer_create)
tt_trainer *tt_trainer_create(tt_net *net, const double *c, int classes, const float *x,
                              int n_images, int views, const int *labels) {
  return trainer_create(net, c, classes, x, 0, n_images, views, labels);
}

/* The same, the cached inputs x in half precision (tt_f16_pack). */
API(tt_trainer_create_half)
tt_trainer *tt_trainer_create_half(tt_net *net, const double *c, int classes, const uint16_t *x,
                                   int n_images, int views, const int *labels) {
  return trainer_create(net, c, classes, x, 1, n_images, views, labels);
}

/* n floats at x to half precision at y (may not overlap). */
API(tt_f16_pack) void tt_f16_pack_api(const float *x, int n, uint16_t *y) {
  if (n > 0) tt_f16_pack((size_t)n, x, y);
}

/* out: epoch, batch, batches_per_epoch, done, stopped_early, best_epoch, train_loss,
   train_acc, val_loss, val_acc, best_val_loss, lr, n_train, n_val */
API(tt_trainer_step) int tt_trainer_step(tt_trainer *tr, int max_batches, double *out) {
  tt_progress p = {0};
  int rc = tt_trainer_run(tr, max_batches, &p);
  double v[14] = {p.epoch, p.batch, p.batches_per_epoch, p.done, p.stopped_early, p.best_epoch,
                  p.train_loss, p.train_acc, p.val_loss, p.val_acc, p.best_val_loss, p.lr,
                  p.n_train, p.n_val};
  memcpy(out, v, sizeof v);
  return rc;
}

API(tt_trainer_cancel) void tt_trainer_cancel(tt_trainer *tr) { tt_trainer_stop(tr); }
API(tt_trainer_matrix) int tt_trainer_matrix(tt_trainer *tr, int *m) { return tt_trainer_confusion(tr, m); }
API(tt_trainer_val_indices) int tt_trainer_val_indices(const tt_trainer *tr, int *idx) { return tt_trainer_validation(tr, idx); }
API(tt_trainer_delete) void tt_trainer_delete(tt_trainer *tr) { tt_trainer_free(tr); }

API(tt_net_predict) int tt_net_predict(tt_net *net, const float *x, int n, float *probs) {
  return tt_predict(net, x, n, probs);
}

/* ---- augmentation ---- */

API(tt_rng_new) uint64_t *tt_rng_new(uint32_t lo, uint32_t hi) {
  uint64_t *s = malloc(sizeof *s);
  if (s) *s = (uint64_t)hi << 32 | lo;
  return s;
}

/* a: scale_min, ratio_min, ratio_max, flip, brightness, contrast, saturation */
API(tt_img_sample_aug)
int tt_img_sample_aug(const tt_image *im, const float *a, uint64_t *rng, int dw, int dh, float *dst) {
  tt_aug aug = {a[0], a[1], a[2], a[3] != 0, a[4], a[5], a[6]};
  tt_view v = tt_augment(im, &aug, rng);
  return tt_image_sample(im, &v, dw, dh, 1, dst);
}

/* ---- saved models ---- */

/* out2: pointer and length of the new file bytes (free with tt_free). */
API(tt_model_save) int tt_model_save(const tt_net *net, const uint8_t *meta, size_t meta_len, uint32_t *out2) {
  uint8_t *p;
  size_t n;
  int rc = tt_save(net, meta, meta_len, &p, &n);
  if (rc < 0) return rc;
  out2[0] = (uint32_t)(uintptr_t)p, out2[1] = (uint32_t)n;
  return TT_OK;
}

/* out3: the new net, the metadata's offset in data, and its length. */
API(tt_model_load) int tt_model_load(const uint8_t *data, size_t len, uint32_t *out3) {
  tt_net *net;
  const uint8_t *meta;
  size_t ml;
  int rc = tt_load(data, len, &net, &meta, &ml);
  if (rc < 0) return rc;
  out3[0] = (uint32_t)(uintptr_t)net, out3[1] = (uint32_t)(meta - data), out3[2] = (uint32_t)ml;
  return TT_OK;
}

/* out (21 ints): the op's descriptor (14, as tt_net_add_op takes), its output h, w, c,
   then pointers to and counts of its weights and bias. For exporters and tests. */
API(tt_net_op_info) int tt_net_op_info(const tt_net *net, int i, int32_t *out) {
  const tt_op *o = tt_net_op(net, i);
  if (!o) return tt_fail(TT_EINVAL, "op %d does not exist", i);
  const tt_op_desc *d = &o->d;
  int32_t v[21] = {d->type, d->in0, d->in1, d->kh, d->kw, d->sh, d->sw, d->same, d->pt, d->pb,
                   d->pl, d->pr, d->channels, d->act, o->h, o->w, o->c,
                   (int32_t)(uintptr_t)o->wt, (int32_t)o->wn, (int32_t)(uintptr_t)o->bias, (int32_t)o->bn};
  memcpy(out, v, sizeof v);
  return TT_OK;
}
API(tt_net_op_scale) float tt_net_op_scale(const tt_net *net, int i) { return tt_net_op(net, i) ? tt_net_op(net, i)->d.scale : 0; }
/* With tt_net_op_scale, an act op's hard-swish/hard-sigmoid constants (a, b; net.h). */
API(tt_net_op_offset) float tt_net_op_offset(const tt_net *net, int i) { return tt_net_op(net, i) ? tt_net_op(net, i)->d.offset : 0; }
API(tt_net_op_name) const char *tt_net_op_name(const tt_net *net, int i) { return tt_net_op(net, i) ? tt_net_op(net, i)->name : ""; }
API(tt_net_ops) int tt_net_ops(const tt_net *net) { return tt_net_count(net); }

/* An image from raw 8-bit pixels (grey, grey+alpha, RGB or RGBA: channels 1-4), as a
   canvas or camera frame gives them; alpha is dropped like the decoder does. */
API(tt_img_from_pixels) tt_image *tt_img_from_pixels(const uint8_t *px, int w, int h, int channels) {
  if (w < 1 || h < 1 || w > TT_IMAGE_MAX_DIM || h > TT_IMAGE_MAX_DIM || (int64_t)w * h > TT_IMAGE_MAX_PIXELS ||
      channels < 1 || channels > 4) {
    tt_fail(TT_EINVAL, "pixels: %dx%d with %d channels is out of range", w, h, channels);
    return NULL;
  }
  tt_image *im = malloc(sizeof *im);
  size_t n = (size_t)w * h;
  uint8_t *rgb = malloc(n * 3);
  if (!im || !rgb) { free(im), free(rgb); tt_fail(TT_ENOMEM, "out of memory for a %dx%d image", w, h); return NULL; }
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = px + i * channels;
    int grey = channels < 3;
    rgb[i * 3] = p[0], rgb[i * 3 + 1] = p[grey ? 0 : 1], rgb[i * 3 + 2] = p[grey ? 0 : 2];
  }
  im->w = w, im->h = h, im->rgb = rgb;
  return im;
}
