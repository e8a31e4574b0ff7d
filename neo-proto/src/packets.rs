//! Every packet of NEO protocol 5 as a typed value.
//!
//! Each packet is a struct whose fields are its arguments in wire order; the
//! [`Packet`] enum holds any of them. Codes and argument layouts are NEO/py's
//! (see `protocol.md` §12 and §16). The declaration order below follows
//! NEO/py's registry so that requests and their answers sit together.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::enums::{ClusterState, ErrorCode, NodeState, NodeType};
use crate::error::DecodeError;
use crate::ids::{Checksum, Nid, Oid, Ptid, Tid, Timestamp};
use crate::msgpack::{self, Reader};
use crate::records::{
    Address, CellChange, CheckSource, HistoryEntry, NodeInfo, PackOrder, PackRequest,
    RelockConflict, Rows, TransactionPack, UndoSerial,
};
use crate::value::Value;
use crate::wire::{Map, Wire};

/// What a packet is for, which decides how its message id is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// Expects exactly one answer: the packet with `answer_code`, or Error.
    Request {
        /// Code of the dedicated answer (the request's code with bit 15
        /// set), or `0x8000` (Error) for a request answered by Error only.
        answer_code: u16,
    },
    /// Expects nothing.
    Notification,
    /// Replies to a request and echoes its message id.
    Answer,
}

/// Static description of one packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketType {
    /// The code on the wire: `0x0001` to `0x0049` for requests and
    /// notifications, bit 15 set ([`RESPONSE_MASK`]) for answers.
    pub code: u16,
    /// NEO/py's name of the packet (`AskObject`, ...), as rendered.
    pub name: &'static str,
    /// Request, notification or answer.
    pub kind: PacketKind,
    /// Number of arguments.
    pub arity: usize,
}

/// Bit 15 of a code marks answers (Error included).
pub const RESPONSE_MASK: u16 = 0x8000;

macro_rules! kind {
    (request, $code:literal) => {
        PacketKind::Request {
            answer_code: $code | RESPONSE_MASK,
        }
    };
    (request_error, $code:literal) => {
        PacketKind::Request {
            answer_code: RESPONSE_MASK,
        }
    };
    (notify, $code:literal) => {
        PacketKind::Notification
    };
    (answer, $code:literal) => {
        PacketKind::Answer
    };
}

/// Declares the struct of one packet: `[attributes] Name [fields done]
/// [positions left] fields...`. Each field gets a doc naming its position in
/// the argument array, taken from the list of positions left.
macro_rules! packet_struct {
    (
        [$($attr:tt)*] $name:ident [$($done:tt)*] [$pos:literal $($positions:literal)*]
        $field:ident : $ty:ty $(, $($rest:tt)*)?
    ) => {
        packet_struct! {
            [$($attr)*] $name
            [
                $($done)*
                #[doc = concat!(
                    "Argument ", stringify!($pos), " (0-based) of the packet's argument array.",
                )]
                pub $field: $ty,
            ]
            [$($positions)*]
            $($($rest)*)?
        }
    };
    ([$($attr:tt)*] $name:ident [$($done:tt)*] [$($positions:literal)*]) => {
        $($attr)*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name { $($done)* }
    };
}

/// Declares the struct of every packet of the table, each documented with
/// its code and kind (then the table's own doc, if any). A request followed
/// by an answer is taken as a request and its dedicated answer, which name
/// each other: the table keeps each answer right after its request.
macro_rules! packet_structs {
    () => {};
    (
        $(#[doc = $rdoc:literal])*
        request $rcode:literal $request:ident { $($rfields:tt)* }
        $(#[doc = $adoc:literal])*
        answer $acode:literal $answer:ident { $($afields:tt)* }
        $($rest:tt)*
    ) => {
        packet_struct! {
            [
                #[doc = concat!(
                    "NEO/py's `", stringify!($request), "`, request `", stringify!($rcode),
                    "`: answered by [`", stringify!($answer), "`] (`", stringify!($acode),
                    "`) or [`Error`].",
                )]
                #[doc = ""]
                $(#[doc = $rdoc])*
            ]
            $request [] [0 1 2 3 4 5 6 7 8 9 10 11] $($rfields)*
        }
        packet_struct! {
            [
                #[doc = concat!(
                    "NEO/py's `", stringify!($answer), "`, answer `", stringify!($acode),
                    "` to [`", stringify!($request), "`] (`", stringify!($rcode),
                    "`), with the request's message id.",
                )]
                #[doc = ""]
                $(#[doc = $adoc])*
            ]
            $answer [] [0 1 2 3 4 5 6 7 8 9 10 11] $($afields)*
        }
        // The docs above pair a request with the answer after it: the
        // table must keep them together.
        const _: () = assert!(
            $acode == $rcode | RESPONSE_MASK,
            concat!(stringify!($answer), " does not answer ", stringify!($request))
        );
        packet_structs! { $($rest)* }
    };
    (
        $(#[doc = $doc:literal])*
        request $code:literal $name:ident { $($fields:tt)* }
        $($rest:tt)*
    ) => {
        packet_struct! {
            [
                #[doc = concat!(
                    "NEO/py's `", stringify!($name), "`, request `", stringify!($code),
                    "`: answered by the packet of its code with bit 15 set \
                    ([`RESPONSE_MASK`]), or [`Error`].",
                )]
                #[doc = ""]
                $(#[doc = $doc])*
            ]
            $name [] [0 1 2 3 4 5 6 7 8 9 10 11] $($fields)*
        }
        packet_structs! { $($rest)* }
    };
    (
        $(#[doc = $doc:literal])*
        request_error $code:literal $name:ident { $($fields:tt)* }
        $($rest:tt)*
    ) => {
        packet_struct! {
            [
                #[doc = concat!(
                    "NEO/py's `", stringify!($name), "`, request `", stringify!($code),
                    "`: answered by [`Error`] only, with code ACK on success.",
                )]
                #[doc = ""]
                $(#[doc = $doc])*
            ]
            $name [] [0 1 2 3 4 5 6 7 8 9 10 11] $($fields)*
        }
        packet_structs! { $($rest)* }
    };
    (
        $(#[doc = $doc:literal])*
        notify $code:literal $name:ident { $($fields:tt)* }
        $($rest:tt)*
    ) => {
        packet_struct! {
            [
                #[doc = concat!(
                    "NEO/py's `", stringify!($name), "`, notification `", stringify!($code),
                    "`: expects no answer.",
                )]
                #[doc = ""]
                $(#[doc = $doc])*
            ]
            $name [] [0 1 2 3 4 5 6 7 8 9 10 11] $($fields)*
        }
        packet_structs! { $($rest)* }
    };
    (
        $(#[doc = $doc:literal])*
        answer $code:literal $name:ident { $($fields:tt)* }
        $($rest:tt)*
    ) => {
        packet_struct! {
            [
                #[doc = concat!(
                    "NEO/py's `", stringify!($name), "`, answer `", stringify!($code),
                    "`, with the message id of the packet it replies to.",
                )]
                #[doc = ""]
                $(#[doc = $doc])*
            ]
            $name [] [0 1 2 3 4 5 6 7 8 9 10 11] $($fields)*
        }
        packet_structs! { $($rest)* }
    };
}

macro_rules! packets {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $code:literal $name:ident { $($field:ident : $ty:ty),* $(,)? }
    )*) => {
        packet_structs! {
            $(
                $(#[doc = $doc])*
                $kind $code $name { $($field : $ty),* }
            )*
        }

        $(
            impl $name {
                /// The packet's code on the wire.
                pub const CODE: u16 = $code;
                /// NEO/py's name of the packet, as rendered.
                pub const NAME: &'static str = stringify!($name);
            }

            impl From<$name> for Packet {
                fn from(packet: $name) -> Packet {
                    Packet::$name(packet)
                }
            }

            #[cfg(feature = "arbitrary")]
            impl<'a> arbitrary::Arbitrary<'a> for $name {
                fn arbitrary(_u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
                    Ok($name { $($field: <$ty as crate::arb::Generate>::generate(_u)?,)* })
                }
            }
        )*

        /// Any packet, of a type chosen by the fuzzer.
        #[cfg(feature = "arbitrary")]
        impl<'a> arbitrary::Arbitrary<'a> for Packet {
            fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
                let index = u.choose_index(PACKET_TYPES.len())?;
                let mut _i = 0;
                $(
                    if index == _i {
                        return Ok(Packet::$name(<$name as arbitrary::Arbitrary>::arbitrary(u)?));
                    }
                    _i += 1;
                )*
                unreachable!("index below the number of packet types")
            }
        }

        /// Any packet of the type with this code (`None` for no type):
        /// fuzzers that answer a request with its own answer type.
        #[cfg(feature = "arbitrary")]
        impl Packet {
            /// Any packet of the type with code `code`, `None` if no type
            /// has it.
            pub fn arbitrary_of_code(
                code: u16,
                u: &mut arbitrary::Unstructured<'_>,
            ) -> arbitrary::Result<Option<Packet>> {
                $(
                    if code == $code {
                        return Ok(Some(Packet::$name(<$name as arbitrary::Arbitrary>::arbitrary(u)?)));
                    }
                )*
                Ok(None)
            }
        }

        /// Any packet of protocol 5.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Packet {
            $(
                #[doc = concat!("A [`", stringify!($name), "`] (code `", stringify!($code), "`).")]
                $name($name),
            )*
        }

        /// Every packet type, in NEO/py's declaration order.
        pub const PACKET_TYPES: &[PacketType] = &[$(
            PacketType {
                code: $code,
                name: stringify!($name),
                kind: kind!($kind, $code),
                arity: <[&str]>::len(&[$(stringify!($field)),*]),
            },
        )*];

        impl Packet {
            /// The packet's code on the wire (bit 15 set for answers).
            pub fn code(&self) -> u16 {
                match self { $(Packet::$name(_) => $code,)* }
            }

            /// NEO/py's name of the packet (`AskObject`, ...).
            pub fn name(&self) -> &'static str {
                match self { $(Packet::$name(_) => stringify!($name),)* }
            }

            /// Request, notification or answer, and a request's answer code.
            pub fn kind(&self) -> PacketKind {
                match self { $(Packet::$name(_) => kind!($kind, $code),)* }
            }

            /// Writes the argument array.
            pub(crate) fn encode_args(&self, out: &mut BytesMut) {
                match self {
                    $(Packet::$name(_p) => {
                        msgpack::write_array_len(out, <[&str]>::len(&[$(stringify!($field)),*]));
                        $(_p.$field.encode(out);)*
                    })*
                }
            }

            /// Reads the argument array of the packet with this code.
            pub(crate) fn decode_args(code: u64, reader: &mut Reader<'_>) -> Result<Packet, DecodeError> {
                match code {
                    $($code => {
                        let expected = <[&str]>::len(&[$(stringify!($field)),*]);
                        let found = reader.read_array_len()?;
                        if found != expected {
                            return Err(DecodeError::Arity { packet: stringify!($name), expected, found });
                        }
                        Ok(Packet::$name($name { $($field: <$ty as Wire>::decode(reader)?,)* }))
                    })*
                    _ => Err(DecodeError::UnknownCode { code }),
                }
            }

            /// `Name(field=value, ...)` with each value rendered by its type.
            fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Packet::$name(_p) => {
                        f.write_str(stringify!($name))?;
                        f.write_str("(")?;
                        let mut _first = true;
                        $(
                            if !_first {
                                f.write_str(", ")?;
                            }
                            _first = false;
                            f.write_str(concat!(stringify!($field), "="))?;
                            _p.$field.render(f)?;
                        )*
                        f.write_str(")")
                    })*
                }
            }
        }
    };
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f)
    }
}

impl Packet {
    /// Whether this packet is an answer (Error included).
    pub fn is_answer(&self) -> bool {
        self.code() & RESPONSE_MASK != 0
    }

    /// The Error packet with this code and message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Packet {
        Packet::Error(Error {
            code,
            message: Bytes::from(message.into()),
        })
    }
}

packets! {
    // ------------------------------------------------ connection level
    /// Answers any request (or notification) with a failure, or with ACK for
    /// requests that have no dedicated answer.
    answer 0x8000 Error { code: ErrorCode, message: Bytes }
    /// First packet of every node-to-node connection.
    request 0x0001 RequestIdentification {
        node_type: NodeType,
        nid: Option<Nid>,
        address: Option<Address>,
        cluster_name: Bytes,
        id_timestamp: Option<Timestamp>,
        extra: Map<Bytes, Value>,
    }
    answer 0x8001 AcceptIdentification { node_type: NodeType, nid: Option<Nid>, your_nid: Option<Nid> }
    /// Network barrier.
    request 0x0002 Ping {}
    answer 0x8002 Pong {}
    /// The sender will send no more requests on this connection.
    notify 0x0003 CloseClient {}
    request 0x0004 AskPrimary {}
    answer 0x8004 AnswerPrimary { primary_nid: Nid }
    /// Sent by a secondary master to whoever tries to identify with it.
    notify 0x0005 NotPrimaryMaster { primary: Option<u32>, known_masters: Vec<Address> }
    notify 0x0006 NotifyNodeInformation { timestamp: Timestamp, nodes: Vec<NodeInfo> }

    // ------------------------------------------------ recovery, partition table
    request 0x0007 AskRecovery {}
    answer 0x8007 AnswerRecovery { ptid: Option<Ptid>, backup_tid: Option<Tid>, truncate_tid: Option<Tid> }
    request 0x0008 AskLastIDs {}
    answer 0x8008 AnswerLastIDs { last_tid: Option<Tid>, last_oid: Option<Oid>, first_tid: Tid }
    request 0x0009 AskPartitionTable {}
    answer 0x8009 AnswerPartitionTable { ptid: Ptid, num_replicas: u32, rows: Rows }
    notify 0x000a SendPartitionTable { ptid: Option<Ptid>, num_replicas: u32, rows: Rows }
    notify 0x000b NotifyPartitionChanges { ptid: Ptid, num_replicas: u32, changes: Vec<CellChange> }
    notify 0x000c StartOperation { backup: bool }
    notify 0x000d StopOperation {}
    request 0x000e AskUnfinishedTransactions { partitions: Vec<u32> }
    answer 0x800e AnswerUnfinishedTransactions { max_tid: Tid, ttids: Vec<Tid> }
    request 0x000f AskLockedTransactions {}
    answer 0x800f AnswerLockedTransactions { transactions: Map<Tid, Option<Tid>> }
    request 0x0010 AskFinalTID { ttid: Tid }
    answer 0x8010 AnswerFinalTID { tid: Option<Tid> }
    notify 0x0011 ValidateTransaction { ttid: Tid, tid: Tid }

    // ------------------------------------------------ transactions
    request 0x0012 AskBeginTransaction { tid: Option<Tid> }
    answer 0x8012 AnswerBeginTransaction { ttid: Tid }
    request_error 0x0013 FailedVote { ttid: Tid, failed_nids: Vec<Nid> }
    request 0x0014 AskFinishTransaction {
        ttid: Tid,
        oids: Vec<Oid>,
        deleted: Vec<u32>,
        checked: Vec<u32>,
        pack: Option<PackRequest>,
    }
    answer 0x8014 AnswerTransactionFinished { ttid: Tid, tid: Tid }
    request 0x0015 AskLockInformation { ttid: Tid, tid: Tid, pack: bool }
    answer 0x8015 AnswerInformationLocked { ttid: Tid }
    notify 0x0016 InvalidateObjects { tid: Tid, oids: Vec<Oid> }
    notify 0x0017 InvalidatePartitions { tid: Tid, partitions: Vec<u32> }
    notify 0x0018 NotifyUnlockInformation { ttid: Tid }
    request 0x0019 AskNewOIDs { count: u32 }
    answer 0x8019 AnswerNewOIDs { oids: Vec<Oid> }
    notify 0x001a NotifyDeadlock { ttid: Tid, oid: Oid }
    request 0x001b AskRelockObject { ttid: Tid, oid: Oid }
    answer 0x801b AnswerRelockObject { conflict: Option<RelockConflict> }
    request 0x001c AskStoreObject {
        oid: Oid,
        serial: Tid,
        compression: u32,
        checksum: Checksum,
        data: Bytes,
        data_serial: Option<Tid>,
        ttid: Tid,
    }
    answer 0x801c AnswerStoreObject { conflict: Option<Tid> }
    notify 0x001d AbortTransaction { ttid: Tid, nids: Vec<Nid> }
    request 0x001e AskStoreTransaction {
        ttid: Tid,
        user: Bytes,
        description: Bytes,
        extension: Bytes,
        oids: Vec<Oid>,
        pack: Option<PackRequest>,
    }
    answer 0x801e AnswerStoreTransaction {}
    request 0x001f AskVoteTransaction { ttid: Tid }
    answer 0x801f AnswerVoteTransaction {}

    // ------------------------------------------------ reads, history, iteration
    request 0x0020 AskObject { oid: Oid, at: Option<Tid>, before: Option<Tid> }
    answer 0x8020 AnswerObject {
        oid: Oid,
        serial: Tid,
        next_serial: Option<Tid>,
        compression: Option<u32>,
        checksum: Checksum,
        data: Bytes,
        data_serial: Option<Tid>,
    }
    request 0x0021 AskTIDs { first: u64, last: u64, partition: u32 }
    answer 0x8021 AnswerTIDs { tids: Vec<Tid> }
    request 0x0022 AskTransactionInformation { tid: Tid }
    answer 0x8022 AnswerTransactionInformation {
        tid: Tid,
        user: Bytes,
        description: Bytes,
        extension: Bytes,
        packed: bool,
        oids: Vec<Oid>,
    }
    request 0x0023 AskObjectHistory { oid: Oid, first: u64, last: u64 }
    answer 0x8023 AnswerObjectHistory { oid: Oid, history: Vec<HistoryEntry> }

    // ------------------------------------------------ administration
    request 0x0024 AskPartitionList { min_offset: u32, max_offset: u32, nid: Option<Nid> }
    answer 0x8024 AnswerPartitionList { ptid: Option<Ptid>, num_replicas: u32, rows: Rows }
    request 0x0025 AskNodeList { node_type: Option<NodeType> }
    answer 0x8025 AnswerNodeList { nodes: Vec<NodeInfo> }
    request_error 0x0026 SetNodeState { nid: Nid, state: NodeState }
    request_error 0x0027 AddPendingNodes { nids: Vec<Nid> }
    request 0x0028 TweakPartitionTable { dry_run: bool, drop_nids: Vec<Nid> }
    answer 0x8028 AnswerTweakPartitionTable { changed: bool, rows: Rows }
    request_error 0x0029 SetNumReplicas { num_replicas: u32 }
    request_error 0x002a SetClusterState { state: ClusterState }
    request_error 0x002b Repair { nids: Vec<Nid>, dry_run: bool }
    notify 0x002c NotifyRepair { dry_run: bool }
    notify 0x002d NotifyClusterInformation { state: ClusterState }
    request 0x002e AskClusterState {}
    answer 0x802e AnswerClusterState { state: Option<ClusterState> }

    // ------------------------------------------------ undo, iteration
    request 0x002f AskObjectUndoSerial { ttid: Tid, ltid: Tid, undone_tid: Tid, oids: Vec<Oid> }
    answer 0x802f AnswerObjectUndoSerial { result: Map<Oid, UndoSerial> }
    request 0x0030 AskTIDsFrom { min_tid: Tid, max_tid: Tid, length: u32, partition: u32 }
    answer 0x8030 AnswerTIDsFrom { tids: Vec<Tid> }
    request 0x0031 AskOIDsFrom { partition: u32, length: u32, min_oid: Oid, tid: Tid }
    answer 0x8031 AnswerOIDsFrom { next_oid: Option<Oid>, oids: Vec<Oid> }

    // ------------------------------------------------ pack
    request 0x0032 WaitForPack { tid: Tid }
    answer 0x8032 WaitedForPack {}
    request 0x0033 AskPackOrders { min_pack_id: Tid }
    answer 0x8033 AnswerPackOrders { orders: Vec<PackOrder> }
    notify 0x0034 NotifyPackSigned { approved: Vec<Tid>, rejected: Vec<Tid> }
    notify 0x0035 NotifyPackCompleted { pack_id: Tid }

    // ------------------------------------------------ replica checks
    request_error 0x0036 CheckReplicas {
        partitions: Map<u32, Option<Nid>>,
        min_tid: Tid,
        max_tid: Option<Tid>,
    }
    notify 0x0037 CheckPartition { partition: u32, source: CheckSource, min_tid: Tid, max_tid: Tid }
    request 0x0038 AskCheckTIDRange { partition: u32, length: u32, min_tid: Tid, max_tid: Tid }
    answer 0x8038 AnswerCheckTIDRange { count: u32, tid_hash: Checksum, max_tid: Tid }
    request 0x0039 AskCheckSerialRange {
        partition: u32,
        length: u32,
        min_tid: Tid,
        max_tid: Tid,
        min_oid: Oid,
    }
    answer 0x8039 AnswerCheckSerialRange {
        count: u32,
        tid_hash: Checksum,
        max_tid: Tid,
        oid_hash: Checksum,
        max_oid: Oid,
    }
    notify 0x003a NotifyPartitionCorrupted { partition: u32, nids: Vec<Nid> }
    notify 0x003b NotifyReady {}
    request 0x003c AskLastTransaction {}
    answer 0x803c AnswerLastTransaction { tid: Tid }
    request 0x003d AskCheckCurrentSerial { ttid: Tid, oid: Oid, serial: Tid }
    answer 0x803d AnswerCheckCurrentSerial { conflict: Option<Tid> }
    notify 0x003e NotifyTransactionFinished { ttid: Tid, max_tid: Tid }

    // ------------------------------------------------ replication
    notify 0x003f Replicate { tid: Tid, upstream_name: Bytes, sources: Map<u32, Option<Address>> }
    notify 0x0040 NotifyReplicationDone { partition: u32, tid: Tid }
    request 0x0041 AskFetchTransactions {
        partition: u32,
        length: u32,
        min_tid: Tid,
        max_tid: Tid,
        known_tids: Vec<Tid>,
        ask_pack_info: bool,
    }
    answer 0x8041 AnswerFetchTransactions {
        next_tid: Option<Tid>,
        to_delete: Vec<Tid>,
        completed_pack: Option<Tid>,
    }
    request 0x0042 AskFetchObjects {
        partition: u32,
        length: u32,
        min_tid: Tid,
        max_tid: Tid,
        min_oid: Oid,
        known: Map<Tid, Vec<Oid>>,
    }
    answer 0x8042 AnswerFetchObjects {
        next_tid: Option<Tid>,
        next_oid: Option<Oid>,
        to_delete: Map<Tid, Vec<Oid>>,
    }
    notify 0x0043 AddTransaction {
        tid: Tid,
        user: Bytes,
        description: Bytes,
        extension: Bytes,
        packed: bool,
        ttid: Tid,
        oids: Vec<Oid>,
        pack: Option<TransactionPack>,
    }
    notify 0x0044 AddObject {
        oid: Oid,
        serial: Tid,
        compression: u32,
        checksum: Checksum,
        data: Bytes,
        data_serial: Option<Tid>,
    }
    request_error 0x0045 Truncate { tid: Tid }
    notify 0x0046 FlushLog {}

    // ------------------------------------------------ monitoring
    request 0x0047 AskMonitorInformation {}
    answer 0x8047 AnswerMonitorInformation {
        warnings: Vec<Option<Bytes>>,
        problems: Vec<Option<Bytes>>,
        summary: Bytes,
    }
    notify 0x0048 NotifyMonitorInformation { info: Map<Bytes, Value> }
    notify 0x0049 NotifyUpstreamAdmin { address: Address }
}
