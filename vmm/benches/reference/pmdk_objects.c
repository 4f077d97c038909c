/* pmdk_objects.c: the host reference rows of the objects bench (vmm/benches/objects.rs), on
 * PMDK libpmemobj: a raw host pointer load, pmemobj_direct in one pool and alternating between
 * two pools, and an 8-byte transactional update (TX_BEGIN / pmemobj_tx_add_range / TX_END).
 *
 * Built by the bench at run time: cc -O2 pmdk_objects.c -o pmdk_objects -lpmemobj
 * Usage: pmdk_objects DIR [--tx-only]
 *   Creates two pools in DIR (removed at exit). Without PMEM_IS_PMEM_FORCE=1 libpmemobj sees
 *   the pools as ordinary files and makes each transaction durable with msync (on tmpfs a cheap
 *   call, on a disk file a write-back); with it, with user-space cache-line flushes.
 * Prints one line per figure:
 *   RESULT what=host_raw ns=X           pointer stored in the pool: load it, then load through it
 *   RESULT what=pmdk_direct_one ns=X    the same through pmemobj_direct of a PMEMoid, one pool
 *   RESULT what=pmdk_direct_two ns=X    PMEMoids alternating between two pools
 *   RESULT what=pmdk_tx8 flush=msync|pmem ns=X   median 8-byte transactional update
 * The dereference figures are per iteration of a loop of 2^16, best of 201 (like the guest's
 * `objdemo bench`). */
#define _GNU_SOURCE
#include <libpmemobj.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAYOUT "twz-bench-objects"
#define POOL_SIZE (16u << 20)
/* Short tries, many of them: each runs ~0.1 ms, so most finish without the thread being
 * descheduled on a loaded machine (the same as the guest's objdemo bench). */
#define DEREFS (1u << 16)
#define TRIES 201
#define TX_MAX 200000
#define TX_BUDGET_NS 400000000ull /* stop measuring transactions after ~0.4 s */

/* The root object of each pool. */
struct root {
    PMEMoid local;   /* -> value, in this pool */
    PMEMoid two[2];  /* -> value in pool A, value in pool B */
    uint64_t value;
    uint64_t *native; /* -> value, a raw pointer: the baseline */
};

/* Keeps the compiler from hoisting a load of *p out of the loop, with p in a register (the same
 * as `opaque` in the guest's loops). */
#define OPAQUE(p) __asm__ volatile("" : "+r"(p))

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static PMEMobjpool *make_pool(const char *dir, const char *name, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    unlink(path);
    PMEMobjpool *pop = pmemobj_create(path, LAYOUT, POOL_SIZE, 0600);
    if (!pop) fprintf(stderr, "pmdk_objects: cannot create %s: %s\n", path, pmemobj_errormsg());
    return pop;
}

static struct root *root_of(PMEMobjpool *pop, PMEMoid *oid) {
    *oid = pmemobj_root(pop, sizeof(struct root));
    return pmemobj_direct(*oid);
}

/* The value's PMEMoid: the root's oid moved to the field. */
static PMEMoid value_oid(PMEMoid root) {
    root.off += offsetof(struct root, value);
    return root;
}

/* The best of TRIES tries of each loop, taken in turn so that all see the same machine (as the
 * guest's objdemo bench does). */
static void best_per_iter(double (*const loops[3])(struct root *), struct root *r, double best[3]) {
    for (int i = 0; i < 3; i++) best[i] = 1e30;
    for (int t = 0; t < TRIES; t++) {
        for (int i = 0; i < 3; i++) {
            double x = loops[i](r);
            if (x < best[i]) best[i] = x;
        }
    }
}

static double loop_raw(struct root *r) {
    uint64_t sum = 0, t0 = now_ns();
    for (uint32_t i = 0; i < DEREFS; i++) {
        struct root *p = r;
        OPAQUE(p);
        sum += *p->native;
    }
    double ns = (double)(now_ns() - t0) / DEREFS;
    OPAQUE(sum);
    return ns;
}

static double loop_one(struct root *r) {
    uint64_t sum = 0, t0 = now_ns();
    for (uint32_t i = 0; i < DEREFS; i++) {
        struct root *p = r;
        OPAQUE(p);
        sum += *(uint64_t *)pmemobj_direct(p->local);
    }
    double ns = (double)(now_ns() - t0) / DEREFS;
    OPAQUE(sum);
    return ns;
}

static double loop_two(struct root *r) {
    uint64_t sum = 0, t0 = now_ns();
    for (uint32_t i = 0; i < DEREFS; i++) {
        struct root *p = r;
        OPAQUE(p);
        sum += *(uint64_t *)pmemobj_direct(p->two[i & 1]);
    }
    double ns = (double)(now_ns() - t0) / DEREFS;
    OPAQUE(sum);
    return ns;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Median ns of an 8-byte transactional update of the root's value; -1 if one aborted. */
static double tx_update(PMEMobjpool *pop, PMEMoid root, struct root *r, int *count) {
    static uint64_t times[TX_MAX];
    volatile int n = 0, failed = 0;
    uint64_t start = now_ns();
    while (n < TX_MAX && (n < 100 || now_ns() - start < TX_BUDGET_NS)) {
        uint64_t t0 = now_ns();
        TX_BEGIN(pop) {
            pmemobj_tx_add_range(root, offsetof(struct root, value), sizeof(uint64_t));
            r->value = (uint64_t)n;
        } TX_ONABORT {
            failed = 1;
        } TX_END
        times[n++] = now_ns() - t0;
        if (failed) return -1;
    }
    if (r->value != (uint64_t)(n - 1)) return -1;
    qsort(times, (size_t)n, sizeof times[0], cmp_u64);
    *count = n;
    return (double)times[n / 2];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: pmdk_objects DIR [--tx-only]\n");
        return 2;
    }
    const char *dir = argv[1];
    int tx_only = argc > 2 && strcmp(argv[2], "--tx-only") == 0;
    char path_a[4096], path_b[4096];
    PMEMobjpool *a = make_pool(dir, "pmdk-objects-a", path_a, sizeof path_a);
    PMEMobjpool *b = tx_only ? NULL : make_pool(dir, "pmdk-objects-b", path_b, sizeof path_b);
    if (!a || (!tx_only && !b)) return 1;
    PMEMoid ra_oid, rb_oid = OID_NULL;
    struct root *ra = root_of(a, &ra_oid);
    int rc = 0;

    if (!tx_only) {
        struct root *rb = root_of(b, &rb_oid);
        rb->value = 7;
        ra->value = 7;
        ra->native = &ra->value;
        ra->local = value_oid(ra_oid);
        ra->two[0] = value_oid(ra_oid);
        ra->two[1] = value_oid(rb_oid);
        pmemobj_persist(a, ra, sizeof *ra);
        pmemobj_persist(b, rb, sizeof *rb);
        double (*const loops[3])(struct root *) = {loop_raw, loop_one, loop_two};
        double best[3];
        best_per_iter(loops, ra, best);
        printf("RESULT what=host_raw ns=%.3f\n", best[0]);
        printf("RESULT what=pmdk_direct_one ns=%.3f\n", best[1]);
        printf("RESULT what=pmdk_direct_two ns=%.3f\n", best[2]);
    }

    const char *force = getenv("PMEM_IS_PMEM_FORCE");
    const char *flush = force && strcmp(force, "1") == 0 ? "pmem" : "msync";
    int count = 0;
    double tx = tx_update(a, ra_oid, ra, &count);
    if (tx < 0) {
        fprintf(stderr, "pmdk_objects: a transaction failed or lost an update\n");
        rc = 1;
    } else {
        printf("RESULT what=pmdk_tx8 flush=%s ns=%.0f count=%d\n", flush, tx, count);
    }

    pmemobj_close(a);
    unlink(path_a);
    if (b) {
        pmemobj_close(b);
        unlink(path_b);
    }
    return rc;
}
