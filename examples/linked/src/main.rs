//! A linked list across persistent objects, updated in transactions: the list head is the named
//! object `people`, each entry is a node object of its own whose name string is allocated
//! inside it, and the links are invariant pointers (FOT entries).
//!
//! - `add NAME`: appends a node holding NAME, in one transaction anchored at `people`.
//! - `show`: walks the list and prints the names in order, one a line.
//! - `count`: prints the count kept in the head.
//! - `bulk N PREFIX`: appends `PREFIX-0` .. `PREFIX-{N-1}`, one transaction each, printing
//!   `committed I` after each commit (the crash test kills the VMM in the middle).
//! - `bench`: median cost of an 8-byte transactional update and of alloc+free in a transaction.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use twz_rt::abi::layout::BASE_OFFSET;
use twz_rt::object::{InvPtr, ObjError, ObjId, Object, Persistent};
use twz_rt::println;
use twz_rt::time::rdtsc;
use twz_rt::tx::{Transactional, TxError};

twz_rt::entry!(main);

/// Name of the list head object.
const HEAD: &str = "people";
/// Name of the object `bench` updates.
const BENCH: &str = "linked-bench";
/// Longest name a node holds.
const MAX_NAME: usize = 112;

/// The head's base struct.
#[repr(C)]
struct ListHead {
    first: InvPtr<Node>,
    /// The last node's object (appends link from it), null for an empty list.
    last: ObjId,
    count: u64,
}
// SAFETY: integers, an ID and an invariant pointer.
unsafe impl Persistent for ListHead {}

/// A node's base struct.
#[repr(C)]
struct Node {
    next: InvPtr<Node>,
    /// Allocated inside the node's object.
    name: InvPtr<Name>,
}
// SAFETY: invariant pointers only.
unsafe impl Persistent for Node {}

/// A name string, allocated in its node's object.
#[repr(C)]
struct Name {
    len: u64,
    bytes: [u8; MAX_NAME],
}
// SAFETY: integers only.
unsafe impl Persistent for Name {}

/// What can end a run with an error.
enum Error {
    Obj(ObjError),
    Tx(TxError),
    Usage(&'static str),
    Corrupt(&'static str),
}

impl From<ObjError> for Error {
    fn from(e: ObjError) -> Self {
        Error::Obj(e)
    }
}
impl From<TxError> for Error {
    fn from(e: TxError) -> Self {
        Error::Tx(e)
    }
}

/// `main`'s error report uses `Debug`: make it the readable message.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Obj(e) => write!(f, "{e}"),
            Error::Tx(e) => write!(f, "{e}"),
            Error::Usage(u) => write!(f, "usage: linked {u}"),
            Error::Corrupt(what) => write!(f, "the list is damaged: {what}"),
        }
    }
}

fn main() -> Result<(), Error> {
    let args = twz_rt::args();
    match args.get_str(1).unwrap_or("") {
        "add" => {
            let name = args.get_str(2).ok_or(Error::Usage("add NAME"))?;
            append(&head()?, name.as_bytes())?;
            println!("added {name}");
            Ok(())
        }
        "show" => match open_head()? {
            Some(head) => walk(&head, |name| {
                println!("{}", core::str::from_utf8(name).unwrap_or("<not UTF-8>"))
            }),
            None => Ok(()),
        },
        "count" => {
            let count = match open_head()? {
                Some(head) => head.base()?.count,
                None => 0,
            };
            println!("{count}");
            Ok(())
        }
        "bulk" => bulk(
            args.get_str(2)
                .and_then(|n| n.parse().ok())
                .ok_or(Error::Usage("bulk N PREFIX"))?,
            args.get_str(3).ok_or(Error::Usage("bulk N PREFIX"))?,
        ),
        "bench" => bench(),
        _ => Err(Error::Usage(
            "add NAME | show | count | bulk N PREFIX | bench",
        )),
    }
}

/// The list head, created on first use.
fn head() -> Result<Object<ListHead>, ObjError> {
    match Object::open_named(HEAD) {
        Err(ObjError::NoSuchName) => Object::create_named(HEAD),
        r => r,
    }
}

/// The list head, or `None` before the first `add` (an empty list).
fn open_head() -> Result<Option<Object<ListHead>>, ObjError> {
    match Object::open_named(HEAD) {
        Ok(o) => Ok(Some(o)),
        Err(ObjError::NoSuchName) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Appends a node holding `name` to the list, all in one transaction anchored at the head.
fn append(head: &Object<ListHead>, name: &[u8]) -> Result<(), Error> {
    if name.len() > MAX_NAME {
        return Err(Error::Usage("add NAME (at most 112 bytes)"));
    }
    let node = Object::<Node>::create()?;
    let mut text = Name {
        len: name.len() as u64,
        bytes: [0; MAX_NAME],
    };
    text.bytes[..name.len()].copy_from_slice(name);

    let mut tx = head.tx()?;
    let name_at = tx.alloc(&node, text)?;
    // SAFETY: nothing else refers into the new node's base while this reference lives.
    tx.write(
        unsafe { &mut node.raw_mut()?.name },
        InvPtr::local(name_at)?,
    )?;
    let last = head.base()?.last;
    if last.is_null() {
        let to_node = InvPtr::new(head, &node, BASE_OFFSET)?;
        // SAFETY: the head's base is not otherwise borrowed here.
        tx.write(unsafe { &mut head.raw_mut()?.first }, to_node)?;
    } else {
        let prev = Object::<Node>::open(last)?;
        let to_node = InvPtr::new(&prev, &node, BASE_OFFSET)?;
        // SAFETY: the previous node's base is not otherwise borrowed here.
        tx.write(unsafe { &mut prev.raw_mut()?.next }, to_node)?;
    }
    // SAFETY: the head's base is not otherwise borrowed while `h` lives.
    let h = unsafe { head.raw_mut()? };
    tx.write(&mut h.last, node.id())?;
    let count = h.count + 1;
    tx.write(&mut h.count, count)?;
    tx.commit()?;
    Ok(())
}

/// Calls `each` with every name in list order; refuses a list whose length disagrees with the
/// head's count (a torn list).
fn walk(head: &Object<ListHead>, mut each: impl FnMut(&[u8])) -> Result<(), Error> {
    let h = head.base()?;
    let count = h.count;
    let mut link = &h.first;
    let mut seen = 0u64;
    while !link.is_null() {
        if seen == count {
            return Err(Error::Corrupt("more nodes than the count"));
        }
        let node = link.resolve()?;
        let name = node.name.resolve()?;
        let len = (name.len as usize).min(MAX_NAME);
        each(&name.bytes[..len]);
        seen += 1;
        link = &node.next;
    }
    if seen != count {
        return Err(Error::Corrupt("fewer nodes than the count"));
    }
    Ok(())
}

fn bulk(n: u64, prefix: &str) -> Result<(), Error> {
    let head = head()?;
    let mut name = Vec::new();
    for i in 0..n {
        name.clear();
        name.extend_from_slice(prefix.as_bytes());
        name.push(b'-');
        push_decimal(&mut name, i);
        append(&head, &name)?;
        println!("committed {i}");
    }
    Ok(())
}

fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let start = out.len();
    loop {
        out.push(b'0' + (v % 10) as u8);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out[start..].reverse();
}

/// Iterations per measurement without flushes, and with (each commit then waits for the host).
const ITERS: usize = 20_000;
const DURABLE_ITERS: usize = 200;

/// Median nanoseconds of `f` over `iters` calls, timed one by one with rdtsc.
fn median_ns(iters: usize, mut f: impl FnMut() -> Result<(), Error>) -> Result<u64, Error> {
    let mut ticks = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = rdtsc();
        f()?;
        ticks.push(rdtsc() - t0);
    }
    ticks.sort_unstable();
    let hz = twz_rt::boot::info().tsc_hz.max(1);
    Ok((u128::from(ticks[iters / 2]) * 1_000_000_000 / u128::from(hz)) as u64)
}

#[repr(C)]
struct Counter {
    value: u64,
}
// SAFETY: an integer.
unsafe impl Persistent for Counter {}

fn bench() -> Result<(), Error> {
    let obj = match Object::<Counter>::open_named(BENCH) {
        Err(ObjError::NoSuchName) => Object::create_named(BENCH)?,
        r => r?,
    };
    let durability = twz_rt::boot::info().durability;
    let iters = if durability == 0 {
        ITERS
    } else {
        DURABLE_ITERS
    };
    let mut v = 0u64;
    let update = median_ns(iters, || {
        v += 1;
        let mut tx = obj.tx()?;
        // SAFETY: nothing else refers into the base while this reference lives.
        tx.write(unsafe { &mut obj.raw_mut()?.value }, v)?;
        tx.commit()?;
        Ok(())
    })?;
    if obj.base()?.value != v {
        return Err(Error::Corrupt("the bench counter lost an update"));
    }
    let alloc_free = median_ns(iters, || {
        let mut tx = obj.tx()?;
        let at = tx.alloc(&obj, 0u64)?;
        tx.free(&obj, at)?;
        tx.commit()?;
        Ok(())
    })?;
    println!("tx update 8 B: {update} ns (median of {iters}, durability {durability})");
    println!("tx alloc+free: {alloc_free} ns (median of {iters})");
    Ok(())
}
