/* Hostile inputs, natively: every kind of bad file the engine may be handed gets a
   clear error naming the problem (asserted on the message text), never a crash or a
   huge allocation; and after each one the same process still decodes and embeds a good
   image exactly as before. The same list runs through the real wasm engine and real
   models in tests/hostile.test.mjs; README "Hostile inputs" tabulates the answers.

   Fixtures: tests/fixtures/hostile/ (tests/fuzz/make_image_seeds.py) and
   tests/fixtures/images/ ($TT_FIXTURES); run from the repository root. */
#include "check.h"
#include "image.h"
#include "net.h"
#include "train.h"
#include "tt.h"
#include "weights.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the largest single allocation, to prove size limits act before allocating ----
   Interposes malloc/calloc/realloc (glibc); not under AddressSanitizer, which owns them. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer) || !defined(__GLIBC__)
#define TRACK_ALLOC 0
#else
#define TRACK_ALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static size_t g_largest;
static int g_tracking;
static void note_size(size_t n) {
  if (g_tracking && n > g_largest) g_largest = n;
}
void *malloc(size_t n) {
  note_size(n);
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  note_size(a * b);
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  note_size(n);
  return __libc_realloc(p, n);
}
#endif
static void track_start(void) {
#if TRACK_ALLOC
  g_largest = 0, g_tracking = 1;
#endif
}
/* Largest request since track_start, or 0 when not tracked. */
static size_t track_stop(void) {
#if TRACK_ALLOC
  g_tracking = 0;
  return g_largest;
#else
  return 0;
#endif
}

/* ---- files ---------------------------------------------------------------------------- */

typedef struct {
  uint8_t *p;
  size_t n;
} blob;

static blob slurp(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  blob b = {NULL, 0};
  FILE *f = fopen(path, "rb");
  if (!f) {
    CHECK(0, "cannot open %s", path);
    return b;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b.p = malloc((size_t)n + 1);
  b.n = fread(b.p, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static const char *images_dir(void) {
  const char *e = getenv("TT_FIXTURES");
  return e ? e : "tests/fixtures/images";
}
#define HOSTILE "tests/fixtures/hostile"

/* ---- the reference pipeline: decode, resize, a small net, all bit-exact ------------- */

static blob g_good;     /* chelsea_64.png */
static tt_net *g_net;   /* conv 3x3/2 + relu6, depthwise, pointwise, pool, dense */
static float g_ref[10]; /* its output for g_good, computed before anything hostile */

static tt_net *small_net(void) {
  tt_net *net = tt_net_create(16, 16, 3);
  uint64_t rng = 99;
  float w[3 * 3 * 3 * 8 + 8 * 8 + 8 * 10];
  for (size_t i = 0; i < sizeof w / sizeof *w; i++) w[i] = tt_rng_uniform(&rng) - 0.5f;
  tt_op_desc c = {0};
  c.type = TT_OP_CONV2D, c.in0 = 0, c.kh = c.kw = 3, c.sh = c.sw = 2, c.same = 1, c.channels = 8, c.act = 2;
  tt_net_add(net, "conv", &c, w, 3 * 3 * 3 * 8, NULL, 0);
  tt_op_desc d = {0};
  d.type = TT_OP_DEPTHWISE, d.in0 = 1, d.kh = d.kw = 3, d.sh = d.sw = 1, d.same = 1, d.act = 2;
  tt_net_add(net, "dw", &d, w + 10, 9 * 8, NULL, 0);
  tt_op_desc p = {0};
  p.type = TT_OP_CONV2D, p.in0 = 2, p.kh = p.kw = p.sh = p.sw = 1, p.channels = 8;
  tt_net_add(net, "pw", &p, w + 3 * 3 * 3 * 8, 8 * 8, NULL, 0);
  tt_op_desc g = {0};
  g.type = TT_OP_AVGPOOL, g.in0 = 3, g.kh = g.kw = 8, g.sh = g.sw = 1;
  tt_net_add(net, "pool", &g, NULL, 0, NULL, 0);
  tt_op_desc o = {0};
  o.type = TT_OP_DENSE, o.in0 = 4, o.channels = 10;
  int rc = tt_net_add(net, "logits", &o, w + 3 * 3 * 3 * 8 + 8 * 8, 8 * 10, NULL, 0);
  CHECK(rc == 5, "building the reference net: %s", tt_last_error());
  return net;
}

static int embed(const blob *b, float *out) {
  tt_image im;
  int rc = tt_image_decode(b->p, b->n, &im);
  if (rc < 0) return rc;
  float x[16 * 16 * 3];
  tt_view v = tt_view_full(&im);
  rc = tt_image_sample(&im, &v, 16, 16, 1, x);
  tt_image_free(&im);
  if (rc < 0) return rc;
  const float *y = tt_net_forward(g_net, x, 1, -1);
  if (!y) return TT_ENOMEM;
  memcpy(out, y, sizeof g_ref);
  return TT_OK;
}

/* After every hostile input: the same process embeds the good image as before. */
static void still_works(const char *after) {
  float e[10];
  int rc = embed(&g_good, e);
  CHECK(rc == TT_OK && memcmp(e, g_ref, sizeof e) == 0, "after %s, the good image no longer embeds the same (%s)",
        after, rc < 0 ? tt_last_error() : "different values");
}

/* Calls that should fail: code and a message fragment. */
static void expect(const char *what, int rc, int code, const char *fragment) {
  CHECK(rc == code, "%s: returned %d, expected %d (%s)", what, rc, code, tt_last_error());
  CHECK(strstr(tt_last_error(), fragment) != NULL, "%s: message '%s' lacks '%s'", what, tt_last_error(), fragment);
  still_works(what);
}

static void expect_image(const char *what, const uint8_t *p, size_t n, int code, const char *fragment) {
  tt_image im;
  memset(&im, 0x5a, sizeof im);
  int rc = tt_image_decode(p, n, &im);
  CHECK(im.rgb == NULL && im.w == 0 && im.h == 0, "%s: *out not zeroed on error", what);
  if (rc == 0) tt_image_free(&im);
  expect(what, rc, code, fragment);
}

/* ---- images ------------------------------------------------------------------------- */

static void put32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A complete, well-formed PNG header declaring w x h, one tiny IDAT, IEND. */
static size_t png_declaring(uint8_t *b, uint32_t w, uint32_t h) {
  static const uint8_t head[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  static const uint8_t idat[] = {0,    0,    0,    11,   'I',  'D',  'A',  'T', 0x78, 0x9c, 0x63,
                                 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0,   0,    0,    0};
  static const uint8_t iend[] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
  size_t n = 0;
  memcpy(b, head, 8), n = 8;
  put32be(b + n, 13), memcpy(b + n + 4, "IHDR", 4), n += 8;
  put32be(b + n, w), put32be(b + n + 4, h), n += 8;
  b[n++] = 8, b[n++] = 2, b[n++] = 0, b[n++] = 0, b[n++] = 0; /* 8-bit RGB */
  put32be(b + n, 0), n += 4;                                  /* CRC (not checked) */
  memcpy(b + n, idat, sizeof idat), n += sizeof idat;
  memcpy(b + n, iend, sizeof iend), n += sizeof iend;
  return n;
}

static void test_huge_declared(void) {
  uint8_t b[256];
  tt_image good;
  track_start();
  tt_image_decode(g_good.p, g_good.n, &good);
  CHECK(!TRACK_ALLOC || track_stop() >= (size_t)good.w * good.h * 3, "allocation tracking does not work");
  track_stop();
  tt_image_free(&good);

  size_t n = png_declaring(b, 100000, 100000);
  track_start();
  tt_image im;
  int rc = tt_image_decode(b, n, &im);
  size_t big = track_stop();
  CHECK(big < 65536, "PNG declaring 100000x100000: the decoder allocated %zu bytes before refusing", big);
  expect("PNG declaring 100000x100000", rc, TT_ENOMEM, "100000x100000");
  CHECK(strstr(tt_last_error(), "limit") != NULL, "message: %s", tt_last_error());

  /* A 16 KB PNG declaring 1x1 whose IDAT inflates to 16 MB: stopped near what 1x1 needs. */
  blob bomb = slurp(HOSTILE, "bomb_1x1_16mb.png");
  track_start();
  rc = tt_image_decode(bomb.p, bomb.n, &im);
  big = track_stop();
  CHECK(big < (4u << 20), "PNG bomb: the decoder allocated %zu bytes for a 1x1 image", big);
  expect("PNG bomb (1x1, inflates to 16 MB)", rc, TT_ENOMEM, "out of memory decoding a 1x1 PNG (or its data inflates");
  free(bomb.p);

  /* Under the per-side limit but over the pixel limit (16384 x 16384 = 268 MP). */
  n = png_declaring(b, 16384, 16384);
  track_start();
  rc = tt_image_decode(b, n, &im);
  big = track_stop();
  CHECK(big < 65536, "PNG declaring 16384x16384 allocated %zu bytes", big);
  expect("PNG declaring 16384x16384", rc, TT_ENOMEM, "16384x16384");

  /* GIF, BMP and JPEG headers declaring huge canvases. */
  uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 0xff, 0xff, 0xff, 0xff, 0,    0,    0, 0x2c, 0,
                   0,   0,   0,   1,   0,   1,   0,    0,    2,    2,    0x4c, 0x01, 0, 0x3b};
  track_start();
  rc = tt_image_decode(gif, sizeof gif, &im);
  big = track_stop();
  CHECK(big < 65536, "GIF declaring 65535x65535 allocated %zu bytes", big);
  expect("GIF declaring 65535x65535", rc, TT_ENOMEM, "65535x65535");

  uint8_t bmp[54] = {'B', 'M'};
  bmp[10] = 54, bmp[14] = 40;
  uint32_t wh = 100000;
  memcpy(bmp + 18, &wh, 4), memcpy(bmp + 22, &wh, 4); /* little-endian hosts */
  bmp[26] = 1, bmp[28] = 24;
  track_start();
  rc = tt_image_decode(bmp, sizeof bmp, &im);
  big = track_stop();
  CHECK(big < 65536, "BMP declaring 100000x100000 allocated %zu bytes", big);
  expect("BMP declaring 100000x100000", rc, TT_ENOMEM, "100000x100000");

  /* JPEG: SOI, SOF0 65000x65000 3 components, EOI. */
  uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xfd, 0xe8, 0xfd, 0xe8, 3, 1, 0x11, 0,  2, 0x11, 0,   3,
                   0x11, 0,    0xff, 0xda, 0, 12, 3, 1,    0,    2,    0,    3, 0, 0,    63, 0, 0xff, 0xd9};
  track_start();
  rc = tt_image_decode(jpg, sizeof jpg, &im);
  big = track_stop();
  CHECK(big < 65536, "JPEG declaring 65000x65000 allocated %zu bytes", big);
  expect("JPEG declaring 65000x65000", rc, TT_ENOMEM, "65000x65000");
}

static double mean_abs_diff(const tt_image *a, const tt_image *b) {
  double s = 0;
  size_t n = (size_t)a->w * a->h * 3;
  for (size_t i = 0; i < n; i++) s += fabs((double)a->rgb[i] - b->rgb[i]);
  return s / (double)n / 255.0;
}

static void test_images(void) {
  tt_image im, ref;
  /* 0 bytes */
  expect_image("0-byte file", (const uint8_t *)"", 0, TT_EFORMAT, "empty file");

  /* Truncated JPEG and PNG (half of a real file). */
  blob pj = slurp(images_dir(), "chelsea_64_progressive.jpg");
  expect_image("truncated progressive JPEG", pj.p, pj.n / 2, TT_EFORMAT, "truncated JPEG");
  blob bj = slurp(HOSTILE, "1x1.jpg");
  expect_image("JPEG cut inside its headers", bj.p, 200, TT_EFORMAT, "truncated JPEG");
  expect_image("truncated PNG", g_good.p, g_good.n / 2, TT_EFORMAT, "truncated PNG");
  expect_image("PNG cut after its signature", g_good.p, 8, TT_EFORMAT, "truncated PNG");

  test_huge_declared();

  /* Not images, named .jpg */
  static const char svg[] = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" "
                            "height=\"10\"><rect width=\"10\" height=\"10\"/></svg>\n";
  expect_image("SVG renamed .jpg", (const uint8_t *)svg, sizeof svg - 1, TT_EFORMAT, "looks like text/SVG");
  static const char txt[] = "just some notes, saved as photo.jpg\n";
  expect_image("text renamed .jpg", (const uint8_t *)txt, sizeof txt - 1, TT_EFORMAT, "looks like text");
  static const char pdf[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
  expect_image("PDF renamed .jpg", (const uint8_t *)pdf, sizeof pdf - 1, TT_EFORMAT, "looks like a PDF");
  static const uint8_t zeros[64] = {0};
  expect_image("64 zero bytes", zeros, sizeof zeros, TT_EFORMAT, "not an image");

  /* 1x1 images in each format decode, and resize to the model size as a flat colour. */
  static const char *ones[4] = {"1x1.png", "1x1.jpg", "1x1.gif", "1x1.bmp"};
  for (int i = 0; i < 4; i++) {
    blob b = slurp(HOSTILE, ones[i]);
    int rc = tt_image_decode(b.p, b.n, &im);
    CHECK(rc == 0 && im.w == 1 && im.h == 1, "%s: %d %s", ones[i], rc, tt_last_error());
    if (rc == 0) {
      int tol = i == 1 ? 8 : 0; /* JPEG is lossy */
      CHECK(abs(im.rgb[0] - 200) <= tol && abs(im.rgb[1] - 100) <= tol && abs(im.rgb[2] - 50) <= tol,
            "%s: pixel %d,%d,%d, expected 200,100,50", ones[i], im.rgb[0], im.rgb[1], im.rgb[2]);
      static float x[224 * 224 * 3];
      tt_view v = tt_view_full(&im);
      CHECK(tt_image_sample(&im, &v, 224, 224, 1, x) == 0, "%s: sample: %s", ones[i], tt_last_error());
      int flat = 1;
      for (int k = 0; k < 224 * 224 * 3; k++) flat &= x[k] == (float)im.rgb[k % 3] / 255.0f;
      CHECK(flat, "%s: a 1x1 image must resize to a flat colour", ones[i]);
      tt_image_free(&im);
    }
    free(b.p);
    still_works(ones[i]);
  }

  /* CMYK (Adobe) and progressive JPEG decode close to the lossless original; a 4-channel
     JPEG without the Adobe marker is refused rather than shown in wrong colours. */
  tt_image_decode(g_good.p, g_good.n, &ref);
  static const char *jpegs[3] = {"chelsea_64_cmyk.jpg", "chelsea_64_progressive.jpg", "chelsea_64_ycck.jpg"};
  for (int i = 0; i < 3; i++) {
    blob b = slurp(images_dir(), jpegs[i]);
    int rc = tt_image_decode(b.p, b.n, &im);
    CHECK(rc == 0 && im.w == ref.w && im.h == ref.h, "%s: %d %s", jpegs[i], rc, tt_last_error());
    if (rc == 0) {
      double d = mean_abs_diff(&im, &ref);
      CHECK(d < 0.03, "%s: mean difference %.4f from the original", jpegs[i], d);
      tt_image_free(&im);
    }
    if (i == 0) { /* drop the Adobe APP14 segment */
      for (size_t k = 2; k + 16 < b.n; k++)
        if (b.p[k] == 0xff && b.p[k + 1] == 0xee && memcmp(b.p + k + 4, "Adobe", 5) == 0) {
          size_t L = (size_t)b.p[k + 2] << 8 | b.p[k + 3];
          memmove(b.p + k, b.p + k + 2 + L, b.n - k - 2 - L);
          b.n -= 2 + L;
          break;
        }
      expect_image("CMYK JPEG without its Adobe marker", b.p, b.n, TT_EUNSUP, "CMYK JPEG is not supported");
    }
    free(b.p);
    still_works(jpegs[i]);
  }

  /* 16-bit RGBA PNG: the same pixels as its 8-bit rendering, alpha dropped. */
  blob p16 = slurp(HOSTILE, "rgba16.png"), p8 = slurp(HOSTILE, "rgba16_as8.png");
  tt_image a, b;
  int ra = tt_image_decode(p16.p, p16.n, &a), rb = tt_image_decode(p8.p, p8.n, &b);
  CHECK(ra == 0 && rb == 0 && a.w == 12 && a.h == 8 && b.w == 12 && b.h == 8, "16-bit PNG: %s", tt_last_error());
  if (ra == 0 && rb == 0) CHECK(memcmp(a.rgb, b.rgb, 12 * 8 * 3) == 0, "16-bit PNG differs from its 8-bit version");
  tt_image_free(&a), tt_image_free(&b), free(p16.p), free(p8.p);
  still_works("16-bit PNG");

  /* 4-bit paletted PNG with a tRNS alpha table: palette colours, alpha dropped. */
  blob pp = slurp(HOSTILE, "palette4_alpha.png");
  int rc = tt_image_decode(pp.p, pp.n, &im);
  CHECK(rc == 0 && im.w == 12 && im.h == 8, "paletted PNG: %s", tt_last_error());
  if (rc == 0) {
    int bad = 0;
    for (int y = 0; y < 8; y++)
      for (int x = 0; x < 12; x++) {
        int k = (x + y) % 16;
        const uint8_t *px = im.rgb + (y * 12 + x) * 3;
        bad += px[0] != k * 17 || px[1] != 255 - k * 17 || px[2] != (k * 53) % 256;
      }
    CHECK(bad == 0, "paletted PNG: %d pixels are not their palette colour", bad);
    tt_image_free(&im);
  }
  free(pp.p);
  still_works("paletted PNG with alpha");

  /* Animated GIF: the first frame (red), not a later one (blue, green). */
  blob ag = slurp(HOSTILE, "animated.gif");
  rc = tt_image_decode(ag.p, ag.n, &im);
  CHECK(rc == 0 && im.w == 8 && im.h == 6, "animated GIF: %s", tt_last_error());
  if (rc == 0) {
    int red = 1;
    for (int k = 0; k < 8 * 6; k++) red &= im.rgb[3 * k] == 255 && im.rgb[3 * k + 1] == 0 && im.rgb[3 * k + 2] == 0;
    CHECK(red, "animated GIF: not the first frame");
    tt_image_free(&im);
  }
  /* ... and cut inside that first frame. */
  expect_image("animated GIF cut in its first frame", ag.p, 40, TT_EFORMAT, "truncated GIF");
  free(ag.p);
  still_works("animated GIF");

  /* Views: NaN / infinite / empty crop boxes and jitter are refused, not sampled. */
  tt_image_decode(g_good.p, g_good.n, &im);
  static float x[16 * 16 * 3];
  tt_view v = tt_view_full(&im);
  v.cw = NAN;
  expect("crop box NaN", tt_image_sample(&im, &v, 16, 16, 1, x), TT_EINVAL, "bad crop box");
  v = tt_view_full(&im), v.ch = 0;
  expect("crop box empty", tt_image_sample(&im, &v, 16, 16, 1, x), TT_EINVAL, "bad crop box");
  v = tt_view_full(&im), v.brightness = INFINITY;
  expect("jitter infinite", tt_image_sample(&im, &v, 16, 16, 1, x), TT_EINVAL, "bad colour jitter");
  v = tt_view_full(&im);
  expect("output 0x16", tt_image_sample(&im, &v, 0, 16, 1, x), TT_EINVAL, "bad output size");
  tt_image_free(&im);
  tt_image_free(&ref);
  free(pj.p), free(bj.p);
}

/* ---- weights and networks ------------------------------------------------------------ */

static void test_weights(void) {
  float dst[4];
  uint8_t nan4[16] = {0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}; /* 1.0, NaN */
  expect("float32 weight with NaN", tt_weights_decode("dense/kernel", nan4, 16, 4, TT_W_F32, 0, 1, dst), TT_EFORMAT,
         "weight 'dense/kernel' has a non-finite value (nan) at index 1");
  uint8_t inf4[8] = {0, 0, 0, 0x7c, 0, 0, 0, 0}; /* float16 0, +Inf */
  expect("float16 weight with Inf", tt_weights_decode("bias", inf4, 8, 4, TT_W_F16, 0, 1, dst), TT_EFORMAT,
         "weight 'bias' has a non-finite value (inf) at index 1");
  uint8_t q[4] = {1, 2, 3, 4};
  expect("uint8 weight with a NaN scale", tt_weights_decode("Conv1/kernel", q, 4, 4, TT_W_U8, -1, NAN, dst), TT_EFORMAT,
         "weight 'Conv1/kernel' has a non-finite quantisation min/scale");
  expect("uint8 weight with an infinite min", tt_weights_decode("k", q, 4, 4, TT_W_U8, -INFINITY, 0.1, dst), TT_EFORMAT,
         "non-finite quantisation");
  expect("weight shorter than its shape", tt_weights_decode("k", q, 3, 4, TT_W_U8, 0, 1, dst), TT_EFORMAT,
         "weight 'k' is truncated: needs 4 bytes, 3 available");
  expect("weight with an unknown encoding", tt_weights_decode("k", q, 4, 1, 7, 0, 1, dst), TT_EUNSUP,
         "unknown encoding 7");
  /* A huge count does not overflow into a small byte count. */
  expect("weight count near SIZE_MAX", tt_weights_decode("k", q, 4, SIZE_MAX / 2, TT_W_F32, 0, 1, dst), TT_EFORMAT,
         "is truncated");

  /* Shapes: negative, zero, huge. */
  tt_clear_error();
  CHECK(tt_net_create(-224, 224, 3) == NULL && strstr(tt_last_error(), "-224x224x3 is out of range"), "%s",
        tt_last_error());
  still_works("negative input shape");
  CHECK(tt_net_create(16384, 16384, 16) == NULL && strstr(tt_last_error(), "out of range"), "%s", tt_last_error());
  still_works("huge input shape");

  tt_net *net = tt_net_create(8, 8, 3);
  float w[3 * 3 * 3 * 4] = {0};
  tt_op_desc c = {0};
  c.type = TT_OP_CONV2D, c.in0 = 0, c.kh = c.kw = 3, c.sh = c.sw = 1, c.channels = 4;
  expect("conv with mismatched weights", tt_net_add(net, "Conv1", &c, w, 3 * 3 * 3 * 4 - 1, NULL, 0), TT_EINVAL,
         "conv2d 'Conv1': weights have 107 values");
  c.channels = -5;
  expect("conv with negative filters", tt_net_add(net, "Conv1", &c, w, 0, NULL, 0), TT_EINVAL,
         "conv2d 'Conv1': -5 output channels");
  c.channels = 4, c.kh = 9;
  expect("kernel larger than the input", tt_net_add(net, "Conv1", &c, w, 9 * 3 * 3 * 4, NULL, 0), TT_EINVAL,
         "does not fit");
  c.kh = 3, c.in0 = 7;
  expect("op reading a later op", tt_net_add(net, "Conv1", &c, w, 108, NULL, 0), TT_EINVAL,
         "reads op 7, which does not exist");
  c.in0 = 0;
  tt_op_desc dn = {0};
  dn.type = TT_OP_DENSE, dn.in0 = 0, dn.channels = 65536;
  expect("dense with 2^32 weights", tt_net_add(net, "huge", &dn, NULL, 0, NULL, 0), TT_EINVAL, "needs 12582912");
  tt_op_desc u = {0};
  u.type = 42, u.in0 = 0;
  expect("unknown op type", tt_net_add(net, "mystery", &u, NULL, 0, NULL, 0), TT_EUNSUP,
         "op 'mystery': unknown op type 42");
  CHECK(tt_net_add(net, "Conv1", &c, w, 108, NULL, 0) == 1, "%s", tt_last_error());
  float g[4] = {1, 1, 1, 1}, be[4] = {0}, mu[4] = {0}, var[4] = {1, NAN, 1, 1};
  expect("batch norm with a NaN variance", tt_net_fold_bn(net, 1, g, be, mu, var, 4, 1e-3f), TT_EINVAL,
         "variance + epsilon is not positive at channel 1");
  for (int i = 0; i < 108; i++) w[i] = 1e30f;
  tt_op_desc c2 = c;
  CHECK(tt_net_add(net, "Conv2", &c2, w, 108, NULL, 0) == 2, "%s", tt_last_error());
  float tiny[4] = {1e-30f, 1, 1, 1};
  expect("batch norm folding into infinity", tt_net_fold_bn(net, 2, g, be, mu, tiny, 4, 0.0f), TT_EINVAL,
         "folding gives a non-finite weight at channel 0");
  CHECK(tt_net_op(net, 2)->wt[0] == 1e30f, "a refused fold changed the weights");
  expect("batch norm with the wrong channel count", tt_net_fold_bn(net, 1, g, be, mu, var, 3, 1e-3f), TT_EINVAL,
         "has 3 channels, the op has 4");

  /* Batches: too large for the limit, or for memory. */
  static float x[8 * 8 * 3];
  tt_clear_error();
  CHECK(tt_net_forward(net, x, 0, -1) == NULL && strstr(tt_last_error(), "batch of 0 is out of range"), "%s",
        tt_last_error());
  CHECK(tt_net_forward(net, x, 1 << 30, -1) == NULL && strstr(tt_last_error(), "out of range"), "%s", tt_last_error());
  CHECK(tt_net_forward(net, x, 1, 9) == NULL && strstr(tt_last_error(), "op 9 does not exist"), "%s", tt_last_error());
  CHECK(tt_net_forward(net, x, 1, -1) != NULL, "forward after errors: %s", tt_last_error());
  tt_net_free(net);
  still_works("bad network descriptions");
}

/* ---- training settings ------------------------------------------------------------------ */

static void test_training(void) {
  tt_net *net = tt_net_create(1, 1, 4);
  float w[4 * 3] = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f, -0.9f, 0.2f, 0.1f, 0.0f};
  tt_op_desc d = {0};
  d.type = TT_OP_DENSE, d.in0 = 0, d.channels = 3;
  tt_net_add(net, "head", &d, w, 12, NULL, 0);
  float x[6 * 4];
  for (int i = 0; i < 24; i++) x[i] = (float)(i % 5) * 0.25f;
  int labels[6] = {0, 1, 2, 0, 1, 2}, bad[6] = {0, 1, 2, 0, 1, 3};
  tt_train_cfg cfg;
  tt_train_defaults(&cfg);
  tt_clear_error();
  CHECK(!tt_trainer_new(net, &cfg, 1, x, 6, 1, labels) && strstr(tt_last_error(), "at least 2 classes"), "%s",
        tt_last_error());
  CHECK(!tt_trainer_new(net, &cfg, 100000, x, 6, 1, labels) && strstr(tt_last_error(), "too many classes (100000)"),
        "%s", tt_last_error());
  CHECK(!tt_trainer_new(net, &cfg, 3, x, 6, 1, bad) && strstr(tt_last_error(), "image 5 has label 3, outside 0..2"),
        "%s", tt_last_error());
  CHECK(!tt_trainer_new(net, &cfg, 3, x, 1, 1, labels) && strstr(tt_last_error(), "at least 2 images"), "%s",
        tt_last_error());
  cfg.batch = 1 << 20;
  CHECK(!tt_trainer_new(net, &cfg, 3, x, 6, 1, labels) &&
            strstr(tt_last_error(), "invalid training settings (batch 1048576"),
        "%s", tt_last_error());
  tt_train_defaults(&cfg);
  cfg.lr = NAN;
  CHECK(!tt_trainer_new(net, &cfg, 3, x, 6, 1, labels) && strstr(tt_last_error(), "lr nan"), "%s", tt_last_error());
  cfg.lr = 1e30f; /* diverges: stopped with a message, weights kept finite */
  cfg.epochs = 3, cfg.val_fraction = 0;
  tt_trainer *tr = tt_trainer_new(net, &cfg, 3, x, 6, 1, labels);
  CHECK(tr != NULL, "%s", tt_last_error());
  tt_progress p;
  int rc = 0;
  for (int i = 0; i < 50 && rc >= 0 && rc != 2; i++) rc = tt_trainer_run(tr, 4, &p);
  CHECK(rc == TT_EINVAL && strstr(tt_last_error(), "the loss became"), "lr 1e30: rc %d %s", rc, tt_last_error());
  for (size_t i = 0; i < tt_net_op(net, 1)->wn; i++)
    CHECK(isfinite(tt_net_op(net, 1)->wt[i]), "weight %zu not finite after a diverged run", i);
  tt_trainer_free(tr);
  tt_net_free(net);
  still_works("bad training settings");
}

/* ---- saved models ---------------------------------------------------------------------- */

static void test_savefile(void) {
  static const char meta[] = "{\"format\":\"tinytune-classifier\",\"version\":1}";
  uint8_t *f;
  size_t n;
  CHECK(tt_save(g_net, (const uint8_t *)meta, sizeof meta - 1, &f, &n) == 0, "%s", tt_last_error());
  tt_net *net;
  const uint8_t *m;
  size_t ml;
  CHECK(tt_load(f, n, &net, &m, &ml) == 0, "the saved model loads: %s", tt_last_error());
  if (net) tt_net_free(net);

  uint8_t *c = malloc(n);
  memcpy(c, f, n), c[0] = 'X';
  expect("saved model, corrupted header", tt_load(c, n, &net, &m, &ml), TT_EFORMAT,
         "not a tinytune model file (bad header)");
  CHECK(net == NULL, "no net on error");
  memcpy(c, f, n), c[n / 2] ^= 0x10;
  expect("saved model, one flipped byte", tt_load(c, n, &net, &m, &ml), TT_EFORMAT,
         "saved model is corrupted (checksum mismatch)");
  memcpy(c, f, n), c[n - 1] ^= 1;
  expect("saved model, flipped checksum byte", tt_load(c, n, &net, &m, &ml), TT_EFORMAT, "checksum mismatch");
  expect("saved model, truncated", tt_load(f, n - 100, &net, &m, &ml), TT_EFORMAT, "saved model is truncated");
  expect("saved model, 10 bytes", tt_load(f, 10, &net, &m, &ml), TT_EFORMAT, "saved model is truncated");
  expect("saved model, 0 bytes", tt_load(f, 0, &net, &m, &ml), TT_EFORMAT, "not a tinytune model file");
  memcpy(c, f, n), c[8] = 2;
  expect("saved model, unknown version", tt_load(c, n, &net, &m, &ml), TT_EUNSUP,
         "saved model has file version 2; this engine reads version 1");
  free(c), free(f);
}

int main(void) {
  g_good = slurp(images_dir(), "chelsea_64.png");
  g_net = small_net();
  CHECK(embed(&g_good, g_ref) == TT_OK, "reference embedding: %s", tt_last_error());
  test_images();
  test_weights();
  test_training();
  test_savefile();
  tt_net_free(g_net);
  free(g_good.p);
  return check_report("hostile");
}
