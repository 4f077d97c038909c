//! Compiles SQLite's amalgamation for the guest, once: this script only reruns when it changes,
//! so the ~9 MB of C (about a minute at -O2) is not rebuilt on every build.
//!
//! The source comes from the `libsqlite3-sys` package, pinned in `Cargo.toml` and locked in
//! `examples/Cargo.lock`; `cargo metadata` names its folder in the local registry, so nothing is
//! vendored into this repository and nothing is built for the host.

use std::env;
use std::path::PathBuf;

#[path = "amalgamation.rs"]
mod amalgamation;

/// Compile-time options: no OS layer (the guest brings its VFS), no threads, memory from one
/// region (memsys5 on SQLITE_CONFIG_HEAP), temporary tables in memory, no extensions or local
/// time (no files, no time zones), no WAL until a VFS offers shared memory. Memory-mapped I/O is
/// on by default up to an object's size: the object VFS hands out pointers into mapped objects
/// (SQLite only enables it by default on the OSes it knows, and the guest is none of them).
const OPTIONS: &[(&str, Option<&str>)] = &[
    ("SQLITE_OS_OTHER", Some("1")),
    ("SQLITE_THREADSAFE", Some("0")),
    ("SQLITE_ENABLE_MEMSYS5", None),
    ("SQLITE_ZERO_MALLOC", None),
    ("SQLITE_DEFAULT_MEMSTATUS", Some("0")),
    ("SQLITE_OMIT_LOAD_EXTENSION", None),
    ("SQLITE_OMIT_LOCALTIME", None),
    ("SQLITE_OMIT_DEPRECATED", None),
    ("SQLITE_OMIT_SHARED_CACHE", None),
    ("SQLITE_OMIT_WAL", None),
    ("SQLITE_TEMP_STORE", Some("3")),
    ("SQLITE_DQS", Some("0")),
    ("SQLITE_ENABLE_MATH_FUNCTIONS", None),
    ("SQLITE_MAX_MMAP_SIZE", Some("0x40000000")),
    ("SQLITE_DEFAULT_MMAP_SIZE", Some("0x40000000")),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=amalgamation.rs");
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("Cargo.toml");
    let dir = match amalgamation::dir(&manifest) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot find SQLite's amalgamation: {e}");
            std::process::exit(1);
        }
    };
    println!("cargo:include={}", dir.display());
    let mut b = twz_cbuild::guest();
    b.file(dir.join("sqlite3.c"))
        .include(&dir)
        .warnings(false)
        // -ffreestanding implies -fno-builtin; SQLite's many small fixed-size memcpy/memset calls
        // are much faster inlined, and every function gcc may call instead exists in the shim.
        .flag("-fbuiltin")
        .flag("-g1")
        .flag("-Wno-unused-parameter");
    for (k, v) in OPTIONS {
        b.define(k, *v);
    }
    b.compile("sqlite3");
}
