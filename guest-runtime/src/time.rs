//! Clocks without exits: the TSC (read with `rdtsc` at CPL3, about 9 ns) scaled by the frequency
//! and anchored at the boot wall-clock time the VMM measured.

use core::time::Duration;

/// Converts a TSC tick count to nanoseconds at `hz`. With an unknown frequency (0) a tick counts
/// as a nanosecond, which keeps ordering and is right within a small factor on current machines.
pub const fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return ticks;
    }
    let ns = ticks as u128 * 1_000_000_000 / hz as u128;
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// Converts nanoseconds to TSC ticks at `hz` (see [`ticks_to_ns`] for `hz == 0`).
pub const fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    if hz == 0 {
        return ns;
    }
    let t = ns as u128 * hz as u128 / 1_000_000_000;
    if t > u64::MAX as u128 {
        u64::MAX
    } else {
        t as u64
    }
}

/// The raw time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads a counter; it is allowed at CPL3 here and touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn tsc_hz() -> u64 {
    crate::boot::info().tsc_hz
}

/// A point on a monotonic clock, for measuring intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    #[inline]
    pub fn now() -> Instant {
        Instant(rdtsc())
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        Duration::from_nanos(ticks_to_ns(self.0.saturating_sub(earlier.0), tsc_hz()))
    }

    /// Time since `self`.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    /// The raw TSC value.
    pub fn ticks(&self) -> u64 {
        self.0
    }
}

/// Wall-clock time: nanoseconds since the Unix epoch.
pub fn wall_ns() -> u64 {
    let b = crate::boot::info();
    b.boot_wall_ns
        .saturating_add(ticks_to_ns(rdtsc().saturating_sub(b.boot_tsc), b.tsc_hz))
}

/// Wall-clock time as a duration since the Unix epoch.
pub fn since_epoch() -> Duration {
    Duration::from_nanos(wall_ns())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_at_known_frequency() {
        assert_eq!(ticks_to_ns(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(3, 3_000_000_000), 1);
        assert_eq!(ns_to_ticks(1_000, 2_500_000_000), 2_500);
        // No overflow for large tick counts: a century at 4 GHz.
        let century = 100 * 365 * 86_400 * 4_000_000_000u64;
        assert_eq!(
            ticks_to_ns(century, 4_000_000_000),
            100 * 365 * 86_400 * 1_000_000_000
        );
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn unknown_frequency_counts_ticks_as_ns() {
        assert_eq!(ticks_to_ns(1234, 0), 1234);
        assert_eq!(ns_to_ticks(1234, 0), 1234);
    }

    #[test]
    fn instants_are_ordered() {
        let a = Instant(10);
        let b = Instant(20);
        assert!(a < b);
        assert_eq!(a.duration_since(b), Duration::ZERO);
    }
}
