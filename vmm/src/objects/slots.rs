//! The slot table: which object sits in which slot of the guest's object window, with what
//! rights, and which slot to give up when the run's slot budget is spent (the least recently
//! mapped one). Pure bookkeeping; [`super::Mapper`] does the mapping.

use std::collections::HashMap;

use abi::id::ObjId;

/// One occupied slot.
#[derive(Debug)]
pub struct Slot<H> {
    /// The object in it.
    pub id: ObjId,
    /// Whether it is mapped writable.
    pub writable: bool,
    /// What keeps the host mapping alive (an `object_store::MappedObject` in the VMM).
    pub handle: H,
    /// When it was last mapped, in map calls since the run began (for LRU).
    last_mapped: u64,
}

/// Where a map request lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Already mapped there with enough rights.
    Hit(u32),
    /// Mapped there read-only; must be remapped writable.
    Upgrade(u32),
    /// A free slot.
    Free(u32),
    /// The least recently mapped slot, whose object must be unmapped first.
    Evict(u32),
}

/// Slots `0..budget` and their objects.
#[derive(Debug)]
pub struct SlotTable<H> {
    slots: Vec<Option<Slot<H>>>,
    by_id: HashMap<ObjId, u32>,
    clock: u64,
}

impl<H> SlotTable<H> {
    /// An empty table of `budget` slots (at least one).
    pub fn new(budget: u32) -> Self {
        SlotTable {
            slots: (0..budget.max(1)).map(|_| None).collect(),
            by_id: HashMap::new(),
            clock: 0,
        }
    }

    /// Number of slots.
    pub fn budget(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.by_id.len()
    }

    /// Decides where `id` goes for a map with (`write`) or without write rights, never evicting
    /// slot `keep`; `None` when every slot is in use and only `keep` could go.
    pub fn place(&self, id: ObjId, write: bool, keep: Option<u32>) -> Option<Placement> {
        if let Some(&s) = self.by_id.get(&id) {
            let writable = self.get(s).is_some_and(|e| e.writable);
            return Some(if write && !writable {
                Placement::Upgrade(s)
            } else {
                Placement::Hit(s)
            });
        }
        if let Some(free) = self.slots.iter().position(Option::is_none) {
            return Some(Placement::Free(free as u32));
        }
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i as u32) != keep)
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.last_mapped, i)))
            .min()
            .map(|(_, i)| Placement::Evict(i as u32))
    }

    /// Marks slot `slot` as just mapped (a hit counts as a use).
    pub fn touch(&mut self, slot: u32) {
        self.clock += 1;
        let now = self.clock;
        if let Some(Some(s)) = self.slots.get_mut(slot as usize) {
            s.last_mapped = now;
        }
    }

    /// Puts `id` in the (empty) slot `slot`.
    pub fn insert(&mut self, slot: u32, id: ObjId, writable: bool, handle: H) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some(Slot {
                id,
                writable,
                handle,
                last_mapped: 0,
            });
            self.by_id.insert(id, slot);
            self.touch(slot);
        }
    }

    /// Empties slot `slot`, returning what was there.
    pub fn remove(&mut self, slot: u32) -> Option<Slot<H>> {
        let old = self.slots.get_mut(slot as usize)?.take()?;
        self.by_id.remove(&old.id);
        Some(old)
    }

    /// The occupant of `slot`.
    pub fn get(&self, slot: u32) -> Option<&Slot<H>> {
        self.slots.get(slot as usize)?.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> ObjId {
        ObjId::from_u128(n)
    }

    #[test]
    fn same_object_same_slot_and_upgrade() {
        let mut t = SlotTable::new(4);
        assert_eq!(t.place(id(1), false, None).unwrap(), Placement::Free(0));
        t.insert(0, id(1), false, ());
        assert_eq!(t.place(id(1), false, None).unwrap(), Placement::Hit(0));
        assert_eq!(t.place(id(1), true, None).unwrap(), Placement::Upgrade(0));
        assert_eq!(t.place(id(2), true, None).unwrap(), Placement::Free(1));
    }

    #[test]
    fn evicts_the_least_recently_mapped() {
        let mut t = SlotTable::new(2);
        t.insert(0, id(1), false, ());
        t.insert(1, id(2), false, ());
        assert_eq!(t.place(id(3), false, None), Some(Placement::Evict(0)));
        assert_eq!(
            t.place(id(3), false, Some(0)),
            Some(Placement::Evict(1)),
            "kept"
        );
        t.touch(0);
        assert_eq!(t.place(id(3), false, None), Some(Placement::Evict(1)));
        let old = t.remove(1).unwrap();
        assert_eq!(old.id, id(2));
        assert_eq!(
            t.place(id(2), false, None),
            Some(Placement::Free(1)),
            "forgotten"
        );
        let mut one = SlotTable::new(1);
        one.insert(0, id(1), false, ());
        assert_eq!(one.place(id(2), false, Some(0)), None, "nothing may go");
        assert_eq!(t.in_use(), 1);
        assert!(t.remove(1).is_none());
        assert!(t.remove(99).is_none());
    }
}
