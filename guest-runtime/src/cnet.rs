//! The `twz_net_*` functions of `twz.h` (section "Stream device"): the stream device for C
//! programs, over [`crate::net`]. Every function returns 0 or a negative errno; completions come
//! back as `twz_net_event`s (the same layout as [`Event`]) from `twz_net_wait`.

use core::ffi::{c_int, c_void};

use crate::errno::Errno;
use crate::net::{self, Event};

fn status(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => -(e.0 as c_int),
    }
}

/// `twz_net_listening`: 1 when the run has a stream device (`--listen`), else 0.
#[no_mangle]
pub extern "C" fn twz_net_listening() -> c_int {
    c_int::from(net::listening())
}

/// `twz_net_accept`: queues an accept; `-EBADF` at once without `--listen`.
#[no_mangle]
pub extern "C" fn twz_net_accept(tag: u64) -> c_int {
    status(net::accept(tag))
}

/// `twz_net_recv`: queues a receive of up to `len` bytes into `buf`.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes and left alone until the completion is returned
/// by `twz_net_wait` (the contract stated in `twz.h`).
#[no_mangle]
pub unsafe extern "C" fn twz_net_recv(
    conn: c_int,
    buf: *mut c_void,
    len: usize,
    tag: u64,
) -> c_int {
    // SAFETY: forwarded caller guarantee; the VMM checks the range against guest memory too.
    status(unsafe { net::recv(conn, buf.cast(), len, tag) })
}

/// `twz_net_send`: queues a send of `len` bytes from `buf`.
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes and left unchanged until the completion is
/// returned by `twz_net_wait`.
#[no_mangle]
pub unsafe extern "C" fn twz_net_send(
    conn: c_int,
    buf: *const c_void,
    len: usize,
    tag: u64,
) -> c_int {
    // SAFETY: forwarded caller guarantee; the VMM checks the range against guest memory too.
    status(unsafe { net::send(conn, buf.cast(), len, tag) })
}

/// `twz_net_close`: queues a close of `conn`.
#[no_mangle]
pub extern "C" fn twz_net_close(conn: c_int, tag: u64) -> c_int {
    status(net::close(conn, tag))
}

/// Completions handed out per `twz_net_wait` call at most (a caller's larger array is filled
/// up to this).
const WAIT_BATCH: usize = 64;

/// `twz_net_wait`: waits up to `timeout_ns` (-1: no limit, 0: just look) and copies up to `max`
/// completions to `events`; returns the count or a negative errno (`-EINVAL` for a null array,
/// a `max` below 1 or a timeout below -1).
///
/// # Safety
/// `events` must be null or valid for writes of `max` `twz_net_event`s.
#[no_mangle]
pub unsafe extern "C" fn twz_net_wait(events: *mut Event, max: c_int, timeout_ns: i64) -> c_int {
    let einval = -(Errno::EINVAL.0 as c_int);
    let Ok(max) = usize::try_from(max) else {
        return einval;
    };
    if events.is_null() || max == 0 {
        return einval;
    }
    let timeout = match timeout_ns {
        -1 => None,
        t => match u64::try_from(t) {
            Ok(t) => Some(t),
            Err(_) => return einval,
        },
    };
    // The caller's array may hold anything (an `Op` must be valid even unread): fill a local
    // one and copy out.
    let mut local = [Event::default(); WAIT_BATCH];
    let n = match net::wait(&mut local[..max.min(WAIT_BATCH)], timeout) {
        Ok(n) => n,
        Err(e) => return -(e.0 as c_int),
    };
    for (i, e) in local[..n].iter().enumerate() {
        // SAFETY: caller guarantee: `events` is valid for `max` entries and `i < n <= max`;
        // `write` does not read or drop what was there.
        unsafe { events.add(i).write(*e) };
    }
    n as c_int
}
