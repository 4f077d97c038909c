//! The key-value store unikernel, in C on twz.h: its `main` is in `kvs.c`.
#![no_std]
#![no_main]

twz_libc::c_main!();

/// The run's `--durability` (0 none, 1 commit, 2 group), for the C store: fresh records are not
/// logged, so it flushes them itself when commits must be durable.
#[no_mangle]
pub extern "C" fn kvs_durability() -> core::ffi::c_int {
    twz_libc::twz_rt::boot::info().durability as core::ffi::c_int
}
