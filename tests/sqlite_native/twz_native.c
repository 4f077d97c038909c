/* Host implementations of the twz.h functions the guest's shell uses (see include/twz.h), and
 * of vfs.h: databases are ordinary files through SQLite's unix VFS. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "twz.h"
#include "vfs.h"

struct twz_obj {
    char *bytes;
    size_t len;
};

uint64_t twz_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int twz_stdin_is_tty(void) { return isatty(0); }

/* The shell gives SQLite's memsys5 all but 16 MiB of this: 64 MiB, as a guest with the default
 * memory has about that much or more. */
size_t twz_heap_untouched(void) { return (size_t)80 << 20; }

void *twz_heap_carve(size_t size) { return malloc(size); }

int twz_obj_open(const char *name, twz_obj **out) {
    FILE *f = fopen(name, "rb");
    if (!f) return -ENOENT;
    twz_obj *o = calloc(1, sizeof *o);
    size_t cap = 0;
    int rc = o ? 0 : -ENOMEM;
    while (rc == 0) {
        if (o->len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *grown = realloc(o->bytes, cap);
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            o->bytes = grown;
        }
        size_t n = fread(o->bytes + o->len, 1, cap - o->len, f);
        if (n == 0) break;
        o->len += n;
    }
    fclose(f);
    if (rc != 0) {
        twz_obj_close(o);
        return rc;
    }
    *out = o;
    return 0;
}

void *twz_obj_base(twz_obj *o) { return o->bytes ? o->bytes : (void *)""; }

int64_t twz_obj_size(twz_obj *o) { return (int64_t)o->len; }

void twz_obj_close(twz_obj *o) {
    if (o) free(o->bytes);
    free(o);
}

const char *twz_vfs_name(void) { return "unix"; }
int twz_vfs_persistent(void) { return 1; }
sqlite3_vfs *twz_memvfs(void) { return NULL; }
