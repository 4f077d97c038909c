//! SQLite for twz guests: links the amalgamation (3.54.1, from `libsqlite3-sys`) compiled
//! freestanding with `SQLITE_OS_OTHER`, so the program provides `sqlite3_os_init`/`sqlite3_os_end`
//! and a VFS. The options are in `build.rs`; the header's folder reaches dependents' build
//! scripts as `DEP_TWZSQLITE3_INCLUDE`.
#![no_std]

pub use twz_libc;
