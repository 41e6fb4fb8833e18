/* The WebAssembly module's own functions: the few exports that are not an engine
   function called as it is (the Makefile's EXPORTS lists those under their C names).
   Each here does what JS cannot do with plain numbers and the structs src/abi.h
   describes: allocation, images held behind a pointer, 64-bit values split in two, a
   seeded head, saved-model bytes. Every call that can fail returns a negative code or
   NULL with the reason in tt_last_error(). */
#include "abi.h"
#include "augment.h"
#include "image.h"
#include "net.h"
#include "threads.h"
#include "tt.h"
#include "weights.h"
#include <math.h>
#include <pthread.h> /* pthread_self: the crash test hook below */
#include <stdlib.h>
#include <string.h>

void *tt_alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) tt_fail(TT_ENOMEM, "out of memory allocating %zu bytes", n);
  return p;
}
void tt_free(void *p) { free(p); }

void tt_hash(const uint8_t *p, size_t n, uint32_t *out2) {
  uint64_t h = tt_hash64(p, n, TT_HASH64_INIT);
  out2[0] = (uint32_t)h, out2[1] = (uint32_t)(h >> 32);
}

/* ---- threads ---- */

/* For tests of the lent threads (wasm/threads.mjs, threads.h): a loop whose task traps on
   the first lent thread to run one,
   while the other tasks wait until that thread has left the pool. By thread, not by
   task: any thread may take a late thread's task, the caller included (which, trapping
   itself, left a waiting worker that close() then waited for forever). */
static struct {
  pthread_t caller;
  int lost, trapped;
} crash;
static void crash_task(void *ctx, int i) {
  if (!pthread_equal(pthread_self(), crash.caller) && !__atomic_exchange_n(&crash.trapped, 1, __ATOMIC_SEQ_CST))
    __builtin_trap();
  while (tt_threads_lost() == crash.lost) {}
}
void tt_test_crash_thread(void) {
  crash.caller = pthread_self(), crash.lost = tt_threads_lost(), crash.trapped = 0;
  if (tt_threads() > 1) tt_parallel(2, crash_task, NULL);
}

/* ---- images ---- */

tt_image *tt_img_decode(const uint8_t *data, size_t len) {
  tt_image *im = malloc(sizeof *im);
  if (!im) {
    tt_fail(TT_ENOMEM, "out of memory");
    return NULL;
  }
  if (tt_image_decode(data, len, im) < 0) {
    free(im);
    return NULL;
  }
  return im;
}
void tt_img_delete(tt_image *im) {
  if (im) tt_image_free(im), free(im);
}

/* The whole image (centre 0) or its centre square (centre 1), resized into dst. */
int tt_img_sample(const tt_image *im, int centre, int dw, int dh, int align, float *dst) {
  tt_view view = centre ? tt_view_center_square(im) : tt_view_full(im);
  return tt_image_sample(im, &view, dw, dh, align, dst);
}

/* ---- networks ---- */

/* A new net holding copies of src's ops first..last, its input the output of first-1. */
tt_net *tt_net_slice(const tt_net *src, int first, int last) {
  const tt_op *b = tt_net_op(src, first - 1);
  if (!b) {
    tt_fail(TT_EINVAL, "cannot cut before op %d", first);
    return NULL;
  }
  tt_net *net = tt_net_create(b->h, b->w, b->c);
  if (net && first <= last && tt_net_append(net, src, first, last) < 0) {
    tt_net_free(net);
    return NULL;
  }
  return net;
}

/* Appends a dense layer with seeded initial weights: He-uniform before a ReLU, Glorot-
   uniform otherwise (the usual Keras defaults for such heads); zero biases. */
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

/* ---- augmentation ---- */

/* A seeded generator (tt_rng_next's state) in linear memory; free with tt_free. */
uint64_t *tt_rng_new(uint32_t lo, uint32_t hi) {
  uint64_t *s = malloc(sizeof *s);
  if (s) *s = (uint64_t)hi << 32 | lo;
  return s;
}

/* A random view of im drawn with a (tt_aug) from rng, rendered into dst. */
int tt_img_sample_aug(const tt_image *im, const tt_aug *a, uint64_t *rng, int dw, int dh, float *dst) {
  tt_view v = tt_augment(im, a, rng);
  return tt_image_sample(im, &v, dw, dh, 1, dst);
}

/* ---- saved models ---- */

/* out2: pointer and length of the new file bytes (free with tt_free). */
int tt_model_save(const tt_net *net, const uint8_t *meta, size_t meta_len, uint32_t *out2) {
  uint8_t *p;
  size_t n;
  int rc = tt_save(net, meta, meta_len, &p, &n);
  if (rc < 0) return rc;
  out2[0] = (uint32_t)(uintptr_t)p, out2[1] = (uint32_t)n;
  return TT_OK;
}

/* out3: the new net, the metadata's offset in data, and its length. */
int tt_model_load(const uint8_t *data, size_t len, uint32_t *out3) {
  tt_net *net;
  const uint8_t *meta;
  size_t ml;
  int rc = tt_load(data, len, &net, &meta, &ml);
  if (rc < 0) return rc;
  out3[0] = (uint32_t)(uintptr_t)net, out3[1] = (uint32_t)(meta - data), out3[2] = (uint32_t)ml;
  return TT_OK;
}

/* An image from raw 8-bit pixels (grey, grey+alpha, RGB or RGBA: channels 1-4), as a
   canvas or camera frame gives them; alpha is dropped like the decoder does. */
tt_image *tt_img_from_pixels(const uint8_t *px, int w, int h, int channels) {
  tt_image *im = malloc(sizeof *im);
  if (!im) {
    tt_fail(TT_ENOMEM, "out of memory for a %dx%d image", w, h);
    return NULL;
  }
  if (tt_image_from_pixels(px, w, h, channels, im) < 0) {
    free(im);
    return NULL;
  }
  return im;
}
