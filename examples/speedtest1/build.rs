//! Compiles SQLite's `speedtest1.c` (unchanged, from Debian's sqlite3 3.40.1 source package)
//! with the object VFS of `examples/sqlite`, so the benchmark's database lives in an object.
const OWN: &[&str] = &[
    "src/speedtest1.c",
    "src/shim.c",
    "src/shim.h",
    "src/include/unistd.h",
];
const VFS: &[&str] = &[
    "../sqlite/src/objvfs.c",
    "../sqlite/src/memvfs.c",
    "../sqlite/src/vfs.h",
];

fn main() {
    for f in OWN.iter().chain(VFS) {
        println!("cargo:rerun-if-changed={f}");
    }
    let Some(sqlite_include) = std::env::var_os("DEP_TWZSQLITE3_INCLUDE") else {
        eprintln!("error: twz-sqlite3 did not say where sqlite3.h is");
        std::process::exit(1);
    };
    twz_cbuild::guest()
        .files(VFS.iter().chain(OWN).filter(|f| f.ends_with(".c")))
        .include(sqlite_include)
        .include("../sqlite/src")
        .include("src/include")
        // The library omits deprecated interfaces (sqlite3_trace); speedtest1 checks this macro.
        .define("SQLITE_OMIT_DEPRECATED", None)
        // speedtest1.c is SQLite's code, compiled as it is: the shim header declares the few
        // POSIX names it uses that the guest's libc shim lacks.
        .flag("-include")
        .flag("src/shim.h")
        .flag("-Wno-unused-parameter")
        .flag("-Wno-sign-compare")
        .flag("-Wno-unused-function")
        .flag("-Wno-unused-variable")
        .flag("-Wno-unused-but-set-variable")
        .compile("speedtest1");
}
