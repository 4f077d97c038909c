//! Arguments and environment, from the string tables the VMM wrote into the argument area.
//!
//! Every pointer is checked against the argument area before it is followed, so a malformed
//! table yields missing entries, never a fault.

use abi::memmap::{ARGS_ADDR, ARGS_SIZE};

/// An array of `count` pointers at guest address `array` to NUL-terminated strings, all inside
/// `area` (which starts at guest address `base`).
#[derive(Clone, Copy, Debug)]
pub struct StringTable<'a> {
    area: &'a [u8],
    base: u64,
    array: u64,
    count: u64,
}

impl<'a> StringTable<'a> {
    /// Describes a table; nothing is read yet.
    pub const fn new(area: &'a [u8], base: u64, array: u64, count: u64) -> Self {
        StringTable {
            area,
            base,
            array,
            count,
        }
    }

    /// An empty table.
    pub const fn empty() -> StringTable<'static> {
        StringTable {
            area: &[],
            base: 0,
            array: 0,
            count: 0,
        }
    }

    /// Number of entries claimed by the table.
    pub fn len(&self) -> usize {
        self.count.min(usize::MAX as u64) as usize
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn offset(&self, addr: u64, len: u64) -> Option<usize> {
        let off = addr.checked_sub(self.base)?;
        let end = off.checked_add(len)?;
        if end > self.area.len() as u64 {
            return None;
        }
        Some(off as usize)
    }

    /// Entry `i` as bytes (without the NUL), or `None` if it or its pointer lies outside the area
    /// or the string is not terminated inside it.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i as u64 >= self.count {
            return None;
        }
        let slot = self.array.checked_add((i as u64).checked_mul(8)?)?;
        let at = self.offset(slot, 8)?;
        let mut p = [0u8; 8];
        p.copy_from_slice(&self.area[at..at + 8]);
        let start = self.offset(u64::from_le_bytes(p), 0)?;
        let rest = &self.area[start..];
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }

    /// Entry `i` as text; invalid UTF-8 yields `None` like a missing entry.
    pub fn get_str(&self, i: usize) -> Option<&'a str> {
        core::str::from_utf8(self.get(i)?).ok()
    }

    /// All entries as text, in order; unreadable or non-UTF-8 entries are skipped.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).filter_map(|i| self.get_str(i))
    }

    /// The value of `KEY=VALUE` entry whose key is `key`.
    pub fn lookup(&self, key: &str) -> Option<&'a str> {
        self.iter().find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then_some(v)
        })
    }
}

fn area() -> &'static [u8] {
    let b = crate::boot::info();
    if b.argv == 0 && b.envp == 0 {
        return &[];
    }
    // SAFETY: the VMM maps the argument area readable for the whole run and never changes it
    // after boot.
    unsafe { core::slice::from_raw_parts(ARGS_ADDR as *const u8, ARGS_SIZE as usize) }
}

/// The program's arguments, including its name at index 0.
pub fn args() -> StringTable<'static> {
    let b = crate::boot::info();
    StringTable::new(area(), ARGS_ADDR, b.argv, b.argc)
}

/// The environment, `KEY=VALUE` strings.
pub fn vars() -> StringTable<'static> {
    let b = crate::boot::info();
    StringTable::new(area(), ARGS_ADDR, b.envp, b.envc)
}

/// The value of environment variable `key`.
pub fn var(key: &str) -> Option<&'static str> {
    vars().lookup(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Lays out `strings` like the VMM does: pointer array first, then the strings.
    fn table(base: u64, strings: &[&[u8]]) -> Vec<u8> {
        let mut area = alloc::vec![0u8; strings.len() * 8];
        for (i, s) in strings.iter().enumerate() {
            let addr = base + area.len() as u64;
            area[i * 8..i * 8 + 8].copy_from_slice(&addr.to_le_bytes());
            area.extend_from_slice(s);
            area.push(0);
        }
        area
    }

    #[test]
    fn reads_well_formed_tables() {
        let area = table(0x1000, &[b"hello", b"alice", b"", b"bob"]);
        let t = StringTable::new(&area, 0x1000, 0x1000, 4);
        let all: Vec<&str> = t.iter().collect();
        assert_eq!(all, ["hello", "alice", "", "bob"]);
        assert_eq!(t.get(4), None);
    }

    #[test]
    fn looks_up_environment() {
        let area = table(0, &[b"A=1", b"PATH=/x=y", b"NOEQ"]);
        let t = StringTable::new(&area, 0, 0, 3);
        assert_eq!(t.lookup("PATH"), Some("/x=y"));
        assert_eq!(t.lookup("A"), Some("1"));
        assert_eq!(t.lookup("NOEQ"), None);
        assert_eq!(t.lookup("B"), None);
    }

    #[test]
    fn malformed_tables_yield_nothing() {
        let mut area = table(0x100, &[b"ok", b"unterminated"]);
        area.pop(); // drop the last NUL
        let t = StringTable::new(&area, 0x100, 0x100, 2);
        assert_eq!(t.get_str(0), Some("ok"));
        assert_eq!(t.get(1), None, "no terminator inside the area");
        // A count larger than the area, an array outside it, a pointer below the base.
        assert_eq!(
            StringTable::new(&area, 0x100, 0x100, u64::MAX).get(1000),
            None
        );
        assert_eq!(StringTable::new(&area, 0x100, 0x50, 1).get(0), None);
        assert_eq!(StringTable::new(&area, 0x100, u64::MAX - 3, 2).get(1), None);
        let mut bad = table(0x100, &[b"x"]);
        bad[..8].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(StringTable::new(&bad, 0x100, 0x100, 1).get(0), None);
        let non_utf8 = table(0, &[b"\xff\xfe", b"fine"]);
        let t = StringTable::new(&non_utf8, 0, 0, 2);
        assert_eq!(t.iter().collect::<Vec<_>>(), ["fine"]);
    }
}
