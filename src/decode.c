/* Decoding untrusted image bytes to 8-bit RGB: the first step of every image's way into
   the engine (files, uploads; canvas pixels skip it), before sample.c renders a view of
   it into the model's input. stb_image 2.27 does the decoding, guarded: our own header
   scans first (imghdr.c), then stb configured for hostile input (bounded, zeroed
   allocations; its internal checks fail the decode instead of aborting), and a padded
   view for short PNG palettes; EXIF orientation is applied last. See image.h for the
   contract. */
#include "image.h"
#include "imghdr.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt.h"

/* ---- stb_image, configured for untrusted input in a filesystem-less build ---------- */

/* Every allocation stb makes goes through these:
   - no single buffer can exceed what the largest legitimate image needs (a 40 MP 16-bit
     RGBA PNG's inflated data with one doubling of slack). This stops a zlib bomb (a
     tiny-canvas PNG whose IDAT inflates to gigabytes) from eating the heap: stb then
     fails with "outofmem";
   - new blocks are zeroed. stb 2.27 reads memory it never wrote when a file is
     inconsistent (tables a scan names but no DHT/DQT defines, progressive coefficients
     of blocks no scan covers, a component no scan covers), which would put stale heap
     bytes into the pixels and make decoding the same bytes twice differ. */
#define TT_STBI_MAX_ALLOC ((size_t)TT_IMAGE_MAX_PIXELS * 8u * 2u + ((size_t)1 << 20))
static void *stb_malloc(size_t n);
static void *stb_realloc(void *p, size_t n);
#define STBI_MALLOC(sz)        stb_malloc(sz)
#define STBI_REALLOC(p, newsz) stb_realloc(p, newsz)
#define STBI_FREE(p)           free(p)

/* stb's internal consistency checks. With assert() one failing would abort the whole
   wasm module (the page's engine, mid-training); instead the first failed check is kept
   and the decode in progress fails with it (tt_image_decode discards whatever stb
   returned). None is known to fire on any input: our header scans refuse what would
   (see dht_tables in imghdr.c), so this is the second lock. */
static void stb_check_failed(const char *what);
#define STBI_ASSERT(x) ((x) ? (void)0 : stb_check_failed(#x))

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#endif
#include "third_party/stb_image.h"
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* The decode in progress: the bound on each of stb's allocations, and the first of its
   checks that failed. While the header is read the bound is the global one; once the
   declared size is known, the same bound for that size: a 1 MB PNG declaring 1x1 whose
   IDAT inflates to 1 GB would otherwise grow the heap to the global bound (wasm memory
   never shrinks) and spend seconds inflating before stb gives up. stb 2.27's hooks take
   no argument, so they reach the decode's guard (a local of tt_image_decode) through a
   thread-local pointer, as stb keeps its own failure reason: decodes on two threads
   never see each other's, and nothing is left over from one decode to the next. */
typedef struct {
  size_t limit;
  const char *failed_check;
} stb_guard;
#ifdef STBI_THREAD_LOCAL
static STBI_THREAD_LOCAL stb_guard *active;
#else
static stb_guard *active;
#endif

static size_t stb_limit(void) { return active ? active->limit : TT_STBI_MAX_ALLOC; }
static void *stb_malloc(size_t n) { return n > stb_limit() ? NULL : calloc(1, n ? n : 1); }
static void *stb_realloc(void *p, size_t n) { return n > stb_limit() ? NULL : realloc(p, n); }
static void stb_check_failed(const char *what) {
  if (active && !active->failed_check) active->failed_check = what;
}

/* ---- a short PNG palette, padded ---------------------------------------------------- */

/* stb 2.27 expands a palette image through a stack array of 256 entries of which it
   fills only as many as PLTE has, so pixels with larger indices would get stale stack
   bytes. Instead of copying the file, stb reads it through this view, in which the first
   PLTE chunk is padded with zero (black) entries to 256: the 4-byte length field at
   `patch_at` reads as 768 and `extra` zero bytes appear at `at` (before the chunk's CRC,
   which stb does not check). */
typedef struct {
  const uint8_t *d;
  size_t n, pos; /* pos: in the padded view, n + extra bytes long */
  size_t at, extra;
  size_t patch_at;
  uint8_t patch[4];
} padded_view;

static size_t pv_size(const padded_view *v) { return v->n + v->extra; }

static int pv_read(void *user, char *out, int size) {
  padded_view *v = user;
  size_t want = size > 0 ? (size_t)size : 0, done = 0, total = pv_size(v);
  while (done < want && v->pos < total) {
    size_t i = v->pos, k;
    if (i < v->at) { /* original bytes before the insertion, with the length patched */
      k = v->at - i;
      if (k > want - done) k = want - done;
      memcpy(out + done, v->d + i, k);
      for (size_t j = 0; j < k; j++)
        if (i + j >= v->patch_at && i + j < v->patch_at + 4) out[done + j] = (char)v->patch[i + j - v->patch_at];
    } else if (i < v->at + v->extra) { /* the padding */
      k = v->at + v->extra - i;
      if (k > want - done) k = want - done;
      memset(out + done, 0, k);
    } else { /* the rest of the original */
      k = total - i;
      if (k > want - done) k = want - done;
      memcpy(out + done, v->d + (i - v->extra), k);
    }
    done += k;
    v->pos += k;
  }
  return (int)done;
}

static void pv_skip(void *user, int n) {
  padded_view *v = user;
  size_t back = (size_t)(-(int64_t)n);
  if (n < 0)
    v->pos = back > v->pos ? 0 : v->pos - back;
  else
    v->pos = (size_t)n > pv_size(v) - v->pos ? pv_size(v) : v->pos + (size_t)n;
}

static int pv_eof(void *user) {
  padded_view *v = user;
  return v->pos >= pv_size(v);
}

/* stb's terse reasons, in words. */
static const char *stb_reason(void) {
  const char *why = stbi_failure_reason();
  if (!why || !why[0] || (unsigned char)why[0] < 0x20) return "the data is damaged or cut short";
  if (strcmp(why, "outofdata") == 0) return "the data ends early (outofdata)";
  return why;
}

static int over_limit(int64_t w, int64_t h) {
  return w > TT_IMAGE_MAX_DIM || h > TT_IMAGE_MAX_DIM || w * h > (int64_t)TT_IMAGE_MAX_PIXELS;
}

static int limit_error(int64_t w, int64_t h) {
  return tt_fail(TT_ENOMEM, "image is %lldx%lld pixels; the limit is %d per side and %d megapixels", (long long)w,
                 (long long)h, TT_IMAGE_MAX_DIM, TT_IMAGE_MAX_PIXELS / 1000000);
}

/* ---- decoding ------------------------------------------------------------------------- */

/* The stored w x h pixels turned upright by EXIF orientation o (2..8) into a new buffer
   (h x w for 5..8): each upright pixel (x, y) reads the stored pixel below. */
static uint8_t *orient(const uint8_t *px, int w, int h, int o) {
  int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
  uint8_t *up = malloc((size_t)w * (size_t)h * 3);
  if (!up) return NULL;
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++) {
      int sx, sy;
      switch (o) {
      case 2:
        sx = w - 1 - x;
        sy = y;
        break; /* mirrored left-right */
      case 3:
        sx = w - 1 - x;
        sy = h - 1 - y;
        break; /* upside down */
      case 4:
        sx = x;
        sy = h - 1 - y;
        break; /* mirrored top-bottom */
      case 5:
        sx = y;
        sy = x;
        break; /* transposed */
      case 6:
        sx = y;
        sy = h - 1 - x;
        break; /* stored turned 90 left: turn right */
      case 7:
        sx = w - 1 - y;
        sy = h - 1 - x;
        break; /* transversed */
      default:
        sx = w - 1 - y;
        sy = x;
        break; /* 8: stored turned 90 right: turn left */
      }
      memcpy(up + ((size_t)y * (size_t)ow + (size_t)x) * 3, px + ((size_t)sy * (size_t)w + (size_t)sx) * 3, 3);
    }
  return up;
}

static int decode(const uint8_t *data, size_t len, tt_image *out, stb_guard *g);

int tt_image_decode(const uint8_t *data, size_t len, tt_image *out) {
  stb_guard g = {TT_STBI_MAX_ALLOC, NULL};
  active = &g;
  int r = decode(data, len, out, &g);
  active = NULL;
  return r;
}

static int check_failed(const char *name, const stb_guard *g) {
  return tt_fail(TT_EFORMAT,
                 "corrupt %s: the decoder found it inconsistent (stb_image check '%s' "
                 "failed)",
                 name, g->failed_check);
}

static int decode(const uint8_t *data, size_t len, tt_image *out, stb_guard *g) {
  if (!out) return tt_fail(TT_EINVAL, "tt_image_decode: out is NULL");
  out->w = out->h = 0;
  out->rgb = NULL;
  if (!data && len) return tt_fail(TT_EINVAL, "tt_image_decode: data is NULL");
  if (len == 0) return tt_fail(TT_EFORMAT, "empty file");
  if (len > (size_t)INT_MAX) return tt_fail(TT_ENOMEM, "file is %zu bytes; the limit is %d", len, INT_MAX);

  int fmt = tt_imghdr_sniff(data, len);
  if (fmt < 0) return fmt;
  const char *name = tt_imghdr_format_name(fmt);

  /* 1. Our own reading of the header: the declared size is checked first, so a tiny
        file declaring a huge canvas costs nothing, whatever else is wrong with it. */
  img_hdr h = {-1, -1, 0, 0, 0};
  img_problem pr;
  pr.code = 0;
  pr.msg[0] = 0;
  tt_imghdr_scan(fmt, data, len, &h, &pr);
  if (h.w >= 0 && h.h >= 0 && over_limit(h.w, h.h)) return limit_error(h.w, h.h);
  if (pr.code) return tt_fail(pr.code, "%s", pr.msg);

  /* 2. stb's reading of the header. */
  int w = 0, hh = 0, comp = 0;
  if (!stbi_info_from_memory(data, (int)len, &w, &hh, &comp)) {
    /* stbi_info tries every format and reports the last one's reason ("unknown image
       type"); ask the one it is for, for a useful reason. */
    stbi__context s;
    stbi__start_mem(&s, data, (int)len);
    int ok = 0;
    switch (fmt) {
    case FMT_JPEG: ok = stbi__jpeg_info(&s, &w, &hh, &comp); break;
    case FMT_PNG: ok = stbi__png_info(&s, &w, &hh, &comp); break;
    case FMT_GIF: ok = stbi__gif_info(&s, &w, &hh, &comp); break;
    case FMT_BMP: ok = stbi__bmp_info(&s, &w, &hh, &comp); break;
    }
    const char *why = ok ? "unreadable header" : stb_reason();
    if (strcmp(why, "too large") == 0)
      return tt_fail(TT_ENOMEM,
                     "%s declares an image too large to decode; the limit is %d per side "
                     "and %d megapixels",
                     name, TT_IMAGE_MAX_DIM, TT_IMAGE_MAX_PIXELS / 1000000);
    return tt_fail(TT_EFORMAT, "corrupt or truncated %s: %s", name, why);
  }
  if (g->failed_check) return check_failed(name, g);
  if (w <= 0 || hh <= 0) return tt_fail(TT_EFORMAT, "corrupt or truncated %s: image is %dx%d pixels", name, w, hh);
  if (over_limit(w, hh)) return limit_error(w, hh);

  /* 3. Decode to 8-bit RGB. w*hh*3 <= 3 * 40e6 < INT_MAX: no overflow anywhere in stb's
        or our size math. */
  int dw = 0, dh = 0, dc = 0;
  stbi_uc *px;
  /* (w+16)(h+16): JPEG pads to whole 16x16 MCUs. */
  const size_t limit = (size_t)(w + 16) * (size_t)(hh + 16) * 8u * 2u + ((size_t)1 << 20);
  g->limit = limit < TT_STBI_MAX_ALLOC ? limit : TT_STBI_MAX_ALLOC;
  if (fmt == FMT_PNG && h.plte_at) {
    padded_view pv;
    pv.d = data;
    pv.n = len;
    pv.pos = 0;
    pv.at = h.plte_at + 8 + h.plte_len;
    pv.extra = 768 - h.plte_len;
    pv.patch_at = h.plte_at;
    pv.patch[0] = 0;
    pv.patch[1] = 0;
    pv.patch[2] = 3;
    pv.patch[3] = 0;
    stbi_io_callbacks cb = {pv_read, pv_skip, pv_eof};
    px = stbi_load_from_callbacks(&cb, &pv, &dw, &dh, &dc, 3);
  } else {
    px = stbi_load_from_memory(data, (int)len, &dw, &dh, &dc, 3);
  }
  if (g->failed_check) {
    free(px);
    return check_failed(name, g);
  }
  if (!px) {
    const char *why = stb_reason();
    if (strcmp(why, "outofmem") == 0)
      return tt_fail(TT_ENOMEM,
                     "out of memory decoding a %dx%d %s (or its data inflates to far "
                     "more than that size needs)",
                     w, hh, name);
    return tt_fail(TT_EFORMAT, "corrupt or truncated %s: %s", name, why);
  }
  if (dw != w || dh != hh) { /* cannot happen with stb, but never trust a size twice */
    free(px);
    return tt_fail(TT_EFORMAT, "corrupt %s: header says %dx%d, decoded %dx%d", name, w, hh, dw, dh);
  }
  if (h.orientation) {
    uint8_t *up = orient(px, w, hh, h.orientation);
    free(px);
    if (!up) return tt_fail(TT_ENOMEM, "out of memory turning a %dx%d JPEG upright", w, hh);
    px = up;
    if (h.orientation >= 5) {
      int t = w;
      w = hh;
      hh = t;
    }
  }
  out->w = w;
  out->h = hh;
  out->rgb = px;
  return TT_OK;
}

void tt_image_free(tt_image *im) {
  if (!im) return;
  free(im->rgb); /* allocated by stb through stb_malloc, i.e. calloc */
  im->rgb = NULL;
  im->w = im->h = 0;
}
