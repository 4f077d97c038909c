//! Synchronous host calls: fill the vCPU's request block, store its address to the doorbell.
//!
//! Each call exits to the VMM (about 25 us here), so the runtime uses them rarely: console output
//! goes through the asynchronous [`crate::ring`] instead.

use abi::hostcall::{nr, HostCall};
use abi::memmap::DOORBELL_SYNC;

use crate::errno::Errno;

/// Performs host call `nr` with `args` through the boot block and returns the raw `ret`.
///
/// # Safety
/// Any guest memory the call writes (named by `args`) must be valid for the VMM to write: this is
/// how memory the compiler does not know about gets modified.
pub unsafe fn raw(nr: u64, args: [u64; 6]) -> i64 {
    let block = crate::boot::info().hostcall_block as *mut HostCall;
    if block.is_null() {
        return -Errno::ENOSYS.0;
    }
    // SAFETY: the VMM gave us this block for exclusive use by this (single) vCPU; it is in guest RAM
    // and 64-byte aligned. Volatile keeps the stores ahead of the doorbell store below.
    unsafe {
        core::ptr::write_volatile(
            block,
            HostCall {
                nr,
                args,
                ret: -Errno::ENOSYS.0,
            },
        );
        ring_sync_doorbell(block as u64);
        core::ptr::read_volatile(&raw const (*block).ret)
    }
}

/// Stores `block_addr` to the synchronous doorbell: the VMM handles the request block there before
/// the store retires. Used by [`raw`], and by tests that hand the VMM bad block addresses.
///
/// # Safety
/// If `block_addr` names a valid request, the VMM performs it: see [`raw`].
pub unsafe fn ring_sync_doorbell(block_addr: u64) {
    // SAFETY: the doorbell page is mapped user-writable by the VMM and has no memory behind it: the
    // store exits to the VMM and has no other effect.
    unsafe {
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        core::ptr::write_volatile(DOORBELL_SYNC as *mut u64, block_addr);
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// Round trip that does nothing: returns `x`.
pub fn nop(x: u64) -> Result<u64, Errno> {
    // SAFETY: NOP touches no guest memory.
    Errno::result(unsafe { raw(nr::NOP, [x, 0, 0, 0, 0, 0]) })
}

/// Writes `buf` to stream `fd` synchronously (the console normally uses the ring).
pub fn write(fd: u64, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: WRITE only reads `buf`, which is valid for its length.
    let r = unsafe {
        raw(
            nr::WRITE,
            [fd, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )
    };
    Errno::result(r).map(|n| n as usize)
}

/// Reads into `buf` from stream `fd`, blocking until at least one byte or end of input (0).
pub fn read(fd: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: READ writes at most `buf.len()` bytes into `buf`, which we borrow mutably.
    let r = unsafe {
        raw(
            nr::READ,
            [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
        )
    };
    Errno::result(r).map(|n| n as usize)
}

/// Fills `buf` with random bytes from the host (one call per 4 KiB).
pub fn random(buf: &mut [u8]) -> Result<(), Errno> {
    for chunk in buf.chunks_mut(4096) {
        let mut done = 0;
        while done < chunk.len() {
            let rest = &mut chunk[done..];
            // SAFETY: RANDOM writes at most `rest.len()` bytes into `rest`, borrowed mutably.
            let r = unsafe {
                raw(
                    nr::RANDOM,
                    [rest.as_mut_ptr() as u64, rest.len() as u64, 0, 0, 0, 0],
                )
            };
            match Errno::result(r)? {
                0 => return Err(Errno::EIO),
                n => done += (n as usize).min(rest.len()),
            }
        }
    }
    Ok(())
}

/// Blocks until the ring has a completion to reap or `timeout_ns` pass (0: no timeout).
pub fn ring_wait(timeout_ns: u64) -> Result<u64, Errno> {
    // SAFETY: RING_WAIT touches no guest memory.
    Errno::result(unsafe { raw(nr::RING_WAIT, [timeout_ns, 0, 0, 0, 0, 0]) })
}

/// Ends the run with `code` (low 8 bits). Does not flush the console: see [`crate::exit`].
pub fn exit_now(code: i32) -> ! {
    // SAFETY: EXIT touches no guest memory.
    unsafe { raw(nr::EXIT, [code as u32 as u64, 0, 0, 0, 0, 0]) };
    stop()
}

/// Reports a panic (message, file, line, column); the VMM prints it with a backtrace and ends the
/// run with status 101.
pub fn panic(msg: &[u8], file: &[u8], line: u32, col: u32) -> ! {
    let args = [
        msg.as_ptr() as u64,
        msg.len() as u64,
        file.as_ptr() as u64,
        file.len() as u64,
        line as u64,
        col as u64,
    ];
    // SAFETY: PANIC only reads the two byte slices, valid for their lengths.
    unsafe { raw(nr::PANIC, args) };
    stop()
}

/// Where a call that must not return ends up if the VMM returned anyway: an invalid opcode ends
/// the run as a fault, with a backtrace that points here.
#[inline(never)]
fn stop() -> ! {
    loop {
        // SAFETY: `ud2` raises #UD, which the VMM reports; it touches no memory.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
}
