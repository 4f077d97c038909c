//! Connection numbers: the lowest free number is handed out first, so numbers stay small and
//! dense (a guest can index an array by them), and each use of a number gets a new generation so
//! a stale epoll event for an earlier holder is recognised and ignored.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A table of values indexed by small reusable numbers.
#[derive(Debug)]
pub struct Table<T> {
    slots: Vec<Option<T>>,
    free: BinaryHeap<Reverse<u32>>,
    generation: u32,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            free: BinaryHeap::new(),
            generation: 0,
            len: 0,
        }
    }
}

impl<T> Table<T> {
    /// Entries in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Numbers handed out so far (in use or free): every entry is below this.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// A fresh generation number for the next entry.
    pub fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        self.generation
    }

    /// Stores `value` under the lowest free number and returns it.
    pub fn insert(&mut self, value: T) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(Reverse(n)) => {
                self.slots[n as usize] = Some(value);
                n
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// The entry under `n`, if any.
    pub fn get_mut(&mut self, n: u64) -> Option<&mut T> {
        self.slots.get_mut(usize::try_from(n).ok()?)?.as_mut()
    }

    /// Removes and returns the entry under `n`; the number becomes free.
    pub fn remove(&mut self, n: u32) -> Option<T> {
        let v = self.slots.get_mut(n as usize)?.take()?;
        self.free.push(Reverse(n));
        self.len -= 1;
        Some(v)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_number_is_reused_first() {
        let mut t = Table::default();
        assert_eq!((t.insert('a'), t.insert('b'), t.insert('c')), (0, 1, 2));
        assert_eq!(t.remove(2), Some('c'));
        assert_eq!(t.remove(0), Some('a'));
        assert_eq!(t.remove(0), None, "twice");
        assert_eq!(t.insert('d'), 0);
        assert_eq!(t.insert('e'), 2);
        assert_eq!(t.insert('f'), 3);
        assert_eq!(t.len(), 4);
        assert_eq!(t.get_mut(1).copied(), Some('b'));
        assert_eq!(t.get_mut(u64::MAX), None);
        assert_eq!(t.get_mut(99), None);
        assert_ne!(t.next_generation(), t.next_generation());
    }
}
