/* string.h beyond what twz-cmem provides (memcpy memmove memset memcmp bcmp strlen). Compiled
 * with -fno-builtin and -fno-tree-loop-distribute-patterns so gcc does not turn these loops
 * into calls to themselves. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *TWZ_LIBC(memchr)(const void *s, int c, size_t n) {
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++)
        if (p[i] == (unsigned char)c) return (void *)(p + i);
    return NULL;
}

size_t TWZ_LIBC(strnlen)(const char *s, size_t max) {
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}

int TWZ_LIBC(strcmp)(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

int TWZ_LIBC(strncmp)(const char *a, const char *b, size_t n) {
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a) return (unsigned char)*a - (unsigned char)*b;
    }
    return 0;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int TWZ_LIBC(strcasecmp)(const char *a, const char *b) {
    while (*a && lower((unsigned char)*a) == lower((unsigned char)*b)) a++, b++;
    return lower((unsigned char)*a) - lower((unsigned char)*b);
}

int TWZ_LIBC(strncasecmp)(const char *a, const char *b, size_t n) {
    for (; n; n--, a++, b++) {
        int x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y || !x) return x - y;
    }
    return 0;
}

char *TWZ_LIBC(strcpy)(char *restrict dst, const char *restrict src) {
    char *d = dst;
    while ((*d++ = *src++)) {}
    return dst;
}

char *TWZ_LIBC(strncpy)(char *restrict dst, const char *restrict src, size_t n) {
    size_t i = 0;
    for (; i < n && src[i]; i++) dst[i] = src[i];
    for (; i < n; i++) dst[i] = 0;
    return dst;
}

char *TWZ_LIBC(strcat)(char *restrict dst, const char *restrict src) {
    char *d = dst;
    while (*d) d++;
    while ((*d++ = *src++)) {}
    return dst;
}

char *TWZ_LIBC(strncat)(char *restrict dst, const char *restrict src, size_t n) {
    char *d = dst;
    while (*d) d++;
    for (; n && *src; n--) *d++ = *src++;
    *d = 0;
    return dst;
}

char *TWZ_LIBC(strchr)(const char *s, int c) {
    for (;; s++) {
        if (*s == (char)c) return (char *)s;
        if (!*s) return NULL;
    }
}

char *TWZ_LIBC(strrchr)(const char *s, int c) {
    const char *last = NULL;
    for (;; s++) {
        if (*s == (char)c) last = s;
        if (!*s) return (char *)last;
    }
}

char *TWZ_LIBC(strstr)(const char *hay, const char *needle) {
    if (!*needle) return (char *)hay;
    for (; *hay; hay++) {
        size_t i = 0;
        while (needle[i] && hay[i] == needle[i]) i++;
        if (!needle[i]) return (char *)hay;
    }
    return NULL;
}

/* The bytes of `set` as a 256-bit map (bit 0, the terminator, set when `with_nul`): one load
 * and test per byte of the scanned string instead of a pass over the set. */
static void byte_map(uint64_t map[4], const char *set, int with_nul) {
    map[0] = map[1] = map[2] = map[3] = 0;
    for (const unsigned char *p = (const unsigned char *)set; *p; p++) map[*p >> 6] |= 1ull << (*p & 63);
    if (with_nul) map[0] |= 1;
}

static int in_map(const uint64_t map[4], unsigned char c) { return (map[c >> 6] >> (c & 63)) & 1; }

size_t TWZ_LIBC(strspn)(const char *s, const char *accept) {
    uint64_t map[4];
    byte_map(map, accept, 0);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (in_map(map, p[n])) n++;
    return n;
}

size_t TWZ_LIBC(strcspn)(const char *s, const char *reject) {
    uint64_t map[4];
    byte_map(map, reject, 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (!in_map(map, p[n])) n++;
    return n;
}

char *TWZ_LIBC(strpbrk)(const char *s, const char *accept) {
    s += TWZ_LIBC(strcspn)(s, accept);
    return *s ? (char *)s : NULL;
}

#ifndef TWZ_LIBC_HOST_TEST
char *strdup(const char *s) { return strndup(s, (size_t)-1); }

char *strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

char *strerror(int errnum) {
    switch (errnum) {
    case 0: return "Success";
    case 1: return "Operation not permitted";
    case 2: return "No such file or directory";
    case 5: return "Input/output error";
    case 7: return "Argument list too long";
    case 9: return "Bad file descriptor";
    case 11: return "Resource temporarily unavailable";
    case 12: return "Cannot allocate memory";
    case 13: return "Permission denied";
    case 14: return "Bad address";
    case 16: return "Device or resource busy";
    case 17: return "File exists";
    case 22: return "Invalid argument";
    case 27: return "File too large";
    case 28: return "No space left on device";
    case 34: return "Numerical result out of range";
    case 38: return "Function not implemented";
    default: return "Unknown error";
    }
}
#endif
