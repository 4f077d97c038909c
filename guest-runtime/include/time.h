/* time.h (twz libc shim): the wall clock and a monotonic clock, both read with rdtsc (no VM
 * exit). No time zones: there is no localtime. */
#ifndef _TWZ_TIME_H
#define _TWZ_TIME_H
#include <stddef.h>
#include "_twz_libc.h"
TWZ_BEGIN_DECLS

typedef long time_t;
typedef long clock_t;
typedef int clockid_t;

struct timespec {
    time_t tv_sec;
    long tv_nsec;
};

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCKS_PER_SEC 1000000L

time_t time(time_t *t);
int clock_gettime(clockid_t id, struct timespec *ts);
clock_t clock(void);

TWZ_END_DECLS
#endif
