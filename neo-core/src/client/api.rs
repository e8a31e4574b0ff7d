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
    /// The pickle, checksum-verified and decompressed.
    pub data: Bytes,
    /// The TID of the transaction that wrote this revision.
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
    /// The transaction's (final) TID.
    pub tid: Tid,
    /// ZODB's `user`, as the committer gave it.
    pub user: Bytes,
    /// ZODB's `description`.
    pub description: Bytes,
    /// ZODB's `extension`: the pickled extension dict, as is.
    pub extension: Bytes,
    /// NEO/py's flag "affected by a pack" (protocol.md,
    /// AnswerTransactionInformation); neo-rs storages write it false and
    /// only pass it on.
    pub packed: bool,
    /// Every oid the transaction stored, deleted or checked; a pack may
    /// since have removed some of those records.
    pub oids: Vec<Oid>,
}

/// One entry of an object's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The revision's serial (TID of the transaction that wrote it).
    pub serial: Tid,
    /// Size of the stored (possibly compressed) data, in bytes.
    pub size: u64,
    /// The transaction that wrote it.
    pub transaction: TransactionInfo,
}

/// A record of a transaction as the iterator yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorRecord {
    /// One of the transaction's `oids`.
    pub oid: Oid,
    /// The pickle; `None`: deletion, or undone creation.
    pub data: Option<Bytes>,
    /// Undo back-pointer: the record is a copy of the revision at this
    /// serial (ZODB's `data_txn`).
    pub data_serial: Option<Tid>,
}

/// A transaction with its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorTransaction {
    /// Its metadata.
    pub info: TransactionInfo,
    /// Its object records, in the order of `info.oids`, without those a
    /// pack removed (or checked oids, which have none).
    pub records: Vec<IteratorRecord>,
}

/// An object undo cannot simply revert (a later transaction changed it):
/// the application merges `current` with `target` (ZODB's conflict
/// resolution) and stores the result with serial `current_serial`, or
/// gives up (`tpc_abort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoConflict {
    /// The object to merge.
    pub oid: Oid,
    /// Its current serial: the latest below the client's snapshot, or the
    /// transaction's own TTID when it already stored the object. The
    /// merged data is stored against it.
    pub current_serial: Tid,
    /// The data at `current_serial` (`None`: no data, a deletion or an
    /// undone creation).
    pub current: Option<Bytes>,
    /// The data before the undone transaction.
    pub target: Option<Bytes>,
}

/// The result of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `new_oid`: an oid nobody else will get.
    Oid(Oid),
    /// `load`: the revision asked for.
    Loaded(Loaded),
    /// `sync`: every invalidation the master sent before is applied.
    Synced,
    /// `tpc_begin`: the transaction's TTID.
    Begun(Tid),
    /// `tpc_vote`: oids whose conflicts were resolved (ZODB reloads them).
    Voted(Vec<Oid>),
    /// `tpc_finish`: the transaction's TID.
    Finished(Tid),
    /// `transaction_info`: the transaction's metadata.
    Transaction(TransactionInfo),
    /// `history`: revisions of the object, newest first.
    History(Vec<HistoryEntry>),
    /// `undo_log`: transactions, newest first.
    UndoLog(Vec<TransactionInfo>),
    /// `undo`: oids stored, and those the application must resolve.
    Undone {
        /// Oids whose undo was stored as is (back-pointers).
        oids: Vec<Oid>,
        /// Oids changed since: the application merges and stores them
        /// with `store`, or aborts.
        conflicts: Vec<UndoConflict>,
    },
    /// One chunk of the iterator, and where the next one starts (`None`:
    /// done).
    Transactions {
        /// Transactions in TID order.
        transactions: Vec<IteratorTransaction>,
        /// The `start` of the next `iterate` call.
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
    /// The revision has no data: the undo of the object's creation (or a
    /// deletion). POSKeyError.
    CreationUndone,
    /// An undo points to a revision a pack removed.
    UndoPack,
    /// A checked object (readCurrent) changed: ReadConflictError.
    ReadConflict {
        /// The object checked.
        oid: Oid,
        /// Its serial now (committed by another transaction).
        serial: Tid,
        /// The serial the transaction read and checked.
        read: Tid,
    },
    /// The client is read-only.
    ReadOnly,
    /// Undo is impossible (the transaction's records were packed).
    Undo(String),

    /// The connection to the primary master was lost: retry the whole
    /// transaction (ZODB's ReadConflictError).
    MasterLost,
    /// Every replica returned data not matching its checksum.
    WrongChecksum {
        /// The object read.
        oid: Oid,
        /// The revision read.
        serial: Tid,
    },
    /// Object data that does not unpack.
    CorruptData {
        /// The object read.
        oid: Oid,
        /// What is wrong with it ([`crate::data::DataError`]).
        why: String,
    },
    /// No running storage serves the partition.
    NoStorage {
        /// The partition (offset in the table).
        partition: u32,
    },
    /// The partition is past the end of the table the client now has: a
    /// table with fewer partitions came, which NEO never does (their
    /// number is fixed when the cluster is created), so only a confused
    /// master would.
    PartitionGone(u32),
    /// The master has no oid left to give.
    OidsExhausted,
    /// The transaction was aborted while the operation waited.
    Aborted,
    /// The vote failed: the transaction must be aborted.
    Vote(VoteError),
    /// A node refused the request (its Error packet).
    Refused {
        /// The Error packet's code.
        code: ErrorCode,
        /// Its message, decoded lossily as UTF-8.
        message: String,
    },
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
    /// The transaction whose store conflicted.
    pub txn: TxnId,
    /// The object stored or checked.
    pub oid: Oid,
    /// The serial committed meanwhile by another transaction; a
    /// resolution is stored against it. Never newer than the client's
    /// snapshot: its invalidation was processed first.
    pub committed: Tid,
    /// The serial the store was based on.
    pub based_on: Tid,
    /// What was stored (`None`: deletion or undo).
    pub data: Option<Bytes>,
    /// The object was only checked (readCurrent): nothing to resolve, the
    /// vote will fail ([`ClientError::ReadConflict`]).
    pub checked: bool,
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Connected to the primary, with an operational partition table.
    /// `last_tid` is the database's last committed TID at that moment;
    /// when it moved while we were away, the application must drop what it
    /// cached ("invalidate everything"), as ZODB does.
    Ready {
        /// Where the client's snapshot now ends (ZODB's
        /// `lastTransaction`).
        last_tid: Tid,
    },
    /// The connection to the primary is lost; operations wait for
    /// [`ClientEvent::Ready`].
    Disconnected,
    /// Another client committed `tid`, modifying `oids`.
    Invalidated {
        /// The committed transaction; the client's snapshot now ends there.
        tid: Tid,
        /// The objects whose cached revisions are no longer current.
        oids: Vec<Oid>,
    },
    /// A conflict to resolve before the vote can complete.
    Conflict(Conflict),
    /// An operation ended.
    Done {
        /// The id the operation's method returned.
        op: OpId,
        /// Its answer (the [`Answer`] variant named after the method), or
        /// why it failed.
        result: Result<Answer, ClientError>,
    },
}
