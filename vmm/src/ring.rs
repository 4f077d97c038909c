//! The asynchronous ring's consumer (`abi::ring`), run by the event loop when the guest rings
//! the doorbell and by the vCPU thread before it exits or answers a synchronous call.
//!
//! Nothing the guest writes is trusted: the VMM keeps its own copies of `sq_head` and `cq_tail`
//! (what the guest stores there is ignored), a `sq_tail` further than `SQ_ENTRIES` ahead is
//! garbage and completes once with `-EINVAL` (the ring is resynchronised to it), and each drain
//! does at most `SQ_ENTRIES` submissions. A full CQ drops the completion and counts it in
//! `cq_overflow`, as the ABI says.

use std::sync::atomic::Ordering;

use abi::hostcall::errno::{EBADF, EINVAL, EIO, ENOSYS};
use abi::hostcall::fd;
use abi::memmap::RING_ADDR;
use abi::ring::{header, op, CQ_ENTRIES, CQ_OFFSET, SQ_ENTRIES, SQ_OFFSET};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::hostcall::access::GuestAccess;
use crate::hostcall::console::Console;

/// `user_data` of the completion posted for a garbage `sq_tail`.
pub const BAD_TAIL_USER_DATA: u64 = u64::MAX;

/// Counters the ring keeps for `--stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Submissions consumed.
    pub submissions: u64,
    /// Submissions that completed with an error (including garbage tails).
    pub errors: u64,
    /// Completions dropped because the CQ was full.
    pub overflows: u64,
}

/// The VMM side of the ring.
#[derive(Debug, Default)]
pub struct RingConsumer {
    sq_head: u32,
    cq_tail: u32,
    stats: RingStats,
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

impl RingConsumer {
    /// Counters so far.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Consumes and performs pending submissions; returns how many were consumed.
    pub fn drain(&mut self, env: &RingEnv<'_>) -> u32 {
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
            self.stats.errors += 1;
            self.complete(env.mem, BAD_TAIL_USER_DATA, -EINVAL);
            return 0;
        }
        for _ in 0..pending {
            let slot = u64::from(self.sq_head % SQ_ENTRIES);
            let mut sqe = [0u8; 64];
            let at = GuestAddress(RING_ADDR + SQ_OFFSET + slot * 64);
            let (user_data, result) = match env.mem.read_slice(&mut sqe, at) {
                Ok(()) => perform(env, &sqe),
                Err(_) => (0, -EIO),
            };
            self.sq_head = self.sq_head.wrapping_add(1);
            store_u32(env.mem, header::SQ_HEAD, self.sq_head);
            self.stats.submissions += 1;
            if result < 0 {
                self.stats.errors += 1;
            }
            self.complete(env.mem, user_data, result);
        }
        pending
    }

    /// Posts one completion, or counts an overflow if the guest left the CQ full.
    fn complete(&mut self, mem: &GuestMemoryMmap, user_data: u64, result: i64) {
        let head = load_u32(mem, header::CQ_HEAD).unwrap_or(self.cq_tail);
        if self.cq_tail.wrapping_sub(head) >= CQ_ENTRIES {
            self.stats.overflows += 1;
            store_u32(mem, header::CQ_OVERFLOW, self.stats.overflows as u32);
            return;
        }
        let slot = u64::from(self.cq_tail % CQ_ENTRIES);
        let mut cqe = [0u8; 16];
        cqe[..8].copy_from_slice(&user_data.to_le_bytes());
        cqe[8..].copy_from_slice(&result.to_le_bytes());
        let _ = mem.write_slice(&cqe, GuestAddress(RING_ADDR + CQ_OFFSET + slot * 16));
        self.cq_tail = self.cq_tail.wrapping_add(1);
        store_u32(mem, header::CQ_TAIL, self.cq_tail);
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

    /// Whether the guest has published submissions not consumed yet.
    pub fn has_pending(&self, mem: &GuestMemoryMmap) -> bool {
        load_u32(mem, header::SQ_TAIL).is_some_and(|t| t != self.sq_head)
    }

    /// Completions the guest has not reaped yet (bounded by `CQ_ENTRIES`).
    pub fn available(&self, mem: &GuestMemoryMmap) -> u32 {
        let head = load_u32(mem, header::CQ_HEAD).unwrap_or(self.cq_tail);
        self.cq_tail.wrapping_sub(head).min(CQ_ENTRIES)
    }
}

fn word(sqe: &[u8; 64], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&sqe[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

/// Performs one submission; returns (user_data, result).
fn perform(env: &RingEnv<'_>, sqe: &[u8; 64]) -> (u64, i64) {
    let head = word(sqe, 0);
    let (opcode, flags) = (head as u32, (head >> 32) as u32);
    let user_data = word(sqe, 1);
    let args: [u64; 6] = std::array::from_fn(|i| word(sqe, 2 + i));
    if flags != 0 {
        return (user_data, -EINVAL);
    }
    let result = match opcode {
        op::NOP => args[0] as i64,
        op::WRITE => write(env, args[0], args[1], args[2]),
        op::FLUSH => match env.objects {
            Some(o) => o
                .flush(args[0], args[1], args[2])
                .map_or_else(|e| e, |()| 0),
            None => -ENOSYS,
        },
        _ => -ENOSYS,
    };
    (user_data, result)
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
    }
}
