//! SQLite databases in persistent objects (the object VFS of `examples/sqlite`): persistence across
//! runs, what the host sees of the database object, rollback, errors, foreign objects, and
//! crashes of the VMM in the middle of write transactions.

mod common;

use common::describe;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::kvm_available;

/// `twz-vmm run sqlite -- ARGS` on `store` with `input` on stdin.
fn guest_sqlite(store: &Path, args: &[&str], input: &str) -> Output {
    guest_sqlite_with(store, &[], args, input)
}

/// `twz-vmm run RUN_OPTS sqlite -- ARGS` on `store` with `input` on stdin.
fn guest_sqlite_with(store: &Path, run_opts: &[&str], args: &[&str], input: &str) -> Output {
    let mut cmd = common::twz(store);
    cmd.arg("run")
        .args(run_opts)
        .args(["sqlite", "--"])
        .args(args);
    common::output_with_stdin(&mut cmd, input.as_bytes()).expect("spawn twz-vmm")
}

/// The guest's stdout, after asserting the run succeeded.
fn guest_ok(store: &Path, db: &str, input: &str) -> String {
    let out = guest_sqlite(store, &[db], input);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `obj show NAME --json`.
fn show(store: &Path, name: &str) -> serde_json::Value {
    let json = common::ok(store, &["obj", "show", name, "--json"]);
    serde_json::from_str(&json).expect("obj show prints JSON")
}

/// The database file the object `name` holds: its byte stream copied out of the object's host
/// file (what `obj export` will do), so the host's sqlite3 can open it.
fn copy_out(store: &Path, name: &str, to: &Path) -> PathBuf {
    let v = show(store, name);
    let path = v["path"].as_str().expect("object path");
    let size = v["size_in_use"].as_u64().expect("size in use") as usize;
    let bytes = std::fs::read(path).expect("read the object file");
    let base = 0x1000;
    let file = to.join(format!("{name}.db"));
    std::fs::write(&file, &bytes[base..base + size]).expect("write the copy");
    file
}

const CREATE: &str = "\
create table items(id integer primary key, name text not null, qty int, price real);
insert into items(name, qty, price) values ('apple', 3, 0.5), ('pear', 0, 0.75), ('fig', 12, NULL);
create index items_by_name on items(name);
insert into items(name, qty, price)
  with recursive n(v) as (select 1 union all select v + 1 from n where v < 500)
  select 'bulk-' || v, v % 7, v / 4.0 from n;
";

const QUERY: &str = "\
select count(*), sum(qty), round(sum(price), 2) from items;
select * from items where name in ('apple', 'pear', 'fig') order by name;
select name from items where qty = 0 order by id limit 5;
pragma integrity_check;
";

#[test]
fn tables_persist_across_runs_in_an_object_the_host_can_read() {
    if !kvm_available("tables_persist_across_runs_in_an_object_the_host_can_read") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    assert_eq!(guest_ok(s, "shop", CREATE), "");
    // A later run (a new VM) finds the table.
    let read = guest_ok(s, "shop", QUERY);
    assert!(read.starts_with("503|1512|31313.75\n"), "{read}");
    assert!(read.ends_with("ok\n"), "{read}");

    // The host sees one object named shop, a whole number of pages in size, flagged raw.
    let ls = common::ok(s, &["obj", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("shop")),
        "{ls}"
    );
    let v = show(s, "shop");
    let size = v["size_in_use"].as_u64().expect("size");
    assert!(size >= 2 * 4096 && size.is_multiple_of(4096), "size {size}");
    assert_eq!(v["header"]["flag_names"][0], "raw", "{v}");
    assert!(
        v["problems"].as_array().is_some_and(|p| p.is_empty()),
        "{v}"
    );

    // Its bytes are an ordinary SQLite database: the host's sqlite3 reads the same answers, and
    // builds the same answers from the same statements.
    let tmp = common::temp_store();
    let copy = copy_out(s, "shop", tmp.path());
    let Some(host_read) = common::host_sqlite3(&[&copy], QUERY) else {
        return;
    };
    assert_eq!(String::from_utf8_lossy(&host_read.stdout), read);
    let fresh = tmp.path().join("fresh.db");
    let host_built =
        common::host_sqlite3(&[&fresh], &format!("{CREATE}{QUERY}")).expect("sqlite3 ran");
    assert_eq!(String::from_utf8_lossy(&host_built.stdout), read);
}

#[test]
fn a_rolled_back_transaction_and_a_syntax_error_leave_no_trace() {
    if !kvm_available("a_rolled_back_transaction_and_a_syntax_error_leave_no_trace") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    guest_ok(s, "shop", CREATE);
    let script = "\
begin;
insert into items(name, qty) values ('ghost', 1);
update items set qty = 99;
delete from items where name = 'apple';
rollback;
selec oops;
select count(*), max(qty) from items;
select count(*) from items where name = 'ghost';
insert into items(name, qty) values ('kiwi', 5);
";
    let out = guest_sqlite(s, &["shop"], script);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the syntax error fails the script"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("near \"selec\": syntax error"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "503|12\n0\n");
    // The next run sees the insert after the error and nothing of the rolled-back transaction.
    let after = guest_ok(
        s,
        "shop",
        "select count(*), max(qty) from items;\nselect qty from items where name in ('apple', 'kiwi') order by name;\npragma integrity_check;\n",
    );
    assert_eq!(after, "504|12\n3\n5\nok\n");

    // The host's sqlite3 does the same with the same statements.
    let tmp = common::temp_store();
    let db = tmp.path().join("host.db");
    if common::host_sqlite3(&[&db], CREATE).is_none() {
        return;
    }
    let host = common::host_sqlite3(&[&db], script).expect("sqlite3 ran");
    assert_eq!(String::from_utf8_lossy(&host.stdout), "503|12\n0\n");
    assert_eq!(String::from_utf8_lossy(&host.stderr), stderr);
    assert_eq!(host.status.code(), out.status.code());
}

#[test]
fn an_object_that_is_not_a_database_is_refused() {
    if !kvm_available("an_object_that_is_not_a_database_is_refused") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    common::ok(s, &["obj", "create", "notes"]);
    let text = store.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a database\n".repeat(200)).expect("write");
    common::ok(
        s,
        &[
            "obj",
            "write",
            "notes",
            "--offset",
            "0x1000",
            text.to_str().expect("utf-8 path"),
        ],
    );
    let out = guest_sqlite(s, &["notes"], "select count(*) from sqlite_schema;\n");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("file is not a database"), "{stderr}");
    // The object is left as it was.
    let v = show(s, "notes");
    assert_eq!(v["size_in_use"].as_u64(), Some(6200), "{v}");
}

#[test]
fn a_new_name_gets_a_new_database_and_memory_databases_still_work() {
    if !kvm_available("a_new_name_gets_a_new_database_and_memory_databases_still_work") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let out = guest_ok(
        s,
        ":memory:",
        "create table t(a);\ninsert into t values (1), (2);\nselect sum(a) from t;\n",
    );
    assert_eq!(out, "3\n");
    let ls = common::ok(s, &["obj", "ls", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&ls).expect("JSON");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        ":memory: makes no object: {ls}"
    );
    // A query on a name nobody bound creates an empty database, readable and writable.
    assert_eq!(
        guest_ok(s, "fresh", "select count(*) from sqlite_schema;\n"),
        "0\n"
    );
    assert_eq!(
        guest_ok(
            s,
            "fresh",
            "create table t(a);\ninsert into t values (7);\n"
        ),
        ""
    );
    assert_eq!(guest_ok(s, "fresh", "select a from t;\n"), "7\n");
}

#[test]
#[ignore = "writes about 1 GiB to the temp directory (8 s here)"]
fn a_database_stops_at_the_objects_size_with_database_full() {
    if !kvm_available("a_database_stops_at_the_objects_size_with_database_full") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let script = "\
create table b(x);
insert into b values (zeroblob(600000000));
insert into b values (zeroblob(600000000));
select count(*), sum(length(x)) from b;
pragma integrity_check;
";
    let out = guest_sqlite_with(s, &["--mem", "256M"], &["big"], script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Runtime error near line 3: database or disk is full (13)"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1|600000000\nok\n");
    let size = show(s, "big")["size_in_use"].as_u64().expect("size");
    assert!(size > 600_000_000 && size < 1 << 30, "{size}");
}

/// Rows each crash-test transaction inserts.
const ROWS: u64 = 10;

/// A script of `count` write transactions numbered from `first`, each followed by a line
/// `committed K`.
fn crash_script(first: u64, count: u64) -> String {
    let mut s = String::from(
        "create table if not exists t(id integer primary key, txn int not null, payload text);\n",
    );
    for k in first..first + count {
        s.push_str("begin;\n");
        for i in 0..ROWS {
            s.push_str(&format!(
                "insert into t(txn, payload) values ({k}, printf('%d-%d-%s', {k}, {i}, hex(randomblob(60))));\n"
            ));
        }
        s.push_str(&format!("commit;\nselect 'committed {k}';\n"));
    }
    s
}

/// A random number below `n` (std's per-process random hash keys; enough for timing jitter).
fn random_below(n: u64) -> u64 {
    RandomState::new().build_hasher().finish() % n
}

/// Runs `script` on database `db` and SIGKILLs `twz-vmm` at a random moment after at least
/// `after` commits were echoed. Returns the highest commit echoed.
fn run_and_kill(store: &Path, db: &str, script: String, after: u64) -> u64 {
    let mut child = common::twz(store)
        .args(["run", "sqlite", "--", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn twz-vmm");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // The script may be larger than a pipe: feed it from a thread (it fails once killed).
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(k) = line.strip_prefix("committed ") {
                if let Ok(k) = k.parse::<u64>() {
                    let _ = tx.send(k);
                }
            }
        }
    });
    let mut last = 0;
    let mut seen = 0;
    while seen < after {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(k) => {
                last = last.max(k);
                seen += 1;
            }
            // The run ended (or stalled) before the chosen moment: kill it anyway.
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_micros(random_below(20_000)));
    let _ = child.kill(); // SIGKILL; an error means it already exited
    let _ = child.wait();
    let _ = reader.join();
    let _ = feeder.join();
    while let Ok(k) = rx.try_recv() {
        last = last.max(k);
    }
    last
}

#[test]
fn killing_the_vmm_mid_transaction_loses_no_committed_transaction() {
    if !kvm_available("killing_the_vmm_mid_transaction_loses_no_committed_transaction") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let check = "\
pragma integrity_check;
select coalesce(max(txn), 0), count(*), count(distinct txn) from t;
select count(*) from (select txn from t group by txn having count(*) != 10);
";
    let mut committed = 0;
    for round in 0..4 {
        let after = 2 + random_below(25);
        let echoed = run_and_kill(s, "crash", crash_script(committed + 1, 300), after);
        assert!(
            echoed > committed,
            "round {round}: no commit echoed before the kill"
        );
        // A journal left with a length is a transaction cut short: a hot journal.
        let journal = show(s, "crash-journal")["size_in_use"]
            .as_u64()
            .unwrap_or(0);
        // A new run rolls back whatever the killed one left half done.
        let out = guest_sqlite(s, &["crash"], check);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}: {}",
            describe(&out)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"ok"), "round {round}: {text}");
        let nums: Vec<u64> = lines
            .get(1)
            .map(|l| l.split('|').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        let [max, rows, distinct] = nums[..] else {
            panic!("round {round}: unexpected output {text}");
        };
        // Every commit the guest echoed is there, whole; at most the ones after it were also done.
        assert!(
            max >= echoed,
            "round {round}: commit {echoed} echoed, only {max} present"
        );
        assert!(max <= committed + 300, "round {round}: {max}");
        assert_eq!(
            distinct, max,
            "round {round}: a committed transaction is missing"
        );
        assert_eq!(
            rows,
            max * ROWS,
            "round {round}: a transaction is partly present"
        );
        assert_eq!(lines.get(2), Some(&"0"), "round {round}: {text}");
        println!(
            "round {round}: killed after commit {echoed} with a {journal}-byte journal, \
             {max} transactions present"
        );
        committed = max;
    }
}
