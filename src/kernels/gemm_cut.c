/* GEMM across threads: tt_gemm, the entry every float dense layer and pointwise
   convolution calls (src/infer.c, src/backprop.c), cuts its product into blocks for the thread pool
   (src/threads.c) and runs each block through the one-thread GEMM of gemm.c (SIMD, or
   the scalar reference). The row/column cut is shared with the integer GEMM (qgemm.c);
   the K split is for short, deep products (a dense head on a batch).

   The cut never changes a result: each element of C goes through the same code path, in
   the same order, for any number of threads, so training and inference are bit for bit
   the same on one thread or eight. */
#include "kernels.h"
#include "act.h"
#include "threads.h"

static void gemm_1(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                   int ldc, int acc, const float *bias, int act) {
#ifdef __wasm_simd128__
  tt_gemm_simd(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, bias, act);
#else
  tt_gemm_scalar(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, bias, act);
#endif
}

/* Across threads, C is cut into blocks of whole rows, at multiples of the 4-row tile,
   or (too few rows) of whole columns at multiples of the 8-column panel, the last block
   taking the remnant. Each element then goes through the same code path, in the same
   order, as without the cut, so the result does not depend on the number of threads.
   A row block reads all of B, a column block all of A: the cut is across the dimension
   that makes the re-read operand the smaller one (rows when N <= M). Below
   GEMM_PAR_MIN multiply-adds a GEMM is not worth a trip through the pool. */
#define GEMM_PAR_MIN (1 << 17)
#ifndef GEMM_CHUNKS
#define GEMM_CHUNKS 3
#endif

typedef struct {
  tt_gemm_block block;
  void *ctx;
  int rows, step, tasks, total;
} gemm_cut;

static void cut_task(void *p, int t) {
  const gemm_cut *c = p;
  const int lo = t * c->step, hi = t == c->tasks - 1 ? c->total : lo + c->step;
  c->block(c->ctx, c->rows, lo, hi);
}

void tt_gemm_cut(int M, int N, double macs, tt_gemm_block block, void *ctx) {
  const int T = tt_threads();
  const int rows_ok = M >= 8 * T, cols_ok = N >= 16 * T;
  const int unit = T < 2 || macs < GEMM_PAR_MIN ? 0 : rows_ok && (N <= M || !cols_ok) ? 4 : cols_ok ? 8 : 0;
  if (!unit) {
    block(ctx, 1, 0, M);
    return;
  }
  gemm_cut c = {block, ctx, unit == 4, 0, 0, unit == 4 ? M : N};
  const int whole = c.total / unit; /* whole tiles or panels */
  /* GEMM_CHUNKS blocks a thread, taken by whichever thread is free, so a core slowed by
     other work takes fewer (an equal split waits for the slowest core); each block
     re-reads the other operand, so not more. */
  c.step = (whole + GEMM_CHUNKS * T - 1) / (GEMM_CHUNKS * T) * unit;
  c.tasks = whole * unit / c.step + (whole * unit % c.step != 0);
  tt_parallel(c.tasks, cut_task, &c);
}

typedef struct {
  int ta, tb, M, N, K, lda, ldb, ldc, acc, act;
  const float *A, *B, *bias;
  float *C;
} gemm_args;

static void gemm_block(void *ctx, int rows, int lo, int hi) {
  const gemm_args *g = ctx;
  if (rows)
    gemm_1(g->ta, g->tb, hi - lo, g->N, g->K, g->A + (g->ta ? (size_t)lo : (size_t)lo * g->lda), g->lda, g->B, g->ldb,
           g->C + (size_t)lo * g->ldc, g->ldc, g->acc, g->bias, g->act);
  else
    gemm_1(g->ta, g->tb, g->M, hi - lo, g->K, g->A, g->lda, g->B + (g->tb ? (size_t)lo * g->ldb : (size_t)lo), g->ldb,
           g->C + lo, g->ldc, g->acc, g->bias ? g->bias + lo : NULL, g->act);
}

/* A short, deep product (a dense layer on a batch: 16 x 100 outputs over K = 1792) is
   cut across K instead, into KPARTS fixed parts of whole 4-row tiles, each summed into a
   partial of its own and the partials added in order. A column cut would give thread t
   a slice of every weight row, while the weight-gradient GEMM (rows cut) and Adam
   (slices) give it whole rows: every step, half the weights moved between cores,
   which made Adam as slow on two cores as on one (head training 1.03 -> 0.82-0.89 s
   on 2 cores). Cut across K, thread t reads the rows it updates. Whether a product is cut
   this way, and where, depends on its shape alone, so the sums are the same for any
   number of threads. */
#define KPARTS        4
#define KSPLIT_MIN_K  1024 /* parts of >= 256 (one K block) */
#define KSPLIT_MAX_MN 4096 /* four partials on the caller's stack: 64 KiB */

typedef struct {
  gemm_args g;
  int kp; /* rows of K per part (the last takes the remnant) */
  int tasks;
  float *part; /* KPARTS x M x N */
} ksplit;

static void ksplit_task(void *p, int t) {
  const ksplit *s = p;
  const gemm_args *g = &s->g;
  for (int q = t * KPARTS / s->tasks; q < (t + 1) * KPARTS / s->tasks; q++) {
    const int k0 = q * s->kp, kc = q == KPARTS - 1 ? g->K - k0 : s->kp;
    gemm_1(g->ta, g->tb, g->M, g->N, kc, g->A + (g->ta ? (size_t)k0 * g->lda : (size_t)k0), g->lda,
           g->B + (g->tb ? (size_t)k0 : (size_t)k0 * g->ldb), g->ldb, s->part + (size_t)q * g->M * g->N, g->N, 0, NULL,
           TT_ACT_NONE);
  }
}

/* Out of line, so that only products cut this way put the partials on the stack. */
__attribute__((noinline)) static void gemm_ksplit(const gemm_args *g) {
  float part[KPARTS * KSPLIT_MAX_MN];
  const int T = tt_threads(), M = g->M, N = g->N;
  /* a part a task, taken by whichever thread is free (two parts a thread on two cores
     waited on the slower one) */
  ksplit s = {*g, (g->K + 4 * KPARTS - 1) / (4 * KPARTS) * 4, T < 2 ? 1 : KPARTS, part};
  tt_parallel(s.tasks, ksplit_task, &s);
  const size_t mn = (size_t)M * N;
  for (int i = 0; i < M; i++) {
    float *c = g->C + (size_t)i * g->ldc;
    for (int j = 0; j < N; j++) {
      const size_t at = (size_t)i * N + j;
      float v = part[at];
      for (int q = 1; q < KPARTS; q++) v += part[q * mn + at];
      if (g->acc) v = c[j] + v;
      c[j] = act_f(g->bias ? v + g->bias[j] : v, g->act);
    }
  }
}

void tt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
             int acc, const float *bias, int act) {
  gemm_args g = {ta, tb, M, N, K, lda, ldb, ldc, acc, act, A, B, bias, C};
  const double macs = (double)M * N * K;
  if (K >= KSPLIT_MIN_K && (double)M * N <= KSPLIT_MAX_MN && macs >= GEMM_PAR_MIN)
    gemm_ksplit(&g);
  else
    tt_gemm_cut(M, N, macs, gemm_block, &g);
}
