//! Placeholder until the stream device lands.
#![no_std]
#![no_main]

use twz_rt::Errno;

twz_rt::entry!(main);

fn main() -> Result<(), Errno> {
    Err(Errno::ENOSYS)
}
