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
    pub enumeration: &'static str,
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
        Recovering = 0 "RECOVERING",
        Verifying = 1 "VERIFYING",
        Running = 2 "RUNNING",
        Stopping = 3 "STOPPING",
        StartingBackup = 4 "STARTING_BACKUP",
        Backingup = 5 "BACKINGUP",
        StoppingBackup = 6 "STOPPING_BACKUP",
    }
}

neo_enum! {
    /// Code of an Error packet (sent as a plain integer there).
    ErrorCode, ext = 2, py = "ErrorCodes" {
        Ack = 0 "ACK",
        Denied = 1 "DENIED",
        NotReady = 2 "NOT_READY",
        OidNotFound = 3 "OID_NOT_FOUND",
        TidNotFound = 4 "TID_NOT_FOUND",
        OidDoesNotExist = 5 "OID_DOES_NOT_EXIST",
        ProtocolError = 6 "PROTOCOL_ERROR",
        ReplicationError = 7 "REPLICATION_ERROR",
        CheckingError = 8 "CHECKING_ERROR",
        BackendNotImplemented = 9 "BACKEND_NOT_IMPLEMENTED",
        NonReadableCell = 10 "NON_READABLE_CELL",
        ReadOnlyAccess = 11 "READ_ONLY_ACCESS",
        IncompleteTransaction = 12 "INCOMPLETE_TRANSACTION",
        UndoPackError = 13 "UNDO_PACK_ERROR",
    }
}

neo_enum! {
    /// State of a node as the primary master sees it.
    NodeState, ext = 3, py = "NodeStates" {
        /// Forgotten: receivers drop the node.
        Unknown = 0 "UNKNOWN",
        Down = 1 "DOWN",
        Running = 2 "RUNNING",
        /// A storage connected but not (yet) part of the partition table.
        Pending = 3 "PENDING",
    }
}

neo_enum! {
    /// Kind of node.
    NodeType, ext = 4, py = "NodeTypes" {
        Master = 0 "MASTER",
        Storage = 1 "STORAGE",
        Client = 2 "CLIENT",
        Admin = 3 "ADMIN",
    }
}
