//! One object shared by guests running at the same time, and the cost of capability checks.
//!
//! - `set NAME V`: stores V in the counter of the named object (created on first use), flushed.
//! - `watch NAME V`: maps the object read-only, prints `watching <id>: <value>`, polls the counter
//!   until it reads V (another guest's store, seen through the shared file backing), prints
//!   `saw V`, then stores to it: the hypervisor refuses and the run ends with the fault
//!   "write to read-only object <id> at offset <n>".
//! - `mapbench ID...`: maps each object read-only (first map: the VMM checks the capability or
//!   the owner key), unmaps it, maps it again (checked against the cache), and prints the
//!   median of each in ns.
//! - `mapnew N`: the same for N objects it creates (and maps once) first: the guest's own, so
//!   no check at all.
//! - `unbind NAME`: removes the name (which takes the right to write the object it names);
//!   prints `unbound NAME`, or the host's reason for refusing and exits 1.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use twz_rt::abi::layout::BASE_OFFSET;
use twz_rt::object::{sys, ObjError, ObjId, Object};
use twz_rt::println;
use twz_rt::time::Instant;

twz_rt::entry!(main);

/// Polls give up after this long (the test's own timeout is the real bound).
const WATCH_LIMIT_S: u64 = 60;

enum Error {
    Obj(ObjError),
    Usage,
    Timeout(u64),
    Refused(ObjError, alloc::string::String),
}

impl From<ObjError> for Error {
    fn from(e: ObjError) -> Self {
        Error::Obj(e)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Obj(e) => write!(f, "{e}"),
            Error::Usage => write!(
                f,
                "usage: sharer set NAME V | watch NAME V | mapbench ID... | mapnew N | unbind NAME"
            ),
            Error::Timeout(v) => write!(f, "gave up waiting, the counter still reads {v}"),
            Error::Refused(e, why) => write!(f, "{e}: {why}"),
        }
    }
}

fn main() -> Result<(), Error> {
    let args = twz_rt::args();
    let num = |i| args.get_str(i).and_then(|v: &str| v.parse::<u64>().ok());
    match (args.get_str(1), args.get_str(2), num(3)) {
        (Some("set"), Some(name), Some(v)) => set(name, v),
        (Some("watch"), Some(name), Some(v)) => watch(name, v),
        (Some("unbind"), Some(name), None) => match sys::unbind(name) {
            Ok(()) => {
                println!("unbound {name}");
                Ok(())
            }
            Err(e) => Err(Error::Refused(e, sys::last_error())),
        },
        (Some("mapnew"), Some(n), _) => {
            let n: usize = n.parse().map_err(|_| Error::Usage)?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                let id = sys::create(None)?;
                // Touch it once, as the other rows' objects were by a warm-up run.
                sys::unmap(sys::map(id, false, None)?.slot)?;
                ids.push(id);
            }
            mapbench(&ids)
        }
        (Some("mapbench"), _, _) => {
            let ids = (2..args.len())
                .map(|i| args.get_str(i).and_then(ObjId::parse_hex))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::Usage)?;
            mapbench(&ids)
        }
        _ => Err(Error::Usage),
    }
}

fn set(name: &str, v: u64) -> Result<(), Error> {
    let o = match Object::<u64>::open_named(name) {
        Err(ObjError::NoSuchName) => Object::<u64>::create_named(name)?,
        r => r?,
    };
    let at = o.addr()? + BASE_OFFSET;
    // SAFETY: the base u64 of a writable mapping; a single aligned store.
    unsafe { core::ptr::write_volatile(at as *mut u64, v) };
    o.flush_range(BASE_OFFSET, 8)?;
    println!("set {v}");
    Ok(())
}

fn watch(name: &str, want: u64) -> Result<(), Error> {
    let o = Object::<u64>::open_readonly(sys::lookup(name)?)?;
    let at = o.addr()? + BASE_OFFSET;
    // SAFETY: the base u64 of a mapping; volatile so every poll reads memory (the other guest
    // stores to the same file pages).
    let read = || unsafe { core::ptr::read_volatile(at as *const u64) };
    println!("watching {}: {}", o.id(), read());
    twz_rt::io::flush();
    let start = Instant::now();
    while read() != want {
        if start.elapsed().as_secs() > WATCH_LIMIT_S {
            return Err(Error::Timeout(read()));
        }
        core::hint::spin_loop();
    }
    println!("saw {want}");
    twz_rt::io::flush();
    // SAFETY: deliberately stores to the read-only mapping: the hypervisor ends the run.
    unsafe { core::ptr::write_volatile(at as *mut u64, want + 1) };
    println!("store to a read-only object went through!");
    Ok(())
}

fn median_ns(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn mapbench(ids: &[ObjId]) -> Result<(), Error> {
    let (mut first, mut again) = (Vec::new(), Vec::new());
    for &id in ids {
        let t = Instant::now();
        let m = sys::map(id, false, None)?;
        first.push(t.elapsed().as_nanos() as u64);
        sys::unmap(m.slot)?;
        let t = Instant::now();
        let m = sys::map(id, false, None)?;
        again.push(t.elapsed().as_nanos() as u64);
        sys::unmap(m.slot)?;
    }
    println!("objects {}", ids.len());
    println!("first_map_ns {}", median_ns(first));
    println!("remap_ns {}", median_ns(again));
    Ok(())
}
