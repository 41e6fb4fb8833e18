/* Training the trainable part of a network (the last blocks and the head, as one tt_net
   whose input is the cached activation at the cut) on cached inputs: batches, loss,
   optimisers, schedules, split, early stopping, metrics. The caller drives it a few
   batches at a time, so progress can be reported and training cancelled between calls. */
#ifndef TT_TRAIN_H
#define TT_TRAIN_H
#include "net.h"

enum { TT_OPT_ADAM = 0, TT_OPT_ADAMW = 1, TT_OPT_SGD = 2 };

typedef struct {
  int epochs, batch;
  int optimizer;
  float lr, weight_decay, momentum; /* momentum: SGD only */
  float warmup;                     /* fraction of all steps spent warming up linearly */
  int cosine;                       /* cosine decay to 0 after warm-up, else constant */
  float label_smoothing;
  int balanced;       /* class-balanced sampling */
  float val_fraction; /* stratified; at least one image per class stays in training */
  int patience;       /* epochs without a better validation loss before stopping; 0 = never */
  uint64_t seed;
} tt_train_cfg;

void tt_train_defaults(tt_train_cfg *cfg);

typedef struct tt_trainer tt_trainer;

/* net: the trainable network ending in logits (one per class); the trainer borrows it.
   x: n_images*views inputs of the net's input size, image i's view v at (i*views + v);
   view 0 of each image is the un-augmented one used for validation. labels: n_images
   class indices in [0, classes). Copies nothing: x and labels must outlive the trainer. */
tt_trainer *tt_trainer_new(tt_net *net, const tt_train_cfg *cfg, int classes, const float *x, int n_images, int views,
                           const int *labels);
/* The same with x in IEEE half precision (tt_f16_pack): half the memory for the cache,
   each input rounded to 11 significant bits (see kernels/half.c). */
tt_trainer *tt_trainer_new_half(tt_net *net, const tt_train_cfg *cfg, int classes, const uint16_t *x, int n_images,
                                int views, const int *labels);
void tt_trainer_free(tt_trainer *tr);

typedef struct {
  int epoch, batch, batches_per_epoch, done, stopped_early, best_epoch;
  float train_loss, train_acc, val_loss, val_acc, best_val_loss, lr;
  int n_train, n_val;
} tt_progress;

/* Runs up to max_batches batches (ending early at an epoch boundary so the caller sees
   each epoch's metrics). Returns 1 when an epoch ended during the call, 0 if not, 2 when
   training is over (with a validation set the best epoch's weights are restored; without
   one the final weights stay), or a negative code (non-finite loss or weights: the best
   epoch's weights, or without validation the last weights that gave a finite loss, are
   restored and the message says so). */
int tt_trainer_run(tt_trainer *tr, int max_batches, tt_progress *p);

/* Ends training now (a cancel): with a validation set the best epoch's weights are
   restored, if an epoch ended; without one the current weights stay. */
void tt_trainer_stop(tt_trainer *tr);

/* Validation confusion matrix [classes][classes] (row: true, column: predicted) with the
   current weights; returns the number of validation images. */
int tt_trainer_confusion(tt_trainer *tr, int *matrix);

/* The validation images' indices (into the trainer's images; at most n_images of them),
   so the caller can calibrate on exactly the images training did not see. Returns their
   number. */
int tt_trainer_validation(const tt_trainer *tr, int *idx);

/* Softmax probabilities of the net for n inputs (inference mode). */
int tt_predict(tt_net *net, const float *x, int n, float *probs);

/* Mean softmax cross-entropy with label smoothing over n rows of logits, and (if dlogits)
   its gradient. Returns a non-finite value when the logits are. */
float tt_softmax_xent(const float *logits, const int *labels, int n, int classes, float smoothing, float *dlogits);

#endif
