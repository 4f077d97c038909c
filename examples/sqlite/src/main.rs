//! The SQLite shell guest: C in `shell.c` (the shell), `objvfs.c` (the default VFS: databases
//! in persistent objects) and `memvfs.c` (temporary files in the heap), SQLite from `twz-sqlite3`.
#![no_std]
#![no_main]

// Linked for its C archive (SQLite itself).
use twz_sqlite3 as _;

twz_libc::c_main!();
