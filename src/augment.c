/* Augmentation: a random view of a decoded image (random resized crop, flip, colour
   jitter) drawn from a seeded generator, for sample.c to render. Used where the training
   cache is filled: each image's extra views are augmented, view 0 stays the plain one. */
#include "augment.h"
#include "net.h"
#include <math.h>

static float uniform(uint64_t *rng, float lo, float hi) { return lo + (hi - lo) * tt_rng_uniform(rng); }

tt_view tt_augment(const tt_image *im, const tt_aug *a, uint64_t *rng) {
  tt_view v = tt_view_full(im);
  float area = (float)im->w * im->h;
  /* Inception-style random resized crop: a few tries at a box of random area and aspect
     that fits; if none fits, keep the whole image. */
  if (a->scale_min < 1) {
    float lr0 = logf(a->ratio_min > 0 ? a->ratio_min : 1), lr1 = logf(a->ratio_max > 0 ? a->ratio_max : 1);
    for (int t = 0; t < 10; t++) {
      float s = uniform(rng, a->scale_min, 1.0f), r = expf(uniform(rng, lr0, lr1));
      float cw = sqrtf(s * area * r), ch = sqrtf(s * area / r);
      if (cw <= im->w && ch <= im->h && cw >= 1 && ch >= 1) {
        v.x0 = uniform(rng, 0, im->w - cw), v.y0 = uniform(rng, 0, im->h - ch);
        v.cw = cw, v.ch = ch;
        break;
      }
    }
  }
  v.flip = a->flip && tt_rng_uniform(rng) < 0.5f;
  v.brightness = a->brightness > 0 ? uniform(rng, -a->brightness, a->brightness) : 0;
  v.contrast = a->contrast > 0 ? uniform(rng, 1 - a->contrast, 1 + a->contrast) : 1;
  v.saturation = a->saturation > 0 ? uniform(rng, 1 - a->saturation, 1 + a->saturation) : 1;
  return v;
}
