//! NEO's reconnection throttle: a node never calls `connect()` to the same
//! address more than once per second (`CONNECT_LIMIT`); peers rely on it
//! (a secondary master that refuses a connection expects not to be
//! hammered).

use std::time::Duration;

use hashbrown::HashMap;
use neo_proto::Address;

use crate::time::Time;

/// Least time between two connection attempts to the same address.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct ConnectThrottle {
    last_attempt: HashMap<Address, Time>,
}

impl ConnectThrottle {
    /// When a connection to `addr` may be attempted (now or later).
    pub fn allowed_at(&self, addr: &Address) -> Time {
        self.last_attempt
            .get(addr)
            .map_or(Time::ZERO, |&last| last + CONNECT_LIMIT)
    }

    /// Records an attempt made at `now`.
    pub fn record(&mut self, addr: &Address, now: Time) {
        self.last_attempt.insert(addr.clone(), now);
    }
}
