//! Persistent objects from a guest (`examples/objdemo`): structures built across objects in one
//! run and walked in the next, FOT dedup seen from the host, and the documented errors and
//! faults (null, dangling, out-of-range pointers, LRU eviction, unmapped slots, read-only
//! objects).

mod common;

use std::path::Path;
use std::process::Output;

use common::kvm_available;

/// Exit status of a run that ended in a guest fault.
const FAULT_STATUS: i32 = 139;

fn objdemo(store: &Path, run_flags: &[&str], args: &[&str]) -> Output {
    let cmd = [&["run"], run_flags, &["objdemo", "--"], args].concat();
    common::run(store, &cmd)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "objdemo failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn structures_across_objects_survive_the_run() {
    if !kvm_available("structures_across_objects_survive_the_run") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let built = stdout(&objdemo(s, &[], &["build"]));
    assert!(
        built.contains("node 1 fot: next 1 also 1 (dedup)"),
        "{built}"
    );

    let walked = stdout(&objdemo(s, &[], &["walk"]));
    assert_eq!(
        walked,
        "root count 3\nvalue 100\nvalue 200\nvalue 300\n\
         last node leads back to a root of 3 nodes\n"
    );
    // The same walk with room for only two objects at a time: eviction and remapping.
    assert_eq!(stdout(&objdemo(s, &["--slots", "2"], &["walk"])), walked);

    // The host sees the edges: root -> node 1 -> node 2 (one deduplicated entry each).
    let root_fot = common::fot_rows(s, "objdemo-root");
    assert_eq!(root_fot.len(), 1, "{root_fot:?}");
    let node1 = &root_fot[0].1;
    let node1_fot = common::fot_rows(s, node1);
    assert_eq!(
        node1_fot.len(),
        1,
        "next and also share one entry: {node1_fot:?}"
    );
    let node2_fot = common::fot_rows(s, &node1_fot[0].1);
    let node3_fot = common::ok(s, &["obj", "fot", &node2_fot[0].1]);
    assert_eq!(node3_fot.lines().count(), 2, "{node3_fot}");
    assert!(
        node3_fot.contains("valid,named") && node3_fot.contains("name \"objdemo-root\" -> "),
        "the last node names the root: {node3_fot}"
    );
    let listing = common::ok(s, &["obj", "ls"]);
    assert_eq!(listing.lines().count(), 1 + 4, "{listing}");

    // Building again must not clobber the name.
    let again = objdemo(s, &[], &["build"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("EEXIST"));
}

#[test]
fn bad_pointers_are_errors_not_wild_loads() {
    if !kvm_available("bad_pointers_are_errors_not_wild_loads") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    for (cmd, want) in [
        ("null", "resolve error: null pointer"),
        (
            "dangling",
            "resolve error: FOT entry 77 is empty or deleted",
        ),
        (
            "range",
            "resolve error: offset 0x3faff040 is outside the object's data",
        ),
    ] {
        let out = stdout(&objdemo(s, &[], &[cmd]));
        assert_eq!(out.trim(), want, "{cmd}");
    }
}

#[test]
fn more_objects_than_slots_are_evicted_and_remapped() {
    if !kvm_available("more_objects_than_slots_are_evicted_and_remapped") {
        return;
    }
    let store = common::temp_store();
    let out = objdemo(store.path(), &["--slots", "2", "--stats"], &["evict", "6"]);
    let text = stdout(&out);
    assert!(
        text.contains("evict: 6 objects read back correctly twice"),
        "{text}"
    );
    let stats = String::from_utf8_lossy(&out.stderr);
    let line = stats
        .lines()
        .find(|l| l.contains("objects:"))
        .unwrap_or_else(|| panic!("no object stats in {stats}"));
    assert!(line.contains("6 mapped"), "{line}");
    assert!(!line.contains(" 0 evictions"), "{line}");
}

#[test]
fn touching_an_unmapped_slot_is_a_clear_fault() {
    if !kvm_available("touching_an_unmapped_slot_is_a_clear_fault") {
        return;
    }
    let store = common::temp_store();
    let out = objdemo(store.path(), &[], &["unmapped"]);
    assert_eq!(out.status.code(), Some(FAULT_STATUS));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read 5 from slot 0"), "{stdout}");
    assert!(!stdout.contains("stale translation"), "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("guest fault: access to unmapped object slot 0 at 0x10000001000"),
        "{err}"
    );
    assert!(
        err.contains("unmapped at"),
        "backtrace names the function: {err}"
    );
}

#[test]
fn writing_a_read_only_object_is_a_clear_fault() {
    if !kvm_available("writing_a_read_only_object_is_a_clear_fault") {
        return;
    }
    let store = common::temp_store();
    let out = objdemo(store.path(), &[], &["readonly"]);
    assert_eq!(out.status.code(), Some(FAULT_STATUS));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("raw_mut refused: the object is mapped read-only"),
        "{stdout}"
    );
    assert!(!stdout.contains("went through"), "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("guest fault: write to read-only object "),
        "{err}"
    );
    assert!(err.contains(" at offset 0x1008"), "{err}");
}

#[test]
fn data_far_beyond_the_first_chunk_is_backed_on_touch_and_persists() {
    if !kvm_available("data_far_beyond_the_first_chunk_is_backed_on_touch_and_persists") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let out = objdemo(s, &["--stats"], &["far"]);
    let text = stdout(&out);
    assert!(
        text.contains("far: wrote 4 values and a 4 KiB block"),
        "{text}"
    );
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(
        stats.contains(" chunk faults") && !stats.contains(" 0 chunk faults"),
        "the far stores went through the VMM: {stats}"
    );
    // The host sees the stores in the file: a value 296 MiB in, and the copied block.
    let dump = common::ok(
        s,
        &[
            "obj",
            "dump",
            "objdemo-far",
            "--offset",
            "0x12800000",
            "--len",
            "8",
        ],
    );
    assert!(
        dump.starts_with("12800000  00 00 80 12 00 7a 77 74"),
        "{dump}"
    );
    let block = common::ok(
        s,
        &[
            "obj",
            "dump",
            "objdemo-far",
            "--offset",
            "0x1f0000fb",
            "--len",
            "4",
        ],
    );
    assert!(block.starts_with("1f0000fb  00 01 02 03"), "{block}");
    // A later run reads them back (first touches are loads the VMM completes).
    let again = stdout(&objdemo(s, &[], &["far-check"]));
    assert!(again.contains("far-check: all values read back"), "{again}");
}
