/* See shim.h: a guest has no host files, so the optional output files cannot be opened (the
 * benchmark then reports it, or skips the output), and unlink removes nothing. */
#include <errno.h>
#include <stdio.h>
#include "shim.h"

FILE *fopen(const char *path, const char *mode) {
    (void)path;
    (void)mode;
    return NULL;
}

int fclose(FILE *f) {
    (void)f;
    return 0;
}

int unlink(const char *path) {
    (void)path;
    return -1;
}
