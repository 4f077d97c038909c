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

/// `obj show NAME --json`, or `None` if there is no such object.
fn try_show(store: &Path, name: &str) -> Option<serde_json::Value> {
    let out = common::run(store, &["obj", "show", name, "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The names in `obj ls`.
fn object_names(store: &Path) -> Vec<String> {
    let ls = common::ok(store, &["obj", "ls", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&ls).expect("obj ls prints JSON");
    list.as_array()
        .into_iter()
        .flatten()
        .flat_map(|o| o["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
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
/// `after` commits were echoed (standard input stays open, so a guest that ran the whole script
/// waits for more until then). Returns the highest commit echoed.
fn run_and_kill(store: &Path, db: &str, script: String, after: u64) -> u64 {
    let mut child = common::twz(store)
        .args(["run", "sqlite", "--", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn twz-vmm");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // The script may be larger than a pipe: feed it from a thread (it fails once killed). The
    // thread hands the pipe back, to be closed only after the kill.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
        stdin
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

/// Checks database `db` after a crash at round `round`: intact, every commit up to `echoed`
/// there whole, nothing beyond the script's (`committed + 300`); returns the last commit present.
fn check_crash_db(s: &Path, db: &str, round: u64, echoed: u64, committed: u64) -> u64 {
    let check = "\
pragma integrity_check;
select coalesce(max(txn), 0), count(*), count(distinct txn) from t;
select count(*) from (select txn from t group by txn having count(*) != 10);
";
    let out = guest_sqlite(s, &[db], check);
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
    max
}

#[test]
fn killing_the_vmm_mid_transaction_loses_no_committed_transaction() {
    if !kvm_available("killing_the_vmm_mid_transaction_loses_no_committed_transaction") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let mut committed = 0;
    for round in 0..4u64 {
        let after = 2 + random_below(25);
        let echoed = run_and_kill(s, "crash", crash_script(committed + 1, 300), after);
        assert!(
            echoed > committed,
            "round {round}: no commit echoed before the kill"
        );
        // A journal left with a length is a transaction cut short: a hot journal. (A killed run
        // leaves its journal object, empty or not; a clean run deletes it.)
        let journal = try_show(s, "crash-journal")
            .and_then(|v| v["size_in_use"].as_u64())
            .unwrap_or(0);
        // A new run rolls back whatever the killed one left half done.
        let max = check_crash_db(s, "crash", round, echoed, committed);
        println!(
            "round {round}: killed after commit {echoed} with a {journal}-byte journal, \
             {max} transactions present"
        );
        committed = max;
    }
}

#[test]
fn an_interactive_session_prompts_and_reports_errors_without_line_numbers() {
    if !kvm_available("an_interactive_session_prompts_and_reports_errors_without_line_numbers") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    // Standard input is a pipe here, so the shell is told to be interactive, as it is by itself
    // when the VMM's standard input is a terminal.
    let input = "create table t(a integer primary key, b text);\ninsert into t(b) values ('x'),('y');\nselect *\n  from t;\nselec 1;\n.headers on\nselect count(*) from t;\n";
    let out = guest_sqlite(s, &["-interactive", "shop"], input);
    // As sqlite3 does, a session with an error ends with status 1.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("SQLite version 3."), "{stdout}");
    // One prompt per line read, "   ...>" inside the two-line statement, a newline at the end.
    assert!(
        stdout.ends_with(
            "usage hints.\nsqlite> sqlite> sqlite>    ...> 1|x\n2|y\nsqlite> sqlite> sqlite> count(*)\n2\nsqlite> \n"
        ),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Parse error: near \"selec\": syntax error\n  selec 1;\n  ^--- error here\n"
    );
    // Without a terminal and without -interactive: no banner, no prompts.
    let quiet = guest_sqlite(s, &["shop"], "select count(*) from t;\n");
    assert_eq!(String::from_utf8_lossy(&quiet.stdout), "2\n");
}

#[test]
fn one_shot_runs_each_argument_and_fails_like_sqlite3() {
    if !kvm_available("one_shot_runs_each_argument_and_fails_like_sqlite3") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let args = [
        "shop",
        "create table t(a integer primary key, b text unique)",
        "insert into t(b) values ('x'),('y')",
        ".mode csv",
        "select * from t",
    ];
    let out = guest_sqlite(s, &args, "");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1,x\r\n2,y\r\n");
    assert_eq!(
        guest_sqlite(s, &["shop", "select count(*) from t"], "").stdout,
        b"2\n"
    );
    let syntax = guest_sqlite(s, &["shop", "selec 1"], "");
    let unique = guest_sqlite(s, &["shop", "insert into t(b) values ('x')"], "");
    assert_eq!(syntax.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&syntax.stderr),
        "Error: in prepare, near \"selec\": syntax error\n  selec 1\n  ^--- error here\n"
    );
    assert_eq!(
        unique.status.code(),
        Some(19),
        "SQLITE_CONSTRAINT, as sqlite3 exits"
    );
    assert_eq!(
        String::from_utf8_lossy(&unique.stderr),
        "Error: stepping, UNIQUE constraint failed: t.b (19)\n"
    );
    // The host's sqlite3 says the same.
    let tmp = common::temp_store();
    let db = tmp.path().join("host.db");
    let Some(host) = common::host_sqlite3(&[db.to_str().expect("utf-8"), "selec 1"], "") else {
        return;
    };
    assert_eq!(host.stderr, syntax.stderr);
    assert_eq!(host.status.code(), syntax.status.code());
}

#[test]
fn read_runs_a_script_object_imported_from_the_host() {
    if !kvm_available("read_runs_a_script_object_imported_from_the_host") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let tmp = common::temp_store();
    let file = tmp.path().join("setup.sql");
    let script =
        "create table t(a);\ninsert into t values (1), (2);\nselec 3;\nselect sum(a) from t;\n";
    std::fs::write(&file, script).expect("write the script");
    common::ok(
        s,
        &["obj", "import", "setup", file.to_str().expect("utf-8")],
    );
    let out = guest_sqlite(
        s,
        &["shop"],
        ".read setup\nselect count(*) from t;\n.read missing\nselect 'still here';\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n2\nstill here\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Parse error near line 3: near \"selec\": syntax error\n  selec 3;\n  ^--- error here\n\
         Error: cannot open \"missing\"\n"
    );
    // A script that reads itself stops at a depth limit instead of running out of stack.
    let looping = tmp.path().join("loop.sql");
    std::fs::write(&looping, "select 'deeper';\n.read loop\n").expect("write the script");
    common::ok(
        s,
        &["obj", "import", "loop", looping.to_str().expect("utf-8")],
    );
    let deep = guest_sqlite(s, &["shop", ".read loop"], "");
    assert_eq!(deep.status.code(), Some(1), "{}", describe(&deep));
    assert_eq!(String::from_utf8_lossy(&deep.stdout).lines().count(), 32);
    assert!(
        String::from_utf8_lossy(&deep.stderr).contains("Error: .read nested too deeply: \"loop\""),
        "{}",
        describe(&deep)
    );
    // One-shot too.
    let again = guest_sqlite(s, &["other", ".read setup"], "");
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "3\n");
}

#[test]
fn export_and_import_move_databases_to_and_from_the_hosts_sqlite3() {
    if !kvm_available("export_and_import_move_databases_to_and_from_the_hosts_sqlite3") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    guest_ok(s, "shop", CREATE);
    let tmp = common::temp_store();
    let file = tmp.path().join("shop.db");
    let file_arg = file.to_str().expect("utf-8");
    common::ok(s, &["obj", "export", "shop", file_arg]);
    let Some(check) = common::host_sqlite3(
        &[file_arg],
        "pragma integrity_check;\nselect count(*) from items;\n",
    ) else {
        return;
    };
    assert_eq!(String::from_utf8_lossy(&check.stdout), "ok\n503\n");
    // Changed by the host's sqlite3, and brought back under another name.
    let changed = common::host_sqlite3(
        &[file_arg],
        "delete from items where qty = 0;\ninsert into items(name, qty) values ('host', 1);\n",
    )
    .expect("sqlite3 ran");
    assert!(changed.status.success(), "{}", describe(&changed));
    common::ok(s, &["obj", "import", "other", file_arg]);
    let back = guest_ok(
        s,
        "other",
        "pragma integrity_check;\nselect count(*), max(id) from items;\nselect name from items where name = 'host';\n",
    );
    assert_eq!(back, "ok\n432|504\nhost\n");
    // The original is untouched, and a round trip is byte-exact.
    assert_eq!(
        guest_ok(s, "shop", "select count(*) from items;\n"),
        "503\n"
    );
    let again = tmp.path().join("again.db");
    common::ok(
        s,
        &["obj", "export", "other", again.to_str().expect("utf-8")],
    );
    assert_eq!(std::fs::read(&again).ok(), std::fs::read(&file).ok());
}

#[test]
fn journals_are_deleted_when_the_database_closes() {
    if !kvm_available("journals_are_deleted_when_the_database_closes") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    guest_ok(s, "shop", CREATE);
    guest_ok(
        s,
        "shop",
        "begin;\nupdate items set qty = qty + 1;\ncommit;\n",
    );
    guest_ok(s, "shop", "begin;\nupdate items set qty = 0;\nrollback;\n");
    assert_eq!(object_names(s), ["shop"], "only the database is left");
    // A run killed in a write transaction leaves its journal (it may be hot); the next run
    // rolls it back and deletes it.
    let script = crash_script(1, 200);
    run_and_kill(s, "shop", script, 3);
    assert_eq!(guest_ok(s, "shop", "pragma integrity_check;\n"), "ok\n");
    assert_eq!(
        object_names(s),
        ["shop"],
        "the killed run's journal and lock are gone"
    );
}

/// Starts `twz-vmm run sqlite -- DB` reading statements from a pipe the caller writes to; the
/// guest holds the database from its first statement until its input ends.
fn holder(store: &Path, db: &str) -> std::process::Child {
    common::twz(store)
        .args(["run", "sqlite", "--", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn twz-vmm")
}

/// Sends `sql` to a holder and waits for its one-line answer.
fn ask(
    child: &mut std::process::Child,
    out: &mut BufReader<std::process::ChildStdout>,
    sql: &str,
) -> String {
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(sql.as_bytes()).expect("write to the guest");
    stdin.flush().expect("flush");
    let mut line = String::new();
    out.read_line(&mut line).expect("read from the guest");
    line
}

#[test]
fn a_second_guest_finds_the_database_locked_until_the_first_exits_or_dies() {
    if !kvm_available("a_second_guest_finds_the_database_locked_until_the_first_exits_or_dies") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    guest_ok(s, "shop", CREATE);
    for ending in ["exit", "kill"] {
        let mut first = holder(s, "shop");
        let mut out = BufReader::new(first.stdout.take().expect("piped stdout"));
        assert_eq!(
            ask(&mut first, &mut out, "select count(*) > 500 from items;\n"),
            "1\n"
        );
        let second = guest_sqlite(
            s,
            &["shop", "insert into items(name) values ('second')"],
            "",
        );
        assert_eq!(
            second.status.code(),
            Some(5),
            "SQLITE_BUSY: {}",
            describe(&second)
        );
        assert_eq!(
            String::from_utf8_lossy(&second.stderr),
            "Error: in prepare, database is locked (5)\n"
        );
        // Another database is not affected.
        assert_eq!(guest_ok(s, "elsewhere", "select 1;\n"), "1\n");
        // The holder still works, and its writes are there after it ends.
        assert_eq!(
            ask(
                &mut first,
                &mut out,
                &format!("insert into items(name) values ('{ending}');\nselect 'done';\n")
            ),
            "done\n"
        );
        if ending == "exit" {
            drop(first.stdin.take());
            assert!(first.wait().expect("wait").success());
        } else {
            first.kill().expect("SIGKILL the holder");
            let _ = first.wait();
        }
        let after = guest_sqlite(
            s,
            &[
                "shop",
                "select count(*) from items where name in ('exit', 'kill')",
            ],
            "",
        );
        assert_eq!(
            after.status.code(),
            Some(0),
            "{ending}: {}",
            describe(&after)
        );
    }
    assert_eq!(
        guest_ok(s, "shop", "select count(*) from items;\n"),
        "505\n"
    );
    let mut names = object_names(s);
    names.sort();
    assert_eq!(names, ["elsewhere", "shop"], "no lock object is left");
}

#[test]
fn a_power_loss_loses_no_committed_transaction() {
    if !kvm_available("a_power_loss_loses_no_committed_transaction") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let first = run_and_kill(s, "pl", crash_script(1, 5), 5);
    // What the disk holds before the durable run (a clean exit synced nothing; the kill left
    // the store as it was, and opening it settles the journal).
    let committed = check_crash_db(s, "pl", 0, first, 0);
    let disk = common::temp_store();
    common::copy_objects(s, disk.path());
    let echoed = run_and_kill(
        s,
        "pl",
        crash_script(committed + 1, 300),
        5 + random_below(20),
    );
    // The power goes: the page cache is lost, the object files are as the disk held them
    // before the run, and only the flush journal kept what SQLite synced.
    common::copy_objects(disk.path(), s);
    let report = object_store::replay(s).expect("replay the journal");
    assert!(
        report.applied > 0,
        "the journal held the commits: {report:?}"
    );
    let max = check_crash_db(s, "pl", 1, echoed, committed);
    println!("power loss after commit {echoed}: {max} transactions present");
}

#[test]
fn a_power_loss_right_after_a_commit_keeps_it() {
    if !kvm_available("a_power_loss_right_after_a_commit_keeps_it") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    run_and_kill(s, "pa", crash_script(1, 1), 1);
    let disk = common::temp_store();
    common::copy_objects(s, disk.path());
    // Three commits, then the guest waits for input: SQLite's last act of each commit is
    // deleting its rollback journal, and that must be durable too, or the power loss leaves a
    // hot journal that rolls the last commit back.
    let echoed = run_and_kill(s, "pa", crash_script(2, 3), 3);
    assert_eq!(echoed, 4);
    common::copy_objects(disk.path(), s);
    object_store::replay(s).expect("replay the journal");
    let max = check_crash_db(s, "pa", 1, echoed, 1);
    assert_eq!(max, 4, "every commit made before the power loss is there");
}

#[test]
fn xsync_flushes_only_when_the_run_asks_for_durable_commits() {
    if !kvm_available("xsync_flushes_only_when_the_run_asks_for_durable_commits") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let flushes = |durability: &str| {
        let out = guest_sqlite_with(
            s,
            &["--durability", durability, "--stats"],
            &["shop"],
            "create table if not exists t(a);\ninsert into t values (1);\n",
        );
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let stats = String::from_utf8_lossy(&out.stderr).into_owned();
        let n = stats
            .split(", ")
            .find_map(|part| part.strip_suffix(" flushes")?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no flush count in {stats}"));
        // Fences written to the store's flush journal.
        let journaled = stats
            .split("flush journal: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next()?.parse::<u64>().ok());
        (n, journaled)
    };
    assert_eq!(
        flushes("none"),
        (0, None),
        "none: nothing waits for the disk"
    );
    let (n, journaled) = flushes("commit");
    assert!(n >= 2, "commit: the journal, then the database");
    assert!(
        journaled.is_some_and(|j| j >= 2),
        "commit: each sync is a fence through the flush journal"
    );
    assert!(flushes("group").0 >= 2, "group: as commit (see objvfs.c)");
    assert_eq!(guest_ok(s, "shop", "select count(*) from t;\n"), "3\n");
}

#[test]
fn sqlite_reads_pages_through_memory_mapped_objects() {
    if !kvm_available("sqlite_reads_pages_through_memory_mapped_objects") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    guest_ok(s, "shop", CREATE);
    // The default mmap limit is the object's data region, so xFetch serves every page; a
    // smaller limit set by pragma is obeyed, and 0 turns it off, with the same answers.
    let out = guest_ok(
        s,
        "shop",
        "pragma mmap_size;\nselect count(*) from items;\npragma mmap_size = 0;\nselect count(*) from items;\npragma mmap_size = 65536;\n",
    );
    let max = 1_u64 << 30;
    let lines: Vec<&str> = out.lines().collect();
    let default: u64 = lines[0].parse().expect("a number");
    assert!(default > max - (8 << 20) && default < max, "{out}");
    assert_eq!(lines[1..], ["503", "0", "503", "65536"], "{out}");
}

#[test]
fn a_terminal_on_stdin_gets_the_banner_and_prompts_without_being_asked() {
    if !kvm_available("a_terminal_on_stdin_gets_the_banner_and_prompts_without_being_asked") {
        return;
    }
    let store = common::temp_store();
    // util-linux `script` runs the VMM with a pseudo-terminal as its standard input.
    let command = format!(
        "{} --store {} run sqlite -- shop",
        env!("CARGO_BIN_EXE_twz-vmm"),
        store.path().display()
    );
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &command, "/dev/null"]);
    let out = match common::output_with_stdin(&mut script, b"select 6 * 7;\n") {
        Ok(out) => out,
        Err(e) => {
            println!("SKIP a_terminal_on_stdin_gets_the_banner_and_prompts_without_being_asked: no script ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout.contains("SQLite version 3."), "{stdout}");
    assert!(stdout.contains("sqlite> 42\n"), "{stdout}");
}

#[test]
fn a_full_filesystem_is_database_full_and_loses_nothing() {
    if !kvm_available("a_full_filesystem_is_database_full_and_loses_nothing") {
        return;
    }
    let Some(fs) = common::SmallFs::mount(24 << 20) else {
        println!(
            "SKIP a_full_filesystem_is_database_full_and_loses_nothing: cannot mount a tmpfs here"
        );
        return;
    };
    let s = fs.path().join("store");
    // 40 rows of 1 MB into 24 MiB: the later inserts cannot be stored.
    let mut script = String::from("create table t(b blob);\n");
    for _ in 0..40 {
        script.push_str("insert into t values (randomblob(1000000));\n");
    }
    script.push_str("select count(*) from t;\n");
    let out = guest_sqlite(&s, &["shop"], &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stored: usize = stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", describe(&out)));
    assert!((5..40).contains(&stored), "{stored} rows stored");
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors in a script: {}",
        describe(&out)
    );
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 40 - stored, "{stderr}");
    assert!(
        errors
            .iter()
            .all(|l| l.ends_with("database or disk is full (13)")),
        "SQLite's own message: {stderr}"
    );
    // The database is intact and still takes what fits.
    assert_eq!(
        guest_ok(
            &s,
            "shop",
            "pragma integrity_check; insert into t values (1); select count(*) from t;"
        ),
        format!("ok\n{}\n", stored + 1)
    );
}
