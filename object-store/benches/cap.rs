//! Cost of checking a capability when a guest maps an object: first verification of a one-link
//! and a three-link chain (signatures, owner key read from the object header, revocation
//! `stat`s) beside a cached check (SHA-256 of the file's bytes + a hash-map lookup), with and
//! without the revocation `stat`s a cache hit still makes.
//!
//! Run: `cargo bench -p twz-object-store --bench cap -- --quick`.

mod common;

use std::hint::black_box;

use abi::fot::perms::READ;
use criterion::{criterion_group, criterion_main, Criterion};
use object_store::{context_id, CapCache, CapChain, CreateOptions, Grant, DEFAULT_KEY};

fn caps(c: &mut Criterion) {
    let (_dir, store) = common::temp_store();
    let id = store.create(&CreateOptions::default()).expect("create");
    store.generate_key("alice").expect("key");
    let owner = store.signing_key(DEFAULT_KEY).expect("owner key");
    let alice = store.signing_key("alice").expect("alice key");
    let ctx = context_id("bench");
    let grant = |delegate: bool| Grant {
        target: id,
        accessor: ctx,
        perms: READ,
        expires_ns: 0,
        delegate: delegate.then(|| alice.verifying_key()),
    };
    let one = CapChain::sign_root(&grant(true), &owner).expect("sign");
    let three = one
        .delegate(&grant(true), &alice)
        .and_then(|c| c.delegate(&grant(false), &alice))
        .expect("delegate");
    let now = 1;

    let mut g = c.benchmark_group("cap");
    for (name, chain) in [("1 link", &one), ("3 links", &three)] {
        let bytes = chain.to_bytes();
        g.bench_function(format!("first verification, {name}"), |b| {
            b.iter(|| black_box(store.verify_for_map(&bytes, id, &ctx, now).expect("valid")))
        });
        let mut cache = CapCache::new();
        cache
            .verify_for_map(&store, &bytes, id, &ctx, now)
            .expect("valid");
        g.bench_function(format!("cached lookup, {name}"), |b| {
            b.iter(|| black_box(cache.lookup(&bytes, id, &ctx, now).is_some()))
        });
        g.bench_function(format!("cached check + revocation stat, {name}"), |b| {
            b.iter(|| {
                black_box(
                    cache
                        .verify_for_map(&store, &bytes, id, &ctx, now)
                        .expect("valid"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, caps);
criterion_main!(benches);
