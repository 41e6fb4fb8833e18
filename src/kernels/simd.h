/* Shared by the SIMD kernels: the multiply-add they are built around, a transpose. */
#ifndef TT_KERNELS_SIMD_H
#define TT_KERNELS_SIMD_H
#include <wasm_simd128.h>

/* TT_MADD(a, b, c) = a*b + c. In the relaxed-SIMD build (-mrelaxed-simd) it is one
   f32x4.relaxed_madd, which V8 lowers to an FMA instruction where the CPU has one
   (fused or not is the engine's choice, so results may differ from the plain build in
   the last bits). emcc 3.1.6's clang has only the pre-standard f32x4.fma builtin
   (a + b*c, an opcode current engines reject); it is called with relaxed_madd's operand
   order and tools/relaxed_fma.mjs rewrites the opcode after linking, which makes it
   a*b + c. A newer clang's own relaxed_madd builtin needs no rewrite. Without relaxed
   SIMD: mul then add, as before. */
#if defined(__wasm_relaxed_simd__) && __has_builtin(__builtin_wasm_relaxed_madd_f32x4)
#define TT_MADD(a, b, c) __builtin_wasm_relaxed_madd_f32x4((a), (b), (c))
#elif defined(__wasm_relaxed_simd__)
#define TT_MADD(a, b, c) __builtin_wasm_fma_f32x4((a), (b), (c))
#else
#define TT_MADD(a, b, c) wasm_f32x4_add((c), wasm_f32x4_mul((a), (b)))
#endif

/* 4x4 transpose of four row vectors, in place: packing, and reducing four rows at once. */
static inline void tr4(v128_t *r0, v128_t *r1, v128_t *r2, v128_t *r3) {
  const v128_t t0 = wasm_i32x4_shuffle(*r0, *r1, 0, 4, 1, 5);
  const v128_t t1 = wasm_i32x4_shuffle(*r0, *r1, 2, 6, 3, 7);
  const v128_t t2 = wasm_i32x4_shuffle(*r2, *r3, 0, 4, 1, 5);
  const v128_t t3 = wasm_i32x4_shuffle(*r2, *r3, 2, 6, 3, 7);
  *r0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  *r1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  *r2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  *r3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}

#endif
