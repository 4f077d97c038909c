//! The guest's 4-level page tables (guest virtual = guest physical).
//!
//! The first 2 MiB use 4 KiB pages so the low pages can get their own rights (null page absent,
//! boot info and arguments user read-only, host-call block and ring user read/write, system area
//! supervisor-only). The rest of RAM uses 2 MiB user pages, the fastest mapping under PVM, except
//! the unmapped guard below the stack. The two doorbell pages are mapped user read/write with no
//! memslot behind them, so a store to them exits (or signals an ioeventfd). The object window's
//! PDPT starts empty; `crate::objects::window` fills a slot's entries when an object is mapped.

use std::ops::Range;

use abi::memmap::{
    ARGS_ADDR, ARGS_SIZE, BOOT_INFO_ADDR, DOORBELL_RING, DOORBELL_SYNC, HOSTCALL_BLOCK_ADDR,
    LARGE_PAGE_SIZE, MMIO_BASE, OBJ_WINDOW_BASE, PAGE_SIZE, RING_ADDR, RING_SIZE, SYS_BASE,
    SYS_END,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{
    MAX_MAPPABLE_RAM, PDPT_MMIO, PDPT_OBJ, PDPT_RAM, PD_MMIO, PD_RAM, PML4, PT_LOW, PT_MMIO, STUBS,
};
use super::ArchError;

/// Present.
pub const PTE_P: u64 = 1;
/// Writable.
pub const PTE_RW: u64 = 1 << 1;
/// User-accessible.
pub const PTE_US: u64 = 1 << 2;
/// Large page (in a PD entry: 2 MiB).
pub const PTE_PS: u64 = 1 << 7;
/// No-execute.
pub const PTE_NX: u64 = 1 << 63;

/// Entry of a paging structure that points at the next level: rights are decided by the leaf.
pub const fn table_entry(next: u64) -> u64 {
    next | PTE_P | PTE_RW | PTE_US
}

/// Rights of each 4 KiB page in the first 2 MiB of guest RAM (0 = not present).
pub fn low_page_entry(addr: u64) -> u64 {
    let in_range = |base: u64, size: u64| addr >= base && addr < base + size;
    let flags = if addr == BOOT_INFO_ADDR {
        PTE_P | PTE_US | PTE_NX
    } else if addr == HOSTCALL_BLOCK_ADDR || in_range(RING_ADDR, RING_SIZE) {
        PTE_P | PTE_RW | PTE_US | PTE_NX
    } else if in_range(ARGS_ADDR, ARGS_SIZE) {
        PTE_P | PTE_US | PTE_NX
    } else if addr == STUBS {
        PTE_P
    } else if in_range(SYS_BASE, SYS_END - SYS_BASE) {
        PTE_P | PTE_RW | PTE_NX
    } else {
        return 0;
    };
    addr | flags
}

/// PD entry for the 2 MiB page at `addr` (at or above 2 MiB): a user page, or absent in the guard.
pub fn large_page_entry(addr: u64, mem_size: u64, guard: &Range<u64>) -> u64 {
    if addr >= mem_size || guard.contains(&addr) {
        0
    } else {
        addr | PTE_P | PTE_RW | PTE_US | PTE_PS
    }
}

fn write_table(mem: &GuestMemoryMmap, at: u64, entries: &[u64]) -> Result<(), ArchError> {
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    mem.write_slice(&bytes, GuestAddress(at))
        .map_err(|error| ArchError::Write {
            what: "page tables",
            error,
        })
}

/// Writes all page tables for `mem_size` bytes of RAM (validated by the caller to be at most
/// [`MAX_MAPPABLE_RAM`], 2 MiB aligned) with `guard` left unmapped. Returns the CR3 value.
pub fn build(mem: &GuestMemoryMmap, mem_size: u64, guard: Range<u64>) -> Result<u64, ArchError> {
    let mem_size = mem_size.min(MAX_MAPPABLE_RAM);
    let mut pml4 = [0u64; 512];
    pml4[0] = table_entry(PDPT_RAM);
    pml4[(MMIO_BASE >> 39) as usize & 511] = table_entry(PDPT_MMIO);
    pml4[(OBJ_WINDOW_BASE >> 39) as usize & 511] = table_entry(PDPT_OBJ);
    write_table(mem, PML4, &pml4)?;

    let gigs = mem_size.div_ceil(1 << 30);
    let pdpt: Vec<u64> = (0..512)
        .map(|g| {
            if g < gigs {
                table_entry(PD_RAM + g * PAGE_SIZE)
            } else {
                0
            }
        })
        .collect();
    write_table(mem, PDPT_RAM, &pdpt)?;

    for g in 0..gigs {
        let pd: Vec<u64> = (0..512u64)
            .map(|i| {
                let addr = (g << 30) + i * LARGE_PAGE_SIZE;
                if addr == 0 {
                    table_entry(PT_LOW)
                } else {
                    large_page_entry(addr, mem_size, &guard)
                }
            })
            .collect();
        write_table(mem, PD_RAM + g * PAGE_SIZE, &pd)?;
    }

    let pt_low: Vec<u64> = (0..512).map(|i| low_page_entry(i * PAGE_SIZE)).collect();
    write_table(mem, PT_LOW, &pt_low)?;

    let mut pdpt_mmio = [0u64; 512];
    pdpt_mmio[0] = table_entry(PD_MMIO);
    write_table(mem, PDPT_MMIO, &pdpt_mmio)?;
    let mut pd_mmio = [0u64; 512];
    pd_mmio[0] = table_entry(PT_MMIO);
    write_table(mem, PD_MMIO, &pd_mmio)?;
    let mut pt_mmio = [0u64; 512];
    for bell in [DOORBELL_SYNC, DOORBELL_RING] {
        pt_mmio[((bell - MMIO_BASE) / PAGE_SIZE) as usize] =
            bell | PTE_P | PTE_RW | PTE_US | PTE_NX;
    }
    write_table(mem, PT_MMIO, &pt_mmio)?;
    Ok(PML4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestRam;

    #[test]
    fn low_pages_have_the_documented_rights() {
        assert_eq!(low_page_entry(0), 0, "null page must be absent");
        assert_eq!(
            low_page_entry(BOOT_INFO_ADDR),
            0x1000 | PTE_P | PTE_US | PTE_NX
        );
        assert_ne!(low_page_entry(HOSTCALL_BLOCK_ADDR) & PTE_RW, 0);
        assert_ne!(
            low_page_entry(RING_ADDR + RING_SIZE - PAGE_SIZE) & PTE_US,
            0
        );
        assert_eq!(low_page_entry(RING_ADDR + RING_SIZE), 0);
        assert_eq!(low_page_entry(ARGS_ADDR) & (PTE_RW | PTE_US), PTE_US);
        let sys = low_page_entry(PML4);
        assert_eq!(sys & PTE_US, 0, "system area must be supervisor-only");
        assert_ne!(sys & PTE_NX, 0);
        assert_eq!(
            low_page_entry(STUBS),
            STUBS | PTE_P,
            "stubs: supervisor, read-only, executable"
        );
    }

    #[test]
    fn large_pages_skip_the_guard_and_end_at_ram() {
        let guard = (100 << 20)..(102 << 20);
        assert_eq!(
            large_page_entry(2 << 20, 128 << 20, &guard),
            (2 << 20) | PTE_P | PTE_RW | PTE_US | PTE_PS
        );
        assert_eq!(large_page_entry(100 << 20, 128 << 20, &guard), 0);
        assert_ne!(large_page_entry(102 << 20, 128 << 20, &guard), 0);
        assert_eq!(large_page_entry(128 << 20, 128 << 20, &guard), 0);
    }

    #[test]
    fn builds_walkable_tables() {
        let ram = GuestRam::new(32 << 20).unwrap();
        let mem = ram.mem();
        let cr3 = build(mem, 32 << 20, (20 << 20)..(22 << 20)).unwrap();
        let read = |a: u64| mem.read_obj::<u64>(GuestAddress(a)).unwrap();
        let pdpt = read(cr3) & !0xfff;
        let pd = read(pdpt) & !0xfff;
        assert_eq!(read(pd + 8), (2 << 20) | PTE_P | PTE_RW | PTE_US | PTE_PS);
        assert_eq!(read(pd + 10 * 8), 0, "guard");
        let pt = read(pd) & !0xfff;
        assert_eq!(read(pt), 0);
        let mmio_pdpt = read(cr3 + 8) & !0xfff;
        let sync_leaf = read(read(read(mmio_pdpt) & !0xfff) & !0xfff);
        assert_eq!(sync_leaf & !0xfff & !PTE_NX, DOORBELL_SYNC);
    }
}
