/* The activations every kernel's epilogue applies, scalar and SIMD, in one place. The
   scalar one is written as compares rather than fmaxf/fminf so NaN and -0 behave exactly
   like wasm's pmax/pmin, which the SIMD one uses because they lower to single
   maxps/minps on x86 (the NaN-exact max/min do not). */
#ifndef TT_KERNELS_ACT_H
#define TT_KERNELS_ACT_H
#include "kernels.h"

static inline float act_f(float v, int act) {
  if (act != TT_ACT_NONE) {
    v = v < 0.0f ? 0.0f : v;
    if (act == TT_ACT_RELU6) v = 6.0f < v ? 6.0f : v;
  }
  return v;
}

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
static inline v128_t act_v(v128_t v, int act) {
  if (act != TT_ACT_NONE) {
    v = wasm_f32x4_pmax(v, wasm_f32x4_splat(0.0f));
    if (act == TT_ACT_RELU6) v = wasm_f32x4_pmin(v, wasm_f32x4_splat(6.0f));
  }
  return v;
}
#endif

#endif
