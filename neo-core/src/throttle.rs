//! Connection pacing with backoff: how soon a node may call `connect()`
//! to an address it has just tried.
//!
//! NEO/py waits a flat second (`CONNECT_LIMIT`) between two attempts to
//! the same address. After a primary master dies, finding the new one
//! takes a chain of such retries (the secondaries retry each other, the
//! new primary waits to hear every master, storages and clients retry
//! masters that were not ready), so a flat second per link adds up to
//! several seconds of outage. Here the first retry comes after
//! [`FIRST_DELAY`] and each retry of a streak doubles the delay up to
//! [`MAX_DELAY`], NEO/py's second: an address that keeps failing is
//! still tried at most once a second, and a peer that refuses us is never
//! hammered. A streak ends when the address was left alone for
//! [`MAX_DELAY`] beyond what the delay allowed (for example a connection
//! that lived a while before it was lost): the next retry is quick again.

use std::time::Duration;

use hashbrown::HashMap;
use neo_proto::Address;

use crate::time::Time;

/// Delay before the first retry of a streak.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Longest delay between two attempts: NEO/py's `CONNECT_LIMIT`.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Attempts {
    /// When the last attempt was made.
    last: Time,
    /// How long after `last` the next attempt may be made.
    delay: Duration,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectThrottle {
    attempts: HashMap<Address, Attempts>,
}

impl ConnectThrottle {
    /// When a connection to `addr` may be attempted (now or later).
    pub(crate) fn allowed_at(&self, addr: &Address) -> Time {
        self.attempts
            .get(addr)
            .map_or(Time::ZERO, |a| a.last + a.delay)
    }

    /// Records an attempt made at `now`.
    pub(crate) fn record(&mut self, addr: &Address, now: Time) {
        let delay = match self.attempts.get(addr) {
            Some(previous) if now.saturating_since(previous.last + previous.delay) < MAX_DELAY => {
                (previous.delay * 2).min(MAX_DELAY)
            }
            _ => FIRST_DELAY,
        };
        self.attempts
            .insert(addr.clone(), Attempts { last: now, delay });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Time {
        Time::from_nanos(10_000_000_000 + ms * 1_000_000)
    }

    #[test]
    fn retries_back_off_from_a_tenth_of_a_second_to_a_second() {
        let addr = Address::new("127.0.0.1", 1);
        let mut throttle = ConnectThrottle::default();
        assert_eq!(throttle.allowed_at(&addr), Time::ZERO);
        let mut now = at_ms(0);
        let mut delays = Vec::new();
        for _ in 0..6 {
            throttle.record(&addr, now);
            let next = throttle.allowed_at(&addr);
            delays.push(next.saturating_since(now).as_millis());
            now = next;
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        // Another address is not affected.
        assert_eq!(
            throttle.allowed_at(&Address::new("127.0.0.1", 2)),
            Time::ZERO
        );
    }

    #[test]
    fn a_quiet_address_is_retried_quickly_again() {
        let addr = Address::new("127.0.0.1", 1);
        let mut throttle = ConnectThrottle::default();
        for ms in [0, 100, 300, 700] {
            throttle.record(&addr, at_ms(ms));
        }
        // Allowed at 1500; still in the streak just under a second later.
        throttle.record(&addr, at_ms(2400));
        assert_eq!(throttle.allowed_at(&addr), at_ms(3400));
        // Left alone for a second past that: the streak is over.
        throttle.record(&addr, at_ms(4400));
        assert_eq!(throttle.allowed_at(&addr), at_ms(4500));
    }
}
