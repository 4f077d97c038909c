//! Compiles the key-value store.
const SOURCES: &[&str] = &[
    "src/kvs.c",
    "src/store.c",
    "src/resp.c",
    "src/shell.c",
    "src/ycsb.c",
];
const HEADERS: &[&str] = &["src/store.h", "src/resp.h", "src/shell.h", "src/ycsb.h"];

fn main() {
    for f in SOURCES.iter().chain(HEADERS) {
        println!("cargo:rerun-if-changed={f}");
    }
    twz_cbuild::guest().files(SOURCES).compile("kvs");
}
