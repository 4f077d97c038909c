/* lmdb_kvs.c: LMDB driven by the same YCSB driver as the guest KVS (examples/kvs/src/ycsb.c),
 * for the kvs bench (vmm/benches/kvs.rs).
 *
 * Built by the bench at run time:
 *   cc -O2 -I examples/kvs/src lmdb_kvs.c examples/kvs/src/ycsb.c -o lmdb_kvs -llmdb
 * Usage: lmdb_kvs DIR WORKLOAD RECORDS OPS VALUE_SIZE SYNC [SEED]
 *   Creates an environment in DIR (its files removed at exit), loads RECORDS records and runs
 *   OPS operations of YCSB WORKLOAD (a, b, c or f). SYNC = nosync: MDB_NOSYNC | MDB_WRITEMAP
 *   (no durability, prints system=lmdb); SYNC = sync: every commit synced to disk (prints
 *   system=lmdb-sync). Each put is its own write transaction, as a server would run a request;
 *   each get a read transaction (reset and renewed, LMDB's cheap path). */
#define _GNU_SOURCE
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ycsb.h"

struct store {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *reader; /* reset between gets */
};

static int fail(const char *what, int rc) {
    fprintf(stderr, "lmdb_kvs: %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

static int kv_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen) {
    struct store *s = ctx;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return fail("mdb_txn_begin", rc);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    rc = mdb_put(txn, s->dbi, &k, &v, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return fail("mdb_put", rc);
    }
    rc = mdb_txn_commit(txn);
    return rc ? fail("mdb_txn_commit", rc) : 0;
}

static int kv_get(void *ctx, const void *key, size_t klen, void *out, size_t cap, size_t *vlen) {
    struct store *s = ctx;
    int rc = mdb_txn_renew(s->reader);
    if (rc) return fail("mdb_txn_renew", rc);
    MDB_val k = {klen, (void *)key}, v;
    rc = mdb_get(s->reader, s->dbi, &k, &v);
    if (rc == 0) {
        *vlen = v.mv_size;
        memcpy(out, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
    }
    mdb_txn_reset(s->reader);
    if (rc == MDB_NOTFOUND) return 1;
    return rc ? fail("mdb_get", rc) : 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int store_open(struct store *s, const char *dir, uint64_t records, size_t value_size,
                      int sync) {
    int rc = mdb_env_create(&s->env);
    if (rc) return fail("mdb_env_create", rc);
    /* Room for the records, B-tree overhead and copy-on-write pages. */
    size_t map = (size_t)(records * (value_size + YCSB_KEY_MAX + 64) * 3) + (256u << 20);
    if ((rc = mdb_env_set_mapsize(s->env, map))) return fail("mdb_env_set_mapsize", rc);
    unsigned flags = MDB_NOSUBDIR | (sync ? 0 : MDB_NOSYNC | MDB_WRITEMAP);
    char path[4096];
    snprintf(path, sizeof path, "%s/lmdb-kvs.mdb", dir);
    if ((rc = mdb_env_open(s->env, path, flags, 0600))) return fail("mdb_env_open", rc);
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) return fail("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi))) return fail("mdb_dbi_open", rc);
    if ((rc = mdb_txn_commit(txn))) return fail("mdb_txn_commit", rc);
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->reader)))
        return fail("mdb_txn_begin (reader)", rc);
    mdb_txn_reset(s->reader);
    return 0;
}

static void remove_files(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/lmdb-kvs.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lmdb-kvs.mdb-lock", dir);
    unlink(path);
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: lmdb_kvs DIR WORKLOAD RECORDS OPS VALUE_SIZE sync|nosync [SEED]\n");
        return 2;
    }
    const char *dir = argv[1];
    char workload = argv[2][0];
    uint64_t records = strtoull(argv[3], NULL, 10), ops = strtoull(argv[4], NULL, 10);
    size_t value_size = (size_t)strtoull(argv[5], NULL, 10);
    int sync = strcmp(argv[6], "sync") == 0;
    uint64_t seed = argc > 7 ? strtoull(argv[7], NULL, 10) : 1;
    remove_files(dir);
    struct store s;
    if (store_open(&s, dir, records, value_size, sync) != 0) {
        remove_files(dir);
        return 1;
    }
    ycsb_ops o = {.ctx = &s, .put = kv_put, .get = kv_get, .now_ns = now_ns};
    ycsb_result r;
    int rc = ycsb_run(&o, workload, records, ops, value_size, seed, &r);
    if (rc != 0) {
        fprintf(stderr, "lmdb_kvs: ycsb_run failed (%d)\n", rc);
    } else {
        const char *system = sync ? "lmdb-sync" : "lmdb";
        char line[256];
        for (int phase = 0; phase < 2; phase++) {
            if (ycsb_result_line(line, sizeof line, system, workload, phase, records, &r))
                fputs(line, stdout);
        }
        printf("RESULT system=%s workload=%c misses=%llu\n", system, workload,
               (unsigned long long)r.misses);
    }
    mdb_txn_abort(s.reader);
    mdb_env_close(s.env);
    remove_files(dir);
    return rc == 0 ? 0 : 1;
}
