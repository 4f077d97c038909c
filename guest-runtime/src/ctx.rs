//! The `twz_tx_*`, `twz_obj_alloc`/`twz_obj_free` and `twz_ptr_*` functions of `twz.h`:
//! transactions, persistent allocation and invariant pointers for C programs, over [`crate::tx`]
//! and [`crate::object`]. Errors are negative errno values, as in the rest of `twz.h`.

use alloc::boxed::Box;
use core::ffi::{c_int, c_void};

use abi::fot::{perms, FotEntry};
use abi::hostcall::errno;
use abi::layout::{BASE_OFFSET, DATA_END, OBJ_SIZE};
use abi::memmap::slot_of;
use abi::palloc::AllocError;
use abi::txlog::TxError as LogTxError;

use crate::cobj::{neg_errno, object_of, TwzObj};
use crate::object::fot::{find_or_insert, MappedFot};
use crate::object::sys::occupant;
use crate::object::{InvPtr, ObjError};
use crate::tx::{Tx, TxError, DEFAULT_BASE_SIZE};

/// `EBUSY`: the anchor's log holds an unfinished transaction.
const EBUSY: i64 = 16;

const EINVAL: c_int = -(errno::EINVAL as c_int);

/// The negative errno C callers see for a transaction error.
fn tx_errno(e: &TxError) -> c_int {
    let n = match e {
        AllocError::Tx(LogTxError::Memory(o)) => return neg_errno(*o) as c_int,
        AllocError::Tx(LogTxError::TooLarge { .. }) => errno::E2BIG,
        AllocError::Tx(LogTxError::NeedsRecovery { .. }) => EBUSY,
        AllocError::Tx(LogTxError::OutsideData { .. })
        | AllocError::NotABlock { .. }
        | AllocError::DoubleFree { .. }
        | AllocError::NotInitialized => errno::EINVAL,
        AllocError::Full { .. } => errno::ENOSPC,
        AllocError::AlreadyInitialized => errno::EEXIST,
        AllocError::Tx(LogTxError::Log(_)) | AllocError::Corrupt { .. } => errno::EIO,
    };
    -(n as c_int)
}

fn status(r: Result<(), TxError>) -> c_int {
    r.map_or_else(|e| tx_errno(&e), |()| 0)
}

/// Borrows a transaction handle, or `None` for null.
///
/// # Safety
/// `tx` must be null or a live handle from `twz_tx_begin`.
unsafe fn tx_handle<'a>(tx: *mut Tx) -> Option<&'a mut Tx> {
    // SAFETY: caller guarantee.
    unsafe { tx.as_mut() }
}

/// `twz_tx_begin`: a transaction anchored in `o`'s log, in `*out`.
///
/// # Safety
/// `o` null or a live object handle; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_begin(o: *mut TwzObj, out: *mut *mut Tx) -> c_int {
    // SAFETY: caller guarantee.
    let Some(obj) = (unsafe { object_of(o) }) else {
        return EINVAL;
    };
    if out.is_null() {
        return EINVAL;
    }
    match Tx::begin(obj.id()) {
        Ok(tx) => {
            // SAFETY: caller guarantee.
            unsafe { out.write(Box::into_raw(Box::new(tx))) };
            0
        }
        Err(e) => tx_errno(&e),
    }
}

/// `twz_tx_record`: saves `len` bytes at `p` for rollback.
///
/// # Safety
/// `tx` null or a live transaction handle.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_record(tx: *mut Tx, p: *const c_void, len: usize) -> c_int {
    // SAFETY: caller guarantee.
    match unsafe { tx_handle(tx) } {
        Some(t) => status(t.record_addr(p as u64, len as u64)),
        None => EINVAL,
    }
}

/// One range of `twz_tx_record_many` (`twz_range` in `twz.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TwzRange {
    /// Start of the range.
    pub addr: *const c_void,
    /// Its length in bytes.
    pub len: usize,
}

/// `twz_tx_record_many`: saves `n` ranges for rollback behind one wait for the disk.
///
/// # Safety
/// `tx` null or a live transaction handle; `ranges` null or readable for `n` ranges.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_record_many(
    tx: *mut Tx,
    ranges: *const TwzRange,
    n: usize,
) -> c_int {
    // SAFETY: caller guarantee.
    unsafe { record_ranges(tx, ranges, n, true) }
}

/// `twz_tx_prepare_many`: `twz_tx_record_many` without the wait (see `Tx::prepare_addrs`).
///
/// # Safety
/// As for `twz_tx_record_many`.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_prepare_many(
    tx: *mut Tx,
    ranges: *const TwzRange,
    n: usize,
) -> c_int {
    // SAFETY: caller guarantee.
    unsafe { record_ranges(tx, ranges, n, false) }
}

/// `twz_tx_fence`: waits until everything recorded or prepared so far is durable.
///
/// # Safety
/// `tx` null or a live transaction handle.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_fence(tx: *mut Tx) -> c_int {
    // SAFETY: caller guarantee.
    match unsafe { tx_handle(tx) } {
        Some(t) => status(t.fence()),
        None => EINVAL,
    }
}

/// Records (`wait`) or prepares `n` C ranges.
///
/// # Safety
/// As for `twz_tx_record_many`.
unsafe fn record_ranges(tx: *mut Tx, ranges: *const TwzRange, n: usize, wait: bool) -> c_int {
    // SAFETY: caller guarantee.
    let Some(t) = (unsafe { tx_handle(tx) }) else {
        return EINVAL;
    };
    if n > crate::tx::RECORD_MANY_MAX {
        return -(errno::E2BIG as c_int);
    }
    if ranges.is_null() && n > 0 {
        return EINVAL;
    }
    let mut addrs = [(0u64, 0u64); crate::tx::RECORD_MANY_MAX];
    for (i, a) in addrs.iter_mut().enumerate().take(n) {
        // SAFETY: caller guarantee: `ranges` is readable for `n` entries and `i < n`.
        let r = unsafe { ranges.add(i).read() };
        *a = (r.addr as u64, r.len as u64);
    }
    if wait {
        status(t.record_addrs(&addrs[..n]))
    } else {
        status(t.prepare_addrs(&addrs[..n]))
    }
}

/// Takes back a handle given out by `twz_tx_begin`.
///
/// # Safety
/// `tx` a live transaction handle, not used afterwards.
unsafe fn take(tx: *mut Tx) -> Box<Tx> {
    // SAFETY: caller guarantee: `tx` came from `Box::into_raw` in `twz_tx_begin`.
    unsafe { Box::from_raw(tx) }
}

/// `twz_tx_commit`: commits and frees the handle.
///
/// # Safety
/// `tx` null or a live transaction handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_commit(tx: *mut Tx) -> c_int {
    if tx.is_null() {
        return EINVAL;
    }
    // SAFETY: caller guarantee.
    status(unsafe { take(tx) }.commit())
}

/// `twz_tx_flush`: the commit also makes `len` bytes at `p` durable (bytes stored without
/// recording them, such as a fresh allocation's payload), in its one fence.
///
/// # Safety
/// `tx` null or a live transaction handle.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_flush(tx: *mut Tx, p: *const c_void, len: usize) -> c_int {
    // SAFETY: caller guarantee.
    let Some(tx) = (unsafe { tx_handle(tx) }) else {
        return EINVAL;
    };
    status(tx.flush_addr(p as u64, len as u64))
}

/// `twz_sync`: makes every transaction committed so far durable ([`crate::tx::sync`]).
#[no_mangle]
pub extern "C" fn twz_sync() -> c_int {
    crate::tx::sync().map_or_else(|e| neg_errno(e) as c_int, |()| 0)
}

/// `twz_tx_abort`: rolls back and frees the handle.
///
/// # Safety
/// `tx` null or a live transaction handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn twz_tx_abort(tx: *mut Tx) -> c_int {
    if tx.is_null() {
        return EINVAL;
    }
    // SAFETY: caller guarantee.
    status(unsafe { take(tx) }.abort())
}

/// `twz_obj_alloc`: `size` bytes inside `o`, in the transaction; `*out` points at them.
///
/// # Safety
/// `tx` and `o` null or live handles; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_alloc(
    tx: *mut Tx,
    o: *mut TwzObj,
    size: u64,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: caller guarantee.
    let (Some(t), Some(obj)) = (unsafe { tx_handle(tx) }, unsafe { object_of(o) }) else {
        return EINVAL;
    };
    if out.is_null() {
        return EINVAL;
    }
    let off = match t.alloc_in(obj.id(), size.max(1), DEFAULT_BASE_SIZE) {
        Ok(off) => off,
        Err(e) => return tx_errno(&e),
    };
    match obj.addr() {
        Ok(base) => {
            // SAFETY: caller guarantee.
            unsafe { out.write((base + off) as *mut c_void) };
            0
        }
        Err(e) => neg_errno(e) as c_int,
    }
}

/// `twz_obj_free`: frees the block at `p` in the transaction.
///
/// # Safety
/// `tx` null or a live transaction handle.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_free(tx: *mut Tx, p: *mut c_void) -> c_int {
    // SAFETY: caller guarantee.
    match unsafe { tx_handle(tx) } {
        Some(t) => status(t.free_addr(p as u64)),
        None => EINVAL,
    }
}

/// The encoded pointer, to be stored at `field` in `container`, that leads to `target`.
fn encode(container: *mut TwzObj, field: u64, target: u64) -> Result<u64, ObjError> {
    // SAFETY: the caller of `twz_ptr_store` promises a live handle or null.
    let obj = unsafe { object_of(container) }.ok_or(ObjError::Host(crate::Errno::EINVAL))?;
    let base = obj.addr()?;
    if field & !(OBJ_SIZE - 1) != base || !field.is_multiple_of(8) {
        return Err(ObjError::NotInObject);
    }
    if target == 0 {
        return Ok(0);
    }
    let slot = slot_of(target).ok_or(ObjError::NotInObject)?;
    let (target_id, _) = occupant(slot as usize).ok_or(ObjError::NotInObject)?;
    let offset = target & (OBJ_SIZE - 1);
    if !(BASE_OFFSET..DATA_END).contains(&offset) {
        return Err(ObjError::OutOfRange(offset));
    }
    let index = if target_id == obj.id() {
        0
    } else {
        if !occupant(slot_of(base).unwrap_or(u64::MAX) as usize).is_some_and(|(_, w)| w) {
            return Err(ObjError::ReadOnly);
        }
        let entry = FotEntry::by_id(target_id, perms::READ);
        find_or_insert(&mut MappedFot { base }, &entry)?
    };
    abi::ptr::InvPtr::new(index, offset as u32)
        .map(|p| p.0)
        .ok_or(ObjError::OutOfRange(offset))
}

/// `twz_ptr_store`: stores at `field` (inside `container`) a persistent pointer to `target`.
///
/// # Safety
/// `container` null or a live object handle; `field` a writable, 8-aligned `twz_ptr` inside it.
#[no_mangle]
pub unsafe extern "C" fn twz_ptr_store(
    container: *mut TwzObj,
    field: *mut u64,
    target: *const c_void,
) -> c_int {
    match encode(container, field as u64, target as u64) {
        Ok(raw) => {
            // SAFETY: `encode` checked `field` lies, aligned, in the mapped container.
            unsafe { field.write_volatile(raw) };
            0
        }
        Err(e) => neg_errno(e) as c_int,
    }
}

/// `twz_ptr_resolve`: the direct address `*field` leads to, in `*out`.
///
/// # Safety
/// `field` null or a readable, 8-aligned `twz_ptr`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn twz_ptr_resolve(field: *const u64, out: *mut *mut c_void) -> c_int {
    if field.is_null() || out.is_null() || !(field as u64).is_multiple_of(8) {
        return EINVAL;
    }
    // SAFETY: caller guarantee; `InvPtr<u8>` is a transparent `u64`.
    let p = unsafe { &*(field as *const InvPtr<u8>) };
    match p.resolve() {
        Ok(r) => {
            // SAFETY: caller guarantee.
            unsafe { out.write(r as *const u8 as *mut c_void) };
            0
        }
        Err(e) => neg_errno(e) as c_int,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_errors_reach_c_as_distinct_errnos() {
        let full: TxError = AllocError::Full {
            requested: 64,
            available: 0,
        };
        assert_eq!(tx_errno(&full), -(errno::ENOSPC as c_int));
        let big: TxError = AllocError::Tx(LogTxError::TooLarge {
            needed: 2,
            capacity: 1,
        });
        assert_eq!(tx_errno(&big), -(errno::E2BIG as c_int));
        let busy: TxError = AllocError::Tx(LogTxError::NeedsRecovery { seq: 3 });
        assert_eq!(tx_errno(&busy), -(EBUSY as c_int));
        let ro: TxError = AllocError::Tx(LogTxError::Memory(ObjError::ReadOnly));
        assert_eq!(tx_errno(&ro), -(errno::EACCES as c_int));
        let twice: TxError = AllocError::DoubleFree { offset: 0x1000 };
        assert_eq!(tx_errno(&twice), EINVAL);
    }

    #[test]
    fn pointers_outside_objects_are_refused_without_touching_memory() {
        let mut field = 0u64;
        // SAFETY: null handles and a stack field: refused before any dereference of an object.
        unsafe {
            assert_eq!(
                twz_ptr_store(core::ptr::null_mut(), &mut field, core::ptr::null()),
                EINVAL
            );
            let mut out = core::ptr::null_mut();
            assert_eq!(twz_ptr_resolve(&field, &mut out), EINVAL, "null pointer");
            field = (1 << 32) | BASE_OFFSET;
            assert_eq!(
                twz_ptr_resolve(&field, &mut out),
                EINVAL,
                "not stored in an object"
            );
            assert_eq!(
                twz_tx_record(core::ptr::null_mut(), &field as *const u64 as _, 8),
                EINVAL
            );
            assert_eq!(
                twz_tx_record_many(core::ptr::null_mut(), core::ptr::null(), 0),
                EINVAL
            );
            assert_eq!(twz_tx_commit(core::ptr::null_mut()), EINVAL);
        }
    }
}
