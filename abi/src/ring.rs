//! The asynchronous ring: shared-memory submission and completion queues.
//!
//! ```text
//!  RING_ADDR + 0x0000  RingHeader (64 B)
//!  RING_ADDR + 0x0100  SQ: SQ_ENTRIES x Sqe (64 B each)
//!  RING_ADDR + 0x2100  CQ: CQ_ENTRIES x Cqe (16 B each)
//! ```
//! Indices are free-running `u32` counters; an entry lives at `index % ENTRIES`.
//! The guest produces submissions: it writes `sq[sq_tail % SQ_ENTRIES]`, then stores
//! `sq_tail + 1` with release ordering, then writes anything to
//! [`crate::memmap::DOORBELL_RING`] (an ioeventfd: ~2.4 us, the vCPU keeps running). The VMM's
//! event loop consumes submissions (advancing `sq_head`) in order and produces one completion
//! each (`cq[cq_tail % CQ_ENTRIES]`, then `cq_tail + 1` with release ordering). The guest consumes
//! completions by advancing `cq_head`.
//!
//! Flow control: the guest may submit while `sq_tail - sq_head < SQ_ENTRIES`. Most operations
//! complete as they are consumed; the stream-device operations (`NET_*`) and the flushes
//! (`FLUSH`, `FLUSH_MANY`, synced by a VMM worker while the ring goes on) may complete much
//! later and in any order, so any number of them may be outstanding. The VMM posts a completion only
//! while `cq_tail - cq_head < CQ_ENTRIES`; beyond that it keeps completions in order in a backlog
//! of its own and posts them as the guest reaps (counting each in `cq_overflow`), so no
//! completion is ever lost. Buffers named by a submission must stay valid until its completion.
//! A malformed submission completes with a negated errno; it never stops the VMM.

/// Number of submission entries.
pub const SQ_ENTRIES: u32 = 128;
/// Number of completion entries.
pub const CQ_ENTRIES: u32 = 256;
/// Offset of the submission queue from the ring's base.
pub const SQ_OFFSET: u64 = 0x100;
/// Offset of the completion queue from the ring's base.
pub const CQ_OFFSET: u64 = SQ_OFFSET + SQ_ENTRIES as u64 * 64;

/// The ring's control words. Each index is written by one side only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingHeader {
    /// Next submission the VMM will consume (written by the VMM).
    pub sq_head: u32,
    /// Next free submission slot (written by the guest).
    pub sq_tail: u32,
    /// Next completion the guest will reap (written by the guest).
    pub cq_head: u32,
    /// Next free completion slot (written by the VMM).
    pub cq_tail: u32,
    /// Completions that had to wait in the VMM's backlog because the CQ was full (written by
    /// the VMM).
    pub cq_overflow: u32,
    /// Reserved, zero.
    pub _rsv: [u32; 11],
}
crate::assert_size!(RingHeader, 64);

/// Byte offsets of the header fields, for atomic access through guest memory.
pub mod header {
    /// [`super::RingHeader::sq_head`].
    pub const SQ_HEAD: u64 = 0;
    /// [`super::RingHeader::sq_tail`].
    pub const SQ_TAIL: u64 = 4;
    /// [`super::RingHeader::cq_head`].
    pub const CQ_HEAD: u64 = 8;
    /// [`super::RingHeader::cq_tail`].
    pub const CQ_TAIL: u64 = 12;
    /// [`super::RingHeader::cq_overflow`].
    pub const CQ_OVERFLOW: u64 = 16;
    /// `_rsv[0]`: ring flags written by the VMM ([`super::SQ_NEED_WAKEUP`]).
    pub const SQ_FLAGS: u64 = 20;
}

/// Bit of the `SQ_FLAGS` word: the VMM's event loop is asleep and needs the doorbell. While it
/// is clear the VMM is polling `sq_tail` and a guest may skip the doorbell (saving its ~2.4 us
/// or more). Protocol: the guest stores `sq_tail` (release), then a sequentially consistent
/// fence, then reads `SQ_FLAGS` and rings only if this bit is set; the VMM sets the bit, fences,
/// and re-checks `sq_tail` before it sleeps. A guest that always rings is also correct.
pub const SQ_NEED_WAKEUP: u32 = 1;

/// A submission.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    /// Operation ([`op`]).
    pub op: u32,
    /// Flags, reserved, zero.
    pub flags: u32,
    /// Echoed in the completion.
    pub user_data: u64,
    /// Arguments; meaning per operation.
    pub args: [u64; 6],
}
crate::assert_size!(Sqe, 64);

/// A completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    /// The submission's `user_data`.
    pub user_data: u64,
    /// Non-negative on success, a negated [`crate::hostcall::errno`] value on failure.
    pub result: i64,
}
crate::assert_size!(Cqe, 16);

/// Ring operations.
pub mod op {
    /// Completes with `args[0]`; for measuring the ring.
    pub const NOP: u32 = 0;
    /// Write `args[2]` bytes at guest address `args[1]` to stream `args[0]` (stdout/stderr).
    /// Completes with the number of bytes written.
    pub const WRITE: u32 = 1;
    /// Make `args[2]` bytes at offset `args[1]` of the object in slot `args[0]` durable (the
    /// asynchronous form of `hostcall::nr::OBJ_FLUSH`). Completes with 0 or a negated errno.
    pub const FLUSH: u32 = 2;
    /// Stream device (`twz-vmm run --listen ADDR`): take the next incoming TCP connection.
    /// Completes, once a client has connected, with its connection number (`0..`, reused after
    /// `NET_CLOSE`); `-EBADF` when the run has no `--listen`. Several may be outstanding; each
    /// takes one connection.
    pub const NET_ACCEPT: u32 = 3;
    /// Receive into `args[2]` bytes at guest address `args[1]` from connection `args[0]`.
    /// Completes once at least one byte has arrived, with the count; 0 when the peer has closed
    /// its side; `-ECONNRESET` when the connection broke; `-EBUSY` if a receive is already
    /// outstanding on it; `-EBADF` for an unknown connection. The VMM reads from a connection
    /// only while a receive is outstanding on it, so a guest that stops receiving pushes back on
    /// the client through TCP flow control.
    pub const NET_RECV: u32 = 4;
    /// Send `args[2]` bytes at guest address `args[1]` on connection `args[0]`. Completes, in
    /// order with the connection's earlier sends, when every byte has been handed to the host's
    /// socket, with the count; `-EPIPE` or `-ECONNRESET` when the peer went away first.
    pub const NET_SEND: u32 = 5;
    /// Close connection `args[0]`: its outstanding sends finish (or fail) first, an outstanding
    /// receive completes with `-ECANCELED`, then the socket is closed and this completes with 0.
    /// The connection number may then be reused by a later accept.
    pub const NET_CLOSE: u32 = 6;
    /// Make several ranges durable together: `args[1]` [`super::FlushRange`] entries at guest
    /// address `args[0]` (at most [`super::FLUSH_MANY_MAX`]). Completes with 0 once every range
    /// is durable, or with the first failure's negated errno. The VMM syncs each object once per
    /// batch (and batches concurrent requests), so one request per fence costs about one disk
    /// flush per object rather than one per range. May complete late and out of order (the
    /// array must stay valid until then).
    pub const FLUSH_MANY: u32 = 7;
    /// Get `args[2]` bytes at offset `args[1]` of the object in slot `args[0]` (mapped
    /// writable) ready for the guest's first stores: the VMM faults those pages in on a thread
    /// of its own, ahead of the guest, which then skips the host's part of a first touch
    /// (zeroing a page-cache page and reserving its blocks, most of the 10-30 us such a touch
    /// costs under PVM). A hint: completes with 0 at once, before the work is done; `-EINVAL`
    /// for a range outside the object or a slot that holds no writable object. The pages count
    /// as written, so the file's blocks for them get allocated: ask only for what the object is
    /// about to use.
    pub const POPULATE: u32 = 8;
}

/// One range of a [`op::FLUSH_MANY`] request: `len` bytes at `offset` of the object in `slot`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushRange {
    /// The object's slot.
    pub slot: u64,
    /// Byte offset inside the object.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}
crate::assert_size!(FlushRange, 24);

/// Most ranges one [`op::FLUSH_MANY`] request may name.
pub const FLUSH_MANY_MAX: u64 = 256;

const _: () = assert!(CQ_OFFSET + CQ_ENTRIES as u64 * 16 <= crate::memmap::RING_SIZE);
