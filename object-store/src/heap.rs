//! The host's read-only view of an object's persistent allocator ([`abi::palloc`]): the summary
//! `obj show` prints and the consistency check `fsck` runs, read with `pread`.

use abi::id::ObjId;
use abi::layout::OBJ_SIZE;
use abi::palloc::{self, CheckError, HeapSummary};
use abi::txlog::ObjectMemory;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::object::ObjectFile;
use crate::store::Store;

/// One size class with free blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FreeClass {
    /// Payload bytes of a block of the class (`None`: large blocks, sizes vary).
    pub block_payload: Option<u64>,
    /// Free blocks.
    pub blocks: u64,
    /// Free payload bytes.
    pub bytes: u64,
}

/// The allocator of one object, as shown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeapView {
    /// The object has an allocator ([`abi::palloc::init`] ran).
    pub initialized: bool,
    /// First byte of the heap (the base struct lies below).
    pub heap_start: Option<u64>,
    /// Allocated blocks.
    pub used_blocks: u64,
    /// Payload bytes of allocated blocks.
    pub used_bytes: u64,
    /// Free payload bytes on all free lists.
    pub free_bytes: u64,
    /// Classes with free blocks, large blocks last.
    pub free: Vec<FreeClass>,
    /// What is wrong with the allocator, if anything.
    pub problem: Option<String>,
}

impl HeapView {
    fn from_summary(s: &HeapSummary) -> HeapView {
        let mut free: Vec<FreeClass> = s
            .free_blocks
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(c, &n)| FreeClass {
                block_payload: Some(palloc::class_payload(c)),
                blocks: n,
                bytes: n * palloc::class_payload(c),
            })
            .collect();
        if s.free_large_blocks > 0 {
            free.push(FreeClass {
                block_payload: None,
                blocks: s.free_large_blocks,
                bytes: s.free_large_bytes,
            });
        }
        HeapView {
            initialized: true,
            heap_start: Some(s.heap_start),
            used_blocks: s.used_blocks,
            used_bytes: s.used_bytes,
            free_bytes: s.free_bytes(),
            free,
            problem: None,
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        if let Some(p) = &self.problem {
            return format!("DAMAGED: {p}");
        }
        if !self.initialized {
            return "none (no persistent allocator in this object)".into();
        }
        let free: Vec<String> = self
            .free
            .iter()
            .map(|f| match f.block_payload {
                Some(p) => format!("{}x{p}", f.blocks),
                None => format!("{}x large ({} B)", f.blocks, f.bytes),
            })
            .collect();
        format!(
            "{} blocks in use ({} B), {} B free{}",
            self.used_blocks,
            self.used_bytes,
            self.free_bytes,
            if free.is_empty() {
                String::new()
            } else {
                format!(": {}", free.join(", "))
            }
        )
    }
}

/// Bytes [`FileMem`] reads at once: the block walk makes many small reads in a row.
const CHUNK: u64 = 64 << 10;

/// One object file as read-only allocator memory, read through a one-chunk cache.
struct FileMem<'a> {
    file: &'a ObjectFile,
    id: ObjId,
    /// Offset of `buf` in the object.
    at: u64,
    buf: Vec<u8>,
}

impl ObjectMemory for FileMem<'_> {
    type Error = StoreError;
    fn read(&mut self, obj: ObjId, offset: u64, buf: &mut [u8]) -> Result<()> {
        if obj != self.id {
            return Err(StoreError::NotMapped(obj));
        }
        let len = buf.len() as u64;
        let cached = |at: u64, have: usize| {
            offset >= at
                && offset
                    .checked_add(len)
                    .is_some_and(|e| e <= at + have as u64)
        };
        if !cached(self.at, self.buf.len()) {
            let start = offset & !(CHUNK - 1);
            let end = (start + CHUNK).min(OBJ_SIZE);
            if len > CHUNK || offset + len > end {
                return self.file.read_into(offset, buf);
            }
            self.buf.resize((end - start) as usize, 0);
            self.file.read_into(start, &mut self.buf)?;
            self.at = start;
        }
        let from = (offset - self.at) as usize;
        buf.copy_from_slice(&self.buf[from..from + buf.len()]);
        Ok(())
    }
    fn write(&mut self, obj: ObjId, _: u64, _: &[u8]) -> Result<()> {
        Err(StoreError::ReadOnly(obj))
    }
    fn flush(&mut self, obj: ObjId, _: u64, _: u64) -> Result<()> {
        Err(StoreError::ReadOnly(obj))
    }
    fn fence(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Checks the allocator of an opened object file.
pub(crate) fn heap_view(obj: &ObjectFile, id: ObjId) -> Result<HeapView> {
    let mut mem = FileMem {
        file: obj,
        id,
        at: 0,
        buf: Vec::new(),
    };
    match palloc::check(&mut mem, id) {
        Ok(Some(s)) => Ok(HeapView::from_summary(&s)),
        Ok(None) => Ok(HeapView::default()),
        Err(CheckError::Memory(e)) => Err(e),
        Err(e @ CheckError::Damaged { .. }) => Ok(HeapView {
            initialized: true,
            problem: Some(e.to_string()),
            ..Default::default()
        }),
    }
}

impl Store {
    /// The allocator of object `id`: usage, free blocks per class, and consistency.
    pub fn heap(&self, id: ObjId) -> Result<HeapView> {
        let obj = ObjectFile::open(&self.object_path(id), id)?;
        heap_view(&obj, id)
    }
}
