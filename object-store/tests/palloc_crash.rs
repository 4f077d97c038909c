//! Crash simulation of the persistent allocator (`abi::palloc`) inside transactions: a random
//! transaction of allocations and frees runs on memory that records every store; the run is
//! cut after every store (a process crash: earlier stores survive in program order), recovered
//! with `abi::txlog`, and the allocator must then be exactly as before the transaction or as
//! after it, and consistent (`palloc::check`: no block both free and allocated, no leak). The
//! commit point is the commit entry's store in durability `COMMIT` and the `finished_seq` store
//! in `GROUP`: every cut before it is rolled back, every cut after it kept. Half the cases run on
//! memory that tells commits what is unfenced, so commit entries list the bump headers.

use std::collections::HashMap;

use abi::boot::durability;
use abi::id::ObjId;
use abi::layout::{ALLOC_OFFSET, ALLOC_SIZE, BASE_OFFSET, META_ALLOC_TOP};
use abi::palloc;
use abi::txlog::{
    self, commit_entry_size, kind, EntryHeader, ObjectMemory, Tx, COMMIT_LIST_MAX,
    ENTRY_HEADER_SIZE,
};
use proptest::prelude::*;

const O: ObjId = ObjId::from_u128(0x0b1);

/// Byte memory of one object that records every store.
#[derive(Clone, Default)]
struct Sim {
    bytes: HashMap<u64, u8>,
    stores: Vec<(u64, Vec<u8>)>,
    /// Ranges flushed since the last fence, told to commits when `lists` (as the guest
    /// runtime does, so commits list them instead of fencing them first).
    unfenced: Vec<(ObjId, u64, u64)>,
    lists: bool,
}

impl ObjectMemory for Sim {
    type Error = std::convert::Infallible;
    fn read(&mut self, _: ObjId, off: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.bytes.get(&(off + i as u64)).copied().unwrap_or(0);
        }
        Ok(())
    }
    fn write(&mut self, _: ObjId, off: u64, data: &[u8]) -> Result<(), Self::Error> {
        for (i, b) in data.iter().enumerate() {
            self.bytes.insert(off + i as u64, *b);
        }
        self.stores.push((off, data.to_vec()));
        Ok(())
    }
    fn flush(&mut self, obj: ObjId, off: u64, len: u64) -> Result<(), Self::Error> {
        self.unfenced.push((obj, off, len));
        Ok(())
    }
    fn fence(&mut self) -> Result<(), Self::Error> {
        self.unfenced.clear();
        Ok(())
    }
    fn unfenced(&mut self, out: &mut [(ObjId, u64, u64)]) -> Option<usize> {
        let n = self.unfenced.len();
        out.get_mut(..n)?.copy_from_slice(&self.unfenced);
        self.lists.then_some(n)
    }
}

impl Sim {
    fn u64_at(&mut self, off: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(O, off, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    /// Everything that makes up the allocator: its header, `alloc_top`, and every block's
    /// header and first payload word (the free-list link of free blocks).
    fn alloc_state(&mut self) -> Vec<u64> {
        let mut s: Vec<u64> = (0..ALLOC_SIZE / 8)
            .map(|i| self.u64_at(ALLOC_OFFSET + 8 * i))
            .collect();
        let top = self.u64_at(META_ALLOC_TOP);
        s.push(top);
        let mut at = self.u64_at(ALLOC_OFFSET + 16);
        while at < top {
            let size = self.u64_at(at);
            s.extend([at, size, self.u64_at(at + 8), self.u64_at(at + 16)]);
            assert!(size >= 32, "walk: bad block at {at:#x}");
            at += size;
        }
        s
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(u64),
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..200).prop_map(Op::Alloc),
        1 => (33_000u64..90_000).prop_map(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
    ]
}

/// Runs `ops` in one transaction; `live` holds the payloads allocated so far.
fn run(m: &mut Sim, ops: &[Op], live: &mut Vec<u64>, mode: u32, commit: bool) {
    let mut tx = Tx::begin(m, O, mode).unwrap();
    for op in ops {
        match op {
            Op::Alloc(n) => live.push(palloc::alloc(m, &mut tx, O, *n).unwrap()),
            Op::Free(i) if !live.is_empty() => {
                let p = live.swap_remove(i % live.len());
                palloc::free(m, &mut tx, O, p).unwrap();
            }
            Op::Free(_) => {}
        }
    }
    if commit {
        tx.commit(m).unwrap();
    } else {
        drop(tx); // left unfinished on purpose: the cut decides what survives
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn crash_at_every_store_is_all_or_nothing(
        setup in proptest::collection::vec(op(), 0..20),
        ops in proptest::collection::vec(op(), 1..12),
        group in any::<bool>(),
        lists in any::<bool>(),
    ) {
        let mode = if group { durability::GROUP } else { durability::COMMIT };
        let mut m = Sim { lists, ..Sim::default() };
        m.write(O, META_ALLOC_TOP, &BASE_OFFSET.to_le_bytes()).unwrap();
        let mut tx = Tx::begin(&mut m, O, mode).unwrap();
        palloc::init(&mut m, &mut tx, O, 40).unwrap();
        tx.commit(&mut m).unwrap();
        let mut live = Vec::new();
        run(&mut m, &setup, &mut live, mode, true);
        m.stores.clear();
        let before_img = m.clone();
        let before = m.clone().alloc_state();

        let mut after_m = m.clone();
        run(&mut after_m, &ops, &mut live, mode, true);
        let after = after_m.clone().alloc_state();
        let stores = after_m.stores.clone();
        let is_commit_entry = |(_, data): &(u64, Vec<u8>)| {
            (0..=COMMIT_LIST_MAX).any(|n| data.len() as u64 == commit_entry_size(n))
                && data[..ENTRY_HEADER_SIZE as usize]
                    .try_into()
                    .is_ok_and(|h| EntryHeader::from_bytes(h).kind == kind::COMMIT)
        };
        // The index of the store that commits; cuts up to it keep the state before. (A
        // transaction that recorded nothing stores nothing and changes nothing.)
        let commit_at = if group {
            stores.len().saturating_sub(1)
        } else {
            stores.iter().position(is_commit_entry).unwrap_or(stores.len())
        };

        for cut in 0..=stores.len() {
            let mut img = before_img.clone();
            for (off, data) in &stores[..cut] {
                img.write(O, *off, data).unwrap();
            }
            txlog::recover_anchor(&mut img, O, true).unwrap();
            let state = img.alloc_state();
            prop_assert!(state == before || state == after,
                "cut {cut}/{}: allocator neither before nor after", stores.len());
            prop_assert!(palloc::check(&mut img, O).is_ok(), "cut {cut}: {:?}", palloc::check(&mut img, O));
            if cut <= commit_at {
                prop_assert!(state == before, "cut {cut}: before the commit store, rolled back");
            } else {
                prop_assert!(state == after, "cut {cut}: after the commit store, kept");
            }
        }
    }
}
