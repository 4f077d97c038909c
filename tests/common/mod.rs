//! Helpers shared by the integration tests: run the real `twz-vmm` binary on a fresh store.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A `twz-vmm` command with `--store` set to `store`.
pub fn twz(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_twz-vmm"));
    c.arg("--store")
        .arg(store)
        .env_remove("TWZ_STORE")
        .stdin(Stdio::null());
    c
}

/// Runs `twz-vmm --store STORE ARGS...` and returns its output.
pub fn run(store: &Path, args: &[&str]) -> Output {
    twz(store).args(args).output().expect("spawn twz-vmm")
}

/// Runs the command, asserts it succeeded, and returns its stdout.
pub fn ok(store: &Path, args: &[&str]) -> String {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "twz-vmm {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs the command, asserts it failed, and returns its stderr.
pub fn fails(store: &Path, args: &[&str]) -> String {
    let out = run(store, args);
    assert!(
        !out.status.success(),
        "twz-vmm {args:?} unexpectedly succeeded\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

/// A fresh, empty store directory (removed when dropped).
pub fn temp_store() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("twz-test-store")
        .tempdir()
        .expect("temp dir")
}

/// True when this machine can run guests. Tests that need KVM call this first and return early
/// after printing a `SKIP` line when it is false.
pub fn kvm_available(test: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            println!("SKIP {test}: /dev/kvm is not usable here ({e})");
            false
        }
    }
}
