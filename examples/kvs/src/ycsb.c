/* ycsb.c: the YCSB driver declared in ycsb.h (portable C99, no libc beyond <string.h>). */
#include "ycsb.h"

#include <string.h>

/* YCSB's scrambled zipfian draws from this many items, then folds them onto the key space. */
#define ZIPF_ITEMS 10000000000ULL
/* zeta(ZIPF_ITEMS, 0.99), the constant YCSB uses so it never sums ten billion terms. */
#define ZIPF_ZETAN 26.46902820178302
#define ZIPF_THETA 0.99

/* ---- Small math: ln and exp for pow(), so the driver needs no libm ---- */

static const double LN2 = 0.69314718055994530942;

/* Natural log of x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then the atanh series. */
static double ln_pos(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e += 1;
    }
    /* ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172: 12 odd terms reach double precision. */
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    static const double inv_odd[12] = {1.0,      1.0 / 3,  1.0 / 5,  1.0 / 7,
                                       1.0 / 9,  1.0 / 11, 1.0 / 13, 1.0 / 15,
                                       1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23};
    double sum = inv_odd[11];
    for (int k = 10; k >= 0; k--) sum = sum * s2 + inv_odd[k];
    sum *= s;
    return 2.0 * sum + e * LN2;
}

/* e^x for the modest x the generator needs (|x| < 700). */
static double exp_small(double x) {
    double kf = x / LN2;
    int64_t k = (int64_t)(kf < 0 ? kf - 0.5 : kf + 0.5);
    /* |r| <= ln2/2: the Taylor series to r^16 reaches double precision (Horner form). */
    double r = x - (double)k * LN2, sum = 1.0;
    static const double inv[17] = {0,        1.0,      1.0 / 2,  1.0 / 3,  1.0 / 4,  1.0 / 5,
                                   1.0 / 6,  1.0 / 7,  1.0 / 8,  1.0 / 9,  1.0 / 10, 1.0 / 11,
                                   1.0 / 12, 1.0 / 13, 1.0 / 14, 1.0 / 15, 1.0 / 16};
    for (int i = 16; i >= 1; i--) sum = 1.0 + sum * r * inv[i];
    if (k < -1022) return 0.0;
    if (k > 1023) k = 1023;
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return sum * scale;
}

static double pow_pos(double x, double y) {
    return x <= 0.0 ? 0.0 : exp_small(y * ln_pos(x));
}

/* ---- Generators ---- */

uint64_t ycsb_rand64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes of the number, made non-negative. */
static uint64_t fnv64(uint64_t v) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 1099511628211ULL;
        v >>= 8;
    }
    int64_t s = (int64_t)h;
    return s < 0 ? (uint64_t)0 - h : h;
}

static double unit(uint64_t r) {
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

void ycsb_zipf_init(ycsb_zipf *z, uint64_t items) {
    double n = (double)ZIPF_ITEMS;
    z->items = items;
    z->theta = ZIPF_THETA;
    z->alpha = 1.0 / (1.0 - ZIPF_THETA);
    z->zetan = ZIPF_ZETAN;
    z->half_pow_theta = pow_pos(0.5, ZIPF_THETA);
    double zeta2 = 1.0 + z->half_pow_theta;
    z->eta = (1.0 - pow_pos(2.0 / n, 1.0 - ZIPF_THETA)) / (1.0 - zeta2 / z->zetan);
}

uint64_t ycsb_zipf_next(const ycsb_zipf *z, uint64_t random64) {
    double u = unit(random64), uz = u * z->zetan;
    uint64_t raw;
    if (uz < 1.0) {
        raw = 0;
    } else if (uz < 1.0 + z->half_pow_theta) {
        raw = 1;
    } else {
        raw = (uint64_t)((double)ZIPF_ITEMS * pow_pos(z->eta * u - z->eta + 1.0, z->alpha));
        if (raw >= ZIPF_ITEMS) raw = ZIPF_ITEMS - 1;
    }
    return fnv64(raw) % z->items;
}

size_t ycsb_key(uint64_t keynum, char *buf) {
    char digits[21];
    size_t n = 0;
    uint64_t h = fnv64(keynum);
    do {
        digits[n++] = (char)('0' + h % 10);
        h /= 10;
    } while (h);
    memcpy(buf, "user", 4);
    for (size_t i = 0; i < n; i++) buf[4 + i] = digits[n - 1 - i];
    buf[4 + n] = '\0';
    return 4 + n;
}

/* ---- The driver ---- */

/* Values are slices of this pool of random bytes taken at a random offset: every write gets
 * different bytes for the cost of one copy. */
#define POOL_SIZE (128u * 1024)
static uint8_t pool[POOL_SIZE + 8];

static void fill_pool(uint64_t *state) {
    for (size_t i = 0; i < POOL_SIZE; i += 8) {
        uint64_t r = ycsb_rand64(state);
        memcpy(pool + i, &r, 8);
    }
}

/* Fills `len` bytes of `v` with pool bytes from a random offset (cycling for long values). */
static void fill_value(uint8_t *v, size_t len, uint64_t r) {
    size_t off = (size_t)(r % (POOL_SIZE / 2));
    while (len) {
        size_t n = len < POOL_SIZE - off ? len : POOL_SIZE - off;
        memcpy(v, pool + off, n);
        v += n;
        len -= n;
        off = 0;
    }
}

/* Percent of run-phase operations that are plain reads; the rest are updates (or, for F,
 * read-modify-writes). */
static int read_percent(char workload) {
    switch (workload) {
    case 'a': case 'A': return 50;
    case 'b': case 'B': return 95;
    case 'c': case 'C': return 100;
    case 'f': case 'F': return 50;
    default: return -1;
    }
}

/* Requests are generated this many at a time between timed stretches, so that the timing covers
 * the store's calls and not the key generator (formatting a key and drawing a zipfian number
 * cost about 150 ns, as much as a lookup). */
#define BATCH 1024

/* One prepared request. */
struct req {
    uint64_t pick; /* random bits: the operation kind and the value's pool offset */
    uint32_t klen;
    char key[YCSB_KEY_MAX + 1];
};
static struct req batch[BATCH];

/* The value buffer: larger values are cut to it. */
#define VALUE_BUF (1u << 20)
static uint8_t value_buf[VALUE_BUF];

int ycsb_run(const ycsb_ops *ops, char workload, uint64_t records, uint64_t opcount,
             size_t value_size, uint64_t seed, ycsb_result *out) {
    memset(out, 0, sizeof *out);
    int reads = read_percent(workload);
    if (reads < 0 || records == 0 || value_size == 0) return -1;
    if (value_size > VALUE_BUF) value_size = VALUE_BUF;
    int rmw = workload == 'f' || workload == 'F';
    size_t field = value_size < YCSB_FIELD_SIZE ? value_size : YCSB_FIELD_SIZE;
    uint64_t rng = seed ^ 0x5943534255ULL;
    fill_pool(&rng);
    size_t vlen;
    int rc;

    for (uint64_t done = 0; done < records;) {
        uint64_t n = records - done < BATCH ? records - done : BATCH;
        for (uint64_t j = 0; j < n; j++) {
            batch[j].klen = (uint32_t)ycsb_key(done + j, batch[j].key);
            batch[j].pick = ycsb_rand64(&rng);
        }
        uint64_t t0 = ops->now_ns();
        for (uint64_t j = 0; j < n; j++) {
            fill_value(value_buf, value_size, batch[j].pick);
            rc = ops->put(ops->ctx, batch[j].key, batch[j].klen, value_buf, value_size);
            if (rc < 0) return rc;
        }
        out->load_ns += ops->now_ns() - t0;
        done += n;
    }

    ycsb_zipf z;
    ycsb_zipf_init(&z, records);
    for (uint64_t done = 0; done < opcount;) {
        uint64_t n = opcount - done < BATCH ? opcount - done : BATCH;
        for (uint64_t j = 0; j < n; j++) {
            batch[j].klen = (uint32_t)ycsb_key(ycsb_zipf_next(&z, ycsb_rand64(&rng)), batch[j].key);
            batch[j].pick = ycsb_rand64(&rng);
        }
        uint64_t t0 = ops->now_ns();
        for (uint64_t j = 0; j < n; j++) {
            const struct req *q = &batch[j];
            int is_read = (int)(q->pick % 100) < reads;
            if (is_read || rmw) {
                rc = ops->get(ops->ctx, q->key, q->klen, value_buf, value_size, &vlen);
                if (rc < 0) return rc;
                out->reads++;
                if (rc == 1 || vlen != value_size) out->misses++;
                if (!is_read) fill_value(value_buf, field, q->pick >> 8);
            } else {
                fill_value(value_buf, value_size, q->pick >> 8);
            }
            if (!is_read) {
                rc = ops->put(ops->ctx, q->key, q->klen, value_buf, value_size);
                if (rc < 0) return rc;
                out->updates++;
            }
            out->ops++;
        }
        out->run_ns += ops->now_ns() - t0;
        done += n;
    }
    return 0;
}

/* ---- Reporting ---- */

uint64_t ycsb_ops_per_sec(uint64_t ops, uint64_t ns) {
    if (ns == 0) return 0;
    /* ops * 1e9 / ns without overflowing for any realistic count. */
    return (uint64_t)((double)ops * 1e9 / (double)ns);
}

/* Appends `s` at `*at` if it fits (keeping room for the NUL); returns 0 if not. */
static int put_str(char *buf, size_t cap, size_t *at, const char *s) {
    size_t n = strlen(s);
    if (*at + n + 1 > cap) return 0;
    memcpy(buf + *at, s, n);
    *at += n;
    buf[*at] = '\0';
    return 1;
}

static int put_u64(char *buf, size_t cap, size_t *at, uint64_t v) {
    char d[21];
    size_t n = 0;
    do {
        d[20 - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    d[20] = '\0';
    return put_str(buf, cap, at, d + 20 - n);
}

size_t ycsb_result_line(char *buf, size_t cap, const char *system, char workload, int run_phase,
                        uint64_t records, const ycsb_result *r) {
    size_t at = 0;
    char wl[2] = {(char)(workload >= 'A' && workload <= 'Z' ? workload + 32 : workload), '\0'};
    uint64_t ops = run_phase ? r->ops : records, ns = run_phase ? r->run_ns : r->load_ns;
    int ok = put_str(buf, cap, &at, "RESULT system=") && put_str(buf, cap, &at, system) &&
             put_str(buf, cap, &at, " workload=") && put_str(buf, cap, &at, wl) &&
             put_str(buf, cap, &at, run_phase ? " phase=run" : " phase=load") &&
             put_str(buf, cap, &at, " records=") && put_u64(buf, cap, &at, records) &&
             put_str(buf, cap, &at, " ops=") && put_u64(buf, cap, &at, ops) &&
             put_str(buf, cap, &at, " ns=") && put_u64(buf, cap, &at, ns) &&
             put_str(buf, cap, &at, " ops_per_sec=") &&
             put_u64(buf, cap, &at, ycsb_ops_per_sec(ops, ns)) && put_str(buf, cap, &at, "\n");
    if (!ok) {
        if (cap) buf[0] = '\0';
        return 0;
    }
    return at;
}
