//! Time as an input: nodes never read a clock, they are handed `now`.
//!
//! Two clocks, never mixed. Timers run on [`Time`], a monotonic clock: an
//! NTP step must neither make a master take every storage for dead (a
//! jump forward) nor stall every timer (a jump back). Only what NEO stamps
//! with the date reads [`WallTime`]: TIDs and node identification
//! timestamps, both at the primary master, whose rules already cope with a
//! clock that goes back (TIDs stay above the last one, timestamps are
//! forced to increase).

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant of the node's monotonic clock, in nanoseconds from an origin
/// of the runtime's choosing (the simulator's virtual time, the process's
/// start). It never goes back. Deadlines are set on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The clock's origin: no reading is earlier, so as a deadline it is
    /// due at once.
    pub const ZERO: Time = Time(0);

    /// The instant `nanos` nanoseconds after the origin (u64 nanoseconds
    /// last 584 years).
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    fn add(self, duration: Duration) -> Time {
        Time(self.0.saturating_add(duration.as_nanos() as u64))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;

    fn sub(self, duration: Duration) -> Time {
        Time(self.0.saturating_sub(duration.as_nanos() as u64))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// A reading of the wall clock, in nanoseconds since the UNIX epoch. It
/// may jump either way: nothing may wait on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallTime(u64);

impl WallTime {
    /// The reading `nanos` nanoseconds after the UNIX epoch.
    pub const fn from_unix_nanos(nanos: u64) -> WallTime {
        WallTime(nanos)
    }

    /// The reading `seconds` after the UNIX epoch (Python's `time()`),
    /// to within f64's precision (a quarter of a microsecond today);
    /// negative or NaN gives the epoch.
    pub fn from_unix_secs_f64(seconds: f64) -> WallTime {
        WallTime((seconds * 1e9) as u64)
    }

    /// Nanoseconds since the UNIX epoch.
    pub const fn as_unix_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the UNIX epoch, as NEO/py's `time()` returns them.
    pub fn as_unix_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// This reading moved by `nanos` (a clock set forward or back).
    pub fn shifted(self, nanos: i64) -> WallTime {
        WallTime(self.0.saturating_add_signed(nanos))
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// NEO/py's `monotonic_time`: despite its name, the wall clock, forced to
/// increase strictly (by 1 ms when it did not advance), as UNIX seconds in
/// an f64. The primary master stamps identified nodes (`id_timestamp`) and
/// NotifyNodeInformation packets with it (cluster.md 1.4); receivers rely
/// on strict increase.
#[derive(Debug, Clone, Default)]
pub struct TimestampClock {
    previous: f64,
}

impl TimestampClock {
    /// The next timestamp, read from the wall clock `now`: `now` in UNIX
    /// seconds if it is after the last one handed out, else the last one
    /// plus 1 ms (a clock set back, or two stamps in the same instant).
    pub fn now(&mut self, now: WallTime) -> f64 {
        let seconds = now.as_unix_secs_f64();
        if self.previous < seconds {
            self.previous = seconds;
        } else {
            self.previous += 1e-3;
        }
        self.previous
    }

    /// The last value handed out.
    pub fn last(&self) -> f64 {
        self.previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_strictly_increases() {
        let mut clock = TimestampClock::default();
        let t = WallTime::from_unix_secs_f64(1_700_000_000.0);
        let a = clock.now(t);
        let b = clock.now(t);
        let c = clock.now(t.shifted(-5_000_000_000));
        assert!(a < b && b < c);
        assert!((b - a - 1e-3).abs() < 1e-6);
        let d = clock.now(t.shifted(1_000_000_000));
        assert_eq!(d, 1_700_000_001.0);
    }
}
