/* What speedtest1.c uses beyond the guest's libc shim: files for its optional outputs
 * (--output, --script, --verify hash file), which a guest does not have, and unlink() of the
 * database before the run (the VFS's xDelete does that here). */
#ifndef SPEEDTEST1_SHIM_H
#define SPEEDTEST1_SHIM_H
#include <stdio.h>

FILE *fopen(const char *path, const char *mode);
int fclose(FILE *f);
#include <unistd.h>

#endif
