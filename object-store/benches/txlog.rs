//! Cost of an 8-byte transactional update on the host (begin + record 8 bytes + store + commit,
//! durability `NONE`: no flush) through the store's mapping, beside a plain 8-byte store into
//! the same mapping, both through the store's copying accessor and through a raw pointer.
//!
//! Run: `cargo bench -p twz-object-store --bench txlog -- --quick`.

mod common;

use std::hint::black_box;

use abi::boot::durability;
use abi::layout::BASE_OFFSET;
use abi::txlog::{ObjectMemory, Tx};
use criterion::{criterion_group, criterion_main, Criterion};
use object_store::{Access, CreateOptions};

fn update(c: &mut Criterion) {
    let (_dir, store) = common::temp_store();
    let id = store.create(&CreateOptions::default()).expect("create");
    let mut obj = store.open_object(id, Access::ReadWrite).expect("open");
    let mut g = c.benchmark_group("8-byte update");
    let mut n = 0u64;

    let p = obj
        .as_ptr()
        .wrapping_add(BASE_OFFSET as usize + 64)
        .cast::<u64>();
    g.bench_function("raw pointer store", |b| {
        b.iter(|| {
            n += 1;
            // SAFETY: p lies in the object's writable 1 GiB mapping, 8-byte aligned, and nothing
            // else holds a reference to it.
            unsafe { p.write_volatile(black_box(n)) }
        })
    });
    g.bench_function("plain store (MappedObject::write_at)", |b| {
        b.iter(|| {
            n += 1;
            obj.write_at(BASE_OFFSET, &black_box(n).to_le_bytes())
                .expect("write")
        })
    });
    g.bench_function("transaction, durability none", |b| {
        b.iter(|| {
            n += 1;
            let mut tx = Tx::begin(&mut obj, id, durability::NONE).expect("begin");
            tx.record(&mut obj, id, BASE_OFFSET, 8).expect("record");
            obj.write(id, BASE_OFFSET, &black_box(n).to_le_bytes())
                .expect("write");
            tx.commit(&mut obj).expect("commit")
        })
    });
    g.finish();
}

/// Persistent allocation inside a transaction (durability `NONE`): begin, alloc, free, commit.
fn palloc(c: &mut Criterion) {
    let (_dir, store) = common::temp_store();
    let id = store.create(&CreateOptions::default()).expect("create");
    let mut obj = store.open_object(id, Access::ReadWrite).expect("open");
    let mut tx = Tx::begin(&mut obj, id, durability::NONE).expect("begin");
    abi::palloc::init(&mut obj, &mut tx, id, 64).expect("init");
    tx.commit(&mut obj).expect("commit");
    let mut g = c.benchmark_group("palloc");
    for (what, size) in [
        ("64 B", 64u64),
        ("1000 B", 1000),
        ("100 KiB (large)", 100 << 10),
    ] {
        g.bench_function(format!("tx begin + alloc {what} + free + commit"), |b| {
            b.iter(|| {
                let mut tx = Tx::begin(&mut obj, id, durability::NONE).expect("begin");
                let p = abi::palloc::alloc(&mut obj, &mut tx, id, black_box(size)).expect("alloc");
                abi::palloc::free(&mut obj, &mut tx, id, p).expect("free");
                tx.commit(&mut obj).expect("commit")
            })
        });
    }
    g.bench_function("tx begin + 8-byte record + commit (reference)", |b| {
        b.iter(|| {
            let mut tx = Tx::begin(&mut obj, id, durability::NONE).expect("begin");
            tx.record(&mut obj, id, BASE_OFFSET, 8).expect("record");
            tx.commit(&mut obj).expect("commit")
        })
    });
    g.finish();
}

criterion_group!(benches, update, palloc);
criterion_main!(benches);
