/* Weight decoding: tfjs stores tensors as float32, float16, or affine-quantised uint8 /
   uint16 (value = q*scale + min, computed in double like tfjs so results match it
   bit for bit), and a graph's integer constants (a Mean's axes) as int32. Decoding
   happens once at load, here only (wasm/engine.mjs calls it for every weight and graph
   constant); the engine computes in float32 only. */
#ifndef TT_WEIGHTS_H
#define TT_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>

enum { TT_W_F32 = 0, TT_W_F16 = 1, TT_W_U8 = 2, TT_W_U16 = 3, TT_W_I32 = 4 };

size_t tt_weights_elem_size(int enc); /* 0 for an unknown encoding */

/* Decodes count values from src (src_len bytes available) into dst. Refuses short
   input and non-finite values, naming `name` in the message. */
int tt_weights_decode(const char *name, const uint8_t *src, size_t src_len, size_t count, int enc, double qmin,
                      double qscale, float *dst);

/* FNV-1a 64-bit: identifies a backbone's weight bytes in saved models. */
uint64_t tt_hash64(const uint8_t *p, size_t n, uint64_t h);
#define TT_HASH64_INIT 0xcbf29ce484222325ULL

#endif
