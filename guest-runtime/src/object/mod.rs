//! Persistent objects: create, name and open objects of the host's store, read them with plain
//! loads, link them with invariant pointers ([`InvPtr`]), flush them.
//!
//! ```ignore
//! let counter = match Object::<u64>::open_named("counter") {
//!     Ok(o) => o,
//!     Err(ObjError::NoSuchName) => Object::create_named("counter")?,
//!     Err(e) => return Err(e),
//! };
//! // UNLOGGED: a crash between the store and the flush may lose it (transactions come next).
//! unsafe { *counter.raw_mut()? += 1 };
//! counter.flush()?;
//! ```
//! An object's base struct `T` lives at `abi::layout::BASE_OFFSET`; a new object reads as zeros,
//! hence the [`Persistent`] bound (every bit pattern is a valid `T`).

mod cache;
pub mod fot;
mod ptr;
pub mod sys;

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use abi::layout::{BASE_OFFSET, DATA_END, OBJ_SIZE};
use abi::memmap::slot_addr;

pub use abi::id::ObjId;
pub use ptr::{resolve_slow, InvPtr};
pub use sys::Mapping;

use crate::errno::Errno;

/// Types that may live in an object: every bit pattern (including all zeros, and whatever a
/// file on disk holds) is a valid value, and they hold no addresses (use [`InvPtr`]).
///
/// # Safety
/// Implement only for such types (`#[repr(C)]` structs of integers, arrays, `InvPtr`s).
pub unsafe trait Persistent {}

macro_rules! persistent {
    ($($t:ty),*) => { $(
        // SAFETY: integers accept every bit pattern.
        unsafe impl Persistent for $t {}
    )* };
}
persistent!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, ObjId);
// SAFETY: an array of `Persistent` values is `Persistent`.
unsafe impl<T: Persistent, const N: usize> Persistent for [T; N] {}

/// What went wrong with an object operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjError {
    /// The host refused (its errno).
    Host(Errno),
    /// No object is bound to the name.
    NoSuchName,
    /// The object does not exist.
    NoSuchObject(ObjId),
    /// The name is longer than `abi::fot::MAX_NAME_LEN` bytes.
    NameTooLong,
    /// A null pointer was resolved.
    Null,
    /// A pointer offset outside the object's data region (or misaligned).
    OutOfRange(u64),
    /// The pointer is not stored inside an object, so it has no FOT to go through.
    NotInObject,
    /// The pointer's FOT entry is empty or deleted.
    EmptyEntry(u32),
    /// The pointer's FOT entry is malformed.
    BadEntry(u32),
    /// The object's FOT has no free entry.
    FotFull,
    /// The object is mapped read-only.
    ReadOnly,
    /// The hypervisor refused to map the object (no capability grants the rights asked for);
    /// the reason is [`sys::last_error`].
    Denied(ObjId),
}

impl fmt::Display for ObjError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjError::Host(e) => write!(f, "host error {e:?}"),
            ObjError::NoSuchName => write!(f, "no object has that name"),
            ObjError::NoSuchObject(id) => write!(f, "no such object {id}"),
            ObjError::NameTooLong => write!(f, "name longer than 96 bytes"),
            ObjError::Null => write!(f, "null pointer"),
            ObjError::OutOfRange(o) => write!(f, "offset {o:#x} is outside the object's data"),
            ObjError::NotInObject => write!(f, "pointer is not stored in an object"),
            ObjError::EmptyEntry(i) => write!(f, "FOT entry {i} is empty or deleted"),
            ObjError::BadEntry(i) => write!(f, "FOT entry {i} is malformed"),
            ObjError::FotFull => write!(f, "the object's FOT is full"),
            ObjError::ReadOnly => write!(f, "the object is mapped read-only"),
            ObjError::Denied(id) => match sys::last_error() {
                reason if !reason.is_empty() => f.write_str(&reason),
                _ => write!(f, "cannot map object {id}: permission denied"),
            },
        }
    }
}

/// An object of the store mapped into this guest, with base struct `T`.
pub struct Object<T> {
    id: ObjId,
    write: bool,
    mapping: Cell<Mapping>,
    _base: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Object<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Object({}, slot {})", self.id, self.mapping.get().slot)
    }
}

impl<T: Persistent> Object<T> {
    fn mapped(id: ObjId, write: bool) -> Result<Self, ObjError> {
        let mapping = sys::map(id, write, None)?;
        Ok(Object {
            id,
            write,
            mapping: Cell::new(mapping),
            _base: PhantomData,
        })
    }

    /// Creates a new (zeroed) object, mapped writable.
    pub fn create() -> Result<Self, ObjError> {
        Self::mapped(sys::create(None)?, true)
    }

    /// Creates a new object and binds `name` to it (`Host(EEXIST)` if the name is bound).
    pub fn create_named(name: &str) -> Result<Self, ObjError> {
        Self::mapped(sys::create(Some(name))?, true)
    }

    /// Opens the object bound to `name`, writable.
    pub fn open_named(name: &str) -> Result<Self, ObjError> {
        Self::mapped(sys::lookup(name)?, true)
    }

    /// Opens object `id`, writable.
    pub fn open(id: ObjId) -> Result<Self, ObjError> {
        Self::mapped(id, true)
    }

    /// Opens object `id` read-only: the hypervisor refuses stores to it (a store ends the run
    /// with a fault naming the object).
    pub fn open_readonly(id: ObjId) -> Result<Self, ObjError> {
        Self::mapped(id, false)
    }

    /// The base struct. Valid until the object is evicted (see [`InvPtr::resolve`]).
    pub fn base(&self) -> Result<&T, ObjError> {
        // SAFETY: the object is mapped at `addr`; BASE_OFFSET is page aligned; `T: Persistent`
        // accepts any bytes; `T` must fit in the data region (checked).
        self.fits::<T>(BASE_OFFSET)?;
        let at = self.addr()? + BASE_OFFSET;
        // SAFETY: see above.
        Ok(unsafe { &*(at as *const T) })
    }

    /// Mutable access to the base struct, UNLOGGED: stores go straight to the object with no
    /// transaction, so a crash can leave a partial update. Call [`Object::flush`] to make them
    /// durable. (Transactions replace this.)
    ///
    /// # Safety
    /// No other reference into the base struct may be alive while the result is.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn raw_mut(&self) -> Result<&mut T, ObjError> {
        self.fits::<T>(BASE_OFFSET)?;
        let base = self.writable_addr()? + BASE_OFFSET;
        // SAFETY: as in `base`, the mapping is writable, and the caller promises exclusivity.
        Ok(unsafe { &mut *(base as *mut T) })
    }

    /// A `U` at `offset` in the data region, for reading.
    pub fn at<U: Persistent>(&self, offset: u64) -> Result<&U, ObjError> {
        self.fits::<U>(offset)?;
        // SAFETY: checked to lie, aligned, in the mapped object's data region.
        Ok(unsafe { &*((self.addr()? + offset) as *const U) })
    }

    /// A `U` at `offset` in the data region, UNLOGGED mutable access (see [`Object::raw_mut`]).
    ///
    /// # Safety
    /// No other reference to that `U` may be alive while the result is.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn at_mut<U: Persistent>(&self, offset: u64) -> Result<&mut U, ObjError> {
        self.fits::<U>(offset)?;
        let at = self.writable_addr()? + offset;
        // SAFETY: checked range, writable mapping, exclusivity promised by the caller.
        Ok(unsafe { &mut *(at as *mut U) })
    }

    fn fits<U>(&self, offset: u64) -> Result<(), ObjError> {
        let size = core::mem::size_of::<U>() as u64;
        let ok = offset >= BASE_OFFSET
            && offset.checked_add(size).is_some_and(|end| end <= DATA_END)
            && offset.is_multiple_of(core::mem::align_of::<U>() as u64);
        if ok {
            Ok(())
        } else {
            Err(ObjError::OutOfRange(offset))
        }
    }
}

impl<T> Object<T> {
    /// The object's ID.
    pub fn id(&self) -> ObjId {
        self.id
    }

    /// The window slot it is mapped in now.
    pub fn slot(&self) -> usize {
        self.mapping.get().slot
    }

    /// The object's guest address, mapping it again if it was evicted meanwhile.
    pub fn addr(&self) -> Result<u64, ObjError> {
        let m = self.mapping.get();
        if sys::still_mapped(m, self.id, self.write) {
            return Ok(slot_addr(m.slot as u64));
        }
        let m = sys::map(self.id, self.write, None)?;
        self.mapping.set(m);
        Ok(slot_addr(m.slot as u64))
    }

    fn writable_addr(&self) -> Result<u64, ObjError> {
        if !self.write {
            return Err(ObjError::ReadOnly);
        }
        self.addr()
    }

    /// Makes the whole object durable (a host call).
    pub fn flush(&self) -> Result<(), ObjError> {
        self.flush_range(0, OBJ_SIZE)
    }

    /// Makes `len` bytes at `offset` durable.
    pub fn flush_range(&self, offset: u64, len: u64) -> Result<(), ObjError> {
        self.addr()?;
        sys::flush(self.slot(), offset, len)
    }

    /// Makes every `(offset, len)` range durable behind one fence (one host call; at most
    /// [`abi::ring::FLUSH_MANY_MAX`] ranges).
    pub fn flush_ranges(&self, ranges: &[(u64, u64)]) -> Result<(), ObjError> {
        self.addr()?;
        let slot = self.slot() as u64;
        if ranges.len() as u64 > abi::ring::FLUSH_MANY_MAX {
            return Err(ObjError::Host(crate::errno::Errno(
                abi::hostcall::errno::E2BIG,
            )));
        }
        let batch: alloc::vec::Vec<_> = ranges
            .iter()
            .map(|&(offset, len)| abi::ring::FlushRange { slot, offset, len })
            .collect();
        sys::flush_many(&batch)
    }

    /// Binds `name` to this object.
    pub fn bind(&self, name: &str) -> Result<(), ObjError> {
        sys::bind(name, self.id)
    }
}
