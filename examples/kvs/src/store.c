/* store.c: the key-value store of store.h.
 *
 * Index object NAME (its base struct is `struct root`):
 *   root -> table: `nslots` slots (a power of two) of { hash, twz_ptr rec }, open addressing with
 *   linear probing from home(hash) = hash * nslots / 2^64, so slot order follows hash order.
 *   A slot is empty (hash 0, rec 0), a tombstone (hash, rec 0) or live (hash, rec).
 * Data objects NAME.data.N hold records { vlen, expire, klen, N, key bytes, value bytes },
 *   allocated with twz_obj_alloc; when one is full the next is created. Lookups reach records
 *   through the index's FOT (mapped read-only); before changing or freeing a record, the store
 *   opens its object N writable.
 * Updates are one transaction each (anchored in the index). A same-length value of up to
 * INPLACE_MAX bytes is overwritten in place (logged); otherwise a new record replaces the old.
 * Growth: a new table is allocated (one small transaction), filled without logging by an
 * idempotent copy (a crash restarts the copy), then swapped in by one small transaction. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>

/* 0 when the run's commits wait for nothing (--durability none); from main.rs. */
extern int kvs_durability(void);

#define MAGIC 0x3153564b5a575431ULL
#define MIN_SLOTS 1024ULL
#define INPLACE_MAX 4096
#define FLUSH_BATCH 256
#define MAX_NAME 80

struct root {
    uint64_t magic;
    uint64_t count, tombs; /* live slots, tombstones (adjacent: logged together) */
    uint64_t nslots;
    twz_ptr table;
    uint64_t new_nslots; /* a resize in progress when new_table is set */
    twz_ptr new_table;
    uint64_t ndata, cur; /* data objects made; the one new records go to */
};
struct slot {
    uint64_t hash;
    twz_ptr rec;
};
struct rec {
    uint64_t vlen, expire;
    uint32_t klen, obj; /* obj: N of the data object holding it; then the key, then the value */
};

struct kvs {
    twz_obj *idx;
    twz_obj **data; /* writable handles on data objects 0 .. ndata-1, opened on first need */
    uint64_t ndata;
    int durable;
    char name[MAX_NAME + 1];
};

/* Eight bytes at a time, each word folded in by a multiply and a shift, then a final mix. */
uint64_t kvs_hash(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 0x243f6a8885a308d3ULL ^ (len * 0x9e3779b97f4a7c15ULL), w;
    for (; len >= 8; p += 8, len -= 8) {
        __builtin_memcpy(&w, p, 8); /* an unaligned load, not a call */
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    if (len) {
        w = 0;
        for (size_t i = 0; i < len; i++) w |= (uint64_t)p[i] << (8 * i);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return (h ^ (h >> 33)) | 1; /* never 0: hash 0 marks an empty slot */
}

static inline uint64_t home(uint64_t h, uint64_t n) {
    return (uint64_t)(((unsigned __int128)h * n) >> 64);
}
static inline char *rkey(struct rec *r) { return (char *)(r + 1); }
static inline char *rval(struct rec *r) { return (char *)(r + 1) + r->klen; }
static inline int expired(const struct rec *r) { return r->expire && r->expire <= twz_wall_ns(); }
static inline void *deref(twz_ptr *p) {
    void *a;
    return *p && twz_ptr_resolve(p, &a) == 0 ? a : NULL;
}

/* The root and current table, resolved once per operation. */
static int view(kvs *k, struct root **r, struct slot **t) {
    *r = twz_obj_base(k->idx);
    if (!*r || !(*t = deref(&(*r)->table))) return -EIO;
    return 0;
}

/* The slot holding `key` (its record in *rp), or if absent (*rp NULL) the slot to insert it
 * into: the first tombstone on the probe path, else the empty slot that ends it. */
static struct slot *probe(struct slot *t, uint64_t n, uint64_t h, const void *key, size_t klen,
                          struct rec **rp) {
    struct slot *hole = NULL;
    for (uint64_t i = home(h, n);; i = (i + 1) & (n - 1)) {
        struct slot *s = &t[i];
        if (!s->rec) {
            if (!s->hash) {
                *rp = NULL;
                return hole ? hole : s;
            }
            if (!hole) hole = s;
        } else if (s->hash == h) {
            struct rec *r = deref(&s->rec);
            if (r && r->klen == klen && memcmp(rkey(r), key, klen) == 0) {
                *rp = r;
                return s;
            }
        }
    }
}

static int finish(twz_tx *tx, int rc) {
    if (rc) {
        twz_tx_abort(tx);
        return rc;
    }
    return twz_tx_commit(tx);
}

/* Makes fresh (unlogged) bytes durable with `tx`'s commit, in its one fence. */
static int persist(kvs *k, twz_tx *tx, const void *p, size_t len) {
    if (!k->durable || !len) return 0;
    return twz_tx_flush(tx, p, len);
}

/* A writable handle on data object `no` (created if needed), mapped writable. */
static int data_obj(kvs *k, uint64_t no, twz_obj **out) {
    if (no >= k->ndata) {
        uint64_t n = k->ndata ? k->ndata : 4;
        while (n <= no) n *= 2;
        twz_obj **d = realloc(k->data, n * sizeof *d);
        if (!d) return -ENOMEM;
        memset(d + k->ndata, 0, (n - k->ndata) * sizeof *d);
        k->data = d;
        k->ndata = n;
    }
    if (!k->data[no]) {
        char name[128];
        snprintf(name, sizeof name, "%s.data.%llu", k->name, (unsigned long long)no);
        int rc = twz_obj_open(name, &k->data[no]);
        if (rc == -ENOENT) rc = twz_obj_create(name, &k->data[no]);
        if (rc) return rc;
    }
    *out = k->data[no];
    /* Maps it writable again if it was evicted, or mapped read-only through the FOT since. */
    return twz_obj_base(*out) ? 0 : -EIO;
}

/* Makes the object holding `rec` writable before the record is changed or freed. */
static int writable(kvs *k, const struct rec *rec) {
    twz_obj *o;
    return data_obj(k, rec->obj, &o);
}

/* Allocates a record of `size` bytes in the current data object, moving on to a new one when
 * it is full. */
static int alloc_rec(kvs *k, struct root *r, twz_tx *tx, size_t size, struct rec **out) {
    if (size > twz_obj_max_size() - (1u << 20)) return -EFBIG;
    for (int tries = 0; tries < 2; tries++) {
        twz_obj *d;
        void *p;
        int rc = data_obj(k, r->cur, &d);
        if (!rc) rc = twz_obj_alloc(tx, d, size, &p);
        if (rc != -ENOSPC) {
            if (!rc) {
                *out = p;
                (*out)->obj = (uint32_t)r->cur;
            }
            return rc;
        }
        if ((rc = twz_tx_record(tx, &r->ndata, 2 * sizeof r->ndata))) return rc;
        r->cur++;
        if (r->ndata < r->cur + 1) r->ndata = r->cur + 1;
    }
    return -ENOSPC;
}

/* Copies the live entries of the old table into the new one (idempotent, so a crash just
 * restarts it), then swaps the tables in one transaction. */
static int migrate(kvs *k) {
    struct root *r = twz_obj_base(k->idx);
    struct slot *old = deref(&r->table), *nt = deref(&r->new_table);
    uint64_t on = r->nslots, nn = r->new_nslots;
    twz_tx *tx;
    int rc;
    if (!old || !nt) return -EIO;
    for (uint64_t i = 0; i < on; i++) {
        if (!old[i].rec) continue;
        for (uint64_t j = home(old[i].hash, nn);; j = (j + 1) & (nn - 1)) {
            if (nt[j].rec == old[i].rec) break; /* copied before a crash */
            if (!nt[j].rec) {                   /* empty, or half written before a crash */
                nt[j].hash = old[i].hash;
                nt[j].rec = old[i].rec; /* same container: the raw pointer stays valid */
                break;
            }
        }
    }
    if ((rc = twz_tx_begin(k->idx, &tx))) return rc;
    rc = persist(k, tx, nt, nn * sizeof *nt);
    if (!rc) rc = twz_tx_record(tx, r, sizeof *r);
    if (!rc) rc = twz_obj_free(tx, old);
    if (!rc) {
        r->table = r->new_table;
        r->nslots = nn;
        r->new_table = 0;
        r->new_nslots = 0;
        r->tombs = 0;
    }
    return finish(tx, rc);
}

/* Moves to a table of `n` slots. */
static int resize(kvs *k, uint64_t n) {
    struct root *r = twz_obj_base(k->idx);
    twz_tx *tx;
    void *mem;
    int rc;
    if (r->new_table) return migrate(k); /* one that failed half way: finish it first */
    if ((rc = twz_tx_begin(k->idx, &tx))) return rc;
    rc = twz_obj_alloc(tx, k->idx, n * sizeof(struct slot), &mem);
    if (!rc) {
        memset(mem, 0, n * sizeof(struct slot));
        rc = persist(k, tx, mem, n * sizeof(struct slot));
    }
    if (!rc) rc = twz_tx_record(tx, &r->new_nslots, 2 * sizeof r->new_nslots);
    if (!rc) {
        r->new_nslots = n;
        rc = twz_ptr_store(k->idx, &r->new_table, mem);
    }
    if ((rc = finish(tx, rc))) return rc;
    return migrate(k);
}

/* Keeps the load (live + tombstones) at most 0.7; after a resize it is 0.25 to 0.5. */
/* Grows the table, if needed, so that `more` keys fit below the load limit. */
static int make_room(kvs *k, size_t more) {
    struct root *r = twz_obj_base(k->idx);
    if (!r) return -EIO;
    if ((r->count + r->tombs + more) * 10 <= r->nslots * 7) return 0;
    uint64_t n = MIN_SLOTS;
    while (n < (r->count + more) * 2) n *= 2;
    return resize(k, n);
}

static int init(kvs *k) {
    struct root *r = twz_obj_base(k->idx);
    twz_tx *tx;
    void *mem;
    int rc;
    if (!r) return -EIO;
    if ((rc = twz_tx_begin(k->idx, &tx))) return rc;
    rc = twz_obj_alloc(tx, k->idx, MIN_SLOTS * sizeof(struct slot), &mem);
    if (!rc) {
        memset(mem, 0, MIN_SLOTS * sizeof(struct slot));
        rc = persist(k, tx, mem, MIN_SLOTS * sizeof(struct slot));
    }
    if (!rc) rc = twz_tx_record(tx, r, sizeof *r);
    if (!rc) {
        memset(r, 0, sizeof *r);
        r->magic = MAGIC;
        r->nslots = MIN_SLOTS;
        r->ndata = 1;
        rc = twz_ptr_store(k->idx, &r->table, mem);
    }
    return finish(tx, rc);
}

int kvs_open(const char *name, kvs **out) {
    if (strlen(name) > MAX_NAME) return -ENAMETOOLONG;
    kvs *k = calloc(1, sizeof *k);
    if (!k) return -ENOMEM;
    strcpy(k->name, name);
    k->durable = kvs_durability() != 0;
    int rc = twz_obj_open(name, &k->idx);
    if (rc == -ENOENT) rc = twz_obj_create(name, &k->idx);
    if (!rc) {
        struct root *r = twz_obj_base(k->idx);
        if (!r) rc = -EIO;
        else if (r->magic == 0) rc = init(k);
        else if (r->magic != MAGIC) rc = -EINVAL;
        else if (r->new_table) rc = migrate(k);
    }
    if (rc) {
        kvs_close(k);
        return rc;
    }
    *out = k;
    return 0;
}

void kvs_close(kvs *k) {
    if (!k) return;
    for (uint64_t i = 0; i < k->ndata; i++)
        if (k->data[i]) twz_obj_close(k->data[i]);
    free(k->data);
    if (k->idx) twz_obj_close(k->idx);
    free(k);
}

int kvs_destroy(const char *name) {
    twz_obj *o, *d;
    twz_objid id;
    char dname[128];
    if (strlen(name) > MAX_NAME) return -ENAMETOOLONG;
    int rc = twz_obj_open(name, &o);
    if (rc) return rc == -ENOENT ? 1 : rc;
    struct root *r = twz_obj_base(o);
    uint64_t ndata = r && r->magic == MAGIC ? r->ndata : 0;
    /* Data objects past ndata may exist: made just before a crash rolled back their count. */
    for (uint64_t i = 0;; i++) {
        snprintf(dname, sizeof dname, "%s.data.%llu", name, (unsigned long long)i);
        if ((rc = twz_obj_open(dname, &d)) == -ENOENT && i >= ndata) break;
        if (rc == -ENOENT) continue;
        if (rc || (rc = twz_obj_id(d, &id))) break;
        twz_obj_close(d);
        if ((rc = twz_obj_delete(&id))) break;
    }
    if (rc == -ENOENT) rc = twz_obj_id(o, &id);
    twz_obj_close(o);
    return rc ? rc : twz_obj_delete(&id);
}

/* The live record of `key` in `*out`: 0, 1 if there is none (or it expired), or a negative
 * errno. */
static int find_live(kvs *k, const void *key, size_t klen, struct rec **out) {
    struct root *r;
    struct slot *t;
    int rc = view(k, &r, &t);
    if (rc) return rc;
    probe(t, r->nslots, kvs_hash(key, klen), key, klen, out);
    return !*out || expired(*out) ? 1 : 0;
}

int kvs_get(kvs *k, const void *key, size_t klen, const void **val, size_t *vlen) {
    struct rec *rec;
    int rc = find_live(k, key, klen, &rec);
    if (rc) return rc;
    *val = rval(rec);
    *vlen = rec->vlen;
    return 0;
}

int kvs_expiry(kvs *k, const void *key, size_t klen, uint64_t *expire_ns) {
    struct rec *rec;
    int rc = find_live(k, key, klen, &rec);
    if (rc) return rc;
    *expire_ns = rec->expire;
    return 0;
}

/* Sets `key` to the concatenation of `a` and `b` (either may point into the old value) inside
 * `tx`, on the current table (`make_room` has made room for it). 1 when KVS_NX / KVS_XX says not
 * to, having changed nothing. A replaced record is freed, or if `replaced` is not NULL handed
 * back there for the caller to free once it allocates nothing more in `tx`: an allocation could
 * reuse the freed block, and its new bytes are not logged, so an abort would restore the old
 * record's slot over someone else's bytes. */
static int put_in(kvs *k, twz_tx *tx, const void *key, size_t klen, const void *a, size_t alen,
                  const void *b, size_t blen, uint64_t expire, int flags, struct rec **replaced) {
    struct root *r;
    struct slot *t, *s;
    struct rec *old, *nr;
    size_t vlen = alen + blen;
    int rc;
    if (klen > UINT32_MAX) return -EFBIG;
    if ((rc = view(k, &r, &t))) return rc;
    uint64_t h = kvs_hash(key, klen);
    s = probe(t, r->nslots, h, key, klen, &old);
    int live = old && !expired(old);
    if (((flags & KVS_NX) && live) || ((flags & KVS_XX) && !live)) return 1;
    if ((flags & KVS_KEEPTTL) && live) expire = old->expire;
    if (old && (rc = writable(k, old))) return rc;
    if (old && old->vlen == vlen && vlen <= INPLACE_MAX) {
        twz_range in_place[2] = {{rval(old), vlen}, {&old->expire, sizeof old->expire}};
        rc = twz_tx_record_many(tx, in_place, old->expire != expire ? 2 : 1);
        if (!rc) {
            old->expire = expire;
            memmove(rval(old), a, alen);
            memcpy(rval(old) + alen, b, blen);
        }
        return rc;
    }
    size_t size = sizeof *nr + klen + vlen;
    /* The slot and, for a new key, the counters are saved before the allocation, whose wait for
     * the disk covers them too (twz_tx_fence is then free); the new record's bytes ride the
     * commit's. Two waits per insert, not three. */
    twz_range at_index[2] = {{s, sizeof *s}, {&r->count, 2 * sizeof r->count}};
    rc = twz_tx_prepare_many(tx, at_index, old ? 1 : 2);
    if (!rc) rc = alloc_rec(k, r, tx, size, &nr);
    if (!rc) rc = twz_tx_fence(tx);
    if (!rc) {
        nr->vlen = vlen;
        nr->expire = expire;
        nr->klen = (uint32_t)klen;
        memcpy(rkey(nr), key, klen);
        memcpy(rval(nr), a, alen);
        memcpy(rval(nr) + alen, b, blen);
        rc = persist(k, tx, nr, size);
    }
    if (!rc && old) {
        if (replaced) *replaced = old;
        else rc = twz_obj_free(tx, old);
    }
    if (!rc && !old) {
        if (s->hash) r->tombs--;
        r->count++;
        s->hash = h;
    }
    if (!rc) rc = twz_ptr_store(k->idx, &s->rec, nr);
    return rc;
}

/* put_in in a transaction of its own. */
static int put(kvs *k, const void *key, size_t klen, const void *a, size_t alen, const void *b,
               size_t blen, uint64_t expire, int flags) {
    twz_tx *tx;
    int rc;
    if ((rc = make_room(k, 1)) || (rc = twz_tx_begin(k->idx, &tx))) return rc;
    rc = put_in(k, tx, key, klen, a, alen, b, blen, expire, flags, NULL);
    if (rc == 1) {
        twz_tx_abort(tx);
        return 1;
    }
    return finish(tx, rc);
}

int kvs_mset(kvs *k, size_t n, const void *const *keys, const size_t *klens,
             const void *const *vals, const size_t *vlens) {
    twz_tx *tx;
    int rc;
    struct rec **replaced = calloc(n ? n : 1, sizeof *replaced);
    if (!replaced) return -ENOMEM;
    if ((rc = make_room(k, n)) || (rc = twz_tx_begin(k->idx, &tx))) {
        free(replaced);
        return rc;
    }
    /* Every allocation first, then the frees (see put_in). */
    for (size_t i = 0; i < n && !rc; i++)
        rc = put_in(k, tx, keys[i], klens[i], vals[i], vlens[i], NULL, 0, 0, 0, &replaced[i]);
    for (size_t i = 0; i < n && !rc; i++)
        if (replaced[i]) rc = twz_obj_free(tx, replaced[i]);
    free(replaced);
    return finish(tx, rc);
}

int kvs_set(kvs *k, const void *key, size_t klen, const void *val, size_t vlen,
            uint64_t expire_ns, int flags) {
    return put(k, key, klen, val, vlen, NULL, 0, expire_ns, flags);
}

int kvs_append(kvs *k, const void *key, size_t klen, const void *val, size_t vlen,
               size_t *newlen) {
    const void *old = NULL;
    size_t olen = 0;
    int rc = kvs_get(k, key, klen, &old, &olen);
    if (rc < 0) return rc;
    if ((rc = put(k, key, klen, old, olen, val, vlen, 0, KVS_KEEPTTL)) == 0) *newlen = olen + vlen;
    return rc;
}

/* Parses a whole decimal int64 the way Redis does: no spaces, no '+', no leading zeros. */
static int parse_i64(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    int neg = n > 0 && s[0] == '-';
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    i = (size_t)neg;
    if (i == n || n - i > 19 || (s[i] == '0' && (n - i > 1 || neg))) return -EINVAL;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -EINVAL;
        if (v > (lim - (uint64_t)(s[i] - '0')) / 10) return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int kvs_incr(kvs *k, const void *key, size_t klen, int64_t by, int64_t *out) {
    const void *v;
    size_t n;
    int64_t cur = 0;
    char buf[24];
    int rc = kvs_get(k, key, klen, &v, &n);
    if (rc < 0) return rc;
    if (rc == 0 && parse_i64(v, n, &cur)) return -EINVAL;
    if (__builtin_add_overflow(cur, by, &cur)) return -ERANGE;
    int len = snprintf(buf, sizeof buf, "%lld", (long long)cur);
    if ((rc = put(k, key, klen, buf, (size_t)len, NULL, 0, 0, KVS_KEEPTTL)) == 0) *out = cur;
    return rc;
}

int kvs_del(kvs *k, const void *key, size_t klen) {
    struct root *r;
    struct slot *t, *s;
    struct rec *rec;
    twz_tx *tx;
    int rc = view(k, &r, &t);
    if (rc) return rc;
    s = probe(t, r->nslots, kvs_hash(key, klen), key, klen, &rec);
    if (!rec) return 1;
    int was_live = !expired(rec);
    if ((rc = writable(k, rec)) || (rc = twz_tx_begin(k->idx, &tx))) return rc;
    rc = twz_tx_record(tx, &s->rec, sizeof s->rec);
    if (!rc) rc = twz_tx_record(tx, &r->count, 2 * sizeof r->count);
    if (!rc) rc = twz_obj_free(tx, rec);
    if (!rc) {
        s->rec = 0;
        r->count--;
        r->tombs++;
    }
    rc = finish(tx, rc);
    return rc ? rc : !was_live;
}

uint64_t kvs_count(kvs *k) {
    struct root *r = twz_obj_base(k->idx);
    return r ? r->count : 0;
}

int kvs_flushall(kvs *k) {
    struct root *r;
    struct slot *t;
    twz_tx *tx;
    int rc;
    if ((rc = view(k, &r, &t))) return rc;
    for (uint64_t i = 0; i < r->nslots && r->count;) {
        if ((rc = twz_tx_begin(k->idx, &tx))) return rc;
        rc = twz_tx_record(tx, &r->count, 2 * sizeof r->count);
        for (int done = 0; !rc && i < r->nslots && done < FLUSH_BATCH; i++) {
            struct rec *rec = deref(&t[i].rec);
            if (!rec) continue;
            rc = writable(k, rec);
            if (!rc) rc = twz_tx_record(tx, &t[i].rec, sizeof t[i].rec);
            if (!rc) rc = twz_obj_free(tx, rec);
            if (!rc) {
                t[i].rec = 0;
                r->count--;
                r->tombs++;
                done++;
            }
        }
        if ((rc = finish(tx, rc))) return rc;
    }
    return r->nslots > MIN_SLOTS || r->tombs ? resize(k, MIN_SLOTS) : 0;
}

int kvs_scan(kvs *k, uint64_t cursor, size_t count, kvs_key_fn fn, void *arg, uint64_t *next) {
    struct root *r;
    struct slot *t;
    int rc = view(k, &r, &t);
    if (rc) return rc;
    /* Cursors live in a space of 2^40 positions, whatever the table size. */
    int shift = 40 - __builtin_ctzll(r->nslots);
    uint64_t i = cursor >> shift;
    size_t found = 0;
    for (; i < r->nslots && found < (count ? count : 1); i++) {
        struct rec *rec = t[i].rec ? deref(&t[i].rec) : NULL;
        if (rec && !expired(rec)) {
            fn(arg, rkey(rec), rec->klen);
            found++;
        }
    }
    *next = i >= r->nslots ? 0 : i << shift;
    return 0;
}

int kvs_check(kvs *k, kvs_report *rep, void (*say)(const char *msg)) {
    struct root *r;
    struct slot *t;
    char msg[160];
    int rc = view(k, &r, &t);
    memset(rep, 0, sizeof *rep);
    if (rc) return rc;
    rep->slots = r->nslots;
    rep->data_objects = r->ndata;
#define PROBLEM(...) (snprintf(msg, sizeof msg, __VA_ARGS__), say(msg), rep->errors++)
    if (r->nslots < MIN_SLOTS || (r->nslots & (r->nslots - 1))) {
        PROBLEM("table size %llu is not a power of two", (unsigned long long)r->nslots);
        return 0;
    }
    if (r->new_table) PROBLEM("a resize is unfinished");
    for (uint64_t i = 0; i < r->nslots; i++) {
        struct rec *rec, *found;
        if (!t[i].rec) {
            rep->tombstones += t[i].hash != 0;
            continue;
        }
        rep->keys++;
        uint64_t dist = (i - home(t[i].hash, r->nslots)) & (r->nslots - 1);
        rep->probe_total += dist;
        if (dist > rep->probe_max) rep->probe_max = dist;
        if (!(rec = deref(&t[i].rec))) {
            PROBLEM("slot %llu: its record pointer does not resolve", (unsigned long long)i);
            continue;
        }
        uint64_t obj = (uint64_t)rec & ~((1ULL << 30) - 1);
        if (rec->klen > (1u << 30) || rec->vlen > (1ULL << 30) ||
            (((uint64_t)rval(rec) + rec->vlen) & ~((1ULL << 30) - 1)) != obj) {
            PROBLEM("slot %llu: record lengths run past its object", (unsigned long long)i);
            continue;
        }
        if (rec->obj >= r->ndata)
            PROBLEM("slot %llu: record claims data object %u of %llu", (unsigned long long)i,
                    rec->obj, (unsigned long long)r->ndata);
        rep->bytes += rec->klen + rec->vlen;
        if ((kvs_hash(rkey(rec), rec->klen)) != t[i].hash)
            PROBLEM("slot %llu: key does not match its hash", (unsigned long long)i);
        else if (probe(t, r->nslots, t[i].hash, rkey(rec), rec->klen, &found) != &t[i])
            PROBLEM("slot %llu: a lookup of its key does not reach it", (unsigned long long)i);
    }
    if (rep->keys != r->count)
        PROBLEM("%llu keys in the table, the count says %llu", (unsigned long long)rep->keys,
                (unsigned long long)r->count);
    if (rep->tombstones != r->tombs)
        PROBLEM("%llu tombstones in the table, the count says %llu",
                (unsigned long long)rep->tombstones, (unsigned long long)r->tombs);
#undef PROBLEM
    return 0;
}
