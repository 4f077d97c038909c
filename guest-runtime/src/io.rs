//! The runtime's use of the ring: console streams, request/response calls and the stream
//! device, sharing one completion stream. Whoever waits reaps every completion and routes it:
//! console ones free their buffer space, stream-device ones are queued for
//! [`crate::net::wait`], so no completion is left behind.

use abi::hostcall::fd;
use abi::ring::{op, Cqe, Sqe};

use crate::console::ByteQueue;
use crate::errno::Errno;
use crate::global::Global;
use crate::net::{Conn, Event, NetBook, Op, NET_TAG};
use crate::ring::Ring;
use crate::time;

/// Console bytes buffered for standard output.
const STDOUT_BUF: usize = 16 << 10;
/// Console bytes buffered for standard error.
const STDERR_BUF: usize = 4 << 10;
/// `user_data` bit marking a console write; bit 62 selects stderr; the low 32 bits are its length.
const CONSOLE_TAG: u64 = 1 << 63;
const STDERR_BIT: u64 = 1 << 62;
/// How long a waiter spins on the completion index before blocking in the VMM (RING_WAIT, one
/// exit, during which the VMM completes pending work itself). An idle machine answers within
/// about 7 us; on a loaded one the VMM's event thread may not get a CPU while we spin, and a
/// short spin bounds the loss (measured here: 20 us spin, ~48 us worst median; 100 us, ~140 us).
const SPIN_NS: u64 = 20_000;
/// How long submissions may sit unconsumed while a waiter spins before it stops spinning and
/// lets `RING_WAIT` consume them on the vCPU's thread: the event loop said it polls, yet it is
/// not running (typically it shares the CPU with this vCPU, which spinning would only starve).
const UNCONSUMED_NS: u64 = 3_000;
/// One wait in this many spins the full [`SPIN_NS`] whatever the budget says, so a waiter
/// notices when spinning pays again.
const PROBE_EVERY: u32 = 32;
/// How long one blocking wait lasts before looking again (guards against a lost wake-up).
const BLOCK_NS: u64 = 10_000_000;

/// An output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

struct Io {
    ring: Ring,
    out: ByteQueue<STDOUT_BUF>,
    err: ByteQueue<STDERR_BUF>,
    next_user_data: u64,
    net: NetBook,
    spin: SpinBudget,
}

/// How long a waiter spins before it blocks, adapted to what spinning achieved. Spinning pays
/// when the VMM's event loop runs on another CPU (a completion arrives within microseconds, no
/// exit); when it shares this vCPU's CPU, spinning only keeps it from running, so the budget
/// halves each time spinning did not pay and returns to the full window when it did (and on a
/// probe every [`PROBE_EVERY`] waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpinBudget {
    ns: u64,
    waits: u32,
}

impl SpinBudget {
    const fn new() -> Self {
        SpinBudget {
            ns: SPIN_NS,
            waits: 0,
        }
    }

    /// The spin for the next wait.
    fn next(&mut self) -> u64 {
        self.waits = self.waits.wrapping_add(1);
        if self.waits.is_multiple_of(PROBE_EVERY) {
            SPIN_NS
        } else {
            self.ns
        }
    }

    /// Records whether the last wait's spin ended with a completion (no block).
    fn paid(&mut self, yes: bool) {
        self.ns = if yes { SPIN_NS } else { self.ns / 2 };
    }
}

static IO: Global<Io> = Global::new(Io::new(Ring::absent()));

/// Attaches the runtime to the ring; called once at start.
///
/// # Safety
/// See [`Ring::attach`].
#[cfg_attr(not(feature = "guest"), allow(dead_code))]
pub(crate) unsafe fn init(ring_base: u64) {
    if let Some(mut io) = IO.try_lock() {
        // SAFETY: forwarded caller guarantee.
        io.ring = unsafe { Ring::attach(ring_base) };
    }
}

impl Io {
    const fn new(ring: Ring) -> Io {
        Io {
            ring,
            out: ByteQueue::new(),
            err: ByteQueue::new(),
            next_user_data: 0,
            net: NetBook::new(),
            spin: SpinBudget::new(),
        }
    }

    fn queue(&mut self, s: Stream) -> &mut dyn QueueOps {
        match s {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        }
    }

    /// Routes a completion: console writes free their buffer space, stream-device operations
    /// become events for [`crate::net::wait`].
    fn complete(&mut self, cqe: Cqe) {
        if cqe.user_data & NET_TAG != 0 && cqe.user_data & CONSOLE_TAG == 0 {
            self.net.complete(&cqe);
        } else if cqe.user_data & CONSOLE_TAG != 0 {
            let len = (cqe.user_data & 0xffff_ffff) as usize;
            let s = if cqe.user_data & STDERR_BIT != 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            self.queue(s).reclaim(len);
        }
    }

    /// Reaps all completions available now (console space comes back; results of requests
    /// nobody waits for, such as [`post_nop`]'s, are dropped).
    fn reap_ready(&mut self) {
        while let Some(c) = self.ring.reap() {
            self.complete(c);
        }
    }

    /// Waits until at least one completion arrives, and reaps it and any others. Returns `false`
    /// when nothing is outstanding (so waiting would never end).
    fn wait(&mut self, mut on_cqe: impl FnMut(&Cqe)) -> bool {
        if self.ring.unreaped() == 0 {
            return false;
        }
        self.await_ready(None);
        while let Some(c) = self.ring.reap() {
            self.complete(c);
            on_cqe(&c);
        }
        true
    }

    /// Waits until a completion is ready to reap or the TSC passes `deadline` (`None`: no
    /// limit): spins (up to [`SPIN_NS`], see [`SpinBudget`]), then blocks in the VMM
    /// ([`BLOCK_NS`] at a time). Returns whether one is ready.
    fn await_ready(&mut self, deadline: Option<u64>) -> bool {
        if self.ring.ready() > 0 {
            return true;
        }
        let hz = crate::boot::info().tsc_hz;
        let start = time::rdtsc();
        let mut spin_until = start.saturating_add(time::ns_to_ticks(self.spin.next(), hz));
        let stalled_after = start.saturating_add(time::ns_to_ticks(UNCONSUMED_NS, hz));
        let mut blocked = false;
        loop {
            if self.ring.ready() > 0 {
                self.spin.paid(!blocked);
                return true;
            }
            let now = time::rdtsc();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            if now > stalled_after && self.ring.unconsumed() > 0 {
                spin_until = now;
            }
            if now >= spin_until {
                let slice = deadline.map_or(BLOCK_NS, |d| {
                    time::ticks_to_ns(d - now, hz).clamp(1, BLOCK_NS)
                });
                // Block in the VMM; errors only mean "look again".
                let _ = crate::hostcall::ring_wait(slice);
                blocked = true;
            } else {
                core::hint::spin_loop();
            }
        }
    }

    /// Waits until the VMM has consumed enough submissions for one more to fit. The VMM consumes
    /// every submission promptly (completions that take long are kept aside), so this is short;
    /// `RING_WAIT` with a 1 ns timeout makes the vCPU's thread consume them if the event loop is
    /// slow to.
    fn await_room(&mut self) {
        let hz = crate::boot::info().tsc_hz;
        let spin_until = time::rdtsc().saturating_add(time::ns_to_ticks(SPIN_NS, hz));
        while !self.ring.has_room() {
            self.ring.doorbell();
            self.reap_ready();
            if time::rdtsc() > spin_until {
                let _ = crate::hostcall::ring_wait(1);
            } else {
                core::hint::spin_loop();
            }
        }
        self.reap_ready();
    }

    /// Submits everything unsent in stream `s`, waiting for ring room as needed.
    fn flush(&mut self, s: Stream) {
        let mut submitted = false;
        loop {
            let (addr, len) = {
                let chunk = self.queue(s).next_unsent();
                (chunk.as_ptr() as u64, chunk.len())
            };
            if len == 0 {
                break;
            }
            let stream = match s {
                Stream::Stdout => fd::STDOUT,
                Stream::Stderr => fd::STDERR,
            };
            let tag = CONSOLE_TAG | if s == Stream::Stderr { STDERR_BIT } else { 0 };
            let sqe = Sqe {
                op: op::WRITE,
                flags: 0,
                user_data: tag | len as u64,
                args: [stream, addr, len as u64, 0, 0, 0],
            };
            // SAFETY: the bytes live in the static queue and, being sent, are neither moved nor
            // overwritten until their completion reclaims them.
            if unsafe { self.ring.push(sqe) } {
                self.queue(s).mark_sent(len);
                submitted = true;
            } else if !self.ring.is_present() {
                // No ring (before boot): fall back to a synchronous write.
                let q = self.queue(s);
                let _ = crate::hostcall::write(stream, q.next_unsent());
                q.mark_sent(len);
                q.reclaim(len);
            } else {
                self.await_room();
            }
        }
        if submitted {
            self.ring.doorbell();
        }
    }

    /// Buffers `data` for stream `s`, flushing to make room; flushes on newline if `line` is set.
    fn write(&mut self, s: Stream, mut data: &[u8], line: bool) {
        while !data.is_empty() {
            let n = self.queue(s).push(data);
            data = &data[n..];
            if !data.is_empty() {
                self.flush(s);
                if self.queue(s).free() == 0 && !self.wait(|_| {}) {
                    // Nothing in flight yet no room: cannot happen, but never spin forever.
                    break;
                }
            }
        }
        if line && self.queue(s).unsent() > 0 {
            self.flush(s);
        }
        self.reap_ready();
    }
}

/// The operations `Io` needs from either console queue, whatever its size.
trait QueueOps {
    fn push(&mut self, data: &[u8]) -> usize;
    fn next_unsent(&self) -> &[u8];
    fn mark_sent(&mut self, n: usize);
    fn reclaim(&mut self, n: usize);
    fn free(&self) -> usize;
    fn unsent(&self) -> usize;
}

impl<const N: usize> QueueOps for ByteQueue<N> {
    fn push(&mut self, data: &[u8]) -> usize {
        ByteQueue::push(self, data)
    }
    fn next_unsent(&self) -> &[u8] {
        ByteQueue::next_unsent(self)
    }
    fn mark_sent(&mut self, n: usize) {
        ByteQueue::mark_sent(self, n)
    }
    fn reclaim(&mut self, n: usize) {
        ByteQueue::reclaim(self, n)
    }
    fn free(&self) -> usize {
        ByteQueue::free(self)
    }
    fn unsent(&self) -> usize {
        ByteQueue::unsent(self)
    }
}

/// Writes bytes to a console stream. Standard output is flushed at each newline (and when its
/// buffer fills); standard error at the end of every call.
pub fn write(s: Stream, data: &[u8]) {
    if let Some(mut io) = IO.try_lock() {
        let line = s == Stream::Stderr || data.contains(&b'\n');
        io.write(s, data, line);
    }
}

/// Sends everything buffered on both streams (without waiting for completions).
pub fn flush() {
    if let Some(mut io) = IO.try_lock() {
        io.flush(Stream::Stdout);
        io.flush(Stream::Stderr);
    }
}

/// Sends everything buffered and waits until the VMM has written it.
pub fn sync() {
    if let Some(mut io) = IO.try_lock() {
        io.flush(Stream::Stdout);
        io.flush(Stream::Stderr);
        while io.console_in_flight() && io.wait(|_| {}) {}
    }
}

/// A ring NOP round trip (submit, doorbell, wait for the completion): returns `x`.
pub fn nop(x: u64) -> Result<u64, Errno> {
    // SAFETY: NOP names no memory.
    Errno::result(unsafe { call_raw(op::NOP, 0, [x, 0, 0, 0, 0, 0]) }?)
}

/// Submits a ring NOP and rings the doorbell without waiting for its completion (reaped by a
/// later wait, for example [`sync`]): the cost a guest pays for one asynchronous request.
pub fn post_nop(x: u64) -> Result<(), Errno> {
    post(op::NOP, [x, 0, 0, 0, 0, 0])
}

/// Submits a ring operation that names no guest memory and rings the doorbell, without waiting
/// for its completion (reaped by a later wait and dropped: for hints such as `POPULATE`).
/// Completions already posted are reaped first, so a guest that never waits does not leave
/// them piling up in the VMM.
pub(crate) fn post(op: u32, args: [u64; 6]) -> Result<(), Errno> {
    let mut io = IO.try_lock().ok_or(Errno::EAGAIN)?;
    io.reap_ready();
    // SAFETY: callers pass operations whose arguments name no guest memory.
    unsafe { io.submit(op, 0, args) }.map(|_| ())
}

/// Submits one ring operation and waits for its completion; returns its raw (possibly negative)
/// result. `Err` only when there is no ring or it is in use further up the stack.
///
/// # Safety
/// Memory the operation writes (named by `args`) must be valid for the VMM to write; memory it
/// reads must be readable. Both stay borrowed until this returns, which is after the completion.
pub unsafe fn call_raw(op: u32, flags: u32, args: [u64; 6]) -> Result<i64, Errno> {
    let mut io = IO.try_lock().ok_or(Errno::EAGAIN)?;
    // SAFETY: forwarded caller guarantee; we wait for the completion before returning.
    let user_data = unsafe { io.submit(op, flags, args) }?;
    Ok(io.wait_for(user_data))
}

impl Io {
    /// Submits one operation (waiting for ring room) and rings the doorbell. Returns the
    /// submission's `user_data`, unique among the runtime's outstanding requests.
    ///
    /// # Safety
    /// Memory named by `args` must stay valid for the operation until its completion is reaped.
    unsafe fn submit(&mut self, op: u32, flags: u32, args: [u64; 6]) -> Result<u64, Errno> {
        if !self.ring.is_present() {
            return Err(Errno::ENOSYS);
        }
        let user_data = self.next_user_data & !(CONSOLE_TAG | STDERR_BIT | NET_TAG);
        self.next_user_data = self.next_user_data.wrapping_add(1);
        // SAFETY: forwarded caller guarantee.
        unsafe { self.submit_as(op, flags, args, user_data) }?;
        Ok(user_data)
    }

    /// Submits one operation with the given `user_data` (waiting for ring room) and rings the
    /// doorbell.
    ///
    /// # Safety
    /// As for [`Io::submit`].
    unsafe fn submit_as(
        &mut self,
        op: u32,
        flags: u32,
        args: [u64; 6],
        user_data: u64,
    ) -> Result<(), Errno> {
        if !self.ring.is_present() {
            return Err(Errno::ENOSYS);
        }
        if !self.ring.has_room() {
            self.await_room();
        }
        let sqe = Sqe {
            op,
            flags,
            user_data,
            args,
        };
        // SAFETY: forwarded caller guarantee.
        unsafe { self.ring.push(sqe) };
        self.ring.doorbell();
        Ok(())
    }

    /// True while console writes are submitted and not completed.
    fn console_in_flight(&self) -> bool {
        self.out.free() + self.out.unsent() < STDOUT_BUF
            || self.err.free() + self.err.unsent() < STDERR_BUF
    }

    /// Waits for the completion of submission `user_data` and returns its result (`-EIO` if it
    /// was never completed, which a correct VMM does not do).
    fn wait_for(&mut self, user_data: u64) -> i64 {
        let mut result = None;
        while result.is_none() {
            let waited = self.wait(|c| {
                if c.user_data == user_data {
                    result = Some(c.result);
                }
            });
            if !waited {
                break;
            }
        }
        result.unwrap_or(-Errno::EIO.0)
    }
}

/// Completions that waited in the VMM's backlog because the completion queue was full.
pub fn ring_overflows() -> u32 {
    IO.try_lock().map(|io| io.ring.overflows()).unwrap_or(0)
}

/// Queues a stream-device operation (see [`crate::net`]) whose completion becomes an [`Event`]
/// with `tag`, `kind` and `conn`.
///
/// # Safety
/// Memory named by `args` must stay valid for the operation until its event is returned by
/// [`wait_net`].
pub(crate) unsafe fn submit_net(
    op: u32,
    kind: Op,
    conn: Conn,
    args: [u64; 6],
    tag: u64,
) -> Result<(), Errno> {
    let mut io = IO.try_lock().ok_or(Errno::EAGAIN)?;
    // SAFETY: forwarded caller guarantee.
    unsafe { io.submit_net(op, kind, conn, args, tag) }
}

/// Moves completed stream-device events to `out`, waiting up to `timeout_ns` (`None`: no limit)
/// for the first; see [`crate::net::wait`].
pub(crate) fn wait_net(out: &mut [Event], timeout_ns: Option<u64>) -> Result<usize, Errno> {
    let mut io = IO.try_lock().ok_or(Errno::EAGAIN)?;
    Ok(io.wait_net(out, timeout_ns))
}

impl Io {
    /// See [`submit_net`].
    ///
    /// # Safety
    /// As for [`submit_net`].
    unsafe fn submit_net(
        &mut self,
        op: u32,
        kind: Op,
        conn: Conn,
        args: [u64; 6],
        tag: u64,
    ) -> Result<(), Errno> {
        let user_data = self.net.register(tag, kind, conn);
        // SAFETY: forwarded caller guarantee.
        let r = unsafe { self.submit_as(op, 0, args, user_data) };
        if r.is_err() {
            self.net.unregister(user_data);
        }
        r
    }

    /// See [`wait_net`].
    fn wait_net(&mut self, out: &mut [Event], timeout_ns: Option<u64>) -> usize {
        let hz = crate::boot::info().tsc_hz;
        let deadline = timeout_ns.map(|ns| time::rdtsc().saturating_add(time::ns_to_ticks(ns, hz)));
        loop {
            self.reap_ready();
            if self.net.has_events() {
                return self.net.pop_into(out);
            }
            if self.net.outstanding() == 0 || timeout_ns == Some(0) {
                return 0;
            }
            if !self.await_ready(deadline) {
                return 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::hostcall::errno::{EBADF, ENOSYS};
    use abi::memmap::RING_SIZE;
    use abi::ring::{header, CQ_ENTRIES};
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::boxed::Box;
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::vec::Vec;

    use crate::ring::{cqe_addr, sqe_addr};

    fn word(base: u64, off: u64) -> &'static AtomicU32 {
        // SAFETY: `base` is a leaked, ring-sized, 8-byte aligned area (see `fake_ring`).
        unsafe { &*((base + off) as *const AtomicU32) }
    }

    /// A leaked ring area and doorbell word, as the VMM would set them up.
    fn fake_ring() -> (u64, u64) {
        let area: &'static mut [u64] =
            Box::leak(std::vec![0u64; RING_SIZE as usize / 8].into_boxed_slice());
        let bell: &'static mut u64 = Box::leak(Box::new(0));
        (area.as_mut_ptr() as u64, bell as *mut u64 as u64)
    }

    /// `NOP` argument that makes the fake VMM complete its held receives first.
    const RELEASE_RECVS: u64 = u64::MAX;

    /// Posts one completion, waiting (as the VMM's backlog does) while the queue is full.
    fn post(base: u64, user_data: u64, result: i64) {
        let tail = word(base, header::CQ_TAIL).load(Ordering::Relaxed);
        while tail.wrapping_sub(word(base, header::CQ_HEAD).load(Ordering::Acquire)) >= CQ_ENTRIES {
            std::thread::yield_now();
        }
        let cqe = Cqe { user_data, result };
        // SAFETY: a completion slot inside the ring area that the guest has reaped.
        unsafe { core::ptr::write_volatile(cqe_addr(base, tail) as *mut Cqe, cqe) };
        word(base, header::CQ_TAIL).store(tail.wrapping_add(1), Ordering::Release);
    }

    /// Plays the VMM on another thread: performs each submission in order (WRITE appends the
    /// named bytes to its stream's log, NOP echoes `args[0]`, NET_RECV is held until a NOP of
    /// [`RELEASE_RECVS`] completes them newest first with `args[0]` as the count) and posts its
    /// completion. Returns the stdout and stderr logs once `stop` is set and the queue is empty.
    fn fake_vmm(base: u64, stop: Arc<AtomicBool>) -> JoinHandle<(Vec<u8>, Vec<u8>)> {
        std::thread::spawn(move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut held: Vec<Sqe> = Vec::new();
            loop {
                let head = word(base, header::SQ_HEAD).load(Ordering::Relaxed);
                if head == word(base, header::SQ_TAIL).load(Ordering::Acquire) {
                    if stop.load(Ordering::Acquire) {
                        return (out, err);
                    }
                    std::thread::yield_now();
                    continue;
                }
                // SAFETY: a published submission slot inside the ring area.
                let sqe = unsafe { core::ptr::read_volatile(sqe_addr(base, head) as *const Sqe) };
                let result = match sqe.op {
                    op::WRITE => {
                        // SAFETY: the runtime names its own console buffer, valid until completion.
                        let bytes = unsafe {
                            core::slice::from_raw_parts(
                                sqe.args[1] as *const u8,
                                sqe.args[2] as usize,
                            )
                        };
                        match sqe.args[0] {
                            fd::STDOUT => out.extend_from_slice(bytes),
                            fd::STDERR => err.extend_from_slice(bytes),
                            _ => {}
                        }
                        if sqe.args[0] == fd::STDOUT || sqe.args[0] == fd::STDERR {
                            bytes.len() as i64
                        } else {
                            -EBADF
                        }
                    }
                    op::NOP => {
                        if sqe.args[0] == RELEASE_RECVS {
                            while let Some(r) = held.pop() {
                                post(base, r.user_data, r.args[0] as i64);
                            }
                        }
                        sqe.args[0] as i64
                    }
                    op::NET_RECV => {
                        held.push(sqe);
                        word(base, header::SQ_HEAD).store(head.wrapping_add(1), Ordering::Release);
                        continue;
                    }
                    _ => -ENOSYS,
                };
                word(base, header::SQ_HEAD).store(head.wrapping_add(1), Ordering::Release);
                post(base, sqe.user_data, result);
            }
        })
    }

    #[test]
    fn console_output_and_calls_share_the_ring() {
        let (base, bell) = fake_ring();
        // SAFETY: the leaked area and doorbell word live forever; only this Io uses them.
        let mut io = Box::new(Io::new(unsafe { Ring::attach_with_doorbell(base, bell) }));
        let stop = Arc::new(AtomicBool::new(false));
        let vmm = fake_vmm(base, stop.clone());

        let mut expect = Vec::new();
        for i in 0..2000usize {
            let line = std::format!("line {i} {}\n", "x".repeat(i % 97));
            io.write(Stream::Stdout, line.as_bytes(), true);
            expect.extend_from_slice(line.as_bytes());
            if i % 100 == 0 {
                // A request/response call in the middle of console traffic gets its own answer.
                // SAFETY: NOP names no memory.
                let ud = unsafe { io.submit(op::NOP, 0, [i as u64 + 7, 0, 0, 0, 0, 0]) };
                assert_eq!(io.wait_for(ud.expect("ring present")), i as i64 + 7);
            }
        }
        io.write(Stream::Stderr, b"to stderr", true);
        // One write larger than the whole buffer, without a newline: sent as room frees up.
        let big = std::vec![b'z'; STDOUT_BUF * 3 + 5];
        io.write(Stream::Stdout, &big, false);
        expect.extend_from_slice(&big);
        io.flush(Stream::Stdout);
        io.flush(Stream::Stderr);
        while io.wait(|_| {}) {}

        assert_eq!(io.out.free(), STDOUT_BUF, "all stdout space reclaimed");
        assert_eq!(io.err.free(), STDERR_BUF, "all stderr space reclaimed");
        assert_eq!(io.ring.unreaped(), 0);
        stop.store(true, Ordering::Release);
        let (out, err) = vmm.join().expect("the fake VMM saw no overflow");
        assert!(
            out == expect,
            "stdout differs ({} vs {} bytes)",
            out.len(),
            expect.len()
        );
        assert_eq!(err, b"to stderr");
    }

    #[test]
    fn stream_completions_outnumbering_both_queues_all_reach_wait() {
        let (base, bell) = fake_ring();
        // SAFETY: the leaked area and doorbell word live forever; only this Io uses them.
        let mut io = Box::new(Io::new(unsafe { Ring::attach_with_doorbell(base, bell) }));
        let stop = Arc::new(AtomicBool::new(false));
        let vmm = fake_vmm(base, stop.clone());
        let n = (CQ_ENTRIES + abi::ring::SQ_ENTRIES + 44) as usize;
        for i in 0..n {
            let args = [i as u64, 0, 0, 0, 0, 0];
            // SAFETY: the fake VMM touches no memory for a receive.
            let r =
                unsafe { io.submit_net(op::NET_RECV, Op::Recv, i as Conn, args, 1000 + i as u64) };
            assert_eq!(r, Ok(()), "receive {i} queued while {i} are outstanding");
        }
        assert_eq!(io.net.outstanding(), n);
        let mut events = std::vec![Event::default(); 64];
        assert_eq!(
            io.wait_net(&mut events, Some(0)),
            0,
            "nothing completed yet"
        );
        // SAFETY: NOP names no memory.
        let ud = unsafe { io.submit(op::NOP, 0, [RELEASE_RECVS, 0, 0, 0, 0, 0]) };
        assert_eq!(io.wait_for(ud.expect("ring present")), -1);
        let mut seen = std::vec![false; n];
        let mut got = 0;
        while got < n {
            let k = io.wait_net(&mut events, Some(1_000_000_000));
            assert!(k > 0, "events stopped after {got}");
            for e in &events[..k] {
                assert_eq!(e.op, Op::Recv);
                assert_eq!(
                    e.tag,
                    1000 + e.result as u64,
                    "tag travels with the operation"
                );
                assert_eq!(e.conn as i64, e.result);
                seen[e.conn as usize] = true;
            }
            got += k;
        }
        assert!(seen.iter().all(|s| *s), "every receive completed once");
        assert_eq!(
            io.wait_net(&mut events, None),
            0,
            "nothing outstanding: no wait"
        );
        stop.store(true, Ordering::Release);
        vmm.join().expect("fake VMM");
    }

    #[test]
    fn spinning_backs_off_when_it_does_not_pay_and_probes_now_and_then() {
        let mut b = SpinBudget::new();
        assert_eq!(b.next(), SPIN_NS);
        for _ in 0..20 {
            b.paid(false);
        }
        let spins: Vec<u64> = (0..PROBE_EVERY).map(|_| b.next()).collect();
        assert!(spins.contains(&0), "spinning stopped: {spins:?}");
        assert!(spins.contains(&SPIN_NS), "a probe spins the full window");
        b.paid(true);
        assert_eq!(b.next(), SPIN_NS, "paid again: the full window is back");
    }

    #[test]
    fn without_a_ring_calls_fail_cleanly() {
        let mut io = Box::new(Io::new(Ring::absent()));
        // SAFETY: NOP names no memory.
        assert_eq!(unsafe { io.submit(op::NOP, 0, [0; 6]) }, Err(Errno::ENOSYS));
        assert!(!io.wait(|_| {}), "nothing to wait for");
    }
}
