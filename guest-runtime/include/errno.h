/* errno.h (twz libc shim): the Linux numbers, so messages and tests read familiarly. The guest
 * is single-threaded: errno is one global. */
#ifndef _TWZ_ERRNO_H
#define _TWZ_ERRNO_H
#include "_twz_libc.h"
TWZ_BEGIN_DECLS
extern int errno;
TWZ_END_DECLS

#define EPERM 1
#define ENOENT 2
#define EINTR 4
#define EIO 5
#define E2BIG 7
#define EBADF 9
#define EAGAIN 11
#define ENOMEM 12
#define EACCES 13
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define EINVAL 22
#define EFBIG 27
#define ENOSPC 28
#define ESPIPE 29
#define EROFS 30
#define EPIPE 32
#define EDOM 33
#define ERANGE 34
#define ENAMETOOLONG 36
#define ENOSYS 38
#define ECONNRESET 104
#define ETIMEDOUT 110
#define ECANCELED 125
#endif
