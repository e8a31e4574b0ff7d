//! How OIDs and TIDs are spread over a partition table.
//!
//! A cluster has a fixed number of partitions, never zero; an OID or TID
//! belongs to partition `value mod count`. Every node computes it, so it is
//! written once, here, on a type that cannot be zero: a table of zero
//! partitions is refused where it is received, not divided by later.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Range;

/// The number of partitions of a cluster (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partitions(NonZeroU32);

impl Partitions {
    /// `None` for zero: no cluster has zero partitions.
    pub const fn new(count: u32) -> Option<Partitions> {
        match NonZeroU32::new(count) {
            Some(count) => Some(Partitions(count)),
            None => None,
        }
    }

    pub const fn count(self) -> u32 {
        self.0.get()
    }

    /// The partition of an OID or TID.
    pub const fn of(self, value: u64) -> u32 {
        // The remainder is below `count`, a u32.
        (value % self.0.get() as u64) as u32
    }

    /// Whether `partition` is a partition of the table (peers send
    /// partition numbers: every one is checked with this before use).
    pub const fn contains(self, partition: u32) -> bool {
        partition < self.0.get()
    }

    /// Every partition, in order.
    pub fn all(self) -> Range<u32> {
        0..self.0.get()
    }
}

impl fmt::Display for Partitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_partitions_do_not_exist() {
        assert_eq!(Partitions::new(0), None);
    }

    #[test]
    fn values_are_spread_by_remainder() {
        let p = Partitions::new(3).unwrap();
        assert_eq!(
            (0..7).map(|v| p.of(v)).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2, 0]
        );
        assert_eq!(p.of(u64::MAX), (u64::MAX % 3) as u32);
        assert!(p.contains(2) && !p.contains(3) && !p.contains(u32::MAX));
        assert_eq!(p.all(), 0..3);
        let one = Partitions::new(1).unwrap();
        assert_eq!(one.of(u64::MAX), 0);
    }
}
