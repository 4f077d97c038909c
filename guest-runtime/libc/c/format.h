/* The printf engine shared by the snprintf family and stdio (internal to the libc shim). */
#ifndef TWZ_FORMAT_H
#define TWZ_FORMAT_H
#include <stdarg.h>
#include <stddef.h>

/* Receives formatted text in pieces. */
typedef void (*twz_sink)(void *ctx, const char *s, size_t n);

/* Formats like vprintf into `sink`; returns the number of bytes produced. */
int twz_vformat(twz_sink sink, void *ctx, const char *fmt, va_list ap);

#endif
