//! The asynchronous ring's consumer (`abi::ring`), run by the event loop when the guest rings
//! the doorbell and by the vCPU thread before it exits, answers a synchronous call or blocks in
//! `RING_WAIT`.
//!
//! Nothing the guest writes is trusted: the VMM keeps its own copies of `sq_head` and `cq_tail`
//! (what the guest stores there is ignored), a `sq_tail` further than `SQ_ENTRIES` ahead is
//! garbage and completes once with `-EINVAL` (the ring is resynchronised to it), and each drain
//! does at most `SQ_ENTRIES` submissions.
//!
//! Completions: most operations complete as they are consumed; the stream device's (`NET_*`,
//! handed to [`crate::net::Net`]) complete later, posted by the event loop; flushes (`FLUSH`,
//! `FLUSH_MANY`) are handed to the flush worker ([`crate::objects::flusher`]), which syncs
//! them off this lock, batched, and posts their completions itself (without a worker, as in
//! unit tests, they are synced inline). A completion that
//! does not fit in the CQ waits, in order, in a backlog (counted in `cq_overflow`) and is posted
//! as the guest reaps: at its next submission, its next `RING_WAIT`, or the event loop's next
//! activity. A thread blocked in `RING_WAIT` sleeps on the consumer's [`Waker`], not on its
//! lock, and is woken whenever a completion is posted.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use abi::hostcall::errno::{EBADF, EINVAL, EIO, ENOSYS};
use abi::hostcall::fd;
use abi::memmap::RING_ADDR;
use abi::ring::{header, op, CQ_ENTRIES, CQ_OFFSET, SQ_ENTRIES, SQ_OFFSET};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::hostcall::access::GuestAccess;
use crate::hostcall::console::Console;
use crate::hostcall::objects::read_flush_ranges;
use crate::net::{Completion, Guest, Net, NetStats};
use crate::objects::flusher::{sync_batch, FlushJob, Flusher, JournalSlot};

/// `user_data` of the completion posted for a garbage `sq_tail`.
pub const BAD_TAIL_USER_DATA: u64 = u64::MAX;

/// Counters the ring keeps for `--stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Submissions consumed.
    pub submissions: u64,
    /// Completions with an error (including garbage tails).
    pub errors: u64,
    /// Completions that waited in the backlog because the CQ was full.
    pub overflows: u64,
}

/// The VMM side of the ring.
#[derive(Debug, Default)]
pub struct RingConsumer {
    sq_head: u32,
    cq_tail: u32,
    /// Completions waiting for room in the CQ, oldest first.
    backlog: VecDeque<Completion>,
    stats: RingStats,
    /// The stream device (`None`: the run has no `--listen`).
    net: Option<Net>,
    /// Completions produced by the stream device, before they are posted.
    scratch: Vec<Completion>,
    /// Wakes a thread blocked in `RING_WAIT` when completions are posted.
    waker: Arc<Waker>,
    /// A completion was posted since the last wake-up.
    posted: bool,
    /// The flush worker, once started (`None`: flushes are synced inline).
    flusher: Option<Flusher>,
    /// What starting the worker needs: this consumer's owner and the guest's memory (set by
    /// [`RingConsumer::enable_flusher`]; the thread starts at the first flush).
    flusher_seed: Option<FlusherSeed>,
}

/// See [`RingConsumer::enable_flusher`].
#[derive(Debug)]
struct FlusherSeed {
    owner: Weak<Mutex<RingConsumer>>,
    mem: GuestMemoryMmap,
    journal: Option<Arc<JournalSlot>>,
}

/// Where a `RING_WAIT` sleeps until a completion is posted. It has a lock of its own, so the
/// sleeper never competes with the event loop for the consumer's lock to learn that it may go.
#[derive(Debug, Default)]
pub struct Waker {
    lock: Mutex<()>,
    cond: Condvar,
    waiting: AtomicBool,
}

impl Waker {
    /// Sleeps up to `timeout` unless `ready()` holds; returns early when woken. `ready` must
    /// read what the poster publishes before it calls [`Waker::wake`] (the CQ tail).
    pub fn wait(&self, ready: impl Fn() -> bool, timeout: Duration) {
        let guard = match self.lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !ready() {
            let _ = self.cond.wait_timeout(guard, timeout);
        }
        self.waiting.store(false, Ordering::SeqCst);
    }

    /// Wakes the sleeper, if there is one. Call after publishing.
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            // Taking the lock orders this after the sleeper's check: it is either still before
            // its `ready()` (and will see what was published) or already waiting.
            let _guard = self.lock.lock();
            self.cond.notify_all();
        }
    }
}

/// Everything a ring operation needs from the machine.
pub struct RingEnv<'a> {
    /// Guest RAM.
    pub mem: &'a GuestMemoryMmap,
    /// What the guest may name.
    pub access: &'a GuestAccess,
    /// Where output goes.
    pub console: &'a Console,
    /// The object mapper, for `FLUSH` (`None`: the run has no store).
    pub objects: Option<&'a crate::objects::Objects>,
}

fn load_u32(mem: &GuestMemoryMmap, off: u64) -> Option<u32> {
    mem.load::<u32>(GuestAddress(RING_ADDR + off), Ordering::Acquire)
        .ok()
}

fn store_u32(mem: &GuestMemoryMmap, off: u64, v: u32) {
    // The ring area is inside RAM (MIN_MEM_SIZE > RING_ADDR + RING_SIZE): cannot fail.
    let _ = mem.store(v, GuestAddress(RING_ADDR + off), Ordering::Release);
}

fn is_net(opcode: u32) -> bool {
    matches!(
        opcode,
        op::NET_ACCEPT | op::NET_RECV | op::NET_SEND | op::NET_CLOSE
    )
}

impl RingConsumer {
    /// A consumer with the stream device `net` (`None`: `NET_*` operations get `-EBADF`).
    pub fn new(net: Option<Net>) -> Self {
        RingConsumer {
            net,
            ..Default::default()
        }
    }

    /// Lets `ring` (whose guest memory is `mem`) sync flushes on a worker thread, started at
    /// the first flush: from then on flushes complete late, posted by the worker. Without it
    /// (or if the thread cannot be started) they are synced inline, under this lock. (The
    /// guest runtime's own fences are waited for, so it makes them with host call
    /// `OBJ_FLUSH_MANY` instead, on the vCPU's thread.)
    pub fn enable_flusher(
        ring: &Arc<Mutex<RingConsumer>>,
        mem: GuestMemoryMmap,
        journal: Option<Arc<JournalSlot>>,
    ) {
        if let Ok(mut r) = ring.lock() {
            r.flusher_seed = Some(FlusherSeed {
                owner: Arc::downgrade(ring),
                mem,
                journal,
            });
        }
    }

    /// The flush worker, started now if it may be and is not yet.
    fn flusher(&mut self) -> Option<&Flusher> {
        if self.flusher.is_none() {
            let seed = self.flusher_seed.take()?;
            let FlusherSeed {
                owner,
                mem,
                journal,
            } = seed;
            let spawned = Flusher::spawn(journal, move |done| {
                let Some(ring) = owner.upgrade() else {
                    return;
                };
                let Ok(mut r) = ring.lock() else {
                    return;
                };
                r.post_backlog(&mem);
                for (user_data, result) in done {
                    r.complete(&mem, user_data, result);
                }
                r.wake();
            });
            self.flusher = spawned.ok();
        }
        self.flusher.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// The stream device's counters, if the run has one.
    pub fn net_stats(&self) -> Option<NetStats> {
        self.net.as_ref().map(Net::stats)
    }

    /// The stream device's epoll fd, for the event loop to watch.
    pub fn net_fd(&self) -> Option<RawFd> {
        self.net.as_ref().map(Net::fd)
    }

    /// Closes the stream device's sockets (the guest has ended; `mem` is its memory, still
    /// mapped, for sends it queued last).
    pub fn close_net(&mut self, mem: &GuestMemoryMmap) {
        if let Some(mut n) = self.net.take() {
            n.shutdown(mem);
        }
    }

    /// Takes the flush worker out (none is started afterwards): dropping it lets it finish the
    /// requests it was given and joins it, which must happen without this consumer's lock
    /// held, since the worker takes that lock to post its completions.
    pub fn take_flusher(&mut self) -> Option<Flusher> {
        self.flusher_seed = None;
        self.flusher.take()
    }

    /// Where a `RING_WAIT` sleeps (see [`Waker`]).
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Consumes and performs pending submissions; returns how many were consumed.
    pub fn drain(&mut self, env: &RingEnv<'_>) -> u32 {
        self.post_backlog(env.mem);
        let consumed = self.consume(env);
        self.wake();
        consumed
    }

    fn consume(&mut self, env: &RingEnv<'_>) -> u32 {
        let Some(tail) = load_u32(env.mem, header::SQ_TAIL) else {
            return 0;
        };
        let pending = tail.wrapping_sub(self.sq_head);
        if pending == 0 {
            return 0;
        }
        if pending > SQ_ENTRIES {
            self.sq_head = tail;
            store_u32(env.mem, header::SQ_HEAD, tail);
            self.complete(env.mem, BAD_TAIL_USER_DATA, -EINVAL);
            return 0;
        }
        for _ in 0..pending {
            let slot = u64::from(self.sq_head % SQ_ENTRIES);
            let mut sqe = [0u8; 64];
            let at = GuestAddress(RING_ADDR + SQ_OFFSET + slot * 64);
            let read = env.mem.read_slice(&mut sqe, at);
            self.sq_head = self.sq_head.wrapping_add(1);
            store_u32(env.mem, header::SQ_HEAD, self.sq_head);
            self.stats.submissions += 1;
            if read.is_err() {
                self.complete(env.mem, 0, -EIO);
                continue;
            }
            let head = word(&sqe, 0);
            let (opcode, flags) = (head as u32, (head >> 32) as u32);
            let user_data = word(&sqe, 1);
            let args: [u64; 6] = std::array::from_fn(|i| word(&sqe, 2 + i));
            if flags != 0 {
                self.complete(env.mem, user_data, -EINVAL);
            } else if is_net(opcode) {
                self.submit_net(env, opcode, user_data, &args);
            } else if opcode == op::FLUSH || opcode == op::FLUSH_MANY {
                self.submit_flush(env, opcode, user_data, &args);
            } else {
                let result = perform(env, opcode, &args);
                self.complete(env.mem, user_data, result);
            }
        }
        pending
    }

    /// Hands a `NET_*` submission to the stream device and posts what it completed.
    fn submit_net(&mut self, env: &RingEnv<'_>, opcode: u32, user_data: u64, args: &[u64; 6]) {
        let Some(net) = self.net.as_mut() else {
            return self.complete(env.mem, user_data, -EBADF);
        };
        let guest = Guest {
            mem: env.mem,
            access: env.access,
        };
        let mut done = std::mem::take(&mut self.scratch);
        net.submit(&guest, opcode, user_data, args, &mut done);
        self.post_all(env.mem, &mut done);
        self.scratch = done;
    }

    /// Hands a `FLUSH`/`FLUSH_MANY` to the flush worker (or syncs it now without one).
    fn submit_flush(&mut self, env: &RingEnv<'_>, opcode: u32, user_data: u64, args: &[u64; 6]) {
        let Some(objects) = env.objects else {
            return self.complete(env.mem, user_data, -ENOSYS);
        };
        let ranges = if opcode == op::FLUSH {
            vec![(args[0], args[1], args[2])]
        } else {
            match read_flush_ranges(env.mem, env.access, args[0], args[1]) {
                Ok(r) => r,
                Err(e) => return self.complete(env.mem, user_data, e),
            }
        };
        let targets = match objects.flush_targets(&ranges) {
            Ok(t) => t,
            Err(e) => return self.complete(env.mem, user_data, e),
        };
        if targets.is_empty() {
            return self.complete(env.mem, user_data, 0);
        }
        let mut job = FlushJob { user_data, targets };
        if let Some(f) = self.flusher() {
            match f.submit(job) {
                Ok(()) => return,
                Err(back) => job = back,
            }
        }
        let result = sync_batch(std::slice::from_ref(&job), objects.journal().as_deref())
            .completions
            .first()
            .map_or(0, |c| c.1);
        self.complete(env.mem, user_data, result);
    }

    /// Lets the stream device handle its ready sockets and posts what completed; returns the
    /// number of socket events (0: nothing was ready). Called by the event loop.
    pub fn poll_net(&mut self, env: &RingEnv<'_>) -> usize {
        self.post_backlog(env.mem);
        let Some(net) = self.net.as_mut() else {
            return 0;
        };
        let guest = Guest {
            mem: env.mem,
            access: env.access,
        };
        let mut done = std::mem::take(&mut self.scratch);
        let events = net.poll(&guest, &mut done);
        self.post_all(env.mem, &mut done);
        self.scratch = done;
        self.wake();
        events
    }

    fn post_all(&mut self, mem: &GuestMemoryMmap, done: &mut Vec<Completion>) {
        for (user_data, result) in done.drain(..) {
            self.complete(mem, user_data, result);
        }
    }

    /// Wakes a `RING_WAIT` if something was posted since the last call.
    fn wake(&mut self) {
        if self.posted {
            self.waker.wake();
        }
        self.posted = false;
    }

    /// True when the CQ has room for one more completion.
    fn cq_has_room(&self, mem: &GuestMemoryMmap) -> bool {
        let head = load_u32(mem, header::CQ_HEAD).unwrap_or(self.cq_tail);
        self.cq_tail.wrapping_sub(head) < CQ_ENTRIES
    }

    /// Posts one completion, or keeps it in the backlog (in order) while the CQ is full.
    fn complete(&mut self, mem: &GuestMemoryMmap, user_data: u64, result: i64) {
        if result < 0 {
            self.stats.errors += 1;
        }
        if !self.backlog.is_empty() || !self.cq_has_room(mem) {
            self.backlog.push_back((user_data, result));
            self.stats.overflows += 1;
            store_u32(mem, header::CQ_OVERFLOW, self.stats.overflows as u32);
            return;
        }
        self.post(mem, user_data, result);
    }

    fn post(&mut self, mem: &GuestMemoryMmap, user_data: u64, result: i64) {
        let slot = u64::from(self.cq_tail % CQ_ENTRIES);
        let mut cqe = [0u8; 16];
        cqe[..8].copy_from_slice(&user_data.to_le_bytes());
        cqe[8..].copy_from_slice(&result.to_le_bytes());
        let _ = mem.write_slice(&cqe, GuestAddress(RING_ADDR + CQ_OFFSET + slot * 16));
        self.cq_tail = self.cq_tail.wrapping_add(1);
        store_u32(mem, header::CQ_TAIL, self.cq_tail);
        self.posted = true;
    }

    /// Posts backlogged completions the guest has made room for.
    fn post_backlog(&mut self, mem: &GuestMemoryMmap) {
        while !self.backlog.is_empty() && self.cq_has_room(mem) {
            if let Some((user_data, result)) = self.backlog.pop_front() {
                self.post(mem, user_data, result);
            }
        }
    }

    /// Completions kept in the backlog now.
    pub fn backlogged(&self) -> usize {
        self.backlog.len()
    }

    /// Marks the event loop asleep (`true`: the guest must ring) or polling (`false`), as
    /// `abi::ring::SQ_NEED_WAKEUP` in the `SQ_FLAGS` word.
    pub fn set_need_wakeup(mem: &GuestMemoryMmap, asleep: bool) {
        let flags = if asleep { abi::ring::SQ_NEED_WAKEUP } else { 0 };
        let _ = mem.store(
            flags,
            GuestAddress(RING_ADDR + header::SQ_FLAGS),
            Ordering::SeqCst,
        );
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Whether the guest has published submissions not consumed yet, or reaped room for
    /// backlogged completions.
    pub fn has_pending(&self, mem: &GuestMemoryMmap) -> bool {
        load_u32(mem, header::SQ_TAIL).is_some_and(|t| t != self.sq_head)
            || (!self.backlog.is_empty() && self.cq_has_room(mem))
    }

    /// Completions the guest has not reaped yet (bounded by `CQ_ENTRIES`).
    pub fn available(&self, mem: &GuestMemoryMmap) -> u32 {
        let head = load_u32(mem, header::CQ_HEAD).unwrap_or(self.cq_tail);
        self.cq_tail.wrapping_sub(head).min(CQ_ENTRIES)
    }

    /// Completions posted and not reaped, read from the ring's header alone (no lock needed;
    /// the guest can lie there only to its own cost: a `RING_WAIT` that returns early or late).
    pub fn posted_in(mem: &GuestMemoryMmap) -> u32 {
        match (
            load_u32(mem, header::CQ_TAIL),
            load_u32(mem, header::CQ_HEAD),
        ) {
            (Some(tail), Some(head)) => tail.wrapping_sub(head).min(CQ_ENTRIES),
            _ => 0,
        }
    }

    /// Whether there may be work for the consumer, read from the ring's header alone: the
    /// guest published submissions beyond the `sq_head` the VMM last published.
    pub fn submitted_in(mem: &GuestMemoryMmap) -> bool {
        load_u32(mem, header::SQ_TAIL) != load_u32(mem, header::SQ_HEAD)
    }
}

fn word(sqe: &[u8; 64], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&sqe[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// Performs one submission that completes at once; returns its result.
fn perform(env: &RingEnv<'_>, opcode: u32, args: &[u64; 6]) -> i64 {
    match opcode {
        op::NOP => args[0] as i64,
        op::WRITE => write(env, args[0], args[1], args[2]),
        op::POPULATE => match env.objects {
            Some(o) => o
                .populate(args[0], args[1], args[2])
                .map_or_else(|e| e, |()| 0),
            None => -ENOSYS,
        },
        _ => -ENOSYS,
    }
}

/// Copies a guest buffer to stdout/stderr after validating it.
pub fn write(env: &RingEnv<'_>, stream: u64, addr: u64, len: u64) -> i64 {
    if stream != fd::STDOUT && stream != fd::STDERR {
        return -EBADF;
    }
    if let Err(e) = env.access.check(addr, len, false) {
        return e;
    }
    let mut buf = vec![0u8; len as usize];
    if env.mem.read_slice(&mut buf, GuestAddress(addr)).is_err() {
        return -abi::hostcall::errno::EFAULT;
    }
    match env.console.write(stream, &buf) {
        Ok(n) => n as i64,
        Err(_) => -EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::RamPlan;
    use crate::memory::GuestRam;
    use abi::hostcall::errno::EFAULT;
    use abi::ring::FLUSH_MANY_MAX;

    struct Fixture {
        ram: GuestRam,
        access: GuestAccess,
        console: Console,
    }

    impl Fixture {
        fn new() -> Self {
            let ram = GuestRam::new(16 << 20).unwrap();
            let access = GuestAccess::new(&RamPlan::new(16 << 20).unwrap());
            Fixture {
                ram,
                access,
                console: Console::buffer(b""),
            }
        }
        fn env(&self) -> RingEnv<'_> {
            RingEnv {
                mem: self.ram.mem(),
                access: &self.access,
                console: &self.console,
                objects: None,
            }
        }
        fn submit(&self, index: u32, opcode: u32, user_data: u64, args: [u64; 6]) {
            let mut sqe = Vec::new();
            sqe.extend_from_slice(&u64::from(opcode).to_le_bytes());
            sqe.extend_from_slice(&user_data.to_le_bytes());
            args.iter()
                .for_each(|a| sqe.extend_from_slice(&a.to_le_bytes()));
            let slot = u64::from(index % SQ_ENTRIES);
            let m = self.ram.mem();
            m.write_slice(&sqe, GuestAddress(RING_ADDR + SQ_OFFSET + slot * 64))
                .unwrap();
            m.store(
                index + 1,
                GuestAddress(RING_ADDR + header::SQ_TAIL),
                Ordering::Release,
            )
            .unwrap();
        }
        fn cqe(&self, i: u32) -> (u64, i64) {
            let m = self.ram.mem();
            let at = RING_ADDR + CQ_OFFSET + u64::from(i % CQ_ENTRIES) * 16;
            (
                m.read_obj(GuestAddress(at)).unwrap(),
                m.read_obj(GuestAddress(at + 8)).unwrap(),
            )
        }
    }

    #[test]
    fn performs_nop_and_write_in_order() {
        let f = Fixture::new();
        f.ram
            .mem()
            .write_slice(b"hi\n", GuestAddress(0x30_0000))
            .unwrap();
        f.submit(0, op::NOP, 7, [42, 0, 0, 0, 0, 0]);
        f.submit(1, op::WRITE, 8, [fd::STDOUT, 0x30_0000, 3, 0, 0, 0]);
        let mut c = RingConsumer::default();
        assert_eq!(c.drain(&f.env()), 2);
        assert_eq!(f.cqe(0), (7, 42));
        assert_eq!(f.cqe(1), (8, 3));
        assert_eq!(f.console.stdout_bytes(), b"hi\n");
        assert_eq!(c.available(f.ram.mem()), 2);
        assert_eq!(c.drain(&f.env()), 0, "nothing new");
    }

    #[test]
    fn malformed_submissions_complete_with_errors() {
        let f = Fixture::new();
        f.submit(0, op::WRITE, 1, [fd::STDOUT, 0x10_0000, 16, 0, 0, 0]);
        f.submit(1, op::WRITE, 2, [fd::STDOUT, u64::MAX - 1, 16, 0, 0, 0]);
        f.submit(2, op::WRITE, 3, [5, 0x30_0000, 1, 0, 0, 0]);
        f.submit(3, 99, 4, [0; 6]);
        f.submit(4, op::WRITE, 5, [fd::STDOUT, 0x30_0000, u64::MAX, 0, 0, 0]);
        let mut c = RingConsumer::default();
        assert_eq!(c.drain(&f.env()), 5);
        assert_eq!(f.cqe(0), (1, -EFAULT), "system area");
        assert_eq!(f.cqe(1), (2, -EFAULT), "wraps");
        assert_eq!(f.cqe(2), (3, -EBADF));
        assert_eq!(f.cqe(3), (4, -ENOSYS));
        assert_eq!(f.cqe(4), (5, -EINVAL), "huge length");
        assert_eq!(c.stats().errors, 5);
        assert!(f.console.stdout_bytes().is_empty());
    }

    #[test]
    fn garbage_tail_is_bounded() {
        let f = Fixture::new();
        let m = f.ram.mem();
        m.store(
            0xDEAD_BEEFu32,
            GuestAddress(RING_ADDR + header::SQ_TAIL),
            Ordering::Release,
        )
        .unwrap();
        let mut c = RingConsumer::default();
        assert_eq!(c.drain(&f.env()), 0);
        assert_eq!(f.cqe(0), (BAD_TAIL_USER_DATA, -EINVAL));
        let head: u32 = m
            .read_obj(GuestAddress(RING_ADDR + header::SQ_HEAD))
            .unwrap();
        assert_eq!(head, 0xDEAD_BEEF, "resynchronised");
        f.submit(0xDEAD_BEEF, op::NOP, 9, [1, 0, 0, 0, 0, 0]);
        assert_eq!(c.drain(&f.env()), 1, "ring works again");
    }

    #[test]
    fn need_wakeup_flag_is_published_in_the_header() {
        let f = Fixture::new();
        let m = f.ram.mem();
        let flags = || {
            m.read_obj::<u32>(GuestAddress(RING_ADDR + header::SQ_FLAGS))
                .unwrap()
        };
        RingConsumer::set_need_wakeup(m, true);
        assert_eq!(flags(), abi::ring::SQ_NEED_WAKEUP);
        RingConsumer::set_need_wakeup(m, false);
        assert_eq!(flags(), 0);
    }

    #[test]
    fn full_cq_counts_overflows() {
        let f = Fixture::new();
        let mut c = RingConsumer::default();
        for i in 0..CQ_ENTRIES + 3 {
            f.submit(i, op::NOP, u64::from(i), [0; 6]);
            c.drain(&f.env());
        }
        assert_eq!(c.stats().overflows, 3);
        let m = f.ram.mem();
        let ov: u32 = m
            .read_obj(GuestAddress(RING_ADDR + header::CQ_OVERFLOW))
            .unwrap();
        assert_eq!(ov, 3);
        assert_eq!(c.backlogged(), 3, "kept, not dropped");
        assert!(!c.has_pending(m), "no room yet");
        // The guest reaps everything: the backlog follows, in order, at the next drain.
        m.store(
            CQ_ENTRIES,
            GuestAddress(RING_ADDR + header::CQ_HEAD),
            Ordering::Release,
        )
        .unwrap();
        assert!(c.has_pending(m), "room for the backlog");
        c.drain(&f.env());
        assert_eq!(c.backlogged(), 0);
        for i in CQ_ENTRIES..CQ_ENTRIES + 3 {
            assert_eq!(f.cqe(i), (u64::from(i), 0));
        }
        assert_eq!(c.available(m), 3);
    }

    #[test]
    fn the_waker_wakes_a_sleeper_and_never_sleeps_past_ready() {
        let w = Arc::new(Waker::default());
        let flag = Arc::new(AtomicBool::new(false));
        w.wait(|| true, Duration::from_secs(3600)); // ready: returns at once
        let (w2, f2) = (w.clone(), flag.clone());
        let poster = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            f2.store(true, Ordering::SeqCst);
            w2.wake();
        });
        let start = std::time::Instant::now();
        while !flag.load(Ordering::SeqCst) {
            w.wait(|| flag.load(Ordering::SeqCst), Duration::from_secs(60));
        }
        // Woken, not timed out (the bound is the timeout, far beyond any scheduling delay).
        assert!(start.elapsed() < Duration::from_secs(60));
        poster.join().unwrap();
    }

    #[test]
    fn flushes_without_a_store_or_with_bad_arrays_get_errors() {
        let f = Fixture::new();
        let mut c = RingConsumer::default();
        f.submit(0, op::FLUSH, 1, [0, 0, 8, 0, 0, 0]);
        f.submit(1, op::FLUSH_MANY, 2, [0x30_0000, 1, 0, 0, 0, 0]);
        assert_eq!(c.drain(&f.env()), 2);
        assert_eq!(f.cqe(0), (1, -ENOSYS));
        assert_eq!(f.cqe(1), (2, -ENOSYS));
        let env = f.env();
        assert_eq!(
            read_flush_ranges(env.mem, env.access, 0x30_0000, FLUSH_MANY_MAX + 1),
            Err(-EINVAL),
            "too many ranges"
        );
        assert_eq!(
            read_flush_ranges(env.mem, env.access, 0x10_0000, 1),
            Err(-EFAULT),
            "system area"
        );
        assert_eq!(
            read_flush_ranges(env.mem, env.access, u64::MAX - 8, 1),
            Err(-EFAULT),
            "wraps"
        );
        assert_eq!(
            read_flush_ranges(env.mem, env.access, 0x30_0000, 0),
            Ok(vec![])
        );
        let mut arr = Vec::new();
        for w in [3u64, 4096, 64, 5, 0, 1] {
            arr.extend_from_slice(&w.to_le_bytes());
        }
        f.ram
            .mem()
            .write_slice(&arr, GuestAddress(0x30_0000))
            .unwrap();
        assert_eq!(
            read_flush_ranges(env.mem, env.access, 0x30_0000, 2),
            Ok(vec![(3, 4096, 64), (5, 0, 1)])
        );
    }

    #[test]
    fn stream_operations_without_listen_get_ebadf() {
        let f = Fixture::new();
        let mut c = RingConsumer::default();
        f.submit(0, op::NET_ACCEPT, 1, [0; 6]);
        f.submit(1, op::NET_RECV, 2, [0, 0x30_0000, 16, 0, 0, 0]);
        f.submit(2, op::NET_SEND, 3, [0, 0x30_0000, 16, 0, 0, 0]);
        f.submit(3, op::NET_CLOSE, 4, [0; 6]);
        assert_eq!(c.drain(&f.env()), 4);
        for i in 0..4 {
            assert_eq!(f.cqe(i), (u64::from(i) + 1, -EBADF));
        }
        assert_eq!(c.net_fd(), None);
    }
}
