/* libFuzzer target: untrusted bytes -> tt_load (the saved-model reader), and on success
   tt_save, which must give back the same bytes.

   The file ends in an FNV-1a checksum, which random mutations almost never keep right;
   so that the fuzzer reaches the parser behind it, the harness rewrites the checksum of
   7 inputs in 8 (chosen by a hash of the input, so each input is judged the same way
   every time) and leaves the eighth as it is, to keep exercising the mismatch path.
   Seeds (tests/fuzz/corpus/savefile/) are real saved models as tt_save and
   Classifier.save() write them.

   Invariants (a violation aborts):
     - a refused file gives a negative TT_E* code, a message, and no net;
     - an accepted file's metadata lies inside the file;
     - tt_save(tt_load(file)) == file, byte for byte, when the file is in the form
       tt_save writes. Two things tt_load accepts but tt_save writes differently are
       allowed to differ: a conv/depthwise/dense op stored without a bias (it gets a
       zero bias, which tt_save writes out) and a name containing a NUL byte (cut at the
       NUL). For those, saving must be idempotent: tt_save(tt_load(tt_save(net))) is
       tt_save(net);
     - the reloaded net equals the loaded one and, if small, computes the same outputs. */
#include "net.h"
#include "tt.h"
#include "weights.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                                                     \
  do {                                                                                                                 \
    if (!(c)) {                                                                                                        \
      fprintf(stderr, "fuzz_savefile: %s:%d: invariant failed: %s (last error: %s)\n", __FILE__, __LINE__, #c,         \
              tt_last_error());                                                                                        \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* An independent walk over an accepted file's op records: is it in tt_save's form? */
static int canonical(const uint8_t *f, size_t len) {
  size_t at = 12;
  uint32_t ml = rd32(f + at);
  at += 4 + ml;
  uint32_t nops = rd32(f + at);
  at += 16;
  for (uint32_t i = 1; i < nops; i++) {
    uint8_t nl = f[at++];
    if (memchr(f + at, 0, nl)) return 0;
    at += nl;
    int32_t type = (int32_t)rd32(f + at);
    at += 14 * 4 + 8;
    uint32_t wn = rd32(f + at), bn = rd32(f + at + 4);
    at += 8 + 4 * (size_t)wn + 4 * (size_t)bn;
    if ((type == TT_OP_CONV2D || type == TT_OP_DEPTHWISE || type == TT_OP_DENSE) && bn == 0) return 0;
  }
  REQUIRE(at + 8 == len);
  return 1;
}

static void same_net(const tt_net *a, const tt_net *b) {
  REQUIRE(tt_net_count(a) == tt_net_count(b));
  for (int i = 0; i < tt_net_count(a); i++) {
    const tt_op *p = tt_net_op(a, i), *q = tt_net_op(b, i);
    REQUIRE(memcmp(&p->d, &q->d, sizeof p->d) == 0 || i == 0);
    REQUIRE(p->h == q->h && p->w == q->w && p->c == q->c && p->wn == q->wn && p->bn == q->bn);
    REQUIRE(strcmp(p->name, q->name) == 0);
    REQUIRE(p->wn == 0 || memcmp(p->wt, q->wt, p->wn * 4) == 0);
    REQUIRE(p->bn == 0 || memcmp(p->bias, q->bias, p->bn * 4) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) abort();
  memcpy(buf, data, size);
  if (size >= 24 && (tt_hash64(data, size - 8, TT_HASH64_INIT) & 7) != 0) {
    uint64_t h = tt_hash64(buf, size - 8, TT_HASH64_INIT);
    for (int i = 0; i < 8; i++) buf[size - 8 + i] = (uint8_t)(h >> (8 * i));
  }

  tt_net *net = (tt_net *)1;
  const uint8_t *meta = NULL;
  size_t ml = 0;
  tt_clear_error();
  int rc = tt_load(buf, size, &net, &meta, &ml);
  if (rc < 0) {
    REQUIRE(rc >= TT_ESTATE && tt_last_error()[0] && net == NULL);
    free(buf);
    return 0;
  }
  REQUIRE(rc == 0 && net != NULL);
  REQUIRE(meta >= buf && ml <= size && (size_t)(meta - buf) <= size - ml);

  uint8_t *out;
  size_t olen;
  REQUIRE(tt_save(net, meta, ml, &out, &olen) == 0);
  if (canonical(buf, size)) REQUIRE(olen == size && memcmp(out, buf, size) == 0);

  tt_net *back;
  const uint8_t *m2;
  size_t ml2;
  REQUIRE(tt_load(out, olen, &back, &m2, &ml2) == 0);
  REQUIRE(ml2 == ml && memcmp(m2, meta, ml) == 0);
  same_net(net, back);
  uint8_t *out2;
  size_t olen2;
  REQUIRE(tt_save(back, m2, ml2, &out2, &olen2) == 0);
  REQUIRE(olen2 == olen && memcmp(out, out2, olen) == 0);

  /* Small nets: run them (activations and weights stay within a few hundred KB). */
  size_t act = 0, in = 0;
  for (int i = 0; i < tt_net_count(net); i++) {
    const tt_op *o = tt_net_op(net, i);
    size_t e = (size_t)o->h * o->w * o->c;
    if (i == 0) in = e;
    act += e;
  }
  if (act <= (1u << 16) && tt_net_param_count(net) <= (1u << 18)) {
    float *x = malloc(in * sizeof(float));
    if (!x) abort();
    for (size_t i = 0; i < in; i++) x[i] = (float)(i % 17) / 17.0f;
    const tt_op *lo = tt_net_op(net, tt_net_count(net) - 1);
    size_t ny = (size_t)lo->h * lo->w * lo->c;
    const float *y1 = tt_net_forward(net, x, 1, -1);
    REQUIRE(y1 != NULL);
    float *keep = malloc(ny * sizeof(float));
    if (!keep) abort();
    memcpy(keep, y1, ny * sizeof(float));
    const float *y2 = tt_net_forward(back, x, 1, -1);
    REQUIRE(y2 != NULL && memcmp(keep, y2, ny * sizeof(float)) == 0);
    free(keep), free(x);
  }
  free(out), free(out2), free(buf);
  tt_net_free(net), tt_net_free(back);
  return 0;
}
