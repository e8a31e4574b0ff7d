//! Records: fixed-size arrays that packets nest (addresses, node and cell
//! information, pack orders, object data, ...).

use std::fmt;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use crate::enums::{CellState, NodeState, NodeType};
use crate::error::DecodeError;
use crate::ids::{Checksum, Nid, Oid, Tid, Timestamp};
use crate::msgpack::{self, Reader};
use crate::wire::{read_record_len, wire_record, Wire};

/// A listening address: the numeric IP address in text form and a port.
/// On the wire: `[host: bin, port: int]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// The IP address as text bytes (`b"127.0.0.1"`, `b"::1"`), never a
    /// host name.
    pub host: Bytes,
    /// TCP port.
    pub port: u16,
}

impl Wire for Address {
    fn encode(&self, out: &mut BytesMut) {
        msgpack::write_array_len(out, 2);
        self.host.encode(out);
        self.port.encode(out);
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_record_len(reader, "Address", 2)?;
        Ok(Address {
            host: Bytes::decode(reader)?,
            port: u16::decode(reader)?,
        })
    }

    /// `host:port`, `[host]:port` for IPv6.
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(feature = "arbitrary")]
impl crate::arb::Generate for Address {
    fn generate(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Self> {
        Ok(Address {
            host: crate::arb::Generate::generate(u)?,
            port: crate::arb::Generate::generate(u)?,
        })
    }
}

impl Address {
    /// The address of a host text (a numeric IP address) and a port.
    pub fn new(host: impl AsRef<str>, port: u16) -> Address {
        Address {
            host: Bytes::copy_from_slice(host.as_ref().as_bytes()),
            port,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::new(addr.ip().to_string(), addr.port())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = String::from_utf8_lossy(&self.host);
        if host.contains(':') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

wire_record! {
    /// What the master says about a node (NotifyNodeInformation,
    /// AnswerNodeList).
    pub struct NodeInfo {
        /// Kind of node.
        pub node_type: NodeType,
        /// Listening address; `None` for a node that does not listen
        /// (clients, a storage in "new nid" mode).
        pub address: Option<Address>,
        /// Node id; `None` for a node that has none yet (e.g. a master
        /// known only by its address).
        pub nid: Option<Nid>,
        /// The node's state; UNKNOWN tells receivers to forget the node.
        pub state: NodeState,
        /// When the node identified to the master; `None` if it never did.
        pub id_timestamp: Option<Timestamp>,
    }
}

wire_record! {
    /// One cell of a partition table row: `(nid, state)`.
    pub struct CellInfo {
        /// The storage holding the cell.
        pub nid: Nid,
        /// The cell's state (never DISCARDED in a full table).
        pub state: CellState,
    }
}

wire_record! {
    /// One change of NotifyPartitionChanges: set cell (offset, nid) to
    /// `state`, creating it if needed; DISCARDED removes it.
    pub struct CellChange {
        /// The partition, as a row index of the table.
        pub offset: u32,
        /// The storage holding the cell.
        pub nid: Nid,
        /// The cell's new state.
        pub state: CellState,
    }
}

/// The cells of one partition. Inline up to 4 (replicas 3): a table of
/// 1,000 partitions is then one allocation, not 1,001 — a master sends
/// the whole table to every node that joins.
pub type Row = SmallVec<[CellInfo; 4]>;

/// A full partition table: one row of cells per partition, in offset order.
pub type Rows = Vec<Row>;

wire_record! {
    /// The pack order a pack transaction carries (AskStoreTransaction,
    /// AskFinishTransaction): the oids to pack (`None`: the whole database)
    /// and the pack TID.
    pub struct PackRequest {
        /// The oids of a partial pack; `None` packs the whole database. At
        /// most [`crate::TRANSACTION_OIDS_MAX`].
        pub oids: Option<Vec<Oid>>,
        /// The pack TID (ZODB's pack time): revisions no longer current at
        /// this TID are removed.
        /// The master requires `0 < pack_tid ≤ last TID`.
        pub pack_tid: Tid,
    }
}

wire_record! {
    /// A pack order as the master hands it out (AnswerPackOrders).
    pub struct PackOrder {
        /// The TID of the transaction that carried the order.
        pub pack_id: Tid,
        /// `None`: not signed yet; `Some(false)`: rejected.
        pub approved: Option<bool>,
        /// Whether only `oids` are packed.
        pub partial: bool,
        /// The oids to pack; `None` when not partial.
        pub oids: Option<Vec<Oid>>,
        /// The pack TID (ZODB's pack time).
        pub pack_tid: Tid,
    }
}

wire_record! {
    /// The pack order of a replicated transaction (AddTransaction).
    pub struct TransactionPack {
        /// `None`: not decided yet; `Some(false)`: rejected.
        pub approved: Option<bool>,
        /// Whether only `oids` are packed.
        pub partial: bool,
        /// The oids to pack; `None` when not partial.
        pub oids: Option<Vec<Oid>>,
        /// The pack TID (ZODB's pack time).
        pub pack_tid: Tid,
    }
}

wire_record! {
    /// Object data as stored: compression (0 none, 1 zlib), SHA-1 of the
    /// bytes as transmitted, and the bytes.
    pub struct ObjectData {
        /// 0: `data` as is; 1: zlib stream. Storages refuse other values.
        pub compression: u32,
        /// SHA-1 of `data` as transmitted; [`Checksum::ZERO`] with empty
        /// `data` means "no data".
        pub checksum: Checksum,
        /// The pickle, compressed when `compression` is 1.
        pub data: Bytes,
    }
}

wire_record! {
    /// A conflict found while relocking (AnswerRelockObject): the serial the
    /// store was based on, the newer committed serial, and the data of the
    /// store given back (`None` when the store was an undo or a
    /// check-current, protocol.md 12.5).
    pub struct RelockConflict {
        /// The serial the store was based on.
        pub serial: Tid,
        /// The newer committed serial that conflicts with it.
        pub conflict_serial: Tid,
        /// The data of the store, which the client may no longer have.
        pub data: Option<ObjectData>,
    }
}

wire_record! {
    /// Per-oid answer of AskObjectUndoSerial.
    pub struct UndoSerial {
        /// Serial of the latest revision the undoing transaction sees (or
        /// the serial of its own pending store of the oid).
        pub current_serial: Tid,
        /// The serial whose data the undo restores; `None` undoes creation.
        pub undo_serial: Option<Tid>,
        /// Whether the undone revision is still the current one.
        pub is_current: bool,
    }
}

wire_record! {
    /// One revision in AnswerObjectHistory.
    pub struct HistoryEntry {
        /// Serial (TID) of the revision.
        pub serial: Tid,
        /// Length of the stored (possibly compressed) data.
        pub size: u64,
    }
}

wire_record! {
    /// The reference replica of CheckPartition: an upstream cluster name
    /// (empty: this cluster) and the address of a storage (`None`: no
    /// reference).
    pub struct CheckSource {
        /// Name of the upstream cluster holding the reference; empty for
        /// this cluster.
        pub upstream_name: Bytes,
        /// A storage holding the reference replica; `None`: the replicas
        /// are only compared with each other.
        pub address: Option<Address>,
    }
}
