//! What the guest finds at boot: the RAM plan (image, heap, guard, stack), the argument area and
//! [`abi::boot::BootInfo`].
//!
//! Arguments: `argv[0]` is the image name, then the arguments given after `--`. Environment: none
//! is passed (`envc = 0`); the guest learns everything else from `BootInfo`.
//!
//! The argument area (`ARGS_ADDR`, user read-only) holds `argv[argc + 1]` (NULL-terminated), then
//! `envp[envc + 1]`, then the NUL-terminated strings.

use std::mem::offset_of;

use abi::boot::{BootInfo, BOOT_MAGIC, BOOT_VERSION};
use abi::memmap::{
    ARGS_ADDR, ARGS_SIZE, BOOT_INFO_ADDR, DEFAULT_STACK_SIZE, HOSTCALL_BLOCK_ADDR, LARGE_PAGE_SIZE,
    OBJ_SLOTS, OBJ_WINDOW_BASE, RING_ADDR, STACK_GUARD_SIZE,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Errors of preparing the guest's boot data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootError {
    /// argv + envp do not fit the argument area.
    #[error("arguments need {need} bytes but the argument area holds {ARGS_SIZE}")]
    ArgsTooLarge { need: u64 },
    /// An argument holds a NUL byte.
    #[error("argument {0} contains a NUL byte")]
    NulInArgument(usize),
    /// Guest RAM too small for stack and guard.
    #[error("guest memory of {0} bytes leaves no room for the stack")]
    NoRoomForStack(u64),
    /// Writing into guest memory failed.
    #[error("cannot write boot data into guest memory: {0}")]
    Write(String),
}

/// Where image, heap, guard and stack lie in guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamPlan {
    /// RAM size.
    pub mem_size: u64,
    /// Top of the stack (= end of RAM).
    pub stack_top: u64,
    /// Lowest stack address.
    pub stack_bottom: u64,
    /// Start of the unmapped guard (its end is `stack_bottom`).
    pub guard_start: u64,
}

impl RamPlan {
    /// Stack at the top of RAM, 2 MiB guard below it.
    pub fn new(mem_size: u64) -> Result<Self, BootError> {
        let stack_bottom = mem_size
            .checked_sub(DEFAULT_STACK_SIZE)
            .ok_or(BootError::NoRoomForStack(mem_size))?;
        let guard_start = stack_bottom
            .checked_sub(STACK_GUARD_SIZE)
            .filter(|g| *g >= abi::memmap::IMAGE_BASE)
            .ok_or(BootError::NoRoomForStack(mem_size))?;
        Ok(RamPlan {
            mem_size,
            stack_top: mem_size,
            stack_bottom,
            guard_start,
        })
    }

    /// The highest address an image may end at (the heap then starts at the guard).
    pub fn image_limit(&self) -> u64 {
        self.guard_start
    }

    /// Heap start for an image ending at `image_end`: the next 2 MiB boundary.
    pub fn heap_start(&self, image_end: u64) -> u64 {
        image_end
            .next_multiple_of(LARGE_PAGE_SIZE)
            .min(self.guard_start)
    }

    /// The guard range, unmapped in the page tables.
    pub fn guard(&self) -> std::ops::Range<u64> {
        self.guard_start..self.stack_bottom
    }
}

/// The packed argument area and the guest addresses of its arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedArgs {
    /// Bytes to write at `ARGS_ADDR`.
    pub bytes: Vec<u8>,
    /// Address of argv.
    pub argv: u64,
    /// Number of arguments.
    pub argc: u64,
    /// Address of envp.
    pub envp: u64,
    /// Number of environment strings.
    pub envc: u64,
}

/// Lays out `argv` and `envp` for the argument area at `base`.
pub fn pack_args(base: u64, argv: &[String], envp: &[String]) -> Result<PackedArgs, BootError> {
    if let Some(i) = argv
        .iter()
        .chain(envp)
        .position(|a| a.as_bytes().contains(&0))
    {
        return Err(BootError::NulInArgument(i));
    }
    let ptrs = (argv.len() + 1 + envp.len() + 1) as u64 * 8;
    let strings: u64 = argv.iter().chain(envp).map(|s| s.len() as u64 + 1).sum();
    let need = ptrs + strings;
    if need > ARGS_SIZE {
        return Err(BootError::ArgsTooLarge { need });
    }
    let mut table = Vec::with_capacity(ptrs as usize);
    let mut text = Vec::with_capacity(strings as usize);
    let mut push_list = |list: &[String], table: &mut Vec<u8>| {
        for s in list {
            let addr = base + ptrs + text.len() as u64;
            table.extend_from_slice(&addr.to_le_bytes());
            text.extend_from_slice(s.as_bytes());
            text.push(0);
        }
        table.extend_from_slice(&0u64.to_le_bytes());
    };
    push_list(argv, &mut table);
    push_list(envp, &mut table);
    table.extend_from_slice(&text);
    Ok(PackedArgs {
        bytes: table,
        argv: base,
        argc: argv.len() as u64,
        envp: base + (argv.len() as u64 + 1) * 8,
        envc: envp.len() as u64,
    })
}

/// Serializes `BootInfo` in its `#[repr(C)]` layout.
pub fn encode_boot_info(b: &BootInfo) -> [u8; std::mem::size_of::<BootInfo>()] {
    let mut out = [0u8; std::mem::size_of::<BootInfo>()];
    let mut put = |off: usize, bytes: &[u8]| out[off..off + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(BootInfo, magic), &b.magic.to_le_bytes());
    put(offset_of!(BootInfo, version), &b.version.to_le_bytes());
    put(offset_of!(BootInfo, vcpus), &b.vcpus.to_le_bytes());
    put(offset_of!(BootInfo, mem_size), &b.mem_size.to_le_bytes());
    put(
        offset_of!(BootInfo, heap_start),
        &b.heap_start.to_le_bytes(),
    );
    put(offset_of!(BootInfo, heap_end), &b.heap_end.to_le_bytes());
    put(offset_of!(BootInfo, stack_top), &b.stack_top.to_le_bytes());
    put(
        offset_of!(BootInfo, stack_bottom),
        &b.stack_bottom.to_le_bytes(),
    );
    put(offset_of!(BootInfo, argc), &b.argc.to_le_bytes());
    put(offset_of!(BootInfo, argv), &b.argv.to_le_bytes());
    put(offset_of!(BootInfo, envc), &b.envc.to_le_bytes());
    put(offset_of!(BootInfo, envp), &b.envp.to_le_bytes());
    put(
        offset_of!(BootInfo, hostcall_block),
        &b.hostcall_block.to_le_bytes(),
    );
    put(offset_of!(BootInfo, ring), &b.ring.to_le_bytes());
    put(offset_of!(BootInfo, tsc_hz), &b.tsc_hz.to_le_bytes());
    put(offset_of!(BootInfo, boot_tsc), &b.boot_tsc.to_le_bytes());
    put(
        offset_of!(BootInfo, boot_wall_ns),
        &b.boot_wall_ns.to_le_bytes(),
    );
    put(
        offset_of!(BootInfo, obj_window),
        &b.obj_window.to_le_bytes(),
    );
    put(offset_of!(BootInfo, obj_slots), &b.obj_slots.to_le_bytes());
    put(
        offset_of!(BootInfo, durability),
        &b.durability.to_le_bytes(),
    );
    put(offset_of!(BootInfo, flags), &b.flags.to_le_bytes());
    put(
        offset_of!(BootInfo, image_start),
        &b.image_start.to_le_bytes(),
    );
    put(offset_of!(BootInfo, image_end), &b.image_end.to_le_bytes());
    out
}

/// Clock values handed to the guest.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootClock {
    /// TSC frequency in Hz, 0 if unknown.
    pub tsc_hz: u64,
    /// Host TSC at sampling (the guest's `rdtsc` reads the same clock).
    pub boot_tsc: u64,
    /// Wall clock at sampling, ns since the Unix epoch.
    pub boot_wall_ns: u64,
}

impl BootClock {
    /// Samples the TSC and the wall clock together.
    pub fn sample(tsc_hz: u64) -> Self {
        // SAFETY: rdtsc has no memory effects; every x86-64 CPU has it.
        let boot_tsc = unsafe { core::arch::x86_64::_rdtsc() };
        let boot_wall_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        BootClock {
            tsc_hz,
            boot_tsc,
            boot_wall_ns,
        }
    }
}

/// The run's choices the guest is told about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BootMode {
    /// `abi::boot::durability`.
    pub durability: u32,
    /// `abi::boot::flags`.
    pub flags: u32,
}

/// Writes the argument area and `BootInfo`.
pub fn write_boot_data(
    mem: &GuestMemoryMmap,
    plan: &RamPlan,
    image: (u64, u64),
    args: &PackedArgs,
    clock: BootClock,
    mode: BootMode,
) -> Result<(), BootError> {
    let info = BootInfo {
        magic: BOOT_MAGIC,
        version: BOOT_VERSION,
        vcpus: 1,
        mem_size: plan.mem_size,
        heap_start: plan.heap_start(image.1),
        heap_end: plan.guard_start,
        stack_top: plan.stack_top,
        stack_bottom: plan.stack_bottom,
        argc: args.argc,
        argv: args.argv,
        envc: args.envc,
        envp: args.envp,
        hostcall_block: HOSTCALL_BLOCK_ADDR,
        ring: RING_ADDR,
        tsc_hz: clock.tsc_hz,
        boot_tsc: clock.boot_tsc,
        boot_wall_ns: clock.boot_wall_ns,
        obj_window: OBJ_WINDOW_BASE,
        obj_slots: OBJ_SLOTS,
        durability: mode.durability,
        flags: mode.flags,
        image_start: image.0,
        image_end: image.1,
        reserved: [0; 9],
    };
    let w = |bytes: &[u8], at: u64| {
        mem.write_slice(bytes, GuestAddress(at))
            .map_err(|e| BootError::Write(e.to_string()))
    };
    w(&args.bytes, ARGS_ADDR)?;
    w(&encode_boot_info(&info), BOOT_INFO_ADDR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_argv_with_null_terminators() {
        let argv = vec!["hello".to_string(), "alice".to_string()];
        let p = pack_args(ARGS_ADDR, &argv, &[]).unwrap();
        assert_eq!((p.argc, p.envc), (2, 0));
        let word = |i: usize| u64::from_le_bytes(p.bytes[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!(word(2), 0, "argv is NULL-terminated");
        assert_eq!(word(3), 0, "empty envp");
        assert_eq!(p.envp, ARGS_ADDR + 24);
        let s0 = (word(0) - ARGS_ADDR) as usize;
        assert_eq!(&p.bytes[s0..s0 + 6], b"hello\0");
        let s1 = (word(1) - ARGS_ADDR) as usize;
        assert_eq!(&p.bytes[s1..s1 + 6], b"alice\0");
    }

    #[test]
    fn refuses_oversized_or_nul_arguments() {
        let big = vec!["x".repeat(ARGS_SIZE as usize)];
        assert!(matches!(
            pack_args(ARGS_ADDR, &big, &[]),
            Err(BootError::ArgsTooLarge { .. })
        ));
        let nul = vec!["a\0b".to_string()];
        assert_eq!(
            pack_args(ARGS_ADDR, &nul, &[]),
            Err(BootError::NulInArgument(0))
        );
    }

    #[test]
    fn plans_stack_guard_and_heap() {
        let p = RamPlan::new(128 << 20).unwrap();
        assert_eq!(p.stack_top, 128 << 20);
        assert_eq!(p.stack_bottom, (128 << 20) - DEFAULT_STACK_SIZE);
        assert_eq!(
            p.guard(),
            (p.stack_bottom - STACK_GUARD_SIZE)..p.stack_bottom
        );
        assert_eq!(p.heap_start(0x20_1234), 0x40_0000);
        assert_eq!(p.heap_start(0x40_0000), 0x40_0000);
        assert!(RamPlan::new(8 << 20).is_err());
    }

    #[test]
    fn boot_info_encoding_matches_the_struct_layout() {
        let b = BootInfo {
            magic: BOOT_MAGIC,
            image_end: 0x1234,
            durability: 2,
            ..Default::default()
        };
        let e = encode_boot_info(&b);
        assert_eq!(&e[..8], b"TWZBOOT\x01");
        assert_eq!(u64::from_le_bytes(e[160..168].try_into().unwrap()), 0x1234);
        assert_eq!(u32::from_le_bytes(e[144..148].try_into().unwrap()), 2);
    }
}
