/* Writes the seed corpora of fuzz_weights and fuzz_savefile (make fuzz-seeds):
     <dir>/weights/*   network descriptions in fuzz_weights.c's byte format: a tiny
                       MobileNetV2 block (conv+BN+ReLU6, depthwise, pointwise, residual
                       add, global pooling, dropout, dense, softmax) in each weight
                       encoding, one with Keras-style zero padding, one with raw weights;
     <dir>/savefile/*  saved models written by tt_save: a trainable head, a block with
                       a residual, a dropout + hidden-layer head.
   Seeds from Classifier.save() (the JS API on a real backbone) are added separately:
   tests/fuzz/make_js_seed.mjs. */
#include "net.h"
#include "tt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_dir;

static void write_file(const char *sub, const char *name, const void *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/%s", g_dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* ---- fuzz_weights descriptions -------------------------------------------------- */

typedef struct {
  uint8_t b[4096];
  size_t n;
} bytes;
static void put(bytes *s, int n, ...) {
  va_list ap;
  va_start(ap, n);
  for (int i = 0; i < n; i++) s->b[s->n++] = (uint8_t)va_arg(ap, int);
  va_end(ap);
}

/* Indices into fuzz_weights.c's tables. */
enum { K1 = 0, K3 = 2 | 2 << 3 };                /* kernel byte: 1x1, 3x3 */
enum { S1 = 0, S2 = 2 | 2 << 3, SAME = 1 << 6 }; /* stride byte */
enum { CH4 = 3, CH8 = 5 };                       /* channels byte */
enum { GEN = 1, RAW = 0 };                       /* weight source */

/* op header: type in0 in1 kernel stride pads channels act scale/offset delta bias bn name */
static void op(bytes *s, int type, int in0, int in1, int k, int st, int ch, int act, int so, int bias, int bn) {
  put(s, 13, type, in0, in1, k, st, 0, ch, act, so, 0, bias, bn, 0);
}
static void tensor(bytes *s, int enc, int src) { put(s, 3, enc, src, 0); }

static void block(bytes *s, int enc) {
  put(s, 4, 5, 5, 5, 9);                          /* 6x6x3 input, 9 ops */
  op(s, 1, 0, 0, K3, S2 | SAME, CH8, 2, 0, 1, 7); /* conv 3x3/2 + bias + BN(gamma, beta) + relu6 */
  tensor(s, enc, GEN), tensor(s, enc, GEN);
  tensor(s, 1, GEN), tensor(s, 1, GEN), tensor(s, 1, GEN), tensor(s, 1, GEN);
  op(s, 2, 1, 0, K3, S1 | SAME, 0, 2, 0, 0, 0); /* depthwise 3x3 + relu6 */
  tensor(s, enc, GEN);
  op(s, 1, 2, 0, K1, S1, CH8, 0, 0, 1, 0); /* pointwise conv (a gemm) */
  tensor(s, enc, GEN), tensor(s, enc, GEN);
  op(s, 4, 3, 1, 0, 0, 0, 0, 0, 0, 0);   /* residual add */
  op(s, 5, 4, 0, K3, S1, 0, 0, 0, 0, 0); /* 3x3 average pool (global) */
  op(s, 9, 5, 0, 0, 0, 0, 0, 2, 0, 0);   /* dropout 0.25 */
  op(s, 3, 6, 0, 0, 0, CH4, 1, 0, 1, 0); /* dense 4 + relu */
  tensor(s, enc, GEN), tensor(s, enc, GEN);
  op(s, 8, 7, 0, 0, 0, 0, 0, 3 | 1 << 3, 0, 0); /* affine x*0.5 + 1 */
  op(s, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0);          /* softmax */
  put(s, 4, 1, 0, 2, 3);                        /* batch 2, to the last op; slice 3..6 */
}

static void weight_seeds(void) {
  static const char *names[4] = {"block_f32", "block_f16", "block_u8", "block_u16"};
  for (int enc = 0; enc < 4; enc++) {
    bytes s = {{0}, 0};
    block(&s, enc);
    write_file("weights", names[enc], s.b, s.n);
  }
  /* Keras ZeroPadding2D + 'valid' conv (Conv1_pad of MobileNetV2), then dense on raw
     float32 bytes taken from the input. */
  bytes s = {{0}, 0};
  put(&s, 4, 3, 3, 2, 2);
  put(&s, 13, 1, 0, 0, K3, S2, 192 | 1 << 2, CH4, 2, 0, 0, 1, 0, 0); /* pads: 1 row at the bottom */
  tensor(&s, 2, GEN), tensor(&s, 0, GEN);
  op(&s, 3, 1, 0, 0, 0, 1, 0, 0, 1, 0); /* dense 2 on the flattened 2x2x4 */
  tensor(&s, 0, RAW);
  for (int i = 0; i < 32; i++) {
    float f = (float)(i % 5) * 0.125f - 0.25f;
    uint8_t *p = (uint8_t *)&f;
    put(&s, 4, p[0], p[1], p[2], p[3]);
  }
  tensor(&s, 0, RAW);
  put(&s, 8, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0); /* bias 1.0, -2.0 */
  put(&s, 4, 0, 0, 1, 1);
  write_file("weights", "pad_raw_f32", s.b, s.n);
}

/* ---- saved models ------------------------------------------------------------------ */

static float *ramp(size_t n, float scale) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = ((float)((i * 37) % 19) - 9.0f) * scale;
  return p;
}

static void add(tt_net *net, const char *name, tt_op_desc d, size_t wn, size_t bn) {
  float *w = wn ? ramp(wn, 0.05f) : NULL, *b = bn ? ramp(bn, 0.01f) : NULL;
  if (tt_net_add(net, name, &d, w, wn, b, bn) < 0) {
    fprintf(stderr, "%s: %s\n", name, tt_last_error());
    exit(1);
  }
  free(w), free(b);
}

static void save(tt_net *net, const char *meta, const char *name) {
  uint8_t *p;
  size_t n;
  if (tt_save(net, (const uint8_t *)meta, strlen(meta), &p, &n) < 0) {
    fprintf(stderr, "%s\n", tt_last_error());
    exit(1);
  }
  write_file("savefile", name, p, n);
  free(p);
  tt_net_free(net);
}

static void savefile_seeds(void) {
  /* A linear head on pooled features (what blocks=0 trains). */
  tt_net *net = tt_net_create(1, 1, 16);
  tt_op_desc d = {0};
  d.type = TT_OP_DENSE, d.in0 = 0, d.channels = 3;
  add(net, "head/logits", d, 16 * 3, 3);
  save(net, "{\"format\":\"tinytune-classifier\",\"version\":1,\"labels\":[\"a\",\"b\",\"c\"]}", "head.ttm");

  /* An inverted-residual block (expand, depthwise, project, add), pooled, a head. */
  net = tt_net_create(4, 4, 4);
  tt_op_desc e = {0};
  e.type = TT_OP_CONV2D, e.in0 = 0, e.kh = e.kw = e.sh = e.sw = 1, e.channels = 8, e.act = 2;
  add(net, "block_16_expand", e, 4 * 8, 8);
  tt_op_desc dw = {0};
  dw.type = TT_OP_DEPTHWISE, dw.in0 = 1, dw.kh = dw.kw = 3, dw.sh = dw.sw = 1, dw.same = 1, dw.act = 2;
  add(net, "block_16_depthwise", dw, 9 * 8, 8);
  tt_op_desc pr = {0};
  pr.type = TT_OP_CONV2D, pr.in0 = 2, pr.kh = pr.kw = pr.sh = pr.sw = 1, pr.channels = 4;
  add(net, "block_16_project", pr, 8 * 4, 4);
  tt_op_desc ad = {0};
  ad.type = TT_OP_ADD, ad.in0 = 3, ad.in1 = 0;
  add(net, "block_16_add", ad, 0, 0);
  tt_op_desc pool = {0};
  pool.type = TT_OP_AVGPOOL, pool.in0 = 4, pool.kh = pool.kw = 4, pool.sh = pool.sw = 1;
  add(net, "global_average_pooling2d", pool, 0, 0);
  tt_op_desc hd = {0};
  hd.type = TT_OP_DENSE, hd.in0 = 5, hd.channels = 2;
  add(net, "head/logits", hd, 4 * 2, 2);
  save(net, "{\"format\":\"tinytune-classifier\",\"version\":1,\"blocks\":1}", "block.ttm");

  /* Hidden ReLU layer, dropout, logits. */
  net = tt_net_create(1, 1, 8);
  tt_op_desc h = {0};
  h.type = TT_OP_DENSE, h.in0 = 0, h.channels = 6, h.act = 1;
  add(net, "head/hidden", h, 8 * 6, 6);
  tt_op_desc dr = {0};
  dr.type = TT_OP_DROPOUT, dr.in0 = 1, dr.scale = 0.2f;
  add(net, "head/dropout", dr, 0, 0);
  tt_op_desc lg = {0};
  lg.type = TT_OP_DENSE, lg.in0 = 2, lg.channels = 2;
  add(net, "head/logits", lg, 6 * 2, 2);
  tt_op_desc af = {0};
  af.type = TT_OP_AFFINE, af.in0 = 3, af.scale = 2.0f, af.offset = -1.0f;
  add(net, "scale", af, 0, 0);
  tt_op_desc sm = {0};
  sm.type = TT_OP_SOFTMAX, sm.in0 = 4;
  add(net, "probs", sm, 0, 0);
  save(net, "", "hidden_dropout.ttm");
}

int main(int argc, char **argv) {
  g_dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
  weight_seeds();
  savefile_seeds();
  return 0;
}
