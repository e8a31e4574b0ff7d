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
    NotNeo {
        /// The first bytes received (at most the 6 of a handshake).
        prefix: Vec<u8>,
    },
    /// The magic is right but the protocol version byte is not ours.
    VersionMismatch {
        /// The peer's protocol version (6th handshake byte).
        version: u8,
    },
    /// The input ended inside an object.
    Truncated,
    /// Marker `0xc1`, which msgpack reserves.
    ReservedMarker {
        /// Where the marker is, in bytes from the start of the packet.
        offset: usize,
    },
    /// A value of the wrong msgpack type.
    UnexpectedType {
        /// The msgpack type the field needs (`"bin"`, `"int"`, ...).
        expected: &'static str,
        /// The type the marker byte announces (see
        /// [`crate::msgpack::marker_name`]).
        found: &'static str,
        /// Where the value starts, in bytes from the start of the packet.
        offset: usize,
    },
    /// An enumeration of the wrong kind (ext type code).
    UnexpectedExt {
        /// The ext code of the enumeration the field needs (0 to 4).
        expected: u8,
        /// The ext code received.
        found: i8,
        /// Where the ext object starts, in bytes from the start of the packet.
        offset: usize,
    },
    /// An ext object whose payload is not a small msgpack integer.
    BadEnumPayload {
        /// Where the ext object starts, in bytes from the start of the packet.
        offset: usize,
    },
    /// An ext code that no NEO enumeration uses.
    UnknownExt {
        /// The ext code received (NEO uses 0 to 4).
        code: i8,
        /// Where the ext object starts, in bytes from the start of the packet.
        offset: usize,
    },
    /// An enumeration value outside the enumeration.
    InvalidEnumValue {
        /// NEO/py's name of the enumeration (`"CellStates"`, ...).
        enumeration: &'static str,
        /// The value received.
        value: u64,
    },
    /// An integer that does not fit the field.
    OutOfRange {
        /// The field's type (`"u32"`, `"node id"`, ...).
        expected: &'static str,
        /// Where the integer starts, in bytes from the start of the packet.
        offset: usize,
    },
    /// A fixed-size byte string (OID, TID, checksum) of the wrong size.
    BadLength {
        /// The size the field needs: 8 (p64) or 20 (SHA-1).
        expected: usize,
        /// The size received.
        found: usize,
        /// Where the `bin` starts, in bytes from the start of the packet.
        offset: usize,
    },
    /// The packet is not `[msg_id, code, args]`.
    BadEnvelope {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No packet has this code.
    UnknownCode {
        /// The code received.
        code: u64,
    },
    /// The packet has the wrong number of arguments.
    Arity {
        /// The packet's name, or the record's (`"Address"`, `"NodeInfo"`,
        /// ...) when a nested record has the wrong size.
        packet: &'static str,
        /// The number of arguments (or record fields) of that type.
        expected: usize,
        /// The length of the array received.
        found: usize,
    },
    /// The packet is larger than the decoder's limit (by default
    /// [`crate::PACKET_SIZE_MAX`], NEO/py's receive buffer).
    Oversized {
        /// The largest packet accepted, in bytes ([`crate::PACKET_SIZE_MAX`]
        /// unless lowered with [`crate::Decoder::with_packet_size_max`]).
        limit: usize,
    },
    /// Generic values nested deeper than any NEO packet needs.
    TooDeep {
        /// Where the value nested past [`crate::VALUE_DEPTH_MAX`] starts, in
        /// bytes from the start of the packet.
        offset: usize,
    },
    /// Bytes left after a packet in a buffer meant to hold exactly one.
    TrailingBytes {
        /// Where the packet ends and the extra bytes start.
        offset: usize,
    },
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
