//! The per-run cache of cross-object pointer targets: (container, FOT index) -> the base
//! address of the slot the target is mapped in.
//!
//! Direct-mapped, [`ENTRIES`] entries, each tagged with a key that names the container and the
//! index exactly ([`key`]: the pointer's own high half, which is the index, or'ed with the
//! container's address over 1 GiB), so the hit path is: build the key from the pointer and its
//! address, one load of the entry it hashes to, one compare, one load of the base. Entries are
//! forgotten when a slot is evicted or unmapped ([`FotCache::forget_slot`]).

use abi::layout::OBJ_SIZE;
use abi::memmap::{slot_addr, OBJ_WINDOW_BASE};

/// Window slots the runtime tracks (the VMM's slot budget is at most this).
pub const MAX_SLOTS: usize = 128;
/// Entries (as many as the former 32 per tracked slot).
pub const ENTRIES: usize = MAX_SLOTS * 32;

const _: () = assert!(ENTRIES.is_power_of_two());

/// `log2(OBJ_SIZE)`: a container address over this is its 1 GiB frame number.
const OBJ_SHIFT: u32 = OBJ_SIZE.trailing_zeros();

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Entry {
    /// [`key`] of the cached (container, index); [`EMPTY_KEY`] when empty.
    key: u64,
    /// Guest address of the target object.
    base: u64,
}

/// Never a key: it would need a container address near 2^62 (not canonical) and index 2^32 - 1.
const EMPTY_KEY: u64 = u64::MAX;
const EMPTY: Entry = Entry {
    key: EMPTY_KEY,
    base: 0,
};

/// The key of encoded pointer `raw` stored at address `here`: the FOT index (already in `raw`'s
/// high half) and the 1 GiB frame of `here` in the low half. Distinct for distinct
/// (container, index) pairs of canonical addresses.
#[inline(always)]
pub fn key(here: u64, raw: u64) -> u64 {
    (raw & !0xFFFF_FFFF) | (here >> OBJ_SHIFT)
}

/// The entry a key lives in: the container's slot bits and the index's low bits mixed.
#[inline(always)]
fn position(key: u64) -> usize {
    // The index (high half) lands 5 bits up, over the container's slot bits (low half).
    (key ^ (key >> 27)) as usize & (ENTRIES - 1)
}

/// The cache (a plain value so host tests can make their own).
pub struct FotCache {
    entries: [Entry; ENTRIES],
}

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
            entries: [EMPTY; ENTRIES],
        }
    }

    /// The cached target base for `key` (the hit path of a resolve).
    #[inline(always)]
    pub fn lookup(&self, key: u64) -> Option<u64> {
        let e = &self.entries[position(key)];
        (e.key == key).then_some(e.base)
    }

    /// The cached target base for FOT index `index` of the object in `slot`.
    pub fn get(&self, slot: usize, index: u32) -> Option<u64> {
        if slot >= MAX_SLOTS || index == 0 {
            return None;
        }
        self.lookup(key(slot_addr(slot as u64), u64::from(index) << 32))
    }

    /// Remembers that FOT index `index` of the object in `slot` targets the object at `base`.
    pub fn put(&mut self, slot: usize, index: u32, base: u64) {
        if slot >= MAX_SLOTS || index == 0 {
            return;
        }
        let k = key(slot_addr(slot as u64), u64::from(index) << 32);
        self.entries[position(k)] = Entry { key: k, base };
    }

    /// Forgets everything about `slot`: entries of pointers stored in it, and entries targeting
    /// it.
    pub fn forget_slot(&mut self, slot: usize, slot_base: u64) {
        let frame = slot_addr(slot as u64) >> OBJ_SHIFT;
        for e in self.entries.iter_mut() {
            if e.key != EMPTY_KEY && (e.key & 0xFFFF_FFFF == frame || e.base == slot_base) {
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

    #[test]
    fn hits_misses_and_forgetting() {
        let mut c = Box::new(FotCache::new());
        assert_eq!(c.get(3, 1), None);
        c.put(3, 1, slot_addr(5));
        c.put(3, 1 + ENTRIES as u32, slot_addr(6));
        assert_eq!(c.get(3, 1), None, "evicted by a colliding index");
        assert_eq!(c.get(3, 1 + ENTRIES as u32), Some(slot_addr(6)));
        c.put(4, 2, slot_addr(6));
        c.put(4, 3, slot_addr(7));
        assert_eq!(c.get(5, 3), None, "another container, same index");
        c.forget_slot(6, slot_addr(6));
        assert_eq!(c.get(3, 1 + ENTRIES as u32), None, "target evicted");
        assert_eq!(c.get(4, 2), None);
        assert_eq!(c.get(4, 3), Some(slot_addr(7)));
        c.forget_slot(4, slot_addr(4));
        assert_eq!(c.get(4, 3), None, "container evicted");
        assert_eq!(c.get(MAX_SLOTS, 3), None);
        c.put(4, 0, slot_addr(7));
        assert_eq!(c.get(4, 0), None, "index 0 is never cached");
    }

    #[test]
    fn keys_come_from_the_pointer_and_where_it_is_stored() {
        let mut c = Box::new(FotCache::new());
        c.put(2, 9, slot_addr(8));
        let raw = (9u64 << 32) | 0x1040;
        assert_eq!(
            c.lookup(key(slot_addr(2) + 0x2000, raw)),
            Some(slot_addr(8))
        );
        assert_eq!(
            c.lookup(key(slot_addr(3) + 0x2000, raw)),
            None,
            "other container"
        );
        assert_eq!(c.lookup(key(slot_addr(2), 10 << 32)), None, "other index");
        // An index reaching into the container bits must not alias another slot's entry.
        let alias = ((9u64 | 1 << 30) << 32) | 0x1040;
        assert_eq!(c.lookup(key(slot_addr(1), alias)), None);
        assert_eq!(c.lookup(key(0x1000, 0)), None, "RAM, index 0: never a hit");
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
