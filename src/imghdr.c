/* Format sniffing and header scans, run on an image file's bytes before stb_image
   decodes them (see imghdr.h): the first half of the decoder's guard, decode.c the
   second. Each scan reads the bytes exactly as stb 2.27 will, never trusting a length
   past the end. */
#include "imghdr.h"
#include "image.h"

#include <stdio.h>
#include <string.h>

#include "tt.h"

/* ---- format sniffing ---------------------------------------------------------------- */

const char *tt_imghdr_format_name(int f) {
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

int tt_imghdr_sniff(const uint8_t *d, size_t n) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return FMT_JPEG;
  if (n >= 8 && memcmp(d, png_sig, 8) == 0) return FMT_PNG;
  if (has_prefix(d, n, "GIF87a") || has_prefix(d, n, "GIF89a")) return FMT_GIF;
  if (n >= 14 && d[0] == 'B' && d[1] == 'M') return FMT_BMP;

  /* Images we do not decode: say so, rather than "not an image". */
  const char *unsup = NULL;
  if (n >= 12 && has_prefix(d, n, "RIFF") && memcmp(d + 8, "WEBP", 4) == 0)
    unsup = "WebP";
  else if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0))
    unsup = "TIFF";
  else if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
    const uint8_t *b = d + 8;
    if (memcmp(b, "avif", 4) == 0 || memcmp(b, "avis", 4) == 0)
      unsup = "AVIF";
    else if (memcmp(b, "heic", 4) == 0 || memcmp(b, "heix", 4) == 0 || memcmp(b, "hevc", 4) == 0 ||
             memcmp(b, "mif1", 4) == 0 || memcmp(b, "msf1", 4) == 0 || memcmp(b, "heim", 4) == 0)
      unsup = "HEIC/HEIF";
    else
      return tt_fail(TT_EFORMAT, "not an image: looks like a video (MP4/MOV container)");
  } else if (has_prefix(d, n, "8BPS"))
    unsup = "Photoshop PSD";
  else if (n >= 12 && memcmp(d, "\0\0\0\x0cjP  ", 8) == 0)
    unsup = "JPEG 2000";
  else if (n >= 2 && d[0] == 0xff && d[1] == 0x0a)
    unsup = "JPEG XL";
  else if (n >= 12 && memcmp(d, "\0\0\0\x0cJXL ", 8) == 0)
    unsup = "JPEG XL";
  else if (n >= 6 && memcmp(d, "\0\0\1\0", 4) == 0 && d[4] != 0)
    unsup = "ICO";
  if (unsup) return tt_fail(TT_EUNSUP, "unsupported image format: %s (use JPEG, PNG, BMP or GIF)", unsup);

  if (has_prefix(d, n, "%PDF")) return tt_fail(TT_EFORMAT, "not an image: looks like a PDF");
  if (has_prefix(d, n, "PK\3\4"))
    return tt_fail(TT_EFORMAT, "not an image: looks like a ZIP archive (or an Office document)");
  if (n >= 2 && d[0] == 0x1f && d[1] == 0x8b) return tt_fail(TT_EFORMAT, "not an image: looks like a gzip archive");

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
  if (i < n && looks_like_text(d + i, n - i)) return tt_fail(TT_EFORMAT, "not an image: looks like text");

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

static uint32_t rd32le(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint32_t rd32be(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static unsigned rd16le(const uint8_t *p) { return (unsigned)p[0] | ((unsigned)p[1] << 8); }
static unsigned rd16be(const uint8_t *p) { return ((unsigned)p[0] << 8) | (unsigned)p[1]; }

static void note(img_problem *pr, int code, const char *msg) {
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
static int sos_tables_ok(const uint8_t *seg, size_t sl, const uint8_t *frame, size_t fl, int progressive, int defined,
                         int qdefined) {
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
  if (memcmp(t, "II*\0", 4) == 0)
    le = 1;
  else if (memcmp(t, "MM\0*", 4) == 0)
    le = 0;
  else
    return 0;
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
static void jpeg_scan(const uint8_t *d, size_t n, img_hdr *h, img_problem *pr) {
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
          if (m == 0xff) {
            p += 1;
            continue;
          }
          if (m == 0x00 || (m >= 0xd0 && m <= 0xd7)) {
            p += 2;
            continue;
          }
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
          note(pr, TT_EUNSUP,
               "CMYK JPEG is not supported (4-channel JPEG without an Adobe "
               "colour transform marker)");
      }
      if (!sos_tables_ok(seg, sl, frame, frame_len, sof == 0xc2, tables, qtables)) {
        note(pr, TT_EFORMAT,
             "corrupt JPEG: the image data uses a Huffman or quantisation table "
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
    note(pr, TT_EFORMAT,
         "corrupt or truncated JPEG: the file ends before the end-of-image "
         "marker (incomplete download?)");
}

/* GIF: stb decodes a first frame whose data stops early as if complete; check that the
   blocks up to the end of the first image are all present. */
static void gif_scan(const uint8_t *d, size_t n, img_hdr *h, img_problem *pr) {
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
    if (p >= n) {
      note(pr, TT_EFORMAT, cut);
      return;
    }
    uint8_t b = d[p++];
    int image = 0;
    if (b == 0x2c) {
      if (p + 9 > n) {
        note(pr, TT_EFORMAT, cut);
        return;
      }
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
      if (p >= n) {
        note(pr, TT_EFORMAT, cut);
        return;
      }
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
static void bmp_scan(const uint8_t *d, size_t n, img_hdr *h, img_problem *pr) {
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
    h->w = rd32le(d + 18);             /* stb reads it unsigned */
    h->h = hh < 0 ? -(int64_t)hh : hh; /* negative = top-down rows */
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
      int idx = bpp == 8   ? row[x]
                : bpp == 4 ? (x & 1 ? row[x / 2] & 15 : row[x / 2] >> 4)
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
static void png_scan(const uint8_t *d, size_t n, img_hdr *h, img_problem *pr) {
  if (n < 33 || memcmp(d + 12, "IHDR", 4) != 0) {
    note(pr, TT_EFORMAT,
         n < 33 ? "corrupt or truncated PNG: the header is cut short" : "corrupt PNG: the first chunk is not IHDR");
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
      note(pr, TT_EFORMAT,
           "corrupt or truncated PNG: the file ends before the IEND chunk "
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
      snprintf(buf, sizeof buf,
               "corrupt or truncated PNG: the file ends inside chunk %s "
               "(incomplete download?)",
               t);
      note(pr, TT_EFORMAT, buf);
      return;
    }
    p += (size_t)L + 12;
  }
}

void tt_imghdr_scan(int fmt, const uint8_t *d, size_t n, img_hdr *h, img_problem *pr) {
  switch (fmt) {
  case FMT_JPEG: jpeg_scan(d, n, h, pr); break;
  case FMT_GIF: gif_scan(d, n, h, pr); break;
  case FMT_BMP: bmp_scan(d, n, h, pr); break;
  case FMT_PNG: png_scan(d, n, h, pr); break;
  }
}
