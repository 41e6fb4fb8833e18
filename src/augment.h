/* Augmentation policy: draws a random view of an image (random resized crop, flip,
   colour jitter) from a seeded generator, for tt_image_sample to render. */
#ifndef TT_AUGMENT_H
#define TT_AUGMENT_H
#include "image.h"
#include <stdint.h>

typedef struct {
  float scale_min;                        /* smallest crop area as a fraction of the image (1 = no crop) */
  float ratio_min, ratio_max;             /* crop aspect ratio range (w/h) */
  int flip;                               /* random horizontal flips */
  float brightness, contrast, saturation; /* jitter amplitudes: 0.2 means +-0.2 / x(1 +- 0.2) */
} tt_aug;

tt_view tt_augment(const tt_image *im, const tt_aug *a, uint64_t *rng);
#endif
