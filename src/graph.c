/* A network as a graph: the ordered op list, each op's output shape inferred and its
   inputs and weight sizes checked as it is added (hostile model files reach the engine
   here), and the edits the loaders make to the weights (folding batch norm, declaring
   uint8 codes) or to the list (copying the trainable tail into a net of its own). The
   first stop of every model: tfjs files (wasm/), saved models (savefile.c). */
#include "net_internal.h"
#include "tt.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tt_net *tt_net_create(int h, int w, int c) {
  if (h < 1 || w < 1 || c < 1 || h > MAX_DIM || w > MAX_DIM || c > MAX_CHANNELS || (uint64_t)h * w * c > MAX_TENSOR) {
    tt_fail(TT_EINVAL, "input shape %dx%dx%d is out of range", h, w, c);
    return NULL;
  }
  tt_net *net = calloc(1, sizeof *net);
  if (!net) {
    tt_fail(TT_ENOMEM, "out of memory creating a network");
    return NULL;
  }
  tt_op_desc d = {0};
  if (tt_net_add(net, "input", &d, NULL, 0, NULL, 0) < 0) {
    tt_net_free(net);
    return NULL;
  }
  net->ops[0].h = h, net->ops[0].w = w, net->ops[0].c = c;
  return net;
}

void tt_net_free(tt_net *net) {
  if (!net) return;
  tt_net_free_training(net); /* first: it may zero gradients still due to be zeroed */
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
  static const char *names[TT_OP_COUNT] = {"input",   "conv2d", "depthwise", "dense", "add",  "avgpool", "act",
                                           "softmax", "affine", "dropout",   "mean",  "gate", "prelu"};
  return t >= 0 && t < TT_OP_COUNT ? names[t] : "?";
}

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
  case TT_OP_CONV2D:
  case TT_OP_DEPTHWISE:
  case TT_OP_AVGPOOL: {
    if (d->kh < 1 || d->kw < 1 || d->kh > MAX_KERNEL || d->kw > MAX_KERNEL || d->sh < 1 || d->sw < 1 ||
        d->sh > MAX_STRIDE || d->sw > MAX_STRIDE || d->pt < 0 || d->pb < 0 || d->pl < 0 || d->pr < 0 ||
        d->pt > MAX_KERNEL || d->pb > MAX_KERNEL || d->pl > MAX_KERNEL || d->pr > MAX_KERNEL)
      return tt_fail(TT_EINVAL, "%s '%s': kernel %dx%d, strides %dx%d or padding out of range", type_name(d->type), nm,
                     d->kh, d->kw, d->sh, d->sw);
    int pt, pl;
    o->h = out_dim(a->h + d->pt + d->pb, d->kh, d->sh, d->same, &pt);
    o->w = out_dim(a->w + d->pl + d->pr, d->kw, d->sw, d->same, &pl);
    o->pt = pt + d->pt, o->pl = pl + d->pl;
    if (o->h < 1 || o->w < 1)
      return tt_fail(TT_EINVAL, "%s '%s': a %dx%d kernel does not fit its %dx%d input", type_name(d->type), nm, d->kh,
                     d->kw, a->h, a->w);
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
      return tt_fail(TT_EINVAL, "add '%s': shapes differ, %dx%dx%d ('%s') vs %dx%dx%d ('%s')", nm, a->h, a->w, a->c,
                     a->name, b->h, b->w, b->c, b->name);
  } break;
  case TT_OP_GATE: {
    if (d->in1 < 0 || d->in1 >= net->n)
      return tt_fail(TT_EINVAL, "gate '%s' reads op %d, which does not exist yet", nm, d->in1);
    const tt_op *b = &net->ops[d->in1];
    if (b->h != 1 || b->w != 1 || b->c != a->c)
      return tt_fail(TT_EINVAL, "gate '%s': the gate '%s' is %dx%dx%d, not 1x1x%d", nm, b->name, b->h, b->w, b->c,
                     a->c);
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
  case TT_OP_ACT:
  case TT_OP_SOFTMAX: break;
  default: return tt_fail(TT_EUNSUP, "op '%s': unknown op type %d", nm, d->type);
  }
  if (d->act < TT_ACT_NONE || d->act > TT_ACT_HSIGMOID)
    return tt_fail(TT_EINVAL, "op '%s': unknown activation %d", nm, d->act);
  if (d->act > TT_ACT_RELU6 && (d->type != TT_OP_ACT || !isfinite(d->scale) || !isfinite(d->offset)))
    return tt_fail(TT_EINVAL,
                   "%s '%s': hard-swish/hard-sigmoid only as an act op, with finite "
                   "constants",
                   type_name(d->type), nm);
  if (op_size64(o) > MAX_TENSOR)
    return tt_fail(TT_ENOMEM, "op '%s': output %dx%dx%d is too large", nm, o->h, o->w, o->c);
  if (need_w > MAX_TENSOR)
    return tt_fail(TT_ENOMEM, "%s '%s': %llu weights are too many", type_name(d->type), nm, (unsigned long long)need_w);
  if (wn != need_w || (bn != need_b && bn != 0))
    return tt_fail(TT_EINVAL,
                   "%s '%s': weights have %zu values and bias %zu; its %dx%dx%d "
                   "input needs %llu and %zu",
                   type_name(d->type), nm, wn, bn, a->h, a->w, a->c, (unsigned long long)need_w, need_b);
  return TT_OK;
}

int tt_net_add(tt_net *net, const char *name, const tt_op_desc *d, const float *w, size_t wn, const float *b,
               size_t bn) {
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
      if (!o->bias) {
        free(o->wt);
        return tt_fail(TT_ENOMEM, "out of memory for '%s'", o->name);
      }
    }
  }
  tt_net_free_training(net); /* the arena's layout depends on the op list */
  return net->n++;
}

int tt_net_fold_bn(tt_net *net, int i, const float *gamma, const float *beta, const float *mean, const float *var,
                   size_t n, float eps) {
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
      return tt_fail(TT_EINVAL, "batch norm of '%s': variance + epsilon is not positive at channel %zu", o->name, k);
  size_t per = o->wn / n; /* weights are laid out with the output channel innermost */
  /* Finite statistics can still fold into infinities (a tiny variance, a huge gamma):
     check every folded value first, so a refused fold leaves the op untouched. */
  for (size_t k = 0; k < n; k++) {
    float s = (gamma ? gamma[k] : 1.0f) / sqrtf(var[k] + eps);
    int ok = isfinite(s) && isfinite((o->bias[k] - mean[k]) * s + (beta ? beta[k] : 0.0f));
    for (size_t j = 0; ok && j < per; j++) ok = isfinite(o->wt[j * n + k] * s);
    if (!ok)
      return tt_fail(TT_EINVAL,
                     "batch norm of '%s': folding gives a non-finite weight at channel %zu "
                     "(gamma %g, mean %g, variance %g, epsilon %g)",
                     o->name, k, gamma ? (double)gamma[k] : 1.0, (double)mean[k], (double)var[k], (double)eps);
  }
  for (size_t k = 0; k < n; k++) {
    float s = (gamma ? gamma[k] : 1.0f) / sqrtf(var[k] + eps);
    for (size_t j = 0; j < per; j++) o->wt[j * n + k] *= s;
    if (o->qw) o->qwb[k] *= s, o->qws[k] *= s;
    o->bias[k] = (o->bias[k] - mean[k]) * s + (beta ? beta[k] : 0.0f);
  }
  return TT_OK;
}

int tt_net_quantized(tt_net *net, int i, double qmin, double qscale) {
  if (i < 1 || i >= net->n) return tt_fail(TT_EINVAL, "quantized weights declared for op %d, which does not exist", i);
  tt_op *o = &net->ops[i];
  if (!(qscale > 0) || !isfinite(qscale) || !isfinite(qmin))
    return tt_fail(TT_EINVAL, "'%s': quantization scale %g, min %g", o->name, qscale, qmin);
  /* w = q*qscale + qmin = qscale*(q - zp): integer codes need an integer zero point. */
  const double zp = -qmin / qscale;
  const int gemm = o->d.type == TT_OP_DENSE || (o->d.type == TT_OP_CONV2D && tt_op_pointwise(net, o));
  if (!gemm || o->cin > TT_QGEMM_MAX_K || o->qw || !o->wt || !(zp >= 0 && zp <= 255) || fabs(zp - nearbyint(zp)) > 1e-6)
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
      return tt_fail(TT_EFORMAT,
                     "weights of '%s' are not the uint8 codes their quantization "
                     "(min %g, scale %g) says: weight %zu is %g",
                     o->name, qmin, qscale, j, (double)o->wt[j]);
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
    return tt_fail(TT_EINVAL, "copying from '%s' needs a %dx%dx%d input, not %dx%dx%d", src->ops[first].name, b->h,
                   b->w, b->c, in->h, in->w, in->c);
  int base = dst->n - first; /* src index j >= first lands at j + base; first-1 is input 0 */
  for (int j = first; j <= last; j++) {
    const tt_op *o = &src->ops[j];
    tt_op_desc d = o->d;
    int ins[2] = {d.in0, d.in1};
    for (int k = 0; k < (two_inputs(d.type) ? 2 : 1); k++) {
      if (ins[k] < first - 1)
        return tt_fail(TT_EINVAL, "op '%s' reads '%s', from before the cut at '%s'", o->name, src->ops[ins[k]].name,
                       src->ops[first - 1].name);
      ins[k] = ins[k] == first - 1 ? 0 : ins[k] + base;
    }
    d.in0 = ins[0], d.in1 = ins[1];
    int rc = tt_net_add(dst, o->name, &d, o->wt, o->wn, o->bias, o->bn);
    if (rc < 0) return rc;
  }
  return TT_OK;
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
