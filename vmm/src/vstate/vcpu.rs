//! The vCPU, entered directly at CPL3 in 64-bit mode.
//!
//! Paging, long mode, SSE and (when the host has them) XSAVE/AVX are on before the first
//! instruction; `rip` is the ELF entry, `rsp` the stack top minus 8 (as after a `call`), `rdi`
//! the boot info address. Registers are read from `kvm_run` (`KVM_CAP_SYNC_REGS`) on exits that
//! need them, so a host call costs no extra ioctl (each is ~5 us here).

use abi::memmap::BOOT_INFO_ADDR;
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs, kvm_xcrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};

use crate::arch::layout::{
    GDT, GDT_SIZE, IDT, IDT_ENTRIES, SEL_TSS, SEL_UCODE, SEL_UDATA, TSS, TSS_SIZE,
};

const CR0_PE: u64 = 1;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NX: u64 = 1 << 11;
/// x87, SSE and AVX state components of XCR0.
const XCR0_WANTED: u64 = 0b111;

/// Errors of creating and driving the vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A vCPU ioctl failed while setting it up.
    #[error("cannot set up the vCPU ({what}): {error}")]
    Setup {
        what: &'static str,
        error: kvm_ioctls::Error,
    },
    /// Reading registers after an exit failed.
    #[error("cannot read vCPU registers: {0}")]
    Regs(kvm_ioctls::Error),
}

fn setup(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VcpuError {
    move |error| VcpuError::Setup { what, error }
}

/// The one vCPU of a VM.
pub struct Vcpu {
    fd: VcpuFd,
    sync_regs: bool,
}

/// A flat 64-bit segment with the given selector and type.
fn segment(selector: u16, type_: u8, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_,
        present: 1,
        dpl: (selector & 3) as u8,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Control registers and segments for CPL3 long mode with the VMM's GDT/IDT/TSS.
pub fn long_mode_sregs(mut s: kvm_sregs, cr3: u64, xsave: bool) -> kvm_sregs {
    s.cs = segment(SEL_UCODE, 0xB, true);
    let data = segment(SEL_UDATA, 0x3, false);
    (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
    s.tr = kvm_segment {
        base: TSS,
        limit: TSS_SIZE as u32 - 1,
        selector: SEL_TSS,
        type_: crate::arch::descriptors::TSS_TYPE_BUSY,
        present: 1,
        ..Default::default()
    };
    s.ldt = kvm_segment {
        type_: 2,
        present: 1,
        unusable: 1,
        ..Default::default()
    };
    s.gdt.base = GDT;
    s.gdt.limit = GDT_SIZE as u16 - 1;
    s.idt.base = IDT;
    s.idt.limit = (IDT_ENTRIES * 16) as u16 - 1;
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.cr3 = cr3;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | if xsave { CR4_OSXSAVE } else { 0 };
    s.efer = EFER_LME | EFER_LMA | EFER_NX;
    s
}

impl Vcpu {
    /// Creates vCPU 0 ready to enter `entry` at CPL3 with the stack at `stack_top`.
    pub fn new(
        kvm: &Kvm,
        vm: &VmFd,
        entry: u64,
        stack_top: u64,
        cr3: u64,
    ) -> Result<Self, VcpuError> {
        let mut fd = vm.create_vcpu(0).map_err(setup("create"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(setup("cpuid"))?;
        let xsave = cpuid
            .as_slice()
            .iter()
            .any(|e| e.function == 1 && e.ecx & (1 << 26) != 0);
        let xcr0_supported = cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == 0xD && e.index == 0)
            .map_or(0b11, |e| u64::from(e.eax));
        fd.set_cpuid2(&cpuid).map_err(setup("set cpuid"))?;

        let sregs = fd.get_sregs().map_err(setup("get sregs"))?;
        fd.set_sregs(&long_mode_sregs(sregs, cr3, xsave))
            .map_err(setup("set sregs"))?;
        if xsave {
            let mut xcrs = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            xcrs.xcrs[0].value = XCR0_WANTED & xcr0_supported | 1;
            fd.set_xcrs(&xcrs).map_err(setup("set xcr0"))?;
        }
        let regs = kvm_regs {
            rip: entry,
            rsp: stack_top - 8,
            rdi: BOOT_INFO_ADDR,
            rflags: 0x2,
            ..Default::default()
        };
        fd.set_regs(&regs).map_err(setup("set regs"))?;
        let sync_regs = kvm.check_extension(Cap::SyncRegs);
        if sync_regs {
            fd.set_sync_valid_reg(SyncReg::Register);
        }
        Ok(Vcpu { fd, sync_regs })
    }

    /// TSC frequency in Hz (0 if KVM does not know it).
    pub fn tsc_hz(&self) -> u64 {
        self.fd.get_tsc_khz().map_or(0, |k| u64::from(k) * 1000)
    }

    /// Runs until the next exit.
    pub fn run(&mut self) -> Result<VcpuExit<'_>, kvm_ioctls::Error> {
        self.fd.run()
    }

    /// General-purpose registers at the last exit (from `kvm_run` when sync regs are on).
    pub fn regs(&self) -> Result<kvm_regs, VcpuError> {
        if self.sync_regs {
            Ok(self.fd.sync_regs().regs)
        } else {
            self.fd.get_regs().map_err(VcpuError::Regs)
        }
    }

    /// System registers (an ioctl: only on faults).
    pub fn sregs(&self) -> Result<kvm_sregs, VcpuError> {
        self.fd.get_sregs().map_err(VcpuError::Regs)
    }

    /// `KVM_EXIT_INTERNAL_ERROR` suberror.
    pub fn internal_error(&mut self) -> u32 {
        // SAFETY: only called right after an INTERNAL_ERROR exit, when this union member is live.
        unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enters_cpl3_long_mode() {
        let s = long_mode_sregs(kvm_sregs::default(), 0x10_0000, true);
        assert_eq!(s.cs.selector & 3, 3);
        assert_eq!((s.cs.dpl, s.ss.dpl), (3, 3));
        assert_eq!(s.cs.l, 1);
        assert_ne!(s.cr0 & CR0_PG, 0);
        assert_ne!(s.cr4 & CR4_OSFXSR, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cr3, 0x10_0000);
    }
}
