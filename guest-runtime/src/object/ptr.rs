//! Invariant pointers stored inside objects.
//!
//! [`InvPtr::resolve`] finds the object that holds the pointer from the pointer's own address
//! (objects are 1 GiB aligned in the window). Index 0 is the fast path (two compares, then
//! container base + offset); other indices hit the per-run FOT cache (one entry load and
//! compare); errors and misses leave the inline code, a miss for [`resolve_slow`], which reads
//! the FOT entry, maps the target (a host call, unless it is mapped already) and fills the
//! cache.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use abi::fot::{perms, FotEntry, FotTarget};
use abi::layout::{BASE_OFFSET, DATA_END, FOT_MAX_INDEX, OBJ_SIZE};
use abi::memmap::{slot_addr, OBJ_WINDOW_BASE};

use super::cache::{container_slot, MAX_SLOTS};
use super::fot::{self, MappedFot};
use super::sys;
use super::{ObjError, Object, Persistent};

/// A persistent pointer to a `T`, meaningful inside the object that holds it.
#[repr(transparent)]
pub struct InvPtr<T> {
    raw: abi::ptr::InvPtr,
    _target: PhantomData<fn() -> T>,
}

impl<T> Clone for InvPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for InvPtr<T> {}
impl<T> PartialEq for InvPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for InvPtr<T> {}
impl<T> core::fmt::Debug for InvPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "InvPtr({}:{:#x})",
            self.raw.fot_index(),
            self.raw.offset()
        )
    }
}

// SAFETY: any 64-bit pattern is a (possibly invalid, then refused on resolve) pointer.
unsafe impl<T> Persistent for InvPtr<T> {}

/// Largest offset at which a `T` still ends inside the data region.
const fn last_offset<T>() -> u64 {
    (DATA_END - BASE_OFFSET).saturating_sub(size_of::<T>() as u64)
}

/// Bytes of the window the runtime tracks (a pointer stored beyond is not in an object).
const TRACKED_SPAN: u64 = MAX_SLOTS as u64 * OBJ_SIZE;

/// Whether `offset` is in the data region, aligned for `T`, and leaves room for a `T`: one
/// compare, because rotating moves misaligned low bits to the top (BASE_OFFSET is aligned).
#[inline(always)]
fn in_range<T>(offset: u64) -> bool {
    let shift = align_of::<T>().trailing_zeros();
    let fits = size_of::<T>() as u64 <= DATA_END - BASE_OFFSET; // a constant
    fits && offset.wrapping_sub(BASE_OFFSET).rotate_right(shift) <= last_offset::<T>() >> shift
}

impl<T> InvPtr<T> {
    /// The null pointer.
    pub const NULL: Self = Self::from_raw(abi::ptr::InvPtr::NULL);

    /// Wraps an encoded pointer.
    pub const fn from_raw(raw: abi::ptr::InvPtr) -> Self {
        InvPtr {
            raw,
            _target: PhantomData,
        }
    }

    /// The encoded pointer.
    pub const fn raw(self) -> abi::ptr::InvPtr {
        self.raw
    }

    /// True for the null pointer.
    pub const fn is_null(self) -> bool {
        self.raw.is_null()
    }

    fn encode(index: u32, offset: u64) -> Result<Self, ObjError> {
        if offset.wrapping_sub(BASE_OFFSET) > last_offset::<T>() {
            return Err(ObjError::OutOfRange(offset));
        }
        abi::ptr::InvPtr::new(index, offset as u32)
            .map(Self::from_raw)
            .ok_or(ObjError::OutOfRange(offset))
    }

    /// A pointer to `offset` in the object that will hold it.
    pub fn local(offset: u64) -> Result<Self, ObjError> {
        Self::encode(0, offset)
    }

    /// A pointer, to be stored in `container`, to `offset` in `target`: adds (or reuses) a FOT
    /// entry of `container` naming `target` with read rights. Within one object it is local.
    pub fn new<C, U>(
        container: &Object<C>,
        target: &Object<U>,
        offset: u64,
    ) -> Result<Self, ObjError> {
        if container.id() == target.id() {
            return Self::local(offset);
        }
        Self::through(
            container,
            &FotEntry::by_id(target.id(), perms::READ),
            offset,
        )
    }

    /// A pointer, to be stored in `container`, to `offset` in whatever object `name` is bound to
    /// when the pointer is first resolved (a named FOT entry).
    pub fn named<C>(container: &Object<C>, name: &str, offset: u64) -> Result<Self, ObjError> {
        let entry = FotEntry::by_name(name, perms::READ).ok_or(ObjError::NameTooLong)?;
        Self::through(container, &entry, offset)
    }

    fn through<C>(container: &Object<C>, entry: &FotEntry, offset: u64) -> Result<Self, ObjError> {
        Self::encode(0, offset)?;
        let base = container.writable_addr()?;
        let index = fot::find_or_insert(&mut MappedFot { base }, entry)?;
        Self::encode(index, offset)
    }
}

impl<T: Persistent> InvPtr<T> {
    /// The `T` this pointer points to. Errors (never wild loads) for a null pointer, an offset
    /// outside the data region or misaligned for `T`, a pointer not stored inside an object, an
    /// empty or deleted FOT entry, a target that does not exist.
    ///
    /// The reference is valid while the target stays mapped: mapping more objects than the run's
    /// slot budget evicts the least recently mapped one (resolving keeps the container mapped).
    #[inline(always)]
    pub fn resolve(&self) -> Result<&T, ObjError> {
        let here = self as *const Self as u64;
        let raw = self.raw.0;
        let rel = here.wrapping_sub(OBJ_WINDOW_BASE);
        // Index 0 with an offset in the data region, aligned for `T`: then the whole encoded
        // value passes this one compare (a nonzero index or spare bit makes it huge), and the
        // pointer's own address, if inside the tracked window, gives the object.
        if in_range::<T>(raw) && rel < TRACKED_SPAN {
            let addr = (here & !(OBJ_SIZE - 1)) + raw;
            // SAFETY: `here` lies in a tracked slot of the window, so its 1 GiB frame is that
            // slot; the pointer is stored there, so the slot holds a mapped object (the caller
            // borrows it), `raw` is an aligned offset in its data region, and `T: Persistent`
            // accepts any bytes found there.
            return Ok(unsafe { &*(addr as *const T) });
        }
        // The hit path of the cross-object cache: one entry load and compare.
        if rel < TRACKED_SPAN {
            if let Some(base) = sys::window().cache.lookup(rel, raw) {
                let offset = raw & 0xFFFF_FFFF;
                if in_range::<T>(offset) {
                    // SAFETY: a hit names a cached (container, index) whose target is mapped
                    // at `base` (entries go when either slot changes hands); `offset` is
                    // aligned and in the data region; `T: Persistent` accepts any bytes.
                    return Ok(unsafe { &*((base + offset) as *const T) });
                }
            }
        }
        self.resolve_miss(here, u64::from(self.raw.offset()))
    }

    /// Everything but the two hit paths: errors, and a cache miss (map and remember).
    #[inline(never)]
    fn resolve_miss(&self, here: u64, offset: u64) -> Result<&T, ObjError> {
        if !in_range::<T>(offset) {
            return Err(self.bad_offset());
        }
        let container = here & !(OBJ_SIZE - 1);
        let Some(slot) = container_slot(container) else {
            return Err(ObjError::NotInObject);
        };
        let index = self.raw.fot_index();
        let base = if index == 0 {
            container
        } else {
            match sys::window().cache.get(slot, index) {
                Some(b) => b,
                None => resolve_slow(slot, container, index)?,
            }
        };
        // SAFETY: `base` is a mapped object's address (the container, or a cached or freshly
        // mapped target), `offset..offset + size_of::<T>()` lies in its data region and is aligned
        // for `T`, and `T: Persistent` (bounded on `Object`) accepts any bytes found there.
        Ok(unsafe { &*((base + offset) as *const T) })
    }

    #[cold]
    fn bad_offset(&self) -> ObjError {
        if self.is_null() {
            ObjError::Null
        } else {
            ObjError::OutOfRange(u64::from(self.raw.offset()))
        }
    }
}

/// The miss path: read FOT entry `index` of the container in `slot`, map its target, cache it.
#[cold]
#[inline(never)]
pub fn resolve_slow(slot: usize, container: u64, index: u32) -> Result<u64, ObjError> {
    if index > FOT_MAX_INDEX {
        return Err(ObjError::BadEntry(index));
    }
    let entry = fot::read_entry(container, index).ok_or(ObjError::BadEntry(index))?;
    let id = match entry.target() {
        Err(_) => return Err(ObjError::BadEntry(index)),
        Ok(None) => return Err(ObjError::EmptyEntry(index)),
        Ok(Some(FotTarget::Id(id))) => id,
        Ok(Some(FotTarget::Name(name))) => {
            let mut buf = [0u8; abi::fot::MAX_NAME_LEN];
            let n = name.len();
            buf[..n].copy_from_slice(name.as_bytes());
            // Copy out of the object first: the lookup must not read a mapping it may change.
            let name = core::str::from_utf8(&buf[..n]).map_err(|_| ObjError::BadEntry(index))?;
            sys::lookup(name)?
        }
    };
    let write = entry.perms & perms::WRITE != 0;
    // A target mapped already (the entry was only pushed out of the cache) needs no host call.
    let mapped = (0..MAX_SLOTS).find(|&s| {
        sys::occupant(s).is_some_and(|(occupant, writable)| occupant == id && (writable || !write))
    });
    let target = match mapped {
        Some(s) => s,
        None => sys::map(id, write, Some(slot))?.slot,
    };
    sys::remember(slot, index, target);
    Ok(slot_addr(target as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_compare_checks_range_alignment_and_index() {
        assert!(in_range::<u64>(BASE_OFFSET));
        assert!(in_range::<u64>(DATA_END - 8));
        assert!(!in_range::<u64>(DATA_END - 4), "runs past the data");
        assert!(!in_range::<u64>(BASE_OFFSET + 4), "misaligned");
        assert!(in_range::<u32>(BASE_OFFSET + 4));
        assert!(in_range::<u8>(BASE_OFFSET + 3));
        assert!(!in_range::<u64>(0), "null");
        assert!(!in_range::<u64>(BASE_OFFSET - 8), "the null page");
        assert!(!in_range::<u64>((1 << 32) | BASE_OFFSET), "a FOT index");
        assert!(
            !in_range::<[u8; 0x4000_0000]>(BASE_OFFSET),
            "larger than the data"
        );
    }

    #[test]
    fn local_pointers_check_their_range() {
        assert!(InvPtr::<u64>::local(BASE_OFFSET).is_ok());
        assert_eq!(
            InvPtr::<u64>::local(0),
            Err(ObjError::OutOfRange(0)),
            "the null page"
        );
        assert_eq!(
            InvPtr::<u64>::local(DATA_END - 4),
            Err(ObjError::OutOfRange(DATA_END - 4)),
            "would run past the data"
        );
        assert!(InvPtr::<u64>::local(DATA_END - 8).is_ok());
        assert!(InvPtr::<[u8; 4096]>::local(DATA_END - 4095).is_err());
    }

    #[test]
    fn resolving_outside_an_object_is_refused() {
        let p = InvPtr::<u64>::local(BASE_OFFSET).unwrap();
        assert_eq!(p.resolve(), Err(ObjError::NotInObject), "on the stack");
        assert_eq!(InvPtr::<u64>::NULL.resolve(), Err(ObjError::Null));
        let far = InvPtr::<u64>::from_raw(abi::ptr::InvPtr(DATA_END + 8));
        assert_eq!(far.resolve(), Err(ObjError::OutOfRange(DATA_END + 8)));
        let odd = InvPtr::<u64>::from_raw(abi::ptr::InvPtr(BASE_OFFSET + 1));
        assert!(odd.resolve().is_err(), "misaligned");
    }
}
