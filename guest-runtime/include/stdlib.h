/* stdlib.h: heap, exit, number conversion, sorting (twz libc shim). The heap is the runtime's;
 * exit flushes the console and ends the run with the status. */
#ifndef _TWZ_STDLIB_H
#define _TWZ_STDLIB_H
#include <stddef.h>
#include "_twz_libc.h"
TWZ_BEGIN_DECLS

#define EXIT_SUCCESS 0
#define EXIT_FAILURE 1
#define RAND_MAX 2147483647

void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *p, size_t size);
void free(void *p);
_Noreturn void abort(void);
_Noreturn void exit(int status);
_Noreturn void _Exit(int status);
char *getenv(const char *name);

int TWZ_LIBC(atoi)(const char *s);
long TWZ_LIBC(atol)(const char *s);
long long TWZ_LIBC(atoll)(const char *s);
long TWZ_LIBC(strtol)(const char *restrict s, char **restrict end, int base);
unsigned long TWZ_LIBC(strtoul)(const char *restrict s, char **restrict end, int base);
long long TWZ_LIBC(strtoll)(const char *restrict s, char **restrict end, int base);
unsigned long long TWZ_LIBC(strtoull)(const char *restrict s, char **restrict end, int base);
double TWZ_LIBC(strtod)(const char *restrict s, char **restrict end);
double TWZ_LIBC(atof)(const char *s);
void TWZ_LIBC(qsort)(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
void *TWZ_LIBC(bsearch)(const void *key, const void *base, size_t n, size_t size,
                        int (*cmp)(const void *, const void *));
int TWZ_LIBC(abs)(int x);
long TWZ_LIBC(labs)(long x);
long long TWZ_LIBC(llabs)(long long x);
int TWZ_LIBC(rand)(void);
void TWZ_LIBC(srand)(unsigned seed);

TWZ_END_DECLS
#endif
