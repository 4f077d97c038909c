//! The per-run cache of cross-object pointer targets: (container, FOT index) -> the base
//! address of the slot the target is mapped in.
//!
//! One small direct-mapped table per tracked container slot ([`PER_SLOT`] entries, picked by the
//! index's low bits), so the hit path needs nothing but the pointer and its own address: the
//! container's table from the address (shift and mask), the entry from the index (shift and
//! mask), one compare of the entry's tag with the pointer's high half, one load of the base.
//! Entries are forgotten when a slot is evicted or unmapped ([`FotCache::forget_slot`]). A miss
//! costs the slow path a FOT read, and a host call only if the target is not mapped yet.

use abi::layout::OBJ_SIZE;
use abi::memmap::{slot_addr, OBJ_WINDOW_BASE};

/// Window slots the runtime tracks (the VMM's slot budget is at most this).
pub const MAX_SLOTS: usize = 128;
/// Entries per container slot.
pub const PER_SLOT: usize = 32;
const _: () = assert!(MAX_SLOTS.is_power_of_two() && PER_SLOT.is_power_of_two());
const _: () = assert!(core::mem::size_of::<Entry>().is_power_of_two());

/// `log2(OBJ_SIZE)`: an offset into the window over this is its slot number.
const OBJ_SHIFT: u32 = OBJ_SIZE.trailing_zeros();

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Entry {
    /// The high half of the pointers this entry serves (the FOT index); [`EMPTY_TAG`] when
    /// empty.
    tag: u64,
    /// Guest address of the target object.
    base: u64,
}

/// Never a tag: a tag is a pointer's high half, below 2^32.
const EMPTY_TAG: u64 = u64::MAX;
const EMPTY: Entry = Entry {
    tag: EMPTY_TAG,
    base: 0,
};

/// The cache (a plain value so host tests can make their own).
pub struct FotCache {
    entries: [[Entry; PER_SLOT]; MAX_SLOTS],
    /// Per target slot, the container slots that may hold entries targeting it (bit `c` for
    /// slot `c`), so forgetting a slot scans those tables only, not the whole cache (which
    /// every first map of a slot does).
    targeted_by: [u128; MAX_SLOTS],
}

const _: () = assert!(MAX_SLOTS <= u128::BITS as usize);

/// The slot of a container address, if it is a tracked slot of the window.
#[inline(always)]
pub fn container_slot(container: u64) -> Option<usize> {
    // One compare: below the window, the subtraction wraps to a huge slot number.
    let slot = container.wrapping_sub(OBJ_WINDOW_BASE) / OBJ_SIZE;
    if slot < MAX_SLOTS as u64 {
        Some(slot as usize)
    } else {
        None
    }
}

impl FotCache {
    /// An empty cache.
    pub const fn new() -> Self {
        FotCache {
            entries: [[EMPTY; PER_SLOT]; MAX_SLOTS],
            targeted_by: [0; MAX_SLOTS],
        }
    }

    /// The hit path of a resolve: the cached target base for encoded pointer `raw` stored at
    /// window offset `rel` (its address minus the window base, inside the tracked slots).
    #[inline(always)]
    pub fn lookup(&self, rel: u64, raw: u64) -> Option<u64> {
        let slot = (rel >> OBJ_SHIFT) as usize & (MAX_SLOTS - 1);
        let high = raw >> 32;
        // The entry's byte offset in its table straight from the pointer (one shift and one
        // mask on the way to the load, where index-then-scale takes three).
        const ENTRY: usize = core::mem::size_of::<Entry>();
        let at = (raw >> (32 - ENTRY.trailing_zeros())) as usize & ((PER_SLOT - 1) * ENTRY);
        let table = &self.entries[slot];
        // SAFETY: `at` is a multiple of the entry size below `PER_SLOT` entries, so it names
        // an aligned entry inside `table`.
        let e = unsafe { &*table.as_ptr().cast::<u8>().add(at).cast::<Entry>() };
        (e.tag == high).then_some(e.base)
    }

    /// The cached target base for FOT index `index` of the object in `slot`.
    pub fn get(&self, slot: usize, index: u32) -> Option<u64> {
        if slot >= MAX_SLOTS || index == 0 {
            return None;
        }
        let rel = slot_addr(slot as u64) - OBJ_WINDOW_BASE;
        self.lookup(rel, u64::from(index) << 32)
    }

    /// Remembers that FOT index `index` of the object in `slot` targets the object at `base`.
    pub fn put(&mut self, slot: usize, index: u32, base: u64) {
        if slot >= MAX_SLOTS || index == 0 {
            return;
        }
        self.entries[slot][index as usize & (PER_SLOT - 1)] = Entry {
            tag: u64::from(index),
            base,
        };
        if let Some(target) = container_slot(base) {
            self.targeted_by[target] |= 1 << slot;
        }
    }

    /// Forgets everything about `slot`: entries of pointers stored in it, and entries targeting
    /// it.
    pub fn forget_slot(&mut self, slot: usize, slot_base: u64) {
        if let Some(own) = self.entries.get_mut(slot) {
            *own = [EMPTY; PER_SLOT];
        }
        let containers = match container_slot(slot_base) {
            Some(target) => core::mem::take(&mut self.targeted_by[target]),
            // Not a tracked slot's base: no entry was recorded in `targeted_by`; look everywhere.
            None => u128::MAX,
        };
        for (c, table) in self.entries.iter_mut().enumerate() {
            if containers & (1 << c) == 0 {
                continue;
            }
            for e in table.iter_mut().filter(|e| e.base == slot_base) {
                *e = EMPTY;
            }
        }
    }
}

impl Default for FotCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    /// Window offset of `off` bytes into slot `slot`.
    fn rel(slot: u64, off: u64) -> u64 {
        slot_addr(slot) + off - OBJ_WINDOW_BASE
    }

    #[test]
    fn hits_misses_and_forgetting() {
        let mut c = Box::new(FotCache::new());
        assert_eq!(c.get(3, 1), None);
        c.put(3, 1, slot_addr(5));
        c.put(3, 1 + PER_SLOT as u32, slot_addr(6));
        assert_eq!(c.get(3, 1), None, "evicted by a colliding index");
        assert_eq!(c.get(3, 1 + PER_SLOT as u32), Some(slot_addr(6)));
        c.put(4, 2, slot_addr(6));
        c.put(4, 3, slot_addr(7));
        assert_eq!(c.get(5, 3), None, "another container, same index");
        c.forget_slot(6, slot_addr(6));
        assert_eq!(c.get(3, 1 + PER_SLOT as u32), None, "target evicted");
        assert_eq!(c.get(4, 2), None);
        assert_eq!(c.get(4, 3), Some(slot_addr(7)));
        c.forget_slot(4, slot_addr(4));
        assert_eq!(c.get(4, 3), None, "container evicted");
        assert_eq!(c.get(MAX_SLOTS, 3), None);
        c.put(4, 0, slot_addr(7));
        assert_eq!(c.get(4, 0), None, "index 0 is never cached");
    }

    #[test]
    fn forgetting_a_target_reaches_every_container_that_cached_it() {
        let mut c = Box::new(FotCache::new());
        for container in [0, 9, 64, 127] {
            c.put(container, 3, slot_addr(5));
            c.put(container, 4, slot_addr(6));
        }
        c.forget_slot(5, slot_addr(5));
        for container in [0, 9, 64, 127] {
            assert_eq!(c.get(container, 3), None, "container {container}");
            assert_eq!(
                c.get(container, 4),
                Some(slot_addr(6)),
                "container {container}"
            );
        }
        // The slot is reused and cached again later: forgetting it again still works.
        c.put(9, 7, slot_addr(5));
        c.forget_slot(5, slot_addr(5));
        assert_eq!(c.get(9, 7), None);
    }

    #[test]
    fn lookups_come_from_the_pointer_and_where_it_is_stored() {
        let mut c = Box::new(FotCache::new());
        c.put(2, 9, slot_addr(8));
        let raw = (9u64 << 32) | 0x1040;
        assert_eq!(c.lookup(rel(2, 0x2000), raw), Some(slot_addr(8)));
        assert_eq!(c.lookup(rel(3, 0x2000), raw), None, "other container");
        assert_eq!(c.lookup(rel(2, 0), 10 << 32), None, "other index");
        // Spare bits above the index must not alias the entry.
        let alias = ((9u64 | 1 << 30) << 32) | 0x1040;
        assert_eq!(c.lookup(rel(2, 0x2000), alias), None);
        assert_eq!(c.lookup(rel(2, 0), 0x1040), None, "index 0: never a hit");
        assert_eq!(c.lookup(rel(0, 0), 0), None, "empty entries never match");
    }

    #[test]
    fn containers_must_be_tracked_window_slots() {
        assert_eq!(container_slot(slot_addr(0)), Some(0));
        assert_eq!(container_slot(slot_addr(127)), Some(127));
        assert_eq!(container_slot(slot_addr(128)), None);
        assert_eq!(container_slot(0), None);
        assert_eq!(container_slot(OBJ_WINDOW_BASE - OBJ_SIZE), None);
    }
}
