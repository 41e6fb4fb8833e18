/* Inference on a network: the scheduler between a batch of inputs and the ops' forward
   (ops.c). Activation buffers are recycled by liveness, MobileNetV2's inverted-residual
   blocks run fused in row bands that stay in cache, a residual add is folded into the
   GEMM before it, and a batch runs image by image through its first layers. Serves the
   frozen backbone (features for training, prediction) and the trained head alike. */
#include "net_internal.h"
#include "threads.h"
#include "tt.h"
#include <stdlib.h>
#include <string.h>

/* ---- inference: activation buffers recycled by liveness --------------------------- */

static int take_buf(tt_net *net, size_t need) {
  int best = -1;
  for (int i = 0; i < net->npool; i++) /* the smallest free buffer that fits, else the largest free */
    if (!net->pool[i].busy &&
        (best < 0 || (net->pool[i].cap >= need ? net->pool[best].cap < need || net->pool[i].cap < net->pool[best].cap
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
  if (i + 1 > last || o->d.type != TT_OP_CONV2D || o->d.act != TT_ACT_NONE || !tt_op_pointwise(net, o) ||
      net->lastuse[i] != i + 1)
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
#define TT_BAND_BYTES (1024 * 1024)
/* Threads a job can run on at once: band buffer sets (see block_task). */
#define TT_POOL_MAX 64
/* The fewest output rows a thread for cutting one image in stripes (see block_cut). */
#define TT_STRIPE_ROWS 16

void tt_net_set_bands(tt_net *net, size_t band_bytes, int stripe_rows) {
  if (band_bytes) net->band_bytes = band_bytes;
  if (stripe_rows > 0) net->stripe_rows = stripe_rows;
}

typedef struct {
  int e, d, p; /* expand (or -1), depthwise, project op indices */
  int r;       /* the residual add's shortcut op when the add is folded in, else 0 */
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
  if (o->d.type == TT_OP_CONV2D && tt_op_pointwise(net, o)) {
    if (net->lastuse[i] != i + 1) return 0;
    bk->e = i, d = i + 1;
  }
  if (d + 1 > last) return 0;
  const tt_op *dw = &net->ops[d], *pj = &net->ops[d + 1];
  if (dw->d.type != TT_OP_DEPTHWISE || dw->d.in0 != (bk->e >= 0 ? bk->e : dw->d.in0) || dw->d.kh != 3 ||
      dw->d.kw != 3 || dw->pt > 1 || dw->pl > 1 || net->lastuse[d] != d + 1 || pj->d.type != TT_OP_CONV2D ||
      pj->d.in0 != d || !tt_op_pointwise(net, pj))
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
static void block_rows(const block_run *br, int b0, int b1, int oy_lo, int oy_hi, float *E, float *D) {
  const tt_net *net = br->net;
  const block *bk = br->bk;
  const tt_op *dw = &net->ops[bk->d], *pj = &net->ops[bk->p];
  const tt_op *in = &net->ops[bk->e >= 0 ? net->ops[bk->e].d.in0 : dw->d.in0];
  const tt_op *ex = bk->e >= 0 ? &net->ops[bk->e] : NULL;
  const int H = in->h, W = in->w, Cin = in->c, Ce = dw->c, OH = dw->h, OW = dw->w;
  const int Cp = pj->c, R = br->R;
  const tt_shape whole = tt_op_spatial(net, dw, 1);
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
          tt_op_gemm(ex, 1, (need_hi - from) * W, xb + (size_t)from * W * Cin, E + (size_t)keep * rowE, 0, ex->d.act);
        lo = need_lo, hi = need_hi;
        band = E;
      } else {
        band = xb + (size_t)need_lo * rowE;
      }
      tt_dwconv(&sh, band, dw->wt, dw->bias, dw->d.act, D);
      float *yr = yb + (size_t)oy0 * rowY;
      if (br->res)
        memcpy(yr, br->res + (size_t)b * OH * rowY + (size_t)oy0 * rowY, (size_t)(oy1 - oy0) * rowY * sizeof *yr);
      tt_op_gemm(pj, 1, (oy1 - oy0) * OW, D, yr, bk->r != 0, act);
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
    block_rows(br, 0, br->n, t * OH / br->tasks, (t + 1) * OH / br->tasks, br->net->band[2 * s].p,
               br->net->band[2 * s + 1].p);
  else
    block_rows(br, t, t + 1, 0, OH, br->net->band[2 * s].p, br->net->band[2 * s + 1].p);
  __atomic_store_n(&br->busy[s], 0, __ATOMIC_RELEASE);
}

/* Stripes: up to 3 a thread, taken by whichever thread is free, so a slower core takes
   fewer (one a thread waited on the slowest core); a multiple of the threads, of at
   least stripe_rows rows, as each stripe recomputes the expanded rows at its edges. */
static int stripe_tasks(const tt_net *net, int OH, int sets) {
  const int stripe_rows = net->stripe_rows ? net->stripe_rows : TT_STRIPE_ROWS;
  int k = OH / (sets * stripe_rows);
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
  const int stripe_rows = net->stripe_rows ? net->stripe_rows : TT_STRIPE_ROWS;
  if (net->ops[bk->d].h / T >= stripe_rows && (!ex || ex->qw) && net->ops[bk->p].qw) return 2;
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
static int run_block(tt_net *net, const block *bk, int cut, const float *x, float *y, const float *res, int n) {
  const tt_op *dw = &net->ops[bk->d];
  const tt_op *in = &net->ops[bk->e >= 0 ? net->ops[bk->e].d.in0 : dw->d.in0];
  const int s = dw->d.sh, OH = dw->h, T = tt_threads();
  const size_t rowE = (size_t)in->w * dw->c, rowD = (size_t)dw->w * dw->c;
  const int ex = bk->e >= 0;
  int busy[TT_POOL_MAX] = {0};
  const int sets = cut ? (T < TT_POOL_MAX ? T : TT_POOL_MAX) : 1; /* band buffer sets */
  block_run br = {net,      bk, x,    res, y, n, cut == 1 ? n : cut == 2 ? stripe_tasks(net, OH, sets) : 1,
                  cut == 2, 0,  busy, sets};
  const size_t band_bytes = net->band_bytes ? net->band_bytes : TT_BAND_BYTES;
  int R = (int)(band_bytes / sizeof(float) / ((ex ? (size_t)s * rowE : 0) + rowD));
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
  if (br.tasks > 1)
    tt_parallel(br.tasks, block_task, &br);
  else
    block_rows(&br, 0, n, 0, OH, net->band[0].p, net->band[1].p);
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
      if (sy < 0) {
        tt_fail(TT_ENOMEM, "out of memory for the activation of '%s' (batch %d)", pj->name, n);
        return NULL;
      }
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
      tt_op_gemm(o, 1, m, sa < 0 ? x : net->pool[sa].p, net->pool[net->slot[r]].p, 1, ad->d.act);
      if (net->lastuse[o->d.in0] == i && sa >= 0) net->pool[sa].busy = 0;
      net->slot[i] = -1; /* never read: its only reader was the add */
      net->slot[i + 1] = net->slot[r];
      i++;
      continue;
    }
    uint64_t need = (uint64_t)n * op_size(o);
    if (need > MAX_TENSOR * 4 || need > SIZE_MAX / sizeof(float)) {
      tt_fail(TT_ENOMEM, "batch of %d is too large for '%s'", n, o->name);
      return NULL;
    }
    int s = take_buf(net, (size_t)need);
    if (s < 0) {
      tt_fail(TT_ENOMEM, "out of memory for the activation of '%s' (batch %d)", o->name, n);
      return NULL;
    }
    net->slot[i] = s;
    const float *a = net->slot[o->d.in0] < 0 ? x : net->pool[net->slot[o->d.in0]].p;
    const float *b = NULL;
    if (two_inputs(o->d.type)) b = net->slot[o->d.in1] < 0 ? x : net->pool[net->slot[o->d.in1]].p;
    tt_op_forward(net, o, a, b, net->pool[s].p, n, 1, NULL, NULL);
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
  if (last >= net->n) {
    tt_fail(TT_EINVAL, "op %d does not exist", last);
    return NULL;
  }
  if (n < 1 || (uint64_t)n * op_size(&net->ops[0]) > MAX_TENSOR) {
    tt_fail(TT_EINVAL, "batch of %d is out of range", n);
    return NULL;
  }
  if (!net->slot) {
    net->slot = malloc(MAX_OPS * sizeof *net->slot);
    net->lastuse = malloc(MAX_OPS * sizeof *net->lastuse);
    if (!net->slot || !net->lastuse) {
      tt_fail(TT_ENOMEM, "out of memory");
      return NULL;
    }
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
  if (s < 0) {
    tt_fail(TT_ENOMEM, "out of memory");
    return NULL;
  }
  const buf t = net->pool[s];
  net->pool[s] = net->split, net->split = t;
  return forward_ops(net, NULL, s, n, split + 1, last);
}
