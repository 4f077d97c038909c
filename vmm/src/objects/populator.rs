//! Faulting object pages in ahead of the guest (ring op `POPULATE`).
//!
//! Under PVM the first guest store to a 4 KiB page of a file-backed object costs the vCPU
//! 10-30 us, mostly in the host's page-fault path (a page-cache page zeroed, the filesystem's
//! blocks reserved). A guest that is about to fill a region asks for it ahead of time and this
//! worker runs `MADV_POPULATE_WRITE` over the slot's host mapping on its own thread, so the
//! vCPU's later first touch only has to build its shadow translation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Pages are populated this many bytes per call, so a job a newer one supersedes, or the end
/// of the run, waits for at most one piece.
const PIECE: u64 = 1 << 20;

/// Per slot, a count bumped whenever its object leaves it, so a queued job can tell that the
/// slot it names now holds something else (which it must not dirty) and stop.
#[derive(Debug)]
pub struct Occupancy(Vec<AtomicU64>);

impl Occupancy {
    /// Counters for `slots` slots.
    pub fn new(slots: u32) -> Arc<Occupancy> {
        Arc::new(Occupancy((0..slots).map(|_| AtomicU64::new(0)).collect()))
    }

    /// `slot`'s current count.
    pub fn generation(&self, slot: u32) -> u64 {
        self.0
            .get(slot as usize)
            .map_or(u64::MAX, |g| g.load(Ordering::Acquire))
    }

    /// Records that `slot`'s object left it.
    pub fn vacated(&self, slot: u32) {
        if let Some(g) = self.0.get(slot as usize) {
            g.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Which occupant of which slot a job is for.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The slots' counters.
    pub occupancy: Arc<Occupancy>,
    /// The slot.
    pub slot: u32,
    /// Its count when the job was made.
    pub generation: u64,
}

impl Ticket {
    /// Whether the slot still holds the object the job was made for.
    fn valid(&self) -> bool {
        self.occupancy.generation(self.slot) == self.generation
    }
}

/// A host range to populate.
#[derive(Debug, Clone)]
pub struct Range {
    /// Host address, inside a slot's reserved 1 GiB range of the object window.
    pub addr: u64,
    /// Bytes.
    pub len: u64,
    /// Back the range with 2 MiB folios first (`MADV_HUGEPAGE`), so KVM maps it with 2 MiB
    /// shadow entries (see `super::Objects::with_huge_growth`).
    pub huge: bool,
    /// The slot's occupant the range belongs to.
    pub ticket: Ticket,
}

/// The worker thread; dropping it finishes the piece in progress and joins it.
#[derive(Debug)]
pub struct Populator {
    jobs: Option<Sender<Range>>,
    thread: Option<JoinHandle<()>>,
}

impl Populator {
    /// Starts the worker.
    pub fn spawn() -> std::io::Result<Populator> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("twz-populate".into())
            .spawn(move || work(&rx))?;
        Ok(Populator {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `range`.
    pub fn submit(&self, range: Range) {
        if let Some(tx) = &self.jobs {
            // The worker only ends when this sender is dropped, so sending cannot fail.
            let _ = tx.send(range);
        }
    }
}

impl Drop for Populator {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn work(jobs: &Receiver<Range>) {
    while let Ok(range) = jobs.recv() {
        let end = range.addr.saturating_add(range.len);
        if !range.ticket.valid()
            || range.huge && advise(range.addr, range.len, libc::MADV_HUGEPAGE).is_err()
        {
            continue;
        }
        let mut at = range.addr;
        while at < end {
            let len = PIECE.min(end - at);
            // A slot that changed hands since the request holds another object: leave it be.
            // (Between this check and the call the slot may still change; populating then
            // only dirties pages of the new occupant without changing them.)
            if !range.ticket.valid() || populate(at, len).is_err() {
                // The slot changed hands or became inaccessible since the request: the rest
                // of the range is not worth trying.
                break;
            }
            at += len;
        }
    }
}

/// `MADV_POPULATE_WRITE` over `addr..addr + len`.
fn populate(addr: u64, len: u64) -> std::io::Result<()> {
    advise(addr, len, libc::MADV_POPULATE_WRITE)
}

/// `madvise(advice)` over `addr..addr + len`, for an advice that changes no byte.
fn advise(addr: u64, len: u64, advice: i32) -> std::io::Result<()> {
    // SAFETY: populating faults pages in as a write would, and `MADV_HUGEPAGE` only picks the
    // page size of later faults; neither changes any byte, so neither can disturb memory
    // anyone reads. The range lies in the object window's reservation, which stays mapped until
    // `HostWindow` is dropped, after this worker is joined (`super::Objects` field order); if
    // its slot was emptied meanwhile the range is `PROT_NONE` and populating fails.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn populates_a_shared_file_mapping_without_changing_it() {
        const LEN: usize = 4 << 20;
        let dir = std::env::temp_dir().join(format!("twz-populate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("f"))
            .unwrap();
        file.set_len(LEN as u64).unwrap();
        // SAFETY: a fresh shared mapping of our own file, unmapped below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // No read-around (as on the object window), so only what is populated gets in.
        // SAFETY: advice on our own mapping; changes no byte.
        assert_eq!(unsafe { libc::madvise(map, LEN, libc::MADV_RANDOM) }, 0);
        let occupancy = Occupancy::new(2);
        let ticket = |slot| Ticket {
            occupancy: occupancy.clone(),
            slot,
            generation: occupancy.generation(slot),
        };
        // A job for slot 1, whose occupant leaves before the worker gets to it, does nothing.
        let stale = ticket(1);
        occupancy.vacated(1);
        let p = Populator::spawn().unwrap();
        p.submit(Range {
            addr: map as u64 + (3 << 20),
            len: 1 << 20,
            huge: false,
            ticket: stale,
        });
        p.submit(Range {
            addr: map as u64,
            len: 3 << 20,
            huge: false,
            ticket: ticket(0),
        });
        drop(p); // joins: the jobs are done
        let mut resident = vec![0u8; LEN / 4096];
        // SAFETY: `map` is LEN bytes; `resident` has a byte per page.
        assert_eq!(unsafe { libc::mincore(map, LEN, resident.as_mut_ptr()) }, 0);
        assert!(
            resident[..768].iter().all(|r| r & 1 == 1),
            "populated pages are resident"
        );
        assert!(
            resident[768..].iter().all(|r| r & 1 == 0),
            "the stale job populated nothing"
        );
        // SAFETY: the mapping is LEN readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(map as *const u8, LEN) };
        assert!(bytes.iter().all(|b| *b == 0), "contents unchanged");
        // SAFETY: our mapping, no references into it remain.
        unsafe { libc::munmap(map, LEN) };
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
