//! The input/output contract every node kind implements (see the crate
//! documentation for the driver loop).

use std::fmt;

use neo_proto::{Address, Packet};

use crate::time::Time;

/// A connection between the runtime and a node, as an opaque number.
///
/// Ids of connections the node opens ([`Output::Connect`]) are chosen by the
/// node; ids of connections the runtime accepts ([`Input::Accepted`]) are
/// chosen by the runtime with [`ConnId::incoming`], so the two never clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

const INCOMING_BIT: u64 = 1 << 63;

impl ConnId {
    /// The `n`-th connection the runtime accepted.
    pub fn incoming(n: u64) -> ConnId {
        ConnId(INCOMING_BIT | n)
    }

    /// The `n`-th connection a node opened.
    pub fn outgoing(n: u64) -> ConnId {
        ConnId(n & !INCOMING_BIT)
    }

    pub fn is_incoming(self) -> bool {
        self.0 & INCOMING_BIT != 0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_incoming() {
            write!(f, "in#{}", self.0 & !INCOMING_BIT)
        } else {
            write!(f, "out#{}", self.0)
        }
    }
}

/// What happened, fed to a node with the current time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A connection the node asked for is up (both handshakes exchanged).
    Connected { conn: ConnId },
    /// A connection the node asked for could not be established.
    ConnectFailed { conn: ConnId },
    /// The runtime accepted a connection on the node's listening socket.
    Accepted { conn: ConnId },
    /// The peer closed the connection, or it broke, or it carried bytes
    /// that are not valid NEO (the runtime closes those without a word, as
    /// NEO/py does). Not sent for connections the node closed itself.
    Closed { conn: ConnId },
    /// A packet arrived.
    Packet {
        conn: ConnId,
        msg_id: u32,
        packet: Packet,
    },
    /// The instant given by [`crate::Node::poll_timeout`] has passed.
    Timeout,
}

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

/// What a node wants done, drained in order with [`crate::Node::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output<E> {
    /// Open a connection to `addr`; report [`Input::Connected`] or
    /// [`Input::ConnectFailed`] with the same `conn`.
    Connect { conn: ConnId, addr: Address },
    /// Send a packet with this message id.
    Send {
        conn: ConnId,
        msg_id: u32,
        packet: Packet,
    },
    /// Send what is queued on the connection, then close it. The node has
    /// forgotten it: nothing more may be reported about it.
    Close { conn: ConnId },
    /// Storage only: make every store write done so far durable, then call
    /// the storage's `sync_store`. Outputs that depend on durability are
    /// held inside the node until then. Several requests may be answered by
    /// one sync (group commit).
    SyncStore,
    /// Something that matters to an operator, already formatted.
    Log { level: Level, message: String },
    /// The node is done (told to stop, or unable to continue).
    Exit { reason: String },
    /// A node-specific event for the embedding application (client answers
    /// and invalidations, ...).
    Event(E),
}

/// The contract of every node kind, in the style of quinn-proto:
/// [`Node::handle`] consumes an input, [`Node::poll_output`] yields what to
/// do, [`Node::poll_timeout`] says when to call back. Each node kind adds
/// its own mutators (application commands) and getters.
///
/// A driver loop: after creating the node and after every input, drain
/// `poll_output` until it returns `None`, then sleep until an input arrives
/// or until `poll_timeout`, whichever comes first, and feed
/// [`Input::Timeout`] when the latter passes.
pub trait Node {
    /// Node-specific events carried by [`Output::Event`].
    type Event;

    fn handle(&mut self, now: Time, input: Input);

    fn poll_output(&mut self) -> Option<Output<Self::Event>>;

    fn poll_timeout(&self) -> Option<Time>;
}
