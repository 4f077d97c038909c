//! A linked list across persistent objects, updated in transactions: the list head is the named
//! object `people`, each entry is a node object of its own whose name string is allocated
//! inside it, and the links are invariant pointers (FOT entries).
//!
//! - `add NAME`: appends a node holding NAME, in one transaction anchored at `people`.
//! - `show`: walks the list and prints the names in order, one a line.
//! - `count`: prints the count kept in the head.
//!
//! `show` and `count` map every object read-only, so a read capability is enough:
//! `twz-vmm cap grant --target people --reachable --accessor reader --perms r -o r.cap`, then
//! `twz-vmm run linked --ctx reader --cap r.cap -- show`; `add` under it is refused with the
//! hypervisor's reason ("cannot map object <id> writable: capability r.cap grants r--- but not
//! write") and changes nothing.
//! - `bulk N PREFIX`: appends `PREFIX-0` .. `PREFIX-{N-1}`, one transaction each, printing
//!   `committed I` after each commit (the crash test kills the VMM in the middle).
//! - `bench`: median cost of an 8-byte transactional update and of alloc+free in a transaction.
//! - `transfer N`: N transfers between two account objects (`linked-acct-a`, `linked-acct-b`),
//!   each one transaction that takes an amount from one balance, adds it to the other and counts
//!   the transfer, printing `committed I` (I = the transfer's number since the accounts were
//!   opened) after each commit; the crash test kills the VMM in the middle.
//! - `accounts`: prints `accounts transfers=N a=A b=B` (N transfers applied; the balances, in
//!   wrapping 64-bit arithmetic, follow from N: see [`transfer_amount`]).
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
        "transfer" => transfer(
            args.get_str(2)
                .and_then(|n| n.parse().ok())
                .ok_or(Error::Usage("transfer N"))?,
        ),
        "accounts" => accounts(),
        _ => Err(Error::Usage(
            "add NAME | show | count | bulk N PREFIX | bench | transfer N | accounts",
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

/// The list head mapped read-only (all `show` and `count` need, so a read-only capability
/// suffices), or `None` before the first `add` (an empty list).
fn open_head() -> Result<Option<Object<ListHead>>, ObjError> {
    match twz_rt::object::sys::lookup(HEAD) {
        Ok(id) => Object::open_readonly(id).map(Some),
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

/// Names of the two objects `transfer` moves value between.
const ACCOUNTS: [&str; 2] = ["linked-acct-a", "linked-acct-b"];
/// Each account's balance when the accounts are set up.
const OPENING: u64 = 1_000_000;

/// An account's base struct. Account A's `transfers` counts the transfers applied (B's stays 0).
#[repr(C)]
struct Account {
    balance: u64,
    transfers: u64,
}
// SAFETY: integers only.
unsafe impl Persistent for Account {}

/// The amount of transfer number `i` and its direction: even numbers move from A to B, odd ones
/// back. The crash test computes the same to know what the balances must be after N transfers.
fn transfer_amount(i: u64) -> (u64, bool) {
    (1 + i.wrapping_mul(7919) % 1000, i.is_multiple_of(2))
}

fn account(name: &str) -> Result<Object<Account>, ObjError> {
    match Object::open_named(name) {
        Err(ObjError::NoSuchName) => Object::create_named(name),
        r => r,
    }
}

/// Moves value between the two accounts `n` times, one transaction each (anchored at A, it
/// updates both objects).
fn transfer(n: u64) -> Result<(), Error> {
    let a = account(ACCOUNTS[0])?;
    let b = account(ACCOUNTS[1])?;
    let fresh = {
        let (x, y) = (a.base()?, b.base()?);
        x.balance == 0 && y.balance == 0 && x.transfers == 0
    };
    if fresh {
        let mut tx = a.tx()?;
        // SAFETY: neither base is otherwise borrowed while these references live.
        tx.write(unsafe { &mut a.raw_mut()?.balance }, OPENING)?;
        // SAFETY: as above.
        tx.write(unsafe { &mut b.raw_mut()?.balance }, OPENING)?;
        tx.commit()?;
    }
    for _ in 0..n {
        let i = a.base()?.transfers;
        let (amount, a_to_b) = transfer_amount(i);
        let (from, to) = if a_to_b { (&a, &b) } else { (&b, &a) };
        let mut tx = a.tx()?;
        let take = from.base()?.balance.wrapping_sub(amount);
        // SAFETY: each base is borrowed mutably once at a time, only for its `write`.
        tx.write(unsafe { &mut from.raw_mut()?.balance }, take)?;
        let give = to.base()?.balance.wrapping_add(amount);
        // SAFETY: as above.
        tx.write(unsafe { &mut to.raw_mut()?.balance }, give)?;
        // SAFETY: as above.
        tx.write(unsafe { &mut a.raw_mut()?.transfers }, i + 1)?;
        tx.commit()?;
        println!("committed {i}");
    }
    Ok(())
}

/// Prints the transfer count and both balances (read-only opens; zeros before any `transfer`).
fn accounts() -> Result<(), Error> {
    let mut vals = [(0u64, 0u64); 2];
    for (v, name) in vals.iter_mut().zip(ACCOUNTS) {
        match twz_rt::object::sys::lookup(name) {
            Ok(id) => {
                let o = Object::<Account>::open_readonly(id)?;
                let acct = o.base()?;
                *v = (acct.balance, acct.transfers);
            }
            Err(ObjError::NoSuchName) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "accounts transfers={} a={} b={}",
        vals[0].1, vals[0].0, vals[1].0
    );
    Ok(())
}
