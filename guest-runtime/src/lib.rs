//! `twz_rt`: the library OS twz guests run on.
//!
//! A guest is a static `no_std` ELF that runs at CPL3 in its own VM. This crate gives it a
//! program entry, a console, arguments, standard input, clocks, random bytes, a heap and a
//! panic handler, all over the host interface in [`abi`]: rare synchronous host calls (one VM
//! exit each) and an asynchronous ring that needs no exit.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use twz_rt::println;
//!
//! twz_rt::entry!(main);
//!
//! fn main() -> i32 {
//!     println!("hello from {}", twz_rt::args().get_str(0).unwrap_or("?"));
//!     0
//! }
//! ```
//! See `README.md` beside this crate for how images are built.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

// Pull in memcpy and friends so a guest image links them.
extern crate twz_cmem;

pub mod args;
pub mod boot;
#[cfg(feature = "guest")]
pub mod cabi;
pub mod cnet;
pub mod cobj;
pub mod console;
pub mod ctx;
pub mod errno;
mod global;
pub mod heap;
pub mod hostcall;
pub mod io;
pub mod net;
pub mod object;
pub mod ring;
#[cfg(feature = "guest")]
mod start;
pub mod stdin;
pub mod time;
pub mod tx;

pub use abi;
pub use args::{args, var, vars};
pub use errno::Errno;
pub use io::Stream;

/// Flushes the console and ends the run with `code` (its low 8 bits become `twz-vmm`'s exit
/// status). The VMM writes out pending console output before it acts on the exit.
/// Commits of `--durability group` whose flushes are still pending are made durable first: a
/// program may have acknowledged them.
pub fn exit(code: i32) -> ! {
    let code = match tx::sync() {
        Ok(()) => code,
        Err(e) => {
            eprintln!("twz: making the last commits durable failed: {e}");
            if code == 0 {
                1
            } else {
                code
            }
        }
    };
    io::flush();
    hostcall::exit_now(code)
}

/// Fills `buf` with random bytes from the host.
pub fn random(buf: &mut [u8]) -> Result<(), Errno> {
    hostcall::random(buf)
}

/// What a program's `main` may return: `()`, an `i32` exit status, or a `Result` (an `Err` is
/// printed to stderr and gives status 1).
pub trait Termination {
    /// The exit status.
    fn report(self) -> i32;
}

impl Termination for () {
    fn report(self) -> i32 {
        0
    }
}

impl Termination for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl<T: Termination, E: core::fmt::Debug> Termination for Result<T, E> {
    fn report(self) -> i32 {
        match self {
            Ok(v) => v.report(),
            Err(e) => {
                eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

/// Declares the program's main function: `twz_rt::entry!(main);` with `fn main() -> T` where
/// `T` is a [`Termination`].
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __twz_main() -> i32 {
            $crate::Termination::report($main())
        }
    };
}

/// A `core::fmt::Write` handle on a console stream.
#[derive(Clone, Copy, Debug)]
pub struct Console(pub Stream);

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        io::write(self.0, s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(stream: Stream, args: core::fmt::Arguments<'_>) {
    // Formatting errors come only from user Display impls; like std, drop the rest of the text.
    let _ = core::fmt::Write::write_fmt(&mut Console(stream), args);
}

/// Prints to standard output (sent at each newline, on [`io::flush`] and at exit).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stdout, format_args!($($arg)*)) };
}

/// Prints a line to standard output.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stdout, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard error (sent at the end of each call).
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stderr, format_args!($($arg)*)) };
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::eprint!("\n") };
    ($($arg:tt)*) => { $crate::_print($crate::Stream::Stderr, format_args!("{}\n", format_args!($($arg)*))) };
}
