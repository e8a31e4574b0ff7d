//! `neo wire decode`: the dissector an operator runs on a capture.

use std::fmt;
use std::io::{self, Read, Write};

use neo_proto::{DecodeError, Decoder, HANDSHAKE};

/// msgpack header of a 3-element array: the first byte of every packet.
const PACKET_ARRAY_MARKER: u8 = 0x93;

/// Why a stream could not be dissected to its end.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// `--hex` input with a character that is not a hex digit or space.
    BadHex {
        offset: usize,
        byte: u8,
    },
    /// An odd number of hex digits.
    OddHex,
    /// The bytes at `offset` are not a packet.
    Decode {
        offset: usize,
        error: DecodeError,
    },
    /// The stream ends inside a packet (or the handshake).
    Incomplete {
        offset: usize,
        present: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(error) => write!(f, "{error}"),
            WireError::BadHex { offset, byte } => write!(
                f,
                "--hex input has {:?} at character {offset}, expected hex digits",
                *byte as char
            ),
            WireError::OddHex => write!(f, "--hex input has an odd number of digits"),
            WireError::Decode { offset, error } => {
                write!(f, "undecodable bytes at offset {offset}: {error}")
            }
            WireError::Incomplete { offset, present } => write!(
                f,
                "stream ends inside a packet starting at offset {offset} (only {present} bytes of it)"
            ),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(error: io::Error) -> Self {
        WireError::Io(error)
    }
}

/// Turns hex text (whitespace ignored) into bytes, keeping a nibble
/// between calls.
struct HexDecoder {
    pending: Option<u8>,
    offset: usize,
}

impl HexDecoder {
    fn push(&mut self, text: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        for &byte in text {
            self.offset += 1;
            if byte.is_ascii_whitespace() {
                continue;
            }
            let nibble = (byte as char).to_digit(16).ok_or(WireError::BadHex {
                offset: self.offset - 1,
                byte,
            })? as u8;
            match self.pending.take() {
                None => self.pending = Some(nibble),
                Some(high) => out.push(high << 4 | nibble),
            }
        }
        Ok(())
    }
}

/// Reads a NEO byte stream from `input` and prints one line per packet to
/// `output`: the message id, then the packet rendered (name and fields).
///
/// The stream may start with the handshake (a capture of a whole
/// connection, checked) or directly with packets (a capture taken
/// mid-connection). Returns the number of packets printed; on error, what
/// decoded has been printed already.
pub fn decode_stream(
    input: &mut dyn Read,
    hex: bool,
    output: &mut dyn Write,
) -> Result<usize, WireError> {
    let mut decoder: Option<Decoder> = None;
    let mut hex_decoder = HexDecoder {
        pending: None,
        offset: 0,
    };
    let mut chunk = vec![0u8; 64 * 1024];
    let mut bytes = Vec::new();
    let mut fed = 0usize;
    let mut packets = 0usize;
    loop {
        let read = input.read(&mut chunk)?;
        bytes.clear();
        if hex {
            hex_decoder.push(&chunk[..read], &mut bytes)?;
        } else {
            bytes.extend_from_slice(&chunk[..read]);
        }
        let decoder = decoder.get_or_insert_with(|| {
            // Every packet is a 3-element array (0x93): a stream starting
            // with one was captured mid-connection; anything else must be
            // the handshake.
            if bytes.first() == Some(&PACKET_ARRAY_MARKER) {
                Decoder::without_handshake()
            } else {
                Decoder::new()
            }
        });
        decoder.feed(&bytes);
        fed += bytes.len();
        loop {
            // Where the next packet starts in the stream: after what was
            // decoded, and after the handshake if it is still to be read.
            let handshake_len = if decoder.handshake_done() {
                0
            } else {
                HANDSHAKE.len()
            };
            let start = fed - decoder.buffered() + handshake_len;
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    writeln!(output, "{} {}", frame.msg_id, frame.packet)?;
                    packets += 1;
                }
                Ok(None) => break,
                Err(error) => {
                    let offset = if error.is_handshake() { 0 } else { start };
                    return Err(WireError::Decode { offset, error });
                }
            }
        }
        if read == 0 {
            if hex && hex_decoder.pending.is_some() {
                return Err(WireError::OddHex);
            }
            if decoder.buffered() > 0 {
                return Err(WireError::Incomplete {
                    offset: fed - decoder.buffered(),
                    present: decoder.buffered(),
                });
            }
            return Ok(packets);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_proto::{encode, AskObject, Oid, Ping};

    fn stream() -> Vec<u8> {
        let mut out = bytes::BytesMut::from(&HANDSHAKE[..]);
        encode(0, &Ping {}.into(), &mut out);
        encode(
            7,
            &AskObject {
                oid: Oid(1),
                at: None,
                before: None,
            }
            .into(),
            &mut out,
        );
        out.to_vec()
    }

    fn run(input: &[u8], hex: bool) -> (Result<usize, WireError>, String) {
        let mut output = Vec::new();
        let result = decode_stream(&mut &input[..], hex, &mut output);
        (result, String::from_utf8(output).unwrap())
    }

    #[test]
    fn prints_one_line_per_packet() {
        let (result, output) = run(&stream(), false);
        assert_eq!(result.unwrap(), 2);
        assert_eq!(
            output,
            "0 Ping()\n7 AskObject(oid=0000000000000001, at=None, before=None)\n"
        );
    }

    #[test]
    fn hex_input_with_whitespace() {
        let text: String = stream().iter().map(|b| format!("{b:02x} ")).collect();
        let (result, output) = run(text.as_bytes(), true);
        assert_eq!(result.unwrap(), 2);
        assert!(output.starts_with("0 Ping()\n"));
        assert!(matches!(run(b"93 0", true).0, Err(WireError::OddHex)));
        assert!(matches!(
            run(b"93 zz", true).0,
            Err(WireError::BadHex { offset: 3, .. })
        ));
    }

    #[test]
    fn errors_come_after_what_decoded_with_the_offset() {
        let mut bytes = stream();
        let good_len = bytes.len();
        bytes.extend_from_slice(&[0x93, 0x01, 0x4a, 0x90]); // unknown code
        let (result, output) = run(&bytes, false);
        assert_eq!(output.lines().count(), 2);
        match result {
            Err(WireError::Decode { offset, error }) => {
                assert_eq!(offset, good_len);
                assert_eq!(error, DecodeError::UnknownCode { code: 0x4a });
            }
            other => panic!("{other:?}"),
        }
        let truncated = &stream()[..good_len - 3];
        let (result, output) = run(truncated, false);
        assert_eq!(output.lines().count(), 1);
        assert!(matches!(result, Err(WireError::Incomplete { .. })));
    }

    #[test]
    fn packets_without_handshake() {
        let bytes = &stream()[HANDSHAKE.len()..];
        assert_eq!(run(bytes, false).0.unwrap(), 2);
    }

    #[test]
    fn wrong_version_is_reported_as_such() {
        let mut bytes = stream();
        bytes[5] = 4;
        let (result, _) = run(&bytes, false);
        assert!(matches!(
            result,
            Err(WireError::Decode {
                offset: 0,
                error: DecodeError::VersionMismatch { version: 4 }
            })
        ));
    }
}
