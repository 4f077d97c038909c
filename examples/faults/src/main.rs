//! Commits the fault named by its first argument, each in its own function so a backtrace can
//! name it: null, wild, gp, ud, div, stack, spin, panic, oom (exhaust the heap), or `exit N`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use core::arch::asm;
use core::hint::black_box;

use twz_rt::{eprintln, println};

twz_rt::entry!(main);

/// An address below the MMIO area and above any guest RAM: not mapped.
const WILD_ADDR: u64 = 0x40_0000_0000;
/// Bits 63..47 disagree: not a canonical address, so any access raises #GP.
const NON_CANONICAL_ADDR: u64 = 0x8000_0000_0000_0000;

const USAGE: &str = "usage: faults null|wild|gp|ud|div|stack|spin|panic|oom|exit N";

fn main() -> i32 {
    let args = twz_rt::args();
    let Some(kind) = args.get_str(1) else {
        eprintln!("{USAGE}");
        return 2;
    };
    println!("faults: committing {kind}");
    twz_rt::io::flush();
    match kind {
        "null" => null_read(),
        "wild" => wild_write(),
        "gp" => non_canonical_read(),
        "ud" => invalid_opcode(),
        "div" => divide_by_zero(),
        "stack" => {
            recurse_forever(0);
        }
        "spin" => spin_forever(),
        "panic" => panic_with_message(),
        "oom" => exhaust_the_heap(),
        "exit" => match args.get_str(2).map(str::parse::<i32>) {
            Some(Ok(n)) => return n,
            _ => {
                eprintln!("{USAGE}");
                return 2;
            }
        },
        other => {
            eprintln!("faults: unknown fault {other:?}; {USAGE}");
            return 2;
        }
    }
    eprintln!("faults: {kind} did not fault");
    1
}

/// Reads through a null pointer (#PF at address 0).
#[inline(never)]
fn null_read() {
    let v: u64;
    // SAFETY: not safe at all: this is the fault the program exists to commit. Inline asm keeps
    // the compiler from treating the access as undefined behaviour and removing it.
    unsafe { asm!("mov {v}, qword ptr [{p}]", p = in(reg) 0u64, v = out(reg) v, options(nostack)) };
    black_box(v);
}

/// Writes to an address no memory is mapped at (#PF with the write bit).
#[inline(never)]
fn wild_write() {
    // SAFETY: deliberately faults, see `null_read`.
    unsafe {
        asm!("mov qword ptr [{p}], {v}", p = in(reg) WILD_ADDR, v = in(reg) 0x5a5a_u64, options(nostack))
    };
}

/// Reads a non-canonical address (#GP).
#[inline(never)]
fn non_canonical_read() {
    let v: u64;
    // SAFETY: deliberately faults, see `null_read`.
    unsafe {
        asm!("mov {v}, qword ptr [{p}]", p = in(reg) NON_CANONICAL_ADDR, v = out(reg) v, options(nostack))
    };
    black_box(v);
}

/// Executes `ud2` (#UD).
#[inline(never)]
fn invalid_opcode() {
    // SAFETY: deliberately faults; touches no memory.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

/// Divides by zero with `div` (#DE).
#[inline(never)]
fn divide_by_zero() {
    let q: u64;
    // SAFETY: deliberately faults; touches no memory.
    unsafe {
        asm!("div {d}", d = in(reg) black_box(0u64), inout("rax") 7u64 => q, inout("rdx") 0u64 => _,
             options(nomem, nostack))
    };
    black_box(q);
}

/// Recurses until the stack runs into its guard page (#PF below the stack).
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse_forever(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse_forever(black_box(depth + 1)) + frame[(depth % 64) as usize]
}

/// Loops forever without host calls, for `twz-vmm run --timeout`.
#[inline(never)]
fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Panics with a message the VMM should print.
#[inline(never)]
fn panic_with_message() {
    let answer = black_box(42);
    panic!("deliberate panic: the answer is {answer}");
}

/// Allocates 1 MiB blocks (touching each) until the heap runs out; the allocation failure is
/// reported as a panic.
#[inline(never)]
fn exhaust_the_heap() {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::with_capacity(1 << 20);
        block.resize(1 << 20, blocks.len() as u8);
        blocks.push(black_box(block));
    }
}
