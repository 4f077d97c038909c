/* ycsb.h: a portable YCSB core-workload driver (workloads A, B, C, F) for any key-value store.
 *
 * Pure C99 with no dependency beyond <stdint.h>, <stddef.h> and <string.h>, so the same files build
 * in the twz guest (examples/kvs) and in host programs over PMDK or LMDB: every system is driven
 * by the same key generator, the same request distribution and the same value bytes.
 *
 * What it does, following YCSB's CoreWorkload defaults:
 * - keys: "user" followed by the decimal FNV-1a 64-bit hash of the record number (YCSB's hashed
 *   insert order), so consecutive records do not land on consecutive keys;
 * - load phase: inserts records 0 .. records-1 (one put each, a value of `value_size` bytes);
 * - run phase: `opcount` operations, keys drawn from YCSB's scrambled zipfian distribution
 *   (theta 0.99): A = 50% read / 50% update, B = 95% / 5%, C = 100% read, F = 50% read / 50%
 *   read-modify-write (a get, then a put of the value with one field changed);
 * - an update writes a whole value of `value_size` bytes (the store holds a record as one value);
 * - value bytes are slices, at random offsets, of a pool of pseudo-random bytes made from `seed`;
 * - requests are generated 1024 at a time between timed stretches: the times cover the store's
 *   calls (and copying each value to write into a buffer), not the key or zipfian generators. */
#ifndef YCSB_H
#define YCSB_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The store under test. */
typedef struct ycsb_ops {
    void *ctx;
    /* Inserts or replaces `key`: 0, or a negative number on failure (ends the run). */
    int (*put)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen);
    /* Copies up to `cap` bytes of the value of `key` into `out` and its full length into `*vlen`:
     * 0 found, 1 absent, a negative number on failure (ends the run). */
    int (*get)(void *ctx, const void *key, size_t klen, void *out, size_t cap, size_t *vlen);
    /* A monotonic clock in nanoseconds. */
    uint64_t (*now_ns)(void);
} ycsb_ops;

/* What one run measured. `ops` = operations of the run phase; `reads` and `updates` count the
 * gets and puts it issued (an F read-modify-write counts one of each); `misses` = gets that found
 * no value or a value of the wrong length. */
typedef struct ycsb_result {
    uint64_t load_ns, run_ns, ops, reads, updates, misses;
} ycsb_result;

/* Longest key ycsb_key writes, without the NUL. */
#define YCSB_KEY_MAX 24
/* Bytes of one field: F's read-modify-write changes the first field of the value. */
#define YCSB_FIELD_SIZE 100

/* Loads `records` records, then runs `opcount` operations of `workload` ('a', 'b', 'c' or 'f',
 * either case), timing each phase with ops->now_ns. Returns 0; -1 for an unknown workload,
 * records == 0 or value_size == 0 (nothing is run); or the first negative code a put or get
 * returned (the run stops there). `out` is filled as far as the run got. */
int ycsb_run(const ycsb_ops *ops, char workload, uint64_t records, uint64_t opcount,
             size_t value_size, uint64_t seed, ycsb_result *out);

/* Writes record `keynum`'s key into `buf` (at least YCSB_KEY_MAX + 1 bytes, NUL-terminated) and
 * returns its length. */
size_t ycsb_key(uint64_t keynum, char *buf);

/* Writes the machine-readable line for one phase into `buf` (NUL-terminated, ending in '\n'):
 *   RESULT system=SYSTEM workload=a phase=load records=N ops=N ns=T ops_per_sec=R
 *   RESULT system=SYSTEM workload=a phase=run records=N ops=M ns=T ops_per_sec=R
 * `run_phase` 0 = load, 1 = run. Returns the line's length, or 0 if it does not fit in `cap`. */
size_t ycsb_result_line(char *buf, size_t cap, const char *system, char workload, int run_phase,
                        uint64_t records, const ycsb_result *r);

/* Operations per second for `ops` operations in `ns` nanoseconds (0 if ns is 0). */
uint64_t ycsb_ops_per_sec(uint64_t ops, uint64_t ns);

/* ---- The generators, exposed for tests and for drivers of other workloads ---- */

/* YCSB's scrambled zipfian generator over [0, items), theta 0.99. */
typedef struct ycsb_zipf {
    uint64_t items;
    double theta, alpha, zetan, eta, half_pow_theta;
} ycsb_zipf;

/* Sets up `z` over `items` (> 0) items. */
void ycsb_zipf_init(ycsb_zipf *z, uint64_t items);
/* The next key number in [0, items), given a uniform random 64-bit value. */
uint64_t ycsb_zipf_next(const ycsb_zipf *z, uint64_t random64);

/* A small, fast pseudo-random generator (splitmix64): the next value of `*state`. */
uint64_t ycsb_rand64(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif
