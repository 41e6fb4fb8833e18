/* tt_abi(): src/abi.h's declarations as JSON, for wasm/abi.mjs to read when the module
   loads: {"enums": {kind: {name: value}}, "structs": {name: {"size": bytes, "members":
   {member: [offset, kind, bytes]}}}}. Also checks, at compile time, that every member
   abi.h lists has the C type its kind says. */
#include "abi.h"
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Compile-time checks (in tt_abi below): a negative array size when a member's type is
   not its kind's. */
#define CHECK_chars(T, m)       (sizeof(((T *)0)->m[0]) == 1)
#define CHECK_KIND_(T, m, kind) __builtin_types_compatible_p(__typeof__(((T *)0)->m), TT_ABI_CTYPE_##kind)
#define CHECK_i32(T, m)         CHECK_KIND_(T, m, i32)
#define CHECK_f32(T, m)         CHECK_KIND_(T, m, f32)
#define CHECK_u64(T, m)         CHECK_KIND_(T, m, u64)
#define CHECK_ptr(T, m)         CHECK_KIND_(T, m, ptr)
#define CHECK_bytes(T, m)       CHECK_KIND_(T, m, bytes)
#define CHECK_size(T, m)        CHECK_KIND_(T, m, size)
#define CHECK_op_desc(T, m)     CHECK_KIND_(T, m, op_desc)
#define CHECK_MEMBER_(m, kind)  (void)sizeof(char[CHECK_##kind(ABI_T, m) ? 1 : -1]);

static char json[8192];
static size_t at;

static void put(const char *fmt, const char *s, long a, long b) {
  if (at < sizeof json) at += (size_t)snprintf(json + at, sizeof json - at, fmt, s, a, b);
}
/* Ends a list: its last comma becomes the closing bracket. */
static void close_list(char c) {
  if (at && at < sizeof json && json[at - 1] == ',')
    json[at - 1] = c;
  else
    put("%s", (char[]){c, 0}, 0, 0);
}

/* Statement-like macro lists, which clang-format reflows differently on each pass: */
/* clang-format off */
#define ENUM_VALUE_(name, value) put("\"%s\":%ld,", #name, (long)(value), 0);
#define ENUM_(kind, LIST) put("\"%s\":{", kind, 0, 0); LIST(ENUM_VALUE_) close_list('}'); put(",", "", 0, 0);
#define MEMBER_(m, kind) \
  put("\"%s\":[%ld,\"" #kind "\",%ld],", #m, (long)offsetof(ABI_T, m), (long)sizeof(((ABI_T *)0)->m));
#define STRUCT_(js, T, LIST) {                                                  \
    typedef T ABI_T;                                                           \
    LIST(CHECK_MEMBER_)                                                        \
    put("\"%s\":{\"size\":%ld,\"members\":{", #js, (long)sizeof(T), 0);       \
    LIST(MEMBER_) close_list('}'); put("},", "", 0, 0);                        \
  }

const char *tt_abi(void) {
  if (at) return json;
  put("{\"enums\":{", "", 0, 0);
  ENUM_("op", TT_ABI_ENUM_OP) ENUM_("act", TT_ABI_ENUM_ACT) ENUM_("encoding", TT_ABI_ENUM_ENCODING)
  ENUM_("optimizer", TT_ABI_ENUM_OPTIMIZER) ENUM_("error", TT_ABI_ENUM_ERROR)
  close_list('}');
  put(",\"structs\":{", "", 0, 0);
  TT_ABI_STRUCTS(STRUCT_)
  close_list('}');
  put("}", "", 0, 0);
  /* clang-format on */
  if (at >= sizeof json) return "{}"; /* cannot happen: the description is ~2 KB */
  return json;
}
