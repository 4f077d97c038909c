//! End to end through the real `twz-vmm` binary: the object store and inspection commands on a
//! fresh store, their JSON output, and every kind of damage issue 2 lists.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use abi::layout::{fot_entry_offset, META_OFFSET};
use common::{fails, ok, temp_store};
use serde_json::Value;

/// The store directory inside a temp dir (not yet created: every command creates it).
fn store_in(t: &tempfile::TempDir) -> PathBuf {
    t.path().join("store")
}

fn json(store: &Path, args: &[&str]) -> Value {
    let out = ok(store, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?} printed invalid JSON ({e}):\n{out}"))
}

/// Creates `name` and returns its ID.
fn create(store: &Path, name: &str) -> String {
    let id = ok(store, &["obj", "create", name]).trim().to_string();
    assert_eq!(id.len(), 32, "obj create prints the new ID, got {id:?}");
    id
}

fn object_file(store: &Path, id: &str) -> PathBuf {
    store
        .join("objects")
        .join(&id[..2])
        .join(format!("{id}.obj"))
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

/// Every path in the store with its size, mode and modification time, to prove a failing
/// command changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path(), (m.len(), m.mode(), m.mtime(), m.mtime_nsec()));
        }
    }
    out
}

/// Asserts a one-line error message on stderr that contains every part.
fn one_line_error(stderr: &str, parts: &[&str]) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("twz-vmm: error: "), "{stderr}");
    for p in parts {
        assert!(lines[0].contains(p), "{p:?} missing from: {stderr}");
    }
}

#[test]
fn every_command_works_on_a_fresh_store() {
    let t = temp_store();
    let s = store_in(&t);
    let init = ok(&s, &["store", "init"]);
    assert!(init.starts_with("created store: "), "{init}");
    assert!(ok(&s, &["store", "init"]).starts_with("store already initialised"));

    let people = create(&s, "people");
    let db = create(&s, "db");
    let data = t.path().join("data.bin");
    fs::write(&data, b"Hello, objects!\n").unwrap();
    let w = ok(
        &s,
        &[
            "obj",
            "write",
            "people",
            "--offset",
            "0x2000",
            data.to_str().unwrap(),
        ],
    );
    assert!(w.contains("wrote 16 bytes at 0x2000"), "{w}");
    ok(
        &s,
        &["obj", "link", "people", "--fot", "1", &db, "--perms", "r"],
    );
    ok(
        &s,
        &["obj", "link", "people", "--fot", "2", "db", "--by-name"],
    );

    // ls: table and JSON.
    let table = ok(&s, &["obj", "ls"]);
    assert!(table.starts_with("ID "), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&people))
        .expect("people listed");
    assert!(
        row.contains("people") && row.contains("4.0 KiB") && row.contains("default"),
        "{row}"
    );
    let ls = json(&s, &["obj", "ls", "--json"]);
    let ls = ls.as_array().unwrap();
    assert_eq!(ls.len(), 2);
    let p = ls.iter().find(|o| o["id"] == people.as_str()).unwrap();
    assert_eq!(p["names"], serde_json::json!(["people"]));
    assert_eq!(p["size_in_use"], 0x1010); // 0x2000 + 16 - BASE_OFFSET
    assert_eq!(p["owner_key_name"], "default");
    assert_eq!(p["problem"], Value::Null);
    assert!(p["created_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);

    // show: metadata, FOT with targets and their names, integrity.
    let show = ok(&s, &["obj", "show", &people]);
    assert!(show.contains(&format!("object      {people}")), "{show}");
    assert!(show.contains(&format!("{db} (db)")), "{show}");
    assert!(show.contains("integrity   ok"), "{show}");
    let sj = json(&s, &["obj", "show", "people", "--json"]);
    assert_eq!(sj["id"], people.as_str());
    assert_eq!(sj["header"]["version"], 1);
    assert_eq!(sj["header"]["alloc_top"], 0x2010);
    assert_eq!(sj["header"]["fot_len"], 3);
    assert_eq!(sj["problems"], serde_json::json!([]));
    let fot = sj["fot"].as_array().unwrap();
    assert_eq!(fot.len(), 2);
    assert_eq!(
        (fot[0]["index"].as_u64(), fot[0]["perms"].as_str()),
        (Some(1), Some("r---"))
    );
    assert_eq!(fot[0]["target_id"], db.as_str());
    assert_eq!(fot[0]["target_names"], serde_json::json!(["db"]));
    assert_eq!(fot[1]["target_name"], "db");
    assert_eq!(fot[1]["target_id"], db.as_str());

    // fot: the same table on its own.
    let fj = json(&s, &["obj", "fot", &people, "--json"]);
    assert_eq!(fj.as_array().unwrap().len(), 2);
    let ft = ok(&s, &["obj", "fot", "people"]);
    assert!(
        ft.lines()
            .nth(1)
            .unwrap()
            .starts_with("1      r---   valid"),
        "{ft}"
    );

    // dump: hexdump -C format, hex and decimal numbers.
    let dump = ok(
        &s,
        &["obj", "dump", "people", "--offset", "0x2000", "--len", "48"],
    );
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(
        lines[0],
        "00002000  48 65 6c 6c 6f 2c 20 6f  62 6a 65 63 74 73 21 0a  |Hello, objects!.|"
    );
    assert_eq!(
        lines[1],
        "00002010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|"
    );
    assert_eq!(lines[2], "*");
    assert_eq!(lines[3], "00002030");
    assert_eq!(
        ok(
            &s,
            &["obj", "dump", &people, "--offset", "8192", "--len", "5"]
        )
        .lines()
        .next()
        .unwrap(),
        "00002000  48 65 6c 6c 6f                                    |Hello|"
    );

    // keys.
    let gen = ok(&s, &["key", "gen", "alice"]);
    assert!(
        gen.starts_with("key alice: ") && gen.trim().len() == "key alice: ".len() + 64,
        "{gen}"
    );
    let keys = json(&s, &["key", "ls", "--json"]);
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "default"]);
    assert!(ok(&s, &["key", "ls"]).contains("alice"));
    let owned = ok(&s, &["obj", "create", "alices", "--key", "alice"]);
    let oj = json(&s, &["obj", "show", owned.trim(), "--json"]);
    assert_eq!(oj["owner_key_name"], "alice");

    // fsck: clean.
    let f = ok(&s, &["store", "fsck"]);
    assert!(
        f.contains("checked 3 objects, 3 names, 2 keys: no problems"),
        "{f}"
    );
    let fj = json(&s, &["store", "fsck", "--json"]);
    assert_eq!(fj["clean"], true);
    assert_eq!(fj["problems"], serde_json::json!([]));

    // rm: the object and its name are gone; the FOT entry that named it says so.
    let rm = ok(&s, &["obj", "rm", "db"]);
    assert!(rm.contains(&db) && rm.contains("unbound: db"), "{rm}");
    assert_eq!(
        json(&s, &["obj", "ls", "--json"]).as_array().unwrap().len(),
        2
    );
    assert!(!object_file(&s, &db).exists());
    assert!(ok(&s, &["obj", "fot", "people"]).contains("target missing"));
    one_line_error(
        &fails(&s, &["obj", "show", "db"]),
        &["no object named \"db\""],
    );
}

#[test]
fn any_command_creates_the_store_on_first_use() {
    let t = temp_store();
    let s = store_in(&t);
    assert_eq!(ok(&s, &["obj", "ls"]).lines().count(), 1, "just the header");
    assert!(s.join("FORMAT").is_file());
    assert!(s.join("keys/default.secret").is_file());
    assert_eq!(
        fs::metadata(s.join("keys/default.secret")).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn damage_gives_one_line_errors_and_fsck_finds_all_of_it() {
    let t = temp_store();
    let s = store_in(&t);
    let healthy = create(&s, "healthy");
    let truncated = create(&s, "truncated");
    let overwritten = create(&s, "overwritten");
    let magic = create(&s, "magic");
    let version = create(&s, "version");
    let fot = create(&s, "fot");
    ok(&s, &["obj", "link", "fot", "--fot", "7", "healthy"]);

    OpenOptions::new()
        .write(true)
        .open(object_file(&s, &truncated))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    poke(&object_file(&s, &overwritten), META_OFFSET, &[0xa5; 256]);
    poke(&object_file(&s, &magic), META_OFFSET, b"ELF\x7fELF\x7f");
    poke(
        &object_file(&s, &version),
        META_OFFSET + 8,
        &2u32.to_le_bytes(),
    );
    poke(
        &object_file(&s, &fot),
        META_OFFSET + 104,
        &3u32.to_le_bytes(),
    ); // fot_len 3 < entry 7
    poke(
        &object_file(&s, &fot),
        fot_entry_offset(9).unwrap() + 16,
        &0x40u32.to_le_bytes(),
    ); // unknown flags
    fs::write(s.join("objects").join("notes.txt"), b"foreign").unwrap();
    fs::create_dir_all(s.join("objects/zz")).unwrap();
    fs::write(s.join("objects/zz/whatever.obj"), b"foreign too").unwrap();

    let before = snapshot(&s);
    let cases: [(&str, &str, &[&str]); 5] = [
        ("truncated", &truncated, &["truncated", "1048576 bytes"]),
        (
            "overwritten",
            &overwritten,
            &["bad magic 0xa5a5a5a5a5a5a5a5 (not a twz object)"],
        ),
        ("magic", &magic, &["bad magic", "not a twz object"]),
        (
            "version",
            &version,
            &["unsupported object format version 2"],
        ),
        (
            "fot",
            &fot,
            &[
                "FOT entry 7: in use but past the end of the table (fot_len 3)",
                "1 more",
            ],
        ),
    ];
    for (name, id, parts) in cases {
        for cmd in ["show", "fot"] {
            let err = fails(&s, &["obj", cmd, name]);
            one_line_error(&err, &[&format!("object {id}: ")]);
            one_line_error(&err, parts);
        }
    }
    // Writes into a damaged object are refused too.
    let data = t.path().join("x");
    fs::write(&data, b"x").unwrap();
    one_line_error(
        &fails(
            &s,
            &[
                "obj",
                "write",
                "magic",
                "--offset",
                "0x1000",
                data.to_str().unwrap(),
            ],
        ),
        &[&magic, "bad magic"],
    );
    assert_eq!(
        snapshot(&s),
        before,
        "failing commands must not touch the store"
    );

    // fsck lists every problem and fails; the listing still shows everything.
    let out = common::run(&s, &["store", "fsck"]);
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for id in [&truncated, &overwritten, &magic, &version] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("object {id}: "))),
            "{id} not reported:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "object {fot}: FOT entry 7: in use but past the end of the table"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "object {fot}: FOT entry 9: unknown FOT flags 0x40"
        )),
        "{text}"
    );
    assert!(
        text.contains("file objects/notes.txt: foreign file"),
        "{text}"
    );
    assert!(text.contains("file objects/zz: foreign file"), "{text}");
    assert!(
        text.contains("name \"magic\": bound to damaged object"),
        "{text}"
    );
    assert!(!text.contains(&format!("object {healthy}")), "{text}");
    let fj = json_failing(&s, &["store", "fsck", "--json"]);
    assert_eq!(fj["clean"], false);
    assert_eq!(fj["objects_checked"], 6);
    let kinds: Vec<&str> = fj["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"object") && kinds.contains(&"file") && kinds.contains(&"name"),
        "{kinds:?}"
    );
    assert_eq!(snapshot(&s), before, "fsck must not modify the store");

    // The healthy object is still readable and writable; damaged ones are listed with their problem.
    ok(&s, &["obj", "show", "healthy"]);
    ok(&s, &["obj", "dump", &healthy]);
    ok(
        &s,
        &[
            "obj",
            "write",
            "healthy",
            "--offset",
            "0x1000",
            data.to_str().unwrap(),
        ],
    );
    let ls = json(&s, &["obj", "ls", "--json"]);
    let damaged = ls
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| !o["problem"].is_null())
        .count();
    assert_eq!(damaged, 4);
    // rm still works on a damaged object, and removes its name.
    ok(&s, &["obj", "rm", "truncated"]);
    assert!(!object_file(&s, &truncated).exists());
}

fn json_failing(store: &Path, args: &[&str]) -> Value {
    let out = common::run(store, args);
    assert!(!out.status.success(), "{args:?} should fail");
    serde_json::from_slice(&out.stdout).expect("JSON on stdout even when failing")
}

#[test]
fn bad_input_gets_one_line_errors_and_changes_nothing() {
    let t = temp_store();
    let s = store_in(&t);
    let id = create(&s, "thing");
    let file = t.path().join("f");
    fs::write(&file, b"data").unwrap();
    let before = snapshot(&s);

    one_line_error(
        &fails(&s, &["obj", "show", "nosuch"]),
        &["no object named \"nosuch\""],
    );
    one_line_error(
        &fails(&s, &["obj", "show", "0123456789abcdef0123456789abcdef"]),
        &["object 0123456789abcdef0123456789abcdef: no such object"],
    );
    one_line_error(&fails(&s, &["obj", "rm", "nosuch"]), &["no object named"]);
    one_line_error(
        &fails(&s, &["obj", "create", "thing"]),
        &["name \"thing\" is already bound to object", &id],
    );
    one_line_error(
        &fails(&s, &["obj", "create", "a/b"]),
        &["invalid name \"a/b\"", "'/'"],
    );
    one_line_error(
        &fails(&s, &["obj", "create", "x", "--key", "nokey"]),
        &["key \"nokey\": no such key"],
    );
    one_line_error(
        &fails(
            &s,
            &[
                "obj",
                "dump",
                "thing",
                "--offset",
                "0x3fffffff",
                "--len",
                "2",
            ],
        ),
        &[&id, "outside the object"],
    );
    one_line_error(
        &fails(
            &s,
            &[
                "obj",
                "write",
                "thing",
                "--offset",
                "0",
                file.to_str().unwrap(),
            ],
        ),
        &[&id, "outside the data region"],
    );
    one_line_error(
        &fails(
            &s,
            &[
                "obj",
                "write",
                "thing",
                "--offset",
                "0x1000",
                "/nonexistent/file",
            ],
        ),
        &["/nonexistent/file"],
    );
    one_line_error(
        &fails(&s, &["obj", "link", "thing", "--fot", "8192", "thing"]),
        &[&id, "FOT index 8192"],
    );
    one_line_error(
        &fails(&s, &["obj", "link", "thing", "--fot", "1", "nosuch"]),
        &["no object named \"nosuch\""],
    );
    one_line_error(
        &fails(
            &s,
            &[
                "obj", "link", "thing", "--fot", "1", "thing", "--perms", "rq",
            ],
        ),
        &["bad --perms"],
    );
    one_line_error(
        &fails(&s, &["key", "gen", "default"]),
        &["key \"default\": already exists"],
    );
    one_line_error(&fails(&s, &["key", "gen", "../evil"]), &["invalid name"]);
    assert!(fails(&s, &["obj", "dump", "thing", "--offset", "12k"]).contains("not a number"));
    assert_eq!(
        snapshot(&s),
        before,
        "failing commands must not touch the store"
    );

    // A store path that is a regular file, a foreign directory, and an unknown store version.
    let plain = t.path().join("plain-file");
    fs::write(&plain, b"x").unwrap();
    one_line_error(
        &fails(&plain, &["obj", "ls"]),
        &["not a directory", "plain-file"],
    );
    let foreign = t.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("thesis.tex"), b"precious").unwrap();
    one_line_error(&fails(&foreign, &["store", "init"]), &["not a twz store"]);
    assert_eq!(
        fs::read_dir(&foreign).unwrap().count(),
        1,
        "nothing added to a foreign directory"
    );
    fs::write(s.join("FORMAT"), "twz-store\nversion 99\n").unwrap();
    one_line_error(
        &fails(&s, &["obj", "ls"]),
        &["unsupported store format version 99"],
    );
}

#[test]
fn twz_store_environment_variable_selects_the_store() {
    let t = temp_store();
    let s = store_in(&t);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twz-vmm"))
        .args(["obj", "create", "via-env"])
        .env("TWZ_STORE", &s)
        .output()
        .expect("spawn twz-vmm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        json(&s, &["obj", "show", "via-env", "--json"])["id"],
        id.as_str()
    );
    assert!(object_file(&s, &id).is_file());
}

/// A writer that died mid-transaction: `obj show` and `store fsck` report it without changing
/// anything, `obj recover` rolls it back, and the store is clean again.
#[test]
fn unfinished_transactions_are_reported_and_recovered() {
    use abi::txlog::{ObjectMemory, Tx};
    let t = temp_store();
    let store = store_in(&t);
    let id = create(&store, "acct");
    {
        let s = object_store::Store::open(&store).unwrap();
        let oid = s.resolve("acct").unwrap();
        let mut o = s.open_object(oid, object_store::Access::ReadWrite).unwrap();
        let mut tx = Tx::begin(&mut o, oid, abi::boot::durability::COMMIT).unwrap();
        tx.record(&mut o, oid, 0x1000, 8).unwrap();
        o.write(oid, 0x1000, b"TORNTORN").unwrap();
        drop(tx); // the writer dies: no commit, no abort
    }
    let show = ok(&store, &["obj", "show", "acct"]);
    assert!(
        show.contains("unfinished transaction 1: 1 entry") && show.contains("needs recovery"),
        "{show}"
    );
    let before = snapshot(&store);
    let err = fails(&store, &["store", "fsck"]);
    one_line_error(&err, &["fsck found 1 problem"]);
    assert_eq!(snapshot(&store), before, "fsck changed nothing");
    let out = ok(&store, &["obj", "recover", "acct"]);
    assert!(
        out.contains("rolled back unfinished transaction 1 (1 entries)"),
        "{out}"
    );
    let dump = ok(&store, &["obj", "dump", &id, "--len", "8"]);
    assert!(!dump.contains("TORN"), "{dump}");
    assert!(ok(&store, &["obj", "show", "acct"]).contains("idle (last finished transaction 1)"));
    ok(&store, &["store", "fsck"]);
    let all = ok(&store, &["store", "recover"]);
    assert!(
        all.contains("checked 1 objects: 0 recovered, 0 in use"),
        "{all}"
    );
}

#[test]
fn store_recover_removes_the_temp_files_of_interrupted_writes() {
    let t = temp_store();
    let store = store_in(&t);
    let id = create(&store, "kept");
    let shard = object_file(&store, &id)
        .parent()
        .expect("shard")
        .to_path_buf();
    // What a writer killed mid-write leaves: a temp file named after its (gone) process. No PID
    // reaches 2^22 + 1; the file is an hour old. A fresh one may belong to a running writer.
    let stray = shard.join(".tmp.4194305.1f2e");
    let fresh = shard.join(".tmp.4194305.3c4d");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::create(&stray)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("stray temp file");
    std::fs::File::create(&fresh).expect("fresh temp file");
    let err = fails(&store, &["store", "fsck"]);
    one_line_error(&err, &["fsck found 2 problem"]);
    let out = ok(&store, &["store", "recover"]);
    assert!(out.contains("1 stray temp files removed"), "{out}");
    assert!(!stray.exists() && fresh.exists());
    std::fs::remove_file(&fresh).expect("remove");
    ok(&store, &["store", "fsck"]);
    assert!(ok(&store, &["obj", "ls"]).contains("kept"));
}

#[test]
fn allocator_is_summarised_by_show_and_checked_by_fsck() {
    use abi::palloc;
    use abi::txlog::Tx;
    let t = temp_store();
    let store = store_in(&t);
    create(&store, "heap");
    assert!(ok(&store, &["obj", "show", "heap"])
        .contains("allocator   none (no persistent allocator in this object)"));
    let blocks = {
        let s = object_store::Store::open(&store).unwrap();
        let oid = s.resolve("heap").unwrap();
        let mut o = s.open_object(oid, object_store::Access::ReadWrite).unwrap();
        let mut tx = Tx::begin(&mut o, oid, abi::boot::durability::COMMIT).unwrap();
        palloc::init(&mut o, &mut tx, oid, 32).unwrap();
        let b: Vec<u64> = (0..3)
            .map(|_| palloc::alloc(&mut o, &mut tx, oid, 100).unwrap())
            .collect();
        palloc::free(&mut o, &mut tx, oid, b[0]).unwrap();
        tx.commit(&mut o).unwrap();
        b
    };
    let show = ok(&store, &["obj", "show", "heap"]);
    assert!(
        show.contains("allocator   2 blocks in use (224 B), 112 B free: 1x112"),
        "{show}"
    );
    let j = json(&store, &["obj", "show", "heap", "--json"]);
    assert_eq!(j["heap"]["used_blocks"], 2);
    ok(&store, &["store", "fsck"]);

    // The free block's link now names the allocated blocks[1]: a block both free and in use.
    let id = ok(&store, &["obj", "ls", "--json"]);
    let id: Value = serde_json::from_str(&id).unwrap();
    let file = object_file(&store, id[0]["id"].as_str().unwrap());
    let mut head = [0u8; 8];
    std::fs::File::open(&file)
        .unwrap()
        .read_exact_at(&mut head, abi::layout::ALLOC_OFFSET + 32 + 8 * 6)
        .unwrap();
    assert_eq!(
        u64::from_le_bytes(head),
        blocks[0] - 16,
        "class-112 list head"
    );
    poke(&file, blocks[0], &(blocks[1] - 16).to_le_bytes());
    let err = fails(&store, &["store", "fsck"]);
    one_line_error(&err, &["fsck found 1 problem"]);
    let out = common::run(&store, &["store", "fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("allocator damaged"), "{stdout}");
    one_line_error(
        &fails(&store, &["obj", "show", "heap"]),
        &["allocator damaged"],
    );
}

#[test]
fn pmem_store_refuses_a_filesystem_without_map_sync() {
    let twz = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_twz-vmm"))
            .args(args)
            .env_remove("TWZ_STORE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let t = temp_store();
    let dir = t.path().join("pmem");
    for cmd in [
        &["store", "init"][..],
        &["obj", "ls"],
        &["obj", "create", "x"],
    ] {
        let mut args = vec![std::ffi::OsStr::new("--pmem"), dir.as_os_str()];
        args.extend(cmd.iter().map(std::ffi::OsStr::new));
        let out = twz(&args);
        assert!(!out.status.success(), "{cmd:?} succeeded without pmem");
        one_line_error(
            &String::from_utf8_lossy(&out.stderr),
            &[
                "is not on a DAX filesystem: MAP_SYNC is refused",
                "use --store for a file-backed store",
            ],
        );
        assert!(!dir.exists(), "{cmd:?}: a refused --pmem creates nothing");
    }
    // An existing file-backed store is refused the same way, untouched.
    let store = store_in(&t);
    create(&store, "kept");
    let before = snapshot(&store);
    let out = twz(&[
        "--pmem".as_ref(),
        store.as_os_str(),
        "obj".as_ref(),
        "ls".as_ref(),
    ]);
    assert!(!out.status.success());
    assert_eq!(snapshot(&store), before);
    // $TWZ_STORE does not conflict with --pmem; the refusal is the answer.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_twz-vmm"))
        .arg("--pmem")
        .arg(&dir)
        .args(["obj", "ls"])
        .env("TWZ_STORE", &store)
        .output()
        .unwrap();
    one_line_error(
        &String::from_utf8_lossy(&out.stderr),
        &["is not on a DAX filesystem"],
    );
    // --pmem and --store name two different stores.
    let out = twz(&[
        "--pmem".as_ref(),
        dir.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        "obj".as_ref(),
        "ls".as_ref(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure can be reproduced.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Runs `twz-vmm` with `input` on stdin; asserts success and returns stdout.
fn ok_with_stdin(store: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let out =
        common::output_with_stdin(common::twz(store).args(args), input).expect("spawn twz-vmm");
    assert!(
        out.status.success(),
        "twz-vmm {args:?} failed: {}",
        common::describe(&out)
    );
    out.stdout
}

#[test]
fn raw_import_export_round_trips_any_bytes_exactly() {
    let t = temp_store();
    let s = store_in(&t);
    let mut with_holes = noise(3 << 20, 7);
    with_holes[4096..(2 << 20)].fill(0); // stored as a hole, must still read back as zeros
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one", vec![0x5a]),
        ("odd", noise(3 * 4096 + 1, 1)),
        ("big", noise((3 << 20) + 123, 2)),
        ("holes", with_holes),
    ];
    for (name, bytes) in &cases {
        let src = t.path().join(format!("{name}.in"));
        let dst = t.path().join(format!("{name}.out"));
        fs::write(&src, bytes).unwrap();
        let id = ok(&s, &["obj", "import", name, src.to_str().unwrap()]);
        assert_eq!(id.trim().len(), 32, "import prints the new ID: {id:?}");
        ok(&s, &["obj", "export", name, dst.to_str().unwrap()]);
        assert!(
            fs::read(&dst).unwrap() == *bytes,
            "{name}: exported file differs"
        );
        let stdout = ok_with_stdin(&s, &["obj", "export", name, "-"], b"");
        assert!(stdout == *bytes, "{name}: export to stdout differs");
    }

    // From stdin, and listed as raw with the right size.
    let piped = noise(100_001, 3);
    ok_with_stdin(&s, &["obj", "import", "piped", "-"], &piped);
    assert!(ok_with_stdin(&s, &["obj", "export", "piped", "-"], b"") == piped);
    let ls = json(&s, &["obj", "ls", "--json"]);
    let piped_row = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["names"] == serde_json::json!(["piped"]))
        .expect("piped listed");
    assert_eq!(piped_row["kind"], "raw");
    assert_eq!(piped_row["size_in_use"], 100_001);
    create(&s, "plain");
    let table = ok(&s, &["obj", "ls"]);
    assert!(table.lines().next().unwrap().contains("KIND"), "{table}");
    let plain_row = table.lines().find(|l| l.contains(" plain ")).unwrap();
    assert!(plain_row.contains("structured"), "{plain_row}");
    assert!(ok(&s, &["obj", "show", "one"]).contains("kind        raw"));

    // fsck accepts raw objects, even ones whose bytes look like nothing it knows.
    let fsck = ok(&s, &["store", "fsck"]);
    assert!(
        fsck.contains("checked 7 objects") && fsck.contains("no problems"),
        "{fsck}"
    );
}

#[test]
fn import_replace_rebinds_and_removes_the_old_object() {
    let t = temp_store();
    let s = store_in(&t);
    let a = t.path().join("a");
    let b = t.path().join("b");
    fs::write(&a, b"first version").unwrap();
    fs::write(&b, b"second").unwrap();
    let old = ok(&s, &["obj", "import", "doc", a.to_str().unwrap()]);
    let new = ok(
        &s,
        &["obj", "import", "doc", b.to_str().unwrap(), "--replace"],
    );
    assert_ne!(old, new);
    assert_eq!(
        ok(&s, &["obj", "ls", "--json"]).matches("\"id\"").count(),
        1
    );
    assert_eq!(
        ok_with_stdin(&s, &["obj", "export", "doc", "-"], b""),
        b"second"
    );

    // An old object another name still uses is kept (a second name, bound on disk).
    fs::write(s.join("names/alias"), &new).unwrap();
    let out = common::run(
        &s,
        &["obj", "import", "doc", a.to_str().unwrap(), "--replace"],
    );
    assert!(out.status.success());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("kept the object it replaced"), "{note}");
    assert_eq!(
        ok(&s, &["obj", "ls", "--json"]).matches("\"id\"").count(),
        2
    );
    assert_eq!(
        ok_with_stdin(&s, &["obj", "export", "alias", "-"], b""),
        b"second"
    );
    assert_eq!(
        ok_with_stdin(&s, &["obj", "export", "doc", "-"], b""),
        b"first version"
    );
}

/// The host's `sqlite3` shell, if installed.
fn host_sqlite3(test: &str) -> Option<std::process::Command> {
    match std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
    {
        Ok(o) if o.status.success() => Some(std::process::Command::new("sqlite3")),
        _ => {
            println!("SKIP {test}: no sqlite3 shell on this host");
            None
        }
    }
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sqlite_database_round_trips_through_a_raw_object() {
    if host_sqlite3("sqlite_database_round_trips_through_a_raw_object").is_none() {
        return;
    }
    let t = temp_store();
    let s = store_in(&t);
    let db = t.path().join("shop.db");
    sqlite(
        &db,
        "create table item(id integer primary key, name text, blob blob);
         with recursive n(i) as (select 1 union all select i + 1 from n where i < 3000)
         insert into item(name, blob) select 'item ' || i, randomblob(300) from n;
         create index item_name on item(name);",
    );
    ok(&s, &["obj", "import", "shop", db.to_str().unwrap()]);
    let out = t.path().join("exported.db");
    ok(&s, &["obj", "export", "shop", out.to_str().unwrap()]);
    let cmp = std::process::Command::new("cmp")
        .arg(&db)
        .arg(&out)
        .status()
        .expect("run cmp");
    assert!(cmp.success(), "exported database differs from the original");
    assert_eq!(sqlite(&out, "pragma integrity_check"), "ok\n");
    assert_eq!(sqlite(&out, "select count(*) from item"), "3000\n");

    // Changed on the host and imported back over the old object.
    sqlite(&out, "delete from item where id > 1000; vacuum;");
    ok(
        &s,
        &["obj", "import", "shop", out.to_str().unwrap(), "--replace"],
    );
    let again = t.path().join("again.db");
    ok(&s, &["obj", "export", "shop", again.to_str().unwrap()]);
    assert_eq!(fs::read(&again).unwrap(), fs::read(&out).unwrap());
    assert_eq!(sqlite(&again, "select count(*) from item"), "1000\n");
    assert!(ok(&s, &["store", "fsck"]).contains("no problems"));
}

#[test]
fn raw_import_export_bad_input_gets_one_line_errors_and_changes_nothing() {
    let t = temp_store();
    let s = store_in(&t);
    let small = t.path().join("small");
    fs::write(&small, b"bytes").unwrap();
    let raw = ok(&s, &["obj", "import", "raw", small.to_str().unwrap()]);
    let raw = raw.trim();
    let damaged = ok(&s, &["obj", "import", "damaged", small.to_str().unwrap()]);
    let damaged = damaged.trim().to_string();
    poke(
        &object_file(&s, &damaged),
        META_OFFSET + 96,
        &(abi::layout::DATA_END + 4096).to_le_bytes(),
    ); // alloc_top past the data region
    let plain = create(&s, "plain");
    // Sparse: as large as it claims, without the disk space.
    let huge = t.path().join("huge");
    fs::File::create(&huge)
        .unwrap()
        .set_len(object_store::MAX_RAW_LEN + 1)
        .unwrap();
    let dest = t.path().join("out.db");
    let before = snapshot(&s);

    let missing = t.path().join("missing.db");
    one_line_error(
        &fails(&s, &["obj", "import", "new", missing.to_str().unwrap()]),
        &["missing.db", "No such file or directory"],
    );
    one_line_error(
        &fails(&s, &["obj", "import", "new", huge.to_str().unwrap()]),
        &[
            &format!("{} bytes", object_store::MAX_RAW_LEN + 1),
            "do not fit in an object's data region",
            "nothing was imported",
        ],
    );
    one_line_error(
        &fails(&s, &["obj", "import", "raw", small.to_str().unwrap()]),
        &["name \"raw\" is already bound to object", raw],
    );
    one_line_error(
        &fails(&s, &["obj", "import", "bad/name", small.to_str().unwrap()]),
        &["invalid name \"bad/name\""],
    );
    one_line_error(
        &fails(&s, &["obj", "export", "plain", dest.to_str().unwrap()]),
        &[&plain, "structured object, not a raw byte stream"],
    );
    one_line_error(
        &fails(&s, &["obj", "export", "damaged", dest.to_str().unwrap()]),
        &[&damaged, "allocation top", "outside the data region"],
    );
    one_line_error(
        &fails(&s, &["obj", "export", "nosuch", dest.to_str().unwrap()]),
        &["no object named \"nosuch\""],
    );
    assert!(!dest.exists(), "a failed export must not leave a file");
    assert_eq!(snapshot(&s), before, "a failed command changed the store");
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn export_recovers_an_abandoned_transaction_and_refuses_a_live_one() {
    use abi::txlog::{ObjectMemory, Tx};
    let t = temp_store();
    let store = store_in(&t);
    let src = t.path().join("db");
    fs::write(&src, b"GOODGOODtail").unwrap();
    ok(&store, &["obj", "import", "db", src.to_str().unwrap()]);
    let s = object_store::Store::open(&store).unwrap();
    let oid = s.resolve("db").unwrap();
    let tear = |o: &mut object_store::MappedObject| {
        let mut tx = Tx::begin(o, oid, abi::boot::durability::COMMIT).unwrap();
        tx.record(o, oid, 0x1000, 8).unwrap();
        o.write(oid, 0x1000, b"TORNTORN").unwrap();
        drop(tx); // no commit, no abort
    };

    // A writer that is still running: its transaction may commit yet, so export refuses.
    let mut live = s.open_object(oid, object_store::Access::ReadWrite).unwrap();
    tear(&mut live);
    let dest = t.path().join("out");
    one_line_error(
        &fails(&store, &["obj", "export", "db", dest.to_str().unwrap()]),
        &[&oid.to_string(), "transaction in progress"],
    );
    assert!(!dest.exists());

    // The writer died: export rolls the torn write back first.
    drop(live);
    ok(&store, &["obj", "export", "db", dest.to_str().unwrap()]);
    assert_eq!(fs::read(&dest).unwrap(), b"GOODGOODtail");
    ok(&store, &["store", "fsck"]);
}
