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
use core::sync::atomic::{AtomicBool, Ordering};

/// Copies up to this many bytes with a few overlapping unaligned moves instead of `rep movsb`,
/// whose start-up costs 12-25 ns on this CPU whatever the length (measured in the key-value
/// store); most copies in SQLite and the store are short.
const SHORT: usize = 64;

/// Copies and fills of up to this many bytes use 16-byte SSE loops (copies: 32-byte AVX ones
/// once [`enable_avx`] was called); longer ones `rep movsb` / `rep stosb`, whose start-up cost
/// is then small beside the copy.
const MEDIUM: usize = 2048;

/// Whether medium copies use 32-byte AVX moves ([`enable_avx`]).
static AVX: AtomicBool = AtomicBool::new(false);

/// Lets copies of 65-2048 bytes use 32-byte AVX moves instead of 16-byte SSE ones (a
/// 1000-byte copy: 29-32 ns with SSE, 13-23 ns with AVX in the key-value store's guest here).
///
/// # Safety
/// The CPU must have AVX and its register state must be enabled (XCR0): else the first such
/// copy faults.
pub unsafe fn enable_avx() {
    AVX.store(true, Ordering::Relaxed);
}

/// Copies `n` bytes from `src` to `dst`; the ranges must not overlap.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n <= SHORT {
        // SAFETY: forwarded caller guarantee.
        unsafe { copy_short(dst, src, n) };
        return dst;
    }
    if n <= MEDIUM {
        if AVX.load(Ordering::Relaxed) {
            // SAFETY: forwarded caller guarantee; `n > SHORT >= 32`; `enable_avx`'s caller
            // vouched for AVX.
            unsafe { copy_medium_avx(dst, src, n) };
        } else {
            // SAFETY: forwarded caller guarantee; `n > SHORT >= 16`.
            unsafe { copy_medium(dst, src, n) };
        }
        return dst;
    }
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes; `rep movsb` copies
    // forwards (the direction flag is clear per the ABI) and touches nothing else.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// The loop shared by [`copy_medium`] and [`copy_medium_avx`]: copies `$n >= $w` bytes forwards
/// in `$w`-byte pieces (`$load`/`$store`), four at a time, the last piece (which may overlap
/// the one before) loaded first. Every piece is loaded before it is stored and stores land only
/// below what is still to be loaded, so this is also right for the overlapping forward copies
/// `memmove` hands to `memcpy` (`dst` below `src`). Expands to unsafe calls: use it inside an
/// `unsafe` block whose caller vouches for the ranges.
macro_rules! copy_pieces {
    ($dst:ident, $src:ident, $n:ident, $w:literal, $load:ident, $store:ident) => {{
        let last = $load($src.add($n - $w).cast());
        let mut i = 0;
        while i + 4 * $w <= $n {
            let a = $load($src.add(i).cast());
            let b = $load($src.add(i + $w).cast());
            let c = $load($src.add(i + 2 * $w).cast());
            let d = $load($src.add(i + 3 * $w).cast());
            $store($dst.add(i).cast(), a);
            $store($dst.add(i + $w).cast(), b);
            $store($dst.add(i + 2 * $w).cast(), c);
            $store($dst.add(i + 3 * $w).cast(), d);
            i += 4 * $w;
        }
        while i + $w <= $n {
            let a = $load($src.add(i).cast());
            $store($dst.add(i).cast(), a);
            i += $w;
        }
        $store($dst.add($n - $w).cast(), last);
    }};
}

/// Copies `16 <= n` bytes forwards in 16-byte SSE pieces (see [`copy_pieces`]).
///
/// # Safety
/// `src` must be readable and `dst` writable for `n >= 16` bytes.
#[inline(always)]
unsafe fn copy_medium(dst: *mut u8, src: *const u8, n: usize) {
    use core::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128};
    // SAFETY: every access covers 16 bytes starting at an offset `i` with `i + 16 <= n` (the
    // loop bounds) or at `n - 16` (`n >= 16`), inside the caller's ranges; SSE2 `movdqu`
    // tolerates any alignment and is part of x86_64.
    unsafe { copy_pieces!(dst, src, n, 16, _mm_loadu_si128, _mm_storeu_si128) }
}

/// [`copy_medium`] with 32-byte AVX pieces: `32 <= n`.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n >= 32` bytes; the CPU must have AVX with
/// its state enabled.
#[target_feature(enable = "avx")]
unsafe fn copy_medium_avx(dst: *mut u8, src: *const u8, n: usize) {
    use core::arch::x86_64::{_mm256_loadu_si256, _mm256_storeu_si256};
    // SAFETY: every access covers 32 bytes starting at an offset `i` with `i + 32 <= n` (the
    // loop bounds) or at `n - 32` (`n >= 32`), inside the caller's ranges; `vmovdqu` tolerates
    // any alignment, and the caller vouched for AVX.
    unsafe { copy_pieces!(dst, src, n, 32, _mm256_loadu_si256, _mm256_storeu_si256) }
}

/// Copies `n <= SHORT` bytes: the first and last pieces of the widest size that fits, which may
/// overlap each other. Every load happens before any store, so this is also right for the
/// overlapping forward copies `memmove` hands to `memcpy`.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n` bytes.
#[inline(always)]
unsafe fn copy_short(dst: *mut u8, src: *const u8, n: usize) {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    // SAFETY: for the whole block: each access below starts at or after offset 0 and ends at or before
    // offset `n` of ranges the caller vouched for; all are unaligned-tolerant (SSE2 `movdqu`,
    // `read_unaligned`), and SSE2 is part of x86_64.
    unsafe {
        let (s, d) = (src.cast::<__m128i>(), dst.cast::<__m128i>());
        let tail = move |k: usize| src.add(n - k);
        let dtail = move |k: usize| dst.add(n - k);
        if n >= 32 {
            let a = _mm_loadu_si128(s);
            let b = _mm_loadu_si128(s.add(1));
            let c = _mm_loadu_si128(tail(32).cast());
            let e = _mm_loadu_si128(tail(16).cast());
            _mm_storeu_si128(d, a);
            _mm_storeu_si128(d.add(1), b);
            _mm_storeu_si128(dtail(32).cast(), c);
            _mm_storeu_si128(dtail(16).cast(), e);
        } else if n >= 16 {
            let a = _mm_loadu_si128(s);
            let e = _mm_loadu_si128(tail(16).cast());
            _mm_storeu_si128(d, a);
            _mm_storeu_si128(dtail(16).cast(), e);
        } else if n >= 8 {
            let a = src.cast::<u64>().read_unaligned();
            let e = tail(8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(a);
            dtail(8).cast::<u64>().write_unaligned(e);
        } else if n >= 4 {
            let a = src.cast::<u32>().read_unaligned();
            let e = tail(4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dtail(4).cast::<u32>().write_unaligned(e);
        } else if n > 0 {
            let (a, b, e) = (*src, *src.add(n / 2), *tail(1));
            *dst = a;
            *dst.add(n / 2) = b;
            *dtail(1) = e;
        }
    }
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
    // Overlap with `dst` above `src`: copy backwards (SQLite shifts b-tree cells up this way on
    // every insert). Each piece is read before it is written, and a write lands only above what
    // is still to be read.
    if n >= 16 {
        // SAFETY: forwarded caller guarantee; `n >= 16`.
        unsafe { copy_backwards(dst, src, n) };
        return dst;
    }
    let mut i = n;
    while i >= 8 {
        i -= 8;
        // SAFETY: `i + 8 <= n`, inside both ranges the caller vouched for; unaligned access.
        unsafe {
            let w = src.add(i).cast::<u64>().read_unaligned();
            dst.add(i).cast::<u64>().write_unaligned(w);
        }
    }
    while i > 0 {
        i -= 1;
        // SAFETY: `i < n`, inside both ranges the caller vouched for.
        unsafe { *dst.add(i) = *src.add(i) };
    }
    dst
}

/// Copies `n >= 16` bytes backwards in 16-byte pieces, the first piece (which may overlap the
/// one after it) loaded before anything is stored and stored last: right for overlapping ranges
/// with `dst` above `src`.
///
/// # Safety
/// `src` must be readable and `dst` writable for `n >= 16` bytes.
#[inline(always)]
unsafe fn copy_backwards(dst: *mut u8, src: *const u8, n: usize) {
    use core::arch::x86_64::{_mm_loadu_si128, _mm_storeu_si128};
    // SAFETY: for the whole block: every access covers 16 bytes at an offset `at` with
    // `at + 16 <= n` (`at = i - 16` while `i > 16`, `i <= n`) or at 0 (`n >= 16`), inside the
    // caller's ranges; SSE2 `movdqu` tolerates any alignment.
    unsafe {
        let first = _mm_loadu_si128(src.cast());
        let mut i = n;
        while i > 16 {
            let at = i - 16;
            let a = _mm_loadu_si128(src.add(at).cast());
            _mm_storeu_si128(dst.add(at).cast(), a);
            i = at;
        }
        _mm_storeu_si128(dst.cast(), first);
    }
}

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// `dst` must be writable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    if n <= SHORT {
        // SAFETY: forwarded caller guarantee.
        unsafe { fill_short(dst, c as u8, n) };
        return dst;
    }
    if n <= MEDIUM {
        use core::arch::x86_64::{_mm_set1_epi8, _mm_storeu_si128};
        // SAFETY: every store covers 16 bytes at an offset `i` with `i + 16 <= n` or at
        // `n - 16` (`n > SHORT`), inside the caller's range; `movdqu` takes any alignment.
        unsafe {
            let v = _mm_set1_epi8(c as u8 as i8);
            let mut i = 0;
            while i + 64 <= n {
                _mm_storeu_si128(dst.add(i).cast(), v);
                _mm_storeu_si128(dst.add(i + 16).cast(), v);
                _mm_storeu_si128(dst.add(i + 32).cast(), v);
                _mm_storeu_si128(dst.add(i + 48).cast(), v);
                i += 64;
            }
            while i + 16 <= n {
                _mm_storeu_si128(dst.add(i).cast(), v);
                i += 16;
            }
            _mm_storeu_si128(dst.add(n - 16).cast(), v);
        }
        return dst;
    }
    // SAFETY: the caller guarantees `dst` is writable for `n` bytes; `rep stosb` stores forwards.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// Fills `n <= SHORT` bytes with `byte`, like [`copy_short`]: first and last pieces.
///
/// # Safety
/// `dst` must be writable for `n` bytes.
#[inline(always)]
unsafe fn fill_short(dst: *mut u8, byte: u8, n: usize) {
    use core::arch::x86_64::{__m128i, _mm_set1_epi8, _mm_storeu_si128};
    let word = u64::from(byte) * 0x0101_0101_0101_0101;
    // SAFETY: for the whole block: as in `copy_short`: every store lies inside `dst..dst+n`.
    unsafe {
        let d = dst.cast::<__m128i>();
        let dtail = move |k: usize| dst.add(n - k);
        if n >= 16 {
            let v = _mm_set1_epi8(byte as i8);
            _mm_storeu_si128(d, v);
            _mm_storeu_si128(dtail(16).cast(), v);
            if n >= 32 {
                _mm_storeu_si128(d.add(1), v);
                _mm_storeu_si128(dtail(32).cast(), v);
            }
        } else if n >= 8 {
            dst.cast::<u64>().write_unaligned(word);
            dtail(8).cast::<u64>().write_unaligned(word);
        } else if n >= 4 {
            dst.cast::<u32>().write_unaligned(word as u32);
            dtail(4).cast::<u32>().write_unaligned(word as u32);
        } else if n > 0 {
            *dst = byte;
            *dst.add(n / 2) = byte;
            *dtail(1) = byte;
        }
    }
}

/// Compares `n` bytes; negative, zero or positive like C's `memcmp`. Sixteen bytes at a time,
/// then the last eight: SQLite compares keys and records with it constantly.
///
/// # Safety
/// Both pointers must be readable for `n` bytes.
#[cfg_attr(feature = "export", no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    use core::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8};
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`, inside both ranges the caller vouched for; `movdqu` takes any
        // alignment and SSE2 is part of x86_64.
        let same = unsafe {
            _mm_movemask_epi8(_mm_cmpeq_epi8(
                _mm_loadu_si128(a.add(i).cast()),
                _mm_loadu_si128(b.add(i).cast()),
            ))
        };
        if same != 0xffff {
            let j = i + (!same & 0xffff).trailing_zeros() as usize;
            // SAFETY: `j < i + 16 <= n`.
            let (x, y) = unsafe { (*a.add(j), *b.add(j)) };
            return x as i32 - y as i32;
        }
        i += 16;
    }
    if n >= 8 && i < n && n - i < 8 {
        // Fewer than eight left: the last eight bytes, overlapping ones already found equal.
        i = n - 8;
    }
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
    fn every_short_and_medium_length_copies_and_fills_exactly() {
        let src: [u8; 200] = core::array::from_fn(|i| (i * 7 + 1) as u8);
        for n in 0..=130 {
            for at in 0..4 {
                let mut dst = [0u8; 200];
                // SAFETY: `at + n <= 134 < 200` for both arrays.
                unsafe { memcpy(dst.as_mut_ptr().add(at), src.as_ptr().add(1), n) };
                assert_eq!(&dst[at..at + n], &src[1..1 + n], "copy of {n} at {at}");
                assert!(
                    dst[..at].iter().all(|&b| b == 0),
                    "copy of {n} wrote before"
                );
                assert!(
                    dst[at + n..].iter().all(|&b| b == 0),
                    "copy of {n} wrote past"
                );
                let mut buf = [1u8; 200];
                // SAFETY: as above.
                unsafe { memset(buf.as_mut_ptr().add(at), 0x5a, n) };
                assert!(buf[at..at + n].iter().all(|&b| b == 0x5a), "fill of {n}");
                assert!(buf[..at].iter().chain(&buf[at + n..]).all(|&b| b == 1));
            }
        }
    }

    #[test]
    fn avx_copies_match_the_sse_ones() {
        extern crate std;
        if !std::arch::is_x86_feature_detected!("avx") {
            std::println!("SKIP: this CPU has no AVX");
            return;
        }
        let src: [u8; 2100] = core::array::from_fn(|i| (i * 13 + 5) as u8);
        for n in (SHORT + 1..=MEDIUM)
            .step_by(7)
            .chain([128, 129, 1000, MEDIUM])
        {
            for at in 0..3 {
                let (mut sse, mut avx) = ([0u8; 2100], [0u8; 2100]);
                // SAFETY: `at + n <= 2050 < 2100` for all arrays; AVX detected above.
                unsafe {
                    copy_medium(sse.as_mut_ptr().add(at), src.as_ptr().add(1), n);
                    copy_medium_avx(avx.as_mut_ptr().add(at), src.as_ptr().add(1), n);
                }
                assert_eq!(sse, avx, "copy of {n} at {at}");
                assert_eq!(&avx[at..at + n], &src[1..1 + n]);
            }
        }
        // memmove's overlapping forward copy (dst below src) through the AVX path.
        let mut buf: [u8; 1100] = core::array::from_fn(|i| (i * 3) as u8);
        let mut want = buf;
        want.copy_within(40..1040, 0);
        // SAFETY: both ranges lie in the 1100-byte array; AVX detected above.
        unsafe { copy_medium_avx(buf.as_mut_ptr(), buf.as_ptr().add(40), 1000) };
        assert_eq!(buf, want);
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
    fn move_up_by_any_shift_matches_copy_within() {
        for len in 0..40 {
            for shift in 1..12 {
                let mut buf: [u8; 64] = core::array::from_fn(|i| i as u8);
                let mut want = buf;
                want.copy_within(0..len, shift);
                let p = buf.as_mut_ptr();
                // SAFETY: `shift + len <= 51`, inside the 64-byte array.
                unsafe { memmove(p.add(shift), p, len) };
                assert_eq!(buf, want, "len {len} shift {shift}");
            }
        }
    }

    #[test]
    fn long_copies_and_fills_are_exact_at_every_size_class() {
        extern crate std;
        use std::vec::Vec;
        let src: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in [
            65, 79, 80, 127, 128, 129, 1000, 2047, 2048, 2049, 4096, 4111,
        ] {
            for at in 0..3 {
                let mut dst = vec_of(0, 5000);
                // SAFETY: `at + n <= 4114 < 5000` in both buffers.
                unsafe { memcpy(dst.as_mut_ptr().add(at), src.as_ptr().add(1), n) };
                assert_eq!(&dst[at..at + n], &src[1..1 + n], "copy of {n} at {at}");
                assert!(dst[..at].iter().chain(&dst[at + n..]).all(|&b| b == 0));
                let mut buf = vec_of(1, 5000);
                // SAFETY: as above.
                unsafe { memset(buf.as_mut_ptr().add(at), 0x5a, n) };
                assert!(buf[at..at + n].iter().all(|&b| b == 0x5a), "fill of {n}");
                assert!(buf[..at].iter().chain(&buf[at + n..]).all(|&b| b == 1));
            }
        }

        fn vec_of(byte: u8, n: usize) -> Vec<u8> {
            core::iter::repeat_n(byte, n).collect()
        }
    }

    #[test]
    fn long_overlapping_moves_match_copy_within_both_ways() {
        for len in [16, 17, 31, 64, 65, 100, 200, 1000, 2100, 3000] {
            for shift in [1, 2, 8, 15, 16, 17, 40, 64, 100] {
                let mut up: [u8; 3200] = core::array::from_fn(|i| (i * 13) as u8);
                let mut want = up;
                want.copy_within(0..len, shift);
                let p = up.as_mut_ptr();
                // SAFETY: `shift + len <= 3100`, inside the array.
                unsafe { memmove(p.add(shift), p, len) };
                assert_eq!(up, want, "up: len {len} shift {shift}");

                let mut down: [u8; 3200] = core::array::from_fn(|i| (i * 13) as u8);
                let mut want = down;
                want.copy_within(shift..shift + len, 0);
                let p = down.as_mut_ptr();
                // SAFETY: as above.
                unsafe { memmove(p, p.add(shift), len) };
                assert_eq!(down, want, "down: len {len} shift {shift}");
            }
        }
    }

    #[test]
    fn compare_agrees_with_slices_at_every_position() {
        let base: [u8; 70] = core::array::from_fn(|i| (i * 7) as u8);
        for len in 0..70 {
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
