//! Identifiers and scalar value formats: OIDs, TIDs, node ids, partition
//! table ids, checksums and timestamps.

use std::fmt;

use crate::enums::NodeType;

macro_rules! p64_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        ///
        /// On the wire: `bin` of exactly 8 bytes, big-endian, so that byte
        /// order equals numeric order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// NEO/py's `ZERO_OID` / `ZERO_TID` (8 zero bytes): the root
            /// object's OID; as a TID, "no serial" (base serial of a new
            /// object, empty-range results).
            pub const ZERO: $name = $name(0);
            /// Internal "infinity" sentinel (`ff…ff`).
            pub const INVALID: $name = $name(u64::MAX);

            /// The 8 bytes of the wire form (big-endian).
            pub fn to_be_bytes(self) -> [u8; 8] {
                self.0.to_be_bytes()
            }

            /// The value of the 8 bytes of a wire form (big-endian).
            pub fn from_be_bytes(bytes: [u8; 8]) -> Self {
                $name(u64::from_be_bytes(bytes))
            }

            /// The partition this value falls in (`value mod partitions`).
            pub fn partition(self, partitions: u32) -> u32 {
                (self.0 % partitions as u64) as u32
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }
    };
}

p64_type!(
    /// An object id. OID 0 is the ZODB root object.
    Oid
);
p64_type!(
    /// A transaction id (also a serial, a TTID or a pack id): a ZODB
    /// timestamp, see [`Tid::from_unix_time`].
    Tid
);

impl Tid {
    /// The largest usable TID (fits a signed 64-bit SQL integer). The
    /// master's `AnswerFinalTID(MAX)` means "committed, ask the storages".
    pub const MAX: Tid = Tid(0x7fff_ffff_ffff_ffff);
}

const TID_LOW_OVERFLOW: u64 = 1 << 32;
const TID_LOW_MAX: u64 = TID_LOW_OVERFLOW - 1;

impl Tid {
    /// The TID of a UNIX time (seconds, UTC), in ZODB's TimeStamp format:
    /// the high 32 bits count minutes in a mixed radix where every month has
    /// 31 days, the low 32 bits are the seconds within the minute scaled to
    /// 2^32 per 60 s. Computed as NEO/py's `tidFromTime` does (same float
    /// operations), so both give the same TID for the same clock reading.
    pub fn from_unix_time(seconds: f64) -> Tid {
        let whole = seconds.floor();
        let fraction = seconds - whole;
        let whole = whole as i64;
        let days = whole.div_euclid(86_400);
        let second_of_day = whole.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let hour = second_of_day / 3600;
        let minute = second_of_day / 60 % 60;
        let second = second_of_day % 60;
        let low = ((second as f64 + fraction) / (60.0 / TID_LOW_OVERFLOW as f64)) as u64;
        pack_tid(year, month, day, hour, minute, low.min(TID_LOW_MAX))
    }

    /// The UNIX time (seconds) this TID stands for.
    pub fn to_unix_time(self) -> f64 {
        let (year, month, day, hour, minute, low) = unpack_tid(self);
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60;
        seconds as f64 + low as f64 * 60.0 / TID_LOW_OVERFLOW as f64
    }

    /// Adds `offset` units of the low word, carrying into the minutes with
    /// real calendar arithmetic (NEO/py's `addTID`). Used by the master to
    /// step past the last TID and to move a final TID into its TTID's
    /// partition.
    pub fn add_ticks(self, offset: i64) -> Tid {
        let (year, month, day, hour, minute, low) = unpack_tid(self);
        let total = low as i128 + offset as i128;
        let carry_minutes = total.div_euclid(TID_LOW_OVERFLOW as i128) as i64;
        let low = total.rem_euclid(TID_LOW_OVERFLOW as i128) as u64;
        if carry_minutes == 0 {
            return pack_tid(year, month, day, hour, minute, low);
        }
        let minutes = days_from_civil(year, month, day) * 1440 + hour * 60 + minute + carry_minutes;
        let (year, month, day) = civil_from_days(minutes.div_euclid(1440));
        let minute_of_day = minutes.rem_euclid(1440);
        pack_tid(
            year,
            month,
            day,
            minute_of_day / 60,
            minute_of_day % 60,
            low,
        )
    }
}

fn pack_tid(year: i64, month: i64, day: i64, hour: i64, minute: i64, low: u64) -> Tid {
    let high = ((((year - 1900) * 12 + (month - 1)) * 31 + (day - 1)) * 24 + hour) * 60 + minute;
    Tid(((high as u64 & 0xffff_ffff) << 32) | low)
}

fn unpack_tid(tid: Tid) -> (i64, i64, i64, i64, i64, u64) {
    let mut high = (tid.0 >> 32) as i64;
    let low = tid.0 & TID_LOW_MAX;
    let minute = high % 60;
    high /= 60;
    let hour = high % 24;
    high /= 24;
    let day = high % 31 + 1;
    high /= 31;
    let month = high % 12 + 1;
    let year = high / 12 + 1900;
    (year, month, day, hour, minute, low)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm). Days past the end of a month roll over into the next one,
/// as TIDs of the "31-day month" radix require.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Year, month, day of a count of days since 1970-01-01, proleptic
/// Gregorian calendar (H. Hinnant's civil calendar algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// A node id ("uuid" in NEO/py): a signed 32-bit integer whose high byte is
/// the node type's namespace. Storage ids are positive and persistent; the
/// others are negative and may be reassigned by the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nid(pub i32);

impl Nid {
    /// The namespace (high byte) of each node type.
    pub const fn namespace(node_type: NodeType) -> i32 {
        match node_type {
            NodeType::Storage => 0x00,
            NodeType::Master => -0x10,
            NodeType::Client => -0x20,
            NodeType::Admin => -0x30,
        }
    }

    /// The `n`-th id of a node type's namespace (`n` ≥ 1).
    pub const fn new(node_type: NodeType, n: u32) -> Nid {
        Nid((Self::namespace(node_type) << 24).wrapping_add(n as i32))
    }

    /// The node type whose namespace holds this id, if any.
    pub fn node_type(self) -> Option<NodeType> {
        match self.0 >> 24 {
            0x00 if self.0 > 0 => Some(NodeType::Storage),
            -0x10 => Some(NodeType::Master),
            -0x20 => Some(NodeType::Client),
            -0x30 => Some(NodeType::Admin),
            _ => None,
        }
    }

    /// Negative ids are temporary: the master may give another one.
    pub fn is_temporary(self) -> bool {
        self.0 < 0
    }
}

/// A text that is no node id as NEO/py prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNidError;

impl fmt::Display for ParseNidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node id is a type letter (S, M, C, A) and a number")
    }
}

impl std::error::Error for ParseNidError {}

impl std::str::FromStr for Nid {
    type Err = ParseNidError;

    /// The inverse of `Display` for typed ids: `S1`, `M2`, `C3`, `A1`
    /// (upper case, as NEO/py prints and reads them).
    fn from_str(text: &str) -> Result<Nid, ParseNidError> {
        let mut chars = text.chars();
        let node_type = match chars.next() {
            Some('S') => NodeType::Storage,
            Some('M') => NodeType::Master,
            Some('C') => NodeType::Client,
            Some('A') => NodeType::Admin,
            _ => return Err(ParseNidError),
        };
        let number: u32 = chars.as_str().parse().map_err(|_| ParseNidError)?;
        let nid = ((Nid::namespace(node_type) as i64) << 24) + number as i64;
        i32::try_from(nid).map(Nid).map_err(|_| ParseNidError)
    }
}

impl fmt::Display for Nid {
    /// `S1`, `M1`, `C3`, `A1` as NEO/py prints them; the raw number for
    /// ids outside every namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.0 >> 24 {
            0x00 => "S",
            -0x10 => "M",
            -0x20 => "C",
            -0x30 => "A",
            _ => return write!(f, "{}", self.0),
        };
        if self.0 == 0 {
            return write!(f, "0");
        }
        write!(f, "{prefix}{}", self.0 & 0xff_ffff)
    }
}

/// Partition table id: +1 for every change the master broadcasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ptid(pub u64);

impl fmt::Display for Ptid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// SHA-1 digest of object data as transmitted (compressed bytes when
/// compressed). [`Checksum::ZERO`] means "no data".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Checksum(pub [u8; 20]);

impl Checksum {
    /// NEO/py's `ZERO_HASH` (20 zero bytes): the checksum of a record
    /// without data, and the digest of an empty range in replica checks.
    pub const ZERO: Checksum = Checksum([0; 20]);

    /// Whether this is [`Checksum::ZERO`]: no data.
    pub fn is_zero(&self) -> bool {
        *self == Checksum::ZERO
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// A float64 timestamp (seconds since the UNIX epoch) as the master stamps
/// nodes and notifications with.
///
/// Equality is bitwise: storages compare `id_timestamp`s for exact equality
/// with what the master announced, so a value must round-trip bit for bit
/// (and a NaN from a hostile peer is still equal to itself).
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub f64);

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Timestamp {}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rust prints the shortest representation that round-trips, like
        // Python's repr, but drops ".0" on whole numbers; keep it.
        if self.0.is_finite() && self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tid_of_a_time_matches_zodb_timestamp() {
        // protocol.md §10.3: 2024-06-10 06:13:20.25 UTC.
        let time = 1_717_999_980.0 + 20.25; // 06:13:00 + 20.25 s
        let tid = Tid::from_unix_time(time);
        assert_eq!(tid, Tid(0x03f9_29f5_5666_6666));
        assert!((tid.to_unix_time() - time).abs() < 1e-6);
    }

    #[test]
    fn add_ticks_carries_into_real_calendar_minutes() {
        // 2024-02-29 23:59 + one minute = 2024-03-01 00:00.
        let last_minute = pack_tid(2024, 2, 29, 23, 59, TID_LOW_MAX);
        assert_eq!(last_minute.add_ticks(1), pack_tid(2024, 3, 1, 0, 0, 0));
        assert_eq!(pack_tid(2024, 3, 1, 0, 0, 0).add_ticks(-1), last_minute);
        let tid = Tid(0x03f9_29f5_5666_6666);
        assert_eq!(tid.add_ticks(1), Tid(0x03f9_29f5_5666_6667));
        assert_eq!(tid.add_ticks(5).add_ticks(-5), tid);
    }

    #[test]
    fn nids_print_like_neo_py() {
        assert_eq!(Nid::new(NodeType::Storage, 1).to_string(), "S1");
        assert_eq!(Nid::new(NodeType::Master, 1), Nid(-0x0fff_ffff));
        assert_eq!(Nid::new(NodeType::Master, 1).to_string(), "M1");
        assert_eq!(Nid::new(NodeType::Client, 3).to_string(), "C3");
        assert_eq!(Nid::new(NodeType::Admin, 1).to_string(), "A1");
        assert_eq!(Nid(-0x1fff_ffff).node_type(), Some(NodeType::Client));
        assert_eq!(Nid(0x7000_0000).node_type(), None);
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [
            -800_000i64,
            -1,
            0,
            1,
            59,
            60,
            365,
            11_016,
            20_000,
            2_000_000,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
