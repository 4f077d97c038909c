/* assert.h (twz libc shim): a failed assertion prints the expression and location, then aborts
 * (the VMM reports the abort with a backtrace). Disabled by NDEBUG, as usual. Not include-guarded:
 * each inclusion re-reads NDEBUG. */
#include "_twz_libc.h"
#undef assert
#ifdef NDEBUG
#define assert(e) ((void)0)
#else
TWZ_BEGIN_DECLS
_Noreturn void __twz_assert_fail(const char *expr, const char *file, int line, const char *func);
TWZ_END_DECLS
#define assert(e) ((e) ? (void)0 : __twz_assert_fail(#e, __FILE__, __LINE__, __func__))
#endif
#ifndef __cplusplus
#define static_assert _Static_assert
#endif
