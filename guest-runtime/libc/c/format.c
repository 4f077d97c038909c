/* printf formatting: integers exactly as C specifies, floating point from a 17-significant-digit
 * decimal expansion computed in x87 extended precision (correct for the values programs print;
 * the last of 17+ digits may differ from glibc's exact expansion). */
#include <stdint.h>
#include <stdio.h>
#include "format.h"

/* Longest body one conversion produces (%f of 1e308 with the largest precision we honour). */
#define MAX_FLOAT_PREC 500
#define BODY_MAX 1024

struct spec {
    int left, plus, space, alt, zero;
    int width;
    int prec; /* -1: none given */
};

struct out {
    twz_sink sink;
    void *ctx;
    size_t total;
};

static void put(struct out *o, const char *s, size_t n) {
    if (n) {
        o->sink(o->ctx, s, n);
        o->total += n;
    }
}

static void pad(struct out *o, char c, int n) {
    char buf[32];
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = c;
    while (n > 0) {
        int k = n < (int)sizeof buf ? n : (int)sizeof buf;
        put(o, buf, (size_t)k);
        n -= k;
    }
}

/* Emits prefix (sign, 0x) and body within the field width; `zeros` extra zeros go between
 * them (precision or the 0 flag). */
static void field(struct out *o, const struct spec *sp, const char *prefix, size_t plen,
                  const char *body, size_t blen, int zero_pad_ok) {
    int len = (int)(plen + blen);
    int fill = sp->width > len ? sp->width - len : 0;
    if (sp->left) {
        put(o, prefix, plen);
        put(o, body, blen);
        pad(o, ' ', fill);
    } else if (sp->zero && zero_pad_ok) {
        put(o, prefix, plen);
        pad(o, '0', fill);
        put(o, body, blen);
    } else {
        pad(o, ' ', fill);
        put(o, prefix, plen);
        put(o, body, blen);
    }
}

static void fmt_int(struct out *o, struct spec sp, uint64_t v, int neg, int base, int upper,
                    char conv) {
    char body[BODY_MAX];
    char digits[24];
    int nd = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (v) {
        digits[nd++] = set[v % (unsigned)base];
        v /= (unsigned)base;
    }
    int prec = sp.prec < 0 ? 1 : sp.prec;
    if (prec > BODY_MAX - 24) prec = BODY_MAX - 24;
    int zeros = prec > nd ? prec - nd : 0;
    if (conv == 'o' && sp.alt && zeros == 0 && (nd == 0 || digits[nd - 1] != '0')) zeros = 1;
    size_t bl = 0;
    for (int i = 0; i < zeros; i++) body[bl++] = '0';
    while (nd) body[bl++] = digits[--nd];
    char prefix[3];
    size_t pl = 0;
    if (conv == 'd' || conv == 'i') {
        if (neg) prefix[pl++] = '-';
        else if (sp.plus) prefix[pl++] = '+';
        else if (sp.space) prefix[pl++] = ' ';
    } else if ((conv == 'x' || conv == 'X') && sp.alt && bl && !(bl == 1 && body[0] == '0' && zeros)) {
        prefix[pl++] = '0';
        prefix[pl++] = conv;
    } else if (conv == 'p') {
        prefix[pl++] = '0';
        prefix[pl++] = 'x';
    }
    field(o, &sp, prefix, pl, body, bl, sp.prec < 0);
}

/* A positive decimal: digits d[0..n) with value d0.d1d2... x 10^exp. */
struct dec {
    char d[20];
    int n;
    int exp;
};

static long double pow10l(int k) {
    static const long double p[] = {1e1L, 1e2L, 1e4L, 1e8L, 1e16L, 1e32L, 1e64L, 1e128L, 1e256L};
    long double r = 1.0L;
    int a = k < 0 ? -k : k;
    for (int i = 0; a && i < 9; i++, a >>= 1)
        if (a & 1) r *= p[i];
    return r;
}

/* 17 significant digits of finite v > 0. */
static void decompose(double v, struct dec *x) {
    union { double d; uint64_t u; } bits = {v};
    int e2 = (int)((bits.u >> 52) & 0x7ff) - 1023;
    uint64_t frac = bits.u & ((1ULL << 52) - 1);
    if (e2 == -1023 && frac) e2 = -1074 + (63 - __builtin_clzll(frac)); /* subnormal */
    int e10 = (int)((e2 * 30103L) / 100000L) - (e2 < 0);
    uint64_t m = 0;
    for (int tries = 0; tries < 8; tries++) {
        int k = 16 - e10;
        long double s = k >= 0 ? (long double)v * pow10l(k) : (long double)v / pow10l(-k);
        m = (uint64_t)(s + 0.5L);
        if (m >= 100000000000000000ULL) e10++;
        else if (m < 10000000000000000ULL) e10--;
        else break;
    }
    for (int i = 16; i >= 0; i--) {
        x->d[i] = (char)('0' + m % 10);
        m /= 10;
    }
    x->n = 17;
    x->exp = e10;
}

/* Rounds to `keep` significant digits (half to even on an exact tie of the 17 digits).
 * Returns 0 if the value rounded to zero. */
static int round_dec(struct dec *x, int keep) {
    if (keep >= x->n) return 1;
    if (keep < 0) return 0;
    int up;
    char r = x->d[keep];
    if (r > '5') up = 1;
    else if (r < '5') up = 0;
    else {
        int rest = 0;
        for (int i = keep + 1; i < x->n; i++) rest |= x->d[i] != '0';
        up = rest || (keep > 0 && ((x->d[keep - 1] - '0') & 1));
    }
    x->n = keep;
    if (!up) return keep > 0;
    int i = keep - 1;
    while (i >= 0 && x->d[i] == '9') x->d[i--] = '0';
    if (i >= 0) {
        x->d[i]++;
    } else {
        /* All nines (or nothing kept): the value becomes 1 followed by zeros, one decade up. */
        x->d[0] = '1';
        if (x->n == 0) x->n = 1;
        x->exp++;
    }
    return 1;
}

static char digit_at(const struct dec *x, int i) { return i >= 0 && i < x->n ? x->d[i] : '0'; }

/* %f body: integer part, then `prec` fraction digits. */
static size_t body_f(char *b, struct dec x, int nonzero, int prec, int alt) {
    size_t l = 0;
    if (nonzero) nonzero = round_dec(&x, x.exp + 1 + prec);
    if (!nonzero) {
        x.n = 0;
        x.exp = 0;
    }
    if (x.exp >= 0 && nonzero)
        for (int i = 0; i <= x.exp; i++) b[l++] = digit_at(&x, i);
    else
        b[l++] = '0';
    if (prec > 0 || alt) b[l++] = '.';
    for (int i = 1; i <= prec; i++) b[l++] = nonzero ? digit_at(&x, x.exp + i) : '0';
    return l;
}

/* %e body: d.ddd then e+XX. */
static size_t body_e(char *b, struct dec x, int nonzero, int prec, int alt, int upper) {
    size_t l = 0;
    if (nonzero) round_dec(&x, prec + 1);
    else x.exp = 0;
    b[l++] = nonzero ? digit_at(&x, 0) : '0';
    if (prec > 0 || alt) b[l++] = '.';
    for (int i = 1; i <= prec; i++) b[l++] = nonzero ? digit_at(&x, i) : '0';
    b[l++] = upper ? 'E' : 'e';
    int e = x.exp;
    b[l++] = e < 0 ? '-' : '+';
    if (e < 0) e = -e;
    if (e >= 100) b[l++] = (char)('0' + e / 100);
    b[l++] = (char)('0' + e / 10 % 10);
    b[l++] = (char)('0' + e % 10);
    return l;
}

static size_t strip_zeros(char *b, size_t l) {
    size_t dot = l, end = l;
    for (size_t i = 0; i < l; i++) {
        if (b[i] == '.') dot = i;
        if (b[i] == 'e' || b[i] == 'E') {
            end = i;
            break;
        }
    }
    if (dot == l || dot > end) return l;
    size_t cut = end;
    while (cut > dot + 1 && b[cut - 1] == '0') cut--;
    if (cut == dot + 1) cut = dot;
    size_t k = cut;
    for (size_t i = end; i < l; i++) b[k++] = b[i];
    return k;
}

static void fmt_float(struct out *o, struct spec sp, double v, char conv) {
    char body[BODY_MAX];
    char prefix[1];
    size_t pl = 0, bl = 0;
    int upper = conv == 'F' || conv == 'E' || conv == 'G';
    if (__builtin_signbit(v)) {
        prefix[pl++] = '-';
        v = -v;
    } else if (sp.plus) {
        prefix[pl++] = '+';
    } else if (sp.space) {
        prefix[pl++] = ' ';
    }
    if (__builtin_isnan(v) || __builtin_isinf(v)) {
        const char *s = __builtin_isnan(v) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
        field(o, &sp, prefix, pl, s, 3, 0);
        return;
    }
    int prec = sp.prec < 0 ? 6 : sp.prec;
    if (prec > MAX_FLOAT_PREC) prec = MAX_FLOAT_PREC;
    struct dec x = {{0}, 0, 0};
    int nonzero = v != 0.0;
    if (nonzero) decompose(v, &x);
    char c = (char)(conv | 0x20);
    if (c == 'f') {
        bl = body_f(body, x, nonzero, prec, sp.alt);
    } else if (c == 'e') {
        bl = body_e(body, x, nonzero, prec, sp.alt, upper);
    } else {
        int p = prec == 0 ? 1 : prec;
        struct dec r = x;
        int ex = 0;
        if (nonzero) {
            round_dec(&r, p);
            ex = r.exp;
        }
        if (ex < p && ex >= -4)
            bl = body_f(body, x, nonzero, p - 1 - ex, sp.alt);
        else
            bl = body_e(body, x, nonzero, p - 1, sp.alt, upper);
        if (!sp.alt) bl = strip_zeros(body, bl);
    }
    field(o, &sp, prefix, pl, body, bl, 1);
}

int twz_vformat(twz_sink sink, void *ctx, const char *fmt, va_list ap) {
    struct out o = {sink, ctx, 0};
    const char *p = fmt;
    while (*p) {
        const char *lit = p;
        while (*p && *p != '%') p++;
        put(&o, lit, (size_t)(p - lit));
        if (!*p) break;
        const char *start = p++;
        struct spec sp = {0, 0, 0, 0, 0, 0, -1};
        for (;; p++) {
            if (*p == '-') sp.left = 1;
            else if (*p == '+') sp.plus = 1;
            else if (*p == ' ') sp.space = 1;
            else if (*p == '#') sp.alt = 1;
            else if (*p == '0') sp.zero = 1;
            else break;
        }
        if (*p == '*') {
            int w = va_arg(ap, int);
            if (w < 0) {
                sp.left = 1;
                w = w == -2147483647 - 1 ? 2147483647 : -w;
            }
            sp.width = w;
            p++;
        } else {
            while (*p >= '0' && *p <= '9') {
                if (sp.width < 100000000) sp.width = sp.width * 10 + (*p - '0');
                p++;
            }
        }
        if (*p == '.') {
            p++;
            sp.prec = 0;
            if (*p == '*') {
                sp.prec = va_arg(ap, int);
                if (sp.prec < 0) sp.prec = -1;
                p++;
            } else {
                while (*p >= '0' && *p <= '9') {
                    if (sp.prec < 100000000) sp.prec = sp.prec * 10 + (*p - '0');
                    p++;
                }
            }
        }
        /* Length: 0 int, 1 char, 2 short, 3 long, 4 long long, 5 size_t, 6 intmax, 7 ptrdiff,
         * 8 long double. */
        int len = 0;
        switch (*p) {
        case 'h':
            len = p[1] == 'h' ? 1 : 2;
            p += p[1] == 'h' ? 2 : 1;
            break;
        case 'l':
            len = p[1] == 'l' ? 4 : 3;
            p += p[1] == 'l' ? 2 : 1;
            break;
        case 'q': len = 4; p++; break;
        case 'z': len = 5; p++; break;
        case 'j': len = 6; p++; break;
        case 't': len = 7; p++; break;
        case 'L': len = 8; p++; break;
        default: break;
        }
        char conv = *p;
        if (conv) p++;
        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v;
            switch (len) {
            case 1: v = (signed char)va_arg(ap, int); break;
            case 2: v = (short)va_arg(ap, int); break;
            case 3: v = va_arg(ap, long); break;
            case 4: v = va_arg(ap, long long); break;
            case 5: v = va_arg(ap, long); break;
            case 6: v = va_arg(ap, intmax_t); break;
            case 7: v = va_arg(ap, ptrdiff_t); break;
            default: v = va_arg(ap, int); break;
            }
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            fmt_int(&o, sp, mag, v < 0, 10, 0, conv);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            uint64_t v;
            switch (len) {
            case 1: v = (unsigned char)va_arg(ap, unsigned); break;
            case 2: v = (unsigned short)va_arg(ap, unsigned); break;
            case 3: v = va_arg(ap, unsigned long); break;
            case 4: v = va_arg(ap, unsigned long long); break;
            case 5: v = va_arg(ap, size_t); break;
            case 6: v = va_arg(ap, uintmax_t); break;
            case 7: v = (uint64_t)va_arg(ap, ptrdiff_t); break;
            default: v = va_arg(ap, unsigned); break;
            }
            int base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
            fmt_int(&o, sp, v, 0, base, conv == 'X', conv);
            break;
        }
        case 'p': {
            void *ptr = va_arg(ap, void *);
            if (!ptr) {
                sp.prec = -1;
                field(&o, &sp, "", 0, "(nil)", 5, 0);
            } else {
                fmt_int(&o, sp, (uint64_t)(uintptr_t)ptr, 0, 16, 0, 'p');
            }
            break;
        }
        case 'c': {
            char ch = (char)va_arg(ap, int);
            field(&o, &sp, "", 0, &ch, 1, 0);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) s = sp.prec < 0 || sp.prec >= 6 ? "(null)" : "";
            size_t n = 0;
            while (s[n] && (sp.prec < 0 || n < (size_t)sp.prec)) n++;
            field(&o, &sp, "", 0, s, n, 0);
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            double v = len == 8 ? (double)va_arg(ap, long double) : va_arg(ap, double);
            fmt_float(&o, sp, v, conv);
            break;
        }
        case '%':
            put(&o, "%", 1);
            break;
        default:
            /* Unknown or unsupported (%n): print the directive as written. */
            put(&o, start, (size_t)(p - start));
            break;
        }
    }
    return o.total > 2147483647 ? 2147483647 : (int)o.total;
}

/* The snprintf family: text into a caller's buffer, always NUL-terminated when size > 0. */
struct bufsink {
    char *buf;
    size_t size;
    size_t len;
};

static void to_buf(void *ctx, const char *s, size_t n) {
    struct bufsink *b = ctx;
    for (size_t i = 0; i < n; i++, b->len++)
        if (b->size && b->len < b->size - 1) b->buf[b->len] = s[i];
}

int TWZ_LIBC(vsnprintf)(char *restrict buf, size_t size, const char *restrict fmt, va_list ap) {
    struct bufsink b = {buf, size, 0};
    int n = twz_vformat(to_buf, &b, fmt, ap);
    if (size) buf[b.len < size ? b.len : size - 1] = 0;
    return n;
}

int TWZ_LIBC(snprintf)(char *restrict buf, size_t size, const char *restrict fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = TWZ_LIBC(vsnprintf)(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int TWZ_LIBC(vsprintf)(char *restrict buf, const char *restrict fmt, va_list ap) {
    return TWZ_LIBC(vsnprintf)(buf, (size_t)-1 >> 1, fmt, ap);
}

int TWZ_LIBC(sprintf)(char *restrict buf, const char *restrict fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = TWZ_LIBC(vsprintf)(buf, fmt, ap);
    va_end(ap);
    return n;
}
