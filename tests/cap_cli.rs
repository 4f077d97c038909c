//! `twz-vmm cap ...` end to end through the real binary: grant, show, delegate, verify and
//! revoke, and each bad capability issue 5 lists refused by `cap verify` with its own reason.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{fails, ok, run, temp_store};

struct Env {
    t: tempfile::TempDir,
    store: PathBuf,
}

fn setup() -> Env {
    let t = temp_store();
    let store = t.path().join("store");
    ok(&store, &["obj", "create", "people"]);
    ok(&store, &["key", "gen", "alice"]);
    Env { t, store }
}

impl Env {
    fn file(&self, name: &str) -> String {
        self.t.path().join(name).to_string_lossy().into_owned()
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(&self.store, args)
    }
    /// Runs a command that must fail and returns its one-line reason.
    fn refused(&self, args: &[&str]) -> String {
        let err = fails(&self.store, args);
        assert_eq!(err.lines().count(), 1, "reason is one line: {err}");
        err
    }
    fn grant(&self, out: &str, extra: &[&str]) {
        let mut args = vec![
            "cap",
            "grant",
            "--target",
            "people",
            "--accessor",
            "reader-ctx",
            "-o",
            out,
        ];
        if !extra.contains(&"--perms") {
            args.extend(["--perms", "rw"]);
        }
        args.extend(extra);
        self.ok(&args);
    }
}

fn write_mutated(path: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut b = fs::read(path).unwrap();
    f(&mut b);
    let out = format!("{path}.mut");
    fs::write(&out, b).unwrap();
    out
}

#[test]
fn grant_show_verify_delegate_revoke() {
    let e = setup();
    let cap = e.file("reader.cap");
    e.grant(&cap, &["--expires", "24h", "--delegate-to", "alice"]);
    assert_eq!(fs::metadata(&cap).unwrap().len(), 200);
    let v = e.ok(&["cap", "verify", &cap, "--accessor", "reader-ctx"]);
    assert!(v.starts_with("valid: rw-- on "), "{v}");

    let show = e.ok(&["cap", "show", &cap]);
    assert!(show.contains("(key default)"), "{show}");
    assert!(show.contains("(key alice)"), "{show}");
    assert!(show.contains("verdict: valid"), "{show}");
    let json: serde_json::Value =
        serde_json::from_str(&e.ok(&["cap", "show", &cap, "--json"])).unwrap();
    assert_eq!(json["links"][0]["perms"], "rw--");
    assert_eq!(json["links"][0]["signer_name"], "default");
    assert_eq!(json["verdict"], "valid");

    let sub = e.file("sub.cap");
    e.ok(&[
        "cap",
        "delegate",
        &cap,
        "--perms",
        "r",
        "--expires",
        "1h",
        "--key",
        "alice",
        "-o",
        &sub,
    ]);
    assert!(e
        .ok(&["cap", "verify", &sub])
        .starts_with("valid: r--- on "));
    assert!(e
        .refused(&["cap", "verify", &sub, "--accessor", "writer-ctx"])
        .contains("another context"));

    // Revoking the root refuses it and everything delegated from it.
    e.ok(&["cap", "revoke", &cap]);
    assert!(e
        .refused(&["cap", "verify", &cap])
        .contains("link 0: revoked"));
    assert!(e
        .refused(&["cap", "verify", &sub])
        .contains("link 0: revoked"));
    let show = e.ok(&["cap", "show", &sub]);
    assert!(
        show.contains("(REVOKED)") && show.contains("verdict: INVALID"),
        "{show}"
    );
}

#[test]
fn grant_and_delegate_refuse_what_verification_would() {
    let e = setup();
    let cap = e.file("a.cap");
    let err = e.refused(&[
        "cap",
        "grant",
        "--target",
        "people",
        "--accessor",
        "c",
        "--perms",
        "r",
        "--key",
        "alice",
        "-o",
        &cap,
    ]);
    assert!(err.contains("not the owner key"), "{err}");
    assert!(!Path::new(&cap).exists());
    e.grant(
        &cap,
        &["--perms", "r", "--expires", "1h", "--delegate-to", "alice"],
    );
    let out = e.file("b.cap");
    let wider = e.refused(&[
        "cap", "delegate", &cap, "--perms", "rw", "--key", "alice", "-o", &out,
    ]);
    assert!(wider.contains("rights"), "{wider}");
    let longer = e.refused(&[
        "cap",
        "delegate",
        &cap,
        "--perms",
        "r",
        "--expires",
        "2h",
        "--key",
        "alice",
        "-o",
        &out,
    ]);
    assert!(longer.contains("outlives"), "{longer}");
    let never = e.refused(&[
        "cap",
        "delegate",
        &cap,
        "--perms",
        "r",
        "--expires",
        "never",
        "--key",
        "alice",
        "-o",
        &out,
    ]);
    assert!(never.contains("outlives"), "{never}");
    let wrong = e.refused(&[
        "cap", "delegate", &cap, "--perms", "r", "--key", "default", "-o", &out,
    ]);
    assert!(wrong.contains("delegate key"), "{wrong}");
    assert!(e
        .refused(&[
            "cap",
            "grant",
            "--target",
            "people",
            "--accessor",
            "c",
            "--perms",
            "q",
            "-o",
            &out
        ])
        .contains("--perms"));
    assert!(e
        .refused(&[
            "cap",
            "grant",
            "--target",
            "people",
            "--accessor",
            "c",
            "--perms",
            "r",
            "--expires",
            "soon",
            "-o",
            &out
        ])
        .contains("--expires"));
}

#[test]
fn every_byte_changed_is_refused_without_a_panic() {
    let e = setup();
    let cap = e.file("one.cap");
    e.grant(&cap, &[]);
    let good = fs::read(&cap).unwrap();
    let bad = e.file("bad.cap");
    for pos in 0..good.len() {
        let mut b = good.clone();
        b[pos] ^= 0x5a;
        fs::write(&bad, &b).unwrap();
        let out = run(&e.store, &["cap", "verify", &bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "byte {pos}: {err}");
        assert!(!err.contains("panicked"), "byte {pos}: {err}");
    }
}

#[test]
fn each_bad_capability_has_its_own_reason() {
    let e = setup();
    let cap = e.file("c.cap");
    e.grant(&cap, &["--delegate-to", "alice"]);
    let reason = |path: &str| e.refused(&["cap", "verify", path]);

    let forged = write_mutated(&cap, |b| b[150] ^= 1);
    assert!(reason(&forged).contains("signature does not verify"));
    let widened = write_mutated(&cap, |b| b[12] |= 4);
    assert!(reason(&widened).contains("signature does not verify"));
    let truncated = write_mutated(&cap, |b| b.truncate(199));
    assert!(reason(&truncated).contains("truncated or oversized"));
    let oversized = write_mutated(&cap, |b| b.push(0));
    assert!(reason(&oversized).contains("truncated or oversized"));
    let version = write_mutated(&cap, |b| b[8] = 9);
    assert!(reason(&version).contains("unknown capability version 9"));
    let magic = write_mutated(&cap, |b| b[0] = b'Z');
    assert!(reason(&magic).contains("bad magic"));
    let nine = write_mutated(&cap, |b| *b = b.repeat(9));
    assert!(reason(&nine).contains("exceeds the limit of 8"));

    // Target missing from the store.
    let id = e.ok(&["obj", "ls", "--json"]);
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let id = id[0]["id"].as_str().unwrap().to_string();
    e.ok(&["obj", "rm", &id]);
    assert!(reason(&cap).contains("does not exist"), "{}", reason(&cap));

    // Expired: a 1s grant on a new object, checked after it lapsed.
    e.ok(&["obj", "create", "people"]);
    let short = e.file("short.cap");
    e.grant(&short, &["--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(reason(&short).contains("expired"));

    // A chain whose links disagree: link 1 of another grant appended to this one.
    let a = e.file("a.cap");
    e.grant(&a, &["--delegate-to", "alice"]);
    let a2 = e.file("a2.cap");
    e.ok(&[
        "cap", "delegate", &a, "--perms", "r", "--key", "alice", "-o", &a2,
    ]);
    let b = e.file("b.cap");
    e.ok(&[
        "cap",
        "grant",
        "--target",
        "people",
        "--accessor",
        "other",
        "--perms",
        "r",
        "--delegate-to",
        "alice",
        "-o",
        &b,
    ]);
    let mut spliced = fs::read(&b).unwrap();
    spliced.extend_from_slice(&fs::read(&a2).unwrap()[200..]);
    let spliced_path = e.file("spliced.cap");
    fs::write(&spliced_path, spliced).unwrap();
    assert!(
        reason(&spliced_path).contains("accessor differs"),
        "{}",
        reason(&spliced_path)
    );
}

#[test]
fn one_file_can_grant_several_objects() {
    let e = setup();
    e.ok(&["obj", "create", "extra"]);
    let both = e.file("both.cap");
    e.ok(&[
        "cap",
        "grant",
        "--target",
        "people",
        "--target",
        "extra",
        "--target",
        "people",
        "--accessor",
        "reader-ctx",
        "--perms",
        "r",
        "-o",
        &both,
    ]);
    let verify = e.ok(&["cap", "verify", &both, "--accessor", "reader-ctx"]);
    let lines: Vec<&str> = verify.lines().collect();
    assert_eq!(lines.len(), 2, "duplicates dropped: {verify}");
    assert!(lines[0].starts_with("chain 0: valid: r--- on "), "{verify}");
    let show = e.ok(&["cap", "show", &both]);
    assert!(show.contains("chain 1 of 2 (object "), "{show}");
    let json: serde_json::Value =
        serde_json::from_str(&e.ok(&["cap", "show", &both, "--json"])).unwrap();
    assert_eq!(json["chains"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["chains"][1]["verdict"], "valid");

    // A bundle cannot be delegated as a whole; revoking it revokes every chain.
    let out = e.file("d.cap");
    assert!(e
        .refused(&["cap", "delegate", &both, "--perms", "r", "--key", "alice", "-o", &out])
        .contains("holds 2 chains"));
    assert_eq!(e.ok(&["cap", "revoke", &both]).lines().count(), 2);
    assert!(e.refused(&["cap", "verify", &both]).contains("chain 0: "));
    let cut = write_mutated(&both, |b| b.truncate(b.len() - 1));
    assert!(e
        .refused(&["cap", "verify", &cut])
        .contains("truncated or oversized capability bundle"));
}
