//! The `twz_obj_*` functions of `twz.h`: persistent objects for C programs, over
//! [`crate::object`]. A `twz_obj *` is a heap handle on a mapped object; errors are negative
//! errno values.
//!
//! Byte streams: an object used as a file keeps its bytes at `abi::layout::BASE_OFFSET` and
//! its length as `ObjMeta::alloc_top - BASE_OFFSET` with `abi::meta::flags::RAW` set, so the host's
//! `obj` commands show the length as the size in use and an export writes exactly those bytes.

use alloc::boxed::Box;
use core::ffi::{c_char, c_int, CStr};
use core::mem::offset_of;

use abi::hostcall::errno;
use abi::layout::{BASE_OFFSET, DATA_END, META_OFFSET};
use abi::meta::{flags, ObjMeta};

use crate::object::{ObjError, ObjId, Object};

/// A C program's handle on an object (`twz_obj` in `twz.h`).
pub struct TwzObj {
    obj: Object<u8>,
    /// The length (metadata header) changed since the last flush.
    size_dirty: bool,
}

/// The largest byte stream an object holds: its data region.
const MAX_STREAM: u64 = DATA_END - BASE_OFFSET;

/// The negative errno C callers see for `e`.
pub(crate) fn neg_errno(e: ObjError) -> i64 {
    let n = match e {
        ObjError::Host(e) => e.0,
        ObjError::NoSuchName | ObjError::NoSuchObject(_) => errno::ENOENT,
        ObjError::NameTooLong => errno::ENAMETOOLONG,
        ObjError::FotFull => errno::ENOSPC,
        ObjError::ReadOnly | ObjError::Denied(_) => errno::EACCES,
        ObjError::Null
        | ObjError::OutOfRange(_)
        | ObjError::NotInObject
        | ObjError::EmptyEntry(_)
        | ObjError::BadEntry(_) => errno::EINVAL,
    };
    -n
}

fn neg(e: ObjError) -> c_int {
    neg_errno(e) as c_int
}

const EINVAL: c_int = -(errno::EINVAL as c_int);

/// A C string argument as UTF-8, or `-EINVAL`.
///
/// # Safety
/// `s` must be null or NUL-terminated.
unsafe fn name_arg<'a>(s: *const c_char) -> Result<&'a str, c_int> {
    if s.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: caller guarantee.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| EINVAL)
}

/// Stores a new handle in `*out`.
///
/// # Safety
/// `out` must be null or writable.
unsafe fn hand_out(r: Result<Object<u8>, ObjError>, out: *mut *mut TwzObj) -> c_int {
    if out.is_null() {
        return EINVAL;
    }
    match r {
        Ok(obj) => {
            let h = Box::new(TwzObj {
                obj,
                size_dirty: false,
            });
            // SAFETY: caller guarantee.
            unsafe { out.write(Box::into_raw(h)) };
            0
        }
        Err(e) => neg(e),
    }
}

/// `twz_obj_create`: a new object, bound to `name` unless it is null.
///
/// # Safety
/// `name` null or NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_create(name: *const c_char, out: *mut *mut TwzObj) -> c_int {
    let r = if name.is_null() {
        Object::create()
    } else {
        // SAFETY: caller guarantee.
        match unsafe { name_arg(name) } {
            Ok(n) => Object::create_named(n),
            Err(e) => return e,
        }
    };
    // SAFETY: caller guarantee.
    unsafe { hand_out(r, out) }
}

/// `twz_obj_open`: the object bound to `name`, writable.
///
/// # Safety
/// `name` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_open(name: *const c_char, out: *mut *mut TwzObj) -> c_int {
    // SAFETY: caller guarantee.
    let r = match unsafe { name_arg(name) } {
        Ok(n) => Object::open_named(n),
        Err(e) => return e,
    };
    // SAFETY: caller guarantee.
    unsafe { hand_out(r, out) }
}

/// `twz_last_error`: why the most recent refused host call was refused, NUL-terminated in
/// `buf` (truncated to `len` bytes); returns the text's length, 0 when nothing was refused.
///
/// # Safety
/// `buf` null (with any `len`) or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn twz_last_error(buf: *mut c_char, len: usize) -> usize {
    if buf.is_null() || len == 0 {
        return crate::object::sys::last_error_into(&mut []);
    }
    // SAFETY: caller guarantee.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    let (text, nul) = out.split_at_mut(len - 1);
    let n = crate::object::sys::last_error_into(text);
    let end = n.min(text.len());
    // `nul` is the last byte: the terminator goes right after the copied text.
    if end < text.len() {
        text[end] = 0;
    } else {
        nul[0] = 0;
    }
    n
}

/// `twz_obj_delete`: deletes object `*id` and every name bound to it (the object is unmapped
/// from this guest first; handles on it stop working).
///
/// # Safety
/// `id` null or readable for 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_delete(id: *const ObjId) -> c_int {
    if id.is_null() {
        return EINVAL;
    }
    // SAFETY: caller guarantee; `ObjId` is 16 plain bytes.
    let id = unsafe { id.read_unaligned() };
    crate::object::sys::delete(id).map_or_else(neg, |()| 0)
}

/// `twz_obj_unbind`: removes the binding of `name`; the object stays.
///
/// # Safety
/// `name` null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_unbind(name: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    match unsafe { name_arg(name) } {
        Ok(n) => crate::object::sys::unbind(n).map_or_else(neg, |()| 0),
        Err(e) => e,
    }
}

/// `twz_obj_open_id`: object `id`, writable if `writable` is non-zero.
///
/// # Safety
/// `id` readable for 16 bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_open_id(
    id: *const ObjId,
    writable: c_int,
    out: *mut *mut TwzObj,
) -> c_int {
    if id.is_null() {
        return EINVAL;
    }
    // SAFETY: caller guarantee; `ObjId` is 16 plain bytes.
    let id = unsafe { id.read_unaligned() };
    let r = if writable != 0 {
        Object::open(id)
    } else {
        Object::open_readonly(id)
    };
    // SAFETY: caller guarantee.
    unsafe { hand_out(r, out) }
}

/// Borrows a handle, or `None` for null.
///
/// # Safety
/// `o` must be null or a live handle from this module.
unsafe fn handle<'a>(o: *mut TwzObj) -> Option<&'a mut TwzObj> {
    // SAFETY: caller guarantee.
    unsafe { o.as_mut() }
}

/// The object behind a handle, or `None` for null (for the transaction functions of `ctx`).
///
/// # Safety
/// `o` must be null or a live handle from this module.
pub(crate) unsafe fn object_of<'a>(o: *mut TwzObj) -> Option<&'a Object<u8>> {
    // SAFETY: caller guarantee.
    unsafe { o.as_ref() }.map(|h| &h.obj)
}

/// `twz_obj_close`: frees the handle (the object itself stays).
///
/// # Safety
/// `o` null or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_close(o: *mut TwzObj) {
    if !o.is_null() {
        // SAFETY: caller guarantee: `o` came from `Box::into_raw` in `hand_out`.
        drop(unsafe { Box::from_raw(o) });
    }
}

/// `twz_obj_id`: writes the object's 16-byte ID to `out`.
///
/// # Safety
/// `o` a live handle; `out` writable for 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_id(o: *mut TwzObj, out: *mut ObjId) -> c_int {
    // SAFETY: caller guarantee.
    let Some(h) = (unsafe { handle(o) }) else {
        return EINVAL;
    };
    if out.is_null() {
        return EINVAL;
    }
    // SAFETY: caller guarantee.
    unsafe { out.write_unaligned(h.obj.id()) };
    0
}

/// `twz_obj_bind`: binds `name` to the object.
///
/// # Safety
/// `o` a live handle; `name` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_bind(o: *mut TwzObj, name: *const c_char) -> c_int {
    // SAFETY: caller guarantee.
    let Some(h) = (unsafe { handle(o) }) else {
        return EINVAL;
    };
    // SAFETY: caller guarantee.
    match unsafe { name_arg(name) } {
        Ok(n) => h.obj.bind(n).map_or_else(neg, |()| 0),
        Err(e) => e,
    }
}

/// `twz_obj_base`: the address of the data region's first byte (offset `BASE_OFFSET`), or null.
///
/// # Safety
/// `o` null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_base(o: *mut TwzObj) -> *mut u8 {
    // SAFETY: caller guarantee.
    let Some(h) = (unsafe { handle(o) }) else {
        return core::ptr::null_mut();
    };
    h.obj
        .addr()
        .map_or(core::ptr::null_mut(), |a| (a + BASE_OFFSET) as *mut u8)
}

/// `twz_obj_durability`: the run's durability mode (`abi::boot::durability`).
#[no_mangle]
pub extern "C" fn twz_obj_durability() -> c_int {
    crate::boot::info().durability as c_int
}

/// `twz_obj_max_size`: the largest byte stream an object holds.
#[no_mangle]
pub extern "C" fn twz_obj_max_size() -> u64 {
    MAX_STREAM
}

/// The metadata header of the mapped object.
fn meta(h: &TwzObj) -> Result<*mut ObjMeta, ObjError> {
    Ok((h.obj.addr()? + META_OFFSET) as *mut ObjMeta)
}

/// Reads the stream length from the header: `alloc_top - BASE_OFFSET`, clamped to the data
/// region (a header the host checked never needs the clamp; a guest may have scribbled on it).
fn stream_len(h: &TwzObj) -> Result<u64, ObjError> {
    let m = meta(h)?;
    // SAFETY: the header lies inside the mapped object; an aligned u64 read of any bits is fine.
    let top = unsafe { (&raw const (*m).alloc_top).read_volatile() };
    Ok(top.clamp(BASE_OFFSET, DATA_END) - BASE_OFFSET)
}

/// `twz_obj_size`: the byte stream's length, or a negative errno.
///
/// # Safety
/// `o` null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_size(o: *mut TwzObj) -> i64 {
    // SAFETY: caller guarantee.
    let Some(h) = (unsafe { handle(o) }) else {
        return i64::from(EINVAL);
    };
    stream_len(h).map_or_else(neg_errno, |n| n as i64)
}

/// `twz_obj_set_size`: sets the stream's length and marks the object a byte stream. Bytes are
/// neither cleared nor flushed (see `twz_obj_flush`).
///
/// # Safety
/// `o` null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_set_size(o: *mut TwzObj, size: u64) -> c_int {
    // SAFETY: caller guarantee.
    let h = match unsafe { writable_stream(o, size) } {
        Ok(h) => h,
        Err(rc) => return rc,
    };
    let m = match meta(h) {
        Ok(m) => m,
        Err(e) => return neg(e),
    };
    // A longer stream has its file space: a full filesystem is -ENOSPC here, not a page the
    // host cannot back later.
    if let Err(e) = reserve_stream(h, size) {
        return neg(e);
    }
    // SAFETY: the header lies in the writable mapping; single aligned u64 stores, the length last
    // so a crash never pairs a new length with a stream that is not marked RAW.
    unsafe {
        let f = &raw mut (*m).flags;
        f.write_volatile(f.read_volatile() | flags::RAW);
        (&raw mut (*m).alloc_top).write_volatile(BASE_OFFSET + size);
    }
    h.size_dirty = true;
    0
}

/// The live handle `o` if its stream may be set to `size` bytes: `size` within
/// [`MAX_STREAM`] (else `-ENOSPC`) and the object mapped writable (a store through a read-only
/// mapping would end the run); otherwise the C return value.
///
/// # Safety
/// `o` null or a live handle.
unsafe fn writable_stream<'a>(o: *mut TwzObj, size: u64) -> Result<&'a mut TwzObj, c_int> {
    // SAFETY: caller guarantee.
    let h = (unsafe { handle(o) }).ok_or(EINVAL)?;
    if size > MAX_STREAM {
        return Err(-(errno::ENOSPC as c_int));
    }
    // SAFETY: no reference into the object's data is held here.
    unsafe { h.obj.at_mut::<u8>(BASE_OFFSET) }.map_err(neg)?;
    Ok(h)
}

/// Has the host allocate the file space behind the stream's first `size` bytes (beyond what
/// it uses now; `sys::reserve` also has the region ahead of a growing stream populated).
fn reserve_stream(h: &TwzObj, size: u64) -> Result<(), ObjError> {
    let m = meta(h)?;
    let old = stream_len(h)?;
    match abi::memmap::slot_of(m as u64) {
        Some(slot) if size > old => {
            crate::object::sys::reserve(slot as usize, BASE_OFFSET + old, BASE_OFFSET + size)
        }
        _ => Ok(()),
    }
}

/// `twz_obj_reserve`: makes sure the file space behind the stream's first `size` bytes exists
/// (the length is unchanged), so stores there cannot fail for want of space.
///
/// # Safety
/// `o` null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_reserve(o: *mut TwzObj, size: u64) -> c_int {
    // SAFETY: caller guarantee.
    match unsafe { writable_stream(o, size) } {
        Ok(h) => reserve_stream(h, size).map_or_else(neg, |()| 0),
        Err(rc) => rc,
    }
}

/// One byte range of a stream for `twz_obj_flush_many` (C `twz_extent`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TwzExtent {
    /// Offset from `twz_obj_base`.
    pub off: u64,
    /// Bytes.
    pub len: u64,
}

/// Most ranges one `twz_obj_flush_many` takes (C `TWZ_FLUSH_MANY_MAX`).
pub const FLUSH_MANY_MAX: usize = 64;

/// `twz_obj_flush`: makes data bytes `off..off + len` durable, and the length if it changed
/// since the last flush.
///
/// # Safety
/// `o` null or a live handle.
#[no_mangle]
pub unsafe extern "C" fn twz_obj_flush(o: *mut TwzObj, off: u64, len: u64) -> c_int {
    let one = TwzExtent { off, len };
    // SAFETY: caller guarantee; `one` is one readable extent.
    unsafe { twz_obj_flush_many(o, &one, 1) }
}

/// `twz_obj_flush_many`: makes every extent durable, and the length if it changed since the
/// last flush, behind one fence.
///
/// # Safety
/// `o` null or a live handle; `ranges` points to `n` readable extents (or `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn twz_obj_flush_many(
    o: *mut TwzObj,
    ranges: *const TwzExtent,
    n: usize,
) -> c_int {
    // SAFETY: caller guarantee.
    let Some(h) = (unsafe { handle(o) }) else {
        return EINVAL;
    };
    if n > FLUSH_MANY_MAX {
        return -(errno::E2BIG as c_int);
    }
    let extents: &[TwzExtent] = if n == 0 {
        &[]
    } else if ranges.is_null() {
        return EINVAL;
    } else {
        // SAFETY: caller guarantee: `n` readable extents at `ranges`.
        unsafe { core::slice::from_raw_parts(ranges, n) }
    };
    let mut batch: alloc::vec::Vec<(u64, u64)> = alloc::vec::Vec::with_capacity(n + 1);
    for e in extents {
        if e.off.checked_add(e.len).is_none_or(|end| end > MAX_STREAM) {
            return EINVAL;
        }
        if e.len > 0 {
            batch.push((BASE_OFFSET + e.off, e.len));
        }
    }
    // A new length rides the same fence as the data.
    if h.size_dirty {
        let header = META_OFFSET + offset_of!(ObjMeta, flags) as u64;
        let header_end = META_OFFSET + offset_of!(ObjMeta, alloc_top) as u64 + 8;
        batch.push((header, header_end - header));
    }
    if !batch.is_empty() {
        if let Err(e) = h.obj.flush_ranges(&batch) {
            return neg(e);
        }
    }
    h.size_dirty = false;
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::Errno;

    #[test]
    fn errors_reach_c_as_the_errno_a_c_programmer_expects() {
        assert_eq!(neg_errno(ObjError::NoSuchName), -2);
        assert_eq!(neg_errno(ObjError::NoSuchObject(ObjId::NULL)), -2);
        assert_eq!(neg_errno(ObjError::Host(Errno(17))), -17);
        assert_eq!(neg_errno(ObjError::NameTooLong), -36);
        assert_eq!(neg_errno(ObjError::ReadOnly), -13);
        assert_eq!(neg_errno(ObjError::OutOfRange(5)), -22);
    }

    #[test]
    fn bad_arguments_are_refused_before_any_host_call() {
        let mut out = core::ptr::null_mut();
        // SAFETY: null pointers are what is being tested; nothing is dereferenced.
        unsafe {
            assert_eq!(twz_obj_open(core::ptr::null(), &mut out), EINVAL);
            assert_eq!(twz_obj_open(c"x".as_ptr(), core::ptr::null_mut()), EINVAL);
            assert_eq!(twz_obj_size(core::ptr::null_mut()), -22);
            assert_eq!(twz_obj_set_size(core::ptr::null_mut(), 1), EINVAL);
            assert_eq!(twz_obj_flush(core::ptr::null_mut(), 0, 1), EINVAL);
            assert!(twz_obj_base(core::ptr::null_mut()).is_null());
            twz_obj_close(core::ptr::null_mut());
            assert_eq!(twz_obj_delete(core::ptr::null()), EINVAL);
            assert_eq!(twz_obj_unbind(core::ptr::null()), EINVAL);
        }
        assert!(out.is_null());
        assert_eq!(twz_obj_max_size(), DATA_END - BASE_OFFSET);
    }
}
