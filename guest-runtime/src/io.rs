//! The runtime's use of the ring: console streams and request/response calls, sharing one
//! completion stream. Whoever waits reaps every completion and routes console ones to their
//! queue, so no completion is left behind.

use abi::hostcall::fd;
use abi::ring::{op, Cqe, Sqe};

use crate::console::ByteQueue;
use crate::errno::Errno;
use crate::global::Global;
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
}

static IO: Global<Io> = Global::new(Io {
    ring: Ring::absent(),
    out: ByteQueue::new(),
    err: ByteQueue::new(),
    next_user_data: 0,
});

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
    fn queue(&mut self, s: Stream) -> &mut dyn QueueOps {
        match s {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        }
    }

    /// Routes a completion: console writes free their buffer space.
    fn complete(&mut self, cqe: Cqe) {
        if cqe.user_data & CONSOLE_TAG != 0 {
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
        let hz = crate::boot::info().tsc_hz;
        let spin_until = time::rdtsc().saturating_add(time::ns_to_ticks(SPIN_NS, hz));
        while self.ring.ready() == 0 {
            if time::rdtsc() > spin_until {
                // Block in the VMM; errors only mean "look again".
                let _ = crate::hostcall::ring_wait(BLOCK_NS);
            } else {
                core::hint::spin_loop();
            }
        }
        while let Some(c) = self.ring.reap() {
            self.complete(c);
            on_cqe(&c);
        }
        true
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
                self.ring.doorbell();
                self.wait(|_| {});
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
        while io.wait(|_| {}) {}
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
    let mut io = IO.try_lock().ok_or(Errno::EAGAIN)?;
    // SAFETY: NOP names no memory.
    unsafe { io.submit(op::NOP, 0, [x, 0, 0, 0, 0, 0]) }.map(|_| ())
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
        while !self.ring.has_room() {
            self.ring.doorbell();
            self.wait(|_| {});
        }
        let user_data = self.next_user_data & !(CONSOLE_TAG | STDERR_BIT);
        self.next_user_data = self.next_user_data.wrapping_add(1);
        let sqe = Sqe {
            op,
            flags,
            user_data,
            args,
        };
        // SAFETY: forwarded caller guarantee.
        unsafe { self.ring.push(sqe) };
        self.ring.doorbell();
        Ok(user_data)
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

/// Completions the VMM dropped because the queue was full (should stay 0).
pub fn ring_overflows() -> u32 {
    IO.try_lock().map(|io| io.ring.overflows()).unwrap_or(0)
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

    /// Plays the VMM on another thread: performs each submission in order (WRITE appends the
    /// named bytes to its stream's log, NOP echoes `args[0]`) and posts its completion. Returns
    /// the stdout and stderr logs once `stop` is set and the queue is empty.
    fn fake_vmm(base: u64, stop: Arc<AtomicBool>) -> JoinHandle<(Vec<u8>, Vec<u8>)> {
        std::thread::spawn(move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
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
                    op::NOP => sqe.args[0] as i64,
                    _ => -ENOSYS,
                };
                word(base, header::SQ_HEAD).store(head.wrapping_add(1), Ordering::Release);
                let tail = word(base, header::CQ_TAIL).load(Ordering::Relaxed);
                let unreaped =
                    tail.wrapping_sub(word(base, header::CQ_HEAD).load(Ordering::Acquire));
                assert!(
                    unreaped < CQ_ENTRIES,
                    "the guest let the completion queue fill"
                );
                let cqe = Cqe {
                    user_data: sqe.user_data,
                    result,
                };
                // SAFETY: a completion slot inside the ring area that the guest has reaped.
                unsafe { core::ptr::write_volatile(cqe_addr(base, tail) as *mut Cqe, cqe) };
                word(base, header::CQ_TAIL).store(tail.wrapping_add(1), Ordering::Release);
            }
        })
    }

    #[test]
    fn console_output_and_calls_share_the_ring() {
        let (base, bell) = fake_ring();
        let mut io = Box::new(Io {
            // SAFETY: the leaked area and doorbell word live forever; only this Io uses them.
            ring: unsafe { Ring::attach_with_doorbell(base, bell) },
            out: ByteQueue::new(),
            err: ByteQueue::new(),
            next_user_data: 0,
        });
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
    fn without_a_ring_calls_fail_cleanly() {
        let mut io = Box::new(Io {
            ring: Ring::absent(),
            out: ByteQueue::new(),
            err: ByteQueue::new(),
            next_user_data: 0,
        });
        // SAFETY: NOP names no memory.
        assert_eq!(unsafe { io.submit(op::NOP, 0, [0; 6]) }, Err(Errno::ENOSYS));
        assert!(!io.wait(|_| {}), "nothing to wait for");
    }
}
