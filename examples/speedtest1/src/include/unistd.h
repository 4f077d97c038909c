/* unistd.h for speedtest1.c in the guest: only unlink() (see ../shim.h). */
#ifndef SPEEDTEST1_UNISTD_H
#define SPEEDTEST1_UNISTD_H
int unlink(const char *path);
#endif
