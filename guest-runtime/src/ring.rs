//! The guest's end of the asynchronous ring (see [`abi::ring`]): produce submissions, ring the
//! ioeventfd doorbell (about 2.4 us, no exit), reap completions.
//!
//! Flow control follows the ABI: a submission fits while `sq_tail - sq_head < SQ_ENTRIES`
//! (`sq_head` is the VMM's count of consumed submissions). Completions are not bounded by it:
//! stream-device operations stay outstanding for as long as a client takes, and the VMM keeps
//! whatever does not fit in the completion queue in a backlog of its own until the guest reaps.

use core::sync::atomic::{fence, AtomicU32, Ordering};

use abi::memmap::DOORBELL_RING;
use abi::ring::{header, Cqe, Sqe, CQ_ENTRIES, CQ_OFFSET, SQ_ENTRIES, SQ_NEED_WAKEUP, SQ_OFFSET};

/// Address of submission entry `index` (a free-running counter) in the ring at `base`.
pub const fn sqe_addr(base: u64, index: u32) -> u64 {
    base + SQ_OFFSET + (index % SQ_ENTRIES) as u64 * core::mem::size_of::<Sqe>() as u64
}

/// Address of completion entry `index` (a free-running counter) in the ring at `base`.
pub const fn cqe_addr(base: u64, index: u32) -> u64 {
    base + CQ_OFFSET + (index % CQ_ENTRIES) as u64 * core::mem::size_of::<Cqe>() as u64
}

/// Submissions made but whose completions are not reaped yet, from two free-running counters.
pub const fn unreaped(sq_tail: u32, cq_head: u32) -> u32 {
    sq_tail.wrapping_sub(cq_head)
}

/// Completions posted but not reaped, from two free-running counters.
pub const fn ready(cq_tail: u32, cq_head: u32) -> u32 {
    cq_tail.wrapping_sub(cq_head)
}

/// The guest's private view of the shared ring: its own copies of the indices it writes.
#[derive(Debug)]
pub struct Ring {
    base: u64,
    doorbell: u64,
    sq_tail: u32,
    cq_head: u32,
}

impl Ring {
    /// A ring that is not there (before boot or on the host): every submission is refused.
    pub const fn absent() -> Ring {
        Ring {
            base: 0,
            doorbell: 0,
            sq_tail: 0,
            cq_head: 0,
        }
    }

    /// Attaches to the ring at `base`, picking up the indices found there.
    ///
    /// # Safety
    /// `base` must be the ring area the VMM set up (see `BootInfo::ring`), in guest RAM, and only this
    /// `Ring` may produce submissions or reap completions on it from now on.
    pub unsafe fn attach(base: u64) -> Ring {
        // SAFETY: forwarded caller guarantee; the doorbell is the memory map's.
        unsafe { Ring::attach_with_doorbell(base, DOORBELL_RING) }
    }

    /// Like [`Ring::attach`], with the doorbell at `doorbell` (tests point it at plain memory).
    ///
    /// # Safety
    /// As for [`Ring::attach`]; in addition `doorbell` must be valid for 8-byte writes.
    pub unsafe fn attach_with_doorbell(base: u64, doorbell: u64) -> Ring {
        let mut r = Ring {
            base,
            doorbell,
            sq_tail: 0,
            cq_head: 0,
        };
        if base != 0 {
            r.sq_tail = r.word(header::SQ_TAIL).load(Ordering::Relaxed);
            r.cq_head = r.word(header::CQ_HEAD).load(Ordering::Relaxed);
        }
        r
    }

    /// True when attached to a real ring.
    pub fn is_present(&self) -> bool {
        self.base != 0
    }

    fn word(&self, off: u64) -> &AtomicU32 {
        // SAFETY: only called when `base` is a ring area (checked by callers through `attach` and
        // `is_present`); the header words are 4-byte aligned and live as long as the run.
        unsafe { &*((self.base + off) as *const AtomicU32) }
    }

    /// Submissions whose completions have not been reaped.
    pub fn unreaped(&self) -> u32 {
        unreaped(self.sq_tail, self.cq_head)
    }

    /// Submissions the VMM has not consumed yet.
    pub fn unconsumed(&self) -> u32 {
        if !self.is_present() {
            return 0;
        }
        self.sq_tail
            .wrapping_sub(self.word(header::SQ_HEAD).load(Ordering::Acquire))
    }

    /// True when one more submission fits in the submission queue.
    pub fn has_room(&self) -> bool {
        self.is_present() && self.unconsumed() < SQ_ENTRIES
    }

    /// Queues `sqe` (without ringing the doorbell). Returns `false` when there is no room.
    ///
    /// # Safety
    /// Any buffer the submission names must stay valid until its completion is reaped.
    pub unsafe fn push(&mut self, sqe: Sqe) -> bool {
        if !self.has_room() {
            return false;
        }
        // SAFETY: the slot is inside the ring area; `has_room` guarantees the VMM consumed the
        // submission that used it last (it published `sq_head` after reading the entry).
        unsafe { core::ptr::write_volatile(sqe_addr(self.base, self.sq_tail) as *mut Sqe, sqe) };
        self.sq_tail = self.sq_tail.wrapping_add(1);
        // Release: the entry above is visible before the VMM sees the new tail.
        self.word(header::SQ_TAIL)
            .store(self.sq_tail, Ordering::Release);
        true
    }

    /// Tells the VMM's event loop there are new submissions, unless it is polling the ring
    /// anyway ([`SQ_NEED_WAKEUP`] clear), which saves the doorbell's cost. Protocol (see
    /// [`abi::ring`]): the tail store (release, in [`Ring::push`]), a full fence, then the flag read.
    pub fn doorbell(&self) {
        if !self.is_present() {
            return;
        }
        fence(Ordering::SeqCst);
        if self.word(header::SQ_FLAGS).load(Ordering::Relaxed) & SQ_NEED_WAKEUP == 0 {
            return;
        }
        // SAFETY: the doorbell `attach` was given: in a guest, a user-writable page registered as
        // an ioeventfd, where a write only signals the VMM.
        unsafe { core::ptr::write_volatile(self.doorbell as *mut u64, 1) };
    }

    /// Completions ready to reap.
    pub fn ready(&self) -> u32 {
        if !self.is_present() {
            return 0;
        }
        ready(
            self.word(header::CQ_TAIL).load(Ordering::Acquire),
            self.cq_head,
        )
    }

    /// Takes the next completion, if any.
    pub fn reap(&mut self) -> Option<Cqe> {
        if self.ready() == 0 {
            return None;
        }
        // SAFETY: the slot is inside the ring area, and the Acquire load in `ready` made the
        // VMM's write of it visible.
        let cqe =
            unsafe { core::ptr::read_volatile(cqe_addr(self.base, self.cq_head) as *const Cqe) };
        self.cq_head = self.cq_head.wrapping_add(1);
        self.word(header::CQ_HEAD)
            .store(self.cq_head, Ordering::Release);
        Some(cqe)
    }

    /// Completions that waited in the VMM's backlog because the queue was full.
    pub fn overflows(&self) -> u32 {
        if !self.is_present() {
            return 0;
        }
        self.word(header::CQ_OVERFLOW).load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_addresses_wrap() {
        assert_eq!(sqe_addr(0x4000, 0), 0x4000 + SQ_OFFSET);
        assert_eq!(sqe_addr(0x4000, 1), 0x4000 + SQ_OFFSET + 64);
        assert_eq!(sqe_addr(0x4000, SQ_ENTRIES), sqe_addr(0x4000, 0));
        assert_eq!(cqe_addr(0x4000, CQ_ENTRIES + 3), cqe_addr(0x4000, 3));
        assert_eq!(cqe_addr(0x4000, 1), 0x4000 + CQ_OFFSET + 16);
        // The last entries stay inside the ring area.
        assert!(sqe_addr(0, SQ_ENTRIES - 1) + 64 <= CQ_OFFSET);
        assert!(cqe_addr(0, CQ_ENTRIES - 1) + 16 <= abi::memmap::RING_SIZE);
    }

    #[test]
    fn counters_survive_wrapping() {
        assert_eq!(unreaped(5, 2), 3);
        assert_eq!(unreaped(2, u32::MAX - 1), 4);
        assert_eq!(ready(1, u32::MAX), 2);
        assert_eq!(ready(7, 7), 0);
    }

    #[test]
    fn absent_ring_refuses_everything() {
        let mut r = Ring::absent();
        assert!(!r.has_room());
        // SAFETY: the absent ring refuses before touching memory.
        assert!(!unsafe { r.push(Sqe::default()) });
        assert_eq!(r.reap(), None);
        r.doorbell();
    }

    #[test]
    fn produces_and_reaps_through_memory() {
        // A fake ring area in host memory, with the VMM's part played by the test.
        let mut area = alloc::vec![0u64; abi::memmap::RING_SIZE as usize / 8];
        let base = area.as_mut_ptr() as u64;
        // SAFETY: `area` is a zeroed ring-sized buffer that outlives `r`.
        let mut r = unsafe { Ring::attach(base) };
        for i in 0..SQ_ENTRIES {
            let sqe = Sqe {
                op: abi::ring::op::NOP,
                user_data: i as u64,
                ..Sqe::default()
            };
            // SAFETY: NOP names no buffer.
            assert!(unsafe { r.push(sqe) }, "submission {i} fits");
        }
        // SAFETY: as above; the ring is full, so this is refused without writing.
        assert!(!unsafe { r.push(Sqe::default()) }, "a full ring refuses");
        // SAFETY: reading the tail word the ring wrote, inside `area`.
        let tail = unsafe { *((base + header::SQ_TAIL) as *const u32) };
        assert_eq!(tail, SQ_ENTRIES);
        // The "VMM" completes the first two.
        for i in 0..2u32 {
            // SAFETY: completion slots are inside `area`.
            unsafe {
                *(cqe_addr(base, i) as *mut Cqe) = Cqe {
                    user_data: i as u64 + 100,
                    result: -14,
                }
            };
        }
        // SAFETY: the completion tail word is inside `area`.
        unsafe { *((base + header::CQ_TAIL) as *mut u32) = 2 };
        assert_eq!(r.ready(), 2);
        assert!(!r.has_room(), "reaping does not make room: consuming does");
        // SAFETY: the submission head word is inside `area`.
        unsafe { *((base + header::SQ_HEAD) as *mut u32) = 2 };
        assert_eq!(r.unconsumed(), SQ_ENTRIES - 2);
        assert_eq!(
            r.reap(),
            Some(Cqe {
                user_data: 100,
                result: -14
            })
        );
        assert_eq!(
            r.reap(),
            Some(Cqe {
                user_data: 101,
                result: -14
            })
        );
        assert_eq!(r.reap(), None);
        assert!(r.has_room());
        drop(area);
    }

    #[test]
    fn the_doorbell_rings_only_when_the_vmm_sleeps() {
        let mut area = alloc::vec![0u64; abi::memmap::RING_SIZE as usize / 8];
        let base = area.as_mut_ptr() as u64;
        let mut bell = 0u64;
        // SAFETY: `area` and `bell` outlive `r`.
        let r = unsafe { Ring::attach_with_doorbell(base, &mut bell as *mut u64 as u64) };
        let rung = |bell: &u64| {
            // SAFETY: a live local; volatile because `r` wrote it through a raw pointer.
            unsafe { core::ptr::read_volatile(bell) }
        };
        r.doorbell();
        assert_eq!(rung(&bell), 0, "VMM polling: no ring");
        // SAFETY: the flags word is inside `area`.
        unsafe { *((base + header::SQ_FLAGS) as *mut u32) = SQ_NEED_WAKEUP };
        r.doorbell();
        assert_eq!(rung(&bell), 1, "VMM asleep: ring");
        drop(area);
    }
}
