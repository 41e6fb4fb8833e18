/* tfjs weight bytes to float32 (see weights.h), and the hash that names a backbone. */
#include "weights.h"
#include "tt.h"
#include <math.h>
#include <string.h>

size_t tt_weights_elem_size(int enc) {
  switch (enc) {
  case TT_W_F32:
  case TT_W_I32: return 4;
  case TT_W_F16:
  case TT_W_U16: return 2;
  case TT_W_U8: return 1;
  default: return 0;
  }
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
  if (exp == 0) { /* zero or subnormal: value = man * 2^-24 */
    float f = (float)man * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7f800000u | (man << 13);
  else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

int tt_weights_decode(const char *name, const uint8_t *src, size_t src_len, size_t count, int enc, double qmin,
                      double qscale, float *dst) {
  size_t es = tt_weights_elem_size(enc);
  if (!es) return tt_fail(TT_EUNSUP, "weight '%s': unknown encoding %d", name, enc);
  if (count > SIZE_MAX / es || count * es > src_len)
    return tt_fail(TT_EFORMAT, "weight '%s' is truncated: needs %zu bytes, %zu available", name, count * es, src_len);
  if (enc >= TT_W_U8 && !(isfinite(qmin) && isfinite(qscale)))
    return tt_fail(TT_EFORMAT, "weight '%s' has a non-finite quantisation min/scale", name);
  for (size_t i = 0; i < count; i++) {
    const uint8_t *p = src + i * es; /* tfjs weights are little-endian */
    float v;
    switch (enc) {
    case TT_W_F32: {
      uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      memcpy(&v, &u, 4);
    } break;
    case TT_W_I32:
      v = (float)(int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
      break;
    case TT_W_F16: v = half_to_float((uint16_t)(p[0] | p[1] << 8)); break;
    case TT_W_U8: v = (float)((double)p[0] * qscale + qmin); break;
    default: v = (float)((double)(p[0] | p[1] << 8) * qscale + qmin); break;
    }
    if (!isfinite(v))
      return tt_fail(TT_EFORMAT, "weight '%s' has a non-finite value (%g) at index %zu", name, (double)v, i);
    dst[i] = v;
  }
  return TT_OK;
}

uint64_t tt_hash64(const uint8_t *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
