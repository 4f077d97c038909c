//! The persistent allocator: blocks inside one object's data region whose metadata survives
//! crashes, because every metadata change is recorded in the caller's [`Tx`] before it is made.
//! An aborted (or crashed and recovered) transaction leaves the allocator exactly as it was.
//!
//! ```text
//!  ALLOC_OFFSET (metadata page, after ObjMeta)     data region
//!  +------------------------------+                BASE_OFFSET +----------------------+
//!  | magic, version, classes      |                            | base struct          |
//!  | heap_start                   |  heap_start -------------> +----------------------+
//!  | large_head  --> free large   |                            | [hdr 16 B][payload]  | a block
//!  | heads[40]   --> free blocks  |                            | [hdr][payload] ...   |
//!  +------------------------------+  ObjMeta::alloc_top -----> +----------------------+ bump
//! ```
//! Every block starts with a 16-byte header: its total size (header included) and a tag that
//! says "allocated" or "free" and is bound to the block's offset and size, so freeing something
//! that is not a block, or freeing twice, is a typed error instead of corruption. Blocks tile
//! `heap_start..alloc_top` without gaps, so a checker can walk them all ([`check`]).
//!
//! Sizes: 4 classes per power of two (16, 32, 48, 64, 80, ..., 128, 160, ..., 32 KiB of
//! payload), each with a LIFO free list whose head lives in the allocator header and whose
//! links live in the first payload word of free blocks. A class allocation pops its list or
//! bumps `alloc_top`; larger requests take the first fitting block of the large free list
//! (splitting off its tail when the rest stays large) or bump. Payloads are 16-byte aligned.
//! Cost in log entries: alloc from a list 2, alloc by bump 1, free 2.
//!
//! ```
//! use abi::palloc;
//! use abi::txlog::{ObjectMemory, Tx};
//! use abi::{boot::durability, id::ObjId};
//! # struct Mem(std::collections::HashMap<u64, u8>);
//! # impl ObjectMemory for Mem {
//! #     type Error = core::convert::Infallible;
//! #     fn read(&mut self, _o: ObjId, off: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
//! #         for (i, b) in buf.iter_mut().enumerate() { *b = *self.0.get(&(off + i as u64)).unwrap_or(&0); }
//! #         Ok(())
//! #     }
//! #     fn write(&mut self, _o: ObjId, off: u64, data: &[u8]) -> Result<(), Self::Error> {
//! #         for (i, b) in data.iter().enumerate() { self.0.insert(off + i as u64, *b); }
//! #         Ok(())
//! #     }
//! #     fn flush(&mut self, _o: ObjId, _off: u64, _len: u64) -> Result<(), Self::Error> { Ok(()) }
//! #     fn fence(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! # }
//! let obj = ObjId::from_u128(1);
//! let mut mem = Mem(Default::default());
//! let mut tx = Tx::begin(&mut mem, obj, durability::NONE).unwrap();
//! palloc::init(&mut mem, &mut tx, obj, 64).unwrap();          // a 64-byte base struct
//! let a = palloc::alloc(&mut mem, &mut tx, obj, 100).unwrap();
//! palloc::free(&mut mem, &mut tx, obj, a).unwrap();
//! assert_eq!(palloc::alloc(&mut mem, &mut tx, obj, 110).unwrap(), a); // same class: reused
//! tx.commit(&mut mem).unwrap();
//! assert_eq!(palloc::check(&mut mem, obj).unwrap().unwrap().used_blocks, 1);
//! ```

use core::fmt;

use crate::boot::durability;
use crate::id::ObjId;
use crate::layout::{ALLOC_OFFSET, ALLOC_SIZE, BASE_OFFSET, DATA_END, META_ALLOC_TOP};
use crate::txlog::{ObjectMemory, Tx, TxError};

/// `b"TWZALLOC"` read little-endian.
pub const ALLOC_MAGIC: u64 = u64::from_le_bytes(*b"TWZALLOC");
/// The allocator format version this module describes.
pub const ALLOC_VERSION: u32 = 1;
/// Number of size classes.
pub const NCLASSES: usize = 40;
/// Largest payload served by a size class; larger requests are large blocks.
pub const MAX_CLASS_PAYLOAD: u64 = 32 << 10;
/// Size of a block header; payloads start this far into their block.
pub const BLOCK_HEADER: u64 = 16;
/// Alignment of blocks and payloads.
pub const ALIGN: u64 = 16;

const H_MAGIC: u64 = ALLOC_OFFSET;
const H_VERSION: u64 = ALLOC_OFFSET + 8;
const H_HEAP_START: u64 = ALLOC_OFFSET + 16;
const H_LARGE: u64 = ALLOC_OFFSET + 24;
const H_HEADS: u64 = ALLOC_OFFSET + 32;
const HEADER_BYTES: u64 = H_HEADS + NCLASSES as u64 * 8 - ALLOC_OFFSET;
const _: () = assert!(HEADER_BYTES <= ALLOC_SIZE);

const TAG_USED: u64 = 0x5553_4544_b10c_7a95;
const TAG_FREE: u64 = 0x4652_4545_b10c_3c61;

/// The tag of a block header: its state, bound to where the block is and how big it is.
#[inline]
const fn tag(state: u64, block: u64, size: u64) -> u64 {
    state ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ size.rotate_left(32)
}

/// The size class of a payload of `n` bytes, or `None` for a large block.
#[inline]
pub const fn class_of(n: u64) -> Option<usize> {
    let n = if n == 0 { 1 } else { n };
    if n <= 64 {
        return Some((n.div_ceil(16) - 1) as usize);
    }
    if n > MAX_CLASS_PAYLOAD {
        return None;
    }
    // n lies in (2^k, 2^(k+1)], split into 4 steps of 2^(k-2).
    let k = 63 - (n - 1).leading_zeros() as u64;
    let step = 1u64 << (k - 2);
    let i = (n - (1u64 << k)).div_ceil(step) - 1;
    Some((4 + (k - 6) * 4 + i) as usize)
}

/// The payload size of class `c` (`c < NCLASSES`).
#[inline]
pub const fn class_payload(c: usize) -> u64 {
    if c < 4 {
        16 * (c as u64 + 1)
    } else {
        let k = 6 + (c as u64 - 4) / 4;
        let i = (c as u64 - 4) % 4;
        (1u64 << k) + (i + 1) * (1u64 << (k - 2))
    }
}

/// Why an allocator operation failed. Nothing was changed that the transaction cannot undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError<E> {
    /// Recording in the transaction, or memory access, failed.
    Tx(TxError<E>),
    /// The object has no room for the request ("object full").
    Full {
        /// Bytes requested.
        requested: u64,
        /// Bytes left for bump allocation.
        available: u64,
    },
    /// The object's allocator was never initialised ([`init`]).
    NotInitialized,
    /// [`init`] on an object that already has an allocator.
    AlreadyInitialized,
    /// `free` of an offset that is not the payload of an allocated block.
    NotABlock {
        /// The offset passed.
        offset: u64,
    },
    /// `free` of a block that is already free.
    DoubleFree {
        /// The offset passed.
        offset: u64,
    },
    /// The allocator's metadata is damaged.
    Corrupt {
        /// Where (offset in the object).
        at: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl<E> From<TxError<E>> for AllocError<E> {
    fn from(e: TxError<E>) -> Self {
        AllocError::Tx(e)
    }
}

impl<E: fmt::Display> fmt::Display for AllocError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Tx(e) => write!(f, "{e}"),
            AllocError::Full {
                requested,
                available,
            } => write!(
                f,
                "object full: cannot allocate {requested} bytes ({available} bytes left)"
            ),
            AllocError::NotInitialized => write!(f, "the object has no allocator"),
            AllocError::AlreadyInitialized => write!(f, "the object already has an allocator"),
            AllocError::NotABlock { offset } => {
                write!(f, "free of {offset:#x}: not an allocated block")
            }
            AllocError::DoubleFree { offset } => {
                write!(f, "free of {offset:#x}: block is already free")
            }
            AllocError::Corrupt { at, what } => write!(f, "allocator damaged at {at:#x}: {what}"),
        }
    }
}

fn rd<M: ObjectMemory>(mem: &mut M, obj: ObjId, off: u64) -> Result<u64, AllocError<M::Error>> {
    let mut b = [0u8; 8];
    mem.read(obj, off, &mut b)
        .map_err(|e| AllocError::Tx(TxError::Memory(e)))?;
    Ok(u64::from_le_bytes(b))
}

fn wr<M: ObjectMemory>(
    mem: &mut M,
    obj: ObjId,
    off: u64,
    v: u64,
) -> Result<(), AllocError<M::Error>> {
    mem.write(obj, off, &v.to_le_bytes())
        .map_err(|e| AllocError::Tx(TxError::Memory(e)))
}

/// Records the word at `off`, then stores `v` there.
#[inline]
fn set<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    off: u64,
    v: u64,
) -> Result<(), AllocError<M::Error>> {
    tx.record(mem, obj, off, 8)?;
    wr(mem, obj, off, v)
}

/// The heap start of an initialised allocator.
fn heap_start<M: ObjectMemory>(mem: &mut M, obj: ObjId) -> Result<u64, AllocError<M::Error>> {
    if rd(mem, obj, H_MAGIC)? != ALLOC_MAGIC {
        return Err(AllocError::NotInitialized);
    }
    rd(mem, obj, H_HEAP_START)
}

/// Sets up the allocator of `obj`: its base struct takes `base_size` bytes at `BASE_OFFSET`
/// (or everything below the current `alloc_top`, if that is higher), the heap starts after it.
pub fn init<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    base_size: u64,
) -> Result<(), AllocError<M::Error>> {
    if rd(mem, obj, H_MAGIC)? != 0 {
        return Err(AllocError::AlreadyInitialized);
    }
    let top = rd(mem, obj, META_ALLOC_TOP)?;
    let want = BASE_OFFSET
        .checked_add(base_size)
        .map(|e| e.max(top))
        .and_then(|e| e.checked_add(ALIGN - 1))
        .map(|e| e & !(ALIGN - 1))
        .filter(|&e| e <= DATA_END)
        .ok_or(AllocError::Full {
            requested: base_size,
            available: DATA_END.saturating_sub(top),
        })?;
    tx.record(mem, obj, ALLOC_OFFSET, HEADER_BYTES)?;
    let mut raw = [0u8; HEADER_BYTES as usize];
    raw[8..12].copy_from_slice(&ALLOC_VERSION.to_le_bytes());
    raw[12..16].copy_from_slice(&(NCLASSES as u32).to_le_bytes());
    raw[16..24].copy_from_slice(&want.to_le_bytes());
    mem.write(obj, ALLOC_OFFSET + 8, &raw[8..])
        .map_err(|e| AllocError::Tx(TxError::Memory(e)))?;
    wr(mem, obj, H_MAGIC, ALLOC_MAGIC)?;
    if want != top {
        set(mem, tx, obj, META_ALLOC_TOP, want)?;
    }
    Ok(())
}

/// Allocates `size` bytes in `obj`; returns the payload's offset (16-byte aligned). The
/// contents are whatever was there.
pub fn alloc<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    size: u64,
) -> Result<u64, AllocError<M::Error>> {
    let start = heap_start(mem, obj)?;
    match class_of(size) {
        Some(c) => {
            let head_at = H_HEADS + c as u64 * 8;
            let block = rd(mem, obj, head_at)?;
            let bsize = class_payload(c) + BLOCK_HEADER;
            if block == 0 {
                return bump(mem, tx, obj, start, bsize, size);
            }
            take_free(mem, tx, obj, start, block, bsize)?;
            let next = rd(mem, obj, block + BLOCK_HEADER)?;
            set(mem, tx, obj, head_at, next)?;
            Ok(block + BLOCK_HEADER)
        }
        None => alloc_large(mem, tx, obj, start, size),
    }
}

/// Checks that `block` is a free block of `bsize` bytes and marks it allocated.
fn take_free<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    start: u64,
    block: u64,
    bsize: u64,
) -> Result<(), AllocError<M::Error>> {
    let top = rd(mem, obj, META_ALLOC_TOP)?;
    let fits = block >= start && block.is_multiple_of(ALIGN) && block.saturating_add(bsize) <= top;
    if !fits
        || rd(mem, obj, block)? != bsize
        || rd(mem, obj, block + 8)? != tag(TAG_FREE, block, bsize)
    {
        return Err(AllocError::Corrupt {
            at: block,
            what: "free list names something that is not a free block of its size",
        });
    }
    set(mem, tx, obj, block + 8, tag(TAG_USED, block, bsize))
}

/// Carves a block of `bsize` bytes off the top of the heap.
fn bump<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    start: u64,
    bsize: u64,
    requested: u64,
) -> Result<u64, AllocError<M::Error>> {
    let top = rd(mem, obj, META_ALLOC_TOP)?;
    if top < start || !top.is_multiple_of(ALIGN) || top > DATA_END {
        return Err(AllocError::Corrupt {
            at: META_ALLOC_TOP,
            what: "alloc_top is outside the heap or misaligned",
        });
    }
    if bsize > DATA_END - top {
        return Err(AllocError::Full {
            requested,
            available: (DATA_END - top).saturating_sub(BLOCK_HEADER),
        });
    }
    mem.reserve(obj, top, bsize)
        .map_err(|e| AllocError::Tx(TxError::Memory(e)))?;
    // The header lies above the old top: nothing there to undo.
    set(mem, tx, obj, META_ALLOC_TOP, top + bsize)?;
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&bsize.to_le_bytes());
    h[8..].copy_from_slice(&tag(TAG_USED, top, bsize).to_le_bytes());
    mem.write(obj, top, &h)
        .map_err(|e| AllocError::Tx(TxError::Memory(e)))?;
    // Not recorded, so the commit would not flush it: durable with the transaction's next
    // fence, before the commit names the block (a durable `alloc_top` above an unwritten
    // header would read as a corrupt heap).
    if tx.mode() != durability::NONE {
        mem.flush(obj, top, BLOCK_HEADER)
            .map_err(|e| AllocError::Tx(TxError::Memory(e)))?;
    }
    Ok(top + BLOCK_HEADER)
}

/// First fit in the large free list, splitting off the block's tail when the rest stays
/// large; else bump.
fn alloc_large<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    start: u64,
    size: u64,
) -> Result<u64, AllocError<M::Error>> {
    let bsize = size
        .checked_add(BLOCK_HEADER + ALIGN - 1)
        .map(|s| s & !(ALIGN - 1))
        .filter(|&s| s <= DATA_END)
        .ok_or(AllocError::Full {
            requested: size,
            available: 0,
        })?;
    let top = rd(mem, obj, META_ALLOC_TOP)?;
    let mut link_at = H_LARGE;
    let mut block = rd(mem, obj, H_LARGE)?;
    // Bounded walk: a cycle in damaged metadata must not hang the caller.
    let mut steps = (DATA_END - BASE_OFFSET) / (MAX_CLASS_PAYLOAD + BLOCK_HEADER) + 1;
    while block != 0 {
        steps = steps.checked_sub(1).ok_or(AllocError::Corrupt {
            at: H_LARGE,
            what: "large free list is cyclic",
        })?;
        let have = rd(mem, obj, block)?;
        let ok = block >= start
            && block.is_multiple_of(ALIGN)
            && block.saturating_add(have) <= top
            && have > MAX_CLASS_PAYLOAD + BLOCK_HEADER
            && rd(mem, obj, block + 8)? == tag(TAG_FREE, block, have);
        if !ok {
            return Err(AllocError::Corrupt {
                at: block,
                what: "large free list names something that is not a free large block",
            });
        }
        let next = rd(mem, obj, block + BLOCK_HEADER)?;
        if have >= bsize {
            let rest = have - bsize;
            if rest > MAX_CLASS_PAYLOAD + BLOCK_HEADER {
                // Shrink the free block in place; the tail becomes the new block.
                tx.record(mem, obj, block, 16)?;
                wr(mem, obj, block, rest)?;
                wr(mem, obj, block + 8, tag(TAG_FREE, block, rest))?;
                let nb = block + rest;
                tx.record(mem, obj, nb, 16)?;
                wr(mem, obj, nb, bsize)?;
                wr(mem, obj, nb + 8, tag(TAG_USED, nb, bsize))?;
                return Ok(nb + BLOCK_HEADER);
            }
            set(mem, tx, obj, link_at, next)?;
            set(mem, tx, obj, block + 8, tag(TAG_USED, block, have))?;
            return Ok(block + BLOCK_HEADER);
        }
        link_at = block + BLOCK_HEADER;
        block = next;
    }
    bump(mem, tx, obj, start, bsize, size)
}

/// The block whose payload starts at `offset`, its size and whether it is free; typed errors
/// for anything else.
fn block_at<M: ObjectMemory>(
    mem: &mut M,
    obj: ObjId,
    offset: u64,
) -> Result<(u64, u64, bool), AllocError<M::Error>> {
    let start = heap_start(mem, obj)?;
    let top = rd(mem, obj, META_ALLOC_TOP)?;
    let not = AllocError::NotABlock { offset };
    if !offset.is_multiple_of(ALIGN) || offset < start + BLOCK_HEADER || offset > top {
        return Err(not);
    }
    let block = offset - BLOCK_HEADER;
    let size = rd(mem, obj, block)?;
    if size < ALIGN + BLOCK_HEADER || size > top - block {
        return Err(not);
    }
    match rd(mem, obj, block + 8)? {
        t if t == tag(TAG_USED, block, size) => Ok((block, size, false)),
        t if t == tag(TAG_FREE, block, size) => Ok((block, size, true)),
        _ => Err(not),
    }
}

/// Usable bytes of the allocated block whose payload is at `offset`.
pub fn usable_size<M: ObjectMemory>(
    mem: &mut M,
    obj: ObjId,
    offset: u64,
) -> Result<u64, AllocError<M::Error>> {
    match block_at(mem, obj, offset)? {
        (_, size, false) => Ok(size - BLOCK_HEADER),
        (_, _, true) => Err(AllocError::NotABlock { offset }),
    }
}

/// Frees the block whose payload starts at `offset` (as returned by [`alloc`]).
pub fn free<M: ObjectMemory>(
    mem: &mut M,
    tx: &mut Tx,
    obj: ObjId,
    offset: u64,
) -> Result<(), AllocError<M::Error>> {
    let (block, size, is_free) = block_at(mem, obj, offset)?;
    if is_free {
        return Err(AllocError::DoubleFree { offset });
    }
    let payload = size - BLOCK_HEADER;
    let head_at = match class_of(payload) {
        Some(c) if class_payload(c) == payload => H_HEADS + c as u64 * 8,
        Some(_) => {
            return Err(AllocError::Corrupt {
                at: block,
                what: "block size is not a size class",
            })
        }
        None => H_LARGE,
    };
    let head = rd(mem, obj, head_at)?;
    // Tag word and the first payload word (the link) in one entry.
    tx.record(mem, obj, block + 8, 16)?;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&tag(TAG_FREE, block, size).to_le_bytes());
    b[8..].copy_from_slice(&head.to_le_bytes());
    mem.write(obj, block + 8, &b)
        .map_err(|e| AllocError::Tx(TxError::Memory(e)))?;
    set(mem, tx, obj, head_at, block)
}

/// What [`check`] found in a consistent allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapSummary {
    /// First byte of the heap (the base struct lies below).
    pub heap_start: u64,
    /// `ObjMeta::alloc_top`: the heap's end.
    pub alloc_top: u64,
    /// Allocated blocks.
    pub used_blocks: u64,
    /// Payload bytes of allocated blocks.
    pub used_bytes: u64,
    /// Free blocks per class.
    pub free_blocks: [u64; NCLASSES],
    /// Free large blocks.
    pub free_large_blocks: u64,
    /// Payload bytes of free large blocks.
    pub free_large_bytes: u64,
}

impl HeapSummary {
    /// Payload bytes on all free lists.
    pub fn free_bytes(&self) -> u64 {
        self.free_blocks
            .iter()
            .enumerate()
            .map(|(c, n)| n * class_payload(c))
            .sum::<u64>()
            + self.free_large_bytes
    }
}

/// What [`check`] can report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError<E> {
    /// Reading memory failed.
    Memory(E),
    /// The allocator is inconsistent.
    Damaged {
        /// Where (offset in the object).
        at: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl<E: fmt::Display> fmt::Display for CheckError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Memory(e) => write!(f, "{e}"),
            CheckError::Damaged { at, what } => write!(f, "allocator damaged at {at:#x}: {what}"),
        }
    }
}

fn damaged<E>(at: u64, what: &'static str) -> CheckError<E> {
    CheckError::Damaged { at, what }
}

fn crd<M: ObjectMemory>(mem: &mut M, obj: ObjId, off: u64) -> Result<u64, CheckError<M::Error>> {
    let mut b = [0u8; 8];
    mem.read(obj, off, &mut b).map_err(CheckError::Memory)?;
    Ok(u64::from_le_bytes(b))
}

/// Validates `obj`'s allocator without changing anything: every block from the heap start to
/// `alloc_top` has a consistent header, every free list is acyclic, in range and holds only
/// free blocks of its class, and every free block is on exactly one list. `Ok(None)`: the
/// object has no allocator.
pub fn check<M: ObjectMemory>(
    mem: &mut M,
    obj: ObjId,
) -> Result<Option<HeapSummary>, CheckError<M::Error>> {
    match crd(mem, obj, H_MAGIC)? {
        0 => return Ok(None),
        ALLOC_MAGIC => {}
        _ => return Err(damaged(H_MAGIC, "bad allocator magic")),
    }
    let mut v = [0u8; 8];
    mem.read(obj, H_VERSION, &mut v)
        .map_err(CheckError::Memory)?;
    if v[..4] != ALLOC_VERSION.to_le_bytes() || v[4..] != (NCLASSES as u32).to_le_bytes() {
        return Err(damaged(H_VERSION, "unsupported allocator version"));
    }
    let start = crd(mem, obj, H_HEAP_START)?;
    let top = crd(mem, obj, META_ALLOC_TOP)?;
    if start < BASE_OFFSET || !start.is_multiple_of(ALIGN) || top < start || top > DATA_END {
        return Err(damaged(
            H_HEAP_START,
            "heap start or alloc_top out of range",
        ));
    }
    if !top.is_multiple_of(ALIGN) {
        return Err(damaged(META_ALLOC_TOP, "alloc_top misaligned"));
    }
    let mut s = HeapSummary {
        heap_start: start,
        alloc_top: top,
        used_blocks: 0,
        used_bytes: 0,
        free_blocks: [0; NCLASSES],
        free_large_blocks: 0,
        free_large_bytes: 0,
    };
    // Walk every block.
    let mut at = start;
    while at < top {
        let mut h = [0u8; 16];
        mem.read(obj, at, &mut h).map_err(CheckError::Memory)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[..8]);
        let size = u64::from_le_bytes(w);
        w.copy_from_slice(&h[8..]);
        let t = u64::from_le_bytes(w);
        if size < ALIGN + BLOCK_HEADER || !size.is_multiple_of(ALIGN) || size > top - at {
            return Err(damaged(at, "block size out of range"));
        }
        let payload = size - BLOCK_HEADER;
        let class = class_of(payload);
        if matches!(class, Some(c) if class_payload(c) != payload) {
            return Err(damaged(at, "block size is not a size class"));
        }
        if t == tag(TAG_USED, at, size) {
            s.used_blocks += 1;
            s.used_bytes += payload;
        } else if t == tag(TAG_FREE, at, size) {
            match class {
                Some(c) => s.free_blocks[c] += 1,
                None => {
                    s.free_large_blocks += 1;
                    s.free_large_bytes += payload;
                }
            }
        } else {
            return Err(damaged(
                at,
                "block header tag is neither allocated nor free",
            ));
        }
        at += size;
    }
    // Walk every free list; its length is bounded by the free blocks of its class.
    for c in 0..=NCLASSES {
        let (head_at, want) = match s.free_blocks.get(c) {
            Some(&n) => (H_HEADS + c as u64 * 8, n),
            None => (H_LARGE, s.free_large_blocks),
        };
        let mut n = 0u64;
        let mut block = crd(mem, obj, head_at)?;
        while block != 0 {
            n += 1;
            if n > want {
                return Err(damaged(
                    head_at,
                    "free list longer than its free blocks (cyclic?)",
                ));
            }
            if block < start || !block.is_multiple_of(ALIGN) || block >= top {
                return Err(damaged(head_at, "free list leaves the heap"));
            }
            let size = crd(mem, obj, block)?;
            let right_class = match class_of(size.saturating_sub(BLOCK_HEADER)) {
                Some(k) => k == c,
                None => c == NCLASSES,
            };
            if size > top - block
                || !right_class
                || crd(mem, obj, block + 8)? != tag(TAG_FREE, block, size)
            {
                return Err(damaged(
                    block,
                    "free list holds a block that is not free or of another class",
                ));
            }
            block = crd(mem, obj, block + BLOCK_HEADER)?;
        }
        if n != want {
            return Err(damaged(
                head_at,
                "free blocks missing from their free list (leaked)",
            ));
        }
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::durability;
    use crate::txlog;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};
    use std::vec::Vec;

    #[derive(Default, Clone)]
    struct Mem {
        pages: HashMap<u64, [u8; 4096]>,
        flushed: Vec<(u64, u64)>,
    }

    impl ObjectMemory for Mem {
        type Error = core::convert::Infallible;
        fn read(&mut self, _: ObjId, off: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
            for (i, b) in buf.iter_mut().enumerate() {
                let a = off + i as u64;
                *b = self
                    .pages
                    .get(&(a / 4096))
                    .map_or(0, |p| p[(a % 4096) as usize]);
            }
            Ok(())
        }
        fn write(&mut self, _: ObjId, off: u64, data: &[u8]) -> Result<(), Self::Error> {
            for (i, b) in data.iter().enumerate() {
                let a = off + i as u64;
                self.pages.entry(a / 4096).or_insert([0; 4096])[(a % 4096) as usize] = *b;
            }
            Ok(())
        }
        fn flush(&mut self, _: ObjId, off: u64, len: u64) -> Result<(), Self::Error> {
            self.flushed.push((off, len));
            Ok(())
        }
        fn fence(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    const O: ObjId = ObjId::from_u128(0x0a);

    #[test]
    fn a_durable_bump_flushes_the_new_block_header() {
        let mut m = fresh(100);
        let mut tx = Tx::begin(&mut m, O, durability::COMMIT).unwrap();
        let p = alloc(&mut m, &mut tx, O, 40).unwrap();
        assert!(
            m.flushed.contains(&(p - BLOCK_HEADER, BLOCK_HEADER)),
            "{:?}",
            m.flushed
        );
        tx.commit(&mut m).unwrap();
    }

    fn fresh(base: u64) -> Mem {
        let mut m = Mem::default();
        m.write(O, META_ALLOC_TOP, &BASE_OFFSET.to_le_bytes())
            .unwrap();
        let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
        init(&mut m, &mut tx, O, base).unwrap();
        tx.commit(&mut m).unwrap();
        m
    }

    #[test]
    fn classes_cover_sizes_tightly() {
        let mut prev = 0;
        for c in 0..NCLASSES {
            let p = class_payload(c);
            assert!(p > prev && p.is_multiple_of(ALIGN), "class {c}");
            assert_eq!(class_of(p), Some(c));
            assert_eq!(class_of(prev + 1), Some(c));
            // At most 25% waste above 64 bytes (4 classes per power of two).
            assert!(prev < 64 || (p - prev) * 4 <= p, "class {c}: {prev} -> {p}");
            prev = p;
        }
        assert_eq!(prev, MAX_CLASS_PAYLOAD);
        assert_eq!(class_of(MAX_CLASS_PAYLOAD + 1), None);
        assert_eq!(class_of(0), Some(0));
    }

    #[test]
    fn init_alloc_free_and_typed_errors() {
        let mut m = fresh(100);
        let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
        assert_eq!(
            init(&mut m, &mut tx, O, 1),
            Err(AllocError::AlreadyInitialized)
        );
        let a = alloc(&mut m, &mut tx, O, 24).unwrap();
        assert_eq!(
            a,
            BASE_OFFSET + 112 + BLOCK_HEADER,
            "heap starts past the 16-aligned base"
        );
        assert_eq!(usable_size(&mut m, O, a), Ok(32));
        let b = alloc(&mut m, &mut tx, O, 100_000).unwrap();
        assert_eq!(b % ALIGN, 0);
        assert_eq!(
            free(&mut m, &mut tx, O, a + 16),
            Err(AllocError::NotABlock { offset: a + 16 })
        );
        assert_eq!(
            free(&mut m, &mut tx, O, 8),
            Err(AllocError::NotABlock { offset: 8 })
        );
        free(&mut m, &mut tx, O, a).unwrap();
        assert_eq!(
            free(&mut m, &mut tx, O, a),
            Err(AllocError::DoubleFree { offset: a })
        );
        free(&mut m, &mut tx, O, b).unwrap();
        assert_eq!(
            alloc(&mut m, &mut tx, O, 17).unwrap(),
            a,
            "freed block reused"
        );
        assert_eq!(
            alloc(&mut m, &mut tx, O, 70_000).unwrap(),
            b,
            "large block reused"
        );
        tx.commit(&mut m).unwrap();
        let s = check(&mut m, O).unwrap().unwrap();
        assert_eq!((s.used_blocks, s.free_bytes()), (2, 0));
        assert_eq!(check(&mut Mem::default(), O), Ok(None));
        let mut tx = Tx::begin(&mut Mem::default(), O, durability::NONE).unwrap();
        assert_eq!(
            alloc(&mut Mem::default(), &mut tx, O, 8),
            Err(AllocError::NotInitialized)
        );
    }

    #[test]
    fn large_blocks_split_and_full_is_typed() {
        let mut m = fresh(0);
        let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
        let big = alloc(&mut m, &mut tx, O, 1 << 20).unwrap();
        free(&mut m, &mut tx, O, big).unwrap();
        let small = alloc(&mut m, &mut tx, O, 40_000).unwrap();
        assert!(
            small > big && small < big + (1 << 20),
            "carved from the freed block's tail"
        );
        let s = check(&mut m, O).unwrap().unwrap();
        assert_eq!((s.used_blocks, s.free_large_blocks), (1, 1));
        let e = alloc(&mut m, &mut tx, O, DATA_END).unwrap_err();
        assert!(matches!(e, AllocError::Full { .. }));
        assert!(std::format!("{e}").starts_with("object full"));
        tx.abort(&mut m).unwrap();
        let s = check(&mut m, O).unwrap().unwrap();
        assert_eq!(
            (s.used_blocks, s.alloc_top),
            (0, s.heap_start),
            "abort undid everything"
        );
    }

    #[test]
    fn damage_is_found() {
        let mut m = fresh(0);
        let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
        let a = alloc(&mut m, &mut tx, O, 16).unwrap();
        let b = alloc(&mut m, &mut tx, O, 16).unwrap();
        free(&mut m, &mut tx, O, a).unwrap();
        free(&mut m, &mut tx, O, b).unwrap();
        tx.commit(&mut m).unwrap();
        let mut cyc = m.clone();
        // a's link points back at b: a cycle.
        cyc.write(O, a, &(b - 16).to_le_bytes()).unwrap();
        assert!(matches!(
            check(&mut cyc, O),
            Err(CheckError::Damaged { .. })
        ));
        let mut tx = Tx::begin(&mut cyc, O, durability::NONE).unwrap();
        for _ in 0..2 {
            alloc(&mut cyc, &mut tx, O, 16).unwrap();
        }
        assert!(matches!(
            alloc(&mut cyc, &mut tx, O, 16),
            Err(AllocError::Corrupt { .. })
        ));
        tx.abort(&mut cyc).unwrap();
        let mut torn = m.clone();
        torn.write(O, b - 8, &[1]).unwrap();
        assert!(matches!(
            check(&mut torn, O),
            Err(CheckError::Damaged { .. })
        ));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc(u64),
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u64..300).prop_map(Op::Alloc),
            1 => (1u64..100_000).prop_map(Op::Alloc),
            3 => any::<usize>().prop_map(Op::Free),
        ]
    }

    proptest! {
        #[test]
        fn model_no_overlap_in_range_frees_reused(ops in proptest::collection::vec(op(), 1..120)) {
            let mut m = fresh(48);
            let mut live: BTreeMap<u64, u64> = BTreeMap::new(); // payload -> requested
            let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
            let mut last_freed: Option<(u64, u64)> = None;
            for op in ops {
                match op {
                    Op::Alloc(n) => {
                        let p = alloc(&mut m, &mut tx, O, n).unwrap();
                        if let Some((off, sz)) = last_freed.take() {
                            if class_of(sz).is_some() && class_of(sz) == class_of(n) {
                                prop_assert_eq!(p, off, "LIFO reuse of the class");
                            }
                        }
                        prop_assert!(p.is_multiple_of(ALIGN) && p >= BASE_OFFSET + 48 && p + n <= DATA_END);
                        prop_assert!(usable_size(&mut m, O, p).unwrap() >= n);
                        if let Some((&q, &qn)) = live.range(..=p).next_back() {
                            prop_assert!(q + qn <= p - BLOCK_HEADER, "overlaps {q:#x}");
                        }
                        if let Some((&q, _)) = live.range(p..).next() {
                            prop_assert!(p + n <= q - BLOCK_HEADER, "overlaps {q:#x}");
                        }
                        live.insert(p, n);
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let (&p, &n) = live.iter().nth(i % live.len()).unwrap();
                        free(&mut m, &mut tx, O, p).unwrap();
                        live.remove(&p);
                        last_freed = Some((p, n));
                    }
                    Op::Free(_) => {}
                }
                // Keep the log from filling: commit now and then.
                if tx.log_bytes() > 1 << 20 {
                    tx.commit(&mut m).unwrap();
                    tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
                }
            }
            tx.commit(&mut m).unwrap();
            let s = check(&mut m, O).unwrap().unwrap();
            prop_assert_eq!(s.used_blocks, live.len() as u64);
        }

        #[test]
        fn abort_restores_the_allocator(ops in proptest::collection::vec(op(), 1..60)) {
            let mut m = fresh(0);
            let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
            let mut live = Vec::new();
            for op in ops.iter().take(ops.len() / 2) {
                if let Op::Alloc(n) = op { live.push(alloc(&mut m, &mut tx, O, *n).unwrap()); }
            }
            tx.commit(&mut m).unwrap();
            let before = check(&mut m, O).unwrap();
            let mut tx = Tx::begin(&mut m, O, durability::NONE).unwrap();
            for op in &ops {
                match op {
                    Op::Alloc(n) => live.push(alloc(&mut m, &mut tx, O, *n).unwrap()),
                    Op::Free(i) if !live.is_empty() => {
                        let p = live.swap_remove(i % live.len());
                        free(&mut m, &mut tx, O, p).unwrap();
                    }
                    Op::Free(_) => {}
                }
            }
            tx.abort(&mut m).unwrap();
            prop_assert_eq!(check(&mut m, O).unwrap(), before);
            prop_assert_eq!(txlog::plan(&mut m, O).unwrap().pending, None);
        }
    }
}
