//! Access to the [`BootInfo`] the VMM left for the guest.

use core::sync::atomic::{AtomicPtr, Ordering};

use abi::boot::{BootInfo, BOOT_MAGIC, BOOT_VERSION};

/// Stands in before boot (and in host unit tests): every address zero, so nothing is touched.
static EMPTY: BootInfo = BootInfo {
    magic: 0,
    version: 0,
    vcpus: 0,
    mem_size: 0,
    heap_start: 0,
    heap_end: 0,
    stack_top: 0,
    stack_bottom: 0,
    argc: 0,
    argv: 0,
    envc: 0,
    envp: 0,
    hostcall_block: 0,
    ring: 0,
    tsc_hz: 0,
    boot_tsc: 0,
    boot_wall_ns: 0,
    obj_window: 0,
    obj_slots: 0,
    durability: 0,
    flags: 0,
    image_start: 0,
    image_end: 0,
    reserved: [0; 9],
};

static INFO: AtomicPtr<BootInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Why the runtime refuses to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The pointer in `rdi` is null or misaligned.
    BadPointer,
    /// The magic number or version does not match this runtime's ABI.
    Mismatch,
}

/// Checks and records the boot information; called once by the entry code.
///
/// # Safety
/// `info` must point to memory that stays readable and unchanged for the rest of the run (the
/// VMM's boot page).
pub unsafe fn init(info: *const BootInfo) -> Result<(), BootError> {
    if info.is_null() || !info.is_aligned() {
        return Err(BootError::BadPointer);
    }
    // SAFETY: non-null and aligned, and readable per the caller's guarantee.
    let b = unsafe { &*info };
    if b.magic != BOOT_MAGIC || b.version != BOOT_VERSION {
        return Err(BootError::Mismatch);
    }
    INFO.store(info.cast_mut(), Ordering::Release);
    Ok(())
}

/// The boot information (all zero before [`init`]).
pub fn info() -> &'static BootInfo {
    let p = INFO.load(Ordering::Acquire);
    if p.is_null() {
        &EMPTY
    } else {
        // SAFETY: `init` checked the pointer and its caller promised it stays valid and unchanged.
        unsafe { &*p }
    }
}
