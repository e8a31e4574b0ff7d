//! NEO's enumerations, with NEO/py's integer values and msgpack ext codes.

use std::fmt;
use std::str::FromStr;

macro_rules! neo_enum {
    (
        $(#[$meta:meta])*
        $name:ident, ext = $ext:literal, py = $py:literal {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            /// The msgpack ext type code of this enumeration.
            pub const EXT_CODE: u8 = $ext;
            /// NEO/py's name of the enumeration.
            pub const PY_NAME: &'static str = $py;
            /// Every item, in value order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The item of NEO/py's integer `value` (the ext payload), `None`
            /// outside the enumeration.
            pub fn from_u8(value: u8) -> Option<$name> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// NEO/py's name of the item (`UP_TO_DATE`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            /// Parses NEO/py's name of an item, case-insensitively.
            fn from_str(text: &str) -> Result<Self, UnknownName> {
                $(if text.eq_ignore_ascii_case($text) {
                    return Ok($name::$variant);
                })*
                Err(UnknownName { enumeration: $py, text: text.to_owned() })
            }
        }
    };
}

/// A name that is not an item of the enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// NEO/py's name of the enumeration (`"CellStates"`, ...).
    pub enumeration: &'static str,
    /// The text that matched no item.
    pub text: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not one of the {}", self.text, self.enumeration)
    }
}

impl std::error::Error for UnknownName {}

neo_enum! {
    /// State of one cell (one copy of a partition on one storage).
    CellState, ext = 0, py = "CellStates" {
        /// Being (re)filled by replication: writable, not readable.
        OutOfDate = 0 "OUT_OF_DATE",
        /// Readable and writable.
        UpToDate = 1 "UP_TO_DATE",
        /// Readable and writable, to be dropped once another cell caught up.
        Feeding = 2 "FEEDING",
        /// A replica check found different data: neither readable nor writable.
        Corrupted = 3 "CORRUPTED",
        /// Only in change lists: remove the cell.
        Discarded = 4 "DISCARDED",
    }
}

impl CellState {
    /// UP_TO_DATE and FEEDING cells serve reads.
    pub fn is_readable(self) -> bool {
        matches!(self, CellState::UpToDate | CellState::Feeding)
    }
}

neo_enum! {
    /// State of the whole cluster, decided by the primary master.
    ClusterState, ext = 1, py = "ClusterStates" {
        /// The master gathers the partition table and waits for enough
        /// storages; the initial state, re-entered when the table stops
        /// being operational.
        Recovering = 0 "RECOVERING",
        /// Transient: finishing interrupted commits, truncating if asked.
        Verifying = 1 "VERIFYING",
        /// Normal service: clients may read and write.
        Running = 2 "RUNNING",
        /// The cluster is shutting down.
        Stopping = 3 "STOPPING",
        /// Transient: (re)connecting to the upstream cluster.
        StartingBackup = 4 "STARTING_BACKUP",
        /// Replicating an upstream cluster; read-only for clients.
        Backingup = 5 "BACKINGUP",
        /// Transient: leaving backup mode, waiting for consistency.
        StoppingBackup = 6 "STOPPING_BACKUP",
    }
}

neo_enum! {
    /// Code of an Error packet (sent as a plain integer there).
    ErrorCode, ext = 2, py = "ErrorCodes" {
        /// Success: the answer to the requests answered by Error.
        Ack = 0 "ACK",
        /// The admin or the master refuses a command.
        Denied = 1 "DENIED",
        /// Not operational, wrong cluster state, or sender unknown to the
        /// master yet; the connection is closed after it.
        NotReady = 2 "NOT_READY",
        /// The object exists, but not at the requested serial (or has no
        /// history).
        OidNotFound = 3 "OID_NOT_FOUND",
        /// Unknown transaction.
        TidNotFound = 4 "TID_NOT_FOUND",
        /// The object never existed.
        OidDoesNotExist = 5 "OID_DOES_NOT_EXIST",
        /// The peer misbehaved; the connection is closed after it.
        ProtocolError = 6 "PROTOCOL_ERROR",
        /// The source storage cannot serve a fetch (partition not readable,
        /// dropped, truncated).
        ReplicationError = 7 "REPLICATION_ERROR",
        /// The storage cannot serve a check request (no cell, or out of
        /// date).
        CheckingError = 8 "CHECKING_ERROR",
        /// The storage backend lacks the operation.
        BackendNotImplemented = 9 "BACKEND_NOT_IMPLEMENTED",
        /// The partition is not readable on this storage: try another cell.
        NonReadableCell = 10 "NON_READABLE_CELL",
        /// A write on a read-only session or a backup cluster.
        ReadOnlyAccess = 11 "READ_ONLY_ACCESS",
        /// Committing would make the cluster non-operational (FailedVote,
        /// AskFinishTransaction).
        IncompleteTransaction = 12 "INCOMPLETE_TRANSACTION",
        /// Undo impossible: the data it needs was packed.
        UndoPackError = 13 "UNDO_PACK_ERROR",
    }
}

neo_enum! {
    /// State of a node as the primary master sees it.
    NodeState, ext = 3, py = "NodeStates" {
        /// Forgotten: receivers drop the node.
        Unknown = 0 "UNKNOWN",
        /// Known but not connected.
        Down = 1 "DOWN",
        /// Connected and part of the cluster.
        Running = 2 "RUNNING",
        /// A storage connected but not (yet) part of the partition table.
        Pending = 3 "PENDING",
    }
}

neo_enum! {
    /// Kind of node.
    NodeType, ext = 4, py = "NodeTypes" {
        /// A master: the primary runs the cluster, secondaries stand by.
        Master = 0 "MASTER",
        /// A storage: holds cells of the partition table.
        Storage = 1 "STORAGE",
        /// A ZODB client; also what a backup cluster's master identifies as
        /// to the upstream master.
        Client = 2 "CLIENT",
        /// An admin: serves `neoctl` and monitors the cluster.
        Admin = 3 "ADMIN",
    }
}
