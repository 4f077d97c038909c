//! Finding and adding Foreign Object Table entries.
//!
//! `fot_len` in the object's metadata is one past the highest index in use (host tools read
//! entries up to it). Adding an entry reuses a live entry with the same target and rights (dedup),
//! else the first never-used index below `fot_len`, else `fot_len` itself. Deleted entries are not
//! reused: pointers may still hold their index.
//!
//! Adding is not logged, so its writes are ordered for a crash at any point: `fot_len` grows
//! first, then the entry is written with its flags last. A crash leaves either a never-used
//! entry inside the table (reused by the next insertion) or a complete one, never a live entry
//! past `fot_len` or a torn live one.

use abi::fot::{FotEntry, FLAGS_OFFSET as FLAGS_AT};
use abi::layout::{fot_entry_offset, FOT_SLOTS, META_OFFSET};

use super::ObjError;

/// Byte offset of `ObjMeta::fot_len` in an object.
pub const META_FOT_LEN: u64 = META_OFFSET + 104;

/// A FOT to search and extend.
pub trait FotTable {
    /// `fot_len`.
    fn fot_len(&self) -> u32;
    /// Sets `fot_len`.
    fn set_fot_len(&mut self, len: u32);
    /// Entry `index` (1..FOT_SLOTS).
    fn entry(&self, index: u32) -> FotEntry;
    /// Writes entry `index`; its flags word (what makes it live) becomes visible last.
    fn set_entry(&mut self, index: u32, entry: &FotEntry);
}

/// Whether two live entries lead to the same place with the same rights.
fn same_target(a: &FotEntry, b: &FotEntry) -> bool {
    a.is_live()
        && a.flags == b.flags
        && a.perms == b.perms
        && a.id == b.id
        && a.name_len == b.name_len
        && a.name == b.name
}

/// The index of an entry equal to `want`, adding it if there is none.
pub fn find_or_insert(table: &mut impl FotTable, want: &FotEntry) -> Result<u32, ObjError> {
    let len = table.fot_len().min(FOT_SLOTS);
    let mut free = None;
    for i in 1..len {
        let e = table.entry(i);
        if same_target(&e, want) {
            return Ok(i);
        }
        if e.flags == 0 && free.is_none() {
            free = Some(i);
        }
    }
    let index = match free {
        Some(i) => i,
        None if len.max(1) < FOT_SLOTS => len.max(1),
        None => return Err(ObjError::FotFull),
    };
    if index >= table.fot_len() {
        table.set_fot_len(index + 1);
    }
    table.set_entry(index, want);
    Ok(index)
}

/// The FOT of the object mapped at guest address `base` (read and written in place).
pub struct MappedFot {
    /// Guest address of the object.
    pub base: u64,
}

impl FotTable for MappedFot {
    fn fot_len(&self) -> u32 {
        // SAFETY: `base` is a mapped object's address; the metadata page is inside it.
        unsafe { core::ptr::read_volatile((self.base + META_FOT_LEN) as *const u32) }
    }

    fn set_fot_len(&mut self, len: u32) {
        // SAFETY: as above; the object is mapped writable (callers check).
        unsafe { core::ptr::write_volatile((self.base + META_FOT_LEN) as *mut u32, len) }
    }

    fn entry(&self, index: u32) -> FotEntry {
        read_entry(self.base, index).unwrap_or(FotEntry::EMPTY)
    }

    fn set_entry(&mut self, index: u32, entry: &FotEntry) {
        if let Some(off) = fot_entry_offset(index) {
            let mut bytes = entry.to_bytes();
            bytes[FLAGS_AT..FLAGS_AT + 4].fill(0);
            // SAFETY: the entry lies inside the mapped object's FOT region; writable per caller.
            // Volatile stores are not reordered with each other, and x86 keeps store order, so
            // the flags land after the rest of the entry.
            unsafe {
                core::ptr::write_volatile((self.base + off) as *mut [u8; 128], bytes);
                core::ptr::write_volatile(
                    (self.base + off + FLAGS_AT as u64) as *mut u32,
                    entry.flags.to_le(),
                );
            }
        }
    }
}

/// Reads entry `index` of the object at `base`; `None` for index 0 or beyond the table.
pub fn read_entry(base: u64, index: u32) -> Option<FotEntry> {
    let off = fot_entry_offset(index)?;
    // SAFETY: `base` is a mapped object's address and the entry lies inside its FOT region.
    let bytes = unsafe { core::ptr::read_volatile((base + off) as *const [u8; 128]) };
    Some(FotEntry::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::fot::{flags, perms};
    use abi::id::ObjId;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    #[derive(Default)]
    struct Table {
        len: u32,
        entries: BTreeMap<u32, FotEntry>,
        /// The writes, in order.
        log: Vec<&'static str>,
    }

    impl FotTable for Table {
        fn fot_len(&self) -> u32 {
            self.len
        }
        fn set_fot_len(&mut self, len: u32) {
            self.log.push("len");
            self.len = len;
        }
        fn entry(&self, index: u32) -> FotEntry {
            self.entries.get(&index).copied().unwrap_or(FotEntry::EMPTY)
        }
        fn set_entry(&mut self, index: u32, entry: &FotEntry) {
            self.log.push("entry");
            self.entries.insert(index, *entry);
        }
    }

    #[test]
    fn the_table_grows_before_the_entry_is_written() {
        let mut t = Table::default();
        let a = FotEntry::by_id(ObjId::from_u128(1), perms::READ);
        find_or_insert(&mut t, &a).unwrap();
        assert_eq!(
            t.log,
            ["len", "entry"],
            "a crash between must not leave a live entry past the end"
        );
    }

    #[test]
    fn same_target_is_reused() {
        let mut t = Table::default();
        let a = FotEntry::by_id(ObjId::from_u128(1), perms::READ);
        let b = FotEntry::by_id(ObjId::from_u128(2), perms::READ);
        assert_eq!(find_or_insert(&mut t, &a), Ok(1));
        assert_eq!(t.len, 2);
        assert_eq!(find_or_insert(&mut t, &b), Ok(2));
        assert_eq!(find_or_insert(&mut t, &a), Ok(1), "dedup");
        let rw = FotEntry::by_id(ObjId::from_u128(1), perms::READ | perms::WRITE);
        assert_eq!(
            find_or_insert(&mut t, &rw),
            Ok(3),
            "other rights, other entry"
        );
        let named = FotEntry::by_name("people", perms::READ).unwrap();
        assert_eq!(find_or_insert(&mut t, &named), Ok(4));
        assert_eq!(find_or_insert(&mut t, &named), Ok(4));
        assert_eq!(t.len, 5);
    }

    #[test]
    fn holes_are_filled_but_deleted_entries_kept() {
        let mut t = Table {
            len: 4,
            ..Default::default()
        };
        let mut dead = FotEntry::by_id(ObjId::from_u128(9), perms::READ);
        dead.flags |= flags::DELETED;
        t.entries.insert(1, dead);
        let a = FotEntry::by_id(ObjId::from_u128(9), perms::READ);
        assert_eq!(find_or_insert(&mut t, &a), Ok(2), "not the deleted 1");
        assert_eq!(t.len, 4);
    }

    #[test]
    fn full_tables_are_an_error() {
        let mut t = Table {
            len: FOT_SLOTS,
            ..Default::default()
        };
        for i in 1..FOT_SLOTS {
            t.entries.insert(
                i,
                FotEntry::by_id(ObjId::from_u128(u128::from(i)), perms::READ),
            );
        }
        let a = FotEntry::by_id(ObjId::from_u128(1 << 40), perms::READ);
        assert_eq!(find_or_insert(&mut t, &a), Err(ObjError::FotFull));
    }
}
