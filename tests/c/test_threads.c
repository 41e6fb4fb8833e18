/* The thread pool, natively with pthreads lent the way the browser lends Web Workers:
   every task of every loop runs exactly once, nested loops run inline, and the kernels
   and a network split across threads give bit for bit the results of one thread (what
   tinytune promises: the number of threads never changes an answer). */
#define _GNU_SOURCE /* pthread_setaffinity_np: the unequal-cores run */
#include "check.h"
#include "image.h"
#include "kernels/kernels.h"
#include "net.h"
#include "threads.h"
#include "train.h"
#include "tt.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LENT 3

static uint64_t g_rng = 7;
static float *rnd(size_t n, float scale) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = (tt_rng_uniform(&g_rng) * 2.0f - 1.0f) * scale;
  return p;
}

static int lent_rc[LENT]; /* checked by main after joining: CHECK is not thread-safe */
static void *lend(void *arg) {
  *(int *)arg = tt_threads_lend();
  return NULL;
}

/* ---- the pool ---------------------------------------------------------------------- */

typedef struct {
  int *hits;
  int nested;
} counting;
static void nested_task(void *ctx, int i) { __atomic_fetch_add((int *)ctx + i, 1, __ATOMIC_SEQ_CST); }
static void count_task(void *ctx, int i) {
  counting *c = ctx;
  __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_SEQ_CST);
  if (c->nested) { /* runs inline on whichever thread this is */
    int inner[5] = {0};
    tt_parallel(5, nested_task, inner);
    for (int k = 0; k < 5; k++)
      if (inner[k] != 1) __atomic_fetch_add(&c->nested, 1000, __ATOMIC_SEQ_CST);
  }
}

static void test_pool(void) {
  int hits[64], bad = 0;
  for (int round = 0; round < 20000; round++) { /* many short jobs: races show up here */
    const int n = 1 + round % 64;
    counting c = {hits, round % 7 == 0};
    memset(hits, 0, sizeof hits);
    tt_parallel(n, count_task, &c);
    for (int i = 0; i < n; i++) bad += hits[i] != 1;
    bad += c.nested > 1;
  }
  CHECK(bad == 0, "%d tasks did not run exactly once (or nested loops failed)", bad);
}

/* ---- kernels: threads vs one thread, bit for bit ----------------------------------- */

static void same(const float *a, const float *b, size_t n, const char *what) {
  CHECK(memcmp(a, b, n * sizeof *a) == 0, "%s differs with threads (maxrel %g)", what, check_maxrel(a, b, n));
}

static void test_gemm_split(void) {
  /* Rows split (M large), columns split (M small), remnants of tiles and panels, every
     transpose, with and without accumulation, bias and activation. */
  static const int shapes[][3] = {{113, 70, 37},  {49, 1792, 448}, {6, 300, 70}, {3, 200, 300},
                                  {64, 36, 1000}, {1000, 10, 256}, {17, 33, 520}};
  for (int si = 0; si < 6 + 1; si++)
    for (int t = 0; t < 4; t++) {
      const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], ta = t & 1, tb = t >> 1;
      const int lda = ta ? M : K, ldb = tb ? K : N, acc = si & 1, act = (si + t) % 3;
      float *A = rnd((size_t)M * K, 1), *B = rnd((size_t)K * N, 1), *bias = rnd(N, 1);
      float *C0 = rnd((size_t)M * N, 1), *C1 = malloc((size_t)M * N * sizeof *C1);
      memcpy(C1, C0, (size_t)M * N * sizeof *C1);
      tt_gemm(ta, tb, M, N, K, A, lda, B, ldb, C1, N, acc, t == 0 ? bias : NULL, act);
      tt_gemm_scalar(ta, tb, M, N, K, A, lda, B, ldb, C0, N, acc, t == 0 ? bias : NULL, act);
      char what[64];
      snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
      same(C1, C0, (size_t)M * N, what);
      free(A), free(B), free(bias), free(C0), free(C1);
    }
}

/* Short, deep products, whose K tt_gemm cuts into parts: every transpose, accumulating
   or not, with bias and activations. Returned whole, to compare the run with threads
   against the one without (their sums are tt_gemm's own, not tt_gemm_scalar's). */
static float *ksplit_products(size_t *n) {
  static const int shapes[][3] = {{16, 100, 1792}, {3, 40, 1500}};
  *n = 0;
  for (int si = 0; si < 2; si++) *n += 4 * (size_t)shapes[si][0] * shapes[si][1];
  float *out = malloc(*n * sizeof *out), *at = out;
  for (int si = 0; si < 2; si++)
    for (int t = 0; t < 4; t++) {
      const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], ta = t & 1, tb = t >> 1;
      g_rng = 11 + (uint64_t)si; /* the same operands on every call */
      float *A = rnd((size_t)M * K, 1), *B = rnd((size_t)K * N, 1), *bias = rnd(N, 1);
      for (size_t i = 0; i < (size_t)M * N; i++) at[i] = (float)i * 1e-3f;
      tt_gemm(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, at, N, t & 1, t ? bias : NULL, t % 3);
      at += (size_t)M * N;
      free(A), free(B), free(bias);
    }
  return out;
}

static void test_qgemm_split(void) {
  /* Rows split, columns split (each block its own panels and column factors), remnants. */
  static const int shapes[][3] = {{113, 70, 37}, {49, 1792, 448}, {6, 300, 70}, {1000, 10, 256}};
  for (int si = 0; si < 4; si++) {
    const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], N8 = (N + 7) / 8 * 8;
    int16_t *codes = malloc((size_t)K * N * sizeof *codes);
    for (size_t i = 0; i < (size_t)K * N; i++) codes[i] = (int16_t)(tt_rng_next(&g_rng) % 511) - 255;
    int16_t *w = malloc(tt_qpack_size(K, N) * sizeof *w);
    const int qmax = tt_qpack(K, N, codes, w);
    float *f = rnd((size_t)2 * N8, 0.01f), *A = rnd((size_t)M * K, 1), *bias = rnd(N, 1);
    const tt_qmat q = {K, N, qmax, w, f, f + N8};
    float *C0 = rnd((size_t)M * N, 1), *C1 = malloc((size_t)M * N * sizeof *C1);
    memcpy(C1, C0, (size_t)M * N * sizeof *C1);
    tt_qgemm(M, &q, A, K, C1, N, si & 1, bias, si % 3);
    tt_qgemm_scalar(M, &q, A, K, C0, N, si & 1, bias, si % 3);
    char what[64];
    snprintf(what, sizeof what, "qgemm %dx%dx%d", M, N, K);
    same(C1, C0, (size_t)M * N, what);
    free(codes), free(w), free(f), free(A), free(bias), free(C0), free(C1);
  }
}

static void test_spatial_split(void) {
  /* {n, h, w, c, k, stride, pad, oc}: MobileNet's stem and depthwise shapes, small ones,
     batches smaller and larger than the thread count. */
  static const int cases[][8] = {{1, 29, 27, 3, 3, 2, 1, 32},  {1, 56, 56, 40, 3, 1, 1, 40},
                                 {2, 28, 28, 48, 3, 2, 0, 48}, {5, 14, 14, 96, 3, 1, 1, 96},
                                 {1, 7, 7, 960, 3, 1, 1, 960}, {1, 9, 9, 8, 5, 1, 2, 8}};
  for (int ci = 0; ci < 6; ci++) {
    const int *k = cases[ci];
    const int oh = (k[1] + 2 * k[6] - k[4]) / k[5] + 1, ow = (k[2] + 2 * k[6] - k[4]) / k[5] + 1;
    tt_shape s = {k[0], k[1], k[2], k[3], k[4], k[4], k[5], k[5], k[6], k[6], oh, ow, k[3]};
    const size_t xn = (size_t)s.n * s.h * s.w * s.c, yn = (size_t)s.n * oh * ow * s.c;
    float *x = rnd(xn, 2), *w = rnd((size_t)k[4] * k[4] * s.c, 1), *bias = rnd(s.c, 1);
    float *y0 = malloc(yn * sizeof *y0), *y1 = malloc(yn * sizeof *y1);
    tt_dwconv(&s, x, w, bias, TT_ACT_RELU6, y1);
    tt_dwconv_scalar(&s, x, w, bias, TT_ACT_RELU6, y0);
    same(y1, y0, yn, "depthwise");
    free(w), free(y0), free(y1);
    /* the same geometry as a full convolution to k[7] channels */
    s.oc = k[7];
    const size_t on = (size_t)s.n * oh * ow * s.oc;
    w = rnd((size_t)k[4] * k[4] * s.c * s.oc, 0.3f);
    y0 = malloc(on * sizeof *y0), y1 = malloc(on * sizeof *y1);
    if (s.c * s.oc <= 4096) { /* keep the scalar reference quick */
      float *b2 = rnd(s.oc, 1);
      tt_conv2d(&s, x, w, b2, TT_ACT_RELU, y1);
      tt_conv2d_scalar(&s, x, w, b2, TT_ACT_RELU, y0);
      same(y1, y0, on, "conv2d");
      free(b2);
    }
    free(x), free(w), free(bias), free(y0), free(y1);
  }
}

static void test_adam_split(void) {
  const size_t n = 100003; /* not a multiple of 4 or of the split */
  const tt_adam_cfg c = {0.9f, 0.999f, 1e-7f, 1e-3f, 1e-2f, 10.0f, 1000.0f, 1, 1};
  float *w0 = rnd(n, 1), *g = rnd(n, 1), *m0 = rnd(n, 0.1f), *v0 = rnd(n, 0.01f);
  for (size_t i = 0; i < n; i++) v0[i] = v0[i] * v0[i];
  float *w1 = malloc(n * sizeof *w1), *m1 = malloc(n * sizeof *m1), *v1 = malloc(n * sizeof *v1);
  memcpy(w1, w0, n * sizeof *w1), memcpy(m1, m0, n * sizeof *m1), memcpy(v1, v0, n * sizeof *v1);
  tt_adam(n, w1, g, m1, v1, &c);
  tt_adam_scalar(n, w0, g, m0, v0, &c);
  same(w1, w0, n, "adam weights");
  same(m1, m0, n, "adam moments");
  free(w0), free(g), free(m0), free(v0), free(w1), free(m1), free(v1);
}

/* The backward kernels cut into slices of channels, the elementwise ones into slices of
   elements (channel counts and lengths that are not multiples of 4: the scalar tails). */
static void test_backward_split(void) {
  const tt_shape s = {4, 7, 7, 1342, 3, 3, 1, 1, 1, 1, 7, 7, 1342};
  const size_t nx = (size_t)4 * 49 * 1342;
  float *x = rnd(nx, 1), *dy = rnd(nx, 1), *w = rnd(9 * 1342, 1);
  float *a = malloc(nx * sizeof *a), *b = malloc(nx * sizeof *b);
  float *fa = rnd(9 * 1342, 1), *fb = malloc(9 * 1342 * sizeof *fb);
  memcpy(fb, fa, 9 * 1342 * sizeof *fb);
  tt_dwconv_backward_input(&s, dy, w, a);
  tt_dwconv_backward_input_scalar(&s, dy, w, b);
  same(a, b, nx, "dwconv backward input");
  tt_dwconv_backward_filter(&s, x, dy, fa);
  tt_dwconv_backward_filter_scalar(&s, x, dy, fb);
  same(fa, fb, 9 * 1342, "dwconv backward filter");
  memcpy(b, x, nx * sizeof *b), memcpy(a, x, nx * sizeof *a);
  tt_acc(nx - 3, dy, a), tt_acc_scalar(nx - 3, dy, b);
  same(a, b, nx, "acc");
  tt_add(nx - 1, x, dy, a), tt_add_scalar(nx - 1, x, dy, b);
  same(a, b, nx, "add");
  for (size_t i = 0; i < nx; i++) a[i] = b[i] = x[i] * 4 + 3; /* across both relu6 kinks */
  float *ga = malloc(nx * sizeof *ga), *gb = malloc(nx * sizeof *gb);
  memcpy(ga, dy, nx * sizeof *ga), memcpy(gb, dy, nx * sizeof *gb);
  tt_act_backward(nx - 2, a, ga, TT_ACT_RELU6), tt_act_backward_scalar(nx - 2, b, gb, TT_ACT_RELU6);
  same(ga, gb, nx, "act backward");
  float *da = rnd(1342, 1), *db = malloc(1342 * sizeof *db);
  memcpy(db, da, 1342 * sizeof *db);
  tt_bias_backward(4 * 49, 1342, dy, da), tt_bias_backward_scalar(4 * 49, 1342, dy, db);
  same(da, db, 1342, "bias backward");
  tt_bias_act(4 * 49, 1342, a, w, TT_ACT_RELU6), tt_bias_act_scalar(4 * 49, 1342, b, w, TT_ACT_RELU6);
  same(a, b, nx, "bias + relu6");
  tt_zero(nx - 5, a), memset(b, 0, (nx - 5) * sizeof *b);
  same(a, b, nx, "zero");
  free(x), free(dy), free(w), free(a), free(b), free(fa), free(fb), free(ga), free(gb), free(da), free(db);
}

/* ---- a network: inference and a training step -------------------------------------- */

/* A stem (only for inference: its 3x3 convolution does not train), three inverted
   residual blocks, pooling and a dense layer. */
/* quant: weights on a uint8 grid, declared so (tt_net_quantized): pointwise convs then
   infer by their codes, and a block may be cut in stripes of rows (infer.c, block_cut). */
static tt_net *small_mobilenet(int stem_too, int quant) {
  tt_net *net = stem_too ? tt_net_create(40, 36, 3) : tt_net_create(20, 18, 16);
  tt_op_desc stem = {.type = TT_OP_CONV2D,
                     .in0 = 0,
                     .kh = 3,
                     .kw = 3,
                     .sh = 2,
                     .sw = 2,
                     .same = 1,
                     .channels = 16,
                     .act = TT_ACT_RELU6};
  tt_op_desc pw = {.type = TT_OP_CONV2D, .kh = 1, .kw = 1, .sh = 1, .sw = 1};
  tt_op_desc dw = {.type = TT_OP_DEPTHWISE, .kh = 3, .kw = 3, .same = 1, .act = TT_ACT_RELU6};
  int prev = 0, cin = 3;
  const int strides[] = {1, 2, 1}, outs[] = {16, 24, 24};
  float *w, *b;
  if (stem_too) {
    w = rnd(3 * 3 * 3 * 16, 0.5f), b = rnd(16, 0.1f);
    prev = tt_net_add(net, "stem", &stem, w, 3 * 3 * 3 * 16, b, 16);
    free(w), free(b);
  }
  cin = 16;
  for (int k = 0; k < 3; k++) {
    const int ce = cin * 6;
    pw.in0 = prev, pw.channels = ce, pw.act = TT_ACT_RELU6;
    w = rnd((size_t)cin * ce, 0.3f), b = rnd(ce, 0.1f);
    const int e = tt_net_add(net, "expand", &pw, w, (size_t)cin * ce, b, ce);
    free(w), free(b);
    dw.in0 = e, dw.sh = dw.sw = strides[k];
    w = rnd(9 * (size_t)ce, 0.5f), b = rnd(ce, 0.1f);
    const int d = tt_net_add(net, "dw", &dw, w, 9 * (size_t)ce, b, ce);
    free(w), free(b);
    pw.in0 = d, pw.channels = outs[k], pw.act = TT_ACT_NONE;
    w = rnd((size_t)ce * outs[k], 0.3f), b = rnd(outs[k], 0.1f);
    int p = tt_net_add(net, "project", &pw, w, (size_t)ce * outs[k], b, outs[k]);
    free(w), free(b);
    if (outs[k] == cin && strides[k] == 1) {
      tt_op_desc a = {.type = TT_OP_ADD, .in0 = prev, .in1 = p};
      p = tt_net_add(net, "add", &a, NULL, 0, NULL, 0);
    }
    prev = p, cin = outs[k];
  }
  tt_op_desc pool = {.type = TT_OP_AVGPOOL, .in0 = prev, .kh = 10, .kw = 9, .sh = 1, .sw = 1};
  prev = tt_net_add(net, "pool", &pool, NULL, 0, NULL, 0);
  CHECK(prev > 0, "pool: %s", tt_last_error());
  tt_op_desc fc = {.type = TT_OP_DENSE, .in0 = prev, .channels = 10};
  w = rnd((size_t)cin * 10, 0.3f), b = rnd(10, 0.1f);
  CHECK(tt_net_add(net, "dense", &fc, w, (size_t)cin * 10, b, 10) > 0, "net: %s", tt_last_error());
  free(w), free(b);
  const double qscale = 1.0 / 256, qmin = -0.5; /* codes 0..255, zero point 128 */
  for (int i = 1; quant && i < tt_net_count(net); i++) {
    tt_op *o = (tt_op *)tt_net_op(net, i);
    for (size_t k = 0; k < o->wn; k++) o->wt[k] = (float)((double)(tt_rng_next(&g_rng) % 256) * qscale + qmin);
    if (o->wn) CHECK(tt_net_quantized(net, i, qmin, qscale) == TT_OK, "quantized: %s", tt_last_error());
  }
  return net;
}

typedef struct {
  float *y, *dx, *g;
  size_t ny, nx, ng;
} run;

/* Inference of the net with a stem on x (n images, then 5, as many as the threads or
   more: whole images to each thread), of its quantized twin (1 image: cut in stripes;
   then 5), and a training step of the one without a stem on xt. */
static run run_nets(tt_net *full, tt_net *fullq, const float *x, tt_net *net, const float *xt, int n) {
  run r = {0};
  const tt_op *out = tt_net_op(net, tt_net_count(net) - 1);
  const int counts[4] = {n, 5, 1, 5};
  r.nx = (size_t)n * 20 * 18 * 16;
  for (int k = 0; k < 4; k++) r.ny += (size_t)counts[k] * out->c;
  r.y = malloc(r.ny * sizeof *r.y);
  for (int k = 0, at = 0; k < 4; k++) {
    const float *y = tt_net_forward(k < 2 ? full : fullq, x, counts[k], -1);
    CHECK(y != NULL, "forward: %s", tt_last_error());
    memcpy(r.y + at, y, (size_t)counts[k] * out->c * sizeof *r.y);
    at += counts[k] * out->c;
  }
  uint64_t rng = 3;
  const float *yt = tt_net_forward_train(net, xt, n, &rng);
  float *dy = malloc(r.ny * sizeof *dy);
  for (size_t i = 0; i < r.ny; i++) dy[i] = yt[i] * 0.1f - 0.05f * (float)(i % 3);
  r.dx = malloc(r.nx * sizeof *r.dx);
  tt_net_zero_grad(net);
  CHECK(tt_net_backward(net, dy, r.dx) == TT_OK, "backward: %s", tt_last_error());
  for (int i = 1; i < tt_net_count(net); i++) r.ng += tt_net_op(net, i)->wn;
  r.g = malloc(r.ng * sizeof *r.g);
  for (int i = 1, at = 0; i < tt_net_count(net); i++) {
    const tt_op *o = tt_net_op(net, i);
    if (o->wn) memcpy(r.g + at, o->gwt, o->wn * sizeof *r.g), at += (int)o->wn;
  }
  free(dy);
  return r;
}

/* A seeded training run (forward, backward, Adam, validation) of the net without a
   stem: its final weights. half: its inputs stored in half precision (for the others,
   rounded to it, so both runs see the same values). */
static float *train_weights(size_t *count, int half) {
  g_rng = 11;
  tt_net *net = small_mobilenet(0, 0);
  const int n = 20, per = 20 * 18 * 16;
  float *x = rnd((size_t)n * 2 * per, 1.0f);
  int labels[20];
  for (int i = 0; i < n; i++) labels[i] = i % 10;
  tt_train_cfg c;
  tt_train_defaults(&c);
  c.epochs = 3, c.batch = 5, c.val_fraction = 0.5f, c.patience = 0;
  uint16_t *xh = malloc((size_t)n * 2 * per * sizeof *xh);
  tt_f16_pack((size_t)n * 2 * per, x, xh);
  tt_f16_unpack((size_t)n * 2 * per, xh, x);
  tt_trainer *tr =
      half ? tt_trainer_new_half(net, &c, 10, xh, n, 2, labels) : tt_trainer_new(net, &c, 10, x, n, 2, labels);
  CHECK(tr != NULL, "trainer: %s", tt_last_error());
  tt_progress p;
  int rc;
  while ((rc = tt_trainer_run(tr, 3, &p)) >= 0 && rc != 2) {}
  CHECK(rc == 2, "training: %d %s", rc, tt_last_error());
  *count = 0;
  for (int i = 1; i < tt_net_count(net); i++) *count += tt_net_op(net, i)->wn + tt_net_op(net, i)->bn;
  float *w = malloc(*count * sizeof *w), *at = w;
  for (int i = 1; i < tt_net_count(net); i++) {
    const tt_op *o = tt_net_op(net, i);
    if (o->wn) memcpy(at, o->wt, o->wn * sizeof *w), at += o->wn;
    if (o->bn) memcpy(at, o->bias, o->bn * sizeof *w), at += o->bn;
  }
  tt_trainer_free(tr), tt_net_free(net), free(x), free(xh);
  return w;
}

/* ---- decoding on two threads at once -----------------------------------------------
   A decode keeps its allocation bound and stb's failed checks to itself (decode.c):
   threads decoding different files at once get the pixels one thread gets (and under
   ThreadSanitizer a bound shared between decodes is a reported race). */
typedef struct {
  const uint8_t *data;
  size_t len;
  tt_image want;
  int bad; /* checked by the caller after joining: CHECK is not thread-safe */
} decoding;

static void *decode_repeatedly(void *p) {
  decoding *d = p;
  for (int r = 0; r < 25; r++) {
    tt_image im;
    if (tt_image_decode(d->data, d->len, &im) != TT_OK || im.w != d->want.w || im.h != d->want.h ||
        memcmp(im.rgb, d->want.rgb, (size_t)im.w * im.h * 3) != 0)
      d->bad++;
    tt_image_free(&im);
  }
  return NULL;
}

static void test_decode_threads(void) {
  static const char *files[3] = {"chelsea_64.png", "chelsea_64_progressive.jpg", "chelsea_64_exif6.jpg"};
  decoding d[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    d[i].data = check_read_file(NULL, files[i], &d[i].len), d[i].bad = 0;
    CHECK(d[i].len && tt_image_decode(d[i].data, d[i].len, &d[i].want) == TT_OK, "%s: %s", files[i], tt_last_error());
  }
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, decode_repeatedly, &d[i]);
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    CHECK(d[i].bad == 0, "%s decoded on three threads at once: %d of 25 decodes differ", files[i], d[i].bad);
    tt_image_free(&d[i].want);
    free((void *)d[i].data);
  }
}

/* ---- unequal cores -------------------------------------------------------------------
   The caller's core shared with a busy thread, as on a phone's little core or a core
   another process keeps busy: work is split dynamically (tasks taken from a shared
   counter), so tasks land differently from run to run, and the results must not move. */
static int spin_stop;
static void *spin(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED)) {}
  return NULL;
}
static int pin_cpu0(pthread_t t) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(0, &s);
  return pthread_setaffinity_np(t, sizeof s, &s);
}

int main(void) {
  CHECK(tt_threads_supported(), "native builds support threads");
  pthread_t th[LENT];
  for (int i = 0; i < LENT; i++) pthread_create(&th[i], NULL, lend, &lent_rc[i]);
  while (tt_threads() < 1 + LENT) sched_yield();

  tt_net *full = small_mobilenet(1, 0), *fullq = small_mobilenet(1, 1), *net = small_mobilenet(0, 0);
  float *x = rnd((size_t)5 * 40 * 36 * 3, 1.0f), *xt = rnd((size_t)3 * 20 * 18 * 16, 1.0f);
  /* 20 output rows of the first block in 4 stripes, 10 of the others */
  tt_net_set_bands(full, 0, 2), tt_net_set_bands(fullq, 0, 2), tt_net_set_bands(net, 0, 2);
  run with = run_nets(full, fullq, x, net, xt, 3);
  size_t nk, nt;
  float *kwith = ksplit_products(&nk), *twith = train_weights(&nt, 0);
  cpu_set_t cpus;
  pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus);
  pthread_t spinner;
  pthread_create(&spinner, NULL, spin, NULL);
  CHECK(pin_cpu0(spinner) == 0 && pin_cpu0(pthread_self()) == 0, "pinning to cpu 0");
  run slow = run_nets(full, fullq, x, net, xt, 3);
  float *kslow = ksplit_products(&nk), *tslow = train_weights(&nt, 0);
  __atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
  pthread_join(spinner, NULL);
  pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
  test_pool();
  test_gemm_split();
  test_qgemm_split();
  test_spatial_split();
  test_adam_split();
  test_backward_split();
  test_decode_threads();

  tt_threads_stop();
  for (int i = 0; i < LENT; i++) {
    pthread_join(th[i], NULL);
    CHECK(lent_rc[i] == TT_OK, "lent thread %d returned %d", i, lent_rc[i]);
  }
  CHECK(tt_threads() == 1, "after stop: %d threads", tt_threads());
  run alone = run_nets(full, fullq, x, net, xt, 3);
  same(with.y, alone.y, alone.ny, "network output");
  same(with.dx, alone.dx, alone.nx, "input gradient");
  same(with.g, alone.g, alone.ng, "weight gradients");
  same(slow.y, alone.y, alone.ny, "network output, unequal cores");
  same(slow.dx, alone.dx, alone.nx, "input gradient, unequal cores");
  same(slow.g, alone.g, alone.ng, "weight gradients, unequal cores");
  float *kalone = ksplit_products(&nk);
  same(kwith, kalone, nk, "gemm with K cut into parts");
  same(kslow, kalone, nk, "gemm with K cut into parts, unequal cores");
  free(kwith), free(kalone), free(kslow);
  float *talone = train_weights(&nt, 0), *thalf = train_weights(&nt, 1);
  same(twith, talone, nt, "weights after a seeded training run");
  same(tslow, talone, nt, "weights after a seeded training run, unequal cores");
  free(tslow);
  CHECK(memcmp(thalf, talone, nt * sizeof *thalf) == 0, "half-precision inputs train differently");
  free(twith), free(talone), free(thalf);
  int hits[3] = {0};
  counting c = {hits, 0};
  tt_parallel(3, count_task, &c); /* no threads left: inline */
  CHECK(hits[0] == 1 && hits[1] == 1 && hits[2] == 1, "inline loop after stop");
  free(x), free(xt), tt_net_free(full), tt_net_free(fullq), tt_net_free(net);
  free(with.y), free(with.dx), free(with.g), free(alone.y), free(alone.dx), free(alone.g);
  free(slow.y), free(slow.dx), free(slow.g);
  return check_report("threads");
}
