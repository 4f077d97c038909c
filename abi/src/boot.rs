//! What the VMM tells the guest at boot, at [`crate::memmap::BOOT_INFO_ADDR`].

/// `b"TWZBOOT\x01"` read little-endian.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"TWZBOOT\x01");
/// This layout's version.
pub const BOOT_VERSION: u32 = 1;

/// Durability modes a run can choose (`--durability`).
pub mod durability {
    /// Commits do not wait for anything.
    pub const NONE: u32 = 0;
    /// Each commit waits until its writes are durable.
    pub const COMMIT: u32 = 1;
    /// Commits are made durable in groups.
    pub const GROUP: u32 = 2;
}

/// Bits of [`BootInfo::flags`].
pub mod flags {
    /// Objects live on real persistent memory (mapped `MAP_SYNC`): a guest makes its stores
    /// durable with `clwb` + `sfence` itself instead of asking the VMM to flush.
    pub const PMEM: u32 = 1 << 0;
    /// The VMM's standard input is a terminal (an interactive shell may prompt).
    pub const STDIN_IS_TTY: u32 = 1 << 1;
    /// The run has a stream device (`twz-vmm run --listen ADDR`): `NET_*` ring operations work.
    pub const NET_LISTEN: u32 = 1 << 2;
}

/// Boot information. All addresses are guest addresses.
///
/// On entry the guest's `rdi` holds [`crate::memmap::BOOT_INFO_ADDR`] and `rsp` the stack top
/// (16-byte aligned, as after a `call`: `rsp % 16 == 8`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// [`BOOT_VERSION`].
    pub version: u32,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest RAM size in bytes.
    pub mem_size: u64,
    /// First byte of the heap (2 MiB aligned, after the image).
    pub heap_start: u64,
    /// End of the heap (exclusive).
    pub heap_end: u64,
    /// Initial stack pointer's upper bound (top of the stack).
    pub stack_top: u64,
    /// Lowest stack address (the guard page lies just below).
    pub stack_bottom: u64,
    /// Number of arguments, including the program name.
    pub argc: u64,
    /// Address of `argc` pointers to NUL-terminated strings.
    pub argv: u64,
    /// Number of environment strings (`KEY=VALUE`).
    pub envc: u64,
    /// Address of `envc` pointers to NUL-terminated strings.
    pub envp: u64,
    /// vCPU 0's host-call block.
    pub hostcall_block: u64,
    /// The async ring's address.
    pub ring: u64,
    /// TSC frequency in Hz (0 if unknown).
    pub tsc_hz: u64,
    /// TSC value the wall/monotonic clocks below were sampled at.
    pub boot_tsc: u64,
    /// Wall clock at `boot_tsc`, nanoseconds since the Unix epoch.
    pub boot_wall_ns: u64,
    /// Base of the object window.
    pub obj_window: u64,
    /// Slots in the object window.
    pub obj_slots: u64,
    /// The run's durability mode ([`durability`]).
    pub durability: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Start of the loaded image.
    pub image_start: u64,
    /// End of the loaded image (exclusive, including BSS).
    pub image_end: u64,
    /// Reserved, zero.
    pub reserved: [u64; 9],
}
crate::assert_size!(BootInfo, 240);
