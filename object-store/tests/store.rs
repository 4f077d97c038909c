//! The store as a user of the library sees it: create, map, write, flush, reopen, corrupt,
//! fsck, lock.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use abi::fot::{perms, FotEntry};
use abi::layout::{fot_entry_offset, DATA_END, META_OFFSET, OBJ_SIZE};
use object_store::{Access, CreateOptions, Durability, LockMode, Store, StoreError, Subject};
use proptest::prelude::*;

fn fresh() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().expect("temp dir");
    let s = Store::open(d.path().join("s")).expect("open store");
    (d, s)
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn object_problems(store: &Store, id: abi::id::ObjId) -> Vec<String> {
    let r = store.fsck().unwrap();
    r.problems
        .iter()
        .filter(|p| p.kind == Subject::Object && p.subject == id.to_string())
        .map(|p| p.problem.clone())
        .collect()
}

#[test]
fn fresh_store_has_default_key_and_is_clean() {
    let (_d, s) = fresh();
    assert!(s.was_created());
    let keys = s.list_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name, "default");
    assert!(s.fsck().unwrap().is_clean());
    let again = Store::open(s.root()).unwrap();
    assert!(!again.was_created());
}

#[test]
fn objects_and_names_survive_reopen() {
    let (_d, s) = fresh();
    let a = s.create(&CreateOptions::default().named("a")).unwrap();
    let b = s.create(&CreateOptions::default()).unwrap();
    s.bind("b-alias", b).unwrap();
    {
        let o = s.open_object(a, Access::ReadWrite).unwrap();
        assert_eq!(o.len(), OBJ_SIZE);
        assert_eq!(o.durability(), Durability::Msync); // no pmem here: the fallback path
        o.write_data(0x2000, b"abc").unwrap();
        o.set_fot_entry(1, &FotEntry::by_id(b, perms::READ))
            .unwrap();
        o.flush(0, OBJ_SIZE).unwrap();
    }
    let s2 = Store::open(s.root()).unwrap();
    assert_eq!(s2.resolve("a").unwrap(), a);
    assert_eq!(s2.resolve("b-alias").unwrap(), b);
    assert_eq!(s2.resolve(&b.to_string()).unwrap(), b);
    let o = s2.open_object(a, Access::ReadOnly).unwrap();
    let meta = o.meta();
    assert_eq!((meta.alloc_top, meta.fot_len), (0x2003, 2));
    assert_eq!(o.fot_entry(1).unwrap(), FotEntry::by_id(b, perms::READ));
    let rep = s2.show(a).unwrap();
    assert_eq!(rep.fot.len(), 1);
    assert_eq!(rep.fot[0].target_names, vec!["b-alias".to_string()]);
    assert!(rep.problems.is_empty());
    assert!(matches!(
        o.write_at(0x2000, b"x"),
        Err(StoreError::ReadOnly(_))
    ));
}

#[test]
fn create_with_taken_name_creates_nothing() {
    let (_d, s) = fresh();
    s.create(&CreateOptions::default().named("x")).unwrap();
    let e = s.create(&CreateOptions::default().named("x")).unwrap_err();
    assert!(matches!(e, StoreError::NameTaken { .. }), "{e}");
    let e = s
        .create(&CreateOptions::default().owner("nobody"))
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSuchKey(_)), "{e}");
    assert_eq!(s.list_objects().unwrap().len(), 1);
}

#[test]
fn remove_unbinds_names() {
    let (_d, s) = fresh();
    let id = s.create(&CreateOptions::default().named("gone")).unwrap();
    assert_eq!(s.remove(id).unwrap(), vec!["gone".to_string()]);
    assert!(matches!(s.resolve("gone"), Err(StoreError::NoSuchName(_))));
    assert!(matches!(
        s.resolve(&id.to_string()),
        Err(StoreError::NoSuchObject(_))
    ));
    assert!(s.fsck().unwrap().is_clean());
}

#[test]
fn bounds_are_checked() {
    let (_d, s) = fresh();
    let id = s.create(&CreateOptions::default()).unwrap();
    let o = s.open_object(id, Access::ReadWrite).unwrap();
    assert!(matches!(
        o.write_at(0, b"x"),
        Err(StoreError::OutOfBounds { .. })
    ));
    assert!(matches!(
        o.write_data(DATA_END - 1, b"xy"),
        Err(StoreError::OutOfBounds { .. })
    ));
    assert!(matches!(
        o.read_at(OBJ_SIZE - 1, &mut [0; 2]),
        Err(StoreError::OutOfBounds { .. })
    ));
    assert!(matches!(
        o.fot_entry(0),
        Err(StoreError::BadFotIndex { .. })
    ));
    assert!(matches!(
        s.dump(id, u64::MAX, 16),
        Err(StoreError::OutOfBounds { .. })
    ));
}

#[test]
fn every_kind_of_damage_is_named_and_found_by_fsck() {
    let (_d, s) = fresh();
    let healthy = s
        .create(&CreateOptions::default().named("healthy"))
        .unwrap();
    let truncated = s.create(&CreateOptions::default()).unwrap();
    let magic = s.create(&CreateOptions::default()).unwrap();
    let version = s.create(&CreateOptions::default()).unwrap();
    let swapped = s.create(&CreateOptions::default()).unwrap();
    let fot = s.create(&CreateOptions::default()).unwrap();

    OpenOptions::new()
        .write(true)
        .open(s.object_path(truncated))
        .unwrap()
        .set_len(4096)
        .unwrap();
    poke(&s.object_path(magic), META_OFFSET, b"garbage!");
    poke(
        &s.object_path(version),
        META_OFFSET + 8,
        &7u32.to_le_bytes(),
    );
    poke(&s.object_path(swapped), META_OFFSET + 48, &[9u8; 32]);
    {
        let o = s.open_object(fot, Access::ReadWrite).unwrap();
        o.set_fot_entry(5, &FotEntry::by_id(healthy, perms::READ))
            .unwrap();
    }
    poke(&s.object_path(fot), META_OFFSET + 104, &1u32.to_le_bytes()); // fot_len back to 1
    fs::write(s.objects_dir().join("README"), b"not an object").unwrap();
    fs::write(
        s.names().dir().join("dangling"),
        format!("{}\n", abi::id::ObjId::from_u128(77)),
    )
    .unwrap();
    fs::write(s.names().dir().join(".tmp.1.2"), b"").unwrap();

    let err = |id| s.open_object(id, Access::ReadOnly).unwrap_err().to_string();
    assert!(err(truncated).contains("truncated"), "{}", err(truncated));
    assert!(err(magic).contains("bad magic"), "{}", err(magic));
    assert!(
        err(version).contains("unsupported object format version 7"),
        "{}",
        err(version)
    );
    assert!(
        err(swapped).contains("does not match its nonce and owner key"),
        "{}",
        err(swapped)
    );
    for id in [truncated, magic, version, swapped] {
        assert!(err(id).starts_with(&format!("object {id}: ")));
        assert!(!err(id).contains('\n'));
    }
    let show = s.show(fot).unwrap();
    assert_eq!(
        show.problems,
        vec!["FOT entry 5: in use but past the end of the table (fot_len 1)".to_string()]
    );

    let report = s.fsck().unwrap();
    let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.objects_checked, 6);
    for id in [truncated, magic, version, swapped, fot] {
        assert!(
            text.iter()
                .any(|t| t.starts_with(&format!("object {id}: "))),
            "{id} missing from {text:#?}"
        );
    }
    assert!(
        text.iter()
            .any(|t| t.starts_with("file objects/README: foreign file")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("\"dangling\": bound to missing object")),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|t| t.contains("stray temp file")),
        "{text:#?}"
    );
    assert!(
        !text
            .iter()
            .any(|t| t.contains(&healthy.to_string()) && t.starts_with("object")),
        "{text:#?}"
    );
    // The healthy object is still fully usable, and listing shows the damaged ones with their problem.
    s.open_object(healthy, Access::ReadWrite).unwrap();
    let ls = s.list_objects().unwrap();
    assert_eq!(ls.iter().filter(|i| i.problem.is_some()).count(), 4);
}

#[test]
fn unknown_store_version_and_foreign_dirs_are_refused() {
    let (_d, s) = fresh();
    fs::write(s.root().join("FORMAT"), "twz-store\nversion 9\n").unwrap();
    let e = Store::open(s.root()).unwrap_err();
    assert!(
        matches!(e, StoreError::UnsupportedVersion { found: 9, .. }),
        "{e}"
    );

    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("thesis.tex"), b"precious").unwrap();
    assert!(matches!(
        Store::open(d.path()),
        Err(StoreError::NotAStore(_))
    ));
    assert_eq!(
        fs::read_dir(d.path()).unwrap().count(),
        1,
        "nothing was added to a foreign dir"
    );

    let f = d.path().join("thesis.tex");
    assert!(matches!(Store::open(&f), Err(StoreError::NotADirectory(_))));
}

#[test]
fn metadata_changes_wait_for_the_store_lock() {
    let (_d, s) = fresh();
    let guard = s.lock(LockMode::Exclusive).unwrap();
    let root = s.root().to_path_buf();
    let t = std::thread::spawn(move || {
        let s = Store::open(&root).unwrap();
        let start = Instant::now();
        s.create(&CreateOptions::default().named("late")).unwrap();
        start.elapsed()
    });
    std::thread::sleep(Duration::from_millis(150));
    assert!(s.try_lock(LockMode::Shared).is_err());
    assert!(
        s.resolve("late").is_err(),
        "create ran while the lock was held"
    );
    drop(guard);
    assert!(t.join().unwrap() >= Duration::from_millis(140));
    assert!(s.resolve("late").is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random bytes over the header or a FOT entry never panic anything, and whenever the
    /// header no longer validates fsck reports the object and opening it fails.
    #[test]
    fn corrupted_bytes_are_reported_never_panic(
        in_header in any::<bool>(),
        at in 0u64..256,
        bytes in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let (_d, s) = fresh();
        let id = s.create(&CreateOptions::default()).unwrap();
        let (base, span) = if in_header { (META_OFFSET, 256) } else { (fot_entry_offset(1).unwrap(), 128) };
        let path = s.object_path(id);
        poke(&path, base + at.min(span - bytes.len() as u64), &bytes);
        let mut raw = [0u8; 256];
        fs::File::open(&path).unwrap().read_exact_at(&mut raw, META_OFFSET).unwrap();
        let meta = abi::meta::ObjMeta::from_bytes(&raw);
        let header_ok = meta.validate().is_ok() && meta.id == id && object_store::derive_id(&meta.nonce, &meta.owner_key) == id;
        let problems = object_problems(&s, id);
        let opened = s.open_object(id, Access::ReadOnly);
        let _ = s.show(id);
        let _ = s.list_objects().unwrap();
        prop_assert_eq!(opened.is_ok(), header_ok);
        if !header_ok {
            prop_assert_eq!(problems.len(), 1);
        }
        if !in_header {
            // A damaged FOT entry 1 is past fot_len 1, so any live or malformed bytes there are a problem.
            let e = FotEntry::from_bytes(&{
                let mut b = [0u8; 128];
                fs::File::open(&path).unwrap().read_exact_at(&mut b, fot_entry_offset(1).unwrap()).unwrap();
                b
            });
            let expect_problem = e.target().is_err() || e.is_live();
            prop_assert_eq!(!problems.is_empty(), expect_problem);
        }
    }
}

#[test]
fn pmem_store_is_refused_without_map_sync_and_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pmem");
    let e = object_store::Store::open_pmem(&dir).unwrap_err();
    assert!(matches!(e, object_store::StoreError::NotPmem { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("is not on a DAX filesystem: MAP_SYNC is refused"));
    assert!(!dir.exists());
    let s = object_store::Store::open(&dir).unwrap();
    assert!(!s.is_pmem());
    let id = s.create(&object_store::CreateOptions::default()).unwrap();
    let o = s.open_object(id, object_store::Access::ReadWrite).unwrap();
    assert!(!o.is_synchronous(), "a page-cache file is msync-backed");
    assert!(object_store::Store::open_pmem(&dir).is_err());
}

#[test]
fn raw_objects_import_export_and_skip_allocator_checks() {
    use object_store::{ImportOptions, MAX_RAW_LEN};
    let (_d, s) = fresh();
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let label = Path::new("-");
    let opts = ImportOptions::named("blob");
    let done = s
        .import_raw(&opts, &mut bytes.as_slice(), None, label)
        .unwrap();
    assert_eq!((done.len, done.replaced), (70_000, None));
    let mut out = Vec::new();
    assert_eq!(s.export_raw(done.id, &mut out).unwrap(), 70_000);
    assert!(out == bytes);
    assert_eq!(s.list_objects().unwrap()[0].kind, Some("raw"));

    // A size known up front that does not fit fails before anything exists.
    let e = s
        .import_raw(
            &ImportOptions::named("big"),
            &mut &b""[..],
            Some(MAX_RAW_LEN + 1),
            label,
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { .. }), "{e}");
    assert_eq!(s.list_objects().unwrap().len(), 1);
    assert_eq!(s.lookup("big").unwrap(), None);

    // Replacing rebinds the name and removes the old object.
    let replace = ImportOptions {
        replace: true,
        ..ImportOptions::named("blob")
    };
    let again = s
        .import_raw(&replace, &mut &b"v2"[..], None, label)
        .unwrap();
    assert_eq!(again.replaced, Some((done.id, true)));
    assert!(!s.contains(done.id));
    assert_eq!(s.resolve("blob").unwrap(), again.id);

    // Allocator bytes in a raw object are not checked (it has no allocator); the same bytes in
    // a structured object are.
    let plain = s.create(&CreateOptions::default().named("plain")).unwrap();
    for id in [again.id, plain] {
        poke(
            &s.object_path(id),
            abi::layout::ALLOC_OFFSET,
            &abi::palloc::ALLOC_MAGIC.to_le_bytes(),
        );
    }
    assert!(object_problems(&s, again.id).is_empty());
    assert!(!object_problems(&s, plain).is_empty());
    let e = s.export_raw(plain, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("structured object"), "{e}");
}
