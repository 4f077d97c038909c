//! Puts an object into a slot of the guest's object window and takes it out again.
//!
//! The guest page tables of a mapped slot are fully present (2 MiB pages, slot `i` in pool page
//! directory `i`, see `crate::arch::layout`; user, no-execute, writable only with write rights),
//! but KVM memslots back the object only in the chunks the guest uses ([`super::chunks`]): at map
//! time the low chunks up to `alloc_top` and the top chunk (metadata and FOT), later any chunk
//! the guest touches. A touch of a chunk without a memslot exits to the VMM (an MMIO exit, or an
//! internal error for instructions KVM cannot emulate), which backs the chunk
//! ([`HostWindow::back`]) and completes or re-runs the access.
//!
//! Each slot index gets, on first use, a reserved 1 GiB host range; mapping an object maps its
//! file `MAP_SHARED | MAP_FIXED` over that range (`PROT_READ` only unless write is granted),
//! and the chunk memslots point into it and stay for the run. So a remap costs no memslot
//! ioctl once a slot's chunks exist: only the MMU-notifier walk of replacing the host mapping,
//! which covers just the chunks that have memslots (usually 2 x 2 MiB), not the whole 1 GiB.
//! Each new mapping gets `MADV_RANDOM` and its base page populated (`prepare`): without
//! that, KVM's first touch of a file hole went through readahead and took ~4 ms.
//!
//! Why small memslots: KVM's cost of adding, deleting or changing the host mapping under a
//! memslot grows with its size (reverse maps per 4 KiB page; the notifier walks the range):
//! measured here 0.5-2.5 ms to add a 1 GiB memslot and ~150 us to replace the mapping under
//! one; a 2 MiB memslot took 20-90 us to add and 35-160 us to delete (a 256 MiB one 250-350 us
//! and ~1.5 ms), which is why memslots are kept rather than deleted on eviction.
//!
//! Stale translations: replacing the host mapping makes KVM's MMU notifier zap every shadow
//! translation of the chunks with memslots, so the next guest touch re-walks the guest's
//! tables. Those tables are written by the VMM behind the shadow MMU's back (it only
//! write-protects them against the guest), which is safe because a slot's
//! tables only ever change between "absent" and one fixed shape (the same PD page, identity
//! entries, the writable bit), always with the host mapping replaced in between: cached
//! upper levels never point anywhere else, and leaf rights are re-read after the zap. An absent
//! slot then takes a guest page fault that the VMM reports naming the slot; a store to a
//! read-only one, a page fault with the write bit, reported naming the object. The host mapping
//! being `PROT_READ` backs this up.

use std::os::fd::{AsRawFd, BorrowedFd};

use abi::layout::{BASE_OFFSET, META_ALLOC_TOP, OBJ_SIZE, PAGE_SIZE};
use abi::memmap::{slot_addr, LARGE_PAGE_SIZE};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::chunks::{self, Chunk, CHUNKS};
use crate::arch::layout::{OBJ_PD_COUNT, OBJ_PD_POOL, PDPT_OBJ};
use crate::arch::paging::{table_entry, PTE_NX, PTE_P, PTE_PS, PTE_RW, PTE_US};
use crate::vstate::vm::FIRST_OBJECT_SLOT;

/// Errors of changing the window.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The slot has no page directory in the pool.
    #[error("slot {0} is beyond the page-directory pool ({OBJ_PD_COUNT} slots)")]
    NoDirectory(u32),
    /// KVM refused a memslot.
    #[error("cannot change a memslot of object slot {slot}: {error}")]
    Memslot {
        /// The window slot.
        slot: u32,
        /// KVM's error.
        error: kvm_ioctls::Error,
    },
    /// A host mapping failed.
    #[error("cannot map object slot {slot} on the host: {error}")]
    Map {
        /// The window slot.
        slot: u32,
        /// The OS error.
        error: std::io::Error,
    },
    /// Guest memory could not be written (cannot happen with a valid RAM size).
    #[error("cannot write the object window's page tables")]
    Tables,
}

/// The KVM memslot number of chunk `chunk` of window slot `slot`.
pub fn memslot_of(slot: u32, chunk: u32) -> u32 {
    FIRST_OBJECT_SLOT + slot * CHUNKS + chunk
}

/// How many window slots fit in `nr_memslots` KVM memslots.
pub fn slots_for_memslots(nr_memslots: u32) -> u32 {
    nr_memslots.saturating_sub(FIRST_OBJECT_SLOT) / CHUNKS
}

/// The pool page directory of `slot`.
fn directory_of(slot: u32) -> Result<u64, WindowError> {
    if u64::from(slot) >= OBJ_PD_COUNT {
        return Err(WindowError::NoDirectory(slot));
    }
    Ok(OBJ_PD_POOL + u64::from(slot) * 0x1000)
}

/// The 512 PD entries mapping `slot` (user, no-execute; writable only if `writable`).
pub fn directory_entries(slot: u32, writable: bool) -> Vec<u64> {
    let base = slot_addr(u64::from(slot));
    let rw = if writable { PTE_RW } else { 0 };
    (0..512u64)
        .map(|i| (base + i * LARGE_PAGE_SIZE) | PTE_P | rw | PTE_US | PTE_PS | PTE_NX)
        .collect()
}

fn write_words(mem: &GuestMemoryMmap, at: u64, words: &[u64]) -> Result<(), WindowError> {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    mem.write_slice(&bytes, GuestAddress(at))
        .map_err(|_| WindowError::Tables)
}

/// `mmap` with `MAP_FIXED` over `addr..addr + OBJ_SIZE`.
///
/// # Safety
/// `addr..addr + OBJ_SIZE` must be a range this module reserved (nothing else lives there).
unsafe fn map_fixed(addr: u64, prot: i32, flags: i32, fd: i32) -> std::io::Result<()> {
    // SAFETY: MAP_FIXED replaces only the caller's reserved range.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            OBJ_SIZE as usize,
            prot,
            flags | libc::MAP_FIXED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Pages populated at map time: the base page, which every guest touches first. (Each costs
/// 13-15 us here; the metadata page is left to the guest's first use of metadata or the FOT.)
const PREFAULT: [(u64, u64); 1] = [(BASE_OFFSET, PAGE_SIZE)];

/// The `alloc_top` of object file `fd`, read from the file (a page-cache hit) rather than
/// through the new mapping, which would fault the metadata page into this process (~13 us
/// here). A failed or torn read only changes which chunks get memslots now rather than on first
/// touch (0: just the first).
fn alloc_top_of(fd: BorrowedFd<'_>) -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `pread` writes at most `buf.len()` bytes into `buf`, which outlives the call.
    let n = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            META_ALLOC_TOP as libc::off_t,
        )
    };
    if n == buf.len() as isize {
        u64::from_le_bytes(buf)
    } else {
        0
    }
}

/// Readies a fresh object mapping at `host` for the guest's first touches: no readahead (a
/// fault on a file hole would otherwise zero a whole readahead window), and the pages every
/// guest touches first populated, so KVM finds them in the host page tables instead of taking
/// the slow fault path (measured: a first guest load 25-28 us without, ~10 us with). Populated
/// for reading even in writable mappings: a write fault on a clean shared file page runs the
/// filesystem's `page_mkwrite` (block reservation, an mtime update through the journal), which
/// made mapping 10-50 us slower here and is only worth paying when the guest stores. Both are
/// hints: failures only cost speed.
fn prepare(host: u64, huge_pages: bool) {
    let advice = libc::MADV_POPULATE_READ;
    // SAFETY: advice on this slot's own mapping; neither call changes its contents.
    unsafe {
        libc::madvise(
            host as *mut libc::c_void,
            OBJ_SIZE as usize,
            libc::MADV_RANDOM,
        );
        if huge_pages {
            // The page cache then fills this mapping with 2 MiB folios mapped by the host's
            // page middle directory, so KVM maps them with 2 MiB shadow entries: one fault per
            // 2 MiB instead of one per 4 KiB page (see `HostWindow::set_huge_pages`).
            libc::madvise(
                host as *mut libc::c_void,
                OBJ_SIZE as usize,
                libc::MADV_HUGEPAGE,
            );
        }
        for (off, len) in PREFAULT {
            libc::madvise((host + off) as *mut libc::c_void, len as usize, advice);
        }
    }
}

const EMPTY_FLAGS: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;

/// A slot index used so far: its reserved host range and which chunks have memslots.
#[derive(Debug, Clone, Copy)]
struct Backing {
    host: u64,
    present: u32,
    mapped: bool,
}

/// The host side of the window: per slot index used so far, a reserved 1 GiB host range and
/// the memslots over its chunks (kept for the run).
#[derive(Debug, Default)]
pub struct HostWindow {
    slots: Vec<Option<Backing>>,
    huge_pages: bool,
}

/// Sets memslot `memslot` to `size` bytes at guest `gpa` over host `host`.
fn set_memslot(
    vm: &VmFd,
    slot: u32,
    memslot: u32,
    gpa: u64,
    size: u64,
    host: u64,
) -> Result<(), WindowError> {
    let region = kvm_userspace_memory_region {
        slot: memslot,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: host,
    };
    // SAFETY: `host..host + size` lies in a range this module reserved, which stays mapped
    // (only ever replaced with MAP_FIXED) until `Drop`, which runs after the VM is gone
    // (`super::Objects` drops the VM handle first).
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|error| WindowError::Memslot { slot, error })
}

impl HostWindow {
    /// Backs objects mapped from now on with 2 MiB host pages (`run --huge-pages`). Measured
    /// here: every first guest touch of a 4 KiB object page costs 10-20 us (a shadow-MMU fault
    /// per page under PVM); with 2 MiB folios the key-value store loaded 4x faster. The price:
    /// the filesystem allocates and writes back whole 2 MiB folios, so a sparse object takes at
    /// least 2 MiB of disk per touched region (a store of five small objects: 564 KiB -> 17 MiB)
    /// and a durable flush writes 2 MiB where it wrote 4 KiB (durable inserts 240/s -> 85/s).
    pub fn set_huge_pages(&mut self, on: bool) {
        self.huge_pages = on;
    }

    /// The reserved host range of `slot`, reserving it on first use.
    fn backing(&mut self, slot: u32) -> Result<&mut Backing, WindowError> {
        let i = slot as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        let entry = self
            .slots
            .get_mut(i)
            .ok_or(WindowError::NoDirectory(slot))?;
        if entry.is_none() {
            // SAFETY: a fresh inaccessible anonymous reservation; the kernel picks the address.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    OBJ_SIZE as usize,
                    libc::PROT_NONE,
                    EMPTY_FLAGS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                let error = std::io::Error::last_os_error();
                return Err(WindowError::Map { slot, error });
            }
            *entry = Some(Backing {
                host: p as u64,
                present: 0,
                mapped: false,
            });
        }
        entry.as_mut().ok_or(WindowError::NoDirectory(slot))
    }

    /// Maps the object file `fd` into `slot` (writable if `writable`) and backs the chunks up
    /// to its `alloc_top` and the top one. The file replaces the slot's previous host mapping, which
    /// makes KVM zap its translations of the chunks that have memslots (and only those).
    pub fn install(
        &mut self,
        vm: &VmFd,
        mem: &GuestMemoryMmap,
        slot: u32,
        fd: BorrowedFd<'_>,
        writable: bool,
    ) -> Result<(), WindowError> {
        let pd = directory_of(slot)?;
        let b = self.backing(slot)?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: `b.host` is this slot's reserved range.
        unsafe { map_fixed(b.host, prot, libc::MAP_SHARED, fd.as_raw_fd()) }
            .map_err(|error| WindowError::Map { slot, error })?;
        b.mapped = true;
        prepare(b.host, self.huge_pages);
        for c in chunks::initial(alloc_top_of(fd)) {
            self.back(vm, slot, c)?;
        }
        write_words(mem, pd, &directory_entries(slot, writable))?;
        write_words(mem, PDPT_OBJ + u64::from(slot) * 8, &[table_entry(pd)])
    }

    /// Gives chunk `chunk` of `slot` its memslot; false if it had one (or nothing is mapped
    /// there).
    pub fn back(&mut self, vm: &VmFd, slot: u32, chunk: Chunk) -> Result<bool, WindowError> {
        let Some(Some(b)) = self.slots.get_mut(slot as usize) else {
            return Ok(false);
        };
        let bit = 1u32 << chunk.index;
        if b.present & bit != 0 || !b.mapped {
            return Ok(false);
        }
        let gpa = slot_addr(u64::from(slot)) + chunk.start;
        set_memslot(
            vm,
            slot,
            memslot_of(slot, chunk.index),
            gpa,
            chunk.len,
            b.host + chunk.start,
        )?;
        b.present |= bit;
        Ok(true)
    }

    /// Gives every chunk of every mapped slot its memslot; true if any was missing.
    pub fn back_all(&mut self, vm: &VmFd) -> Result<bool, WindowError> {
        let mut added = false;
        for slot in 0..self.slots.len() as u32 {
            for c in chunks::all() {
                added |= self.back(vm, slot, c)?;
            }
        }
        Ok(added)
    }

    /// Takes `slot` out of the window: page-table entries first, then the host mapping (which
    /// zaps the shadow MMU's translations of the chunks with memslots).
    pub fn remove(&mut self, mem: &GuestMemoryMmap, slot: u32) -> Result<(), WindowError> {
        let pd = directory_of(slot)?;
        write_words(mem, PDPT_OBJ + u64::from(slot) * 8, &[0])?;
        write_words(mem, pd, &[0; 512])?;
        if let Some(Some(b)) = self.slots.get_mut(slot as usize) {
            // SAFETY: `b.host` is this slot's reserved range.
            unsafe { map_fixed(b.host, libc::PROT_NONE, EMPTY_FLAGS, -1) }
                .map_err(|error| WindowError::Map { slot, error })?;
            b.mapped = false;
        }
        Ok(())
    }

    /// The host address `slot`'s object is mapped at, if one is.
    pub fn host_addr(&self, slot: u32) -> Option<u64> {
        match self.slots.get(slot as usize) {
            Some(Some(b)) if b.mapped => Some(b.host),
            _ => None,
        }
    }

    /// Memslots of `slot` so far.
    pub fn memslots(&self, slot: u32) -> u32 {
        match self.slots.get(slot as usize) {
            Some(Some(b)) => b.present.count_ones(),
            _ => 0,
        }
    }
}

impl Drop for HostWindow {
    fn drop(&mut self) {
        for b in self.slots.iter().flatten() {
            // SAFETY: our own reservation; the vCPU no longer runs (the run is over).
            unsafe { libc::munmap(b.host as *mut libc::c_void, OBJ_SIZE as usize) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_map_the_slot_with_large_user_pages() {
        let e = directory_entries(3, true);
        assert!(directory_entries(3, false).iter().all(|x| x & PTE_RW == 0));
        assert_eq!(e.len(), 512);
        assert_eq!(e[0] & !0xfff & !PTE_NX, slot_addr(3));
        assert_eq!(
            e[511] & !0xfff & !PTE_NX,
            slot_addr(3) + OBJ_SIZE - LARGE_PAGE_SIZE
        );
        assert!(e
            .iter()
            .all(|x| x & (PTE_P | PTE_US | PTE_PS) == PTE_P | PTE_US | PTE_PS));
        assert!(directory_of(0).is_ok());
        assert!(directory_of(OBJ_PD_COUNT as u32).is_err());
        assert_eq!(memslot_of(0, 0), FIRST_OBJECT_SLOT);
        assert_eq!(memslot_of(1, 0), memslot_of(0, CHUNKS - 1) + 1);
        assert_eq!(slots_for_memslots(32764), 1820);
        assert!(u64::from(slots_for_memslots(32764)) >= OBJ_PD_COUNT);
    }
}
