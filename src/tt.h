/* tinytune: the engine's shared definitions. Every function that can fail returns a
   negative TT_E* code (or NULL) and leaves a human-readable message in tt_last_error(),
   which names the offending thing (layer, weight, file) so a caller can show it as is. */
#ifndef TT_H
#define TT_H
#include <stddef.h>
#include <stdint.h>

enum {
  TT_OK = 0,
  TT_EINVAL = -1,  /* bad argument, shape or value */
  TT_ENOMEM = -2,  /* allocation failed or a size limit was exceeded */
  TT_EFORMAT = -3, /* bytes that do not parse: image, weights, saved model */
  TT_EUNSUP = -4,  /* parses but is not supported (op, dtype, image type) */
  TT_ESTATE = -5   /* called in the wrong order (no model loaded, ...) */
};

/* Sets the error message (printf-style) and returns code, so callers can
   `return tt_fail(TT_EINVAL, "...", ...);`. */
int tt_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
const char *tt_last_error(void);
/* The code of that message: what a caller that only saw a NULL returns (a failed
   tt_net_forward, say) so it reports what failed, not a guess. */
int tt_last_code(void);
void tt_clear_error(void);

#endif
