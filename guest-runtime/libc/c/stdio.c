/* stdio on the three standard streams, over the runtime's console and standard input (twz.h).
 * No buffering here: the runtime already buffers console output (stdout until a newline) and
 * standard input (4 KiB per host call). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>
#include "format.h"

static FILE streams[3] = {{0, 0, 0, -1}, {1, 0, 0, -1}, {2, 0, 0, -1}};
FILE *const stdin = &streams[0];
FILE *const stdout = &streams[1];
FILE *const stderr = &streams[2];

/* Output in chunks: formatted text is gathered so one console write carries many pieces. */
struct chunk {
    int stream;
    size_t len;
    char buf[256];
};

static void chunk_flush(struct chunk *c) {
    twz_console_write(c->stream, c->buf, c->len);
    c->len = 0;
}

static void to_console(void *ctx, const char *s, size_t n) {
    struct chunk *c = ctx;
    if (n >= sizeof c->buf) {
        chunk_flush(c);
        twz_console_write(c->stream, s, n);
        return;
    }
    if (c->len + n > sizeof c->buf) chunk_flush(c);
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

static int writable(FILE *f) {
    if (f == stdout || f == stderr) return 1;
    if (f) f->err = 1;
    return 0;
}

int vfprintf(FILE *restrict f, const char *restrict fmt, va_list ap) {
    if (!writable(f)) return -1;
    struct chunk c;
    c.stream = f->fd;
    c.len = 0;
    int n = twz_vformat(to_console, &c, fmt, ap);
    chunk_flush(&c);
    return n;
}

int fprintf(FILE *restrict f, const char *restrict fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f, fmt, ap);
    va_end(ap);
    return n;
}

int vprintf(const char *restrict fmt, va_list ap) { return vfprintf(stdout, fmt, ap); }

int printf(const char *restrict fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(stdout, fmt, ap);
    va_end(ap);
    return n;
}

size_t fwrite(const void *restrict p, size_t size, size_t n, FILE *restrict f) {
    if (!writable(f) || size == 0) return 0;
    twz_console_write(f->fd, p, size * n);
    return n;
}

int fputs(const char *restrict s, FILE *restrict f) {
    if (!writable(f)) return EOF;
    twz_console_write(f->fd, s, strlen(s));
    return 0;
}

int puts(const char *s) {
    if (fputs(s, stdout) == EOF) return EOF;
    twz_console_write(TWZ_STDOUT, "\n", 1);
    return 0;
}

int fputc(int c, FILE *f) {
    if (!writable(f)) return EOF;
    char ch = (char)c;
    twz_console_write(f->fd, &ch, 1);
    return (unsigned char)ch;
}

int putc(int c, FILE *f) { return fputc(c, f); }
int putchar(int c) { return fputc(c, stdout); }

int fflush(FILE *f) {
    (void)f;
    twz_console_flush();
    return 0;
}

int fgetc(FILE *f) {
    if (f != stdin) {
        if (f) f->err = 1;
        return EOF;
    }
    if (f->unget >= 0) {
        int c = f->unget;
        f->unget = -1;
        return c;
    }
    unsigned char ch;
    long n = twz_stdin_read(&ch, 1);
    if (n == 1) return ch;
    if (n == 0) f->eof = 1;
    else f->err = 1;
    return EOF;
}

int getc(FILE *f) { return fgetc(f); }
int getchar(void) { return fgetc(stdin); }

int ungetc(int c, FILE *f) {
    if (c == EOF || f != stdin || f->unget >= 0) return EOF;
    f->unget = (unsigned char)c;
    f->eof = 0;
    return f->unget;
}

char *fgets(char *restrict s, int n, FILE *restrict f) {
    if (n <= 0) return NULL;
    int i = 0;
    while (i < n - 1) {
        int c = fgetc(f);
        if (c == EOF) break;
        s[i++] = (char)c;
        if (c == '\n') break;
    }
    if (i == 0) return NULL;
    s[i] = 0;
    return s;
}

size_t fread(void *restrict p, size_t size, size_t n, FILE *restrict f) {
    if (f != stdin || size == 0) {
        if (f) f->err = f != stdin;
        return 0;
    }
    unsigned char *b = p;
    size_t want = size * n, got = 0;
    if (want && f->unget >= 0) {
        b[got++] = (unsigned char)f->unget;
        f->unget = -1;
    }
    while (got < want) {
        long r = twz_stdin_read(b + got, want - got);
        if (r <= 0) {
            if (r == 0) f->eof = 1;
            else f->err = 1;
            break;
        }
        got += (size_t)r;
    }
    return got / size;
}

int feof(FILE *f) { return f ? f->eof : 0; }
int ferror(FILE *f) { return f ? f->err : 0; }

void clearerr(FILE *f) {
    if (f) f->eof = f->err = 0;
}

int fileno(FILE *f) { return f ? f->fd : -1; }

_Noreturn void __twz_assert_fail(const char *expr, const char *file, int line, const char *func) {
    fprintf(stderr, "%s:%d: %s: Assertion `%s' failed.\n", file, line, func, expr);
    abort();
}
