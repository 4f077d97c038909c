//! The key-value store unikernel, in C on twz.h: its `main` is in `kvs.c`.
#![no_std]
#![no_main]

twz_libc::c_main!();
