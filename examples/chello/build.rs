//! Compiles the C program.
fn main() {
    println!("cargo:rerun-if-changed=src/chello.c");
    twz_cbuild::guest().file("src/chello.c").compile("chello");
}
