//! The shim's pure C parts, compiled for the host with `twz_`-prefixed names, checked against the
//! host's glibc.

use core::ffi::{c_char, c_int, c_long, c_void};
use std::ffi::{CStr, CString};
use std::string::String;
use std::vec::Vec;

extern "C" {
    fn twz_snprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ...) -> c_int;
    fn snprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ...) -> c_int;
    fn twz_strtol(s: *const c_char, end: *mut *mut c_char, base: c_int) -> c_long;
    fn strtol(s: *const c_char, end: *mut *mut c_char, base: c_int) -> c_long;
    fn twz_strtoull(s: *const c_char, end: *mut *mut c_char, base: c_int) -> u64;
    fn strtoull(s: *const c_char, end: *mut *mut c_char, base: c_int) -> u64;
    fn twz_strtod(s: *const c_char, end: *mut *mut c_char) -> f64;
    fn twz_qsort(
        base: *mut c_void,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const c_void, *const c_void) -> c_int,
    );
    fn twz_bsearch(
        key: *const c_void,
        base: *const c_void,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const c_void, *const c_void) -> c_int,
    ) -> *mut c_void;
    fn twz_strstr(h: *const c_char, n: *const c_char) -> *mut c_char;
    fn twz_strcspn(s: *const c_char, r: *const c_char) -> usize;
    fn twz_strspn(s: *const c_char, a: *const c_char) -> usize;
    fn twz_strrchr(s: *const c_char, c: c_int) -> *mut c_char;
    fn twz_strncmp(a: *const c_char, b: *const c_char, n: usize) -> c_int;
    static mut twz_test_errno: c_int;
}

/// Formats with both implementations (same format and arguments) and returns both results:
/// the text and the returned length.
macro_rules! both {
    ($fmt:expr $(, $arg:expr)*) => {{
        let fmt = CString::new($fmt).unwrap();
        let mut a = [0 as c_char; 512];
        let mut b = [0 as c_char; 512];
        // SAFETY: the buffers are 512 bytes and the arguments match the format.
        let (na, nb) = unsafe {
            (
                twz_snprintf(a.as_mut_ptr(), a.len(), fmt.as_ptr() $(, $arg)*),
                snprintf(b.as_mut_ptr(), b.len(), fmt.as_ptr() $(, $arg)*),
            )
        };
        // SAFETY: snprintf NUL-terminates within the buffer.
        let (sa, sb) = unsafe { (text(a.as_ptr()), text(b.as_ptr())) };
        ((sa, na), (sb, nb))
    }};
}

macro_rules! same {
    ($fmt:expr $(, $arg:expr)*) => {{
        let (ours, glibc) = both!($fmt $(, $arg)*);
        assert_eq!(ours, glibc, "format {:?}", $fmt);
    }};
}

/// # Safety
/// `p` must be a NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    // SAFETY: caller guarantee.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn integers_match_glibc() {
    for v in [0i32, 1, -1, 42, -42, i32::MAX, i32::MIN, 1000] {
        for f in [
            "%d", "%i", "%5d", "%-5d|", "%05d", "%+d", "% d", "%.3d", "%8.3d", "%-+8.3d|", "%.0d",
            "%x", "%#x", "%X", "%#X", "%o", "%#o", "%u", "%#.0o", "%08x", "%#010x", "%c|",
        ] {
            same!(f, v);
        }
    }
    for v in [0i64, -1, i64::MIN, i64::MAX, 1 << 40] {
        for f in [
            "%ld", "%lld", "%lx", "%llu", "%20lld|", "%-20lld|", "%zd", "%zu", "%jd",
        ] {
            same!(f, v);
        }
    }
    same!("%hhd %hhu %hd %hu", 300, 300, 70000, 70000);
    same!("%*d|%-*d|%.*d", 6, 42, 6, 42, 4, 7);
    same!("%*d|", -6, 42);
    same!("%% %5%|");
}

#[test]
fn strings_chars_and_pointers_match_glibc() {
    let s = c"hello";
    same!(
        "%s|%10s|%-10s|%.2s|%10.2s|",
        s.as_ptr(),
        s.as_ptr(),
        s.as_ptr(),
        s.as_ptr(),
        s.as_ptr()
    );
    same!("%s", core::ptr::null::<c_char>());
    same!(
        "%c%c%5c|%-3c|",
        b'a' as c_int,
        b'b' as c_int,
        b'c' as c_int,
        b'd' as c_int
    );
    let x = 0x1234_5678usize as *const c_void;
    same!("%p %20p|%-20p|", x, x, x);
    same!("%p", core::ptr::null::<c_void>());
}

#[test]
fn floats_match_glibc_on_common_values() {
    let values: [f64; 20] = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        0.1,
        0.5,
        2.5,
        std::f64::consts::PI,
        1e10,
        1.5e-5,
        123456.789,
        1e100,
        6.02214076e23,
        1e-300,
        0.000123,
        99.995,
        0.25,
        9.9999999,
        1e21,
        5e-324,
    ];
    for v in values {
        for f in [
            "%f", "%.0f", "%.1f", "%.2f", "%.10f", "%e", "%.0e", "%.3e", "%E", "%g", "%.1g",
            "%.3g", "%.10g", "%.15g", "%.17g", "%G", "%#g", "%#.0f", "%12.4f|", "%-12.4e|", "%+g",
            "% g", "%012.3f",
        ] {
            if f.contains('f') && v.abs() >= 1e17 {
                continue; // glibc prints the exact binary expansion of huge values
            }
            same!(f, v);
        }
    }
    same!(
        "%f %e %g %F",
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::INFINITY
    );
    same!("%5.1f|%-8.2f|", 2.25f64, -2.75f64);
}

#[test]
fn truncation_reports_the_full_length() {
    let fmt = c"%s-%d";
    let mut buf = [b'x' as c_char; 8];
    // SAFETY: the buffer is 8 bytes; we tell the function 5.
    let n = unsafe { twz_snprintf(buf.as_mut_ptr(), 5, fmt.as_ptr(), c"abcdef".as_ptr(), 12) };
    assert_eq!(n, 9);
    // SAFETY: NUL-terminated within 5 bytes.
    assert_eq!(unsafe { text(buf.as_ptr()) }, "abcd");
    assert_eq!(buf[5], b'x' as c_char, "nothing written past the size");
    // SAFETY: size 0 writes nothing, a null buffer is allowed then.
    let n = unsafe { twz_snprintf(core::ptr::null_mut(), 0, fmt.as_ptr(), c"ab".as_ptr(), 1) };
    assert_eq!(n, 4);
}

fn strtol_both(s: &str, base: c_int) -> ((c_long, usize), (c_long, usize)) {
    let c = CString::new(s).unwrap();
    // glibc leaves the end pointer alone for a bad base.
    let mut e1 = c.as_ptr().cast_mut();
    let mut e2 = c.as_ptr().cast_mut();
    // SAFETY: valid string and end pointers.
    let (a, b) = unsafe {
        (
            twz_strtol(c.as_ptr(), &mut e1, base),
            strtol(c.as_ptr(), &mut e2, base),
        )
    };
    (
        (a, e1 as usize - c.as_ptr() as usize),
        (b, e2 as usize - c.as_ptr() as usize),
    )
}

#[test]
fn strtol_edge_cases_match_glibc() {
    for (s, base) in [
        ("0", 10),
        ("  -42xyz", 10),
        ("+17", 0),
        ("0x1F", 0),
        ("0x1F", 16),
        ("0x", 16),
        ("0xg", 0),
        ("017", 0),
        ("z", 36),
        ("", 10),
        ("   ", 10),
        ("-", 10),
        ("9223372036854775807", 10),
        ("9223372036854775808", 10),
        ("-9223372036854775808", 10),
        ("-9223372036854775809", 10),
        ("99999999999999999999999", 10),
        ("12", 1),
        ("101", 2),
    ] {
        let (ours, glibc) = strtol_both(s, base);
        assert_eq!(ours, glibc, "strtol({s:?}, {base})");
    }
    // SAFETY: reading and writing the C test global from one thread.
    unsafe { twz_test_errno = 0 };
    let (ours, _) = strtol_both("99999999999999999999", 10);
    assert_eq!(ours.0, c_long::MAX);
    // SAFETY: as above.
    assert_eq!(unsafe { twz_test_errno }, 34, "ERANGE");
    for s in [
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "0xffffffffffffffff",
    ] {
        let c = CString::new(s).unwrap();
        // SAFETY: valid strings.
        let (a, b) = unsafe {
            (
                twz_strtoull(c.as_ptr(), core::ptr::null_mut(), 0),
                strtoull(c.as_ptr(), core::ptr::null_mut(), 0),
            )
        };
        assert_eq!(a, b, "strtoull({s:?})");
    }
}

#[test]
fn strtod_reads_what_programs_write() {
    for (s, want, used) in [
        ("1.5", 1.5, 3),
        ("  -0.125e2x", -12.5, 10),
        ("3.14159265358979", std::f64::consts::PI - 3.2e-15, 16),
        ("1e308", 1e308, 5),
        ("2.5E-3", 0.0025, 6),
        (".5", 0.5, 2),
        ("7.", 7.0, 2),
        ("1e", 1.0, 1),
        ("inf", f64::INFINITY, 3),
        ("-Infinity", f64::NEG_INFINITY, 9),
        ("abc", 0.0, 0),
    ] {
        let c = CString::new(s).unwrap();
        let mut end = core::ptr::null_mut();
        // SAFETY: valid string and end pointer.
        let v = unsafe { twz_strtod(c.as_ptr(), &mut end) };
        let rel = if want == 0.0 || want.is_infinite() {
            (v == want) as u8 as f64 - 1.0
        } else {
            ((v - want) / want).abs()
        };
        assert!(rel.abs() < 1e-15, "strtod({s:?}) = {v}, want {want}");
        assert_eq!(end as usize - c.as_ptr() as usize, used, "end of {s:?}");
    }
    let c = c"nan";
    // SAFETY: valid string.
    assert!(unsafe { twz_strtod(c.as_ptr(), core::ptr::null_mut()) }.is_nan());
}

extern "C" fn cmp_i32(a: *const c_void, b: *const c_void) -> c_int {
    // SAFETY: qsort/bsearch pass pointers to elements of the i32 arrays below.
    let (a, b) = unsafe { (*(a as *const i32), *(b as *const i32)) };
    a.cmp(&b) as c_int
}

#[test]
fn qsort_sorts_and_bsearch_finds() {
    let mut seed = 12345u64;
    for n in [0usize, 1, 2, 3, 10, 100, 1000] {
        let mut v: Vec<i32> = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 40) as i32 % 100
            })
            .collect();
        let mut want = v.clone();
        want.sort();
        // SAFETY: `v` holds n i32 elements.
        unsafe { twz_qsort(v.as_mut_ptr().cast(), n, 4, cmp_i32) };
        assert_eq!(v, want, "n = {n}");
        if n > 0 {
            let key = want[n / 2];
            // SAFETY: sorted array of n i32.
            let hit = unsafe {
                twz_bsearch(
                    (&key as *const i32).cast(),
                    v.as_ptr().cast(),
                    n,
                    4,
                    cmp_i32,
                )
            };
            assert!(!hit.is_null());
            // SAFETY: bsearch returned an element pointer.
            assert_eq!(unsafe { *(hit as *const i32) }, key);
        }
        let missing = 1000;
        // SAFETY: as above.
        let miss = unsafe {
            twz_bsearch(
                (&missing as *const i32).cast(),
                v.as_ptr().cast(),
                n,
                4,
                cmp_i32,
            )
        };
        assert!(miss.is_null());
    }
}

#[test]
fn string_searches() {
    let h = c"hello, world";
    // SAFETY: NUL-terminated literals.
    unsafe {
        assert_eq!(
            twz_strstr(h.as_ptr(), c"world".as_ptr()) as usize - h.as_ptr() as usize,
            7
        );
        assert!(twz_strstr(h.as_ptr(), c"worlds".as_ptr()).is_null());
        assert_eq!(
            twz_strstr(h.as_ptr(), c"".as_ptr()) as *const c_char,
            h.as_ptr()
        );
        assert_eq!(twz_strcspn(h.as_ptr(), c", ".as_ptr()), 5);
        assert_eq!(twz_strspn(h.as_ptr(), c"hel".as_ptr()), 4);
        // Empty sets, a set that covers the whole string, bytes above 127.
        assert_eq!(twz_strcspn(h.as_ptr(), c"".as_ptr()), 12);
        assert_eq!(twz_strspn(h.as_ptr(), c"".as_ptr()), 0);
        assert_eq!(twz_strspn(c"abcabc".as_ptr(), c"cba".as_ptr()), 6);
        let high = c"ab\xc3\xa9cd\xff";
        assert_eq!(twz_strcspn(high.as_ptr(), c"\xff\xa9".as_ptr()), 3);
        assert_eq!(twz_strspn(high.as_ptr(), c"ba\xc3".as_ptr()), 3);
        assert_eq!(twz_strcspn(high.as_ptr(), c"\xfe".as_ptr()), 7);
        assert_eq!(
            twz_strrchr(h.as_ptr(), b'o' as c_int) as usize - h.as_ptr() as usize,
            8
        );
        assert_eq!(
            twz_strrchr(h.as_ptr(), 0) as usize - h.as_ptr() as usize,
            12
        );
        assert!(twz_strncmp(c"abc".as_ptr(), c"abd".as_ptr(), 2) == 0);
        assert!(twz_strncmp(c"abc".as_ptr(), c"abd".as_ptr(), 3) < 0);
        assert!(twz_strncmp(c"ab".as_ptr(), c"abc".as_ptr(), 5) < 0);
    }
}
