/* Compute kernels: NHWC float32, row-major, no allocation, no error paths (callers
   validate shapes). Each kernel family lives in one file (gemm.c, dwconv.c, conv.c,
   qgemm.c, pool.c, eltwise.c, optim.c) and exists three times:
     tt_<name>_scalar  portable C, the reference the others are tested against;
     tt_<name>_simd    wasm_simd128.h version, compiled only when __wasm_simd128__;
     tt_<name>         what the engine calls: the SIMD one where it exists, else scalar.
   Backward kernels accumulate (+=) into weight/bias gradients and overwrite input
   gradients unless stated otherwise. */
#ifndef TT_KERNELS_H
#define TT_KERNELS_H
#include <stddef.h>
#include <stdint.h>

enum {
  TT_ACT_NONE = 0,
  TT_ACT_RELU = 1,
  TT_ACT_RELU6 = 2,
  /* only on a standalone 'act' op (net.h), with the graph's constants: gate.c */
  TT_ACT_HSWISH = 3,
  TT_ACT_HSIGMOID = 4
};

/* ---- gemm.c (one thread), gemm_cut.c (across threads) ---------------------------
   C[M,N] = (acc ? C : 0) + op(A) * op(B), then + bias[N] (if bias), then act.
   op(A) is [M,K]: A itself (ta=0, A is M x K, row stride lda) or A^T (ta=1, A is
   K x M, row stride lda). Likewise op(B) is [K,N]: B (tb=0, K x N, ldb) or B^T
   (tb=1, B is N x K, ldb). Pointwise conv forward is (ta=0,tb=0); its weight grad
   dW = X^T dY is (ta=1,tb=0); its input grad dX = dY W^T is (ta=0,tb=1). */
void tt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
             int acc, const float *bias, int act);

/* tt_gemm's cut of an M x N output of `macs` multiply-adds across the pool's threads,
   shared with tt_qgemm: block(ctx, rows, lo, hi) runs for each block of whole rows
   (rows = 1) or columns [lo, hi), across threads, or once for the whole output (rows = 1,
   lo = 0, hi = M) when it is not worth cutting (see gemm_cut.c). */
typedef void (*tt_gemm_block)(void *ctx, int rows, int lo, int hi);
void tt_gemm_cut(int M, int N, double macs, tt_gemm_block block, void *ctx);

/* ---- qgemm.c: GEMM against 8-bit weight codes, for frozen layers ------------------
   C[M,N] = (acc ? C : 0) + A W, then + bias[N] (if bias), then act, where A is [M,K]
   (row stride lda) and W[k][n] = wb[n] * code[k][n], |code| <= 255 (uint8 codes less
   an integer zero point). Each row of A is rounded to integers with a scale of its own
   (see qgemm.c), so the result is within ~1e-4 (relative to each row's range) of the
   float product. w holds the codes as tt_qpack lays them out (tt_qpack_size int16s),
   qmax is what tt_qpack returned; wsum[n] is the sum of column n of W (the caller's, as
   it folds factors into wb); wb and wsum are padded with zeros to a multiple of 8
   columns. For K <= TT_QGEMM_MAX_K only, which keeps qmax >= 4096. */
#define TT_QGEMM_MAX_K 2046
typedef struct {
  int K, N, qmax;
  const int16_t *w;
  const float *wb, *wsum;
} tt_qmat;
size_t tt_qpack_size(int K, int N);
/* Packs codes [K][N]; returns the largest code a row of A may take (qmax). */
int tt_qpack(int K, int N, const int16_t *codes, int16_t *dst);
void tt_qgemm(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias, int act);

/* ---- shapes shared by the spatial kernels ---------------------------------------
   Input x is [n,h,w,c]; output y is [n,oh,ow,oc]. pt/pl are the zero padding rows and
   columns before the input (bottom/right padding is implied by oh/ow). Output pixel
   (oy,ox) reads input rows oy*sh - pt + ky, columns ox*sw - pl + kx. */
typedef struct {
  int n, h, w, c;
  int kh, kw, sh, sw, pt, pl;
  int oh, ow, oc; /* oc == c for depthwise and pooling */
} tt_shape;

/* ---- bands.c: spatial kernels across threads ------------------------------------
   tt_band: output rows [oy0, oy1) of one image as an image of their own, reading only
   the input rows from *row0 on (n = 1, its own top padding). Every output pixel keeps
   its window, taps and clipping, so a kernel gives the same results on bands as on the
   whole. tt_bands runs f over bands of rows (or whole images) across the pool's threads
   when the work (macs_per_pixel per output pixel) is worth it. */
tt_shape tt_band(const tt_shape *s, int oy0, int oy1, int *row0);
typedef void (*tt_spatial_fn)(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);
void tt_bands(tt_spatial_fn f, double macs_per_pixel, const tt_shape *s, const float *x, const float *w,
              const float *bias, int act, float *y);

/* ---- dwconv.c: depthwise convolution, multiplier 1, filter [kh][kw][c] ----------- */
void tt_dwconv(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);
void tt_dwconv_backward_input(const tt_shape *s, const float *dy, const float *w, float *dx);  /* dx overwritten */
void tt_dwconv_backward_filter(const tt_shape *s, const float *x, const float *dy, float *dw); /* dw += */

/* ---- conv.c: general 2-D convolution, filter [kh][kw][c][oc] (HWIO) -------------- */
void tt_conv2d(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);

/* ---- pool.c ----------------------------------------------------------------------
   Average pooling, TF semantics: padded cells are not counted in the divisor. */
void tt_avgpool(const tt_shape *s, const float *x, float *y);
void tt_avgpool_backward(const tt_shape *s, const float *dy, float *dx); /* dx overwritten */

/* ---- eltwise.c --------------------------------------------------------------------- */
void tt_add(size_t n, const float *a, const float *b, float *y);           /* y = a + b (y may alias) */
void tt_acc(size_t n, const float *x, float *y);                           /* y += x */
void tt_zero(size_t n, float *y);                                          /* y = 0 (memset, across threads) */
void tt_scale_shift(size_t n, const float *x, float a, float b, float *y); /* y = a*x + b */
void tt_bias_act(int rows, int c, float *y, const float *bias,
                 int act); /* y = act(y + bias) in place; bias may be NULL */
/* dy *= act'(.) judged from the activation's output y: relu passes where y > 0, relu6
   where 0 < y < 6 (TensorFlow's convention at the kinks). In place on dy. */
void tt_act_backward(size_t n, const float *y, float *dy, int act);
void tt_bias_backward(int rows, int c, const float *dy, float *db); /* db[c] += sum over rows */
void tt_softmax(int rows, int c, const float *x, float *y);         /* numerically stable */

/* ---- gate.c: MobileNetV3's hard activations, global mean, channel gate -------------
   hswish y = (x*a) * relu6(x + b), hsigmoid y = relu6(x + b) * a (a = 1/6, b = 3 as the
   graph stores them); their backward accumulates dx += dy * f'(x), judged from the input.
   mean: x [n][hw][c] -> y [n][c]; its backward dx += dy/hw. gate (squeeze-and-excitation):
   y[n][p][c] = s[n][c] * x[n][p][c]; backward dx += dy*s, ds += sum_p dy*x (either may
   be NULL). */
void tt_hswish(size_t n, const float *x, float a, float b, float *y);
void tt_hsigmoid(size_t n, const float *x, float a, float b, float *y);
void tt_hswish_backward(size_t n, const float *x, float a, float b, const float *dy, float *dx);
void tt_hsigmoid_backward(size_t n, const float *x, float a, float b, const float *dy, float *dx);
void tt_mean(int n, int hw, int c, const float *x, float *y);
void tt_mean_backward(int n, int hw, int c, const float *dy, float *dx);
void tt_gate(int n, int hw, int c, const float *x, const float *s, float *y);
void tt_gate_backward(int n, int hw, int c, const float *x, const float *s, const float *dy, float *dx, float *ds);
/* PReLU over rows of c channels: y = x > 0 ? x : alpha[c]*x; backward dx += dy*(x > 0 ? 1 :
   alpha) (dx may be NULL), dalpha[c] += dy*x where x <= 0. */
void tt_prelu(size_t rows, int c, const float *x, const float *alpha, float *y);
void tt_prelu_backward(size_t rows, int c, const float *x, const float *alpha, const float *dy, float *dx,
                       float *dalpha);

/* ---- optim.c: one Adam / AdamW step over n parameters ------------------------------
   g' = g + wd*w (Adam's L2 form, decoupled = 0); m = b1*m + (1-b1)*g';
   v = b2*v + ((1-b2)*g')*g'; if flush, moments below 1e-30 in magnitude set to 0;
   upd = (m*ibc1) / (sqrt(v*ibc2) + eps) (+ wd*w when decoupled: AdamW); w -= lr*upd.
   ibc1, ibc2 are the reciprocal bias corrections 1/(1-b1^t), 1/(1-b2^t). */
typedef struct {
  float b1, b2, eps, lr, wd, ibc1, ibc2;
  int decoupled;
  int flush; /* needed every few steps (see optim.c), not every step */
} tt_adam_cfg;
void tt_adam(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c);

/* ---- half.c: IEEE binary16 storage (cached activations) ----------------------------
   Round to nearest even; NaN stays NaN, beyond 65504 becomes infinity. */
uint16_t tt_f16_from_f32(float f);
float tt_f16_to_f32(uint16_t h);
void tt_f16_pack(size_t n, const float *x, uint16_t *y);
void tt_f16_unpack(size_t n, const uint16_t *x, float *y);

/* ---- variants -----------------------------------------------------------------------
   Same contracts as above; exported so tests and benchmarks can compare them. */
void tt_gemm_scalar(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                    int ldc, int acc, const float *bias, int act);
void tt_qgemm_scalar(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias,
                     int act);
void tt_dwconv_scalar(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);
void tt_dwconv_backward_input_scalar(const tt_shape *s, const float *dy, const float *w, float *dx);
void tt_dwconv_backward_filter_scalar(const tt_shape *s, const float *x, const float *dy, float *dw);
void tt_conv2d_scalar(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);
void tt_avgpool_scalar(const tt_shape *s, const float *x, float *y);
void tt_avgpool_backward_scalar(const tt_shape *s, const float *dy, float *dx);
void tt_add_scalar(size_t n, const float *a, const float *b, float *y);
void tt_acc_scalar(size_t n, const float *x, float *y);
void tt_scale_shift_scalar(size_t n, const float *x, float a, float b, float *y);
void tt_bias_act_scalar(int rows, int c, float *y, const float *bias, int act);
void tt_act_backward_scalar(size_t n, const float *y, float *dy, int act);
void tt_bias_backward_scalar(int rows, int c, const float *dy, float *db);
void tt_softmax_scalar(int rows, int c, const float *x, float *y);
void tt_hswish_scalar(size_t n, const float *x, float a, float b, float *y);
void tt_hsigmoid_scalar(size_t n, const float *x, float a, float b, float *y);
void tt_hswish_backward_scalar(size_t n, const float *x, float a, float b, const float *dy, float *dx);
void tt_hsigmoid_backward_scalar(size_t n, const float *x, float a, float b, const float *dy, float *dx);
void tt_mean_scalar(int n, int hw, int c, const float *x, float *y);
void tt_mean_backward_scalar(int n, int hw, int c, const float *dy, float *dx);
void tt_gate_scalar(int n, int hw, int c, const float *x, const float *s, float *y);
void tt_gate_backward_scalar(int n, int hw, int c, const float *x, const float *s, const float *dy, float *dx,
                             float *ds);
void tt_prelu_scalar(size_t rows, int c, const float *x, const float *alpha, float *y);
void tt_prelu_backward_scalar(size_t rows, int c, const float *x, const float *alpha, const float *dy, float *dx,
                              float *dalpha);
void tt_adam_scalar(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c);

#ifdef __wasm_simd128__
void tt_gemm_simd(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                  int ldc, int acc, const float *bias, int act);
void tt_qgemm_simd(int M, const tt_qmat *W, const float *A, int lda, float *C, int ldc, int acc, const float *bias,
                   int act);
void tt_dwconv_simd(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);
void tt_dwconv_backward_input_simd(const tt_shape *s, const float *dy, const float *w, float *dx);
void tt_dwconv_backward_filter_simd(const tt_shape *s, const float *x, const float *dy, float *dw);
void tt_conv2d_simd(const tt_shape *s, const float *x, const float *w, const float *bias, int act, float *y);
void tt_avgpool_simd(const tt_shape *s, const float *x, float *y);
void tt_avgpool_backward_simd(const tt_shape *s, const float *dy, float *dx);
void tt_add_simd(size_t n, const float *a, const float *b, float *y);
void tt_acc_simd(size_t n, const float *x, float *y);
void tt_scale_shift_simd(size_t n, const float *x, float a, float b, float *y);
void tt_bias_act_simd(int rows, int c, float *y, const float *bias, int act);
void tt_act_backward_simd(size_t n, const float *y, float *dy, int act);
void tt_bias_backward_simd(int rows, int c, const float *dy, float *db);
void tt_softmax_simd(int rows, int c, const float *x, float *y);
void tt_hswish_simd(size_t n, const float *x, float a, float b, float *y);
void tt_hsigmoid_simd(size_t n, const float *x, float a, float b, float *y);
void tt_hswish_backward_simd(size_t n, const float *x, float a, float b, const float *dy, float *dx);
void tt_hsigmoid_backward_simd(size_t n, const float *x, float a, float b, const float *dy, float *dx);
void tt_mean_simd(int n, int hw, int c, const float *x, float *y);
void tt_mean_backward_simd(int n, int hw, int c, const float *dy, float *dx);
void tt_gate_simd(int n, int hw, int c, const float *x, const float *s, float *y);
void tt_gate_backward_simd(int n, int hw, int c, const float *x, const float *s, const float *dy, float *dx, float *ds);
void tt_prelu_simd(size_t rows, int c, const float *x, const float *alpha, float *y);
void tt_prelu_backward_simd(size_t rows, int c, const float *x, const float *alpha, const float *dy, float *dx,
                            float *dalpha);
void tt_adam_simd(size_t n, float *w, const float *g, float *m, float *v, const tt_adam_cfg *c);
#endif

#endif
