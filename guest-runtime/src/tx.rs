//! Transactions and persistent allocation over mapped objects: `abi::txlog`'s undo log and
//! `abi::palloc`'s allocator, run on the guest's object window.
//!
//! ```ignore
//! let mut tx = list.tx()?;                       // anchored in `list`'s log
//! let off = tx.alloc(&node, Person::new("bob"))?; // inside `node`, in the same transaction
//! tx.write(unsafe { &mut list.raw_mut()?.count }, 3)?; // record, then store
//! tx.commit()?;                                   // dropping it instead rolls back
//! ```
//! Durability comes from the run's `--durability` ([`crate::boot::info`]): in `NONE` no flush
//! is issued (stores to the host's `MAP_SHARED` files survive a crash of the guest or of the
//! VMM); otherwise `flush` remembers ranges and `fence` sends them all to the host in one ring
//! request (`FLUSH_MANY`: the VMM syncs each object once) and waits.
//!
//! In `GROUP` a commit does not wait: its last ranges stay pending until the anchor's next
//! transaction, or until [`sync`], which makes everything committed so far durable. A program
//! in group mode must call [`sync`] (C: `twz_sync`) before it acknowledges a write to anyone.
//!
//! The host recovers an unfinished transaction when it next opens the anchor, so a guest that
//! crashes mid-transaction loses nothing committed and keeps nothing uncommitted.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::fmt;

use abi::layout::{LOG_OFFSET, LOG_SIZE, META_ALLOC_TOP, OBJ_SIZE};
use abi::memmap::{slot_addr, slot_of};
use abi::palloc::{self, AllocError};
use abi::ring::{FlushRange, FLUSH_MANY_MAX};
use abi::txlog::{self, ObjectMemory};

use crate::object::sys::{self, Mapping};
use crate::object::{ObjError, ObjId, Object, Persistent};

/// What a transaction or allocation can fail with: the allocator's error, which wraps the log's
/// ([`AllocError::Tx`]) and the object layer's (`AllocError::Tx(TxError::Memory(..))`).
pub type TxError = AllocError<ObjError>;

/// Bytes every object's first allocation reserves for an untyped base struct (C callers).
pub const DEFAULT_BASE_SIZE: u64 = 4096;

/// Objects a transaction remembers the mapping of (more still work, they just map again).
const SEEN: usize = 4;
/// Flushed ranges remembered until the next fence (beyond that the fence comes early).
const PENDING: usize = 1024;
/// Ranges [`Tx::record_addrs`] takes at once (more: `EINVAL`).
pub const RECORD_MANY_MAX: usize = 16;

type Seen = [Option<(ObjId, Mapping)>; SEEN];

/// The mappings the last transaction used, handed to the next one so that a transaction on an
/// object it already knows makes no host call.
struct SeenCell(UnsafeCell<Seen>);

// SAFETY: the guest runs on one vCPU and CPL3 code is not preempted by other guest code; the
// cell is only copied in and out by `WindowMemory::new` and `Drop`, never borrowed across calls.
unsafe impl Sync for SeenCell {}

static LAST_SEEN: SeenCell = SeenCell(UnsafeCell::new([None; SEEN]));

/// Ranges flushed but not yet fenced when a transaction ended: in durability `GROUP` a commit
/// leaves its last fence to the anchor's next transaction, which must still find them.
struct PendingCell(UnsafeCell<Vec<(ObjId, u64, u64)>>);

// SAFETY: as for `SeenCell`: one vCPU, moved in and out whole, never borrowed across calls.
unsafe impl Sync for PendingCell {}

static LEFT_PENDING: PendingCell = PendingCell(UnsafeCell::new(Vec::new()));

/// [`ObjectMemory`] over the object window: objects by ID, mapped writable on demand.
pub struct WindowMemory {
    seen: [Option<(ObjId, Mapping)>; SEEN],
    next_seen: usize,
    /// Ranges flushed since the last fence (empty, never allocated, in durability `NONE`).
    pending: Vec<(ObjId, u64, u64)>,
}

impl Default for WindowMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl WindowMemory {
    /// Memory that knows the mappings the previous one used (each is checked before use).
    pub fn new() -> Self {
        // SAFETY: see `SeenCell`: a plain copy, no reference outlives this line.
        let seen: Seen = unsafe { *LAST_SEEN.0.get() };
        WindowMemory {
            // Fill free entries before replacing any: restarting at 0 every transaction made
            // two objects used in turn evict each other (one host call per transaction).
            next_seen: seen.iter().position(Option::is_none).unwrap_or(0),
            seen,
            // SAFETY: see `PendingCell`: taken whole, no reference outlives this line.
            pending: core::mem::take(unsafe { &mut *LEFT_PENDING.0.get() }),
        }
    }

    /// The slot `id` is mapped writable in, mapping it if needed.
    #[inline]
    fn slot(&mut self, id: ObjId) -> Result<usize, ObjError> {
        for (sid, m) in self.seen.iter().flatten() {
            if *sid == id && sys::still_mapped(*m, id, true) {
                return Ok(m.slot);
            }
        }
        let m = sys::map(id, true, None)?;
        self.seen[self.next_seen] = Some((id, m));
        self.next_seen = (self.next_seen + 1) % SEEN;
        Ok(m.slot)
    }

    /// The guest address of `offset..offset+len` of `id`, checked to lie inside the object.
    #[inline]
    fn addr(&mut self, id: ObjId, offset: u64, len: u64) -> Result<u64, ObjError> {
        if offset.checked_add(len).is_none_or(|end| end > OBJ_SIZE) {
            return Err(ObjError::OutOfRange(offset));
        }
        Ok(slot_addr(self.slot(id)? as u64) + offset)
    }

    /// The slot `id` is mapped writable in, if that is known without a host call.
    fn known_slot(&self, id: ObjId) -> Option<usize> {
        self.seen
            .iter()
            .flatten()
            .find(|(sid, m)| *sid == id && sys::still_mapped(*m, id, true))
            .map(|(_, m)| m.slot)
    }

    /// Sends every pending range to the host, merged per object, in as few `FLUSH_MANY`
    /// requests as fit, and waits for them.
    fn flush_pending(&mut self) -> Result<(), ObjError> {
        let mut ranges = core::mem::take(&mut self.pending);
        merge_ranges(&mut ranges);
        let result = self.send_ranges(&ranges);
        if result.is_ok() {
            ranges.clear();
        }
        // On failure every range stays pending (sending a durable one again is harmless), so
        // a later fence or `sync` cannot report success for bytes that never became durable.
        self.pending = ranges;
        result
    }

    fn send_ranges(&mut self, ranges: &[(ObjId, u64, u64)]) -> Result<(), ObjError> {
        let mut batch: Vec<FlushRange> = Vec::with_capacity(ranges.len());
        for &(id, offset, len) in ranges {
            let slot = match self.known_slot(id) {
                Some(s) => s,
                None => {
                    // Mapping may evict a slot the batch names: send the batch first.
                    sys::flush_many(&batch)?;
                    batch.clear();
                    match self.slot(id) {
                        Ok(s) => s,
                        // Deleted since: nothing of it is left to make durable.
                        Err(ObjError::NoSuchObject(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            batch.push(FlushRange {
                slot: slot as u64,
                offset,
                len,
            });
            if batch.len() as u64 == FLUSH_MANY_MAX {
                sys::flush_many(&batch)?;
                batch.clear();
            }
        }
        sys::flush_many(&batch)
    }
}

/// Sorts ranges by object and offset and merges those that overlap or touch.
fn merge_ranges(ranges: &mut Vec<(ObjId, u64, u64)>) {
    ranges.sort_unstable_by_key(|&(id, off, _)| (id, off));
    let mut out = 0;
    for i in 0..ranges.len() {
        let (id, off, len) = ranges[i];
        if out > 0 {
            let (pid, poff, plen) = ranges[out - 1];
            if pid == id && off <= poff + plen {
                ranges[out - 1].2 = (off + len).max(poff + plen) - poff;
                continue;
            }
        }
        ranges[out] = (id, off, len);
        out += 1;
    }
    ranges.truncate(out);
}

/// Makes every transaction committed so far durable, whatever its anchor: in durability
/// `GROUP` commits leave their last flushes pending, and this sends them all (one request)
/// and waits. Call it before acknowledging writes to anyone. Nothing to do in `NONE`; in
/// `COMMIT` every commit already waited for its commit entry, and this only makes the last
/// `finished_seq` durable too (recovery would keep that commit anyway).
pub fn sync() -> Result<(), ObjError> {
    let mut mem = WindowMemory::new();
    if mem.pending.is_empty() {
        return Ok(());
    }
    mem.flush_pending()
}

impl Drop for WindowMemory {
    fn drop(&mut self) {
        // SAFETY: see `SeenCell`: a plain copy, no reference outlives this line.
        unsafe { *LAST_SEEN.0.get() = self.seen };
        if !self.pending.is_empty() {
            // SAFETY: see `PendingCell`: appended to, no reference outlives this line.
            unsafe { (*LEFT_PENDING.0.get()).append(&mut self.pending) };
        }
    }
}

impl ObjectMemory for WindowMemory {
    type Error = ObjError;

    #[inline]
    fn read(&mut self, obj: ObjId, offset: u64, buf: &mut [u8]) -> Result<(), ObjError> {
        let at = self.addr(obj, offset, buf.len() as u64)?;
        // SAFETY: `at..at+len` lies inside a mapped object (checked above), which is not Rust
        // memory that `buf` could overlap.
        unsafe { core::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    #[inline]
    fn write(&mut self, obj: ObjId, offset: u64, data: &[u8]) -> Result<(), ObjError> {
        let at = self.addr(obj, offset, data.len() as u64)?;
        if (LOG_OFFSET..LOG_OFFSET + LOG_SIZE).contains(&offset) {
            // Log records: the file space behind them exists before they are stored.
            sys::reserve_log(
                slot_of(at).unwrap_or(0) as usize,
                offset + data.len() as u64,
            )?;
        }
        // SAFETY: as in `read`; the object is mapped writable (`slot` maps with write rights).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
        Ok(())
    }

    fn reserve(&mut self, obj: ObjId, offset: u64, len: u64) -> Result<(), ObjError> {
        let slot = self.slot(obj)?;
        sys::reserve(slot, offset, offset.saturating_add(len))
    }

    fn flush(&mut self, obj: ObjId, offset: u64, len: u64) -> Result<(), ObjError> {
        if self.pending.len() >= PENDING {
            self.flush_pending()?;
        }
        self.pending.push((obj, offset, len));
        Ok(())
    }

    fn unfenced(&mut self, out: &mut [(ObjId, u64, u64)]) -> Option<usize> {
        merge_ranges(&mut self.pending);
        let n = self.pending.len();
        out.get_mut(..n)?.copy_from_slice(&self.pending);
        Some(n)
    }

    fn fence(&mut self) -> Result<(), ObjError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.flush_pending()
    }
}

/// The object (ID) and offset a guest address points into, if it is in a mapped slot.
fn locate(addr: u64) -> Result<(ObjId, u64, bool), ObjError> {
    let slot = slot_of(addr).ok_or(ObjError::NotInObject)?;
    let (id, writable) = sys::occupant(slot as usize).ok_or(ObjError::NotInObject)?;
    Ok((id, addr & (OBJ_SIZE - 1), writable))
}

fn obj_err(e: ObjError) -> TxError {
    AllocError::Tx(txlog::TxError::Memory(e))
}

/// A transaction in flight: commit it, or it is rolled back when dropped.
pub struct Tx {
    log: Option<txlog::Tx>,
    mem: WindowMemory,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.log {
            Some(l) => write!(f, "Tx(anchor {}, seq {})", l.anchor(), l.seq()),
            None => write!(f, "Tx(finished)"),
        }
    }
}

/// Starting a transaction on an object.
pub trait Transactional {
    /// Begins a transaction anchored in this object's log.
    fn tx(&self) -> Result<Tx, TxError>;
}

impl<T> Transactional for Object<T> {
    fn tx(&self) -> Result<Tx, TxError> {
        Tx::begin(self.id())
    }
}

impl Tx {
    /// Begins a transaction anchored in object `anchor`'s log, in the run's durability mode.
    pub fn begin(anchor: ObjId) -> Result<Tx, TxError> {
        let mut mem = WindowMemory::new();
        let mode = crate::boot::info().durability;
        let log = txlog::Tx::begin(&mut mem, anchor, mode)?;
        Ok(Tx {
            log: Some(log),
            mem,
        })
    }

    fn parts(&mut self) -> (&mut txlog::Tx, &mut WindowMemory) {
        match &mut self.log {
            Some(l) => (l, &mut self.mem),
            // `log` is only taken by `commit`/`abort`, which consume `self`.
            None => unreachable!("transaction used after it finished"),
        }
    }

    /// The anchor object.
    pub fn anchor(&self) -> ObjId {
        self.log.as_ref().map_or(ObjId::NULL, |l| l.anchor())
    }

    /// Saves the `len` bytes at guest address `addr` (inside a mapped object's data region or
    /// allocator metadata) so they are restored if the transaction does not commit. Record a
    /// range before storing into it.
    #[inline]
    pub fn record_addr(&mut self, addr: u64, len: u64) -> Result<(), TxError> {
        let (id, offset, writable) = locate(addr).map_err(obj_err)?;
        if !writable {
            return Err(obj_err(ObjError::ReadOnly));
        }
        let (log, mem) = self.parts();
        log.record(mem, id, offset, len)?;
        Ok(())
    }

    /// Saves several ranges `(addr, len)` (see [`Tx::record_addr`]) behind one wait for the
    /// disk in a durable run, where each `record_addr` waits once: store into none of them
    /// before this returns. At most [`RECORD_MANY_MAX`] ranges.
    pub fn record_addrs(&mut self, ranges: &[(u64, u64)]) -> Result<(), TxError> {
        self.prepare_addrs(ranges)?;
        self.fence()
    }

    /// [`Tx::record_addrs`] without the wait: store into none of the ranges before the next
    /// [`Tx::fence`] returns (free when a record, an allocation's for example, has waited
    /// since). Lets a caller fold its records into the wait of an allocation.
    pub fn prepare_addrs(&mut self, ranges: &[(u64, u64)]) -> Result<(), TxError> {
        if ranges.len() > RECORD_MANY_MAX {
            return Err(obj_err(ObjError::Host(crate::errno::Errno::EINVAL)));
        }
        let mut located = [(ObjId::NULL, 0u64, 0u64); RECORD_MANY_MAX];
        for (slot, &(addr, len)) in located.iter_mut().zip(ranges) {
            let (id, offset, writable) = locate(addr).map_err(obj_err)?;
            if !writable {
                return Err(obj_err(ObjError::ReadOnly));
            }
            *slot = (id, offset, len);
        }
        let (log, mem) = self.parts();
        log.prepare_many(mem, &located[..ranges.len()])?;
        Ok(())
    }

    /// Waits until every range recorded or prepared so far is durable (nothing to wait for in
    /// durability `NONE`, or when nothing was prepared since the last wait).
    pub fn fence(&mut self) -> Result<(), TxError> {
        let (log, mem) = self.parts();
        log.fence(mem)?;
        Ok(())
    }

    /// Saves `*field` (see [`Tx::record_addr`]).
    #[inline]
    pub fn record<U>(&mut self, field: &U) -> Result<(), TxError> {
        self.record_addr(field as *const U as u64, core::mem::size_of::<U>() as u64)
    }

    /// Records `*place`, then stores `value` there.
    #[inline]
    pub fn write<U: Persistent>(&mut self, place: &mut U, value: U) -> Result<(), TxError> {
        self.record(&*place)?;
        *place = value;
        Ok(())
    }

    /// Adds the `len` bytes at guest address `addr` (inside a mapped object) to what the commit
    /// makes durable, for bytes stored without recording them (a fresh allocation's payload).
    /// Nothing in durability `NONE`.
    pub fn flush_addr(&mut self, addr: u64, len: u64) -> Result<(), TxError> {
        if crate::boot::info().durability == abi::boot::durability::NONE || len == 0 {
            return Ok(());
        }
        let (id, offset, _) = locate(addr).map_err(obj_err)?;
        if offset.checked_add(len).is_none_or(|end| end > OBJ_SIZE) {
            return Err(obj_err(ObjError::OutOfRange(offset)));
        }
        self.mem.flush(id, offset, len).map_err(obj_err)
    }

    /// Allocates `size` bytes in `obj` (whose base struct takes `base_size` bytes, used to set
    /// up the object's allocator on its first allocation); returns the payload's offset. The
    /// payload may be written without recording it: the allocation is undone on rollback.
    pub fn alloc_in(&mut self, obj: ObjId, size: u64, base_size: u64) -> Result<u64, TxError> {
        let (log, mem) = self.parts();
        let mut top = [0u8; 8];
        mem.read(obj, META_ALLOC_TOP, &mut top).map_err(obj_err)?;
        let top = u64::from_le_bytes(top);
        let off = match palloc::alloc(mem, log, obj, size) {
            Err(AllocError::NotInitialized) => {
                palloc::init(mem, log, obj, base_size)?;
                palloc::alloc(mem, log, obj, size)?
            }
            r => r?,
        };
        // A block taken from a free list keeps its list link in its first word: record it, so
        // a rollback that puts the block back finds the link intact whatever the caller wrote.
        // A block carved above the old top has no link (a rollback lowers the top below it),
        // and skipping it saves a durable commit one disk round trip.
        if off < top {
            log.record(mem, obj, off, 8)?;
        }
        Ok(off)
    }

    /// Allocates a `U` holding `value` in `obj`; returns its offset (for [`crate::object::InvPtr`]).
    pub fn alloc<C, U: Persistent>(&mut self, obj: &Object<C>, value: U) -> Result<u64, TxError> {
        let size = core::mem::size_of::<U>() as u64;
        let off = self.alloc_in(obj.id(), size.max(1), core::mem::size_of::<C>() as u64)?;
        let at = obj.addr().map_err(obj_err)? + off;
        // SAFETY: `off` is a fresh 16-byte aligned block of at least `size` bytes inside the
        // mapped object's data region (palloc), so a `U` fits there.
        unsafe { (at as *mut U).write(value) };
        // Stored without a record: the commit makes it durable only if told.
        self.flush_addr(at, size)?;
        Ok(off)
    }

    /// Frees the block whose payload is at guest address `addr` (as returned by an allocation).
    pub fn free_addr(&mut self, addr: u64) -> Result<(), TxError> {
        let (id, offset, _) = locate(addr).map_err(obj_err)?;
        let (log, mem) = self.parts();
        palloc::free(mem, log, id, offset)
    }

    /// Frees the block at `offset` of `obj`.
    pub fn free<C>(&mut self, obj: &Object<C>, offset: u64) -> Result<(), TxError> {
        let (log, mem) = self.parts();
        palloc::free(mem, log, obj.id(), offset)
    }

    /// Makes the transaction's updates permanent (durable per the run's mode on return).
    pub fn commit(mut self) -> Result<(), TxError> {
        match self.log.take() {
            Some(l) => Ok(l.commit(&mut self.mem)?),
            None => Ok(()),
        }
    }

    /// Puts back everything recorded and ends the transaction.
    pub fn abort(mut self) -> Result<(), TxError> {
        match self.log.take() {
            Some(l) => Ok(l.abort(&mut self.mem)?),
            None => Ok(()),
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(l) = self.log.take() {
            // A failed rollback leaves the transaction unfinished in the log; the host recovers
            // it when the anchor is next opened, so there is nothing better to do here.
            let _ = l.abort(&mut self.mem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> ObjId {
        ObjId([b; 16])
    }

    #[test]
    fn merging_joins_overlapping_and_touching_ranges_per_object() {
        let mut r = alloc::vec![
            (id(2), 100, 10),
            (id(1), 50, 10),
            (id(1), 0, 8),
            (id(1), 8, 8),
            (id(2), 105, 20),
            (id(1), 4, 2),
            (id(2), 0, 1),
        ];
        merge_ranges(&mut r);
        assert_eq!(
            r,
            alloc::vec![
                (id(1), 0, 16),
                (id(1), 50, 10),
                (id(2), 0, 1),
                (id(2), 100, 25)
            ]
        );
    }

    #[test]
    fn merging_keeps_distinct_objects_apart() {
        let mut r = alloc::vec![(id(1), 0, 4096), (id(2), 0, 4096)];
        merge_ranges(&mut r);
        assert_eq!(r.len(), 2);
    }
}
