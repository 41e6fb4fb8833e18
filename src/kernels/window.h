/* Window clipping shared by the spatial kernels (conv, depthwise, pooling). */
#ifndef TT_KERNELS_WINDOW_H
#define TT_KERNELS_WINDOW_H

/* Taps [*k0,*k1) of a window starting at input index o*stride - pad that fall inside
   [0,size). Empty (k0 == k1) when the window lies entirely in padding. */
static inline void tap_range(int o, int stride, int pad, int ksize, int size, int *k0, int *k1) {
  const int i0 = o * stride - pad;
  int a = i0 < 0 ? -i0 : 0, b = size - i0 < ksize ? size - i0 : ksize;
  *k0 = a;
  *k1 = b < a ? a : b;
}

#endif
