//! Where things live inside an object (format version 1).
//!
//! ```text
//!  offset
//!  0x0000_0000 +-------------------------+
//!              | null page (never data)  |  an invariant pointer of 0 lands here
//!  0x0000_1000 +-------------------------+  BASE_OFFSET: the object's base struct
//!              | data: base struct,      |
//!              | persistent allocations  |  grows up to `ObjMeta::alloc_top`
//!              |          ...            |
//!  DATA_END    +-------------------------+  LOG_OFFSET
//!              | transaction log (4 MiB) |  owned by the guest runtime
//!  FOT_OFFSET  +-------------------------+
//!              | FOT: 8192 x 128 B       |  entry i at FOT_OFFSET + i * 128; entry 0 unused
//!  META_OFFSET +-------------------------+
//!              | metadata header (ObjMeta, 256 B)   alloc_top at META_ALLOC_TOP
//!  ALLOC_OFFSET+-------------------------+
//!              | allocator header (512 B): heap start, free-list heads (`crate::palloc`)
//!              | rest of the page reserved, zero
//!  OBJ_SIZE    +-------------------------+  1 GiB
//! ```
//! On the host an object is a sparse file of `OBJ_SIZE` bytes; untouched ranges cost no disk.

/// The size of every object's address range, and the alignment of objects in the guest's
/// object window: an address tells its object by `addr & !(OBJ_SIZE - 1)`.
pub const OBJ_SIZE: u64 = 1 << 30;
/// Page size used for the layout.
pub const PAGE_SIZE: u64 = 4096;
/// The null page: offsets below this never hold data.
pub const NULL_PAGE_SIZE: u64 = PAGE_SIZE;
/// Offset of the object's base struct (its root), right after the null page.
pub const BASE_OFFSET: u64 = NULL_PAGE_SIZE;
/// Offset of the metadata header, in the last page.
pub const META_OFFSET: u64 = OBJ_SIZE - PAGE_SIZE;
/// Size of one Foreign Object Table entry.
pub const FOT_ENTRY_SIZE: u64 = 128;
/// Number of FOT entry slots, including the unused entry 0.
pub const FOT_SLOTS: u32 = 8192;
/// Highest usable FOT index (index 0 means "this object" and has no entry).
pub const FOT_MAX_INDEX: u32 = FOT_SLOTS - 1;
/// Offset of the Foreign Object Table.
pub const FOT_OFFSET: u64 = META_OFFSET - FOT_SLOTS as u64 * FOT_ENTRY_SIZE;
/// Size of the transaction log region.
pub const LOG_SIZE: u64 = 4 << 20;
/// Offset of the transaction log region.
pub const LOG_OFFSET: u64 = FOT_OFFSET - LOG_SIZE;
/// End of the data region (exclusive).
pub const DATA_END: u64 = LOG_OFFSET;
/// Offset of `ObjMeta::alloc_top`, the persistent allocator's bump pointer.
pub const META_ALLOC_TOP: u64 = META_OFFSET + 96;
/// Offset of the persistent allocator's header, right after the 256-byte `ObjMeta`.
pub const ALLOC_OFFSET: u64 = META_OFFSET + 256;
/// Bytes reserved for the allocator's header.
pub const ALLOC_SIZE: u64 = 512;

/// Offset of FOT entry `index` (1..=FOT_MAX_INDEX). Returns `None` for 0 or out of range.
pub const fn fot_entry_offset(index: u32) -> Option<u64> {
    if index == 0 || index > FOT_MAX_INDEX {
        None
    } else {
        Some(FOT_OFFSET + index as u64 * FOT_ENTRY_SIZE)
    }
}

const _: () = assert!(FOT_OFFSET.is_multiple_of(PAGE_SIZE) && LOG_OFFSET.is_multiple_of(PAGE_SIZE));
const _: () = assert!(DATA_END > BASE_OFFSET);
const _: () = assert!(ALLOC_OFFSET + ALLOC_SIZE <= OBJ_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_ordered_and_disjoint() {
        assert_eq!(DATA_END, LOG_OFFSET);
        assert_eq!(LOG_OFFSET + LOG_SIZE, FOT_OFFSET);
        assert_eq!(FOT_OFFSET + FOT_SLOTS as u64 * FOT_ENTRY_SIZE, META_OFFSET);
        assert_eq!(META_OFFSET + PAGE_SIZE, OBJ_SIZE);
        assert_eq!(fot_entry_offset(0), None);
        assert_eq!(fot_entry_offset(1), Some(FOT_OFFSET + 128));
        assert_eq!(fot_entry_offset(FOT_SLOTS), None);
        let last = fot_entry_offset(FOT_MAX_INDEX).unwrap();
        assert_eq!(last + FOT_ENTRY_SIZE, META_OFFSET);
    }
}
