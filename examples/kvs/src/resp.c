/* resp.c: the RESP2 state machine of resp.h: parsing (multibulk and inline), the commands, and
 * Redis's exact error texts. */
#include "resp.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>

#define MAX_ARGS (1024 * 1024)

struct resp_conn {
    kvs *k;
    char *in, *out;
    size_t in_off, in_len, in_cap; /* unparsed input is in[in_off .. in_len) */
    size_t out_off, out_len, out_cap;
    int closing;
    /* The current command's arguments (pointing into `in`, or `words` for inline ones). */
    const char **argv;
    size_t *argl, argc, argv_cap;
    char *words;
    size_t words_cap;
    const char *error; /* the protocol error found by the parser */
};

/* ---- Output ---- */

static int reserve(resp_conn *c, size_t n) {
    if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n <= c->out_cap) return 0;
    size_t cap = c->out_cap ? c->out_cap : 4096 - 64; /* one 4 KiB heap block */
    while (cap < c->out_len + n) cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p) return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static void add(resp_conn *c, const void *p, size_t n) {
    if (reserve(c, n)) return; /* out of memory: the reply is lost, the client times out */
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}
static void add_str(resp_conn *c, const char *s) { add(c, s, strlen(s)); }

/* A reply line: `kind` ('+', '-', ':', '$', '*') then a number. */
static void add_num(resp_conn *c, char kind, long long v) {
    char b[32];
    int n = snprintf(b, sizeof b, "%c%lld\r\n", kind, v);
    add(c, b, (size_t)n);
}
static void add_bulk(resp_conn *c, const void *p, size_t n) {
    add_num(c, '$', (long long)n);
    if (reserve(c, n + 2)) return;
    memcpy(c->out + c->out_len, p, n);
    memcpy(c->out + c->out_len + n, "\r\n", 2);
    c->out_len += n + 2;
}
static void add_cstr_bulk(resp_conn *c, const char *s) { add_bulk(c, s, strlen(s)); }
static void add_nil(resp_conn *c) { add_str(c, "$-1\r\n"); }
static void add_ok(resp_conn *c) { add_str(c, "+OK\r\n"); }

/* An error reply "-MSG\r\n", with CR and LF in MSG turned into spaces as Redis does. */
static void add_err(resp_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(resp_conn *c, const char *fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b + 1, sizeof b - 3, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n > sizeof b - 4) n = (int)(sizeof b - 4);
    for (int i = 1; i <= n; i++)
        if (b[i] == '\r' || b[i] == '\n') b[i] = ' ';
    b[0] = '-';
    memcpy(b + 1 + n, "\r\n", 2);
    add(c, b, (size_t)n + 3);
}

static void store_err(resp_conn *c, int rc) {
    add_err(c, "ERR store error: %s", strerror(-rc));
}

/* ---- Parsing ---- */

/* Redis's string2ll: a whole decimal long long, no spaces, no '+', no leading zeros. */
static int to_ll(const char *s, size_t n, long long *out) {
    size_t i = 0;
    int neg = n > 0 && s[0] == '-';
    unsigned long long v = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    i = (size_t)neg;
    if (i == n || n - i > 19 || (s[i] == '0' && (n - i > 1 || neg))) return -1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

static int push_arg(resp_conn *c, const char *p, size_t n) {
    if (c->argc == c->argv_cap) {
        size_t cap = c->argv_cap ? c->argv_cap * 2 : 16;
        const char **a = realloc(c->argv, cap * sizeof *a);
        if (!a) return -1;
        c->argv = a;
        size_t *l = realloc(c->argl, cap * sizeof *l);
        if (!l) return -1;
        c->argl = l;
        c->argv_cap = cap;
    }
    c->argv[c->argc] = p;
    c->argl[c->argc++] = n;
    return 0;
}

/* A "<kind><number>\r\n" header at `p`: 1 with the number and the bytes used, 0 if incomplete,
 * -1 on a bad number, -2 on a line too long. */
static int header(const char *p, const char *end, long long *v, size_t *used) {
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    if (!cr) return end - p > (long)RESP_INLINE_MAX ? -2 : 0;
    if (cr + 1 >= end) return 0;
    *used = (size_t)(cr + 2 - p);
    return to_ll(p + 1, (size_t)(cr - p - 1), v) ? -1 : 1;
}

/* Parses one multibulk request: 1 done (argv set, *used bytes), 0 incomplete, -1 error. */
static int parse_multibulk(resp_conn *c, const char *p, const char *end, size_t *used) {
    const char *start = p;
    long long n, len;
    size_t u, total = 0;
    int rc = header(p, end, &n, &u);
    if (rc == -2) return c->error = "Protocol error: too big mbulk count string", -1;
    if (rc == -1 || (rc == 1 && n > MAX_ARGS))
        return c->error = "Protocol error: invalid multibulk length", -1;
    if (rc == 0) return 0;
    p += u;
    for (long long i = 0; i < n; i++) {
        if (p >= end) return 0;
        if (*p != '$') {
            static char msg[64];
            snprintf(msg, sizeof msg, "Protocol error: expected '$', got '%c'", *p);
            return c->error = msg, -1;
        }
        rc = header(p, end, &len, &u);
        if (rc == -2) return c->error = "Protocol error: too big bulk count string", -1;
        if (rc == -1 || (rc == 1 && (len < 0 || len > RESP_MAX_BULK)))
            return c->error = "Protocol error: invalid bulk length", -1;
        if (rc == 0) return 0;
        total += (size_t)len;
        if (total > RESP_MAX_REQUEST)
            return c->error = "Protocol error: request too large for this server", -1;
        if ((size_t)(end - p) < u + (size_t)len + 2) return 0;
        if (push_arg(c, p + u, (size_t)len)) return c->error = "ERR out of memory", -1;
        p += u + (size_t)len + 2;
    }
    *used = (size_t)(p - start);
    return 1;
}

/* An argument's length for "%.*s" in an error message: Redis quotes at most 128 bytes. */
static int clip(size_t n) { return n > 128 ? 128 : (int)n; }

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Splits an inline line into `words` the way redis-cli quotes: "..." with \n \r \t \b \a \xHH
 * escapes, '...' with \'. Returns -1 on unbalanced quotes. */
static int split_inline(resp_conn *c, const char *p, size_t n) {
    if (n + 1 > c->words_cap) {
        char *w = realloc(c->words, n + 1);
        if (!w) return -1;
        c->words = w;
        c->words_cap = n + 1;
    }
    char *o = c->words;
    size_t i = 0;
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
        if (i == n) return 0;
        char *word = o;
        int dq = 0, sq = 0;
        for (;; i++) {
            if (dq) {
                if (i == n) return -1;
                if (p[i] == '\\' && i + 3 < n && p[i + 1] == 'x' && hexval(p[i + 2]) >= 0 &&
                    hexval(p[i + 3]) >= 0) {
                    *o++ = (char)(hexval(p[i + 2]) * 16 + hexval(p[i + 3]));
                    i += 3;
                } else if (p[i] == '\\' && i + 1 < n) {
                    char e = p[++i];
                    *o++ = e == 'n'   ? '\n'
                           : e == 'r' ? '\r'
                           : e == 't' ? '\t'
                           : e == 'b' ? '\b'
                           : e == 'a' ? '\a'
                                      : e;
                } else if (p[i] == '"') {
                    if (i + 1 < n && !is_space(p[i + 1])) return -1; /* "a"b is an error */
                    i++;
                    break;
                } else {
                    *o++ = p[i];
                }
            } else if (sq) {
                if (i == n) return -1;
                if (p[i] == '\\' && i + 1 < n && p[i + 1] == '\'') {
                    *o++ = '\'';
                    i++;
                } else if (p[i] == '\'') {
                    if (i + 1 < n && !is_space(p[i + 1])) return -1; /* "a"b is an error */
                    i++;
                    break;
                } else {
                    *o++ = p[i];
                }
            } else {
                if (i == n || p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') break;
                if (p[i] == '"') dq = 1;
                else if (p[i] == '\'') sq = 1;
                else *o++ = p[i];
            }
        }
        if (push_arg(c, word, (size_t)(o - word))) return -1;
    }
}

/* Parses one inline command line: 1 done, 0 incomplete, -1 error. */
static int parse_inline(resp_conn *c, const char *p, const char *end, size_t *used) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) {
        if (end - p > (long)RESP_INLINE_MAX)
            return c->error = "Protocol error: too big inline request", -1;
        return 0;
    }
    size_t n = (size_t)(nl - p);
    if (n && p[n - 1] == '\r') n--;
    *used = (size_t)(nl + 1 - p);
    if (split_inline(c, p, n)) return c->error = "Protocol error: unbalanced quotes in request", -1;
    return 1;
}

static int parse(resp_conn *c, size_t *used) {
    const char *p = c->in + c->in_off, *end = c->in + c->in_len;
    c->argc = 0;
    if (p == end) return 0;
    return *p == '*' ? parse_multibulk(c, p, end, used) : parse_inline(c, p, end, used);
}

/* ---- Commands ---- */

static int arg_is(resp_conn *c, size_t i, const char *word) {
    return c->argl[i] == strlen(word) && strncasecmp(c->argv[i], word, c->argl[i]) == 0;
}

static int arg_ll(resp_conn *c, size_t i, long long *v) {
    if (to_ll(c->argv[i], c->argl[i], v) == 0) return 0;
    add_err(c, "ERR value is not an integer or out of range");
    return -1;
}

static void cmd_ping(resp_conn *c) {
    if (c->argc == 1) add_str(c, "+PONG\r\n");
    else add_bulk(c, c->argv[1], c->argl[1]);
}
static void cmd_echo(resp_conn *c) { add_bulk(c, c->argv[1], c->argl[1]); }

static void cmd_get(resp_conn *c) {
    const void *v;
    size_t n;
    int rc = kvs_get(c->k, c->argv[1], c->argl[1], &v, &n);
    if (rc < 0) store_err(c, rc);
    else if (rc) add_nil(c);
    else add_bulk(c, v, n);
}

static void cmd_set(resp_conn *c) {
    int flags = 0, get = 0, unit = 0; /* unit: 0 none, 1 EX, 2 PX, 3 EXAT, 4 PXAT, 5 KEEPTTL */
    long long t = 0;
    for (size_t i = 3; i < c->argc; i++) {
        int u = arg_is(c, i, "EX")     ? 1
                : arg_is(c, i, "PX")   ? 2
                : arg_is(c, i, "EXAT") ? 3
                : arg_is(c, i, "PXAT") ? 4
                                       : 0;
        if (arg_is(c, i, "NX") && !(flags & KVS_XX)) flags |= KVS_NX;
        else if (arg_is(c, i, "XX") && !(flags & KVS_NX)) flags |= KVS_XX;
        else if (arg_is(c, i, "GET")) get = 1;
        else if (arg_is(c, i, "KEEPTTL") && !unit) unit = 5;
        else if (u && !unit && i + 1 < c->argc) {
            unit = u;
            if (arg_ll(c, ++i, &t)) return;
        } else return add_err(c, "ERR syntax error");
    }
    uint64_t expire = 0, now = twz_wall_ns();
    if (unit >= 1 && unit <= 4) {
        long long mul = unit == 1 || unit == 3 ? 1000000000LL : 1000000LL, ns;
        if (t <= 0 || __builtin_mul_overflow(t, mul, &ns) ||
            (unit <= 2 && __builtin_add_overflow(ns, (long long)now, &ns)))
            return add_err(c, "ERR invalid expire time in 'set' command");
        expire = (uint64_t)ns;
        if (expire <= now) expire = 1; /* already past: stored expired */
    }
    if (unit == 5) flags |= KVS_KEEPTTL;
    char *old = NULL;
    size_t olen = 0;
    int had = 0;
    if (get) {
        const void *v;
        int rc = kvs_get(c->k, c->argv[1], c->argl[1], &v, &olen);
        if (rc < 0) return store_err(c, rc);
        if (rc == 0) {
            if (!(old = malloc(olen ? olen : 1))) return add_err(c, "ERR out of memory");
            memcpy(old, v, olen);
            had = 1;
        }
    }
    int rc = kvs_set(c->k, c->argv[1], c->argl[1], c->argv[2], c->argl[2], expire, flags);
    if (rc < 0) store_err(c, rc);
    else if (get && had) add_bulk(c, old, olen);
    else if (get || rc == 1) add_nil(c);
    else add_ok(c);
    free(old);
}

static void cmd_del(resp_conn *c) {
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++) {
        int rc = kvs_del(c->k, c->argv[i], c->argl[i]);
        if (rc < 0) return store_err(c, rc);
        n += rc == 0;
    }
    add_num(c, ':', n);
}

static void cmd_exists(resp_conn *c) {
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++) {
        const void *v;
        size_t l;
        int rc = kvs_get(c->k, c->argv[i], c->argl[i], &v, &l);
        if (rc < 0) return store_err(c, rc);
        n += rc == 0;
    }
    add_num(c, ':', n);
}

static void incr_by(resp_conn *c, long long by) {
    int64_t v;
    int rc = kvs_incr(c->k, c->argv[1], c->argl[1], by, &v);
    if (rc == -EINVAL) add_err(c, "ERR value is not an integer or out of range");
    else if (rc == -ERANGE) add_err(c, "ERR increment or decrement would overflow");
    else if (rc < 0) store_err(c, rc);
    else add_num(c, ':', v);
}
static void cmd_incr(resp_conn *c) { incr_by(c, 1); }
static void cmd_decr(resp_conn *c) { incr_by(c, -1); }
static void cmd_incrby(resp_conn *c) {
    long long by;
    if (!arg_ll(c, 2, &by)) incr_by(c, by);
}
static void cmd_decrby(resp_conn *c) {
    long long by;
    if (arg_ll(c, 2, &by)) return;
    if (by == LLONG_MIN) return add_err(c, "ERR decrement would overflow");
    incr_by(c, -by);
}

static void cmd_mget(resp_conn *c) {
    add_num(c, '*', (long long)c->argc - 1);
    for (size_t i = 1; i < c->argc; i++) {
        const void *v;
        size_t n;
        int rc = kvs_get(c->k, c->argv[i], c->argl[i], &v, &n);
        if (rc == 0) add_bulk(c, v, n);
        else add_nil(c);
    }
}

static void cmd_mset(resp_conn *c) {
    if (c->argc % 2 == 0) return add_err(c, "ERR wrong number of arguments for 'mset' command");
    size_t n = (c->argc - 1) / 2;
    const void **keys = malloc(2 * n * sizeof *keys);
    size_t *lens = malloc(2 * n * sizeof *lens);
    int rc = keys && lens ? 0 : -ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        keys[i] = c->argv[1 + 2 * i];
        lens[i] = c->argl[1 + 2 * i];
        keys[n + i] = c->argv[2 + 2 * i];
        lens[n + i] = c->argl[2 + 2 * i];
    }
    /* One transaction: every key is set, or (on an error) none. */
    if (!rc) rc = kvs_mset(c->k, n, keys, lens, keys + n, lens + n);
    free(keys);
    free(lens);
    if (rc == -E2BIG) add_err(c, "ERR MSET too large for one transaction");
    else if (rc < 0) store_err(c, rc);
    else add_ok(c);
}

static void cmd_append(resp_conn *c) {
    size_t n;
    int rc = kvs_append(c->k, c->argv[1], c->argl[1], c->argv[2], c->argl[2], &n);
    if (rc < 0) store_err(c, rc);
    else add_num(c, ':', (long long)n);
}

static void cmd_strlen(resp_conn *c) {
    const void *v;
    size_t n = 0;
    int rc = kvs_get(c->k, c->argv[1], c->argl[1], &v, &n);
    if (rc < 0) store_err(c, rc);
    else add_num(c, ':', rc ? 0 : (long long)n);
}

static void ttl_reply(resp_conn *c, long long unit) {
    uint64_t exp;
    int rc = kvs_expiry(c->k, c->argv[1], c->argl[1], &exp);
    if (rc < 0) return store_err(c, rc);
    if (rc) return add_num(c, ':', -2);
    if (!exp) return add_num(c, ':', -1);
    uint64_t now = twz_wall_ns(), left = exp > now ? exp - now : 0;
    add_num(c, ':', (long long)((left + (uint64_t)unit / 2) / (uint64_t)unit));
}
static void cmd_ttl(resp_conn *c) { ttl_reply(c, 1000000000LL); }
static void cmd_pttl(resp_conn *c) { ttl_reply(c, 1000000LL); }

static void cmd_dbsize(resp_conn *c) { add_num(c, ':', (long long)kvs_count(c->k)); }

static void cmd_flushdb(resp_conn *c) {
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "ASYNC") && !arg_is(c, 1, "SYNC")))
        return add_err(c, "ERR syntax error");
    int rc = kvs_flushall(c->k);
    if (rc < 0) store_err(c, rc);
    else add_ok(c);
}

/* Keys collected by SCAN and KEYS before the reply (its length comes first). */
struct keys {
    resp_conn *c;
    const char *pat;
    size_t plen, n, cap;
    const char **p;
    size_t *l;
    int none; /* TYPE other than string: nothing matches */
};

static void collect(void *arg, const void *key, size_t klen) {
    struct keys *ks = arg;
    if (ks->none || (ks->pat && !resp_glob(ks->pat, ks->plen, key, klen, 0))) return;
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 64;
        const char **p = realloc(ks->p, cap * sizeof *p);
        size_t *l = p ? realloc(ks->l, cap * sizeof *l) : NULL;
        if (p) ks->p = p;
        if (!l) return; /* out of memory: the key is left out */
        ks->l = l;
        ks->cap = cap;
    }
    ks->p[ks->n] = key;
    ks->l[ks->n++] = klen;
}

static void add_keys(resp_conn *c, struct keys *ks) {
    add_num(c, '*', (long long)ks->n);
    for (size_t i = 0; i < ks->n; i++) add_bulk(c, ks->p[i], ks->l[i]);
    free(ks->p);
    free(ks->l);
}

static void cmd_scan(resp_conn *c) {
    struct keys ks = {.c = c};
    long long count = 10;
    unsigned long long cursor = 0;
    char *end;
    if (!c->argl[1] || c->argl[1] > 20 || c->argv[1][0] < '0' || c->argv[1][0] > '9')
        return add_err(c, "ERR invalid cursor");
    char cur[24];
    memcpy(cur, c->argv[1], c->argl[1]);
    cur[c->argl[1]] = '\0';
    cursor = strtoull(cur, &end, 10);
    if (*end) return add_err(c, "ERR invalid cursor");
    for (size_t i = 2; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) return add_err(c, "ERR syntax error");
        if (arg_is(c, i, "COUNT")) {
            if (arg_ll(c, i + 1, &count)) return;
            if (count < 1) return add_err(c, "ERR syntax error");
        } else if (arg_is(c, i, "MATCH")) {
            ks.pat = c->argv[i + 1];
            ks.plen = c->argl[i + 1];
        } else if (arg_is(c, i, "TYPE")) {
            ks.none = !arg_is(c, i + 1, "string"); /* the only type here */
        } else return add_err(c, "ERR syntax error");
    }
    uint64_t next;
    int rc = kvs_scan(c->k, cursor, (size_t)count, collect, &ks, &next);
    if (rc < 0) {
        free(ks.p);
        free(ks.l);
        return store_err(c, rc);
    }
    char b[24];
    add_str(c, "*2\r\n");
    add_bulk(c, b, (size_t)snprintf(b, sizeof b, "%llu", (unsigned long long)next));
    add_keys(c, &ks);
}

static void cmd_keys(resp_conn *c) {
    struct keys ks = {.c = c, .pat = c->argv[1], .plen = c->argl[1]};
    uint64_t cursor = 0;
    do {
        int rc = kvs_scan(c->k, cursor, 4096, collect, &ks, &cursor);
        if (rc < 0) {
            free(ks.p);
            free(ks.l);
            return store_err(c, rc);
        }
    } while (cursor);
    add_keys(c, &ks);
}

static void cmd_info(resp_conn *c) {
    char b[512];
    int n = snprintf(b, sizeof b,
                     "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nos:twz\r\n"
                     "arch_bits:64\r\nserver:twz-kvs\r\n\r\n"
                     "# Keyspace\r\ndb0:keys=%llu,expires=0,avg_ttl=0\r\n",
                     (unsigned long long)kvs_count(c->k));
    add_bulk(c, b, (size_t)n);
}

static void cmd_quit(resp_conn *c) {
    add_ok(c);
    c->closing = 1;
}

static void cmd_select(resp_conn *c) {
    long long db;
    if (arg_ll(c, 1, &db)) return;
    if (db != 0) return add_err(c, "ERR DB index is out of range");
    add_ok(c);
}

static void cmd_config(resp_conn *c) {
    if (!arg_is(c, 1, "GET") || c->argc < 3) {
        if (arg_is(c, 1, "GET"))
            return add_err(c, "ERR wrong number of arguments for 'config|get' command");
        if (arg_is(c, 1, "SET") && c->argc >= 3)
            return add_err(c, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                           clip(c->argl[2]), c->argv[2]);
        return add_err(c, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.", clip(c->argl[1]),
                       c->argv[1]);
    }
    static const char *const known[][2] = {{"save", ""}, {"appendonly", "no"}, {"databases", "1"}};
    size_t n = 0;
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 2; i < c->argc; i++)
            if (resp_glob(c->argv[i], c->argl[i], known[k][0], strlen(known[k][0]), 1)) {
                n++;
                break;
            }
    add_num(c, '*', (long long)n * 2);
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 2; i < c->argc; i++)
            if (resp_glob(c->argv[i], c->argl[i], known[k][0], strlen(known[k][0]), 1)) {
                add_cstr_bulk(c, known[k][0]);
                add_cstr_bulk(c, known[k][1]);
                break;
            }
}

static void cmd_client(resp_conn *c) { add_ok(c); }

struct command {
    const char *name;
    int arity; /* as Redis: exact if positive, at least -arity if negative (name included) */
    void (*run)(resp_conn *c);
};

static void cmd_command(resp_conn *c);

static const struct command COMMANDS[] = {
    {"get", 2, cmd_get},         {"set", -3, cmd_set},         {"ping", -1, cmd_ping},
    {"echo", 2, cmd_echo},       {"del", -2, cmd_del},         {"exists", -2, cmd_exists},
    {"incr", 2, cmd_incr},       {"decr", 2, cmd_decr},        {"incrby", 3, cmd_incrby},
    {"decrby", 3, cmd_decrby},   {"mget", -2, cmd_mget},       {"mset", -3, cmd_mset},
    {"append", 3, cmd_append},   {"strlen", 2, cmd_strlen},    {"dbsize", 1, cmd_dbsize},
    {"flushdb", -1, cmd_flushdb}, {"flushall", -1, cmd_flushdb}, {"scan", -2, cmd_scan},
    {"keys", 2, cmd_keys},       {"info", -1, cmd_info},       {"quit", -1, cmd_quit},
    {"command", -1, cmd_command}, {"config", -2, cmd_config},  {"select", 2, cmd_select},
    {"ttl", 2, cmd_ttl},         {"pttl", 2, cmd_pttl},        {"client", -2, cmd_client},
    {"unlink", -2, cmd_del},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void cmd_command(resp_conn *c) {
    if (c->argc == 1 || arg_is(c, 1, "DOCS") || arg_is(c, 1, "INFO")) return add_str(c, "*0\r\n");
    if (arg_is(c, 1, "COUNT")) return add_num(c, ':', (long long)NCOMMANDS);
    add_err(c, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.", clip(c->argl[1]), c->argv[1]);
}

static void unknown(resp_conn *c) {
    char args[300];
    size_t n = 0;
    args[0] = '\0';
    for (size_t i = 1; i < c->argc && n < 128; i++) {
        size_t room = 128 - n;
        int w = snprintf(args + n, sizeof args - n, "'%.*s' ",
                         (int)(c->argl[i] < room ? c->argl[i] : room), c->argv[i]);
        if (w > 0) n += (size_t)w;
    }
    add_err(c, "ERR unknown command '%.*s', with args beginning with: %s", clip(c->argl[0]),
            c->argv[0], args);
}

static void exec(resp_conn *c) {
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *cmd = &COMMANDS[i];
        if (!arg_is(c, 0, cmd->name)) continue;
        if ((cmd->arity > 0 && c->argc != (size_t)cmd->arity) ||
            (cmd->arity < 0 && c->argc < (size_t)-cmd->arity))
            return add_err(c, "ERR wrong number of arguments for '%s' command", cmd->name);
        return cmd->run(c);
    }
    unknown(c);
}

/* ---- The connection ---- */

resp_conn *resp_new(kvs *k) {
    resp_conn *c = calloc(1, sizeof *c);
    if (c) c->k = k;
    return c;
}

void resp_free(resp_conn *c) {
    if (!c) return;
    free(c->in);
    free(c->out);
    free(c->argv);
    free(c->argl);
    free(c->words);
    free(c);
}

static void run(resp_conn *c) {
    while (!c->closing && c->out_len - c->out_off < RESP_OUT_HIGH) {
        size_t used = 0;
        int rc = parse(c, &used);
        if (rc == 0) break;
        if (rc < 0) {
            add_err(c, "%s%s", strncmp(c->error, "ERR", 3) ? "ERR " : "", c->error);
            c->closing = 1;
            break;
        }
        c->in_off += used;
        if (c->argc) exec(c);
    }
    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
}

int resp_feed(resp_conn *c, const void *data, size_t len) {
    if (c->closing) return 1;
    if (len) {
        if (c->in_off && c->in_len + len > c->in_cap) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (c->in_len + len > RESP_MAX_REQUEST + 2 * RESP_INLINE_MAX + 64) {
            add_err(c, "ERR Protocol error: request too large for this server");
            c->closing = 1;
            return 1;
        }
        if (c->in_len + len > c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap : 4096 - 64;
            while (cap < c->in_len + len) cap *= 2;
            if (cap > RESP_MAX_REQUEST + 2 * RESP_INLINE_MAX + 64)
                cap = RESP_MAX_REQUEST + 2 * RESP_INLINE_MAX + 64;
            char *p = realloc(c->in, cap);
            if (!p) {
                add_err(c, "ERR out of memory");
                c->closing = 1;
                return 1;
            }
            c->in = p;
            c->in_cap = cap;
        }
        memcpy(c->in + c->in_len, data, len);
        c->in_len += len;
    }
    run(c);
    return c->closing;
}

const char *resp_output(resp_conn *c, size_t *len) {
    *len = c->out_len - c->out_off;
    return c->out + c->out_off;
}

void resp_consumed(resp_conn *c, size_t n) {
    c->out_off += n;
    if (c->out_off >= c->out_len) c->out_off = c->out_len = 0;
}

int resp_pending_input(const resp_conn *c) { return c->in_len > c->in_off; }

/* ---- Glob ---- */

static int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

/* Whether the one-character pattern item at p[0..*used) matches `ch` (sets *used). */
static int item_matches(const char *p, size_t pl, char ch, int nocase, size_t *used) {
    int c = nocase ? lower((unsigned char)ch) : (unsigned char)ch;
    if (*p == '?') {
        *used = 1;
        return 1;
    }
    if (*p == '\\' && pl >= 2) {
        *used = 2;
        return (nocase ? lower((unsigned char)p[1]) : (unsigned char)p[1]) == c;
    }
    if (*p != '[') {
        *used = 1;
        return (nocase ? lower((unsigned char)*p) : (unsigned char)*p) == c;
    }
    size_t i = 1;
    int neg = i < pl && p[i] == '^', match = 0;
    i += (size_t)neg;
    for (; i < pl && p[i] != ']'; i++) {
        if (p[i] == '\\' && i + 1 < pl) {
            i++;
            match |= (unsigned char)p[i] == (unsigned char)ch;
        } else if (i + 2 < pl && p[i + 1] == '-' && p[i + 2] != ']') {
            int a = (unsigned char)p[i], b = (unsigned char)p[i + 2];
            if (nocase) a = lower(a), b = lower(b);
            if (a > b) {
                int t = a;
                a = b;
                b = t;
            }
            match |= c >= a && c <= b;
            i += 2;
        } else {
            match |= (nocase ? lower((unsigned char)p[i]) : (unsigned char)p[i]) == c;
        }
    }
    *used = i < pl ? i + 1 : pl; /* an unterminated set runs to the end of the pattern */
    return neg ? !match : match;
}

/* Greedy matching that backtracks only to the last '*': at most pattern x string steps, so no
 * pattern can make KEYS or SCAN take exponential time. */
int resp_glob(const char *p, size_t pl, const char *s, size_t sl, int nocase) {
    size_t pi = 0, si = 0, star = (size_t)-1, star_s = 0, used;
    while (si < sl) {
        if (pi < pl && p[pi] == '*') {
            star = ++pi;
            star_s = si;
        } else if (pi < pl && item_matches(p + pi, pl - pi, s[si], nocase, &used)) {
            pi += used;
            si++;
        } else if (star != (size_t)-1) {
            pi = star;
            si = ++star_s;
        } else {
            return 0;
        }
    }
    while (pi < pl && p[pi] == '*') pi++;
    return pi == pl;
}
