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
    /// Create an object: name at `args[0]` (`args[1]` bytes, UTF-8, at most
    /// [`crate::fot::MAX_NAME_LEN`]; length 0 = unnamed), the new 16-byte ID is written to
    /// `args[2]`. Returns 0; `-EEXIST` if the name is bound, `-EINVAL` for a bad name.
    pub const OBJ_CREATE: u64 = 8;
    /// Look up a name: name at `args[0]` (`args[1]` bytes); the bound 16-byte ID is written to
    /// `args[2]`. Returns 0; `-ENOENT` if the name is unbound.
    pub const OBJ_LOOKUP: u64 = 9;
    /// Bind a name to an existing object: name at `args[0]` (`args[1]` bytes), 16-byte ID at
    /// `args[2]`. Returns 0; `-EEXIST` if bound, `-ENOENT` if there is no such object.
    pub const OBJ_BIND: u64 = 10;
    /// Map the object whose 16-byte ID is at `args[0]` with rights `args[1]`
    /// ([`crate::fot::perms`]: `READ`, or `READ | WRITE`) into a slot of the object window
    /// ([`crate::memmap::slot_addr`]). Mapping a mapped object again returns the same slot (a write
    /// request on a read-only mapping remaps it writable). When every slot of the run's budget is
    /// in use, the least recently mapped one is evicted, except slot `args[2] - 1` when `args[2]`
    /// is not 0 (the slot the caller is reading a pointer from; `-ENOMEM` if no other slot can
    /// go). Returns `slot | (evicted + 1) << 32`,
    /// where `evicted + 1` is 0 when nothing was evicted: a runtime that caches slot addresses must
    /// then forget the evicted slot. `-ENOENT` if there is no such object.
    pub const OBJ_MAP: u64 = 11;
    /// Unmap slot `args[0]`. Returns 0; `-EINVAL` if it is not mapped.
    pub const OBJ_UNMAP: u64 = 12;
    /// Make `args[2]` bytes at offset `args[1]` of the object in slot `args[0]` durable.
    /// Returns 0; `-EINVAL` for an unmapped slot or a range beyond the object.
    pub const OBJ_FLUSH: u64 = 13;
    /// Remove the binding of the name at `args[0]` (`args[1]` bytes); the object stays. Returns
    /// 0; `-ENOENT` if the name is unbound, `-EACCES` without the right to write the object it
    /// names (removing a name redirects whoever follows it).
    pub const OBJ_UNBIND: u64 = 14;
    /// Delete the object whose 16-byte ID is at `args[0]` from the store, with every name bound
    /// to it (unmapping it from this guest first). Returns 0; `-ENOENT` if there is no such
    /// object, `-EACCES` without the right to write it, `-EBUSY` while another running guest
    /// has it open.
    pub const OBJ_DELETE: u64 = 15;
    /// Copy why this vCPU's most recent refused call was refused (UTF-8 text, for example
    /// "capability expired at ...") to `args[0]` (at most `args[1]` bytes). Returns the text's
    /// full length (0 when no call has been refused).
    pub const ERR_REASON: u64 = 16;
    /// Have the host allocate the file space behind `args[2]` bytes at offset `args[1]` of the
    /// writable object in slot `args[0]` before the guest first stores there, so that a full
    /// filesystem is an error the guest can handle (`-ENOSPC`) rather than a page the host
    /// cannot back. Returns 0 (also where the filesystem cannot allocate ahead); `-EINVAL` for
    /// a range outside the object or a slot without a writable object.
    pub const OBJ_RESERVE: u64 = 17;
    /// Make every range of an array of `args[1]` [`crate::ring::FlushRange`]s at `args[0]`
    /// durable behind one fence (at most [`crate::ring::FLUSH_MANY_MAX`] ranges): ring
    /// `FLUSH_MANY` as a call. The vCPU's own thread syncs, so a guest that waits for the fence
    /// anyway saves the hand-offs to and from the VMM's flush thread. Returns 0; `-EINVAL` for
    /// a slot without an object, a range beyond the object or too many ranges, `-EFAULT` for an
    /// array the guest cannot read.
    pub const OBJ_FLUSH_MANY: u64 = 18;
}

/// Length in bytes of an object ID as host calls read and write it.
pub const ID_LEN: u64 = 16;

/// Bits of an `OBJ_MAP` result.
pub mod map_result {
    /// The slot mapped.
    pub const fn slot(ret: u64) -> u64 {
        ret & 0xFFFF_FFFF
    }
    /// The slot evicted to make room, if any.
    pub const fn evicted(ret: u64) -> Option<u64> {
        match ret >> 32 {
            0 => None,
            n => Some(n - 1),
        }
    }
    /// Encodes a result (for the VMM).
    pub const fn encode(slot: u64, evicted: Option<u64>) -> u64 {
        let e = match evicted {
            Some(e) => e + 1,
            None => 0,
        };
        slot | e << 32
    }
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
    /// Argument list too long (more ranges than one request takes).
    pub const E2BIG: i64 = 7;
    /// Try again.
    pub const EAGAIN: i64 = 11;
    /// Busy (an operation of the same kind is outstanding, or another guest holds it).
    pub const EBUSY: i64 = 16;
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
    /// The peer closed the connection (a send could not finish).
    pub const EPIPE: i64 = 32;
    /// Name too long.
    pub const ENAMETOOLONG: i64 = 36;
    /// Unknown call number.
    pub const ENOSYS: i64 = 38;
    /// The connection was reset by the peer.
    pub const ECONNRESET: i64 = 104;
    /// Timed out.
    pub const ETIMEDOUT: i64 = 110;
    /// Cancelled (a receive outstanding on a connection being closed).
    pub const ECANCELED: i64 = 125;
}
