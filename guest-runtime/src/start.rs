//! What makes a guest image run: the ELF entry point, the hand-off to the program's `main`, the
//! panic handler and the symbols the prebuilt `core` expects. Only built with the `guest`
//! feature, because on the host these belong to std.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::boot::BootInfo;

use crate::console::FixedBuf;

// The entry point. The VMM enters at CPL3 with `rdi` = BootInfo and a stack; we clear the frame
// pointer so backtraces end here, align the stack for the call, and never return.
core::arch::global_asm!(
    ".pushsection .text._start, \"ax\", @progbits",
    ".globl _start",
    ".type _start, @function",
    "_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {start}",
    "    ud2",
    ".size _start, . - _start",
    ".popsection",
    start = sym start,
);

extern "Rust" {
    /// The program's main, defined by [`crate::entry!`].
    fn __twz_main() -> i32;
}

/// Exit status when the boot information is unusable (the runtime and VMM disagree on the ABI).
const BAD_BOOT_STATUS: i32 = 125;

extern "C" fn start(info: *const BootInfo) -> ! {
    // SAFETY: the VMM passes its boot page, which stays mapped and unchanged for the run.
    if unsafe { crate::boot::init(info) }.is_err() {
        exit_without_boot_info(BAD_BOOT_STATUS);
    }
    let b = crate::boot::info();
    if let Some(mut heap) = crate::heap::global::HEAP.try_lock() {
        // SAFETY: the VMM reserves [heap_start, heap_end) of guest RAM for the heap, and nothing
        // else in the guest uses it.
        unsafe { heap.init(b.heap_start as usize, b.heap_end as usize) };
    }
    // SAFETY: the ring area from the boot page, used only through the runtime's `io` module.
    unsafe { crate::io::init(b.ring) };
    if avx_usable() {
        // SAFETY: the CPU reports AVX and XCR0 has its state on (checked just now).
        unsafe { twz_cmem::enable_avx() };
    }
    // SAFETY: `entry!` defines `__twz_main` with this signature; a program without it fails to link.
    let code = unsafe { __twz_main() };
    crate::exit(code)
}

/// Whether AVX works here: CPUID reports AVX and OSXSAVE, and XCR0 enables the SSE and AVX
/// state. (Guest code at CPL3 sees the host's CPUID and XCR0 on this kind of KVM, whatever the
/// VMM's `KVM_SET_CPUID2` said; where CPUID is virtualised it answers for the guest.)
fn avx_usable() -> bool {
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU and only writes the output registers.
    let leaf1 = unsafe { core::arch::x86_64::__cpuid(1) };
    if leaf1.ecx & (OSXSAVE | AVX) != OSXSAVE | AVX {
        return false;
    }
    let xcr0_low: u32;
    // SAFETY: OSXSAVE is set, so XGETBV is enabled at every privilege level; it reads XCR0
    // into eax:edx and touches nothing else.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") xcr0_low, out("edx") _,
                         options(nomem, nostack, preserves_flags));
    }
    xcr0_low & 0b110 == 0b110
}

/// Ends the run through vCPU 0's request block at its fixed address, for when the boot page
/// cannot be trusted to say where the block is.
fn exit_without_boot_info(code: i32) -> ! {
    let block = abi::memmap::HOSTCALL_BLOCK_ADDR as *mut abi::hostcall::HostCall;
    let call = abi::hostcall::HostCall {
        nr: abi::hostcall::nr::EXIT,
        args: [code as u64, 0, 0, 0, 0, 0],
        ret: 0,
    };
    // SAFETY: the memory map fixes vCPU 0's request block at this address; it is ours to fill.
    unsafe {
        core::ptr::write_volatile(block, call);
        crate::hostcall::ring_sync_doorbell(block as u64);
    }
    // Only reached if the VMM did not end the run: the fault report will show where we are.
    crate::hostcall::exit_now(code)
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        // A panic while reporting one: report the fact without formatting anything.
        crate::hostcall::panic(b"panic while panicking", b"", 0, 0);
    }
    let mut msg = FixedBuf::<1024>::new();
    let _ = write!(msg, "{}", info.message());
    // Let the output that led here reach the terminal before the report.
    crate::io::flush();
    let (file, line, col) = match info.location() {
        Some(l) => (l.file(), l.line(), l.column()),
        None => ("<unknown>", 0, 0),
    };
    crate::hostcall::panic(msg.as_bytes(), file.as_bytes(), line, col)
}

/// The prebuilt `core` references this even with `panic=abort`; nothing unwinds.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// The landing pads of the prebuilt `alloc` (for example in `String::from_utf8_lossy`) call this.
/// With `panic=abort` nothing unwinds, so it is never reached; if it were, the run ends as a panic.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::hostcall::panic(b"unwinding is not supported (panic=abort)", b"", 0, 0)
}
