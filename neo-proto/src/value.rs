//! A generic msgpack value, for the few fields NEO leaves open: the `extra`
//! properties of RequestIdentification and NotifyMonitorInformation's info.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::enums::{CellState, ClusterState, ErrorCode, NodeState, NodeType};
use crate::error::DecodeError;
use crate::msgpack::{self, Int, Reader};
use crate::wire::{render_bytes, render_list, Wire};

/// Deepest nesting of generic values accepted from a peer. NEO's open
/// fields hold a list of lists at most; the bound keeps hostile input from
/// recursing without limit.
pub const VALUE_DEPTH_MAX: u32 = 32;

/// Any msgpack value NEO/py may put in an open field.
///
/// Integers are canonical: non-negative values are [`Value::UInt`] and only
/// negative ones are [`Value::Int`] (msgpack does not tell them apart
/// otherwise); use [`Value::int`] to build one from an `i64`. Floats compare
/// bitwise.
#[derive(Debug, Clone)]
pub enum Value {
    /// `nil` (Python's `None`).
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    /// A float (float64 on the wire; a float32 received is widened).
    Float(f64),
    /// A byte string (`bin`): what NEO/py sends for every string.
    Bin(Bytes),
    /// msgpack `str`: never sent by NEO/py inside packets, kept so that a
    /// peer's value re-encodes as it came.
    Str(Bytes),
    /// An array (a Python tuple, list or set).
    Array(Vec<Value>),
    /// A map, entries in wire order (keys may be any value, e.g. cell
    /// states in NotifyMonitorInformation's `pt_summary`).
    Map(Vec<(Value, Value)>),
    /// A CellStates item (ext code 0).
    CellState(CellState),
    /// A ClusterStates item (ext code 1).
    ClusterState(ClusterState),
    /// An ErrorCodes item (ext code 2: registered by NEO/py but never
    /// sent; the Error packet carries its code as a plain integer).
    ErrorCode(ErrorCode),
    /// A NodeStates item (ext code 3).
    NodeState(NodeState),
    /// A NodeTypes item (ext code 4).
    NodeType(NodeType),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Nil, Nil) => true,
            (Bool(a), Bool(b)) => a == b,
            (UInt(a), UInt(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Bin(a), Bin(b)) | (Str(a), Str(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (CellState(a), CellState(b)) => a == b,
            (ClusterState(a), ClusterState(b)) => a == b,
            (ErrorCode(a), ErrorCode(b)) => a == b,
            (NodeState(a), NodeState(b)) => a == b,
            (NodeType(a), NodeType(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// The canonical value of a signed integer.
    pub fn int(value: i64) -> Value {
        if value >= 0 {
            Value::UInt(value as u64)
        } else {
            Value::Int(value)
        }
    }

    /// A `bin` value from anything that converts to [`Bytes`] (a
    /// `&'static [u8]`, a `Vec<u8>`, ...).
    pub fn bin(bytes: impl Into<Bytes>) -> Value {
        Value::Bin(bytes.into())
    }

    /// The boolean, `None` for any other value (an integer included).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The integer, `None` for any other value or one above `i64::MAX`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::UInt(value) => i64::try_from(*value).ok(),
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The byte string, `None` for any other value (a `str` included).
    pub fn as_bin(&self) -> Option<&Bytes> {
        match self {
            Value::Bin(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The elements of an array, `None` for any other value.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    fn decode_at_depth(reader: &mut Reader<'_>) -> Result<Value, DecodeError> {
        let offset = reader.position();
        if reader.depth >= VALUE_DEPTH_MAX {
            return Err(DecodeError::TooDeep { offset });
        }
        let marker = reader.peek_marker()?;
        let value = match marker {
            0xc0 => {
                reader.read_nil()?;
                Value::Nil
            }
            0xc2 | 0xc3 => Value::Bool(reader.read_bool()?),
            0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => match reader.read_int()? {
                Int::Unsigned(value) => Value::UInt(value),
                Int::Negative(value) => Value::Int(value),
            },
            0xca | 0xcb => Value::Float(reader.read_f64()?),
            0xc4..=0xc6 => Value::Bin(reader.read_bin()?),
            0xa0..=0xbf | 0xd9..=0xdb => Value::Str(reader.read_str()?),
            0x90..=0x9f | 0xdc | 0xdd => {
                let len = reader.read_array_len()?;
                let mut items = Vec::with_capacity(len);
                reader.depth += 1;
                for _ in 0..len {
                    items.push(Value::decode_at_depth(reader)?);
                }
                reader.depth -= 1;
                Value::Array(items)
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let len = reader.read_map_len()?;
                let mut entries = Vec::with_capacity(len);
                reader.depth += 1;
                for _ in 0..len {
                    let key = Value::decode_at_depth(reader)?;
                    let value = Value::decode_at_depth(reader)?;
                    entries.push((key, value));
                }
                reader.depth -= 1;
                Value::Map(entries)
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                let (code, payload) = reader.read_ext()?;
                let item =
                    msgpack::enum_payload(payload).ok_or(DecodeError::BadEnumPayload { offset })?;
                let invalid = |enumeration| DecodeError::InvalidEnumValue {
                    enumeration,
                    value: item as u64,
                };
                match code {
                    0 => Value::CellState(
                        CellState::from_u8(item).ok_or_else(|| invalid(CellState::PY_NAME))?,
                    ),
                    1 => Value::ClusterState(
                        ClusterState::from_u8(item)
                            .ok_or_else(|| invalid(ClusterState::PY_NAME))?,
                    ),
                    2 => Value::ErrorCode(
                        ErrorCode::from_u8(item).ok_or_else(|| invalid(ErrorCode::PY_NAME))?,
                    ),
                    3 => Value::NodeState(
                        NodeState::from_u8(item).ok_or_else(|| invalid(NodeState::PY_NAME))?,
                    ),
                    4 => Value::NodeType(
                        NodeType::from_u8(item).ok_or_else(|| invalid(NodeType::PY_NAME))?,
                    ),
                    _ => return Err(DecodeError::UnknownExt { code, offset }),
                }
            }
            _ => return Err(DecodeError::ReservedMarker { offset }),
        };
        Ok(value)
    }
}

impl Wire for Value {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Nil => msgpack::write_nil(out),
            Value::Bool(value) => msgpack::write_bool(out, *value),
            Value::UInt(value) => msgpack::write_uint(out, *value),
            Value::Int(value) => msgpack::write_int(out, *value),
            Value::Float(value) => msgpack::write_f64(out, *value),
            Value::Bin(bytes) => msgpack::write_bin(out, bytes),
            Value::Str(bytes) => msgpack::write_str(out, bytes),
            Value::Array(items) => {
                msgpack::write_array_len(out, items.len());
                for item in items {
                    item.encode(out);
                }
            }
            Value::Map(entries) => {
                msgpack::write_map_len(out, entries.len());
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Value::CellState(item) => item.encode(out),
            Value::ClusterState(item) => item.encode(out),
            Value::ErrorCode(item) => msgpack::write_enum(out, ErrorCode::EXT_CODE, *item as u8),
            Value::NodeState(item) => item.encode(out),
            Value::NodeType(item) => item.encode(out),
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Value::decode_at_depth(reader)
    }

    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("None"),
            Value::Bool(value) => value.render(f),
            Value::UInt(value) => write!(f, "{value}"),
            Value::Int(value) => write!(f, "{value}"),
            Value::Float(value) => crate::ids::Timestamp(*value).render(f),
            Value::Bin(bytes) => render_bytes(f, bytes),
            Value::Str(bytes) => write!(f, "{:?}", String::from_utf8_lossy(bytes)),
            Value::Array(items) => render_list(items, f),
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    key.render(f)?;
                    f.write_str(": ")?;
                    value.render(f)?;
                }
                f.write_str("}")
            }
            Value::CellState(item) => f.write_str(item.as_str()),
            Value::ClusterState(item) => f.write_str(item.as_str()),
            Value::ErrorCode(item) => f.write_str(item.as_str()),
            Value::NodeState(item) => f.write_str(item.as_str()),
            Value::NodeType(item) => f.write_str(item.as_str()),
        }
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<&'static [u8]> for Value {
    fn from(value: &'static [u8]) -> Self {
        Value::Bin(Bytes::from_static(value))
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}
