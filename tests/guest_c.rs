//! C programs in guests: the libc shim (stdio, stdlib, string, time) under KVM, through `chello`.

mod common;

use common::describe;

use std::process::Output;

use common::kvm_available;

fn run(args: &[&str]) -> Output {
    let store = common::temp_store();
    common::run(store.path(), &[&["run"], args].concat())
}

fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let store = common::temp_store();
    common::output_with_stdin(common::twz(store.path()).arg("run").args(args), input)
        .expect("spawn twz-vmm")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn c_main_gets_argc_argv_and_prints_with_printf() {
    if !kvm_available("c_main_gets_argc_argv_and_prints_with_printf") {
        return;
    }
    let out = run(&["chello", "--", "a", "b c", ""]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        stdout(&out),
        "Hello from C in a twz guest! (3 arguments)\n\
         argv[1] = a\n\
         argv[2] = b c\n\
         argv[3] = \n\
         built 3890 bytes in a 4096-byte buffer, ends with \"999,\"\n\
         clock: ok; pi = 3.14159, e = 2.71828, 2^-10 = 9.765625e-04\n"
    );
}

#[test]
fn numbers_parse_and_format() {
    if !kvm_available("numbers_parse_and_format") {
        return;
    }
    let out = run(&[
        "chello",
        "--",
        "--sum",
        "1",
        "0x10",
        "-5",
        "010",
        "9000000000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        stdout(&out),
        "sum = 9000000020 = 0x218711a14 = 103034215024 (+9.000e+09)\n"
    );
    let bad = run(&["chello", "--", "--sum", "12abc"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "chello: not a number: '12abc'\n"
    );
}

#[test]
fn heap_strings_and_qsort() {
    if !kvm_available("heap_strings_and_qsort") {
        return;
    }
    let out = run(&["chello", "--", "--sort", "pear", "apple", "fig", "Zebra"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        stdout(&out),
        "Zebra     |    5\napple     |    5\nfig       |    3\npear      |    4\n"
    );
}

#[test]
fn fgets_reads_stdin_in_pieces_and_exit_status_comes_from_main() {
    if !kvm_available("fgets_reads_stdin_in_pieces_and_exit_status_comes_from_main") {
        return;
    }
    let input: String = (0..200)
        .map(|i| format!("line {i} {}\n", "x".repeat(i % 90)))
        .collect();
    let out = run_with_stdin(&["chello", "--", "--cat"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), input);
    let out = run(&["chello", "--", "--exit", "42"]);
    assert_eq!(out.status.code(), Some(42), "{}", describe(&out));
}

// ---- SQLite in a guest, diffed against the host's sqlite3 ----

/// A shell session in script mode: statements across lines, every output mode, dot-commands,
/// and the three kinds of error (syntax with position, missing table, constraint at run time).
const SESSION: &str = "\
create table t(a integer primary key, b text, c real);
insert into t(b,c) values ('x', 1.5), ('y', NULL), ('hello, \"w\"', 3);
select * from t;
.headers on
select * from t;
.mode csv
select * from t;
select 'a b', 'it''s', '', NULL, 'x,y';
.mode column
select * from t;
select a, b as longer_name from t where a < 3;
select * from t where 0;
.mode line
select * from t;
.mode list
.headers off
.tables
.schema
create index ti on t(b);
create table s(id integer primary key autoincrement, v);
create view vv as select b from t;
.tables
.schema t
selec 1;
select * from nosuch;
insert into t(a) values (1);
select count(*),
       sum(a)
  from t;
.nullvalue NULL
select null, typeof(null), 7 / 2, 7 / 2.0, length('abc'), upper('x'), printf('%5.2f|%-4d|', 3.14159, 42);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 5) select group_concat(i, ',') from n;
select abs(-3), round(2.567, 2), hex('AB'), quote('it''s'), 1e3, 10 % 3, cast('12' as integer) + 1;
.headers on
.mode column
select name, type from sqlite_schema order by name;
.foo
select 'unterminated at end of input'
";

/// Output of `twz-vmm run sqlite -- ARGS` with `input` on stdin.
fn guest_sqlite(args: &[&str], input: &str) -> Output {
    run_with_stdin(&[&["sqlite", "--"], args].concat(), input.as_bytes())
}

/// Asserts the guest's shell printed what the host's did: stdout, stderr and exit status.
fn assert_same_as_host(args: &[&str], input: &str, guest: &Output) {
    let Some(host) = common::host_sqlite3(args, input) else {
        return;
    };
    assert_eq!(
        String::from_utf8_lossy(&guest.stdout),
        String::from_utf8_lossy(&host.stdout),
        "stdout differs from the host's sqlite3\n{}",
        describe(guest)
    );
    assert_eq!(
        String::from_utf8_lossy(&guest.stderr),
        String::from_utf8_lossy(&host.stderr),
        "stderr differs from the host's sqlite3"
    );
    assert_eq!(guest.status.code(), host.status.code(), "exit status");
}

#[test]
fn sqlite_script_from_stdin_matches_the_host_shell() {
    if !kvm_available("sqlite_script_from_stdin_matches_the_host_shell") {
        return;
    }
    let out = guest_sqlite(&[":memory:"], SESSION);
    // What a user checks first, whatever the host has: rows, modes, errors, status.
    let text = stdout(&out);
    assert!(
        text.starts_with("1|x|1.5\n2|y|\n3|hello, \"w\"|3.0\na|b|c\n"),
        "{}",
        describe(&out)
    );
    assert!(
        text.contains("3,\"hello, \"\"w\"\"\",3.0\r\n"),
        "csv quoting: {text}"
    );
    assert!(
        text.contains("a  b           c  \n-  ----------  ---\n"),
        "column mode: {text}"
    );
    assert!(
        text.contains("    a = 1\n    b = x\n    c = 1.5\n\n"),
        "line mode: {text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Parse error near line 24: near \"selec\": syntax error\n  selec 1;\n  ^--- error here\n"),
        "{err}"
    );
    assert!(
        err.contains("Runtime error near line 26: UNIQUE constraint failed: t.a (19)\n"),
        "{err}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors make a script's status 1"
    );
    assert_same_as_host(&[":memory:"], SESSION, &out);
}

#[test]
fn sqlite_one_shot_runs_each_argument() {
    if !kvm_available("sqlite_one_shot_runs_each_argument") {
        return;
    }
    let args = [
        ":memory:",
        "create table t(a primary key, b)",
        "insert into t values (1, 'one'), (2, 'two')",
        ".headers on",
        "select * from t order by a desc",
    ];
    let out = guest_sqlite(&args, "");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "a|b\n2|two\n1|one\n");
    assert_same_as_host(&args, "", &out);

    // The first error ends the run with SQLite's code, as the sqlite3 shell does.
    let bad = [
        ":memory:",
        "create table t(a primary key)",
        "insert into t values (1)",
        "insert into t values (1)",
        "select 'not reached'",
    ];
    let out = guest_sqlite(&bad, "");
    assert_eq!(out.status.code(), Some(19), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: stepping, UNIQUE constraint failed: t.a (19)\n"
    );
    assert_same_as_host(&bad, "", &out);

    let syntax = [":memory:", "selec 1"];
    let out = guest_sqlite(&syntax, "");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_same_as_host(&syntax, "", &out);
}

#[test]
fn sqlite_handles_a_larger_workload_and_deep_expressions() {
    if !kvm_available("sqlite_handles_a_larger_workload_and_deep_expressions") {
        return;
    }
    // 20k rows through an index, a join, an aggregate, and an expression 900 levels deep (stack).
    let deep = format!("select {};\n", ["1"; 900].join(" + "));
    let script = format!(
        "create table k(id integer primary key, v text, n int);\n\
         with recursive c(i) as (select 1 union all select i + 1 from c where i < 20000)\n\
         insert into k(v, n) select hex(randomblob(8)), i % 97 from c;\n\
         create index kn on k(n);\n\
         select count(*), count(distinct n), sum(n) from k;\n\
         select n, count(*) from k where n between 10 and 12 group by n;\n\
         select count(*) from k a join k b on a.id = b.id + 1 where a.n = 3;\n\
         {deep}"
    );
    let out = guest_sqlite(&[":memory:"], &script);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        stdout(&out),
        "20000|97|959307\n10|207\n11|207\n12|207\n207\n900\n"
    );
}

#[test]
fn a_failed_assert_reports_the_c_line_and_a_backtrace() {
    if !kvm_available("a_failed_assert_reports_the_c_line_and_a_backtrace") {
        return;
    }
    let out = run(&["chello", "--", "--assert"]);
    assert_eq!(out.status.code(), Some(101), "{}", describe(&out));
    assert_eq!(stdout(&out), "before the assertion\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let source = include_str!("../examples/chello/src/chello.c");
    let line = 1 + source
        .lines()
        .position(|l| l.contains("assert(argc == 99)"))
        .expect("chello.c has the assertion");
    assert!(
        err.contains(&format!(
            "chello.c:{line}: main: Assertion `argc == 99' failed.\n"
        )),
        "{err}"
    );
    assert!(err.contains("abort() called"), "{err}");
    assert!(
        err.contains("main at ") && err.contains(&format!("chello.c:{line}")),
        "backtrace names the C line: {err}"
    );
}

// ---- The object C API (twz.h), through `chello --append` ----

#[test]
fn c_programs_keep_byte_streams_in_named_objects() {
    if !kvm_available("c_programs_keep_byte_streams_in_named_objects") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    let first = common::ok(s, &["run", "chello", "--", "--append", "log", "first line"]);
    assert_eq!(
        first,
        "created log\ncreate again: File exists\nsize 11\nfirst line\n\
         beyond the end: Invalid argument\n"
    );
    // A second run (a new VM) appends to the same object.
    let second = common::ok(s, &["run", "chello", "--", "--append", "log", "second"]);
    assert_eq!(
        second,
        "create again: File exists\nsize 18\nfirst line\nsecond\n\
         beyond the end: Invalid argument\n"
    );
    // The host sees one object with both names, its length as the size in use, flagged raw.
    let show = common::ok(s, &["obj", "show", "log-alias", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).expect("JSON");
    assert_eq!(v["size_in_use"].as_u64(), Some(18), "{v}");
    assert_eq!(v["names"], serde_json::json!(["log", "log-alias"]), "{v}");
    assert_eq!(v["header"]["flag_names"], serde_json::json!(["raw"]), "{v}");
    let dump = common::ok(s, &["obj", "dump", "log", "--len", "18"]);
    assert!(dump.contains("|first line.secon|"), "{dump}");
}

// ---- Transactions, allocation and persistent pointers from C, through `chello --push` ----

#[test]
fn c_transactions_build_a_list_across_objects_and_abort_leaves_it_unchanged() {
    if !kvm_available("c_transactions_build_a_list_across_objects_and_abort_leaves_it_unchanged") {
        return;
    }
    let store = common::temp_store();
    let s = store.path();
    for (i, w) in ["one", "two", "three"].iter().enumerate() {
        let out = common::ok(s, &["run", "chello", "--", "--push", "words", w]);
        assert_eq!(out, format!("pushed {w}, count {}\n", i + 1));
    }
    let aborted = common::ok(s, &["run", "chello", "--", "--push-abort", "words", "nope"]);
    assert_eq!(aborted, "aborted nope, count 3\n");
    // Newest first; the last node's null `next` resolves to EINVAL, not a wild load.
    let listed = common::ok(s, &["run", "chello", "--", "--words", "words"]);
    assert_eq!(listed, "three\ntwo\none\nend: Invalid argument\n");
    // Each node object links the previous one through its FOT.
    let fot = common::ok(s, &["obj", "fot", "words"]);
    assert!(fot.lines().count() >= 2, "{fot}");
    common::ok(s, &["store", "fsck"]);
}
