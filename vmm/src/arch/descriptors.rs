//! GDT, TSS, IDT and the CPL0 fault stubs.
//!
//! Every exception vector points at an 8-byte stub: `push rax; mov al, VEC; out FAULT_PORT, al;
//! hlt`. Four emulated instructions (~3 us under PVM) and one port-I/O exit; the VMM then reads
//! the saved `rax` and the CPU's exception frame from the CPL0 stack, and CR2 from the sregs.
//! Exceptions from CPL3 land on the TSS `rsp0` stack; a double fault uses its own IST stack.

use abi::memmap::FAULT_PORT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{
    DF_STACK_TOP, GDT, IDT, IDT_ENTRIES, KSTACK_TOP, SEL_KCODE, STUBS, STUB_SIZE, TSS, TSS_SIZE,
};
use super::ArchError;

/// 64-bit kernel code (DPL 0).
pub const KCODE: u64 = 0x00AF_9A00_0000_FFFF;
/// Kernel data (DPL 0).
pub const KDATA: u64 = 0x00CF_9200_0000_FFFF;
/// User data (DPL 3).
pub const UDATA: u64 = 0x00CF_F200_0000_FFFF;
/// 64-bit user code (DPL 3).
pub const UCODE: u64 = 0x00AF_FA00_0000_FFFF;
/// Type of a busy 64-bit TSS (the state after `ltr`, which the vCPU starts in).
pub const TSS_TYPE_BUSY: u8 = 0xB;

/// The two GDT words of a 64-bit TSS descriptor.
pub const fn tss_descriptor(base: u64, limit: u32) -> [u64; 2] {
    let low = (limit as u64 & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | ((0x80 | TSS_TYPE_BUSY as u64) << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    [low, base >> 32]
}

/// The GDT: null, kernel code/data, user data/code, TSS.
pub fn gdt() -> [u64; 7] {
    let [tss_lo, tss_hi] = tss_descriptor(TSS, TSS_SIZE as u32 - 1);
    [0, KCODE, KDATA, UDATA, UCODE, tss_lo, tss_hi]
}

/// The 104-byte TSS: `rsp0` for exceptions from CPL3, `ist1` for double faults, no I/O bitmap.
pub fn tss() -> [u8; TSS_SIZE as usize] {
    let mut t = [0u8; TSS_SIZE as usize];
    t[4..12].copy_from_slice(&KSTACK_TOP.to_le_bytes());
    t[36..44].copy_from_slice(&DF_STACK_TOP.to_le_bytes());
    t[102..104].copy_from_slice(&(TSS_SIZE as u16).to_le_bytes());
    t
}

/// Vectors whose exception frame carries an error code.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// One 16-byte interrupt gate (DPL 0, so `int n` from CPL3 is a #GP, not a fake exception).
pub const fn idt_gate(handler: u64, ist: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    let sel = SEL_KCODE.to_le_bytes();
    g[0] = handler as u8;
    g[1] = (handler >> 8) as u8;
    g[2] = sel[0];
    g[3] = sel[1];
    g[4] = ist & 7;
    g[5] = 0x8E;
    g[6] = (handler >> 16) as u8;
    g[7] = (handler >> 24) as u8;
    g[8] = (handler >> 32) as u8;
    g[9] = (handler >> 40) as u8;
    g[10] = (handler >> 48) as u8;
    g[11] = (handler >> 56) as u8;
    g
}

/// The IDT: vector `v` enters the stub at `STUBS + v * STUB_SIZE`.
pub fn idt() -> Vec<u8> {
    (0..IDT_ENTRIES)
        .flat_map(|v| idt_gate(STUBS + v * STUB_SIZE, if v == 8 { 1 } else { 0 }))
        .collect()
}

/// The stub of one vector: `push rax; mov al, v; out FAULT_PORT, al; hlt; hlt; hlt`.
pub const fn stub(vector: u8) -> [u8; STUB_SIZE as usize] {
    [0x50, 0xB0, vector, 0xE6, FAULT_PORT as u8, 0xF4, 0xF4, 0xF4]
}

/// Writes GDT, TSS, IDT and stubs into guest memory.
pub fn build(mem: &GuestMemoryMmap) -> Result<(), ArchError> {
    let w = |what: &'static str, bytes: &[u8], at: u64| {
        mem.write_slice(bytes, GuestAddress(at))
            .map_err(|error| ArchError::Write { what, error })
    };
    let gdt: Vec<u8> = gdt().iter().flat_map(|e| e.to_le_bytes()).collect();
    w("GDT", &gdt, GDT)?;
    w("TSS", &tss(), TSS)?;
    w("IDT", &idt(), IDT)?;
    let stubs: Vec<u8> = (0..IDT_ENTRIES as u8).flat_map(stub).collect();
    w("fault stubs", &stubs, STUBS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_descriptor_encodes_base_and_limit() {
        let [lo, hi] = tss_descriptor(0x1234_5678_9ABC_DEF0, 103);
        assert_eq!(lo & 0xFFFF, 103);
        assert_eq!((lo >> 16) & 0xFF_FFFF, 0xBC_DEF0);
        assert_eq!((lo >> 56) & 0xFF, 0x9A);
        assert_eq!((lo >> 40) & 0xFF, 0x8B, "present, busy 64-bit TSS");
        assert_eq!(hi, 0x1234_5678);
    }

    #[test]
    fn user_segments_are_dpl3() {
        assert_eq!((UCODE >> 45) & 3, 3);
        assert_eq!((UDATA >> 45) & 3, 3);
        assert_eq!((UCODE >> 53) & 1, 1, "long mode code");
        assert_eq!((KCODE >> 45) & 3, 0);
    }

    #[test]
    fn gates_point_at_stubs() {
        let idt = idt();
        assert_eq!(idt.len(), 32 * 16);
        let gate = |v: usize| &idt[v * 16..v * 16 + 16];
        let off = |g: &[u8]| {
            u64::from(u16::from_le_bytes([g[0], g[1]]))
                | u64::from(u16::from_le_bytes([g[6], g[7]])) << 16
                | u64::from(u32::from_le_bytes([g[8], g[9], g[10], g[11]])) << 32
        };
        assert_eq!(off(gate(14)), STUBS + 14 * STUB_SIZE);
        assert_eq!(gate(8)[4], 1, "#DF uses IST1");
        assert_eq!(gate(14)[4], 0);
        assert_eq!(gate(3)[5], 0x8E);
        assert_eq!(stub(14)[2], 14);
        assert_eq!(stub(14)[4], FAULT_PORT as u8);
    }

    #[test]
    fn tss_holds_the_stacks() {
        let t = tss();
        assert_eq!(u64::from_le_bytes(t[4..12].try_into().unwrap()), KSTACK_TOP);
        assert_eq!(
            u64::from_le_bytes(t[36..44].try_into().unwrap()),
            DF_STACK_TOP
        );
    }
}
