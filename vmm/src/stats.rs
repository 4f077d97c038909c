//! `--stats`: what a run cost, printed to stderr at the end.
//!
//! "pages written" comes from KVM's dirty log of guest RAM (exact, 4 KiB pages, written by the
//! guest; `--stats` turns dirty logging on). "pages resident" is `mincore(2)` on guest RAM: every
//! page the guest or the VMM (page tables, image, boot data) touched.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::ring::RingStats;

/// Names of host calls by number, for the report.
const CALL_NAMES: [&str; crate::hostcall::CALL_BUCKETS] = [
    "(0)",
    "exit",
    "write",
    "read",
    "random",
    "panic",
    "ring_wait",
    "nop",
    "obj_create",
    "obj_lookup",
    "obj_bind",
    "obj_map",
    "obj_unmap",
    "obj_flush",
    "obj_unbind",
    "obj_delete",
    "err_reason",
    "obj_reserve",
    "obj_flush_many",
    "unknown",
];

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// VM exits by kind.
    pub exits: BTreeMap<&'static str, u64>,
    /// Synchronous host calls by number (last index: unknown numbers).
    pub hostcalls: [u64; crate::hostcall::CALL_BUCKETS],
    /// Doorbell writes dropped (block misaligned or outside user memory).
    pub hostcalls_dropped: u64,
    /// Ring counters.
    pub ring: RingStats,
    /// Time spent inside `KVM_RUN`.
    pub guest_time: Duration,
    /// Time from VM creation to the end of the run.
    pub total_time: Duration,
    /// Guest RAM pages written by the guest (dirty log).
    pub pages_written: Option<u64>,
    /// Guest RAM pages resident on the host.
    pub pages_resident: Option<u64>,
    /// The VMM process's resident set (`VmRSS`, KiB) at the end of the run.
    pub vmm_rss_kib: Option<u64>,
    /// Guest RAM size.
    pub mem_size: u64,
    /// Object mapper counters (runs with a store).
    pub objects: Option<crate::objects::ObjectStats>,
}

impl Stats {
    /// Counts one exit of `kind`.
    pub fn exit(&mut self, kind: &'static str) {
        *self.exits.entry(kind).or_default() += 1;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.exits.values().sum();
        writeln!(f, "twz-vmm stats:")?;
        write!(f, "  exits: {total}")?;
        for (k, v) in &self.exits {
            write!(f, ", {k} {v}")?;
        }
        writeln!(f)?;
        write!(f, "  host calls:")?;
        let mut any = false;
        for (i, n) in self.hostcalls.iter().enumerate().filter(|(_, n)| **n > 0) {
            write!(f, " {} {n}", CALL_NAMES[i])?;
            any = true;
        }
        if !any {
            write!(f, " none")?;
        }
        if self.hostcalls_dropped > 0 {
            write!(f, " (dropped: {})", self.hostcalls_dropped)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  ring: {} submissions, {} errors, {} completions backlogged (CQ full)",
            self.ring.submissions, self.ring.errors, self.ring.overflows
        )?;
        let vmm = self.total_time.saturating_sub(self.guest_time);
        writeln!(
            f,
            "  time: {:.3} ms in guest (KVM_RUN), {:.3} ms in VMM, {:.3} ms total",
            self.guest_time.as_secs_f64() * 1e3,
            vmm.as_secs_f64() * 1e3,
            self.total_time.as_secs_f64() * 1e3
        )?;
        let pages =
            |p: Option<u64>| p.map_or("n/a".to_string(), |p| format!("{p} ({} KiB)", p * 4));
        writeln!(
            f,
            "  memory: {} MiB guest RAM; pages written by guest: {}; pages resident: {}",
            self.mem_size >> 20,
            pages(self.pages_written),
            pages(self.pages_resident)
        )?;
        if let (Some(rss), Some(guest)) = (self.vmm_rss_kib, self.pages_resident) {
            writeln!(
                f,
                "  vmm rss: {rss} KiB, of which guest RAM {} KiB: {} KiB beyond guest memory",
                guest * 4,
                rss.saturating_sub(guest * 4)
            )?;
        }
        if let Some(o) = &self.objects {
            writeln!(
                f,
                "  objects: {} mapped, {} map calls, {} placed in a slot, {} evictions, {} flushes, \
                 {} memslots, {} chunk faults, {} populate requests",
                o.objects,
                o.map_calls,
                o.installs,
                o.evictions,
                o.flushes,
                o.memslots,
                o.chunk_faults,
                o.populates
            )?;
            if let Some(j) = &o.journal {
                writeln!(
                    f,
                    "  flush journal: {} fences, {} KiB written, {} checkpoints, {} objects synced \
                     in place",
                    j.batches,
                    j.bytes.div_ceil(1024),
                    j.checkpoints,
                    j.synced_in_place
                )?;
            }
        }
        Ok(())
    }
}

/// `VmRSS` of this process in KiB, from `/proc/self/status`.
pub fn vmm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_exits_and_calls() {
        let mut s = Stats {
            mem_size: 128 << 20,
            pages_written: Some(3),
            ..Default::default()
        };
        s.exit("hostcall");
        s.exit("hostcall");
        s.hostcalls[1] = 1;
        s.hostcalls[7] = 1;
        let text = s.to_string();
        assert!(text.contains("exits: 2, hostcall 2"), "{text}");
        assert!(text.contains("host calls: exit 1 nop 1"), "{text}");
        assert!(
            text.contains("pages written by guest: 3 (12 KiB)"),
            "{text}"
        );
    }
}
