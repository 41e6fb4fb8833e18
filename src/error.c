#include "tt.h"
#include <stdarg.h>
#include <stdio.h>

static char g_msg[512];

int tt_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  return code;
}

const char *tt_last_error(void) { return g_msg; }
void tt_clear_error(void) { g_msg[0] = 0; }
