//! One guest run: build the machine, load the image, run the vCPU until the guest exits, panics,
//! faults or times out.
//!
//! ```no_run
//! use std::{borrow::Cow, sync::Arc};
//! use twz_vmm::run::{run, RunConfig};
//! use twz_vmm::backtrace::GuestImage;
//! use twz_vmm::hostcall::console::Console;
//!
//! let bytes = std::fs::read("hello.elf").unwrap();
//! let image = GuestImage { name: "hello".into(), bytes: Cow::Owned(bytes), path: None };
//! let outcome = run(RunConfig::new(image, 128 << 20, Arc::new(Console::Std))).unwrap();
//! std::process::exit(i32::from(outcome.status()));
//! ```
//!
//! Exit statuses: the guest's own status for `EXIT`; 101 after a guest panic; 139 after a fault
//! (exception, triple fault, unmapped access, KVM refusing the guest); 124 after `--timeout`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abi::memmap::{DOORBELL_RING, DOORBELL_SYNC, FAULT_PORT, IMAGE_BASE, OBJ_WINDOW_BASE};
use kvm_bindings::kvm_regs;
use kvm_ioctls::{Kvm, VcpuExit};

use crate::arch::{self, ArchError};
use crate::backtrace::{self, GuestImage};
use crate::boot::{self, BootClock, BootError, RamPlan};
use crate::event_loop::{EventLoop, EventLoopError, Shared};
use crate::fault::{self, FaultKind, FAULT_STATUS};
use crate::hostcall::access::GuestAccess;
use crate::hostcall::console::Console;
use crate::hostcall::{Action, HostCalls, PanicReport};
use crate::loader::{self, LoaderError};
use crate::memory::{GuestRam, MemoryError};
use crate::net::Net;
use crate::objects::context::{ContextError, SecurityContext};
use crate::objects::{LazyStore, Objects, WindowAccess};
use crate::ring::RingConsumer;
use crate::stats::Stats;
use crate::vstate::vcpu::{Vcpu, VcpuError};
use crate::vstate::vm::{Vm, VmError};

/// Status after a guest panic.
pub const PANIC_STATUS: u8 = 101;
/// Status after `--timeout`.
pub const TIMEOUT_STATUS: u8 = 124;

/// Errors that stop a run before or outside the guest's control.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad memory size or mapping failure.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Bad image.
    #[error("{name}: {error}")]
    Loader { name: String, error: LoaderError },
    /// Boot data.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// System area.
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// VM.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// vCPU.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// Event loop.
    #[error(transparent)]
    EventLoop(#[from] EventLoopError),
    /// The object store could not be opened.
    #[error("cannot open the object store: {0}")]
    Store(#[from] object_store::StoreError),
    /// `KVM_RUN` itself failed.
    #[error("KVM_RUN failed: {0}")]
    KvmRun(kvm_ioctls::Error),
    /// KVM could not back a page the guest touched because the store's filesystem is full.
    #[error(
        "the guest touched a page of an object that could not be allocated: the filesystem of \
         the store {} is full (everything committed before is intact)",
        .0.display()
    )]
    StoreFull(PathBuf),
    /// The security context (`--ctx`, `--cap`) cannot be built.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The key named by `--key` is not in the store.
    #[error("--key {name}: {error}")]
    Key {
        /// The key name.
        name: String,
        /// What is wrong.
        error: object_store::StoreError,
    },
    /// The stream device (`--listen`) cannot be set up.
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
}

/// Why `KVM_RUN` failed: `EFAULT` with the store's filesystem (nearly) full means KVM could not
/// get a page of an object file for the guest (the host's page fault failed with `ENOSPC`).
fn run_failure(e: kvm_ioctls::Error, store: Option<&Path>) -> RunError {
    match store {
        Some(dir) if e.errno() == libc::EFAULT && free_bytes(dir).is_some_and(|b| b < 4 << 20) => {
            RunError::StoreFull(dir.to_path_buf())
        }
        _ => RunError::KvmRun(e),
    }
}

/// Bytes an unprivileged writer may still allocate on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: an all-zero `statvfs` is a valid value for the kernel to overwrite.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-parameter.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// What to run and how.
pub struct RunConfig {
    /// The guest image.
    pub image: GuestImage,
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// Arguments after `argv[0]` (which is the image name).
    pub args: Vec<String>,
    /// Stop the guest after this long.
    pub timeout: Option<Duration>,
    /// Collect [`Stats`] (turns on dirty logging).
    pub stats: bool,
    /// Console streams.
    pub console: Arc<Console>,
    /// The object store directory (opened, or created, at start); `None`: object calls fail
    /// with `-ENOSYS`.
    pub store: Option<PathBuf>,
    /// Object-window slots the guest may use at once (least recently mapped evicted beyond).
    pub slots: u32,
    /// The store is on persistent memory: every object must map `MAP_SYNC`, and the guest is
    /// told to flush with `clwb` + `sfence`.
    pub pmem: bool,
    /// What a commit waits for (`abi::boot::durability`).
    pub durability: u32,
    /// Stream device: accept TCP connections on this address (`host:port`; port 0 picks one,
    /// and the bound address is reported on stderr) and pass them to the guest over the ring.
    pub listen: Option<String>,
    /// The security context the guest runs in (`None`: the ceremony-free default context).
    pub ctx: Option<String>,
    /// Capability files the guest's context holds, in addition to those stored in it.
    pub caps: Vec<std::path::PathBuf>,
    /// The key that owns the objects the guest creates (`None`: the store's default key).
    pub key: Option<String>,
    /// Back objects with 2 MiB host pages: far fewer first-touch faults, at the price of 2 MiB
    /// disk allocation and write-back granularity.
    pub huge_pages: bool,
}

impl RunConfig {
    /// A run of `image` with `mem_size` bytes of RAM, no arguments, no timeout, no stats.
    pub fn new(image: GuestImage, mem_size: u64, console: Arc<Console>) -> Self {
        RunConfig {
            image,
            mem_size,
            args: Vec::new(),
            timeout: None,
            stats: false,
            console,
            store: None,
            slots: crate::objects::DEFAULT_SLOTS,
            pmem: false,
            durability: abi::boot::durability::COMMIT,
            listen: None,
            ctx: None,
            caps: Vec::new(),
            key: None,
            huge_pages: false,
        }
    }
}

/// How the guest's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest called `EXIT`.
    Exited(u8),
    /// The guest panicked.
    Panicked(PanicReport),
    /// The guest faulted.
    Faulted(FaultKind),
    /// `--timeout` expired.
    TimedOut(Duration),
}

/// The end of a run: the outcome, the report to print (faults, panics, timeouts), and stats.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended.
    pub outcome: Outcome,
    /// Multi-line report for stderr (None after a clean exit).
    pub report: Option<String>,
    /// Counters, if asked for.
    pub stats: Option<Stats>,
}

impl RunOutcome {
    /// The process exit status for this outcome.
    pub fn status(&self) -> u8 {
        match &self.outcome {
            Outcome::Exited(s) => *s,
            Outcome::Panicked(_) => PANIC_STATUS,
            Outcome::Faulted(_) => FAULT_STATUS,
            Outcome::TimedOut(_) => TIMEOUT_STATUS,
        }
    }
}

/// An exit copied out of `kvm_run` so the vCPU can be used again while handling it.
enum Exit {
    Hostcall([u8; 8], usize),
    Doorbell,
    /// A touch of an object chunk without a memslot, now backed and the access completed.
    ChunkBacked,
    Mmio {
        addr: u64,
        write: bool,
    },
    Fault(u8),
    Shutdown,
    Internal,
    FailEntry(u64),
    Interrupted,
    Other(String),
}

fn classify(exit: VcpuExit<'_>, objects: Option<&Objects>) -> Exit {
    let backed = |addr: u64, access: WindowAccess<'_>| {
        addr >= OBJ_WINDOW_BASE && objects.is_some_and(|o| o.back_on_demand(addr, access))
    };
    match exit {
        VcpuExit::MmioWrite(addr, data) if addr == DOORBELL_SYNC => {
            let mut buf = [0u8; 8];
            let n = data.len().min(8);
            buf[..n].copy_from_slice(&data[..n]);
            Exit::Hostcall(buf, data.len())
        }
        VcpuExit::MmioWrite(DOORBELL_RING, _) => Exit::Doorbell,
        VcpuExit::MmioWrite(addr, data) if backed(addr, WindowAccess::Write(data)) => {
            Exit::ChunkBacked
        }
        VcpuExit::MmioWrite(addr, _) => Exit::Mmio { addr, write: true },
        VcpuExit::MmioRead(addr, data) => {
            if backed(addr, WindowAccess::Read(&mut *data)) {
                return Exit::ChunkBacked;
            }
            data.fill(0);
            Exit::Mmio { addr, write: false }
        }
        VcpuExit::IoOut(FAULT_PORT, data) => Exit::Fault(data.first().copied().unwrap_or(0xFF)),
        VcpuExit::Shutdown => Exit::Shutdown,
        VcpuExit::InternalError => Exit::Internal,
        VcpuExit::FailEntry(reason, _) => Exit::FailEntry(reason),
        VcpuExit::Intr => Exit::Interrupted,
        other => Exit::Other(format!("{other:?}")),
    }
}

fn exit_kind(e: &Exit) -> &'static str {
    match e {
        Exit::Hostcall(..) => "hostcall",
        Exit::Doorbell => "doorbell",
        Exit::ChunkBacked => "chunk-fault",
        Exit::Mmio { .. } => "mmio",
        Exit::Fault(_) => "exception",
        Exit::Shutdown => "shutdown",
        Exit::Internal => "internal-error",
        Exit::FailEntry(_) => "fail-entry",
        Exit::Interrupted => "interrupted",
        Exit::Other(_) => "other",
    }
}

/// What the guest is told about the run's durability and environment.
fn boot_mode(config: &RunConfig) -> boot::BootMode {
    let mut flags = 0;
    if config.pmem {
        flags |= abi::boot::flags::PMEM;
    }
    // SAFETY: isatty only inspects file descriptor 0; any value, open or not, is fine.
    if unsafe { libc::isatty(0) } == 1 {
        flags |= abi::boot::flags::STDIN_IS_TTY;
    }
    if config.listen.is_some() {
        flags |= abi::boot::flags::NET_LISTEN;
    }
    boot::BootMode {
        durability: config.durability,
        flags,
    }
}

/// The run's store: opened now when it must be checked before boot (persistent memory, a
/// `--key` that must exist, the capabilities stored for a `--ctx`), else at the guest's first
/// object call.
fn open_store(
    dir: &std::path::Path,
    config: &RunConfig,
    security: &mut SecurityContext,
) -> Result<LazyStore, RunError> {
    if !config.pmem && config.key.is_none() && !security.is_explicit() {
        return Ok(LazyStore::new(dir.to_path_buf()));
    }
    let store = if config.pmem {
        // A store that is not persistent memory must not run at all.
        object_store::Store::open_pmem(dir)?
    } else {
        object_store::Store::open(dir)?
    };
    if let Some(name) = &config.key {
        store.public_key(name).map_err(|error| RunError::Key {
            name: name.clone(),
            error,
        })?;
    }
    security.hold_stored(&store)?;
    Ok(LazyStore::opened(store))
}

/// Binds the stream device's listener (`--listen`) before anything is built, so a bad or busy
/// address stops the run before boot, and reports the bound address (port 0 picks one) on the
/// console's stderr as `twz-vmm: listening on ADDR`.
fn listen(config: &RunConfig) -> Result<Option<Net>, RunError> {
    let Some(addr) = &config.listen else {
        return Ok(None);
    };
    let net = Net::new(crate::net::bind(addr).map_err(crate::net::NetError::from)?)?;
    if let Ok(bound) = net.local_addr() {
        let line = format!("twz-vmm: listening on {bound}\n");
        let _ = config
            .console
            .write(abi::hostcall::fd::STDERR, line.as_bytes());
    }
    Ok(Some(net))
}

/// Runs a guest to its end.
pub fn run(config: RunConfig) -> Result<RunOutcome, RunError> {
    let start = Instant::now();
    crate::memory::validate_mem_size(config.mem_size)?;
    let plan = RamPlan::new(config.mem_size)?;
    let image = loader::parse(&config.image.bytes, plan.image_limit()).map_err(|error| {
        RunError::Loader {
            name: config.image.name.clone(),
            error,
        }
    })?;
    // Capability files are read and checked before anything is built: a bad one stops the run.
    let mut security =
        SecurityContext::load(config.ctx.as_deref(), &config.caps, config.key.as_deref())?;
    let mut argv = vec![config.image.name.clone()];
    argv.extend(config.args.iter().cloned());
    let args = boot::pack_args(abi::memmap::ARGS_ADDR, &argv, &[])?;
    let net = listen(&config)?;

    // RAM first, so that it outlives the VM.
    let ram = GuestRam::new(config.mem_size)?;
    let kvm = Kvm::new().map_err(|e| RunError::Vm(VmError::OpenKvm(e)))?;
    let mut vm = Vm::new(&kvm)?;
    let mem = ram.mem();
    // Durable fences go through the store's flush journal, except on persistent memory.
    let journaled = config.durability != abi::boot::durability::NONE && !config.pmem;
    let objects = match &config.store {
        Some(dir) => Some(Arc::new(
            Objects::new(
                open_store(dir, &config, &mut security)?,
                vm.shared_fd(),
                mem.clone(),
                config.slots,
            )
            .with_security(security)
            .with_huge_pages(config.huge_pages)
            .with_journal(journaled)
            .with_huge_growth(config.durability == abi::boot::durability::NONE || journaled),
        )),
        None => None,
    };
    let cr3 = arch::paging::build(mem, config.mem_size, plan.guard())?;
    arch::descriptors::build(mem)?;
    loader::load(mem, &config.image.bytes, &image).map_err(|error| RunError::Loader {
        name: config.image.name.clone(),
        error,
    })?;

    let mut vcpu = Vcpu::new(&kvm, vm.fd(), image.entry, plan.stack_top, cr3)?;
    let clock = BootClock::sample(vcpu.tsc_hz());
    boot::write_boot_data(
        mem,
        &plan,
        (image.start.max(IMAGE_BASE), image.end),
        &args,
        clock,
        boot_mode(&config),
    )?;

    // The event loop starts asleep: the guest must ring for its first submissions.
    RingConsumer::set_need_wakeup(mem, true);
    let shared = Shared {
        mem: mem.clone(),
        access: GuestAccess::new(&plan),
        console: config.console.clone(),
        ring: Arc::new(Mutex::new(RingConsumer::new(net))),
        stop: Arc::new(AtomicBool::new(false)),
        timed_out: Arc::new(AtomicBool::new(false)),
        objects: objects.clone(),
    };
    RingConsumer::enable_flusher(
        &shared.ring,
        mem.clone(),
        objects.as_ref().and_then(|o| o.journal()),
    );
    let event_loop = EventLoop::spawn(shared.clone(), vm.shared_fd(), config.timeout)?;
    vm.add_ram(&ram, config.stats)?;

    let mut stats = Stats {
        mem_size: config.mem_size,
        ..Default::default()
    };
    let mut calls = HostCalls::new(
        mem,
        &shared.access,
        &shared.console,
        &shared.ring,
        &shared.stop,
    );
    calls.objects = objects.as_deref();
    let machine = Machine {
        objects: objects.as_deref(),
        mem,
        access: &shared.access,
        plan: &plan,
        image: &config.image,
    };
    let result = loop {
        if shared.stop.load(Ordering::Acquire) {
            break Ok(machine.timed_out(&vcpu, config.timeout.unwrap_or_default()));
        }
        let t0 = Instant::now();
        let exit = match vcpu.run() {
            Ok(e) => classify(e, objects.as_deref()),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(e) => break Err(run_failure(e, config.store.as_deref())),
        };
        stats.guest_time += t0.elapsed();
        stats.exit(exit_kind(&exit));
        let fault = match exit {
            Exit::Hostcall(buf, len) => match calls.handle(&buf[..len.min(8)]) {
                Action::Continue => continue,
                Action::Exit(status) => {
                    break Ok(RunOutcome {
                        outcome: Outcome::Exited(status),
                        report: None,
                        stats: None,
                    })
                }
                Action::Panic(p) => break Ok(machine.panicked(&vcpu, p)),
            },
            Exit::Interrupted | Exit::ChunkBacked => continue,
            // An instruction KVM cannot emulate touched a chunk without a memslot (its address
            // is not reported): back every chunk and run the instruction again natively.
            Exit::Internal if objects.as_deref().is_some_and(Objects::back_everything) => continue,
            Exit::Doorbell => {
                // The doorbell is not an ioeventfd yet (see `event_loop`): serve the ring here.
                calls.drain_ring();
                continue;
            }
            Exit::Mmio { addr, write } => machine
                .object_fault(addr, write)
                .unwrap_or(FaultKind::Unmapped { addr, write }),
            Exit::Fault(vector) => {
                break Ok(machine.exception(&vcpu, vector));
            }
            Exit::Shutdown => FaultKind::TripleFault,
            Exit::Internal => FaultKind::InternalError(vcpu.internal_error()),
            Exit::FailEntry(r) => FaultKind::FailEntry(r),
            Exit::Other(what) => FaultKind::UnexpectedExit(what),
        };
        break Ok(machine.fault_at_regs(&vcpu, fault));
    };
    calls.drain_ring();
    event_loop.stop();
    // The guest is gone: its connections close now, not when the event loop thread ends.
    let flusher = match shared.ring.lock() {
        Ok(mut ring) => {
            ring.close_net(mem);
            ring.take_flusher()
        }
        Err(_) => None,
    };
    // Joined with the ring unlocked: the worker locks it to post what it finishes.
    drop(flusher);
    // Sync what the flush journal covers in place, so the next opener has nothing to settle.
    if let Some(journal) = objects.as_ref().and_then(|o| o.journal()) {
        if let Err(e) = journal.checkpoint() {
            eprintln!("twz-vmm: flush journal checkpoint: {e} (the next open settles it)");
        }
    }
    let mut outcome = result?;
    if config.stats {
        stats.hostcalls = calls.counts;
        stats.hostcalls_dropped = calls.dropped;
        stats.ring = shared.ring.lock().map(|r| r.stats()).unwrap_or_default();
        stats.pages_written = vm.pages_written()?;
        stats.pages_resident = ram.resident_pages();
        stats.vmm_rss_kib = crate::stats::vmm_rss_kib();
        stats.total_time = start.elapsed();
        stats.objects = objects.as_ref().map(|o| o.stats());
        outcome.stats = Some(stats);
    }
    drop(vcpu);
    drop(vm);
    Ok(outcome)
}

/// What fault reports need to read the machine.
struct Machine<'a> {
    mem: &'a vm_memory::GuestMemoryMmap,
    objects: Option<&'a Objects>,
    access: &'a GuestAccess,
    plan: &'a RamPlan,
    image: &'a GuestImage,
}

impl Machine<'_> {
    /// Names an access to the object window that faulted.
    fn object_fault(&self, addr: u64, write: bool) -> Option<FaultKind> {
        fault::object_fault(addr, write, |slot| {
            self.objects.and_then(|o| o.occupant(slot))
        })
    }

    fn backtrace(&self, regs: &kvm_regs) -> String {
        let pcs = backtrace::walk(self.mem, self.access, regs.rip, regs.rbp);
        backtrace::render(&pcs, &backtrace::symbolize(self.image, &pcs))
    }

    fn report(&self, outcome: Outcome, head: String, regs: Option<&kvm_regs>) -> RunOutcome {
        let mut report = head;
        if let Some(r) = regs {
            report.push_str(&fault::format_regs(r));
            report.push_str(&self.backtrace(r));
        }
        RunOutcome {
            outcome,
            report: Some(report),
            stats: None,
        }
    }

    fn panicked(&self, vcpu: &Vcpu, p: PanicReport) -> RunOutcome {
        let head = format!(
            "guest panicked at {}:{}:{}: {}\n",
            p.file, p.line, p.column, p.message
        );
        let regs = vcpu.regs().ok();
        let mut out = self.report(Outcome::Panicked(p), head, None);
        if let (Some(r), Some(rep)) = (regs, out.report.as_mut()) {
            rep.push_str(&self.backtrace(&r));
        }
        out
    }

    fn timed_out(&self, vcpu: &Vcpu, after: Duration) -> RunOutcome {
        let head = format!(
            "twz-vmm: guest stopped: timed out after {} s (--timeout); it was at:\n",
            after.as_secs_f64()
        );
        let regs = vcpu.regs().ok();
        self.report(Outcome::TimedOut(after), head, regs.as_ref())
    }

    fn fault_at_regs(&self, vcpu: &Vcpu, kind: FaultKind) -> RunOutcome {
        let head = format!("twz-vmm: guest fault: {}\n", fault::headline(&kind));
        let regs = vcpu.regs().ok();
        self.report(Outcome::Faulted(kind), head, regs.as_ref())
    }

    fn exception(&self, vcpu: &Vcpu, vector: u8) -> RunOutcome {
        let Ok(mut regs) = vcpu.regs() else {
            let kind = FaultKind::Exception {
                vector,
                error_code: None,
                cr2: 0,
            };
            return self.fault_at_regs(vcpu, kind);
        };
        let cr2 = if vector == 14 {
            vcpu.sregs().map_or(0, |s| s.cr2)
        } else {
            0
        };
        let frame = fault::read_frame(self.mem, regs.rsp, vector);
        if let Some(f) = &frame {
            (regs.rax, regs.rip, regs.rsp, regs.rflags) = (f.rax, f.rip, f.rsp, f.rflags);
        }
        let error_code = frame.and_then(|f| f.error_code);
        let pf_write = error_code.is_some_and(|c| c & 2 != 0);
        let kind = if vector == 14 && self.plan.guard().contains(&cr2) {
            FaultKind::StackOverflow { addr: cr2 }
        } else if let Some(k) = (vector == 14)
            .then(|| self.object_fault(cr2, pf_write))
            .flatten()
        {
            k
        } else {
            FaultKind::Exception {
                vector,
                error_code,
                cr2,
            }
        };
        let mut head = format!("twz-vmm: guest fault: {}\n", fault::headline(&kind));
        if vector == 14 {
            head.push_str(&format!("     cr2 {cr2:#018x}\n"));
        }
        self.report(Outcome::Faulted(kind), head, Some(&regs))
    }
}
