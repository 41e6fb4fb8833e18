/* Spatial kernels across threads: the output is cut into bands of rows, each run as a
   call of its own on the input rows it reads (see kernels.h). */
#include "kernels.h"
#include "threads.h"

tt_shape tt_band(const tt_shape *s, int oy0, int oy1, int *row0) {
  int lo = oy0 * s->sh - s->pt, hi = (oy1 - 1) * s->sh - s->pt + s->kh;
  tt_shape b = *s;
  b.n = 1;
  b.pt = lo < 0 ? -lo : 0;
  lo = lo < 0 ? 0 : lo;
  hi = hi > s->h ? s->h : hi;
  b.h = hi > lo ? hi - lo : 0;
  b.oh = oy1 - oy0;
  *row0 = lo;
  return b;
}

typedef struct {
  tt_spatial_fn f;
  const tt_shape *s;
  const float *x, *w, *bias;
  float *y;
  int act, rows, per; /* rows per band, bands per image */
} bands;

static void band_task(void *ctx, int t) {
  const bands *b = ctx;
  const tt_shape *s = b->s;
  const int n = t / b->per, oy0 = t % b->per * b->rows;
  const int oy1 = oy0 + b->rows < s->oh ? oy0 + b->rows : s->oh;
  int row0;
  const tt_shape sb = tt_band(s, oy0, oy1, &row0);
  b->f(&sb, b->x + (((size_t)n * s->h + row0) * s->w) * s->c, b->w, b->bias, b->act,
       b->y + (((size_t)n * s->oh + oy0) * s->ow) * s->oc);
}

/* Below this many multiply-adds a kernel call is not worth a trip through the pool. */
#define BANDS_PAR_MIN (1 << 17)

void tt_bands(tt_spatial_fn f, double macs_per_pixel, const tt_shape *s, const float *x, const float *w,
              const float *bias, int act, float *y) {
  const int T = tt_threads();
  if (T == 1 || s->oh < 2 || (double)s->n * s->oh * s->ow * macs_per_pixel < BANDS_PAR_MIN) {
    f(s, x, w, bias, act, y);
    return;
  }
  /* Whole images when there are enough of them, else about 3T bands in all, taken by
     whichever thread is free (so a slower core takes fewer). */
  int per = s->n >= T ? 1 : (3 * T + s->n - 1) / s->n;
  per = per > s->oh ? s->oh : per;
  bands b = {f, s, x, w, bias, y, act, (s->oh + per - 1) / per, 0};
  b.per = (s->oh + b.rows - 1) / b.rows;
  tt_parallel(s->n * b.per, band_task, &b);
}
