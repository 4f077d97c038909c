/* objvfs: SQLite's default VFS in this guest. Each named database and its rollback journal is one
 * persistent object of the host's store, named after the file ("shop", "shop-journal"), used as a
 * byte stream (twz.h): the file's bytes at the start of the object's data region, its length in
 * the object's metadata header. `twz-vmm obj ls` shows that length as the size in use, and the
 * bytes are an ordinary SQLite database file (`twz-vmm obj export`/`import` move it).
 *
 * - Reads and writes are copies into the mapped object (no VM exit). Memory-mapped I/O is on by
 *   default (SQLITE_DEFAULT_MMAP_SIZE, up to an object's size; `pragma mmap_size` changes it):
 *   xFetch hands SQLite pointers straight into the object, so page reads do not even copy.
 * - Every store survives the VMM process being killed (the object is a shared mapping of a host
 *   file). What xSync adds follows the run's durability (`twz-vmm run --durability`): none:
 *   nothing (like `pragma synchronous=off`: a power loss may lose or tear recent commits);
 *   commit: the ranges written since the last sync and the length are made durable behind one
 *   fence (twz_obj_flush_many) before xSync returns; group: the same as commit, because a
 *   rollback journal must be durable before the database pages it protects are overwritten, so
 *   syncs cannot be deferred and batched.
 * - A file holds at most twz_obj_max_size() bytes (1 GiB less the object's log, FOT and
 *   metadata, about 1019 MiB): writes beyond give SQLITE_FULL ("database or disk is full"),
 *   the statement fails and the database stays as it was. Databases do not span objects.
 * - Journals: SQLite "deletes" the journal at the end of every write transaction; that
 *   truncates the object to length 0 (cheap, no VM exit; a length-0 object counts as absent),
 *   and closing the database deletes the journal object from the store unless it is hot, so a
 *   run leaves no journal behind. A journal with a length after a crash is a hot journal: the next
 *   open rolls it back, as SQLite does with files.
 * - Locking: a guest holds each database it opens exclusively, from its first lock to its close,
 *   through a lock object "NAME-lock" that the guest creates and keeps mapped; the host's
 *   liveness lock on a mapped object (object-store/src/liveness.rs) says whether its holder still
 *   runs. Another guest that finds the name taken asks the host to delete that object: refused
 *   (-EBUSY) while the holder runs, so it gets SQLITE_BUSY ("database is locked"); allowed once
 *   the holder has exited or was killed, so a crashed holder's lock never stays. Within the
 *   guest the lock is always granted. The lock lasts while the lock object stays mapped: the
 *   shell maps a few objects, far below a run's slot budget (`run --slots`, 64), but a program
 *   that maps more objects at once than that could see it evicted, which drops the lock.
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

/* Byte ranges written since the last sync: sorted, disjoint and not touching. At most
 * TWZ_FLUSH_MANY_MAX, the most one fence names; past that the two closest ranges merge (the clean
 * bytes between them then get synced too, which costs less than another fence). */
struct dirty_set {
    int n;
    struct range r[TWZ_FLUSH_MANY_MAX];
};

/* An open object file: SQLite's base struct first. */
struct obj_file {
    sqlite3_file base;
    twz_obj *obj;
    /* A main database: its name, and the lock object while this guest holds it. */
    const char *db_name;
    twz_obj *lock;
    /* SQLite's memory-mapping limit for this file (SQLITE_FCNTL_MMAP_SIZE), for `pragma mmap_size`. */
    sqlite3_int64 mmap_size;
    /* Written since the last sync (tracked only when syncs flush: not in durability none). */
    int track;
    struct dirty_set dirty;
};

/* Objects this run has opened, by name: opening is two VM exits (look up, map) and SQLite opens,
 * probes and "deletes" the journal in every write transaction, so handles are kept for the run.
 * `obj` NULL records a journal found absent: only the guest holding the database's lock makes
 * its journal, so the answer stays right while the lock is held (the database's close drops
 * these records with the lock). */
struct named_obj {
    char name[MAX_NAME + 1];
    twz_obj *obj;
    struct named_obj *next;
};
static struct named_obj *opened;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static struct named_obj *cached(const char *name) {
    for (struct named_obj *n = opened; n; n = n->next)
        if (strcmp(n->name, name) == 0) return n;
    return NULL;
}

/* Drops `name` from the cache, closing its handle; returns the handle's ID in `*id` (if it had
 * one and `id` is not NULL). */
static int uncache(const char *name, twz_objid *id) {
    int had = 0;
    for (struct named_obj **p = &opened; *p; p = &(*p)->next) {
        struct named_obj *n = *p;
        if (strcmp(n->name, name) != 0) continue;
        if (n->obj) {
            if (id) had = twz_obj_id(n->obj, id) == 0;
            twz_obj_close(n->obj);
        }
        *p = n->next;
        sqlite3_free(n);
        break;
    }
    return had;
}

/* The object named `name`, created if `create`; 0 or a negative errno. */
static int get_object(const char *name, int create, twz_obj **out) {
    struct named_obj *n = cached(name);
    if (n && n->obj) {
        *out = n->obj;
        return 0;
    }
    if (n && !create) return -ENOENT;
    if (strlen(name) > MAX_NAME) return -ENAMETOOLONG;
    if (!n) {
        n = sqlite3_malloc(sizeof *n);
        if (!n) return -ENOMEM;
        strcpy(n->name, name);
        n->obj = NULL;
        n->next = opened;
        opened = n;
    }
    int rc = twz_obj_open(name, &n->obj);
    if (rc == -ENOENT && create) {
        rc = twz_obj_create(name, &n->obj);
        if (rc == -EEXIST) rc = twz_obj_open(name, &n->obj);
    }
    if (rc != 0) {
        n->obj = NULL;
        if (!(rc == -ENOENT && ends_with(name, "-journal"))) uncache(name, NULL);
        return rc;
    }
    *out = n->obj;
    return 0;
}

static twz_obj *obj_of(sqlite3_file *file) { return ((struct obj_file *)file)->obj; }

static sqlite3_int64 length_of(twz_obj *o) {
    int64_t n = twz_obj_size(o);
    return n < 0 ? 0 : (sqlite3_int64)n;
}

static void mark_dirty(struct obj_file *f, sqlite3_int64 lo, sqlite3_int64 hi) {
    struct dirty_set *d = &f->dirty;
    if (!f->track || hi <= lo) return;
    /* Sequential writes: within or touching the last range, or past it. */
    if (d->n > 0) {
        struct range *last = &d->r[d->n - 1];
        if (lo >= last->lo && lo <= last->hi) {
            if (hi > last->hi) last->hi = hi;
            return;
        }
        if (lo > last->hi && d->n < TWZ_FLUSH_MANY_MAX) {
            d->r[d->n++] = (struct range){lo, hi};
            return;
        }
    }
    struct range out[TWZ_FLUSH_MANY_MAX + 1];
    int n = 0, placed = 0;
    for (int i = 0; i < d->n; i++) {
        struct range r = d->r[i];
        if (r.hi < lo) {
            out[n++] = r;
        } else if (r.lo > hi) {
            if (!placed) out[n++] = (struct range){lo, hi};
            placed = 1;
            out[n++] = r;
        } else {
            /* Overlaps or touches: absorb it. */
            if (r.lo < lo) lo = r.lo;
            if (r.hi > hi) hi = r.hi;
        }
    }
    if (!placed) out[n++] = (struct range){lo, hi};
    if (n > TWZ_FLUSH_MANY_MAX) {
        int best = 0;
        for (int i = 1; i + 1 < n; i++)
            if (out[i + 1].lo - out[i].hi < out[best + 1].lo - out[best].hi) best = i;
        out[best].hi = out[best + 1].hi;
        memmove(&out[best + 1], &out[best + 2], (size_t)(n - best - 2) * sizeof out[0]);
        n--;
    }
    memcpy(d->r, out, (size_t)n * sizeof out[0]);
    d->n = n;
}

static int obj_sync(sqlite3_file *file, int flags);
static void unlock_database(struct obj_file *f);

/* The handle stays cached for the run; unsynced writes stay in the object (SQLite syncs what it
 * needs before it closes). Closing a database deletes its empty journal and drops its lock. */
static int obj_close(sqlite3_file *file) {
    struct obj_file *f = (struct obj_file *)file;
    if (f->db_name) unlock_database(f);
    f->obj = NULL;
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
        /* The file space first: a full filesystem is SQLITE_FULL, never a store that fails. */
        int rc = twz_obj_reserve(f->obj, (uint64_t)size);
        if (rc != 0) return rc == -ENOSPC ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
        memset(base + len, 0, (size_t)(size - len));
        mark_dirty(f, len, size);
    }
    int rc = twz_obj_set_size(f->obj, (uint64_t)size);
    return rc == 0 ? SQLITE_OK : rc == -ENOSPC ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
}

static int obj_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off) {
    struct obj_file *f = (struct obj_file *)file;
    if (off < 0 || amt < 0) return SQLITE_IOERR_WRITE;
    sqlite3_int64 end = off + amt;
    if ((uint64_t)end > twz_obj_max_size()) return SQLITE_FULL;
    unsigned char *base = twz_obj_base(f->obj);
    if (!base) return SQLITE_IOERR_WRITE;
    if (end > length_of(f->obj)) {
        /* Reserve the file space, zero any gap, copy, then publish the new length. */
        int rc = twz_obj_reserve(f->obj, (uint64_t)end);
        if (rc != 0) return rc == -ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
        if (off > length_of(f->obj)) {
            rc = set_length(f, base, off);
            if (rc != SQLITE_OK) return rc == SQLITE_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
        }
        memcpy(base + off, buf, (size_t)amt);
        rc = twz_obj_set_size(f->obj, (uint64_t)end);
        if (rc != 0) return rc == -ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
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
    if (twz_obj_durability() == TWZ_DURABILITY_NONE) {
        f->dirty.n = 0;
        return SQLITE_OK;
    }
    /* The written ranges and the length, behind one fence. Bytes beyond a later truncation
     * need no flush. */
    sqlite3_int64 len = length_of(f->obj);
    twz_extent ext[TWZ_FLUSH_MANY_MAX];
    size_t n = 0;
    for (int i = 0; i < f->dirty.n; i++) {
        sqlite3_int64 lo = f->dirty.r[i].lo, hi = f->dirty.r[i].hi < len ? f->dirty.r[i].hi : len;
        if (hi > lo) ext[n++] = (twz_extent){(uint64_t)lo, (uint64_t)(hi - lo)};
    }
    if (twz_obj_flush_many(f->obj, ext, n) != 0) return SQLITE_IOERR_FSYNC;
    f->dirty.n = 0;
    return SQLITE_OK;
}

static int obj_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    int64_t n = twz_obj_size(obj_of(file));
    if (n < 0) return SQLITE_IOERR_FSTAT;
    *size = (sqlite3_int64)n;
    return SQLITE_OK;
}

/* ---- locking: one lock object per database, held from the first lock to the close ---- */

/* "NAME-lock" in `out` (MAX_NAME + 1 bytes); 0 if the name is too long. */
static int lock_name(const char *db, char *out) {
    if (strlen(db) + 5 > MAX_NAME) return 0;
    sqlite3_snprintf(MAX_NAME + 1, out, "%s-lock", db);
    return 1;
}

static int same_id(const twz_objid *a, const twz_objid *b) {
    return memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

/* Creates the lock object and keeps it mapped (which holds the host's liveness lock on it), then
 * checks the name still names it: a guest deleting a stale lock at that moment makes the check
 * fail rather than leave two holders. SQLITE_OK, SQLITE_BUSY, or an I/O error. */
static int try_create_lock(const char *name, twz_obj **out) {
    twz_obj *mine = NULL, *named = NULL;
    int rc = twz_obj_create(name, &mine);
    if (rc == -EEXIST) return SQLITE_BUSY;
    if (rc == -ENOENT) return SQLITE_BUSY; /* deleted between create and map: lost a race */
    if (rc == -ENOSPC) return SQLITE_FULL;  /* no room even for the lock object */
    if (rc != 0) return SQLITE_IOERR_LOCK;
    twz_objid a, b;
    int ok = twz_obj_id(mine, &a) == 0 && twz_obj_open(name, &named) == 0 &&
             twz_obj_id(named, &b) == 0 && same_id(&a, &b);
    if (named) twz_obj_close(named);
    if (ok) {
        *out = mine;
        return SQLITE_OK;
    }
    /* Our object lost its name to a racing guest: remove it rather than leave it nameless. */
    twz_obj_close(mine);
    twz_obj_delete(&a);
    return SQLITE_BUSY;
}

/* Removes the lock object `name` if its holder no longer runs: SQLITE_OK when it is gone (or
 * was never there), SQLITE_BUSY while a running guest holds it. */
static int clear_stale_lock(const char *name) {
    twz_obj *o;
    int rc = twz_obj_open(name, &o);
    if (rc == -ENOENT) return SQLITE_OK;
    if (rc != 0) return rc == -EACCES ? SQLITE_BUSY : SQLITE_IOERR_LOCK;
    twz_objid id;
    rc = twz_obj_id(o, &id);
    twz_obj_close(o);
    if (rc != 0) return SQLITE_IOERR_LOCK;
    /* The host unmaps it from this guest first, so only another guest's mapping keeps it. */
    rc = twz_obj_delete(&id);
    if (rc == 0 || rc == -ENOENT) return SQLITE_OK;
    return rc == -EBUSY || rc == -EACCES ? SQLITE_BUSY : SQLITE_IOERR_LOCK;
}

static int lock_database(struct obj_file *f) {
    char name[MAX_NAME + 1];
    if (!lock_name(f->db_name, name)) return SQLITE_IOERR_LOCK;
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = try_create_lock(name, &f->lock);
        if (rc != SQLITE_BUSY) return rc;
        rc = clear_stale_lock(name);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_BUSY;
}

/* True for a journal SQLite would never play back: empty, or with a zero first byte (a header
 * not yet written, or zeroed, when a run was killed; SQLite's hasHotJournal ignores those). */
static int journal_is_dead(twz_obj *j) {
    const unsigned char *base = twz_obj_base(j);
    return length_of(j) == 0 || (base && base[0] == 0);
}

/* Deletes the journal if SQLite is done with it, then the lock object (which also drops the
 * liveness lock). A journal that is still hot (a rollback that failed) stays for the next
 * opener. Failures leave a journal or a stale lock behind, which the next opener handles. */
static void unlock_database(struct obj_file *f) {
    char journal[MAX_NAME + 1];
    sqlite3_snprintf(sizeof journal, journal, "%s-journal", f->db_name);
    twz_obj *j;
    twz_objid id;
    if (get_object(journal, 0, &j) == 0 && journal_is_dead(j) && uncache(journal, &id))
        twz_obj_delete(&id);
    uncache(journal, NULL);
    if (f->lock) {
        int have = twz_obj_id(f->lock, &id) == 0;
        twz_obj_close(f->lock);
        f->lock = NULL;
        if (have) twz_obj_delete(&id);
    }
}

static int obj_lock(sqlite3_file *file, int level) {
    struct obj_file *f = (struct obj_file *)file;
    if (level == SQLITE_LOCK_NONE || !f->db_name || f->lock) return SQLITE_OK;
    return lock_database(f);
}

static int obj_unlock(sqlite3_file *file, int level) {
    (void)file;
    (void)level;
    return SQLITE_OK;
}

/* Nobody else can hold a reserved lock on a database this guest has locked; before that, say
 * none (SQLite only asks while it holds a shared lock). */
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
    obj_unlock,
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
    f->track = twz_obj_durability() != TWZ_DURABILITY_NONE;
    int existed = get_object(name, 0, &f->obj) == 0;
    if (existed && (flags & SQLITE_OPEN_EXCLUSIVE) && length_of(f->obj) > 0)
        return SQLITE_CANTOPEN;
    if (!existed) {
        if (!(flags & SQLITE_OPEN_CREATE)) return SQLITE_CANTOPEN;
        int rc = get_object(name, 1, &f->obj);
        if (rc == -ENOMEM) return SQLITE_NOMEM;
        if (rc == -ENOSPC) return SQLITE_FULL;
        if (rc != 0) return SQLITE_CANTOPEN;
    }
    if (flags & SQLITE_OPEN_MAIN_DB) f->db_name = name;
    f->base.pMethods = &obj_io;
    if (out_flags) *out_flags = flags;
    return SQLITE_OK;
}

/* Truncates the file to nothing (see the journal notes at the top: the object itself goes when
 * the database closes). In a durable run the new length is made durable before this returns,
 * whether or not SQLite asks (`sync_dir`, only with `pragma synchronous = extra`): deleting the
 * rollback journal is a transaction's commit point, and a journal whose length survived a power
 * loss would be hot and roll the commit back. (The unix VFS leaves that window open under
 * `synchronous = full`; `--durability commit` promises a commit that returned is durable.) */
static int obj_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    (void)vfs;
    twz_obj *o;
    int rc = get_object(name, 0, &o);
    if (rc == -ENOENT) return twz_memvfs()->xDelete(twz_memvfs(), name, sync_dir);
    if (rc != 0) return SQLITE_IOERR_DELETE;
    if (length_of(o) == 0) return SQLITE_IOERR_DELETE_NOENT;
    if (twz_obj_set_size(o, 0) != 0) return SQLITE_IOERR_DELETE;
    (void)sync_dir;
    if (twz_obj_durability() != TWZ_DURABILITY_NONE && twz_obj_flush(o, 0, 0) != 0)
        return SQLITE_IOERR_DELETE;
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
