//! The transaction log: an undo log kept in place in the log region of one object, the
//! transaction's *anchor* (the first object it touches), its writer protocol and crash recovery.
//!
//! ```text
//!  LOG_OFFSET       +--------------------------------------------+
//!                   | LogHeader (64 B): magic, version,          |
//!                   |   finished_seq = highest seq committed or  |
//!                   |   rolled back                              |
//!  LOG_OFFSET + 64  +--------------------------------------------+
//!                   | entry: EntryHeader (48 B)                  |  seq, target (null = anchor),
//!                   |        old bytes, zero padded to 8         |  offset, len, prev, check
//!                   | entry ...                                  |  appended in order, 8 aligned
//!                   +--------------------------------------------+  LOG_OFFSET + LOG_SIZE
//! ```
//! Entries of the transaction in flight carry `seq == finished_seq + 1`; anything else (an older
//! transaction's leftovers, zeros) or an entry whose checksum fails (torn by a power loss) ends
//! the log. Each entry names the previous one (`prev`), so rollback walks backwards without
//! allocating.
//!
//! # Writer protocol (one transaction at a time per anchor)
//! 1. [`Tx::begin`]: `seq = finished_seq + 1`; refuses a log that still holds an unfinished
//!    transaction (recover it first).
//! 2. [`Tx::record`] before modifying a range in place (in the data region, or the allocator's
//!    metadata: `alloc_top` and the header at [`crate::layout::ALLOC_OFFSET`]): for a target other than the anchor,
//!    first set the target's pending-transaction marker (`tx_anchor`, `tx_anchor_seq` in its
//!    metadata) unless it names this anchor already, and flush it; append the entry with the range's old bytes; flush it; fence (one
//!    fence for both). Only then may the caller store into the range.
//!    [`Tx::prepare_many`] appends and flushes entries without the fence: the caller may store
//!    into those ranges after the next fence ([`Tx::fence`], free if a record has fenced since).
//! 3. [`Tx::commit`] in `COMMIT`: the bytes the caller flushed without recording them (a fresh
//!    allocation's payload) are listed in the commit entry if the memory can tell them
//!    ([`ObjectMemory::unfenced`], at most [`COMMIT_LIST_MAX`]), else fenced first; append a
//!    commit entry holding the checksum of every recorded range's new bytes and of the listed
//!    ranges; flush the recorded ranges and the entry; fence (one disk round trip); store
//!    `finished_seq = seq` and flush it without waiting: the next fence carries it, and a
//!    transaction's first fence always comes before its first store.
//!    In `GROUP` (and on the host): flush every recorded range, fence, store
//!    `finished_seq = seq`, flush.
//!    [`Tx::abort`]: copy the old bytes back newest first, flush, then store `finished_seq`.
//!
//! Durability modes ([`crate::boot::durability`]): `NONE` never flushes (stores to `MAP_SHARED`
//! memory survive a crash of the guest or the VMM in program order, not a power loss); `COMMIT`
//! flushes as above and fences before `commit` returns; `GROUP` does the same but leaves the last
//! fence of a commit to the start of the anchor's next transaction, so a group of commits
//! becomes durable together (a power loss may lose the last commits, never tear one). The log
//! region must not be overwritten before the previous commit is durable, which is why that
//! deferred fence comes before the next transaction's first log write.
//!
//! # Recovery
//! [`plan`] reads the log and finds the unfinished transaction; [`rollback`] undoes it newest
//! first, flushes and sets `finished_seq = seq`. An unfinished transaction whose entries end in
//! a valid commit entry whose checksum matches the recorded ranges' bytes now committed: its
//! ranges all reached the disk, so it is only marked finished. A mismatch means a power loss
//! tore the commit's flush, and it is undone like any other (its old bytes were durable before
//! the first store). This holds while one writer at a time changes an object and its ranges are
//! stored into only inside transactions (after recording them), as the runtimes do: nothing else
//! can change a committed range before its `finished_seq` is durable. Running it twice (a crash
//! during recovery) is harmless. An object whose marker names an anchor whose log holds an
//! unfinished transaction numbered `tx_anchor_seq` or later may have been touched by it:
//! [`recover_marker`] recovers the anchor first, then clears the marker. Markers are cleared
//! lazily: a marker whose anchor has no unfinished transaction is stale and means nothing.
//!
//! The writer and recovery are generic over [`ObjectMemory`], so the guest runtime (mapped
//! slots; `clwb`+`sfence` or flush requests through the ring) and the host store (its mappings;
//! `msync`) run the same code.
//!
//! ```
//! use abi::txlog::{self, ObjectMemory, Tx};
//! use abi::{boot::durability, id::ObjId, layout::BASE_OFFSET};
//!
//! /// One object in a Vec (only its data start, log and metadata are touched here).
//! struct Mem(std::collections::HashMap<u64, u8>);
//! impl ObjectMemory for Mem {
//!     type Error = core::convert::Infallible;
//!     fn read(&mut self, _o: ObjId, off: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
//!         for (i, b) in buf.iter_mut().enumerate() { *b = *self.0.get(&(off + i as u64)).unwrap_or(&0); }
//!         Ok(())
//!     }
//!     fn write(&mut self, _o: ObjId, off: u64, data: &[u8]) -> Result<(), Self::Error> {
//!         for (i, b) in data.iter().enumerate() { self.0.insert(off + i as u64, *b); }
//!         Ok(())
//!     }
//!     fn flush(&mut self, _o: ObjId, _off: u64, _len: u64) -> Result<(), Self::Error> { Ok(()) }
//!     fn fence(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! }
//!
//! let obj = ObjId::from_u128(1);
//! let mut mem = Mem(Default::default());
//! let mut tx = Tx::begin(&mut mem, obj, durability::COMMIT).unwrap();
//! tx.record(&mut mem, obj, BASE_OFFSET, 8).unwrap();            // old bytes saved
//! mem.write(obj, BASE_OFFSET, &42u64.to_le_bytes()).unwrap();  // now update in place
//! // A crash here: recovery puts the old bytes back.
//! let state = txlog::plan(&mut mem, obj).unwrap();
//! assert_eq!(state.pending.map(|p| p.entries), Some(1));
//! txlog::rollback(&mut mem, obj, &state, true).unwrap();
//! let mut b = [0u8; 8];
//! mem.read(obj, BASE_OFFSET, &mut b).unwrap();
//! assert_eq!(u64::from_le_bytes(b), 0);
//! ```

use core::fmt;

use crate::boot::durability;
use crate::id::ObjId;
use crate::layout::{
    ALLOC_OFFSET, ALLOC_SIZE, BASE_OFFSET, DATA_END, LOG_OFFSET, LOG_SIZE, META_ALLOC_TOP,
    META_OFFSET,
};
use crate::meta::ObjMeta;

/// `b"TWZTXLOG"` read little-endian.
pub const LOG_MAGIC: u64 = u64::from_le_bytes(*b"TWZTXLOG");
/// The log format version this crate writes: 2 added commit entries ([`kind::COMMIT`]), 3 let
/// them list ranges the caller flushed ([`ObjectMemory::unfenced`]).
pub const LOG_VERSION: u32 = 3;
/// The oldest version this crate reads (a version-1 log is upgraded by its next transaction).
pub const LOG_VERSION_MIN: u32 = 1;
/// Size of [`LogHeader`].
pub const LOG_HEADER_SIZE: u64 = 64;
/// Size of [`EntryHeader`].
pub const ENTRY_HEADER_SIZE: u64 = 48;
/// Offset (in the anchor) of the first entry.
pub const FIRST_ENTRY: u64 = LOG_OFFSET + LOG_HEADER_SIZE;
/// End of the log region (exclusive).
pub const LOG_END: u64 = LOG_OFFSET + LOG_SIZE;
/// Bytes available for entries: the most one transaction can log.
pub const LOG_CAPACITY: u64 = LOG_END - FIRST_ENTRY;
/// `prev` of a transaction's first entry.
pub const NO_PREV: u32 = u32::MAX;

/// Offset of `finished_seq` in an object (the one header word a commit stores).
const HDR_FINISHED: u64 = LOG_OFFSET + 16;

/// Offset in an object of its pending-transaction marker's anchor ID (`ObjMeta::reserved[0..2]`).
pub const META_TX_ANCHOR: u64 = META_OFFSET + 112;
/// Offset in an object of its marker's sequence number (`ObjMeta::reserved[2]`).
pub const META_TX_ANCHOR_SEQ: u64 = META_OFFSET + 128;
/// Size of the marker: the anchor's ID and the transaction's sequence number.
const MARKER_SIZE: usize = 24;

/// Old bytes up to this size are logged with one write (the 8-byte hot path among them).
const SMALL_DATA: usize = 64;
/// Buffer for copying larger ranges in and out of the log.
const CHUNK: usize = 512;

/// The log header at [`LOG_OFFSET`], little-endian. An all-zero header is a log never used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogHeader {
    /// [`LOG_MAGIC`], or 0 for a log never used.
    pub magic: u64,
    /// [`LOG_VERSION`].
    pub version: u32,
    /// [`LOG_HEADER_SIZE`].
    pub header_size: u32,
    /// Highest transaction sequence number committed or rolled back.
    pub finished_seq: u64,
    /// Reserved, zero.
    pub reserved: [u64; 5],
}
crate::assert_size!(LogHeader, 64);

impl LogHeader {
    /// A formatted header with `finished_seq`.
    pub const fn new(finished_seq: u64) -> Self {
        LogHeader {
            magic: LOG_MAGIC,
            version: LOG_VERSION,
            header_size: LOG_HEADER_SIZE as u32,
            finished_seq,
            reserved: [0; 5],
        }
    }

    /// Encodes the header as its on-media bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&self.magic.to_le_bytes());
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.header_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.finished_seq.to_le_bytes());
        for (i, r) in self.reserved.iter().enumerate() {
            b[24 + i * 8..32 + i * 8].copy_from_slice(&r.to_le_bytes());
        }
        b
    }

    /// Decodes a header; never panics. Call [`LogHeader::finished`] next.
    pub fn from_bytes(b: &[u8; 64]) -> Self {
        let mut reserved = [0u64; 5];
        for (i, r) in reserved.iter_mut().enumerate() {
            *r = le64(b, 24 + i * 8);
        }
        LogHeader {
            magic: le64(b, 0),
            version: le32(b, 8),
            header_size: le32(b, 12),
            finished_seq: le64(b, 16),
            reserved,
        }
    }

    /// `finished_seq` of a valid header; 0 for a log never used (magic 0).
    pub fn finished(&self) -> Result<u64, LogError> {
        match self.magic {
            0 => Ok(0),
            LOG_MAGIC if !(LOG_VERSION_MIN..=LOG_VERSION).contains(&self.version) => {
                Err(LogError::BadVersion(self.version))
            }
            LOG_MAGIC if self.header_size as u64 != LOG_HEADER_SIZE => {
                Err(LogError::BadHeaderSize(self.header_size))
            }
            LOG_MAGIC => Ok(self.finished_seq),
            m => Err(LogError::BadMagic(m)),
        }
    }
}

/// The fixed part of a log entry, little-endian; `len` old bytes follow, zero padded to 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryHeader {
    /// The transaction's sequence number.
    pub seq: u64,
    /// The object the range belongs to; null for the anchor itself.
    pub target: ObjId,
    /// Start of the range in the target (inside its data region).
    pub offset: u32,
    /// Length of the range in bytes.
    pub len: u32,
    /// Position of the transaction's previous entry (bytes from [`LOG_OFFSET`]), or [`NO_PREV`].
    pub prev: u32,
    /// What the entry is ([`kind`]).
    pub kind: u32,
    /// [`Checksum`] over the fields above and the padded old bytes.
    pub check: u64,
}
crate::assert_size!(EntryHeader, 48);

impl EntryHeader {
    /// Encodes the entry header as its on-media bytes.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..24].copy_from_slice(&self.target.0);
        b[24..28].copy_from_slice(&self.offset.to_le_bytes());
        b[28..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..36].copy_from_slice(&self.prev.to_le_bytes());
        b[36..40].copy_from_slice(&self.kind.to_le_bytes());
        b[40..48].copy_from_slice(&self.check.to_le_bytes());
        b
    }

    /// Decodes an entry header; never panics.
    pub fn from_bytes(b: &[u8; 48]) -> Self {
        let mut target = [0u8; 16];
        target.copy_from_slice(&b[8..24]);
        EntryHeader {
            seq: le64(b, 0),
            target: ObjId(target),
            offset: le32(b, 24),
            len: le32(b, 28),
            prev: le32(b, 32),
            kind: le32(b, 36),
            check: le64(b, 40),
        }
    }

    /// Bytes the whole entry takes in the log.
    pub const fn size(&self) -> u64 {
        entry_size(self.len as u64)
    }

    /// The checksum state after the header fields (everything but `check`).
    fn checksum_start(&self) -> Checksum {
        let mut c = Checksum::new();
        c.word(self.seq);
        c.word(u64::from_le_bytes(self.target_word(0)));
        c.word(u64::from_le_bytes(self.target_word(8)));
        c.word(self.offset as u64 | (self.len as u64) << 32);
        c.word(self.prev as u64 | (self.kind as u64) << 32);
        c
    }

    fn target_word(&self, at: usize) -> [u8; 8] {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.target.0[at..at + 8]);
        w
    }
}

/// Kinds of log entries.
pub mod kind {
    /// The old bytes of a range, restored if the transaction does not commit.
    pub const UNDO: u32 = 0;
    /// The last entry of a transaction committed in durability `COMMIT`: no target, offset 0,
    /// data: the [`super::Checksum`] of the new bytes of every range the transaction recorded,
    /// newest first, then of the listed ranges; then up to [`super::COMMIT_LIST_MAX`] listed
    /// ranges (ID, offset, length: 32 bytes each) that the caller flushed without recording
    /// (see [`super::Tx::commit`]).
    pub const COMMIT: u32 = 1;
}

/// Most caller-flushed ranges a commit entry lists.
pub const COMMIT_LIST_MAX: usize = 8;
/// Bytes of one listed range in a commit entry.
const LISTED_SIZE: u64 = 32;

/// Data bytes of a commit entry listing `listed` ranges: the checksum, then the ranges.
const fn commit_data_len(listed: usize) -> u64 {
    8 + listed as u64 * LISTED_SIZE
}
/// The most data bytes a commit entry holds.
const COMMIT_DATA_MAX: usize = commit_data_len(COMMIT_LIST_MAX) as usize;

/// Bytes a commit entry listing `listed` ranges takes.
pub const fn commit_entry_size(listed: usize) -> u64 {
    entry_size(commit_data_len(listed))
}

/// The most bytes a commit entry takes (room for it is kept free by every record).
pub const COMMIT_ENTRY_SIZE: u64 = commit_entry_size(COMMIT_LIST_MAX);

/// Bytes an entry with `len` old bytes takes in the log.
pub const fn entry_size(len: u64) -> u64 {
    ENTRY_HEADER_SIZE + ((len + 7) & !7)
}

/// A fast 64-bit checksum, fed 8 bytes at a time. Each step is a bijection of the state for a
/// fixed input word, so any single changed word always changes the result; more changes collide
/// with probability about 2^-64. It detects torn entries, not tampering.
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

    /// A fresh checksum.
    #[inline]
    pub const fn new() -> Self {
        Checksum(0x7477_7a2d_7478_6c67)
    }

    /// Feeds one word.
    #[inline]
    pub fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::K1).rotate_left(29);
    }

    /// Feeds `bytes`, whose length must be a multiple of 8 (a shorter tail is ignored).
    #[inline]
    pub fn words(&mut self, bytes: &[u8]) {
        for c in bytes.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
    }

    /// The final value.
    #[inline]
    pub fn finish(self) -> u64 {
        let h = (self.0 ^ (self.0 >> 32)).wrapping_mul(Self::K2);
        h ^ (h >> 29)
    }
}

/// True for ranges a transaction may record: inside the data region, or inside the persistent
/// allocator's metadata (`alloc_top` and the allocator header, see [`crate::palloc`]).
#[inline]
pub const fn loggable(offset: u64, len: u64) -> bool {
    let Some(end) = offset.checked_add(len) else {
        return false;
    };
    (offset >= BASE_OFFSET && end <= DATA_END)
        || (offset >= META_ALLOC_TOP && end <= META_ALLOC_TOP + 8)
        || (offset >= ALLOC_OFFSET && end <= ALLOC_OFFSET + ALLOC_SIZE)
}

/// What the log machinery needs from memory: the bytes of objects named by ID, and flushes.
///
/// `flush` starts making earlier stores to a range durable; `fence` returns once every range
/// flushed so far is durable (`clwb` / `sfence`; or a flush request and waiting for it; or a
/// synchronous `msync` and nothing). Neither is called in durability mode `NONE`.
pub trait ObjectMemory {
    /// What a memory access can fail with (an unmapped object, an I/O error...).
    type Error;
    /// Copies `buf.len()` bytes at `offset` of object `obj` into `buf`.
    fn read(&mut self, obj: ObjId, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Stores `data` at `offset` of object `obj`.
    fn write(&mut self, obj: ObjId, offset: u64, data: &[u8]) -> Result<(), Self::Error>;
    /// Starts making stores to `offset..offset+len` of `obj` durable.
    fn flush(&mut self, obj: ObjId, offset: u64, len: u64) -> Result<(), Self::Error>;
    /// Waits until every range flushed so far is durable.
    fn fence(&mut self) -> Result<(), Self::Error>;
    /// Makes sure the storage behind `len` bytes at `offset` of `obj`, about to be written for
    /// the first time (a block carved off the top of the heap), exists, so that a full
    /// filesystem fails here rather than at the first store. Nothing to do by default.
    fn reserve(&mut self, _obj: ObjId, _offset: u64, _len: u64) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The ranges flushed since the last fence, if this memory knows them and they fit in
    /// `out`: copied there, their number returned. A `COMMIT` commit then lists them in its
    /// entry and covers them with its checksum, instead of fencing them before it writes the
    /// entry (a power loss can then tear them only together with a commit that recovery
    /// undoes). `None` (the default): not known.
    fn unfenced(&mut self, _out: &mut [(ObjId, u64, u64)]) -> Option<usize> {
        None
    }
}

/// What is wrong with a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogError {
    /// The header's magic is neither [`LOG_MAGIC`] nor 0.
    BadMagic(u64),
    /// The header's version is not one this code reads.
    BadVersion(u32),
    /// The header's size field is wrong.
    BadHeaderSize(u32),
    /// `finished_seq` cannot grow any more.
    SeqExhausted,
    /// An entry with a valid checksum names a range outside what a transaction may record.
    BadEntry {
        /// The entry's position (bytes from [`LOG_OFFSET`]).
        at: u64,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::BadMagic(m) => write!(f, "transaction log: bad magic {m:#018x}"),
            LogError::BadVersion(v) => write!(f, "transaction log: unsupported version {v}"),
            LogError::BadHeaderSize(s) => write!(f, "transaction log: bad header size {s}"),
            LogError::SeqExhausted => write!(f, "transaction log: sequence numbers exhausted"),
            LogError::BadEntry { at } => write!(
                f,
                "transaction log: entry at {at:#x} names a range a transaction may not record"
            ),
        }
    }
}

/// Why a transaction operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError<E> {
    /// Reading, writing or flushing object memory failed.
    Memory(E),
    /// The log is damaged.
    Log(LogError),
    /// The range to record is outside the target's data region and allocator metadata.
    OutsideData {
        /// The target object.
        target: ObjId,
        /// Start of the range.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// The transaction does not fit in its log; it can still be aborted.
    TooLarge {
        /// Log bytes the transaction would need.
        needed: u64,
        /// Log bytes available ([`LOG_CAPACITY`]).
        capacity: u64,
    },
    /// The anchor's log holds an unfinished transaction; recover it before starting another.
    NeedsRecovery {
        /// The unfinished transaction's sequence number.
        seq: u64,
    },
}

impl<E> From<LogError> for TxError<E> {
    fn from(e: LogError) -> Self {
        TxError::Log(e)
    }
}

impl<E: fmt::Display> fmt::Display for TxError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Memory(e) => write!(f, "{e}"),
            TxError::Log(e) => write!(f, "{e}"),
            TxError::OutsideData {
                target,
                offset,
                len,
            } => write!(
                f,
                "object {target}: range {offset:#x}+{len:#x} is outside the data region \
                 ({BASE_OFFSET:#x}..{DATA_END:#x}) and the allocator's metadata"
            ),
            TxError::TooLarge { needed, capacity } => write!(
                f,
                "transaction too large for its log: needs {needed} bytes, the log holds {capacity}"
            ),
            TxError::NeedsRecovery { seq } => write!(
                f,
                "transaction log holds unfinished transaction {seq}: recover the object first"
            ),
        }
    }
}

fn mem<T, E>(r: Result<T, E>) -> Result<T, TxError<E>> {
    r.map_err(TxError::Memory)
}

/// A transaction in flight. Dropping it without [`commit`](Tx::commit) or
/// [`abort`](Tx::abort) leaves it unfinished: the next [`Tx::begin`] refuses until it is
/// recovered.
#[must_use = "a transaction must be committed or aborted"]
#[derive(Debug)]
pub struct Tx {
    anchor: ObjId,
    seq: u64,
    /// Where the next entry goes (offset in the anchor).
    tail: u64,
    /// Position of the last entry (bytes from `LOG_OFFSET`), or `NO_PREV`.
    last: u32,
    entries: u32,
    mode: u32,
    /// Entries were appended since the last fence.
    unfenced: bool,
}

impl Tx {
    /// Starts a transaction anchored in `anchor`'s log, in durability mode `mode`
    /// ([`durability`]; unknown values count as `COMMIT`).
    #[inline]
    pub fn begin<M: ObjectMemory>(
        mem_: &mut M,
        anchor: ObjId,
        mode: u32,
    ) -> Result<Tx, TxError<M::Error>> {
        let mut raw = [0u8; LOG_HEADER_SIZE as usize + 8];
        mem(mem_.read(anchor, LOG_OFFSET, &mut raw))?;
        let mut hb = [0u8; 64];
        hb.copy_from_slice(&raw[..64]);
        let header = LogHeader::from_bytes(&hb);
        let finished = header.finished()?;
        let mode = if mode > durability::GROUP {
            durability::COMMIT
        } else {
            mode
        };
        if header.magic == 0 {
            format_log(mem_, anchor, mode != durability::NONE)?;
        } else if header.version < LOG_VERSION {
            // This transaction may end in a commit entry, which older code would not know.
            mem(mem_.write(anchor, LOG_OFFSET + 8, &LOG_VERSION.to_le_bytes()))?;
            if mode != durability::NONE {
                mem(mem_.flush(anchor, LOG_OFFSET + 8, 4))?;
            }
        }
        let seq = finished.checked_add(1).ok_or(LogError::SeqExhausted)?;
        if le64(&raw, 64) == seq && check_entry(mem_, anchor, FIRST_ENTRY, seq, NO_PREV)?.is_some()
        {
            return Err(TxError::NeedsRecovery { seq });
        }
        Ok(Tx {
            anchor,
            seq,
            tail: FIRST_ENTRY,
            last: NO_PREV,
            entries: 0,
            mode,
            unfenced: false,
        })
    }

    /// The transaction's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The anchor object.
    pub fn anchor(&self) -> ObjId {
        self.anchor
    }

    /// The durability mode ([`durability`]).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Entries recorded so far.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Log bytes used so far.
    pub fn log_bytes(&self) -> u64 {
        self.tail - FIRST_ENTRY
    }

    /// Saves the current bytes of `offset..offset+len` of `target` (null or the anchor's ID:
    /// the anchor) so that the caller may then modify them in place.
    #[inline]
    pub fn record<M: ObjectMemory>(
        &mut self,
        mem_: &mut M,
        target: ObjId,
        offset: u64,
        len: u64,
    ) -> Result<(), TxError<M::Error>> {
        self.append(mem_, target, offset, len)?;
        self.fence(mem_)
    }

    /// [`Tx::record`] for several ranges `(target, offset, len)` with one fence: the caller may
    /// modify any of them once this returns (and none before). On an error the ranges recorded
    /// so far stay recorded.
    pub fn record_many<M: ObjectMemory>(
        &mut self,
        mem_: &mut M,
        ranges: &[(ObjId, u64, u64)],
    ) -> Result<(), TxError<M::Error>> {
        let done = self.prepare_many(mem_, ranges);
        self.fence(mem_)?;
        done
    }

    /// [`Tx::record_many`] without the wait: the ranges are saved, but the caller may store into
    /// them only after the next [`Tx::fence`] (which costs nothing when a record, an allocation
    /// for example, has waited since). Lets a caller fold its records into a wait it makes
    /// anyway.
    pub fn prepare_many<M: ObjectMemory>(
        &mut self,
        mem_: &mut M,
        ranges: &[(ObjId, u64, u64)],
    ) -> Result<(), TxError<M::Error>> {
        ranges
            .iter()
            .try_for_each(|&(target, offset, len)| self.append(mem_, target, offset, len))
    }

    /// Waits until every entry appended so far is durable: nothing in `NONE`, or when none was
    /// appended since the last fence (other flushes then wait for the next one, at the latest
    /// the commit's).
    pub fn fence<M: ObjectMemory>(&mut self, mem_: &mut M) -> Result<(), TxError<M::Error>> {
        if self.mode != durability::NONE && self.unfenced {
            mem(mem_.fence())?;
        }
        self.unfenced = false;
        Ok(())
    }

    /// Appends the undo entry of a range and flushes it (with its target's marker); the
    /// caller fences.
    #[inline]
    fn append<M: ObjectMemory>(
        &mut self,
        mem_: &mut M,
        target: ObjId,
        offset: u64,
        len: u64,
    ) -> Result<(), TxError<M::Error>> {
        if !loggable(offset, len) {
            return Err(TxError::OutsideData {
                target,
                offset,
                len,
            });
        }
        if len == 0 {
            return Ok(());
        }
        let size = entry_size(len);
        if self.tail + size + COMMIT_ENTRY_SIZE > LOG_END {
            return Err(TxError::TooLarge {
                needed: self.log_bytes() + size,
                capacity: LOG_CAPACITY - COMMIT_ENTRY_SIZE,
            });
        }
        if self.entries == 0 && self.mode == durability::GROUP {
            // The previous commit's last flush was deferred; it must be durable before its
            // undo entries are overwritten.
            mem(mem_.fence())?;
        }
        let (real, encoded) = if target.is_null() || target == self.anchor {
            (self.anchor, ObjId::NULL)
        } else {
            // Flushed here, fenced with the entry: both are durable before the caller's first
            // store into the target (one disk round trip instead of two).
            self.mark(mem_, target)?;
            (target, target)
        };
        let mut h = EntryHeader {
            seq: self.seq,
            target: encoded,
            // Both fit: the range lies below DATA_END < 4 GiB.
            offset: offset as u32,
            len: len as u32,
            prev: self.last,
            kind: kind::UNDO,
            check: 0,
        };
        let mut sum = h.checksum_start();
        if len as usize <= SMALL_DATA {
            let mut buf = [0u8; ENTRY_HEADER_SIZE as usize + SMALL_DATA];
            let data_end = ENTRY_HEADER_SIZE as usize + len as usize;
            let total = size as usize;
            mem(mem_.read(real, offset, &mut buf[ENTRY_HEADER_SIZE as usize..data_end]))?;
            sum.words(&buf[ENTRY_HEADER_SIZE as usize..total]);
            h.check = sum.finish();
            buf[..ENTRY_HEADER_SIZE as usize].copy_from_slice(&h.to_bytes());
            mem(mem_.write(self.anchor, self.tail, &buf[..total]))?;
        } else {
            let (anchor, data_at) = (self.anchor, self.tail + ENTRY_HEADER_SIZE);
            mem(read_padded_chunks(
                mem_,
                real,
                offset,
                len,
                |m, done, chunk| {
                    sum.words(chunk);
                    m.write(anchor, data_at + done, chunk)
                },
            ))?;
            h.check = sum.finish();
            mem(mem_.write(self.anchor, self.tail, &h.to_bytes()))?;
        }
        if self.mode != durability::NONE {
            mem(mem_.flush(self.anchor, self.tail, size))?;
        }
        self.last = (self.tail - LOG_OFFSET) as u32;
        self.tail += size;
        self.entries += 1;
        self.unfenced = true;
        Ok(())
    }

    /// Sets `target`'s pending-transaction marker to this transaction unless it names this
    /// anchor already (with this or an earlier transaction: see [`Marker::is_pending`]), and
    /// flushes it; the caller's next fence makes it durable.
    fn mark<M: ObjectMemory>(&self, mem_: &mut M, target: ObjId) -> Result<(), TxError<M::Error>> {
        let want = marker_bytes(self.anchor, self.seq);
        let mut have = [0u8; MARKER_SIZE];
        mem(mem_.read(target, META_TX_ANCHOR, &mut have))?;
        if have[..16] != self.anchor.0 || le64(&have, 16) > self.seq {
            mem(mem_.write(target, META_TX_ANCHOR, &want))?;
            if self.mode != durability::NONE {
                mem(mem_.flush(target, META_TX_ANCHOR, MARKER_SIZE as u64))?;
            }
        }
        Ok(())
    }

    /// Makes the transaction's updates permanent (durable per the mode when this returns).
    #[inline]
    pub fn commit<M: ObjectMemory>(self, mem_: &mut M) -> Result<(), TxError<M::Error>> {
        if self.entries == 0 {
            return Ok(());
        }
        match self.mode {
            durability::NONE => finish(mem_, self.anchor, self.seq, false, false),
            durability::GROUP => {
                self.for_each_range(mem_, |m, obj, off, len| m.flush(obj, off, len))?;
                mem(mem_.fence())?;
                finish(mem_, self.anchor, self.seq, true, false)
            }
            _ => {
                // Bytes the caller flushed itself share the commit's fence only if the entry
                // lists them, so its checksum covers them; else they are made durable first.
                // Only data ranges can be listed: anything else unfenced (entries prepared and
                // never fenced, a marker) is fenced first, with the rest.
                let mut listed = [(ObjId::NULL, 0u64, 0u64); COMMIT_LIST_MAX];
                let listable = |l: &[(ObjId, u64, u64)]| {
                    l.iter()
                        .all(|&(o, off, len)| !o.is_null() && loggable(off, len))
                };
                let n = match mem_.unfenced(&mut listed) {
                    Some(n) if n <= COMMIT_LIST_MAX && listable(&listed[..n]) => n,
                    _ => {
                        mem(mem_.fence())?;
                        0
                    }
                };
                let listed = &listed[..n];
                let mut sum = Checksum::new();
                self.for_each_range(mem_, |m, obj, off, len| {
                    feed_range(m, &mut sum, obj, off, len)?;
                    m.flush(obj, off, len)
                })?;
                for &(obj, off, len) in listed {
                    mem(feed_range(mem_, &mut sum, obj, off, len))?;
                }
                self.append_commit(mem_, sum.finish(), listed)?;
                mem(mem_.fence())?;
                finish(mem_, self.anchor, self.seq, true, false)
            }
        }
    }

    /// Calls `f` with each recorded range (object, offset, length), newest first.
    fn for_each_range<M: ObjectMemory>(
        &self,
        mem_: &mut M,
        mut f: impl FnMut(&mut M, ObjId, u64, u64) -> Result<(), M::Error>,
    ) -> Result<(), TxError<M::Error>> {
        let mut at = self.last;
        while at != NO_PREV {
            let h = read_entry_header(mem_, self.anchor, LOG_OFFSET + at as u64)?;
            let real = if h.target.is_null() {
                self.anchor
            } else {
                h.target
            };
            mem(f(mem_, real, h.offset as u64, h.len as u64))?;
            at = h.prev;
        }
        Ok(())
    }

    /// Appends the commit entry carrying `data_sum` and flushes it (`record` kept room for it).
    fn append_commit<M: ObjectMemory>(
        &self,
        mem_: &mut M,
        data_sum: u64,
        listed: &[(ObjId, u64, u64)],
    ) -> Result<(), TxError<M::Error>> {
        let len = commit_data_len(listed.len());
        let mut data = [0u8; COMMIT_DATA_MAX];
        data[..8].copy_from_slice(&data_sum.to_le_bytes());
        for (i, &(obj, off, n)) in listed.iter().enumerate() {
            let at = 8 + i * LISTED_SIZE as usize;
            data[at..at + 16].copy_from_slice(&obj.0);
            data[at + 16..at + 24].copy_from_slice(&off.to_le_bytes());
            data[at + 24..at + 32].copy_from_slice(&n.to_le_bytes());
        }
        let mut h = EntryHeader {
            seq: self.seq,
            target: ObjId::NULL,
            offset: 0,
            len: len as u32,
            prev: self.last,
            kind: kind::COMMIT,
            check: 0,
        };
        let mut sum = h.checksum_start();
        sum.words(&data[..len as usize]);
        h.check = sum.finish();
        let size = commit_entry_size(listed.len());
        let mut b = [0u8; COMMIT_ENTRY_SIZE as usize];
        b[..ENTRY_HEADER_SIZE as usize].copy_from_slice(&h.to_bytes());
        b[ENTRY_HEADER_SIZE as usize..(ENTRY_HEADER_SIZE + len) as usize]
            .copy_from_slice(&data[..len as usize]);
        mem(mem_.write(self.anchor, self.tail, &b[..size as usize]))?;
        mem(mem_.flush(self.anchor, self.tail, size))
    }

    /// Puts back every recorded range's old bytes, newest first, and ends the transaction.
    pub fn abort<M: ObjectMemory>(self, mem_: &mut M) -> Result<(), TxError<M::Error>> {
        if self.entries == 0 {
            return Ok(());
        }
        let durable = self.mode != durability::NONE;
        undo_chain(mem_, self.anchor, self.last, durable)?;
        finish(mem_, self.anchor, self.seq, durable, durable)
    }
}

/// Writes a fresh header (magic last, so a torn write reads as a log never used).
fn format_log<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    durable: bool,
) -> Result<(), TxError<M::Error>> {
    let h = LogHeader::new(0).to_bytes();
    mem(mem_.write(anchor, LOG_OFFSET + 8, &h[8..]))?;
    if durable {
        mem(mem_.flush(anchor, LOG_OFFSET, LOG_HEADER_SIZE))?;
        mem(mem_.fence())?;
    }
    mem(mem_.write(anchor, LOG_OFFSET, &h[..8]))?;
    if durable {
        mem(mem_.flush(anchor, LOG_OFFSET, 8))?;
        mem(mem_.fence())?;
    }
    Ok(())
}

/// Stores `finished_seq = seq`, flushing it when `durable` and waiting for it when `wait`.
fn finish<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    seq: u64,
    durable: bool,
    wait: bool,
) -> Result<(), TxError<M::Error>> {
    mem(mem_.write(anchor, HDR_FINISHED, &seq.to_le_bytes()))?;
    if durable {
        mem(mem_.flush(anchor, HDR_FINISHED, 8))?;
        if wait {
            mem(mem_.fence())?;
        }
    }
    Ok(())
}

fn read_entry_header<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    at: u64,
) -> Result<EntryHeader, TxError<M::Error>> {
    let mut b = [0u8; ENTRY_HEADER_SIZE as usize];
    mem(mem_.read(anchor, at, &mut b))?;
    Ok(EntryHeader::from_bytes(&b))
}

/// The checksum a commit entry holds for the chain ending at `last`: every range's bytes as
/// they are now, newest entry first (the order [`Tx::commit`] computes it in).
fn chain_sum<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    last: u32,
    listed: &[(ObjId, u64, u64)],
) -> Result<u64, TxError<M::Error>> {
    let mut sum = Checksum::new();
    let mut at = last;
    while at != NO_PREV {
        let h = read_entry_header(mem_, anchor, LOG_OFFSET + at as u64)?;
        let real = if h.target.is_null() { anchor } else { h.target };
        mem(feed_range(
            mem_,
            &mut sum,
            real,
            h.offset as u64,
            h.len as u64,
        ))?;
        at = h.prev;
    }
    for &(obj, off, len) in listed {
        mem(feed_range(mem_, &mut sum, obj, off, len))?;
    }
    Ok(sum.finish())
}

/// A listed range as a commit entry holds it.
type Listed = [(ObjId, u64, u64); COMMIT_LIST_MAX];

/// A checked commit entry's checksum and listed ranges (an error if one lies outside data).
fn read_commit<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    pos: u64,
    h: &EntryHeader,
) -> Result<(u64, Listed, usize), TxError<M::Error>> {
    let mut data = [0u8; COMMIT_DATA_MAX];
    let len = (h.len as usize).min(data.len());
    mem(mem_.read(anchor, pos + ENTRY_HEADER_SIZE, &mut data[..len]))?;
    let word = |at: usize| le64(&data, at);
    let n = (len - 8) / LISTED_SIZE as usize;
    let mut listed = [(ObjId::NULL, 0u64, 0u64); COMMIT_LIST_MAX];
    for (i, l) in listed.iter_mut().enumerate().take(n) {
        let at = 8 + i * LISTED_SIZE as usize;
        let mut id = [0u8; 16];
        id.copy_from_slice(&data[at..at + 16]);
        *l = (ObjId(id), word(at + 16), word(at + 24));
        if l.0.is_null() || !loggable(l.1, l.2) {
            return Err(LogError::BadEntry {
                at: pos - LOG_OFFSET,
            }
            .into());
        }
    }
    Ok((word(0), listed, n))
}

/// Feeds the bytes at `offset..offset+len` of `obj`, zero padded to 8, into `sum`.
fn feed_range<M: ObjectMemory>(
    mem_: &mut M,
    sum: &mut Checksum,
    obj: ObjId,
    offset: u64,
    len: u64,
) -> Result<(), M::Error> {
    read_padded_chunks(mem_, obj, offset, len, |_, _, chunk| {
        sum.words(chunk);
        Ok(())
    })
}

/// Reads `offset..offset+len` of `obj` in pieces of up to [`CHUNK`] bytes, the last zero padded
/// to a multiple of 8, and hands each to `f` with its position from `offset`.
fn read_padded_chunks<M: ObjectMemory>(
    mem_: &mut M,
    obj: ObjId,
    offset: u64,
    len: u64,
    mut f: impl FnMut(&mut M, u64, &[u8]) -> Result<(), M::Error>,
) -> Result<(), M::Error> {
    let mut buf = [0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        let padded = (n + 7) & !7;
        buf[n..padded].fill(0);
        mem_.read(obj, offset + done, &mut buf[..n])?;
        f(mem_, done, &buf[..padded])?;
        done += n as u64;
    }
    Ok(())
}

/// Copies the old bytes of the chain ending at `last` back, newest first; flushes each range
/// and fences at the end when `durable`.
fn undo_chain<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    last: u32,
    durable: bool,
) -> Result<u32, TxError<M::Error>> {
    let mut at = last;
    let mut n = 0;
    let mut buf = [0u8; CHUNK];
    while at != NO_PREV {
        let pos = LOG_OFFSET + at as u64;
        let h = read_entry_header(mem_, anchor, pos)?;
        let real = if h.target.is_null() { anchor } else { h.target };
        let len = h.len as u64;
        let mut done = 0u64;
        while done < len {
            let k = (len - done).min(CHUNK as u64) as usize;
            mem(mem_.read(anchor, pos + ENTRY_HEADER_SIZE + done, &mut buf[..k]))?;
            mem(mem_.write(real, h.offset as u64 + done, &buf[..k]))?;
            done += k as u64;
        }
        if durable {
            mem(mem_.flush(real, h.offset as u64, len))?;
        }
        n += 1;
        at = h.prev;
    }
    if durable {
        mem(mem_.fence())?;
    }
    Ok(n)
}

/// The entry at `pos` if it belongs to transaction `seq`, follows `prev` and its checksum
/// holds; `None` when it is stale or torn. A valid entry naming a range outside the data
/// region is an error: recovery must never write there.
fn check_entry<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    pos: u64,
    seq: u64,
    prev: u32,
) -> Result<Option<EntryHeader>, TxError<M::Error>> {
    if pos + ENTRY_HEADER_SIZE > LOG_END {
        return Ok(None);
    }
    let h = read_entry_header(mem_, anchor, pos)?;
    if h.seq != seq || h.prev != prev || h.kind > kind::COMMIT || pos + h.size() > LOG_END {
        return Ok(None);
    }
    let mut sum = h.checksum_start();
    let padded = h.size() - ENTRY_HEADER_SIZE;
    let mut buf = [0u8; CHUNK];
    let mut done = 0u64;
    while done < padded {
        let k = (padded - done).min(CHUNK as u64) as usize;
        mem(mem_.read(anchor, pos + ENTRY_HEADER_SIZE + done, &mut buf[..k]))?;
        sum.words(&buf[..k]);
        done += k as u64;
    }
    if sum.finish() != h.check {
        return Ok(None);
    }
    let well_formed = match h.kind {
        kind::COMMIT => {
            let listed = (h.len as u64).wrapping_sub(8);
            h.target.is_null()
                && h.offset == 0
                && h.len >= 8
                && listed.is_multiple_of(LISTED_SIZE)
                && listed / LISTED_SIZE <= COMMIT_LIST_MAX as u64
                && prev != NO_PREV
        }
        _ => loggable(h.offset as u64, h.len as u64),
    };
    if !well_formed {
        return Err(LogError::BadEntry {
            at: pos - LOG_OFFSET,
        }
        .into());
    }
    Ok(Some(h))
}

/// What a log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogState {
    /// The header's `finished_seq` (0 for a log never used).
    pub finished_seq: u64,
    /// The unfinished transaction, if any entries of it are in the log.
    pub pending: Option<Pending>,
}

/// An unfinished transaction found in a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its sequence number (`finished_seq + 1`).
    pub seq: u64,
    /// Valid entries.
    pub entries: u32,
    /// Log bytes they take.
    pub bytes: u64,
    /// Position of the last one (bytes from [`LOG_OFFSET`]).
    pub last: u32,
    /// It ended in a commit entry whose checksum matches its ranges' bytes: it committed, and
    /// recovery only marks it finished.
    pub committed: bool,
}

/// Reads `anchor`'s log (only reads) and finds its unfinished transaction, if any. When that
/// transaction ends in a commit entry, also reads the ranges it recorded (in any object) to
/// tell a whole commit from a torn one ([`Pending::committed`]).
pub fn plan<M: ObjectMemory>(mem_: &mut M, anchor: ObjId) -> Result<LogState, TxError<M::Error>> {
    let mut hb = [0u8; 64];
    mem(mem_.read(anchor, LOG_OFFSET, &mut hb))?;
    let finished = LogHeader::from_bytes(&hb).finished()?;
    let seq = finished.checked_add(1).ok_or(LogError::SeqExhausted)?;
    let mut pos = FIRST_ENTRY;
    let mut prev = NO_PREV;
    let mut entries = 0u32;
    let mut commit = None;
    while let Some(h) = check_entry(mem_, anchor, pos, seq, prev)? {
        if h.kind == kind::COMMIT {
            commit = Some(read_commit(mem_, anchor, pos, &h)?);
            break;
        }
        entries += 1;
        prev = (pos - LOG_OFFSET) as u32;
        pos += h.size();
    }
    let committed = match commit {
        Some((want, listed, n)) => chain_sum(mem_, anchor, prev, &listed[..n])? == want,
        None => false,
    };
    let pending = (entries > 0).then_some(Pending {
        seq,
        entries,
        bytes: pos - FIRST_ENTRY,
        last: prev,
        committed,
    });
    Ok(LogState {
        finished_seq: finished,
        pending,
    })
}

/// Undoes the unfinished transaction `state` found (from [`plan`] on the same memory) and marks
/// it finished; returns the entries undone (0 when there was nothing to do, or when it had
/// committed: [`Pending::committed`]). Flushes when
/// `durable`.
pub fn rollback<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    state: &LogState,
    durable: bool,
) -> Result<u32, TxError<M::Error>> {
    let Some(p) = state.pending else {
        return Ok(0);
    };
    let n = if p.committed {
        0
    } else {
        undo_chain(mem_, anchor, p.last, durable)?
    };
    if state.finished_seq == 0 {
        // A log never formatted cannot hold entries this code accepts, but keep the header
        // well formed whatever wrote them.
        format_log(mem_, anchor, durable)?;
    }
    finish(mem_, anchor, p.seq, durable, durable)?;
    Ok(n)
}

/// Plans and rolls back `anchor`'s unfinished transaction, if any.
pub fn recover_anchor<M: ObjectMemory>(
    mem_: &mut M,
    anchor: ObjId,
    durable: bool,
) -> Result<u32, TxError<M::Error>> {
    let state = plan(mem_, anchor)?;
    rollback(mem_, anchor, &state, durable)
}

/// The pending-transaction marker of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The anchor of the transaction that last touched the object (null: none).
    pub anchor: ObjId,
    /// That transaction's sequence number.
    pub seq: u64,
}

impl Marker {
    /// True when the marker names no transaction.
    pub fn is_clear(&self) -> bool {
        self.anchor.is_null()
    }

    /// True when the anchor's log (`anchor`, from [`plan`]) holds an unfinished transaction
    /// that may have touched the object: the marker's or a later one. (A marker names the
    /// first transaction of its anchor that touched the object since it was last cleared; later
    /// transactions of the same anchor leave it as it is, which saves them a flush.)
    pub fn is_pending(&self, anchor: &LogState) -> bool {
        !self.is_clear() && anchor.pending.is_some_and(|p| self.seq <= p.seq)
    }
}

fn marker_bytes(anchor: ObjId, seq: u64) -> [u8; MARKER_SIZE] {
    let mut b = [0u8; MARKER_SIZE];
    b[..16].copy_from_slice(&anchor.0);
    b[16..].copy_from_slice(&seq.to_le_bytes());
    b
}

/// Reads `obj`'s marker.
pub fn read_marker<M: ObjectMemory>(mem_: &mut M, obj: ObjId) -> Result<Marker, M::Error> {
    let mut b = [0u8; MARKER_SIZE];
    mem_.read(obj, META_TX_ANCHOR, &mut b)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[..16]);
    Ok(Marker {
        anchor: ObjId(id),
        seq: le64(&b, 16),
    })
}

/// Clears `obj`'s marker (flushed when `durable`).
pub fn clear_marker<M: ObjectMemory>(
    mem_: &mut M,
    obj: ObjId,
    durable: bool,
) -> Result<(), M::Error> {
    mem_.write(obj, META_TX_ANCHOR, &[0u8; MARKER_SIZE])?;
    if durable {
        mem_.flush(obj, META_TX_ANCHOR, MARKER_SIZE as u64)?;
        mem_.fence()?;
    }
    Ok(())
}

/// What [`recover_marker`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// No marker.
    Clear,
    /// The marker was stale (its transaction had finished) and was cleared.
    Stale(Marker),
    /// The marker's anchor was recovered (`entries` undone), then the marker cleared.
    Recovered {
        /// The marker.
        marker: Marker,
        /// Entries undone in the anchor's log.
        entries: u32,
    },
}

/// Finishes whatever transaction `obj`'s marker points at: recovers the marker's anchor if its
/// transaction is unfinished, then clears the marker. The caller makes sure no live writer
/// owns that anchor, and that the anchor exists (else it just clears the marker).
pub fn recover_marker<M: ObjectMemory>(
    mem_: &mut M,
    obj: ObjId,
    durable: bool,
) -> Result<MarkerOutcome, TxError<M::Error>> {
    let marker = mem(read_marker(mem_, obj))?;
    if marker.is_clear() {
        return Ok(MarkerOutcome::Clear);
    }
    let outcome = if marker.anchor == obj {
        MarkerOutcome::Stale(marker)
    } else {
        let state = plan(mem_, marker.anchor)?;
        if marker.is_pending(&state) {
            let entries = rollback(mem_, marker.anchor, &state, durable)?;
            MarkerOutcome::Recovered { marker, entries }
        } else {
            MarkerOutcome::Stale(marker)
        }
    };
    mem(clear_marker(mem_, obj, durable))?;
    Ok(outcome)
}

/// Named access to the pending-transaction marker, carved out of `ObjMeta::reserved`
/// (words 0 and 1: the anchor's ID bytes; word 2: the sequence number).
impl ObjMeta {
    /// The anchor of the transaction that last touched this object (null: none).
    pub fn tx_anchor(&self) -> ObjId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.reserved[0].to_le_bytes());
        id[8..].copy_from_slice(&self.reserved[1].to_le_bytes());
        ObjId(id)
    }

    /// That transaction's sequence number.
    pub fn tx_anchor_seq(&self) -> u64 {
        self.reserved[2]
    }

    /// The marker as one value.
    pub fn tx_marker(&self) -> Marker {
        Marker {
            anchor: self.tx_anchor(),
            seq: self.tx_anchor_seq(),
        }
    }

    /// Sets the marker.
    pub fn set_tx_marker(&mut self, m: Marker) {
        let mut a = [0u8; 8];
        a.copy_from_slice(&m.anchor.0[..8]);
        self.reserved[0] = u64::from_le_bytes(a);
        a.copy_from_slice(&m.anchor.0[8..]);
        self.reserved[1] = u64::from_le_bytes(a);
        self.reserved[2] = m.seq;
    }
}

const _: () =
    assert!(META_TX_ANCHOR == META_OFFSET + 112 && META_TX_ANCHOR_SEQ == META_TX_ANCHOR + 16);
const _: () = assert!(DATA_END < LOG_OFFSET + LOG_SIZE && LOG_OFFSET + LOG_SIZE <= u32::MAX as u64);

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    /// Sparse object memory: 4 KiB pages per object, zero until written.
    #[derive(Default)]
    struct Mem {
        pages: HashMap<(ObjId, u64), [u8; 4096]>,
        flushes: usize,
        fences: usize,
        /// Ranges flushed since the last fence, and those a fence made durable.
        unfenced: Vec<(ObjId, u64, u64)>,
        durable: Vec<(ObjId, u64, u64)>,
        /// Tell commits what is unfenced ([`ObjectMemory::unfenced`]), as the guest runtime does.
        lists: bool,
    }

    impl Mem {
        fn byte(&mut self, obj: ObjId, off: u64) -> &mut u8 {
            let page = self.pages.entry((obj, off / 4096)).or_insert([0; 4096]);
            &mut page[(off % 4096) as usize]
        }
        fn get(&mut self, obj: ObjId, off: u64) -> u64 {
            let mut b = [0u8; 8];
            self.read(obj, off, &mut b).unwrap();
            u64::from_le_bytes(b)
        }
        fn put(&mut self, obj: ObjId, off: u64, v: u64) {
            self.write(obj, off, &v.to_le_bytes()).unwrap();
        }
    }

    impl ObjectMemory for Mem {
        type Error = core::convert::Infallible;
        fn read(&mut self, obj: ObjId, off: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = *self.byte(obj, off + i as u64);
            }
            Ok(())
        }
        fn write(&mut self, obj: ObjId, off: u64, data: &[u8]) -> Result<(), Self::Error> {
            for (i, b) in data.iter().enumerate() {
                *self.byte(obj, off + i as u64) = *b;
            }
            Ok(())
        }
        fn flush(&mut self, obj: ObjId, off: u64, len: u64) -> Result<(), Self::Error> {
            self.flushes += 1;
            self.unfenced.push((obj, off, len));
            Ok(())
        }
        fn fence(&mut self) -> Result<(), Self::Error> {
            self.fences += 1;
            self.durable.append(&mut self.unfenced);
            Ok(())
        }
        fn unfenced(&mut self, out: &mut [(ObjId, u64, u64)]) -> Option<usize> {
            let n = self.unfenced.len();
            out.get_mut(..n)?.copy_from_slice(&self.unfenced);
            self.lists.then_some(n)
        }
    }

    const A: ObjId = ObjId::from_u128(0xa);
    const B: ObjId = ObjId::from_u128(0xb);
    const X: u64 = BASE_OFFSET;

    /// One committed update of `obj`'s word at `off` to `v` in transaction anchored at `anchor`.
    fn update(m: &mut Mem, anchor: ObjId, obj: ObjId, off: u64, v: u64) {
        let mut tx = Tx::begin(m, anchor, durability::COMMIT).unwrap();
        tx.record(m, obj, off, 8).unwrap();
        m.put(obj, off, v);
        tx.commit(m).unwrap();
    }

    #[test]
    fn headers_round_trip_and_zero_means_unused() {
        let h = LogHeader::new(77);
        assert_eq!(LogHeader::from_bytes(&h.to_bytes()), h);
        assert_eq!(h.finished(), Ok(77));
        assert_eq!(LogHeader::default().finished(), Ok(0));
        let mut bad = h;
        bad.version = LOG_VERSION + 1;
        assert_eq!(bad.finished(), Err(LogError::BadVersion(LOG_VERSION + 1)));
        let mut old = h;
        old.version = LOG_VERSION_MIN;
        assert_eq!(old.finished(), Ok(77), "older versions are read");
        bad = h;
        bad.magic = 5;
        assert_eq!(bad.finished(), Err(LogError::BadMagic(5)));
        let e = EntryHeader {
            seq: 3,
            target: B,
            offset: 0x1000,
            len: 13,
            prev: 64,
            kind: kind::UNDO,
            check: 9,
        };
        assert_eq!(EntryHeader::from_bytes(&e.to_bytes()), e);
        assert_eq!(e.size(), 48 + 16);
    }

    #[test]
    fn checksum_catches_any_single_word_change() {
        let data: Vec<u8> = (0..64u8).collect();
        let sum = |d: &[u8]| {
            let mut c = Checksum::new();
            c.words(d);
            c.finish()
        };
        let base = sum(&data);
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0x80;
            assert_ne!(sum(&d), base, "flip at byte {i} undetected");
        }
    }

    #[test]
    fn commit_keeps_and_abort_restores() {
        let mut m = Mem::default();
        m.put(A, X, 1);
        update(&mut m, A, A, X, 2);
        assert_eq!(m.get(A, X), 2);
        assert_eq!(
            plan(&mut m, A).unwrap(),
            LogState {
                finished_seq: 1,
                pending: None
            }
        );

        let mut tx = Tx::begin(&mut m, A, durability::NONE).unwrap();
        assert_eq!(tx.seq(), 2);
        for v in [3, 4, 5] {
            tx.record(&mut m, A, X, 8).unwrap(); // the same range twice: the oldest wins
            m.put(A, X, v);
        }
        tx.record(&mut m, A, X + 100, 300).unwrap();
        m.write(A, X + 100, &[7u8; 300]).unwrap();
        tx.abort(&mut m).unwrap();
        assert_eq!(m.get(A, X), 2);
        assert_eq!(m.get(A, X + 100), 0);
        assert_eq!(plan(&mut m, A).unwrap().finished_seq, 2);
        assert_eq!(
            m.flushes, 6,
            "NONE mode never flushes (6 came from the first commit: 2 formatting the log, the \
             entry, the range, the commit entry, finished_seq)"
        );
    }

    #[test]
    fn crash_mid_transaction_is_rolled_back_once() {
        let mut m = Mem::default();
        update(&mut m, A, A, X, 10);
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        m.put(A, X, 11);
        tx.record(&mut m, A, X + 8, 8).unwrap();
        m.put(A, X + 8, 12);
        drop(tx); // crash
        assert!(matches!(
            Tx::begin(&mut m, A, durability::COMMIT),
            Err(TxError::NeedsRecovery { seq: 2 })
        ));
        let st = plan(&mut m, A).unwrap();
        assert_eq!(
            st.pending.map(|p| (p.seq, p.entries, p.bytes)),
            Some((2, 2, 112))
        );
        assert_eq!(recover_anchor(&mut m, A, true).unwrap(), 2);
        assert_eq!((m.get(A, X), m.get(A, X + 8)), (10, 0));
        assert_eq!(
            recover_anchor(&mut m, A, true).unwrap(),
            0,
            "second recovery: nothing"
        );
        assert_eq!(Tx::begin(&mut m, A, durability::COMMIT).unwrap().seq(), 3);
    }

    #[test]
    fn stale_entries_of_older_transactions_are_not_undone() {
        let mut m = Mem::default();
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        for i in 0..4 {
            tx.record(&mut m, A, X + 8 * i, 8).unwrap();
            m.put(A, X + 8 * i, 100 + i);
        }
        tx.commit(&mut m).unwrap();
        // Transaction 2 logs one entry over the first of transaction 1's, then crashes.
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X + 8, 8).unwrap();
        m.put(A, X + 8, 555);
        drop(tx);
        assert_eq!(plan(&mut m, A).unwrap().pending.map(|p| p.entries), Some(1));
        recover_anchor(&mut m, A, true).unwrap();
        let vals: Vec<u64> = (0..4).map(|i| m.get(A, X + 8 * i)).collect();
        assert_eq!(vals, [100, 101, 102, 103]);
    }

    #[test]
    fn torn_entry_ends_the_log() {
        let mut m = Mem::default();
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        m.put(A, X, 1);
        tx.record(&mut m, A, X + 8, 8).unwrap();
        drop(tx);
        // Power loss tore the second entry's old bytes; its range was never written in place.
        let second = FIRST_ENTRY + entry_size(8);
        *m.byte(A, second + ENTRY_HEADER_SIZE) ^= 1;
        assert_eq!(plan(&mut m, A).unwrap().pending.map(|p| p.entries), Some(1));
        recover_anchor(&mut m, A, true).unwrap();
        assert_eq!(m.get(A, X), 0);
    }

    #[test]
    fn too_large_transaction_is_refused_and_can_abort() {
        let mut m = Mem::default();
        let mut tx = Tx::begin(&mut m, A, durability::NONE).unwrap();
        let big = 1 << 20;
        for i in 0..3 {
            tx.record(&mut m, A, X + i * big, big).unwrap();
            m.write(A, X + i * big, &[0xee; 1 << 20]).unwrap();
        }
        let e = tx.record(&mut m, A, X + 3 * big, big).unwrap_err();
        assert_eq!(
            e,
            TxError::TooLarge {
                needed: 4 * entry_size(big),
                capacity: LOG_CAPACITY - COMMIT_ENTRY_SIZE
            }
        );
        assert!(std::format!("{e}").contains("too large for its log"));
        tx.abort(&mut m).unwrap();
        assert_eq!(m.get(A, X + 2 * big + 8), 0);
        assert_eq!(plan(&mut m, A).unwrap().pending, None);
    }

    #[test]
    fn ranges_outside_the_data_region_are_refused() {
        let mut m = Mem::default();
        let mut tx = Tx::begin(&mut m, A, durability::NONE).unwrap();
        for (off, len) in [
            (0, 8),
            (X - 1, 8),
            (DATA_END - 4, 8),
            (LOG_OFFSET, 8),
            (u64::MAX, 2),
        ] {
            assert!(
                matches!(
                    tx.record(&mut m, A, off, len),
                    Err(TxError::OutsideData { .. })
                ),
                "{off:#x}+{len}"
            );
        }
        tx.record(&mut m, A, DATA_END - 8, 8).unwrap();
        tx.abort(&mut m).unwrap();
    }

    #[test]
    fn cross_object_marker_leads_recovery_to_the_anchor() {
        let mut m = Mem::default();
        update(&mut m, A, B, X, 5); // B marked (A, 1); stale once committed
        let meta = |m: &mut Mem| {
            let mut raw = [0u8; 256];
            m.read(B, META_OFFSET, &mut raw).unwrap();
            ObjMeta::from_bytes(&raw)
        };
        assert_eq!(meta(&mut m).tx_marker(), Marker { anchor: A, seq: 1 });
        assert!(!meta(&mut m)
            .tx_marker()
            .is_pending(&plan(&mut m, A).unwrap()));

        // A later transaction of the same anchor leaves the marker (no flush) and is still
        // found through it.
        let flushes = m.flushes;
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        m.put(A, X, 9);
        tx.record(&mut m, B, X, 8).unwrap();
        m.put(B, X, 6);
        assert_eq!(m.flushes - flushes, 2, "two entries, no marker");
        drop(tx); // crash; now B is opened first
        assert_eq!(
            read_marker(&mut m, B).unwrap(),
            Marker { anchor: A, seq: 1 }
        );
        assert!(meta(&mut m)
            .tx_marker()
            .is_pending(&plan(&mut m, A).unwrap()));
        let out = recover_marker(&mut m, B, true).unwrap();
        assert_eq!(
            out,
            MarkerOutcome::Recovered {
                marker: Marker { anchor: A, seq: 1 },
                entries: 2
            }
        );
        assert_eq!((m.get(A, X), m.get(B, X)), (0, 5));
        assert!(read_marker(&mut m, B).unwrap().is_clear());
        assert_eq!(
            recover_marker(&mut m, B, true).unwrap(),
            MarkerOutcome::Clear
        );
        // A stale marker is cleared without touching the anchor.
        update(&mut m, A, B, X, 7);
        assert!(matches!(
            recover_marker(&mut m, B, true).unwrap(),
            MarkerOutcome::Stale(_)
        ));
        assert_eq!(m.get(B, X), 7);
        // A marker of another anchor is replaced.
        update(&mut m, A, B, X, 8);
        update(&mut m, B, B, X, 9);
        let c = ObjId::from_u128(0xc);
        update(&mut m, c, B, X, 10);
        assert_eq!(read_marker(&mut m, B).unwrap().anchor, c);
    }

    /// Sets `anchor`'s `finished_seq` back to `seq`, as if a power loss had lost its last store.
    fn lose_finished(m: &mut Mem, anchor: ObjId, seq: u64) {
        m.put(anchor, HDR_FINISHED, seq);
    }

    /// Transaction 2 anchored in A, changing A's word at X from 1 to 2 and B's at X + 64 from 5
    /// to 6, committed in `COMMIT`; then its `finished_seq` is lost.
    fn committed_then_finished_lost() -> Mem {
        let mut m = Mem::default();
        update(&mut m, A, A, X, 1);
        m.put(B, X + 64, 5);
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        m.put(A, X, 2);
        tx.record(&mut m, B, X + 64, 8).unwrap();
        m.put(B, X + 64, 6);
        tx.commit(&mut m).unwrap();
        lose_finished(&mut m, A, 1);
        m
    }

    #[test]
    fn a_commit_waits_for_one_fence_and_leaves_finished_to_the_next() {
        let mut m = Mem::default();
        update(&mut m, A, A, X, 1); // formats the log
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        m.put(A, X, 2);
        tx.record(&mut m, B, X, 16).unwrap();
        m.put(B, X, 3);
        let (fences, tail) = (m.fences, tx.tail);
        m.durable.clear();
        tx.commit(&mut m).unwrap();
        // The leading fence finds nothing pending here (this memory does not list).
        assert_eq!(m.fences - fences, 2);
        for range in [(A, X, 8), (B, X, 16), (A, tail, commit_entry_size(0))] {
            assert!(
                m.durable.contains(&range),
                "{range:?} durable: {:?}",
                m.durable
            );
        }
        assert_eq!(
            m.unfenced,
            [(A, HDR_FINISHED, 8)],
            "finished_seq waits for the next fence"
        );
        assert_eq!(plan(&mut m, A).unwrap().pending, None);
        let mut next = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        next.record(&mut m, A, X, 8).unwrap();
        assert!(m.unfenced.is_empty());
        assert!(
            m.durable.contains(&(A, HDR_FINISHED, 8)),
            "before the next store"
        );
        next.abort(&mut m).unwrap();
    }

    #[test]
    fn a_commit_whose_finished_seq_was_lost_is_kept_by_recovery() {
        let mut m = committed_then_finished_lost();
        let state = plan(&mut m, A).unwrap();
        let p = state.pending.unwrap();
        assert!(p.committed, "every range holds its new bytes");
        assert_eq!((p.seq, p.entries), (2, 2));
        assert_eq!(
            rollback(&mut m, A, &state, true).unwrap(),
            0,
            "nothing undone"
        );
        assert_eq!((m.get(A, X), m.get(B, X + 64)), (2, 6));
        assert_eq!(plan(&mut m, A).unwrap().finished_seq, 2);
        // B's marker names the finished transaction: stale.
        assert!(matches!(
            recover_marker(&mut m, B, true).unwrap(),
            MarkerOutcome::Stale(_)
        ));
    }

    #[test]
    fn a_commit_torn_by_a_power_loss_is_undone() {
        let mut m = committed_then_finished_lost();
        // The power loss came during the commit's fence: the commit entry and A's range reached
        // the disk, B's range did not.
        m.put(B, X + 64, 5);
        let state = plan(&mut m, A).unwrap();
        assert!(!state.pending.unwrap().committed);
        assert_eq!(rollback(&mut m, A, &state, true).unwrap(), 2);
        assert_eq!((m.get(A, X), m.get(B, X + 64)), (1, 5), "all or nothing");
        // A forged commit entry (right checksum of its own, wrong shape) is an error.
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        let at = tx.tail;
        let mut h = EntryHeader {
            seq: tx.seq,
            target: ObjId::NULL,
            offset: X as u32,
            len: 8,
            prev: tx.last,
            kind: kind::COMMIT,
            check: 0,
        };
        let mut sum = h.checksum_start();
        sum.word(0);
        h.check = sum.finish();
        m.write(A, at, &h.to_bytes()).unwrap();
        m.put(A, at + ENTRY_HEADER_SIZE, 0);
        assert!(matches!(
            plan(&mut m, A),
            Err(TxError::Log(LogError::BadEntry { .. }))
        ));
        drop(tx);
    }

    /// Transaction 2 anchored in A: A's word at X from 1 to 2 (recorded), and 16 fresh bytes at
    /// B's X + 128 written and flushed without a record; committed by a memory that lists what
    /// is unfenced. Returns the memory and the fences the commit took.
    fn committed_with_a_listed_flush() -> (Mem, usize) {
        let mut m = Mem {
            lists: true,
            ..Mem::default()
        };
        update(&mut m, A, A, X, 1);
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        m.put(A, X, 2);
        m.put(B, X + 128, 77);
        m.put(B, X + 136, 78);
        m.flush(B, X + 128, 16).unwrap();
        let (fences, tail) = (m.fences, tx.tail);
        tx.commit(&mut m).unwrap();
        assert!(m.durable.contains(&(A, tail, commit_entry_size(1))));
        assert!(m.durable.contains(&(B, X + 128, 16)));
        lose_finished(&mut m, A, 1);
        let took = m.fences - fences;
        (m, took)
    }

    #[test]
    fn a_commit_listing_the_callers_flushes_waits_once() {
        let (mut m, fences) = committed_with_a_listed_flush();
        assert_eq!(fences, 1, "no leading fence for the caller's bytes");
        let state = plan(&mut m, A).unwrap();
        assert!(state.pending.unwrap().committed);
        assert_eq!(rollback(&mut m, A, &state, true).unwrap(), 0);
        assert_eq!((m.get(A, X), m.get(B, X + 128)), (2, 77));
    }

    #[test]
    fn a_commit_whose_listed_flush_was_torn_is_undone() {
        let (mut m, _) = committed_with_a_listed_flush();
        // The power went during the commit's fence: the entry and A reached the disk, the
        // caller's bytes at B did not.
        m.put(B, X + 136, 0);
        let state = plan(&mut m, A).unwrap();
        assert!(!state.pending.unwrap().committed);
        assert_eq!(rollback(&mut m, A, &state, true).unwrap(), 1);
        assert_eq!(m.get(A, X), 1, "undone");
        // A listed range outside an object's data is refused as a bad entry.
        let (mut m, _) = committed_with_a_listed_flush();
        let entry = {
            let st = plan(&mut m, A).unwrap();
            LOG_OFFSET + st.pending.unwrap().last as u64 + entry_size(8)
        };
        let listed_offset = entry + ENTRY_HEADER_SIZE + 8 + 16;
        m.put(A, listed_offset, 0);
        let h = read_entry_header(&mut m, A, entry).unwrap();
        let mut sum = h.checksum_start();
        let mut data = [0u8; 40];
        m.read(A, entry + ENTRY_HEADER_SIZE, &mut data).unwrap();
        sum.words(&data);
        let mut fixed = h;
        fixed.check = sum.finish();
        m.write(A, entry, &fixed.to_bytes()).unwrap();
        assert!(matches!(
            plan(&mut m, A),
            Err(TxError::Log(LogError::BadEntry { .. }))
        ));
    }

    #[test]
    fn a_prepared_record_rides_the_next_fence_and_a_second_fence_is_free() {
        let mut m = Mem::default();
        update(&mut m, A, A, X, 1);
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        let fences = m.fences;
        tx.prepare_many(&mut m, &[(A, X, 8)]).unwrap();
        assert_eq!(m.fences, fences, "prepared: no wait yet");
        tx.record(&mut m, B, X, 8).unwrap();
        assert_eq!(m.fences, fences + 1, "the record's fence covers both");
        tx.fence(&mut m).unwrap();
        assert_eq!(m.fences, fences + 1, "nothing left to wait for");
        m.put(A, X, 2);
        m.put(B, X, 3);
        drop(tx); // crash
        recover_anchor(&mut m, A, true).unwrap();
        assert_eq!((m.get(A, X), m.get(B, X)), (1, 0));
        // Prepared and committed without a fence between: the entry (in the log, not data)
        // cannot be listed, so the commit fences it first.
        m.lists = true;
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        tx.prepare_many(&mut m, &[(A, X, 8)]).unwrap();
        let (fences, tail) = (m.fences, tx.tail);
        tx.commit(&mut m).unwrap();
        assert_eq!(m.fences - fences, 2);
        assert!(m.durable.contains(&(A, tail, commit_entry_size(0))));
    }

    #[test]
    fn record_many_saves_every_range_behind_one_fence() {
        let mut m = Mem::default();
        update(&mut m, A, A, X, 1);
        m.put(B, X, 7);
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        let fences = m.fences;
        tx.record_many(&mut m, &[(A, X, 8), (B, X, 8), (ObjId::NULL, X + 8, 16)])
            .unwrap();
        assert_eq!(m.fences - fences, 1);
        assert!(m.unfenced.is_empty());
        assert_eq!(tx.entries(), 3);
        m.put(A, X, 2);
        m.put(B, X, 8);
        m.put(A, X + 8, 9);
        drop(tx); // crash
        recover_anchor(&mut m, A, true).unwrap();
        assert_eq!((m.get(A, X), m.get(B, X), m.get(A, X + 8)), (1, 7, 0));
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        let e = tx.record_many(&mut m, &[(A, X, 8), (A, 0, 8)]).unwrap_err();
        assert!(matches!(e, TxError::OutsideData { .. }));
        assert_eq!(
            tx.entries(),
            1,
            "the good range before the bad one stays recorded"
        );
        tx.abort(&mut m).unwrap();
    }

    #[test]
    fn a_version_1_log_is_read_and_upgraded_by_its_next_transaction() {
        let mut m = Mem::default();
        update(&mut m, A, A, X, 1);
        m.write(A, LOG_OFFSET + 8, &1u32.to_le_bytes()).unwrap();
        assert_eq!(plan(&mut m, A).unwrap().finished_seq, 1);
        update(&mut m, A, A, X, 2);
        let mut v = [0u8; 4];
        m.read(A, LOG_OFFSET + 8, &mut v).unwrap();
        assert_eq!(u32::from_le_bytes(v), LOG_VERSION);
    }

    #[test]
    fn a_cross_object_record_is_durable_with_its_marker_after_one_fence() {
        let mut m = Mem::default();
        let mut tx = Tx::begin(&mut m, A, durability::COMMIT).unwrap();
        let (fences, flushes) = (m.fences, m.flushes);
        tx.record(&mut m, B, X, 8).unwrap();
        assert_eq!(m.fences - fences, 1, "marker and entry share one fence");
        assert_eq!(m.flushes - flushes, 2, "the marker and the entry");
        assert!(
            m.unfenced.is_empty(),
            "nothing left undurable before the store"
        );
        let marker = (B, META_TX_ANCHOR, MARKER_SIZE as u64);
        let entry = (A, FIRST_ENTRY, entry_size(8));
        assert!(m.durable.ends_with(&[marker, entry]), "{:?}", m.durable);
        // The same target again: no new marker, one flush and one fence for the entry.
        tx.record(&mut m, B, X + 8, 8).unwrap();
        assert_eq!((m.fences - fences, m.flushes - flushes), (2, 3));
    }

    #[test]
    fn forged_entry_outside_data_is_an_error_not_a_write() {
        let mut m = Mem::default();
        let mut tx = Tx::begin(&mut m, A, durability::NONE).unwrap();
        tx.record(&mut m, A, X, 8).unwrap();
        drop(tx);
        // Rewrite the entry to aim at the metadata, with a correct checksum.
        let mut raw = [0u8; 48];
        m.read(A, FIRST_ENTRY, &mut raw).unwrap();
        let mut h = EntryHeader::from_bytes(&raw);
        h.offset = META_OFFSET as u32;
        let mut c = h.checksum_start();
        c.words(&[0u8; 8]);
        h.check = c.finish();
        m.write(A, FIRST_ENTRY, &h.to_bytes()).unwrap();
        assert_eq!(
            plan(&mut m, A),
            Err(TxError::Log(LogError::BadEntry { at: 64 }))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_log_bytes_never_panic(
            header in proptest::collection::vec(any::<u8>(), 64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            seq_one in any::<bool>(),
        ) {
            let mut m = Mem::default();
            m.write(A, LOG_OFFSET, &header).unwrap();
            m.write(A, FIRST_ENTRY, &body).unwrap();
            if seq_one {
                m.write(A, LOG_OFFSET, &LogHeader::new(0).to_bytes()).unwrap();
                m.put(A, FIRST_ENTRY, 1);
            }
            if let Ok(st) = plan(&mut m, A) {
                let _ = rollback(&mut m, A, &st, true);
            }
            let _ = Tx::begin(&mut m, A, durability::COMMIT);
        }

        #[test]
        fn entry_headers_round_trip(b in proptest::collection::vec(any::<u8>(), 48)) {
            let mut raw = [0u8; 48];
            raw.copy_from_slice(&b);
            prop_assert_eq!(EntryHeader::from_bytes(&raw).to_bytes(), raw);
            let mut hb = [0u8; 64];
            hb[..48].copy_from_slice(&b);
            prop_assert_eq!(LogHeader::from_bytes(&hb).to_bytes(), hb);
        }
    }
}
