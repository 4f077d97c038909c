//! Compiling C for twz guests, from a guest crate's `build.rs`.
//!
//! Guest C code is freestanding: no host headers, no host libc, no stack protector (no TLS
//! canary), no red zone, no position independence (images are static, linked below 2 GiB), no
//! CET notes, frame pointers kept (the VMM's guest backtraces follow them). The headers it
//! sees are gcc's own freestanding ones (`stdint.h`, `stddef.h`, `stdarg.h`, `limits.h`,
//! `float.h`, `stdbool.h`) plus the libc shim in `guest-runtime/include`.
//!
//! ```no_run
//! // in examples/mine/build.rs, its `main`:
//! twz_cbuild::guest().file("src/mine.c").compile("mine");
//! println!("cargo:rerun-if-changed=src/mine.c");
//! ```
//! The C program defines `int main(int argc, char **argv)`; its crate's `main.rs` holds
//! `twz_libc::c_main!();` (see `guest-runtime/README.md`).

use std::path::PathBuf;
use std::process::Command;

/// Flags every guest C file is compiled with. `-U` removes the host OS macros gcc predefines, so
/// portable code (SQLite) does not take its Linux paths.
pub const GUEST_CFLAGS: &[&str] = &[
    "-ffreestanding",
    "-nostdinc",
    "-fno-stack-protector",
    "-mno-red-zone",
    "-fno-pic",
    "-fno-pie",
    "-fcf-protection=none",
    "-fno-omit-frame-pointer",
    "-fno-asynchronous-unwind-tables",
    "-U__linux__",
    "-U__linux",
    "-U__unix__",
    "-U__unix",
    "-Ulinux",
    "-Uunix",
];

/// The libc shim's headers (`guest-runtime/include`).
pub fn include_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../include"))
}

/// A `cc::Build` set up for guest programs in C: [`libc_shim`]'s set-up plus `-fbuiltin`, which
/// `-ffreestanding` turns off: without it every `memcpy(&v, p, 8)` or `memcmp(a, b, 4)` is a
/// call into the runtime (12-25 ns) instead of one or two inline moves, which cost SQLite and the
/// key-value store dearly. The shim's own C is not built this way, so gcc can never turn the
/// loops that implement `strlen` and friends into calls to themselves.
pub fn guest() -> cc::Build {
    let mut b = libc_shim();
    b.flag("-fbuiltin");
    b
}

/// A `cc::Build` set up for the libc shim's own C: the flags above, `-O2 -g`, gcc's freestanding
/// headers and the shim's, warnings on. Add files and call `compile(name)`; the archive is
/// linked into the crate.
pub fn libc_shim() -> cc::Build {
    let mut b = cc::Build::new();
    b.pic(false)
        .opt_level(2)
        .debug(false)
        .flag("-g")
        .warnings(true)
        .include(include_dir());
    for f in GUEST_CFLAGS {
        b.flag(f);
    }
    if let Some(dir) = compiler_include_dir(&b) {
        b.flag("-isystem").flag(dir);
    }
    println!("cargo:rerun-if-changed={}", include_dir().display());
    b
}

/// gcc's own header directory (`gcc -print-file-name=include`), which `-nostdinc` drops from the
/// search path; `None` if the compiler cannot tell (the build then fails on the first
/// `#include <stdint.h>` with the compiler's message).
fn compiler_include_dir(b: &cc::Build) -> Option<String> {
    let compiler = b.try_get_compiler().ok()?;
    let out = Command::new(compiler.path())
        .arg("-print-file-name=include")
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !dir.is_empty() && dir != "include").then_some(dir)
}

/// A `cc::Build` for compiling guest C sources into a host unit test: the shim's headers and
/// gcc's freestanding ones, but the host's code model (position independent, red zone allowed).
/// Used to test the libc shim's pure parts against the host libc.
pub fn host_test() -> cc::Build {
    let mut b = cc::Build::new();
    b.warnings(true)
        .include(include_dir())
        .flag("-nostdinc")
        .flag("-ffreestanding")
        .flag("-fno-stack-protector");
    if let Some(dir) = compiler_include_dir(&b) {
        b.flag("-isystem").flag(dir);
    }
    println!("cargo:rerun-if-changed={}", include_dir().display());
    b
}
