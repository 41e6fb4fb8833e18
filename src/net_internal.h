/* Inside a tt_net: the structure the net's four files share, and what they call of each
   other. graph.c builds and checks the op list; ops.c holds each op's forward and
   backward; infer.c schedules inference; backprop.c keeps a batch's activations for
   training. Not for use outside them (net.h is the interface). */
#ifndef TT_NET_INTERNAL_H
#define TT_NET_INTERNAL_H
#include "kernels/kernels.h"
#include "net.h"

/* Bounds that keep every size computation far from overflow and refuse absurd models
   before they allocate anything. */
#define MAX_OPS      4096
#define MAX_DIM      16384
#define MAX_CHANNELS 65536
#define MAX_KERNEL   15
#define MAX_STRIDE   8
#define MAX_TENSOR   ((size_t)1 << 28) /* elements of one image's activation */

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
  int *slot;    /* per op: pool index holding its output during tt_net_forward */
  int *lastuse; /* per op: the last op that reads it (scratch for tt_net_forward) */
  buf *band;    /* inference: E and D of a fused block's row bands, per thread (run_block) */
  int nband;
  buf split;         /* inference: a batch's tensor at the split op (see batch_split) */
  size_t band_bytes; /* inference: tt_net_set_bands, 0 for the defaults (infer.c) */
  int stripe_rows;
  /* training: every activation and gradient of one batch, in one arena */
  float *arena;
  size_t arena_cap;
  int tcap; /* batch size the arena is laid out for */
  int tn;   /* batch size of the last forward_train, 0 if none */
  float **act, **grad, **mask;
  /* per op: its weight gradient is due to be zeroed (tt_net_zero_grad), which its
     backward GEMM does for free by overwriting instead of accumulating */
  unsigned char *gz;
  float *scratch;
  const float *tx;
};

static inline size_t op_size(const tt_op *o) { return (size_t)o->h * o->w * o->c; }
/* Size checks are done in 64 bits: on wasm32 size_t is 32 bits, and a product of valid
   dimensions (16384 x 16384 x 16, a batch of 65537 1x1x65536 tensors) wraps to a small
   number that passes every limit and then under-allocates. */
static inline uint64_t op_size64(const tt_op *o) { return (uint64_t)o->h * (uint64_t)o->w * (uint64_t)o->c; }

/* Ops that read a second tensor, in1. */
static inline int two_inputs(int type) { return type == TT_OP_ADD || type == TT_OP_GATE; }

/* ops.c */
tt_shape tt_op_spatial(const tt_net *net, const tt_op *o, int n);
int tt_op_pointwise(const tt_net *net, const tt_op *o);
void tt_op_gemm(const tt_op *o, int infer, int m, const float *x, float *y, int acc, int act);
void tt_op_forward(tt_net *net, const tt_op *o, const float *x, const float *x1, float *y, int n, int infer,
                   uint64_t *rng, float *mask);
int tt_op_backward(tt_net *net, tt_op *o, const float *x, const float *y, float *g, float *dx, float *dx1, int n,
                   const float *mask, float *tmp);
/* backprop.c */
void tt_net_free_training(tt_net *net);
#endif
