/* stdlib.h's pure parts: number conversion, sorting, searching, pseudo-random numbers. The heap,
 * exit and getenv are the runtime's (Rust). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef TWZ_LIBC_HOST_TEST
/* The host tests read the conversion's errno through this. */
int twz_test_errno;
#define SET_ERANGE() (twz_test_errno = ERANGE)
#else
int errno;
#define SET_ERANGE() (errno = ERANGE)
#endif

/* Parses an unsigned magnitude like strtoull: skips space, takes a sign, a base prefix, digits.
 * Sets *neg, *overflow; *end to the first unused byte (s itself when nothing was parsed). */
static unsigned long long parse(const char *s, char **end, int base, int *neg, int *overflow) {
    const char *p = s;
    *neg = 0;
    *overflow = 0;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '+' || *p == '-') *neg = *p++ == '-';
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        isxdigit((unsigned char)p[2])) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = *p == '0' ? 8 : 10;
    }
    if (base < 2 || base > 36) {
        if (end) *end = (char *)s;
        return 0;
    }
    unsigned long long v = 0;
    const char *digits = p;
    for (;; p++) {
        int c = (unsigned char)*p, d;
        if (isdigit(c)) d = c - '0';
        else if (isalpha(c)) d = tolower(c) - 'a' + 10;
        else break;
        if (d >= base) break;
        if (v > (ULLONG_MAX - (unsigned)d) / (unsigned)base) *overflow = 1;
        else v = v * (unsigned)base + (unsigned)d;
    }
    if (end) *end = (char *)(p == digits ? s : p);
    return v;
}

unsigned long long TWZ_LIBC(strtoull)(const char *restrict s, char **restrict end, int base) {
    int neg, ovf;
    unsigned long long v = parse(s, end, base, &neg, &ovf);
    if (ovf) {
        SET_ERANGE();
        return ULLONG_MAX;
    }
    return neg ? 0 - v : v;
}

long long TWZ_LIBC(strtoll)(const char *restrict s, char **restrict end, int base) {
    int neg, ovf;
    unsigned long long v = parse(s, end, base, &neg, &ovf);
    unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    if (ovf || v > limit) {
        SET_ERANGE();
        return neg ? LLONG_MIN : LLONG_MAX;
    }
    return neg ? (long long)(0 - v) : (long long)v;
}

unsigned long TWZ_LIBC(strtoul)(const char *restrict s, char **restrict end, int base) {
    return TWZ_LIBC(strtoull)(s, end, base);
}

long TWZ_LIBC(strtol)(const char *restrict s, char **restrict end, int base) {
    return TWZ_LIBC(strtoll)(s, end, base);
}

int TWZ_LIBC(atoi)(const char *s) { return (int)TWZ_LIBC(strtol)(s, NULL, 10); }
long TWZ_LIBC(atol)(const char *s) { return TWZ_LIBC(strtol)(s, NULL, 10); }
long long TWZ_LIBC(atoll)(const char *s) { return TWZ_LIBC(strtoll)(s, NULL, 10); }

static double pow10i(int e) {
    double r = 1.0, b = 10.0;
    int a = e < 0 ? -e : e;
    for (; a; a >>= 1, b *= b)
        if (a & 1) r *= b;
    return e < 0 ? 1.0 / r : r;
}

static int match_word(const char *p, const char *w) {
    int i = 0;
    for (; w[i]; i++)
        if (tolower((unsigned char)p[i]) != w[i]) return 0;
    return i;
}

/* Decimal (and inf/nan) to double: up to 19 significant digits gathered exactly, then one
 * scaling in long double; correct to the last bit or one off, enough for program input. */
double TWZ_LIBC(strtod)(const char *restrict s, char **restrict end) {
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    int n;
    if ((n = match_word(p, "infinity")) || (n = match_word(p, "inf"))) {
        if (end) *end = (char *)(p + n);
        return neg ? -__builtin_inf() : __builtin_inf();
    }
    if ((n = match_word(p, "nan"))) {
        if (end) *end = (char *)(p + n);
        return neg ? -__builtin_nan("") : __builtin_nan("");
    }
    unsigned long long mant = 0;
    int digits = 0, scale = 0, any = 0;
    for (; isdigit((unsigned char)*p); p++, any = 1) {
        if (digits < 19) {
            mant = mant * 10 + (unsigned)(*p - '0');
            if (mant) digits++;
        } else {
            scale++;
        }
    }
    if (*p == '.') {
        p++;
        for (; isdigit((unsigned char)*p); p++, any = 1) {
            if (digits < 19) {
                mant = mant * 10 + (unsigned)(*p - '0');
                if (mant) digits++;
                scale--;
            }
        }
    }
    if (!any) {
        if (end) *end = (char *)s;
        return 0.0;
    }
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        int eneg = 0, e = 0;
        if (*q == '+' || *q == '-') eneg = *q++ == '-';
        if (isdigit((unsigned char)*q)) {
            for (; isdigit((unsigned char)*q); q++)
                if (e < 100000) e = e * 10 + (*q - '0');
            scale += eneg ? -e : e;
            p = q;
        }
    }
    if (end) *end = (char *)p;
    long double v = (long double)mant;
    if (mant && scale) {
        if (scale < -360) v = 0;
        else if (scale > 330) v = __builtin_infl();
        else if (scale < -300) v = v / (long double)pow10i(300) / (long double)pow10i(-scale - 300);
        else v = scale > 0 ? v * (long double)pow10i(scale) : v / (long double)pow10i(-scale);
    }
    double d = (double)v;
    if (mant && (d == 0.0 || __builtin_isinf(d))) SET_ERANGE();
    return neg ? -d : d;
}

double TWZ_LIBC(atof)(const char *s) { return TWZ_LIBC(strtod)(s, NULL); }

static void swap_bytes(char *a, char *b, size_t n) {
    while (n--) {
        char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

/* Heapsort: O(n log n) whatever the input, no recursion, no allocation. */
static void sift_down(char *base, size_t root, size_t n, size_t size,
                      int (*cmp)(const void *, const void *)) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0) child++;
        if (cmp(base + root * size, base + child * size) >= 0) return;
        swap_bytes(base + root * size, base + child * size, size);
        root = child;
    }
}

void TWZ_LIBC(qsort)(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    char *b = base;
    if (n < 2 || size == 0) return;
    for (size_t i = n / 2; i-- > 0;) sift_down(b, i, n, size, cmp);
    for (size_t end = n - 1; end > 0; end--) {
        swap_bytes(b, b + end * size, size);
        sift_down(b, 0, end, size, cmp);
    }
}

void *TWZ_LIBC(bsearch)(const void *key, const void *base, size_t n, size_t size,
                        int (*cmp)(const void *, const void *)) {
    const char *b = base;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp(key, b + mid * size);
        if (c == 0) return (void *)(b + mid * size);
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

int TWZ_LIBC(abs)(int x) { return x < 0 ? -x : x; }
long TWZ_LIBC(labs)(long x) { return x < 0 ? -x : x; }
long long TWZ_LIBC(llabs)(long long x) { return x < 0 ? -x : x; }

/* rand: a 64-bit LCG (Knuth's MMIX constants), high bits out. Deterministic per seed. */
static uint64_t rand_state = 1;

int TWZ_LIBC(rand)(void) {
    rand_state = rand_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int)(rand_state >> 33);
}

void TWZ_LIBC(srand)(unsigned seed) { rand_state = seed; }
