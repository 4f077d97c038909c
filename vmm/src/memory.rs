//! Guest RAM: one anonymous private mapping with transparent huge pages, at guest physical 0.
//!
//! Private anonymous memory with `MADV_HUGEPAGE`, mapped by 2 MiB guest pages, is the fastest
//! memory PVM offers here (0.18 us per first touch of a 4 KiB page against 4.5 us for shared
//! memory). Nothing is prefaulted: a guest pays only for the pages it touches.

use abi::memmap::{LARGE_PAGE_SIZE, MAX_MEM_SIZE, MIN_MEM_SIZE};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::arch::layout::MAX_MAPPABLE_RAM;

/// Errors of sizing and mapping guest RAM.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemoryError {
    /// The size string is not a number with an optional K/M/G suffix.
    #[error("invalid memory size {0:?}: expected a number with an optional K, M or G suffix (e.g. 128M)")]
    BadSize(String),
    /// Smaller than the minimum.
    #[error("memory size {0} bytes is too small: the minimum is {min} MiB", min = MIN_MEM_SIZE >> 20)]
    TooSmall(u64),
    /// Larger than the maximum.
    #[error("memory size {0} bytes is too large: the maximum is {max} GiB", max = max_mem_size() >> 30)]
    TooLarge(u64),
    /// Not a multiple of 2 MiB.
    #[error("memory size {0} bytes is not a multiple of 2 MiB")]
    Unaligned(u64),
    /// The host refused the mapping.
    #[error("cannot map {size} bytes of guest memory: {reason}")]
    Map { size: u64, reason: String },
}

/// The largest guest RAM accepted: the ABI's bound, or what the VMM's page tables can map.
pub const fn max_mem_size() -> u64 {
    if MAX_MAPPABLE_RAM < MAX_MEM_SIZE {
        MAX_MAPPABLE_RAM
    } else {
        MAX_MEM_SIZE
    }
}

/// Parses a memory size such as `128M`, `1G`, `65536K` or `16777216` (bytes), case-insensitive.
pub fn parse_mem_size(text: &str) -> Result<u64, MemoryError> {
    let bad = || MemoryError::BadSize(text.to_string());
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => return Err(bad()),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or(MemoryError::TooLarge(u64::MAX))?;
    validate_mem_size(bytes)?;
    Ok(bytes)
}

/// Checks a guest RAM size against the bounds and the 2 MiB granule.
pub fn validate_mem_size(bytes: u64) -> Result<(), MemoryError> {
    if bytes < MIN_MEM_SIZE {
        return Err(MemoryError::TooSmall(bytes));
    }
    if bytes > max_mem_size() {
        return Err(MemoryError::TooLarge(bytes));
    }
    if !bytes.is_multiple_of(LARGE_PAGE_SIZE) {
        return Err(MemoryError::Unaligned(bytes));
    }
    Ok(())
}

/// Guest RAM, `[0, size)` in guest physical addresses.
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
}

impl GuestRam {
    /// Maps `size` bytes (validated) of fresh, zeroed RAM and asks for huge pages.
    pub fn new(size: u64) -> Result<Self, MemoryError> {
        validate_mem_size(size)?;
        let len = usize::try_from(size).map_err(|_| MemoryError::TooLarge(size))?;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)]).map_err(|e| {
            MemoryError::Map {
                size,
                reason: e.to_string(),
            }
        })?;
        let ram = GuestRam { mem, size };
        let host = ram.host_base();
        // SAFETY: `host` and `len` describe exactly the mapping that `mem` owns; MADV_HUGEPAGE
        // only changes how the kernel backs it, never its contents. Failure is harmless (no THP).
        unsafe {
            libc::madvise(host.cast(), len, libc::MADV_HUGEPAGE);
        }
        Ok(ram)
    }

    /// The vm-memory view, for checked accesses.
    pub fn mem(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of guest physical 0 (for the memslot).
    pub fn host_base(&self) -> *mut u8 {
        self.mem
            .iter()
            .next()
            .map_or(std::ptr::null_mut(), |r| r.as_ptr())
    }

    /// Host pages of guest RAM currently resident (4 KiB units), from `mincore(2)`.
    pub fn resident_pages(&self) -> Option<u64> {
        let page = 4096usize;
        let len = usize::try_from(self.size).ok()?;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: the range is our own live mapping; `vec` has one byte per page as mincore needs.
        let rc = unsafe { libc::mincore(self.host_base().cast(), len, vec.as_mut_ptr()) };
        (rc == 0).then(|| vec.iter().filter(|b| **b & 1 != 0).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_mem_size("128M"), Ok(128 << 20));
        assert_eq!(parse_mem_size("1g"), Ok(1 << 30));
        assert_eq!(parse_mem_size("32768K"), Ok(32 << 20));
        assert_eq!(parse_mem_size("16777216"), Ok(16 << 20));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(matches!(parse_mem_size(""), Err(MemoryError::BadSize(_))));
        assert!(matches!(
            parse_mem_size("12X"),
            Err(MemoryError::BadSize(_))
        ));
        assert!(matches!(
            parse_mem_size("-5M"),
            Err(MemoryError::BadSize(_))
        ));
        assert!(matches!(parse_mem_size("M"), Err(MemoryError::BadSize(_))));
        assert_eq!(parse_mem_size("1M"), Err(MemoryError::TooSmall(1 << 20)));
        assert_eq!(
            parse_mem_size("4096G"),
            Err(MemoryError::TooLarge(4096 << 30))
        );
        assert!(matches!(
            parse_mem_size("99999999999999999999G"),
            Err(MemoryError::BadSize(_) | MemoryError::TooLarge(_))
        ));
        assert_eq!(parse_mem_size("17M"), Err(MemoryError::Unaligned(17 << 20)));
    }

    #[test]
    fn maps_zeroed_ram() {
        use vm_memory::Bytes;
        let ram = GuestRam::new(16 << 20).unwrap();
        assert_eq!(ram.size(), 16 << 20);
        let v: u64 = ram.mem().read_obj(GuestAddress((16 << 20) - 8)).unwrap();
        assert_eq!(v, 0);
        assert!(ram.mem().read_obj::<u8>(GuestAddress(16 << 20)).is_err());
    }
}
