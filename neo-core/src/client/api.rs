//! What the application sees of the client: operation handles, results,
//! errors and events.

use std::fmt;

use bytes::Bytes;
use neo_proto::{ErrorCode, Oid, Tid};

/// Identifies an operation started by the application; its result comes
/// back as [`ClientEvent::Done`] with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Identifies a transaction of the application (a ZODB transaction
/// object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

/// Which revision to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// The latest one in the client's snapshot (`load`).
    Current,
    /// The one current just before this TID (`loadBefore`).
    Before(Tid),
    /// The one with this serial (`loadSerial`).
    At(Tid),
}

/// A revision read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub data: Bytes,
    pub serial: Tid,
    /// The serial of the next revision, if known (ZODB's `end_tid`).
    pub next_serial: Option<Tid>,
    /// Undo back-pointer: the revision is a copy of this one (known when
    /// read from a storage, not from the cache).
    pub data_serial: Option<Tid>,
}

/// A transaction's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    pub tid: Tid,
    pub user: Bytes,
    pub description: Bytes,
    pub extension: Bytes,
    pub packed: bool,
    pub oids: Vec<Oid>,
}

/// One entry of an object's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub serial: Tid,
    /// Size of the stored (possibly compressed) data.
    pub size: u64,
    pub transaction: TransactionInfo,
}

/// A record of a transaction as the iterator yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorRecord {
    pub oid: Oid,
    /// `None`: deletion, or undone creation.
    pub data: Option<Bytes>,
    pub data_serial: Option<Tid>,
}

/// A transaction with its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorTransaction {
    pub info: TransactionInfo,
    pub records: Vec<IteratorRecord>,
}

/// An object undo cannot simply revert (a later transaction changed it):
/// the application merges `current` with `target` (ZODB's conflict
/// resolution) and stores the result with serial `current_serial`, or
/// gives up (`tpc_abort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoConflict {
    pub oid: Oid,
    pub current_serial: Tid,
    pub current: Option<Bytes>,
    /// The data before the undone transaction.
    pub target: Option<Bytes>,
}

/// The result of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Oid(Oid),
    Loaded(Loaded),
    Synced,
    /// `tpc_begin`: the transaction's TTID.
    Begun(Tid),
    /// `tpc_vote`: oids whose conflicts were resolved (ZODB reloads them).
    Voted(Vec<Oid>),
    /// `tpc_finish`: the transaction's TID.
    Finished(Tid),
    Transaction(TransactionInfo),
    History(Vec<HistoryEntry>),
    UndoLog(Vec<TransactionInfo>),
    /// `undo`: oids stored, and those the application must resolve.
    Undone {
        oids: Vec<Oid>,
        conflicts: Vec<UndoConflict>,
    },
    /// One chunk of the iterator, and where the next one starts (`None`:
    /// done).
    Transactions {
        transactions: Vec<IteratorTransaction>,
        next: Option<Tid>,
    },
    /// `pack`: the pack order's id (the TID of its transaction).
    Packed(Option<Tid>),
}

/// Why an operation failed. The first group are the answers ZODB maps to
/// its own exceptions; then what the cluster did; last, misuse of the API
/// (a bug in the caller, not a condition to recover from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// No record matches (OID_NOT_FOUND, TID_NOT_FOUND): `loadBefore`
    /// returns nothing.
    NotFound,
    /// The object has no record at all (OID_DOES_NOT_EXIST): POSKeyError.
    DoesNotExist,
    /// The revision is the undo of the object's creation: POSKeyError.
    CreationUndone,
    /// An undo points to a revision a pack removed.
    UndoPack,
    /// A checked object (readCurrent) changed: ReadConflictError.
    ReadConflict { oid: Oid, serial: Tid, read: Tid },
    /// The client is read-only.
    ReadOnly,
    /// Undo is impossible (the transaction's records were packed).
    Undo(String),

    /// The connection to the primary master was lost: retry the whole
    /// transaction (ZODB's ReadConflictError).
    MasterLost,
    /// Every replica returned data not matching its checksum.
    WrongChecksum { oid: Oid, serial: Tid },
    /// Object data that does not unpack.
    CorruptData { oid: Oid, why: String },
    /// No running storage serves the partition.
    NoStorage { partition: u32 },
    /// The partition left the table (the master changed their number).
    PartitionGone(u32),
    /// The master has no oid left to give.
    OidsExhausted,
    /// The transaction was aborted while the operation waited.
    Aborted,
    /// The vote failed: the transaction must be aborted.
    Vote(VoteError),
    /// A node refused the request (its Error packet).
    Refused { code: ErrorCode, message: String },
    /// A node answered with something no request of this kind expects.
    UnexpectedAnswer(String),

    /// No transaction has this id (ended, or never begun).
    UnknownTransaction(TxnId),
    /// The master has not answered the transaction's begin yet.
    NotBegun,
    /// The transaction is voting: it takes no more writes.
    Voting,
    /// `resolve_conflict` for an object with no conflict to resolve.
    NoConflictToResolve(Oid),
}

/// Why a vote failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteError {
    /// Some store or check got no answer from any storage.
    WritesLost,
    /// No storage holds the write lock of this partition.
    PartitionNotLocked(u32),
    /// The storages whose vote failed cannot be dropped without making
    /// the cluster non-operational.
    StoragesNeeded,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotFound => write!(f, "not found"),
            ClientError::DoesNotExist => write!(f, "the object does not exist"),
            ClientError::CreationUndone => write!(f, "the object's creation was undone"),
            ClientError::UndoPack => write!(f, "cannot undo: a revision was packed"),
            ClientError::ReadConflict { oid, serial, read } => {
                write!(f, "read conflict on {oid}: read {read}, now {serial}")
            }
            ClientError::ReadOnly => write!(f, "read-only client"),
            ClientError::Undo(why) => write!(f, "undo error: {why}"),
            ClientError::MasterLost => write!(f, "connection to the primary master lost"),
            ClientError::WrongChecksum { oid, serial } => {
                write!(f, "wrong checksum for {oid} at {serial} on every replica")
            }
            ClientError::CorruptData { oid, why } => write!(f, "corrupt data of {oid}: {why}"),
            ClientError::NoStorage { partition } => {
                write!(f, "no storage available for partition {partition}")
            }
            ClientError::PartitionGone(partition) => {
                write!(f, "partition {partition} is not in the partition table")
            }
            ClientError::OidsExhausted => write!(f, "new_oid failed: no oid left"),
            ClientError::Aborted => write!(f, "aborted"),
            ClientError::Vote(error) => write!(f, "{error}"),
            ClientError::Refused { code, message } => write!(f, "{code}: {message}"),
            ClientError::UnexpectedAnswer(what) => write!(f, "unexpected answer {what}"),
            ClientError::UnknownTransaction(txn) => write!(f, "unknown transaction {}", txn.0),
            ClientError::NotBegun => write!(f, "the transaction has not begun"),
            ClientError::Voting => write!(f, "the transaction is voting"),
            ClientError::NoConflictToResolve(oid) => write!(f, "no conflict on {oid} to resolve"),
        }
    }
}

impl fmt::Display for VoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VoteError::WritesLost => write!(f, "could not store/check all oids"),
            VoteError::PartitionNotLocked(partition) => {
                write!(f, "partition {partition} not fully write-locked")
            }
            VoteError::StoragesNeeded => write!(
                f,
                "storage nodes for which vote failed can not be disconnected without \
                 making the cluster non-operational"
            ),
        }
    }
}

impl std::error::Error for VoteError {}

impl std::error::Error for ClientError {}

/// A store met a newer committed revision. For an object that was stored,
/// the application resolves it (ZODB's three-way merge of `data` against
/// the revision `committed`, both derived from `based_on`) and calls
/// `resolve_conflict`; for a checked object (`checked`), or if it cannot
/// resolve, it aborts the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub txn: TxnId,
    pub oid: Oid,
    pub committed: Tid,
    pub based_on: Tid,
    /// What was stored (`None`: deletion or undo).
    pub data: Option<Bytes>,
    pub checked: bool,
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Connected to the primary, with an operational partition table.
    /// `last_tid` is the database's last committed TID at that moment;
    /// when it moved while we were away, the application must drop what it
    /// cached ("invalidate everything"), as ZODB does.
    Ready { last_tid: Tid },
    /// The connection to the primary is lost; operations wait for
    /// [`ClientEvent::Ready`].
    Disconnected,
    /// Another client committed `tid`, modifying `oids`.
    Invalidated { tid: Tid, oids: Vec<Oid> },
    /// A conflict to resolve before the vote can complete.
    Conflict(Conflict),
    /// An operation ended.
    Done {
        op: OpId,
        result: Result<Answer, ClientError>,
    },
}
