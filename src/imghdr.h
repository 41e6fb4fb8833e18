/* Our own reading of an image file before stb_image sees it (decode.c is the only user):
   what format the first bytes are, or what they look like instead; the canvas size the
   header declares, checked against the limits before anything is allocated; and, format
   by format, what stb 2.27 would not check (tables it would index unchecked, data it
   would silently fill with grey, palettes it would read past) plus the EXIF orientation.
   Internal to the decoder; image.h is the interface. */
#ifndef TT_IMGHDR_H
#define TT_IMGHDR_H
#include <stddef.h>
#include <stdint.h>

enum { FMT_NONE, FMT_JPEG, FMT_PNG, FMT_GIF, FMT_BMP };

/* What the header declares, read by us before stb sees the bytes: the canvas size (for
   the limit check, whatever stb thinks of the rest) and, where stb would silently fill
   missing data with grey or black, whether the data is all there. */
typedef struct {
  int64_t w, h;   /* declared size; -1 if the header did not get that far */
  size_t plte_at; /* PNG: offset of a palette image's first PLTE chunk, if short (else 0) */
  uint32_t plte_len;
  int orientation; /* JPEG: EXIF Orientation 2..8 (how to turn the stored pixels upright), else 0 */
} img_hdr;

/* The first problem a header scan finds; reported only after the size check. */
typedef struct {
  int code; /* 0 = fine */
  char msg[160];
} img_problem;

/* The format's name ("JPEG", ...), for messages. */
const char *tt_imghdr_format_name(int fmt);
/* Returns FMT_* for what we decode, or a negative TT_E* (message set) for anything
   else, naming what the bytes look like. */
int tt_imghdr_sniff(const uint8_t *d, size_t n);
/* The header scan of format fmt: fills h (w, h are -1 where the header did not get that
   far) and notes the first problem in pr. */
void tt_imghdr_scan(int fmt, const uint8_t *d, size_t n, img_hdr *h, img_problem *pr);
#endif
