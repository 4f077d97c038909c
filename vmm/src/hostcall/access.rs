//! Which guest ranges a host call may read or write on the guest's behalf.
//!
//! A host call must never reach what the guest itself cannot: the VMM would otherwise be a
//! confused deputy (a `READ` into the page tables would hand the guest the machine). So a buffer
//! is accepted only if it lies wholly inside one user-accessible region with the right rights:
//! the null page, the system area, the stack guard and everything beyond RAM are refused.

use abi::hostcall::errno::{EFAULT, EINVAL};
use abi::memmap::{
    ARGS_ADDR, ARGS_SIZE, BOOT_INFO_ADDR, HOSTCALL_BLOCK_ADDR, IMAGE_BASE, PAGE_SIZE, RING_ADDR,
    RING_SIZE,
};

use crate::boot::RamPlan;

/// Largest buffer one host call or ring submission may name.
pub const MAX_IO_LEN: u64 = 1 << 20;

/// The guest's user-accessible regions and their rights.
#[derive(Debug, Clone)]
pub struct GuestAccess {
    /// (start, end, writable)
    regions: Vec<(u64, u64, bool)>,
}

impl GuestAccess {
    /// The regions of the memory map for a RAM plan.
    pub fn new(plan: &RamPlan) -> Self {
        GuestAccess {
            regions: vec![
                (BOOT_INFO_ADDR, BOOT_INFO_ADDR + PAGE_SIZE, false),
                (HOSTCALL_BLOCK_ADDR, HOSTCALL_BLOCK_ADDR + PAGE_SIZE, true),
                (RING_ADDR, RING_ADDR + RING_SIZE, true),
                (ARGS_ADDR, ARGS_ADDR + ARGS_SIZE, false),
                (IMAGE_BASE, plan.guard_start, true),
                (plan.stack_bottom, plan.stack_top, true),
            ],
        }
    }

    /// Checks `[addr, addr + len)` for a read (or a write) by the VMM on the guest's behalf.
    /// Returns the negated errno to hand back on failure.
    pub fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), i64> {
        if len > MAX_IO_LEN {
            return Err(-EINVAL);
        }
        let end = addr.checked_add(len).ok_or(-EFAULT)?;
        let ok = self
            .regions
            .iter()
            .any(|&(s, e, w)| addr >= s && end <= e && (w || !write));
        if ok {
            Ok(())
        } else {
            Err(-EFAULT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> GuestAccess {
        GuestAccess::new(&RamPlan::new(64 << 20).unwrap())
    }

    #[test]
    fn accepts_user_memory() {
        let a = access();
        assert_eq!(a.check(IMAGE_BASE, 4096, true), Ok(()));
        assert_eq!(a.check((64 << 20) - 16, 16, true), Ok(()), "top of stack");
        assert_eq!(a.check(BOOT_INFO_ADDR, 240, false), Ok(()));
        assert_eq!(a.check(RING_ADDR, RING_SIZE, true), Ok(()));
    }

    #[test]
    fn refuses_what_the_guest_cannot_touch() {
        let a = access();
        let plan = RamPlan::new(64 << 20).unwrap();
        assert_eq!(a.check(0, 8, false), Err(-EFAULT), "null page");
        assert_eq!(a.check(8, 8, false), Err(-EFAULT), "null page");
        assert_eq!(a.check(0x10_0000, 8, false), Err(-EFAULT), "system area");
        assert_eq!(
            a.check(plan.guard_start, 8, false),
            Err(-EFAULT),
            "stack guard"
        );
        assert_eq!(a.check(64 << 20, 1, false), Err(-EFAULT), "past RAM");
        assert_eq!(
            a.check((64 << 20) - 4, 8, false),
            Err(-EFAULT),
            "straddles the end"
        );
        assert_eq!(a.check(u64::MAX - 2, 8, false), Err(-EFAULT), "wraps");
        assert_eq!(
            a.check(IMAGE_BASE, MAX_IO_LEN + 1, false),
            Err(-EINVAL),
            "huge"
        );
        assert_eq!(
            a.check(BOOT_INFO_ADDR, 8, true),
            Err(-EFAULT),
            "read-only page"
        );
        assert_eq!(a.check(ARGS_ADDR, 8, true), Err(-EFAULT), "read-only args");
        assert_eq!(
            a.check(RING_ADDR - 8, 16, true),
            Err(-EFAULT),
            "spans two regions"
        );
    }
}
