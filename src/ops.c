/* Each op of a network, its forward and its backward side by side, over a batch of NHWC
   tensors: the layer between the schedulers (infer.c runs forward for inference,
   backprop.c runs forward and backward for training) and the kernels (kernels/) that do
   the arithmetic. Also the seedable generator dropout and augmentation draw from. */
#include "net_internal.h"
#include "tt.h"
#include <string.h>

uint64_t tt_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

float tt_rng_uniform(uint64_t *s) { return (float)(tt_rng_next(s) >> 40) * (1.0f / 16777216.0f); }

/* ---- one op, forward and backward side by side ------------------------------------ */

tt_shape tt_op_spatial(const tt_net *net, const tt_op *o, int n) {
  const tt_op *a = &net->ops[o->d.in0];
  tt_shape s = {n, a->h, a->w, a->c, o->d.kh, o->d.kw, o->d.sh, o->d.sw, o->pt, o->pl, o->h, o->w, o->c};
  return s;
}

int tt_op_pointwise(const tt_net *net, const tt_op *o) {
  const tt_op *a = &net->ops[o->d.in0];
  return o->d.kh == 1 && o->d.kw == 1 && o->d.sh == 1 && o->d.sw == 1 && o->h == a->h && o->w == a->w && o->pt == 0 &&
         o->pl == 0;
}

/* y = (acc ? y : 0) + x W + bias, then act, over m rows, for a pointwise conv or dense
   op: by its integer codes at inference when it has them (infer), else in float. */
void tt_op_gemm(const tt_op *o, int infer, int m, const float *x, float *y, int acc, int act) {
  if (infer && o->qw) {
    const tt_qmat W = {o->cin, o->c, o->qmax, o->qw, o->qwb, o->qws};
    tt_qgemm(m, &W, x, o->cin, y, o->c, acc, o->bias, act);
  } else {
    tt_gemm(0, 0, m, o->c, o->cin, x, o->cin, o->wt, o->c, y, o->c, acc, o->bias, act);
  }
}

/* mask: dropout keep-mask storage in training (NULL at inference, infer = 1). */
void tt_op_forward(tt_net *net, const tt_op *o, const float *x, const float *x1, float *y, int n, int infer,
                   uint64_t *rng, float *mask) {
  size_t sz = (size_t)n * op_size(o);
  switch (o->d.type) {
  case TT_OP_CONV2D:
    if (tt_op_pointwise(net, o)) {
      tt_op_gemm(o, infer, n * o->h * o->w, x, y, 0, o->d.act);
    } else {
      tt_shape s = tt_op_spatial(net, o, n);
      tt_conv2d(&s, x, o->wt, o->bias, o->d.act, y);
    }
    break;
  case TT_OP_DEPTHWISE: {
    tt_shape s = tt_op_spatial(net, o, n);
    tt_dwconv(&s, x, o->wt, o->bias, o->d.act, y);
  } break;
  case TT_OP_DENSE: tt_op_gemm(o, infer, n, x, y, 0, o->d.act); break;
  case TT_OP_ADD:
    tt_add(sz, x, x1, y);
    if (o->d.act) tt_bias_act((int)(sz / o->c), o->c, y, NULL, o->d.act);
    break;
  case TT_OP_AVGPOOL: {
    tt_shape s = tt_op_spatial(net, o, n);
    tt_avgpool(&s, x, y);
  } break;
  case TT_OP_ACT:
    if (o->d.act == TT_ACT_HSWISH) {
      tt_hswish(sz, x, o->d.scale, o->d.offset, y);
      break;
    }
    if (o->d.act == TT_ACT_HSIGMOID) {
      tt_hsigmoid(sz, x, o->d.scale, o->d.offset, y);
      break;
    }
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
    if (!mask || o->d.scale == 0) {
      memcpy(y, x, sz * sizeof *y);
      break;
    }
    for (size_t i = 0; i < sz; i++) {
      mask[i] = tt_rng_uniform(rng) < o->d.scale ? 0.0f : 1.0f / (1.0f - o->d.scale);
      y[i] = x[i] * mask[i];
    }
    break;
  }
}

/* A dense layer, or a pointwise conv seen as one over m = n*h*w rows. zero: gwt is due
   to be zeroed, so the product overwrites it. */
static void dense_backward(tt_op *o, const float *x, const float *g, float *dx, int m, int zero) {
  tt_gemm(1, 0, o->cin, o->c, m, x, o->cin, g, o->c, o->gwt, o->c, !zero, NULL, 0);
  tt_bias_backward(m, o->c, g, o->gbias);
  if (dx) tt_gemm(0, 1, m, o->cin, o->c, g, o->c, o->wt, o->c, dx, o->cin, 1, NULL, 0);
}

/* g is dL/dy (owned by this op, modified in place); dx/dx1 accumulate dL/d(inputs) and
   may be NULL when no gradient is wanted there. tmp holds one input-sized tensor. */
int tt_op_backward(tt_net *net, tt_op *o, const float *x, const float *y, float *g, float *dx, float *dx1, int n,
                   const float *mask, float *tmp) {
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
    if (!tt_op_pointwise(net, o))
      return tt_fail(TT_EUNSUP,
                     "conv2d '%s': training a %dx%d convolution is not supported; "
                     "train fewer blocks",
                     o->name, o->d.kh, o->d.kw);
    dense_backward(o, x, g, dx, (int)(sz / o->c), *gz);
    *gz = 0;
    break;
  case TT_OP_DENSE: dense_backward(o, x, g, dx, n, *gz), *gz = 0; break;
  case TT_OP_DEPTHWISE: {
    tt_shape s = tt_op_spatial(net, o, n);
    tt_dwconv_backward_filter(&s, x, g, o->gwt);
    tt_bias_backward((int)(sz / o->c), o->c, g, o->gbias);
    if (dx) {
      tt_dwconv_backward_input(&s, g, o->wt, tmp);
      tt_acc(xsz, tmp, dx);
    }
  } break;
  case TT_OP_ADD:
    if (dx) tt_acc(sz, g, dx);
    if (dx1) tt_acc(sz, g, dx1);
    break;
  case TT_OP_AVGPOOL:
    if (dx) {
      tt_shape s = tt_op_spatial(net, o, n);
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
    if (dx)
      for (size_t i = 0; i < sz; i++) dx[i] += o->d.scale * g[i];
    break;
  case TT_OP_MEAN:
    if (dx) tt_mean_backward(n, (int)(xsz / sz), o->c, g, dx);
    break;
  case TT_OP_GATE: tt_gate_backward(n, o->h * o->w, o->c, x, net->act[o->d.in1], g, dx, dx1); break;
  case TT_OP_PRELU: tt_prelu_backward(sz / o->c, o->c, x, o->wt, g, dx, o->gwt); break;
  case TT_OP_DROPOUT:
    if (dx)
      for (size_t i = 0; i < sz; i++) dx[i] += mask ? g[i] * mask[i] : g[i];
    break;
  }
  return TT_OK;
}
