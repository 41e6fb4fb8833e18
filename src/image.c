/* Images: untrusted bytes -> 8-bit RGB (stb_image), then bilinear sampling of a view
   into the model's float input, bit-compatible with TensorFlow.js's resizeBilinear on
   the WASM backend (XNNPACK, float32 throughout). See image.h for the contract. */
#include "image.h"

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
/* While decoding, the same bound for the declared size: a 1 MB PNG declaring 1x1 whose
   IDAT inflates to 1 GB would otherwise grow the heap to the global bound (wasm memory
   never shrinks) and spend seconds inflating before stb gives up. */
static size_t tt__stbi_limit = TT_STBI_MAX_ALLOC;
static void *tt__stbi_malloc(size_t n) { return n > tt__stbi_limit ? NULL : calloc(1, n ? n : 1); }
static void *tt__stbi_realloc(void *p, size_t n) {
  return n > tt__stbi_limit ? NULL : realloc(p, n);
}
#define STBI_MALLOC(sz) tt__stbi_malloc(sz)
#define STBI_REALLOC(p, newsz) tt__stbi_realloc(p, newsz)
#define STBI_FREE(p) free(p)

/* stb's internal consistency checks. With assert() one failing would abort the whole
   wasm module (the page's engine, mid-training); instead the first failed check is kept
   and the decode in progress fails with it (tt_image_decode discards whatever stb
   returned). None is known to fire on any input: our header scans refuse what would
   (see dht_tables), so this is the second lock. */
static const char *tt__stbi_failed_check; /* since the end of the last decode */
static void tt__stbi_check_failed(const char *what) {
  if (!tt__stbi_failed_check) tt__stbi_failed_check = what;
}
#define STBI_ASSERT(x) ((x) ? (void)0 : tt__stbi_check_failed(#x))

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

/* ---- format sniffing ---------------------------------------------------------------- */

enum { FMT_NONE, FMT_JPEG, FMT_PNG, FMT_GIF, FMT_BMP };

static const char *fmt_name(int f) {
  switch (f) {
    case FMT_JPEG: return "JPEG";
    case FMT_PNG: return "PNG";
    case FMT_GIF: return "GIF";
    case FMT_BMP: return "BMP";
    default: return "image";
  }
}

static int has_prefix(const uint8_t *d, size_t n, const char *p) {
  size_t k = strlen(p);
  return n >= k && memcmp(d, p, k) == 0;
}

/* Case-insensitive search for an ASCII needle in the first `n` bytes. */
static int contains_ci(const uint8_t *d, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++) {
    size_t j = 0;
    while (j < k) {
      uint8_t c = d[i + j];
      if (c >= 'A' && c <= 'Z') c = (uint8_t)(c - 'A' + 'a');
      if (c != (uint8_t)needle[j]) break;
      j++;
    }
    if (j == k) return 1;
  }
  return 0;
}

/* Plain text: the first bytes are printable ASCII, whitespace or UTF-8 sequences. */
static int looks_like_text(const uint8_t *d, size_t n) {
  if (n > 512) n = 512;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = d[i];
    if (c == '\t' || c == '\n' || c == '\r' || c == '\f') continue;
    if (c >= 0x20 && c < 0x7f) continue;
    if (c >= 0x80) {
      /* a well-formed UTF-8 multibyte sequence (cut off at the window end is fine) */
      int extra = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
      if (extra < 0) return 0;
      for (int k = 1; k <= extra && i + 1 < n; k++) {
        if ((d[i + 1] & 0xc0) != 0x80) return 0;
        i++;
      }
      continue;
    }
    return 0;
  }
  return 1;
}

/* Returns FMT_* for what we decode, or a negative TT_E* (message set) for anything
   else, naming what the bytes look like. */
static int sniff(const uint8_t *d, size_t n) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return FMT_JPEG;
  if (n >= 8 && memcmp(d, png_sig, 8) == 0) return FMT_PNG;
  if (has_prefix(d, n, "GIF87a") || has_prefix(d, n, "GIF89a")) return FMT_GIF;
  if (n >= 14 && d[0] == 'B' && d[1] == 'M') return FMT_BMP;

  /* Images we do not decode: say so, rather than "not an image". */
  const char *unsup = NULL;
  if (n >= 12 && has_prefix(d, n, "RIFF") && memcmp(d + 8, "WEBP", 4) == 0) unsup = "WebP";
  else if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0)) unsup = "TIFF";
  else if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
    const uint8_t *b = d + 8;
    if (memcmp(b, "avif", 4) == 0 || memcmp(b, "avis", 4) == 0) unsup = "AVIF";
    else if (memcmp(b, "heic", 4) == 0 || memcmp(b, "heix", 4) == 0 ||
             memcmp(b, "hevc", 4) == 0 || memcmp(b, "mif1", 4) == 0 ||
             memcmp(b, "msf1", 4) == 0 || memcmp(b, "heim", 4) == 0)
      unsup = "HEIC/HEIF";
    else
      return tt_fail(TT_EFORMAT, "not an image: looks like a video (MP4/MOV container)");
  } else if (has_prefix(d, n, "8BPS")) unsup = "Photoshop PSD";
  else if (n >= 12 && memcmp(d, "\0\0\0\x0cjP  ", 8) == 0) unsup = "JPEG 2000";
  else if (n >= 2 && d[0] == 0xff && d[1] == 0x0a) unsup = "JPEG XL";
  else if (n >= 12 && memcmp(d, "\0\0\0\x0cJXL ", 8) == 0) unsup = "JPEG XL";
  else if (n >= 6 && memcmp(d, "\0\0\1\0", 4) == 0 && d[4] != 0) unsup = "ICO";
  if (unsup)
    return tt_fail(TT_EUNSUP, "unsupported image format: %s (use JPEG, PNG, BMP or GIF)", unsup);

  if (has_prefix(d, n, "%PDF")) return tt_fail(TT_EFORMAT, "not an image: looks like a PDF");
  if (has_prefix(d, n, "PK\3\4"))
    return tt_fail(TT_EFORMAT, "not an image: looks like a ZIP archive (or an Office document)");
  if (n >= 2 && d[0] == 0x1f && d[1] == 0x8b)
    return tt_fail(TT_EFORMAT, "not an image: looks like a gzip archive");

  /* Text: skip a UTF-8 byte-order mark and leading whitespace. */
  size_t i = 0;
  if (n >= 3 && d[0] == 0xef && d[1] == 0xbb && d[2] == 0xbf) i = 3;
  while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')) i++;
  size_t window = n - i < 4096 ? n - i : 4096;
  if (i < n && d[i] == '<') {
    if (contains_ci(d + i, window, "<svg"))
      return tt_fail(TT_EFORMAT, "not an image: looks like text/SVG (a vector drawing; "
                                 "export it as PNG first)");
    if (contains_ci(d + i, window, "<html") || contains_ci(d + i, window, "<!doctype html"))
      return tt_fail(TT_EFORMAT, "not an image: looks like text/HTML (a web page)");
    return tt_fail(TT_EFORMAT, "not an image: looks like text/XML");
  }
  if (i < n && looks_like_text(d + i, n - i))
    return tt_fail(TT_EFORMAT, "not an image: looks like text");

  char hex[4 * 3 + 1];
  size_t k = n < 4 ? n : 4, p = 0;
  static const char digits[] = "0123456789abcdef";
  for (size_t j = 0; j < k; j++) {
    if (j) hex[p++] = ' ';
    hex[p++] = digits[d[j] >> 4];
    hex[p++] = digits[d[j] & 15];
  }
  hex[p] = 0;
  return tt_fail(TT_EFORMAT, "not an image: unrecognised header %s", hex);
}

/* ---- format-specific header checks stb does not do ------------------------------------- */

/* What the header declares, read by us before stb sees the bytes: the canvas size (for
   the limit check, whatever stb thinks of the rest) and, where stb would silently fill
   missing data with grey or black, whether the data is all there. */
typedef struct {
  int64_t w, h;    /* declared size; -1 if the header did not get that far */
  size_t plte_at;  /* PNG: offset of a palette image's first PLTE chunk, if short (else 0) */
  uint32_t plte_len;
  int orientation; /* JPEG: EXIF Orientation 2..8 (how to turn the stored pixels upright), else 0 */
} hdr;

static uint32_t rd32le(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint32_t rd32be(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static unsigned rd16le(const uint8_t *p) { return (unsigned)p[0] | ((unsigned)p[1] << 8); }
static unsigned rd16be(const uint8_t *p) { return ((unsigned)p[0] << 8) | (unsigned)p[1]; }

/* The first problem a header scan finds; reported only after the size check. */
typedef struct {
  int code;         /* 0 = fine */
  char msg[160];
} problem;

static void note(problem *pr, int code, const char *msg) {
  if (pr->code) return;
  pr->code = code;
  snprintf(pr->msg, sizeof pr->msg, "%s", msg);
}

/* A DHT segment (length field at d[p]) read exactly as stb 2.27 reads it: tables until
   the declared length is used up, reading on past it if the tables say so. stb builds
   each table before checking anything, and more than 256 codes in one table overflow
   its arrays (nothings/stb#1289), so such tables must never reach it. Returns -1 for
   that, else the tables defined (bit th for DC table th, bit 4+th for AC). */
static int dht_tables(const uint8_t *d, size_t n, size_t p) {
  long L = (long)rd16be(d + p) - 2;
  size_t q = p + 2;
  int defined = 0;
  while (L > 0) {
    uint8_t th = q < n ? d[q] : 0;
    q++;
    if ((th >> 4) > 1 || (th & 15) > 3) return defined; /* stb refuses this itself */
    long sum = 0;
    for (int i = 0; i < 16; i++, q++) sum += q < n ? d[q] : 0;
    if (sum > 256) return -1;
    defined |= 1 << ((th >> 4) * 4 + (th & 15));
    q += (size_t)sum;
    L -= 17 + sum;
  }
  return defined;
}

/* A DQT segment read as stb 2.27 reads it; returns the tables defined (bit t). */
static int dqt_tables(const uint8_t *d, size_t n, size_t p) {
  long L = (long)rd16be(d + p) - 2;
  size_t q = p + 2;
  int defined = 0;
  while (L > 0) {
    uint8_t pt = q < n ? d[q] : 0;
    q++;
    if ((pt >> 4) > 1 || (pt & 15) > 3) return defined; /* stb refuses this itself */
    defined |= 1 << (pt & 15);
    size_t sz = (pt >> 4) ? 128 : 64;
    q += sz;
    L -= 1 + (long)sz;
  }
  return defined;
}

/* stb 2.27 decodes with whatever Huffman and quantisation tables a scan names, defined
   or not (they are uninitialised memory until a DHT/DQT fills them; our allocator zeroes
   them, but stb still indexes with the decoded values unchecked), so every table a scan
   will use must have been defined before it. This also gives Motion-JPEG frames, which
   rely on implicit default Huffman tables stb does not have, a clear error.
   seg: the SOS segment; frame: the SOF segment (components at 6 + 3i: id, sampling,
   quantisation table). */
static int sos_tables_ok(const uint8_t *seg, size_t sl, const uint8_t *frame, size_t fl,
                         int progressive, int defined, int qdefined) {
  if (sl < 1) return 1;
  size_t ns = seg[0];
  if (ns < 1 || ns > 4 || sl < 1 + 2 * ns + 3) return 1; /* stb refuses these itself */
  int ss = seg[1 + 2 * ns], ah = seg[3 + 2 * ns] >> 4;
  size_t nf = fl >= 6 ? frame[5] : 0;
  for (size_t i = 0; i < ns; i++) {
    int td = seg[2 + 2 * i] >> 4, ta = seg[2 + 2 * i] & 15;
    if (td > 3 || ta > 3) return 1; /* stb refuses */
    for (size_t c = 0; c < nf && 6 + 3 * c + 2 < fl; c++)
      if (frame[6 + 3 * c] == seg[1 + 2 * i]) { /* stb takes the first component with the id */
        int tq = frame[6 + 3 * c + 2];
        if (tq <= 3 && !(qdefined & (1 << tq))) return 0;
        break;
      }
    int need_dc = !progressive || (ss == 0 && ah == 0);
    int need_ac = !progressive || ss != 0;
    if (need_dc && !(defined & (1 << td))) return 0;
    if (need_ac && !(defined & (1 << (4 + ta)))) return 0;
  }
  return 1;
}

/* EXIF Orientation (tag 0x0112 in IFD0 of an APP1 "Exif" segment; seg/sl: the segment
   after its length field). Phones store photos as the sensor saw them and record here how
   to turn them upright; browsers apply it when they show the photo (and give it so to
   createImageBitmap), so the engine must too or it trains on sideways pictures. Returns
   2..8, or 0 for upright, absent, or anything malformed (as browsers do). */
static int exif_orientation(const uint8_t *seg, size_t sl) {
  if (sl < 6 + 8 || memcmp(seg, "Exif\0\0", 6) != 0) return 0;
  const uint8_t *t = seg + 6; /* the TIFF header; offsets count from here */
  size_t n = sl - 6;
  int le;
  if (memcmp(t, "II*\0", 4) == 0) le = 1;
  else if (memcmp(t, "MM\0*", 4) == 0) le = 0;
  else return 0;
  uint32_t ifd = le ? rd32le(t + 4) : rd32be(t + 4);
  if (ifd < 8 || ifd > n - 2) return 0;
  unsigned count = le ? rd16le(t + ifd) : rd16be(t + ifd);
  for (unsigned i = 0; i < count; i++) {
    size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
    if (e + 12 > n) return 0;
    unsigned tag = le ? rd16le(t + e) : rd16be(t + e);
    if (tag != 0x0112) continue;
    unsigned type = le ? rd16le(t + e + 2) : rd16be(t + e + 2);
    unsigned v = le ? rd16le(t + e + 8) : rd16be(t + e + 8);
    return type == 3 && v >= 2 && v <= 8 ? (int)v : 0; /* SHORT, inline */
  }
  return 0;
}

/* JPEG: walks the marker segments as stb will (never trusting a length past the end).
   Records the frame size, and notes, in this order of importance: coding processes stb
   cannot decode, 4-channel JPEGs whose colour model stb would get wrong, tables that
   would crash or mislead stb, and files that end before the end-of-image marker (stb
   would fill the missing part with grey). */
static void jpeg_scan(const uint8_t *d, size_t n, hdr *h, problem *pr) {
  int sof = -1, precision = 8, ncomp = 0, adobe = -1, seen_sos = 0, tables = 0, qtables = 0;
  const uint8_t *frame = NULL;
  size_t frame_len = 0;
  size_t p = 2; /* after SOI */
  for (;;) {
    if (seen_sos) {
      /* entropy-coded data: skip to the next marker (FF not followed by 00, RSTn or FF) */
      while (p + 1 < n) {
        if (d[p] == 0xff) {
          uint8_t m = d[p + 1];
          if (m == 0xff) { p += 1; continue; }
          if (m == 0x00 || (m >= 0xd0 && m <= 0xd7)) { p += 2; continue; }
          break;
        }
        p++;
      }
      if (p + 1 >= n) break;
    } else {
      /* between segments: tolerate padding before the next marker, as stb does */
      while (p < n && d[p] != 0xff) p++;
    }
    while (p < n && d[p] == 0xff) p++; /* a marker: FF (fill FFs) code */
    if (p >= n) break;
    uint8_t m = d[p++];
    if (m == 0xd9) { /* EOI */
      if (!seen_sos) note(pr, TT_EFORMAT, "corrupt JPEG: end of image before any image data");
      return;
    }
    if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7) || m == 0x00) continue;
    if (p + 2 > n) break;
    size_t L = rd16be(d + p);
    if (L < 2) {
      note(pr, TT_EFORMAT, "corrupt JPEG: bad segment length");
      return;
    }
    const uint8_t *seg = d + p + 2;
    size_t sl = L - 2;
    int is_sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
    if (is_sof && sof < 0 && sl >= 6 && p + 2 + 6 <= n) {
      sof = m;
      frame = seg;
      frame_len = sl < n - (p + 2) ? sl : n - (p + 2);
      precision = seg[0];
      h->h = rd16be(seg + 1);
      h->w = rd16be(seg + 3);
      ncomp = seg[5];
    }
    if (p + L > n) break; /* segment runs past the end */
    if (m == 0xc4) {
      int t = dht_tables(d, n, p);
      if (t < 0) {
        note(pr, TT_EFORMAT, "corrupt JPEG: bad Huffman table");
        return;
      }
      tables |= t;
    }
    if (m == 0xdb) qtables |= dqt_tables(d, n, p);
    if (m == 0xe1 && !seen_sos && !h->orientation) h->orientation = exif_orientation(seg, sl);
    if (m == 0xee && sl >= 12 && memcmp(seg, "Adobe\0", 6) == 0 && !seen_sos) {
      adobe = seg[11];
    } else if (m == 0xda) {
      if (sof < 0) {
        note(pr, TT_EFORMAT, "corrupt JPEG: image data before the frame header");
        return;
      }
      if (!seen_sos) { /* first scan: everything about the frame is known now */
        char buf[96];
        if (sof == 0xc3 || sof == 0xc7 || sof == 0xcb || sof == 0xcf)
          note(pr, TT_EUNSUP, "unsupported JPEG: lossless JPEG");
        else if (sof >= 0xc9)
          note(pr, TT_EUNSUP, "unsupported JPEG: arithmetic coding");
        else if (sof >= 0xc5)
          note(pr, TT_EUNSUP, "unsupported JPEG: hierarchical JPEG");
        if (precision != 8) {
          snprintf(buf, sizeof buf, "unsupported JPEG: %d-bit samples (only 8-bit)", precision);
          note(pr, TT_EUNSUP, buf);
        }
        if (ncomp == 4 && adobe != 0 && adobe != 2)
          note(pr, TT_EUNSUP, "CMYK JPEG is not supported (4-channel JPEG without an Adobe "
                              "colour transform marker)");
      }
      if (!sos_tables_ok(seg, sl, frame, frame_len, sof == 0xc2, tables, qtables)) {
        note(pr, TT_EFORMAT, "corrupt JPEG: the image data uses a Huffman or quantisation table "
                             "the file does not define (a Motion-JPEG frame?)");
        return;
      }
      seen_sos = 1;
    }
    p += L;
  }
  if (!seen_sos)
    note(pr, TT_EFORMAT, "corrupt or truncated JPEG: the file ends before the image data");
  else
    note(pr, TT_EFORMAT, "corrupt or truncated JPEG: the file ends before the end-of-image "
                         "marker (incomplete download?)");
}

/* GIF: stb decodes a first frame whose data stops early as if complete; check that the
   blocks up to the end of the first image are all present. */
static void gif_scan(const uint8_t *d, size_t n, hdr *h, problem *pr) {
  static const char *cut = "corrupt or truncated GIF: the file ends inside the first frame";
  if (n < 13) {
    note(pr, TT_EFORMAT, "corrupt or truncated GIF: the header is cut short");
    return;
  }
  h->w = rd16le(d + 6);
  h->h = rd16le(d + 8);
  size_t p = 13;
  if (d[10] & 0x80) p += (size_t)3 << ((d[10] & 7) + 1);
  for (;;) {
    if (p >= n) { note(pr, TT_EFORMAT, cut); return; }
    uint8_t b = d[p++];
    int image = 0;
    if (b == 0x2c) {
      if (p + 9 > n) { note(pr, TT_EFORMAT, cut); return; }
      uint8_t f = d[p + 8];
      p += 9;
      if (f & 0x80) p += (size_t)3 << ((f & 7) + 1);
      p++; /* LZW minimum code size */
      image = 1;
    } else if (b == 0x21) {
      p++; /* extension label */
    } else if (b == 0x3b) {
      note(pr, TT_EFORMAT, "corrupt GIF: no image in the file");
      return;
    } else {
      return; /* not a block we know: let stb give its reason */
    }
    for (;;) { /* data sub-blocks up to the 0 terminator */
      if (p >= n) { note(pr, TT_EFORMAT, cut); return; }
      size_t L = d[p++];
      if (L == 0) break;
      p += L;
    }
    if (image) return;
  }
}

/* BMP: stb reads past the end of uncompressed pixel data as zeros, and looks up palette
   indices past the palette's end in an uninitialised stack array; refuse both. The
   palette size is computed exactly as stb 2.27 computes it (from the pixel data offset). */
static void bmp_scan(const uint8_t *d, size_t n, hdr *h, problem *pr) {
  if (n < 26) {
    note(pr, TT_EFORMAT, "corrupt or truncated BMP: the header is cut short");
    return;
  }
  uint32_t off = rd32le(d + 10), hsz = rd32le(d + 14), comp = 0;
  unsigned bpp;
  if (hsz == 12) { /* OS/2 core header: 16-bit sizes */
    h->w = rd16le(d + 18);
    h->h = rd16le(d + 20);
    bpp = rd16le(d + 24);
  } else {
    if (n < 34) {
      note(pr, TT_EFORMAT, "corrupt or truncated BMP: the header is cut short");
      return;
    }
    int32_t hh = (int32_t)rd32le(d + 22);
    h->w = rd32le(d + 18);                        /* stb reads it unsigned */
    h->h = hh < 0 ? -(int64_t)hh : hh;            /* negative = top-down rows */
    bpp = rd16le(d + 28);
    comp = rd32le(d + 30);
  }
  /* stb refuses RLE (1, 2) and >= 4, reading compression as a signed int: anything
     negative it decodes as uncompressed */
  int32_t cs = (int32_t)comp;
  if (off > 0x7fffffffu || cs == 1 || cs == 2 || cs >= 4 || bpp == 0 || bpp > 32) return;
  if (h->w > TT_IMAGE_MAX_DIM || h->h > TT_IMAGE_MAX_DIM) return; /* the caller's size check */
  uint64_t stride = (((uint64_t)h->w * bpp + 31) / 32) * 4;
  uint64_t need = (uint64_t)off + stride * (uint64_t)h->h;
  if (need > n) {
    char buf[128];
    snprintf(buf, sizeof buf, "corrupt or truncated BMP: the pixel data needs %llu bytes, the file has %llu",
             (unsigned long long)need, (unsigned long long)n);
    note(pr, TT_EFORMAT, buf);
    return;
  }
  if (bpp != 1 && bpp != 4 && bpp != 8) return;
  if (hsz != 12 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124) return; /* stb refuses */
  long room = (long)off - 14 - (hsz == 12 ? 24 : (long)hsz);
  long psize = hsz == 12 ? room / 3 : (room >= 0 ? room / 4 : -((-room + 3) / 4));
  if (psize == 0 || psize > 256) return; /* stb refuses */
  if (psize < 0) {
    note(pr, TT_EFORMAT, "corrupt BMP: the pixel data starts inside the header (no room for its palette)");
    return;
  }
  int maxidx = 0;
  for (int64_t y = 0; y < h->h; y++) {
    const uint8_t *row = d + off + (size_t)y * (size_t)stride;
    for (int64_t x = 0; x < h->w; x++) {
      int idx = bpp == 8 ? row[x] : bpp == 4 ? (x & 1 ? row[x / 2] & 15 : row[x / 2] >> 4)
                                            : (row[x / 8] >> (7 - (x & 7))) & 1;
      if (idx > maxidx) maxidx = idx;
    }
  }
  if (maxidx >= psize) {
    char buf[128];
    snprintf(buf, sizeof buf, "corrupt BMP: pixels use colour %d of a %ld-colour palette", maxidx, psize);
    note(pr, TT_EFORMAT, buf);
  }
}

/* PNG: the size from IHDR, and every chunk up to IEND present (stb notices a cut inside
   IDAT, but reports a cut between chunks as an unnamed "unknown chunk"). CRCs are not
   checked, as stb does not check them either. */
static void png_scan(const uint8_t *d, size_t n, hdr *h, problem *pr) {
  if (n < 33 || memcmp(d + 12, "IHDR", 4) != 0) {
    note(pr, TT_EFORMAT, n < 33 ? "corrupt or truncated PNG: the header is cut short"
                                : "corrupt PNG: the first chunk is not IHDR");
    if (n >= 24) {
      h->w = rd32be(d + 16);
      h->h = rd32be(d + 20);
    }
    return;
  }
  h->w = rd32be(d + 16);
  h->h = rd32be(d + 20);
  size_t p = 8;
  for (;;) {
    if (n - p < 8) {
      note(pr, TT_EFORMAT, "corrupt or truncated PNG: the file ends before the IEND chunk "
                           "(incomplete download?)");
      return;
    }
    uint32_t L = rd32be(d + p);
    if (memcmp(d + p + 4, "IEND", 4) == 0) return;
    if (memcmp(d + p + 4, "PLTE", 4) == 0 && d[25] == 3 && !h->plte_at && L < 768 && L % 3 == 0 &&
        (uint64_t)L + 12 <= (uint64_t)(n - p)) {
      h->plte_at = p;
      h->plte_len = L;
    }
    if (L > 0x7fffffffu) {
      note(pr, TT_EFORMAT, "corrupt PNG: bad chunk length");
      return;
    }
    if ((uint64_t)L + 12 > (uint64_t)(n - p)) {
      char buf[128], t[5];
      for (int i = 0; i < 4; i++) {
        uint8_t c = d[p + 4 + (size_t)i];
        t[i] = (char)((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? c : '?');
      }
      t[4] = 0;
      snprintf(buf, sizeof buf, "corrupt or truncated PNG: the file ends inside chunk %s "
                                "(incomplete download?)", t);
      note(pr, TT_EFORMAT, buf);
      return;
    }
    p += (size_t)L + 12;
  }
}

/* stb 2.27 expands a palette image through a stack array of 256 entries of which it
   fills only as many as PLTE has, so pixels with larger indices would get stale stack
   bytes. Instead of copying the file, stb reads it through this view, in which the first
   PLTE chunk is padded with zero (black) entries to 256: the 4-byte length field at
   `patch_at` reads as 768 and `extra` zero bytes appear at `at` (before the chunk's CRC,
   which stb does not check). */
typedef struct {
  const uint8_t *d;
  size_t n, pos;      /* pos: in the padded view, n + extra bytes long */
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
  if (n < 0) v->pos = back > v->pos ? 0 : v->pos - back;
  else v->pos = (size_t)n > pv_size(v) - v->pos ? pv_size(v) : v->pos + (size_t)n;
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
  return tt_fail(TT_ENOMEM, "image is %lldx%lld pixels; the limit is %d per side and %d megapixels",
                 (long long)w, (long long)h, TT_IMAGE_MAX_DIM, TT_IMAGE_MAX_PIXELS / 1000000);
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
        case 2: sx = w - 1 - x; sy = y; break;         /* mirrored left-right */
        case 3: sx = w - 1 - x; sy = h - 1 - y; break; /* upside down */
        case 4: sx = x; sy = h - 1 - y; break;         /* mirrored top-bottom */
        case 5: sx = y; sy = x; break;                 /* transposed */
        case 6: sx = y; sy = h - 1 - x; break;         /* stored turned 90 left: turn right */
        case 7: sx = w - 1 - y; sy = h - 1 - x; break; /* transversed */
        default: sx = w - 1 - y; sy = x; break;        /* 8: stored turned 90 right: turn left */
      }
      memcpy(up + ((size_t)y * (size_t)ow + (size_t)x) * 3, px + ((size_t)sy * (size_t)w + (size_t)sx) * 3, 3);
    }
  return up;
}

static int decode(const uint8_t *data, size_t len, tt_image *out);

int tt_image_decode(const uint8_t *data, size_t len, tt_image *out) {
  int r = decode(data, len, out);
  tt__stbi_failed_check = NULL; /* whatever failed belonged to this decode */
  return r;
}

static int check_failed(const char *name) {
  return tt_fail(TT_EFORMAT, "corrupt %s: the decoder found it inconsistent (stb_image check '%s' "
                             "failed)", name, tt__stbi_failed_check);
}

static int decode(const uint8_t *data, size_t len, tt_image *out) {
  if (!out) return tt_fail(TT_EINVAL, "tt_image_decode: out is NULL");
  out->w = out->h = 0;
  out->rgb = NULL;
  if (!data && len) return tt_fail(TT_EINVAL, "tt_image_decode: data is NULL");
  if (len == 0) return tt_fail(TT_EFORMAT, "empty file");
  if (len > (size_t)INT_MAX)
    return tt_fail(TT_ENOMEM, "file is %zu bytes; the limit is %d", len, INT_MAX);

  int fmt = sniff(data, len);
  if (fmt < 0) return fmt;
  const char *name = fmt_name(fmt);

  /* 1. Our own reading of the header: the declared size is checked first, so a tiny
        file declaring a huge canvas costs nothing, whatever else is wrong with it. */
  hdr h = {-1, -1, 0, 0, 0};
  problem pr;
  pr.code = 0;
  pr.msg[0] = 0;
  switch (fmt) {
    case FMT_JPEG: jpeg_scan(data, len, &h, &pr); break;
    case FMT_GIF: gif_scan(data, len, &h, &pr); break;
    case FMT_BMP: bmp_scan(data, len, &h, &pr); break;
    case FMT_PNG: png_scan(data, len, &h, &pr); break;
  }
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
      return tt_fail(TT_ENOMEM, "%s declares an image too large to decode; the limit is %d per side "
                                "and %d megapixels",
                     name, TT_IMAGE_MAX_DIM, TT_IMAGE_MAX_PIXELS / 1000000);
    return tt_fail(TT_EFORMAT, "corrupt or truncated %s: %s", name, why);
  }
  if (tt__stbi_failed_check) return check_failed(name);
  if (w <= 0 || hh <= 0)
    return tt_fail(TT_EFORMAT, "corrupt or truncated %s: image is %dx%d pixels", name, w, hh);
  if (over_limit(w, hh)) return limit_error(w, hh);

  /* 3. Decode to 8-bit RGB. w*hh*3 <= 3 * 40e6 < INT_MAX: no overflow anywhere in stb's
        or our size math. */
  int dw = 0, dh = 0, dc = 0;
  stbi_uc *px;
  /* (w+16)(h+16): JPEG pads to whole 16x16 MCUs. */
  tt__stbi_limit = (size_t)(w + 16) * (size_t)(hh + 16) * 8u * 2u + ((size_t)1 << 20);
  if (tt__stbi_limit > TT_STBI_MAX_ALLOC) tt__stbi_limit = TT_STBI_MAX_ALLOC;
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
  tt__stbi_limit = TT_STBI_MAX_ALLOC;
  if (tt__stbi_failed_check) {
    free(px);
    return check_failed(name);
  }
  if (!px) {
    const char *why = stb_reason();
    if (strcmp(why, "outofmem") == 0)
      return tt_fail(TT_ENOMEM, "out of memory decoding a %dx%d %s (or its data inflates to far "
                                "more than that size needs)", w, hh, name);
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
    if (h.orientation >= 5) { int t = w; w = hh; hh = t; }
  }
  out->w = w;
  out->h = hh;
  out->rgb = px;
  return TT_OK;
}

void tt_image_free(tt_image *im) {
  if (!im) return;
  free(im->rgb); /* allocated by stb through tt__stbi_malloc, i.e. malloc */
  im->rgb = NULL;
  im->w = im->h = 0;
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

int tt_image_sample(const tt_image *im, const tt_view *v, int dw, int dh, int align_corners,
                    float *dst) {
  if (!im || !v || !dst) return tt_fail(TT_EINVAL, "tt_image_sample: NULL argument");
  if (!im->rgb || im->w <= 0 || im->h <= 0 || im->w > TT_IMAGE_MAX_DIM || im->h > TT_IMAGE_MAX_DIM)
    return tt_fail(TT_EINVAL, "tt_image_sample: no decoded image (%dx%d)", im->w, im->h);
  if (dw <= 0 || dh <= 0 || dw > (1 << 24) || dh > (1 << 24))
    return tt_fail(TT_EINVAL, "tt_image_sample: bad output size %dx%d", dw, dh);
  if ((size_t)dw > SIZE_MAX / 3 / (size_t)dh)
    return tt_fail(TT_EINVAL, "tt_image_sample: output %dx%d is too large", dw, dh);
  if (!finite_f(v->x0) || !finite_f(v->y0) || !finite_f(v->cw) || !finite_f(v->ch) ||
      !(v->cw > 0) || !(v->ch > 0))
    return tt_fail(TT_EINVAL, "tt_image_sample: bad crop box (%g,%g %gx%g)", (double)v->x0,
                   (double)v->y0, (double)v->cw, (double)v->ch);
  if (!finite_f(v->brightness) || !finite_f(v->contrast) || !finite_f(v->saturation))
    return tt_fail(TT_EINVAL, "tt_image_sample: bad colour jitter (%g, %g, %g)",
                   (double)v->brightness, (double)v->contrast, (double)v->saturation);

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
