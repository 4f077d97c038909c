//! Compiles the C half of the shim (printf engine, string, stdlib, stdio). For guests: every file,
//! freestanding, exported under C names. For host unit tests: the pure files, with
//! `TWZ_LIBC_HOST_TEST` so their names get a `twz_` prefix and never replace the host libc's.

const PURE: &[&str] = &["c/format.c", "c/string.c", "c/stdlib.c"];
const GUEST_ONLY: &[&str] = &["c/stdio.c"];

fn main() {
    for f in PURE.iter().chain(GUEST_ONLY).chain(&["c/format.h"]) {
        println!("cargo:rerun-if-changed={f}");
    }
    let guest = std::env::var_os("CARGO_FEATURE_GUEST").is_some();
    let mut b = if guest {
        let mut b = twz_cbuild::libc_shim();
        b.files(GUEST_ONLY);
        b
    } else {
        let mut b = twz_cbuild::host_test();
        b.define("TWZ_LIBC_HOST_TEST", None);
        b
    };
    // Keep gcc from turning the string loops into calls to the functions they implement.
    b.files(PURE)
        .flag("-fno-builtin")
        .flag("-fno-tree-loop-distribute-patterns")
        .compile("twzc");
}
