//! Persistent objects from a guest: `objdemo build` links a named root object and three node
//! objects with invariant pointers; `objdemo walk` (in a later run) follows them and prints the
//! values in order. The other subcommands show each error case, and `bench` measures mapping
//! and dereferencing (see `vmm/benches/objects.rs`).
//!
//! Subcommands: build, walk, null, dangling, range, evict N, unmapped, readonly, far, far-check,
//! bench, chase MIB (the latency of a dependent load from memory: in guest RAM and in an object).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;

use twz_rt::abi::layout::{BASE_OFFSET, DATA_END, LOG_OFFSET};
use twz_rt::abi::memmap::slot_addr;
use twz_rt::object::{sys, InvPtr, ObjError, Object, Persistent};
use twz_rt::time::Instant;
use twz_rt::{eprintln, println};

twz_rt::entry!(main);

/// Name of the root object.
const ROOT: &str = "objdemo-root";

/// The root's base struct.
#[repr(C)]
struct Root {
    first: InvPtr<Node>,
    count: u64,
}
// SAFETY: integers and invariant pointers only.
unsafe impl Persistent for Root {}

/// A node's base struct.
#[repr(C)]
struct Node {
    value: u64,
    next: InvPtr<Node>,
    /// Points where `next` does (so the two share one FOT entry).
    also: InvPtr<Node>,
    /// Back to the root, by name (a named FOT entry), in the last node.
    root: InvPtr<Root>,
}
// SAFETY: integers and invariant pointers only.
unsafe impl Persistent for Node {}

fn main() -> Result<(), ObjError> {
    let args = twz_rt::args();
    let cmd = args.get_str(1).unwrap_or("");
    match cmd {
        "build" => build(),
        "walk" => walk(),
        "null" => show(InvPtr::<u64>::NULL),
        "dangling" => show(InvPtr::<u64>::from_raw(twz_rt::abi::ptr::InvPtr(
            (77 << 32) | BASE_OFFSET,
        ))),
        "range" => show(InvPtr::<u64>::from_raw(twz_rt::abi::ptr::InvPtr(
            DATA_END + 64,
        ))),
        "evict" => evict(args.get_str(2).and_then(|s| s.parse().ok()).unwrap_or(6)),
        "unmapped" => unmapped(),
        "readonly" => readonly(),
        "far" => far(),
        "far-check" => far_check(),
        "bench" => bench(),
        "chase" => chase(args.get_str(2).and_then(|s| s.parse().ok()).unwrap_or(512)),
        _ => {
            eprintln!(
                "usage: objdemo build|walk|null|dangling|range|evict N|unmapped|readonly|far|far-check|bench|chase [MIB]"
            );
            twz_rt::exit(2)
        }
    }
}

fn build() -> Result<(), ObjError> {
    let root = Object::<Root>::create_named(ROOT)?;
    let nodes = [
        Object::<Node>::create()?,
        Object::<Node>::create()?,
        Object::<Node>::create()?,
    ];
    for (i, n) in nodes.iter().enumerate() {
        // SAFETY: no other reference into this node is alive.
        let node = unsafe { n.raw_mut()? };
        node.value = 100 * (i as u64 + 1);
        if let Some(next) = nodes.get(i + 1) {
            node.next = InvPtr::new(n, next, BASE_OFFSET)?;
            node.also = InvPtr::new(n, next, BASE_OFFSET)?;
            println!(
                "node {} fot: next {} also {} (dedup)",
                i + 1,
                node.next.raw().fot_index(),
                node.also.raw().fot_index()
            );
        } else {
            node.root = InvPtr::named(n, ROOT, BASE_OFFSET)?;
        }
    }
    // SAFETY: no other reference into the root is alive.
    let r = unsafe { root.raw_mut()? };
    r.first = InvPtr::new(&root, &nodes[0], BASE_OFFSET)?;
    r.count = nodes.len() as u64;
    for n in &nodes {
        n.flush()?;
    }
    root.flush()?;
    println!("built {} nodes under {ROOT} ({})", nodes.len(), root.id());
    Ok(())
}

fn walk() -> Result<(), ObjError> {
    let root = Object::<Root>::open_named(ROOT)?;
    let r = root.base()?;
    println!("root count {}", r.count);
    let mut node = r.first.resolve()?;
    loop {
        println!("value {}", node.value);
        if node.next.is_null() {
            break;
        }
        node = node.next.resolve()?;
    }
    let back = node.root.resolve()?;
    println!("last node leads back to a root of {} nodes", back.count);
    Ok(())
}

/// Stores `p` in a fresh object, resolves it there, and reports the error.
fn show(p: InvPtr<u64>) -> Result<(), ObjError> {
    let o = Object::<InvPtr<u64>>::create()?;
    // SAFETY: no other reference into the object is alive.
    unsafe { *o.raw_mut()? = p };
    match o.base()?.resolve() {
        Ok(v) => println!("resolved to {v}"),
        Err(e) => println!("resolve error: {e}"),
    }
    Ok(())
}

/// Creates `n` objects holding their index, then reads them all back (more than the slot
/// budget: the least recently mapped ones are evicted and mapped again).
fn evict(n: u64) -> Result<(), ObjError> {
    let objs: Vec<Object<u64>> = (0..n).map(|_| Object::create()).collect::<Result<_, _>>()?;
    for (i, o) in objs.iter().enumerate() {
        // SAFETY: nothing else refers into the object.
        unsafe { *o.raw_mut()? = 1000 + i as u64 };
    }
    for round in 0..2 {
        for (i, o) in objs.iter().enumerate() {
            let v = *o.base()?;
            if v != 1000 + i as u64 {
                println!("evict: object {i} read {v} in round {round}");
                twz_rt::exit(1);
            }
        }
    }
    println!("evict: {n} objects read back correctly twice");
    Ok(())
}

/// Unmaps an object, then touches its old slot: the run ends with a fault naming the slot.
fn unmapped() -> Result<(), ObjError> {
    let o = Object::<u64>::create()?;
    // SAFETY: nothing else refers into the object.
    unsafe { *o.raw_mut()? = 5 };
    let slot = o.slot();
    println!("read {} from slot {slot}; unmapping it", o.base()?);
    sys::unmap(slot)?;
    let addr = slot_addr(slot as u64) + BASE_OFFSET;
    // SAFETY: deliberately touches an address that is no longer mapped; the VMM ends the run.
    let v = unsafe { core::ptr::read_volatile(addr as *const u64) };
    println!("still read {v}: stale translation!");
    Ok(())
}

/// Maps an object read-only and stores to it: the hypervisor refuses, the run ends with a fault.
fn readonly() -> Result<(), ObjError> {
    let o = Object::<u64>::create()?;
    let id = o.id();
    sys::unmap(o.slot())?;
    let ro = Object::<u64>::open_readonly(id)?;
    println!("read {} through a read-only mapping", ro.base()?);
    // SAFETY: `raw_mut` wants no other reference into the base struct alive while its result
    // is: none is (the `base()` above was a temporary), and the result is not even used.
    match unsafe { ro.raw_mut() } {
        Err(e) => println!("raw_mut refused: {e}"),
        Ok(_) => println!("raw_mut allowed on a read-only object!"),
    }
    let addr = ro.addr()? + BASE_OFFSET + 8;
    // SAFETY: deliberately stores to a read-only mapping; the VMM ends the run.
    unsafe { core::ptr::write_volatile(addr as *mut u64, 1) };
    println!("store to a read-only object went through!");
    Ok(())
}

/// Name of the object `far` writes.
const FAR: &str = "objdemo-far";
/// Offsets `far` writes, each in a chunk of the object the VMM backs only when touched: just past
/// the first 2 MiB, deep in the low half, in the top half, and in the transaction log.
const FAR_OFFSETS: [u64; 4] = [0x30_0000, 0x1280_0000, 0x2bc0_0000, LOG_OFFSET + 0x1000];
/// A 4 KiB block `far` copies with `copy_nonoverlapping` (wide loads and stores) this far in.
const FAR_BLOCK: u64 = 0x1f00_0000;

/// The value `far` stores at `off`.
fn far_value(off: u64) -> u64 {
    0x7477_7a00_0000_0000 | off
}

/// Writes values far beyond the data the object was created with (plain and wide stores), reads
/// them back and flushes: each first touch of a chunk goes through the VMM.
fn far() -> Result<(), ObjError> {
    let o = Object::<u64>::create_named(FAR)?;
    let base = o.addr()?;
    for off in FAR_OFFSETS {
        // SAFETY: inside the writable object nothing else refers to; the VMM backs it on touch.
        unsafe { core::ptr::write_volatile((base + off) as *mut u64, far_value(off)) };
    }
    let block: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    // SAFETY: 4 KiB inside the same object, not overlapping `block` (guest RAM).
    unsafe {
        core::ptr::copy_nonoverlapping(block.as_ptr(), (base + FAR_BLOCK) as *mut u8, block.len())
    };
    far_check_in(&o)?;
    o.flush()?;
    println!("far: wrote {} values and a 4 KiB block", FAR_OFFSETS.len());
    Ok(())
}

/// In a later run: the values `far` wrote are there (first touches are on-demand loads).
fn far_check() -> Result<(), ObjError> {
    far_check_in(&Object::<u64>::open_named(FAR)?)?;
    println!("far-check: all values read back");
    Ok(())
}

fn far_check_in(o: &Object<u64>) -> Result<(), ObjError> {
    let base = o.addr()?;
    for off in FAR_OFFSETS {
        // SAFETY: inside the mapped object.
        let v = unsafe { core::ptr::read_volatile((base + off) as *const u64) };
        if v != far_value(off) {
            println!("far: read {v:#x} at {off:#x}");
            twz_rt::exit(1);
        }
    }
    let mut block = [0u8; 4096];
    // SAFETY: 4 KiB inside the mapped object, into a local buffer.
    unsafe {
        core::ptr::copy_nonoverlapping((base + FAR_BLOCK) as *const u8, block.as_mut_ptr(), 4096)
    };
    if block.iter().enumerate().any(|(i, b)| *b != (i % 251) as u8) {
        println!("far: the 4 KiB block differs");
        twz_rt::exit(1);
    }
    Ok(())
}

/// ns taken by the first load at `offset` of `o`.
fn first_load(o: &Object<u64>, offset: u64) -> Result<u64, ObjError> {
    let p = (o.addr()? + offset) as *const u64;
    let t = Instant::now();
    // SAFETY: inside the mapped object.
    black_box(unsafe { core::ptr::read_volatile(p) });
    Ok(t.elapsed().as_nanos() as u64)
}

/// `r`, opaque to the optimizer (so a loop must load through it every iteration) but kept in a
/// register: `black_box` would store and reload it through the stack each time, and whether that
/// stack slot 4K-aliases the loads that follow changes with code layout (0.3 ns swings).
#[inline(always)]
fn opaque<T>(r: &T) -> &T {
    let mut p = r as *const T;
    // SAFETY: an empty asm block that only claims to change `p`; it leaves it as it was.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) p, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: `p` is still `r`.
    unsafe { &*p }
}

/// Iterations per timed try: short enough (~0.1-0.3 ms) that many tries run without the vCPU
/// thread being descheduled on a loaded host.
const DEREFS: u64 = 1 << 16;
/// Timed tries per figure.
const TRIES: usize = 201;

/// ns per iteration of one timed try of `f` (`DEREFS` iterations).
#[inline(always)]
fn try_once(f: &mut impl FnMut() -> u64) -> f64 {
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..DEREFS {
        sum = sum.wrapping_add(f());
    }
    black_box(sum);
    t.elapsed().as_nanos() as f64 / DEREFS as f64
}

/// ns per iteration of each of `a`, `b`, `c`: the best of `TRIES` tries of each, taken in turn
/// so that all three see the same machine (the host is shared, a busy sibling hyperthread slows
/// everything for a while, and interference only ever adds time).
fn per_iter3(
    mut a: impl FnMut() -> u64,
    mut b: impl FnMut() -> u64,
    mut c: impl FnMut() -> u64,
) -> [f64; 3] {
    let mut best = [f64::INFINITY; 3];
    for _ in 0..TRIES {
        best[0] = best[0].min(try_once(&mut a));
        best[1] = best[1].min(try_once(&mut b));
        best[2] = best[2].min(try_once(&mut c));
    }
    best
}

fn bench() -> Result<(), ObjError> {
    // First map into slots this run never used (no memslots behind them yet).
    let mut fresh: Vec<u64> = Vec::new();
    let mut held = Vec::new();
    for _ in 0..16 {
        let id = sys::create(None)?;
        let t = Instant::now();
        let o = Object::<u64>::open(id)?;
        black_box(*o.base()?);
        fresh.push(t.elapsed().as_nanos() as u64);
        held.push(o);
    }
    for o in &held {
        sys::unmap(o.slot())?;
    }
    fresh.sort_unstable();
    println!("fresh first_map_fresh_ns={}", fresh[fresh.len() / 2]);
    // First map: create objects, unmap them, time mapping each again.
    let ids: Vec<_> = (0..16)
        .map(|_| {
            let o = Object::<u64>::create()?;
            sys::unmap(o.slot())?;
            Ok(o.id())
        })
        .collect::<Result<_, ObjError>>()?;
    // Host call to usable pointer: map, then the first load through it; then the first load of
    // another page of the same (backed) chunk.
    let mut maps: Vec<u64> = Vec::new();
    let mut pages: Vec<u64> = Vec::new();
    let mut calls: Vec<u64> = Vec::new();
    let mut loads: Vec<u64> = Vec::new();
    let mut hits: Vec<u64> = Vec::new();
    for id in &ids {
        let t = Instant::now();
        let o = Object::<u64>::open(*id)?;
        let t_call = t.elapsed().as_nanos() as u64;
        black_box(*o.base()?);
        maps.push(t.elapsed().as_nanos() as u64);
        calls.push(t_call);
        loads.push(maps[maps.len() - 1] - t_call);
        let t = Instant::now();
        black_box(sys::map(*id, true, None)?);
        hits.push(t.elapsed().as_nanos() as u64);
        pages.push(first_load(&o, 0x1_0000)?);
        sys::unmap(o.slot())?;
    }
    calls.sort_unstable();
    loads.sort_unstable();
    hits.sort_unstable();
    println!(
        "parts map_call_ns={} first_load_ns={} map_hit_ns={}",
        calls[calls.len() / 2],
        loads[loads.len() / 2],
        hits[hits.len() / 2]
    );
    // The first load of a chunk the VMM has not backed for this object yet (300 MiB in). Done
    // after the first maps: the slot keeps that chunk's memslot, so it would make later remaps
    // of the slot pay for a 256 MiB MMU-notifier walk.
    let mut faults: Vec<u64> = Vec::new();
    for id in &ids {
        let o = Object::<u64>::open(*id)?;
        faults.push(first_load(&o, 0x1280_0000)?);
        sys::unmap(o.slot())?;
    }
    maps.sort_unstable();
    faults.sort_unstable();
    pages.sort_unstable();
    let page_fault = pages[pages.len() / 2];
    let chunk_fault = faults[faults.len() / 2];
    let first_map = maps[maps.len() / 2];

    #[repr(C)]
    struct Pair {
        local: InvPtr<u64>,
        cross: InvPtr<u64>,
        value: u64,
        /// A native pointer to `value`, stored beside the invariant ones: the baseline.
        native: u64,
    }
    // SAFETY: integers and invariant pointers only.
    unsafe impl Persistent for Pair {}
    let a = Object::<Pair>::create()?;
    let b = Object::<u64>::create()?;
    // SAFETY: nothing else refers into these objects.
    unsafe {
        *b.raw_mut()? = 7;
        let p = a.raw_mut()?;
        p.value = 7;
        p.local = InvPtr::local(BASE_OFFSET + 16)?;
        p.native = a.addr()? + BASE_OFFSET + 16;
        p.cross = InvPtr::new(&a, &b, BASE_OFFSET)?;
    }
    let pair = a.base()?;
    pair.cross.resolve()?; // fill the cache
                           // Each loop loads a pointer stored in the object, then what it points to.
    let [raw_ns, local_ns, cross_ns] = per_iter3(
        || {
            // SAFETY: `native` points at the mapped object's value.
            unsafe { *(opaque(pair).native as *const u64) }
        },
        || opaque(pair).local.resolve().map_or(0, |v| *v),
        || opaque(pair).cross.resolve().map_or(0, |v| *v),
    );
    println!(
        "bench first_map_ns={first_map} chunk_fault_ns={chunk_fault} page_fault_ns={page_fault} raw_ns={raw_ns:.3} local_ns={local_ns:.3} cross_ns={cross_ns:.3}"
    );
    Ok(())
}

/// Dependent loads timed by [`chase`].
const CHASE_LOADS: u64 = 2_000_000;

/// Times dependent loads through a random cycle over the 64-byte lines of `mib` MiB, first in
/// guest RAM (the heap: 2 MiB pages) and then in a fresh object (pages as the run backs them),
/// and prints `chase ram_ns=... object_ns=...`: each the average of [`CHASE_LOADS`] loads. This
/// is what a read of a cold key waits for, once per dependent miss. The object is deleted after.
fn chase(mib: u64) -> Result<(), ObjError> {
    let bytes = (mib.clamp(1, 768)) << 20;
    let words = (bytes / 8) as usize;
    let mut ram: Vec<u64> = Vec::new();
    if ram.try_reserve_exact(words).is_err() {
        eprintln!("objdemo chase: {mib} MiB do not fit in guest RAM (give `run --mem` more)");
        twz_rt::exit(2);
    }
    ram.resize(words, 0);
    // SAFETY: `ram` holds `words` words.
    let ram_ns = unsafe { chase_in(ram.as_mut_ptr(), words) };
    drop(ram);
    let o = Object::<u64>::create()?;
    // A writable object's data region, from BASE_OFFSET on, is ours to store into; 768 MiB at
    // most fit below DATA_END.
    let base = (o.addr()? + BASE_OFFSET) as *mut u64;
    // SAFETY: as just said, `words` words from `base` lie in the object's data region.
    let object_ns = unsafe { chase_in(base, words) };
    let id = o.id();
    sys::unmap(o.slot())?;
    sys::delete(id)?;
    println!("chase ram_ns={ram_ns:.1} object_ns={object_ns:.1}");
    Ok(())
}

/// Links the lines of `words` words at `base` into one random cycle (Sattolo's shuffle), then
/// follows it for [`CHASE_LOADS`] loads; returns ns per load.
///
/// # Safety
/// `base` must be valid for reads and writes of `words` words, 8-aligned, and not otherwise
/// referenced meanwhile.
unsafe fn chase_in(base: *mut u64, words: usize) -> f64 {
    let lines = words / 8;
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % i as u64) as usize);
    }
    for (i, &line) in order.iter().enumerate() {
        let next = order[(i + 1) % lines] as u64 * 8;
        // SAFETY: `line * 8 < words`: every store lands inside the caller's `words` words.
        unsafe { base.add(line as usize * 8).write_volatile(next) };
    }
    let t = Instant::now();
    let mut at = 0u64;
    for _ in 0..CHASE_LOADS {
        // SAFETY: every stored link is a line's first word, below `words`.
        at = unsafe { base.add(at as usize).read_volatile() };
    }
    black_box(at);
    t.elapsed().as_nanos() as f64 / CHASE_LOADS as f64
}
