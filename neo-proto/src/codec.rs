//! The byte stream of a connection: handshake, packet framing, and an
//! incremental decoder.

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::msgpack::{self, Reader, Scan};
use crate::packets::Packet;

/// The protocol version we speak.
pub const PROTOCOL_VERSION: u8 = 5;

/// What each direction of a connection starts with: the msgpack array
/// `["NEO", 5]` (with "NEO" as `str`, the only one in the protocol).
pub const HANDSHAKE: [u8; 6] = [0x92, 0xa3, b'N', b'E', b'O', PROTOCOL_VERSION];

/// The handshake minus the version: a stream starting with these bytes is a
/// NEO stream, of our version or not.
pub const MAGIC: [u8; 5] = [0x92, 0xa3, b'N', b'E', b'O'];

/// NEO/py's receive buffer (`UNPACK_BUFFER_SIZE`): it cannot receive a
/// packet this large, so neither sends nor accepts one.
pub const PACKET_SIZE_MAX: usize = 0x400_0000;

/// One decoded packet and its message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message id, first element of the envelope: the sender's counter
    /// for a request or notification, the request's id echoed by an answer.
    pub msg_id: u32,
    /// The packet: its code and arguments, the rest of the envelope.
    pub packet: Packet,
}

/// Appends the encoding of `packet` with message id `msg_id`: the msgpack
/// array `[msg_id, code, [args...]]`, byte for byte as NEO/py writes it.
pub fn encode(msg_id: u32, packet: &Packet, out: &mut BytesMut) {
    msgpack::write_array_len(out, 3);
    msgpack::write_uint(out, msg_id as u64);
    msgpack::write_uint(out, packet.code() as u64);
    packet.encode_args(out);
}

/// The encoding of one packet, as a new buffer.
pub fn encode_to_bytes(msg_id: u32, packet: &Packet) -> Bytes {
    let mut out = BytesMut::new();
    encode(msg_id, packet, &mut out);
    out.freeze()
}

/// Decodes a buffer holding exactly one packet (no handshake).
///
/// Byte strings of the packet (object data, names) are slices of `bytes`:
/// nothing is copied.
pub fn decode_frame(bytes: Bytes) -> Result<Frame, DecodeError> {
    let mut reader = Reader::new(&bytes);
    let len = reader
        .read_array_len()
        .map_err(|_| DecodeError::BadEnvelope {
            reason: "a packet must be an array",
        })?;
    if len != 3 {
        return Err(DecodeError::BadEnvelope {
            reason: "a packet must be [msg_id, code, args]",
        });
    }
    let msg_id = reader
        .read_int()
        .ok()
        .and_then(|id| id.to_u64())
        .and_then(|id| u32::try_from(id).ok())
        .ok_or(DecodeError::BadEnvelope {
            reason: "message id is not a 32-bit unsigned integer",
        })?;
    let code = reader
        .read_int()
        .ok()
        .and_then(|code| code.to_u64())
        .ok_or(DecodeError::BadEnvelope {
            reason: "packet code is not an unsigned integer",
        })?;
    let packet = Packet::decode_args(code, &mut reader)?;
    if !reader.is_at_end() {
        return Err(DecodeError::TrailingBytes {
            offset: reader.position(),
        });
    }
    Ok(Frame { msg_id, packet })
}

/// Checks the start of a stream against [`HANDSHAKE`]: `Ok(true)` when the
/// whole handshake is there, `Ok(false)` when `prefix` is too short to tell.
pub fn check_handshake(prefix: &[u8]) -> Result<bool, DecodeError> {
    let len = prefix.len().min(HANDSHAKE.len());
    if prefix[..len] == HANDSHAKE[..len] {
        return Ok(len == HANDSHAKE.len());
    }
    if len == HANDSHAKE.len() && prefix[..MAGIC.len()] == MAGIC {
        return Err(DecodeError::VersionMismatch {
            version: prefix[MAGIC.len()],
        });
    }
    Err(DecodeError::NotNeo {
        prefix: prefix[..len].to_vec(),
    })
}

/// Incremental decoder of the bytes one peer sends on a connection.
///
/// Feed it bytes as they arrive, split anywhere (or read straight into
/// [`Decoder::buffer_mut`]), then call [`Decoder::next_frame`] until it
/// returns `Ok(None)`. The first error is final: the connection must be
/// closed (NEO/py closes it without answering).
///
/// A packet is only decoded once it is complete, and its byte strings are
/// slices of the receive buffer, so object data is never copied.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    handshake_pending: bool,
    /// Don't look for a packet until the buffer holds this many bytes: the
    /// last scan proved that fewer cannot make a complete packet. Keeps a
    /// large packet arriving in many reads from being rescanned each time.
    need: usize,
    packet_size_max: usize,
    failure: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for a stream that starts with the handshake.
    pub fn new() -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            handshake_pending: true,
            need: 0,
            packet_size_max: PACKET_SIZE_MAX,
            failure: None,
        }
    }

    /// A decoder for a stream of packets without handshake (a capture taken
    /// mid-connection, a fuzz input).
    pub fn without_handshake() -> Decoder {
        Decoder {
            handshake_pending: false,
            ..Decoder::new()
        }
    }

    /// Sets the largest packet accepted (lower for tests and
    /// memory-constrained nodes).
    pub fn with_packet_size_max(mut self, packet_size_max: usize) -> Decoder {
        self.packet_size_max = packet_size_max;
        self
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The receive buffer, for reading from a socket without an extra copy.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the peer's handshake has been received.
    pub fn handshake_done(&self) -> bool {
        !self.handshake_pending
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let result = self.decode_next();
        if let Err(failure) = &result {
            self.failure = Some(failure.clone());
        }
        result
    }

    fn decode_next(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.handshake_pending {
            if !check_handshake(&self.buf)? {
                return Ok(None);
            }
            let _ = self.buf.split_to(HANDSHAKE.len());
            self.handshake_pending = false;
        }
        if self.buf.is_empty() || self.buf.len() < self.need {
            return Ok(None);
        }
        match msgpack::object_len(&self.buf, self.packet_size_max)? {
            Scan::Incomplete(need) => {
                self.need = need;
                Ok(None)
            }
            Scan::Complete(len) => {
                self.need = 0;
                let bytes = self.buf.split_to(len).freeze();
                decode_frame(bytes).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::{Ping, Pong};

    #[test]
    fn handshake_errors_are_distinct() {
        assert_eq!(check_handshake(&[0x92, 0xa3]), Ok(false));
        assert_eq!(check_handshake(&HANDSHAKE), Ok(true));
        assert_eq!(
            check_handshake(&[0x92, 0xa3, b'N', b'E', b'O', 4]),
            Err(DecodeError::VersionMismatch { version: 4 })
        );
        assert!(matches!(
            check_handshake(b"GET / HTTP/1.1"),
            Err(DecodeError::NotNeo { .. })
        ));
        // A TLS ClientHello starts with 0x16.
        assert!(matches!(
            check_handshake(&[0x16, 0x03, 0x01]),
            Err(DecodeError::NotNeo { .. })
        ));
    }

    #[test]
    fn several_packets_in_one_read() {
        let mut bytes = BytesMut::from(&HANDSHAKE[..]);
        encode(5, &Ping {}.into(), &mut bytes);
        encode(5, &Pong {}.into(), &mut bytes);
        assert_eq!(&bytes[6..10], [0x93, 0x05, 0x02, 0x90]);
        let mut decoder = Decoder::new();
        decoder.feed(&bytes);
        let first = decoder.next_frame().unwrap().unwrap();
        let second = decoder.next_frame().unwrap().unwrap();
        assert_eq!(first.packet, Ping {}.into());
        assert_eq!(second.packet, Pong {}.into());
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn an_error_is_final() {
        let mut decoder = Decoder::new();
        decoder.feed(b"HELLO!");
        let error = decoder.next_frame().unwrap_err();
        assert!(matches!(error, DecodeError::NotNeo { .. }));
        decoder.feed(&HANDSHAKE);
        assert_eq!(decoder.next_frame().unwrap_err(), error);
    }
}
