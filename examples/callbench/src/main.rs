//! Measures host-call round trips with the TSC and prints medians in nanoseconds:
//! a synchronous NOP (one VM exit) and an asynchronous ring NOP (submit, doorbell, completion).
//! Optional first argument: iterations (default 2000). Then prints the wall clock and 16 random
//! bytes.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use twz_rt::time::Instant;
use twz_rt::{print, println, Errno};

twz_rt::entry!(main);

/// Runs `op` `n` times and returns the median duration in ns.
fn median_ns(n: usize, mut op: impl FnMut(u64) -> Result<u64, Errno>) -> Result<u64, Errno> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        let r = op(i)?;
        samples.push(t.elapsed().as_nanos() as u64);
        if r != i {
            return Err(Errno::EIO);
        }
    }
    samples.sort_unstable();
    Ok(samples.get(samples.len() / 2).copied().unwrap_or(0))
}

fn main() -> Result<(), Errno> {
    let n = twz_rt::args()
        .get_str(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000usize)
        .max(1);
    // Warm up both paths (first touches, the VMM's event loop waking).
    median_ns(50, twz_rt::hostcall::nop)?;
    median_ns(50, twz_rt::io::nop)?;
    let sync = median_ns(n, twz_rt::hostcall::nop)?;
    let ring = median_ns(n, twz_rt::io::nop)?;
    let post = median_ns(n, |i| {
        if i % 64 == 0 {
            // Reap earlier completions outside the measured window's steady state.
            twz_rt::io::sync();
        }
        twz_rt::io::post_nop(i).map(|()| i)
    })?;
    twz_rt::io::sync();
    let hz = twz_rt::boot::info().tsc_hz;
    println!("callbench: {n} iterations, tsc {hz} Hz");
    println!("sync hostcall nop: median {sync} ns");
    println!("ring nop round trip: median {ring} ns");
    println!("ring nop submit + doorbell: median {post} ns");
    // The clock and random source, for checking from outside.
    println!("wall clock: {} ns since the epoch", twz_rt::time::wall_ns());
    let mut bytes = [0u8; 16];
    twz_rt::random(&mut bytes)?;
    print!("random:");
    for b in bytes {
        print!(" {b:02x}");
    }
    println!();
    Ok(())
}
