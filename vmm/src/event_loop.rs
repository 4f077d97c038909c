//! The VMM's event loop, on its own thread beside the vCPU: serves the async ring when the guest
//! rings its doorbell, moves the stream device's bytes when its sockets are ready (see
//! [`crate::net`]), and runs the `--timeout` watchdog. Built on event-manager.
//!
//! After any activity it keeps polling the ring (and the sockets) for [`RING_POLL_WINDOW`], so a
//! guest answering a request it just received submits without a doorbell and sees completions
//! posted while it spins, without a VM exit. Under continuous load it returns to epoll every
//! [`MAX_SERVE`] (through its own `resume` event, leaving the guest's "polling" flag set) so the
//! watchdog and the exit event are still heard.
//!
//! The doorbell becomes an ioeventfd (a write signals this loop without stopping the vCPU) only
//! [`DOORBELL_ARM_DELAY`] into the run. Registering it costs the VM a second SRCU grace period,
//! which the kernel completes about one jiffy (4 ms at HZ=250) later, in whichever ioctl comes
//! next, closing the VM included: measured, that was most of a `run hello`. Until it is armed,
//! a doorbell write exits to the vCPU thread, which drains the ring itself (~25 us instead of
//! ~2.4 us), so short runs never pay for the ioeventfd and long runs get it in the background.
//!
//! The watchdog stops a spinning guest by setting the stop flag and signalling the vCPU thread
//! (which makes `KVM_RUN` return `EINTR`); it repeats the signal every 10 ms until the run ends,
//! so a signal that lands while the vCPU thread is outside `KVM_RUN` is not lost.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::timerfd::TimerFd;

use crate::hostcall::access::GuestAccess;
use crate::hostcall::console::Console;
use crate::ring::{RingConsumer, RingEnv};
use crate::vstate::vm::register_doorbell;

/// How far into a run the ring doorbell becomes an ioeventfd.
pub const DOORBELL_ARM_DELAY: Duration = Duration::from_millis(20);

/// How long the loop keeps polling the ring after a doorbell before sleeping in epoll again.
/// A sleeping thread wakes ~14 us after an ioeventfd signal here; while polling, a submission
/// is picked up within a fraction of a microsecond, and a guest that honours
/// `abi::ring::SQ_NEED_WAKEUP` skips the doorbell altogether.
pub const RING_POLL_WINDOW: Duration = Duration::from_micros(200);

/// While polling, one look in this many takes the consumer's lock even when the ring's header
/// and the sockets show nothing (completions waiting for the guest to reap are found so).
const LOCKED_LOOK_EVERY: u32 = 16;

/// True when `fd` (the stream device's epoll instance) has events, without waiting.
fn readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd; a timeout of 0 never blocks. A stale fd only gives a
    // wrong answer, which costs one needless look.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

/// Longest the loop polls without going back to epoll.
pub const MAX_SERVE: Duration = Duration::from_millis(5);

/// Errors of starting the event loop.
#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    /// An fd or the epoll set could not be created.
    #[error("cannot set up the event loop: {0}")]
    Setup(String),
    /// The thread could not be spawned.
    #[error("cannot start the event loop thread: {0}")]
    Spawn(std::io::Error),
}

/// Signal used to kick the vCPU thread out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN() + 1
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) kick handler once per process, without `SA_RESTART`.
pub fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick);
    });
}

/// What the loop shares with the vCPU thread.
#[derive(Clone)]
pub struct Shared {
    /// Guest RAM.
    pub mem: GuestMemoryMmap,
    /// What the guest may name.
    pub access: GuestAccess,
    /// Console.
    pub console: Arc<Console>,
    /// The ring consumer (also drained by the vCPU thread).
    pub ring: Arc<Mutex<RingConsumer>>,
    /// Set to stop the run.
    pub stop: Arc<AtomicBool>,
    /// Set when the stop came from the timeout.
    pub timed_out: Arc<AtomicBool>,
    /// The object mapper (ring `FLUSH`), if the run has a store.
    pub objects: Option<Arc<crate::objects::Objects>>,
}

/// Fields drop in order: the VM handle goes before the guest memory its memslot points at.
struct Service {
    vm: Arc<VmFd>,
    shared: Shared,
    doorbell: Option<EventFd>,
    /// The stream device's epoll fd (owned by the ring's `Net`).
    net: Option<RawFd>,
    /// Signalled by the loop itself to carry on polling after [`MAX_SERVE`].
    resume: EventFd,
    arm: TimerFd,
    exit: EventFd,
    timer: Option<TimerFd>,
    vcpu_thread: libc::pthread_t,
    vcpu_alive: Arc<Mutex<bool>>,
    done: Arc<AtomicBool>,
}

impl Service {
    /// Drains the ring and handles ready sockets, then keeps polling both for
    /// [`RING_POLL_WINDOW`] after the last activity, telling the guest (`SQ_NEED_WAKEUP` clear)
    /// that it need not ring meanwhile.
    fn serve_ring(&self) {
        let s = &self.shared;
        let env = RingEnv {
            mem: &s.mem,
            access: &s.access,
            console: &s.console,
            objects: s.objects.as_deref(),
        };
        RingConsumer::set_need_wakeup(&s.mem, false);
        let start = Instant::now();
        let mut last = start;
        let mut looks = 0u32;
        loop {
            // Look for work without the consumer's lock (the vCPU thread needs it too), and
            // take the lock only when there may be some, or now and then for the backlog.
            let maybe = looks.is_multiple_of(LOCKED_LOOK_EVERY)
                || RingConsumer::submitted_in(&s.mem)
                || self.net.is_some_and(readable);
            looks = looks.wrapping_add(1);
            let busy = maybe
                && match s.ring.lock() {
                    Ok(mut ring) => {
                        let consumed = ring.drain(&env);
                        let events = if self.net.is_some() {
                            ring.poll_net(&env)
                        } else {
                            0
                        };
                        consumed > 0 || events > 0 || ring.has_pending(&s.mem)
                    }
                    Err(_) => break,
                };
            if busy {
                last = Instant::now();
                if last.duration_since(start) > MAX_SERVE && self.resume.write(1).is_ok() {
                    // Still polling (flag clear): the resume event brings the loop back here
                    // after epoll has delivered whatever else is pending.
                    return;
                }
            } else if last.elapsed() > RING_POLL_WINDOW || s.stop.load(Ordering::Relaxed) {
                // Going to sleep: announce it, then look once more so a submission published
                // just before the flag was seen is not left waiting for a doorbell.
                RingConsumer::set_need_wakeup(&s.mem, true);
                match s.ring.lock() {
                    Ok(ring) if ring.has_pending(&s.mem) => {
                        RingConsumer::set_need_wakeup(&s.mem, false);
                        last = Instant::now();
                    }
                    _ => return,
                }
            } else {
                // On a busy machine the guest's vCPU or a client may be waiting for this CPU:
                // let them run (when nothing else is runnable this returns at once).
                std::thread::yield_now();
            }
        }
        RingConsumer::set_need_wakeup(&s.mem, true);
    }

    /// Turns the doorbell into an ioeventfd (see the module docs). On failure doorbell writes
    /// keep exiting to the vCPU thread, which is slower but correct.
    fn arm_doorbell(&mut self, ops: &mut EventOps) {
        let _ = self.arm.wait();
        if self.doorbell.is_some() || self.done.load(Ordering::Acquire) {
            return;
        }
        if let Ok(evt) = register_doorbell(&self.vm) {
            if ops.add(Events::new(&evt, EventSet::IN)).is_ok() {
                self.doorbell = Some(evt);
                // Submissions made while the write was still exiting are served by the vCPU
                // thread; look once in case one slipped between the two paths.
                self.serve_ring();
            }
        }
    }

    fn kick_vcpu(&mut self) {
        self.shared.timed_out.store(true, Ordering::Release);
        self.shared.stop.store(true, Ordering::Release);
        if let Ok(alive) = self.vcpu_alive.lock() {
            if *alive {
                // SAFETY: `alive` is true, so the vCPU thread has not yet left `run` (it clears
                // the flag under this lock first), and the kick signal has a handler, so it
                // cannot kill the process.
                unsafe { libc::pthread_kill(self.vcpu_thread, kick_signal()) };
            }
        }
    }
}

impl MutEventSubscriber for Service {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.exit, EventSet::IN));
        let _ = ops.add(Events::new(&self.arm, EventSet::IN));
        let _ = ops.add(Events::new(&self.resume, EventSet::IN));
        if let Some(fd) = self.net {
            let _ = ops.add(Events::new_raw(fd, EventSet::IN));
        }
        if let Some(t) = &self.timer {
            let _ = ops.add(Events::new(t, EventSet::IN));
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if self.doorbell.as_ref().is_some_and(|d| d.as_raw_fd() == fd) {
            if let Some(d) = &self.doorbell {
                let _ = d.read();
            }
            self.serve_ring();
        } else if self.net == Some(fd) || fd == self.resume.as_raw_fd() {
            if fd == self.resume.as_raw_fd() {
                let _ = self.resume.read();
            }
            self.serve_ring();
        } else if fd == self.exit.as_raw_fd() {
            let _ = self.exit.read();
            self.done.store(true, Ordering::Release);
        } else if fd == self.arm.as_raw_fd() {
            self.arm_doorbell(ops);
        } else if let Some(t) = self.timer.as_mut().filter(|t| t.as_raw_fd() == fd) {
            let _ = t.wait();
            let _ = t.reset(Duration::from_millis(10), Some(Duration::from_millis(10)));
            self.kick_vcpu();
        }
    }
}

/// A running event loop; [`EventLoop::stop`] (or dropping it) ends it.
///
/// The loop's thread is not joined: under load it may not even have been scheduled yet when a
/// short guest ends (measured: 2-3 ms of a `run hello`), and nothing needs it once the vCPU
/// thread has drained the ring. It exits on its own at the exit event, holding only its own
/// clones (guest memory stays mapped until then).
pub struct EventLoop {
    exit: EventFd,
    vcpu_alive: Arc<Mutex<bool>>,
}

impl EventLoop {
    /// Starts the loop for the VM `vm`, with a watchdog after `timeout` that kicks the calling
    /// thread (the vCPU thread).
    pub fn spawn(
        shared: Shared,
        vm: Arc<VmFd>,
        timeout: Option<Duration>,
    ) -> Result<Self, EventLoopError> {
        let setup = |e: std::io::Error| EventLoopError::Setup(e.to_string());
        let timer_err = |e: vmm_sys_util::errno::Error| EventLoopError::Setup(e.to_string());
        let exit = EventFd::new(EFD_NONBLOCK).map_err(setup)?;
        let mut arm = TimerFd::new().map_err(timer_err)?;
        arm.reset(DOORBELL_ARM_DELAY, None).map_err(timer_err)?;
        let timer = match timeout {
            Some(d) => {
                install_kick_handler();
                let mut t = TimerFd::new().map_err(timer_err)?;
                t.reset(d, None).map_err(timer_err)?;
                Some(t)
            }
            None => None,
        };
        // SAFETY: pthread_self has no preconditions.
        let vcpu_thread = unsafe { libc::pthread_self() };
        let done = Arc::new(AtomicBool::new(false));
        let vcpu_alive = Arc::new(Mutex::new(true));
        let net = shared.ring.lock().ok().and_then(|r| r.net_fd());
        let service = Service {
            resume: EventFd::new(EFD_NONBLOCK).map_err(setup)?,
            net,
            shared,
            vm,
            doorbell: None,
            arm,
            exit: exit.try_clone().map_err(setup)?,
            timer,
            vcpu_thread,
            vcpu_alive: vcpu_alive.clone(),
            done: done.clone(),
        };
        let mut manager: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
            EventManager::new().map_err(|e| EventLoopError::Setup(format!("{e:?}")))?;
        manager.add_subscriber(Arc::new(Mutex::new(service)));
        std::thread::Builder::new()
            .name("twz-event-loop".into())
            .stack_size(256 << 10)
            .spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if manager.run().is_err() {
                        break;
                    }
                }
            })
            .map_err(EventLoopError::Spawn)?;
        Ok(EventLoop { exit, vcpu_alive })
    }

    /// Stops the loop; after this the watchdog no longer signals the calling thread.
    pub fn stop(self) {
        drop(self);
    }

    fn shutdown(&mut self) {
        match self.vcpu_alive.lock() {
            Ok(mut alive) => *alive = false,
            Err(poisoned) => *poisoned.into_inner() = false,
        }
        let _ = self.exit.write(1);
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.shutdown();
    }
}
