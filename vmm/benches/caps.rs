//! What capability checks cost, side by side in one run:
//!
//! - in the guest (rdtsc around `OBJ_MAP`, `sharer mapbench`): the first map of an object the
//!   guest created (no check), of an object the run's key owns (default context: the owner-key
//!   binding is read from the object's header once), and of an object granted by a capability
//!   under `--ctx` (Ed25519 `verify_strict` of the chain once); then a map of the same object
//!   after an unmap (cached: no signature; for capabilities, a hash of the chain and one
//!   revocation `stat` per link);
//! - on the host, the same check alone: `CapCache::verify_for_map` first and cached, and the
//!   owner-key read.
//!
//! `cargo bench -p twz-vmm --bench caps` (needs /dev/kvm). `TWZ_BENCH_OBJECTS` sets the number
//! of objects (default 32).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use abi::fot::perms::READ;
use object_store::{context_id, CapCache, CapChain, CreateOptions, Grant, Store, DEFAULT_KEY};

const VMM: &str = env!("CARGO_BIN_EXE_twz-vmm");

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `first_map_ns` and `remap_ns` from a `sharer mapbench`/`mapnew` run.
fn guest_maps(store: &Path, args: &[&str]) -> Option<(u64, u64)> {
    let out = Command::new(VMM)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "twz-vmm {:?} failed: {}",
            &args[..args.len().min(6)],
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let get = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    Some((get("first_map_ns")?, get("remap_ns")?))
}

fn median_ns(mut v: Vec<u128>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2] as f64
}

fn us(ns: Option<u64>) -> String {
    ns.map_or_else(|| "n/a".into(), |n| format!("{:.1} us", n as f64 / 1e3))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::fs::metadata("/dev/kvm").is_err() {
        println!("caps bench skipped: /dev/kvm not available");
        return Ok(());
    }
    let n: usize = std::env::var("TWZ_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
        .clamp(1, 200);
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("store");
    let store = Store::open(&root)?;
    let key = store.signing_key(DEFAULT_KEY)?;
    let ctx = context_id("bench");
    let mut ids = Vec::new();
    let mut chains = Vec::new();
    for _ in 0..n {
        let id = store.create(&CreateOptions::default())?;
        let grant = Grant {
            target: id,
            accessor: ctx,
            perms: READ,
            expires_ns: 0,
            delegate: None,
        };
        chains.push(CapChain::sign_root(&grant, &key)?);
        ids.push(id.to_string());
    }
    let cap = dir.path().join("bench.cap");
    std::fs::write(&cap, CapChain::encode_file(&chains))?;
    let cap = cap.to_string_lossy().into_owned();

    let id_args: Vec<&str> = ids.iter().map(String::as_str).collect();
    let with = |pre: &[&str]| -> Vec<String> {
        pre.iter()
            .copied()
            .chain(["--", "mapbench"])
            .chain(id_args.iter().copied())
            .map(String::from)
            .collect()
    };
    let default_args = with(&["run", "sharer", "--slots", "8"]);
    let ctx_args = with(&[
        "run", "sharer", "--slots", "8", "--ctx", "bench", "--cap", &cap,
    ]);
    // Warm the page cache of every object file once.
    let _ = guest_maps(&root, &refs(&default_args));
    let count = n.to_string();
    let created = guest_maps(&root, &["run", "sharer", "--", "mapnew", &count]);
    let owned = guest_maps(&root, &refs(&default_args));
    let granted = guest_maps(&root, &refs(&ctx_args));

    // The checks alone, on the host.
    let files: Vec<Vec<u8>> = chains.iter().map(CapChain::to_bytes).collect();
    let mut cache = CapCache::new();
    let (mut first, mut cached, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    for (c, bytes) in chains.iter().zip(&files) {
        let t = Instant::now();
        cache.verify_for_map(&store, bytes, c.target(), &ctx, 1)?;
        first.push(t.elapsed().as_nanos());
        let t = Instant::now();
        cache.verify_for_map(&store, bytes, c.target(), &ctx, 1)?;
        cached.push(t.elapsed().as_nanos());
        let t = Instant::now();
        store.owner_key(c.target())?;
        owner.push(t.elapsed().as_nanos());
    }

    println!("capability checks, {n} objects, medians");
    println!(
        "{:<58} {:>12} {:>12}",
        "map from the guest (OBJ_MAP round trip)", "first map", "map again"
    );
    let row = |what: &str, r: Option<(u64, u64)>| {
        println!(
            "{what:<58} {:>12} {:>12}",
            us(r.map(|r| r.0)),
            us(r.map(|r| r.1))
        );
    };
    row("  object the guest created (no check)", created);
    row(
        "  default context, object of the run's key (owner binding)",
        owned,
    );
    row(
        "  --ctx, read capability (verify_strict once, then cached)",
        granted,
    );
    println!(
        "{:<58} {:>12} {:>12}",
        "check alone on the host", "first", "cached"
    );
    println!(
        "{:<58} {:>12} {:>12}",
        "  CapCache::verify_for_map (1-link chain)",
        us(Some(median_ns(first) as u64)),
        us(Some(median_ns(cached) as u64))
    );
    println!(
        "{:<58} {:>12} {:>12}",
        "  owner key read from the object header",
        us(Some(median_ns(owner) as u64)),
        "(kept)"
    );
    Ok(())
}
