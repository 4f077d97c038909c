//! Copies standard input to standard output until end of input. With `--lines`, reads line by
//! line (invalid UTF-8 replaced) and numbers each line.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;

use twz_rt::{print, Errno};

twz_rt::entry!(main);

fn main() -> Result<(), Errno> {
    if twz_rt::args().get_str(1) == Some("--lines") {
        copy_lines()
    } else {
        copy_bytes()
    }
}

fn copy_bytes() -> Result<(), Errno> {
    let mut buf = [0u8; 4096];
    loop {
        let n = twz_rt::stdin::read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        twz_rt::io::write(twz_rt::Stream::Stdout, &buf[..n]);
    }
}

fn copy_lines() -> Result<(), Errno> {
    let mut line = String::new();
    let mut number = 0;
    while twz_rt::stdin::read_line(&mut line)? > 0 {
        number += 1;
        print!("{number}: {line}");
        line.clear();
    }
    Ok(())
}
