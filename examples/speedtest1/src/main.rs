//! SQLite's speedtest1 benchmark as a guest: `twz-vmm run speedtest1 -- --heap SZ MIN [OPTIONS]
//! DB`, with DB an object of the store (the object VFS) unless `--memdb`. The C is SQLite's
//! `speedtest1.c` (public domain, Debian's sqlite3 3.40.1 source package), `shim.c` supplies
//! the few host calls it makes that a guest has no use for.
#![no_std]
#![no_main]

// Linked for its C archive (SQLite itself).
use twz_sqlite3 as _;

twz_libc::c_main!();
