/* libFuzzer target: untrusted bytes -> tt_image_decode, then tt_image_sample of the full
   view, the centre square and one arbitrary view (crop box, flip, colour jitter, some of
   them NaN, infinite, negative or far outside the image) derived from the input, to a
   small size. Invariants checked on every input (a violation aborts, i.e. is a finding):
     - decode fails with a negative TT_E* code, a non-empty message and *out zeroed, or
       succeeds with 1..limit pixels per side and a pixel buffer;
     - sampling a decoded image either fails with TT_EINVAL and a message (bad view) or
       fills every output float with a value in [0,1];
     - the engine keeps no state between calls: decoding the same bytes twice gives the
       same pixels. */
#include "augment.h"
#include "image.h"
#include "tt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                                                     \
  do {                                                                                                                 \
    if (!(c)) {                                                                                                        \
      fprintf(stderr, "fuzz_image: %s:%d: invariant failed: %s (last error: %s)\n", __FILE__, __LINE__, #c,            \
              tt_last_error());                                                                                        \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

/* A float from 8 bits of the hash: mostly ordinary values, sometimes hostile ones. */
static float pick(uint64_t *h, float lo, float hi) {
  *h = *h * 6364136223846793005ULL + 1442695040888963407ULL;
  unsigned r = (unsigned)(*h >> 56);
  switch (r & 15) {
  case 0: return NAN;
  case 1: return (r & 16) ? INFINITY : -INFINITY;
  case 2: return (r & 16) ? 1e30f : -1e30f;
  case 3: return 0.0f;
  case 4: return -1.0f;
  default: return lo + (hi - lo) * (float)(r >> 4) / 15.0f;
  }
}

static void sample_check(const tt_image *im, const tt_view *v, int dw, int dh, int align) {
  float out[16 * 16 * 3];
  for (int i = 0; i < dw * dh * 3; i++) out[i] = -7.0f;
  tt_clear_error();
  int rc = tt_image_sample(im, v, dw, dh, align, out);
  if (rc < 0) {
    REQUIRE(rc == TT_EINVAL && tt_last_error()[0]);
    return;
  }
  REQUIRE(rc == 0);
  for (int i = 0; i < dw * dh * 3; i++) REQUIRE(out[i] >= 0.0f && out[i] <= 1.0f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tt_image im;
  memset(&im, 0xab, sizeof im);
  tt_clear_error();
  int rc = tt_image_decode(data, size, &im);
  if (rc < 0) {
    REQUIRE(rc >= TT_ESTATE && tt_last_error()[0]);
    REQUIRE(im.w == 0 && im.h == 0 && im.rgb == NULL);
    return 0;
  }
  REQUIRE(rc == 0 && im.rgb);
  REQUIRE(im.w >= 1 && im.h >= 1 && im.w <= TT_IMAGE_MAX_DIM && im.h <= TT_IMAGE_MAX_DIM &&
          (int64_t)im.w * im.h <= TT_IMAGE_MAX_PIXELS);

  /* Small images: decoding is deterministic and stateless. */
  if ((size_t)im.w * (size_t)im.h <= 4096) {
    tt_image again;
    REQUIRE(tt_image_decode(data, size, &again) == 0);
    REQUIRE(again.w == im.w && again.h == im.h && memcmp(again.rgb, im.rgb, (size_t)im.w * im.h * 3) == 0);
    tt_image_free(&again);
  }

  uint64_t h = fnv(data, size);
  int dw = 1 + (int)(h % 16), dh = 1 + (int)((h >> 8) % 16);
  tt_view full = tt_view_full(&im), sq = tt_view_center_square(&im);
  sample_check(&im, &full, dw, dh, 1);
  sample_check(&im, &sq, dh, dw, 0);

  /* An arbitrary view: crop box around (and beyond) the image, flip, jitter. */
  tt_view v;
  v.x0 = pick(&h, -2.0f, (float)im.w + 2.0f);
  v.y0 = pick(&h, -2.0f, (float)im.h + 2.0f);
  v.cw = pick(&h, 0.25f, (float)im.w * 1.5f);
  v.ch = pick(&h, 0.25f, (float)im.h * 1.5f);
  v.flip = (int)(h >> 3) & 1;
  v.brightness = pick(&h, -1.0f, 1.0f);
  v.contrast = pick(&h, 0.0f, 3.0f);
  v.saturation = pick(&h, 0.0f, 3.0f);
  sample_check(&im, &v, dw, dh, (int)(h >> 5) & 1);

  /* The augmentation policy's view (random resized crop + jitter), with settings that
     are sometimes nonsense, must always be one the sampler accepts or refuses cleanly. */
  tt_aug a;
  a.scale_min = pick(&h, 0.05f, 1.0f);
  a.ratio_min = pick(&h, 0.25f, 1.0f);
  a.ratio_max = pick(&h, 1.0f, 4.0f);
  a.flip = 1;
  a.brightness = pick(&h, 0.0f, 0.5f);
  a.contrast = pick(&h, 0.0f, 0.5f);
  a.saturation = pick(&h, 0.0f, 0.5f);
  uint64_t rng = h;
  tt_view av = tt_augment(&im, &a, &rng);
  sample_check(&im, &av, dw, dh, 1);

  tt_image_free(&im);
  REQUIRE(im.rgb == NULL && im.w == 0);
  return 0;
}
