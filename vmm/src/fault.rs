//! Guest faults: what the CPU reported, in words, with the registers.
//!
//! A CPL0 stub reports vector `v` by `out FAULT_PORT, al` after `push rax`; the CPL0 stack then
//! holds `[saved rax] [error code, for some vectors] rip cs rflags rsp ss`. A page fault inside
//! the stack guard is reported as a stack overflow. Exit status of every fault: [`FAULT_STATUS`].

use std::fmt::Write as _;

use kvm_bindings::kvm_regs;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::descriptors::has_error_code;
use crate::arch::layout::{DF_STACK_TOP, KSTACK_BOTTOM};

/// Process status after a guest fault (as a shell reports SIGSEGV).
pub const FAULT_STATUS: u8 = 139;

/// Architectural exception names.
pub fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug exception",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point exception",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point exception",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => "reserved exception",
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// A CPU exception delivered to a stub.
    Exception {
        /// Vector.
        vector: u8,
        /// Error code, for vectors that have one.
        error_code: Option<u64>,
        /// CR2 (page faults).
        cr2: u64,
    },
    /// A page fault in the guard below the stack.
    StackOverflow {
        /// The faulting address.
        addr: u64,
    },
    /// The guest touched guest-physical memory with nothing behind it (MMIO exit).
    Unmapped {
        /// Address.
        addr: u64,
        /// Whether it was a write.
        write: bool,
    },
    /// A write to an object mapped read-only (a write exit on its read-only memslot).
    ReadOnlyObject {
        /// The object.
        id: abi::id::ObjId,
        /// The offset written inside it.
        offset: u64,
    },
    /// A touch of an object-window slot with no object in it (never mapped, or evicted).
    UnmappedSlot {
        /// The slot.
        slot: u64,
        /// The address touched.
        addr: u64,
        /// Whether it was a write.
        write: bool,
    },
    /// `KVM_EXIT_SHUTDOWN`.
    TripleFault,
    /// `KVM_EXIT_INTERNAL_ERROR`.
    InternalError(u32),
    /// `KVM_EXIT_FAIL_ENTRY`.
    FailEntry(u64),
    /// Another unexpected exit.
    UnexpectedExit(String),
}

/// The exception frame the CPU pushed on the CPL0 stack, as read back by the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExceptionFrame {
    /// `rax` saved by the stub.
    pub rax: u64,
    /// Error code (if the vector has one).
    pub error_code: Option<u64>,
    /// Faulting instruction.
    pub rip: u64,
    /// Code segment.
    pub cs: u64,
    /// Flags.
    pub rflags: u64,
    /// Stack pointer at the fault.
    pub rsp: u64,
    /// Stack segment.
    pub ss: u64,
}

/// Reads the frame at `rsp` (inside the VMM's CPL0 stacks only).
pub fn read_frame(mem: &GuestMemoryMmap, rsp: u64, vector: u8) -> Option<ExceptionFrame> {
    let words = if has_error_code(vector) { 7 } else { 6 };
    if rsp < KSTACK_BOTTOM || rsp.checked_add(words * 8)? > DF_STACK_TOP {
        return None;
    }
    let w = |i: u64| mem.read_obj::<u64>(GuestAddress(rsp + i * 8)).ok();
    let (error_code, base) = if has_error_code(vector) {
        (Some(w(1)?), 2)
    } else {
        (None, 1)
    };
    Some(ExceptionFrame {
        rax: w(0)?,
        error_code,
        rip: w(base)?,
        cs: w(base + 1)?,
        rflags: w(base + 2)?,
        rsp: w(base + 3)?,
        ss: w(base + 4)?,
    })
}

/// Describes a page-fault error code: `read|write, user|supervisor, not present|protection`.
pub fn page_fault_cause(code: u64) -> String {
    let mut s = String::from(if code & 2 != 0 { "write" } else { "read" });
    if code & 16 != 0 {
        s = "instruction fetch".into();
    }
    s.push_str(if code & 4 != 0 {
        ", user mode"
    } else {
        ", supervisor mode"
    });
    s.push_str(if code & 1 != 0 {
        ", protection violation"
    } else {
        ", page not present"
    });
    if code & 8 != 0 {
        s.push_str(", reserved bit set");
    }
    s
}

/// Names a faulting access to the object window, given what occupies the slot of `addr`
/// (`lookup`). `None` when `addr` is outside the window or the access should have worked.
pub fn object_fault(
    addr: u64,
    write: bool,
    lookup: impl FnOnce(u64) -> Option<crate::objects::Occupant>,
) -> Option<FaultKind> {
    let slot = abi::memmap::slot_of(addr)?;
    match lookup(slot) {
        None => Some(FaultKind::UnmappedSlot { slot, addr, write }),
        Some(o) if write && !o.writable => Some(FaultKind::ReadOnlyObject {
            id: o.id,
            offset: addr - abi::memmap::slot_addr(slot),
        }),
        Some(_) => None,
    }
}

/// The one-line headline of a fault.
pub fn headline(kind: &FaultKind) -> String {
    match kind {
        FaultKind::Exception {
            vector: 14,
            error_code,
            cr2,
        } => format!(
            "page fault at address {cr2:#018x} ({})",
            page_fault_cause(error_code.unwrap_or(0))
        ),
        FaultKind::Exception {
            vector,
            error_code: Some(code),
            ..
        } if *vector != 8 => {
            format!(
                "{} (vector {vector}, error code {code:#x})",
                exception_name(*vector)
            )
        }
        FaultKind::Exception { vector, .. } => {
            format!("{} (vector {vector})", exception_name(*vector))
        }
        FaultKind::StackOverflow { addr } => {
            format!("stack overflow (page fault at {addr:#018x} in the stack guard)")
        }
        FaultKind::Unmapped { addr, write } => format!(
            "{} of unmapped guest memory at {addr:#018x}",
            if *write { "write" } else { "read" }
        ),
        FaultKind::ReadOnlyObject { id, offset } => {
            format!("write to read-only object {id} at offset {offset:#x}")
        }
        FaultKind::UnmappedSlot { slot, addr, write } => format!(
            "{} unmapped object slot {slot} at {addr:#x}",
            if *write { "write to" } else { "access to" }
        ),
        FaultKind::TripleFault => "triple fault (the vCPU shut down)".into(),
        FaultKind::InternalError(sub) => format!("KVM internal error (suberror {sub})"),
        FaultKind::FailEntry(reason) => {
            format!("KVM could not enter the guest (reason {reason:#x})")
        }
        FaultKind::UnexpectedExit(what) => format!("unexpected VM exit: {what}"),
    }
}

/// Register dump, four per line.
pub fn format_regs(r: &kvm_regs) -> String {
    let regs = [
        ("rip", r.rip),
        ("rsp", r.rsp),
        ("rbp", r.rbp),
        ("rflags", r.rflags),
        ("rax", r.rax),
        ("rbx", r.rbx),
        ("rcx", r.rcx),
        ("rdx", r.rdx),
        ("rsi", r.rsi),
        ("rdi", r.rdi),
        ("r8", r.r8),
        ("r9", r.r9),
        ("r10", r.r10),
        ("r11", r.r11),
        ("r12", r.r12),
        ("r13", r.r13),
        ("r14", r.r14),
        ("r15", r.r15),
    ];
    let mut s = String::new();
    for chunk in regs.chunks(4) {
        s.push(' ');
        for (name, v) in chunk {
            let _ = write!(s, " {name:>6} {v:#018x}");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_window_faults_name_the_object() {
        use crate::objects::Occupant;
        let at = abi::memmap::slot_addr(2) + 0x1234;
        let id = abi::id::ObjId::from_u128(0xab);
        let ro = Some(Occupant {
            id,
            writable: false,
        });
        let k = object_fault(at, true, |_| ro).unwrap();
        assert_eq!(
            headline(&k),
            format!("write to read-only object {id} at offset 0x1234")
        );
        assert_eq!(object_fault(at, false, |_| ro), None, "reads are fine");
        let k = object_fault(at, false, |_| None).unwrap();
        assert_eq!(
            headline(&k),
            format!("access to unmapped object slot 2 at {at:#x}")
        );
        assert_eq!(object_fault(0x1000, true, |_| None), None, "not the window");
    }

    #[test]
    fn headlines_name_the_fault() {
        let pf = FaultKind::Exception {
            vector: 14,
            error_code: Some(4),
            cr2: 0,
        };
        assert_eq!(
            headline(&pf),
            "page fault at address 0x0000000000000000 (read, user mode, page not present)"
        );
        let gp = FaultKind::Exception {
            vector: 13,
            error_code: Some(0),
            cr2: 0,
        };
        assert_eq!(
            headline(&gp),
            "general protection fault (vector 13, error code 0x0)"
        );
        let ud = FaultKind::Exception {
            vector: 6,
            error_code: None,
            cr2: 0,
        };
        assert_eq!(headline(&ud), "invalid opcode (vector 6)");
        let de = FaultKind::Exception {
            vector: 0,
            error_code: None,
            cr2: 0,
        };
        assert_eq!(headline(&de), "divide error (vector 0)");
        assert!(headline(&FaultKind::StackOverflow { addr: 0x10 }).starts_with("stack overflow"));
        assert!(headline(&FaultKind::TripleFault).starts_with("triple fault"));
        assert_eq!(
            page_fault_cause(7),
            "write, user mode, protection violation"
        );
        assert_eq!(
            page_fault_cause(0x15),
            "instruction fetch, user mode, protection violation"
        );
    }

    #[test]
    fn reads_frames_only_from_the_cpl0_stacks() {
        let ram = crate::memory::GuestRam::new(16 << 20).unwrap();
        let m = ram.mem();
        let rsp = crate::arch::layout::KSTACK_TOP - 56;
        for (i, v) in [1u64, 6, 0x20_0000, 0x23, 0x202, 0x7f_fff8, 0x1b]
            .iter()
            .enumerate()
        {
            m.write_obj(*v, GuestAddress(rsp + i as u64 * 8)).unwrap();
        }
        let f = read_frame(m, rsp, 14).unwrap();
        assert_eq!(
            (f.rax, f.error_code, f.rip, f.rsp),
            (1, Some(6), 0x20_0000, 0x7f_fff8)
        );
        let f = read_frame(m, rsp, 6).unwrap();
        assert_eq!((f.error_code, f.rip), (None, 6));
        assert!(read_frame(m, 0x20_0000, 14).is_none());
        assert!(read_frame(m, u64::MAX - 8, 14).is_none());
    }
}
