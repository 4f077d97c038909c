//! Sends malformed host-call and ring requests and checks each is refused with the expected
//! error while the VMM keeps serving. Prints one line per case, then
//! `hostile: all N cases rejected`; exits 0 only if every case behaved.
#![no_std]
#![no_main]

use abi::hostcall::{errno, fd, nr, HostCall};
use abi::memmap::{BOOT_INFO_ADDR, DOORBELL_SYNC, SYS_BASE};
use abi::ring::op;
use twz_rt::abi;
use twz_rt::{hostcall, io, println};

twz_rt::entry!(main);

/// A value no host call returns by itself, to tell "left alone" from "answered".
const SENTINEL: i64 = 0x5eed_5eed;

/// Tallies cases and prints one line each.
struct Cases {
    run: u32,
    failed: u32,
}

impl Cases {
    /// Checks that a raw result is one of the negated errnos in `want`.
    fn expect(&mut self, what: &str, got: i64, want: &[i64]) {
        let ok = want.iter().any(|e| got == -e);
        self.report(what, ok, &DisplayRet(got));
    }

    fn report(&mut self, what: &str, ok: bool, detail: &dyn core::fmt::Display) {
        self.run += 1;
        if ok {
            println!("hostile: {what}: ok ({detail})");
        } else {
            self.failed += 1;
            println!("hostile: {what}: FAILED ({detail})");
        }
    }
}

/// Shows a raw result as `-EFAULT` or `success N`.
struct DisplayRet(i64);

impl core::fmt::Display for DisplayRet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match twz_rt::Errno::result(self.0) {
            Ok(v) => write!(f, "success {v}"),
            Err(e) => write!(f, "-{e}"),
        }
    }
}

/// A synchronous call with arbitrary arguments.
fn call(nr: u64, args: [u64; 6]) -> i64 {
    // SAFETY: each case names memory outside what the program owns (or nothing) on purpose; a
    // correct VMM refuses them without touching guest memory. Where a case names memory of ours,
    // it is `scratch`, which nothing else uses.
    unsafe { hostcall::raw(nr, args) }
}

/// A ring submission with arbitrary arguments, waited for.
fn ring(op: u32, args: [u64; 6]) -> i64 {
    // SAFETY: as for `call`: the named memory is never ours to lose.
    match unsafe { io::call_raw(op, 0, args) } {
        Ok(r) => r,
        Err(e) => -e.0,
    }
}

/// A ring NOP submission with reserved flags set.
fn ring_flags(op: u32, flags: u32) -> i64 {
    // SAFETY: NOP names no memory.
    match unsafe { io::call_raw(op, flags, [0; 6]) } {
        Ok(r) => r,
        Err(e) => -e.0,
    }
}

/// A 64-byte-aligned scratch area for the block-address cases.
#[repr(C, align(64))]
struct Scratch([i64; 32]);

fn main() -> i32 {
    let b = twz_rt::boot::info();
    let ram_end = b.mem_size;
    let buf = [b'x'; 16];
    let ok_buf = buf.as_ptr() as u64;
    let mut c = Cases { run: 0, failed: 0 };
    use errno::{EBADF, EFAULT, EINVAL, ENOSYS};

    // Synchronous WRITE with bad buffers.
    c.expect(
        "write from the null page",
        call(nr::WRITE, [fd::STDOUT, 0x10, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "write from beyond RAM",
        call(nr::WRITE, [fd::STDOUT, ram_end, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "write straddling the end of RAM",
        call(nr::WRITE, [fd::STDOUT, ram_end - 8, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "write with a huge length",
        call(nr::WRITE, [fd::STDOUT, ok_buf, 1 << 40, 0, 0, 0]),
        &[EINVAL, EFAULT],
    );
    let wrap = u64::MAX - ok_buf + 17;
    c.expect(
        "write whose length wraps",
        call(nr::WRITE, [fd::STDOUT, ok_buf, wrap, 0, 0, 0]),
        &[EINVAL, EFAULT],
    );
    c.expect(
        "write whose end wraps past 2^64",
        call(nr::WRITE, [fd::STDOUT, u64::MAX - 7, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "write from the doorbell page",
        call(nr::WRITE, [fd::STDOUT, DOORBELL_SYNC, 8, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "write to an unknown stream",
        call(nr::WRITE, [7, ok_buf, 16, 0, 0, 0]),
        &[EBADF],
    );
    c.expect(
        "write to stdin",
        call(nr::WRITE, [fd::STDIN, ok_buf, 16, 0, 0, 0]),
        &[EBADF],
    );

    // READ and RANDOM into memory the guest may not have written.
    c.expect(
        "read into the null page",
        call(nr::READ, [fd::STDIN, 0x10, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "read into beyond RAM",
        call(nr::READ, [fd::STDIN, ram_end, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "read from stdout",
        call(nr::READ, [fd::STDOUT, ok_buf, 16, 0, 0, 0]),
        &[EBADF],
    );
    c.expect(
        "random into the null page",
        call(nr::RANDOM, [0x10, 16, 0, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "random into beyond RAM",
        call(nr::RANDOM, [ram_end, 16, 0, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "random whose length wraps",
        call(nr::RANDOM, [ok_buf, u64::MAX - ok_buf + 17, 0, 0, 0, 0]),
        &[EINVAL, EFAULT],
    );

    // Unknown call numbers.
    c.expect("call number 0", call(0, [0; 6]), &[ENOSYS]);
    c.expect(
        "call number 0xdead_beef",
        call(0xdead_beef, [0; 6]),
        &[ENOSYS],
    );
    c.expect("call number u64::MAX", call(u64::MAX, [0; 6]), &[ENOSYS]);

    // Request blocks the VMM cannot use: nothing may be performed and the guest keeps running.
    let mut scratch = Scratch([SENTINEL; 32]);
    let base = scratch.0.as_mut_ptr() as u64;
    block_case(&mut c, "block outside RAM", ram_end + 0x1000, None);
    block_case(&mut c, "block in the null page", 0x40, None);
    // A misaligned block holding a well-formed NOP: the VMM must not perform it.
    let off = 1; // one i64 in: base + 8, not 64-byte aligned
    scratch.0[off] = nr::NOP as i64;
    scratch.0[off + 1] = 0x1234; // NOP's argument, which a performed call would return
    block_case(
        &mut c,
        "misaligned block",
        base + 8,
        Some(&scratch.0[off + 7]),
    );

    // Ring submissions with bad buffers or operations.
    c.expect(
        "ring write from the null page",
        ring(op::WRITE, [fd::STDOUT, 0x10, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "ring write from beyond RAM",
        ring(op::WRITE, [fd::STDOUT, ram_end, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "ring write with a huge length",
        ring(op::WRITE, [fd::STDOUT, ok_buf, 1 << 40, 0, 0, 0]),
        &[EINVAL, EFAULT],
    );
    c.expect(
        "ring write whose length wraps",
        ring(op::WRITE, [fd::STDOUT, ok_buf, wrap, 0, 0, 0]),
        &[EINVAL, EFAULT],
    );
    c.expect(
        "ring write to an unknown stream",
        ring(op::WRITE, [9, ok_buf, 16, 0, 0, 0]),
        &[EBADF],
    );
    c.expect("ring unknown operation", ring(0x77, [0; 6]), &[ENOSYS]);
    c.expect(
        "ring reserved flags set",
        ring_flags(op::NOP, 0x8000),
        &[EINVAL],
    );

    // Writes into supervisor-only memory (page tables): must be refused.
    c.expect(
        "random into the system area",
        call(nr::RANDOM, [SYS_BASE, 16, 0, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "read into the system area",
        call(nr::READ, [fd::STDIN, SYS_BASE, 16, 0, 0, 0]),
        &[EFAULT],
    );
    c.expect(
        "random into the boot info page",
        call(nr::RANDOM, [BOOT_INFO_ADDR, 16, 0, 0, 0, 0]),
        &[EFAULT],
    );

    // The VMM is still serving well-formed requests on both paths.
    let sync = hostcall::nop(77);
    c.report(
        "sync nop still answered",
        sync == Ok(77),
        &DebugAsDisplay(&sync),
    );
    let ring = io::nop(78);
    c.report(
        "ring nop still answered",
        ring == Ok(78),
        &DebugAsDisplay(&ring),
    );
    let overflows = io::ring_overflows();
    c.report("no completion dropped", overflows == 0, &overflows);

    if c.failed == 0 {
        println!("hostile: all {} cases rejected", c.run);
        0
    } else {
        println!("hostile: {} of {} cases misbehaved", c.failed, c.run);
        1
    }
}

/// Rings the doorbell with a bad block address. Passes when the guest keeps running, our own
/// block is left alone, and (for a misaligned block we wrote) its request was not performed: its
/// `ret` slot holds the sentinel or an error.
fn block_case(c: &mut Cases, what: &str, addr: u64, ret_slot: Option<&i64>) {
    let own = twz_rt::boot::info().hostcall_block as *mut HostCall;
    // SAFETY: our own block, at the address the VMM gave; no call is in progress.
    unsafe { core::ptr::write_volatile(&raw mut (*own).ret, SENTINEL) };
    // SAFETY: a correct VMM performs nothing for these addresses; see `call`.
    unsafe { hostcall::ring_sync_doorbell(addr) };
    // SAFETY: as above.
    let own_ret = unsafe { core::ptr::read_volatile(&raw const (*own).ret) };
    let slot = ret_slot.map(|r| {
        // SAFETY: a reference into `scratch`, which the VMM may have written behind the compiler's back.
        unsafe { core::ptr::read_volatile(r) }
    });
    let slot_ok = match slot {
        None => true,
        Some(v) => v == SENTINEL || v == -errno::EINVAL || v == -errno::EFAULT,
    };
    let ok = own_ret == SENTINEL && slot_ok;
    match slot {
        Some(v) if v != SENTINEL => c.report(what, ok, &DisplayRet(v)),
        _ if own_ret != SENTINEL => c.report(what, ok, &DisplayRet(own_ret)),
        _ => c.report(what, ok, &"ignored"),
    }
}

/// Shows a value through its `Debug` form.
struct DebugAsDisplay<'a, T>(&'a T);

impl<T: core::fmt::Debug> core::fmt::Display for DebugAsDisplay<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
