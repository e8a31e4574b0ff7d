//! How OIDs and TIDs are spread over a partition table.
//!
//! A cluster has a fixed number of partitions, never zero; an OID or TID
//! belongs to partition `value mod count`. Every node computes it, so it is
//! written once, here, on a type that cannot be zero: a table of zero
//! partitions is refused where it is received, not divided by later.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Range;

/// Most partitions a cluster may have: stores number the data rows of a
/// partition in the low 48 bits of an id whose high 16 bits are the
/// partition, so a table of more rows is refused like one of none.
pub const PARTITIONS_COUNT_MAX: u32 = 1 << 16;

/// The number of partitions of a cluster (1 to [`PARTITIONS_COUNT_MAX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partitions(NonZeroU32);

impl Partitions {
    /// `None` for zero (no cluster has zero partitions) or more than
    /// [`PARTITIONS_COUNT_MAX`].
    pub const fn new(count: u32) -> Option<Partitions> {
        match NonZeroU32::new(count) {
            Some(count) if count.get() <= PARTITIONS_COUNT_MAX => Some(Partitions(count)),
            _ => None,
        }
    }

    /// The number of partitions (rows of the partition table), never zero.
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
    fn zero_partitions_do_not_exist_nor_too_many() {
        assert_eq!(Partitions::new(0), None);
        assert_eq!(Partitions::new(PARTITIONS_COUNT_MAX + 1), None);
        assert!(Partitions::new(PARTITIONS_COUNT_MAX).is_some());
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
