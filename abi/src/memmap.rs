//! The guest's memory map. Guest virtual addresses equal guest physical addresses.
//!
//! ```text
//!  0x0000_0000   null page                 not present: a null dereference faults
//!  0x0000_1000   BootInfo                  user read-only
//!  0x0000_2000   host-call block (vCPU 0)  user read/write (64 B used)
//!  0x0000_4000   async ring                user read/write, RING_SIZE bytes
//!  0x0001_0000   argv/envp strings         user read-only, ARGS_SIZE bytes
//!  0x0010_0000   system area               supervisor only: page tables, GDT, IDT, TSS,
//!                                          fault stubs, CPL0 stacks (first 2 MiB mapped 4 KiB)
//!  0x0018_0000     object-window tables    the window's PDPT, then a pool of page directories,
//!                                          one per slot of the run's slot budget
//!  0x0020_0000   IMAGE_BASE                guest image (static ELF, linked below IMAGE_LIMIT),
//!                                          then heap, a 2 MiB unmapped guard, stack at top of RAM;
//!                                          mapped with 2 MiB pages
//!  mem_size      end of guest RAM
//!  MMIO_BASE     doorbells (512 GiB)       mapped user read/write, no memslot behind: a write exits
//!  OBJ_WINDOW    object window (1 TiB)     slot i = [OBJ_WINDOW + i GiB, +1 GiB), 2 MiB pages,
//!                                          populated by the VMM as objects are mapped
//! ```

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large page (the unit guest RAM and objects are mapped in).
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

/// Boot information for the guest ([`crate::boot::BootInfo`]).
pub const BOOT_INFO_ADDR: u64 = 0x1000;
/// The synchronous host-call request block of vCPU 0 ([`crate::hostcall::HostCall`]).
pub const HOSTCALL_BLOCK_ADDR: u64 = 0x2000;
/// The asynchronous ring ([`crate::ring`]).
pub const RING_ADDR: u64 = 0x4000;
/// Size of the ring area.
pub const RING_SIZE: u64 = 0x4000;
/// Where the VMM writes argument and environment strings and their pointer arrays.
pub const ARGS_ADDR: u64 = 0x1_0000;
/// Size of the argument area; argv + envp that do not fit are refused before boot.
pub const ARGS_SIZE: u64 = 0x1_0000;
/// Start of the supervisor-only system area.
pub const SYS_BASE: u64 = 0x10_0000;
/// End of the system area (exclusive).
pub const SYS_END: u64 = 0x20_0000;

/// Lowest address a guest image may load at.
pub const IMAGE_BASE: u64 = 0x20_0000;
/// Images must end below this (C code uses 32-bit absolute relocations).
pub const IMAGE_LIMIT: u64 = 0x8000_0000;
/// Default stack size; the stack sits at the top of guest RAM.
pub const DEFAULT_STACK_SIZE: u64 = 8 << 20;
/// The unmapped guard between heap and stack.
pub const STACK_GUARD_SIZE: u64 = LARGE_PAGE_SIZE;

/// Smallest guest RAM the VMM accepts.
pub const MIN_MEM_SIZE: u64 = 16 << 20;
/// Largest guest RAM the VMM accepts (below the MMIO area).
pub const MAX_MEM_SIZE: u64 = 256 << 30;

/// Base of the MMIO doorbell area: mapped in the guest's page tables, with no memslot behind it.
pub const MMIO_BASE: u64 = 512 << 30;
/// Synchronous host call: a 64-bit write of the request block's address exits to the VMM,
/// which handles the request before the store instruction retires.
pub const DOORBELL_SYNC: u64 = MMIO_BASE;
/// Asynchronous ring doorbell: any write signals the VMM's event loop (an ioeventfd) without
/// stopping the vCPU.
pub const DOORBELL_RING: u64 = MMIO_BASE + 0x1000;

/// Base of the object window.
pub const OBJ_WINDOW_BASE: u64 = 1 << 40;
/// Size of one slot (= the object size).
pub const OBJ_SLOT_SIZE: u64 = crate::layout::OBJ_SIZE;
/// Number of slots in the window.
pub const OBJ_SLOTS: u64 = 1024;

/// Guest address of object slot `slot`.
pub const fn slot_addr(slot: u64) -> u64 {
    OBJ_WINDOW_BASE + slot * OBJ_SLOT_SIZE
}

/// The slot an address falls in, if it is inside the object window.
pub const fn slot_of(addr: u64) -> Option<u64> {
    if addr < OBJ_WINDOW_BASE {
        return None;
    }
    let s = (addr - OBJ_WINDOW_BASE) / OBJ_SLOT_SIZE;
    if s < OBJ_SLOTS {
        Some(s)
    } else {
        None
    }
}

/// The I/O port the CPL0 fault stubs write the vector number to (`out imm8, al`).
pub const FAULT_PORT: u16 = 0xE0;

const _: () = assert!(MAX_MEM_SIZE <= MMIO_BASE);
const _: () = assert!(slot_addr(OBJ_SLOTS) <= 1 << 46);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots() {
        assert_eq!(slot_of(OBJ_WINDOW_BASE - 1), None);
        assert_eq!(slot_of(OBJ_WINDOW_BASE), Some(0));
        assert_eq!(slot_of(slot_addr(3) + 5), Some(3));
        assert_eq!(slot_of(slot_addr(OBJ_SLOTS)), None);
    }
}
