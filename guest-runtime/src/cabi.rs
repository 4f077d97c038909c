//! The runtime's C interface (`include/twz.h`) and the parts of the C library that need the
//! runtime: the heap (`malloc` family), `exit`/`abort`, `getenv` and the clocks. The rest of the
//! C library is C, in `twz-libc`, which calls these. Guest images only: on the host these names
//! belong to the host's libc.

use core::alloc::Layout;
use core::ffi::{c_char, c_int, c_long, c_void, CStr};

use crate::io::Stream;

/// Every `malloc` block starts with a header holding the caller's size, so `free` can rebuild
/// the layout; 16 bytes keep the caller's pointer 16-byte aligned as C expects.
const HEADER: usize = 16;
const ALIGN: usize = 16;

fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

/// # Safety
/// `p` must be null or a pointer returned by this module's allocation functions, not yet freed.
unsafe fn header_of(p: *mut c_void) -> (*mut u8, Layout) {
    // SAFETY: `p` was returned by `malloc`, so the header sits HEADER bytes below it.
    let base = unsafe { p.cast::<u8>().sub(HEADER) };
    // SAFETY: the header was written by `malloc`/`realloc` and holds the caller's size, for which
    // `block_layout` succeeded then.
    let size = unsafe { base.cast::<usize>().read() };
    let layout = block_layout(size).unwrap_or(Layout::new::<[u8; HEADER]>());
    (base, layout)
}

/// C `malloc`: a block from the runtime heap, or null.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let Some(layout) = block_layout(size) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size (at least the header).
    let base = unsafe { alloc::alloc::alloc(layout) };
    if base.is_null() {
        return base.cast();
    }
    // SAFETY: the block is at least HEADER bytes and 16-byte aligned.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(HEADER).cast()
    }
}

/// C `calloc`: a zeroed block for `count * size` bytes, or null on overflow or exhaustion.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        return core::ptr::null_mut();
    };
    let p = malloc(total);
    if !p.is_null() {
        // SAFETY: `p` is a fresh block of `total` bytes.
        unsafe { core::ptr::write_bytes(p.cast::<u8>(), 0, total) };
    }
    p
}

/// C `free`.
///
/// # Safety
/// `p` must be null or a live block from `malloc`, `calloc` or `realloc`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: caller guarantee.
    let (base, layout) = unsafe { header_of(p) };
    // SAFETY: `base` was allocated with `layout` by `malloc`/`realloc`.
    unsafe { alloc::alloc::dealloc(base, layout) };
}

/// C `realloc`: grows or shrinks a block, keeping its contents; null `p` allocates; size 0 frees
/// and returns null. On failure the old block is untouched and null is returned.
///
/// # Safety
/// `p` must be null or a live block from this module.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: forwarded caller guarantee.
        unsafe { free(p) };
        return core::ptr::null_mut();
    }
    let Some(new_layout) = block_layout(size) else {
        return core::ptr::null_mut();
    };
    // SAFETY: caller guarantee.
    let (base, layout) = unsafe { header_of(p) };
    // SAFETY: `base` came from the global allocator with `layout`; the new size is non-zero and
    // valid for the alignment (checked by `block_layout`).
    let new = unsafe { alloc::alloc::realloc(base, layout, new_layout.size()) };
    if new.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the new block holds at least the header.
    unsafe {
        new.cast::<usize>().write(size);
        new.add(HEADER).cast()
    }
}

/// C `exit`: flushes the console and ends the run.
#[export_name = "exit"]
pub extern "C" fn c_exit(status: c_int) -> ! {
    crate::exit(status)
}

/// C `_Exit`: like `exit` (nothing is registered with `atexit` here).
#[export_name = "_Exit"]
pub extern "C" fn c_exit_now(status: c_int) -> ! {
    crate::exit(status)
}

/// `twz_exit` of `twz.h`.
#[no_mangle]
pub extern "C" fn twz_exit(status: c_int) -> ! {
    crate::exit(status)
}

/// C `abort`: ends the run as a guest panic, so the VMM prints a backtrace of the caller.
#[no_mangle]
pub extern "C" fn abort() -> ! {
    crate::io::flush();
    crate::hostcall::panic(b"abort() called", b"", 0, 0)
}

/// C `getenv`: the value of `NAME=VALUE` in the environment the VMM passed, or null.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn getenv(name: *const c_char) -> *mut c_char {
    if name.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: caller guarantee.
    let Ok(key) = unsafe { CStr::from_ptr(name) }.to_str() else {
        return core::ptr::null_mut();
    };
    // The value is a suffix of an entry that the argument table checked is NUL-terminated inside
    // the argument area, so its pointer is a valid C string for the whole run.
    match crate::var(key) {
        Some(v) => v.as_ptr().cast_mut().cast(),
        None => core::ptr::null_mut(),
    }
}

/// `twz_console_write` of `twz.h`: stream 2 is stderr, anything else stdout.
///
/// # Safety
/// `buf` must be readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn twz_console_write(stream: c_int, buf: *const c_void, len: usize) {
    if buf.is_null() || len == 0 {
        return;
    }
    // SAFETY: caller guarantee.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len) };
    let s = if stream == 2 {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    crate::io::write(s, bytes);
}

/// `twz_console_flush` of `twz.h`.
#[no_mangle]
pub extern "C" fn twz_console_flush() {
    crate::io::flush();
}

/// `twz_stdin_read` of `twz.h`: bytes read, 0 at end of input, or a negative errno.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn twz_stdin_read(buf: *mut c_void, len: usize) -> c_long {
    if buf.is_null() || len == 0 {
        return 0;
    }
    // SAFETY: caller guarantee.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    match crate::stdin::read(out) {
        Ok(n) => n as c_long,
        Err(e) => -(e.0 as c_long),
    }
}

/// `twz_stdin_is_tty` of `twz.h`: 1 when the VMM's standard input is a terminal.
#[no_mangle]
pub extern "C" fn twz_stdin_is_tty() -> c_int {
    c_int::from(crate::boot::info().flags & abi::boot::flags::STDIN_IS_TTY != 0)
}

/// `twz_monotonic_ns` of `twz.h`: nanoseconds since boot.
#[no_mangle]
pub extern "C" fn twz_monotonic_ns() -> u64 {
    let b = crate::boot::info();
    crate::time::ticks_to_ns(crate::time::rdtsc().saturating_sub(b.boot_tsc), b.tsc_hz)
}

/// `twz_wall_ns` of `twz.h`.
#[no_mangle]
pub extern "C" fn twz_wall_ns() -> u64 {
    crate::time::wall_ns()
}

/// `twz_random` of `twz.h`: 0 or a negative errno.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn twz_random(buf: *mut c_void, len: usize) -> c_int {
    if len == 0 {
        return 0;
    }
    if buf.is_null() {
        return -(abi::hostcall::errno::EFAULT as c_int);
    }
    // SAFETY: caller guarantee.
    let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    match crate::random(out) {
        Ok(()) => 0,
        Err(e) => -(e.0 as c_int),
    }
}

/// `twz_heap_untouched` of `twz.h`.
#[no_mangle]
pub extern "C" fn twz_heap_untouched() -> usize {
    crate::heap::global::HEAP
        .try_lock()
        .map_or(0, |h| h.untouched())
}

/// `twz_heap_carve` of `twz.h`: `size` bytes, page aligned, taken from the heap for good.
#[no_mangle]
pub extern "C" fn twz_heap_carve(size: usize) -> *mut c_void {
    crate::heap::global::HEAP
        .try_lock()
        .map_or(core::ptr::null_mut(), |mut h| h.carve(size, 4096).cast())
}

/// C `struct timespec`.
#[repr(C)]
pub struct Timespec {
    tv_sec: c_long,
    tv_nsec: c_long,
}

const CLOCK_REALTIME: c_int = 0;
const CLOCK_MONOTONIC: c_int = 1;

/// C `clock_gettime` for `CLOCK_REALTIME` and `CLOCK_MONOTONIC`; -1 for other clocks.
///
/// # Safety
/// `ts` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn clock_gettime(id: c_int, ts: *mut Timespec) -> c_int {
    let ns = match id {
        CLOCK_REALTIME => twz_wall_ns(),
        CLOCK_MONOTONIC => twz_monotonic_ns(),
        _ => return -1,
    };
    if ts.is_null() {
        return -1;
    }
    // SAFETY: caller guarantee.
    unsafe {
        ts.write(Timespec {
            tv_sec: (ns / 1_000_000_000) as c_long,
            tv_nsec: (ns % 1_000_000_000) as c_long,
        })
    };
    0
}

/// C `time`: seconds since the Unix epoch.
///
/// # Safety
/// `t` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn time(t: *mut c_long) -> c_long {
    let s = (twz_wall_ns() / 1_000_000_000) as c_long;
    if !t.is_null() {
        // SAFETY: caller guarantee.
        unsafe { t.write(s) };
    }
    s
}

/// C `clock`: processor time in microseconds (CLOCKS_PER_SEC), here time since boot.
#[no_mangle]
pub extern "C" fn clock() -> c_long {
    (twz_monotonic_ns() / 1000) as c_long
}
