//! The x86-64 machine state the VMM builds in the guest's system area: page tables, descriptor
//! tables and the CPL0 fault stubs. Guest code never runs at CPL0 except these stubs (PVM
//! emulates CPL0 at ~0.7 us per instruction).

pub mod descriptors;
pub mod layout;
pub mod paging;

/// Errors of writing the system area into guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    /// A write into the system area failed (guest RAM smaller than the system area?).
    #[error("cannot write the {what} into guest memory: {error}")]
    Write {
        what: &'static str,
        error: vm_memory::GuestMemoryError,
    },
}
