//! Generation of arbitrary packets for property tests and fuzzing.
//!
//! [`arbitrary::Arbitrary`] cannot be implemented for `bytes::Bytes` here
//! (neither crate is ours), so every field type implements [`Generate`]
//! instead, and the packet and record macros build `Arbitrary` impls from it.
//! Generated values are canonical: they re-encode to the bytes they decode
//! from (integers in their canonical variant, any float bit pattern).

use std::ops::ControlFlow;

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;
use smallvec::SmallVec;

use crate::enums::{CellState, ClusterState, ErrorCode, NodeState, NodeType};
use crate::ids::{Checksum, Nid, Oid, Ptid, Tid, Timestamp};
use crate::value::Value;
use crate::wire::Map;

/// Builds a value of a field type from fuzzer-provided bytes.
pub trait Generate: Sized {
    /// A value drawn from `u`, canonical (it re-encodes to the bytes it
    /// decodes from).
    fn generate(u: &mut Unstructured<'_>) -> Result<Self>;
}

/// Most lists in generated packets stay short; size is not what round trips
/// exercise.
const LIST_LEN_MAX: u32 = 24;

macro_rules! generate_via_arbitrary {
    ($($ty:ty),*) => {$(
        impl Generate for $ty {
            fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
                <$ty as Arbitrary>::arbitrary(u)
            }
        }
    )*};
}

generate_via_arbitrary!(u8, u16, u32, u64, i64, bool);

macro_rules! generate_newtype {
    ($($ty:ident($inner:ty)),*) => {$(
        impl Generate for $ty {
            fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
                Ok($ty(<$inner as Arbitrary>::arbitrary(u)?))
            }
        }
        impl<'a> Arbitrary<'a> for $ty {
            fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
                <$ty as Generate>::generate(u)
            }
        }
    )*};
}

generate_newtype!(Oid(u64), Tid(u64), Nid(i32), Ptid(u64), Checksum([u8; 20]));

impl Generate for Timestamp {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(Timestamp(f64::from_bits(u64::arbitrary(u)?)))
    }
}

macro_rules! generate_enum {
    ($($ty:ident),*) => {$(
        impl Generate for $ty {
            fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
                u.choose($ty::ALL).copied()
            }
        }
        impl<'a> Arbitrary<'a> for $ty {
            fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
                <$ty as Generate>::generate(u)
            }
        }
    )*};
}

generate_enum!(CellState, ClusterState, ErrorCode, NodeState, NodeType);

impl Generate for Bytes {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(Bytes::copy_from_slice(<&[u8]>::arbitrary(u)?))
    }
}

impl<T: Generate> Generate for Option<T> {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        if bool::arbitrary(u)? {
            T::generate(u).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn generate_list<T>(
    u: &mut Unstructured<'_>,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut items = Vec::new();
    u.arbitrary_loop(Some(0), Some(LIST_LEN_MAX), |u| {
        items.push(item(u)?);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(items)
}

impl<T: Generate> Generate for Vec<T> {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        generate_list(u, T::generate)
    }
}

impl<T: Generate, const N: usize> Generate for SmallVec<[T; N]> {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        generate_list(u, T::generate).map(SmallVec::from_vec)
    }
}

impl<K: Generate, V: Generate> Generate for Map<K, V> {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        generate_list(u, |u| Ok((K::generate(u)?, V::generate(u)?))).map(Map)
    }
}

/// Nesting of generated generic values; deeper adds nothing to coverage.
const VALUE_DEPTH_GENERATED_MAX: u32 = 3;

fn generate_value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let kinds = if depth >= VALUE_DEPTH_GENERATED_MAX {
        13
    } else {
        15
    };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Nil,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => Value::int(i64::arbitrary(u)?),
        3 => Value::UInt(u64::arbitrary(u)?),
        4 => Value::Float(f64::from_bits(u64::arbitrary(u)?)),
        5 => Value::Bin(Bytes::generate(u)?),
        6 => Value::Str(Bytes::generate(u)?),
        7 => Value::CellState(CellState::generate(u)?),
        8 => Value::ClusterState(ClusterState::generate(u)?),
        9 => Value::ErrorCode(ErrorCode::generate(u)?),
        10 => Value::NodeState(NodeState::generate(u)?),
        11 => Value::NodeType(NodeType::generate(u)?),
        12 => Value::Nil,
        13 => Value::Array(generate_list(u, |u| generate_value(u, depth + 1))?),
        _ => Value::Map(generate_list(u, |u| {
            Ok((generate_value(u, depth + 1)?, generate_value(u, depth + 1)?))
        })?),
    })
}

impl Generate for Value {
    fn generate(u: &mut Unstructured<'_>) -> Result<Self> {
        generate_value(u, 0)
    }
}

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        generate_value(u, 0)
    }
}
