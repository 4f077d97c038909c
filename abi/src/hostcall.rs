//! Synchronous host calls.
//!
//! The guest fills a [`HostCall`] block (its own vCPU's block, see
//! [`crate::boot::BootInfo::hostcall_block`], or any 64-byte-aligned block in guest RAM), then
//! performs one 8-byte store of the block's address to [`crate::memmap::DOORBELL_SYNC`]. That
//! store exits to the VMM (about 25 us here), which validates every argument against guest memory,
//! performs the call, writes `ret`, and resumes the guest after the store. Calls are rare by
//! design: console output and flushes go through the asynchronous ring instead.
//!
//! `ret` is non-negative on success and a negated [`errno`] value on failure.

/// A request block, 64 bytes, 64-byte aligned.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCall {
    /// The call number ([`nr`]).
    pub nr: u64,
    /// Arguments; meaning per call.
    pub args: [u64; 6],
    /// Result, written by the VMM.
    pub ret: i64,
}
crate::assert_size!(HostCall, 64);

/// Call numbers and their arguments.
pub mod nr {
    /// End the run: `args[0]` = exit status (low 8 bits become the process exit status).
    /// Pending ring submissions are completed first. Does not return.
    pub const EXIT: u64 = 1;
    /// Write `args[2]` bytes at guest address `args[1]` to stream `args[0]`
    /// ([`super::fd::STDOUT`] or [`super::fd::STDERR`]). Returns bytes written.
    pub const WRITE: u64 = 2;
    /// Read up to `args[2]` bytes from stream `args[0]` ([`super::fd::STDIN`]) into guest address
    /// `args[1]`, blocking until at least one byte or end of input. Returns bytes read, 0 at EOF.
    pub const READ: u64 = 3;
    /// Fill `args[1]` bytes at guest address `args[0]` with random bytes from the host.
    /// Returns bytes written (at most 4096 per call).
    pub const RANDOM: u64 = 4;
    /// Report a panic and end the run with status 101: message at `args[0]` (`args[1]` bytes),
    /// source file at `args[2]` (`args[3]` bytes), `args[4]` = line, `args[5]` = column.
    /// The VMM prints it with a backtrace of the guest. Does not return.
    pub const PANIC: u64 = 5;
    /// Block until the async ring has a completion to reap, or `args[0]` nanoseconds pass
    /// (0 = no timeout). Returns the number of completions available.
    pub const RING_WAIT: u64 = 6;
    /// Does nothing and returns `args[0]`; for measuring the round trip.
    pub const NOP: u64 = 7;
}

/// Stream numbers for `WRITE`/`READ`.
pub mod fd {
    /// Standard input of the `twz-vmm` process.
    pub const STDIN: u64 = 0;
    /// Standard output.
    pub const STDOUT: u64 = 1;
    /// Standard error.
    pub const STDERR: u64 = 2;
}

/// Error numbers (returned negated), with Linux's values so C code can use them as-is.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i64 = 1;
    /// No such object or name.
    pub const ENOENT: i64 = 2;
    /// I/O error on the host.
    pub const EIO: i64 = 5;
    /// Bad stream number.
    pub const EBADF: i64 = 9;
    /// Try again.
    pub const EAGAIN: i64 = 11;
    /// Out of memory or of slots.
    pub const ENOMEM: i64 = 12;
    /// Permission denied (no capability grants this).
    pub const EACCES: i64 = 13;
    /// An address or length outside guest memory.
    pub const EFAULT: i64 = 14;
    /// Already exists.
    pub const EEXIST: i64 = 17;
    /// Invalid argument.
    pub const EINVAL: i64 = 22;
    /// No space left (object or store full).
    pub const ENOSPC: i64 = 28;
    /// Name too long.
    pub const ENAMETOOLONG: i64 = 36;
    /// Unknown call number.
    pub const ENOSYS: i64 = 38;
    /// Timed out.
    pub const ETIMEDOUT: i64 = 110;
}
