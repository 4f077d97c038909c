/* stdio.h: formatted and plain I/O on the three standard streams (twz libc shim).
 *
 * There are no files: stdin, stdout and stderr are the only FILE objects. Output goes to the
 * runtime's console (stdout is sent at each newline, stderr at the end of each call); input comes
 * from the VMM's standard input. printf supports the flags "-+ #0", width and precision (also
 * "*"), the length modifiers hh h l ll z j t L, and the conversions d i u x X o c s p % f F e E g G
 * (floating point to about 17 significant digits). */
#ifndef _TWZ_STDIO_H
#define _TWZ_STDIO_H
#include <stdarg.h>
#include <stddef.h>
#include "_twz_libc.h"
TWZ_BEGIN_DECLS

/* A standard stream: its descriptor and its end-of-file and error marks. */
typedef struct twz_file {
    int fd;
    int eof;
    int err;
    int unget; /* a byte pushed back by ungetc, or -1 */
} FILE;

extern FILE *const stdin;
extern FILE *const stdout;
extern FILE *const stderr;

#define EOF (-1)
#define BUFSIZ 4096
#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2

int TWZ_LIBC(vsnprintf)(char *restrict buf, size_t size, const char *restrict fmt, va_list ap);
int TWZ_LIBC(snprintf)(char *restrict buf, size_t size, const char *restrict fmt, ...)
    __attribute__((format(printf, 3, 4)));
int TWZ_LIBC(vsprintf)(char *restrict buf, const char *restrict fmt, va_list ap);
int TWZ_LIBC(sprintf)(char *restrict buf, const char *restrict fmt, ...)
    __attribute__((format(printf, 2, 3)));

int printf(const char *restrict fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *restrict fmt, va_list ap);
int fprintf(FILE *restrict f, const char *restrict fmt, ...) __attribute__((format(printf, 2, 3)));
int vfprintf(FILE *restrict f, const char *restrict fmt, va_list ap);
int puts(const char *s);
int putchar(int c);
int fputs(const char *restrict s, FILE *restrict f);
int fputc(int c, FILE *f);
int putc(int c, FILE *f);
size_t fwrite(const void *restrict p, size_t size, size_t n, FILE *restrict f);
int fflush(FILE *f);
int getchar(void);
int fgetc(FILE *f);
int getc(FILE *f);
int ungetc(int c, FILE *f);
char *fgets(char *restrict s, int n, FILE *restrict f);
size_t fread(void *restrict p, size_t size, size_t n, FILE *restrict f);
int feof(FILE *f);
int ferror(FILE *f);
void clearerr(FILE *f);
int fileno(FILE *f);

TWZ_END_DECLS
#endif
