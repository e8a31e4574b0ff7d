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
    /// The `n`-th connection the runtime accepted (`n` below 2^63: the
    /// top bit marks incoming ids).
    pub fn incoming(n: u64) -> ConnId {
        ConnId(INCOMING_BIT | n)
    }

    /// The `n`-th connection a node opened (`n` below 2^63; the top bit is
    /// cleared).
    pub fn outgoing(n: u64) -> ConnId {
        ConnId(n & !INCOMING_BIT)
    }

    /// Whether the runtime accepted this connection (made by
    /// [`ConnId::incoming`]) rather than the node opening it. Displayed
    /// `in#n` or `out#n`.
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
    Connected {
        /// The id the node gave in [`Output::Connect`].
        conn: ConnId,
    },
    /// A connection the node asked for could not be established (refused,
    /// unreachable, or the handshake failed); nothing more is reported
    /// about it. The node paces its own retries.
    ConnectFailed {
        /// The id the node gave in [`Output::Connect`].
        conn: ConnId,
    },
    /// The runtime accepted a connection on the node's listening socket
    /// and exchanged the handshake; the peer speaks first (it identifies,
    /// or, for neoctl, sends its command).
    Accepted {
        /// A new id from [`ConnId::incoming`].
        conn: ConnId,
    },
    /// The peer closed the connection, or it broke, or it carried bytes
    /// that are not valid NEO (the runtime closes those without a word, as
    /// NEO/py does). Not sent for connections the node closed itself.
    Closed {
        /// The connection, connected or accepted before.
        conn: ConnId,
    },
    /// A packet arrived.
    Packet {
        /// The connection it arrived on.
        conn: ConnId,
        /// Its message id as on the wire: the sender's counter for a
        /// request or notification, the request's id for an answer.
        msg_id: u32,
        /// The decoded packet.
        packet: Packet,
    },
    /// The instant given by [`crate::Node::poll_timeout`] has passed.
    Timeout,
}

/// Severity of a log record, most severe first: `Error < Warn < Info <
/// Debug`, so a runtime that logs up to a level keeps the records `<=` it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The cluster or data is at risk and an operator should look: the
    /// cluster stopped being operational, replicas differ, a peer of
    /// another cluster knocked.
    Error,
    /// Something went wrong and was handled: a peer refused or broke the
    /// protocol, a connection was lost, a request was dropped.
    Warn,
    /// A milestone of normal life: started, identified, state changes.
    Info,
    /// Routine detail for debugging (conflicts, retries, connection
    /// attempts).
    Debug,
}

/// What a node wants done, drained in order with [`crate::Node::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output<E> {
    /// Open a connection to `addr`; report [`Input::Connected`] or
    /// [`Input::ConnectFailed`] with the same `conn`.
    Connect {
        /// A new id from [`ConnId::outgoing`], chosen by the node.
        conn: ConnId,
        /// The peer's listening address.
        addr: Address,
    },
    /// Send a packet with this message id.
    Send {
        /// A connection that is up (connected or accepted, not closed).
        conn: ConnId,
        /// Chosen by the node: the connection's next id (a counter from 0
        /// that wraps) for a request or notification, the request's id for
        /// an answer. The runtime writes it as is.
        msg_id: u32,
        /// The packet to encode.
        packet: Packet,
    },
    /// Send what is queued on the connection, then close it. The node has
    /// forgotten it: nothing more may be reported about it.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
    /// Storage only: make every store write done so far durable, then call
    /// the storage's `sync_store`. Outputs that depend on durability are
    /// held inside the node until then. Several requests may be answered by
    /// one sync (group commit).
    SyncStore,
    /// Something that matters to an operator, already formatted.
    Log {
        /// How much it matters.
        level: Level,
        /// The text, without the time or the node's name (the runtime adds
        /// them).
        message: String,
    },
    /// The node is done (told to stop, or unable to continue): the runtime
    /// stops driving it.
    Exit {
        /// Why, for the operator.
        reason: String,
    },
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

    /// Consumes one input that happened at `now` (the monotonic clock; it
    /// must not go back between calls). What the node wants done is queued
    /// for [`Node::poll_output`].
    fn handle(&mut self, now: Time, input: Input);

    /// The next thing to do, in order; `None` once the queue is empty.
    /// Drain it after creating the node and after every input.
    fn poll_output(&mut self) -> Option<Output<Self::Event>>;

    /// When to feed [`Input::Timeout`] if nothing else happens first;
    /// `None`: no timer is set, wait for inputs only. May be in the past
    /// (feed the timeout at once); ask again after every input.
    fn poll_timeout(&self) -> Option<Time>;
}
