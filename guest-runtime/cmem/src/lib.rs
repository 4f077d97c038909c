//! The C memory and string functions freestanding code needs: `memcpy`, `memmove`, `memset`,
//! `memcmp`, `bcmp`, `strlen`.
//!
//! The prebuilt `compiler_builtins` does not export them under their C names, yet the compiler
//! emits calls to them (and C code such as SQLite calls them directly). This crate is
//! `#![no_builtins]` so the compiler does not turn the loops below back into calls to the very
//! functions they implement. The symbols are exported only with the `export` feature (set by guest
//! images); on the host they keep Rust names so unit tests do not replace libc's.
#![no_std]
#![no_builtins]

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst`; the ranges must not overlap.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes; `rep movsb` copies
    // forwards (the direction flag is clear per the ABI) and touches nothing else.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // `dst` is below `src` or past its end: a forward copy never reads a byte it wrote.
        // SAFETY: forwarded caller guarantee.
        return unsafe { memcpy(dst, src, n) };
    }
    // Overlap with `dst` above `src`: copy backwards, last byte first.
    let mut i = n;
    while i > 0 {
        i -= 1;
        // SAFETY: `i < n`, inside both ranges the caller vouched for.
        unsafe { *dst.add(i) = *src.add(i) };
    }
    dst
}

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// `dst` must be writable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dst` is writable for `n` bytes; `rep stosb` stores forwards.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// Compares `n` bytes; negative, zero or positive like C's `memcmp`. Eight bytes at a time: SQLite
/// compares keys and records with it constantly.
///
/// # Safety
/// Both pointers must be readable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, inside both ranges the caller vouched for; unaligned reads.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<u64>().read_unaligned(),
                b.add(i).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            // Read big-endian, the first differing byte is the most significant one.
            return if u64::from_be(x) < u64::from_be(y) {
                -1
            } else {
                1
            };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`, inside both ranges the caller vouched for.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

/// Like [`memcmp`] but only tells equal (0) from different (non-zero).
///
/// # Safety
/// Both pointers must be readable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded caller guarantee.
    unsafe { memcmp(a, b, n) }
}

/// The length of the NUL-terminated string at `s`.
///
/// # Safety
/// `s` must point to a readable NUL-terminated string.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to and including the terminator is readable (caller guarantee).
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_and_fill() {
        let src: [u8; 37] = core::array::from_fn(|i| i as u8 + 1);
        let mut dst = [0u8; 37];
        // SAFETY: both arrays are 37 bytes.
        unsafe { memcpy(dst.as_mut_ptr(), src.as_ptr(), 37) };
        assert_eq!(dst, src);
        // SAFETY: 10 bytes starting at index 5 are inside the array.
        unsafe { memset(dst.as_mut_ptr().add(5), 0x1ab, 10) };
        assert_eq!(&dst[5..15], &[0xab; 10]);
        assert_eq!(dst[4], 5);
        assert_eq!(dst[15], 16);
    }

    #[test]
    fn move_handles_overlap_both_ways() {
        let mut buf: [u8; 16] = core::array::from_fn(|i| i as u8);
        let p = buf.as_mut_ptr();
        // SAFETY: both ranges [2, 12) and [0, 10) are inside the 16-byte array.
        unsafe { memmove(p.add(2), p, 10) };
        assert_eq!(&buf[..12], &[0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut buf: [u8; 16] = core::array::from_fn(|i| i as u8);
        let p = buf.as_mut_ptr();
        // SAFETY: both ranges are inside the array.
        unsafe { memmove(p, p.add(3), 10) };
        assert_eq!(&buf[..10], &[3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn compare_agrees_with_slices_at_every_position() {
        let base: [u8; 40] = core::array::from_fn(|i| (i * 7) as u8);
        for len in 0..40 {
            for at in 0..len {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base;
                    other[at] = other[at].wrapping_add(delta);
                    // SAFETY: both arrays hold at least `len` bytes.
                    let got = unsafe { memcmp(base.as_ptr(), other.as_ptr(), len) };
                    let want = base[..len].cmp(&other[..len]) as i32;
                    assert_eq!(got.signum(), want, "len {len}, differs at {at} by {delta}");
                }
            }
            // SAFETY: as above.
            assert_eq!(unsafe { memcmp(base.as_ptr(), base.as_ptr(), len) }, 0);
        }
    }

    #[test]
    fn compare_and_length() {
        let a = b"abcd\0";
        let b = b"abce\0";
        // SAFETY: all reads stay inside the 5-byte literals.
        unsafe {
            assert!(memcmp(a.as_ptr(), b.as_ptr(), 4) < 0);
            assert!(memcmp(b.as_ptr(), a.as_ptr(), 4) > 0);
            assert_eq!(memcmp(a.as_ptr(), b.as_ptr(), 3), 0);
            assert_ne!(bcmp(a.as_ptr(), b.as_ptr(), 4), 0);
            assert_eq!(strlen(a.as_ptr()), 4);
            assert_eq!(strlen(c"".as_ptr().cast()), 0);
        }
    }
}
