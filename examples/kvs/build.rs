//! Compiles the key-value store.
const SOURCES: &[&str] = &["src/kvs.c"];

fn main() {
    for f in SOURCES {
        println!("cargo:rerun-if-changed={f}");
    }
    twz_cbuild::guest().files(SOURCES).compile("kvs");
}
