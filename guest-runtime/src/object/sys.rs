//! The object host calls, and the runtime's view of the object window: which object is in which
//! slot (with a generation that changes whenever a slot changes hands) and the FOT cache.
//!
//! All of it lives in one static: the guest runs on one vCPU and CPL3 code is never interrupted
//! by other guest code, and no function here calls back into user code while it holds a borrow.

use core::cell::UnsafeCell;

use abi::fot::{perms, MAX_NAME_LEN};
use abi::hostcall::{map_result, nr};
use abi::id::ObjId;
use abi::memmap::slot_addr;
use abi::ring::{op, FlushRange};

use super::cache::{FotCache, MAX_SLOTS};
use super::ObjError;
use crate::errno::Errno;
use crate::hostcall::raw;

#[derive(Clone, Copy)]
struct SlotInfo {
    id: ObjId,
    /// Bumped whenever the slot's occupant changes or leaves.
    generation: u64,
    writable: bool,
    mapped: bool,
    /// The end of the object's used bytes when this mapping first reported growth (0: not
    /// yet), and how far the VMM has been asked to populate; see [`grown`].
    grown_from: u64,
    populated: u64,
    /// How far the host has allocated file space for the data region (0: not asked yet) and
    /// for the transaction log, through this mapping; see [`reserve`].
    reserved: u64,
    log_reserved: u64,
    /// The used end when [`reserve`] was first asked through this mapping.
    reserve_base: u64,
}

const NO_SLOT: SlotInfo = SlotInfo {
    id: ObjId::NULL,
    generation: 0,
    writable: false,
    mapped: false,
    grown_from: 0,
    populated: 0,
    reserved: 0,
    log_reserved: 0,
    reserve_base: 0,
};

/// File space is reserved ahead in steps of at least this many bytes...
const RESERVE_MIN: u64 = 64 << 10;
/// ...growing with what the object grew by, up to this many.
const RESERVE_MAX: u64 = 2 << 20;

/// How much an object must grow through one mapping before the runtime asks the VMM to
/// populate ahead of it, so that small objects take no more disk than they use.
const POPULATE_AFTER: u64 = 2 << 20;
/// The most asked for ahead of an object's used bytes (it grows with what the object grew by).
const POPULATE_AHEAD_MAX: u64 = 16 << 20;
/// Requests cover whole units of this many bytes.
const POPULATE_UNIT: u64 = 2 << 20;

/// The runtime's object state.
pub struct Window {
    slots: [SlotInfo; MAX_SLOTS],
    /// FOT index -> target base, per container slot.
    pub cache: FotCache,
}

struct WindowCell(UnsafeCell<Window>);

// SAFETY: one vCPU, no preemption of CPL3 code by other guest code (see the module doc), so the
// cell is never used from two contexts at once.
unsafe impl Sync for WindowCell {}

static WINDOW: WindowCell = WindowCell(UnsafeCell::new(Window {
    slots: [NO_SLOT; MAX_SLOTS],
    cache: FotCache::new(),
}));

/// The window state, for a read on the resolve fast path.
#[inline(always)]
pub fn window() -> &'static Window {
    // SAFETY: see `WindowCell`; mutation happens only in `window_mut` callers below, which never
    // run while a caller of this function is between its loads (single vCPU, no callbacks).
    unsafe { &*WINDOW.0.get() }
}

fn window_mut() -> &'static mut Window {
    // SAFETY: see `WindowCell`; each caller uses the borrow briefly and makes no call that could
    // take another.
    unsafe { &mut *WINDOW.0.get() }
}

/// A mapping the runtime handed out: the slot, and its generation at the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The slot.
    pub slot: usize,
    /// Its generation when mapped.
    pub generation: u64,
}

/// Whether `m` still holds object `id` (with write rights if `write`).
#[inline]
pub fn still_mapped(m: Mapping, id: ObjId, write: bool) -> bool {
    window().slots.get(m.slot).is_some_and(|s| {
        s.mapped && s.generation == m.generation && s.id == id && (s.writable || !write)
    })
}

fn check_name(name: &str) -> Result<(), ObjError> {
    if name.is_empty() {
        Err(ObjError::Host(Errno::EINVAL))
    } else if name.len() > MAX_NAME_LEN {
        Err(ObjError::NameTooLong)
    } else {
        Ok(())
    }
}

fn result(ret: i64) -> Result<u64, ObjError> {
    Errno::result(ret).map_err(ObjError::Host)
}

/// Creates an object (named `name` if given); returns its ID.
pub fn create(name: Option<&str>) -> Result<ObjId, ObjError> {
    let (ptr, len) = match name {
        Some(n) => {
            check_name(n)?;
            (n.as_ptr() as u64, n.len() as u64)
        }
        None => (0, 0),
    };
    let mut id = ObjId::NULL;
    let out = &raw mut id.0 as u64;
    // SAFETY: OBJ_CREATE reads the name (borrowed for the call) and writes 16 bytes into `id`.
    result(unsafe { raw(nr::OBJ_CREATE, [ptr, len, out, 0, 0, 0]) })?;
    Ok(id)
}

/// The object bound to `name`.
pub fn lookup(name: &str) -> Result<ObjId, ObjError> {
    check_name(name)?;
    let mut id = ObjId::NULL;
    let out = &raw mut id.0 as u64;
    let args = [name.as_ptr() as u64, name.len() as u64, out, 0, 0, 0];
    // SAFETY: OBJ_LOOKUP reads the name and writes 16 bytes into `id`.
    match result(unsafe { raw(nr::OBJ_LOOKUP, args) }) {
        Ok(_) => Ok(id),
        Err(ObjError::Host(Errno::ENOENT)) => Err(ObjError::NoSuchName),
        Err(e) => Err(e),
    }
}

/// Binds `name` to `id`.
pub fn bind(name: &str, id: ObjId) -> Result<(), ObjError> {
    check_name(name)?;
    let args = [
        name.as_ptr() as u64,
        name.len() as u64,
        &raw const id.0 as u64,
        0,
        0,
        0,
    ];
    // SAFETY: OBJ_BIND only reads the name and the ID.
    result(unsafe { raw(nr::OBJ_BIND, args) }).map(|_| ())
}

/// Maps `id` (writable if `write`), never evicting slot `keep`.
pub fn map(id: ObjId, write: bool, keep: Option<usize>) -> Result<Mapping, ObjError> {
    let rights = if write {
        perms::READ | perms::WRITE
    } else {
        perms::READ
    };
    let keep = keep.map_or(0, |k| k as u64 + 1);
    let args = [&raw const id.0 as u64, u64::from(rights), keep, 0, 0, 0];
    // SAFETY: OBJ_MAP only reads the ID; the memory it changes (the window) is not Rust memory.
    let ret = match result(unsafe { raw(nr::OBJ_MAP, args) }) {
        Ok(r) => r,
        Err(ObjError::Host(Errno::ENOENT)) => return Err(ObjError::NoSuchObject(id)),
        Err(ObjError::Host(Errno::EACCES)) => return Err(ObjError::Denied(id)),
        Err(e) => return Err(e),
    };
    let slot = map_result::slot(ret) as usize;
    let w = window_mut();
    if let Some(e) = map_result::evicted(ret) {
        forget(w, e as usize);
    }
    let info = w.slots.get_mut(slot).ok_or(ObjError::Host(Errno::EIO))?;
    if !info.mapped || info.id != id {
        let generation = info.generation + 1;
        *info = SlotInfo {
            id,
            generation,
            writable: write,
            mapped: true,
            ..NO_SLOT
        };
        w.cache.forget_slot(slot, slot_addr(slot as u64));
    } else {
        info.writable |= write;
    }
    Ok(Mapping {
        slot,
        generation: info.generation,
    })
}

/// Copies why the most recent refused host call was refused (for example "cannot map object
/// ... read-only: capability x.cap: link 0: expired at ...") into `buf`, truncated; returns the
/// text's full length, 0 when nothing was refused.
pub fn last_error_into(buf: &mut [u8]) -> usize {
    let args = [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0];
    // SAFETY: ERR_REASON writes at most `buf.len()` bytes into `buf`.
    let ret = unsafe { raw(nr::ERR_REASON, args) };
    usize::try_from(ret).unwrap_or(0)
}

/// Why the most recent refused host call was refused; empty when nothing was.
pub fn last_error() -> alloc::string::String {
    let mut buf = [0u8; 512];
    let n = last_error_into(&mut buf).min(buf.len());
    alloc::string::String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn forget(w: &mut Window, slot: usize) {
    if let Some(info) = w.slots.get_mut(slot) {
        info.mapped = false;
        info.generation += 1;
    }
    w.cache.forget_slot(slot, slot_addr(slot as u64));
}

/// Removes the binding of `name`; the object stays.
pub fn unbind(name: &str) -> Result<(), ObjError> {
    check_name(name)?;
    let args = [name.as_ptr() as u64, name.len() as u64, 0, 0, 0, 0];
    // SAFETY: OBJ_UNBIND only reads the name.
    match result(unsafe { raw(nr::OBJ_UNBIND, args) }) {
        Ok(_) => Ok(()),
        Err(ObjError::Host(Errno::ENOENT)) => Err(ObjError::NoSuchName),
        Err(e) => Err(e),
    }
}

/// Deletes object `id` and every name bound to it. The host unmaps it from this guest first,
/// so every slot that held it is forgotten here (handles on it fail with `NoSuchObject` from
/// then on). `Host(EBUSY)` while another running guest has it open for writing.
pub fn delete(id: ObjId) -> Result<(), ObjError> {
    let args = [&raw const id.0 as u64, 0, 0, 0, 0, 0];
    // SAFETY: OBJ_DELETE only reads the ID; the memory it unmaps (the window) is not Rust memory.
    let ret = unsafe { raw(nr::OBJ_DELETE, args) };
    // Whatever the outcome, the host may have unmapped the object before refusing the delete.
    let w = window_mut();
    for slot in 0..w.slots.len() {
        if w.slots[slot].mapped && w.slots[slot].id == id {
            forget(w, slot);
        }
    }
    match result(ret) {
        Ok(_) => Ok(()),
        Err(ObjError::Host(Errno::ENOENT)) => Err(ObjError::NoSuchObject(id)),
        Err(e) => Err(e),
    }
}

/// Unmaps `slot`.
pub fn unmap(slot: usize) -> Result<(), ObjError> {
    // SAFETY: OBJ_UNMAP touches no Rust memory.
    result(unsafe { raw(nr::OBJ_UNMAP, [slot as u64, 0, 0, 0, 0, 0]) })?;
    forget(window_mut(), slot);
    Ok(())
}

/// Makes `len` bytes at `offset` of the object in `slot` durable, and waits.
pub fn flush(slot: usize, offset: u64, len: u64) -> Result<(), ObjError> {
    flush_many(&[FlushRange {
        slot: slot as u64,
        offset,
        len,
    }])
}

/// Makes every range in `ranges` durable behind one fence (host call [`nr::OBJ_FLUSH_MANY`]),
/// and waits. At most [`abi::ring::FLUSH_MANY_MAX`] ranges. A call rather than a ring request
/// because the guest waits for the disk anyway: the vCPU's own thread syncs, which measured
/// 1167-1282 durable KVS inserts/s against 878-942 as ring requests served by the VMM's flush
/// thread (two thread hand-offs and a `RING_WAIT` exit per fence).
pub fn flush_many(ranges: &[FlushRange]) -> Result<(), ObjError> {
    if ranges.is_empty() {
        return Ok(());
    }
    // SAFETY: OBJ_FLUSH_MANY only reads `ranges`, borrowed until the call returns.
    result(unsafe {
        raw(
            nr::OBJ_FLUSH_MANY,
            [ranges.as_ptr() as u64, ranges.len() as u64, 0, 0, 0, 0],
        )
    })
    .map(|_| ())
}

/// The object mapped in `slot` and whether it is writable (for the transaction code, which
/// finds the object a field lives in from the field's address).
pub(crate) fn occupant(slot: usize) -> Option<(ObjId, bool)> {
    window()
        .slots
        .get(slot)
        .filter(|s| s.mapped)
        .map(|s| (s.id, s.writable))
}

/// Notes that the writable object in `slot` now uses its bytes up to offset `end` (an
/// allocation or a longer byte stream). Once it has grown by [`POPULATE_AFTER`] through this
/// mapping, the runtime keeps a region ahead of `end` (as large as the growth so far, up to
/// [`POPULATE_AHEAD_MAX`]) requested from the VMM with ring op `POPULATE`, which faults those
/// pages in on a host thread before this vCPU's first stores reach them. Costs two compares
/// when nothing is to be asked; one ring submission per request, never a wait.
#[inline]
fn grown(slot: usize, end: u64) {
    let Some(info) = window_mut().slots.get_mut(slot) else {
        return;
    };
    if end.saturating_add(POPULATE_UNIT / 2) <= info.populated || !info.mapped || !info.writable {
        return;
    }
    if info.grown_from == 0 {
        info.grown_from = end;
        info.populated = end;
        return;
    }
    let grown = end.saturating_sub(info.grown_from);
    if grown < POPULATE_AFTER {
        return;
    }
    // From where the last request ended: a large allocation's own bytes are included, since
    // its caller is about to fill them.
    let from = info.populated;
    let to = end
        .saturating_add(grown.min(POPULATE_AHEAD_MAX))
        .next_multiple_of(POPULATE_UNIT)
        .min(abi::layout::DATA_END);
    if to <= from {
        return;
    }
    info.populated = to;
    // A hint: if the ring is busy further up the stack the region is simply faulted in by
    // the stores themselves.
    let _ = crate::io::post(op::POPULATE, [slot as u64, from, to - from, 0, 0, 0]);
}

/// Makes sure the host has allocated the file space behind the data region of the writable
/// object in `slot` up to offset `end` before the guest stores there (host call
/// `OBJ_RESERVE`), so that a full filesystem is `Host(ENOSPC)` here, an error the program can
/// report, rather than a page the host cannot back, which ends the run. `used` is the end of
/// the object's used bytes (space below it is taken as allocated). Reserves ahead (64 KiB to
/// 2 MiB, growing with the object), so a growing object makes one host call per step. Also
/// reports the growth to [`grown`].
pub fn reserve(slot: usize, used: u64, end: u64) -> Result<(), ObjError> {
    // Growth is what both the reservation and the populate-ahead follow.
    grown(slot, end);
    let Some(info) = window_mut().slots.get_mut(slot) else {
        return Ok(());
    };
    if !info.mapped || !info.writable {
        return Ok(());
    }
    if info.reserved == 0 {
        info.reserved = used.max(abi::layout::BASE_OFFSET);
        info.reserve_base = info.reserved;
    }
    if end <= info.reserved {
        return Ok(());
    }
    let step = end
        .saturating_sub(info.reserve_base)
        .clamp(RESERVE_MIN, RESERVE_MAX);
    let to = end
        .saturating_add(step)
        .next_multiple_of(RESERVE_MIN)
        .min(abi::layout::DATA_END)
        .max(end);
    let from = info.reserved;
    reserve_range(slot, from, to)?;
    if let Some(info) = window_mut().slots.get_mut(slot) {
        info.reserved = to;
    }
    Ok(())
}

/// [`reserve`] for the transaction log region, whose writes go through the runtime: up to `end`.
pub fn reserve_log(slot: usize, end: u64) -> Result<(), ObjError> {
    let Some(info) = window_mut().slots.get_mut(slot) else {
        return Ok(());
    };
    let log_end = abi::layout::LOG_OFFSET + abi::layout::LOG_SIZE;
    if !info.mapped || !info.writable || end <= info.log_reserved || end > log_end {
        return Ok(());
    }
    let from = info.log_reserved.max(abi::layout::LOG_OFFSET);
    let to = end
        .saturating_add(RESERVE_MIN)
        .next_multiple_of(RESERVE_MIN)
        .min(log_end);
    reserve_range(slot, from, to)?;
    if let Some(info) = window_mut().slots.get_mut(slot) {
        info.log_reserved = to;
    }
    Ok(())
}

fn reserve_range(slot: usize, from: u64, to: u64) -> Result<(), ObjError> {
    if to <= from {
        return Ok(());
    }
    // SAFETY: OBJ_RESERVE touches no Rust memory.
    match result(unsafe { raw(nr::OBJ_RESERVE, [slot as u64, from, to - from, 0, 0, 0]) }) {
        Ok(_) => Ok(()),
        // A host without the call (or a slot it no longer holds writable) cannot reserve:
        // stores then allocate as they go, as before.
        Err(ObjError::Host(Errno::ENOSYS)) | Err(ObjError::Host(Errno::EINVAL)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Caches FOT index `index` of the container in `slot` as targeting the object in `target`.
pub fn remember(slot: usize, index: u32, target: usize) {
    window_mut()
        .cache
        .put(slot, index, slot_addr(target as u64));
}
