//! How each field type is written, read and rendered.
//!
//! Every type that appears in a packet implements [`Wire`]. Composite
//! types (options, lists, maps, records) are built from their parts, so a
//! packet's encoder, decoder and rendering all follow from its field types.

use std::fmt;

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use crate::enums::{CellState, ClusterState, ErrorCode, NodeState, NodeType};
use crate::error::DecodeError;
use crate::ids::{Checksum, Nid, Oid, Ptid, Tid, Timestamp};
use crate::msgpack::{self, Reader};

/// A value that has a NEO wire form.
pub trait Wire: Sized {
    /// Appends the value's msgpack form, exactly as NEO/py writes it.
    fn encode(&self, out: &mut BytesMut);
    /// Reads the value, accepting every msgpack form NEO/py would accept.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Writes the readable rendering used by snapshots and the CLI:
    /// OIDs/TIDs in hex, enums by name, Python-like containers.
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// Adapts a [`Wire`] value to [`fmt::Display`] through its rendering.
pub struct Rendered<'a, T>(pub &'a T);

impl<T: Wire> fmt::Display for Rendered<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render(f)
    }
}

fn out_of_range(expected: &'static str, offset: usize) -> DecodeError {
    DecodeError::OutOfRange { expected, offset }
}

macro_rules! unsigned_wire {
    ($($ty:ty),*) => {$(
        impl Wire for $ty {
            fn encode(&self, out: &mut BytesMut) {
                msgpack::write_uint(out, *self as u64);
            }
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let offset = reader.position();
                reader
                    .read_int()?
                    .to_u64()
                    .and_then(|v| <$ty>::try_from(v).ok())
                    .ok_or_else(|| out_of_range(stringify!($ty), offset))
            }
            fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    )*};
}

unsigned_wire!(u8, u16, u32, u64);

impl Wire for i64 {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_int(out, *self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.position();
        reader
            .read_int()?
            .to_i64()
            .ok_or_else(|| out_of_range("i64", offset))
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Wire for bool {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_bool(out, *self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_bool()
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self { "True" } else { "False" })
    }
}

impl Wire for Timestamp {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_f64(out, self.0);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_f64().map(Timestamp)
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Renders a byte string as a Python bytes literal, abbreviated when long.
pub fn render_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const SHOWN_MAX: usize = 48;
    let shown = &bytes[..bytes.len().min(SHOWN_MAX)];
    f.write_str("b\"")?;
    for &byte in shown {
        match byte {
            b'"' => f.write_str("\\\"")?,
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            0x20..=0x7e => write!(f, "{}", byte as char)?,
            _ => write!(f, "\\x{byte:02x}")?,
        }
    }
    f.write_str("\"")?;
    if shown.len() < bytes.len() {
        write!(f, "…({} bytes)", bytes.len())?;
    }
    Ok(())
}

impl Wire for Bytes {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_bin(out, self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_bin()
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render_bytes(f, self)
    }
}

fn read_fixed<const N: usize>(reader: &mut Reader<'_>) -> Result<[u8; N], DecodeError> {
    let offset = reader.position();
    let bin = reader.read_bin_slice()?;
    <[u8; N]>::try_from(bin).map_err(|_| DecodeError::BadLength {
        expected: N,
        found: bin.len(),
        offset,
    })
}

macro_rules! p64_wire {
    ($($ty:ident),*) => {$(
        impl Wire for $ty {
            fn encode(&self, out: &mut BytesMut) {
                msgpack::write_bin(out, &self.to_be_bytes());
            }
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                read_fixed::<8>(reader).map($ty::from_be_bytes)
            }
            fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    )*};
}

p64_wire!(Oid, Tid);

impl Wire for Checksum {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_bin(out, &self.0);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_fixed::<20>(reader).map(Checksum)
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Wire for Nid {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_int(out, self.0 as i64);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.position();
        reader
            .read_int()?
            .to_i64()
            .and_then(|v| i32::try_from(v).ok())
            .map(Nid)
            .ok_or_else(|| out_of_range("node id", offset))
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Wire for Ptid {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_uint(out, self.0);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        u64::decode(reader).map(Ptid)
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

macro_rules! enum_wire {
    ($($ty:ident),*) => {$(
        impl Wire for $ty {
            fn encode(&self, out: &mut BytesMut) {
                msgpack::write_enum(out, $ty::EXT_CODE, *self as u8);
            }
            fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let value = reader.read_enum($ty::EXT_CODE)?;
                $ty::from_u8(value).ok_or(DecodeError::InvalidEnumValue {
                    enumeration: $ty::PY_NAME,
                    value: value as u64,
                })
            }
            fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

enum_wire!(CellState, ClusterState, NodeState, NodeType);

/// In the Error packet the code is a plain integer, not an ext object.
impl Wire for ErrorCode {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_uint(out, *self as u64);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let value = u8::decode(reader)?;
        ErrorCode::from_u8(value).ok_or(DecodeError::InvalidEnumValue {
            enumeration: ErrorCode::PY_NAME,
            value: value as u64,
        })
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<T: Wire> Wire for Option<T> {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            None => msgpack::write_nil(out),
            Some(value) => value.encode(out),
        }
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if reader.read_nil_if_present()? {
            Ok(None)
        } else {
            T::decode(reader).map(Some)
        }
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            None => f.write_str("None"),
            Some(value) => value.render(f),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn encode(&self, out: &mut BytesMut) {
        encode_list(self, out)
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_list(reader, Vec::with_capacity, Vec::push)
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render_list(self, f)
    }
}

/// Short lists (a partition table row's cells) without an allocation each.
impl<T: Wire, const N: usize> Wire for SmallVec<[T; N]> {
    fn encode(&self, out: &mut BytesMut) {
        encode_list(self, out)
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_list(reader, SmallVec::with_capacity, SmallVec::push)
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render_list(self, f)
    }
}

fn encode_list<T: Wire>(items: &[T], out: &mut BytesMut) {
    msgpack::write_array_len(out, items.len());
    for item in items {
        item.encode(out);
    }
}

fn decode_list<T: Wire, L>(
    reader: &mut Reader<'_>,
    with_capacity: fn(usize) -> L,
    push: fn(&mut L, T),
) -> Result<L, DecodeError> {
    let len = reader.read_array_len()?;
    let mut items = with_capacity(len);
    for _ in 0..len {
        push(&mut items, T::decode(reader)?);
    }
    Ok(items)
}

/// `[a, b, …]`, each item rendered as the protocol documentation shows it.
pub(crate) fn render_list<T: Wire>(items: &[T], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item.render(f)?;
    }
    f.write_str("]")
}

/// A msgpack map, kept as a list of entries in wire order (NEO/py emits
/// dict insertion order; keeping it makes re-encoding byte-identical).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Map<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Map(Vec::new())
    }
}

impl<K: PartialEq, V> Map<K, V> {
    /// An empty map (`80` on the wire).
    pub fn new() -> Self {
        Map(Vec::new())
    }

    /// The value of the first entry with this key.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        self.0
            .iter()
            .find(|(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// Number of entries, duplicate keys included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.0.iter()
    }
}

impl<K, V> FromIterator<(K, V)> for Map<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Map(iter.into_iter().collect())
    }
}

impl<K: Wire, V: Wire> Wire for Map<K, V> {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_map_len(out, self.0.len());
        for (key, value) in &self.0 {
            key.encode(out);
            value.encode(out);
        }
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = reader.read_map_len()?;
        let mut entries = Vec::with_capacity(len);
        for _ in 0..len {
            let key = K::decode(reader)?;
            let value = V::decode(reader)?;
            entries.push((key, value));
        }
        Ok(Map(entries))
    }
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            key.render(f)?;
            f.write_str(": ")?;
            value.render(f)?;
        }
        f.write_str("}")
    }
}

/// Reads the header of a fixed-size array (a record) and checks its size.
pub(crate) fn read_record_len(
    reader: &mut Reader<'_>,
    name: &'static str,
    expected: usize,
) -> Result<(), DecodeError> {
    let found = reader.read_array_len()?;
    if found != expected {
        return Err(DecodeError::Arity {
            packet: name,
            expected,
            found,
        });
    }
    Ok(())
}

/// Declares a record: a struct that travels as a fixed-size msgpack array of
/// its fields, in declaration order, and renders as a Python tuple.
macro_rules! wire_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::wire::Wire for $name {
            fn encode(&self, out: &mut bytes::BytesMut) {
                $crate::msgpack::write_array_len(out, <[&str]>::len(&[$(stringify!($field)),*]));
                $($crate::wire::Wire::encode(&self.$field, out);)*
            }
            fn decode(reader: &mut $crate::msgpack::Reader<'_>) -> Result<Self, $crate::DecodeError> {
                $crate::wire::read_record_len(reader, stringify!($name), <[&str]>::len(&[$(stringify!($field)),*]))?;
                Ok($name { $($field: <$ty as $crate::wire::Wire>::decode(reader)?,)* })
            }
            fn render(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("(")?;
                let mut _first = true;
                $(
                    if !_first {
                        f.write_str(", ")?;
                    }
                    _first = false;
                    $crate::wire::Wire::render(&self.$field, f)?;
                )*
                f.write_str(")")
            }
        }

        #[cfg(feature = "arbitrary")]
        impl $crate::arb::Generate for $name {
            fn generate(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Self> {
                Ok($name { $($field: <$ty as $crate::arb::Generate>::generate(u)?,)* })
            }
        }

        #[cfg(feature = "arbitrary")]
        impl<'a> arbitrary::Arbitrary<'a> for $name {
            fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
                <$name as $crate::arb::Generate>::generate(u)
            }
        }
    };
}

pub(crate) use wire_record;
