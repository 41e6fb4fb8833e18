/* The last error: its message and code (tt.h). One of each per module: the engine is
   called from one thread (lent threads run kernels only, which do not fail). */
#include "tt.h"
#include <stdarg.h>
#include <stdio.h>

static char g_msg[512];
static int g_code;

int tt_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  g_code = code;
  return code;
}

const char *tt_last_error(void) { return g_msg; }
int tt_last_code(void) { return g_code; }
void tt_clear_error(void) { g_msg[0] = 0, g_code = TT_OK; }
