/* kvs: a key-value store on persistent objects, with one-shot commands, a Redis-protocol server
 * and an in-guest YCSB driver.
 *
 *   twz-vmm run kvs [--listen ADDR] -- [--db NAME] COMMAND [ARGS...]
 *
 *   set K V        stores V under K, prints OK
 *   get K          prints the value and a newline; if K is absent prints "(nil)" on stderr and
 *                  exits with status 1
 *   del K...       deletes keys, prints how many existed
 *   exists K...    prints how many of the keys exist
 *   incr K [BY]    adds 1 (or BY) to the integer value, prints the result
 *   append K V     appends V, prints the new length
 *   scan [PATTERN] prints every key (matching the glob PATTERN), one a line
 *   dbsize         prints the number of keys
 *   check          verifies the whole index; prints a summary, exits 1 on any problem
 *   flushdb        deletes every key
 *   shell          (the default without --listen) commands from standard input, a line each,
 *                  quoted and answered the way redis-cli does ("kvs> " prompt on a terminal)
 *   serve-stdin    Redis protocol (RESP2) on standard input, replies on standard output
 *   serve          Redis protocol on the run's --listen address (also: no command with --listen)
 *   bench ycsb-a|ycsb-b|ycsb-c|ycsb-f [--records N] [--ops M] [--value-size B] [--fields F]
 *                  [--seed S] [--keep]: YCSB in the guest on the store "kvs-bench" (or --db),
 *                  which it empties first and deletes afterwards unless --keep
 *
 * The store is the index object NAME (default "kvs") and its data objects NAME.data.N.
 * Usage errors and store errors print "kvs: ..." on stderr and exit with status 2. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>

#include "resp.h"
#include "shell.h"
#include "store.h"
#include "ycsb.h"

static const char USAGE[] =
    "usage: kvs [--db NAME] COMMAND [ARGS...]\n"
    "  set K V | get K | del K... | exists K... | incr K [BY] | append K V\n"
    "  scan [PATTERN] | dbsize | check | flushdb\n"
    "  shell (the default: commands from stdin, redis-cli style)\n"
    "  serve-stdin | serve (needs twz-vmm run --listen ADDR)\n"
    "  bench ycsb-a|ycsb-b|ycsb-c|ycsb-f [--records N] [--ops M] [--value-size B] [--fields F]"
    " [--seed S] [--keep]\n";

static int fail(const char *what, int rc) {
    char why[256];
    if (twz_last_error(why, sizeof why))
        fprintf(stderr, "kvs: %s: %s (%s)\n", what, strerror(-rc), why);
    else
        fprintf(stderr, "kvs: %s: %s\n", what, strerror(-rc));
    return 2;
}

static void out_key(void *arg, const void *key, size_t klen) {
    const char *pat = arg;
    if (pat && !resp_glob(pat, strlen(pat), key, klen, 0)) return;
    fwrite(key, 1, klen, stdout);
    putchar('\n');
}

static void say(const char *msg) { fprintf(stderr, "kvs check: %s\n", msg); }

static int check(kvs *k) {
    kvs_report r;
    int rc = kvs_check(k, &r, say);
    if (rc) return fail("check", rc);
    printf("keys %llu, tombstones %llu, slots %llu, data objects %llu, bytes %llu, "
           "probe avg %.2f max %llu: %s\n",
           (unsigned long long)r.keys, (unsigned long long)r.tombstones,
           (unsigned long long)r.slots, (unsigned long long)r.data_objects,
           (unsigned long long)r.bytes, r.keys ? (double)r.probe_total / (double)r.keys : 0.0,
           (unsigned long long)r.probe_max, r.errors ? "ERRORS" : "ok");
    return r.errors ? 1 : 0;
}

/* ---- Drivers of the Redis protocol ---- */

/* Replies acknowledge writes: with --durability group the commits behind them are made durable
 * first (one twz_sync for everything committed since the last; nothing to do otherwise). */
static int sync_before_replies(void) {
    int rc = twz_sync();
    if (rc) fprintf(stderr, "kvs: sync: error %d\n", rc);
    return rc;
}

static void write_out(resp_conn *c) {
    size_t n;
    const char *p = resp_output(c, &n);
    if (n && sync_before_replies()) exit(2); /* never acknowledge what is not durable */
    if (n) twz_console_write(TWZ_STDOUT, p, n);
    resp_consumed(c, n);
}

static int serve_stdin(kvs *k) {
    static char buf[65536];
    resp_conn *c = resp_new(k);
    if (!c) return fail("serve-stdin", -ENOMEM);
    int closing = 0;
    long n;
    while (!closing && (n = twz_stdin_read(buf, sizeof buf)) > 0) {
        closing = resp_feed(c, buf, (size_t)n);
        write_out(c);
        /* Input held back while replies piled up: run it now that they are written. */
        while (!closing && resp_pending_input(c)) {
            size_t produced;
            closing = resp_feed(c, NULL, 0);
            resp_output(c, &produced);
            if (!produced) break; /* only a partial request is left: read more */
            write_out(c);
        }
    }
    write_out(c);
    twz_console_flush();
    resp_free(c);
    return 0;
}

/* One client of the network server. */
struct client {
    resp_conn *r;
    char *rbuf, *sbuf;
    size_t sbuf_cap;
    int recv_out, send_out, closing, used;
    int fed; /* received bytes were fed since the last pump */
};

/* Receive buffer per connection: just under 8 KiB, so the heap's power-of-two size classes
 * (16-byte header included) keep a thousand idle connections at about 16 MiB in all. */
#define RBUF (8192 - 64)
#define TAG(conn, op) (((uint64_t)(unsigned)(conn) << 8) | (op))

static struct client *clients;
static size_t nclients;

static struct client *client_at(int conn) {
    if (conn < 0) return NULL;
    if ((size_t)conn >= nclients) {
        size_t n = nclients ? nclients : 64;
        while (n <= (size_t)conn) n *= 2;
        struct client *c = realloc(clients, n * sizeof *c);
        if (!c) return NULL;
        memset(c + nclients, 0, (n - nclients) * sizeof *c);
        clients = c;
        nclients = n;
    }
    return &clients[conn];
}

static void drop(struct client *cl) {
    resp_free(cl->r);
    free(cl->rbuf);
    free(cl->sbuf);
    memset(cl, 0, sizeof *cl);
}

static void start_close(struct client *cl, int conn) {
    if (cl->closing) return;
    cl->closing = 1;
    if (twz_net_close(conn, TAG(conn, TWZ_NET_CLOSE)) < 0) drop(cl);
}

/* Sends what the protocol produced, then reads on when there is room; closes when done. */
static void pump(struct client *cl, int conn) {
    if (cl->closing) return;
    int quit = resp_feed(cl->r, NULL, 0);
    size_t n;
    const char *p = resp_output(cl->r, &n);
    if (n && !cl->send_out) {
        if (sync_before_replies()) return start_close(cl, conn);
        if (n > cl->sbuf_cap) {
            char *b = realloc(cl->sbuf, n);
            if (!b) return start_close(cl, conn);
            cl->sbuf = b;
            cl->sbuf_cap = n;
        }
        memcpy(cl->sbuf, p, n);
        resp_consumed(cl->r, n);
        if (twz_net_send(conn, cl->sbuf, n, TAG(conn, TWZ_NET_SEND)) < 0)
            return start_close(cl, conn);
        cl->send_out = 1;
        resp_output(cl->r, &n);
    }
    if (quit) {
        if (!n) start_close(cl, conn); /* the close waits for the outstanding send */
        return;
    }
    if (!cl->recv_out && n < RESP_OUT_HIGH) {
        if (twz_net_recv(conn, cl->rbuf, RBUF, TAG(conn, TWZ_NET_RECV)) < 0)
            return start_close(cl, conn);
        cl->recv_out = 1;
    }
}

static int serve_net(kvs *k) {
    twz_net_event ev[64];
    int rc = twz_net_accept(TAG(0, TWZ_NET_ACCEPT));
    if (rc < 0) return fail("accept", rc);
    int accept_errors = 0;
    for (;;) {
        int n = twz_net_wait(ev, 64, -1);
        if (n < 0) return fail("wait", n);
        for (int i = 0; i < n; i++) {
            int op = (int)(ev[i].tag & 0xff), conn = (int)(ev[i].tag >> 8);
            if (op == TWZ_NET_ACCEPT) {
                conn = ev[i].conn;
                struct client *cl = ev[i].result >= 0 ? client_at(conn) : NULL;
                if (cl && !cl->used) {
                    cl->used = 1;
                    cl->r = resp_new(k);
                    cl->rbuf = malloc(RBUF);
                    if (!cl->r || !cl->rbuf) start_close(cl, conn);
                    else pump(cl, conn);
                    accept_errors = 0;
                } else if (ev[i].result >= 0) {
                    twz_net_close(conn, TAG(conn, TWZ_NET_CLOSE));
                } else if (++accept_errors > 1000) {
                    return fail("accept", (int)ev[i].result);
                }
                if ((rc = twz_net_accept(TAG(0, TWZ_NET_ACCEPT))) < 0) return fail("accept", rc);
                continue;
            }
            struct client *cl = (size_t)conn < nclients ? &clients[conn] : NULL;
            if (!cl || !cl->used) continue;
            if (op == TWZ_NET_CLOSE) {
                drop(cl);
            } else if (op == TWZ_NET_RECV) {
                cl->recv_out = 0;
                if (cl->closing) continue;
                if (ev[i].result <= 0) {
                    start_close(cl, conn);
                    continue;
                }
                /* Run it now, reply after the batch's one sync (below). */
                resp_feed(cl->r, cl->rbuf, (size_t)ev[i].result);
                cl->fed = 1;
            } else if (op == TWZ_NET_SEND) {
                cl->send_out = 0;
                if (cl->closing) continue;
                if (ev[i].result < 0) start_close(cl, conn);
                else pump(cl, conn);
            }
        }
        /* Group commit: every request that was ready has run (each write committed without
         * waiting in --durability group); the first pump's twz_sync makes them all durable,
         * then every reply goes out. */
        for (int i = 0; i < n; i++) {
            int conn = (int)(ev[i].tag >> 8);
            if ((int)(ev[i].tag & 0xff) != TWZ_NET_RECV || (size_t)conn >= nclients) continue;
            struct client *cl = &clients[conn];
            if (cl->used && cl->fed) {
                cl->fed = 0;
                pump(cl, conn);
            }
        }
    }
}

/* ---- YCSB ---- */

static int y_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen) {
    return kvs_set(ctx, key, klen, val, vlen, 0, 0);
}

static int y_get(void *ctx, const void *key, size_t klen, void *out, size_t cap, size_t *vlen) {
    const void *v;
    int rc = kvs_get(ctx, key, klen, &v, vlen);
    if (rc == 0) memcpy(out, v, *vlen < cap ? *vlen : cap);
    return rc;
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (!s || *s < '0' || *s > '9') return -1;
    *out = strtoull(s, &end, 10);
    return *end ? -1 : 0;
}

static int bench(const char *db, int argc, char **argv) {
    uint64_t records = 100000, ops = 100000, vsize = 100, fields = 10, seed = 1;
    int keep = 0;
    if (argc < 1 || strncmp(argv[0], "ycsb-", 5) || strlen(argv[0]) != 6) {
        fputs(USAGE, stderr);
        return 2;
    }
    char wl = argv[0][5];
    for (int i = 1; i < argc; i++) {
        uint64_t *v = !strcmp(argv[i], "--records")      ? &records
                      : !strcmp(argv[i], "--ops")        ? &ops
                      : !strcmp(argv[i], "--value-size") ? &vsize
                      : !strcmp(argv[i], "--fields")     ? &fields
                      : !strcmp(argv[i], "--seed")       ? &seed
                                                         : NULL;
        if (!strcmp(argv[i], "--keep")) keep = 1;
        else if (!v || i + 1 >= argc || parse_u64(argv[++i], v)) {
            fprintf(stderr, "kvs bench: bad option '%s'\n%s", argv[i], USAGE);
            return 2;
        }
    }
    kvs *k;
    int rc = kvs_destroy(db);
    if (rc < 0) return fail("bench: removing the old store", rc);
    if ((rc = kvs_open(db, &k))) return fail("bench: opening the store", rc);
    ycsb_ops o = {.ctx = k, .put = y_put, .get = y_get, .now_ns = twz_monotonic_ns};
    ycsb_result r;
    rc = ycsb_run(&o, wl, records, ops, (size_t)(vsize * fields), seed, &r);
    if (rc == -1) {
        fprintf(stderr, "kvs bench: unknown workload '%s' or zero records/value size\n", argv[0]);
        kvs_close(k);
        return 2;
    }
    if (rc < 0) return fail("bench", rc);
    printf("YCSB workload %c on twz kvs: %llu records of %llu bytes, %llu operations\n", wl,
           (unsigned long long)records, (unsigned long long)(vsize * fields),
           (unsigned long long)ops);
    printf("%-6s %12s %10s %14s %10s\n", "phase", "operations", "seconds", "ops/sec", "ns/op");
    printf("%-6s %12llu %10.3f %14llu %10llu\n", "load", (unsigned long long)records,
           (double)r.load_ns / 1e9, (unsigned long long)ycsb_ops_per_sec(records, r.load_ns),
           (unsigned long long)(r.load_ns / records));
    printf("%-6s %12llu %10.3f %14llu %10llu\n", "run", (unsigned long long)r.ops,
           (double)r.run_ns / 1e9, (unsigned long long)ycsb_ops_per_sec(r.ops, r.run_ns),
           (unsigned long long)(r.ops ? r.run_ns / r.ops : 0));
    printf("reads %llu, updates %llu, misses %llu\n", (unsigned long long)r.reads,
           (unsigned long long)r.updates, (unsigned long long)r.misses);
    char line[256];
    for (int phase = 0; phase < 2; phase++)
        if (ycsb_result_line(line, sizeof line, "twz", wl, phase, records, &r)) fputs(line, stdout);
    kvs_close(k);
    if (!keep && (rc = kvs_destroy(db)) < 0) return fail("bench: removing the store", rc);
    return r.misses ? 1 : 0;
}

/* ---- One-shot commands ---- */

static int one_shot(kvs *k, const char *cmd, int argc, char **argv) {
    int rc;
    const void *v;
    size_t n;
    if (!strcmp(cmd, "set") && argc == 2) {
        if ((rc = kvs_set(k, argv[0], strlen(argv[0]), argv[1], strlen(argv[1]), 0, 0)) < 0)
            return fail("set", rc);
        puts("OK");
    } else if (!strcmp(cmd, "get") && argc == 1) {
        if ((rc = kvs_get(k, argv[0], strlen(argv[0]), &v, &n)) < 0) return fail("get", rc);
        if (rc) {
            fputs("(nil)\n", stderr);
            return 1;
        }
        fwrite(v, 1, n, stdout);
        putchar('\n');
    } else if ((!strcmp(cmd, "del") || !strcmp(cmd, "exists")) && argc >= 1) {
        long long count = 0;
        for (int i = 0; i < argc; i++) {
            rc = cmd[0] == 'd' ? kvs_del(k, argv[i], strlen(argv[i]))
                               : kvs_get(k, argv[i], strlen(argv[i]), &v, &n);
            if (rc < 0) return fail(cmd, rc);
            count += rc == 0;
        }
        printf("%lld\n", count);
    } else if (!strcmp(cmd, "incr") && (argc == 1 || argc == 2)) {
        int64_t by = 1, out;
        char *end;
        if (argc == 2 && (by = strtoll(argv[1], &end, 10), *end || !*argv[1])) {
            fprintf(stderr, "kvs: incr: '%s' is not an integer\n", argv[1]);
            return 2;
        }
        rc = kvs_incr(k, argv[0], strlen(argv[0]), by, &out);
        if (rc == -EINVAL) {
            fputs("kvs: incr: value is not an integer or out of range\n", stderr);
            return 1;
        }
        if (rc < 0) return fail("incr", rc);
        printf("%lld\n", (long long)out);
    } else if (!strcmp(cmd, "append") && argc == 2) {
        if ((rc = kvs_append(k, argv[0], strlen(argv[0]), argv[1], strlen(argv[1]), &n)) < 0)
            return fail("append", rc);
        printf("%zu\n", n);
    } else if (!strcmp(cmd, "scan") && argc <= 1) {
        uint64_t cursor = 0;
        do {
            if ((rc = kvs_scan(k, cursor, 4096, out_key, argc ? argv[0] : NULL, &cursor)) < 0)
                return fail("scan", rc);
        } while (cursor);
    } else if (!strcmp(cmd, "dbsize") && argc == 0) {
        printf("%llu\n", (unsigned long long)kvs_count(k));
    } else if (!strcmp(cmd, "check") && argc == 0) {
        return check(k);
    } else if (!strcmp(cmd, "flushdb") && argc == 0) {
        if ((rc = kvs_flushall(k)) < 0) return fail("flushdb", rc);
        puts("OK");
    } else if (!strcmp(cmd, "shell") && argc == 0) {
        return kvs_shell(k);
    } else if (!strcmp(cmd, "serve-stdin") && argc == 0) {
        return serve_stdin(k);
    } else if (!strcmp(cmd, "serve") && argc == 0) {
        if (!twz_net_listening()) {
            fputs("kvs: serve needs twz-vmm run --listen ADDR\n", stderr);
            return 2;
        }
        return serve_net(k);
    } else {
        fprintf(stderr, "kvs: unknown command or wrong arguments: %s\n%s", cmd, USAGE);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *db = NULL;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--db")) {
        db = argv[i + 1];
        i += 2;
    }
    /* No command: serve the network with --listen, else the interactive shell. */
    const char *cmd = i < argc ? argv[i++] : (twz_net_listening() ? "serve" : "shell");
    if (!strcmp(cmd, "bench")) return bench(db ? db : "kvs-bench", argc - i, argv + i);
    kvs *k;
    int rc = kvs_open(db ? db : "kvs", &k);
    if (rc == -EINVAL) {
        fprintf(stderr, "kvs: object '%s' is not a kvs index\n", db ? db : "kvs");
        return 2;
    }
    if (rc) return fail("opening the store", rc);
    rc = one_shot(k, cmd, argc - i, argv + i);
    kvs_close(k);
    return rc;
}
