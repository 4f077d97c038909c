/* objvfs: SQLite's default VFS in this guest. Each named database and its rollback journal is one
 * persistent object of the host's store, named after the file ("shop", "shop-journal"), used as a
 * byte stream (twz.h): the file's bytes at the start of the object's data region, its length in
 * the object's metadata header. `twz-vmm obj ls` shows that length as the size in use, and the
 * bytes are an ordinary SQLite database file.
 *
 * - Reads and writes are copies into the mapped object (no VM exit); with memory-mapped I/O on
 *   (SQLITE_DEFAULT_MMAP_SIZE, or `pragma mmap_size`), xFetch hands SQLite pointers straight into
 *   the object, so reads do not even copy.
 * - Every store survives the VMM process being killed (the object is a shared mapping of a host
 *   file). xSync makes the ranges written since the last sync durable against power loss through
 *   twz_obj_flush, then the length.
 * - A file holds at most twz_obj_max_size() bytes (1 GiB less the object's log, FOT and
 *   metadata, about 1019 MiB): writes beyond give SQLITE_FULL ("database or disk is full").
 * - There is no host call to delete an object yet, so xDelete truncates the file to length 0;
 *   xAccess reports a file of length 0 as absent, which is all SQLite asks of a deleted journal.
 * - Locking: the guest holds its databases exclusively and the shell opens one connection, so
 *   locks always succeed. Two guests opening the same database at once are not coordinated yet
 *   (issue 5/7 follow-up): do not run them concurrently on one database.
 * - Temporary files (no name, or delete-on-close) live in the heap (memvfs.c). */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <twz.h>
#include "vfs.h"

/* Object names are at most this long (abi::fot::MAX_NAME_LEN). */
#define MAX_NAME 96

/* A byte range [lo, hi) of a file. */
struct range {
    sqlite3_int64 lo, hi;
};

/* An open object file: SQLite's base struct first. */
struct obj_file {
    sqlite3_file base;
    twz_obj *obj;
    /* SQLite's memory-mapping limit for this file (SQLITE_FCNTL_MMAP_SIZE), for `pragma mmap_size`. */
    sqlite3_int64 mmap_size;
    /* Written since the last sync (empty when hi <= lo). */
    struct range dirty;
};

/* Objects this run has opened, by name: opening is two VM exits (look up, map) and SQLite opens,
 * probes and "deletes" the journal in every write transaction, so handles are kept for the run.
 * Nothing deletes objects while a guest runs, so a cached handle stays right. */
struct named_obj {
    char name[MAX_NAME + 1];
    twz_obj *obj;
    struct named_obj *next;
};
static struct named_obj *opened;

/* The object named `name`, created if `create`; 0 or a negative errno. */
static int get_object(const char *name, int create, twz_obj **out) {
    for (struct named_obj *n = opened; n; n = n->next)
        if (strcmp(n->name, name) == 0) {
            *out = n->obj;
            return 0;
        }
    if (strlen(name) > MAX_NAME) return -ENAMETOOLONG;
    struct named_obj *n = sqlite3_malloc(sizeof *n);
    if (!n) return -ENOMEM;
    int rc = twz_obj_open(name, &n->obj);
    if (rc == -ENOENT && create) {
        rc = twz_obj_create(name, &n->obj);
        if (rc == -EEXIST) rc = twz_obj_open(name, &n->obj);
    }
    if (rc != 0) {
        sqlite3_free(n);
        return rc;
    }
    strcpy(n->name, name);
    n->next = opened;
    opened = n;
    *out = n->obj;
    return 0;
}

static twz_obj *obj_of(sqlite3_file *file) { return ((struct obj_file *)file)->obj; }

static sqlite3_int64 length_of(twz_obj *o) {
    int64_t n = twz_obj_size(o);
    return n < 0 ? 0 : (sqlite3_int64)n;
}

/* Notes [lo, hi) as written since the last sync. One covering extent per file: each flush is a
 * host msync that waits for the disk, so one call over a range with clean pages in it beats one
 * call per written range (the host writes back only the dirty pages). */
static void mark_dirty(struct obj_file *f, sqlite3_int64 lo, sqlite3_int64 hi) {
    if (f->dirty.hi <= f->dirty.lo) {
        f->dirty.lo = lo;
        f->dirty.hi = hi;
        return;
    }
    if (lo < f->dirty.lo) f->dirty.lo = lo;
    if (hi > f->dirty.hi) f->dirty.hi = hi;
}

static int obj_close(sqlite3_file *file) {
    /* The handle stays cached for the run; unsynced writes stay in the object (SQLite syncs
     * what it needs before it closes). */
    ((struct obj_file *)file)->obj = NULL;
    return SQLITE_OK;
}

static int obj_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off) {
    twz_obj *o = obj_of(file);
    unsigned char *base = twz_obj_base(o);
    if (!base) return SQLITE_IOERR_READ;
    sqlite3_int64 len = length_of(o);
    sqlite3_int64 avail = off < len ? len - off : 0;
    int n = avail < amt ? (int)avail : amt;
    if (n > 0) memcpy(buf, base + off, (size_t)n);
    if (n < amt) {
        memset((char *)buf + n, 0, (size_t)(amt - n));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

/* Sets the length to `size`: bytes between the old end and `size` read as zeros. */
static int set_length(struct obj_file *f, unsigned char *base, sqlite3_int64 size) {
    sqlite3_int64 len = length_of(f->obj);
    if (size > len) {
        memset(base + len, 0, (size_t)(size - len));
        mark_dirty(f, len, size);
    }
    return twz_obj_set_size(f->obj, (uint64_t)size) == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

static int obj_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off) {
    struct obj_file *f = (struct obj_file *)file;
    if (off < 0 || amt < 0) return SQLITE_IOERR_WRITE;
    sqlite3_int64 end = off + amt;
    if ((uint64_t)end > twz_obj_max_size()) return SQLITE_FULL;
    unsigned char *base = twz_obj_base(f->obj);
    if (!base) return SQLITE_IOERR_WRITE;
    if (end > length_of(f->obj)) {
        /* Zero any gap first, then copy, then publish the new length. */
        if (off > length_of(f->obj) && set_length(f, base, off) != SQLITE_OK)
            return SQLITE_IOERR_WRITE;
        memcpy(base + off, buf, (size_t)amt);
        if (twz_obj_set_size(f->obj, (uint64_t)end) != 0) return SQLITE_IOERR_WRITE;
    } else {
        memcpy(base + off, buf, (size_t)amt);
    }
    mark_dirty(f, off, end);
    return SQLITE_OK;
}

static int obj_truncate(sqlite3_file *file, sqlite3_int64 size) {
    struct obj_file *f = (struct obj_file *)file;
    if (size < 0) return SQLITE_IOERR_TRUNCATE;
    if ((uint64_t)size > twz_obj_max_size()) return SQLITE_FULL;
    unsigned char *base = twz_obj_base(f->obj);
    if (!base) return SQLITE_IOERR_TRUNCATE;
    return set_length(f, base, size);
}

static int obj_sync(sqlite3_file *file, int flags) {
    (void)flags;
    struct obj_file *f = (struct obj_file *)file;
    /* Bytes beyond a later truncation need no flush. */
    sqlite3_int64 len = length_of(f->obj);
    sqlite3_int64 lo = f->dirty.lo, hi = f->dirty.hi < len ? f->dirty.hi : len;
    if (hi > lo && twz_obj_flush(f->obj, (uint64_t)lo, (uint64_t)(hi - lo)) != 0)
        return SQLITE_IOERR_FSYNC;
    f->dirty.lo = f->dirty.hi = 0;
    /* The length, if it changed. */
    return twz_obj_flush(f->obj, 0, 0) == 0 ? SQLITE_OK : SQLITE_IOERR_FSYNC;
}

static int obj_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    int64_t n = twz_obj_size(obj_of(file));
    if (n < 0) return SQLITE_IOERR_FSTAT;
    *size = (sqlite3_int64)n;
    return SQLITE_OK;
}

static int obj_lock(sqlite3_file *file, int level) {
    (void)file;
    (void)level;
    return SQLITE_OK;
}

static int obj_check_reserved(sqlite3_file *file, int *out) {
    (void)file;
    *out = 0;
    return SQLITE_OK;
}

static int obj_file_control(sqlite3_file *file, int op, void *arg) {
    struct obj_file *f = (struct obj_file *)file;
    if (op == SQLITE_FCNTL_MMAP_SIZE) {
        /* Reports the limit; a non-negative argument sets it (the pager already obeys it). */
        sqlite3_int64 *p = arg, want = *p, max = (sqlite3_int64)twz_obj_max_size();
        *p = f->mmap_size;
        if (want >= 0) f->mmap_size = want < max ? want : max;
        return SQLITE_OK;
    }
    return SQLITE_NOTFOUND;
}

static int obj_sector_size(sqlite3_file *file) {
    (void)file;
    return 4096;
}

/* Only what holds after a power loss: an unflushed page may reach the disk before or after any
 * other, so appends and page writes are not atomic. */
static int obj_device_characteristics(sqlite3_file *file) {
    (void)file;
    return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

/* Memory-mapped I/O: a pointer into the object for [off, off+amt) when the file covers it. */
static int obj_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp) {
    twz_obj *o = obj_of(file);
    *pp = NULL;
    if (off >= 0 && amt >= 0 && off + amt <= length_of(o)) {
        unsigned char *base = twz_obj_base(o);
        if (base) *pp = base + off;
    }
    return SQLITE_OK;
}

/* Nothing to release: the pointers stay valid while the object is mapped (only this database
 * and its journal are mapped, far below the run's slot budget, so they are never evicted). */
static int obj_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p) {
    (void)file;
    (void)off;
    (void)p;
    return SQLITE_OK;
}

static const sqlite3_io_methods obj_io = {
    3,
    obj_close,
    obj_read,
    obj_write,
    obj_truncate,
    obj_sync,
    obj_file_size,
    obj_lock,
    obj_lock,
    obj_check_reserved,
    obj_file_control,
    obj_sector_size,
    obj_device_characteristics,
    NULL, NULL, NULL, NULL,
    obj_fetch,
    obj_unfetch,
};

/* Files SQLite deletes itself when done: kept in the heap. */
static int is_temporary(const char *name, int flags) {
    return !name || (flags & (SQLITE_OPEN_DELETEONCLOSE | SQLITE_OPEN_TEMP_DB |
                              SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_TRANSIENT_DB |
                              SQLITE_OPEN_SUBJOURNAL));
}

static int obj_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                    int *out_flags) {
    (void)vfs;
    if (is_temporary(name, flags))
        return twz_memvfs()->xOpen(twz_memvfs(), name, file, flags, out_flags);
    struct obj_file *f = (struct obj_file *)file;
    memset(f, 0, sizeof *f);
    int existed = get_object(name, 0, &f->obj) == 0;
    if (existed && (flags & SQLITE_OPEN_EXCLUSIVE) && length_of(f->obj) > 0)
        return SQLITE_CANTOPEN;
    if (!existed) {
        if (!(flags & SQLITE_OPEN_CREATE)) return SQLITE_CANTOPEN;
        int rc = get_object(name, 1, &f->obj);
        if (rc == -ENOMEM) return SQLITE_NOMEM;
        if (rc != 0) return SQLITE_CANTOPEN;
    }
    f->base.pMethods = &obj_io;
    if (out_flags) *out_flags = flags;
    return SQLITE_OK;
}

/* No host call deletes an object yet: the file is truncated to nothing. Like the unix VFS, which
 * syncs the directory after an unlink only when asked, the new length is flushed only with
 * `sync_dir` (SQLite asks with `pragma synchronous = extra`; otherwise a power loss right after a
 * commit may roll that last transaction back, as it may on a file system). */
static int obj_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    (void)vfs;
    twz_obj *o;
    int rc = get_object(name, 0, &o);
    if (rc == -ENOENT) return twz_memvfs()->xDelete(twz_memvfs(), name, sync_dir);
    if (rc != 0) return SQLITE_IOERR_DELETE;
    if (length_of(o) == 0) return SQLITE_IOERR_DELETE_NOENT;
    if (twz_obj_set_size(o, 0) != 0) return SQLITE_IOERR_DELETE;
    if (sync_dir && twz_obj_flush(o, 0, 0) != 0) return SQLITE_IOERR_DELETE;
    return SQLITE_OK;
}

/* A file exists when an object has its name and a non-zero length. */
static int obj_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    (void)flags;
    twz_obj *o;
    *out = get_object(name, 0, &o) == 0 && length_of(o) > 0;
    return SQLITE_OK;
}

static int obj_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
    (void)vfs;
    sqlite3_snprintf(n, out, "%s", name);
    return SQLITE_OK;
}

/* Randomness, sleep and clocks: as the heap VFS does them. */
static int obj_randomness(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    return twz_memvfs()->xRandomness(twz_memvfs(), n, out);
}

static int obj_sleep(sqlite3_vfs *vfs, int us) {
    (void)vfs;
    return twz_memvfs()->xSleep(twz_memvfs(), us);
}

static int obj_current_time(sqlite3_vfs *vfs, double *out) {
    (void)vfs;
    return twz_memvfs()->xCurrentTime(twz_memvfs(), out);
}

static int obj_get_last_error(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    return twz_memvfs()->xGetLastError(twz_memvfs(), n, out);
}

static int obj_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    (void)vfs;
    return twz_memvfs()->xCurrentTimeInt64(twz_memvfs(), out);
}

static sqlite3_vfs obj_vfs = {
    2,
    sizeof(struct obj_file), /* raised to memvfs's size in sqlite3_os_init if that is larger */
    512,
    NULL,
    "twzobj",
    NULL,
    obj_open,
    obj_delete,
    obj_access,
    obj_full_pathname,
    NULL, NULL, NULL, NULL,
    obj_randomness,
    obj_sleep,
    obj_current_time,
    obj_get_last_error,
    obj_current_time_int64,
    NULL, NULL, NULL,
};

int sqlite3_os_init(void) {
    sqlite3_vfs *mem = twz_memvfs();
    /* Temporary files opened through this VFS are memvfs files in the same memory. */
    if (mem->szOsFile > obj_vfs.szOsFile) obj_vfs.szOsFile = mem->szOsFile;
    int rc = sqlite3_vfs_register(mem, 0);
    if (rc == SQLITE_OK) rc = sqlite3_vfs_register(&obj_vfs, 1);
    return rc;
}

int sqlite3_os_end(void) { return SQLITE_OK; }

const char *twz_vfs_name(void) { return obj_vfs.zName; }
int twz_vfs_persistent(void) { return 1; }
