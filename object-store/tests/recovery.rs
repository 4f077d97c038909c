//! Transactions against real store objects: a writer that dies mid-transaction is rolled back
//! when the object is next opened for writing, never while another writer has it open; and
//! inspection reports it without changing anything.

use abi::boot::durability;
use abi::id::ObjId;
use abi::layout::{BASE_OFFSET, LOG_OFFSET};
use abi::txlog::{ObjectMemory, Tx};
use object_store::{Access, CreateOptions, MappedObject, MarkerAction, Store, StoreError};

/// Two mapped objects as transaction memory, the way a VMM would see them.
struct Two<'a>(&'a MappedObject, &'a MappedObject);

/// [`Two`] that tells commits which flushed ranges no fence has covered yet, as the guest
/// runtime does, so a commit entry lists them instead of fencing them first.
struct Listing<'a> {
    two: Two<'a>,
    unfenced: Vec<(ObjId, u64, u64)>,
}

impl ObjectMemory for Listing<'_> {
    type Error = StoreError;
    fn read(&mut self, o: ObjId, off: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        self.two.read(o, off, buf)
    }
    fn write(&mut self, o: ObjId, off: u64, data: &[u8]) -> Result<(), StoreError> {
        self.two.write(o, off, data)
    }
    fn flush(&mut self, o: ObjId, off: u64, len: u64) -> Result<(), StoreError> {
        self.unfenced.push((o, off, len));
        Ok(())
    }
    fn fence(&mut self) -> Result<(), StoreError> {
        self.unfenced.clear();
        Ok(())
    }
    fn unfenced(&mut self, out: &mut [(ObjId, u64, u64)]) -> Option<usize> {
        let n = self.unfenced.len();
        out.get_mut(..n)?.copy_from_slice(&self.unfenced);
        Some(n)
    }
}

impl Two<'_> {
    fn pick(&self, id: ObjId) -> &MappedObject {
        if id == self.0.id() {
            self.0
        } else {
            self.1
        }
    }
}

impl ObjectMemory for Two<'_> {
    type Error = StoreError;
    fn read(&mut self, o: ObjId, off: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        self.pick(o).read_at(off, buf)
    }
    fn write(&mut self, o: ObjId, off: u64, data: &[u8]) -> Result<(), StoreError> {
        self.pick(o).write_at(off, data)
    }
    fn flush(&mut self, o: ObjId, off: u64, len: u64) -> Result<(), StoreError> {
        self.pick(o).flush(off, len)
    }
    fn fence(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn word(o: &MappedObject, off: u64) -> u64 {
    let mut b = [0u8; 8];
    o.read_at(off, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn store() -> (tempfile::TempDir, Store, ObjId, ObjId) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("s")).unwrap();
    let a = s.create(&CreateOptions::default().named("a")).unwrap();
    let b = s.create(&CreateOptions::default().named("b")).unwrap();
    (d, s, a, b)
}

/// Commits a=1, b=2, then starts a=10, b=20 and "crashes" (drops everything unfinished).
fn crash_mid_transaction(s: &Store, a: ObjId, b: ObjId) {
    let oa = s.open_object(a, Access::ReadWrite).unwrap();
    let ob = s.open_object(b, Access::ReadWrite).unwrap();
    let mut m = Two(&oa, &ob);
    for (va, vb, finish) in [(1u64, 2u64, true), (10, 20, false)] {
        let mut tx = Tx::begin(&mut m, a, durability::COMMIT).unwrap();
        tx.record(&mut m, a, BASE_OFFSET, 8).unwrap();
        m.write(a, BASE_OFFSET, &va.to_le_bytes()).unwrap();
        tx.record(&mut m, b, BASE_OFFSET, 8).unwrap();
        m.write(b, BASE_OFFSET, &vb.to_le_bytes()).unwrap();
        if finish {
            tx.commit(&mut m).unwrap();
        } else {
            drop(tx);
        }
    }
    assert_eq!((word(&oa, BASE_OFFSET), word(&ob, BASE_OFFSET)), (10, 20));
}

#[test]
fn unfinished_transaction_is_reported_then_rolled_back_on_open() {
    let (_d, s, a, b) = store();
    crash_mid_transaction(&s, a, b);

    let view = s.tx_view(a).unwrap();
    assert_eq!(view.pending, Some((2, 2, 112)));
    assert!(!view.in_use && view.needs_recovery(), "{view:?}");
    assert!(
        view.summary().contains("needs recovery"),
        "{}",
        view.summary()
    );
    // b's marker names a's first transaction that touched it (1): a's later ones leave it,
    // and it is pending while a's log holds an unfinished transaction numbered 1 or later.
    let vb = s.tx_view(b).unwrap();
    assert_eq!(vb.marker, Some((a.to_string(), 1, true)));
    let fsck = s.fsck().unwrap();
    assert_eq!(fsck.problems.len(), 2, "{:?}", fsck.problems);
    assert!(fsck
        .problems
        .iter()
        .all(|p| p.problem.contains("needs recovery")));
    assert_eq!(
        s.tx_view(a).unwrap().pending,
        Some((2, 2, 112)),
        "inspection changed nothing"
    );

    // Opening b alone finds the marker and rolls back a's transaction (a's bytes too).
    let ob = s.open_object(b, Access::ReadWrite).unwrap();
    assert_eq!(word(&ob, BASE_OFFSET), 2);
    drop(ob);
    let oa = s.open_object(a, Access::ReadOnly).unwrap();
    assert_eq!(word(&oa, BASE_OFFSET), 1);
    assert!(s.fsck().unwrap().is_clean());
    assert_eq!(s.tx_view(a).unwrap().finished_seq, Some(2));
}

#[test]
fn explicit_recover_reports_what_it_did() {
    let (_d, s, a, b) = store();
    crash_mid_transaction(&s, a, b);
    let r = s.recover(a).unwrap();
    assert_eq!(r.rolled_back, Some((2, 2)));
    assert!(r.changed_data());
    let rb = s.recover(b).unwrap();
    assert_eq!(rb.rolled_back, None);
    assert_eq!(rb.marker.map(|m| m.outcome), Some(MarkerAction::Stale));
    assert_eq!(s.recover(b).unwrap().marker, None, "marker cleared");
}

#[test]
fn a_live_writer_is_never_rolled_back() {
    let (_d, s, a, b) = store();
    let oa = s.open_object(a, Access::ReadWrite).unwrap();
    let ob = s.open_object(b, Access::ReadWrite).unwrap();
    let mut m = Two(&oa, &ob);
    let mut tx = Tx::begin(&mut m, a, durability::NONE).unwrap();
    tx.record(&mut m, a, BASE_OFFSET, 8).unwrap();
    m.write(a, BASE_OFFSET, &5u64.to_le_bytes()).unwrap();

    // Another opener (here: another descriptor) must leave the transaction alone.
    let again = s.open_object(a, Access::ReadWrite).unwrap();
    assert_eq!(word(&again, BASE_OFFSET), 5);
    assert!(matches!(s.recover(a), Err(StoreError::InUse(_))));
    let view = s.tx_view(a).unwrap();
    assert!(view.in_use && !view.needs_recovery(), "{view:?}");
    assert!(view.summary().contains("in progress"));
    assert!(
        s.fsck().unwrap().is_clean(),
        "a live transaction is not damage"
    );

    tx.commit(&mut m).unwrap();
    drop(again);
    drop((oa, ob));
    assert_eq!(s.tx_view(a).unwrap().pending, None);
    let oa = s.open_object(a, Access::ReadOnly).unwrap();
    assert_eq!(word(&oa, BASE_OFFSET), 5);
}

#[test]
fn marker_naming_a_deleted_anchor_is_cleared() {
    let (_d, s, a, b) = store();
    crash_mid_transaction(&s, a, b);
    s.remove(a).unwrap();
    let r = s.recover(b).unwrap();
    assert_eq!(
        r.marker.map(|m| m.outcome),
        Some(MarkerAction::AnchorMissing)
    );
    assert!(s.fsck().unwrap().is_clean());
}

#[test]
fn a_read_only_open_checks_a_commit_listing_another_objects_bytes() {
    let (_d, s, a, b) = store();
    {
        let oa = s.open_object(a, Access::ReadWrite).unwrap();
        let ob = s.open_object(b, Access::ReadWrite).unwrap();
        let mut m = Listing {
            two: Two(&oa, &ob),
            unfenced: Vec::new(),
        };
        m.write(a, BASE_OFFSET, &1u64.to_le_bytes()).unwrap();
        // a = 10 (recorded), and fresh bytes in b that the commit lists instead of fencing.
        let mut tx = Tx::begin(&mut m, a, durability::COMMIT).unwrap();
        tx.record(&mut m, a, BASE_OFFSET, 8).unwrap();
        m.write(a, BASE_OFFSET, &10u64.to_le_bytes()).unwrap();
        m.write(b, BASE_OFFSET + 64, &[0x5a; 64]).unwrap();
        m.flush(b, BASE_OFFSET + 64, 64).unwrap();
        let mut header = [0u8; 64];
        oa.read_at(LOG_OFFSET, &mut header).unwrap();
        tx.commit(&mut m).unwrap();
        // The power went inside the commit's fence: the commit entry reached the disk, the
        // log's "finished" mark and b's listed bytes did not.
        oa.write_at(LOG_OFFSET, &header).unwrap();
        ob.write_at(BASE_OFFSET + 64, &[0; 64]).unwrap();
    }
    // The checksum fails over b's bytes, so the transaction is undone, even for a reader.
    let oa = s.open_object(a, Access::ReadOnly).unwrap();
    assert_eq!(word(&oa, BASE_OFFSET), 1, "a's update undone");
    assert!(s.fsck().unwrap().is_clean());
}

#[test]
fn a_read_only_open_sees_recovered_data() {
    let (_d, s, a, b) = store();
    crash_mid_transaction(&s, a, b);
    let ob = s.open_object(b, Access::ReadOnly).unwrap();
    assert_eq!(word(&ob, BASE_OFFSET), 2, "b's marker led to a's rollback");
    let oa = s.open_object(a, Access::ReadOnly).unwrap();
    assert_eq!(word(&oa, BASE_OFFSET), 1);
    assert!(s.fsck().unwrap().is_clean());
}
