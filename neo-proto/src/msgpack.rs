//! The subset of msgpack that NEO speaks, written and read by hand.
//!
//! NEO/py encodes with msgpack-python's `Packer(use_bin_type=True,
//! strict_types=True)`: every integer takes its smallest form (unsigned forms
//! for non-negative values), floats are always float64, byte strings are
//! always `bin`, containers take their smallest header, and enumerations are
//! `fixext1` objects. The writer below produces exactly those forms, which is
//! what makes our bytes equal to NEO/py's.
//!
//! The reader accepts every form a msgpack encoder may legally produce for a
//! value (any integer width, float32, any bin or container width), works on a
//! [`Bytes`] so that `bin` payloads are handed out as zero-copy slices, and
//! never panics: every malformed input is a [`DecodeError`].
//!
//! [`object_len`] finds where one msgpack object ends without building it and
//! without recursion, which is how the stream decoder frames packets.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

// ---------------------------------------------------------------- writing

/// `nil` (`c0`): a `None` in an optional field.
pub fn write_nil(out: &mut BytesMut) {
    out.put_u8(0xc0);
}

/// `false` (`c2`) or `true` (`c3`): NEO flags are real booleans, not 0/1.
pub fn write_bool(out: &mut BytesMut, value: bool) {
    out.put_u8(if value { 0xc3 } else { 0xc2 });
}

/// A non-negative integer in its smallest unsigned form.
pub fn write_uint(out: &mut BytesMut, value: u64) {
    if value < 0x80 {
        out.put_u8(value as u8);
    } else if value <= u8::MAX as u64 {
        out.put_u8(0xcc);
        out.put_u8(value as u8);
    } else if value <= u16::MAX as u64 {
        out.put_u8(0xcd);
        out.put_u16(value as u16);
    } else if value <= u32::MAX as u64 {
        out.put_u8(0xce);
        out.put_u32(value as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(value);
    }
}

/// A signed integer: unsigned forms when non-negative (as msgpack-python),
/// the smallest signed form otherwise.
pub fn write_int(out: &mut BytesMut, value: i64) {
    if value >= 0 {
        write_uint(out, value as u64);
    } else if value >= -32 {
        out.put_i8(value as i8);
    } else if value >= i8::MIN as i64 {
        out.put_u8(0xd0);
        out.put_i8(value as i8);
    } else if value >= i16::MIN as i64 {
        out.put_u8(0xd1);
        out.put_i16(value as i16);
    } else if value >= i32::MIN as i64 {
        out.put_u8(0xd2);
        out.put_i32(value as i32);
    } else {
        out.put_u8(0xd3);
        out.put_i64(value);
    }
}

/// Always float64 (`cb` + 8 bytes big-endian), as NEO/py: timestamps are
/// compared bit for bit between nodes.
pub fn write_f64(out: &mut BytesMut, value: f64) {
    out.put_u8(0xcb);
    out.put_f64(value);
}

fn write_len(out: &mut BytesMut, len: usize, markers: [u8; 3]) {
    if len <= u8::MAX as usize {
        out.put_u8(markers[0]);
        out.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(markers[1]);
        out.put_u16(len as u16);
    } else {
        out.put_u8(markers[2]);
        out.put_u32(u32::try_from(len).expect("msgpack object longer than 4 GiB"));
    }
}

/// A byte string as `bin` with its smallest header (`c4`, `c5`, `c6`): every
/// byte string NEO sends, text included.
pub fn write_bin(out: &mut BytesMut, value: &[u8]) {
    write_len(out, value.len(), [0xc4, 0xc5, 0xc6]);
    out.put_slice(value);
}

/// msgpack `str`. NEO never puts one inside a packet; it exists so that a
/// generic [`crate::Value`] decoded from a peer re-encodes faithfully.
pub fn write_str(out: &mut BytesMut, value: &[u8]) {
    if value.len() < 32 {
        out.put_u8(0xa0 | value.len() as u8);
        out.put_slice(value);
    } else {
        write_len(out, value.len(), [0xd9, 0xda, 0xdb]);
        out.put_slice(value);
    }
}

/// The header of an array of `len` elements, smallest form (`9x`, `dc`,
/// `dd`); the elements follow. Tuples and lists alike.
pub fn write_array_len(out: &mut BytesMut, len: usize) {
    if len < 16 {
        out.put_u8(0x90 | len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(0xdc);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdd);
        out.put_u32(u32::try_from(len).expect("msgpack array longer than 2^32"));
    }
}

/// The header of a map of `len` entries, smallest form (`8x`, `de`, `df`);
/// key and value of each entry follow.
pub fn write_map_len(out: &mut BytesMut, len: usize) {
    if len < 16 {
        out.put_u8(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(0xde);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdf);
        out.put_u32(u32::try_from(len).expect("msgpack map longer than 2^32"));
    }
}

/// An enumeration item: `fixext1` whose payload is the item's value as a
/// positive fixint (every NEO enum value is below 128).
pub fn write_enum(out: &mut BytesMut, ext_code: u8, value: u8) {
    debug_assert!(value < 0x80);
    out.put_u8(0xd4);
    out.put_u8(ext_code);
    out.put_u8(value);
}

// ---------------------------------------------------------------- reading

/// What a msgpack marker byte announces; used for error messages.
pub fn marker_name(marker: u8) -> &'static str {
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "int",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "str",
        0xc0 => "nil",
        0xc1 => "reserved marker 0xc1",
        0xc2 | 0xc3 => "bool",
        0xc4..=0xc6 => "bin",
        0xc7..=0xc9 | 0xd4..=0xd8 => "ext",
        0xca | 0xcb => "float",
    }
}

/// An integer as read from the wire, before it is narrowed to a field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int {
    /// A non-negative integer, whichever form (signed or not) carried it.
    Unsigned(u64),
    /// A negative integer (always below zero).
    Negative(i64),
}

impl Int {
    /// The value, `None` if negative.
    pub fn to_u64(self) -> Option<u64> {
        match self {
            Int::Unsigned(v) => Some(v),
            Int::Negative(_) => None,
        }
    }

    /// The value, `None` above `i64::MAX`.
    pub fn to_i64(self) -> Option<i64> {
        match self {
            Int::Unsigned(v) => i64::try_from(v).ok(),
            Int::Negative(v) => Some(v),
        }
    }
}

/// A cursor over one complete msgpack object (a packet's bytes).
///
/// `bin` payloads are returned as slices of the underlying [`Bytes`]: decoding
/// object data copies nothing.
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    /// Nesting depth of generic values being decoded (see [`crate::Value`]).
    pub(crate) depth: u32,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes consumed so far: the offset that [`DecodeError`]s report.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let bytes: &'a [u8] = self.buf;
        let slice = &bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn take_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn take_be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The marker byte (type and often length) of the next value, without
    /// consuming it.
    pub fn peek_marker(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    fn unexpected(&self, expected: &'static str, marker: u8) -> DecodeError {
        DecodeError::UnexpectedType {
            expected,
            found: marker_name(marker),
            offset: self.pos,
        }
    }

    /// Consumes a nil if one is next; tells whether it did.
    pub fn read_nil_if_present(&mut self) -> Result<bool, DecodeError> {
        if self.peek_marker()? == 0xc0 {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Consumes a `nil`; any other value is an error.
    pub fn read_nil(&mut self) -> Result<(), DecodeError> {
        let marker = self.peek_marker()?;
        if marker != 0xc0 {
            return Err(self.unexpected("nil", marker));
        }
        self.pos += 1;
        Ok(())
    }

    /// A boolean (`c2` or `c3`); integers are not accepted for it.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        let marker = self.peek_marker()?;
        let value = match marker {
            0xc2 => false,
            0xc3 => true,
            _ => return Err(self.unexpected("bool", marker)),
        };
        self.pos += 1;
        Ok(value)
    }

    /// An integer of any width and signedness, normalised so that a value
    /// reads the same whatever form the peer chose.
    pub fn read_int(&mut self) -> Result<Int, DecodeError> {
        let marker = self.peek_marker()?;
        if let 0x00..=0x7f | 0xe0..=0xff = marker {
            self.pos += 1;
            return Ok(if marker < 0x80 {
                Int::Unsigned(marker as u64)
            } else {
                Int::Negative(marker as i8 as i64)
            });
        }
        if !(0xcc..=0xd3).contains(&marker) {
            return Err(self.unexpected("int", marker));
        }
        self.pos += 1;
        let signed = match marker {
            0xcc => return Ok(Int::Unsigned(self.take_u8()? as u64)),
            0xcd => return Ok(Int::Unsigned(u16::from_be_bytes(self.take_be()?) as u64)),
            0xce => return Ok(Int::Unsigned(u32::from_be_bytes(self.take_be()?) as u64)),
            0xcf => return Ok(Int::Unsigned(u64::from_be_bytes(self.take_be()?))),
            0xd0 => self.take_u8()? as i8 as i64,
            0xd1 => i16::from_be_bytes(self.take_be()?) as i64,
            0xd2 => i32::from_be_bytes(self.take_be()?) as i64,
            _ => i64::from_be_bytes(self.take_be()?),
        };
        // Signed forms may carry non-negative values; normalise so that a
        // value has one representation whatever width the peer chose.
        Ok(if signed >= 0 {
            Int::Unsigned(signed as u64)
        } else {
            Int::Negative(signed)
        })
    }

    /// A float: float64, or float32 widened (NEO/py accepts both).
    pub fn read_f64(&mut self) -> Result<f64, DecodeError> {
        let marker = self.peek_marker()?;
        match marker {
            0xca => {
                self.pos += 1;
                Ok(f32::from_be_bytes(self.take_be()?) as f64)
            }
            0xcb => {
                self.pos += 1;
                Ok(f64::from_be_bytes(self.take_be()?))
            }
            _ => Err(self.unexpected("float", marker)),
        }
    }

    fn read_len(&mut self, width: usize) -> Result<usize, DecodeError> {
        Ok(match width {
            1 => self.take_u8()? as usize,
            2 => u16::from_be_bytes(self.take_be()?) as usize,
            _ => u32::from_be_bytes(self.take_be()?) as usize,
        })
    }

    fn slice(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        let slice = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(slice)
    }

    /// A `bin` payload borrowed from the input (for fixed-size values that
    /// are copied out anyway: no reference count to touch).
    pub fn read_bin_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let marker = self.peek_marker()?;
        let width = match marker {
            0xc4 => 1,
            0xc5 => 2,
            0xc6 => 4,
            _ => return Err(self.unexpected("bin", marker)),
        };
        self.pos += 1;
        let len = self.read_len(width)?;
        self.take(len)
    }

    /// A `bin` payload, as a zero-copy slice of the input.
    pub fn read_bin(&mut self) -> Result<Bytes, DecodeError> {
        let marker = self.peek_marker()?;
        let width = match marker {
            0xc4 => 1,
            0xc5 => 2,
            0xc6 => 4,
            _ => return Err(self.unexpected("bin", marker)),
        };
        self.pos += 1;
        let len = self.read_len(width)?;
        self.slice(len)
    }

    /// A `str` payload (only generic values may hold one).
    pub fn read_str(&mut self) -> Result<Bytes, DecodeError> {
        let marker = self.peek_marker()?;
        let len = match marker {
            0xa0..=0xbf => {
                self.pos += 1;
                (marker & 0x1f) as usize
            }
            0xd9..=0xdb => {
                self.pos += 1;
                self.read_len(1 << (marker - 0xd9))?
            }
            _ => return Err(self.unexpected("str", marker)),
        };
        self.slice(len)
    }

    /// The header of an array: its number of elements, which the caller
    /// then reads. Fails early if fewer bytes remain than elements.
    pub fn read_array_len(&mut self) -> Result<usize, DecodeError> {
        let marker = self.peek_marker()?;
        let len = match marker {
            0x90..=0x9f => {
                self.pos += 1;
                (marker & 0x0f) as usize
            }
            0xdc => {
                self.pos += 1;
                self.read_len(2)?
            }
            0xdd => {
                self.pos += 1;
                self.read_len(4)?
            }
            _ => return Err(self.unexpected("array", marker)),
        };
        // Every element takes at least one byte: a header announcing more
        // elements than there are bytes left is truncated input, and checking
        // it here keeps `Vec::with_capacity(len)` bounded by the input size.
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(len)
    }

    /// The header of a map: its number of entries, each a key then a value,
    /// which the caller then reads. Fails early if fewer bytes remain than
    /// two per entry.
    pub fn read_map_len(&mut self) -> Result<usize, DecodeError> {
        let marker = self.peek_marker()?;
        let len = match marker {
            0x80..=0x8f => {
                self.pos += 1;
                (marker & 0x0f) as usize
            }
            0xde => {
                self.pos += 1;
                self.read_len(2)?
            }
            0xdf => {
                self.pos += 1;
                self.read_len(4)?
            }
            _ => return Err(self.unexpected("map", marker)),
        };
        if len.saturating_mul(2) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(len)
    }

    /// An ext object: `(type code, payload)`. Any ext width is accepted.
    pub fn read_ext(&mut self) -> Result<(i8, &'a [u8]), DecodeError> {
        let marker = self.peek_marker()?;
        let len = match marker {
            0xd4..=0xd8 => {
                self.pos += 1;
                1 << (marker - 0xd4)
            }
            0xc7..=0xc9 => {
                self.pos += 1;
                self.read_len(1 << (marker - 0xc7))?
            }
            _ => return Err(self.unexpected("ext", marker)),
        };
        let code = self.take_u8()? as i8;
        let payload = self.take(len)?;
        Ok((code, payload))
    }

    /// An enumeration item: ext `ext_code` whose payload is a msgpack
    /// positive integer. Returns the item's integer value.
    pub fn read_enum(&mut self, ext_code: u8) -> Result<u8, DecodeError> {
        let offset = self.pos;
        let (code, payload) = self.read_ext()?;
        if code as u8 != ext_code {
            return Err(DecodeError::UnexpectedExt {
                expected: ext_code,
                found: code,
                offset,
            });
        }
        enum_payload(payload).ok_or(DecodeError::BadEnumPayload { offset })
    }
}

/// The integer carried by an enum ext payload (itself a msgpack integer,
/// in practice one positive-fixint byte).
pub fn enum_payload(payload: &[u8]) -> Option<u8> {
    let value: u64 = match *payload {
        [byte] if byte < 0x80 => byte as u64,
        [0xcc, byte] => byte as u64,
        [0xcd, ref rest @ ..] if rest.len() == 2 => u16::from_be_bytes([rest[0], rest[1]]) as u64,
        [0xd0, byte] if (byte as i8) >= 0 => byte as u64,
        _ => return None,
    };
    u8::try_from(value).ok()
}

// ---------------------------------------------------------------- framing

/// Result of looking for the end of a msgpack object in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The object is complete and takes this many bytes.
    Complete(usize),
    /// The buffer holds a prefix of the object; at least this many bytes
    /// (in total) are needed before it can be complete.
    Incomplete(usize),
}

/// Finds the length of the msgpack object at the start of `buf` without
/// decoding it and without recursion (arbitrarily deep nesting in hostile
/// input costs nothing but a counter). Fails on the reserved marker `0xc1`,
/// and as soon as the object is known to exceed `max_len` bytes.
pub fn object_len(buf: &[u8], max_len: usize) -> Result<Scan, DecodeError> {
    let mut pos = 0usize;
    // Number of objects still to skip: starts at one, each container adds
    // its children. u64 so that hostile headers cannot overflow it.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let Some(&marker) = buf.get(pos) else {
            return Ok(Scan::Incomplete(pos + 1));
        };
        // (header length, payload length, children)
        let (header, payload, children): (usize, usize, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * (marker & 0x0f) as u64),
            0x90..=0x9f => (1, 0, (marker & 0x0f) as u64),
            0xa0..=0xbf => (1, (marker & 0x1f) as usize, 0),
            0xc1 => return Err(DecodeError::ReservedMarker { offset: pos }),
            0xc4 | 0xd9 => (2, 0, 0),
            0xc5 | 0xda => (3, 0, 0),
            0xc6 | 0xdb => (5, 0, 0),
            0xc7 => (3, 0, 0),
            0xc8 => (4, 0, 0),
            0xc9 => (6, 0, 0),
            0xca => (1, 4, 0),
            0xcb => (1, 8, 0),
            0xcc | 0xd0 => (1, 1, 0),
            0xcd | 0xd1 => (1, 2, 0),
            0xce | 0xd2 => (1, 4, 0),
            0xcf | 0xd3 => (1, 8, 0),
            0xd4 => (2, 1, 0),
            0xd5 => (2, 2, 0),
            0xd6 => (2, 4, 0),
            0xd7 => (2, 8, 0),
            0xd8 => (2, 16, 0),
            0xdc | 0xde => (3, 0, 0),
            0xdd | 0xdf => (5, 0, 0),
        };
        if buf.len() < pos + header {
            return Ok(Scan::Incomplete(pos + header));
        }
        let field = &buf[pos + 1..pos + header];
        let be_len = |bytes: &[u8]| bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        let (payload, children) = match marker {
            0xc4..=0xc6 | 0xd9..=0xdb => (be_len(field), 0),
            // ext8/16/32: length field, then the type byte is part of the header
            0xc7..=0xc9 => (be_len(&field[..field.len() - 1]), 0),
            0xdc | 0xdd => (0, be_len(field) as u64),
            0xde | 0xdf => (0, 2 * be_len(field) as u64),
            _ => (payload, children),
        };
        pos = pos
            .checked_add(header)
            .and_then(|p| p.checked_add(payload))
            .ok_or(DecodeError::Oversized { limit: max_len })?;
        pending += children;
        // Each pending object takes at least one more byte.
        let min_total = (pos as u64).saturating_add(pending);
        if min_total > max_len as u64 {
            return Err(DecodeError::Oversized { limit: max_len });
        }
        if buf.len() < pos {
            return Ok(Scan::Incomplete(min_total as usize));
        }
    }
    Ok(Scan::Complete(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut out);
        out.to_vec()
    }

    #[test]
    fn integers_take_their_smallest_form() {
        assert_eq!(encoded(|o| write_uint(o, 0)), [0x00]);
        assert_eq!(encoded(|o| write_uint(o, 127)), [0x7f]);
        assert_eq!(encoded(|o| write_uint(o, 128)), [0xcc, 0x80]);
        assert_eq!(encoded(|o| write_uint(o, 256)), [0xcd, 0x01, 0x00]);
        assert_eq!(encoded(|o| write_uint(o, 65536)), [0xce, 0, 1, 0, 0]);
        assert_eq!(
            encoded(|o| write_uint(o, 1 << 32)),
            [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(encoded(|o| write_int(o, 5)), [0x05]);
        assert_eq!(encoded(|o| write_int(o, -1)), [0xff]);
        assert_eq!(encoded(|o| write_int(o, -32)), [0xe0]);
        assert_eq!(encoded(|o| write_int(o, -33)), [0xd0, 0xdf]);
        assert_eq!(encoded(|o| write_int(o, -129)), [0xd1, 0xff, 0x7f]);
        assert_eq!(
            encoded(|o| write_int(o, -0x0fff_ffff)),
            [0xd2, 0xf0, 0x00, 0x00, 0x01]
        );
    }

    #[test]
    fn containers_take_their_smallest_header() {
        assert_eq!(encoded(|o| write_array_len(o, 0)), [0x90]);
        assert_eq!(encoded(|o| write_array_len(o, 15)), [0x9f]);
        assert_eq!(encoded(|o| write_array_len(o, 16)), [0xdc, 0, 16]);
        assert_eq!(
            encoded(|o| write_array_len(o, 70000)),
            [0xdd, 0, 1, 0x11, 0x70]
        );
        assert_eq!(encoded(|o| write_map_len(o, 1)), [0x81]);
        assert_eq!(encoded(|o| write_map_len(o, 16)), [0xde, 0, 16]);
        assert_eq!(encoded(|o| write_bin(o, b"")), [0xc4, 0]);
        assert_eq!(encoded(|o| write_bin(o, &[7; 256]))[..3], [0xc5, 1, 0]);
        assert_eq!(encoded(|o| write_str(o, b"NEO")), [0xa3, b'N', b'E', b'O']);
    }

    #[test]
    fn reader_accepts_every_integer_width() {
        for (bytes, value) in [
            (vec![0xcc, 5], Int::Unsigned(5)),
            (vec![0xcd, 0, 5], Int::Unsigned(5)),
            (vec![0xce, 0, 0, 0, 5], Int::Unsigned(5)),
            (vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 5], Int::Unsigned(5)),
            (vec![0xd0, 5], Int::Unsigned(5)),
            (vec![0xd1, 0xff, 0xfe], Int::Negative(-2)),
            (
                vec![0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Int::Negative(-1),
            ),
        ] {
            let bytes = Bytes::from(bytes);
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.read_int().unwrap(), value);
            assert!(reader.is_at_end());
        }
    }

    #[test]
    fn bin_is_a_slice_of_the_input() {
        let bytes = Bytes::from(encoded(|o| write_bin(o, b"hello")));
        let mut reader = Reader::new(&bytes);
        let bin = reader.read_bin().unwrap();
        assert_eq!(&bin[..], b"hello");
        assert_eq!(bin.as_ptr(), bytes[2..].as_ptr());
    }

    #[test]
    fn object_len_scans_without_building() {
        let obj = encoded(|o| {
            write_array_len(o, 3);
            write_uint(o, 1);
            write_map_len(o, 1);
            write_bin(o, b"k");
            write_f64(o, 1.5);
            write_enum(o, 4, 2);
        });
        assert_eq!(
            object_len(&obj, 1 << 20).unwrap(),
            Scan::Complete(obj.len())
        );
        for cut in 0..obj.len() {
            match object_len(&obj[..cut], 1 << 20).unwrap() {
                Scan::Incomplete(need) => assert!(need > cut && need <= obj.len()),
                Scan::Complete(_) => panic!("prefix of {cut} bytes reported complete"),
            }
        }
    }

    #[test]
    fn object_len_refuses_oversized_and_survives_deep_nesting() {
        // A bin announcing 100 MiB is refused from its header alone.
        let header = [0xc6, 0x06, 0x40, 0x00, 0x00];
        assert!(matches!(
            object_len(&header, 64 << 20),
            Err(DecodeError::Oversized { .. })
        ));
        // A million nested arrays: no recursion, so no stack overflow.
        let deep = vec![0x91u8; 1_000_000];
        assert!(matches!(
            object_len(&deep, 64 << 20).unwrap(),
            Scan::Incomplete(_)
        ));
        assert!(matches!(
            object_len(&[0x92, 0xc1], 100),
            Err(DecodeError::ReservedMarker { offset: 1 })
        ));
    }
}
