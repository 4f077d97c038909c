//! Prints a greeting, then each argument after the program name on its own line.
#![no_std]
#![no_main]

use twz_rt::println;

twz_rt::entry!(main);

fn main() -> i32 {
    println!("Hello from a twz guest!");
    for arg in twz_rt::args().iter().skip(1) {
        println!("{arg}");
    }
    0
}
