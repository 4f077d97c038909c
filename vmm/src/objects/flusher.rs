//! The flush worker: makes ring `FLUSH`/`FLUSH_MANY` requests durable on a thread of its own,
//! so the ring and the stream device go on while the disk syncs, and requests that arrive while
//! it syncs are served together: each object of a batch gets one `fdatasync`, however many
//! ranges and requests name it (group commit at the host).
//!
//! Per object the worker merges the batch's ranges. One range left (the common case: a log
//! entry's fence) is synced alone, with `msync(MS_SYNC)` of that range through a read-only
//! mapping of the file that its [`FlushFile`] makes once (Linux's only range-limited fsync: it
//! writes just those pages). Several ranges get their write-back started together
//! (`sync_file_range`) and one `fdatasync` (which also writes any other dirty page of the file:
//! never less durable than asked), instead of one disk flush per range. Measured on this machine's ext4
//! (`vmm/benches/durability.rs`): 3 ranges by `msync` each ~390 us, by this ~175 us; one range
//! by `msync` ~130 us, by `fdatasync` ~175 us.
//!
//! The guest runtime's own fences do not come here through the ring: they are host calls
//! (`OBJ_FLUSH_MANY`) that `super::Objects::sync` serves on the vCPU's thread with
//! [`sync_batch`], since the guest waits for them anyway. The worker serves ring requests.
//!
//! In a run with a [`JournalSlot`] (a durable run on a store that is not persistent memory)
//! [`sync_batch`] does not sync objects in place: it copies the batch's ranges into the store's
//! flush journal (`object_store::Journal`) and syncs that one file, so the objects' pages are
//! not written back and write-protected under the guest at every fence. Objects are synced in
//! place at a checkpoint, when the run gives one up, or when a batch names more of one object
//! than `object_store::JOURNAL_RANGE_MAX` (then whole, and noted in the journal).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use abi::hostcall::errno::EIO;
use abi::id::ObjId;
use object_store::{journal_record_size, Journal, JOURNAL_BATCH_MAX, JOURNAL_RANGE_MAX};

/// A range of one object's file to make durable.
#[derive(Debug, Clone)]
pub struct FlushTarget {
    /// The object (ranges of one object share one sync).
    pub id: ObjId,
    /// Its flush handle (stays valid if the slot changes hands meanwhile).
    pub file: Arc<FlushFile>,
    /// Byte offset.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// One ring request: its `user_data` and what it names.
#[derive(Debug)]
pub struct FlushJob {
    /// Echoed in the completion.
    pub user_data: u64,
    /// The ranges (never empty when handed to the worker).
    pub targets: Vec<FlushTarget>,
}

/// A run's flush journal, taken from the store at the first fence that needs it (or the first
/// populate that asks whether fences will go through it).
#[derive(Debug)]
pub struct JournalSlot {
    root: PathBuf,
    state: Mutex<JournalState>,
    /// Whether fences go through the journal, once known ([`JournalSlot::journals_fences`]).
    journaling: OnceLock<bool>,
}

#[derive(Debug)]
enum JournalState {
    Unopened,
    Open(Journal),
    /// It could not be had: fences sync objects in place for the rest of the run.
    Failed,
    /// A fence failed and the checkpoint after it too: records of this run may still count,
    /// so syncing in place from now on could be undone by a replay. Fences fail with `EIO`.
    Broken,
}

impl JournalSlot {
    /// A slot for the journal of the store at `root`.
    pub fn new(root: PathBuf) -> Self {
        JournalSlot {
            root,
            state: Mutex::new(JournalState::Unopened),
            journaling: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the journal did, if the run has taken one.
    pub fn stats(&self) -> Option<object_store::JournalStats> {
        match &*self.lock() {
            JournalState::Open(j) => Some(j.stats()),
            _ => None,
        }
    }

    /// Syncs in place what the journal covers and empties it (nothing if it was never taken).
    pub fn checkpoint(&self) -> io::Result<()> {
        match &mut *self.lock() {
            JournalState::Open(j) => j.checkpoint(),
            JournalState::Broken => Err(io::Error::other("the flush journal failed earlier")),
            _ => Ok(()),
        }
    }

    /// Called when this run gives object `id` up (its slot is vacated): if the journal holds
    /// records of it, syncs the whole object in place and notes that, so a later writer of the
    /// object cannot have its bytes replaced by these older ones in a replay.
    pub fn release(&self, id: ObjId, file: &FlushFile) -> io::Result<()> {
        match &mut *self.lock() {
            JournalState::Open(j) => j.release(id, || file.sync_whole()),
            _ => Ok(()),
        }
    }

    /// Takes the store's journal if this run has not tried yet.
    fn open(&self, st: &mut JournalState) {
        if matches!(*st, JournalState::Unopened) {
            *st = match Journal::acquire(&self.root) {
                Ok(j) => JournalState::Open(j),
                Err(e) => {
                    // A full filesystem is said by whatever the guest then fails to store.
                    if !e.is_no_space() {
                        eprintln!("twz-vmm: no flush journal ({e}): fences sync objects in place");
                    }
                    JournalState::Failed
                }
            };
        }
    }

    /// Whether fences go through the journal (taking it now if need be), and so leave object
    /// pages unwritten until a checkpoint; false when they sync objects in place.
    /// Only the first call takes the journal's lock, which a fence holds for its disk flush.
    pub fn journals_fences(&self) -> bool {
        *self.journaling.get_or_init(|| {
            let mut st = self.lock();
            self.open(&mut st);
            !matches!(*st, JournalState::Failed)
        })
    }

    /// Makes a batch durable through the journal, taking one first if there is none yet;
    /// `None` when there is none (sync in place), else the number of syncs made.
    fn sync(
        &self,
        objects: &BTreeMap<ObjId, ObjectRanges>,
        failed: &mut BTreeMap<ObjId, i64>,
    ) -> Option<usize> {
        let mut st = self.lock();
        self.open(&mut st);
        match &mut *st {
            JournalState::Open(j) => {
                let (syncs, broken) = journal_batch(j, objects, failed);
                if broken {
                    eprintln!("twz-vmm: the flush journal failed: durable fences fail from now on");
                    *st = JournalState::Broken;
                }
                Some(syncs)
            }
            JournalState::Broken => {
                for id in objects.keys() {
                    failed.insert(*id, -i64::from(EIO as i32));
                }
                Some(0)
            }
            _ => None,
        }
    }
}

/// Sorts `(offset, len)` ranges and merges those that overlap or touch.
pub fn merge(ranges: &mut Vec<(u64, u64)>) {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(off, len) in ranges.iter() {
        match out.last_mut() {
            Some((po, pl)) if off <= po.saturating_add(*pl) => {
                *pl = off.saturating_add(len).max(po.saturating_add(*pl)) - *po;
            }
            _ => out.push((off, len)),
        }
    }
    *ranges = out;
}

/// Makes `ranges` (merged) of `file` durable: write-back of each range, then one `fdatasync`.
pub fn sync_ranges(file: &File, ranges: &[(u64, u64)]) -> io::Result<()> {
    let fd = file.as_raw_fd();
    for &(off, len) in ranges {
        let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
            continue; // beyond any file; fdatasync below covers whatever there is
        };
        // SAFETY: plain syscall on a descriptor we own; it touches no memory of ours.
        let rc = unsafe { libc::sync_file_range(fd, off, len, libc::SYNC_FILE_RANGE_WRITE) };
        if rc != 0 {
            // Only a hint: fdatasync does the write-back itself if this could not start it.
            break;
        }
    }
    file.sync_data()
}

/// A read-only shared mapping of an object file, for range-limited syncs.
#[derive(Debug)]
struct FileMap {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: the mapping is only used for msync (no loads through it) and unmapped once, in Drop.
unsafe impl Send for FileMap {}
// SAFETY: as for Send: `msync` through a shared reference reads and writes no memory of ours,
// and the kernel serialises concurrent calls on one mapping.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// A mapping to `msync` through, if `file` is open for writing: Linux drops `VM_SHARED` from
    /// a shared mapping of a read-only descriptor, and `msync(MS_SYNC)` then returns at once
    /// without writing anything back.
    fn new(file: &File) -> io::Result<FileMap> {
        // SAFETY: F_GETFL on a descriptor we own reads no memory of ours.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 || flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let len =
            usize::try_from(file.metadata()?.len()).map_err(|_| io::ErrorKind::InvalidData)?;
        if len == 0 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        // SAFETY: a fresh read-only shared mapping of a file we hold open; nothing is read
        // through it and it is unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr)
            .map(|ptr| FileMap { ptr, len })
            .ok_or_else(|| io::ErrorKind::InvalidData.into())
    }

    /// Writes back the file's pages in `offset..offset+len` and waits (`MS_SYNC`).
    fn sync(&self, offset: u64, len: u64) -> io::Result<()> {
        const PAGE: u64 = 4096;
        let end = offset.saturating_add(len).min(self.len as u64);
        let start = (offset / PAGE * PAGE).min(end);
        if start == end {
            return Ok(());
        }
        // SAFETY: start is page aligned and start..end lies inside the mapping; msync touches
        // no memory of ours.
        let rc = unsafe {
            libc::msync(
                self.ptr.as_ptr().cast::<u8>().add(start as usize).cast(),
                (end - start) as usize,
                libc::MS_SYNC,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: exactly what mmap returned; no reference into it exists.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// What the worker syncs an object's ranges through: its own open of the object's file (not a
/// dup, which would share the store's liveness lock and keep the object from being deleted) and,
/// made at the first single-range sync, a read-only mapping of it. The mapper keeps one per
/// mapped object and drops it when the object leaves its slot.
#[derive(Debug)]
pub struct FlushFile {
    file: File,
    map: OnceLock<Option<FileMap>>,
}

impl FlushFile {
    /// A handle on `file` (open for writing, or single ranges cost a whole-file `fdatasync`).
    pub fn new(file: File) -> Self {
        FlushFile {
            file,
            map: OnceLock::new(),
        }
    }

    /// A handle on a new read-write open of the file behind `fd` (through `/proc/self/fd`, not
    /// a dup: a dup would share the open file description and so the store's liveness lock
    /// (`flock`), and keep the object from being deleted while the worker holds it).
    pub fn reopen(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Self::new(file))
    }

    /// Writes back every dirty page of the object and waits (`fdatasync`).
    pub fn sync_whole(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Reads `buf.len()` bytes of the object at `offset` (the page cache the guest writes).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Makes `ranges` (merged) durable: alone by range-limited `msync` when there is one, else
    /// (or when the file cannot be mapped) by [`sync_ranges`].
    pub fn sync(&self, ranges: &[(u64, u64)]) -> io::Result<()> {
        let [(offset, len)] = ranges else {
            return sync_ranges(&self.file, ranges);
        };
        match self.map.get_or_init(|| FileMap::new(&self.file).ok()) {
            Some(m) => m.sync(*offset, *len),
            None => sync_ranges(&self.file, ranges),
        }
    }
}

/// What one batch cost: the result per request and the number of syncs issued.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// `(user_data, 0 or negated errno)` per request, in submission order.
    pub completions: Vec<(u64, i64)>,
    /// Syncs made: one per object synced in place, plus one for the journal if it was used.
    pub syncs: usize,
}

/// One object's file and the ranges a batch names in it.
type ObjectRanges = (Arc<FlushFile>, Vec<(u64, u64)>);

/// The negated errno of `e`.
fn errno_of(e: &io::Error) -> i64 {
    -i64::from(e.raw_os_error().unwrap_or(EIO as i32))
}

/// Syncs every object named by `jobs` once (its ranges merged), through the run's `journal` if
/// it has one, and gives each request the first failure among its objects, or 0.
pub fn sync_batch(jobs: &[FlushJob], journal: Option<&JournalSlot>) -> BatchOutcome {
    let mut per_object: BTreeMap<ObjId, ObjectRanges> = BTreeMap::new();
    for t in jobs.iter().flat_map(|j| &j.targets) {
        per_object
            .entry(t.id)
            .or_insert_with(|| (t.file.clone(), Vec::new()))
            .1
            .push((t.offset, t.len));
    }
    for (_, ranges) in per_object.values_mut() {
        merge(ranges);
    }
    let mut failed: BTreeMap<ObjId, i64> = BTreeMap::new();
    let syncs = match journal.and_then(|slot| slot.sync(&per_object, &mut failed)) {
        Some(syncs) => syncs,
        None => sync_in_place(&per_object, &mut failed),
    };
    let completions = jobs
        .iter()
        .map(|j| {
            let err = j.targets.iter().find_map(|t| failed.get(&t.id).copied());
            (j.user_data, err.unwrap_or(0))
        })
        .collect();
    BatchOutcome { completions, syncs }
}

/// Syncs each object where it lives; returns the number of syncs.
fn sync_in_place(
    objects: &BTreeMap<ObjId, ObjectRanges>,
    failed: &mut BTreeMap<ObjId, i64>,
) -> usize {
    // One object after the other: syncing them on parallel threads measured no faster here
    // (the disk and ext4's journal serialise the flushes) and a thread start costs ~50 us.
    for (id, (file, ranges)) in objects {
        if let Err(e) = file.sync(ranges) {
            failed.insert(*id, errno_of(&e));
        }
    }
    objects.len()
}

/// Journals the batch (one write and one sync). An object with more bytes named than
/// [`JOURNAL_RANGE_MAX`], or than the batch still has room for, is synced whole in place and
/// noted `SYNCED` instead (its earlier records no longer count, so all of it must be on disk,
/// not only these ranges). Returns the number of syncs and whether the journal is broken: the
/// fence failed and so did the checkpoint meant to void what of it reached the disk.
fn journal_batch(
    j: &mut Journal,
    objects: &BTreeMap<ObjId, ObjectRanges>,
    failed: &mut BTreeMap<ObjId, i64>,
) -> (usize, bool) {
    let mut syncs = 1;
    // Room for a SYNCED record per object, whatever happens below.
    let room = JOURNAL_BATCH_MAX.saturating_sub(objects.len() as u64 * journal_record_size(0));
    for (&id, (file, ranges)) in objects {
        let total = ranges.iter().fold(0u64, |a, r| a.saturating_add(r.1));
        let need = ranges.iter().fold(0u64, |a, r| {
            a.saturating_add(journal_record_size(r.1.min(JOURNAL_BATCH_MAX)))
        });
        if total > JOURNAL_RANGE_MAX || j.batch_len().saturating_add(need) > room {
            syncs += 1;
            match file.sync_whole() {
                Ok(()) => j.push_synced(id),
                Err(e) => {
                    failed.insert(id, errno_of(&e));
                }
            }
            continue;
        }
        let pushed = ranges.iter().try_for_each(|&(off, len)| {
            j.push_data(id, off, len, |buf| file.read_exact_at(buf, off))
        });
        if let Err(e) = pushed {
            failed.insert(id, errno_of(&e));
        }
    }
    let Err(e) = j.commit() else {
        return (syncs, false);
    };
    // Every object of the fence fails. Part of the batch may have reached the disk, and the
    // objects synced in place lack their SYNCED record: a checkpoint voids all of it.
    let errno = errno_of(&e);
    for id in objects.keys() {
        failed.entry(*id).or_insert(errno);
    }
    (syncs, j.checkpoint().is_err())
}

/// The worker thread. Dropping it lets the worker finish what it was given, then joins it.
#[derive(Debug)]
pub struct Flusher {
    jobs: Option<Sender<FlushJob>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Flusher {
    /// Starts the worker, syncing through the run's `journal` if it has one; `post` receives
    /// each batch's completions (on the worker's thread).
    pub fn spawn(
        journal: Option<Arc<JournalSlot>>,
        post: impl Fn(Vec<(u64, i64)>) + Send + 'static,
    ) -> io::Result<Flusher> {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("twz-flush".into())
            .spawn(move || work(&rx, journal.as_deref(), &post))?;
        Ok(Flusher {
            jobs: Some(tx),
            thread_id: thread.thread().id(),
            thread: Some(thread),
        })
    }

    /// Hands a request to the worker; gives it back if the worker is gone.
    pub fn submit(&self, job: FlushJob) -> Result<(), FlushJob> {
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }
}

fn work(rx: &Receiver<FlushJob>, journal: Option<&JournalSlot>, post: &dyn Fn(Vec<(u64, i64)>)) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        post(sync_batch(&jobs, journal).completions);
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.jobs = None;
        // The worker itself may drop the last reference to its owner (in `post`): it must not
        // wait for itself.
        if std::thread::current().id() != self.thread_id {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::sync::Mutex;

    fn target(id: u8, file: &Arc<FlushFile>, offset: u64, len: u64) -> FlushTarget {
        FlushTarget {
            id: ObjId([id; 16]),
            file: file.clone(),
            offset,
            len,
        }
    }

    fn temp_file() -> Arc<FlushFile> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        Arc::new(FlushFile::new(f))
    }

    #[test]
    fn merge_joins_overlapping_and_adjacent_ranges() {
        let mut r = vec![(100, 10), (0, 8), (8, 8), (50, 1), (105, 20), (4, 1)];
        merge(&mut r);
        assert_eq!(r, vec![(0, 16), (50, 1), (100, 25)]);
        let mut huge = vec![(u64::MAX - 1, 10), (5, u64::MAX)];
        merge(&mut huge);
        assert_eq!(huge.len(), 1, "saturates instead of overflowing");
    }

    #[test]
    fn a_batch_syncs_each_object_once_whatever_the_requests() {
        let (a, b) = (temp_file(), temp_file());
        let jobs = vec![
            FlushJob {
                user_data: 1,
                targets: vec![target(1, &a, 0, 8), target(2, &b, 4096, 8)],
            },
            FlushJob {
                user_data: 2,
                targets: vec![target(1, &a, 4096, 100)],
            },
            FlushJob {
                user_data: 3,
                targets: vec![target(2, &b, 0, 1), target(1, &a, 8, 8)],
            },
        ];
        let out = sync_batch(&jobs, None);
        assert_eq!(out.syncs, 2, "two objects, two syncs");
        assert_eq!(out.completions, vec![(1, 0), (2, 0), (3, 0)]);
    }

    #[test]
    fn one_range_is_synced_through_a_kept_mapping_and_clamped_to_the_file() {
        let f = temp_file();
        f.sync(&[(100, 8)]).unwrap();
        f.sync(&[(4096, 1 << 40)]).unwrap();
        f.sync(&[(1 << 40, 8)]).unwrap();
        assert!(
            matches!(f.map.get(), Some(Some(_))),
            "one mapping, made once"
        );
        f.sync(&[(0, 8), (8192, 8)]).unwrap();
    }

    /// Dirty page-cache pages of `file`'s first MiB (`cachestat`, Linux 6.5), if the kernel
    /// can tell.
    fn dirty_pages(file: &File) -> Option<u64> {
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            cache: u64,
            dirty: u64,
            writeback: u64,
            evicted: u64,
            recently_evicted: u64,
        }
        const SYS_CACHESTAT: libc::c_long = 451;
        let range = Range {
            off: 0,
            len: 1 << 20,
        };
        let mut stat = Stat::default();
        // SAFETY: cachestat reads `range` and writes `stat`, both live and of the kernel's layout.
        let rc = unsafe { libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &range, &mut stat, 0u32) };
        (rc == 0).then_some(stat.dirty)
    }

    #[test]
    fn one_range_synced_through_a_reopened_descriptor_is_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(1 << 20).unwrap();
        file.sync_all().unwrap();
        // SAFETY: a fresh shared mapping of our own file, unmapped below; nothing else maps it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                1 << 20,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: byte 100 of the 1 MiB mapping just made.
        unsafe { p.cast::<u8>().add(100).write_volatile(42) };
        let Some(before) = dirty_pages(&file) else {
            println!("SKIP: this kernel has no cachestat to tell dirty pages");
            // SAFETY: the mapping made above, no longer used.
            unsafe { libc::munmap(p, 1 << 20) };
            return;
        };
        assert_eq!(before, 1, "the store dirtied one page");
        let flush = FlushFile::reopen(file.as_fd()).unwrap();
        flush.sync(&[(100, 1)]).unwrap();
        assert_eq!(dirty_pages(&file), Some(0), "msync wrote the page back");
        assert!(
            matches!(flush.map.get(), Some(Some(_))),
            "through the mapping"
        );
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(p, 1 << 20) };
    }

    /// A store with one object, its file open read-write, and a journal slot on the store.
    fn journaled_object() -> (
        tempfile::TempDir,
        ObjId,
        File,
        Arc<FlushFile>,
        Arc<JournalSlot>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = object_store::Store::open(&root).unwrap();
        let id = store
            .create(&object_store::CreateOptions::default())
            .unwrap();
        let path = store.object_path(id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let flush = Arc::new(FlushFile::reopen(file.as_fd()).unwrap());
        let slot = Arc::new(JournalSlot::new(root));
        (dir, id, file, flush, slot)
    }

    fn journaled_job(id: ObjId, flush: &Arc<FlushFile>, range: (u64, u64)) -> FlushJob {
        FlushJob {
            user_data: 1,
            targets: vec![FlushTarget {
                id,
                file: flush.clone(),
                offset: range.0,
                len: range.1,
            }],
        }
    }

    #[test]
    fn a_journaled_fence_leaves_the_object_unwritten_and_one_too_large_syncs_it_whole() {
        use std::os::unix::fs::FileExt;
        let (_dir, id, file, flush, slot) = journaled_object();
        file.write_all_at(b"fenced", 0x1000).unwrap();
        let Some(before) = dirty_pages(&file) else {
            println!("SKIP: this kernel has no cachestat to tell dirty pages");
            return;
        };
        assert_eq!(before, 1);
        let out = sync_batch(&[journaled_job(id, &flush, (0x1000, 6))], Some(&slot));
        assert_eq!(out.completions, vec![(1, 0)]);
        assert_eq!(
            dirty_pages(&file),
            Some(1),
            "journaled, not written back in place"
        );
        // More than a record takes: the whole object is synced, the journaled page too (the
        // SYNCED record voids that page's record, so it must be on disk).
        file.write_all_at(b"big", 0x3000).unwrap();
        let big = (0x2000, JOURNAL_RANGE_MAX + 1);
        let out = sync_batch(&[journaled_job(id, &flush, big)], Some(&slot));
        assert_eq!(out.completions, vec![(1, 0)]);
        assert_eq!(dirty_pages(&file), Some(0), "the whole object was synced");
    }

    #[test]
    fn giving_an_object_up_syncs_it_if_the_journal_holds_it() {
        use std::os::unix::fs::FileExt;
        let (_dir, id, file, flush, slot) = journaled_object();
        file.write_all_at(b"fenced", 0x1000).unwrap();
        if dirty_pages(&file).is_none() {
            println!("SKIP: this kernel has no cachestat to tell dirty pages");
            return;
        }
        slot.release(id, &flush).unwrap();
        assert_eq!(
            dirty_pages(&file),
            Some(1),
            "nothing journaled: nothing to do"
        );
        let out = sync_batch(&[journaled_job(id, &flush, (0x1000, 6))], Some(&slot));
        assert_eq!(out.completions, vec![(1, 0)]);
        slot.release(id, &flush).unwrap();
        assert_eq!(dirty_pages(&file), Some(0), "synced when given up");
    }

    #[test]
    fn a_read_only_descriptor_is_never_synced_through_a_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        std::fs::write(&path, [1u8; 8192]).unwrap();
        let flush = FlushFile::new(File::open(&path).unwrap());
        flush.sync(&[(0, 8)]).unwrap();
        assert!(
            matches!(flush.map.get(), Some(None)),
            "msync through it would write nothing back"
        );
    }

    #[test]
    fn a_failed_sync_fails_only_the_requests_naming_that_object() {
        let good = temp_file();
        let (rd, _wr) = std::io::pipe().unwrap();
        let pipe = Arc::new(FlushFile::new(File::from(std::os::fd::OwnedFd::from(rd))));
        let jobs = vec![
            FlushJob {
                user_data: 1,
                targets: vec![target(1, &good, 0, 8)],
            },
            FlushJob {
                user_data: 2,
                targets: vec![target(1, &good, 0, 8), target(9, &pipe, 0, 8)],
            },
        ];
        let out = sync_batch(&jobs, None);
        assert_eq!(out.completions[0], (1, 0));
        assert_eq!(out.completions[1].0, 2);
        assert!(out.completions[1].1 < 0, "a pipe cannot be synced");
    }

    #[test]
    fn the_worker_completes_every_request_it_is_given() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let f = Flusher::spawn(None, move |done| s2.lock().unwrap().extend(done)).unwrap();
        let file = temp_file();
        for i in 0..20u64 {
            f.submit(FlushJob {
                user_data: i,
                targets: vec![target(1, &file, i * 64, 64)],
            })
            .unwrap();
        }
        drop(f); // finishes the queue, then joins
        let mut got = seen.lock().unwrap().clone();
        got.sort_unstable();
        assert_eq!(got, (0..20).map(|i| (i, 0)).collect::<Vec<_>>());
    }
}
