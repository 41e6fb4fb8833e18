/* The C/JS interface, declared once: the names JS uses for the engine's enums, and the
   members of the C structs that cross the boundary in linear memory. Each list is an X-macro; tt_abi() (abi.c) expands them into a JSON description
   (enum values, struct sizes, member offsets) that wasm/abi.mjs reads when the module
   loads, so JS reads and writes C's own structs in linear memory by member name, never
   by position, and every export takes them as C declares it.
   The enum values are C's own constants (net.h, kernels.h, weights.h, train.h, tt.h):
   this file gives them names, it does not number anything. The exported functions are
   listed in the Makefile (EXPORTS), each under its C name. */
/* The X-macro tables are laid out by hand (clang-format reflows macro lists differently
   on each pass): */
/* clang-format off */
#ifndef TT_ABI_H
#define TT_ABI_H
#include "augment.h"
#include "kernels/kernels.h"
#include "net.h"
#include "train.h"
#include "tt.h"
#include "weights.h"

/* ---- enums: X(js name, C constant) ---- */

#define TT_ABI_ENUM_OP(X)                                                                      \
  X(input, TT_OP_INPUT) X(conv2d, TT_OP_CONV2D) X(depthwise, TT_OP_DEPTHWISE)             \
  X(dense, TT_OP_DENSE) X(add, TT_OP_ADD) X(avgpool, TT_OP_AVGPOOL) X(act, TT_OP_ACT)     \
  X(softmax, TT_OP_SOFTMAX) X(affine, TT_OP_AFFINE) X(dropout, TT_OP_DROPOUT)             \
  X(mean, TT_OP_MEAN) X(gate, TT_OP_GATE) X(prelu, TT_OP_PRELU)

#define TT_ABI_ENUM_ACT(X)                                                                     \
  X(none, TT_ACT_NONE) X(relu, TT_ACT_RELU) X(relu6, TT_ACT_RELU6)                        \
  X(hswish, TT_ACT_HSWISH) X(hsigmoid, TT_ACT_HSIGMOID)

/* Weight encodings, named as tfjs's manifest names the dtype. */
#define TT_ABI_ENUM_ENCODING(X)                                                                \
  X(float32, TT_W_F32) X(float16, TT_W_F16) X(uint8, TT_W_U8) X(uint16, TT_W_U16)         \
  X(int32, TT_W_I32)

#define TT_ABI_ENUM_OPTIMIZER(X) X(adam, TT_OPT_ADAM) X(adamw, TT_OPT_ADAMW) X(sgd, TT_OPT_SGD)

#define TT_ABI_ENUM_ERROR(X)                                                                   \
  X(ok, TT_OK) X(invalid, TT_EINVAL) X(nomem, TT_ENOMEM) X(format, TT_EFORMAT)            \
  X(unsupported, TT_EUNSUP) X(state, TT_ESTATE)

/* ---- structs JS reads and writes in place: X(member, kind) ----
   JS finds each member at its offsetof() and reads it as its kind: i32 (int), f32
   (float), u64 (uint64_t), ptr (float *, into linear memory), bytes (uint8_t *), size
   (size_t), chars (a NUL-terminated char array), or a struct listed here (nested). tt_abi() gives JS the
   offsets and sizes; abi.c checks every member's C type against its kind at compile
   time. A member left out of a list is one JS cannot name (it stays 0 when JS builds
   the struct). */

/* An op's descriptor, as tt_net_add takes it. The order is also the saved model's op
   record (savefile.c): changing it changes the file format (bump TT_SAVE_VERSION). */
#define TT_ABI_OP_DESC(X)                                                                 \
  X(type, i32) X(in0, i32) X(in1, i32) X(kh, i32) X(kw, i32) X(sh, i32) X(sw, i32)       \
  X(same, i32) X(pt, i32) X(pb, i32) X(pl, i32) X(pr, i32) X(channels, i32) X(act, i32)  \
  X(scale, f32) X(offset, f32)

/* An op of a built net, as tt_net_op returns it (read only): its descriptor, output
   shape, parameters (owned by the net) and name. */
#define TT_ABI_OP(X)                                                                      \
  X(d, op_desc) X(h, i32) X(w, i32) X(c, i32) X(wt, ptr) X(wn, size) X(bias, ptr)        \
  X(bn, size) X(name, chars)

/* A trainer's settings, as tt_trainer_new takes them. */
#define TT_ABI_TRAIN_CFG(X)                                                               \
  X(epochs, i32) X(batch, i32) X(optimizer, i32) X(lr, f32) X(weight_decay, f32)          \
  X(momentum, f32) X(warmup, f32) X(cosine, i32) X(label_smoothing, f32)                  \
  X(balanced, i32) X(val_fraction, f32) X(patience, i32) X(seed, u64)

/* Training progress, as tt_trainer_run writes it. */
#define TT_ABI_PROGRESS(X)                                                                \
  X(epoch, i32) X(batch, i32) X(batches_per_epoch, i32) X(done, i32)                      \
  X(stopped_early, i32) X(best_epoch, i32) X(train_loss, f32) X(train_acc, f32)           \
  X(val_loss, f32) X(val_acc, f32) X(best_val_loss, f32) X(lr, f32) X(n_train, i32)       \
  X(n_val, i32)

/* Augmentation settings, as tt_img_sample_aug takes them. */
#define TT_ABI_AUG(X)                                                                     \
  X(scale_min, f32) X(ratio_min, f32) X(ratio_max, f32) X(flip, i32) X(brightness, f32)   \
  X(contrast, f32) X(saturation, f32)

/* A decoded image (tt_image), as tt_img_decode and tt_img_from_pixels return it. */
#define TT_ABI_IMAGE(X) X(w, i32) X(h, i32) X(rgb, bytes)

/* X(js name, C type, member list). Nested structs come before the structs holding them. */
#define TT_ABI_STRUCTS(X)                                                                 \
  X(op_desc, tt_op_desc, TT_ABI_OP_DESC) X(op, tt_op, TT_ABI_OP)                          \
  X(train_cfg, tt_train_cfg, TT_ABI_TRAIN_CFG) X(progress, tt_progress, TT_ABI_PROGRESS)  \
  X(aug, tt_aug, TT_ABI_AUG) X(image, tt_image, TT_ABI_IMAGE)

/* The C type of each kind (chars: any char array). */
#define TT_ABI_CTYPE_i32 int
#define TT_ABI_CTYPE_f32 float
#define TT_ABI_CTYPE_u64 uint64_t
#define TT_ABI_CTYPE_ptr float *
#define TT_ABI_CTYPE_bytes uint8_t *
#define TT_ABI_CTYPE_size size_t
#define TT_ABI_CTYPE_op_desc tt_op_desc

/* The JSON description tt_abi() returns (the NUL-terminated string stays valid). */
const char *tt_abi(void);

#endif
