#include "net.h"
#include "kernels/kernels.h"
#include "threads.h"
#include "tt.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds that keep every size computation far from overflow and refuse absurd models
   before they allocate anything. */
#define MAX_OPS 4096
#define MAX_DIM 16384
#define MAX_CHANNELS 65536
#define MAX_KERNEL 15
#define MAX_STRIDE 8
#define MAX_TENSOR ((size_t)1 << 28) /* elements of one image's activation */

typedef struct {
  float *p;
  size_t cap; /* floats */
  int busy;
} buf;

struct tt_net {
  tt_op *ops;
  int n, cap;
  /* inference: a pool of activation buffers recycled between ops */
  buf *pool;
  int npool;
  int *slot;     /* per op: pool index holding its output during tt_net_forward */
  int *lastuse;  /* per op: the last op that reads it (scratch for tt_net_forward) */
  buf *band;          /* inference: E and D of a fused block's row bands, per thread (run_block) */
  int nband;
  buf split;          /* inference: a batch's tensor at the split op (see batch_split) */
  /* training: every activation and gradient of one batch, in one arena */
  float *arena;
  size_t arena_cap;
  int tcap;       /* batch size the arena is laid out for */
  int tn;         /* batch size of the last forward_train, 0 if none */
  float **act, **grad, **mask;
  /* per op: its weight gradient is due to be zeroed (tt_net_zero_grad), which its
     backward GEMM does for free by overwriting instead of accumulating */
  unsigned char *gz;
  float *scratch;
  const float *tx;
};

static size_t op_size(const tt_op *o) { return (size_t)o->h * o->w * o->c; }
/* Size checks are done in 64 bits: on wasm32 size_t is 32 bits, and a product of valid
   dimensions (16384 x 16384 x 16, a batch of 65537 1x1x65536 tensors) wraps to a small
   number that passes every limit and then under-allocates. */
static uint64_t op_size64(const tt_op *o) { return (uint64_t)o->h * (uint64_t)o->w * (uint64_t)o->c; }

uint64_t tt_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

float tt_rng_uniform(uint64_t *s) { return (float)(tt_rng_next(s) >> 40) * (1.0f / 16777216.0f); }

tt_net *tt_net_create(int h, int w, int c) {
  if (h < 1 || w < 1 || c < 1 || h > MAX_DIM || w > MAX_DIM || c > MAX_CHANNELS ||
      (uint64_t)h * w * c > MAX_TENSOR) {
    tt_fail(TT_EINVAL, "input shape %dx%dx%d is out of range", h, w, c);
    return NULL;
  }
  tt_net *net = calloc(1, sizeof *net);
  if (!net) { tt_fail(TT_ENOMEM, "out of memory creating a network"); return NULL; }
  tt_op_desc d = {0};
  if (tt_net_add(net, "input", &d, NULL, 0, NULL, 0) < 0) { tt_net_free(net); return NULL; }
  net->ops[0].h = h, net->ops[0].w = w, net->ops[0].c = c;
  return net;
}

static void flush_zero_grad(tt_net *net);

static void free_training(tt_net *net) {
  flush_zero_grad(net);
  free(net->arena), free(net->act), free(net->grad), free(net->mask), free(net->gz);
  net->arena = NULL, net->act = net->grad = net->mask = NULL, net->gz = NULL;
  net->arena_cap = 0, net->tcap = net->tn = 0;
  net->tx = NULL;
}

void tt_net_free(tt_net *net) {
  if (!net) return;
  free_training(net); /* first: it may zero gradients still due to be zeroed */
  for (int i = 0; i < net->n; i++) {
    tt_op *o = &net->ops[i];
    free(o->wt), free(o->bias), free(o->gwt), free(o->gbias);
    free(o->qw), free(o->qwb), free(o->qws);
  }
  for (int i = 0; i < net->npool; i++) free(net->pool[i].p);
  for (int i = 0; i < net->nband; i++) free(net->band[i].p);
  free(net->band), free(net->split.p);
  free(net->pool), free(net->slot), free(net->lastuse), free(net->ops);
  free(net);
}

int tt_net_count(const tt_net *net) { return net->n; }
const tt_op *tt_net_op(const tt_net *net, int i) { return i >= 0 && i < net->n ? &net->ops[i] : NULL; }

/* TensorFlow's output size and leading padding for one spatial axis. */
static int out_dim(int in, int k, int s, int same, int *pad_before) {
  if (same) {
    int o = (in + s - 1) / s;
    int total = (o - 1) * s + k - in;
    *pad_before = total > 0 ? total / 2 : 0;
    return o;
  }
  *pad_before = 0;
  return in < k ? 0 : (in - k) / s + 1;
}

static float *dup_floats(const float *src, size_t n) {
  float *p = malloc(n * sizeof *p);
  if (p) memcpy(p, src, n * sizeof *p);
  return p;
}

static const char *type_name(int t) {
  static const char *names[TT_OP_COUNT] = {"input", "conv2d", "depthwise", "dense", "add",
                                           "avgpool", "act", "softmax", "affine", "dropout",
                                           "mean", "gate", "prelu"};
  return t >= 0 && t < TT_OP_COUNT ? names[t] : "?";
}

/* Ops that read a second tensor, in1. */
static int two_inputs(int type) { return type == TT_OP_ADD || type == TT_OP_GATE; }

/* Fills o's shape from its inputs; returns TT_OK or an error naming the op. */
static int infer_shape(tt_net *net, tt_op *o, size_t wn, size_t bn) {
  const tt_op_desc *d = &o->d;
  const char *nm = o->name;
  if (d->in0 < 0 || d->in0 >= net->n)
    return tt_fail(TT_EINVAL, "op '%s' reads op %d, which does not exist yet", nm, d->in0);
  const tt_op *a = &net->ops[d->in0];
  o->h = a->h, o->w = a->w, o->c = a->c, o->cin = a->c;
  uint64_t need_w = 0;
  size_t need_b = 0;
  switch (d->type) {
  case TT_OP_CONV2D: case TT_OP_DEPTHWISE: case TT_OP_AVGPOOL: {
    if (d->kh < 1 || d->kw < 1 || d->kh > MAX_KERNEL || d->kw > MAX_KERNEL || d->sh < 1 ||
        d->sw < 1 || d->sh > MAX_STRIDE || d->sw > MAX_STRIDE || d->pt < 0 || d->pb < 0 ||
        d->pl < 0 || d->pr < 0 || d->pt > MAX_KERNEL || d->pb > MAX_KERNEL ||
        d->pl > MAX_KERNEL || d->pr > MAX_KERNEL)
      return tt_fail(TT_EINVAL, "%s '%s': kernel %dx%d, strides %dx%d or padding out of range",
                     type_name(d->type), nm, d->kh, d->kw, d->sh, d->sw);
    int pt, pl;
    o->h = out_dim(a->h + d->pt + d->pb, d->kh, d->sh, d->same, &pt);
    o->w = out_dim(a->w + d->pl + d->pr, d->kw, d->sw, d->same, &pl);
    o->pt = pt + d->pt, o->pl = pl + d->pl;
    if (o->h < 1 || o->w < 1)
      return tt_fail(TT_EINVAL, "%s '%s': a %dx%d kernel does not fit its %dx%d input",
                     type_name(d->type), nm, d->kh, d->kw, a->h, a->w);
    if (d->type == TT_OP_CONV2D) {
      if (d->channels < 1 || d->channels > MAX_CHANNELS)
        return tt_fail(TT_EINVAL, "conv2d '%s': %d output channels", nm, d->channels);
      o->c = d->channels;
      need_w = (uint64_t)d->kh * d->kw * a->c * o->c, need_b = o->c;
    } else if (d->type == TT_OP_DEPTHWISE) {
      need_w = (uint64_t)d->kh * d->kw * a->c, need_b = a->c;
    }
  } break;
  case TT_OP_DENSE:
    if (d->channels < 1 || d->channels > MAX_CHANNELS)
      return tt_fail(TT_EINVAL, "dense '%s': %d units", nm, d->channels);
    o->cin = a->h * a->w * a->c;
    o->h = o->w = 1, o->c = d->channels;
    need_w = (uint64_t)o->cin * o->c, need_b = o->c;
    break;
  case TT_OP_ADD: {
    if (d->in1 < 0 || d->in1 >= net->n)
      return tt_fail(TT_EINVAL, "add '%s' reads op %d, which does not exist yet", nm, d->in1);
    const tt_op *b = &net->ops[d->in1];
    if (a->h != b->h || a->w != b->w || a->c != b->c)
      return tt_fail(TT_EINVAL, "add '%s': shapes differ, %dx%dx%d ('%s') vs %dx%dx%d ('%s')",
                     nm, a->h, a->w, a->c, a->name, b->h, b->w, b->c, b->name);
  } break;
  case TT_OP_GATE: {
    if (d->in1 < 0 || d->in1 >= net->n)
      return tt_fail(TT_EINVAL, "gate '%s' reads op %d, which does not exist yet", nm, d->in1);
    const tt_op *b = &net->ops[d->in1];
    if (b->h != 1 || b->w != 1 || b->c != a->c)
      return tt_fail(TT_EINVAL, "gate '%s': the gate '%s' is %dx%dx%d, not 1x1x%d", nm, b->name,
                     b->h, b->w, b->c, a->c);
  } break;
  case TT_OP_MEAN: o->h = o->w = 1; break;
  case TT_OP_PRELU: need_w = (uint64_t)a->c; break;
  case TT_OP_DROPOUT:
    if (!(d->scale >= 0 && d->scale < 1))
      return tt_fail(TT_EINVAL, "dropout '%s': rate %g is not in [0,1)", nm, (double)d->scale);
    break;
  case TT_OP_AFFINE:
    if (!isfinite(d->scale) || !isfinite(d->offset))
      return tt_fail(TT_EINVAL, "affine '%s': non-finite scale or offset", nm);
    break;
  case TT_OP_ACT: case TT_OP_SOFTMAX: break;
  default: return tt_fail(TT_EUNSUP, "op '%s': unknown op type %d", nm, d->type);
  }
  if (d->act < TT_ACT_NONE || d->act > TT_ACT_HSIGMOID)
    return tt_fail(TT_EINVAL, "op '%s': unknown activation %d", nm, d->act);
  if (d->act > TT_ACT_RELU6 && (d->type != TT_OP_ACT || !isfinite(d->scale) || !isfinite(d->offset)))
    return tt_fail(TT_EINVAL, "%s '%s': hard-swish/hard-sigmoid only as an act op, with finite "
                   "constants", type_name(d->type), nm);
  if (op_size64(o) > MAX_TENSOR)
    return tt_fail(TT_ENOMEM, "op '%s': output %dx%dx%d is too large", nm, o->h, o->w, o->c);
  if (need_w > MAX_TENSOR)
    return tt_fail(TT_ENOMEM, "%s '%s': %llu weights are too many", type_name(d->type), nm,
                   (unsigned long long)need_w);
  if (wn != need_w || (bn != need_b && bn != 0))
    return tt_fail(TT_EINVAL, "%s '%s': weights have %zu values and bias %zu; its %dx%dx%d "
                   "input needs %llu and %zu", type_name(d->type), nm, wn, bn, a->h, a->w, a->c,
                   (unsigned long long)need_w, need_b);
  return TT_OK;
}

int tt_net_add(tt_net *net, const char *name, const tt_op_desc *d,
               const float *w, size_t wn, const float *b, size_t bn) {
  if (net->n >= MAX_OPS) return tt_fail(TT_EINVAL, "too many ops (limit %d)", MAX_OPS);
  if (net->n == net->cap) {
    int cap = net->cap ? net->cap * 2 : 64;
    tt_op *ops = realloc(net->ops, (size_t)cap * sizeof *ops);
    if (!ops) return tt_fail(TT_ENOMEM, "out of memory adding op '%s'", name);
    net->ops = ops, net->cap = cap;
  }
  tt_op *o = &net->ops[net->n];
  memset(o, 0, sizeof *o);
  o->d = *d;
  snprintf(o->name, sizeof o->name, "%s", name ? name : "");
  if (net->n > 0) {
    if ((wn && !w) || (bn && !b)) return tt_fail(TT_EINVAL, "op '%s': missing weights", o->name);
    int rc = infer_shape(net, o, wn, bn);
    if (rc < 0) return rc;
    if (wn && !(o->wt = dup_floats(w, wn))) return tt_fail(TT_ENOMEM, "out of memory for '%s'", o->name);
    o->wn = wn;
    /* Ops that can carry a bias always get one, so folding BN and training need no cases. */
    if (d->type == TT_OP_CONV2D || d->type == TT_OP_DEPTHWISE || d->type == TT_OP_DENSE) {
      o->bn = (size_t)o->c;
      o->bias = bn ? dup_floats(b, bn) : calloc(o->bn, sizeof(float));
      if (!o->bias) { free(o->wt); return tt_fail(TT_ENOMEM, "out of memory for '%s'", o->name); }
    }
  }
  free_training(net); /* the arena's layout depends on the op list */
  return net->n++;
}

int tt_net_fold_bn(tt_net *net, int i, const float *gamma, const float *beta,
                   const float *mean, const float *var, size_t n, float eps) {
  if (i < 1 || i >= net->n) return tt_fail(TT_EINVAL, "batch norm folded into op %d, which does not exist", i);
  tt_op *o = &net->ops[i];
  int t = o->d.type;
  if (t != TT_OP_CONV2D && t != TT_OP_DEPTHWISE && t != TT_OP_DENSE)
    return tt_fail(TT_EINVAL, "batch norm after '%s' (%s) cannot be folded", o->name, type_name(t));
  if (n != (size_t)o->c || !mean || !var)
    return tt_fail(TT_EINVAL, "batch norm of '%s' has %zu channels, the op has %d", o->name, n, o->c);
  if (!(eps >= 0)) return tt_fail(TT_EINVAL, "batch norm of '%s': epsilon %g", o->name, (double)eps);
  for (size_t k = 0; k < n; k++)
    if (!(var[k] + eps > 0))
      return tt_fail(TT_EINVAL, "batch norm of '%s': variance + epsilon is not positive at channel %zu",
                     o->name, k);
  size_t per = o->wn / n; /* weights are laid out with the output channel innermost */
  /* Finite statistics can still fold into infinities (a tiny variance, a huge gamma):
     check every folded value first, so a refused fold leaves the op untouched. */
  for (size_t k = 0; k < n; k++) {
    float s = (gamma ? gamma[k] : 1.0f) / sqrtf(var[k] + eps);
    int ok = isfinite(s) && isfinite((o->bias[k] - mean[k]) * s + (beta ? beta[k] : 0.0f));
    for (size_t j = 0; ok && j < per; j++) ok = isfinite(o->wt[j * n + k] * s);
    if (!ok)
      return tt_fail(TT_EINVAL, "batch norm of '%s': folding gives a non-finite weight at channel %zu "
                     "(gamma %g, mean %g, variance %g, epsilon %g)", o->name, k,
                     gamma ? (double)gamma[k] : 1.0, (double)mean[k], (double)var[k], (double)eps);
  }
  for (size_t k = 0; k < n; k++) {
    float s = (gamma ? gamma[k] : 1.0f) / sqrtf(var[k] + eps);
    for (size_t j = 0; j < per; j++) o->wt[j * n + k] *= s;
    if (o->qw) o->qwb[k] *= s, o->qws[k] *= s;
    o->bias[k] = (o->bias[k] - mean[k]) * s + (beta ? beta[k] : 0.0f);
  }
  return TT_OK;
}

static int is_pointwise(const tt_net *net, const tt_op *o);

int tt_net_quantized(tt_net *net, int i, double qmin, double qscale) {
  if (i < 1 || i >= net->n) return tt_fail(TT_EINVAL, "quantized weights declared for op %d, which does not exist", i);
  tt_op *o = &net->ops[i];
  if (!(qscale > 0) || !isfinite(qscale) || !isfinite(qmin))
    return tt_fail(TT_EINVAL, "'%s': quantization scale %g, min %g", o->name, qscale, qmin);
  /* w = q*qscale + qmin = qscale*(q - zp): integer codes need an integer zero point. */
  const double zp = -qmin / qscale;
  const int gemm = o->d.type == TT_OP_DENSE || (o->d.type == TT_OP_CONV2D && is_pointwise(net, o));
  if (!gemm || o->cin > TT_QGEMM_MAX_K || o->qw || !o->wt || !(zp >= 0 && zp <= 255) ||
      fabs(zp - nearbyint(zp)) > 1e-6)
    return TT_OK;
  const int K = o->cin, N = o->c, N8 = (N + 7) / 8 * 8, z = (int)nearbyint(zp);
  int16_t *codes = malloc(o->wn * sizeof *codes);
  int16_t *qw = malloc(tt_qpack_size(K, N) * sizeof *qw);
  float *qwb = calloc((size_t)N8, sizeof *qwb), *qws = calloc((size_t)N8, sizeof *qws);
  if (!codes || !qw || !qwb || !qws) {
    free(codes), free(qw), free(qwb), free(qws);
    return tt_fail(TT_ENOMEM, "out of memory for the integer weights of '%s'", o->name);
  }
  for (size_t j = 0; j < o->wn; j++) {
    /* The exact value tt_weights_decode gives code q (double, like tfjs). */
    const double q = nearbyint(((double)o->wt[j] - qmin) / qscale);
    if (!(q >= 0 && q <= 255) || (float)(q * qscale + qmin) != o->wt[j]) {
      free(codes), free(qw), free(qwb), free(qws);
      return tt_fail(TT_EFORMAT, "weights of '%s' are not the uint8 codes their quantization "
                     "(min %g, scale %g) says: weight %zu is %g", o->name, qmin, qscale, j,
                     (double)o->wt[j]);
    }
    codes[j] = (int16_t)((int)q - z);
  }
  o->qmax = tt_qpack(K, N, codes, qw);
  free(codes);
  for (int n = 0; n < N; n++) {
    double sum = 0;
    for (int k = 0; k < K; k++) sum += o->wt[(size_t)k * N + n];
    qwb[n] = (float)qscale, qws[n] = (float)sum;
  }
  o->qw = qw, o->qwb = qwb, o->qws = qws;
  return TT_OK;
}

int tt_net_append(tt_net *dst, const tt_net *src, int first, int last) {
  if (first < 1 || last < first || last >= src->n)
    return tt_fail(TT_EINVAL, "cannot copy ops %d..%d of a %d-op network", first, last, src->n);
  const tt_op *b = &src->ops[first - 1], *in = &dst->ops[0];
  if (b->h != in->h || b->w != in->w || b->c != in->c)
    return tt_fail(TT_EINVAL, "copying from '%s' needs a %dx%dx%d input, not %dx%dx%d",
                   src->ops[first].name, b->h, b->w, b->c, in->h, in->w, in->c);
  int base = dst->n - first; /* src index j >= first lands at j + base; first-1 is input 0 */
  for (int j = first; j <= last; j++) {
    const tt_op *o = &src->ops[j];
    tt_op_desc d = o->d;
    int ins[2] = {d.in0, d.in1};
    for (int k = 0; k < (two_inputs(d.type) ? 2 : 1); k++) {
      if (ins[k] < first - 1)
        return tt_fail(TT_EINVAL, "op '%s' reads '%s', from before the cut at '%s'", o->name,
                       src->ops[ins[k]].name, src->ops[first - 1].name);
      ins[k] = ins[k] == first - 1 ? 0 : ins[k] + base;
    }
    d.in0 = ins[0], d.in1 = ins[1];
    int rc = tt_net_add(dst, o->name, &d, o->wt, o->wn, o->bias, o->bn);
    if (rc < 0) return rc;
  }
  return TT_OK;
}

/* ---- one op, forward and backward side by side ------------------------------------ */

static tt_shape spatial(const tt_net *net, const tt_op *o, int n) {
  const tt_op *a = &net->ops[o->d.in0];
  tt_shape s = {n, a->h, a->w, a->c, o->d.kh, o->d.kw, o->d.sh, o->d.sw, o->pt, o->pl,
                o->h, o->w, o->c};
  return s;
}

static int is_pointwise(const tt_net *net, const tt_op *o) {
  const tt_op *a = &net->ops[o->d.in0];
  return o->d.kh == 1 && o->d.kw == 1 && o->d.sh == 1 && o->d.sw == 1 && o->h == a->h &&
         o->w == a->w && o->pt == 0 && o->pl == 0;
}

/* y = (acc ? y : 0) + x W + bias, then act, over m rows, for a pointwise conv or dense
   op: by its integer codes at inference when it has them (infer), else in float. */
static void op_gemm(const tt_op *o, int infer, int m, const float *x, float *y, int acc,
                    int act) {
  if (infer && o->qw) {
    const tt_qmat W = {o->cin, o->c, o->qmax, o->qw, o->qwb, o->qws};
    tt_qgemm(m, &W, x, o->cin, y, o->c, acc, o->bias, act);
  } else {
    tt_gemm(0, 0, m, o->c, o->cin, x, o->cin, o->wt, o->c, y, o->c, acc, o->bias, act);
  }
}

/* mask: dropout keep-mask storage in training (NULL at inference, infer = 1). */
static void op_forward(tt_net *net, const tt_op *o, const float *x, const float *x1,
                       float *y, int n, int infer, uint64_t *rng, float *mask) {
  size_t sz = (size_t)n * op_size(o);
  switch (o->d.type) {
  case TT_OP_CONV2D:
    if (is_pointwise(net, o)) {
      op_gemm(o, infer, n * o->h * o->w, x, y, 0, o->d.act);
    } else {
      tt_shape s = spatial(net, o, n);
      tt_conv2d(&s, x, o->wt, o->bias, o->d.act, y);
    }
    break;
  case TT_OP_DEPTHWISE: {
    tt_shape s = spatial(net, o, n);
    tt_dwconv(&s, x, o->wt, o->bias, o->d.act, y);
  } break;
  case TT_OP_DENSE:
    op_gemm(o, infer, n, x, y, 0, o->d.act);
    break;
  case TT_OP_ADD:
    tt_add(sz, x, x1, y);
    if (o->d.act) tt_bias_act((int)(sz / o->c), o->c, y, NULL, o->d.act);
    break;
  case TT_OP_AVGPOOL: {
    tt_shape s = spatial(net, o, n);
    tt_avgpool(&s, x, y);
  } break;
  case TT_OP_ACT:
    if (o->d.act == TT_ACT_HSWISH) { tt_hswish(sz, x, o->d.scale, o->d.offset, y); break; }
    if (o->d.act == TT_ACT_HSIGMOID) { tt_hsigmoid(sz, x, o->d.scale, o->d.offset, y); break; }
    memcpy(y, x, sz * sizeof *y);
    tt_bias_act((int)(sz / o->c), o->c, y, NULL, o->d.act);
    break;
  case TT_OP_MEAN: {
    const tt_op *a = &net->ops[o->d.in0];
    tt_mean(n, a->h * a->w, o->c, x, y);
  } break;
  case TT_OP_GATE: tt_gate(n, o->h * o->w, o->c, x, x1, y); break;
  case TT_OP_PRELU: tt_prelu(sz / o->c, o->c, x, o->wt, y); break;
  case TT_OP_SOFTMAX: tt_softmax((int)(sz / o->c), o->c, x, y); break;
  case TT_OP_AFFINE: tt_scale_shift(sz, x, o->d.scale, o->d.offset, y); break;
  case TT_OP_DROPOUT:
    if (!mask || o->d.scale == 0) { memcpy(y, x, sz * sizeof *y); break; }
    for (size_t i = 0; i < sz; i++) {
      mask[i] = tt_rng_uniform(rng) < o->d.scale ? 0.0f : 1.0f / (1.0f - o->d.scale);
      y[i] = x[i] * mask[i];
    }
    break;
  }
}

/* A dense layer, or a pointwise conv seen as one over m = n*h*w rows. zero: gwt is due
   to be zeroed, so the product overwrites it. */
static void dense_backward(tt_op *o, const float *x, const float *g, float *dx, int m,
                           int zero) {
  tt_gemm(1, 0, o->cin, o->c, m, x, o->cin, g, o->c, o->gwt, o->c, !zero, NULL, 0);
  tt_bias_backward(m, o->c, g, o->gbias);
  if (dx) tt_gemm(0, 1, m, o->cin, o->c, g, o->c, o->wt, o->c, dx, o->cin, 1, NULL, 0);
}

/* g is dL/dy (owned by this op, modified in place); dx/dx1 accumulate dL/d(inputs) and
   may be NULL when no gradient is wanted there. tmp holds one input-sized tensor. */
static int op_backward(tt_net *net, tt_op *o, const float *x, const float *y, float *g,
                       float *dx, float *dx1, int n, const float *mask, float *tmp) {
  unsigned char *gz = &net->gz[o - net->ops];
  size_t sz = (size_t)n * op_size(o), xsz = (size_t)n * op_size(&net->ops[o->d.in0]);
  if (o->d.act && o->d.type != TT_OP_ACT) tt_act_backward(sz, y, g, o->d.act);
  if (o->d.type == TT_OP_ACT && o->d.act > TT_ACT_RELU6) { /* judged from the input x */
    if (dx && o->d.act == TT_ACT_HSWISH) tt_hswish_backward(sz, x, o->d.scale, o->d.offset, g, dx);
    if (dx && o->d.act == TT_ACT_HSIGMOID) tt_hsigmoid_backward(sz, x, o->d.scale, o->d.offset, g, dx);
    return TT_OK;
  }
  switch (o->d.type) {
  case TT_OP_CONV2D:
    if (!is_pointwise(net, o))
      return tt_fail(TT_EUNSUP, "conv2d '%s': training a %dx%d convolution is not supported; "
                     "train fewer blocks", o->name, o->d.kh, o->d.kw);
    dense_backward(o, x, g, dx, (int)(sz / o->c), *gz);
    *gz = 0;
    break;
  case TT_OP_DENSE: dense_backward(o, x, g, dx, n, *gz), *gz = 0; break;
  case TT_OP_DEPTHWISE: {
    tt_shape s = spatial(net, o, n);
    tt_dwconv_backward_filter(&s, x, g, o->gwt);
    tt_bias_backward((int)(sz / o->c), o->c, g, o->gbias);
    if (dx) { tt_dwconv_backward_input(&s, g, o->wt, tmp); tt_acc(xsz, tmp, dx); }
  } break;
  case TT_OP_ADD:
    if (dx) tt_acc(sz, g, dx);
    if (dx1) tt_acc(sz, g, dx1);
    break;
  case TT_OP_AVGPOOL:
    if (dx) {
      tt_shape s = spatial(net, o, n);
      tt_avgpool_backward(&s, g, tmp);
      tt_acc(xsz, tmp, dx);
    }
    break;
  case TT_OP_ACT:
    tt_act_backward(sz, y, g, o->d.act);
    if (dx) tt_acc(sz, g, dx);
    break;
  case TT_OP_SOFTMAX: /* dx = y * (g - sum(g*y)) per row */
    if (dx)
      for (size_t r = 0; r < sz; r += o->c) {
        double dot = 0;
        for (int k = 0; k < o->c; k++) dot += (double)g[r + k] * y[r + k];
        for (int k = 0; k < o->c; k++) dx[r + k] += y[r + k] * (g[r + k] - (float)dot);
      }
    break;
  case TT_OP_AFFINE:
    if (dx) for (size_t i = 0; i < sz; i++) dx[i] += o->d.scale * g[i];
    break;
  case TT_OP_MEAN:
    if (dx) tt_mean_backward(n, (int)(xsz / sz), o->c, g, dx);
    break;
  case TT_OP_GATE:
    tt_gate_backward(n, o->h * o->w, o->c, x, net->act[o->d.in1], g, dx, dx1);
    break;
  case TT_OP_PRELU: tt_prelu_backward(sz / o->c, o->c, x, o->wt, g, dx, o->gwt); break;
  case TT_OP_DROPOUT:
    if (dx) for (size_t i = 0; i < sz; i++) dx[i] += mask ? g[i] * mask[i] : g[i];
    break;
  }
  return TT_OK;
}

/* ---- inference: activation buffers recycled by liveness --------------------------- */

static int take_buf(tt_net *net, size_t need) {
  int best = -1;
  for (int i = 0; i < net->npool; i++) /* the smallest free buffer that fits, else the largest free */
    if (!net->pool[i].busy &&
        (best < 0 || (net->pool[i].cap >= need
                          ? net->pool[best].cap < need || net->pool[i].cap < net->pool[best].cap
                          : net->pool[best].cap < need && net->pool[i].cap > net->pool[best].cap)))
      best = i;
  if (best < 0) {
    buf *p = realloc(net->pool, (size_t)(net->npool + 1) * sizeof *p);
    if (!p) return -1;
    net->pool = p;
    best = net->npool++;
    net->pool[best] = (buf){NULL, 0, 0};
  }
  buf *b = &net->pool[best];
  if (b->cap < need) {
    float *q = realloc(b->p, need * sizeof *q);
    if (!q) return -1;
    b->p = q, b->cap = need;
  }
  b->busy = 1;
  return best;
}

/* For inference: if op i is a pointwise convolution without activation whose only reader
   is an add right after it (ops <= last), and the add's other input r is an op's
   (pooled) output that nothing reads after the add, returns r, else 0. Needs lastuse. */
static int residual_partner(const tt_net *net, int i, int last) {
  const tt_op *o = &net->ops[i];
  if (i + 1 > last || o->d.type != TT_OP_CONV2D || o->d.act != TT_ACT_NONE ||
      !is_pointwise(net, o) || net->lastuse[i] != i + 1)
    return 0;
  const tt_op *ad = &net->ops[i + 1];
  if (ad->d.type != TT_OP_ADD || (ad->d.in0 == i) == (ad->d.in1 == i)) return 0;
  const int r = ad->d.in0 == i ? ad->d.in1 : ad->d.in0;
  if (r < 1 || r == o->d.in0 || net->slot[r] < 0 || net->lastuse[r] != i + 1) return 0;
  return r;
}

/* ---- inference: inverted-residual blocks fused in row bands ------------------------
   MobileNetV2's blocks are expand (pointwise) -> 3x3 depthwise -> project (pointwise),
   and the expanded tensors between them are the largest activations of the network
   (112x112x144 floats = 7 MB for one image): op by op, each is written to memory by
   one kernel and read back by the next. Run a band of output rows at a time instead, the
   expanded rows of the band (E) and the depthwise output (D) stay in L2, and only the
   block's input and output go through memory. Expanded rows shared by consecutive bands
   are kept rather than recomputed. Same kernels on sub-blocks of the same tensors:
   results equal the op-by-op ones up to the order of float additions (a GEMM's last
   rows of a band may take another tile path; the folded add sums in another order). */

/* Bytes of E and D per band: well inside L2 (2 MB on the machines measured), leaving
   room for the weights the band's GEMMs stream. */
#ifndef TT_BAND_BYTES
#define TT_BAND_BYTES (1024 * 1024)
#endif
size_t tt_band_bytes = TT_BAND_BYTES; /* not in net.h: tests shrink it to get many bands */
/* Threads a job can run on at once: band buffer sets (see block_task). */
#define TT_POOL_MAX 64
#ifndef TT_STRIPE_ROWS
#define TT_STRIPE_ROWS 16
#endif
int tt_stripe_rows = TT_STRIPE_ROWS; /* the same: tests lower it to cut small images */

typedef struct {
  int e, d, p;   /* expand (or -1), depthwise, project op indices */
  int r;         /* the residual add's shortcut op when the add is folded in, else 0 */
} block;

static int grow(buf *b, size_t need) {
  if (b->cap >= need) return 1;
  float *q = realloc(b->p, need * sizeof *q);
  if (!q) return 0;
  b->p = q, b->cap = need;
  return 1;
}

/* Whether ops from i on form [expand ->] 3x3 depthwise -> project, each read only by
   the next and none of them `last` (so no intermediate is wanted by anyone). */
static int match_block(const tt_net *net, int i, int last, block *bk) {
  const tt_op *o = &net->ops[i];
  int d = i;
  bk->e = -1;
  if (o->d.type == TT_OP_CONV2D && is_pointwise(net, o)) {
    if (net->lastuse[i] != i + 1) return 0;
    bk->e = i, d = i + 1;
  }
  if (d + 1 > last) return 0;
  const tt_op *dw = &net->ops[d], *pj = &net->ops[d + 1];
  if (dw->d.type != TT_OP_DEPTHWISE || dw->d.in0 != (bk->e >= 0 ? bk->e : dw->d.in0) ||
      dw->d.kh != 3 || dw->d.kw != 3 || dw->pt > 1 || dw->pl > 1 || net->lastuse[d] != d + 1 ||
      pj->d.type != TT_OP_CONV2D || pj->d.in0 != d || !is_pointwise(net, pj))
    return 0;
  bk->d = d, bk->p = d + 1;
  bk->r = residual_partner(net, d + 1, last);
  /* Folding the add writes the output over the shortcut while later bands still read
     the block's input: safe when they are different tensors, or when the input is
     expanded (stride 1) before any band overwrites it (see run_block); not when the
     depthwise reads the input directly. */
  const int in0 = bk->e >= 0 ? net->ops[bk->e].d.in0 : dw->d.in0;
  if (bk->r == in0 && (bk->e < 0 || dw->d.sh != 1)) bk->r = 0;
  return 1;
}

typedef struct {
  const tt_net *net;
  const block *bk;
  const float *x, *res; /* res: the shortcut, when it is not already in y (see run_block) */
  float *y;
  int n, tasks, rows, R; /* rows: tasks cut rows, not images; R: output rows per band */
  int *busy, sets;       /* image tasks: which of the sets of band buffers are in use */
} block_run;

/* Output rows [oy_lo, oy_hi) of images [b0, b1) of a block, with band buffers E and D of
   its own. */
static void block_rows(const block_run *br, int b0, int b1, int oy_lo, int oy_hi, float *E,
                       float *D) {
  const tt_net *net = br->net;
  const block *bk = br->bk;
  const tt_op *dw = &net->ops[bk->d], *pj = &net->ops[bk->p];
  const tt_op *in = &net->ops[bk->e >= 0 ? net->ops[bk->e].d.in0 : dw->d.in0];
  const tt_op *ex = bk->e >= 0 ? &net->ops[bk->e] : NULL;
  const int H = in->h, W = in->w, Cin = in->c, Ce = dw->c, OH = dw->h, OW = dw->w;
  const int Cp = pj->c, R = br->R;
  const tt_shape whole = spatial(net, dw, 1);
  const size_t rowE = (size_t)W * Ce, rowY = (size_t)OW * Cp;
  const int act = bk->r ? net->ops[bk->p + 1].d.act : pj->d.act;
  for (int b = b0; b < b1; b++) {
    const float *xb = br->x + (size_t)b * H * W * Cin;
    float *yb = br->y + (size_t)b * OH * rowY;
    int lo = 0, hi = 0; /* input rows whose expansion E holds */
    for (int oy0 = oy_lo; oy0 < oy_hi; oy0 += R) {
      const int oy1 = oy0 + R < oy_hi ? oy0 + R : oy_hi;
      /* The band as an image of its own: input rows [need_lo, need_hi). */
      int need_lo;
      const tt_shape sh = tt_band(&whole, oy0, oy1, &need_lo);
      const int need_hi = need_lo + sh.h;
      const float *band;
      if (ex) {
        int from = need_lo, keep = 0;
        if (need_lo < hi && need_lo >= lo) { /* rows the last band expanded already */
          keep = hi - need_lo;
          memmove(E, E + (size_t)(need_lo - lo) * rowE, (size_t)keep * rowE * sizeof *E);
          from = hi;
        }
        /* With the add folded in, y may also be this block's input x: rows are expanded
           (below, from `from` on) before any band writes them, since a band's output
           rows end before the input rows it needs. */
        if (need_hi > from)
          op_gemm(ex, 1, (need_hi - from) * W, xb + (size_t)from * W * Cin,
                  E + (size_t)keep * rowE, 0, ex->d.act);
        lo = need_lo, hi = need_hi;
        band = E;
      } else {
        band = xb + (size_t)need_lo * rowE;
      }
      tt_dwconv(&sh, band, dw->wt, dw->bias, dw->d.act, D);
      float *yr = yb + (size_t)oy0 * rowY;
      if (br->res)
        memcpy(yr, br->res + (size_t)b * OH * rowY + (size_t)oy0 * rowY,
               (size_t)(oy1 - oy0) * rowY * sizeof *yr);
      op_gemm(pj, 1, (oy1 - oy0) * OW, D, yr, bk->r != 0, act);
    }
  }
}

/* A stripe of rows or one image, with the first free set of band buffers: tasks taken by
   whichever thread is free (a slower core takes fewer), and at most one task a thread
   runs at a time, so a set of buffers a thread is always free. */
static void block_task(void *p, int t) {
  const block_run *br = p;
  const int OH = br->net->ops[br->bk->d].h;
  int s = 0;
  while (__atomic_exchange_n(&br->busy[s], 1, __ATOMIC_ACQUIRE)) s = s + 1 < br->sets ? s + 1 : 0;
  if (br->rows)
    block_rows(br, 0, br->n, t * OH / br->tasks, (t + 1) * OH / br->tasks,
               br->net->band[2 * s].p, br->net->band[2 * s + 1].p);
  else
    block_rows(br, t, t + 1, 0, OH, br->net->band[2 * s].p, br->net->band[2 * s + 1].p);
  __atomic_store_n(&br->busy[s], 0, __ATOMIC_RELEASE);
}

/* Stripes: up to 3 a thread, taken by whichever thread is free, so a slower core takes
   fewer (one a thread waited on the slowest core); a multiple of the threads, of at
   least tt_stripe_rows rows, as each stripe recomputes the expanded rows at its edges. */
static int stripe_tasks(int OH, int sets) {
  int k = OH / (sets * tt_stripe_rows);
  k = k < 1 ? 1 : k > 3 ? 3 : k;
  return sets * k;
}

/* How a block's work goes to the threads (see run_block): whole images (1), stripes of
   output rows (2), or neither (0: each band's kernels cut their own loops). */
static int block_cut(const tt_net *net, const block *bk, int n) {
  const int T = tt_threads();
  const tt_op *ex = bk->e >= 0 ? &net->ops[bk->e] : NULL;
  if (T < 2) return 0;
  if (n >= T) return 1;
  /* Stripes expand 1-2 input rows on both sides of a cut twice: worth it from 16 output
     rows a stripe. Only by integer codes, whose rows come out the same in any stripe;
     a float GEMM's rows past a multiple of 4 take another tile path. */
  if (net->ops[bk->d].h / T >= tt_stripe_rows && (!ex || ex->qw) && net->ops[bk->p].qw) return 2;
  return 0;
}

/* Runs a matched block for n images from input x into y, cut for the threads as
   block_cut says (cut). With the add folded in, y
   holds the shortcut, or res does (res: the shortcut is x itself and the block is cut
   in stripes, whose writes would overwrite input rows a neighbouring stripe still reads;
   each band then copies its shortcut rows into y first). Returns 0 if the band buffers
   cannot be had (the caller then runs the ops one by one).
   With threads, a batch goes to them as whole images, and one large image (from 16
   output rows a thread) as stripes of rows, each thread with band buffers of its own:
   when each band's three kernels cut their own loops instead, every band costs three
   waits, 7x7 and 14x14 bands are too small to split evenly (49 rows are 7 + 6 four-row
   tiles), and the expanded rows one core writes the other reads; on two cores fused
   bands then gained nothing over separate ops. An image runs the same kernels on the
   same rows either way (a loop inside a task runs inline; kernels' results do not depend
   on the cut), so the results do not change. */
static int run_block(tt_net *net, const block *bk, int cut, const float *x, float *y,
                     const float *res, int n) {
  const tt_op *dw = &net->ops[bk->d];
  const tt_op *in = &net->ops[bk->e >= 0 ? net->ops[bk->e].d.in0 : dw->d.in0];
  const int s = dw->d.sh, OH = dw->h, T = tt_threads();
  const size_t rowE = (size_t)in->w * dw->c, rowD = (size_t)dw->w * dw->c;
  const int ex = bk->e >= 0;
  int busy[TT_POOL_MAX] = {0};
  const int sets = cut ? (T < TT_POOL_MAX ? T : TT_POOL_MAX) : 1; /* band buffer sets */
  block_run br = {net, bk, x, res, y, n, cut == 1 ? n : cut == 2 ? stripe_tasks(OH, sets) : 1,
                  cut == 2, 0, busy, sets};
  int R = (int)(tt_band_bytes / sizeof(float) / ((ex ? (size_t)s * rowE : 0) + rowD));
  br.R = R < 1 ? 1 : R > OH ? OH : R;
  if (net->nband < 2 * sets) {
    buf *b = realloc(net->band, 2 * (size_t)sets * sizeof *b);
    if (!b) return 0;
    memset(b + net->nband, 0, (2 * (size_t)sets - net->nband) * sizeof *b);
    net->band = b, net->nband = 2 * sets;
  }
  /* A band of R output rows reads at most (R-1)*s + 3 input rows. */
  for (int t = 0; t < sets; t++)
    if ((ex && !grow(&net->band[2 * t], ((size_t)(br.R - 1) * s + 3) * rowE)) ||
        !grow(&net->band[2 * t + 1], (size_t)br.R * rowD))
      return 0;
  if (br.tasks > 1) tt_parallel(br.tasks, block_task, &br);
  else block_rows(&br, 0, n, 0, OH, net->band[0].p, net->band[1].p);
  return 1;
}

/* Runs ops first..last (first >= 1) on the output of op first-1: x, or pool buffer `in`
   (in >= 0; ours, so a residual add may be folded into it). No op from first on reads an
   earlier output (see batch_split). Needs lastuse. */
static const float *forward_ops(tt_net *net, const float *x, int in, int n, int first, int last) {
  for (int i = 0; i < net->npool; i++) net->pool[i].busy = i == in;
  net->slot[first - 1] = in;
  for (int i = first; i <= last; i++) {
    tt_op *o = &net->ops[i];
    block bk;
    if (match_block(net, i, last, &bk)) {
      const int in0 = bk.e >= 0 ? o->d.in0 : net->ops[bk.d].d.in0, sa = net->slot[in0];
      const tt_op *pj = &net->ops[bk.p];
      /* The shortcut is the input, cut in stripes: the output goes to a buffer of its own */
      const int cut = block_cut(net, &bk, n), apart = bk.r == in0 && cut == 2;
      int sy = bk.r && !apart ? net->slot[bk.r] : take_buf(net, (size_t)n * op_size(pj));
      if (sy < 0) { tt_fail(TT_ENOMEM, "out of memory for the activation of '%s' (batch %d)", pj->name, n); return NULL; }
      if (run_block(net, &bk, cut, sa < 0 ? x : net->pool[sa].p, net->pool[sy].p,
                    apart ? net->pool[net->slot[bk.r]].p : NULL, n)) {
        /* the block's input is free once nothing after the block reads it */
        const int end = bk.r ? bk.p + 1 : bk.p;
        if (sa >= 0 && net->lastuse[in0] <= end && net->pool[sa].p != net->pool[sy].p) net->pool[sa].busy = 0;
        for (int k = i; k < end; k++) net->slot[k] = -1; /* never materialised, never read */
        net->slot[end] = sy;
        i = end;
        continue;
      }
      if (!bk.r || apart) net->pool[sy].busy = 0; /* no band buffers: one op at a time after all */
    }
    const int r = residual_partner(net, i, last);
    if (r > 0) {
      /* The add after this projection is folded into its GEMM: the product accumulates
         onto the shortcut's buffer, which becomes the add's output. Saves writing the
         projection and reading it back, and one pass over both inputs. */
      const tt_op *ad = &net->ops[i + 1];
      const int m = n * o->h * o->w;
      const int sa = net->slot[o->d.in0];
      op_gemm(o, 1, m, sa < 0 ? x : net->pool[sa].p, net->pool[net->slot[r]].p, 1, ad->d.act);
      if (net->lastuse[o->d.in0] == i && sa >= 0) net->pool[sa].busy = 0;
      net->slot[i] = -1; /* never read: its only reader was the add */
      net->slot[i + 1] = net->slot[r];
      i++;
      continue;
    }
    uint64_t need = (uint64_t)n * op_size(o);
    if (need > MAX_TENSOR * 4 || need > SIZE_MAX / sizeof(float)) { tt_fail(TT_ENOMEM, "batch of %d is too large for '%s'", n, o->name); return NULL; }
    int s = take_buf(net, (size_t)need);
    if (s < 0) { tt_fail(TT_ENOMEM, "out of memory for the activation of '%s' (batch %d)", o->name, n); return NULL; }
    net->slot[i] = s;
    const float *a = net->slot[o->d.in0] < 0 ? x : net->pool[net->slot[o->d.in0]].p;
    const float *b = NULL;
    if (two_inputs(o->d.type)) b = net->slot[o->d.in1] < 0 ? x : net->pool[net->slot[o->d.in1]].p;
    op_forward(net, o, a, b, net->pool[s].p, n, 1, NULL, NULL);
    for (int k = 0; k < (two_inputs(o->d.type) ? 2 : 1); k++) {
      int in = k ? o->d.in1 : o->d.in0;
      if (net->lastuse[in] == i && net->slot[in] >= 0) net->pool[net->slot[in]].busy = 0;
    }
  }
  return net->pool[net->slot[last]].p;
}

/* Weight bytes an op streams at inference: 16-bit codes where it has them. */
static size_t infer_weight_bytes(const tt_op *o) { return o->wn * (o->qw ? 2 : 4); }

/* ---- inference on a batch: the first layers image by image ------------------------
   Blocks run in bands within an image (run_block), but a batch went layer by layer, and
   the first layers' tensors for 16 images (16 x 112x112x24 floats between two blocks,
   19 MB) leave the caches, while their weights are too small for batching to save
   anything. So a batch runs image by image up to a split op, then whole: the split is
   an op that alone is read later (no shortcut crosses it), and every segment between
   such ops up to it reads fewer weight bytes than one image's tensor entering it.
   Returns 0 when nothing is worth splitting. Needs lastuse. */
static int batch_split(const tt_net *net, int last) {
  int split = 0, reach = 0; /* reach: the last reader of any op before i */
  size_t weights = 0;
  for (int i = 1; i < last; i++) {
    weights += infer_weight_bytes(&net->ops[i]);
    reach = net->lastuse[i - 1] > reach ? net->lastuse[i - 1] : reach;
    if (reach > i) continue; /* a tensor before i is still read after it */
    if (weights > op_size(&net->ops[split]) * sizeof(float)) break;
    split = i, weights = 0;
  }
  return split;
}

const float *tt_net_forward(tt_net *net, const float *x, int n, int last) {
  if (last < 0) last = net->n - 1;
  if (last >= net->n) { tt_fail(TT_EINVAL, "op %d does not exist", last); return NULL; }
  if (n < 1 || (uint64_t)n * op_size(&net->ops[0]) > MAX_TENSOR) {
    tt_fail(TT_EINVAL, "batch of %d is out of range", n);
    return NULL;
  }
  if (!net->slot) {
    net->slot = malloc(MAX_OPS * sizeof *net->slot);
    net->lastuse = malloc(MAX_OPS * sizeof *net->lastuse);
    if (!net->slot || !net->lastuse) { tt_fail(TT_ENOMEM, "out of memory"); return NULL; }
  }
  for (int i = 0; i <= last; i++) net->lastuse[i] = i == last ? MAX_OPS : i;
  for (int i = 1; i <= last; i++) {
    const tt_op_desc *d = &net->ops[i].d;
    net->lastuse[d->in0] = net->lastuse[d->in0] > i ? net->lastuse[d->in0] : i;
    if (two_inputs(d->type)) net->lastuse[d->in1] = net->lastuse[d->in1] > i ? net->lastuse[d->in1] : i;
  }
  if (last == 0) return x;
  const int split = n > 1 ? batch_split(net, last) : 0;
  if (!split) return forward_ops(net, x, -1, n, 1, last);
  const size_t in = op_size(&net->ops[0]), mid = op_size(&net->ops[split]);
  if ((uint64_t)n * op_size64(&net->ops[split]) > MAX_TENSOR * 4) {
    tt_fail(TT_ENOMEM, "batch of %d is too large for '%s'", n, net->ops[split].name);
    return NULL;
  }
  if (!grow(&net->split, (size_t)n * mid)) {
    tt_fail(TT_ENOMEM, "out of memory for the activation of '%s' (batch %d)", net->ops[split].name, n);
    return NULL;
  }
  for (int b = 0; b < n; b++) {
    const float *y = forward_ops(net, x + (size_t)b * in, -1, 1, 1, split);
    if (!y) return NULL;
    memcpy(net->split.p + (size_t)b * mid, y, mid * sizeof *y);
  }
  /* The batch's tensor enters the pool (swapped with a free buffer), as if op `split`
     had run on the whole batch. */
  const int s = take_buf(net, 0);
  if (s < 0) { tt_fail(TT_ENOMEM, "out of memory"); return NULL; }
  const buf t = net->pool[s];
  net->pool[s] = net->split, net->split = t;
  return forward_ops(net, NULL, s, n, split + 1, last);
}

size_t tt_net_activation_bytes(const tt_net *net) {
  size_t b = (net->arena_cap + net->split.cap) * sizeof(float);
  for (int i = 0; i < net->npool; i++) b += net->pool[i].cap * sizeof(float);
  return b;
}

size_t tt_net_param_count(const tt_net *net) {
  size_t p = 0;
  for (int i = 0; i < net->n; i++) p += net->ops[i].wn + net->ops[i].bn;
  return p;
}

/* ---- training: keep everything for backward --------------------------------------- */

static int train_alloc(tt_net *net, int n) {
  if (net->tcap >= n && net->arena) return TT_OK;
  uint64_t total = 0, maxsz = op_size(&net->ops[0]);
  for (int i = 0; i < net->n; i++) {
    uint64_t s = op_size(&net->ops[i]);
    maxsz = s > maxsz ? s : maxsz;
    total += s * (i ? 2 : 1) + (net->ops[i].d.type == TT_OP_DROPOUT ? s : 0);
  }
  total += maxsz; /* < 4096 ops * 3 * 2^28: no overflow */
  free_training(net);
  if (total > SIZE_MAX / sizeof(float) / (uint64_t)n)
    return tt_fail(TT_ENOMEM, "out of memory for training activations (batch %d, %.0f MB)", n,
                   (double)total * (double)n * sizeof(float) / 1048576.0);
  total *= (uint64_t)n;
  net->arena = malloc((size_t)total * sizeof(float));
  net->act = calloc((size_t)net->n, sizeof(float *));
  net->gz = calloc((size_t)net->n, 1);
  net->grad = calloc((size_t)net->n, sizeof(float *));
  net->mask = calloc((size_t)net->n, sizeof(float *));
  if (!net->arena || !net->act || !net->grad || !net->mask || !net->gz) {
    free_training(net);
    return tt_fail(TT_ENOMEM, "out of memory for training activations (batch %d, %llu MB)", n,
                   (unsigned long long)(total * sizeof(float) >> 20));
  }
  net->arena_cap = (size_t)total;
  float *p = net->arena;
  for (int i = 0; i < net->n; i++) {
    size_t s = op_size(&net->ops[i]) * (size_t)n;
    net->grad[i] = p, p += s;
    if (i) net->act[i] = p, p += s;
    if (net->ops[i].d.type == TT_OP_DROPOUT) net->mask[i] = p, p += s;
  }
  net->scratch = p;
  net->tcap = n;
  for (int i = 1; i < net->n; i++) {
    tt_op *o = &net->ops[i];
    if (o->wn && !o->gwt && !(o->gwt = calloc(o->wn, sizeof(float)))) return tt_fail(TT_ENOMEM, "out of memory");
    if (o->bn && !o->gbias && !(o->gbias = calloc(o->bn, sizeof(float)))) return tt_fail(TT_ENOMEM, "out of memory");
  }
  return TT_OK;
}

const float *tt_net_forward_train(tt_net *net, const float *x, int n, uint64_t *rng) {
  if (n < 1 || (uint64_t)n * op_size(&net->ops[0]) > MAX_TENSOR) { tt_fail(TT_EINVAL, "batch of %d is out of range", n); return NULL; }
  if (train_alloc(net, n) < 0) return NULL;
  net->act[0] = (float *)x; /* read only; the caller keeps x alive until backward */
  net->tx = x;
  net->tn = n;
  for (int i = 1; i < net->n; i++) {
    tt_op *o = &net->ops[i];
    op_forward(net, o, net->act[o->d.in0], two_inputs(o->d.type) ? net->act[o->d.in1] : NULL,
               net->act[i], n, 0, rng, net->mask[i]);
  }
  return net->act[net->n - 1];
}

int tt_net_backward(tt_net *net, const float *dy, float *dx) {
  if (!net->arena || !net->tx) return tt_fail(TT_ESTATE, "backward without a training forward pass");
  int n = net->tn;
  /* The input's gradient is only written when the caller wants it (dx): ops reading the
     input get no dx0 otherwise (a 115 KB memset per step of head training). */
  for (int i = dx ? 0 : 1; i < net->n; i++)
    tt_zero(op_size(&net->ops[i]) * (size_t)n, net->grad[i]);
  int last = net->n - 1;
  memcpy(net->grad[last], dy, op_size(&net->ops[last]) * (size_t)n * sizeof(float));
  for (int i = last; i >= 1; i--) {
    tt_op *o = &net->ops[i];
    float *dx0 = o->d.in0 || dx ? net->grad[o->d.in0] : NULL;
    float *dx1 = two_inputs(o->d.type) && (o->d.in1 || dx) ? net->grad[o->d.in1] : NULL;
    int rc = op_backward(net, o, net->act[o->d.in0], net->act[i], net->grad[i], dx0, dx1, n,
                         net->mask[i], net->scratch);
    if (rc < 0) { flush_zero_grad(net); return rc; }
  }
  flush_zero_grad(net); /* any op the loop did not overwrite (none today) */
  if (dx) memcpy(dx, net->grad[0], op_size(&net->ops[0]) * (size_t)n * sizeof(float));
  return TT_OK;
}

/* Zeroes the weight gradients still due to be zeroed, so that anyone reading them after
   a backward pass (or a failed one) sees what tt_net_zero_grad promised. */
static void flush_zero_grad(tt_net *net) {
  if (!net->gz) return;
  for (int i = 1; i < net->n; i++)
    if (net->gz[i]) memset(net->ops[i].gwt, 0, net->ops[i].wn * sizeof(float)), net->gz[i] = 0;
}

void tt_net_zero_grad(tt_net *net) {
  for (int i = 1; i < net->n; i++) {
    tt_op *o = &net->ops[i];
    /* Dense and pointwise weight gradients are one GEMM each, which can overwrite rather
       than accumulate: the next backward does the zeroing (a 700 KB memset per step of
       head training). Other ops' gradients accumulate over several kernel calls. */
    if (o->gwt && net->gz && (o->d.type == TT_OP_DENSE || o->d.type == TT_OP_CONV2D))
      net->gz[i] = 1;
    else if (o->gwt)
      memset(o->gwt, 0, o->wn * sizeof(float));
    if (o->gbias) memset(o->gbias, 0, o->bn * sizeof(float));
  }
}
