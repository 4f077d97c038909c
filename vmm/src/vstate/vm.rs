//! The KVM VM: guest RAM memslot, the ring doorbell's ioeventfd, quirks.
//!
//! Memslot 0 is guest RAM. Slots from [`FIRST_OBJECT_SLOT`] on back the object window at
//! `abi::memmap::OBJ_WINDOW_BASE`, a few small ones per window slot (one per chunk the guest
//! uses), registered on demand and kept for the run (`crate::objects::window`). Deleting a memslot would zap the
//! whole shadow page table under PVM (every touched page faults again), so the slot-zap-all
//! quirk is disabled when the host offers `KVM_CAP_DISABLE_QUIRKS2`.

use std::sync::Arc;

use abi::memmap::DOORBELL_RING;
use kvm_bindings::{kvm_enable_cap, kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::memory::GuestRam;

/// `KVM_CAP_DISABLE_QUIRKS2` (not in kvm-ioctls' `Cap` enum).
const KVM_CAP_DISABLE_QUIRKS2: u32 = 213;
/// The memslot of guest RAM.
pub const RAM_SLOT: u32 = 0;
/// The first memslot used for objects.
pub const FIRST_OBJECT_SLOT: u32 = 1;

/// Errors of creating and configuring the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {0} (is KVM available and are you allowed to use it?)")]
    OpenKvm(kvm_ioctls::Error),
    /// `KVM_CREATE_VM` failed.
    #[error("cannot create a KVM VM: {0}")]
    Create(kvm_ioctls::Error),
    /// Registering guest RAM failed.
    #[error("cannot register guest memory with KVM: {0}")]
    Memslot(kvm_ioctls::Error),
    /// The doorbell eventfd.
    #[error("cannot set up the ring doorbell: {0}")]
    Doorbell(std::io::Error),
    /// Reading the dirty log.
    #[error("cannot read the dirty log: {0}")]
    DirtyLog(kvm_ioctls::Error),
}

/// A KVM VM of one guest (RAM registered by [`Vm::add_ram`]).
pub struct Vm {
    fd: Arc<VmFd>,
    ram_size: u64,
    dirty_log: bool,
    quirk_disabled: bool,
}

impl Vm {
    /// Creates the VM; guest RAM comes with [`Vm::add_ram`]. The ring doorbell's ioeventfd is
    /// registered later, by the event loop (see [`crate::event_loop`] for why).
    pub fn new(kvm: &Kvm) -> Result<Self, VmError> {
        let fd = kvm.create_vm().map_err(VmError::Create)?;
        let quirk_disabled = disable_slot_zap_quirk(&fd);
        Ok(Vm {
            fd: Arc::new(fd),
            ram_size: 0,
            dirty_log: false,
            quirk_disabled,
        })
    }

    /// Registers `ram` as memslot 0 at guest physical 0 (with KVM dirty logging if
    /// `dirty_log`). `ram` must outlive the VM.
    pub fn add_ram(&mut self, ram: &GuestRam, dirty_log: bool) -> Result<(), VmError> {
        let region = kvm_userspace_memory_region {
            slot: RAM_SLOT,
            flags: if dirty_log {
                KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
            guest_phys_addr: 0,
            memory_size: ram.size(),
            userspace_addr: ram.host_base() as u64,
        };
        // SAFETY: the host range is guest RAM's own mapping, which the caller keeps alive (and
        // unmoved) for as long as the VM exists: `run` creates the RAM before the VM, so the
        // VM is dropped first.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(VmError::Memslot)?;
        self.ram_size = ram.size();
        self.dirty_log = dirty_log;
        Ok(())
    }

    /// The KVM VM file descriptor.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// A shared handle on the VM fd (for the event loop).
    pub fn shared_fd(&self) -> Arc<VmFd> {
        self.fd.clone()
    }

    /// Whether deleting a memslot no longer zaps all shadow pages.
    pub fn slot_zap_quirk_disabled(&self) -> bool {
        self.quirk_disabled
    }

    /// Guest RAM pages (4 KiB) written by the guest so far, from KVM's dirty log; `None` when
    /// the VM was created without dirty logging.
    pub fn pages_written(&self) -> Result<Option<u64>, VmError> {
        if !self.dirty_log {
            return Ok(None);
        }
        let bitmap = self
            .fd
            .get_dirty_log(RAM_SLOT, self.ram_size as usize)
            .map_err(VmError::DirtyLog)?;
        Ok(Some(bitmap.iter().map(|w| u64::from(w.count_ones())).sum()))
    }
}

/// Registers an eventfd that any guest write to `DOORBELL_RING` signals (an ioeventfd: no exit
/// to the VMM).
pub fn register_doorbell(fd: &VmFd) -> Result<EventFd, VmError> {
    let evt = EventFd::new(EFD_NONBLOCK).map_err(VmError::Doorbell)?;
    fd.register_ioevent(&evt, &IoEventAddress::Mmio(DOORBELL_RING), NoDatamatch)
        .map_err(|e| VmError::Doorbell(std::io::Error::from_raw_os_error(e.errno())))?;
    Ok(evt)
}

/// Disables `KVM_X86_QUIRK_SLOT_ZAP_ALL` if the host supports it; returns whether it did.
fn disable_slot_zap_quirk(fd: &VmFd) -> bool {
    let supported = fd.check_extension_raw(u64::from(KVM_CAP_DISABLE_QUIRKS2));
    let quirk = u64::from(kvm_bindings::KVM_X86_QUIRK_SLOT_ZAP_ALL);
    if supported <= 0 || (supported as u64) & quirk == 0 {
        return false;
    }
    let mut cap = kvm_enable_cap {
        cap: KVM_CAP_DISABLE_QUIRKS2,
        ..Default::default()
    };
    cap.args[0] = quirk;
    fd.enable_cap(&cap).is_ok()
}
