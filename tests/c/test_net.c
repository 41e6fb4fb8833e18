/* Network-level checks: shape inference and its errors, batch-norm folding, and every
   op's backward pass against central finite differences of the loss, through the same
   tt_net_forward_train / tt_net_backward the trainer uses. */
#include "check.h"
#include "kernels/kernels.h"
#include "net.h"
#include "train.h"
#include "tt.h"
#include <stdlib.h>
#include <string.h>

static uint64_t g_rng = 42;
static float frand(void) { return tt_rng_uniform(&g_rng) * 2.0f - 1.0f; }
static float *rnd(size_t n, float scale) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
  return p;
}

/* With g_quant set, weights are uint8 codes as tfjs decodes them (q*scale + min, in
   double) and each op is declared quantized, so pointwise convs infer by tt_qgemm. */
static int g_quant;

static int add(tt_net *net, const char *name, tt_op_desc d, size_t wn, size_t bn, float scale) {
  float *w = wn ? rnd(wn, scale) : NULL, *b = bn ? rnd(bn, 0.1f) : NULL;
  const double qscale = scale / 128, qmin = -128 * qscale; /* zero point 128 */
  for (size_t k = 0; g_quant && k < wn; k++) w[k] = (float)((double)(tt_rng_next(&g_rng) % 256) * qscale + qmin);
  int i = tt_net_add(net, name, &d, w, wn, b, bn);
  free(w), free(b);
  CHECK(i > 0, "adding %s: %s", name, tt_last_error());
  if (g_quant && wn) CHECK(tt_net_quantized(net, i, qmin, qscale) == TT_OK, "quantized %s: %s", name, tt_last_error());
  return i;
}

/* Loss for gradient checks: softmax cross-entropy of the logits (dropout masks fixed by
   reseeding), or for nets ending in a softmax op, sum(r * y). */
typedef struct {
  tt_net *net;
  const float *x;
  int n;
  const int *labels;
  const float *r;
  int classes;
} lossctx;

static double loss_of(lossctx *c, float *dy) {
  uint64_t rng = 7;
  const float *y = tt_net_forward_train(c->net, c->x, c->n, &rng);
  if (c->r) {
    double l = 0;
    for (int i = 0; i < c->n * c->classes; i++) l += (double)c->r[i] * y[i];
    if (dy) memcpy(dy, c->r, (size_t)c->n * c->classes * sizeof(float));
    return l;
  }
  return tt_softmax_xent(y, c->labels, c->n, c->classes, 0.1f, dy);
}

/* Central differences of the loss for up to `most` entries of v against the analytic
   gradient g; returns how many disagree (the first few are printed). */
static int compare_some(lossctx *c, float *v, const float *g, size_t n, size_t most, const char *label, int *checked) {
  const float eps = 1e-3f;
  int bad = 0;
  for (size_t t = 0; t < n && t < most; t++) {
    size_t j = (t * 7919) % n;
    float keep = v[j];
    v[j] = keep + eps;
    double lp = loss_of(c, NULL);
    v[j] = keep - eps;
    double lm = loss_of(c, NULL);
    v[j] = keep;
    double num = (lp - lm) / (2 * eps), ana = g[j];
    ++*checked;
    if (fabs(num - ana) > 2e-2 * fmax(fabs(num), fabs(ana)) + 2e-3 && bad++ < 5)
      fprintf(stderr, "%s[%zu]: analytic %g, numeric %g\n", label, j, ana, num);
  }
  return bad;
}

/* Compares analytic and numeric gradients for some entries of every parameter and of the input. */
static void gradcheck(const char *what, lossctx *c, float *x_mut, size_t xn) {
  float *dy = malloc((size_t)c->n * c->classes * sizeof(float));
  float *dx = malloc(xn * sizeof(float));
  tt_net_zero_grad(c->net);
  loss_of(c, dy);
  CHECK(tt_net_backward(c->net, dy, dx) == TT_OK, "%s backward: %s", what, tt_last_error());
  int bad = 0, checked = 0;
  for (int i = 1; i < tt_net_count(c->net); i++) {
    tt_op *o = (tt_op *)tt_net_op(c->net, i);
    char label[128];
    snprintf(label, sizeof label, "%s: op '%s' weights", what, o->name);
    bad += compare_some(c, o->wt, o->gwt, o->wn, 24, label, &checked);
    snprintf(label, sizeof label, "%s: op '%s' bias", what, o->name);
    bad += compare_some(c, o->bias, o->gbias, o->bn, 24, label, &checked);
  }
  char label[128];
  snprintf(label, sizeof label, "%s: input", what);
  bad += compare_some(c, x_mut, dx, xn, 40, label, &checked);
  CHECK(bad == 0, "%s: %d of %d gradient entries differ from finite differences", what, bad, checked);
  free(dy), free(dx);
}

/* An inverted-residual block, pooling and a hidden-layer head: conv, depthwise (both
   strides), add, avgpool, dense, relu/relu6, dropout and the loss. */
static void test_block_gradients(void) {
  int n = 3, H = 5, W = 5, C = 4, K = 3;
  tt_net *net = tt_net_create(H, W, C);
  int e =
      add(net, "expand",
          (tt_op_desc){
              .type = TT_OP_CONV2D, .in0 = 0, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = 8, .act = TT_ACT_RELU6},
          4 * 8, 8, 0.8f);
  int d =
      add(net, "dw",
          (tt_op_desc){
              .type = TT_OP_DEPTHWISE, .in0 = e, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .same = 1, .act = TT_ACT_RELU6},
          9 * 8, 8, 0.6f);
  int p = add(net, "project",
              (tt_op_desc){.type = TT_OP_CONV2D, .in0 = d, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = C}, 8 * 4, 4,
              0.5f);
  int a = add(net, "add", (tt_op_desc){.type = TT_OP_ADD, .in0 = 0, .in1 = p}, 0, 0, 0);
  int d2 =
      add(net, "dw2",
          (tt_op_desc){
              .type = TT_OP_DEPTHWISE, .in0 = a, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .same = 1, .act = TT_ACT_RELU6},
          9 * 4, 4, 0.6f);
  CHECK(tt_net_op(net, d2)->h == 3 && tt_net_op(net, d2)->w == 3, "SAME stride 2 of 5 gives 3");
  int pool =
      add(net, "pool", (tt_op_desc){.type = TT_OP_AVGPOOL, .in0 = d2, .kh = 3, .kw = 3, .sh = 3, .sw = 3}, 0, 0, 0);
  int h = add(net, "hidden", (tt_op_desc){.type = TT_OP_DENSE, .in0 = pool, .channels = 6, .act = TT_ACT_RELU}, 4 * 6,
              6, 0.8f);
  int dr = add(net, "dropout", (tt_op_desc){.type = TT_OP_DROPOUT, .in0 = h, .scale = 0.3f}, 0, 0, 0);
  add(net, "logits", (tt_op_desc){.type = TT_OP_DENSE, .in0 = dr, .channels = K}, 6 * K, K, 0.8f);
  size_t xn = (size_t)n * H * W * C;
  float *x = rnd(xn, 2.0f);
  int labels[3] = {0, 2, 1};
  lossctx c = {net, x, n, labels, NULL, K};
  gradcheck("block", &c, x, xn);
  free(x);
  tt_net_free(net);
}

/* The ops a trainable part rarely has, checked all the same: affine, standalone act, softmax. */
static void test_misc_gradients(void) {
  int n = 2, C = 5, K = 4;
  tt_net *net = tt_net_create(1, 1, C);
  int a = add(net, "affine", (tt_op_desc){.type = TT_OP_AFFINE, .in0 = 0, .scale = 2.0f, .offset = -1.0f}, 0, 0, 0);
  int r = add(net, "relu6", (tt_op_desc){.type = TT_OP_ACT, .in0 = a, .act = TT_ACT_RELU6}, 0, 0, 0);
  int dn = add(net, "dense", (tt_op_desc){.type = TT_OP_DENSE, .in0 = r, .channels = K}, C * K, K, 0.8f);
  add(net, "softmax", (tt_op_desc){.type = TT_OP_SOFTMAX, .in0 = dn}, 0, 0, 0);
  float *x = rnd((size_t)n * C, 3.0f), *rr = rnd((size_t)n * K, 1.0f);
  lossctx c = {net, x, n, NULL, rr, K};
  gradcheck("misc", &c, x, (size_t)n * C);
  free(x), free(rr);
  tt_net_free(net);
}

/* A MobileNetV3 block: expand, hard-swish, 5x5 depthwise at stride 2, hard-swish,
   squeeze-and-excitation (mean, 1x1 convs, hard-sigmoid, gate), project; then PReLU
   (MobileFaceNet's), a global mean (the pooled feature) and a dense head. Also inference against the training forward. */
static void test_mnv3_gradients(void) {
  int n = 2, H = 6, W = 5, C = 4, E = 8, K = 3;
  const float a = 0.1666259765625f, b = 3.0f; /* 1/6 as float16 stores it, and 3 */
  tt_net *net = tt_net_create(H, W, C);
  int e = add(net, "expand",
              (tt_op_desc){.type = TT_OP_CONV2D, .in0 = 0, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = E}, C * E, E,
              0.8f);
  int h1 = add(net, "hswish1", (tt_op_desc){.type = TT_OP_ACT, .in0 = e, .act = TT_ACT_HSWISH, .scale = a, .offset = b},
               0, 0, 0);
  int d =
      add(net, "dw5x5", (tt_op_desc){.type = TT_OP_DEPTHWISE, .in0 = h1, .kh = 5, .kw = 5, .sh = 2, .sw = 2, .same = 1},
          25 * E, E, 0.5f);
  CHECK(tt_net_op(net, d)->h == 3 && tt_net_op(net, d)->w == 3 && tt_net_op(net, d)->pt == 1,
        "5x5 SAME stride 2 of 6: 3 rows, 1 padded on top");
  int h2 = add(net, "hswish2", (tt_op_desc){.type = TT_OP_ACT, .in0 = d, .act = TT_ACT_HSWISH, .scale = a, .offset = b},
               0, 0, 0);
  int m = add(net, "se/mean", (tt_op_desc){.type = TT_OP_MEAN, .in0 = h2}, 0, 0, 0);
  CHECK(tt_net_op(net, m)->h == 1 && tt_net_op(net, m)->c == E, "mean is 1x1xC");
  int s1 =
      add(net, "se/conv",
          (tt_op_desc){
              .type = TT_OP_CONV2D, .in0 = m, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = 4, .act = TT_ACT_RELU},
          E * 4, 4, 0.8f);
  int s2 = add(net, "se/conv_1",
               (tt_op_desc){.type = TT_OP_CONV2D, .in0 = s1, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = E}, 4 * E,
               E, 0.8f);
  int hs = add(net, "se/hsigmoid",
               (tt_op_desc){.type = TT_OP_ACT, .in0 = s2, .act = TT_ACT_HSIGMOID, .scale = a, .offset = b}, 0, 0, 0);
  int g = add(net, "se/gate", (tt_op_desc){.type = TT_OP_GATE, .in0 = h2, .in1 = hs}, 0, 0, 0);
  int p = add(net, "project",
              (tt_op_desc){.type = TT_OP_CONV2D, .in0 = g, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = C}, E * C, C,
              0.5f);
  int pr = add(net, "prelu", (tt_op_desc){.type = TT_OP_PRELU, .in0 = p}, C, 0, 0.5f);
  int pool = add(net, "pool", (tt_op_desc){.type = TT_OP_MEAN, .in0 = pr}, 0, 0, 0);
  add(net, "logits", (tt_op_desc){.type = TT_OP_DENSE, .in0 = pool, .channels = K}, C * K, K, 0.8f);
  size_t xn = (size_t)n * H * W * C;
  float *x = rnd(xn, 3.0f);
  int labels[2] = {2, 0};
  lossctx c = {net, x, n, labels, NULL, K};
  gradcheck("mnv3 block", &c, x, xn);
  /* inference (op by op, recycled buffers) equals the training forward */
  uint64_t rng = 1;
  int last = tt_net_count(net) - 1;
  float want[2 * 3];
  memcpy(want, tt_net_forward_train(net, x, n, &rng), sizeof want);
  const float *got = tt_net_forward(net, x, n, last);
  CHECK(got && check_maxrel(got, want, (size_t)n * K) < 1e-6f, "mnv3 block: inference vs training forward");
  /* a trainable part cut inside the block (as fine-tuning K blocks does) copies the gate's second input */
  tt_net *tail = tt_net_create(3, 3, E);
  CHECK(tt_net_append(tail, net, h2, last) == TT_OK, "cut after the depthwise: %s", tt_last_error());
  CHECK(tt_net_op(tail, 6)->d.type == TT_OP_GATE && tt_net_op(tail, 6)->d.in0 == 1 && tt_net_op(tail, 6)->d.in1 == 5,
        "the gate's inputs remapped");
  tt_net_free(tail);
  tail = tt_net_create(1, 1, E);
  CHECK(tt_net_append(tail, net, s1, last) == TT_EINVAL,
        "a cut inside squeeze-and-excitation (the gate reads from before it) is refused");
  tt_net_free(tail);
  free(x);
  tt_net_free(net);
}

static void test_shape_errors(void) {
  tt_net *net = tt_net_create(8, 8, 3);
  float w[3 * 3 * 3 * 4] = {0};
  tt_op_desc d = {.type = TT_OP_CONV2D, .in0 = 0, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .same = 1, .channels = 4};
  CHECK(tt_net_add(net, "stem", &d, w, 3 * 3 * 3 * 4 - 1, NULL, 0) == TT_EINVAL && strstr(tt_last_error(), "stem"),
        "short kernel refused with the op's name: %s", tt_last_error());
  CHECK(tt_net_add(net, "stem", &d, w, 3 * 3 * 3 * 4, NULL, 0) == 1, "stem added");
  CHECK(tt_net_op(net, 1)->h == 4 && tt_net_op(net, 1)->pt == 0,
        "SAME stride 2 on 8: 4 rows, no top padding (TF puts the odd pad at the bottom)");
  tt_op_desc bad_in = {.type = TT_OP_ACT, .in0 = 9, .act = TT_ACT_RELU};
  CHECK(tt_net_add(net, "x", &bad_in, NULL, 0, NULL, 0) == TT_EINVAL, "reading a future op refused");
  tt_op_desc addd = {.type = TT_OP_ADD, .in0 = 0, .in1 = 1};
  CHECK(tt_net_add(net, "sum", &addd, NULL, 0, NULL, 0) == TT_EINVAL && strstr(tt_last_error(), "shapes differ"),
        "add of different shapes refused: %s", tt_last_error());
  tt_op_desc big = {.type = TT_OP_CONV2D, .in0 = 1, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = -5};
  CHECK(tt_net_add(net, "neg", &big, w, 0, NULL, 0) == TT_EINVAL, "negative channels refused");
  tt_op_desc k9 = {.type = TT_OP_DEPTHWISE, .in0 = 1, .kh = 9, .kw = 9, .sh = 1, .sw = 1};
  CHECK(tt_net_add(net, "toolarge", &k9, w, 9 * 9 * 4, NULL, 0) == TT_EINVAL && strstr(tt_last_error(), "does not fit"),
        "kernel larger than its input refused: %s", tt_last_error());
  tt_op_desc gate = {.type = TT_OP_GATE, .in0 = 1, .in1 = 0};
  CHECK(tt_net_add(net, "gate", &gate, NULL, 0, NULL, 0) == TT_EINVAL && strstr(tt_last_error(), "not 1x1x4"),
        "a gate that is not 1x1xC refused: %s", tt_last_error());
  tt_op_desc hsconv = {
      .type = TT_OP_CONV2D, .in0 = 1, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = 4, .act = TT_ACT_HSWISH};
  CHECK(tt_net_add(net, "hsconv", &hsconv, w, 16, NULL, 0) == TT_EINVAL && strstr(tt_last_error(), "only as an act op"),
        "hard-swish fused into a conv refused: %s", tt_last_error());
  tt_op_desc hsnan = {.type = TT_OP_ACT, .in0 = 1, .act = TT_ACT_HSWISH, .scale = NAN, .offset = 3};
  CHECK(tt_net_add(net, "hsnan", &hsnan, NULL, 0, NULL, 0) == TT_EINVAL, "hard-swish with a NaN constant refused");
  CHECK(tt_net_create(0, 5, 3) == NULL, "empty input refused");
  CHECK(tt_net_create(100000, 100000, 3) == NULL, "huge input refused");
  tt_net_free(net);
}

static void test_fold_bn(void) {
  tt_net *net = tt_net_create(2, 2, 2);
  float w[4] = {1, 2, 3, 4}; /* [cin=2][cout=2] */
  tt_op_desc d = {.type = TT_OP_CONV2D, .in0 = 0, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = 2};
  tt_net_add(net, "c", &d, w, 4, NULL, 0);
  float gamma[2] = {2, 0.5f}, beta[2] = {1, -1}, mean[2] = {0.5f, 1}, var[2] = {3, 0.25f};
  CHECK(tt_net_fold_bn(net, 1, gamma, beta, mean, var, 2, 1.0f) == TT_OK, "fold");
  float x[8] = {1, -1, 0.5f, 2, 0, 0, -3, 1}, y[8];
  const float *out = tt_net_forward(net, x, 1, -1);
  memcpy(y, out, sizeof y);
  for (int p = 0; p < 4; p++)
    for (int k = 0; k < 2; k++) {
      float conv = x[p * 2] * w[k] + x[p * 2 + 1] * w[2 + k];
      float want = (conv - mean[k]) * gamma[k] / sqrtf(var[k] + 1.0f) + beta[k];
      CHECK(fabsf(y[p * 2 + k] - want) < 1e-5f, "folded BN pixel %d channel %d: %g vs %g", p, k, y[p * 2 + k], want);
    }
  float badvar[2] = {-2, 1};
  CHECK(tt_net_fold_bn(net, 1, gamma, beta, mean, badvar, 2, 1.0f) == TT_EINVAL, "negative variance refused");
  CHECK(tt_net_fold_bn(net, 1, gamma, beta, mean, var, 3, 1.0f) == TT_EINVAL, "channel count mismatch refused");
  tt_net_free(net);
}

/* Inference recycles buffers and folds a projection's residual add into its GEMM; the
   training forward does neither. Both must give the same activations for every prefix
   of a net with residual blocks of each kind: shortcut from the net's input (not
   folded), from an op (folded, with and without an activation on the add), the add
   reading the projection as either operand, and a projection read twice (not folded). */
static void test_inference_matches_training(void) {
  int n = 2, H = 6, W = 5, C = 12;
  tt_net *net = tt_net_create(H, W, C);
  tt_op_desc pw = {.type = TT_OP_CONV2D, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = C};
  tt_op_desc dw = {.type = TT_OP_DEPTHWISE, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .same = 1, .act = TT_ACT_RELU6};
  int prev = 0;
  for (int b = 0; b < 4; b++) {
    pw.in0 = prev, pw.channels = 24, pw.act = TT_ACT_RELU6;
    int e = add(net, "expand", pw, (size_t)C * 24, 24, 0.5f);
    dw.in0 = e;
    int d = add(net, "dw", dw, 9 * 24, 24, 0.5f);
    pw.in0 = d, pw.channels = C, pw.act = TT_ACT_NONE;
    int p = add(net, "project", pw, 24 * (size_t)C, C, 0.5f);
    tt_op_desc a = {
        .type = TT_OP_ADD, .in0 = b & 1 ? p : prev, .in1 = b & 1 ? prev : p, .act = b == 2 ? TT_ACT_RELU : TT_ACT_NONE};
    prev = add(net, "add", a, 0, 0, 0);
    if (b == 3) { /* the projection read again after the add: must not be overwritten */
      tt_op_desc a2 = {.type = TT_OP_ADD, .in0 = prev, .in1 = p};
      prev = add(net, "add2", a2, 0, 0, 0);
    }
  }
  size_t xn = (size_t)n * H * W * C;
  float *x = rnd(xn, 2.0f);
  uint64_t rng = 1;
  const float *yt = tt_net_forward_train(net, x, n, &rng);
  CHECK(yt != NULL, "training forward");
  int last = tt_net_count(net) - 1;
  float *ref = malloc(xn * sizeof *ref);
  memcpy(ref, yt, xn * sizeof *ref);
  for (int upto = last; upto >= 1; upto--) {
    const tt_op *o = tt_net_op(net, upto);
    size_t sz = (size_t)n * o->h * o->w * o->c;
    float *want = malloc(sz * sizeof *want);
    /* The training forward keeps every op's output; read op upto's through a net cut there. */
    tt_net *cut = tt_net_create(H, W, C);
    CHECK(tt_net_append(cut, net, 1, upto) == TT_OK, "cut at %d", upto);
    rng = 1;
    memcpy(want, tt_net_forward_train(cut, x, n, &rng), sz * sizeof *want);
    const float *got = tt_net_forward(net, x, n, upto);
    CHECK(got && check_maxrel(got, want, sz) < 1e-5f, "inference vs training forward up to op %d ('%s'): maxrel %g",
          upto, o->name, got ? check_maxrel(got, want, sz) : -1.0);
    if (upto == last) CHECK(check_maxrel(want, ref, sz) == 0, "cut net equals full net");
    tt_net_free(cut);
    free(want);
  }
  free(ref), free(x);
  tt_net_free(net);
}

/* tt_net_zero_grad defers zeroing dense and pointwise weight gradients to the next
   backward, whose GEMM then overwrites instead of accumulating: accumulation over two
   backward passes, a fresh zero, and a stale gradient from before must all come out as
   if the memory had been zeroed. */
static void test_zero_grad(void) {
  int n = 3, C = 6, K = 3;
  tt_net *net = tt_net_create(2, 2, C);
  int e =
      add(net, "pw",
          (tt_op_desc){
              .type = TT_OP_CONV2D, .in0 = 0, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = 8, .act = TT_ACT_RELU},
          C * 8, 8, 0.8f);
  int d = add(net, "dw", (tt_op_desc){.type = TT_OP_DEPTHWISE, .in0 = e, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .same = 1},
              9 * 8, 8, 0.6f);
  add(net, "logits", (tt_op_desc){.type = TT_OP_DENSE, .in0 = d, .channels = K}, 2 * 2 * 8 * K, K, 0.5f);
  float *x = rnd((size_t)n * 4 * C, 1.0f), *dy = malloc((size_t)n * K * sizeof(float));
  int labels[3] = {1, 0, 2};
  lossctx c = {net, x, n, labels, NULL, K};
  loss_of(&c, dy);
  tt_net_zero_grad(net); /* before any backward: the arena exists, zeroing is deferred */
  tt_net_backward(net, dy, NULL);
  float *g1[4];
  for (int i = 1; i <= 3; i++) {
    const tt_op *o = tt_net_op(net, i);
    g1[i] = malloc(o->wn * sizeof(float));
    memcpy(g1[i], o->gwt, o->wn * sizeof(float));
  }
  tt_net_backward(net, dy, NULL); /* accumulates: 2 x */
  int ok2 = 1, ok1 = 1;
  for (int i = 1; i <= 3; i++) {
    const tt_op *o = tt_net_op(net, i);
    for (size_t j = 0; j < o->wn; j++) ok2 &= fabsf(o->gwt[j] - 2 * g1[i][j]) <= 1e-5f * (1 + fabsf(g1[i][j]));
  }
  tt_net_zero_grad(net);
  tt_net_backward(net, dy, NULL); /* the stale 2 x is gone */
  for (int i = 1; i <= 3; i++) {
    const tt_op *o = tt_net_op(net, i);
    ok1 &= memcmp(o->gwt, g1[i], o->wn * sizeof(float)) == 0;
    free(g1[i]);
  }
  CHECK(ok2, "two backward passes accumulate");
  CHECK(ok1, "zero_grad then backward gives the single-pass gradient exactly");
  tt_net_zero_grad(net);
  float w1[1] = {1};
  tt_op_desc act = {.type = TT_OP_ACT, .in0 = 3, .act = TT_ACT_RELU};
  CHECK(tt_net_add(net, "after", &act, w1, 0, NULL, 0) > 0, "add after zero_grad");
  int zero = 1;
  for (int i = 1; i <= 3; i++) {
    const tt_op *o = tt_net_op(net, i);
    for (size_t j = 0; j < o->wn; j++) zero &= o->gwt[j] == 0.0f;
  }
  CHECK(zero, "gradients due to be zeroed are zero once the training arena is dropped");
  (void)d;
  free(x), free(dy);
  tt_net_free(net);
}

/* Inference runs expand -> depthwise -> project blocks fused, a band of rows at a time
   (infer.c, run_block): images large enough for several bands, both strides, a block
   without expansion, odd sizes, a folded residual add reading the block's own input,
   and one whose expansion is also read elsewhere (not fused). Compared with the
   training forward, which runs op by op. */
/* quant: pointwise convs by their integer codes, whose rounding of activations (~1e-5 of
   each row's range per layer) the tolerance allows for; training still runs in float. */
static void test_fused_blocks(int quant) {
  const float tol = quant ? 2e-3f : 1e-5f;
  g_quant = quant;
  int n = 2, H = 13, W = 11, C = 8;
  tt_net *net = tt_net_create(H, W, C);
  tt_net_set_bands(net, 2000, 0); /* bands of 1 to 5 rows at these sizes */
  tt_op_desc pw = {.type = TT_OP_CONV2D, .kh = 1, .kw = 1, .sh = 1, .sw = 1};
  tt_op_desc dw = {.type = TT_OP_DEPTHWISE, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .same = 1, .act = TT_ACT_RELU6};
  /* no expansion: depthwise straight on the input, then project */
  dw.in0 = 0;
  int d0 = add(net, "dw0", dw, 9 * (size_t)C, C, 0.5f);
  pw.in0 = d0, pw.channels = 12, pw.act = TT_ACT_NONE;
  int prev = add(net, "project0", pw, (size_t)C * 12, 12, 0.5f);
  const int strides[3] = {2, 1, 1}, widths[3] = {48, 20, 36};
  for (int b = 0; b < 3; b++) {
    const int ce = widths[b], cin = tt_net_op(net, prev)->c;
    pw.in0 = prev, pw.channels = ce, pw.act = TT_ACT_RELU6;
    int e = add(net, "expand", pw, (size_t)cin * ce, ce, 0.2f);
    dw.in0 = e, dw.sh = dw.sw = strides[b];
    int d = add(net, "dw", dw, 9 * (size_t)ce, ce, 0.5f);
    pw.in0 = d, pw.channels = 12, pw.act = TT_ACT_NONE;
    int p = add(net, "project", pw, (size_t)ce * 12, 12, 0.2f);
    if (b > 0) {
      tt_op_desc a = {.type = TT_OP_ADD, .in0 = prev, .in1 = p};
      p = add(net, "add", a, 0, 0, 0);
    }
    prev = p;
  }
  /* an expansion also read by a later op: the block must not be fused */
  pw.in0 = prev, pw.channels = 16, pw.act = TT_ACT_RELU;
  int e = add(net, "expand_shared", pw, 12 * 16, 16, 0.5f);
  dw.in0 = e, dw.sh = dw.sw = 1;
  int d = add(net, "dw_shared", dw, 9 * 16, 16, 0.5f);
  pw.in0 = d, pw.channels = 16, pw.act = TT_ACT_NONE;
  int p = add(net, "project_shared", pw, 16 * 16, 16, 0.5f);
  tt_op_desc a = {.type = TT_OP_ADD, .in0 = e, .in1 = p};
  add(net, "add_shared", a, 0, 0, 0);
  const int last = tt_net_count(net) - 1;
  size_t xn = (size_t)n * H * W * C;
  float *x = rnd(xn, 2.0f);
  uint64_t rng = 1;
  const float *yt = tt_net_forward_train(net, x, n, &rng);
  const tt_op *o = tt_net_op(net, last);
  size_t sz = (size_t)n * o->h * o->w * o->c;
  float *want = malloc(sz * sizeof *want);
  memcpy(want, yt, sz * sizeof *want);
  const float *got = tt_net_forward(net, x, n, -1);
  CHECK(got && check_maxrel(got, want, sz) < tol, "fused blocks vs op by op (quant %d): maxrel %g", quant,
        got ? check_maxrel(got, want, sz) : -1.0);
  if (quant) { /* (test_quantized shows the codes are what inference multiplies by) */
    const tt_op *pj = tt_net_op(net, 2);
    CHECK(pj->qw != NULL, "'%s' has no integer codes", pj->name);
    /* Training ignores the codes: a copy (float weights only) trains on the very same
       forward, bit for bit. */
    tt_net *copy = tt_net_create(H, W, C);
    CHECK(tt_net_append(copy, net, 1, last) == TT_OK, "copy");
    rng = 1;
    const float *tc = tt_net_forward_train(copy, x, n, &rng);
    CHECK(tc && memcmp(tc, want, sz * sizeof *want) == 0, "training forward differs from a float copy's");
    tt_net_free(copy);
  }
  for (int upto = 1; upto < last; upto++) { /* every prefix: some end inside a block */
    tt_net *cut = tt_net_create(H, W, C);
    CHECK(tt_net_append(cut, net, 1, upto) == TT_OK, "cut at %d", upto);
    const tt_op *u = tt_net_op(net, upto);
    size_t usz = (size_t)n * u->h * u->w * u->c;
    rng = 1;
    float *w2 = malloc(usz * sizeof *w2);
    memcpy(w2, tt_net_forward_train(cut, x, n, &rng), usz * sizeof *w2);
    const float *g2 = tt_net_forward(net, x, n, upto);
    CHECK(g2 && check_maxrel(g2, w2, usz) < tol, "prefix to op %d ('%s', quant %d): maxrel %g", upto, u->name, quant,
          g2 ? check_maxrel(g2, w2, usz) : -1.0);
    for (int k = 1; k < tt_net_count(cut); k++) CHECK(tt_net_op(cut, k)->qw == NULL, "a copy carries integer codes");
    free(w2);
    tt_net_free(cut);
  }
  free(want), free(x);
  tt_net_free(net);
  g_quant = 0;
}

/* tt_net_quantized: what it refuses, what it ignores, and codes through a BN fold. */
static void test_quantized(void) {
  tt_net *net = tt_net_create(3, 3, 4);
  tt_op_desc pw = {.type = TT_OP_CONV2D, .in0 = 0, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .channels = 6};
  float w[24], b[6] = {0.1f, -0.2f, 0.3f, 0, 0.5f, -0.6f};
  const double qscale = 1.0 / 255, qmin = -120 * qscale;
  for (int k = 0; k < 24; k++) w[k] = (float)((double)((k * 37) % 256) * qscale + qmin);
  CHECK(tt_net_add(net, "pw", &pw, w, 24, b, 6) == 1, "add");
  w[5] += 1e-3f; /* off the grid */
  CHECK(tt_net_add(net, "pw_off", &pw, w, 24, b, 6) == 2, "add");
  w[5] -= 1e-3f;
  tt_op_desc dw = {.type = TT_OP_DEPTHWISE, .in0 = 0, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .same = 1};
  float wd[36];
  for (int k = 0; k < 36; k++) wd[k] = (float)((double)(k * 7 % 256) * qscale + qmin);
  CHECK(tt_net_add(net, "dw", &dw, wd, 36, NULL, 0) == 3, "add");
  CHECK(tt_net_quantized(net, 2, qmin, qscale) == TT_EFORMAT && strstr(tt_last_error(), "pw_off"),
        "off-grid weights refused, naming the op: %s", tt_last_error());
  CHECK(tt_net_op(net, 2)->qw == NULL, "a refused op keeps no codes");
  CHECK(tt_net_quantized(net, 1, qmin, -1) == TT_EINVAL, "a negative scale refused");
  CHECK(tt_net_quantized(net, 3, qmin, qscale) == TT_OK && tt_net_op(net, 3)->qw == NULL, "a depthwise op ignores it");
  CHECK(tt_net_quantized(net, 9, qmin, qscale) == TT_EINVAL, "a missing op refused");
  CHECK(tt_net_quantized(net, 1, qmin + 0.5 * qscale, qscale) == TT_OK && tt_net_op(net, 1)->qw == NULL,
        "a zero point between two codes is ignored");
  CHECK(tt_net_quantized(net, 1, qmin, qscale) == TT_OK && tt_net_op(net, 1)->qw, "quantized");
  /* Folding BN scales the codes' factors with the weights: inference by codes stays
     within rounding of the float twin folded the same way. */
  tt_net *twin = tt_net_create(3, 3, 4);
  CHECK(tt_net_add(twin, "pw", &pw, w, 24, b, 6) == 1, "add");
  float gamma[6] = {2, 0.5f, 1, 3, 0.25f, 1}, beta[6] = {1, -1, 0, 0.5f, 0, 2};
  float mean[6] = {0.5f, 1, 0, -1, 2, 0}, var[6] = {3, 0.25f, 1, 2, 0.5f, 4};
  CHECK(tt_net_fold_bn(net, 1, gamma, beta, mean, var, 6, 1e-3f) == TT_OK, "fold");
  CHECK(tt_net_fold_bn(twin, 1, gamma, beta, mean, var, 6, 1e-3f) == TT_OK, "fold");
  float x[36];
  for (int k = 0; k < 36; k++) x[k] = frand() * 3;
  float got[54];
  memcpy(got, tt_net_forward(net, x, 1, 1), sizeof got);
  const float *want = tt_net_forward(twin, x, 1, 1);
  CHECK(check_maxrel(got, want, 54) < 1e-3f && check_maxrel(got, want, 54) > 0, "folded, by codes vs float: maxrel %g",
        check_maxrel(got, want, 54));
  tt_net *late = tt_net_create(3, 3, 4);
  CHECK(tt_net_add(late, "pw_folded", &pw, w, 24, b, 6) == 1, "add");
  CHECK(tt_net_fold_bn(late, 1, gamma, beta, mean, var, 6, 1e-3f) == TT_OK, "fold");
  CHECK(tt_net_quantized(late, 1, qmin, qscale) == TT_EFORMAT, "codes declared after a fold refused");
  tt_net_free(late);
  tt_net_free(twin);
  tt_net_free(net);
}

int main(void) {
  test_shape_errors();
  test_fold_bn();
  test_block_gradients();
  test_misc_gradients();
  test_mnv3_gradients();
  test_inference_matches_training();
  test_zero_grad();
  test_fused_blocks(0);
  test_fused_blocks(1);
  test_quantized();
  return check_report("net");
}
