//! The contract between `twz-vmm` and its guests, and the on-media format of persistent objects.
//!
//! This crate is `no_std` and has no dependencies so that the host (the VMM and the object store)
//! and the guest runtime compile the very same definitions. Every `#[repr(C)]` type here carries a
//! compile-time size assertion: changing a layout is a format or ABI version change.
//!
//! ```
//! use abi::{id::ObjId, ptr::InvPtr, layout};
//!
//! let id = ObjId::from_u128(0x1234);
//! assert_eq!(id.to_string(), "00000000000000000000000000001234");
//! // A pointer to offset 0x2000 of the object named by FOT entry 3:
//! let p = InvPtr::new(3, 0x2000).unwrap();
//! assert_eq!((p.fot_index(), p.offset()), (3, 0x2000));
//! assert!(InvPtr::new(0, layout::OBJ_SIZE as u32).is_none());
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

pub mod boot;
pub mod cap;
pub mod fot;
pub mod hostcall;
pub mod id;
pub mod layout;
pub mod memmap;
pub mod meta;
pub mod palloc;
pub mod ptr;
pub mod ring;
pub mod txlog;

/// Asserts at compile time that a `#[repr(C)]` type has the size the format documents.
#[macro_export]
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
    };
}
