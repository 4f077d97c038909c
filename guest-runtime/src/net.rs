//! The stream device: TCP connections the VMM accepts for the guest (`twz-vmm run --listen ADDR`),
//! driven over the asynchronous ring (`abi::ring::op::NET_*`).
//!
//! Like io_uring, every call queues one operation and returns at once; its completion comes back
//! later, carrying the caller's `tag`, from [`wait`]. Receives and sends name guest buffers that
//! the VMM fills or reads while the operation is outstanding, so they are `unsafe`: the buffer
//! must stay valid and untouched until the completion has been returned by [`wait`].
//!
//! ```ignore
//! use twz_rt::net::{self, Event, Op};
//! let mut buf = [0u8; 4096];
//! net::accept(0)?;
//! let mut events = [Event::default(); 16];
//! loop {
//!     for e in &events[..net::wait(&mut events, None)?] {
//!         match e.op {
//!             // SAFETY: `buf` outlives the receive (this sketch serves one client).
//!             Op::Accept if e.result >= 0 => unsafe { net::recv(e.conn, buf.as_mut_ptr(), buf.len(), 0)? },
//!             Op::Recv if e.result > 0 => { /* ... */ }
//!             _ => {}
//!         }
//!     }
//! }
//! ```

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use abi::ring::{op, Cqe};

use crate::errno::Errno;

/// A connection number (`0..`, reused after [`close`] completes).
pub type Conn = i32;

/// Which operation a completion belongs to (the values of `abi::ring::op`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Op {
    /// [`accept`]: `result` is the new connection (also in `conn`).
    #[default]
    Accept = op::NET_ACCEPT as i32,
    /// [`recv`]: `result` is the byte count, 0 at end of stream.
    Recv = op::NET_RECV as i32,
    /// [`send`]: `result` is the byte count.
    Send = op::NET_SEND as i32,
    /// [`close`]: `result` is 0.
    Close = op::NET_CLOSE as i32,
}

/// One completion; the same layout as `twz_net_event` in `twz.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The tag given when the operation was queued.
    pub tag: u64,
    /// Per operation (see [`Op`]); a negated errno on failure.
    pub result: i64,
    /// The operation.
    pub op: Op,
    /// The connection (for an accept: the new one, or -1 on failure).
    pub conn: Conn,
}

const _: () = assert!(core::mem::size_of::<Event>() == 24);

impl Event {
    /// The result as a `Result` (an errno on failure).
    pub fn ok(&self) -> Result<u64, Errno> {
        Errno::result(self.result)
    }
}

/// `user_data` bit of the runtime's stream-device submissions; the low 32 bits index
/// [`NetBook`]'s table.
pub(crate) const NET_TAG: u64 = 1 << 61;

/// An operation waiting for its completion.
#[derive(Clone, Copy, Debug)]
struct Pending {
    tag: u64,
    op: Op,
    conn: Conn,
}

/// The runtime's bookkeeping of outstanding stream operations and of completions not yet handed
/// to [`wait`]. Owned by the ring's user (`io`), which routes completions here.
#[derive(Debug)]
pub(crate) struct NetBook {
    pending: Vec<Option<Pending>>,
    free: Vec<u32>,
    events: VecDeque<Event>,
    outstanding: usize,
}

impl NetBook {
    pub(crate) const fn new() -> Self {
        NetBook {
            pending: Vec::new(),
            free: Vec::new(),
            events: VecDeque::new(),
            outstanding: 0,
        }
    }

    /// Records an operation about to be submitted; returns its `user_data`.
    pub(crate) fn register(&mut self, tag: u64, op: Op, conn: Conn) -> u64 {
        let p = Some(Pending { tag, op, conn });
        let index = match self.free.pop() {
            Some(i) => {
                self.pending[i as usize] = p;
                i
            }
            None => {
                self.pending.push(p);
                (self.pending.len() - 1) as u32
            }
        };
        self.outstanding += 1;
        NET_TAG | u64::from(index)
    }

    /// Forgets an operation that could not be submitted after all.
    pub(crate) fn unregister(&mut self, user_data: u64) {
        self.take(user_data);
    }

    fn take(&mut self, user_data: u64) -> Option<Pending> {
        let index = (user_data & 0xffff_ffff) as u32;
        let p = self.pending.get_mut(index as usize)?.take()?;
        self.free.push(index);
        self.outstanding -= 1;
        Some(p)
    }

    /// Turns the completion of a registered operation into an [`Event`] for [`wait`]; unknown
    /// `user_data` (which a correct VMM never sends) is ignored.
    pub(crate) fn complete(&mut self, cqe: &Cqe) {
        let Some(p) = self.take(cqe.user_data) else {
            return;
        };
        let conn = match p.op {
            Op::Accept if cqe.result >= 0 => Conn::try_from(cqe.result).unwrap_or(-1),
            Op::Accept => -1,
            _ => p.conn,
        };
        self.events.push_back(Event {
            tag: p.tag,
            result: cqe.result,
            op: p.op,
            conn,
        });
    }

    /// Moves up to `out.len()` completed events to `out`; returns how many.
    pub(crate) fn pop_into(&mut self, out: &mut [Event]) -> usize {
        let mut n = 0;
        while n < out.len() {
            match self.events.pop_front() {
                Some(e) => {
                    out[n] = e;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// True when completed events wait to be returned.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Operations submitted and not completed.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding
    }
}

/// True when the run has a stream device (`twz-vmm run --listen ADDR`).
pub fn listening() -> bool {
    crate::boot::info().flags & abi::boot::flags::NET_LISTEN != 0
}

/// Queues an accept of the next client connection; its completion's `result` (and `conn`) is
/// the connection number. `Err(EBADF)` at once when the run has no `--listen`.
pub fn accept(tag: u64) -> Result<(), Errno> {
    if !listening() {
        return Err(Errno::EBADF);
    }
    // SAFETY: an accept names no guest memory.
    unsafe { crate::io::submit_net(op::NET_ACCEPT, Op::Accept, -1, [0; 6], tag) }
}

/// Queues a receive of up to `len` bytes into `buf` on `conn`: completes with the count once at
/// least one byte arrived, 0 when the client closed its side, or `-ECONNRESET`; `-EBUSY` if a
/// receive is already outstanding on `conn`. The VMM reads a connection only while a receive is
/// outstanding on it, so not receiving pushes back on the client.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes, and neither read nor written by the program,
/// until this operation's completion has been returned by [`wait`].
pub unsafe fn recv(conn: Conn, buf: *mut u8, len: usize, tag: u64) -> Result<(), Errno> {
    let args = [conn_arg(conn), buf as u64, len as u64, 0, 0, 0];
    // SAFETY: forwarded caller guarantee.
    unsafe { crate::io::submit_net(op::NET_RECV, Op::Recv, conn, args, tag) }
}

/// Queues a send of `len` bytes from `buf` on `conn`, in order with its earlier sends: completes
/// with `len` once all are in the host's socket, or `-EPIPE` / `-ECONNRESET`.
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes and not written by the program until this
/// operation's completion has been returned by [`wait`].
pub unsafe fn send(conn: Conn, buf: *const u8, len: usize, tag: u64) -> Result<(), Errno> {
    let args = [conn_arg(conn), buf as u64, len as u64, 0, 0, 0];
    // SAFETY: forwarded caller guarantee.
    unsafe { crate::io::submit_net(op::NET_SEND, Op::Send, conn, args, tag) }
}

/// Queues a close of `conn`: its outstanding sends finish first, an outstanding receive
/// completes with `-ECANCELED`, then this completes with 0 and the number may be reused.
pub fn close(conn: Conn, tag: u64) -> Result<(), Errno> {
    let args = [conn_arg(conn), 0, 0, 0, 0, 0];
    // SAFETY: a close names no guest memory.
    unsafe { crate::io::submit_net(op::NET_CLOSE, Op::Close, conn, args, tag) }
}

/// Waits up to `timeout_ns` nanoseconds (`None`: no limit, `Some(0)`: just look) for completions
/// and moves up to `events.len()` of them to `events`; returns how many (0 on timeout, or at once
/// when no operation is outstanding). Spins briefly on the completion queue before it blocks in
/// the VMM, so a busy server exits the VM only when it has nothing to do.
pub fn wait(events: &mut [Event], timeout_ns: Option<u64>) -> Result<usize, Errno> {
    if events.is_empty() {
        return Err(Errno::EINVAL);
    }
    crate::io::wait_net(events, timeout_ns)
}

/// A connection number as the VMM reads it: a negative number becomes one no connection has.
fn conn_arg(conn: Conn) -> u64 {
    u64::try_from(conn).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cqe(user_data: u64, result: i64) -> Cqe {
        Cqe { user_data, result }
    }

    #[test]
    fn completions_become_events_with_tags_and_connections() {
        let mut b = NetBook::new();
        let a = b.register(10, Op::Accept, -1);
        let r = b.register(11, Op::Recv, 4);
        let f = b.register(12, Op::Accept, -1);
        assert_eq!(b.outstanding(), 3);
        b.complete(&cqe(r, 5));
        b.complete(&cqe(a, 7));
        b.complete(&cqe(f, -9));
        b.complete(&cqe(NET_TAG | 99, 1));
        assert_eq!(b.outstanding(), 0);
        let mut out = [Event::default(); 2];
        assert_eq!(b.pop_into(&mut out), 2);
        assert_eq!(
            out[0],
            Event {
                tag: 11,
                result: 5,
                op: Op::Recv,
                conn: 4
            }
        );
        assert_eq!(
            out[1],
            Event {
                tag: 10,
                result: 7,
                op: Op::Accept,
                conn: 7
            }
        );
        assert!(b.has_events());
        assert_eq!(b.pop_into(&mut out), 1);
        assert_eq!(out[0].conn, -1, "a failed accept names no connection");
        assert_eq!(out[0].ok(), Err(Errno(9)));
        assert!(!b.has_events());
    }

    #[test]
    fn table_slots_are_reused() {
        let mut b = NetBook::new();
        let first = b.register(1, Op::Send, 0);
        b.complete(&cqe(first, 3));
        let mut out = [Event::default(); 4];
        assert_eq!(b.pop_into(&mut out), 1);
        let second = b.register(2, Op::Send, 0);
        assert_eq!(first, second);
        b.unregister(second);
        assert_eq!(b.outstanding(), 0);
        b.complete(&cqe(second, 3));
        assert!(!b.has_events(), "an unregistered operation yields nothing");
    }

    #[test]
    fn negative_connections_name_none() {
        assert_eq!(conn_arg(-1), u64::MAX);
        assert_eq!(conn_arg(3), 3);
    }
}
