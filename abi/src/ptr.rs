//! Invariant pointers: persistent, identity-based pointers stored inside objects.
//!
//! ```text
//!  63                              32 31                               0
//! +----------------------------------+----------------------------------+
//! |           FOT index              |       offset in the target       |
//! +----------------------------------+----------------------------------+
//! ```
//! Index 0 means "the object containing this pointer": resolving it is
//! `containing_base + offset`. A non-zero index names entry `index` of the containing object's
//! Foreign Object Table. Offsets are below [`layout::OBJ_SIZE`] (30 bits used; the two spare bits
//! must be zero). The all-zero pointer is null: it lands in the null page.

use crate::layout;

/// An encoded invariant pointer.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct InvPtr(pub u64);
crate::assert_size!(InvPtr, 8);

impl InvPtr {
    /// The null pointer.
    pub const NULL: InvPtr = InvPtr(0);

    /// Encodes a pointer; `None` when the offset is outside an object or the index beyond the FOT.
    pub const fn new(fot_index: u32, offset: u32) -> Option<Self> {
        if offset as u64 >= layout::OBJ_SIZE || fot_index > layout::FOT_MAX_INDEX {
            None
        } else {
            Some(InvPtr(((fot_index as u64) << 32) | offset as u64))
        }
    }

    /// The FOT index (0: same object).
    #[inline(always)]
    pub const fn fot_index(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The offset within the target object.
    #[inline(always)]
    pub const fn offset(self) -> u32 {
        self.0 as u32
    }

    /// True for the null pointer.
    #[inline(always)]
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// True when the pointer is intra-object (index 0).
    #[inline(always)]
    pub const fn is_local(self) -> bool {
        self.0 >> 32 == 0
    }

    /// True when the offset is inside an object and the index inside the FOT.
    pub const fn is_well_formed(self) -> bool {
        (self.offset() as u64) < layout::OBJ_SIZE && self.fot_index() <= layout::FOT_MAX_INDEX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(i in 0u32..=layout::FOT_MAX_INDEX, o in 0u32..(layout::OBJ_SIZE as u32)) {
            let p = InvPtr::new(i, o).unwrap();
            prop_assert_eq!((p.fot_index(), p.offset()), (i, o));
            prop_assert!(p.is_well_formed());
            prop_assert_eq!(p.is_local(), i == 0);
        }

        #[test]
        fn rejects_out_of_range(i in any::<u32>(), o in any::<u32>()) {
            let ok = (o as u64) < layout::OBJ_SIZE && i <= layout::FOT_MAX_INDEX;
            prop_assert_eq!(InvPtr::new(i, o).is_some(), ok);
            prop_assert_eq!(InvPtr(((i as u64) << 32) | o as u64).is_well_formed(), ok);
        }
    }

    #[test]
    fn null() {
        assert!(InvPtr::NULL.is_null());
        assert_eq!(InvPtr::new(0, 0), Some(InvPtr::NULL));
    }
}
