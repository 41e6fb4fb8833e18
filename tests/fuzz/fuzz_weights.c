/* libFuzzer target: a network described by the input, built op by op exactly as the JS
   loader builds one from a tfjs model (tt_net_create, tt_weights_decode of each tensor
   in a fuzzed encoding, tt_net_add with a fuzzed descriptor, tt_net_fold_bn), then run:
   tt_net_forward (to a fuzzed layer, twice), tt_net_forward_train + tt_net_backward,
   tt_save/tt_load, and tt_net_append of a fuzzed range. Shapes stay tiny (inputs of at
   most 6x6x4, a dozen ops) so each execution takes microseconds.

   Input format (every read past the end yields 0, so any byte string is valid):
     3 bytes   input h, w, c (through small tables that include 0, negative and huge)
     1 byte    op count (mod 13)
     per op    type, in0, in1, kh, kw, sh, sw, same, pads, channels, act, scale/offset,
               weight encoding, quantisation, weight source, count delta, bias mode,
               batch-norm mode, name mode   (one byte each, see read_op)
     then      batch size, forward target, append range
   Weight bytes come from the input itself (raw: fuzzed floats, NaN and all) or from a
   generator seeded by the input (well-formed values), as the weight-source byte says.

   Invariants (a violation aborts):
     - every failing call returns a negative TT_E* code (or NULL) with a non-empty
       message; a successful tt_net_add returns the new op's index;
     - forward is deterministic (bit for bit) whatever the layer it stops at, and agrees
       with the training forward pass to rounding (no dropout; see close_floats);
     - a built net survives tt_save -> tt_load unchanged, and the reloaded net computes
       the same outputs. */
#include "net.h"
#include "tt.h"
#include "weights.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                                                     \
  do {                                                                                                                 \
    if (!(c)) {                                                                                                        \
      fprintf(stderr, "fuzz_weights: %s:%d: invariant failed: %s (last error: %s)\n", __FILE__, __LINE__, #c,          \
              tt_last_error());                                                                                        \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

#define MAX_ELEMS (1 << 14) /* per weight tensor; more is refused by the harness */

typedef struct {
  const uint8_t *p;
  size_t n, at;
} rd;

static unsigned byte(rd *r) { return r->at < r->n ? r->p[r->at++] : 0; }

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int failed(int rc) { return rc < 0 && rc >= TT_ESTATE && tt_last_error()[0]; }

/* Encoded weight bytes for count values in encoding enc: taken raw from the input, or
   generated (small finite values in that encoding) from a seed. *len is set to the
   bytes available, which may be fewer than needed (a truncated tensor). */
static uint8_t *weight_bytes(rd *r, int raw, int enc, size_t count, uint64_t seed, size_t *len) {
  size_t es = tt_weights_elem_size(enc) ? tt_weights_elem_size(enc) : 4;
  size_t need = count * es;
  uint8_t *p = malloc(need + 1);
  if (!p) abort();
  if (raw) {
    size_t avail = r->n - r->at < need ? r->n - r->at : need;
    memcpy(p, r->p + r->at, avail);
    r->at += avail;
    *len = avail;
    return p;
  }
  for (size_t i = 0; i < count; i++) {
    uint64_t z = splitmix(&seed);
    float f = ((float)(z >> 40) / 16777216.0f - 0.5f) * 0.5f;
    uint8_t *q = p + i * es;
    if (es == 4) {
      uint32_t u;
      memcpy(&u, &f, 4);
      q[0] = (uint8_t)u, q[1] = (uint8_t)(u >> 8), q[2] = (uint8_t)(u >> 16), q[3] = (uint8_t)(u >> 24);
    } else if (es == 2) {
      /* float16 in [-0.25, 0.25] when enc is F16; any u16 when quantised */
      uint16_t hbits = enc == TT_W_F16
                           ? (uint16_t)(((z >> 8) & 1) << 15 | (10u + (z >> 9) % 4) << 10 | (z >> 16) % 1024)
                           : (uint16_t)(z >> 16);
      q[0] = (uint8_t)hbits, q[1] = (uint8_t)(hbits >> 8);
    } else {
      q[0] = (uint8_t)(z >> 24);
    }
  }
  *len = need;
  return p;
}

/* Decodes one tensor as the JS loader does; NULL (and *n = 0) on a decoding error. */
static float *tensor(rd *r, const char *name, size_t count, uint64_t seed) {
  unsigned e = byte(r), src = byte(r), qb = byte(r);
  int enc = (int)(e % 5); /* 4 is not an encoding */
  static const double qmins[8] = {-0.5, -1.0, 0.0, -0.25, NAN, -INFINITY, 1e300, -0.125};
  static const double qscales[8] = {1.0 / 256, 1.0 / 512, 0.0, 1.0 / 65536, INFINITY, NAN, 1e300, 1.0 / 128};
  double qmin = qmins[qb & 7], qscale = qscales[(qb >> 3) & 7];
  size_t len;
  uint8_t *bytes = weight_bytes(r, (src & 3) == 0, enc, count, seed, &len);
  float *dst = malloc(count * sizeof(float) + 4);
  if (!dst) abort();
  tt_clear_error();
  int rc = tt_weights_decode(name, bytes, len, count, enc, qmin, qscale, dst);
  free(bytes);
  if (rc < 0) {
    REQUIRE(failed(rc));
    REQUIRE(strstr(tt_last_error(), name) != NULL); /* the message names the weight */
    free(dst);
    return NULL;
  }
  for (size_t i = 0; i < count; i++) REQUIRE(isfinite(dst[i]));
  return dst;
}

static size_t elems(const tt_op *o) { return (size_t)o->h * o->w * o->c; }

/* The weight count tt_net_add expects for d on input a (0 if it takes none). */
static size_t need_weights(const tt_op_desc *d, const tt_op *a, size_t *need_b) {
  *need_b = 0;
  if (!a) return 0;
  int64_t k = (int64_t)d->kh * d->kw;
  switch (d->type) {
  case TT_OP_CONV2D:
    *need_b = d->channels > 0 ? (size_t)d->channels : 0;
    return k > 0 && d->channels > 0 ? (size_t)k * a->c * (size_t)d->channels : 0;
  case TT_OP_DEPTHWISE: *need_b = (size_t)a->c; return k > 0 ? (size_t)k * a->c : 0;
  case TT_OP_DENSE:
    *need_b = d->channels > 0 ? (size_t)d->channels : 0;
    return d->channels > 0 ? elems(a) * (size_t)d->channels : 0;
  default: return 0;
  }
}

static void read_op(rd *r, tt_net *net, int idx, uint64_t seed) {
  static const int dims[8] = {1, 1, 3, 3, 2, 5, 0, 16};
  static const int strides[8] = {1, 1, 2, 1, 2, 3, 0, 9};
  static const int chans[12] = {1, 2, 3, 4, 5, 8, 16, 6, 0, -1, 65537, 7};
  static const float rates[8] = {0.0f, 0.5f, 0.25f, 0.9f, 1.0f, NAN, -0.1f, 0.0f};
  static const float affine[8] = {1.0f, 2.0f, -1.0f, 0.5f, NAN, INFINITY, 1e30f, 0.0f};
  int n = tt_net_count(net);
  tt_op_desc d;
  memset(&d, 0, sizeof d);
  unsigned t = byte(r);
  d.type = t == 255 ? -1 : (int)(t % (TT_OP_COUNT + 1)); /* TT_OP_COUNT: unknown */
  d.in0 = (int)(byte(r) % (unsigned)(n + 1));            /* n: not yet existing */
  d.in1 = (int)(byte(r) % (unsigned)(n + 1));
  unsigned k = byte(r);
  d.kh = dims[k & 7], d.kw = dims[(k >> 3) & 7];
  unsigned s = byte(r);
  d.sh = strides[s & 7], d.sw = strides[(s >> 3) & 7];
  d.same = (int)(s >> 6) & 1;
  unsigned pads = byte(r);
  if (pads >= 192) { /* Keras ZeroPadding2D before a 'valid' conv, sometimes out of range */
    static const int pv[4] = {0, 1, 2, -1};
    d.pt = pv[pads & 3], d.pb = pv[(pads >> 2) & 3], d.pl = pv[(pads >> 4) & 3], d.pr = (pads & 1) ? 16 : 0;
  }
  d.channels = chans[byte(r) % 12];
  unsigned a = byte(r);
  d.act = a == 255 ? -1 : (int)(a % 4); /* 3: unknown */
  unsigned so = byte(r);
  if (d.type == TT_OP_DROPOUT)
    d.scale = rates[so & 7];
  else
    d.scale = affine[so & 7], d.offset = affine[(so >> 3) & 7] - 1.0f;

  const tt_op *in = tt_net_op(net, d.in0);
  size_t need_b, need_w = need_weights(&d, in, &need_b);
  unsigned delta = byte(r), bmode = byte(r), bnmode = byte(r), nmode = byte(r);
  size_t wn = need_w;
  if (delta == 1)
    wn = need_w + 1;
  else if (delta == 2 && need_w)
    wn = need_w - 1;
  else if (delta == 3)
    wn = 0;
  size_t bn = bmode & 1 ? need_b : 0;
  if (bmode == 3) bn = need_b + 1;

  char name[128];
  if (nmode == 255) { /* longer than an op name can be: must be cut, not overflow */
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
  } else {
    snprintf(name, sizeof name, "op%d/%u", idx, nmode);
  }

  float *w = NULL, *b = NULL;
  if (wn > MAX_ELEMS || bn > MAX_ELEMS) return; /* keep executions fast */
  if (wn && !(w = tensor(r, name, wn, seed))) return;
  if (bn && !(b = tensor(r, name, bn, seed ^ 0x5555))) {
    free(w);
    return;
  }

  tt_clear_error();
  int rc = tt_net_add(net, name, &d, w, wn, b, bn);
  free(w), free(b);
  if (rc < 0) {
    REQUIRE(failed(rc));
    REQUIRE(tt_net_count(net) == n);
    return;
  }
  REQUIRE(rc == n && tt_net_count(net) == n + 1);
  const tt_op *o = tt_net_op(net, rc);
  REQUIRE(o->h >= 1 && o->w >= 1 && o->c >= 1);
  REQUIRE(strlen(o->name) < sizeof o->name);

  /* Batch norm folded into the new op, with fuzzed statistics. */
  if (bnmode & 1) {
    size_t c = (size_t)o->c, nb = c;
    if (bnmode == 3) nb = c + 1;
    if (nb > MAX_ELEMS) return;
    static const float eps[4] = {1e-3f, 0.0f, -1.0f, NAN};
    float *g = bnmode & 2 ? tensor(r, "gamma", nb, seed + 1) : NULL;
    float *be = bnmode & 4 ? tensor(r, "beta", nb, seed + 2) : NULL;
    float *mu = tensor(r, "moving_mean", nb, seed + 3);
    float *var = tensor(r, "moving_variance", nb, seed + 4);
    if (var && !(bnmode & 8))
      for (size_t i = 0; i < nb; i++) var[i] = fabsf(var[i]); /* mostly plausible variances */
    if (mu && var && (!(bnmode & 2) || g) && (!(bnmode & 4) || be)) {
      tt_clear_error();
      int frc = tt_net_fold_bn(net, rc, g, be, mu, var, nb, eps[(bnmode >> 4) & 3]);
      if (frc < 0)
        REQUIRE(failed(frc));
      else
        REQUIRE(frc == 0);
    }
    free(g), free(be), free(mu), free(var);
  }
}

static int has_dropout(const tt_net *net) {
  for (int i = 1; i < tt_net_count(net); i++)
    if (tt_net_op(net, i)->d.type == TT_OP_DROPOUT && tt_net_op(net, i)->d.scale > 0) return 1;
  return 0;
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Two evaluation orders of the same net (inference vs training pass, a slice vs the whole
   net) may group float additions differently (inference can fold a residual add into the
   projection's GEMM): they agree to rounding, not bit for bit. A buffer mix-up shows as
   differences the size of the values themselves. The tolerance scales with the largest
   activation, parameter and fan-in of the net; nets whose values overflow are not compared. */
static double tolerance(tt_net *net, const float *x, int batch) {
  double act = 1, par = 1, fan = 1;
  int count = tt_net_count(net);
  for (int i = 0; i < count; i++) {
    const tt_op *o = tt_net_op(net, i);
    const float *y = tt_net_forward(net, x, batch, i);
    if (!y) return -1;
    for (size_t k = 0; k < elems(o) * (size_t)batch; k++) {
      if (!(fabs(y[k]) < 1e30)) return -1;
      act = fmax(act, fabs(y[k]));
    }
    for (size_t k = 0; k < o->wn; k++) par = fmax(par, fabs(o->wt[k]));
    for (size_t k = 0; k < o->bn; k++) par = fmax(par, fabs(o->bias[k]));
    double f = o->d.type == TT_OP_CONV2D                                    ? (double)o->d.kh * o->d.kw * o->cin
               : o->d.type == TT_OP_DENSE                                   ? (double)o->cin
               : o->d.type == TT_OP_DEPTHWISE || o->d.type == TT_OP_AVGPOOL ? (double)o->d.kh * o->d.kw
                                                                            : 2;
    fan = fmax(fan, f + 2);
  }
  return 1e-6 * act * par * fan;
}

static int close_floats(const float *a, const float *b, size_t n, double tol) {
  if (tol < 0) return 1; /* overflowing net: not compared */
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i] && !(fabs((double)a[i] - b[i]) <= tol)) {
      fprintf(stderr, "fuzz_weights: value %zu: %.9g vs %.9g (tolerance %g)\n", i, (double)a[i], (double)b[i], tol);
      return 0;
    }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rd r = {data, size, 0};
  static const int hw[8] = {1, 2, 3, 4, 5, 6, 0, -3};
  static const int cs[8] = {1, 2, 3, 4, 1, 3, 0, 70000};
  int h = hw[byte(&r) & 7], w = hw[byte(&r) & 7], c = cs[byte(&r) & 7];
  tt_clear_error();
  tt_net *net = tt_net_create(h, w, c);
  if (!net) {
    REQUIRE(tt_last_error()[0]);
    REQUIRE(h < 1 || w < 1 || c < 1 || c > 65536);
    return 0;
  }
  REQUIRE(h >= 1 && w >= 1 && c >= 1 && c <= 65536);
  uint64_t seed = 0x1234;
  for (size_t i = 0; i < size; i++) seed = (seed ^ data[i]) * 0x100000001b3ULL;

  int nops = (int)(byte(&r) % 13);
  for (int i = 0; i < nops; i++) read_op(&r, net, i, seed + (uint64_t)i * 977);

  int count = tt_net_count(net);
  static int verbose = -1;
  if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
  if (verbose) {
    fprintf(stderr, "net %dx%dx%d, %d of %d ops built:", h, w, c, count - 1, nops);
    for (int i = 1; i < count; i++) {
      const tt_op *o = tt_net_op(net, i);
      fprintf(stderr, " %s(%d)->%dx%dx%d", o->name, o->d.type, o->h, o->w, o->c);
    }
    fprintf(stderr, "\n");
  }
  int batch = 1 + (int)(byte(&r) % 2);
  int last = (int)(byte(&r) % (unsigned)(count + 2)) - 1; /* -1 (= last op) .. count (invalid) */
  size_t in_elems = (size_t)h * w * c * (size_t)batch;
  float *x = malloc(in_elems * sizeof(float));
  if (!x) abort();
  uint64_t xs = seed;
  for (size_t i = 0; i < in_elems; i++) x[i] = (float)(splitmix(&xs) >> 40) / 8388608.0f - 1.0f;

  /* Inference to a fuzzed layer, twice: the same bits both times. */
  tt_clear_error();
  const float *y = tt_net_forward(net, x, batch, last);
  if (!y) {
    REQUIRE(tt_last_error()[0]);
    REQUIRE(last >= count);
  } else {
    REQUIRE(last < count);
    const tt_op *o = tt_net_op(net, last < 0 ? count - 1 : last);
    size_t ny = elems(o) * (size_t)batch;
    float *keep = malloc(ny * sizeof(float));
    if (!keep) abort();
    memcpy(keep, y, ny * sizeof(float));
    const float *full = tt_net_forward(net, x, batch, -1); /* recycles the buffers differently */
    REQUIRE(full != NULL);
    const float *y2 = tt_net_forward(net, x, batch, last);
    REQUIRE(y2 && same_floats(keep, y2, ny));
    free(keep);
  }

  if (count >= 2) {
    /* The training pass computes the same outputs (no dropout), and backward either
       works or refuses an op it cannot train, by name. */
    const tt_op *o = tt_net_op(net, count - 1);
    size_t ny = elems(o) * (size_t)batch;
    const float *inf = tt_net_forward(net, x, batch, -1);
    REQUIRE(inf != NULL);
    float *keep = malloc(ny * sizeof(float));
    float *dy = malloc(ny * sizeof(float));
    float *dx = malloc(in_elems * sizeof(float));
    if (!keep || !dy || !dx) abort();
    memcpy(keep, inf, ny * sizeof(float));
    uint64_t rng = 7;
    const float *tr = tt_net_forward_train(net, x, batch, &rng);
    REQUIRE(tr != NULL);
    if (!has_dropout(net)) {
      float *trk = malloc(ny * sizeof(float));
      if (!trk) abort();
      memcpy(trk, tr, ny * sizeof(float));
      double tol = tolerance(net, x, batch); /* runs forward: tr is not valid after this */
      REQUIRE(close_floats(keep, trk, ny, tol));
      free(trk);
    }
    for (size_t i = 0; i < ny; i++) dy[i] = (float)(i % 7) * 0.125f - 0.375f;
    tt_net_zero_grad(net);
    tt_clear_error();
    int brc = tt_net_backward(net, dy, (seed & 1) ? dx : NULL);
    if (brc < 0) REQUIRE(brc == TT_EUNSUP && strstr(tt_last_error(), "not supported"));
    free(dy), free(dx);

    /* Save and reload: same ops, same outputs. */
    uint8_t *file;
    size_t flen;
    static const uint8_t meta[] = "{\"fuzz\":true}";
    REQUIRE(tt_save(net, meta, sizeof meta - 1, &file, &flen) == 0);
    tt_net *back;
    const uint8_t *m;
    size_t ml;
    tt_clear_error();
    int lrc = tt_load(file, flen, &back, &m, &ml);
    REQUIRE(lrc == 0);
    REQUIRE(ml == sizeof meta - 1 && memcmp(m, meta, ml) == 0);
    REQUIRE(tt_net_count(back) == count);
    for (int i = 0; i < count; i++) {
      const tt_op *p = tt_net_op(net, i), *q = tt_net_op(back, i);
      REQUIRE(p->h == q->h && p->w == q->w && p->c == q->c && p->wn == q->wn && p->bn == q->bn);
      REQUIRE(strcmp(p->name, q->name) == 0);
      REQUIRE(p->wn == 0 || same_floats(p->wt, q->wt, p->wn));
      REQUIRE(p->bn == 0 || same_floats(p->bias, q->bias, p->bn));
    }
    const float *yb = tt_net_forward(back, x, batch, -1);
    REQUIRE(yb && same_floats(keep, yb, ny));
    uint8_t *file2;
    size_t flen2;
    REQUIRE(tt_save(back, meta, sizeof meta - 1, &file2, &flen2) == 0);
    REQUIRE(flen2 == flen && memcmp(file, file2, flen) == 0);
    free(file), free(file2), free(keep);
    tt_net_free(back);

    /* A trainable slice of a fuzzed range, as tt_net_slice makes one. */
    int first = 1 + (int)(byte(&r) % (unsigned)count), lastc = first + (int)(byte(&r) % 4);
    const tt_op *b = tt_net_op(net, first - 1);
    tt_net *part = tt_net_create(b->h, b->w, b->c);
    REQUIRE(part != NULL);
    tt_clear_error();
    int arc = tt_net_append(part, net, first, lastc);
    if (arc < 0)
      REQUIRE(failed(arc));
    else {
      REQUIRE(first <= lastc && lastc < count);
      REQUIRE(tt_net_count(part) == 1 + lastc - first + 1);
      /* ... and computes what the same ops compute inside the whole net. */
      size_t nb = elems(b) * (size_t)batch, np = elems(tt_net_op(net, lastc)) * (size_t)batch;
      float *cut = malloc(nb * sizeof(float)), *whole = malloc(np * sizeof(float));
      if (!cut || !whole) abort();
      const float *a = tt_net_forward(net, x, batch, first - 1);
      REQUIRE(a != NULL);
      memcpy(cut, a, nb * sizeof(float));
      const float *yw = tt_net_forward(net, x, batch, lastc);
      REQUIRE(yw != NULL);
      memcpy(whole, yw, np * sizeof(float));
      const float *yp = tt_net_forward(part, cut, batch, -1);
      REQUIRE(yp != NULL);
      float *part_y = malloc(np * sizeof(float));
      if (!part_y) abort();
      memcpy(part_y, yp, np * sizeof(float));
      REQUIRE(close_floats(whole, part_y, np, tolerance(net, x, batch)));
      free(part_y);
      free(cut), free(whole);
    }
    tt_net_free(part);
  }
  free(x);
  tt_net_free(net);
  return 0;
}
