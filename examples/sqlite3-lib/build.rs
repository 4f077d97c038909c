//! Compiles SQLite's amalgamation for the guest, once: this script only reruns when it changes,
//! so the ~9 MB of C (about a minute at -O2) is not rebuilt on every build.
//!
//! The source comes from the `libsqlite3-sys` package, pinned in `Cargo.toml` and locked in
//! `examples/Cargo.lock`; `cargo metadata` names its folder in the local registry, so nothing is
//! vendored into this repository and nothing is built for the host.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The package that ships the amalgamation, and its pinned version.
const SOURCE_PACKAGE: &str = "libsqlite3-sys";
const SOURCE_VERSION: &str = "0.40.0";

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
    let dir = match amalgamation_dir() {
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

/// The `sqlite3/` folder of the pinned `libsqlite3-sys`, from `cargo metadata`.
fn amalgamation_dir() -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("no manifest dir")?)
        .join("Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad cargo metadata: {e}"))?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("no packages in metadata")?;
    let pkg = packages
        .iter()
        .find(|p| p["name"] == SOURCE_PACKAGE && p["version"] == SOURCE_VERSION)
        .ok_or(format!(
            "{SOURCE_PACKAGE} {SOURCE_VERSION} is not in the dependency graph"
        ))?;
    let manifest_path = pkg["manifest_path"]
        .as_str()
        .ok_or("package without a manifest path")?;
    let dir = PathBuf::from(manifest_path)
        .parent()
        .ok_or("manifest path without a folder")?
        .join("sqlite3");
    if !dir.join("sqlite3.c").is_file() {
        return Err(format!("{} has no sqlite3.c", dir.display()));
    }
    Ok(dir)
}
