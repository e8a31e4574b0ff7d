#![warn(missing_docs)]
//! NEO protocol version 5, as NEO/py (neoppod) speaks it: every packet as a
//! typed Rust value, an encoder whose bytes equal NEO/py's, and an
//! incremental decoder for a connection's byte stream.
//!
//! No I/O, no clock, no threads: bytes in, packets out, and back.
//!
//! # A connection's byte stream
//!
//! Each direction starts with the 6-byte [`HANDSHAKE`], then carries
//! msgpack arrays `[msg_id, code, [args...]]`, one per packet, with no
//! length prefix. [`encode`] writes a packet; a [`Decoder`] is fed bytes
//! split anywhere and yields [`Frame`]s.
//!
//! ```
//! use bytes::BytesMut;
//! use neo_proto::{encode, AskObject, Decoder, Oid, Packet, Tid, HANDSHAKE};
//!
//! let ask = Packet::from(AskObject {
//!     oid: Oid(1),
//!     at: None,
//!     before: Some(Tid(0x03f9_29f5_5666_6667)),
//! });
//! let mut wire = BytesMut::from(&HANDSHAKE[..]);
//! encode(7, &ask, &mut wire);
//!
//! let mut decoder = Decoder::new();
//! for chunk in wire.chunks(3) {
//!     decoder.feed(chunk);
//! }
//! let frame = decoder.next_frame().unwrap().unwrap();
//! assert_eq!((frame.msg_id, &frame.packet), (7, &ask));
//! assert_eq!(
//!     frame.packet.to_string(),
//!     "AskObject(oid=0000000000000001, at=None, before=03f929f556666667)"
//! );
//! ```
//!
//! # Modules
//!
//! - [`msgpack`]: the msgpack subset NEO uses, written by hand so that each
//!   value takes exactly the form NEO/py gives it.
//! - `ids`, `enums`, `records`, `value`: the value types packets carry.
//! - `packets`: the 111 packet types and the [`Packet`] enum.
//! - `codec`: handshake, framing, [`Decoder`].

#[cfg(feature = "arbitrary")]
pub mod arb;
mod codec;
mod enums;
mod error;
mod ids;
pub mod msgpack;
mod packets;
mod partitions;
mod records;
mod value;
mod wire;

pub use codec::{
    check_handshake, decode_frame, encode, encode_to_bytes, Decoder, Frame, HANDSHAKE, MAGIC,
    PACKET_SIZE_MAX, PROTOCOL_VERSION,
};
pub use enums::{CellState, ClusterState, ErrorCode, NodeState, NodeType, UnknownName};
pub use error::DecodeError;
pub use ids::{civil_from_days, Checksum, Nid, Oid, ParseNidError, Ptid, Tid, Timestamp};
pub use packets::*;
pub use partitions::{Partitions, PARTITIONS_COUNT_MAX};
pub use records::{
    Address, CellChange, CellInfo, CheckSource, HistoryEntry, NodeInfo, ObjectData, PackOrder,
    PackRequest, RelockConflict, Row, Rows, TransactionPack, UndoSerial,
};
pub use value::{Value, VALUE_DEPTH_MAX};
pub use wire::{render_bytes, Map, Rendered, Wire};

/// `INVALID_PARTITION`: in AskTIDs, "every partition readable on this node".
pub const INVALID_PARTITION: u32 = 0xffff_ffff;

/// Most oids a transaction or a pack order may list (a limit of NEO/py's
/// MySQL backend, enforced by our storages on every backend: PROTOCOL_ERROR
/// above).
pub const TRANSACTION_OIDS_MAX: usize = (1 << 21) - 1;
