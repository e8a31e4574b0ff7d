//! Why bytes could not be decoded.

use std::fmt;

/// Every way a NEO byte stream can be refused.
///
/// Two errors concern the handshake and are told apart on purpose (a peer of
/// another protocol version is an operator problem, a non-NEO peer is
/// usually a misdirected client); all the others mean "malformed": NEO/py
/// closes the connection without answering, and so should we.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The stream does not start with NEO's magic (`92 a3 4e 45 4f`).
    NotNeo { prefix: Vec<u8> },
    /// The magic is right but the protocol version byte is not ours.
    VersionMismatch { version: u8 },
    /// The input ended inside an object.
    Truncated,
    /// Marker `0xc1`, which msgpack reserves.
    ReservedMarker { offset: usize },
    /// A value of the wrong msgpack type.
    UnexpectedType {
        expected: &'static str,
        found: &'static str,
        offset: usize,
    },
    /// An enumeration of the wrong kind (ext type code).
    UnexpectedExt {
        expected: u8,
        found: i8,
        offset: usize,
    },
    /// An ext object whose payload is not a small msgpack integer.
    BadEnumPayload { offset: usize },
    /// An ext code that no NEO enumeration uses.
    UnknownExt { code: i8, offset: usize },
    /// An enumeration value outside the enumeration.
    InvalidEnumValue {
        enumeration: &'static str,
        value: u64,
    },
    /// An integer that does not fit the field.
    OutOfRange {
        expected: &'static str,
        offset: usize,
    },
    /// A fixed-size byte string (OID, TID, checksum) of the wrong size.
    BadLength {
        expected: usize,
        found: usize,
        offset: usize,
    },
    /// The packet is not `[msg_id, code, args]`.
    BadEnvelope { reason: &'static str },
    /// No packet has this code.
    UnknownCode { code: u64 },
    /// The packet has the wrong number of arguments.
    Arity {
        packet: &'static str,
        expected: usize,
        found: usize,
    },
    /// The packet is larger than NEO/py's receive buffer (64 MiB).
    Oversized { limit: usize },
    /// Generic values nested deeper than any NEO packet needs.
    TooDeep { offset: usize },
    /// Bytes left after a packet in a buffer meant to hold exactly one.
    TrailingBytes { offset: usize },
}

impl DecodeError {
    /// Whether this error concerns the handshake rather than a packet.
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            DecodeError::NotNeo { .. } | DecodeError::VersionMismatch { .. }
        )
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotNeo { prefix } => {
                write!(f, "not a NEO stream (starts with")?;
                for byte in prefix {
                    write!(f, " {byte:02x}")?;
                }
                write!(f, ")")
            }
            DecodeError::VersionMismatch { version } => write!(
                f,
                "protocol version mismatch: peer speaks version {version}, we speak {}",
                crate::PROTOCOL_VERSION
            ),
            DecodeError::Truncated => write!(f, "truncated input"),
            DecodeError::ReservedMarker { offset } => {
                write!(f, "reserved msgpack marker 0xc1 at byte {offset}")
            }
            DecodeError::UnexpectedType {
                expected,
                found,
                offset,
            } => write!(f, "expected {expected}, found {found} at byte {offset}"),
            DecodeError::UnexpectedExt {
                expected,
                found,
                offset,
            } => write!(
                f,
                "expected enumeration with ext code {expected}, found ext code {found} at byte {offset}"
            ),
            DecodeError::BadEnumPayload { offset } => {
                write!(f, "enumeration payload is not a small integer at byte {offset}")
            }
            DecodeError::UnknownExt { code, offset } => {
                write!(f, "unknown ext code {code} at byte {offset}")
            }
            DecodeError::InvalidEnumValue { enumeration, value } => {
                write!(f, "{value} is not a valid {enumeration}")
            }
            DecodeError::OutOfRange { expected, offset } => {
                write!(f, "integer out of range for {expected} at byte {offset}")
            }
            DecodeError::BadLength {
                expected,
                found,
                offset,
            } => write!(
                f,
                "expected {expected} bytes, found {found} at byte {offset}"
            ),
            DecodeError::BadEnvelope { reason } => write!(f, "bad packet envelope: {reason}"),
            DecodeError::UnknownCode { code } => write!(f, "unknown packet code 0x{code:04x}"),
            DecodeError::Arity {
                packet,
                expected,
                found,
            } => write!(
                f,
                "{packet} takes {expected} arguments, {found} were given"
            ),
            DecodeError::Oversized { limit } => {
                write!(f, "packet larger than the {limit}-byte limit")
            }
            DecodeError::TooDeep { offset } => {
                write!(f, "values nested too deeply at byte {offset}")
            }
            DecodeError::TrailingBytes { offset } => {
                write!(f, "unexpected bytes after the packet at byte {offset}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}
