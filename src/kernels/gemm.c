/* GEMM on one thread: C = (acc ? C : 0) + op(A) op(B), then bias and activation (see
   kernels.h). Where it sits: every float dense layer and pointwise convolution (trained
   layers forward and backward; frozen ones too with integer: false) reaches it through
   tt_gemm (gemm_cut.c), which cuts the product across threads and runs each block here.
   Frozen layers by their 8-bit codes go to qgemm.c instead.

   tt_gemm_scalar is the reference; tt_gemm_simd is what the wasm builds run, and the
   kernel tests hold it to the reference on every transpose and edge shape. The SIMD
   version is a GotoBLAS-style blocked GEMM built around one 4x8 register tile: 8 v128
   accumulators hold a 4-row x 8-column tile of C while K is streamed. Without FMA in
   WASM SIMD, that tile size is as fast as any measured under emcc 3.1.6 and V8 (~46
   GFLOP/s from L1; 6x8, 4x12 and 2x16 no faster, shuffling A lanes instead of
   load-splats slower), and it leaves enough of the 16 x86 xmm registers for the splatted
   A value and the two B vectors that V8 does not spill.

   Three ways in, one tile and one epilogue (bias, activation, store) for all:
   - ta = tb = 0, full tiles: the tile reads A and B where they are (gemm_direct);
   - any transpose, and the edges: both operands packed first (gemm_packed), B into
     8-column panels ([k][8], zero-padded), A into 4-row slivers ([k][4]), so all four
     (ta,tb) cases run the same hot loop; packing is where the transposes happen, which
     is why A^T and B^T cost no more than the plain case;
   - M < 4: no tiles, B streamed one row of C at a time (gemm_few_rows).
   K is cut into equal blocks of at most GEMM_KC. Each element of C is still summed in K
   order, whatever the blocks (a block stores its partial sums and the next loads them,
   exactly), so block sizes never change a result. */
#include "kernels.h"
#include "act.h"
#ifdef __wasm_simd128__
#include "simd.h"
#endif

/* Dot product with 8 independent partial sums: a single running sum pins the additions
   to strict left-to-right order, which gcc does not vectorise without -ffast-math. */
static float dot(const float *a, const float *b, int n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t = 0.0f;
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int l = 0; l < 8; l++) s[l] += a[k + l] * b[k + l];
  for (; k < n; k++) t += a[k] * b[k];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

void tt_gemm_scalar(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                    int ldc, int acc, const float *bias, int act) {
  for (int i = 0; i < M; i++) {
    float *restrict c = C + (size_t)i * ldc;
    if (!acc)
      for (int j = 0; j < N; j++) c[j] = 0.0f;
    if (!tb) {
      /* Row of C += scalars * rows of B: unit stride on all, so gcc vectorises it; four
         rows of B per pass cut the loads and stores of the C row by four. */
#define A_AT(k) (ta ? A[(size_t)(k)*lda + i] : A[(size_t)i * lda + (k)])
      int k = 0;
      for (; k + 4 <= K; k += 4) {
        const float a0 = A_AT(k), a1 = A_AT(k + 1), a2 = A_AT(k + 2), a3 = A_AT(k + 3);
        const float *restrict b0 = B + (size_t)k * ldb, *restrict b1 = b0 + ldb, *restrict b2 = b1 + ldb,
                              *restrict b3 = b2 + ldb;
        for (int j = 0; j < N; j++) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
      }
      for (; k < K; k++) {
        const float a = A_AT(k);
        const float *restrict b = B + (size_t)k * ldb;
        for (int j = 0; j < N; j++) c[j] += a * b[j];
      }
#undef A_AT
    } else if (!ta) {
      /* B^T: rows of B are columns of op(B), so each C entry is a unit-stride dot. */
      for (int j = 0; j < N; j++) c[j] += dot(A + (size_t)i * lda, B + (size_t)j * ldb, K);
    } else {
      /* A^T B^T: row i of op(A) is a strided column of A; gathered a slice at a time
         into a small stack buffer, the dots are unit-stride again. */
      float acol[256];
      for (int k0 = 0; k0 < K; k0 += 256) {
        const int kc = K - k0 < 256 ? K - k0 : 256;
        for (int k = 0; k < kc; k++) acol[k] = A[(size_t)(k0 + k) * lda + i];
        for (int j = 0; j < N; j++) c[j] += dot(acol, B + (size_t)j * ldb + k0, kc);
      }
    }
    if (bias)
      for (int j = 0; j < N; j++) c[j] += bias[j];
    if (act != TT_ACT_NONE)
      for (int j = 0; j < N; j++) c[j] = act_f(c[j], act);
  }
}

#ifdef __wasm_simd128__

/* Block sizes: a KC x NC block of packed B (128 KiB) is reused by every 4-row sliver
   of A, so it should stay in L2; a 4 x KC sliver of packed A (4 KiB) plus one 8-column
   panel (8 KiB) are what the tile touches and fit L1. */
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_NC 128

/* The K block for a product of depth K: equal blocks of at most GEMM_KC. A remnant block
   (K = 784 = 3 x 256 + 16, the weight gradient of a 7x7 layer on a batch of 16) loads and
   stores all of C for a few multiply-adds a tile; equal blocks do not. */
static int kblock(int K) {
  const int nk = (K + GEMM_KC - 1) / GEMM_KC;
  return nk > 1 ? (K + nk - 1) / nk : K;
}

/* Packs op(B)[k0:k0+kc, j0:j0+nc] as consecutive panels of [kc][8]. */
static void pack_b(int tb, const float *B, int ldb, int k0, int kc, int j0, int nc, float *dst) {
  for (int p = 0; p < nc; p += GEMM_NR, dst += (size_t)kc * GEMM_NR) {
    const int nr = nc - p < GEMM_NR ? nc - p : GEMM_NR;
    const int j = j0 + p;
    if (!tb) {
      const float *src = B + (size_t)k0 * ldb + j;
      if (nr == GEMM_NR) {
        for (int k = 0; k < kc; k++, src += ldb) {
          wasm_v128_store(dst + k * 8, wasm_v128_load(src));
          wasm_v128_store(dst + k * 8 + 4, wasm_v128_load(src + 4));
        }
      } else {
        for (int k = 0; k < kc; k++, src += ldb)
          for (int jj = 0; jj < GEMM_NR; jj++) dst[k * 8 + jj] = jj < nr ? src[jj] : 0.0f;
      }
    } else {
      /* op(B) column j is row j of B: read rows with unit stride, transpose 4x4. */
      const float *src = B + (size_t)j * ldb + k0;
      if (nr == GEMM_NR) {
        for (int g = 0; g < 2; g++) {
          const float *s0 = src + (size_t)(4 * g) * ldb, *s1 = s0 + ldb, *s2 = s1 + ldb, *s3 = s2 + ldb;
          int k = 0;
          for (; k + 4 <= kc; k += 4) {
            v128_t r0 = wasm_v128_load(s0 + k), r1 = wasm_v128_load(s1 + k);
            v128_t r2 = wasm_v128_load(s2 + k), r3 = wasm_v128_load(s3 + k);
            tr4(&r0, &r1, &r2, &r3);
            wasm_v128_store(dst + (k + 0) * 8 + 4 * g, r0);
            wasm_v128_store(dst + (k + 1) * 8 + 4 * g, r1);
            wasm_v128_store(dst + (k + 2) * 8 + 4 * g, r2);
            wasm_v128_store(dst + (k + 3) * 8 + 4 * g, r3);
          }
          for (; k < kc; k++) {
            dst[k * 8 + 4 * g + 0] = s0[k];
            dst[k * 8 + 4 * g + 1] = s1[k];
            dst[k * 8 + 4 * g + 2] = s2[k];
            dst[k * 8 + 4 * g + 3] = s3[k];
          }
        }
      } else {
        for (int jj = 0; jj < GEMM_NR; jj++) {
          if (jj < nr) {
            const float *s = src + (size_t)jj * ldb;
            for (int k = 0; k < kc; k++) dst[k * 8 + jj] = s[k];
          } else {
            for (int k = 0; k < kc; k++) dst[k * 8 + jj] = 0.0f;
          }
        }
      }
    }
  }
}

/* Packs op(A)[i0:i0+mr, k0:k0+kc] as [kc][4]. */
static void pack_a(int ta, const float *A, int lda, int i0, int mr, int k0, int kc, float *dst) {
  if (ta) {
    /* op(A) row i is column i of A: four adjacent rows are one contiguous load. */
    const float *src = A + (size_t)k0 * lda + i0;
    if (mr == GEMM_MR) {
      for (int k = 0; k < kc; k++, src += lda) wasm_v128_store(dst + k * 4, wasm_v128_load(src));
    } else {
      for (int k = 0; k < kc; k++, src += lda)
        for (int r = 0; r < GEMM_MR; r++) dst[k * 4 + r] = r < mr ? src[r] : 0.0f;
    }
  } else {
    const float *s0 = A + (size_t)i0 * lda + k0;
    if (mr == GEMM_MR) {
      const float *s1 = s0 + lda, *s2 = s1 + lda, *s3 = s2 + lda;
      int k = 0;
      for (; k + 4 <= kc; k += 4) {
        v128_t r0 = wasm_v128_load(s0 + k), r1 = wasm_v128_load(s1 + k);
        v128_t r2 = wasm_v128_load(s2 + k), r3 = wasm_v128_load(s3 + k);
        tr4(&r0, &r1, &r2, &r3);
        wasm_v128_store(dst + (k + 0) * 4, r0);
        wasm_v128_store(dst + (k + 1) * 4, r1);
        wasm_v128_store(dst + (k + 2) * 4, r2);
        wasm_v128_store(dst + (k + 3) * 4, r3);
      }
      for (; k < kc; k++) {
        dst[k * 4 + 0] = s0[k];
        dst[k * 4 + 1] = s1[k];
        dst[k * 4 + 2] = s2[k];
        dst[k * 4 + 3] = s3[k];
      }
    } else {
      for (int r = 0; r < GEMM_MR; r++) {
        if (r < mr) {
          const float *s = s0 + (size_t)r * lda;
          for (int k = 0; k < kc; k++) dst[k * 4 + r] = s[k];
        } else {
          for (int k = 0; k < kc; k++) dst[k * 4 + r] = 0.0f;
        }
      }
    }
  }
}

/* The epilogue of every tile: on the last K block only (final), bias and activation
   while the tile is still in registers (act_v, the activation every SIMD kernel
   applies), then the store. x[r * nv + v] is row r's v-th vector (nv = 2: a 4x8 tile,
   nv = 1: a 4x4 one); bias points at the tile's first column. */
static inline __attribute__((always_inline)) void tile_store(v128_t *x, int nv, float *c, int ldc, int final,
                                                             const float *bias, int act) {
  v128_t bv[2];
  if (final && bias)
    for (int v = 0; v < nv; v++) bv[v] = wasm_v128_load(bias + 4 * v);
  for (int r = 0; r < GEMM_MR; r++)
    for (int v = 0; v < nv; v++) {
      v128_t t = x[r * nv + v];
      if (final) {
        if (bias) t = wasm_f32x4_add(t, bv[v]);
        t = act_v(t, act);
      }
      wasm_v128_store(c + (size_t)r * ldc + 4 * v, t);
    }
}

static inline __attribute__((always_inline)) void tile_load(v128_t *x, int nv, const float *c, int ldc, int load_c) {
  for (int r = 0; r < GEMM_MR; r++)
    for (int v = 0; v < nv; v++)
      x[r * nv + v] = load_c ? wasm_v128_load(c + (size_t)r * ldc + 4 * v) : wasm_f32x4_splat(0.0f);
}

/* The 4x8 tile over np consecutive 8-column panels of C: C = (load_c ? C : 0) + op(A)
   op(B) over one K block, then the epilogue. Element (r, k) of op(A) is a[r * ars +
   k * aks]; row k of panel p of op(B) is b[p * bps + k * bks]. Looping over panels here
   rather than in the caller saves a call per tile, which shows when K is as short as
   MobileNet's expansion layers (K = 16..32). Instantiated twice with its strides (below). */
static inline __attribute__((always_inline)) void tile_4x8(int np, int kc, const float *a, int ars, int aks,
                                                           const float *b, int bps, int bks, float *c, int ldc,
                                                           int load_c, int final, const float *bias, int act) {
  for (int p = 0; p < np; p++, c += GEMM_NR) {
    const float *a0 = a, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
    const float *bp = b + (size_t)p * bps;
    v128_t x[8];
    tile_load(x, 2, c, ldc, load_c);
    for (int k = 0; k < kc; k++, a0 += aks, a1 += aks, a2 += aks, a3 += aks, bp += bks) {
      const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
      v128_t s = wasm_v128_load32_splat(a0);
      x[0] = TT_MADD(s, b0, x[0]);
      x[1] = TT_MADD(s, b1, x[1]);
      s = wasm_v128_load32_splat(a1);
      x[2] = TT_MADD(s, b0, x[2]);
      x[3] = TT_MADD(s, b1, x[3]);
      s = wasm_v128_load32_splat(a2);
      x[4] = TT_MADD(s, b0, x[4]);
      x[5] = TT_MADD(s, b1, x[5]);
      s = wasm_v128_load32_splat(a3);
      x[6] = TT_MADD(s, b0, x[6]);
      x[7] = TT_MADD(s, b1, x[7]);
    }
    tile_store(x, 2, c, ldc, final, final && bias ? bias + p * GEMM_NR : NULL, act);
  }
}

/* On packed operands: a 4-row sliver [kc][4] and consecutive [kc][8] panels. noinline
   (both instances): inlined into the blocking loops, V8's register allocator spills the
   accumulators and the GEMM runs at half speed (measured 25 vs 45 GFLOP/s). */
__attribute__((noinline)) static void tile_4x8_packed(int np, int kc, const float *ap, const float *bp, float *c,
                                                      int ldc, int load_c, int final, const float *bias, int act) {
  tile_4x8(np, kc, ap, 1, GEMM_MR, bp, kc * GEMM_NR, GEMM_NR, c, ldc, load_c, final, bias, act);
}

/* The plain case (ta = tb = 0) read straight from A and B, no packing: at batch 1 every
   weight matrix is used by few rows of A, and packing B was 11% of the forward pass
   (pack_a another 4%), more than any edge of a packed layout saves. The four A rows are
   unit-stride streams and the 8-column strip of B a stream of ldb stride, both easy for
   the prefetcher; the caller's K/N blocking keeps the strip of B in L2 across the row
   slivers. Only full 4x8 tiles come here. */
__attribute__((noinline)) static void tile_4x8_direct(int np, int kc, const float *a, int lda, const float *b, int ldb,
                                                      float *c, int ldc, int load_c, int final, const float *bias,
                                                      int act) {
  tile_4x8(np, kc, a, lda, 1, b, GEMM_NR, ldb, c, ldc, load_c, final, bias, act);
}

/* A 4x4 tile, for the last 4 columns when N % 8 >= 4 (the head's 100 units): a padded
   8-wide tile did twice the work there plus copies, which cost 9-13% of the head's
   GEMMs for 4% of their columns. Row r of op(A) is ar[r][k * as] (as = 1: rows of A;
   as = 4: a packed sliver), row k of the 4 columns of op(B) is b[k * bs]. */
__attribute__((noinline)) static void tile_4x4(int kc, const float *a0, int lda, int as, const float *b, int bs,
                                               float *c, int ldc, int load_c, int final, const float *bias, int act) {
  const float *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
  v128_t x[4];
  tile_load(x, 1, c, ldc, load_c);
  for (int k = 0; k < kc; k++, a0 += as, a1 += as, a2 += as, a3 += as, b += bs) {
    const v128_t bv = wasm_v128_load(b);
    x[0] = TT_MADD(wasm_v128_load32_splat(a0), bv, x[0]);
    x[1] = TT_MADD(wasm_v128_load32_splat(a1), bv, x[1]);
    x[2] = TT_MADD(wasm_v128_load32_splat(a2), bv, x[2]);
    x[3] = TT_MADD(wasm_v128_load32_splat(a3), bv, x[3]);
  }
  tile_store(x, 1, c, ldc, final, bias, act);
}

/* Unit-stride dot product, two vector accumulators for two independent add chains. */
static float vdot(const float *a, const float *b, int n) {
  v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0;
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    s0 = TT_MADD(wasm_v128_load(a + k), wasm_v128_load(b + k), s0);
    s1 = TT_MADD(wasm_v128_load(a + k + 4), wasm_v128_load(b + k + 4), s1);
  }
  if (k + 4 <= n) {
    s0 = TT_MADD(wasm_v128_load(a + k), wasm_v128_load(b + k), s0);
    k += 4;
  }
  s0 = wasm_f32x4_add(s0, s1);
  float t = (wasm_f32x4_extract_lane(s0, 0) + wasm_f32x4_extract_lane(s0, 1)) +
            (wasm_f32x4_extract_lane(s0, 2) + wasm_f32x4_extract_lane(s0, 3));
  for (; k < n; k++) t += a[k] * b[k];
  return t;
}

/* M < 4 (a GEMV, or the head with a batch of 1-3): a 4-row tile would be mostly padding
   and packing B would cost as much as the product itself, so B is streamed directly,
   one row of C at a time (measured 3.5 -> ~14 GFLOP/s for M = 1). */
static void gemm_few_rows(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                          float *C, int ldc, int acc, const float *bias, int act) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  for (int i = 0; i < M; i++) {
    float *c = C + (size_t)i * ldc;
    if (!acc) {
      int j = 0;
      for (; j + 4 <= N; j += 4) wasm_v128_store(c + j, zero);
      for (; j < N; j++) c[j] = 0.0f;
    }
    if (!tb) {
#define A_AT(k) (ta ? A[(size_t)(k)*lda + i] : A[(size_t)i * lda + (k)])
      int k = 0;
      for (; k + 4 <= K; k += 4) { /* four rows of B per pass over the C row */
        const float s0 = A_AT(k), s1 = A_AT(k + 1), s2 = A_AT(k + 2), s3 = A_AT(k + 3);
        const v128_t a0 = wasm_f32x4_splat(s0), a1 = wasm_f32x4_splat(s1), a2 = wasm_f32x4_splat(s2),
                     a3 = wasm_f32x4_splat(s3);
        const float *b0 = B + (size_t)k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
          const v128_t p01 = TT_MADD(a1, wasm_v128_load(b1 + j), wasm_f32x4_mul(a0, wasm_v128_load(b0 + j)));
          const v128_t p23 = TT_MADD(a3, wasm_v128_load(b3 + j), wasm_f32x4_mul(a2, wasm_v128_load(b2 + j)));
          wasm_v128_store(c + j, wasm_f32x4_add(wasm_v128_load(c + j), wasm_f32x4_add(p01, p23)));
        }
        for (; j < N; j++) c[j] += (s0 * b0[j] + s1 * b1[j]) + (s2 * b2[j] + s3 * b3[j]);
      }
      for (; k < K; k++) {
        const float s0 = A_AT(k);
        const v128_t a0 = wasm_f32x4_splat(s0);
        const float *b0 = B + (size_t)k * ldb;
        int j = 0;
        for (; j + 4 <= N; j += 4) wasm_v128_store(c + j, TT_MADD(a0, wasm_v128_load(b0 + j), wasm_v128_load(c + j)));
        for (; j < N; j++) c[j] += s0 * b0[j];
      }
#undef A_AT
    } else {
      /* Dots of row i of op(A) with rows of B; with A^T that row is a strided column of
         A, gathered a slice at a time into a small stack buffer. */
      float acol[256];
      for (int k0 = 0; k0 < K; k0 += 256) {
        const int kc = K - k0 < 256 ? K - k0 : 256;
        const float *a = A + (size_t)i * lda + k0;
        if (ta) {
          for (int k = 0; k < kc; k++) acol[k] = A[(size_t)(k0 + k) * lda + i];
          a = acol;
        }
        for (int j = 0; j < N; j++) c[j] += vdot(a, B + (size_t)j * ldb + k0, kc);
      }
    }
    int j = 0;
    for (; j + 4 <= N; j += 4) {
      v128_t v = wasm_v128_load(c + j);
      if (bias) v = wasm_f32x4_add(v, wasm_v128_load(bias + j));
      v = act_v(v, act);
      wasm_v128_store(c + j, v);
    }
    for (; j < N; j++) c[j] = act_f(bias ? c[j] + bias[j] : c[j], act);
  }
}

/* ta = tb = 0: full 4x8 tiles straight from A and B (see tile_4x8_direct); the rows
   past a multiple of 4 and columns past a multiple of 8 go to the packed path. K is
   blocked as in the packed path so the strip of B a sliver streams stays cached; N is
   not blocked at all when a K block of B fits in L2, so each sliver writes its C rows
   whole (column blocks of a C too large for L2 made the write-back of C run twice over
   the same lines). */
#define GEMM_DIRECT_L2 (512 * 1024)
static void gemm_direct(int M4, int N8, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                        int acc, const float *bias, int act) {
  const int kb = kblock(K);
  for (int k0 = 0; k0 < K; k0 += kb) {
    const int kc = K - k0 < kb ? K - k0 : kb;
    const int load_c = acc || k0 > 0;
    const int final = k0 + kc == K;
    int ncmax = GEMM_DIRECT_L2 / (kc * (int)sizeof(float)) / GEMM_NR * GEMM_NR;
    if (ncmax < GEMM_NR) ncmax = GEMM_NR;
    /* Equal column blocks rather than full ones and a remnant. */
    const int nblocks = (N8 + ncmax - 1) / ncmax;
    const int ncb = ((N8 / GEMM_NR + nblocks - 1) / nblocks) * GEMM_NR;
    for (int j0 = 0; j0 < N8; j0 += ncb) {
      const int nc = N8 - j0 < ncb ? N8 - j0 : ncb;
      for (int i0 = 0; i0 < M4; i0 += GEMM_MR)
        tile_4x8_direct(nc / GEMM_NR, kc, A + (size_t)i0 * lda + k0, lda, B + (size_t)k0 * ldb + j0, ldb,
                        C + (size_t)i0 * ldc + j0, ldc, load_c, final, final && bias ? bias + j0 : NULL, act);
    }
  }
}

static void gemm_packed(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                        int ldc, int acc, const float *bias, int act) {
  /* On the stack rather than static (kernels must not allocate): each thread running a
     GEMM gets its own. 132 KiB; the engine's stacks are 1 MiB. */
  float gemm_bpack[GEMM_KC * GEMM_NC], gemm_apack[GEMM_KC * GEMM_MR];
  if (M < GEMM_MR || K <= 0) { /* K = 0: no K block would run the epilogue */
    gemm_few_rows(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, bias, act);
    return;
  }
  const int kb = kblock(K);
  for (int k0 = 0; k0 < K; k0 += kb) {
    const int kc = K - k0 < kb ? K - k0 : kb;
    const int load_c = acc || k0 > 0;
    const int final = k0 + kc == K;
    for (int j0 = 0; j0 < N; j0 += GEMM_NC) {
      const int nc = N - j0 < GEMM_NC ? N - j0 : GEMM_NC;
      pack_b(tb, B, ldb, k0, kc, j0, nc, gemm_bpack);
      for (int i0 = 0; i0 < M; i0 += GEMM_MR) {
        const int mr = M - i0 < GEMM_MR ? M - i0 : GEMM_MR;
        pack_a(ta, A, lda, i0, mr, k0, kc, gemm_apack);
        /* Full tiles in one call; an edge tile (mr < 4 or fewer than 8 columns left)
           runs the same tile on a padded copy so the hot path never needs bounds
           checks, and only its valid part is written back. */
        const int full = mr == GEMM_MR ? nc / GEMM_NR : 0;
        if (full > 0)
          tile_4x8_packed(full, kc, gemm_apack, gemm_bpack, C + (size_t)i0 * ldc + j0, ldc, load_c, final,
                          final && bias ? bias + j0 : NULL, act);
        for (int p = full * GEMM_NR; p < nc; p += GEMM_NR) {
          const int nr = nc - p < GEMM_NR ? nc - p : GEMM_NR;
          float *c = C + (size_t)i0 * ldc + j0 + p;
          if (mr == GEMM_MR && nr == 4) { /* the first 4 columns of the padded panel */
            tile_4x4(kc, gemm_apack, 1, GEMM_MR, gemm_bpack + (size_t)p * kc, GEMM_NR, c, ldc, load_c, final,
                     final && bias ? bias + j0 + p : NULL, act);
            continue;
          }
          float tile[GEMM_MR * GEMM_NR], btile[GEMM_NR];
          for (int r = 0; r < GEMM_MR; r++)
            for (int jj = 0; jj < GEMM_NR; jj++)
              tile[r * GEMM_NR + jj] = load_c && r < mr && jj < nr ? c[(size_t)r * ldc + jj] : 0.0f;
          if (final && bias)
            for (int jj = 0; jj < GEMM_NR; jj++) btile[jj] = jj < nr ? bias[j0 + p + jj] : 0.0f;
          tile_4x8_packed(1, kc, gemm_apack, gemm_bpack + (size_t)p * kc, tile, GEMM_NR, load_c, final,
                          final && bias ? btile : NULL, act);
          for (int r = 0; r < mr; r++)
            for (int jj = 0; jj < nr; jj++) c[(size_t)r * ldc + jj] = tile[r * GEMM_NR + jj];
        }
      }
    }
  }
}

void tt_gemm_simd(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                  int ldc, int acc, const float *bias, int act) {
  if (M <= 0 || N <= 0) return;
  const int M4 = M / GEMM_MR * GEMM_MR, N8 = N / GEMM_NR * GEMM_NR;
  if (ta || tb || M4 == 0 || N8 == 0 || K <= 0) {
    gemm_packed(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, bias, act);
    return;
  }
  gemm_direct(M4, N8, K, A, lda, B, ldb, C, ldc, acc, bias, act);
  int N4 = N8;
  if (N - N8 >= 4) { /* 4 more columns of the full row slivers */
    const int kb = kblock(K);
    for (int k0 = 0; k0 < K; k0 += kb) {
      const int kc = K - k0 < kb ? K - k0 : kb, final = k0 + kc == K;
      for (int i0 = 0; i0 < M4; i0 += GEMM_MR)
        tile_4x4(kc, A + (size_t)i0 * lda + k0, lda, 1, B + (size_t)k0 * ldb + N8, ldb, C + (size_t)i0 * ldc + N8, ldc,
                 acc || k0 > 0, final, final && bias ? bias + N8 : NULL, act);
    }
    N4 = N8 + 4;
  }
  if (N4 < N) /* the last columns of the full row slivers */
    gemm_packed(0, 0, M4, N - N4, K, A, lda, B + N4, ldb, C + N4, ldc, acc, bias ? bias + N4 : NULL, act);
  if (M4 < M) /* the last rows, all columns */
    gemm_packed(0, 0, M - M4, N, K, A + (size_t)M4 * lda, lda, B, ldb, C + (size_t)M4 * ldc, ldc, acc, bias, act);
}
#endif
