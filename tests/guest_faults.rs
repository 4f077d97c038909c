//! Guests that go wrong: each CPU exception, a panic, a spinning guest stopped by `--timeout`,
//! a guest sending malformed host calls, and images the loader must refuse.

mod common;

use common::describe;

use std::process::Output;
use std::time::{Duration, Instant};

use common::kvm_available;

/// Exit status of a run that ended in a guest fault.
const FAULT_STATUS: i32 = 139;
/// Exit status of a run that ended in a guest panic.
const PANIC_STATUS: i32 = 101;
/// Exit status of a run stopped by `--timeout`.
const TIMEOUT_STATUS: i32 = 124;

fn run(args: &[&str]) -> Output {
    let store = common::temp_store();
    common::run(store.path(), &[&["run"], args].concat())
}

/// Runs `faults -- KIND` and checks the report: the status, one of `names` for the exception,
/// `detail` (an address, say) when given, and `function` in the backtrace.
fn check_fault(kind: &str, status: i32, names: &[&str], detail: Option<&str>, function: &str) {
    let out = run(&["faults", "--", kind]);
    let all = describe(&out);
    assert_eq!(out.status.code(), Some(status), "{kind}: {all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("faults: committing {kind}")),
        "{kind}: output printed before the fault is lost: {all}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        names.iter().any(|n| stderr.contains(n)),
        "{kind}: none of {names:?} in the report: {all}"
    );
    if let Some(d) = detail {
        assert!(stderr.contains(d), "{kind}: {d:?} not in the report: {all}");
    }
    let backtrace = stderr
        .split_once("backtrace")
        .map(|(_, bt)| bt)
        .unwrap_or_else(|| panic!("{kind}: no backtrace: {all}"));
    assert!(
        backtrace.contains(function),
        "{kind}: the backtrace does not name {function}: {all}"
    );
    assert!(
        backtrace.contains("faults/src/main.rs"),
        "{kind}: the backtrace has no source lines: {all}"
    );
    assert!(
        !stderr.contains("thread 'main' panicked"),
        "the VMM panicked: {all}"
    );
}

#[test]
fn null_pointer_read_is_a_page_fault_at_zero() {
    if !kvm_available("null_pointer_read_is_a_page_fault_at_zero") {
        return;
    }
    check_fault(
        "null",
        FAULT_STATUS,
        &["page fault"],
        Some("0x0000000000000000"),
        "null_read",
    );
}

#[test]
fn wild_write_is_a_page_fault_at_its_address() {
    if !kvm_available("wild_write_is_a_page_fault_at_its_address") {
        return;
    }
    check_fault(
        "wild",
        FAULT_STATUS,
        &["page fault", "unmapped"],
        Some("0x0000004000000000"),
        "wild_write",
    );
}

#[test]
fn non_canonical_access_is_a_general_protection_fault() {
    if !kvm_available("non_canonical_access_is_a_general_protection_fault") {
        return;
    }
    check_fault(
        "gp",
        FAULT_STATUS,
        &["general protection"],
        None,
        "non_canonical_read",
    );
}

#[test]
fn ud2_is_an_invalid_opcode() {
    if !kvm_available("ud2_is_an_invalid_opcode") {
        return;
    }
    check_fault(
        "ud",
        FAULT_STATUS,
        &["invalid opcode"],
        None,
        "invalid_opcode",
    );
}

#[test]
fn division_by_zero_is_a_divide_error() {
    if !kvm_available("division_by_zero_is_a_divide_error") {
        return;
    }
    check_fault(
        "div",
        FAULT_STATUS,
        &["divide error"],
        None,
        "divide_by_zero",
    );
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    if !kvm_available("unbounded_recursion_is_a_stack_overflow") {
        return;
    }
    check_fault(
        "stack",
        FAULT_STATUS,
        &["stack overflow"],
        None,
        "recurse_forever",
    );
}

#[test]
fn a_panic_reports_message_and_location() {
    if !kvm_available("a_panic_reports_message_and_location") {
        return;
    }
    check_fault(
        "panic",
        PANIC_STATUS,
        &["deliberate panic: the answer is 42"],
        Some("faults/src/main.rs:"),
        "panic_with_message",
    );
}

#[test]
fn running_out_of_heap_is_reported_as_a_panic() {
    if !kvm_available("running_out_of_heap_is_reported_as_a_panic") {
        return;
    }
    check_fault(
        "oom",
        PANIC_STATUS,
        &["memory allocation of 1048576 bytes failed"],
        None,
        "exhaust_the_heap",
    );
}

#[test]
fn timeout_stops_a_spinning_guest() {
    if !kvm_available("timeout_stops_a_spinning_guest") {
        return;
    }
    let start = Instant::now();
    let out = run(&["faults", "--timeout", "1", "--", "spin"]);
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(TIMEOUT_STATUS),
        "{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out"), "{}", describe(&out));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(20),
        "stopped after {took:?}"
    );
}

#[test]
fn malformed_host_calls_are_refused_and_the_vmm_stays_up() {
    if !kvm_available("malformed_host_calls_are_refused_and_the_vmm_stays_up") {
        return;
    }
    let out = run(&["hostile"]);
    let all = describe(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("FAILED"), "{all}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("hostile: all ") && last.ends_with(" cases rejected"),
        "{all}"
    );
    let cases: usize = last["hostile: all ".len()..last.len() - " cases rejected".len()]
        .parse()
        .unwrap_or(0);
    assert!(cases >= 30, "only {cases} cases ran: {all}");
    assert_eq!(
        stdout.lines().count(),
        cases + 1,
        "one line per case: {all}"
    );
}

/// Runs an image file with these bytes and checks for a one-line error and a failure status.
fn check_bad_image(what: &str, bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.elf");
    std::fs::write(&path, bytes).expect("write image");
    check_bad_path(what, path.to_str().expect("UTF-8 temp path"), expect);
}

fn check_bad_path(what: &str, path: &str, expect: &str) {
    let out = run(&[path]);
    let all = describe(&out);
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "{what}: {all}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: not a one-line error: {all}");
    assert!(
        lines[0].to_lowercase().contains(expect),
        "{what}: {expect:?} not in the error: {all}"
    );
    assert!(out.stdout.is_empty(), "{what}: {all}");
}

fn hello_elf() -> Vec<u8> {
    twz_vmm::images::builtin("hello")
        .expect("hello is built in")
        .to_vec()
}

#[test]
fn a_missing_image_is_a_clear_error() {
    check_bad_path("missing file", "./no/such/guest.elf", "no/such/guest.elf");
}

#[test]
fn a_file_that_is_not_elf_is_refused() {
    if !kvm_available("a_file_that_is_not_elf_is_refused") {
        return;
    }
    check_bad_image("text file", b"#!/bin/sh\necho not a guest\n", "elf");
    check_bad_image("empty file", b"", "elf");
}

#[test]
fn a_32_bit_elf_is_refused() {
    if !kvm_available("a_32_bit_elf_is_refused") {
        return;
    }
    let mut elf = hello_elf();
    elf[4] = 1; // EI_CLASS = ELFCLASS32
    check_bad_image("32-bit ELF", &elf, "32-bit");
}

#[test]
fn a_non_x86_64_elf_is_refused() {
    if !kvm_available("a_non_x86_64_elf_is_refused") {
        return;
    }
    let mut elf = hello_elf();
    elf[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    check_bad_image("aarch64 ELF", &elf, "machine");
}

#[test]
fn a_truncated_elf_is_refused() {
    if !kvm_available("a_truncated_elf_is_refused") {
        return;
    }
    let elf = hello_elf();
    // Only the ELF header: the program headers it points at are missing.
    check_bad_image("truncated after the header", &elf[..64], "program header");
    // Headers intact but the segments' bytes cut off.
    check_bad_image("truncated segments", &elf[..0x1100], "outside");
}

#[test]
fn an_entry_point_outside_the_image_is_refused() {
    if !kvm_available("an_entry_point_outside_the_image_is_refused") {
        return;
    }
    let mut elf = hello_elf();
    elf[24..32].copy_from_slice(&0x10u64.to_le_bytes());
    check_bad_image("entry point in the null page", &elf, "entry point");
}
