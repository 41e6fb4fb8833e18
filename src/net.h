/* A network: an ordered list of ops over NHWC float32 tensors, one output per op, op 0
   the input. Each op's forward and backward live side by side in ops.c. The same
   structure serves the frozen backbone (inference only) and the trainable part (the
   last blocks and the head, copied into a net of their own whose input is the cut
   activation). */
#ifndef TT_NET_H
#define TT_NET_H
#include <stddef.h>
#include <stdint.h>

enum {
  TT_OP_INPUT = 0,
  TT_OP_CONV2D = 1,    /* weights [kh][kw][cin][cout] */
  TT_OP_DEPTHWISE = 2, /* weights [kh][kw][c] */
  TT_OP_DENSE = 3,     /* weights [in][out], in = h*w*c of the input (flattened NHWC) */
  TT_OP_ADD = 4,
  TT_OP_AVGPOOL = 5,
  TT_OP_ACT = 6, /* act: TT_ACT_RELU/RELU6, or HSWISH/HSIGMOID (kernels.h) with
                          scale = a (the graph's 1/6) and offset = b (its 3):
                          hswish y = (x*a)*relu6(x+b), hsigmoid y = relu6(x+b)*a */
  TT_OP_SOFTMAX = 7,
  TT_OP_AFFINE = 8,  /* y = x*scale + offset, scalars */
  TT_OP_DROPOUT = 9, /* identity at inference; inverted dropout when training */
  TT_OP_MEAN = 10,   /* global spatial mean: [h,w,c] -> [1,1,c] (any h, w) */
  TT_OP_GATE = 11,   /* squeeze-and-excitation's channel gate: y[h,w,c] = in0[h,w,c] *
                          in1[0,0,c]; in1 is [1,1,c], in0's channel count */
  TT_OP_PRELU = 12,  /* weights [c]: y = x > 0 ? x : w[c]*x (no bias) */
  TT_OP_COUNT
};

/* What tt_net_add takes, one op at a time. Integer fields a caller does not need stay 0. */
typedef struct {
  int type, in0, in1;
  int kh, kw, sh, sw;
  int same;            /* TensorFlow 'SAME' padding, else 'VALID' */
  int pt, pb, pl, pr;  /* explicit zero padding added before SAME/VALID (Keras ZeroPadding2D) */
  int channels;        /* output channels: conv2d filters, dense units */
  int act;             /* TT_ACT_*; HSWISH/HSIGMOID only on TT_OP_ACT */
  float scale, offset; /* affine; hard act constants (a, b); dropout: scale = rate */
} tt_op_desc;

typedef struct {
  tt_op_desc d;
  int h, w, c;      /* output shape of one image */
  int pt, pl;       /* resolved leading padding */
  int cin;          /* channels (dense: features) of in0 */
  float *wt, *bias; /* owned parameters (NULL if none) */
  size_t wn, bn;
  float *gwt, *gbias; /* gradients, when training */
  /* Integer codes of the weights (tt_net_quantized), packed for tt_qgemm, the per-column
     factors that make them weights (w = qwb[n]*code), and the column sums of w. NULL if
     none. */
  int16_t *qw;
  float *qwb, *qws;
  int qmax;
  char name[96];
} tt_op;

typedef struct tt_net tt_net;

tt_net *tt_net_create(int h, int w, int c);
void tt_net_free(tt_net *net);
int tt_net_count(const tt_net *net);
const tt_op *tt_net_op(const tt_net *net, int i);

/* Appends an op, checking its inputs and weight sizes against the shapes inferred so
   far; copies w and b. Returns the new op's index, or a negative code naming the op. */
int tt_net_add(tt_net *net, const char *name, const tt_op_desc *d, const float *w, size_t wn, const float *b,
               size_t bn);

/* Folds inference batch norm into op i (conv/depthwise/dense): per output channel
   k = gamma/sqrt(var+eps); w *= k; bias = (bias - mean)*k + beta. gamma/beta may be
   NULL (scale/center off). */
int tt_net_fold_bn(tt_net *net, int i, const float *gamma, const float *beta, const float *mean, const float *var,
                   size_t n, float eps);

/* Declares that op i's weights, as added, are uint8 codes q in tfjs's affine
   quantization, w = (float)(q*qscale + qmin), and lets inference (tt_net_forward, not
   training) multiply by the codes with tt_qgemm, about twice as fast as the float GEMM
   in WASM (see kernels/qgemm.c). Call it before folding batch norm into the op. Ops that
   do not run as one GEMM (only pointwise convs and dense layers do), whose K is too long
   for exact integer sums, or whose zero point (-qmin/qscale) is not an integer in
   [0, 255], ignore it. Refused, naming the op, when a weight is not
   on the grid the quantization states. Copies (tt_net_append) and saved models hold the
   float weights only. */
int tt_net_quantized(tt_net *net, int i, double qmin, double qscale);

/* Copies ops first..last of src into dst (whose input must have the shape of op
   first-1's output), remapping inputs; an op reading from before first-1 is refused. */
int tt_net_append(tt_net *dst, const tt_net *src, int first, int last);

/* Inference on a batch of n inputs [n,H,W,C]; runs ops 1..last and returns last's
   output (owned by the net, valid until the next call), or NULL on error. Activation
   buffers are recycled as soon as their last reader has run. */
const float *tt_net_forward(tt_net *net, const float *x, int n, int last);

/* Inference's fused blocks (infer.c): bytes of a block's band buffers (default 1 MB: a
   band stays in L2), and the fewest output rows a thread for cutting one image into
   stripes across threads (default 16). 0 leaves a setting as it is. Results do not
   depend on either; tests make them small to get many bands and stripes from small
   images. */
void tt_net_set_bands(tt_net *net, size_t band_bytes, int stripe_rows);

/* ---- training ------------------------------------------------------------------- */
/* Forward keeping every activation (and dropout masks, drawn from *rng) for backward. */
const float *tt_net_forward_train(tt_net *net, const float *x, int n, uint64_t *rng);
/* Backward from dL/d(output of the last op) for the batch of the last forward_train.
   Gradients of parameters accumulate into gwt/gbias (zero them with tt_net_zero_grad);
   if dx is not NULL it receives dL/d(input). */
int tt_net_backward(tt_net *net, const float *dy, float *dx);
/* Allocates the parameters' gradients (gwt, gbias; zeroed) where they are not yet, so
   an optimiser can point at them before the first training pass. */
int tt_net_alloc_grads(tt_net *net);
/* (Dense and pointwise weight gradients are zeroed by the next backward pass, which
   overwrites them instead of accumulating; read them after a backward.) */
void tt_net_zero_grad(tt_net *net);

size_t tt_net_param_count(const tt_net *net);
/* Bytes of activation memory the net holds now (for memory reports). */
size_t tt_net_activation_bytes(const tt_net *net);

/* A small, fast, seedable generator (splitmix64) so seeded runs repeat bit for bit. */
uint64_t tt_rng_next(uint64_t *s);
float tt_rng_uniform(uint64_t *s); /* [0,1) */

/* ---- saved models (savefile.c) ----------------------------------------------------
   One file: magic "TTMODEL\0", u32 version, u32 meta length + meta bytes (JSON the JS
   side writes: labels, backbone id and hash, cut, settings, metrics; opaque here), the
   net (input shape, ops with their descriptors and weights), and an FNV-1a checksum of
   everything before it. Little-endian. */
#define TT_SAVE_VERSION 1
/* Writes net + meta into a new buffer (*out, *out_len; free with free()). */
int tt_save(const tt_net *net, const uint8_t *meta, size_t meta_len, uint8_t **out, size_t *out_len);
/* Parses a saved model; on success *net is new, and *meta (of *meta_len bytes) points into data. */
int tt_load(const uint8_t *data, size_t len, tt_net **net, const uint8_t **meta, size_t *meta_len);
#endif
