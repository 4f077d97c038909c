/* store.h: a persistent key-value store on twz objects.
 *
 * An index object (named NAME) holds a hash table whose slots point, with persistent pointers,
 * to records allocated in data objects NAME.data.0, NAME.data.1, ... Every update is one twz
 * transaction, so a crash at any point keeps every committed update and none half done.
 * Lookups are plain loads into the mapped objects. Functions return 0 on success, a small
 * positive value for "not there / not done" as documented, or a negative errno. */
#ifndef KVS_STORE_H
#define KVS_STORE_H
#include <stddef.h>
#include <stdint.h>

typedef struct kvs kvs;

/* kvs_set flags. */
#define KVS_NX 1      /* only if the key does not exist */
#define KVS_XX 2      /* only if the key exists */
#define KVS_KEEPTTL 4 /* keep the existing expiry instead of `expire_ns` */

/* Opens the store whose index object is `name`, creating it if needed (and finishing a resize
 * a crash interrupted). */
int kvs_open(const char *name, kvs **out);
void kvs_close(kvs *k);
/* Deletes store `name` (index and data objects; close it first): 0, or 1 if there is none. */
int kvs_destroy(const char *name);

/* Finds `key`: 0 with `*val`/`*vlen` pointing at the value inside the object (valid until the
 * next update), 1 if absent or expired. */
int kvs_get(kvs *k, const void *key, size_t klen, const void **val, size_t *vlen);
/* Sets `key` to `val`; `expire_ns` is a deadline on twz_wall_ns (0: none). 0 stored, 1 not
 * stored because of KVS_NX / KVS_XX; -EFBIG for a record larger than a data object. */
int kvs_set(kvs *k, const void *key, size_t klen, const void *val, size_t vlen,
            uint64_t expire_ns, int flags);
/* Sets `n` keys to their values (no expiry) in one transaction: all or none. 0, or an error with
 * nothing changed; -E2BIG when the changes outgrow the transaction log (about 4 MiB of old
 * values and index updates). */
int kvs_mset(kvs *k, size_t n, const void *const *keys, const size_t *klens,
             const void *const *vals, const size_t *vlens);
/* Deletes `key`: 0 deleted, 1 absent. */
int kvs_del(kvs *k, const void *key, size_t klen);
/* Adds `by` to the integer value of `key` (0 if absent), result in `*out`. -EINVAL if the value
 * is not a 64-bit decimal integer, -ERANGE on overflow. */
int kvs_incr(kvs *k, const void *key, size_t klen, int64_t by, int64_t *out);
/* Appends `val` to the value of `key` (created if absent); the new length in `*newlen`. */
int kvs_append(kvs *k, const void *key, size_t klen, const void *val, size_t vlen,
               size_t *newlen);
/* The expiry deadline of `key` (0 none) in `*expire_ns`: 0, or 1 if absent. */
int kvs_expiry(kvs *k, const void *key, size_t klen, uint64_t *expire_ns);
/* Number of keys (expired keys count until they are overwritten or deleted). */
uint64_t kvs_count(kvs *k);
/* Deletes every key, in bounded transactions. */
int kvs_flushall(kvs *k);

/* Calls `fn` for up to about `count` keys from `cursor` on and stores the cursor to continue
 * from in `*next` (0 when the walk is complete). A cursor is a position in hash order, so a
 * resize between calls repeats or skips at most keys displaced across the cursor. */
typedef void (*kvs_key_fn)(void *arg, const void *key, size_t klen);
int kvs_scan(kvs *k, uint64_t cursor, size_t count, kvs_key_fn fn, void *arg, uint64_t *next);

/* What kvs_check found. */
typedef struct kvs_report {
    uint64_t keys, tombstones, slots, data_objects, bytes;
    uint64_t probe_total, probe_max; /* slots between each key's home and its slot */
    uint64_t errors; /* problems found; each is described through `say` */
} kvs_report;
/* Walks the whole index: every live slot must resolve to a record whose key hashes to the slot
 * and is found again by a lookup; the counts must match. Problems are described with `say`. */
int kvs_check(kvs *k, kvs_report *r, void (*say)(const char *msg));

/* The 64-bit hash the index uses. */
uint64_t kvs_hash(const void *key, size_t len);

#endif
