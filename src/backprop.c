/* Training passes over a network: a forward pass that keeps every activation (and
   dropout mask) of the batch in one arena, and the backward pass from the loss's gradient
   to the parameters' gradients. Called by the trainer (train.c) once a step; the ops'
   own forward and backward are in ops.c. */
#include "net_internal.h"
#include "tt.h"
#include <stdlib.h>
#include <string.h>

static void flush_zero_grad(tt_net *net);

void tt_net_free_training(tt_net *net) {
  flush_zero_grad(net);
  free(net->arena), free(net->act), free(net->grad), free(net->mask), free(net->gz);
  net->arena = NULL, net->act = net->grad = net->mask = NULL, net->gz = NULL;
  net->arena_cap = 0, net->tcap = net->tn = 0;
  net->tx = NULL;
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
  tt_net_free_training(net);
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
    tt_net_free_training(net);
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
  return tt_net_alloc_grads(net);
}

int tt_net_alloc_grads(tt_net *net) {
  for (int i = 1; i < net->n; i++) {
    tt_op *o = &net->ops[i];
    if (o->wn && !o->gwt && !(o->gwt = calloc(o->wn, sizeof(float)))) return tt_fail(TT_ENOMEM, "out of memory");
    if (o->bn && !o->gbias && !(o->gbias = calloc(o->bn, sizeof(float)))) return tt_fail(TT_ENOMEM, "out of memory");
  }
  return TT_OK;
}

const float *tt_net_forward_train(tt_net *net, const float *x, int n, uint64_t *rng) {
  if (n < 1 || (uint64_t)n * op_size(&net->ops[0]) > MAX_TENSOR) {
    tt_fail(TT_EINVAL, "batch of %d is out of range", n);
    return NULL;
  }
  if (train_alloc(net, n) < 0) return NULL;
  net->act[0] = (float *)x; /* read only; the caller keeps x alive until backward */
  net->tx = x;
  net->tn = n;
  for (int i = 1; i < net->n; i++) {
    tt_op *o = &net->ops[i];
    tt_op_forward(net, o, net->act[o->d.in0], two_inputs(o->d.type) ? net->act[o->d.in1] : NULL, net->act[i], n, 0, rng,
                  net->mask[i]);
  }
  return net->act[net->n - 1];
}

int tt_net_backward(tt_net *net, const float *dy, float *dx) {
  if (!net->arena || !net->tx) return tt_fail(TT_ESTATE, "backward without a training forward pass");
  int n = net->tn;
  /* The input's gradient is only written when the caller wants it (dx): ops reading the
     input get no dx0 otherwise (a 115 KB memset per step of head training). */
  for (int i = dx ? 0 : 1; i < net->n; i++) tt_zero(op_size(&net->ops[i]) * (size_t)n, net->grad[i]);
  int last = net->n - 1;
  memcpy(net->grad[last], dy, op_size(&net->ops[last]) * (size_t)n * sizeof(float));
  for (int i = last; i >= 1; i--) {
    tt_op *o = &net->ops[i];
    float *dx0 = o->d.in0 || dx ? net->grad[o->d.in0] : NULL;
    float *dx1 = two_inputs(o->d.type) && (o->d.in1 || dx) ? net->grad[o->d.in1] : NULL;
    int rc =
        tt_op_backward(net, o, net->act[o->d.in0], net->act[i], net->grad[i], dx0, dx1, n, net->mask[i], net->scratch);
    if (rc < 0) {
      flush_zero_grad(net);
      return rc;
    }
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
