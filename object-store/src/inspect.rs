//! Read-only inspection for people and scripts: listings, full object reports, FOT tables and
//! raw bytes. Never maps an object writable, never needs a guest, never changes the store.

use std::collections::HashMap;

use abi::fot::{self, FotEntry, FotTarget};
use abi::id::ObjId;
use abi::layout::{BASE_OFFSET, OBJ_SIZE};
use abi::meta::{self, ObjMeta};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::fsutil::hex;
use crate::lock::LockMode;
use crate::object::{check_range, ObjectFile};
use crate::store::Store;

/// Largest range [`Store::dump`] returns at once.
pub const MAX_DUMP_LEN: u64 = 64 << 20;

/// One line of `obj ls`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's ID (32 hex digits).
    pub id: String,
    /// Names bound to it.
    pub names: Vec<String>,
    /// Bytes in use: `alloc_top - BASE_OFFSET` (absent if the header is damaged).
    pub size_in_use: Option<u64>,
    /// `raw` (a byte stream, such as an imported file) or `structured` (absent if damaged).
    pub kind: Option<&'static str>,
    /// First 8 bytes of the owner's public key, in hex.
    pub owner_key: Option<String>,
    /// The store key that owns it, if the key is in this store.
    pub owner_key_name: Option<String>,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: Option<u64>,
    /// What is wrong with it, if it is damaged.
    pub problem: Option<String>,
}

/// The metadata header, as shown.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HeaderView {
    /// Magic number, hex.
    pub magic: String,
    /// Format version.
    pub version: u32,
    /// Header size in bytes.
    pub header_size: u32,
    /// The ID nonce, hex.
    pub nonce: String,
    /// The owner's full public key, hex.
    pub owner_key: String,
    /// Raw flags.
    pub flags: u64,
    /// Names of the set flags.
    pub flag_names: Vec<&'static str>,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// First unallocated offset.
    pub alloc_top: u64,
    /// One past the highest FOT index used.
    pub fot_len: u32,
}

/// One FOT entry, as shown.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FotRow {
    /// Index in the table.
    pub index: u32,
    /// Names of the set flags (`valid`, `named`, `deleted`).
    pub flags: Vec<&'static str>,
    /// Requested rights as `rwxu` letters, `-` for absent ones.
    pub perms: String,
    /// The target ID of a by-ID entry, or what a named entry resolves to now.
    pub target_id: Option<String>,
    /// The target name of a named entry.
    pub target_name: Option<String>,
    /// Whether the target object exists in this store.
    pub target_exists: bool,
    /// Names bound to the target object.
    pub target_names: Vec<String>,
    /// What is wrong with the entry.
    pub problem: Option<String>,
}

/// Everything `obj show` prints.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ObjectReport {
    /// The listing line.
    #[serde(flatten)]
    pub info: ObjectInfo,
    /// The object's file.
    pub path: String,
    /// The header.
    pub header: HeaderView,
    /// Entries in use (or damaged) in the FOT.
    pub fot: Vec<FotRow>,
    /// Integrity problems found (empty when healthy).
    pub problems: Vec<String>,
    /// The transaction log's state.
    pub log: crate::recovery::TxView,
    /// The persistent allocator (not checked while a transaction is unfinished: its metadata
    /// may be mid-update).
    pub heap: crate::heap::HeapView,
}

/// `rwxu` letters for a permission mask.
pub fn perms_string(p: u32) -> String {
    [
        (fot::perms::READ, 'r'),
        (fot::perms::WRITE, 'w'),
        (fot::perms::EXEC, 'x'),
        (fot::perms::USE, 'u'),
    ]
    .iter()
    .map(|&(bit, c)| if p & bit != 0 { c } else { '-' })
    .collect()
}

/// Parses `rwxu` letters (any order, any subset) into a permission mask.
pub fn parse_perms(s: &str) -> Option<u32> {
    s.chars().try_fold(0u32, |acc, c| {
        let bit = match c {
            'r' => fot::perms::READ,
            'w' => fot::perms::WRITE,
            'x' => fot::perms::EXEC,
            'u' => fot::perms::USE,
            '-' => 0,
            _ => return None,
        };
        Some(acc | bit)
    })
}

fn fot_flag_names(f: u32) -> Vec<&'static str> {
    [
        (fot::flags::VALID, "valid"),
        (fot::flags::NAMED, "named"),
        (fot::flags::DELETED, "deleted"),
    ]
    .iter()
    .filter(|&&(bit, _)| f & bit != 0)
    .map(|&(_, n)| n)
    .collect()
}

/// The store-wide context a report needs: who is named what, which key is whose.
pub(crate) struct Directory {
    names_by_id: HashMap<ObjId, Vec<String>>,
    names: HashMap<String, ObjId>,
    key_names: HashMap<[u8; 32], String>,
}

impl Directory {
    pub(crate) fn load(store: &Store) -> Result<Directory> {
        let mut names_by_id: HashMap<ObjId, Vec<String>> = HashMap::new();
        let mut names = HashMap::new();
        for e in store.list_names()? {
            if let Ok(id) = e.target {
                names_by_id.entry(id).or_default().push(e.name.clone());
                names.insert(e.name, id);
            }
        }
        let key_names = store
            .list_keys()?
            .into_iter()
            .filter_map(|k| k.public.ok().map(|p| (p, k.name)))
            .collect();
        Ok(Directory {
            names_by_id,
            names,
            key_names,
        })
    }

    fn names_of(&self, id: ObjId) -> Vec<String> {
        self.names_by_id.get(&id).cloned().unwrap_or_default()
    }

    fn info(&self, id: ObjId, meta: Option<&ObjMeta>, problem: Option<String>) -> ObjectInfo {
        ObjectInfo {
            id: id.to_string(),
            names: self.names_of(id),
            size_in_use: meta.map(|m| m.alloc_top - BASE_OFFSET),
            kind: meta.map(crate::raw::kind_of),
            owner_key: meta.map(|m| hex(&m.owner_key[..8])),
            owner_key_name: meta.and_then(|m| self.key_names.get(&m.owner_key).cloned()),
            created_ns: meta.map(|m| m.created_ns),
            problem,
        }
    }

    /// The rows of every non-empty FOT slot, with the problems of each.
    pub(crate) fn fot_rows(&self, store: &Store, obj: &ObjectFile) -> Result<Vec<FotRow>> {
        let fot_len = obj.meta().fot_len;
        let slots = obj.fot_slots()?;
        let mut rows = Vec::new();
        for (index, e) in slots.iter().enumerate().skip(1) {
            if *e == FotEntry::EMPTY {
                continue;
            }
            let index = index as u32;
            let mut row = FotRow {
                index,
                flags: fot_flag_names(e.flags),
                perms: perms_string(e.perms),
                target_id: None,
                target_name: None,
                target_exists: false,
                target_names: Vec::new(),
                problem: None,
            };
            let target_id = match e.target() {
                Ok(Some(FotTarget::Id(id))) => Some(id),
                Ok(Some(FotTarget::Name(n))) => {
                    row.target_name = Some(n.to_string());
                    self.names.get(n).copied()
                }
                Ok(None) => None,
                Err(err) => {
                    row.problem = Some(err.to_string());
                    None
                }
            };
            if let Some(id) = target_id {
                row.target_id = Some(id.to_string());
                row.target_exists = store.contains(id);
                row.target_names = self.names_of(id);
            }
            if row.problem.is_none() && e.is_live() && index >= fot_len {
                row.problem = Some(format!(
                    "in use but past the end of the table (fot_len {fot_len})"
                ));
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

fn header_view(m: &ObjMeta) -> HeaderView {
    HeaderView {
        magic: format!("{:#018x}", m.magic),
        version: m.version,
        header_size: m.header_size,
        nonce: hex(&m.nonce),
        owner_key: hex(&m.owner_key),
        flags: m.flags,
        flag_names: if m.flags & meta::flags::RAW != 0 {
            vec!["raw"]
        } else {
            vec![]
        },
        created_ns: m.created_ns,
        alloc_top: m.alloc_top,
        fot_len: m.fot_len,
    }
}

/// The FOT problems of a report as one-line sentences.
pub fn fot_problems(rows: &[FotRow]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            r.problem
                .as_ref()
                .map(|p| format!("FOT entry {}: {p}", r.index))
        })
        .collect()
}

impl Store {
    /// One [`ObjectInfo`] per object file, damaged ones included (with their problem).
    pub fn list_objects(&self) -> Result<Vec<ObjectInfo>> {
        let _lock = self.lock(LockMode::Shared)?;
        let dir = Directory::load(self)?;
        let scan = self.scan_objects()?;
        Ok(scan
            .objects
            .iter()
            .map(|(id, path)| match ObjectFile::open(path, *id) {
                Ok(o) => dir.info(*id, Some(o.meta()), None),
                Err(e) => dir.info(*id, None, Some(problem_text(e))),
            })
            .collect())
    }

    /// Everything known about object `id`. A damaged header is an error; FOT damage is listed
    /// in [`ObjectReport::problems`].
    pub fn show(&self, id: ObjId) -> Result<ObjectReport> {
        let obj = ObjectFile::open(&self.object_path(id), id)?;
        let dir = Directory::load(self)?;
        let fot = dir.fot_rows(self, &obj)?;
        let log = self.tx_view(id)?;
        let mut problems = fot_problems(&fot);
        problems.extend(log.problem.clone());
        let heap = if crate::raw::is_raw(obj.meta()) {
            // A byte stream has no allocator; its bytes are not heap metadata.
            crate::heap::HeapView::default()
        } else if log.pending.is_none() && log.problem.is_none() {
            crate::heap::heap_view(&obj, id)?
        } else {
            crate::heap::HeapView {
                problem: Some("not checked: a transaction is unfinished".into()),
                ..Default::default()
            }
        };
        if log.pending.is_none() {
            problems.extend(heap.problem.clone());
        }
        Ok(ObjectReport {
            info: dir.info(id, Some(obj.meta()), None),
            path: obj.path().display().to_string(),
            header: header_view(obj.meta()),
            problems,
            fot,
            log,
            heap,
        })
    }

    /// The FOT rows of object `id`.
    pub fn fot(&self, id: ObjId) -> Result<Vec<FotRow>> {
        let obj = ObjectFile::open(&self.object_path(id), id)?;
        Directory::load(self)?.fot_rows(self, &obj)
    }

    /// `len` bytes of object `id` at `offset` (at most [`MAX_DUMP_LEN`]).
    pub fn dump(&self, id: ObjId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let obj = ObjectFile::open(&self.object_path(id), id)?;
        check_range(id, offset, len, "the object", 0, OBJ_SIZE)?;
        if len > MAX_DUMP_LEN {
            return Err(StoreError::OutOfBounds {
                id,
                offset,
                len,
                region: "one dump (at most 64 MiB)",
                start: offset,
                limit: offset + MAX_DUMP_LEN,
            });
        }
        obj.read(offset, len)
    }
}

/// The problem part of an object error (the subject is shown separately).
pub(crate) fn problem_text(e: StoreError) -> String {
    match e {
        StoreError::Corrupt { problem, .. } => problem,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_round_trip() {
        for p in 0..=fot::perms::ALL {
            assert_eq!(parse_perms(&perms_string(p)), Some(p));
        }
        assert_eq!(
            parse_perms("rw"),
            Some(fot::perms::READ | fot::perms::WRITE)
        );
        assert_eq!(parse_perms("rz"), None);
    }
}
