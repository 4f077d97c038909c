/* string.h: memory and string functions (twz libc shim). */
#ifndef _TWZ_STRING_H
#define _TWZ_STRING_H
#include <stddef.h>
#include "_twz_libc.h"
TWZ_BEGIN_DECLS

void *TWZ_LIBC(memcpy)(void *restrict dst, const void *restrict src, size_t n);
void *TWZ_LIBC(memmove)(void *dst, const void *src, size_t n);
void *TWZ_LIBC(memset)(void *dst, int c, size_t n);
int TWZ_LIBC(memcmp)(const void *a, const void *b, size_t n);
void *TWZ_LIBC(memchr)(const void *s, int c, size_t n);
size_t TWZ_LIBC(strlen)(const char *s);
size_t TWZ_LIBC(strnlen)(const char *s, size_t max);
int TWZ_LIBC(strcmp)(const char *a, const char *b);
int TWZ_LIBC(strncmp)(const char *a, const char *b, size_t n);
char *TWZ_LIBC(strcpy)(char *restrict dst, const char *restrict src);
char *TWZ_LIBC(strncpy)(char *restrict dst, const char *restrict src, size_t n);
char *TWZ_LIBC(strcat)(char *restrict dst, const char *restrict src);
char *TWZ_LIBC(strncat)(char *restrict dst, const char *restrict src, size_t n);
char *TWZ_LIBC(strchr)(const char *s, int c);
char *TWZ_LIBC(strrchr)(const char *s, int c);
char *TWZ_LIBC(strstr)(const char *hay, const char *needle);
size_t TWZ_LIBC(strspn)(const char *s, const char *accept);
size_t TWZ_LIBC(strcspn)(const char *s, const char *reject);
char *TWZ_LIBC(strpbrk)(const char *s, const char *accept);
char *TWZ_LIBC(strdup)(const char *s);
char *TWZ_LIBC(strndup)(const char *s, size_t n);
char *TWZ_LIBC(strerror)(int errnum);
int TWZ_LIBC(strcasecmp)(const char *a, const char *b);
int TWZ_LIBC(strncasecmp)(const char *a, const char *b, size_t n);

TWZ_END_DECLS
#endif
