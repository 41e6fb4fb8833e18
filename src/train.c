/* The trainer: fits the trainable part of a network (the last blocks and the head, one
   tt_net whose input is the activation cached at the cut) to the cached inputs, a few
   batches a call, so the caller can report progress and cancel: stratified validation
   split, class-balanced sampling, softmax cross-entropy with label smoothing,
   Adam/AdamW/SGD with warm-up and cosine decay, early stopping, the best epoch's weights.
   The end of the data path: decode.c -> sample.c (augment.c's views) -> infer.c on the
   frozen backbone (cached once) -> here, each step's passes in backprop.c -> a saved
   model (savefile.c). */
#include "train.h"
#include "kernels/kernels.h"
#include "tt.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES 1000
#define MAX_BATCH   512

void tt_train_defaults(tt_train_cfg *c) {
  memset(c, 0, sizeof *c);
  c->epochs = 30, c->batch = 16, c->optimizer = TT_OPT_ADAMW;
  c->lr = 1e-3f, c->weight_decay = 1e-4f, c->momentum = 0.9f;
  c->warmup = 0.05f, c->cosine = 1, c->label_smoothing = 0.1f, c->balanced = 1;
  c->val_fraction = 0.2f, c->patience = 8, c->seed = 1;
}

typedef struct {
  float *w, *g, *m, *v, *best;
  size_t n;
  int decay; /* weights decay, biases do not */
} param;

struct tt_trainer {
  tt_net *net;
  tt_train_cfg cfg;
  int classes, views, per_in;
  const void *x; /* float32, or binary16 (half) */
  int half;
  const int *labels;
  int *train_idx, *val_idx, n_train, n_val;
  int **by_class, *class_n; /* training images of each class, for balanced sampling */
  int *order;               /* this epoch's sample sequence */
  param *params;
  int nparams;
  float *bx, *dlogits, *logits;
  int *by;
  long step, total_steps;
  int epoch, batch_in_epoch, batches_per_epoch, best_epoch, since_best, finished;
  double loss_sum, correct;
  int seen;
  float best_val_loss;
  uint64_t rng;
};

static void shuffle(int *a, int n, uint64_t *rng) {
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(tt_rng_next(rng) % (uint64_t)(i + 1)), t = a[i];
    a[i] = a[j], a[j] = t;
  }
}

/* Input k (image i's view v at i*views + v) into dst, as float32. */
static void gather(const tt_trainer *tr, size_t k, float *dst) {
  const size_t per = (size_t)tr->per_in;
  if (tr->half)
    tt_f16_unpack(per, (const uint16_t *)tr->x + k * per, dst);
  else
    memcpy(dst, (const float *)tr->x + k * per, per * sizeof *dst);
}

float tt_softmax_xent(const float *logits, const int *labels, int n, int classes, float smoothing, float *dlogits) {
  double total = 0;
  float off = smoothing / classes, on = 1.0f - smoothing + off;
  for (int r = 0; r < n; r++) {
    const float *z = logits + (size_t)r * classes;
    float mx = z[0];
    for (int k = 1; k < classes; k++) mx = z[k] > mx ? z[k] : mx;
    double se = 0;
    for (int k = 0; k < classes; k++) se += exp((double)(z[k] - mx));
    double lse = log(se) + mx, l = 0;
    for (int k = 0; k < classes; k++) {
      float q = k == labels[r] ? on : off;
      l -= q * ((double)z[k] - lse);
      if (dlogits) dlogits[(size_t)r * classes + k] = (float)((exp((double)z[k] - lse) - q) / n);
    }
    total += l;
  }
  return (float)(total / n);
}

int tt_predict(tt_net *net, const float *x, int n, float *probs) {
  const float *z = tt_net_forward(net, x, n, -1);
  if (!z) return tt_last_code(); /* what tt_net_forward failed on */
  const tt_op *o = tt_net_op(net, tt_net_count(net) - 1);
  tt_softmax(n, o->c, z, probs);
  return TT_OK;
}

static int add_param(tt_trainer *tr, float *w, float *g, size_t n, int decay) {
  param *p = &tr->params[tr->nparams++];
  p->w = w, p->g = g, p->n = n, p->decay = decay;
  p->m = calloc(n, sizeof(float)), p->v = calloc(n, sizeof(float));
  p->best = malloc(n * sizeof(float));
  if (!p->m || !p->v || !p->best) return tt_fail(TT_ENOMEM, "out of memory for optimiser state");
  memcpy(p->best, w, n * sizeof(float));
  return TT_OK;
}

static int split(tt_trainer *tr, int n_images) {
  int C = tr->classes;
  int *count = calloc((size_t)C, sizeof(int));
  int *perm = malloc((size_t)n_images * sizeof(int));
  tr->train_idx = malloc((size_t)n_images * sizeof(int));
  tr->val_idx = malloc((size_t)n_images * sizeof(int));
  tr->by_class = calloc((size_t)C, sizeof(int *));
  tr->class_n = calloc((size_t)C, sizeof(int));
  if (!count || !perm || !tr->train_idx || !tr->val_idx || !tr->by_class || !tr->class_n) {
    free(count), free(perm);
    return tt_fail(TT_ENOMEM, "out of memory");
  }
  for (int i = 0; i < n_images; i++) count[tr->labels[i]]++;
  for (int k = 0; k < C; k++)
    if (!count[k]) {
      free(count), free(perm);
      return tt_fail(TT_EINVAL, "class %d has no images", k);
    }
  for (int i = 0; i < n_images; i++) perm[i] = i;
  shuffle(perm, n_images, &tr->rng);
  /* Stratified: each class gives round(fraction * its size) images to validation, but
     always keeps at least one for training. */
  int *taken = calloc((size_t)C, sizeof(int));
  if (!taken) {
    free(count), free(perm);
    return tt_fail(TT_ENOMEM, "out of memory");
  }
  for (int j = 0; j < n_images; j++) {
    int i = perm[j], k = tr->labels[i];
    int want = (int)floorf(tr->cfg.val_fraction * count[k] + 0.5f);
    if (want > count[k] - 1) want = count[k] - 1;
    if (taken[k] < want)
      taken[k]++, tr->val_idx[tr->n_val++] = i;
    else
      tr->train_idx[tr->n_train++] = i;
  }
  for (int k = 0; k < C; k++) {
    tr->by_class[k] = malloc((size_t)(count[k] - taken[k]) * sizeof(int));
    if (!tr->by_class[k]) {
      free(count), free(perm), free(taken);
      return tt_fail(TT_ENOMEM, "out of memory");
    }
  }
  for (int j = 0; j < tr->n_train; j++) {
    int i = tr->train_idx[j], k = tr->labels[i];
    tr->by_class[k][tr->class_n[k]++] = i;
  }
  free(count), free(perm), free(taken);
  return TT_OK;
}

void tt_trainer_free(tt_trainer *tr) {
  if (!tr) return;
  for (int i = 0; i < tr->nparams; i++) free(tr->params[i].m), free(tr->params[i].v), free(tr->params[i].best);
  if (tr->by_class)
    for (int k = 0; k < tr->classes; k++) free(tr->by_class[k]);
  free(tr->by_class), free(tr->class_n), free(tr->params), free(tr->train_idx), free(tr->val_idx);
  free(tr->order), free(tr->bx), free(tr->by), free(tr->dlogits), free(tr->logits);
  free(tr);
}

static tt_trainer *trainer_new(tt_net *net, const tt_train_cfg *cfg, int classes, const void *x, int half, int n_images,
                               int views, const int *labels) {
  const tt_op *in = tt_net_op(net, 0), *out = tt_net_op(net, tt_net_count(net) - 1);
  if (classes < 2 || classes > MAX_CLASSES) {
    tt_fail(TT_EINVAL, classes < 2 ? "training needs at least 2 classes, got %d" : "too many classes (%d)", classes);
    return NULL;
  }
  if (out->c != classes || out->h != 1 || out->w != 1) {
    tt_fail(TT_EINVAL, "the network ends in %dx%dx%d outputs, not %d class logits", out->h, out->w, out->c, classes);
    return NULL;
  }
  if (n_images < 2 || views < 1 || !x || !labels) {
    tt_fail(TT_EINVAL, "training needs at least 2 images, got %d", n_images);
    return NULL;
  }
  if (cfg->batch < 1 || cfg->batch > MAX_BATCH || cfg->epochs < 1 || !(cfg->lr > 0) ||
      !(cfg->val_fraction >= 0 && cfg->val_fraction < 1) || !(cfg->label_smoothing >= 0 && cfg->label_smoothing < 1) ||
      !(cfg->weight_decay >= 0) || !(cfg->warmup >= 0 && cfg->warmup < 1) || cfg->optimizer < 0 ||
      cfg->optimizer > TT_OPT_SGD) {
    tt_fail(TT_EINVAL, "invalid training settings (batch %d, epochs %d, lr %g, validation %g)", cfg->batch, cfg->epochs,
            (double)cfg->lr, (double)cfg->val_fraction);
    return NULL;
  }
  for (int i = 0; i < n_images; i++)
    if (labels[i] < 0 || labels[i] >= classes) {
      tt_fail(TT_EINVAL, "image %d has label %d, outside 0..%d", i, labels[i], classes - 1);
      return NULL;
    }
  /* 64-bit: on wasm32 a batch of large inputs (512 x 2^21 floats) wraps size_t. */
  if ((uint64_t)cfg->batch * ((uint64_t)in->h * in->w * in->c) > SIZE_MAX / sizeof(float)) {
    tt_fail(TT_ENOMEM, "out of memory: a batch of %d inputs of %dx%dx%d is too large", cfg->batch, in->h, in->w, in->c);
    return NULL;
  }
  tt_trainer *tr = calloc(1, sizeof *tr);
  if (!tr) {
    tt_fail(TT_ENOMEM, "out of memory");
    return NULL;
  }
  tr->net = net, tr->cfg = *cfg, tr->classes = classes, tr->views = views, tr->x = x, tr->labels = labels;
  tr->half = half;
  tr->per_in = in->h * in->w * in->c;
  tr->rng = cfg->seed;
  tr->best_val_loss = INFINITY;
  tr->best_epoch = -1;
  int B = cfg->batch, nops = tt_net_count(net);
  tr->params = calloc((size_t)nops * 2, sizeof(param));
  tr->order = malloc((size_t)n_images * sizeof(int));
  tr->bx = malloc((size_t)B * tr->per_in * sizeof(float));
  tr->by = malloc((size_t)(B > n_images ? B : n_images) * sizeof(int));
  tr->dlogits = malloc((size_t)B * classes * sizeof(float));
  tr->logits = malloc((size_t)B * classes * sizeof(float));
  if (!tr->params || !tr->order || !tr->bx || !tr->by || !tr->dlogits || !tr->logits || split(tr, n_images) < 0) {
    if (!tt_last_error()[0]) tt_fail(TT_ENOMEM, "out of memory");
    tt_trainer_free(tr);
    return NULL;
  }
  if (tt_net_alloc_grads(net) < 0) {
    tt_trainer_free(tr);
    return NULL;
  } /* for add_param */
  for (int i = 1; i < nops; i++) {
    tt_op *o = (tt_op *)tt_net_op(net, i);
    if ((o->wn && add_param(tr, o->wt, o->gwt, o->wn, 1) < 0) ||
        (o->bn && add_param(tr, o->bias, o->gbias, o->bn, 0) < 0)) {
      tt_trainer_free(tr);
      return NULL;
    }
  }
  tr->batches_per_epoch = (tr->n_train + B - 1) / B;
  tr->total_steps = (long)tr->batches_per_epoch * cfg->epochs;
  return tr;
}

tt_trainer *tt_trainer_new(tt_net *net, const tt_train_cfg *cfg, int classes, const float *x, int n_images, int views,
                           const int *labels) {
  return trainer_new(net, cfg, classes, x, 0, n_images, views, labels);
}

tt_trainer *tt_trainer_new_half(tt_net *net, const tt_train_cfg *cfg, int classes, const uint16_t *x, int n_images,
                                int views, const int *labels) {
  return trainer_new(net, cfg, classes, x, 1, n_images, views, labels);
}

static float lr_at(const tt_trainer *tr) {
  float lr = tr->cfg.lr;
  long warm = (long)(tr->cfg.warmup * tr->total_steps);
  if (tr->step < warm) return lr * (float)(tr->step + 1) / (float)warm;
  if (!tr->cfg.cosine) return lr;
  double t = (double)(tr->step - warm) / (double)(tr->total_steps - warm > 0 ? tr->total_steps - warm : 1);
  return (float)(lr * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
}

static void optimiser_step(tt_trainer *tr, float lr) {
  const tt_train_cfg *c = &tr->cfg;
  if (c->optimizer != TT_OPT_SGD) {
    /* Once per step: the per-element work is in tt_adam (SIMD), with the bias
       corrections as reciprocals so the loop multiplies instead of dividing. */
    double t = (double)tr->step + 1;
    tt_adam_cfg a = {0.9f,
                     0.999f,
                     1e-7f,
                     lr,
                     0.0f,
                     (float)(1.0 / (1.0 - pow(0.9f, t))),
                     (float)(1.0 / (1.0 - pow(0.999f, t))),
                     c->optimizer == TT_OPT_ADAMW,
                     tr->step % 16 == 0 /* often enough to keep out denormals */};
    for (int i = 0; i < tr->nparams; i++) {
      param *p = &tr->params[i];
      a.wd = p->decay ? c->weight_decay : 0.0f;
      tt_adam(p->n, p->w, p->g, p->m, p->v, &a);
    }
    return;
  }
  for (int i = 0; i < tr->nparams; i++) {
    param *p = &tr->params[i];
    float wd = p->decay ? c->weight_decay : 0.0f;
    for (size_t j = 0; j < p->n; j++) {
      float g = p->g[j] + wd * p->w[j];
      float m = c->momentum * p->m[j] + g;
      p->m[j] = fabsf(m) < 1e-30f ? 0.0f : m; /* no denormals: see tt_adam */
      p->w[j] -= lr * p->m[j];
    }
  }
}

/* This epoch's training sequence: shuffled, or class-balanced (each slot draws a class in
   turn, then an image of it), so small classes are not drowned out. */
static void plan_epoch(tt_trainer *tr) {
  if (!tr->cfg.balanced) {
    memcpy(tr->order, tr->train_idx, (size_t)tr->n_train * sizeof(int));
    shuffle(tr->order, tr->n_train, &tr->rng);
    return;
  }
  for (int j = 0; j < tr->n_train; j++) {
    int k = j % tr->classes;
    tr->order[j] = tr->by_class[k][tt_rng_next(&tr->rng) % (uint64_t)tr->class_n[k]];
  }
  shuffle(tr->order, tr->n_train, &tr->rng);
}

/* Loss and accuracy of the current weights on images idx[0..count) (their un-augmented
   view), in batches, in inference mode. */
static int evaluate(tt_trainer *tr, const int *idx, int count, float *loss, float *acc, int *confusion) {
  int C = tr->classes, B = tr->cfg.batch, correct = 0;
  double total = 0;
  if (!count) {
    *loss = NAN, *acc = NAN;
    return TT_OK;
  }
  for (int s = 0; s < count; s += B) {
    int n = count - s < B ? count - s : B;
    for (int r = 0; r < n; r++) {
      int i = idx[s + r];
      gather(tr, (size_t)i * tr->views, tr->bx + (size_t)r * tr->per_in);
      tr->by[r] = tr->labels[i];
    }
    const float *z = tt_net_forward(tr->net, tr->bx, n, -1);
    if (!z) return tt_last_code();
    total += (double)tt_softmax_xent(z, tr->by, n, C, 0.0f, NULL) * n;
    for (int r = 0; r < n; r++) {
      int best = 0;
      for (int k = 1; k < C; k++) best = z[r * C + k] > z[r * C + best] ? k : best;
      correct += best == tr->by[r];
      if (confusion) confusion[tr->by[r] * C + best]++;
    }
  }
  *loss = (float)(total / count), *acc = (float)correct / count;
  return TT_OK;
}

static int params_finite(const tt_trainer *tr) {
  for (int i = 0; i < tr->nparams; i++) {
    float sum = 0; /* any NaN or Inf anywhere makes the sum non-finite */
    for (size_t j = 0; j < tr->params[i].n; j++) sum += tr->params[i].w[j] * 0.0f;
    if (!isfinite(sum)) return 0;
  }
  return 1;
}

static void keep_best(tt_trainer *tr, int restore) {
  for (int i = 0; i < tr->nparams; i++) {
    param *p = &tr->params[i];
    if (restore)
      memcpy(p->w, p->best, p->n * sizeof(float));
    else
      memcpy(p->best, p->w, p->n * sizeof(float));
  }
}

static void fill_progress(const tt_trainer *tr, tt_progress *p) {
  p->epoch = tr->epoch, p->batch = tr->batch_in_epoch, p->batches_per_epoch = tr->batches_per_epoch;
  p->done = tr->finished, p->best_epoch = tr->best_epoch, p->best_val_loss = tr->best_val_loss;
  p->lr = lr_at(tr), p->n_train = tr->n_train, p->n_val = tr->n_val;
}

/* A non-finite loss ends training with the best epoch's weights, or those training
   started from if no epoch finished well. */
static int diverged(tt_trainer *tr, tt_progress *p, float loss) {
  keep_best(tr, 1);
  tr->finished = 1;
  fill_progress(tr, p);
  return tt_fail(TT_EINVAL,
                 "training stopped at epoch %d, batch %d: the loss became %s; "
                 "try a lower learning rate (the best weights so far are kept)",
                 tr->epoch + 1, tr->batch_in_epoch + 1, isnan(loss) ? "NaN" : "infinite");
}

int tt_trainer_run(tt_trainer *tr, int max_batches, tt_progress *p) {
  if (tr->finished) {
    fill_progress(tr, p);
    return 2;
  }
  int C = tr->classes, B = tr->cfg.batch;
  for (int done = 0; done < max_batches; done++) {
    if (tr->batch_in_epoch == 0) {
      plan_epoch(tr);
      tr->loss_sum = 0, tr->correct = 0, tr->seen = 0;
    }
    int s = tr->batch_in_epoch * B, n = tr->n_train - s < B ? tr->n_train - s : B;
    for (int r = 0; r < n; r++) {
      int i = tr->order[s + r];
      int v = tr->views > 1 ? (int)(tt_rng_next(&tr->rng) % (uint64_t)tr->views) : 0;
      gather(tr, (size_t)i * tr->views + v, tr->bx + (size_t)r * tr->per_in);
      tr->by[r] = tr->labels[i];
    }
    const float *z = tt_net_forward_train(tr->net, tr->bx, n, &tr->rng);
    if (!z) return tt_last_code();
    float loss = tt_softmax_xent(z, tr->by, n, C, tr->cfg.label_smoothing, tr->dlogits);
    if (!isfinite(loss)) return diverged(tr, p, loss);
    for (int r = 0; r < n; r++) {
      int best = 0;
      for (int k = 1; k < C; k++) best = z[r * C + k] > z[r * C + best] ? k : best;
      tr->correct += best == tr->by[r];
    }
    tt_net_zero_grad(tr->net);
    int rc = tt_net_backward(tr->net, tr->dlogits, NULL);
    if (rc < 0) return rc;
    /* Without a validation set, the weights to fall back on if training diverges are the
       last ones known to give a finite loss (a step can leave weights finite but so large
       that only the next forward pass overflows): each epoch's last step keeps them
       before updating them. Once an epoch: a copy every step was ~4% of head training. */
    if (!tr->n_val && tr->batch_in_epoch == tr->batches_per_epoch - 1) keep_best(tr, 0);
    optimiser_step(tr, lr_at(tr));
    tr->step++;
    tr->loss_sum += (double)loss * n, tr->seen += n;
    if (++tr->batch_in_epoch < tr->batches_per_epoch) continue;
    /* end of an epoch */
    p->train_loss = (float)(tr->loss_sum / tr->seen), p->train_acc = (float)(tr->correct / tr->seen);
    if (evaluate(tr, tr->val_idx, tr->n_val, &p->val_loss, &p->val_acc, NULL) < 0) return tt_last_code();
    /* With a validation set the best epoch's weights are kept; without one, the epoch's
       training loss only drives early stopping and the final weights stay. */
    float crit = tr->n_val ? p->val_loss : p->train_loss;
    if (!isfinite(crit) || !params_finite(tr)) return diverged(tr, p, isfinite(crit) ? INFINITY : crit);
    if (crit < tr->best_val_loss) {
      tr->best_val_loss = crit, tr->best_epoch = tr->epoch, tr->since_best = 0;
      if (tr->n_val) keep_best(tr, 0);
    } else {
      tr->since_best++;
    }
    p->stopped_early = tr->cfg.patience > 0 && tr->since_best >= tr->cfg.patience;
    tr->batch_in_epoch = 0;
    tr->epoch++;
    if (tr->epoch >= tr->cfg.epochs || p->stopped_early) {
      if (tr->n_val) keep_best(tr, 1);
      tr->finished = 1;
    }
    fill_progress(tr, p);
    p->epoch = tr->epoch - 1; /* the epoch whose metrics these are */
    return tr->finished ? 2 : 1;
  }
  fill_progress(tr, p);
  return 0;
}

void tt_trainer_stop(tt_trainer *tr) {
  if (!tr->finished && tr->n_val && tr->best_epoch >= 0) keep_best(tr, 1);
  tr->finished = 1;
}

int tt_trainer_confusion(tt_trainer *tr, int *matrix) {
  float loss, acc;
  memset(matrix, 0, (size_t)tr->classes * tr->classes * sizeof(int));
  int rc = evaluate(tr, tr->val_idx, tr->n_val, &loss, &acc, matrix);
  return rc < 0 ? rc : tr->n_val;
}

int tt_trainer_validation(const tt_trainer *tr, int *idx) {
  memcpy(idx, tr->val_idx, (size_t)tr->n_val * sizeof(int));
  return tr->n_val;
}
