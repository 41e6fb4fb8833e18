/* Image module tests: decoding real photos (Debian's python3-skimage sample data) and
   committed fixtures, refusing broken and non-image bytes with messages that say why,
   and sampling views bit-compatibly with TensorFlow.js's resizeBilinear (WASM backend).

   Paths: sample photos from $TT_SKIMAGE_DATA (default the Debian path below), fixtures
   from $TT_FIXTURES (default tests/fixtures/images, i.e. run from the repository root). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image.h"
#include "tt.h"

/* ---- helpers ------------------------------------------------------------------------- */

static const char *skdir(void) {
  const char *e = getenv("TT_SKIMAGE_DATA");
  return e ? e : "/usr/lib/python3/dist-packages/skimage/data";
}
static const char *fixdir(void) {
  const char *e = getenv("TT_FIXTURES");
  return e ? e : "tests/fixtures/images";
}

/* Decodes and expects failure with `code` and a message containing every keyword
   (NULL-terminated list); also checks *out was zeroed. */
static void expect_err(const char *what, const uint8_t *d, size_t n, int code, ...) {
  tt_image im;
  im.w = 123;
  im.h = 456;
  im.rgb = (uint8_t *)&im; /* junk that must be cleared */
  tt_clear_error();
  int rc = tt_image_decode(d, n, &im);
  const char *msg = tt_last_error();
  CHECK(rc == code, "%s: rc %d, want %d (message: %s)", what, rc, code, msg);
  CHECK(im.w == 0 && im.h == 0 && im.rgb == NULL, "%s: out not zeroed on error", what);
  va_list ap;
  va_start(ap, code);
  for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *))
    CHECK(strstr(msg, k) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, k);
  va_end(ap);
  if (rc == TT_OK) tt_image_free(&im);
}

static const uint8_t *pix(const tt_image *im, int x, int y) {
  return im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

/* Mean |a-b| over all bytes of two same-sized images, in [0,1] units. */
static double mean_abs_diff(const tt_image *a, const tt_image *b) {
  size_t n = (size_t)a->w * (size_t)a->h * 3;
  double s = 0;
  for (size_t i = 0; i < n; i++) s += abs((int)a->rgb[i] - (int)b->rgb[i]);
  return s / (double)n / 255.0;
}

/* ---- crafting PNG / BMP bytes ---------------------------------------------------------- */

static uint32_t crc32_buf(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return c ^ 0xffffffffu;
}
static void put32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static void put32le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static size_t png_chunk(uint8_t *o, const char *type, const uint8_t *data, uint32_t n) {
  put32be(o, n);
  memcpy(o + 4, type, 4);
  if (n) memcpy(o + 8, data, n);
  put32be(o + 8 + n, crc32_buf(o + 4, 4 + (size_t)n));
  return 12 + (size_t)n;
}

/* A PNG with the given IHDR fields and `raw` (filter bytes included) stored uncompressed
   in one zlib stored block (raw_n < 65536). Returns its length; o must be big enough. */
static size_t make_png_plte(uint8_t *o, uint32_t w, uint32_t h, int depth, int ctype, const uint8_t *raw, size_t raw_n,
                            const uint8_t *plte, uint32_t plte_n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  size_t p = 0;
  memcpy(o, sig, 8);
  p = 8;
  uint8_t ihdr[13];
  put32be(ihdr, w);
  put32be(ihdr + 4, h);
  ihdr[8] = (uint8_t)depth;
  ihdr[9] = (uint8_t)ctype;
  ihdr[10] = ihdr[11] = ihdr[12] = 0;
  p += png_chunk(o + p, "IHDR", ihdr, 13);
  if (plte) p += png_chunk(o + p, "PLTE", plte, plte_n);
  uint8_t z[2 + 5 + 65536 + 4];
  size_t zn = 0;
  z[zn++] = 0x78;
  z[zn++] = 0x01;
  z[zn++] = 1; /* BFINAL, stored */
  z[zn++] = (uint8_t)raw_n;
  z[zn++] = (uint8_t)(raw_n >> 8);
  z[zn++] = (uint8_t)~raw_n;
  z[zn++] = (uint8_t)(~raw_n >> 8);
  memcpy(z + zn, raw, raw_n);
  zn += raw_n;
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < raw_n; i++) {
    a = (a + raw[i]) % 65521;
    b = (b + a) % 65521;
  }
  put32be(z + zn, (b << 16) | a);
  zn += 4;
  p += png_chunk(o + p, "IDAT", z, (uint32_t)zn);
  p += png_chunk(o + p, "IEND", NULL, 0);
  return p;
}

static size_t make_png(uint8_t *o, uint32_t w, uint32_t h, int depth, int ctype, const uint8_t *raw, size_t raw_n) {
  return make_png_plte(o, w, h, depth, ctype, raw, raw_n, NULL, 0);
}

/* 24-bit bottom-up BMP of w x h from top-down RGB. */
static size_t make_bmp(uint8_t *o, int w, int h, const uint8_t *rgb) {
  size_t stride = ((size_t)w * 3 + 3) & ~(size_t)3, size = 54 + stride * (size_t)h;
  memset(o, 0, size);
  o[0] = 'B';
  o[1] = 'M';
  put32le(o + 2, (uint32_t)size);
  put32le(o + 10, 54);
  put32le(o + 14, 40);
  put32le(o + 18, (uint32_t)w);
  put32le(o + 22, (uint32_t)h);
  o[26] = 1;
  o[28] = 24;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const uint8_t *s = rgb + ((size_t)y * w + x) * 3;
      uint8_t *d = o + 54 + (size_t)(h - 1 - y) * stride + (size_t)x * 3;
      d[0] = s[2];
      d[1] = s[1];
      d[2] = s[0];
    }
  return size;
}

/* Copies a JPEG without its header segments with marker `m` (up to the first SOS). */
static size_t jpeg_strip(const uint8_t *d, size_t n, uint8_t m, uint8_t *out) {
  size_t p = 2, o = 2;
  memcpy(out, d, 2);
  while (p + 4 <= n && d[p] == 0xff && d[p + 1] != 0xda) {
    size_t L = 2 + ((size_t)d[p + 2] << 8 | d[p + 3]);
    if (d[p + 1] != m) {
      memcpy(out + o, d + p, L);
      o += L;
    }
    p += L;
  }
  memcpy(out + o, d + p, n - p);
  return o + n - p;
}

/* ---- decoding real files ------------------------------------------------------------------ */

typedef struct {
  const char *file;
  int w, h;
  int x, y, r, g, b, tol; /* one known pixel (from ImageMagick), tolerance for JPEG */
  double mr, mg, mb;      /* channel means in [0,1] from ImageMagick, <0 = skip */
} photo;

static void test_real_photos(void) {
  static const photo photos[] = {
      {"chelsea.png", 451, 300, 225, 150, 190, 150, 124, 0, 0.57911, 0.437037, 0.340384},
      {"coffee.png", 600, 400, 300, 200, 248, 250, 255, 0, 0.62184, 0.336447, 0.201901},
      {"astronaut.png", 512, 512, 100, 100, 187, 176, 169, 0, 0.555147, 0.414743, 0.378334},
      {"rocket.jpg", 640, 427, 320, 200, 125, 120, 101, 6, 0.204964, 0.24037, 0.322632},
      {"camera.png", 512, 512, 256, 256, 14, 14, 14, 0, 0.50612, 0.50612, 0.50612},
      {"logo.png", 500, 500, 250, 250, 255, 159, 83, 0, -1, 0, 0},
      {"color.png", 371, 370, 10, 10, 0, 0, 0, 0, 0.298801, 0.300015, 0.299127},
      {"hubble_deep_field.jpg", 1000, 872, -1, 0, 0, 0, 0, 0, 0.0728698, 0.0776154, 0.0748613},
      {"retina.jpg", 1411, 1411, -1, 0, 0, 0, 0, 0, -1, 0, 0},
      {"horse.png", 400, 328, 200, 160, 0, 0, 0, 0, -1, 0, 0},               /* RGBA */
      {"green_palette.png", 320, 240, 160, 120, 0, 0, 0, 0, -1, 0, 0},       /* palette */
      {"chessboard_RGB.png", 200, 200, 10, 10, 255, 255, 255, 0, -1, 0, 0},  /* 16-bit */
      {"foo3x5x4indexed.png", 5, 3, 4, 2, 0, 31, 255, 0, -1, 0, 0},          /* palette+tRNS */
      {"no_time_for_that_tiny.gif", 14, 25, 7, 12, 52, 52, 40, 0, -1, 0, 0}, /* animated */
      {"checker_bilevel.png", 10, 10, -1, 0, 0, 0, 0, 0, -1, 0, 0},          /* 1-bit grey */
  };
  for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
    const photo *p = &photos[i];
    size_t n;
    uint8_t *d = check_read_file(skdir(), p->file, &n);
    if (!d) continue;
    tt_image im;
    int rc = tt_image_decode(d, n, &im);
    CHECK(rc == TT_OK, "%s: decode failed: %s", p->file, tt_last_error());
    if (rc == TT_OK) {
      CHECK(im.w == p->w && im.h == p->h, "%s: %dx%d, want %dx%d", p->file, im.w, im.h, p->w, p->h);
      if (p->x >= 0 && im.w == p->w && im.h == p->h) {
        const uint8_t *q = pix(&im, p->x, p->y);
        CHECK(abs(q[0] - p->r) <= p->tol && abs(q[1] - p->g) <= p->tol && abs(q[2] - p->b) <= p->tol,
              "%s: pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", p->file, p->x, p->y, q[0], q[1], q[2], p->r, p->g, p->b);
      }
      if (p->mr >= 0) {
        double s[3] = {0, 0, 0};
        for (size_t k = 0; k < (size_t)im.w * im.h; k++)
          for (int c = 0; c < 3; c++) s[c] += im.rgb[3 * k + c];
        double m[3], want[3] = {p->mr, p->mg, p->mb};
        for (int c = 0; c < 3; c++) {
          m[c] = s[c] / ((double)im.w * im.h * 255.0);
          CHECK(fabs(m[c] - want[c]) < 0.005, "%s: channel %d mean %.4f, want %.4f", p->file, c, m[c], want[c]);
        }
      }
      tt_image_free(&im);
      CHECK(im.rgb == NULL && im.w == 0, "%s: tt_image_free did not clear", p->file);
    }
    free(d);
  }

  /* Greyscale sources become R == G == B everywhere. */
  size_t n;
  uint8_t *d = check_read_file(skdir(), "camera.png", &n);
  if (d) {
    tt_image im;
    if (tt_image_decode(d, n, &im) == TT_OK) {
      size_t bad = 0;
      for (size_t k = 0; k < (size_t)im.w * im.h; k++)
        bad += im.rgb[3 * k] != im.rgb[3 * k + 1] || im.rgb[3 * k] != im.rgb[3 * k + 2];
      CHECK(bad == 0, "camera.png: %zu grey pixels are not R=G=B", bad);
      tt_image_free(&im);
    }
    free(d);
  }
}

/* Progressive, CMYK, YCCK and interlaced fixtures against the lossless 64x43 original. */
static void test_fixtures(void) {
  size_t n0;
  uint8_t *d0 = check_read_file(fixdir(), "chelsea_64.png", &n0);
  tt_image ref = {0, 0, NULL};
  if (!d0 || tt_image_decode(d0, n0, &ref) != TT_OK) {
    CHECK(0, "chelsea_64.png: %s", tt_last_error());
    free(d0);
    return;
  }
  CHECK(ref.w == 64 && ref.h == 43, "chelsea_64.png is %dx%d", ref.w, ref.h);
  static const struct {
    const char *file;
    double tol;
  } fx[] = {
      {"chelsea_64_interlaced.png", 0.0}, /* Adam7: lossless, identical */
      {"chelsea_64_progressive.jpg", 0.03},
      {"chelsea_64_cmyk.jpg", 0.03}, /* Adobe transform 0, inverted CMYK */
      {"chelsea_64_ycck.jpg", 0.03}, /* Adobe transform 2 (ImageMagick's default) */
  };
  for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
    size_t n;
    uint8_t *d = check_read_file(fixdir(), fx[i].file, &n);
    if (!d) continue;
    tt_image im;
    int rc = tt_image_decode(d, n, &im);
    CHECK(rc == TT_OK, "%s: %s", fx[i].file, tt_last_error());
    if (rc == TT_OK) {
      CHECK(im.w == 64 && im.h == 43, "%s: %dx%d", fx[i].file, im.w, im.h);
      if (im.w == 64 && im.h == 43) {
        double mad = mean_abs_diff(&im, &ref);
        CHECK(mad <= fx[i].tol, "%s: mean |diff| vs PNG original %.4f > %.4f", fx[i].file, mad, fx[i].tol);
      }
      tt_image_free(&im);
    }
    /* The CMYK file without its Adobe marker: stb would read it as YCbCr + junk. */
    if (strstr(fx[i].file, "cmyk")) {
      uint8_t *s = malloc(n);
      size_t sn = jpeg_strip(d, n, 0xee, s);
      CHECK(sn < n, "%s has no APP14 marker to strip", fx[i].file);
      expect_err("CMYK JPEG without Adobe marker", s, sn, TT_EUNSUP, "CMYK JPEG is not supported", (char *)NULL);
      free(s);
    }
    free(d);
  }
  tt_image_free(&ref);
  free(d0);
}

/* EXIF Orientation 1..8: each fixture stores the cat turned (or mirrored) the other way
   with the tag that turns it back (tests/fixtures/images/make_exif_jpegs.c), so every one
   must decode to the upright 64x43 original; tests/e2e/exif.test.mjs checks the same
   files against Chromium's own decoding. Bad tags are ignored, as browsers do. */
static void test_exif(void) {
  size_t n0;
  uint8_t *d0 = check_read_file(fixdir(), "chelsea_64.png", &n0);
  tt_image ref = {0, 0, NULL}, mirrored = {0, 0, NULL};
  if (!d0 || tt_image_decode(d0, n0, &ref) != TT_OK) {
    CHECK(0, "chelsea_64.png: %s", tt_last_error());
    free(d0);
    return;
  }
  /* the original mirrored left-right: what a decoder that ignored orientation 2 gives */
  mirrored = ref;
  mirrored.rgb = malloc((size_t)ref.w * ref.h * 3);
  for (int y = 0; y < ref.h; y++)
    for (int x = 0; x < ref.w; x++)
      memcpy(mirrored.rgb + ((size_t)y * ref.w + x) * 3, ref.rgb + ((size_t)y * ref.w + ref.w - 1 - x) * 3, 3);
  CHECK(mean_abs_diff(&mirrored, &ref) > 0.06, "the photo is too symmetric to tell a mirror image");
  for (int o = 1; o <= 8; o++) {
    char name[64];
    snprintf(name, sizeof name, "chelsea_64_exif%d.jpg", o);
    size_t n;
    uint8_t *d = check_read_file(fixdir(), name, &n);
    if (!d) continue;
    tt_image im;
    int rc = tt_image_decode(d, n, &im);
    CHECK(rc == TT_OK, "%s: %s", name, tt_last_error());
    if (rc == TT_OK) {
      CHECK(im.w == 64 && im.h == 43, "%s: decoded %dx%d, not upright 64x43", name, im.w, im.h);
      if (im.w == 64 && im.h == 43) {
        double mad = mean_abs_diff(&im, &ref), mis = mean_abs_diff(&im, &mirrored);
        CHECK(mad <= 0.03, "%s: mean |diff| vs the upright original %.4f > 0.03", name, mad);
        CHECK(mis > 2 * mad, "%s: as close to the mirror image (%.4f) as to the original (%.4f)", name, mis, mad);
      }
      tt_image_free(&im);
    }
    if (o == 6) {
      /* Orientation 9 (undefined), a non-SHORT type, an IFD offset past the end, an IFD
         cut short: the tag is ignored and the stored (sideways) 43x64 pixels come out. */
      static const struct {
        size_t at;
        uint8_t v;
        const char *what;
      } bad[] = {{31, 9, "orientation 9"},
                 {25, 4, "type LONG"},
                 {16, 0x7f, "IFD offset past the end"},
                 {5, 16, "APP1 cut inside the IFD"}};
      for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        uint8_t *c = malloc(n);
        memcpy(c, d, n);
        CHECK(c[3] == 0xe1 && c[31] == 6 && c[25] == 3, "%s: the APP1 segment is not where expected", name);
        c[bad[b].at] = bad[b].v;
        if (bad[b].at == 5) { /* shrink the segment: the rest of the IFD becomes padding bytes */
          memmove(c + 4 + 16, c + 4 + 0x22, n - (4 + 0x22));
        }
        rc = tt_image_decode(c, bad[b].at == 5 ? n - (0x22 - 16) : n, &im);
        CHECK(rc == TT_OK, "%s with %s: %s", name, bad[b].what, tt_last_error());
        if (rc == TT_OK) {
          CHECK(im.w == 43 && im.h == 64, "%s with %s: decoded %dx%d, not the stored 43x64", name, bad[b].what, im.w,
                im.h);
          tt_image_free(&im);
        }
        free(c);
      }
    }
    free(d);
  }
  tt_image_free(&mirrored);
  tt_image_free(&ref);
  free(d0);
}

/* ---- broken and non-image input -------------------------------------------------------------- */

/* Cuts a real file to each of `cuts` bytes (0 = half, -1 = all but the last byte) and
   expects a "truncated" error naming the format. */
static void test_truncated(const char *file, const char *fmt, const long *cuts, int ncuts) {
  size_t n;
  uint8_t *d = check_read_file(skdir(), file, &n);
  if (!d) return;
  char what[128];
  for (int i = 0; i < ncuts; i++) {
    size_t cut = cuts[i] == 0 ? n / 2 : cuts[i] < 0 ? n - 1 : (size_t)cuts[i];
    if (cut >= n) continue;
    snprintf(what, sizeof what, "%s cut to %zu of %zu bytes", file, cut, n);
    uint8_t *c = malloc(cut);
    memcpy(c, d, cut);
    expect_err(what, c, cut, TT_EFORMAT, "truncated", fmt, (char *)NULL);
    free(c);
  }
  free(d);
}

/* A GIF cut after its first frame still decodes (that frame is all we use), identically. */
static void test_gif_first_frame_only(void) {
  size_t n;
  uint8_t *d = check_read_file(skdir(), "no_time_for_that_tiny.gif", &n);
  if (!d) return;
  tt_image a, b;
  int ra = tt_image_decode(d, n, &a), rb = tt_image_decode(d, 1175, &b); /* frame 1 ends at 1175 */
  CHECK(ra == TT_OK && rb == TT_OK, "GIF cut after frame 1: %s", tt_last_error());
  if (ra == TT_OK && rb == TT_OK)
    CHECK(a.w == b.w && a.h == b.h && memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3) == 0,
          "GIF cut after frame 1 decodes differently");
  if (ra == TT_OK) tt_image_free(&a);
  if (rb == TT_OK) tt_image_free(&b);
  free(d);
}

static void test_bad_input(void) {
  static const uint8_t one = 0;
  expect_err("0 bytes, NULL", NULL, 0, TT_EFORMAT, "empty file", (char *)NULL);
  expect_err("0 bytes", &one, 0, TT_EFORMAT, "empty file", (char *)NULL);
  CHECK(tt_image_decode(&one, 1, NULL) == TT_EINVAL, "NULL out accepted");

  static const long png_cuts[] = {0, 100, 33, 20}, jpeg_cuts[] = {0, 100, -1, 2000};
  static const long gif_cuts[] = {100, 1000, 1174, 12}; /* its first frame ends at byte 1175 */
  test_truncated("chelsea.png", "PNG", png_cuts, 4);
  test_truncated("coffee.png", "PNG", png_cuts, 2);
  test_truncated("rocket.jpg", "JPEG", jpeg_cuts, 4);
  test_truncated("hubble_deep_field.jpg", "JPEG", jpeg_cuts, 4);
  test_truncated("no_time_for_that_tiny.gif", "GIF", gif_cuts, 4);
  test_gif_first_frame_only();
  {
    size_t n;
    uint8_t *d = check_read_file(skdir(), "truncated.jpg", &n); /* skimage's own broken file */
    if (d) expect_err("skimage truncated.jpg", d, n, TT_EFORMAT, "JPEG", (char *)NULL);
    free(d);
  }

  /* Text, markup, documents and unknown binaries. */
  static const struct {
    const char *what, *bytes, *k1, *k2;
    int code;
  } t[] = {
      {"plain text", "hello, world\nthis is not a picture\n", "not an image", "text", TT_EFORMAT},
      {"SVG", "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\"/>", "not an image", "text/SVG", TT_EFORMAT},
      {"SVG with XML prolog", "\xef\xbb\xbf<?xml version=\"1.0\"?>\n<svg width=\"1\"></svg>", "not an image", "SVG",
       TT_EFORMAT},
      {"XML", "<?xml version=\"1.0\"?><root/>", "not an image", "text/XML", TT_EFORMAT},
      {"HTML", "  <!DOCTYPE html><html><body>404</body></html>", "not an image", "HTML", TT_EFORMAT},
      {"PDF", "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not an image", "PDF", TT_EFORMAT},
      {"ZIP", "PK\x03\x04\x14\x00\x00\x00", "not an image", "ZIP", TT_EFORMAT},
      {"WebP", "RIFF\x24\x00\x00\x00WEBPVP8 ", "unsupported image format", "WebP", TT_EUNSUP},
      {"TIFF", "II*\x00\x08\x00\x00\x00", "unsupported image format", "TIFF", TT_EUNSUP},
      {"HEIC",
       "\x00\x00\x00\x18"
       "ftypheic\x00\x00\x00\x00",
       "unsupported image format", "HEIC", TT_EUNSUP},
      {"binary", "\x01\x02\xfe\xff\x00\x00\x10", "not an image", "unrecognised header 01 02 fe ff", TT_EFORMAT},
      {"two bytes", "\x13\x37", "not an image", "unrecognised header 13 37", TT_EFORMAT},
      {"JPEG magic only", "\xff\xd8\xff", "JPEG", "truncated", TT_EFORMAT},
      {"PNG signature only", "\x89PNG\r\n\x1a\n", "PNG", "truncated", TT_EFORMAT},
      {"GIF header only", "GIF89a", "GIF", "truncated", TT_EFORMAT},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    size_t n = strlen(t[i].bytes);
    if (strcmp(t[i].what, "WebP") == 0) n = 16;
    if (strcmp(t[i].what, "ZIP") == 0 || strcmp(t[i].what, "TIFF") == 0) n = 8;
    if (strcmp(t[i].what, "HEIC") == 0) n = 16;
    if (strcmp(t[i].what, "binary") == 0) n = 7;
    expect_err(t[i].what, (const uint8_t *)t[i].bytes, n, t[i].code, t[i].k1, t[i].k2, (char *)NULL);
  }
}

/* Huge declared canvases are refused from the header, before any pixel memory. */
static void test_size_limits(void) {
  size_t n;
  uint8_t *d = check_read_file(skdir(), "chelsea.png", &n);
  if (d && n > 33) {
    /* Patch the real file's IHDR (width at 16, height at 20, CRC at 29) and fix the CRC;
       its IDAT stays the 451x300 data, so a decode attempt would fail differently. */
    static const struct {
      uint32_t w, h;
      int code;
      const char *k1, *k2;
    } c[] = {
        {100000, 100000, TT_ENOMEM, "image is 100000x100000 pixels", "limit is 16384 per side and 40 megapixels"},
        {16385, 1, TT_ENOMEM, "16385x1", "limit"},
        {8000, 8000, TT_ENOMEM, "8000x8000", "40 megapixels"}, /* each side fine, area not */
        {30000000, 2, TT_ENOMEM, "30000000x2", "16384"},       /* over stb's own 2^24 cap */
        {0, 300, TT_EFORMAT, "PNG", NULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
      uint8_t *p = malloc(n);
      memcpy(p, d, n);
      put32be(p + 16, c[i].w);
      put32be(p + 20, c[i].h);
      put32be(p + 29, crc32_buf(p + 12, 17));
      char what[64];
      snprintf(what, sizeof what, "PNG IHDR patched to %ux%u", c[i].w, c[i].h);
      expect_err(what, p, n, c[i].code, c[i].k1, c[i].k2, (char *)NULL);
      free(p);
    }
  }
  free(d);

  /* A crafted minimal 100000x100000 grey PNG of a few dozen bytes. */
  uint8_t buf[256];
  static const uint8_t raw[2] = {0, 0};
  size_t pn = make_png(buf, 100000, 100000, 8, 0, raw, sizeof raw);
  expect_err("crafted 100000x100000 PNG", buf, pn, TT_ENOMEM, "100000x100000", "limit", (char *)NULL);

  /* BMP declaring 20000 x 20000 in 60 bytes. */
  uint8_t bmp[64];
  static const uint8_t px1[3] = {1, 2, 3};
  make_bmp(bmp, 1, 1, px1);
  put32le(bmp + 18, 20000);
  put32le(bmp + 22, 20000);
  expect_err("BMP declaring 20000x20000", bmp, 58, TT_ENOMEM, "20000x20000", "limit", (char *)NULL);
}

static void test_tiny_and_crafted(void) {
  uint8_t buf[512];
  tt_image im;
  /* 1x1 RGB PNG */
  static const uint8_t raw1[4] = {0, 10, 20, 30};
  size_t n = make_png(buf, 1, 1, 8, 2, raw1, sizeof raw1);
  int rc = tt_image_decode(buf, n, &im);
  CHECK(rc == TT_OK, "1x1 PNG: %s", tt_last_error());
  if (rc == TT_OK) {
    CHECK(im.w == 1 && im.h == 1 && im.rgb[0] == 10 && im.rgb[1] == 20 && im.rgb[2] == 30,
          "1x1 PNG decoded as %dx%d %d,%d,%d", im.w, im.h, im.rgb[0], im.rgb[1], im.rgb[2]);
    tt_image_free(&im);
  }
  /* 2x1 grey+alpha PNG: alpha dropped, grey replicated */
  static const uint8_t raw2[5] = {0, 77, 0, 200, 255};
  n = make_png(buf, 2, 1, 8, 4, raw2, sizeof raw2);
  rc = tt_image_decode(buf, n, &im);
  CHECK(rc == TT_OK, "grey+alpha PNG: %s", tt_last_error());
  if (rc == TT_OK) {
    CHECK(im.rgb[0] == 77 && im.rgb[2] == 77 && im.rgb[3] == 200 && im.rgb[5] == 200, "grey+alpha PNG: %d %d / %d %d",
          im.rgb[0], im.rgb[2], im.rgb[3], im.rgb[5]);
    tt_image_free(&im);
  }
  /* 16-bit RGBA PNG 1x1: high bytes kept */
  static const uint8_t raw3[9] = {0, 0x12, 0x34, 0xab, 0xcd, 0xff, 0x00, 0x00, 0x00};
  n = make_png(buf, 1, 1, 16, 6, raw3, sizeof raw3);
  rc = tt_image_decode(buf, n, &im);
  CHECK(rc == TT_OK, "16-bit RGBA PNG: %s", tt_last_error());
  if (rc == TT_OK) {
    CHECK(im.rgb[0] == 0x12 && im.rgb[1] == 0xab && im.rgb[2] == 0xff, "16-bit PNG: %d,%d,%d", im.rgb[0], im.rgb[1],
          im.rgb[2]);
    tt_image_free(&im);
  }
  /* PNG whose IDAT holds too little data */
  n = make_png(buf, 4, 4, 8, 2, raw1, sizeof raw1);
  expect_err("PNG with short IDAT", buf, n, TT_EFORMAT, "corrupt or truncated PNG", (char *)NULL);
  /* PNG with a bad colour type */
  n = make_png(buf, 1, 1, 8, 5, raw1, sizeof raw1);
  expect_err("PNG colour type 5", buf, n, TT_EFORMAT, "PNG", (char *)NULL);

  /* Palette PNG whose second pixel's index (5) is past its 1-entry palette: black, and
     the same every time (stb alone would read stale stack bytes for it) */
  static const uint8_t pal1[3] = {10, 20, 30}, rawp[3] = {0, 0, 5};
  n = make_png_plte(buf, 2, 1, 8, 3, rawp, sizeof rawp, pal1, 3);
  for (int rep = 0; rep < 2; rep++) {
    rc = tt_image_decode(buf, n, &im);
    CHECK(rc == TT_OK, "palette PNG, index past the palette: %s", tt_last_error());
    if (rc == TT_OK) {
      CHECK(im.rgb[0] == 10 && im.rgb[1] == 20 && im.rgb[2] == 30 && im.rgb[3] == 0 && im.rgb[4] == 0 && im.rgb[5] == 0,
            "palette PNG: %d,%d,%d %d,%d,%d", im.rgb[0], im.rgb[1], im.rgb[2], im.rgb[3], im.rgb[4], im.rgb[5]);
      tt_image_free(&im);
    }
  }
  /* 8-bit BMP with a 2-colour palette and a pixel using colour 7 */
  {
    uint8_t b8[64 + 8];
    memset(b8, 0, sizeof b8);
    b8[0] = 'B';
    b8[1] = 'M';
    put32le(b8 + 2, 66);
    put32le(b8 + 10, 62); /* 14 + 40 + 2 palette entries */
    put32le(b8 + 14, 40);
    put32le(b8 + 18, 2);
    put32le(b8 + 22, 1);
    b8[26] = 1;
    b8[28] = 8;
    b8[54] = 50; /* palette: (B,G,R,0) x 2 */
    b8[58] = 200;
    b8[62] = 1;
    b8[63] = 0;
    rc = tt_image_decode(b8, 66, &im);
    CHECK(rc == TT_OK && im.rgb[0] == 0 && im.rgb[2] == 200 && im.rgb[3] == 0 && im.rgb[5] == 50, "8-bit BMP: rc %d %s",
          rc, tt_last_error());
    if (rc == TT_OK) tt_image_free(&im);
    b8[63] = 7;
    expect_err("8-bit BMP using colour 7 of 2", b8, 66, TT_EFORMAT, "corrupt BMP", "colour 7 of a 2-colour palette",
               (char *)NULL);
  }

  /* 1x1 and 3x2 BMPs (bottom-up rows, BGR, padding) */
  static const uint8_t p1[3] = {200, 100, 50};
  n = make_bmp(buf, 1, 1, p1);
  rc = tt_image_decode(buf, n, &im);
  CHECK(rc == TT_OK, "1x1 BMP: %s", tt_last_error());
  if (rc == TT_OK) {
    CHECK(im.w == 1 && im.h == 1 && im.rgb[0] == 200 && im.rgb[1] == 100 && im.rgb[2] == 50,
          "1x1 BMP decoded as %dx%d %d,%d,%d", im.w, im.h, im.rgb[0], im.rgb[1], im.rgb[2]);
    tt_image_free(&im);
  }
  uint8_t p6[18];
  for (int i = 0; i < 18; i++) p6[i] = (uint8_t)(i * 14);
  n = make_bmp(buf, 3, 2, p6);
  rc = tt_image_decode(buf, n, &im);
  CHECK(rc == TT_OK, "3x2 BMP: %s", tt_last_error());
  if (rc == TT_OK) {
    CHECK(im.w == 3 && im.h == 2 && memcmp(im.rgb, p6, 18) == 0, "3x2 BMP pixels differ");
    tt_image_free(&im);
  }
  expect_err("3x2 BMP missing its last row", buf, n - 4, TT_EFORMAT, "truncated BMP", (char *)NULL);
  expect_err("BMP header only", buf, 20, TT_EFORMAT, "BMP", (char *)NULL);

  /* JPEG header surgery on a real file: SOF0 precision, coding process, components. */
  size_t jn;
  uint8_t *j = check_read_file(skdir(), "rocket.jpg", &jn);
  if (j) {
    size_t sof = 0;
    for (size_t i = 2; i + 1 < jn; i++)
      if (j[i] == 0xff && j[i + 1] == 0xc0) {
        sof = i;
        break;
      }
    CHECK(sof > 0, "rocket.jpg has no SOF0");
    if (sof) {
      uint8_t *c = malloc(jn);
      memcpy(c, j, jn);
      c[sof + 4] = 12;
      expect_err("12-bit JPEG", c, jn, TT_EUNSUP, "unsupported JPEG", "12-bit", (char *)NULL);
      memcpy(c, j, jn);
      c[sof + 1] = 0xc9;
      expect_err("arithmetic JPEG", c, jn, TT_EUNSUP, "arithmetic", (char *)NULL);
      memcpy(c, j, jn);
      c[sof + 1] = 0xc3;
      expect_err("lossless JPEG", c, jn, TT_EUNSUP, "lossless", (char *)NULL);
      memcpy(c, j, jn);
      c[sof + 9] = 2; /* component count */
      expect_err("2-component JPEG", c, jn, TT_EFORMAT, "corrupt or truncated JPEG", (char *)NULL);
      /* Huffman tables: more than 256 codes (overflows stb 2.27's arrays), or none at all
         (Motion-JPEG style; stb would decode with uninitialised tables) */
      size_t dht = 0;
      for (size_t i = 2; i + 1 < jn; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc4) {
          dht = i;
          break;
        }
      CHECK(dht > 0, "rocket.jpg has no DHT");
      if (dht) {
        memcpy(c, j, jn);
        c[dht + 5 + 14] = 200;
        c[dht + 5 + 15] = 200;
        expect_err("JPEG with a 400-code Huffman table", c, jn, TT_EFORMAT, "corrupt JPEG", "Huffman", (char *)NULL);
      }
      size_t sn = jpeg_strip(j, jn, 0xc4, c);
      CHECK(sn < jn, "stripping DHT did nothing");
      expect_err("JPEG without Huffman tables", c, sn, TT_EFORMAT, "corrupt JPEG", "Huffman", (char *)NULL);
      sn = jpeg_strip(j, jn, 0xdb, c);
      CHECK(sn < jn, "stripping DQT did nothing");
      expect_err("JPEG without quantisation tables", c, sn, TT_EFORMAT, "corrupt JPEG", "quantisation", (char *)NULL);
      /* garbage in the entropy-coded data: must not crash; stb may or may not notice */
      memcpy(c, j, jn);
      for (size_t i = jn / 2; i < jn / 2 + 64; i++) c[i] = (uint8_t)(i * 31);
      tt_image g;
      rc = tt_image_decode(c, jn, &g);
      CHECK(rc == TT_OK || (rc == TT_EFORMAT && strstr(tt_last_error(), "JPEG")),
            "JPEG with corrupt scan data: rc %d %s", rc, tt_last_error());
      if (rc == TT_OK) tt_image_free(&g);
      /* trailing bytes after EOI are fine */
      uint8_t *t = malloc(jn + 16);
      memcpy(t, j, jn);
      memset(t + jn, 0xab, 16);
      rc = tt_image_decode(t, jn + 16, &g);
      CHECK(rc == TT_OK, "JPEG with trailing junk: %s", tt_last_error());
      if (rc == TT_OK) tt_image_free(&g);
      free(t);
      free(c);
    }
    free(j);
  }
  /* Corrupt zlib data inside a real PNG's IDAT */
  size_t pn;
  uint8_t *p = check_read_file(skdir(), "coffee.png", &pn);
  if (p) {
    for (size_t i = 200; i < 264 && i < pn; i++) p[i] ^= 0x5a;
    tt_image g;
    rc = tt_image_decode(p, pn, &g);
    CHECK(rc == TT_EFORMAT && strstr(tt_last_error(), "PNG"), "corrupt IDAT: rc %d %s", rc, tt_last_error());
    if (rc == TT_OK) tt_image_free(&g);
    free(p);
  }
  tt_image_free(NULL);
}

/* Deterministic mutations of small real files: whatever the bytes, decoding returns
   TT_OK with a sane image or an error with a message (run this under ASan/UBSan). */
static void test_mutations(void) {
  static const struct {
    int fix;
    const char *file;
  } f[] = {{1, "chelsea_64.png"},      {1, "chelsea_64_progressive.jpg"}, {1, "chelsea_64_cmyk.jpg"},
           {1, "chelsea_64_ycck.jpg"}, {1, "chelsea_64_interlaced.png"},  {0, "no_time_for_that_tiny.gif"},
           {0, "foo3x5x4indexed.png"}, {0, "palette_color.png"}};
  uint32_t rng = 0x12345678u;
  int ok = 0, err = 0, insane = 0;
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    size_t n;
    uint8_t *d = check_read_file(f[i].fix ? fixdir() : skdir(), f[i].file, &n);
    if (!d) continue;
    uint8_t *m = malloc(n);
    for (int it = 0; it < 300; it++) {
      memcpy(m, d, n);
      int edits = 1 + it % 8;
      for (int e = 0; e < edits; e++) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        size_t at = (it % 3 == 0) ? rng % (n < 200 ? n : 200) : rng % n; /* headers often */
        m[at] = (uint8_t)(rng >> 24);
      }
      tt_image im;
      tt_clear_error();
      int rc = tt_image_decode(m, n, &im);
      if (rc == TT_OK) {
        ok++;
        insane += im.w <= 0 || im.h <= 0 || im.w > TT_IMAGE_MAX_DIM || !im.rgb;
        tt_image_free(&im);
      } else {
        err++;
        insane += rc > 0 || tt_last_error()[0] == 0 || im.rgb != NULL;
      }
    }
    free(m);
    free(d);
  }
  CHECK(insane == 0, "mutations: %d insane results (%d decoded, %d refused)", insane, ok, err);
  CHECK(err > 0, "mutations: nothing was refused");
}

/* ---- sampling ------------------------------------------------------------------------------------ */

/* TF.js's alignCorners / legacy formula, naively, in double (the CPU backend's way).
   float_coords=1 computes scale and source coordinate in float32 like XNNPACK (the WASM
   backend) and interpolates in double. */
static void ref_sample(const tt_image *im, double x0, double y0, double cw, double ch, int dw, int dh, int align,
                       int float_coords, double *out) {
  for (int oy = 0; oy < dh; oy++) {
    for (int ox = 0; ox < dw; ox++) {
      double src[2];
      int o[2] = {ox, oy}, outn[2] = {dw, dh}, inn[2] = {im->w, im->h};
      double org[2] = {x0, y0}, ext[2] = {cw, ch};
      int i0[2], i1[2];
      double a[2];
      for (int k = 0; k < 2; k++) {
        if (float_coords) {
          float sc = (align && outn[k] > 1) ? (ext[k] > 1 ? (float)ext[k] - 1.0f : 0.0f) / (float)(outn[k] - 1)
                                            : (float)ext[k] / (float)outn[k];
          float s = (float)o[k] * sc;
          s = (float)org[k] + s;
          src[k] = s;
        } else {
          double sc = (align && outn[k] > 1) ? (ext[k] > 1 ? ext[k] - 1 : 0) / (outn[k] - 1) : ext[k] / outn[k];
          src[k] = org[k] + o[k] * sc;
        }
        if (src[k] < 0) src[k] = 0;
        if (src[k] > inn[k] - 1) src[k] = inn[k] - 1;
        i0[k] = (int)floor(src[k]);
        i1[k] = i0[k] + 1 < inn[k] ? i0[k] + 1 : inn[k] - 1;
        a[k] = src[k] - i0[k];
      }
      for (int c = 0; c < 3; c++) {
        double tl = pix(im, i0[0], i0[1])[c] / 255.0, tr = pix(im, i1[0], i0[1])[c] / 255.0;
        double bl = pix(im, i0[0], i1[1])[c] / 255.0, br = pix(im, i1[0], i1[1])[c] / 255.0;
        double top = tl + (tr - tl) * a[0], bot = bl + (br - bl) * a[0];
        out[((size_t)oy * dw + ox) * 3 + c] = top + (bot - top) * a[1];
      }
    }
  }
}

static double max_abs_diff(const float *a, const double *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= m)) m = d;
  }
  return m;
}

static uint32_t fnv_bits(const float *f, size_t n) {
  uint32_t h = 0x811c9dc5u;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &f[i], 4);
    h ^= u;
    h *= 16777619u;
  }
  return h;
}

/* Bit-for-bit agreement with @tensorflow/tfjs-backend-wasm 4.22.0 (SIMD build, Node 20):
     x = 333x250x3 int32, x[y][x][c] = (x*7 + y*13 + c*101 + ((x*y)%17)*5) & 255
     tf.image.resizeBilinear(tf.div(tf.cast(x,'float32'),255), [dh,dw], alignCorners)
   hashed with FNV-1a over the float32 bit patterns (h ^= bits; h *= 16777619).
   The CPU backend (double coordinates) differs in the last bits: its hashes for the
   same cases are 0xe5c1993e, 0xd5f04af7, 0x615f6c18. */
static void test_tfjs_wasm_bits(void) {
  const int W = 333, H = 250;
  tt_image im = {W, H, malloc((size_t)W * H * 3)};
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++)
        im.rgb[((size_t)y * W + x) * 3 + c] = (uint8_t)((x * 7 + y * 13 + c * 101 + ((x * y) % 17) * 5) & 255);
  static const struct {
    int dw, dh, align;
    uint32_t hash;
    size_t idx;
    float val;
  } c[] = {
      {224, 224, 1, 0xedf106cbu, 75488, 0.38372254371643066f},
      {224, 224, 0, 0xadfb04feu, 75488, 0.417926162481308f},
      {97, 31, 1, 0x8107240au, 4463, 0.29477131366729736f},
      {1, 1, 1, 0x802c9355u, 2, 0.7921568751335144f},
  };
  float *out = malloc(sizeof(float) * 224 * 224 * 3);
  tt_view v = tt_view_full(&im);
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    int rc = tt_image_sample(&im, &v, c[i].dw, c[i].dh, c[i].align, out);
    CHECK(rc == TT_OK, "sample: %s", tt_last_error());
    size_t n = (size_t)c[i].dw * c[i].dh * 3;
    uint32_t h = fnv_bits(out, n);
    CHECK(h == c[i].hash, "%dx%d align=%d: hash 0x%08x, tfjs-wasm 0x%08x", c[i].dw, c[i].dh, c[i].align, h, c[i].hash);
    CHECK(out[c[i].idx] == c[i].val, "%dx%d align=%d: [%zu] = %.9g, tfjs-wasm %.9g", c[i].dw, c[i].dh, c[i].align,
          c[i].idx, (double)out[c[i].idx], (double)c[i].val);
  }
  free(out);
  free(im.rgb);
}

static void test_sampling(void) {
  size_t n;
  uint8_t *d = check_read_file(skdir(), "chelsea.png", &n);
  tt_image im = {0, 0, NULL};
  if (!d || tt_image_decode(d, n, &im) != TT_OK) {
    CHECK(0, "chelsea.png for sampling: %s", tt_last_error());
    free(d);
    return;
  }
  free(d);
  const int S = 224;
  const size_t N = (size_t)S * S * 3;
  float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
  double *r = malloc(N * sizeof(double));
  tt_view full = tt_view_full(&im);
  CHECK(full.x0 == 0 && full.y0 == 0 && full.cw == 451 && full.ch == 300 && !full.flip && full.brightness == 0 &&
            full.contrast == 1 && full.saturation == 1,
        "tt_view_full fields");

  /* Full view vs the naive formula: down- and up-sampling, both corner rules. */
  static const struct {
    int dw, dh, align;
  } sz[] = {{224, 224, 1}, {224, 224, 0}, {97, 31, 1}, {37, 1, 0}, {1, 1, 1}, {1, 1, 0}, {5, 224, 1}};
  for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
    size_t m = (size_t)sz[i].dw * sz[i].dh * 3;
    int rc = tt_image_sample(&im, &full, sz[i].dw, sz[i].dh, sz[i].align, a);
    CHECK(rc == TT_OK, "sample %dx%d: %s", sz[i].dw, sz[i].dh, tt_last_error());
    ref_sample(&im, 0, 0, im.w, im.h, sz[i].dw, sz[i].dh, sz[i].align, 0, r);
    double e = max_abs_diff(a, r, m);
    /* float32 source coordinates (as tfjs-wasm) vs double (tfjs-cpu): at 451 px wide a
       coordinate is off by up to ~3e-5 px, so values by up to ~4e-6 */
    CHECK(e < 1e-5, "chelsea %dx%d align=%d: max diff vs double formula %.3g", sz[i].dw, sz[i].dh, sz[i].align, e);
    ref_sample(&im, 0, 0, im.w, im.h, sz[i].dw, sz[i].dh, sz[i].align, 1, r);
    e = max_abs_diff(a, r, m);
    CHECK(e < 1e-6, "chelsea %dx%d align=%d: max diff vs float-coordinate formula %.3g", sz[i].dw, sz[i].dh,
          sz[i].align, e);
  }
  /* 1x1 destination = the top-left pixel under both rules */
  tt_image_sample(&im, &full, 1, 1, 1, a);
  CHECK(a[0] == (float)im.rgb[0] / 255.0f && a[2] == (float)im.rgb[2] / 255.0f, "1x1 output: %g %g", (double)a[0],
        (double)a[2]);
  /* Upsampling the same size is the identity. */
  tt_view crop = {100, 50, 224, 224, 0, 0, 1, 1};
  tt_image_sample(&im, &crop, 224, 224, 1, a);
  size_t bad = 0;
  for (int y = 0; y < 224; y++)
    for (int x = 0; x < 224; x++)
      for (int c = 0; c < 3; c++)
        bad += a[((size_t)y * 224 + x) * 3 + c] != (float)pix(&im, 100 + x, 50 + y)[c] / 255.0f;
  CHECK(bad == 0, "same-size integer crop is not an exact copy (%zu values)", bad);

  /* General crop (fractional origin, partly outside the image: clamped) vs naive. */
  static const tt_view crops[] = {
      {10.5f, 20.25f, 100, 50, 0, 0, 1, 1},
      {-30, -10, 200, 120, 0, 0, 1, 1},
      {400, 250, 100.5f, 80, 0, 0, 1, 1},
      {3, 4, 0.5f, 0.5f, 0, 0, 1, 1},
  };
  for (size_t i = 0; i < sizeof crops / sizeof crops[0]; i++)
    for (int al = 0; al < 2; al++) {
      int rc = tt_image_sample(&im, &crops[i], 64, 48, al, a);
      CHECK(rc == TT_OK, "crop %zu: %s", i, tt_last_error());
      ref_sample(&im, crops[i].x0, crops[i].y0, crops[i].cw, crops[i].ch, 64, 48, al, 0, r);
      double e = max_abs_diff(a, r, (size_t)64 * 48 * 3);
      CHECK(e < 1e-5, "crop %zu align=%d: max diff %.3g", i, al, e);
    }

  /* Flip mirrors the output columns exactly. */
  tt_image_sample(&im, &full, S, S, 1, a);
  tt_view fl = full;
  fl.flip = 1;
  tt_image_sample(&im, &fl, S, S, 1, b);
  bad = 0;
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++)
      bad += memcmp(&b[((size_t)y * S + x) * 3], &a[((size_t)y * S + (S - 1 - x)) * 3], 3 * sizeof(float)) != 0;
  CHECK(bad == 0, "flip: %zu pixels not mirrored", bad);
  tt_view fc = crops[0];
  fc.flip = 1;
  tt_image_sample(&im, &crops[0], 31, 7, 0, a);
  tt_image_sample(&im, &fc, 31, 7, 0, b);
  bad = 0;
  for (int y = 0; y < 7; y++)
    for (int x = 0; x < 31; x++)
      bad += memcmp(&b[((size_t)y * 31 + x) * 3], &a[((size_t)y * 31 + (30 - x)) * 3], 3 * sizeof(float)) != 0;
  CHECK(bad == 0, "flip of a crop: %zu pixels not mirrored", bad);

  /* Centre square: landscape (451x300) and portrait (synthetic 7x12). */
  tt_view cs = tt_view_center_square(&im);
  CHECK(cs.x0 == 75 && cs.y0 == 0 && cs.cw == 300 && cs.ch == 300 && !cs.flip && cs.contrast == 1,
        "landscape centre square: %g,%g %gx%g", (double)cs.x0, (double)cs.y0, (double)cs.cw, (double)cs.ch);
  uint8_t prgb[7 * 12 * 3];
  for (int i = 0; i < 7 * 12 * 3; i++) prgb[i] = (uint8_t)(i * 3);
  tt_image por = {7, 12, prgb};
  cs = tt_view_center_square(&por);
  CHECK(cs.x0 == 0 && cs.y0 == 2 && cs.cw == 7 && cs.ch == 7, "portrait centre square: %g,%g %gx%g", (double)cs.x0,
        (double)cs.y0, (double)cs.cw, (double)cs.ch);
  tt_image_sample(&por, &cs, 7, 7, 1, a);
  bad = 0;
  for (int y = 0; y < 7; y++)
    for (int x = 0; x < 7; x++)
      for (int c = 0; c < 3; c++) bad += a[((size_t)y * 7 + x) * 3 + c] != (float)pix(&por, x, y + 2)[c] / 255.0f;
  CHECK(bad == 0, "portrait centre square: %zu values differ from rows 2..8", bad);
  tt_image sq = {5, 5, prgb};
  cs = tt_view_center_square(&sq);
  CHECK(cs.x0 == 0 && cs.y0 == 0 && cs.cw == 5 && cs.ch == 5, "square image centre square");

  /* 1x1 source: every output is that pixel, no division by zero, no NaN. */
  uint8_t one[3] = {10, 20, 30};
  tt_image im1 = {1, 1, one};
  tt_view v1 = tt_view_full(&im1);
  for (int al = 0; al < 2; al++) {
    int rc = tt_image_sample(&im1, &v1, 5, 4, al, a);
    CHECK(rc == TT_OK, "1x1 source: %s", tt_last_error());
    bad = 0;
    for (int i = 0; i < 20; i++)
      for (int c = 0; c < 3; c++) bad += a[i * 3 + c] != (float)one[c] / 255.0f;
    CHECK(bad == 0, "1x1 source align=%d: %zu wrong values", al, bad);
    rc = tt_image_sample(&im1, &v1, 1, 1, al, a);
    CHECK(rc == TT_OK && a[1] == 20.0f / 255.0f, "1x1 -> 1x1 align=%d", al);
  }

  /* Colour jitter. */
  tt_image_sample(&im, &full, S, S, 1, a);
  tt_view j = full;
  j.brightness = 0;
  j.contrast = 1;
  j.saturation = 1;
  tt_image_sample(&im, &j, S, S, 1, b);
  CHECK(memcmp(a, b, N * sizeof(float)) == 0, "identity jitter changed values");
  double mean_a = 0;
  for (size_t i = 0; i < N; i++) mean_a += a[i];
  mean_a /= (double)N;

  j.brightness = 0.1f;
  tt_image_sample(&im, &j, S, S, 1, b);
  double mean_b = 0, lo = 1, hi = 0;
  for (size_t i = 0; i < N; i++) {
    mean_b += b[i];
    if (b[i] < lo) lo = b[i];
    if (b[i] > hi) hi = b[i];
  }
  mean_b /= (double)N;
  CHECK(mean_b > mean_a + 0.08 && mean_b <= mean_a + 0.1 + 1e-6, "brightness +0.1: mean %.4f -> %.4f", mean_a, mean_b);
  CHECK(lo >= 0 && hi <= 1, "brightness: values outside [0,1]: %g..%g", lo, hi);
  bad = 0;
  for (size_t i = 0; i < N; i++) {
    float want = a[i] + 0.1f;
    if (want > 1) want = 1;
    bad += fabsf(b[i] - want) > 1e-6f;
  }
  CHECK(bad == 0, "brightness +0.1 is not value+0.1 clamped (%zu values)", bad);

  j.brightness = 0;
  j.saturation = 0;
  tt_image_sample(&im, &j, S, S, 1, b);
  bad = 0;
  for (size_t i = 0; i < N; i += 3) bad += b[i] != b[i + 1] || b[i] != b[i + 2];
  CHECK(bad == 0, "saturation 0: %zu pixels not grey", bad);
  double g0 = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2];
  CHECK(fabs(b[0] - g0) < 1e-6, "saturation 0: grey %g, want %g", (double)b[0], g0);

  j.saturation = 1;
  j.contrast = 0;
  tt_image_sample(&im, &j, S, S, 1, b);
  double mg = 0;
  for (size_t i = 0; i < N; i += 3) mg += 0.299 * a[i] + 0.587 * a[i + 1] + 0.114 * a[i + 2];
  mg /= (double)(N / 3);
  bad = 0;
  for (size_t i = 0; i < N; i++) bad += fabs(b[i] - mg) > 1e-5;
  CHECK(bad == 0, "contrast 0: %zu values differ from the mean grey %.5f", bad, mg);

  j.contrast = 1.5f;
  tt_image_sample(&im, &j, S, S, 1, b);
  double va = 0, vb = 0;
  for (size_t i = 0; i < N; i++) {
    va += (a[i] - mean_a) * (a[i] - mean_a);
    vb += (b[i] - mean_a) * (b[i] - mean_a);
  }
  CHECK(vb > va * 1.5, "contrast 1.5 should spread values: var %.5f -> %.5f", va / N, vb / N);

  j.contrast = 1;
  j.brightness = -2;
  tt_image_sample(&im, &j, S, S, 1, b);
  bad = 0;
  for (size_t i = 0; i < N; i++) bad += b[i] != 0.0f;
  CHECK(bad == 0, "brightness -2 should clamp everything to 0");

  /* Bad arguments. */
  static const struct { int dw, dh; } bs[] = {{0, 5}, {5, 0}, {-1, 5}, {5, -3}};
  for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) {
    int rc = tt_image_sample(&im, &full, bs[i].dw, bs[i].dh, 1, a);
    CHECK(rc == TT_EINVAL && strstr(tt_last_error(), "size"), "size %dx%d: rc %d %s", bs[i].dw, bs[i].dh, rc,
          tt_last_error());
  }
  CHECK(tt_image_sample(&im, &full, 4, 4, 1, NULL) == TT_EINVAL, "NULL dst accepted");
  CHECK(tt_image_sample(NULL, &full, 4, 4, 1, a) == TT_EINVAL, "NULL image accepted");
  CHECK(tt_image_sample(&im, NULL, 4, 4, 1, a) == TT_EINVAL, "NULL view accepted");
  tt_image empty = {0, 0, NULL};
  CHECK(tt_image_sample(&empty, &full, 4, 4, 1, a) == TT_EINVAL, "empty image accepted");
  tt_view bad_v = full;
  bad_v.cw = 0;
  CHECK(tt_image_sample(&im, &bad_v, 4, 4, 1, a) == TT_EINVAL && strstr(tt_last_error(), "crop"), "zero-width crop: %s",
        tt_last_error());
  bad_v = full;
  bad_v.x0 = NAN;
  CHECK(tt_image_sample(&im, &bad_v, 4, 4, 1, a) == TT_EINVAL, "NaN crop origin accepted");
  bad_v = full;
  bad_v.ch = INFINITY;
  CHECK(tt_image_sample(&im, &bad_v, 4, 4, 1, a) == TT_EINVAL, "infinite crop accepted");
  bad_v = full;
  bad_v.saturation = NAN;
  CHECK(tt_image_sample(&im, &bad_v, 4, 4, 1, a) == TT_EINVAL && strstr(tt_last_error(), "jitter"),
        "NaN saturation: %s", tt_last_error());

  free(a);
  free(b);
  free(r);
  tt_image_free(&im);
}

/* Raw pixels (a canvas's RGBA, a grey camera frame): every channel count becomes the RGB
   the decoder would give, alpha dropped; sizes beyond the decoder's limits are refused. */
static void test_from_pixels(void) {
  static const uint8_t px[4][2 * 4] = {{10, 200}, {10, 99, 200, 98}, {1, 2, 3, 4, 5, 6}, {1, 2, 3, 77, 4, 5, 6, 78}};
  static const uint8_t want[4][6] = {
      {10, 10, 10, 200, 200, 200}, {10, 10, 10, 200, 200, 200}, {1, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6}};
  for (int ch = 1; ch <= 4; ch++) {
    tt_image im;
    int rc = tt_image_from_pixels(px[ch - 1], 2, 1, ch, &im);
    CHECK(rc == TT_OK && im.w == 2 && im.h == 1 && memcmp(im.rgb, want[ch - 1], 6) == 0, "%d channels: rc %d, %dx%d",
          ch, rc, im.w, im.h);
    tt_image_free(&im);
  }
  static const struct {
    int w, h, ch;
  } bad[] = {{0, 1, 3}, {1, -1, 3}, {16385, 1, 3}, {8000, 8000, 3}, {2, 1, 0}, {2, 1, 5}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tt_image im = {7, 7, NULL};
    int rc = tt_image_from_pixels(px[3], bad[i].w, bad[i].h, bad[i].ch, &im);
    char msg[96];
    snprintf(msg, sizeof msg, "pixels: %dx%d with %d channels is out of range", bad[i].w, bad[i].h, bad[i].ch);
    CHECK(rc == TT_EINVAL && strcmp(tt_last_error(), msg) == 0 && im.w == 0 && im.h == 0 && !im.rgb,
          "%dx%dx%d: rc %d, '%s'", bad[i].w, bad[i].h, bad[i].ch, rc, tt_last_error());
  }
}

int main(void) {
  test_real_photos();
  test_fixtures();
  test_exif();
  test_bad_input();
  test_size_limits();
  test_tiny_and_crafted();
  test_mutations();
  test_tfjs_wasm_bits();
  test_sampling();
  test_from_pixels();
  return check_report("image");
}
