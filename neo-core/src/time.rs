//! Time as an input: nodes never read a clock, they are handed `now`.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant, in nanoseconds since the UNIX epoch.
///
/// One type serves both purposes NEO needs: ordering timers, and stamping
/// things with wall-clock time (TIDs, node identification timestamps). The
/// runtime passes the system clock; the simulator a virtual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    pub fn from_unix_secs_f64(seconds: f64) -> Time {
        Time((seconds * 1e9) as u64)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the UNIX epoch, as NEO/py's `time()` returns them.
    pub fn as_unix_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
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

/// NEO/py's `monotonic_time`: the wall clock, forced to increase strictly
/// (by 1 ms when it did not advance). The master stamps identified nodes
/// and node notifications with it; receivers rely on strict increase.
#[derive(Debug, Clone, Default)]
pub struct MonotonicClock {
    previous: f64,
}

impl MonotonicClock {
    pub fn now(&mut self, now: Time) -> f64 {
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
        let mut clock = MonotonicClock::default();
        let t = Time::from_unix_secs_f64(1_700_000_000.0);
        let a = clock.now(t);
        let b = clock.now(t);
        let c = clock.now(t - Duration::from_secs(5));
        assert!(a < b && b < c);
        assert!((b - a - 1e-3).abs() < 1e-6);
        let d = clock.now(t + Duration::from_secs(1));
        assert_eq!(d, 1_700_000_001.0);
    }
}
