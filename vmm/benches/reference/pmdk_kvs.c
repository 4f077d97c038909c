/* pmdk_kvs.c: the KVS design of examples/kvs on PMDK libpmemobj, for the kvs bench
 * (vmm/benches/kvs.rs): a hash index whose entries point (PMEMoids) to records allocated in the
 * pool, every update one libpmemobj transaction. Driven by the same YCSB driver as the guest
 * (examples/kvs/src/ycsb.c).
 *
 * Built by the bench at run time:
 *   cc -O2 -I examples/kvs/src pmdk_kvs.c examples/kvs/src/ycsb.c -o pmdk_kvs -lpmemobj
 * Usage: pmdk_kvs DIR WORKLOAD RECORDS OPS VALUE_SIZE [SEED]
 *   Creates a pool in DIR (removed at exit), loads RECORDS records and runs OPS operations of
 *   YCSB WORKLOAD (a, b, c or f); prints the driver's two RESULT lines with system=pmdk.
 *   Durability is libpmemobj's: with PMEM_IS_PMEM_FORCE=1 cache-line flushes, else msync.
 *
 * The index is open addressing with linear probing, sized at creation for twice RECORDS keys
 * (the bench never grows it): slot = { hash, PMEMoid of the record }. A record is
 * { klen, vlen, key bytes, value bytes }. An update of a value of the same length snapshots and
 * overwrites it in place; another length allocates a new record and frees the old one. */
#define _GNU_SOURCE
#include <errno.h>
#include <libpmemobj.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ycsb.h"

#define LAYOUT "twz-bench-kvs"

struct slot {
    uint64_t hash; /* 0: empty */
    PMEMoid rec;
};

struct record {
    uint32_t klen, vlen;
    unsigned char bytes[]; /* key, then value */
};

struct root {
    PMEMoid table; /* struct slot[nslots] */
    uint64_t nslots; /* a power of two */
    uint64_t count;
};

struct store {
    PMEMobjpool *pop;
    PMEMoid root_oid;
    struct root *root;
    struct slot *slots;
    uint64_t mask;
};

/* FNV-1a, then a finalizer so that the low bits (the slot) depend on every byte; never 0. */
static uint64_t hash_key(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

static struct record *rec_of(PMEMoid oid) { return pmemobj_direct(oid); }

/* The slot holding `key`, or the empty slot where it would go; NULL if the table is full. */
static struct slot *find(struct store *s, const void *key, size_t klen, uint64_t h) {
    for (uint64_t i = 0, at = h & s->mask; i <= s->mask; i++, at = (at + 1) & s->mask) {
        struct slot *sl = &s->slots[at];
        if (sl->hash == 0) return sl;
        if (sl->hash != h) continue;
        struct record *r = rec_of(sl->rec);
        if (r->klen == klen && memcmp(r->bytes, key, klen) == 0) return sl;
    }
    return NULL;
}

static int kv_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen) {
    struct store *s = ctx;
    volatile uint64_t h = hash_key(key, klen); /* volatile: read after setjmp */
    struct slot *sl = find(s, key, klen, h);
    if (!sl) return -ENOSPC;
    volatile int rc = 0;
    TX_BEGIN(s->pop) {
        if (sl->hash != 0 && rec_of(sl->rec)->vlen == vlen) {
            struct record *r = rec_of(sl->rec);
            pmemobj_tx_add_range_direct(r->bytes + klen, vlen);
            memcpy(r->bytes + klen, val, vlen);
        } else {
            PMEMoid fresh = pmemobj_tx_alloc(sizeof(struct record) + klen + vlen, 1);
            struct record *r = rec_of(fresh);
            r->klen = (uint32_t)klen;
            r->vlen = (uint32_t)vlen;
            memcpy(r->bytes, key, klen);
            memcpy(r->bytes + klen, val, vlen);
            pmemobj_tx_add_range_direct(sl, sizeof *sl);
            if (sl->hash != 0) {
                pmemobj_tx_free(sl->rec);
            } else {
                pmemobj_tx_add_range_direct(&s->root->count, sizeof s->root->count);
                s->root->count++;
            }
            sl->hash = h;
            sl->rec = fresh;
        }
    } TX_ONABORT {
        rc = -ENOMEM;
    } TX_END
    return rc;
}

static int kv_get(void *ctx, const void *key, size_t klen, void *out, size_t cap, size_t *vlen) {
    struct store *s = ctx;
    struct slot *sl = find(s, key, klen, hash_key(key, klen));
    if (!sl || sl->hash == 0) return 1;
    struct record *r = rec_of(sl->rec);
    *vlen = r->vlen;
    memcpy(out, r->bytes + r->klen, r->vlen < cap ? r->vlen : cap);
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Creates the pool and an index for `records` keys; 0 or -1 (reported). */
static int store_create(struct store *s, const char *path, uint64_t records, size_t value_size) {
    volatile uint64_t want = 1024; /* volatile: read after setjmp */
    while (want < 2 * records) want <<= 1;
    const uint64_t nslots = want;
    /* Records with their allocation headers and rounding, the index, and room for the logs. */
    uint64_t rec_size = (sizeof(struct record) + YCSB_KEY_MAX + value_size + 64 + 127) & ~127ull;
    uint64_t size = records * rec_size * 5 / 4 + nslots * sizeof(struct slot) + (64u << 20);
    unlink(path);
    s->pop = pmemobj_create(path, LAYOUT, size, 0600);
    if (!s->pop) {
        fprintf(stderr, "pmdk_kvs: cannot create %s: %s\n", path, pmemobj_errormsg());
        return -1;
    }
    s->root_oid = pmemobj_root(s->pop, sizeof(struct root));
    s->root = pmemobj_direct(s->root_oid);
    volatile int failed = 0;
    TX_BEGIN(s->pop) {
        pmemobj_tx_add_range(s->root_oid, 0, sizeof(struct root));
        s->root->table = pmemobj_tx_zalloc(nslots * sizeof(struct slot), 2);
        s->root->nslots = nslots;
        s->root->count = 0;
    } TX_ONABORT {
        failed = 1;
    } TX_END
    if (failed) {
        fprintf(stderr, "pmdk_kvs: cannot allocate the index: %s\n", pmemobj_errormsg());
        return -1;
    }
    s->slots = pmemobj_direct(s->root->table);
    s->mask = nslots - 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: pmdk_kvs DIR WORKLOAD RECORDS OPS VALUE_SIZE [SEED]\n");
        return 2;
    }
    char workload = argv[2][0];
    uint64_t records = strtoull(argv[3], NULL, 10), ops = strtoull(argv[4], NULL, 10);
    size_t value_size = (size_t)strtoull(argv[5], NULL, 10);
    uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/pmdk-kvs.pool", argv[1]);
    struct store s;
    if (store_create(&s, path, records, value_size) != 0) return 1;
    ycsb_ops o = {.ctx = &s, .put = kv_put, .get = kv_get, .now_ns = now_ns};
    ycsb_result r;
    int rc = ycsb_run(&o, workload, records, ops, value_size, seed, &r);
    if (rc != 0) {
        fprintf(stderr, "pmdk_kvs: ycsb_run failed (%d)\n", rc);
    } else if (s.root->count != records) {
        fprintf(stderr, "pmdk_kvs: %llu keys after loading %llu\n",
                (unsigned long long)s.root->count, (unsigned long long)records);
        rc = 1;
    } else {
        char line[256];
        for (int phase = 0; phase < 2; phase++) {
            if (ycsb_result_line(line, sizeof line, "pmdk", workload, phase, records, &r))
                fputs(line, stdout);
        }
        printf("RESULT system=pmdk workload=%c misses=%llu\n", workload,
               (unsigned long long)r.misses);
    }
    pmemobj_close(s.pop);
    unlink(path);
    return rc == 0 ? 0 : 1;
}
