/* The part of twz.h the guest's SQLite shell (examples/sqlite/src/shell.c) uses, for building the
 * same shell natively on the host (tests/sqlite_native/mod.rs), so its output can be diffed with
 * the guest's. Implemented with the host's libc in twz_native.c. */
#ifndef TWZ_NATIVE_H
#define TWZ_NATIVE_H
#include <stddef.h>
#include <stdint.h>

typedef struct twz_obj twz_obj;

uint64_t twz_monotonic_ns(void);
int twz_stdin_is_tty(void);
size_t twz_heap_untouched(void);
void *twz_heap_carve(size_t size);
/* `.read NAME` reads the host file NAME (relative to the working directory). */
int twz_obj_open(const char *name, twz_obj **out);
void *twz_obj_base(twz_obj *o);
int64_t twz_obj_size(twz_obj *o);
void twz_obj_close(twz_obj *o);

#endif
