/* memvfs: a SQLite VFS whose files are heap buffers that last for the run. The object VFS
 * (objvfs.c) keeps temporary files here; registered as "twzmem", it also serves databases opened
 * with `file:NAME?vfs=twzmem`. Single-threaded and single-process, so locks always succeed. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>
#include "vfs.h"

/* One stored file. */
struct mem_file_data {
    char *name;
    unsigned char *data;
    sqlite3_int64 size, cap;
    int refs;
    int delete_on_close;
    struct mem_file_data *next;
};

/* An open handle: SQLite's base struct first. */
struct mem_file {
    sqlite3_file base;
    struct mem_file_data *f;
};

static struct mem_file_data *files;

static struct mem_file_data *find(const char *name) {
    for (struct mem_file_data *f = files; f; f = f->next)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

static void unlink_data(struct mem_file_data *d) {
    for (struct mem_file_data **p = &files; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    free(d->name);
    free(d->data);
    free(d);
}

static int mem_close(sqlite3_file *file) {
    struct mem_file *m = (struct mem_file *)file;
    if (m->f && --m->f->refs == 0 && m->f->delete_on_close) unlink_data(m->f);
    m->f = NULL;
    return SQLITE_OK;
}

static int mem_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off) {
    struct mem_file_data *f = ((struct mem_file *)file)->f;
    sqlite3_int64 avail = off < f->size ? f->size - off : 0;
    int n = avail < amt ? (int)avail : amt;
    if (n > 0) memcpy(buf, f->data + off, (size_t)n);
    if (n < amt) {
        memset((char *)buf + n, 0, (size_t)(amt - n));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int grow(struct mem_file_data *f, sqlite3_int64 need) {
    if (need <= f->cap) return SQLITE_OK;
    sqlite3_int64 cap = f->cap ? f->cap : 4096;
    while (cap < need) cap *= 2;
    unsigned char *d = realloc(f->data, (size_t)cap);
    if (!d) return SQLITE_FULL;
    memset(d + f->cap, 0, (size_t)(cap - f->cap));
    f->data = d;
    f->cap = cap;
    return SQLITE_OK;
}

static int mem_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off) {
    struct mem_file_data *f = ((struct mem_file *)file)->f;
    int rc = grow(f, off + amt);
    if (rc != SQLITE_OK) return rc;
    memcpy(f->data + off, buf, (size_t)amt);
    if (off + amt > f->size) f->size = off + amt;
    return SQLITE_OK;
}

static int mem_truncate(sqlite3_file *file, sqlite3_int64 size) {
    struct mem_file_data *f = ((struct mem_file *)file)->f;
    if (size < f->size) {
        memset(f->data + size, 0, (size_t)(f->size - size));
        f->size = size;
    }
    return SQLITE_OK;
}

static int mem_sync(sqlite3_file *file, int flags) {
    (void)file;
    (void)flags;
    return SQLITE_OK;
}

static int mem_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    *size = ((struct mem_file *)file)->f->size;
    return SQLITE_OK;
}

static int mem_lock(sqlite3_file *file, int level) {
    (void)file;
    (void)level;
    return SQLITE_OK;
}

static int mem_check_reserved(sqlite3_file *file, int *out) {
    (void)file;
    *out = 0;
    return SQLITE_OK;
}

static int mem_file_control(sqlite3_file *file, int op, void *arg) {
    (void)file;
    (void)op;
    (void)arg;
    return SQLITE_NOTFOUND;
}

static int mem_sector_size(sqlite3_file *file) {
    (void)file;
    return 4096;
}

static int mem_device_characteristics(sqlite3_file *file) {
    (void)file;
    return SQLITE_IOCAP_ATOMIC | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL |
           SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static const sqlite3_io_methods mem_io = {
    1,
    mem_close,
    mem_read,
    mem_write,
    mem_truncate,
    mem_sync,
    mem_file_size,
    mem_lock,
    mem_lock,
    mem_check_reserved,
    mem_file_control,
    mem_sector_size,
    mem_device_characteristics,
    0, 0, 0, 0, 0, 0,
};

static int temp_counter;

static int mem_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                    int *out_flags) {
    (void)vfs;
    struct mem_file *m = (struct mem_file *)file;
    m->base.pMethods = NULL;
    char tmp[32];
    if (!name) {
        sqlite3_snprintf(sizeof tmp, tmp, "\001temp-%d", ++temp_counter);
        name = tmp;
    }
    struct mem_file_data *f = find(name);
    if (!f) {
        if (!(flags & SQLITE_OPEN_CREATE)) return SQLITE_CANTOPEN;
        f = calloc(1, sizeof *f);
        if (!f) return SQLITE_NOMEM;
        f->name = strdup(name);
        if (!f->name) {
            free(f);
            return SQLITE_NOMEM;
        }
        f->next = files;
        files = f;
    } else if ((flags & SQLITE_OPEN_EXCLUSIVE) && (flags & SQLITE_OPEN_CREATE)) {
        return SQLITE_CANTOPEN;
    }
    if (flags & SQLITE_OPEN_DELETEONCLOSE) f->delete_on_close = 1;
    f->refs++;
    m->f = f;
    m->base.pMethods = &mem_io;
    if (out_flags) *out_flags = flags;
    return SQLITE_OK;
}

static int mem_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    (void)vfs;
    (void)sync_dir;
    struct mem_file_data *f = find(name);
    if (!f) return SQLITE_IOERR_DELETE_NOENT;
    if (f->refs) f->delete_on_close = 1;
    else unlink_data(f);
    return SQLITE_OK;
}

static int mem_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    (void)flags;
    struct mem_file_data *f = find(name);
    *out = f != NULL && f->size > 0;
    return SQLITE_OK;
}

static int mem_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
    (void)vfs;
    sqlite3_snprintf(n, out, "%s", name);
    return SQLITE_OK;
}

static int mem_randomness(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    if (twz_random(out, (size_t)n) != 0) memset(out, 0, (size_t)n);
    return n;
}

static int mem_sleep(sqlite3_vfs *vfs, int us) {
    (void)vfs;
    return us;
}

/* Julian day number of the Unix epoch, in milliseconds. */
#define UNIX_EPOCH_JD_MS 210866760000000LL

static int mem_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    (void)vfs;
    *out = UNIX_EPOCH_JD_MS + (sqlite3_int64)(twz_wall_ns() / 1000000);
    return SQLITE_OK;
}

static int mem_current_time(sqlite3_vfs *vfs, double *out) {
    sqlite3_int64 ms;
    mem_current_time_int64(vfs, &ms);
    *out = (double)ms / 86400000.0;
    return SQLITE_OK;
}

static int mem_get_last_error(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    if (n > 0) out[0] = 0;
    return 0;
}

static sqlite3_vfs mem_vfs = {
    2,
    sizeof(struct mem_file),
    512,
    NULL,
    "twzmem",
    NULL,
    mem_open,
    mem_delete,
    mem_access,
    mem_full_pathname,
    NULL, NULL, NULL, NULL,
    mem_randomness,
    mem_sleep,
    mem_current_time,
    mem_get_last_error,
    mem_current_time_int64,
    NULL, NULL, NULL,
};

sqlite3_vfs *twz_memvfs(void) { return &mem_vfs; }
