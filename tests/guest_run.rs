//! Booting the example guests under KVM: output, arguments, standard input, exit statuses.

mod common;

use common::describe;

use std::process::Output;

use common::kvm_available;

/// `twz-vmm run ARGS...` with no standard input.
fn run(args: &[&str]) -> Output {
    let store = common::temp_store();
    common::run(store.path(), &[&["run"], args].concat())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hello_greets_and_exits_zero() {
    if !kvm_available("hello_greets_and_exits_zero") {
        return;
    }
    let out = run(&["hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "Hello from a twz guest!\n");
}

#[test]
fn hello_sees_its_arguments() {
    if !kvm_available("hello_sees_its_arguments") {
        return;
    }
    let out = run(&["hello", "--", "alice", "bob smith", "", "h\u{e9}llo --x"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "Hello from a twz guest!",
            "alice",
            "bob smith",
            "",
            "h\u{e9}llo --x"
        ]
    );
}

#[test]
fn a_line_longer_than_the_console_buffer_arrives_whole() {
    if !kvm_available("a_line_longer_than_the_console_buffer_arrives_whole") {
        return;
    }
    let long: String = (0..40_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let out = run(&["hello", "--", &long]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), format!("Hello from a twz guest!\n{long}\n"));
}

#[test]
fn an_image_runs_by_path() {
    if !kvm_available("an_image_runs_by_path") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("my-guest.elf");
    let elf = twz_vmm::images::builtin("hello").expect("hello is built in");
    std::fs::write(&path, elf).expect("write the image");
    let out = run(&[path.to_str().expect("UTF-8 temp path"), "--", "by-path"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "Hello from a twz guest!\nby-path\n");
}

/// Runs `echo` with `input` piped to its standard input.
fn echo(input: &[u8]) -> Output {
    echo_with(&[], input)
}

/// Runs `echo -- ARGS...` with `input` piped to its standard input.
fn echo_with(args: &[&str], input: &[u8]) -> Output {
    let store = common::temp_store();
    let mut cmd = common::twz(store.path());
    cmd.args(["run", "echo", "--"]).args(args);
    common::output_with_stdin(&mut cmd, input).expect("spawn twz-vmm")
}

#[test]
fn echo_copies_stdin_to_stdout() {
    if !kvm_available("echo_copies_stdin_to_stdout") {
        return;
    }
    let out = echo(b"line one\nline two\nno newline at the end");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(out.stdout, b"line one\nline two\nno newline at the end");
}

#[test]
fn echo_copies_large_binary_input_exactly() {
    if !kvm_available("echo_copies_large_binary_input_exactly") {
        return;
    }
    // Larger than the guest's console buffer and its stdin buffer, with every byte value.
    let input: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let out = echo(&input);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input, "output differs from input");
}

#[test]
fn echo_reads_lines_and_replaces_invalid_utf8() {
    if !kvm_available("echo_reads_lines_and_replaces_invalid_utf8") {
        return;
    }
    let out = echo_with(&["--lines"], b"one\ntw\xffo\n\nlast");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "1: one\n2: tw\u{fffd}o\n3: \n4: last");
}

#[test]
fn echo_with_empty_input_prints_nothing() {
    if !kvm_available("echo_with_empty_input_prints_nothing") {
        return;
    }
    let out = echo(b"");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_guest_exit_status_is_the_process_status() {
    if !kvm_available("the_guest_exit_status_is_the_process_status") {
        return;
    }
    for (code, want) in [("0", 0), ("3", 3), ("255", 255), ("300", 300 % 256)] {
        let out = run(&["faults", "--", "exit", code]);
        assert_eq!(
            out.status.code(),
            Some(want),
            "exit {code}: {}",
            describe(&out)
        );
    }
}

#[test]
fn a_usage_error_in_the_guest_reaches_stderr() {
    if !kvm_available("a_usage_error_in_the_guest_reaches_stderr") {
        return;
    }
    let out = run(&["faults", "--", "no-such-fault"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown fault \"no-such-fault\""),
        "{}",
        describe(&out)
    );
}

#[test]
fn callbench_reports_medians() {
    if !kvm_available("callbench_reports_medians") {
        return;
    }
    let out = run(&["callbench", "--", "200"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    for what in [
        "sync hostcall nop: median ",
        "ring nop round trip: median ",
        "ring nop submit + doorbell: median ",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} line in\n{text}"));
        let ns: u64 = line[what.len()..]
            .trim_end_matches(" ns")
            .parse()
            .unwrap_or_else(|_| panic!("bad figure in {line:?}"));
        assert!(ns > 0 && ns < 10_000_000, "{line}");
    }
}

/// The value after `prefix` on the line that starts with it.
fn field<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in\n{text}"))
}

#[test]
fn the_guest_clock_and_random_source_work() {
    if !kvm_available("the_guest_clock_and_random_source_work") {
        return;
    }
    let mut randoms = Vec::new();
    for _ in 0..2 {
        let out = run(&["callbench", "--", "10"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let text = stdout(&out);
        let guest_ns: u128 = field(&text, "wall clock: ")
            .trim_end_matches(" ns since the epoch")
            .parse()
            .expect("wall clock figure");
        let host_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("host clock after 1970")
            .as_nanos();
        let skew = host_ns.abs_diff(guest_ns);
        assert!(skew < 5_000_000_000, "guest clock off by {skew} ns");
        let random = field(&text, "random:").to_string();
        assert_eq!(random.split_whitespace().count(), 16, "{random}");
        randoms.push(random);
    }
    assert_ne!(
        randoms[0], randoms[1],
        "two runs drew the same random bytes"
    );
}
