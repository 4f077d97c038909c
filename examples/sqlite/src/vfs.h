/* The storage behind SQLite in this guest. SQLite is built with SQLITE_OS_OTHER, so
 * sqlite3_os_init (in objvfs.c) registers the VFSes: "twzobj", the default, keeps each named
 * database and its journal in a persistent object of the same name (see objvfs.c); "twzmem"
 * (memvfs.c) keeps files in the heap for one run and holds the temporary files. */
#ifndef TWZ_SQLITE_VFS_H
#define TWZ_SQLITE_VFS_H
#include <sqlite3.h>

/* The default VFS's name, for messages. */
const char *twz_vfs_name(void);
/* True when databases opened by name persist after the run. */
int twz_vfs_persistent(void);
/* The heap VFS (not registered by itself). */
sqlite3_vfs *twz_memvfs(void);

#endif
