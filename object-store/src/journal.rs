//! The flush journal: how a VMM makes a fence durable with one sequential write.
//!
//! Syncing an object's pages where they live (`msync`, `fdatasync`) costs more than the disk
//! write: write-back write-protects every page it cleans, so the guest's next store to it takes
//! a KVM fault and ext4's `page_mkwrite`; and a 2 MiB folio is written whole, so growing
//! objects cannot have 2 MiB pages in a durable run. A journal avoids both. A fence copies the
//! bytes of the ranges it names into records appended to a journal file and syncs that one
//! file; the object files are synced only at a checkpoint (the journal full, the VMM exiting),
//! so their pages stay writable in between.
//!
//! ```text
//! <store>/journal/<random hex>.log   one per running writer (flock'd); one free one is kept
//!   0      header: magic, version, epoch, boot ID, checksum              (rest of page 0 zero)
//!   4096   record: magic, epoch, kind, object ID, offset, len, checksum  (64 bytes)
//!          data: len bytes, zero-padded to 8                             (DATA records only)
//!          record ...
//! ```
//!
//! Records of the header's epoch, read from offset 4096 while each is intact, are the journal's
//! content; a checkpoint bumps the epoch, which ends it without erasing anything. A record torn
//! by a power loss fails its checksum and ends the scan. Its fence was never acknowledged; the
//! intact records before it in the same fence are applied, which is allowed for an
//! unacknowledged fence.
//!
//! **Settling** (at every [`crate::Store::open`], for each journal no running process holds;
//! the journal file's `flock` is what says whether one does): if the journal was written in
//! the current boot, the page cache still holds every journaled byte or a newer one, so its
//! objects are only synced. After a reboot
//! (power loss), the records are applied to the object files in order, then synced. A byte then
//! holds the value of its last fence; a newer unfenced value the kernel may have written back
//! is lost, as is legal for an unfenced store. A `SYNCED` record (written after an object was
//! synced directly, bypassing the journal) cancels that object's earlier records.
//!
//! A writer that gives an object up (unmaps it, or has it evicted) first syncs it in place and
//! notes `SYNCED`, so whoever writes the object next cannot have its bytes replaced by this
//! journal's older ones. Limit: journals replay one after the other, in file-name order, so if
//! two VMMs had the same object mapped writable at the same time, both fenced a byte of it, and
//! the power went before either gave it up, that byte gets the value of the journal replayed
//! last, which need not be the later one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use abi::id::ObjId;
use abi::txlog::Checksum;

use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::liveness::try_exclusive;
use crate::object::object_path;

/// The journal directory, under the store root.
pub const JOURNAL_DIR: &str = "journal";
/// A journal file's bytes (records wrap to the start after a checkpoint).
pub const JOURNAL_CAPACITY: u64 = 64 << 20;
/// The most bytes of one object a fence journals; more are synced in place.
pub const JOURNAL_RANGE_MAX: u64 = JOURNAL_CAPACITY / 4;
/// The largest batch (records with their data) one fence writes.
pub const JOURNAL_BATCH_MAX: u64 = JOURNAL_CAPACITY - HEADER_LEN;

const MAGIC: &[u8; 8] = b"twzjrnl1";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 4096;
const RECORD_MAGIC: u64 = u64::from_le_bytes(*b"twzjrec1");
const RECORD_LEN: usize = 64;
const SUFFIX: &str = ".log";
/// Buffer capacity kept between batches.
const BUF_KEEP: usize = 1 << 20;

/// Journal bytes a record of `len` data bytes takes (a `SYNCED` record: `len` 0).
pub const fn record_size(len: u64) -> u64 {
    RECORD_LEN as u64 + len.next_multiple_of(8)
}

/// What a record says.
mod kind {
    /// New bytes of an object range.
    pub const DATA: u32 = 1;
    /// The object was synced in place: earlier records of it no longer count.
    pub const SYNCED: u32 = 2;
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`, read once), or zeros where unknown
/// (which settling counts as this boot).
fn boot_id() -> [u8; 16] {
    static BOOT: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|s| fsutil::unhex::<16>(&s.trim().replace('-', "")))
            .unwrap_or([0; 16])
    })
}

/// The little-endian word at `at` of `b`.
fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The header's bytes for `epoch` written in `boot`.
fn header_bytes(epoch: u64, boot: [u8; 16]) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&epoch.to_le_bytes());
    h[24..40].copy_from_slice(&boot);
    let mut sum = Checksum::new();
    sum.words(&h[..40]);
    h[40..48].copy_from_slice(&sum.finish().to_le_bytes());
    h
}

/// `(epoch, boot)` from a header, if it is one.
fn parse_header(h: &[u8; 48]) -> Option<(u64, [u8; 16])> {
    let mut sum = Checksum::new();
    sum.words(&h[..40]);
    let ok = &h[..8] == MAGIC
        && h[8..12] == VERSION.to_le_bytes()
        && h[40..48] == sum.finish().to_le_bytes();
    let mut boot = [0u8; 16];
    boot.copy_from_slice(&h[24..40]);
    ok.then(|| (le64(h, 16), boot))
}

/// Writes a header for `epoch` written in this boot and waits for it: the journal is then empty
/// (records of other epochs no longer count).
fn write_header(file: &File, epoch: u64) -> io::Result<()> {
    file.write_all_at(&header_bytes(epoch, boot_id()), 0)?;
    file.sync_data()
}

/// A record's fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    epoch: u64,
    kind: u32,
    id: ObjId,
    offset: u64,
    len: u64,
}

impl Record {
    /// The 56 bytes the checksum starts with.
    fn head(&self) -> [u8; 56] {
        let mut r = [0u8; 56];
        r[..8].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        r[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        r[16..20].copy_from_slice(&self.kind.to_le_bytes());
        r[24..40].copy_from_slice(&self.id.0);
        r[40..48].copy_from_slice(&self.offset.to_le_bytes());
        r[48..56].copy_from_slice(&self.len.to_le_bytes());
        r
    }

    fn parse(b: &[u8; RECORD_LEN]) -> Option<(Record, u64)> {
        let word = |at: usize| le64(b, at);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[24..40]);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&b[16..20]);
        let r = Record {
            epoch: word(8),
            kind: u32::from_le_bytes(kind),
            id: ObjId(id),
            offset: word(40),
            len: word(48),
        };
        (word(0) == RECORD_MAGIC).then_some((r, word(56)))
    }

    /// Data bytes after the fixed part (padded to 8).
    fn padded_len(&self) -> u64 {
        if self.kind == kind::DATA {
            self.len.next_multiple_of(8)
        } else {
            0
        }
    }
}

/// What a journal did in this process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Fences written (one journal write and sync each).
    pub batches: u64,
    /// Bytes those writes took (records with their data).
    pub bytes: u64,
    /// Checkpoints (objects synced in place, journal emptied), the run's last included.
    pub checkpoints: u64,
    /// Objects synced whole in place instead of journaled (too large for a fence's records, or
    /// given up by the run).
    pub synced_in_place: u64,
}

/// A running writer's journal: appends fences' bytes, checkpoints when full, and on drop syncs
/// the objects it covered and empties itself. Holds the file's `flock` while it lives.
#[derive(Debug)]
pub struct Journal {
    file: File,
    objects_dir: PathBuf,
    epoch: u64,
    tail: u64,
    /// Objects with records since the last checkpoint.
    touched: BTreeSet<ObjId>,
    /// The batch being built.
    buf: Vec<u8>,
    batch_ids: Vec<ObjId>,
    /// A batch was written (or tried) since the last checkpoint.
    written: bool,
    /// Checkpoint when dropped (tests turn it off to leave a journal as a crash would).
    checkpoint_on_drop: bool,
    stats: JournalStats,
}

/// Writes zeros over the whole journal and syncs them.
fn zero_fill(file: &File) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < JOURNAL_CAPACITY {
        file.write_all_at(&zeros, at)?;
        at += CHUNK as u64;
    }
    file.sync_all()
}

/// `(epoch, boot)` from a journal file's header, if it has one.
fn read_header(file: &File) -> Option<(u64, [u8; 16])> {
    let mut h = [0u8; 48];
    file.read_exact_at(&mut h, 0).ok()?;
    parse_header(&h)
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

impl Journal {
    /// Takes a journal in the store at `root` for this process: a free one left by an earlier
    /// writer (settled first), or a new one. A journal file's `flock` says whose it is.
    pub fn acquire(root: &Path) -> Result<Journal> {
        let dir = root.join(JOURNAL_DIR);
        let objects_dir = root.join(crate::store::OBJECTS_DIR);
        fsutil::ensure_dir(&dir, 0o755)?;
        remove_abandoned(&dir);
        let mut free = None;
        let mut spares = 0;
        for path in journal_files(&dir)? {
            let Some(file) = lock_free(&path)? else {
                continue;
            };
            // Every free journal is settled while it is locked here: a killed writer's records
            // must not wait in a spare for a later replay over newer bytes.
            let settled = settle_file(&file, &objects_dir, false);
            if free.is_none() {
                settled.map_err(StoreError::io(&path))?;
                free = Some((path, file));
            } else if settled.is_err() {
                // Left for the next settle; this run has its journal either way.
            } else if spares < SPARE_JOURNALS {
                spares += 1;
            } else {
                // Settled and ours: nobody else can take it between here and its removal.
                let _ = fs::remove_file(&path);
            }
        }
        if let Some((path, file)) = free {
            return Journal::start(file, objects_dir).map_err(StoreError::io(&path));
        }
        // Made under a temporary name and renamed once locked, filled and headed, so no
        // other process ever finds a journal without a header or takes a half-made one.
        let stem = fsutil::hex(&fsutil::random_bytes::<8>().map_err(StoreError::io(&dir))?);
        let path = dir.join(format!("{stem}.new"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        if !try_exclusive(&file).map_err(StoreError::io(&path))? {
            return Err(StoreError::Locked(path));
        }
        // Written blocks up front: an append to allocated but unwritten (fallocated) blocks
        // makes its fdatasync commit the extent change to ext4's journal too (measured here:
        // a three-range fence 278 us, against 187 us on written blocks). 64 MiB of zeros take
        // ~0.14 s, once per file; later runs reuse the file.
        let made = zero_fill(&file)
            .and_then(|()| Journal::start(file, objects_dir))
            .and_then(|j| fs::rename(&path, dir.join(format!("{stem}{SUFFIX}"))).map(|()| j));
        match made {
            Ok(j) => {
                fsutil::fsync_dir(&dir)?;
                Ok(j)
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(StoreError::io(&path)(e))
            }
        }
    }

    /// A journal on a locked, settled (or new) file: the next epoch, nothing in it.
    fn start(file: File, objects_dir: PathBuf) -> io::Result<Journal> {
        let epoch = match read_header(&file) {
            Some((e, _)) => e.wrapping_add(1),
            // No header (a new, zeroed file, or a damaged one): an epoch no stale record has.
            None => u64::from_le_bytes(fsutil::random_bytes::<8>()?) >> 1,
        };
        write_header(&file, epoch)?;
        Ok(Journal {
            file,
            objects_dir,
            epoch,
            tail: HEADER_LEN,
            touched: BTreeSet::new(),
            buf: Vec::new(),
            batch_ids: Vec::new(),
            written: false,
            checkpoint_on_drop: true,
            stats: JournalStats::default(),
        })
    }

    /// Adds `len` new bytes of `id` at `offset` to the batch; `fill` writes them into the slice
    /// it is given (a read of the object).
    pub fn push_data(
        &mut self,
        id: ObjId,
        offset: u64,
        len: u64,
        fill: impl FnOnce(&mut [u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let r = Record {
            epoch: self.epoch,
            kind: kind::DATA,
            id,
            offset,
            len,
        };
        let size = usize::try_from(r.padded_len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let start = self.buf.len();
        self.buf.resize(start + RECORD_LEN + size, 0);
        let data = start + RECORD_LEN;
        let filled = fill(&mut self.buf[data..data + len as usize]);
        if let Err(e) = filled {
            self.buf.truncate(start);
            return Err(e);
        }
        self.seal(start, self.buf.len(), r);
        self.batch_ids.push(id);
        Ok(())
    }

    /// Gives object `id` up: if the journal holds records of it, runs `sync` (a whole-object
    /// sync in place) and voids them with a `SYNCED` record, so that whoever writes the object
    /// next, in this process or another, cannot have its bytes replaced by them in a replay.
    pub fn release(&mut self, id: ObjId, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if !self.touched.contains(&id) {
            return Ok(());
        }
        sync()?;
        self.push_synced(id);
        self.commit()?;
        self.touched.remove(&id);
        Ok(())
    }

    /// Adds a note that `id` was synced in place (its earlier records no longer count).
    pub fn push_synced(&mut self, id: ObjId) {
        self.stats.synced_in_place += 1;
        let r = Record {
            epoch: self.epoch,
            kind: kind::SYNCED,
            id,
            offset: 0,
            len: 0,
        };
        let start = self.buf.len();
        self.buf.resize(start + RECORD_LEN, 0);
        self.seal(start, self.buf.len(), r);
    }

    /// Writes the head and checksum of the record at `start..end` of the batch (its data
    /// already in place).
    fn seal(&mut self, start: usize, end: usize, r: Record) {
        self.buf[start..start + 56].copy_from_slice(&r.head());
        let mut sum = Checksum::new();
        sum.words(&self.buf[start..start + 56]);
        sum.words(&self.buf[start + RECORD_LEN..end]);
        let s = sum.finish().to_le_bytes();
        self.buf[start + 56..start + RECORD_LEN].copy_from_slice(&s);
    }

    /// What this journal did so far.
    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// Bytes in the batch being built.
    pub fn batch_len(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Makes the batch durable: one write and one `fdatasync` of the journal (after a
    /// checkpoint first if it does not fit). The batch is dropped whatever the outcome. A batch
    /// larger than [`JOURNAL_BATCH_MAX`] is refused with `FileTooLarge`: sync its objects in
    /// place, then [`Journal::checkpoint`]. After any other error, checkpoint before the next
    /// batch: part of the failed one may have reached the disk.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let len = self.buf.len() as u64;
        let written = self.write_batch(len);
        let ids = std::mem::take(&mut self.batch_ids);
        self.discard();
        written?;
        self.stats.batches += 1;
        self.stats.bytes += len;
        self.tail += len;
        self.touched.extend(ids);
        Ok(())
    }

    fn write_batch(&mut self, len: u64) -> io::Result<()> {
        if len > JOURNAL_BATCH_MAX {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        if self.tail + len > JOURNAL_CAPACITY {
            self.checkpoint()?;
            // The batch's records carry the old epoch: restamp them.
            self.restamp();
        }
        self.written = true;
        self.file.write_all_at(&self.buf, self.tail)?;
        self.file.sync_data()
    }

    /// Drops the batch being built (and the memory a large one took).
    pub fn discard(&mut self) {
        self.buf.clear();
        self.buf.shrink_to(BUF_KEEP);
        self.batch_ids.clear();
    }

    /// Moves the batch's records to the current epoch (after a checkpoint made room for it).
    fn restamp(&mut self) {
        let mut at = 0;
        while at + RECORD_LEN <= self.buf.len() {
            let mut b = [0u8; RECORD_LEN];
            b.copy_from_slice(&self.buf[at..at + RECORD_LEN]);
            let Some((mut r, _)) = Record::parse(&b) else {
                return;
            };
            r.epoch = self.epoch;
            let end = at + RECORD_LEN + r.padded_len() as usize;
            self.seal(at, end, r);
            at = end;
        }
    }

    /// Syncs every object journaled since the last checkpoint in place, then empties the
    /// journal (a new epoch). Nothing to do if no batch was written since.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        if !self.written {
            return Ok(());
        }
        sync_objects(&self.objects_dir, &self.touched)?;
        let next = self.epoch.wrapping_add(1);
        write_header(&self.file, next)?;
        // Only once the new epoch is durable: until then the old records still count.
        self.epoch = next;
        self.tail = HEADER_LEN;
        self.touched.clear();
        self.written = false;
        self.stats.checkpoints += 1;
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // A failure leaves the records for the next opener to settle.
        if self.checkpoint_on_drop {
            let _ = self.checkpoint();
        }
    }
}

/// `fdatasync` of each object's file (a deleted object is skipped).
fn sync_objects<'a>(
    objects_dir: &Path,
    ids: impl IntoIterator<Item = &'a ObjId>,
) -> io::Result<()> {
    for &id in ids {
        match OpenOptions::new()
            .write(true)
            .open(object_path(objects_dir, id))
        {
            Ok(f) => f.sync_data()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Free journals kept besides the one a writer takes, so that the next writers start without
/// making one (64 MiB of zeros each); the others, left by many VMMs running at once, are
/// removed when a writer next takes a journal.
const SPARE_JOURNALS: usize = 1;

/// `path` opened and locked for this process, if no one holds it and it is still the file of
/// that name (a journal removed between another's open and lock must not be taken).
fn lock_free(path: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    let Ok(file) = open_rw(path) else {
        return Ok(None);
    };
    if !try_exclusive(&file).map_err(StoreError::io(path))? {
        return Ok(None);
    }
    let same = match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    Ok(same.then_some(file))
}

/// A half-made journal (`*.new`) older than this, and unlocked, was left by a killed creator.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes half-made journals whose creators were killed while filling them (64 MiB each).
/// The age test keeps a creator's file safe in the instant between creating and locking it.
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().is_none_or(|e| e != "new") {
            continue;
        }
        let Ok(file) = open_rw(&path) else { continue };
        if fsutil::untouched_for(&path, ABANDONED_AFTER) && try_exclusive(&file).unwrap_or(false) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// The journal files in `dir` (none if it does not exist).
fn journal_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir)(e)),
    };
    let mut out = Vec::new();
    for ent in entries {
        let path = ent.map_err(StoreError::io(dir))?.path();
        if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// What settling found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SettleReport {
    /// Journals of exited writers that held records.
    pub journals: usize,
    /// Records applied to object files (after a reboot only).
    pub applied: usize,
    /// Objects synced.
    pub objects: usize,
}

/// Settles every journal in the store at `root` that no running process holds (see the module
/// documentation).
pub fn settle(root: &Path) -> Result<SettleReport> {
    settle_all(root, false)
}

/// Settles as after a power loss: writes every journaled record back into its object even if
/// this boot wrote it (what [`settle`] does after a reboot). For recovery after the object
/// files were restored from an older copy, and for power-loss tests.
pub fn replay(root: &Path) -> Result<SettleReport> {
    settle_all(root, true)
}

/// How long an opener waits for another process that is replaying a journal after a reboot.
const REPLAY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn settle_all(root: &Path, force: bool) -> Result<SettleReport> {
    let dir = root.join(JOURNAL_DIR);
    let objects_dir = root.join(crate::store::OBJECTS_DIR);
    let mut report = SettleReport::default();
    for path in journal_files(&dir)? {
        // A reader that may not write the store leaves journals to a writer.
        let Ok(file) = open_rw(&path) else { continue };
        if !lock_unless_live(&file).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => StoreError::Locked(path.clone()),
            _ => StoreError::io(&path)(e),
        })? {
            continue;
        }
        let r = settle_file(&file, &objects_dir, force).map_err(StoreError::io(&path))?;
        if r.objects > 0 {
            report.journals += 1;
        }
        report.applied += r.applied;
        report.objects += r.objects;
    }
    Ok(report)
}

/// Locks a journal to settle it: false if a running writer holds it (its header names this
/// boot, written when it took the file). Held with another boot's header, it is being replayed
/// after a reboot by another opener, which must finish before anything here maps an object:
/// waits for it (`TimedOut` after [`REPLAY_WAIT`]).
fn lock_unless_live(file: &File) -> io::Result<bool> {
    let start = std::time::Instant::now();
    loop {
        if try_exclusive(file)? {
            return Ok(true);
        }
        if read_header(file).map(|(_, boot)| boot) == Some(boot_id()) {
            return Ok(false);
        }
        if start.elapsed() > REPLAY_WAIT {
            return Err(io::ErrorKind::TimedOut.into());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A journal's epoch, the boot that wrote it, and its intact records with their data.
type Contents = (u64, [u8; 16], Vec<(Record, Vec<u8>)>);

/// The intact records of the current epoch of a journal, with each DATA record's bytes.
fn read_records(file: &File) -> io::Result<Option<Contents>> {
    let Some((epoch, boot)) = read_header(file) else {
        return Ok(None);
    };
    let size = file.metadata()?.len();
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at + RECORD_LEN as u64 <= size {
        let mut b = [0u8; RECORD_LEN];
        file.read_exact_at(&mut b, at)?;
        let Some((r, sum)) = Record::parse(&b) else {
            break;
        };
        // (A length beyond the file is damage; checked first so the padding cannot overflow.)
        if r.epoch != epoch || r.len > size || r.padded_len() > size - at - RECORD_LEN as u64 {
            break;
        }
        let mut data = vec![0u8; r.padded_len() as usize];
        file.read_exact_at(&mut data, at + RECORD_LEN as u64)?;
        let mut check = Checksum::new();
        check.words(&b[..56]);
        check.words(&data);
        if check.finish() != sum {
            break;
        }
        data.truncate(r.len as usize);
        at += RECORD_LEN as u64 + r.padded_len();
        out.push((r, data));
    }
    Ok(Some((epoch, boot, out)))
}

/// Settles one locked journal file: replays it after a reboot (or if `force`), else syncs its
/// objects; then empties it. A boot ID that cannot be read counts as this boot.
fn settle_file(file: &File, objects_dir: &Path, force: bool) -> io::Result<SettleReport> {
    let now = boot_id();
    let Some((epoch, boot, records)) = read_records(file)? else {
        return Ok(SettleReport::default());
    };
    let mut report = SettleReport::default();
    if records.is_empty() {
        return Ok(report);
    }
    let rebooted = boot != now && boot != [0; 16] && now != [0; 16];
    let ids: BTreeSet<ObjId> = records.iter().map(|(r, _)| r.id).collect();
    if force || rebooted {
        // Each object's records after its last SYNCED one, in order.
        let mut from: BTreeMap<ObjId, usize> = BTreeMap::new();
        for (i, (r, _)) in records.iter().enumerate() {
            if r.kind == kind::SYNCED {
                from.insert(r.id, i + 1);
            }
        }
        let mut files: BTreeMap<ObjId, Option<File>> = BTreeMap::new();
        for (i, (r, data)) in records.iter().enumerate() {
            if r.kind != kind::DATA || from.get(&r.id).is_some_and(|&f| i < f) {
                continue;
            }
            let f = match files.entry(r.id) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    // A deleted object has nothing left to restore; any other failure stops
                    // the settle with the journal intact.
                    v.insert(match open_rw(&object_path(objects_dir, r.id)) {
                        Ok(f) => Some(f),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                        Err(e) => return Err(e),
                    })
                }
            };
            if let Some(f) = f {
                f.write_all_at(data, r.offset)?;
                report.applied += 1;
            }
        }
    }
    sync_objects(objects_dir, &ids)?;
    report.objects = ids.len();
    write_header(file, epoch.wrapping_add(1))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateOptions, Store};

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        id: ObjId,
        path: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("store");
        let store = Store::open(&root).expect("store");
        let id = store.create(&CreateOptions::default()).expect("object");
        let path = store.object_path(id);
        Fixture {
            _dir: dir,
            root,
            id,
            path,
        }
    }

    fn read(path: &Path, at: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        File::open(path)
            .expect("open")
            .read_exact_at(&mut b, at)
            .expect("read");
        b
    }

    fn write(path: &Path, at: u64, bytes: &[u8]) {
        open_rw(path)
            .expect("open")
            .write_all_at(bytes, at)
            .expect("write");
    }

    /// Journals `bytes` at `at` of the fixture's object as one fence.
    fn fence(j: &mut Journal, f: &Fixture, at: u64, bytes: &[u8]) {
        j.push_data(f.id, at, bytes.len() as u64, |b| {
            b.copy_from_slice(bytes);
            Ok(())
        })
        .expect("push");
        j.commit().expect("commit");
    }

    /// The journal file `j` writes, opened apart from it.
    fn journal_path(f: &Fixture) -> PathBuf {
        let files = journal_files(&f.root.join(JOURNAL_DIR)).expect("list");
        assert_eq!(files.len(), 1, "one journal");
        files[0].clone()
    }

    /// Replays the fixture's journal as after a reboot.
    fn replay_now(f: &Fixture) -> SettleReport {
        let file = open_rw(&journal_path(f)).expect("open");
        settle_file(&file, &f.root.join(crate::store::OBJECTS_DIR), true).expect("settle")
    }

    /// Leaves `j` as a killed writer would: records in place, lock dropped.
    fn crash(mut j: Journal) {
        j.checkpoint_on_drop = false;
    }

    #[test]
    fn after_a_reboot_the_last_fenced_bytes_are_put_back() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"first version...");
        fence(&mut j, &f, 0x1000, b"second version..");
        fence(&mut j, &f, 0x9000, &[0xAB; 100]);
        crash(j);
        // A power loss lost the page cache: the file holds something older.
        write(&f.path, 0x1000, b"stale bytes.....");
        write(&f.path, 0x9000, &[0; 100]);
        let r = replay_now(&f);
        assert_eq!((r.applied, r.objects), (3, 1));
        assert_eq!(read(&f.path, 0x1000, 16), b"second version..");
        assert_eq!(read(&f.path, 0x9000, 100), vec![0xAB; 100]);
        // Settled means empty: a second settle changes nothing.
        write(&f.path, 0x1000, b"newer, unfenced.");
        let again = replay_now(&f);
        assert_eq!(again, SettleReport::default());
        assert_eq!(read(&f.path, 0x1000, 16), b"newer, unfenced.");
    }

    #[test]
    fn in_the_same_boot_the_page_cache_wins_and_is_only_synced() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"fenced");
        crash(j);
        // A newer store the killed guest made after its fence: it is in the page cache.
        write(&f.path, 0x1000, b"newer!");
        let r = settle(&f.root).expect("settle");
        assert_eq!((r.journals, r.applied, r.objects), (1, 0, 1));
        assert_eq!(read(&f.path, 0x1000, 6), b"newer!");
    }

    #[test]
    fn a_torn_last_record_is_not_applied() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"kept");
        fence(&mut j, &f, 0x2000, b"torn");
        crash(j);
        let jp = journal_path(&f);
        // The second record's data: after the header page, one record of 64 + 8 bytes, its head.
        let data = HEADER_LEN + 72 + 64;
        write(&jp, data, b"tXrn");
        write(&f.path, 0x1000, b"old1");
        write(&f.path, 0x2000, b"old2");
        let r = replay_now(&f);
        assert_eq!(r.applied, 1);
        assert_eq!(read(&f.path, 0x1000, 4), b"kept");
        assert_eq!(read(&f.path, 0x2000, 4), b"old2");
    }

    #[test]
    fn an_in_place_sync_cancels_earlier_records_of_its_object() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"older");
        // The object was then synced in place with newer bytes.
        write(&f.path, 0x1000, b"newer");
        j.push_synced(f.id);
        j.commit().expect("commit");
        fence(&mut j, &f, 0x3000, b"after");
        crash(j);
        write(&f.path, 0x3000, b"stale");
        let r = replay_now(&f);
        assert_eq!(r.applied, 1);
        assert_eq!(read(&f.path, 0x1000, 5), b"newer");
        assert_eq!(read(&f.path, 0x3000, 5), b"after");
    }

    #[test]
    fn a_released_object_is_not_replayed_over_a_later_writer() {
        for release in [false, true] {
            let f = fixture();
            let mut j = Journal::acquire(&f.root).expect("journal");
            fence(&mut j, &f, 0x1000, b"older");
            if release {
                j.release(f.id, || Ok(())).expect("release");
            }
            crash(j);
            // Another writer's bytes, made durable in place after this one gave the object up.
            write(&f.path, 0x1000, b"later");
            let r = replay_now(&f);
            let want: &[u8] = if release { b"later" } else { b"older" };
            assert_eq!(read(&f.path, 0x1000, 5), want, "released: {release}");
            assert_eq!(r.applied, usize::from(!release));
        }
    }

    #[test]
    fn a_batch_that_does_not_fit_checkpoints_first_and_is_replayed_in_the_new_epoch() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        let big = |v: u8| vec![v; 25 << 20];
        fence(&mut j, &f, 0x1000, &big(1));
        fence(&mut j, &f, 0x1000 + (25 << 20), &big(2));
        assert_eq!(j.stats().checkpoints, 0);
        // Past the 64 MiB: a checkpoint, then this batch restamped for the new epoch.
        fence(&mut j, &f, 0x1000 + (50 << 20), &big(3));
        assert_eq!(j.stats().checkpoints, 1);
        crash(j);
        write(&f.path, 0x1000 + (50 << 20), b"stale");
        let r = replay_now(&f);
        assert_eq!(r.applied, 1, "only the batch after the checkpoint counts");
        assert_eq!(read(&f.path, 0x1000 + (50 << 20), 5), vec![3; 5]);
    }

    #[test]
    fn a_checkpoint_ends_the_records_before_it() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"before");
        j.checkpoint().expect("checkpoint");
        crash(j);
        write(&f.path, 0x1000, b"later!");
        let r = replay_now(&f);
        assert_eq!(r, SettleReport::default());
        assert_eq!(read(&f.path, 0x1000, 6), b"later!");
    }

    #[test]
    fn a_running_writers_journal_is_left_alone_and_reused_after_it() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"live");
        // Another process opening the store meanwhile must not touch it.
        assert_eq!(settle(&f.root).expect("settle"), SettleReport::default());
        let path = journal_path(&f);
        drop(j);
        // A clean exit empties it, and the next writer takes the same file.
        let j2 = Journal::acquire(&f.root).expect("journal");
        assert_eq!(journal_path(&f), path);
        drop(j2);
    }

    #[test]
    fn journals_left_by_many_writers_at_once_are_trimmed_to_one_spare() {
        let f = fixture();
        let dir = f.root.join(JOURNAL_DIR);
        // Five writers at once (flock locks belong to open files, so these stand for five
        // processes): three exit, one is killed with a record in its journal, one keeps running.
        // Each journal is renamed so that the next writer meets them in a known order: the
        // exited writer's first (taken), the killed one's second (kept spare), then the rest.
        let mut js = Vec::new();
        for name in ["0", "1", "2", "3", "4"] {
            let before = journal_files(&dir).expect("list");
            js.push(Journal::acquire(&f.root).expect("journal"));
            let made = journal_files(&dir)
                .expect("list")
                .into_iter()
                .find(|p| !before.contains(p))
                .expect("a new journal");
            fs::rename(made, dir.join(format!("{name}{SUFFIX}"))).expect("rename");
        }
        let running = js.pop().expect("five");
        fence(&mut js[1], &f, 0x1000, b"killed");
        crash(js.remove(1));
        drop(js);
        write(&f.path, 0x1000, b"newer!");
        let _j = Journal::acquire(&f.root).expect("journal");
        let names: Vec<_> = journal_files(&dir)
            .expect("list")
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            ["0", "1", "4"],
            "taken, one spare, the running writer's"
        );
        // The spare was settled: nothing of the killed writer's is replayed over the page cache
        // now, or after a reboot.
        assert_eq!(read(&f.path, 0x1000, 6), b"newer!");
        drop(running);
        let replayed = replay(&f.root).expect("replay");
        assert_eq!(replayed.applied, 0);
    }

    #[test]
    fn a_half_made_journal_of_a_killed_creator_is_removed_once_old() {
        let f = fixture();
        let dir = f.root.join(JOURNAL_DIR);
        fsutil::ensure_dir(&dir, 0o755).expect("dir");
        let half_made = |name: &str, age: u64| {
            let file = File::create(dir.join(name)).expect("create");
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            file.set_modified(when).expect("mtime");
        };
        half_made("killed.new", 3600);
        half_made("filling.new", 0);
        let _j = Journal::acquire(&f.root).expect("journal");
        assert!(!dir.join("killed.new").exists());
        assert!(
            dir.join("filling.new").exists(),
            "a creator may be filling it"
        );
    }

    #[test]
    fn opening_the_store_settles_a_killed_writers_journal() {
        let f = fixture();
        let mut j = Journal::acquire(&f.root).expect("journal");
        fence(&mut j, &f, 0x1000, b"x");
        crash(j);
        Store::open(&f.root).expect("store");
        let file = open_rw(&journal_path(&f)).expect("open");
        let (_, _, records) = read_records(&file).expect("read").expect("header");
        assert!(records.is_empty(), "settled at open");
    }
}
