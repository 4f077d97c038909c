//! `twz-vmm`: run unikernel guests over persistent objects, and inspect the object store.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
