//! twz-vmm: a KVM monitor that maps persistent objects into unikernel guests.
//!
//! The machine layer is split by the part of the machine each module owns: [`memory`] (guest
//! RAM), [`arch`] (page tables, GDT/IDT/TSS, fault stubs), [`loader`] (ELF images), [`boot`]
//! (boot information and arguments), [`hostcall`] (synchronous calls), [`ring`] and
//! [`event_loop`] (the asynchronous ring), [`net`] (the stream device of `--listen`), [`fault`]
//! (exception reports and backtraces), [`stats`], and [`run`], which ties them together.
//!
//! ```no_run
//! use std::{borrow::Cow, sync::Arc};
//! use twz_vmm::{backtrace::GuestImage, hostcall::console::Console, run::{run, RunConfig}};
//!
//! // Boot the built-in `hello` guest with 128 MiB of RAM and two arguments.
//! let bytes = twz_vmm::images::builtin("hello").expect("built-in image");
//! let image = GuestImage { name: "hello".into(), bytes: Cow::Borrowed(bytes), path: None };
//! let mut config = RunConfig::new(image, 128 << 20, Arc::new(Console::Std));
//! config.args = vec!["alice".into(), "bob".into()];
//! let outcome = run(config).expect("VM set up");
//! if let Some(report) = &outcome.report {
//!     eprint!("{report}"); // fault, panic or timeout report with a backtrace
//! }
//! std::process::exit(i32::from(outcome.status()));
//! ```

pub mod arch;
pub mod backtrace;
pub mod boot;
pub mod event_loop;
pub mod fault;
pub mod hostcall;
pub mod images;
pub mod loader;
pub mod memory;
pub mod net;
pub mod objects;
pub mod ring;
pub mod run;
pub mod stats;
pub mod vstate;
