//! Persistent objects side by side, in one run: pointer dereference in the guest (raw, intra-
//! object and cached cross-object invariant pointers, from `objdemo bench`) against a raw
//! pointer on the host and PMDK's `pmemobj_direct` (one pool, two pools); an 8-byte
//! transactional update in the guest (`linked bench`) against PMDK's; the first map of an
//! object; and what one dependent load from memory costs in a guest object, in guest RAM and on
//! the host (`objdemo chase` against `reference/chase.c`), the wait behind every cold read of the
//! key-value store.
//!
//! `cargo bench -p twz-vmm --bench objects` (needs /dev/kvm). The PMDK rows need a C compiler and
//! `libpmemobj-dev`: the bench compiles `reference/pmdk_objects.c` when it runs and otherwise
//! prints `PMDK rows skipped` and the rest of the table.

#[path = "reference/harness.rs"]
mod harness;

use std::path::Path;

use harness::{figure, result, results, row, ResultLine};

/// `statfs` magic numbers of the filesystems the PMDK pools may land on.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const EXT4_MAGIC: i64 = 0xEF53;

/// A short name of the filesystem `dir` is on.
fn fs_name(dir: &Path) -> &'static str {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return "?";
    };
    // SAFETY: `statfs` only writes into the zeroed struct we pass; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "?";
    }
    match st.f_type as i64 {
        TMPFS_MAGIC => "tmpfs",
        EXT4_MAGIC => "ext4",
        _ => "other fs",
    }
}

/// The PMDK reference figures, or `None` (after saying why) when they cannot be had.
struct Pmdk {
    derefs: Vec<ResultLine>,
    /// (label, RESULT lines) of each transaction run.
    tx: Vec<(String, Vec<ResultLine>)>,
}

fn pmdk(build_dir: &Path) -> Option<Pmdk> {
    let prog = harness::build_c(
        build_dir,
        "pmdk_objects",
        &[harness::reference_source("pmdk_objects.c")],
        &[],
        &["-lpmemobj"],
        "PMDK rows skipped: install libpmemobj-dev (and a C compiler)",
    )?;
    let shm = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .ok()?;
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .or_else(|_| tempfile::tempdir())
        .ok()?;
    let shm_dir = shm.path().to_str()?;
    let disk_dir = disk.path().to_str()?;
    let derefs = results(&harness::output(&prog, &[shm_dir], &[])?);
    let mut tx = vec![(format!("{}, msync", fs_name(shm.path())), derefs.clone())];
    let runs = [
        (disk_dir, None, format!("{}, msync", fs_name(disk.path()))),
        (
            shm_dir,
            Some(("PMEM_IS_PMEM_FORCE", "1")),
            format!("{}, PMEM_IS_PMEM_FORCE=1", fs_name(shm.path())),
        ),
    ];
    for (dir, env, label) in runs {
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        if let Some(out) = harness::output(&prog, &[dir, "--tx-only"], &env) {
            tx.push((label, results(&out)));
        }
    }
    Some(Pmdk { derefs, tx })
}

fn main() {
    if std::fs::metadata("/dev/kvm").is_err() {
        println!("objects bench skipped: /dev/kvm not available");
        return;
    }
    let Ok(store) = tempfile::tempdir() else {
        println!("objects bench skipped: no temporary directory");
        return;
    };
    let Some(dir) = store.path().to_str() else {
        return;
    };
    let objdemo = harness::vmm(&["--store", dir, "run", "objdemo", "--", "bench"]);
    let obj = |key: &str| objdemo.as_deref().and_then(|o| figure(o, key, " "));
    let tx_none = harness::vmm(&[
        "--store",
        dir,
        "run",
        "linked",
        "--durability",
        "none",
        "--",
        "bench",
    ]);
    let tx_commit = harness::vmm(&[
        "--store",
        dir,
        "run",
        "linked",
        "--durability",
        "commit",
        "--",
        "bench",
    ]);
    let tx_ns = |out: &Option<String>| {
        out.as_deref()
            .and_then(|o| figure(o, "tx update 8 B:", "ns"))
    };
    let pmdk = pmdk(store.path());

    let (raw, local, cross) = (obj("raw_ns="), obj("local_ns="), obj("cross_ns="));
    let ns = |x: Option<f64>| x.map(|x| format!("{x:.2} ns"));
    let added =
        |x: Option<f64>, base: Option<f64>| x.zip(base).map(|(x, r)| format!("{:+.2} ns", x - r));
    let us = |x: Option<f64>| x.map(|n| format!("{:.1} us", n / 1e3));
    let pm = |what: &str| {
        pmdk.as_ref()
            .and_then(|p| result(&p.derefs, &[("what", what)], "ns"))
    };
    let host_raw = pm("host_raw");

    let chase_guest = |huge: bool| {
        let mib = CHASE_MIB.to_string();
        let mut args = vec!["--store", dir, "run", "objdemo", "--mem", "1G"];
        if huge {
            args.push("--huge-pages");
        }
        args.extend(["--", "chase", &mib]);
        harness::vmm(&args)
    };
    let (chase_default, chase_huge) = (chase_guest(false), chase_guest(true));
    let chase_host = chase_reference(store.path());

    println!(
        "persistent objects, side by side ({}, load average {})",
        harness::now_utc(),
        harness::load_average()
    );
    println!("{:<60} {:>12}   target / note", "what", "figure");
    row(
        "guest: native pointer in an object, load + deref",
        ns(raw),
        "reference",
    );
    row(
        "guest: intra-object InvPtr resolve + load, added",
        added(local, raw),
        "<= 0.5 ns",
    );
    row(
        "guest: cached cross-object resolve + load, added",
        added(cross, raw),
        "<= 2 ns",
    );
    row(
        "host: native pointer in a pool, load + deref",
        ns(host_raw),
        "reference",
    );
    row(
        "host: PMDK pmemobj_direct, one pool, added",
        added(pm("pmdk_direct_one"), host_raw),
        "PMDK",
    );
    row(
        "host: PMDK pmemobj_direct, two pools, added",
        added(pm("pmdk_direct_two"), host_raw),
        "PMDK, alternating pools",
    );
    row(
        "guest: 8-byte tx update, durability none",
        tx_ns(&tx_none).map(|n| format!("{n:.0} ns")),
        "<= 300 ns",
    );
    row(
        "guest: 8-byte tx update, durability commit",
        us(tx_ns(&tx_commit)),
        &format!(
            "flush journal: a record + fdatasync ({})",
            fs_name(store.path())
        ),
    );
    for (label, lines) in pmdk.as_ref().map(|p| p.tx.as_slice()).unwrap_or(&[]) {
        let n = result(lines, &[("what", "pmdk_tx8")], "ns");
        let value = n.map(|n| {
            if n >= 10_000.0 {
                format!("{:.1} us", n / 1e3)
            } else {
                format!("{n:.0} ns")
            }
        });
        row(
            &format!("host: PMDK 8-byte tx update ({label})"),
            value,
            "PMDK",
        );
    }
    row(
        "guest: first map + first load (reused slot)",
        us(obj("first_map_ns=")),
        "<= 60 us",
    );
    row(
        "guest: first map + first load (fresh slot)",
        us(obj("first_map_fresh_ns=")),
        "<= 60 us",
    );
    row(
        "  of which: host call round trip (map hit)",
        us(obj("map_hit_ns=")),
        "PVM floor ~25 us",
    );
    row(
        "  of which: first load after the map",
        us(obj("first_load_ns=")),
        "shadow-MMU fault",
    );
    row(
        "guest: first load 300 MiB into an object (chunk)",
        us(obj("chunk_fault_ns=")),
        "reference",
    );
    row(
        "guest: first load of another page near the base",
        us(obj("page_fault_ns=")),
        "reference",
    );
    let chase = |out: &Option<String>, key: &str| {
        out.as_deref()
            .and_then(|o| figure(o, key, " "))
            .map(|n| format!("{n:.0} ns"))
    };
    let host = |what: &str| {
        chase_host
            .as_ref()
            .and_then(|l| result(l, &[("what", what)], "ns"))
            .map(|n| format!("{n:.0} ns"))
    };
    println!();
    println!(
        "one dependent load from memory, a random walk over {CHASE_MIB} MiB (2M loads each; objects on {})",
        fs_name(store.path())
    );
    row(
        "guest: RAM (2 MiB pages)",
        chase(&chase_default, "ram_ns="),
        "reference",
    );
    row(
        "guest: object, as `run` backs it (4 KiB pages)",
        chase(&chase_default, "object_ns="),
        "",
    );
    row(
        "guest: object, `run --huge-pages` (2 MiB pages)",
        chase(&chase_huge, "object_ns="),
        "",
    );
    row(
        "host: file mapped shared, written page by page (4 KiB)",
        host("file"),
        "",
    );
    row("host: anonymous memory, 4 KiB pages", host("anon"), "");
    row("host: anonymous memory, 2 MiB pages", host("huge"), "");
}

/// MiB the memory-latency rows walk: far beyond the caches, as the key-value store's 1 GB.
const CHASE_MIB: u64 = 512;

/// The host's memory-latency figures (`reference/chase.c`), or `None` (after saying why).
fn chase_reference(build_dir: &Path) -> Option<Vec<ResultLine>> {
    let prog = harness::build_c(
        build_dir,
        "chase",
        &[harness::reference_source("chase.c")],
        &[],
        &[],
        "host memory rows skipped: no C compiler",
    )?;
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .or_else(|_| tempfile::tempdir())
        .ok()?;
    let out = harness::output(&prog, &[disk.path().to_str()?, &CHASE_MIB.to_string()], &[])?;
    Some(results(&out))
}
