/* Images: decode untrusted bytes to 8-bit RGB (decode.c), then sample a (possibly
   cropped, flipped) view of it into the model's float input (sample.c). Knows nothing of
   models or the browser. */
#ifndef TT_IMAGE_H
#define TT_IMAGE_H
#include <stddef.h>
#include <stdint.h>

/* Decoding refuses images larger than these before allocating their pixels, so a
   small file declaring a huge canvas (a decompression bomb) costs nothing. */
#define TT_IMAGE_MAX_DIM    16384
#define TT_IMAGE_MAX_PIXELS (40 * 1000 * 1000)

typedef struct {
  int w, h;
  uint8_t *rgb; /* w*h*3 bytes, row-major, owned */
} tt_image;

/* JPEG (baseline, progressive), PNG (any bit depth, palette, alpha), BMP, GIF (first
   frame). Grey, grey+alpha, RGBA and 16-bit inputs become 8-bit RGB; alpha is dropped.
   Returns TT_OK or a negative code with tt_last_error() saying what is wrong ("empty
   file", "not an image: looks like a PDF", "corrupt or truncated PNG: the file ends
   before the IEND chunk (incomplete download?)", "image is 100000x100000 pixels; the
   limit is 16384 per side and 40 megapixels"). On error *out is zeroed. Reentrant:
   threads may decode at once. (decode.c, with imghdr.c) */
int tt_image_decode(const uint8_t *data, size_t len, tt_image *out);
void tt_image_free(tt_image *im);

/* An image from raw 8-bit pixels, as a canvas or camera frame gives them: grey,
   grey+alpha, RGB or RGBA (channels 1-4), w*h*channels bytes, row-major. Alpha is
   dropped, as the decoder drops it. Returns TT_OK, or TT_EINVAL (size or channels out
   of the decoder's limits) or TT_ENOMEM with *out zeroed. Free with tt_image_free.
   (sample.c) */
int tt_image_from_pixels(const uint8_t *px, int w, int h, int channels, tt_image *out);

/* A view of the source to sample: the crop box in source pixel coordinates (x0,y0 top
   left, cw x ch size, fractional allowed), optional horizontal flip, and colour jitter
   (brightness adds, contrast scales around the view's mean grey, saturation blends with
   grey; 0,1,1 = unchanged), applied in [0,1] units before clamping to [0,1]. */
typedef struct {
  float x0, y0, cw, ch;
  int flip;
  float brightness, contrast, saturation;
} tt_view;

/* The whole image, untouched. */
tt_view tt_view_full(const tt_image *im);
/* The largest centred square (for centre-crop preprocessing). */
tt_view tt_view_center_square(const tt_image *im);

/* Samples the view into dst[dh][dw][3] as floats in [0,1] (value/255) with bilinear
   interpolation. With align_corners=1 and the full view this equals TensorFlow's
   tf.image.resizeBilinear(img/255, [dh,dw], alignCorners=true) exactly, which the
   models' reference pipeline uses. Returns TT_OK or TT_EINVAL for bad sizes. */
int tt_image_sample(const tt_image *im, const tt_view *v, int dw, int dh, int align_corners, float *dst);

#endif
