/* IEEE half precision (binary16) storage for cached activations: the trainer's inputs
   (the frozen part's output at the cut, for every image and view) are its largest
   buffer (1,000 images x 4 views at 7x7x224 floats: 176 MB), read once per batch and
   copied into the batch, where they become float32 again. Half of the bytes, at a
   relative rounding error of at most 2^-11 (4.9e-4) for magnitudes from 6.1e-5 to
   65504: about what reading them through the integer pointwise layers already costs
   (see README, Numerics). Round to nearest even; beyond 65504 is infinity. */
#include <math.h>
#include <string.h>
#include "kernels.h"

uint16_t tt_f16_from_f32(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0); /* inf, NaN */
  if (ax >= 0x477ff000u) return sign | 0x7c00;                                  /* from 65520 (halfway past 65504) on */
  if (ax < 0x38800000u) { /* below 2^-14: a multiple of 2^-24, exactly scaled, rounded */
    float a;
    memcpy(&a, &ax, sizeof a);
    return sign | (uint16_t)nearbyintf(a * 16777216.0f);
  }
  const uint32_t r = ax - 0x38000000u; /* exponent rebiased from 127 to 15 */
  uint32_t h = r >> 13, rem = r & 0x1fffu;
  h += rem > 0x1000u || (rem == 0x1000u && (h & 1)); /* a carry moves into the exponent */
  return sign | (uint16_t)h;
}

float tt_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) { /* zero or subnormal: m * 2^-24, exact */
    const float f = (float)m * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  const uint32_t bits = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

void tt_f16_pack(size_t n, const float *x, uint16_t *y) {
  for (size_t i = 0; i < n; i++) y[i] = tt_f16_from_f32(x[i]);
}

void tt_f16_unpack(size_t n, const uint16_t *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = tt_f16_to_f32(x[i]);
}
