/* Integer GEMM for frozen layers whose weights are 8-bit codes (see kernels.h).

   Why: WASM SIMD has no float FMA outside relaxed SIMD, so a float GEMM spends two
   instructions (f32x4.mul, f32x4.add) on 4 multiply-adds. i32x4.dot_i16x8_s (one
   pmaddwd on x86) does 8 multiply-adds of 16-bit integers, and its add makes 8 per two
   instructions: twice the float rate, from half the bytes of operands. The pre-trained
   backbones ship their weights as uint8 codes with an integer zero point, so a weight is
   exactly wb[n] * code (code = q - zero point); the activations are rounded, one row (one
   pixel's channels) at a time, to the largest integer range whose sums of products with
   the layer's codes cannot overflow int32: 16 bits for MobileNetV2's layers, a relative
   error of ~1.5e-5 of the row's range, well below what separates two images; the
   engine's tests hold the features to tfjs's float32 ones.

   A row a (K values) becomes a[k] ~ s * (qa[k] + zi), qa[k] in [-qmax, qmax]: s is half
   the row's range over qmax - 1 and s * zi the nearest multiple of s to its middle, so a
   row of ReLU6 outputs (all >= 0) gets the full code range, not half of it. Then
     C[m][n] = wb[n] * s * sum_k qa[k] code[k][n] + z * wsum[n],   z = s * zi,
   wsum[n] being the sum of column n of W. A row's codes depend on that row alone, so
   results do not depend on batch-mates, bands or threads.

   Layout: the codes are packed once per layer into 8-column panels of int16 pairs
   ([Kp/2][8][2], K rounded up to even Kp, columns padded with zero codes), so a panel row
   is two v128 loads and a pair of A codes one 32-bit splat. The register tile is 4x8,
   like the float GEMM's, for the same reason: 8 accumulators, two B vectors and the
   splat fit the 16 x86 vector registers without spills (6x8 and 2x16 measured no
   faster). */
#include "kernels.h"
#include "act.h"
#include "threads.h"
#include <float.h>
#include <math.h>
#include <string.h>
#ifdef __wasm_simd128__
#include "simd.h"
#endif

#define QG_MR 4
#define QG_NR 8
/* Bytes of quantized A rows a call keeps on its stack at once. */
#define QG_ABYTES  (32 * 1024)
#define QG_MAXROWS 256

size_t tt_qpack_size(int K, int N) { return (size_t)((K + 1) & ~1) * (size_t)((N + QG_NR - 1) / QG_NR * QG_NR); }

int tt_qpack(int K, int N, const int16_t *codes, int16_t *dst) {
  const int Kp = (K + 1) & ~1, N8 = (N + QG_NR - 1) / QG_NR * QG_NR;
  long l1max = 1;
  for (int p = 0; p < N8; p += QG_NR)
    for (int k = 0; k < Kp; k += 2)
      for (int j = 0; j < QG_NR; j++)
        for (int e = 0; e < 2; e++) *dst++ = k + e < K && p + j < N ? codes[(size_t)(k + e) * N + p + j] : 0;
  for (int j = 0; j < N; j++) {
    long l1 = 0;
    for (int k = 0; k < K; k++) {
      const long c = codes[(size_t)k * N + j];
      l1 += c < 0 ? -c : c;
    }
    l1max = l1 > l1max ? l1 : l1max;
  }
  /* No sum of qmax * |code| over a column may leave int32. Real weight columns are far
     from all-extreme codes, so this is usually the full 16-bit range. */
  const long q = 0x7fffffffL / l1max;
  return q > 32767 ? 32767 : (int)q;
}

/* How a row of A was rounded (see the top): a[k] ~ s * (q[k] + zi) = s * q[k] + z. */
typedef struct {
  float s, z;
} qrow;

/* Rounding by the float adder: adding 1.5 * 2^23 leaves round-to-nearest-even(v) in the
   low mantissa bits for |v| < 2^22 (one add and one integer subtract, where
   f32x4.nearest + i32x4.trunc_sat_f32x4 are about ten x86 instructions in V8). Adding
   1.5 * 2^23 - zi instead also subtracts the row's zero point; the scalar version adds
   the same float so that ties round alike. */
#define QG_MAGIC 12582912.0f

/* The rounding of a row whose values span [lo, hi]: sets *r, *inv (codes are
   round(a * inv) - zi) and *mz = QG_MAGIC - zi. A constant row is z alone (s = 0), and a
   row holding a NaN or an infinity gives NaN, as the float product would; both return 0
   (no codes needed: all zero). A row far from zero for its width (|middle| over 2^21
   levels away) is rounded about zero instead, keeping codes within the adder's range. */
static int row_scale(float lo, float hi, int bad, int qmax, qrow *r, float *inv, float *mz) {
  if (bad || !(hi <= FLT_MAX) || !(lo >= -FLT_MAX)) {
    r->s = r->z = NAN;
    return 0;
  }
  float half = 0.5f * hi - 0.5f * lo, mid = 0.5f * hi + 0.5f * lo; /* halves first: no overflow */
  if (half < 1e-30f) {                                             /* below this the reciprocal scale would overflow */
    r->s = 0.0f, r->z = mid;
    return 0;
  }
  const float levels = (float)(qmax - 1); /* round(a*inv) - zi then stays within +-qmax */
  if (fabsf(mid) > half * (2097152.0f / levels)) {
    half = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
    mid = 0.0f;
  }
  *inv = levels / half;
  r->s = half * (1.0f / levels);
  const float zi = rintf(mid * *inv);
  r->z = r->s * zi + 0.0f; /* + 0: -0 and 0 (lanes reduce in any order) alike */
  *mz = QG_MAGIC - zi;
  return 1;
}

static void quant_row_scalar(const float *a, int K, int Kp, int qmax, int16_t *q, qrow *r) {
  float lo = a[0], hi = a[0], inv = 0.0f, mz = 0.0f;
  int bad = 0;
  for (int k = 0; k < K; k++) {
    bad |= a[k] != a[k];
    lo = a[k] < lo ? a[k] : lo;
    hi = a[k] > hi ? a[k] : hi;
  }
  memset(q, 0, (size_t)Kp * sizeof *q);
  if (!row_scale(lo, hi, bad, qmax, r, &inv, &mz)) return;
  for (int k = 0; k < K; k++) {
    const float t = a[k] * inv; /* two statements, as the SIMD version's two operations */
    q[k] = (int16_t)((int32_t)(t + mz) - (int32_t)QG_MAGIC);
  }
}

/* The epilogue, one output: the same operations in the same order as the SIMD one. */
static inline float qout(int32_t acc, const qrow *r, float wb, float wsum, const float *c, const float *bias, int act) {
  float v = (float)acc * wb * r->s + wsum * r->z;
  if (c) v = *c + v;
  if (bias) v = v + *bias;
  return act_f(v, act);
}

void tt_qgemm_scalar(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias,
                     int act) {
  const int K = W->K, N = W->N, Kp = (K + 1) & ~1, qmax = W->qmax;
  int16_t q[TT_QGEMM_MAX_K + 1];
  for (int i = 0; i < M; i++) {
    qrow r;
    quant_row_scalar(A + (size_t)i * lda, K, Kp, qmax, q, &r);
    float *c = C + (size_t)i * ldc;
    for (int j = 0; j < N; j++) {
      const int16_t *b = W->w + (size_t)(j / QG_NR) * Kp * QG_NR + (j % QG_NR) * 2;
      int32_t t = 0;
      for (int k = 0; k < Kp; k += 2, b += 2 * QG_NR) t += q[k] * b[0] + q[k + 1] * b[1];
      c[j] = qout(t, &r, W->wb[j], W->wsum[j], acc ? &c[j] : NULL, bias ? &bias[j] : NULL, act);
    }
  }
}

#ifdef __wasm_simd128__

/* One row's range, lane by lane (lanes reduced by the caller, four rows at once): two
   of each accumulator, since one chain of dependent pmin/pmax would bound the loop. The
   NaN test is a sum: pmin/pmax drop NaNs, and a lane's sum is NaN only if the lane saw a
   NaN or an infinity, which row_scale then rejects as the scalar test does. */
static inline void row_range(const float *a, int K, v128_t *lo, v128_t *hi, v128_t *nan) {
  v128_t lo0 = wasm_v128_load32_splat(a), hi0 = lo0, lo1 = lo0, hi1 = lo0;
  v128_t s0 = wasm_f32x4_splat(0.0f), s1 = s0;
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const v128_t v = wasm_v128_load(a + k), v1 = wasm_v128_load(a + k + 4);
    lo0 = wasm_f32x4_pmin(lo0, v), lo1 = wasm_f32x4_pmin(lo1, v1);
    hi0 = wasm_f32x4_pmax(hi0, v), hi1 = wasm_f32x4_pmax(hi1, v1);
    s0 = wasm_f32x4_add(s0, v), s1 = wasm_f32x4_add(s1, v1);
  }
  for (; k + 4 <= K; k += 4) {
    const v128_t v = wasm_v128_load(a + k);
    lo0 = wasm_f32x4_pmin(lo0, v), hi0 = wasm_f32x4_pmax(hi0, v), s0 = wasm_f32x4_add(s0, v);
  }
  for (; k < K; k++) {
    const v128_t v = wasm_v128_load32_splat(a + k);
    lo0 = wasm_f32x4_pmin(lo0, v), hi0 = wasm_f32x4_pmax(hi0, v), s0 = wasm_f32x4_add(s0, v);
  }
  /* Not s0 + s1: two finite sums that overflowed to opposite infinities would add to NaN. */
  *lo = wasm_f32x4_pmin(lo0, lo1), *hi = wasm_f32x4_pmax(hi0, hi1);
  *nan = wasm_v128_or(wasm_f32x4_ne(s0, s0), wasm_f32x4_ne(s1, s1));
}

/* Rounds rows a[0..n) (n <= 4, row stride lda) to codes q (row stride Kp) and factors r.
   Four rows at once: a transpose reduces their ranges in one go, and their scales are one
   vector, the same operations as row_scale's, so the codes are the scalar version's bit
   for bit. Per row, the lane reductions, the division and the branches cost as much as
   the rounding itself at K = 24-48 (MobileNet's first projections). A row that needs
   one of row_scale's special cases sends its group of four through row_scale. n < 4
   repeats the last row. */
static void quant_rows4_simd(const float *a, int lda, int n, int K, int Kp, int qmax, int16_t *q, qrow *r) {
  v128_t lo[4], hi[4], nan[4];
  for (int i = 0; i < 4; i++) row_range(a + (size_t)(i < n ? i : n - 1) * lda, K, &lo[i], &hi[i], &nan[i]);
  tr4(&lo[0], &lo[1], &lo[2], &lo[3]);
  tr4(&hi[0], &hi[1], &hi[2], &hi[3]);
  tr4(&nan[0], &nan[1], &nan[2], &nan[3]);
  const v128_t vlo = wasm_f32x4_pmin(wasm_f32x4_pmin(lo[0], lo[1]), wasm_f32x4_pmin(lo[2], lo[3]));
  const v128_t vhi = wasm_f32x4_pmax(wasm_f32x4_pmax(hi[0], hi[1]), wasm_f32x4_pmax(hi[2], hi[3]));
  const v128_t bad = wasm_v128_or(wasm_v128_or(nan[0], nan[1]), wasm_v128_or(nan[2], nan[3]));
  const float levels = (float)(qmax - 1);
  const v128_t h = wasm_f32x4_splat(0.5f);
  const v128_t half = wasm_f32x4_sub(wasm_f32x4_mul(h, vhi), wasm_f32x4_mul(h, vlo));
  const v128_t mid = wasm_f32x4_add(wasm_f32x4_mul(h, vhi), wasm_f32x4_mul(h, vlo));
  const v128_t odd = wasm_v128_or(
      wasm_v128_or(bad, wasm_v128_not(wasm_f32x4_le(vhi, wasm_f32x4_splat(FLT_MAX)))),
      wasm_v128_or(wasm_v128_not(wasm_f32x4_ge(vlo, wasm_f32x4_splat(-FLT_MAX))),
                   wasm_v128_or(wasm_f32x4_lt(half, wasm_f32x4_splat(1e-30f)),
                                wasm_f32x4_gt(wasm_f32x4_abs(mid),
                                              wasm_f32x4_mul(half, wasm_f32x4_splat(2097152.0f / levels))))));
  float inv[4], mz[4], s[4], z[4];
  int coded[4] = {1, 1, 1, 1};
  if (wasm_v128_any_true(odd)) {
    float l[4], u[4];
    int32_t b[4];
    wasm_v128_store(l, vlo), wasm_v128_store(u, vhi), wasm_v128_store(b, bad);
    for (int i = 0; i < n; i++) coded[i] = row_scale(l[i], u[i], b[i], qmax, &r[i], &inv[i], &mz[i]);
  } else {
    const v128_t vinv = wasm_f32x4_div(wasm_f32x4_splat(levels), half);
    const v128_t vs = wasm_f32x4_mul(half, wasm_f32x4_splat(1.0f / levels));
    const v128_t zi = wasm_f32x4_nearest(wasm_f32x4_mul(mid, vinv));
    wasm_v128_store(inv, vinv), wasm_v128_store(s, vs);
    wasm_v128_store(z, wasm_f32x4_add(wasm_f32x4_mul(vs, zi), wasm_f32x4_splat(0.0f)));
    wasm_v128_store(mz, wasm_f32x4_sub(wasm_f32x4_splat(QG_MAGIC), zi));
    for (int i = 0; i < n; i++) r[i].s = s[i], r[i].z = z[i];
  }
  const v128_t magic = wasm_f32x4_splat(QG_MAGIC);
  for (int i = 0; i < n; i++) {
    const float *ai = a + (size_t)i * lda;
    int16_t *qi = q + (size_t)i * Kp;
    int k = 0;
    if (!coded[i]) {
      memset(qi, 0, (size_t)Kp * sizeof *qi);
      continue;
    }
    const v128_t vinv = wasm_f32x4_splat(inv[i]), vmz = wasm_f32x4_splat(mz[i]);
    for (; k + 8 <= K; k += 8) {
      const v128_t c0 = wasm_i32x4_sub(wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ai + k), vinv), vmz), magic);
      const v128_t c1 = wasm_i32x4_sub(wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ai + k + 4), vinv), vmz), magic);
      wasm_v128_store(qi + k, wasm_i16x8_narrow_i32x4(c0, c1));
    }
    for (; k < K; k++) {
      const float t = ai[k] * inv[i];
      qi[k] = (int16_t)((int32_t)(t + mz[i]) - (int32_t)QG_MAGIC);
    }
    for (; k < Kp; k++) qi[k] = 0;
  }
}

/* One row of the tile (two accumulators, 8 columns) -> C; see qout for the epilogue.
   The row's factors are splatted here, after the K loop, not kept in registers across it. */
#define QG_EPI(x0, x1, row)                                                                                            \
  do {                                                                                                                 \
    const v128_t s_ = wasm_v128_load32_splat(&r[row].s);                                                               \
    const v128_t z_ = wasm_v128_load32_splat(&r[row].z);                                                               \
    v128_t v0 = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(x0), wb0), s_);                                 \
    v128_t v1 = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_convert_i32x4(x1), wb1), s_);                                 \
    v0 = wasm_f32x4_add(v0, wasm_f32x4_mul(ws0, z_));                                                                  \
    v1 = wasm_f32x4_add(v1, wasm_f32x4_mul(ws1, z_));                                                                  \
    if (acc) {                                                                                                         \
      v0 = wasm_f32x4_add(wasm_v128_load(c##row), v0);                                                                 \
      v1 = wasm_f32x4_add(wasm_v128_load(c##row + 4), v1);                                                             \
    }                                                                                                                  \
    if (bias) {                                                                                                        \
      v0 = wasm_f32x4_add(v0, wasm_v128_load(bias));                                                                   \
      v1 = wasm_f32x4_add(v1, wasm_v128_load(bias + 4));                                                               \
    }                                                                                                                  \
    wasm_v128_store(c##row, act_v(v0, act));                                                                           \
    wasm_v128_store(c##row + 4, act_v(v1, act));                                                                       \
  } while (0)

/* C[4 rows][8 np columns]: np consecutive panels of B against 4 rows of codes (row
   stride Kp). noinline for the float GEMM's reason (gemm.c): inlined, V8 spills the
   accumulators. */
__attribute__((noinline)) static void qgemm_ukernel_4x8(int np, int Kp, const int16_t *a0, const int16_t *bp, float *c,
                                                        int ldc, int acc, const float *wb, const float *ws,
                                                        const qrow *r, const float *bias, int act) {
  const int16_t *a1 = a0 + Kp, *a2 = a1 + Kp, *a3 = a2 + Kp;
  for (int p = 0; p < np; p++, c += QG_NR, wb += QG_NR, ws += QG_NR) {
    v128_t x00 = wasm_i32x4_splat(0), x01 = x00, x10 = x00, x11 = x00, x20 = x00, x21 = x00, x30 = x00, x31 = x00;
    for (int k = 0; k < Kp; k += 2, bp += 2 * QG_NR) { /* leaves bp at the next panel */
      const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 8);
      v128_t a = wasm_v128_load32_splat(a0 + k);
      x00 = wasm_i32x4_add(x00, wasm_i32x4_dot_i16x8(a, b0));
      x01 = wasm_i32x4_add(x01, wasm_i32x4_dot_i16x8(a, b1));
      a = wasm_v128_load32_splat(a1 + k);
      x10 = wasm_i32x4_add(x10, wasm_i32x4_dot_i16x8(a, b0));
      x11 = wasm_i32x4_add(x11, wasm_i32x4_dot_i16x8(a, b1));
      a = wasm_v128_load32_splat(a2 + k);
      x20 = wasm_i32x4_add(x20, wasm_i32x4_dot_i16x8(a, b0));
      x21 = wasm_i32x4_add(x21, wasm_i32x4_dot_i16x8(a, b1));
      a = wasm_v128_load32_splat(a3 + k);
      x30 = wasm_i32x4_add(x30, wasm_i32x4_dot_i16x8(a, b0));
      x31 = wasm_i32x4_add(x31, wasm_i32x4_dot_i16x8(a, b1));
    }
    const v128_t wb0 = wasm_v128_load(wb), wb1 = wasm_v128_load(wb + 4);
    const v128_t ws0 = wasm_v128_load(ws), ws1 = wasm_v128_load(ws + 4);
    float *c0 = c, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
    QG_EPI(x00, x01, 0);
    QG_EPI(x10, x11, 1);
    QG_EPI(x20, x21, 2);
    QG_EPI(x30, x31, 3);
    if (bias) bias += QG_NR;
  }
}
#undef QG_EPI

void tt_qgemm_simd(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias,
                   int act) {
  const int K = W->K, N = W->N, Kp = (K + 1) & ~1, qmax = W->qmax;
  const int N8 = N / QG_NR * QG_NR;
  int MB = QG_ABYTES / (int)sizeof(int16_t) / Kp / QG_MR * QG_MR;
  MB = MB < QG_MR ? QG_MR : MB > QG_MAXROWS ? QG_MAXROWS : MB;
  int16_t qa[QG_ABYTES / sizeof(int16_t)]; /* MB * Kp codes: Kp <= 2046 keeps MB >= 8 */
  qrow rows[QG_MAXROWS];
  for (int i0 = 0; i0 < M; i0 += MB) {
    const int mb = M - i0 < MB ? M - i0 : MB;
    const int mb4 = (mb + QG_MR - 1) / QG_MR * QG_MR;
    for (int i = 0; i < mb; i += QG_MR)
      quant_rows4_simd(A + (size_t)(i0 + i) * lda, lda, mb - i < QG_MR ? mb - i : QG_MR, K, Kp, qmax,
                       qa + (size_t)i * Kp, &rows[i]);
    for (int i = mb; i < mb4; i++) { /* padding rows of the last tile: never stored */
      memset(qa + (size_t)i * Kp, 0, (size_t)Kp * sizeof *qa);
      rows[i].s = rows[i].z = 0.0f;
    }
    for (int i = 0; i < mb4; i += QG_MR) {
      const int mr = mb - i < QG_MR ? mb - i : QG_MR;
      float *c = C + (size_t)(i0 + i) * ldc;
      if (mr == QG_MR && N8 > 0)
        qgemm_ukernel_4x8(N8 / QG_NR, Kp, qa + (size_t)i * Kp, W->w, c, ldc, acc, W->wb, W->wsum, rows + i, bias, act);
      if (mr == QG_MR && N8 == N) continue;
      /* Edge tiles (the last rows, the last columns) on a padded copy, so the kernel
         never needs bounds checks; only their valid part is written back. */
      for (int p = mr == QG_MR ? N8 : 0; p < N; p += QG_NR) {
        const int nr = N - p < QG_NR ? N - p : QG_NR;
        float tile[QG_MR * QG_NR], btile[QG_NR];
        for (int rr = 0; rr < QG_MR; rr++)
          for (int j = 0; j < QG_NR; j++)
            tile[rr * QG_NR + j] = acc && rr < mr && j < nr ? c[(size_t)rr * ldc + p + j] : 0.0f;
        for (int j = 0; j < QG_NR; j++) btile[j] = bias && j < nr ? bias[p + j] : 0.0f;
        qgemm_ukernel_4x8(1, Kp, qa + (size_t)i * Kp, W->w + (size_t)p * Kp, tile, QG_NR, acc, W->wb + p, W->wsum + p,
                          rows + i, bias ? btile : NULL, act);
        for (int rr = 0; rr < mr; rr++)
          for (int j = 0; j < nr; j++) c[(size_t)rr * ldc + p + j] = tile[rr * QG_NR + j];
      }
    }
  }
}
#endif

static void qgemm_1(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias,
                    int act) {
#ifdef __wasm_simd128__
  tt_qgemm_simd(M, W, A, lda, C, ldc, acc, bias, act);
#else
  tt_qgemm_scalar(M, W, A, lda, C, ldc, acc, bias, act);
#endif
}

typedef struct {
  int M, lda, ldc, acc, act;
  const tt_qmat *W;
  const float *A, *bias;
  float *C;
} qgemm_args;

static void qgemm_block(void *ctx, int rows, int lo, int hi) {
  const qgemm_args *g = ctx;
  if (rows) {
    qgemm_1(hi - lo, g->W, g->A + (size_t)lo * g->lda, g->lda, g->C + (size_t)lo * g->ldc, g->ldc, g->acc, g->bias,
            g->act);
  } else {
    /* A column block is a matrix of its own: its panels, its per-column factors. */
    tt_qmat w = {g->W->K,       hi - lo,        g->W->qmax, g->W->w + (size_t)lo * ((g->W->K + 1) & ~1),
                 g->W->wb + lo, g->W->wsum + lo};
    qgemm_1(g->M, &w, g->A, g->lda, g->C + lo, g->ldc, g->acc, g->bias ? g->bias + lo : NULL, g->act);
  }
}

void tt_qgemm(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias,
              int act) {
  if (M <= 0 || W->N <= 0) return;
  qgemm_args g = {M, lda, ldc, acc, act, W, A, bias, C};
  tt_gemm_cut(M, W->N, (double)M * W->N * W->K, qgemm_block, &g);
}
