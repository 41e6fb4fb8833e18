/* Saved models: the trained part of a network and the caller's metadata in one
   checksummed file. The reader treats every byte as hostile: each length is checked
   against what remains before it is used, and the net is rebuilt through tt_net_add so
   shapes and weight counts are validated exactly as at load. */
#include "abi.h"
#include "net.h"
#include "tt.h"
#include "weights.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[8] = {'T', 'T', 'M', 'O', 'D', 'E', 'L', 0};
/* An op's descriptor is stored as its members in src/abi.h's order, 4 bytes each. */
#define ONE_(m, kind) +1
#define DESC_BYTES    (4 * (0 TT_ABI_OP_DESC(ONE_)))
#define MAX_META      (1u << 20)

typedef struct {
  uint8_t *p;
  size_t n, cap;
  int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
  if (b->oom || !n) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q, b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}
static void put32(wbuf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(b, x, 4);
}
static void putf(wbuf *b, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  put32(b, u);
}

#define PUT_i32(b, x)      put32(b, (uint32_t)(x))
#define PUT_f32(b, x)      putf(b, x)
#define PUT_DESC_(m, kind) PUT_##kind(&b, o->d.m);

int tt_save(const tt_net *net, const uint8_t *meta, size_t meta_len, uint8_t **out, size_t *out_len) {
  if (meta_len > MAX_META)
    return tt_fail(TT_EINVAL, "model metadata is %zu bytes, the limit is %u", meta_len, MAX_META);
  wbuf b = {0};
  put(&b, MAGIC, 8);
  put32(&b, TT_SAVE_VERSION);
  put32(&b, (uint32_t)meta_len);
  put(&b, meta, meta_len);
  const tt_op *in = tt_net_op(net, 0);
  put32(&b, (uint32_t)tt_net_count(net));
  put32(&b, (uint32_t)in->h), put32(&b, (uint32_t)in->w), put32(&b, (uint32_t)in->c);
  for (int i = 1; i < tt_net_count(net); i++) {
    const tt_op *o = tt_net_op(net, i);
    uint8_t nl = (uint8_t)strlen(o->name);
    put(&b, &nl, 1);
    put(&b, o->name, nl);
    TT_ABI_OP_DESC(PUT_DESC_)
    put32(&b, (uint32_t)o->wn), put32(&b, (uint32_t)o->bn);
    for (size_t k = 0; k < o->wn; k++) putf(&b, o->wt[k]);
    for (size_t k = 0; k < o->bn; k++) putf(&b, o->bias[k]);
  }
  uint64_t h = tt_hash64(b.p, b.n, TT_HASH64_INIT);
  put32(&b, (uint32_t)h), put32(&b, (uint32_t)(h >> 32));
  if (b.oom) {
    free(b.p);
    return tt_fail(TT_ENOMEM, "out of memory saving the model");
  }
  *out = b.p, *out_len = b.n;
  return TT_OK;
}

typedef struct {
  const uint8_t *p;
  size_t n, at;
} rbuf;

static uint32_t rd32(const uint8_t *x) {
  return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static int get32(rbuf *r, uint32_t *v) {
  if (r->n - r->at < 4) return 0;
  const uint8_t *x = r->p + r->at;
  *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
  r->at += 4;
  return 1;
}
static int getf(rbuf *r, float *f) {
  uint32_t u;
  if (!get32(r, &u)) return 0;
  memcpy(f, &u, 4);
  return 1;
}
static int geti(rbuf *r, int *i) {
  uint32_t u;
  if (!get32(r, &u)) return 0;
  *i = (int32_t)u;
  return 1;
}
#define GET_i32            geti
#define GET_f32            getf
#define GET_DESC_(m, kind) ok = ok && GET_##kind(&r, &d.m);

/* Whether the records need more bytes than the file has: on a checksum mismatch, tells a
   file cut short (an incomplete download) from one with damaged bytes. */
static int cut_short(const uint8_t *d, size_t len) {
  size_t at = 12;
  if (len - at < 4) return 1;
  uint32_t ml = rd32(d + at);
  at += 4;
  if (ml > MAX_META) return 0;
  if (ml > len - at) return 1;
  at += ml;
  if (len - at < 16) return 1;
  uint32_t nops = rd32(d + at);
  at += 16;
  if (nops < 2 || nops > 4096) return 0;
  for (uint32_t i = 1; i < nops; i++) {
    if (at >= len) return 1;
    size_t nl = d[at++];
    if (nl > len - at) return 1;
    at += nl;
    if (len - at < DESC_BYTES + 8) return 1;
    at += DESC_BYTES;
    uint64_t wb = ((uint64_t)rd32(d + at) + rd32(d + at + 4)) * 4;
    at += 8;
    if (wb > len - at) return 1;
    at += (size_t)wb;
  }
  return len - at < 8;
}

#define TRUNC() tt_fail(TT_EFORMAT, "saved model is truncated (at byte %zu of %zu)", r.at, r.n)

int tt_load(const uint8_t *data, size_t len, tt_net **netp, const uint8_t **meta, size_t *meta_len) {
  *netp = NULL;
  if (len < 8 || memcmp(data, MAGIC, 8) != 0) return tt_fail(TT_EFORMAT, "not a tinytune model file (bad header)");
  if (len < 8 + 4 + 4 + 8) return tt_fail(TT_EFORMAT, "saved model is truncated (%zu bytes)", len);
  uint64_t h = tt_hash64(data, len - 8, TT_HASH64_INIT);
  const uint8_t *t = data + len - 8;
  uint64_t stored = (uint64_t)(t[0] | t[1] << 8 | t[2] << 16 | (uint32_t)t[3] << 24) |
                    (uint64_t)(t[4] | t[5] << 8 | t[6] << 16 | (uint32_t)t[7] << 24) << 32;
  rbuf r = {data, len - 8, 8};
  uint32_t version, ml, nops, ih, iw, ic;
  if (!get32(&r, &version)) return TRUNC();
  if (version != TT_SAVE_VERSION)
    return tt_fail(TT_EUNSUP, "saved model has file version %u; this engine reads version %u", version,
                   TT_SAVE_VERSION);
  if (h != stored)
    return cut_short(data, len) ? tt_fail(TT_EFORMAT,
                                          "saved model is truncated (%zu bytes; it ends before its last op "
                                          "and checksum: an incomplete download or copy?)",
                                          len)
                                : tt_fail(TT_EFORMAT, "saved model is corrupted (checksum mismatch)");
  if (!get32(&r, &ml)) return TRUNC();
  if (ml > MAX_META || ml > r.n - r.at)
    return tt_fail(TT_EFORMAT, "saved model metadata length %u is out of range", ml);
  *meta = data + r.at, *meta_len = ml;
  r.at += ml;
  if (!get32(&r, &nops) || !get32(&r, &ih) || !get32(&r, &iw) || !get32(&r, &ic)) return TRUNC();
  if (nops < 2 || nops > 4096) return tt_fail(TT_EFORMAT, "saved model has %u ops", nops);
  tt_net *net = tt_net_create((int)(ih > 65536 ? 0 : ih), (int)(iw > 65536 ? 0 : iw), (int)(ic > 65536 ? 0 : ic));
  if (!net) return TT_EFORMAT;
  float *w = NULL, *b = NULL;
  int rc = TT_OK;
  for (uint32_t i = 1; i < nops && rc == TT_OK; i++) {
    char name[96];
    if (r.at >= r.n) {
      rc = TRUNC();
      break;
    }
    uint8_t nl = r.p[r.at++];
    if (nl >= sizeof name || nl > r.n - r.at) {
      rc = TRUNC();
      break;
    }
    memcpy(name, r.p + r.at, nl), name[nl] = 0;
    r.at += nl;
    uint32_t wn, bn;
    tt_op_desc d = {0};
    int ok = 1;
    TT_ABI_OP_DESC(GET_DESC_)
    ok = ok && get32(&r, &wn) && get32(&r, &bn);
    if (!ok) {
      rc = TRUNC();
      break;
    }
    if ((size_t)wn > (r.n - r.at) / 4 || (size_t)bn > (r.n - r.at - (size_t)wn * 4) / 4) {
      rc = TRUNC();
      break;
    }
    w = malloc((size_t)wn * 4 + 4), b = malloc((size_t)bn * 4 + 4);
    if (!w || !b) {
      rc = tt_fail(TT_ENOMEM, "out of memory reading the saved model");
      break;
    }
    for (uint32_t k = 0; k < wn; k++) getf(&r, &w[k]);
    for (uint32_t k = 0; k < bn; k++) getf(&r, &b[k]);
    rc = tt_net_add(net, name, &d, w, wn, b, bn);
    if (rc >= 0) {
      rc = TT_OK;
      for (uint32_t k = 0; k < wn + bn; k++)
        if (!isfinite(k < wn ? w[k] : b[k - wn])) {
          rc = tt_fail(TT_EFORMAT, "saved model: op '%s' has a non-finite weight", name);
          break;
        }
    }
    free(w), free(b);
    w = b = NULL;
  }
  if (rc == TT_OK && r.at != r.n) rc = tt_fail(TT_EFORMAT, "saved model has %zu unexpected trailing bytes", r.n - r.at);
  if (rc != TT_OK) {
    tt_net_free(net);
    return rc;
  }
  *netp = net;
  return TT_OK;
}
