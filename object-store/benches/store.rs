//! Costs of the store's basic operations beside plain `std::fs` + `mmap` on the same disk:
//! object create (durable), open+map, and flush of one dirty 4 KiB page.
//!
//! Run: `cargo bench -p twz-object-store -- --quick`. The temp dir lives under the target
//! directory (local disk, not tmpfs) so fsync and msync cost what they cost for real.

mod common;

use std::fs::OpenOptions;
use std::hint::black_box;
use std::path::Path;

use abi::layout::{OBJ_SIZE, PAGE_SIZE};
use criterion::{criterion_group, criterion_main, Criterion};
use object_store::{Access, CreateOptions, Store};

fn store_ops(c: &mut Criterion) {
    let dir = common::temp_dir();
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut g = c.benchmark_group("store");

    g.bench_function("object create (durable)", |b| {
        b.iter(|| black_box(store.create(&CreateOptions::default()).expect("create")))
    });

    let id = store.create(&CreateOptions::default()).expect("create");
    g.bench_function("object open+map", |b| {
        b.iter(|| black_box(store.open_object(id, Access::ReadWrite).expect("open")))
    });

    let obj = store.open_object(id, Access::ReadWrite).expect("open");
    let mut n = 0u64;
    g.bench_function("flush one dirty 4 KiB page", |b| {
        b.iter(|| {
            n += 1;
            obj.write_at(2 * PAGE_SIZE, &n.to_le_bytes())
                .expect("write");
            obj.flush(2 * PAGE_SIZE, PAGE_SIZE).expect("flush");
        })
    });
    g.finish();
}

fn plain_file(dir: &Path, i: u64) -> std::fs::File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(format!("plain-{i}")))
        .expect("create");
    f.set_len(OBJ_SIZE).expect("set_len");
    f
}

fn reference(c: &mut Criterion) {
    let dir = common::temp_dir();
    let mut g = c.benchmark_group("reference std::fs");
    let mut i = 0u64;
    g.bench_function("create sparse 1 GiB + mmap (no fsync)", |b| {
        b.iter(|| {
            i += 1;
            let f = plain_file(dir.path(), i);
            // SAFETY: a private temp file nobody else truncates while mapped.
            black_box(unsafe { memmap2::MmapMut::map_mut(&f) }.expect("mmap"))
        })
    });
    g.bench_function("create sparse 1 GiB + fsync file and dir + mmap", |b| {
        b.iter(|| {
            i += 1;
            let f = plain_file(dir.path(), i);
            f.sync_all().expect("fsync");
            std::fs::File::open(dir.path())
                .and_then(|d| d.sync_all())
                .expect("fsync dir");
            // SAFETY: as above.
            black_box(unsafe { memmap2::MmapMut::map_mut(&f) }.expect("mmap"))
        })
    });
    let path = dir.path().join("plain-0");
    drop(plain_file(dir.path(), 0));
    g.bench_function("open + mmap 1 GiB", |b| {
        b.iter(|| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("open");
            // SAFETY: as above.
            black_box(unsafe { memmap2::MmapMut::map_mut(&f) }.expect("mmap"))
        })
    });
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    // SAFETY: as above.
    let mut m = unsafe { memmap2::MmapMut::map_mut(&f) }.expect("mmap");
    let mut n = 0u8;
    let at = 2 * PAGE_SIZE as usize;
    g.bench_function("msync one dirty 4 KiB page", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            m[at] = n;
            m.flush_range(at, PAGE_SIZE as usize).expect("msync");
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = store_ops, reference
}
criterion_main!(benches);
