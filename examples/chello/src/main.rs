//! A C program on the twz libc shim: its `main` is in `chello.c`.
#![no_std]
#![no_main]

twz_libc::c_main!();
