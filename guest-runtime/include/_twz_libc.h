/* Shared by the twz libc shim's headers: C linkage for C++ and the name of its functions. */
#ifndef TWZ__LIBC_H
#define TWZ__LIBC_H

#ifdef __cplusplus
#define TWZ_BEGIN_DECLS extern "C" {
#define TWZ_END_DECLS }
#else
#define TWZ_BEGIN_DECLS
#define TWZ_END_DECLS
#endif

/* TWZ_LIBC(name) names a libc function as guests see it. The shim's host unit tests compile
 * the pure parts with TWZ_LIBC_HOST_TEST, which prefixes them so they do not replace the host's. */
#ifdef TWZ_LIBC_HOST_TEST
#define TWZ_LIBC(name) twz_##name
#else
#define TWZ_LIBC(name) name
#endif

#endif
