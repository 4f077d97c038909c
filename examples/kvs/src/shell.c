/* shell.c: the store's interactive shell, what `twz-vmm run kvs` starts with no command.
 *
 * It reads commands a line at a time, split into words the way redis-cli splits them (spaces
 * separate; "double quotes" take \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes' take
 * \' only), runs each through the Redis front end (resp.c) exactly as a network client's command,
 * and prints the reply the way redis-cli prints it: OK, "value", (integer) 3, (nil),
 * (error) ERR ..., numbered array items. A prompt is shown when standard input is a terminal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>

#include "resp.h"
#include "shell.h"

/* A growable byte buffer. */
struct buf {
    char *p;
    size_t len, cap;
};

static int put(struct buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Splits `line` into words and appends them to `req` as one RESP array. Returns the number of
 * words, or -1 for unbalanced quotes (redis-cli's "Invalid argument(s)"). */
static int encode_line(const char *line, struct buf *req) {
    struct buf words = {0}, lens = {0};
    const char *p = line;
    int n = 0, bad = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        size_t start = words.len;
        char q = 0;
        if (*p == '"' || *p == '\'') q = *p++;
        for (;;) {
            char c = *p;
            if (!c) {
                bad = q != 0;
                break;
            }
            if (!q && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) break;
            if (q && c == q) {
                p++;
                /* A closing quote must end the word, as in redis-cli. */
                bad = *p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n';
                break;
            }
            if (q == '"' && c == '\\' && p[1]) {
                char e = p[1], out = e;
                p += 2;
                if (e == 'x' && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
                    out = (char)(hexval(p[0]) * 16 + hexval(p[1]));
                    p += 2;
                } else if (e == 'n') out = '\n';
                else if (e == 'r') out = '\r';
                else if (e == 't') out = '\t';
                else if (e == 'b') out = '\b';
                else if (e == 'a') out = '\a';
                put(&words, &out, 1);
                continue;
            }
            if (q == '\'' && c == '\\' && p[1] == '\'') {
                put(&words, "'", 1);
                p += 2;
                continue;
            }
            put(&words, &c, 1);
            p++;
        }
        if (bad) break;
        size_t wlen = words.len - start;
        if (put(&lens, &wlen, sizeof wlen) < 0) {
            bad = 1;
            break;
        }
        n++;
    }
    if (!bad && n > 0) {
        char head[32];
        put(req, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", n));
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            size_t wlen;
            memcpy(&wlen, lens.p + i * sizeof wlen, sizeof wlen);
            put(req, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", wlen));
            put(req, words.p + off, wlen);
            put(req, "\r\n", 2);
            off += wlen;
        }
    }
    free(words.p);
    free(lens.p);
    return bad ? -1 : n;
}

/* Prints a bulk string the way redis-cli quotes it. */
static void print_quoted(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\\': fputs("\\\\", stdout); break;
        case '"': fputs("\\\"", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\a': fputs("\\a", stdout); break;
        case '\b': fputs("\\b", stdout); break;
        default:
            if (c < 0x20 || c >= 0x7f) printf("\\x%02x", c);
            else putchar(c);
        }
    }
    putchar('"');
}

/* Length of the line at `p` (up to CRLF) within `end`, or -1 if it is not complete. */
static long line_len(const char *p, const char *end) {
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == '\r' && q[1] == '\n') return q - p;
    return -1;
}

/* Prints the reply at `*pp` (nested `indent` columns deep) and advances past it. Returns 0, or
 * -1 if the reply is cut short (which resp.c never produces). */
static int print_reply(const char **pp, const char *end, int indent) {
    const char *p = *pp;
    long n = line_len(p, end);
    if (n < 1) return -1;
    char type = p[0];
    const char *body = p + 1;
    size_t blen = (size_t)n - 1;
    p += n + 2;
    if (type == '+') {
        fwrite(body, 1, blen, stdout);
    } else if (type == '-') {
        fputs("(error) ", stdout);
        fwrite(body, 1, blen, stdout);
    } else if (type == ':') {
        fputs("(integer) ", stdout);
        fwrite(body, 1, blen, stdout);
    } else if (type == '$') {
        long long len = strtoll(body, NULL, 10);
        if (len < 0) {
            fputs("(nil)", stdout);
        } else {
            if ((long long)(end - p) < len + 2) return -1;
            print_quoted(p, (size_t)len);
            p += len + 2;
        }
    } else if (type == '*') {
        long long count = strtoll(body, NULL, 10);
        if (count < 0) {
            fputs("(nil)", stdout);
        } else if (count == 0) {
            fputs("(empty array)", stdout);
        } else {
            int width = 1;
            for (long long c = count; c >= 10; c /= 10) width++;
            for (long long i = 0; i < count; i++) {
                if (i) {
                    putchar('\n');
                    for (int s = 0; s < indent; s++) putchar(' ');
                }
                int label = printf("%*lld) ", width, i + 1);
                if (print_reply(&p, end, indent + label) < 0) return -1;
            }
        }
    } else {
        return -1;
    }
    *pp = p;
    return 0;
}

/* Reads one line of standard input into `line` (without its newline). Returns 1, or 0 at end of
 * input. */
static int read_line(struct buf *line) {
    static char in[4096];
    static size_t have, at;
    line->len = 0;
    for (;;) {
        if (at == have) {
            long n = twz_stdin_read(in, sizeof in);
            if (n <= 0) {
                put(line, "", 1);
                line->len--;
                return line->len > 0;
            }
            have = (size_t)n;
            at = 0;
        }
        char *nl = memchr(in + at, '\n', have - at);
        size_t take = nl ? (size_t)(nl - (in + at)) : have - at;
        put(line, in + at, take);
        at += take;
        if (nl) {
            at++;
            put(line, "", 1);
            line->len--;
            return 1;
        }
    }
}

int kvs_shell(kvs *k) {
    int tty = twz_stdin_is_tty();
    resp_conn *c = resp_new(k);
    if (!c) return 2;
    struct buf line = {0}, req = {0};
    int status = 0;
    for (;;) {
        if (tty) {
            fputs("kvs> ", stdout);
            fflush(stdout);
        }
        if (!read_line(&line)) break;
        req.len = 0;
        int words = encode_line(line.p, &req);
        if (words < 0) {
            puts("Invalid argument(s)");
            continue;
        }
        if (words == 0) continue;
        int closing = resp_feed(c, req.p, req.len);
        size_t n;
        const char *out = resp_output(c, &n);
        const char *p = out, *end = out + n;
        while (p < end) {
            if (*p == '-') status = 1;
            if (print_reply(&p, end, 0) < 0) break;
            putchar('\n');
        }
        resp_consumed(c, n);
        if (closing) break;
    }
    fflush(stdout);
    free(line.p);
    free(req.p);
    resp_free(c);
    /* Like a script: non-zero when a command failed and nobody was watching. */
    return tty ? 0 : status;
}
