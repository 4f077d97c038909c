//! `twz_libc`: the C library shim for twz guests written in C.
//!
//! A C program is a guest crate whose `build.rs` compiles its C files with
//! [`twz_cbuild::guest`](../twz_cbuild/fn.guest.html) and whose `main.rs` is three lines:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! twz_libc::c_main!();
//! ```
//! The C side defines `int main(int argc, char **argv)`; `argv` holds the arguments given after
//! `--` on the `twz-vmm run` command line (with the program name first) and ends with a null
//! pointer; `main`'s return value is the exit status.
//!
//! The headers are in `guest-runtime/include` (what they offer is documented there). This crate
//! links the C half (`c/`: printf, string, stdlib, stdio), the math functions (from the `libm`
//! crate) and, through the runtime, the heap, exit, environment and clocks (`twz_rt::cabi`).
//!
//! Link order matters for static archives: C code in a crate that depends on this one may call
//! everything here, and the C half here calls into `twz_rt`, which the linker sees later.
#![no_std]

#[cfg(test)]
extern crate std;

#[cfg(feature = "guest")]
mod math;
#[cfg(test)]
mod tests;

pub use twz_rt;

use alloc::vec::Vec;
use core::ffi::{c_char, c_int};

extern crate alloc;

/// The C program's `main`.
pub type CMain = unsafe extern "C" fn(c_int, *mut *mut c_char) -> c_int;

/// Calls a C `main` with the run's arguments as a null-terminated `argv` and returns its status.
///
/// Each string comes straight from the argument area, which the runtime checked holds it whole
/// and NUL-terminated; unreadable entries are passed as empty strings so `argc` stays the count
/// the user gave.
pub fn run_c_main(main: CMain) -> i32 {
    let args = twz_rt::args();
    let mut argv: Vec<*mut c_char> = (0..args.len())
        .map(|i| match args.get(i) {
            Some(s) => s.as_ptr().cast_mut().cast(),
            None => c"".as_ptr().cast_mut(),
        })
        .collect();
    let argc = argv.len() as c_int;
    argv.push(core::ptr::null_mut());
    // SAFETY: `argv` holds `argc` pointers to NUL-terminated strings that live for the whole run,
    // then a null pointer, as C's `main` expects; the vector outlives the call.
    unsafe { main(argc, argv.as_mut_ptr()) }
}

/// Declares that this guest's program is C: the runtime calls the C `main(argc, argv)` and its
/// return value becomes the exit status.
#[macro_export]
macro_rules! c_main {
    () => {
        extern "C" {
            fn main(argc: core::ffi::c_int, argv: *mut *mut core::ffi::c_char) -> core::ffi::c_int;
        }

        fn __twz_c_main() -> i32 {
            $crate::run_c_main(main)
        }

        $crate::twz_rt::entry!(__twz_c_main);
    };
}
