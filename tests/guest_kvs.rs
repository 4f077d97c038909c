//! The key-value store unikernel (`twz-vmm run kvs`): one-shot commands and persistence, the
//! Redis protocol through `serve-stdin` with Redis's exact replies, malformed input, empty and
//! multi-MiB values, index growth, a SIGKILL crash test, and real TCP clients (`redis-cli`,
//! pipelining, disconnects, concurrency) against `--listen`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{
    copy_objects, describe, kvm_available, output_with_stdin, spawn_listening, temp_store, twz,
};

/// `twz-vmm run kvs --durability none -- ARGS`.
fn kvs(store: &Path, args: &[&str]) -> Output {
    twz(store)
        .args(["run", "kvs", "--durability", "none", "--"])
        .args(args)
        .output()
        .expect("spawn twz-vmm")
}

/// Runs a one-shot command that must succeed; returns its stdout.
fn kvs_ok(store: &Path, args: &[&str]) -> String {
    let out = kvs(store, args);
    assert!(out.status.success(), "kvs {args:?}: {}", describe(&out));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Feeds `input` to `kvs serve-stdin` and returns everything it replied.
fn serve(store: &Path, input: &[u8]) -> Vec<u8> {
    let out = output_with_stdin(
        twz(store).args(["run", "kvs", "--durability", "none", "--", "serve-stdin"]),
        input,
    )
    .expect("spawn twz-vmm");
    assert!(out.status.success(), "serve-stdin: {}", describe(&out));
    out.stdout
}

/// One RESP request as a multibulk.
fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// Parses one reply at the start of `b`: the reply and the bytes it used, or None if incomplete.
fn parse_reply(b: &[u8]) -> Option<(Reply, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..end]).expect("reply header is text");
    let used = end + 2;
    match b[0] {
        b'+' => Some((Reply::Simple(line.into()), used)),
        b'-' => Some((Reply::Error(line.into()), used)),
        b':' => Some((Reply::Int(line.parse().expect("integer reply")), used)),
        b'$' => {
            let n: i64 = line.parse().expect("bulk length");
            if n < 0 {
                return Some((Reply::Bulk(None), used));
            }
            let n = n as usize;
            (b.len() >= used + n + 2)
                .then(|| (Reply::Bulk(Some(b[used..used + n].to_vec())), used + n + 2))
        }
        b'*' => {
            let n: i64 = line.parse().expect("array length");
            let mut items = Vec::new();
            let mut at = used;
            for _ in 0..n.max(0) {
                let (r, u) = parse_reply(&b[at..])?;
                items.push(r);
                at += u;
            }
            Some((Reply::Array(items), at))
        }
        other => panic!("not a RESP reply: {:?}", other as char),
    }
}

fn parse_all(mut b: &[u8]) -> Vec<Reply> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let (r, used) = parse_reply(b).unwrap_or_else(|| panic!("truncated reply {b:?}"));
        v.push(r);
        b = &b[used..];
    }
    v
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

/// Asserts `check` finds the index clean and returns its summary line.
fn check_clean(store: &Path) -> String {
    let out = kvs(store, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.trim_end().ends_with(": ok"),
        "check: {}",
        describe(&out)
    );
    text
}

#[test]
fn one_shot_commands_persist_across_runs() {
    if !kvm_available("one_shot_commands_persist_across_runs") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    assert_eq!(kvs_ok(s, &["set", "user:1", "alice"]), "OK\n");
    assert_eq!(
        kvs_ok(s, &["get", "user:1"]),
        "alice\n",
        "a later run sees it"
    );
    let missing = kvs(s, &["get", "user:2"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    assert_eq!(String::from_utf8_lossy(&missing.stderr), "(nil)\n");
    assert!(missing.stdout.is_empty());
    assert_eq!(kvs_ok(s, &["incr", "hits"]), "1\n");
    assert_eq!(kvs_ok(s, &["incr", "hits", "41"]), "42\n");
    assert_eq!(kvs_ok(s, &["append", "user:1", "!"]), "6\n");
    assert_eq!(kvs_ok(s, &["set", "user:3", ""]), "OK\n");
    assert_eq!(kvs_ok(s, &["get", "user:3"]), "\n", "an empty value");
    assert_eq!(kvs_ok(s, &["exists", "user:1", "user:2", "user:3"]), "2\n");
    assert_eq!(kvs_ok(s, &["dbsize"]), "3\n");
    let mut keys: Vec<String> = kvs_ok(s, &["scan", "user:*"])
        .lines()
        .map(String::from)
        .collect();
    keys.sort();
    assert_eq!(keys, ["user:1", "user:3"]);
    assert_eq!(kvs_ok(s, &["del", "user:1", "nope"]), "1\n");
    assert_eq!(kvs_ok(s, &["get", "hits"]), "42\n");
    let bad = kvs(s, &["incr", "user:3"]);
    assert_eq!(bad.status.code(), Some(1), "{}", describe(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an integer"));
    check_clean(s);

    // Another database is another index object; the first is untouched.
    assert_eq!(
        kvs_ok(s, &["--db", "other", "set", "user:1", "bob"]),
        "OK\n"
    );
    assert_eq!(kvs_ok(s, &["--db", "other", "get", "user:1"]), "bob\n");
    assert_eq!(kvs_ok(s, &["dbsize"]), "2\n");
    assert_eq!(kvs_ok(s, &["flushdb"]), "OK\n");
    assert_eq!(kvs_ok(s, &["dbsize"]), "0\n");
    assert_eq!(kvs_ok(s, &["--db", "other", "dbsize"]), "1\n");
    check_clean(s);

    let usage = twz(s)
        .args(["run", "kvs", "--", "frobnicate"])
        .output()
        .expect("spawn");
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: kvs"));
}

#[test]
fn the_default_shell_answers_like_redis_cli() {
    if !kvm_available("the_default_shell_answers_like_redis_cli") {
        return;
    }
    let store = temp_store();
    let script = concat!(
        "set user:1 alice\n",
        "get user:1\n",
        "get nobody\n",
        "incr hits\n",
        "set \"two words\" \"tab\\there\"\n",
        "get 'two words'\n",
        "mget user:1 nobody\n",
        "set unbalanced \"quote\n",
        "\n",
        "bogus\n",
    );
    // No command and no --listen: the shell, reading standard input.
    let out = output_with_stdin(
        twz(store.path()).args(["run", "kvs", "--durability", "none"]),
        script.as_bytes(),
    )
    .expect("spawn twz-vmm");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        concat!(
            "OK\n",
            "\"alice\"\n",
            "(nil)\n",
            "(integer) 1\n",
            "OK\n",
            "\"tab\\there\"\n",
            "1) \"alice\"\n",
            "2) (nil)\n",
            "Invalid argument(s)\n",
            "(error) ERR unknown command 'bogus', with args beginning with: \n",
        ),
        "{}",
        describe(&out)
    );
    // A failed command in a script makes the exit status 1, like a script should.
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    // What the shell stored is the store's: a later one-shot run reads it.
    assert_eq!(kvs_ok(store.path(), &["get", "two words"]), "tab\there\n");
}

#[test]
fn runs_on_huge_pages_share_the_store_with_ordinary_runs() {
    if !kvm_available("runs_on_huge_pages_share_the_store_with_ordinary_runs") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    let huge = |args: &[&str]| {
        let out = twz(s)
            .args(["run", "kvs", "--huge-pages", "--durability", "none", "--"])
            .args(args)
            .output()
            .expect("spawn twz-vmm");
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(huge(&["set", "k", "on 2 MiB pages"]), "OK\n");
    assert_eq!(kvs_ok(s, &["get", "k"]), "on 2 MiB pages\n");
    assert_eq!(kvs_ok(s, &["set", "k2", "on 4 KiB pages"]), "OK\n");
    assert_eq!(huge(&["get", "k2"]), "on 4 KiB pages\n");
    check_clean(s);
}

#[test]
fn resp_commands_reply_exactly_like_redis() {
    if !kvm_available("resp_commands_reply_exactly_like_redis") {
        return;
    }
    let store = temp_store();
    // Inline commands (as typed into a terminal) and multibulk ones, mixed: pairs of request and
    // the exact reply Redis 7 gives.
    let script: &[(&[u8], &[u8])] = &[
        (b"PING\r\n", b"+PONG\r\n"),
        (b"PING hi\r\n", b"$2\r\nhi\r\n"),
        (b"ECHO \"a b\"\r\n", b"$3\r\na b\r\n"),
        (b"SET k v\r\n", b"+OK\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$1\r\nv\r\n"),
        (b"GET missing\r\n", b"$-1\r\n"),
        (b"SET k v2 NX\r\n", b"$-1\r\n"),
        (b"SET k v3 XX\r\n", b"+OK\r\n"),
        (b"SET fresh v XX\r\n", b"$-1\r\n"),
        (b"SET k v4 GET\r\n", b"$2\r\nv3\r\n"),
        (b"SET n 10\r\n", b"+OK\r\n"),
        (b"INCR n\r\n", b":11\r\n"),
        (b"INCRBY n 5\r\n", b":16\r\n"),
        (b"DECR n\r\n", b":15\r\n"),
        (b"DECRBY n 3\r\n", b":12\r\n"),
        (
            b"INCR k\r\n",
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            b"INCRBY n abc\r\n",
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (b"SET big 9223372036854775807\r\n", b"+OK\r\n"),
        (
            b"INCR big\r\n",
            b"-ERR increment or decrement would overflow\r\n",
        ),
        (
            b"DECRBY n -9223372036854775808\r\n",
            b"-ERR decrement would overflow\r\n",
        ),
        (b"MSET a 1 b 2\r\n", b"+OK\r\n"),
        (b"MGET a b c\r\n", b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"),
        (
            b"MSET a\r\n",
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (
            b"MSET a 1 b\r\n",
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (b"APPEND a xyz\r\n", b":4\r\n"),
        (b"APPEND new abc\r\n", b":3\r\n"),
        (b"STRLEN a\r\n", b":4\r\n"),
        (b"STRLEN zz\r\n", b":0\r\n"),
        (b"EXISTS a b zz a\r\n", b":3\r\n"),
        (b"DEL a b zz\r\n", b":2\r\n"),
        (
            b"SET e v EX 0\r\n",
            b"-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            b"SET e v EX abc\r\n",
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (b"SET e v EX 10 PX 10\r\n", b"-ERR syntax error\r\n"),
        (b"SET e v NX XX\r\n", b"-ERR syntax error\r\n"),
        (b"SET e v FOO\r\n", b"-ERR syntax error\r\n"),
        (b"SET e v PX 100000\r\n", b"+OK\r\n"),
        (b"TTL e\r\n", b":100\r\n"),
        (b"TTL k\r\n", b":-1\r\n"),
        (b"PTTL nope\r\n", b":-2\r\n"),
        (b"SET gone v PX 1\r\n", b"+OK\r\n"),
        (
            b"GET\r\n",
            b"-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            b"GET a b\r\n",
            b"-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            b"FOO bar baz\r\n",
            b"-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n",
        ),
        (
            b"foo\r\n",
            b"-ERR unknown command 'foo', with args beginning with: \r\n",
        ),
        (b"CONFIG GET save\r\n", b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
        (
            b"CONFIG GET appendonly\r\n",
            b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
        ),
        (b"COMMAND DOCS\r\n", b"*0\r\n"),
        (b"SELECT 0\r\n", b"+OK\r\n"),
        (b"KEYS a*\r\n", b"*0\r\n"),
        (b"KEYS bi?\r\n", b"*1\r\n$3\r\nbig\r\n"),
        (
            b"SCAN 0 MATCH fre[a-z]h COUNT 1000\r\n",
            b"*2\r\n$1\r\n0\r\n*0\r\n",
        ),
        (b"SCAN x\r\n", b"-ERR invalid cursor\r\n"),
        (b"FLUSHDB\r\n", b"+OK\r\n"),
        (b"DBSIZE\r\n", b":0\r\n"),
        (b"SET after flush\r\n", b"+OK\r\n"),
        (b"DBSIZE\r\n", b":1\r\n"),
        (b"QUIT\r\n", b"+OK\r\n"),
        (b"PING\r\n", b""), // after QUIT nothing more is read
    ];
    // Each request is sent after a short gap so the expiring key ("gone", 1 ms) has expired
    // by the time of the KEYS/SCAN below it; one stream, one connection.
    let input: Vec<u8> = script.iter().flat_map(|(i, _)| i.to_vec()).collect();
    let expected: Vec<u8> = script.iter().flat_map(|(_, o)| o.to_vec()).collect();
    let out = serve(store.path(), &input);
    if out != expected {
        // Show the first request whose reply differs.
        let (mut at, mut shown) = (0, false);
        for (req, want) in script {
            let got = &out[at.min(out.len())..(at + want.len()).min(out.len())];
            if got != *want && !shown {
                panic!(
                    "request {:?}: expected {:?}, got {:?}",
                    String::from_utf8_lossy(req),
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(&out[at.min(out.len())..])
                );
            }
            at += want.len();
            shown = got != *want;
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }
    // The store saw the commands: "after" is there in a later run.
    assert_eq!(kvs_ok(store.path(), &["get", "after"]), "flush\n");
    check_clean(store.path());
}

#[test]
fn malformed_requests_get_protocol_errors_and_leave_the_store_intact() {
    if !kvm_available("malformed_requests_get_protocol_errors_and_leave_the_store_intact") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    assert_eq!(kvs_ok(s, &["set", "keep", "me"]), "OK\n");
    let long_line = vec![b'a'; 70_000];
    let mut junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    junk.retain(|&b| b != b'\n' && b != b'*');
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "bad multibulk count",
            b"PING\r\n*abc\r\nPING\r\n".to_vec(),
            b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "huge multibulk count",
            b"*9999999999\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "negative bulk length",
            b"*2\r\n$3\r\nGET\r\n$-5\r\nx\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "bulk length over 512 MB",
            b"*2\r\n$3\r\nGET\r\n$600000000\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "no dollar",
            b"*2\r\n$3\r\nGET\r\nx\r\n".to_vec(),
            b"-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            "unbalanced quotes",
            b"SET \"a b\r\nPING\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            "inline line too long",
            long_line,
            b"-ERR Protocol error: too big inline request\r\n",
        ),
        (
            "truncated frame",
            b"*3\r\n$3\r\nSET\r\n$4\r\nkeep\r\n$5\r\nlo".to_vec(),
            b"",
        ),
        (
            "empty requests are skipped",
            b"*0\r\n*-1\r\n\r\n   \r\nPING\r\n".to_vec(),
            b"+PONG\r\n",
        ),
        ("binary junk", junk, b""),
    ];
    for (what, input, want) in cases {
        let out = serve(s, &input);
        if what == "binary junk" {
            // Whatever the junk parses as, every reply is a well-formed error or nothing.
            for r in parse_all(&out) {
                assert!(matches!(r, Reply::Error(_)), "{what}: {r:?}");
            }
        } else {
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(want),
                "{what}"
            );
        }
    }
    assert_eq!(
        kvs_ok(s, &["get", "keep"]),
        "me\n",
        "the truncated SET did not happen"
    );
    assert_eq!(kvs_ok(s, &["dbsize"]), "1\n");
    check_clean(s);
}

#[test]
fn empty_and_multi_mib_values_round_trip() {
    if !kvm_available("empty_and_multi_mib_values_round_trip") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut input = cmd(&[b"SET", b"", b""]);
    input.extend(cmd(&[b"GET", b""]));
    input.extend(cmd(&[b"STRLEN", b""]));
    input.extend(cmd(&[b"SET", b"big", &big]));
    input.extend(cmd(&[b"STRLEN", b"big"]));
    input.extend(cmd(&[b"APPEND", b"big", b"!"]));
    input.extend(cmd(&[b"SET", b"bin\0key", b"\r\n\0"]));
    input.extend(cmd(&[b"GET", b"bin\0key"]));
    let replies = parse_all(&serve(s, &input));
    assert_eq!(
        replies,
        [
            Reply::Simple("OK".into()),
            Reply::Bulk(Some(vec![])),
            Reply::Int(0),
            Reply::Simple("OK".into()),
            Reply::Int(8 << 20),
            Reply::Int((8 << 20) + 1),
            Reply::Simple("OK".into()),
            Reply::Bulk(Some(b"\r\n\0".to_vec())),
        ]
    );
    // A later run reads the big value back whole.
    let out = serve(s, &cmd(&[b"GET", b"big"]));
    let mut want = big.clone();
    want.push(b'!');
    assert_eq!(parse_all(&out), [Reply::Bulk(Some(want))]);
    check_clean(s);
}

/// Bytes the files under `dir` take on disk: allocated blocks (ext4 counts blocks reserved for
/// delayed allocation too), not apparent sizes, which are 1 GiB per object.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read store dir").flatten() {
        let meta = entry.metadata().expect("stat");
        total += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

/// The `N populate requests` figure of a `--stats` report.
fn populate_requests(stats: &str) -> u64 {
    stats
        .lines()
        .flat_map(|line| line.split(", "))
        .find_map(|item| item.trim().strip_suffix(" populate requests"))
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no populate figure in: {stats}"))
}

#[test]
fn a_growing_store_is_populated_ahead_and_a_small_one_stays_small() {
    if !kvm_available("a_growing_store_is_populated_ahead_and_a_small_one_stays_small") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    let small = twz(s)
        .args(["run", "--stats", "kvs", "--durability", "none", "--"])
        .args(["set", "k", "v"])
        .output()
        .expect("spawn twz-vmm");
    assert!(small.status.success(), "{}", describe(&small));
    let stats = String::from_utf8_lossy(&small.stderr);
    assert_eq!(populate_requests(&stats), 0, "{stats}");
    let before = disk_usage(s);
    assert!(before < 2 << 20, "a one-key store takes {before} bytes");

    // 2000 values of 8 KiB, each of its own bytes: 16 MiB of growth.
    let value = |i: u32| -> Vec<u8> {
        (0..8192u32)
            .map(|j| (i.wrapping_mul(2654435761) ^ j.wrapping_mul(40503)) as u8)
            .collect()
    };
    let mut input = Vec::new();
    for i in 0..2000u32 {
        input.extend(cmd(&[b"SET", format!("key:{i}").as_bytes(), &value(i)]));
    }
    let out = output_with_stdin(
        twz(s).args([
            "run",
            "--stats",
            "kvs",
            "--durability",
            "none",
            "--",
            "serve-stdin",
        ]),
        &input,
    )
    .expect("spawn twz-vmm");
    assert!(out.status.success(), "{}", describe(&out));
    let replies = parse_all(&out.stdout);
    assert_eq!(replies.len(), 2000);
    assert!(replies.iter().all(|r| *r == Reply::Simple("OK".into())));
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(populate_requests(&stats) > 0, "{stats}");
    // What is populated ahead is bounded: 16 MiB of values take well under 64 MiB.
    let grown = disk_usage(s) - before;
    assert!(
        (15 << 20..64 << 20).contains(&grown),
        "16 MiB of values took {grown} bytes"
    );

    // A later, durable run reads the values back exactly.
    let mut input = Vec::new();
    for i in [0u32, 999, 1999] {
        input.extend(cmd(&[b"GET", format!("key:{i}").as_bytes()]));
    }
    let out = output_with_stdin(twz(s).args(["run", "kvs", "--", "serve-stdin"]), &input)
        .expect("spawn twz-vmm");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        parse_all(&out.stdout),
        [0u32, 999, 1999].map(|i| Reply::Bulk(Some(value(i))))
    );
    check_clean(s);
}

#[test]
fn mset_sets_every_key_or_none() {
    if !kvm_available("mset_sets_every_key_or_none") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    // 1100 keys of 4 KiB: an MSET overwriting them all logs 4.4 MiB of old values, more than
    // one transaction's 4 MiB log holds.
    let keys: Vec<Vec<u8>> = (0..1100).map(|i| format!("k{i}").into_bytes()).collect();
    let (old, new) = (vec![b'a'; 4096], vec![b'b'; 4096]);
    // Ten more keys whose new values replace their records (too big to change in place) with
    // blocks of the same size class: the refused MSET must not leave an old record's block
    // holding another key's new record.
    let moved: Vec<Vec<u8>> = (0..10).map(|i| format!("r{i}").into_bytes()).collect();
    let (moved_old, moved_new) = (vec![b'c'; 4500], vec![b'd'; 4600]);
    // MSET of `moved` to `moved_value` (none if empty), then of the first `n` keys to `value`.
    let mset = |value: &[u8], n: usize, moved_value: &[u8]| {
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for k in moved.iter().filter(|_| !moved_value.is_empty()) {
            args.push(k);
            args.push(moved_value);
        }
        for k in &keys[..n] {
            args.push(k);
            args.push(value);
        }
        cmd(&args)
    };
    let mut input = mset(&old, keys.len(), &moved_old);
    input.extend(mset(&new, keys.len(), &moved_new));
    for k in &moved {
        input.extend(cmd(&[b"GET", k]));
    }
    input.extend(cmd(&[b"GET", b"k0"]));
    input.extend(cmd(&[b"GET", b"k1099"]));
    input.extend(mset(&new, 10, &[]));
    input.extend(cmd(&[b"GET", b"k9"]));
    input.extend(cmd(&[b"GET", b"k10"]));
    input.extend(cmd(&[b"DBSIZE"]));
    assert_eq!(
        parse_all(&serve(s, &input)),
        [
            vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR MSET too large for one transaction".into()),
            ],
            vec![Reply::Bulk(Some(moved_old.clone())); 10],
            vec![Reply::Bulk(Some(old.clone()))],
        ]
        .concat()
        .into_iter()
        .chain([
            Reply::Bulk(Some(old.clone())),
            Reply::Simple("OK".into()),
            Reply::Bulk(Some(new.clone())),
            Reply::Bulk(Some(old.clone())),
            Reply::Int(1110),
        ])
        .collect::<Vec<_>>(),
        "the refused MSET changed nothing; the small one changed all of its keys"
    );
    check_clean(s);
}

#[test]
fn a_full_filesystem_refuses_writes_and_keeps_the_store_usable() {
    if !kvm_available("a_full_filesystem_refuses_writes_and_keeps_the_store_usable") {
        return;
    }
    let Some(fs) = common::SmallFs::mount(40 << 20) else {
        println!("SKIP a_full_filesystem_refuses_writes_and_keeps_the_store_usable: cannot mount a tmpfs here");
        return;
    };
    let s = fs.path().join("store");
    let value = |i: u8| vec![b'a' + i % 26; 1 << 20];
    // 60 values of 1 MiB into 40 MiB: the later ones cannot be stored.
    let mut input = Vec::new();
    for i in 0..60u8 {
        input.extend(cmd(&[b"SET", format!("key{i}").as_bytes(), &value(i)]));
    }
    input.extend(cmd(&[b"DBSIZE"]));
    // Space freed inside the store is used again.
    input.extend(cmd(&[b"DEL", b"key0"]));
    input.extend(cmd(&[b"SET", b"key0", &value(7)]));
    input.extend(cmd(&[b"GET", b"key1"]));
    let replies = parse_all(&serve(&s, &input));
    assert_eq!(
        replies.len(),
        64,
        "a reply for every request: the server kept running"
    );
    let stored = replies[..60]
        .iter()
        .take_while(|r| **r == Reply::Simple("OK".into()))
        .count();
    assert!((10..60).contains(&stored), "{stored} values stored");
    let full = Reply::Error("ERR store error: No space left on device".into());
    assert!(
        replies[stored..60].iter().all(|r| *r == full),
        "every later SET is refused: {:?}",
        &replies[stored..60]
    );
    assert_eq!(
        replies[60..],
        [
            Reply::Int(stored as i64),
            Reply::Int(1),
            Reply::Simple("OK".into()),
            Reply::Bulk(Some(value(1))),
        ]
    );
    // A later run finds everything stored and the index clean.
    let last = format!("key{}", stored - 1);
    let out = serve(&s, &cmd(&[b"GET", last.as_bytes()]));
    assert_eq!(
        parse_all(&out),
        [Reply::Bulk(Some(value(stored as u8 - 1)))]
    );
    check_clean(&s);
}

#[test]
fn the_index_grows_and_scans_see_every_key_once() {
    if !kvm_available("the_index_grows_and_scans_see_every_key_once") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    let n = 5000;
    let mut input = Vec::new();
    for i in 0..n {
        input.extend(cmd(&[
            b"SET",
            format!("key:{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
    }
    for i in (0..n).step_by(2) {
        input.extend(cmd(&[b"DEL", format!("key:{i}").as_bytes()]));
    }
    input.extend(cmd(&[b"DBSIZE"]));
    let replies = parse_all(&serve(s, &input));
    assert_eq!(replies.len(), n + n / 2 + 1);
    assert!(replies[..n]
        .iter()
        .all(|r| *r == Reply::Simple("OK".into())));
    assert!(replies[n..n + n / 2].iter().all(|r| *r == Reply::Int(1)));
    assert_eq!(replies[n + n / 2], Reply::Int(n as i64 / 2));
    let summary = check_clean(s);
    assert!(
        summary.starts_with(&format!("keys {}, tombstones", n / 2)),
        "{summary}"
    );

    // A SCAN walk, cursor by cursor, returns every key exactly once.
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut cursor = b"0".to_vec();
    let mut calls = 0;
    loop {
        let r = parse_all(&serve(s, &cmd(&[b"SCAN", &cursor, b"COUNT", b"500"])));
        let Some(Reply::Array(parts)) = r.into_iter().next() else {
            panic!("SCAN reply")
        };
        let (Reply::Bulk(Some(next)), Reply::Array(keys)) = (&parts[0], &parts[1]) else {
            panic!("SCAN reply shape {parts:?}")
        };
        for k in keys {
            let Reply::Bulk(Some(k)) = k else {
                panic!("key {k:?}")
            };
            *seen.entry(k.clone()).or_default() += 1;
        }
        calls += 1;
        if next == b"0" {
            break;
        }
        cursor = next.clone();
    }
    assert!(calls > 1, "the walk took several calls");
    assert_eq!(seen.len(), n / 2);
    assert!(seen.values().all(|&c| c == 1), "a key came twice");
    assert!((1..n)
        .step_by(2)
        .all(|i| seen.contains_key(format!("key:{i}").as_bytes())));
}

/// A tiny deterministic generator for the crash test's choices.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Reads one reply from a child's stdout (replies are line-ended and small here).
fn read_reply(r: &mut BufReader<std::process::ChildStdout>) -> Option<Reply> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line).ok()? == 0 {
        return None;
    }
    if line[0] == b'$' && line != b"$-1\r\n" {
        let mut body = Vec::new();
        r.read_until(b'\n', &mut body).ok()?;
        line.extend(body);
    }
    parse_reply(&line).map(|(r, _)| r)
}

/// Sets `pre:0` .. `pre:{n-1}` to "value i" in a run of its own; returns them.
fn preload(s: &Path, n: usize) -> HashMap<String, Option<String>> {
    let mut acked = HashMap::new();
    let mut input = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("pre:{i}"), format!("value {i}"));
        input.extend(cmd(&[b"SET", k.as_bytes(), v.as_bytes()]));
        acked.insert(k, Some(v));
    }
    assert!(parse_all(&serve(s, &input))
        .iter()
        .all(|r| *r == Reply::Simple("OK".into())));
    acked
}

/// `run kvs --durability MODE -- serve-stdin` on `s`, with its request and reply pipes.
fn durable_server(
    s: &Path,
    mode: &str,
) -> (
    Child,
    std::process::ChildStdin,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = twz(s)
        .args(["run", "kvs", "--durability", mode, "--", "serve-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn twz-vmm");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    (child, stdin, stdout)
}

/// The values of `keys` (one MGET in a run of its own).
fn fetch_all(s: &Path, keys: &[String]) -> Vec<Option<String>> {
    let mut req = vec![b"MGET".to_vec()];
    req.extend(keys.iter().map(|k| k.as_bytes().to_vec()));
    let req_refs: Vec<&[u8]> = req.iter().map(Vec::as_slice).collect();
    let Some(Reply::Array(values)) = parse_all(&serve(s, &cmd(&req_refs))).into_iter().next()
    else {
        panic!("MGET reply")
    };
    values
        .into_iter()
        .map(|got| match got {
            Reply::Bulk(b) => b.map(|b| String::from_utf8(b).expect("UTF-8 value")),
            other => panic!("MGET item {other:?}"),
        })
        .collect()
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_write() {
    if !kvm_available("sigkill_during_writes_loses_no_acknowledged_write") {
        return;
    }
    let kills: u64 = std::env::var("TWZ_KVS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("crash test: {kills} kills, seed {seed}");
    let mut rng = Rng(seed);
    let store = temp_store();
    let s = store.path();
    // Start near the first growth of the index (1024 slots, grown past 716 keys), so the kills
    // also land in resizes.
    let mut acked = preload(s, 700);
    let mut next_key = 0u64;
    let (mut applied, mut undone) = (0, 0);
    for round in 0..kills {
        let (mut child, mut stdin, mut stdout) = durable_server(s, "commit");
        let writes = 1 + rng.below(12);
        let mut in_flight: Option<(String, Option<String>)> = None;
        let (mut waited, mut acks) = (Duration::ZERO, 0u64);
        for w in 0..=writes {
            // New keys, overwrites (same and different lengths) and deletes.
            let choice = rng.below(10);
            let (key, value) = if choice < 5 || acked.is_empty() {
                next_key += 1;
                (
                    format!("k:{next_key}"),
                    Some(format!("v{round}-{}", "x".repeat(rng.below(300) as usize))),
                )
            } else {
                let key = format!("pre:{}", rng.below(700));
                let v = if choice == 9 {
                    None
                } else {
                    Some(format!(
                        "r{round}w{w}{}",
                        "y".repeat(rng.below(40) as usize)
                    ))
                };
                (key, v)
            };
            let req = match &value {
                Some(v) => cmd(&[b"SET", key.as_bytes(), v.as_bytes()]),
                None => cmd(&[b"DEL", key.as_bytes()]),
            };
            if stdin.write_all(&req).and_then(|()| stdin.flush()).is_err() {
                break;
            }
            if w == writes {
                // The last write is in flight when the kill comes.
                in_flight = Some((key, value));
                // Somewhere inside it: a write takes about `latency` from request to reply.
                let latency = (waited.as_micros() as u64 / acks.max(1)).max(100);
                std::thread::sleep(Duration::from_micros(rng.below(latency)));
                break;
            }
            let sent = Instant::now();
            let reply = read_reply(&mut stdout);
            waited += sent.elapsed();
            acks += 1;
            match reply {
                Some(Reply::Simple(ok)) if ok == "OK" => {}
                Some(Reply::Int(_)) => {}
                other => panic!("round {round}: write {key} got {other:?}"),
            }
            acked.insert(key, value);
        }
        child.kill().expect("SIGKILL twz-vmm");
        let _ = child.wait();

        let summary = check_clean(s);
        let keys: Vec<String> = acked.keys().cloned().collect();
        for (k, got) in keys.iter().zip(fetch_all(s, &keys)) {
            let want = &acked[k];
            let in_flight_here = in_flight.as_ref().filter(|(ik, _)| ik == k);
            if let Some((_, new)) = in_flight_here {
                assert!(
                    got == *want || got == *new,
                    "round {round}: {k} = {got:?}, want {want:?} or {new:?} ({summary})"
                );
            } else {
                assert_eq!(
                    got, *want,
                    "round {round}: acknowledged write to {k} lost ({summary})"
                );
            }
        }
        // Settle the in-flight write by what the store now holds, for the next rounds.
        if let Some((k, new)) = in_flight {
            let out = serve(s, &cmd(&[b"GET", k.as_bytes()]));
            if let Some(Reply::Bulk(b)) = parse_all(&out).into_iter().next() {
                let now = b.map(|b| String::from_utf8(b).expect("UTF-8"));
                if now == new && acked.get(&k) != Some(&new) {
                    applied += 1;
                } else {
                    undone += 1;
                }
                acked.insert(k, now);
            }
        }
    }
    println!("in-flight writes at the kills: {applied} took effect, {undone} did not");
    let live = acked.values().filter(|v| v.is_some()).count();
    assert_eq!(kvs_ok(s, &["dbsize"]), format!("{live}\n"));
}

#[test]
fn a_power_loss_after_acknowledged_writes_loses_none_of_them() {
    if !kvm_available("a_power_loss_after_acknowledged_writes_loses_none_of_them") {
        return;
    }
    let store = temp_store();
    let s = store.path();
    let mut acked = preload(s, 300);
    // What the disk holds before the durable run.
    let disk = temp_store();
    copy_objects(s, disk.path());

    let (mut child, mut stdin, mut stdout) = durable_server(s, "commit");
    for i in 0..120 {
        // New keys, overwrites in place and longer, deletes.
        let (key, value) = match i % 4 {
            0 => (format!("new:{i}"), Some(format!("fresh {i}"))),
            1 => (format!("pre:{i}"), Some(format!("value {i}!"))),
            2 => (format!("pre:{i}"), Some("z".repeat(200 + i))),
            _ => (format!("pre:{i}"), None),
        };
        let req = match &value {
            Some(v) => cmd(&[b"SET", key.as_bytes(), v.as_bytes()]),
            None => cmd(&[b"DEL", key.as_bytes()]),
        };
        stdin.write_all(&req).expect("request");
        stdin.flush().expect("flush");
        match read_reply(&mut stdout) {
            Some(Reply::Simple(ok)) if ok == "OK" => {}
            Some(Reply::Int(1)) => {}
            other => panic!("write {key} got {other:?}"),
        }
        acked.insert(key, value);
    }
    // The power goes: the VMM dies, and the page cache with it. The object files are left as
    // the disk held them before the run; only the flush journal kept what was acknowledged.
    child.kill().expect("SIGKILL twz-vmm");
    let _ = child.wait();
    copy_objects(disk.path(), s);
    let report = object_store::replay(s).expect("replay the journal");
    assert!(
        report.applied > 0,
        "the journal held the writes: {report:?}"
    );

    let summary = check_clean(s);
    let keys: Vec<String> = acked.keys().cloned().collect();
    for (k, got) in keys.iter().zip(fetch_all(s, &keys)) {
        assert_eq!(got, acked[k], "acknowledged write to {k} lost ({summary})");
    }
}

/// A running `kvs --listen` server.
struct Server {
    child: Child,
    addr: SocketAddr,
    _stderr: JoinHandle<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `twz-vmm run kvs --listen 127.0.0.1:0` on `store`, or None if the run has no
/// stream device (its first stderr line is not the address).
fn listen(store: &Path) -> Option<Server> {
    let mut cmd = twz(store);
    cmd.args([
        "run",
        "kvs",
        "--durability",
        "none",
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "300",
    ])
    .stdout(Stdio::null());
    let l = spawn_listening(&mut cmd)?;
    Some(Server {
        child: l.child,
        addr: l.addr,
        _stderr: l.stderr,
    })
}

/// Sends `req` and reads until `n` replies arrived.
fn roundtrip(conn: &mut TcpStream, req: &[u8], n: usize) -> Vec<Reply> {
    conn.write_all(req).expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((r, used)) = parse_reply(&buf[at..]) {
            got.push(r);
            at += used;
        }
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out with {} of {n} replies",
            got.len()
        );
        let k = conn.read(&mut chunk).expect("receive");
        assert!(k > 0, "server closed after {} of {n} replies", got.len());
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn redis_cli(addr: SocketAddr, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        describe(&out)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn network_clients_pipeline_disconnect_and_run_concurrently() {
    if !kvm_available("network_clients_pipeline_disconnect_and_run_concurrently") {
        return;
    }
    let store = temp_store();
    let Some(server) = listen(store.path()) else {
        println!("SKIP network test: this twz-vmm has no stream device (--listen)");
        return;
    };
    let addr = server.addr;

    // redis-cli, the real client.
    match redis_cli(addr, &["set", "greeting", "hello world"]) {
        Some(out) => {
            assert_eq!(out, "OK\n");
            assert_eq!(
                redis_cli(addr, &["get", "greeting"]).as_deref(),
                Some("hello world\n")
            );
            assert_eq!(redis_cli(addr, &["incr", "visits"]).as_deref(), Some("1\n"));
            assert_eq!(redis_cli(addr, &["dbsize"]).as_deref(), Some("2\n"));
        }
        None => println!(
            "SKIP the redis-cli part: redis-cli is not installed (apt-get install redis-tools)"
        ),
    }

    // Pipelining: 2000 requests in one write, replies in order.
    let mut c = TcpStream::connect(addr).expect("connect");
    let mut req = Vec::new();
    for i in 0..1000 {
        req.extend(cmd(&[
            b"SET",
            format!("p:{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        req.extend(cmd(&[b"GET", format!("p:{i}").as_bytes()]));
    }
    let replies = roundtrip(&mut c, &req, 2000);
    for i in 0..1000 {
        assert_eq!(replies[2 * i], Reply::Simple("OK".into()));
        assert_eq!(replies[2 * i + 1], bulk(&i.to_string()));
    }

    // A client that goes away in the middle of a request changes nothing.
    let mut gone = TcpStream::connect(addr).expect("connect");
    gone.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc")
        .expect("send");
    drop(gone);
    // A protocol error closes only that client, after the error reply.
    let mut bad = TcpStream::connect(addr).expect("connect");
    assert_eq!(
        roundtrip(&mut bad, b"*abc\r\n", 1),
        [Reply::Error(
            "ERR Protocol error: invalid multibulk length".into()
        )]
    );
    let mut rest = Vec::new();
    bad.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(
        bad.read_to_end(&mut rest).map(|_| rest.len()).unwrap_or(0),
        0,
        "closed after the error"
    );
    assert_eq!(
        roundtrip(&mut c, &cmd(&[b"GET", b"half"]), 1),
        [Reply::Bulk(None)]
    );

    // Many clients at once, each with its own keys.
    let workers: Vec<_> = (0..32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(addr).expect("connect");
                for i in 0..25 {
                    let (k, v) = (format!("c{t}:{i}"), format!("v{t}-{i}"));
                    let r = roundtrip(
                        &mut conn,
                        &[
                            cmd(&[b"SET", k.as_bytes(), v.as_bytes()]),
                            cmd(&[b"GET", k.as_bytes()]),
                        ]
                        .concat(),
                        2,
                    );
                    assert_eq!(r, [Reply::Simple("OK".into()), bulk(&v)]);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client thread");
    }
    // Hundreds of connections open at once, each with a request in flight.
    let mut many: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    for (i, conn) in many.iter_mut().enumerate() {
        conn.write_all(&cmd(&[b"SET", format!("m:{i}").as_bytes(), b"x"]))
            .expect("send");
    }
    for conn in &mut many {
        assert_eq!(roundtrip(conn, b"", 1), [Reply::Simple("OK".into())]);
    }
    drop(many);

    let r = roundtrip(&mut c, &cmd(&[b"DBSIZE"]), 1);
    let base = if redis_cli(addr, &["ping"]).is_some() {
        2
    } else {
        0
    };
    assert_eq!(r, [Reply::Int(base + 1000 + 32 * 25 + 500)]);
    assert_eq!(
        roundtrip(&mut c, b"QUIT\r\n", 1),
        [Reply::Simple("OK".into())]
    );
    drop(server);
    check_clean(store.path());
}

/// Group commit (`--durability group`): the server runs every ready request, commits each
/// without waiting, syncs once, then replies. Pipelined writes are killed at random moments;
/// every write whose reply was read must be there afterwards, and the index must check clean.
#[test]
fn group_commit_acknowledgements_survive_sigkill() {
    if !kvm_available("group_commit_acknowledgements_survive_sigkill") {
        return;
    }
    let kills: u64 = std::env::var("TWZ_KVS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(6, |k: u64| k.div_ceil(3));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("group crash test: {kills} kills, seed {seed}");
    let mut rng = Rng(seed);
    let store = temp_store();
    let s = store.path();
    let mut acked: HashMap<String, String> = HashMap::new();
    for round in 0..kills {
        let (mut child, mut stdin, mut stdout) = durable_server(s, "group");
        // Every write of the round, sent pipelined in bursts by a writer thread.
        let writes: Vec<(String, String)> = (0..200)
            .map(|i| {
                let k = format!("g:{round}:{i}");
                let v = format!("v{}", "z".repeat(rng.below(200) as usize));
                (k, v)
            })
            .collect();
        let reqs: Vec<Vec<u8>> = writes
            .iter()
            .map(|(k, v)| cmd(&[b"SET", k.as_bytes(), v.as_bytes()]))
            .collect();
        let writer = std::thread::spawn(move || {
            for burst in reqs.chunks(20) {
                if stdin
                    .write_all(&burst.concat())
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
        let read = 1 + rng.below(150) as usize;
        for (k, v) in writes.iter().take(read) {
            match read_reply(&mut stdout) {
                Some(Reply::Simple(ok)) if ok == "OK" => {
                    acked.insert(k.clone(), v.clone());
                }
                other => panic!("round {round}: SET {k} got {other:?}"),
            }
        }
        child.kill().expect("SIGKILL twz-vmm");
        let _ = child.wait();
        let _ = writer.join();

        let summary = check_clean(s);
        let keys: Vec<&String> = acked.keys().collect();
        let mut req = vec![b"MGET".to_vec()];
        req.extend(keys.iter().map(|k| k.as_bytes().to_vec()));
        let req_refs: Vec<&[u8]> = req.iter().map(Vec::as_slice).collect();
        let replies = parse_all(&serve(s, &cmd(&req_refs)));
        let Some(Reply::Array(values)) = replies.into_iter().next() else {
            panic!("MGET reply")
        };
        assert_eq!(values.len(), keys.len());
        for (k, got) in keys.iter().zip(values) {
            assert_eq!(
                got,
                bulk(&acked[*k]),
                "round {round}: acknowledged write to {k} lost ({summary})"
            );
        }
    }
}
