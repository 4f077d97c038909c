//! Where the VMM puts its supervisor-only structures inside the system area
//! (`abi::memmap::SYS_BASE..SYS_END`, mapped supervisor-only).
//!
//! ```text
//!  0x10_0000  PML4
//!  0x10_1000  PDPT for [0, 512 GiB)            guest RAM
//!  0x10_2000  PDPT for [512 GiB, 1 TiB)        MMIO doorbells
//!  0x10_3000  PD for the MMIO doorbells
//!  0x10_4000  PT for the MMIO doorbells        4 KiB pages
//!  0x10_5000  PT for [0, 2 MiB)                4 KiB pages (low pages and this area)
//!  0x10_6000  GDT (0x10_6000) and TSS (0x10_6100)
//!  0x10_7000  IDT (32 gates)
//!  0x10_8000  fault stubs (8 bytes each)       supervisor, executable, read-only
//!  0x10_9000  CPL0 stack (TSS rsp0), 16 KiB    exception frames land here
//!  0x10_D000  #DF stack (TSS IST1), 12 KiB
//!  0x11_0000  PDs for guest RAM, one 4 KiB PD per GiB (112 GiB)
//!  0x18_0000  PDPT for the object window (slots 0..511 at OBJ_WINDOW_BASE)
//!  0x18_1000  object PD pool: PD `i` maps slot `i` (2 MiB pages), up to SYS_END
//! ```
//! Slot `i` always uses pool PD `i`, so the guest's tables only ever switch a slot between
//! "absent" and one fixed shape: the shadow MMU's cached upper levels stay true, and KVM zaps the
//! leaves when the slot's memslot is deleted (see `crate::objects::window`).

use abi::memmap::{SYS_BASE, SYS_END};

/// Page-map level 4.
pub const PML4: u64 = SYS_BASE;
/// PDPT covering guest RAM.
pub const PDPT_RAM: u64 = SYS_BASE + 0x1000;
/// PDPT covering the MMIO area.
pub const PDPT_MMIO: u64 = SYS_BASE + 0x2000;
/// PD covering the first GiB of the MMIO area.
pub const PD_MMIO: u64 = SYS_BASE + 0x3000;
/// PT covering the doorbell pages.
pub const PT_MMIO: u64 = SYS_BASE + 0x4000;
/// PT covering the first 2 MiB of RAM with 4 KiB pages.
pub const PT_LOW: u64 = SYS_BASE + 0x5000;
/// Global descriptor table.
pub const GDT: u64 = SYS_BASE + 0x6000;
/// Task-state segment.
pub const TSS: u64 = GDT + 0x100;
/// Interrupt descriptor table.
pub const IDT: u64 = SYS_BASE + 0x7000;
/// The page of fault stubs.
pub const STUBS: u64 = SYS_BASE + 0x8000;
/// Bytes per fault stub.
pub const STUB_SIZE: u64 = 8;
/// Bottom of the CPL0 stack.
pub const KSTACK_BOTTOM: u64 = SYS_BASE + 0x9000;
/// Top of the CPL0 stack (TSS `rsp0`).
pub const KSTACK_TOP: u64 = SYS_BASE + 0xD000;
/// Top of the double-fault stack (TSS `ist1`).
pub const DF_STACK_TOP: u64 = SYS_BASE + 0x10000;
/// First page directory for guest RAM.
pub const PD_RAM: u64 = SYS_BASE + 0x10000;
/// PDPT covering the object window's first 512 slots.
pub const PDPT_OBJ: u64 = SYS_BASE + 0x80000;
/// First page directory of the object PD pool.
pub const OBJ_PD_POOL: u64 = PDPT_OBJ + 0x1000;
/// Page directories in the pool: the largest slot budget a run may have.
pub const OBJ_PD_COUNT: u64 = (SYS_END - OBJ_PD_POOL) / 0x1000;
/// Number of RAM page directories the system area has room for.
pub const PD_RAM_COUNT: u64 = (PDPT_OBJ - PD_RAM) / 0x1000;
/// Guest RAM the page tables can map (1 GiB per page directory).
pub const MAX_MAPPABLE_RAM: u64 = PD_RAM_COUNT << 30;

/// Kernel code selector.
pub const SEL_KCODE: u16 = 0x08;
/// Kernel data selector.
pub const SEL_KDATA: u16 = 0x10;
/// User data selector (RPL 3).
pub const SEL_UDATA: u16 = 0x18 | 3;
/// User code selector (RPL 3).
pub const SEL_UCODE: u16 = 0x20 | 3;
/// TSS selector.
pub const SEL_TSS: u16 = 0x28;
/// GDT size in bytes (7 slots: null, 4 segments, 16-byte TSS descriptor).
pub const GDT_SIZE: u64 = 7 * 8;
/// TSS size in bytes.
pub const TSS_SIZE: u64 = 104;
/// IDT entries (the architectural exceptions).
pub const IDT_ENTRIES: u64 = 32;

const _: () = assert!(DF_STACK_TOP <= PD_RAM);
const _: () = assert!(TSS + TSS_SIZE <= IDT);
const _: () = assert!(OBJ_PD_COUNT >= 64 && OBJ_PD_COUNT <= 512);
