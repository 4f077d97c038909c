//! The persistent allocator on real store objects: what `show` reports about it, and `fsck`
//! finding a damaged free list.

use abi::boot::durability;
use abi::palloc;
use abi::txlog::Tx;
use object_store::{Access, CreateOptions, Store};

#[test]
fn show_summarises_and_fsck_finds_a_cyclic_free_list() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path().join("s")).unwrap();
    let id = store
        .create(&CreateOptions::default().named("heap"))
        .unwrap();
    assert!(!store.heap(id).unwrap().initialized);
    assert!(store.show(id).unwrap().heap.summary().starts_with("none"));

    let mut o = store.open_object(id, Access::ReadWrite).unwrap();
    let mut tx = Tx::begin(&mut o, id, durability::COMMIT).unwrap();
    palloc::init(&mut o, &mut tx, id, 64).unwrap();
    let blocks: Vec<u64> = (0..4)
        .map(|_| palloc::alloc(&mut o, &mut tx, id, 24).unwrap())
        .collect();
    let big = palloc::alloc(&mut o, &mut tx, id, 100_000).unwrap();
    palloc::free(&mut o, &mut tx, id, blocks[1]).unwrap();
    palloc::free(&mut o, &mut tx, id, blocks[2]).unwrap();
    palloc::free(&mut o, &mut tx, id, big).unwrap();
    tx.commit(&mut o).unwrap();

    let h = store.show(id).unwrap().heap;
    assert_eq!((h.used_blocks, h.used_bytes), (2, 64));
    assert_eq!(h.free_bytes, 2 * 32 + 100_000_u64.next_multiple_of(16));
    assert_eq!(
        h.summary(),
        "2 blocks in use (64 B), 100064 B free: 2x32, 1x large (100000 B)"
    );
    assert!(store.fsck().unwrap().is_clean());

    // blocks[1]'s link (the list's tail) now points back at blocks[2]: a cycle.
    o.write_at(blocks[1], &(blocks[2] - 16).to_le_bytes())
        .unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].problem.contains("allocator damaged"),
        "{}",
        report.problems[0]
    );
    assert!(store.show(id).unwrap().problems[0].contains("cyclic"));
}
