//! Capabilities enforced by the hypervisor, end to end under KVM: the ceremony-free default
//! context, `--key`, `--ctx` with `--cap` files (one chain or a bundle), every bad capability
//! refused at map time with its own reason and nothing mapped, read-only mappings, delegation,
//! revocation, and two guests sharing one object at the same time.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{describe, kvm_available, ok, run, temp_store, twz};
use object_store::{context_id, CapChain, Grant, Store};

struct Env {
    t: tempfile::TempDir,
    store: PathBuf,
}

impl Env {
    fn new() -> Env {
        let t = temp_store();
        let store = t.path().join("store");
        Env { t, store }
    }

    fn file(&self, name: &str) -> String {
        self.t.path().join(name).to_string_lossy().into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.store, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&self.store, args)
    }

    /// A list `people` of bob and carol, made in the default context.
    fn people(&self) {
        self.ok(&["run", "linked", "--", "add", "bob"]);
        self.ok(&["run", "linked", "--", "add", "carol"]);
    }

    /// `cap grant` on `target` for `ctx` into `file`; returns the file's path.
    fn grant(&self, file: &str, target: &str, ctx: &str, extra: &[&str]) -> String {
        let path = self.file(file);
        let mut args = vec![
            "cap",
            "grant",
            "--target",
            target,
            "--accessor",
            ctx,
            "-o",
            &path,
        ];
        if !extra.contains(&"--perms") {
            args.extend(["--perms", "r"]);
        }
        args.extend(extra);
        self.ok(&args);
        path
    }

    /// `run linked --ctx reader --cap CAP --stats -- ARGS`.
    fn linked_as_reader(&self, cap: &str, args: &[&str]) -> Output {
        let mut a = vec![
            "run", "linked", "--ctx", "reader", "--cap", cap, "--stats", "--",
        ];
        a.extend(args);
        self.run(&a)
    }

    fn id_of(&self, name: &str) -> String {
        let ls: serde_json::Value =
            serde_json::from_str(&self.ok(&["obj", "ls", "--json"])).expect("obj ls --json");
        ls.as_array()
            .expect("array")
            .iter()
            .find(|o| {
                o["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|x| x == name))
            })
            .and_then(|o| o["id"].as_str())
            .unwrap_or_else(|| panic!("no object named {name}: {ls}"))
            .to_string()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The run was refused a map: a non-zero status, `reason` on stderr, no name printed, and no
/// object mapped (from `--stats`).
fn assert_refused(out: &Output, reason: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert!(err.contains("cannot map object "), "{}", describe(out));
    assert!(err.contains(reason), "want {reason:?}\n{}", describe(out));
    assert_eq!(text(&out.stdout), "", "nothing read: {}", describe(out));
    assert!(
        err.contains("objects: 0 mapped"),
        "nothing mapped: {}",
        describe(out)
    );
}

fn write_mutated(path: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut b = fs::read(path).expect("read cap");
    f(&mut b);
    let out = format!("{path}.mut");
    fs::write(&out, b).expect("write cap");
    out
}

#[test]
fn the_default_context_needs_no_ceremony_and_key_sets_the_owner() {
    if !kvm_available("the_default_context_needs_no_ceremony_and_key_sets_the_owner") {
        return;
    }
    let e = Env::new();
    e.people();
    assert_eq!(e.ok(&["run", "linked", "--", "show"]), "bob\ncarol\n");

    e.ok(&["key", "gen", "alice"]);
    assert_eq!(
        e.ok(&["run", "sharer", "--key", "alice", "--", "set", "alices", "5"]),
        "set 5\n"
    );
    let show = e.ok(&["obj", "show", "alices"]);
    assert!(show.contains("alice"), "owned by alice: {show}");
    // The default key does not own alice's object, and holds no capability for it.
    let out = e.run(&["run", "sharer", "--", "set", "alices", "6"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("not owned by the run's key \"default\""),
        "{err}"
    );
    assert!(e
        .ok(&["run", "sharer", "--key", "alice", "--", "set", "alices", "7"])
        .contains("set 7"));
    // In the default context, anything else needs a capability for the context "default".
    let for_default = e.grant(
        "alices.cap",
        "alices",
        "default",
        &["--perms", "rw", "--key", "alice"],
    );
    assert!(e
        .ok(&[
            "run",
            "sharer",
            "--cap",
            &for_default,
            "--",
            "set",
            "alices",
            "8"
        ])
        .contains("set 8"));
    // Alice's run cannot write the default key's list either.
    let out = e.run(&["run", "linked", "--key", "alice", "--", "add", "eve"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(e.ok(&["run", "linked", "--", "show"]), "bob\ncarol\n");

    // C programs read the reason with twz_last_error().
    e.ok(&["run", "chello", "--", "--append", "notes", "hi"]);
    let out = e.run(&[
        "run", "chello", "--key", "alice", "--", "--append", "notes", "more",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let want = format!(
        "chello: object notes: cannot map object {} writable: no capability for it in the \
         default context (the object is not owned by the run's key \"alice\")\n",
        e.id_of("notes")
    );
    assert_eq!(text(&out.stderr), want);

    let out = e.run(&["run", "hello", "--key", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("--key nobody"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_reader_context_reads_the_list_and_cannot_add() {
    if !kvm_available("a_reader_context_reads_the_list_and_cannot_add") {
        return;
    }
    let e = Env::new();
    e.people();
    let head = e.id_of("people");

    // A grant on the head alone does not cover its nodes.
    let only_head = e.grant("head.cap", "people", "reader", &["--expires", "24h"]);
    let out = e.linked_as_reader(&only_head, &["show"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains(&format!("capability {only_head} is for object {head}")),
        "{}",
        describe(&out)
    );

    // `--reachable` covers the head and every node in one file.
    let reader = e.grant(
        "reader.cap",
        "people",
        "reader",
        &["--reachable", "--expires", "24h"],
    );
    assert!(e.ok(&["cap", "verify", &reader]).lines().count() == 3);
    let out = e.linked_as_reader(&reader, &["show"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "bob\ncarol\n");
    assert!(
        text(&out.stderr).contains("objects: 3 mapped"),
        "{}",
        describe(&out)
    );

    let out = e.linked_as_reader(&reader, &["add", "eve"]);
    assert_refused(&out, "grants r--- but not write");
    assert!(text(&out.stderr).contains(&format!("cannot map object {head} writable")));
    assert_eq!(e.ok(&["run", "linked", "--", "show"]), "bob\ncarol\n");

    // A context kept in the store holds its capabilities without --cap.
    assert!(e
        .ok(&["ctx", "add", "reader", &reader])
        .contains("3 capabilities added"));
    let out = e.run(&["run", "linked", "--ctx", "reader", "--", "show"]);
    assert_eq!(text(&out.stdout), "bob\ncarol\n", "{}", describe(&out));
    let out = e.run(&["ctx", "add", "writer", &reader]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(text(&out.stderr).contains("for another context than \"writer\""));

    // Objects a context creates are its own, whatever it holds.
    let out = e.run(&[
        "run", "sharer", "--ctx", "reader", "--cap", &reader, "--", "set", "fresh", "1",
    ]);
    assert!(out.status.success(), "{}", describe(&out));

    // A reader cannot redirect a name it may only read (it could bind it to an object of its
    // own), nor, in a later run, the name of what it created (owned by the run's key); the
    // owner can.
    let out = e.run(&[
        "run", "sharer", "--ctx", "reader", "--cap", &reader, "--", "unbind", "people",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains(&format!("may not write object {head}")),
        "{}",
        describe(&out)
    );
    assert_eq!(e.id_of("people"), head, "the name still leads to the list");
    let out = e.run(&[
        "run", "sharer", "--ctx", "reader", "--cap", &reader, "--", "unbind", "fresh",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let out = e.run(&["run", "sharer", "--", "unbind", "fresh"]);
    assert_eq!(text(&out.stdout), "unbound fresh\n", "{}", describe(&out));
    // A file granting rights to another context is refused before the guest starts.
    let out = e.run(&[
        "run", "linked", "--ctx", "writer", "--cap", &reader, "--", "show",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("is for context") && text(&out.stdout).is_empty(),
        "{}",
        describe(&out)
    );
}

#[test]
fn every_bad_capability_is_refused_at_map_time_with_its_own_reason() {
    if !kvm_available("every_bad_capability_is_refused_at_map_time_with_its_own_reason") {
        return;
    }
    let e = Env::new();
    e.people();
    e.ok(&["key", "gen", "alice"]);
    e.ok(&["obj", "create", "other"]);
    let good = e.grant("good.cap", "people", "reader", &["--delegate-to", "alice"]);

    let forged = write_mutated(&good, |b| b[150] ^= 1);
    assert_refused(
        &e.linked_as_reader(&forged, &["show"]),
        "link 0: forged or altered: signature does not verify",
    );
    let widened = write_mutated(&good, |b| b[12] |= 2);
    assert_refused(
        &e.linked_as_reader(&widened, &["show"]),
        "signature does not verify",
    );
    let other = e.grant("other.cap", "other", "reader", &[]);
    assert_refused(
        &e.linked_as_reader(&other, &["show"]),
        &format!(
            "is for object {}, not {}",
            e.id_of("other"),
            e.id_of("people")
        ),
    );
    let short = e.grant("short.cap", "people", "reader", &["--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    assert_refused(&e.linked_as_reader(&short, &["show"]), "link 0: expired at");

    let revoked = e.grant("revoked.cap", "people", "reader", &[]);
    e.ok(&["cap", "revoke", &revoked]);
    assert_refused(&e.linked_as_reader(&revoked, &["show"]), "link 0: revoked");

    // Signed by alice, who does not own `people`.
    let store = Store::open(&e.store).expect("store");
    let grant = Grant {
        target: abi::id::ObjId::parse_hex(&e.id_of("people")).expect("id"),
        accessor: context_id("reader"),
        perms: abi::fot::perms::READ,
        expires_ns: 0,
        delegate: None,
    };
    let by_alice = e.file("alice.cap");
    let chain =
        CapChain::sign_root(&grant, &store.signing_key("alice").expect("alice")).expect("sign");
    fs::write(&by_alice, chain.to_bytes()).expect("write");
    assert_refused(
        &e.linked_as_reader(&by_alice, &["show"]),
        "link 0: signed by key",
    );

    // A delegation from a link that allows none: a root without a delegate key, followed by
    // alice's link from a chain that did allow her.
    let sub = e.file("sub.cap");
    e.ok(&[
        "cap", "delegate", &good, "--perms", "r", "--key", "alice", "-o", &sub,
    ]);
    let closed = e.grant("closed.cap", "people", "reader", &[]);
    let mut spliced = fs::read(&closed).expect("read");
    spliced.extend_from_slice(&fs::read(&sub).expect("read")[200..]);
    let spliced_path = e.file("spliced.cap");
    fs::write(&spliced_path, spliced).expect("write");
    assert_refused(
        &e.linked_as_reader(&spliced_path, &["show"]),
        "link 1: invalid delegation: the previous link does not allow delegation",
    );

    // Malformed files never reach the guest: the run stops before boot with the reason.
    for (name, reason, f) in [
        (
            "truncated",
            "truncated or oversized",
            Box::new(|b: &mut Vec<u8>| b.truncate(199)) as Box<dyn FnOnce(&mut Vec<u8>)>,
        ),
        (
            "oversized",
            "truncated or oversized",
            Box::new(|b| b.push(0)),
        ),
        (
            "version",
            "unknown capability version 9",
            Box::new(|b| b[8] = 9),
        ),
    ] {
        let bad = write_mutated(&good, f);
        let out = e.linked_as_reader(&bad, &["show"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", describe(&out));
        let err = text(&out.stderr);
        assert!(
            err.contains("cannot run the guest: capability file"),
            "{name}: {err}"
        );
        assert!(err.contains(reason), "{name}: {err}");
        assert!(text(&out.stdout).is_empty(), "{name}");
    }

    // The good file still works after all that.
    let out = e.linked_as_reader(&good, &["count"]);
    assert_eq!(text(&out.stdout), "2\n", "{}", describe(&out));
}

#[test]
fn delegated_rights_are_honoured_and_revocation_takes_effect() {
    if !kvm_available("delegated_rights_are_honoured_and_revocation_takes_effect") {
        return;
    }
    let e = Env::new();
    e.ok(&["key", "gen", "alice"]);
    assert_eq!(e.ok(&["run", "sharer", "--", "set", "ctr", "1"]), "set 1\n");
    let root = e.grant(
        "root.cap",
        "ctr",
        "team",
        &["--perms", "rw", "--delegate-to", "alice"],
    );
    let sharer = |cap: &str, v: &str| {
        e.run(&[
            "run", "sharer", "--ctx", "team", "--cap", cap, "--", "set", "ctr", v,
        ])
    };
    let rw = e.file("rw.cap");
    e.ok(&[
        "cap", "delegate", &root, "--perms", "rw", "--key", "alice", "-o", &rw,
    ]);
    let out = sharer(&rw, "2");
    assert_eq!(text(&out.stdout), "set 2\n", "{}", describe(&out));

    let ro = e.file("ro.cap");
    e.ok(&[
        "cap", "delegate", &root, "--perms", "r", "--key", "alice", "-o", &ro,
    ]);
    let out = sharer(&ro, "3");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("capability ") && text(&out.stderr).contains("grants r---"),
        "{}",
        describe(&out)
    );

    // Revoking the root refuses everything delegated from it.
    e.ok(&["cap", "revoke", &root]);
    let out = sharer(&rw, "4");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("link 0: revoked"),
        "{}",
        describe(&out)
    );
    let dump = e.ok(&["obj", "dump", "ctr", "--offset", "4096", "--len", "8"]);
    assert!(dump.contains("02 00 00 00"), "value 2 kept: {dump}");
}

#[test]
fn two_guests_share_an_object_one_writes_the_other_reads_and_cannot_write() {
    if !kvm_available("two_guests_share_an_object_one_writes_the_other_reads_and_cannot_write") {
        return;
    }
    let e = Env::new();
    assert_eq!(
        e.ok(&["run", "sharer", "--", "set", "shared", "0"]),
        "set 0\n"
    );
    let id = e.id_of("shared");
    let ro = e.grant("ro.cap", "shared", "watcher", &[]);

    let mut watcher = twz(&e.store)
        .args([
            "run",
            "sharer",
            "--timeout",
            "60",
            "--ctx",
            "watcher",
            "--cap",
            &ro,
            "--",
            "watch",
            "shared",
            "7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the watcher");
    let mut lines = BufReader::new(watcher.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, format!("watching {id}: 0"));

    // The writer runs while the watcher polls; neither knows about the other.
    assert_eq!(
        e.ok(&["run", "sharer", "--", "set", "shared", "7"]),
        "set 7\n"
    );

    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = watcher.wait_with_output().expect("watcher");
    let err = text(&out.stderr);
    assert_eq!(rest, vec!["saw 7".to_string()], "stderr: {err}");
    assert_eq!(out.status.code(), Some(139), "{err}");
    assert!(
        err.contains(&format!(
            "guest fault: write to read-only object {id} at offset 0x1000"
        )),
        "{err}"
    );
    let dump = e.ok(&["obj", "dump", "shared", "--offset", "4096", "--len", "8"]);
    assert!(
        dump.contains("07 00 00 00"),
        "the refused store changed nothing: {dump}"
    );
}
