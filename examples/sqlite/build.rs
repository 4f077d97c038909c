//! Compiles the shell and the VFS (not SQLite itself: `twz-sqlite3` builds that once).
const SOURCES: &[&str] = &["src/shell.c", "src/objvfs.c", "src/memvfs.c", "src/vfs.h"];

fn main() {
    for f in SOURCES {
        println!("cargo:rerun-if-changed={f}");
    }
    let Some(sqlite_include) = std::env::var_os("DEP_TWZSQLITE3_INCLUDE") else {
        eprintln!("error: twz-sqlite3 did not say where sqlite3.h is");
        std::process::exit(1);
    };
    twz_cbuild::guest()
        .files(SOURCES.iter().filter(|f| f.ends_with(".c")))
        .include(sqlite_include)
        .compile("sqlite_shell");
}
