//! Connection bookkeeping shared by every node kind: message ids, requests
//! waiting for their answer (with the context they were sent in), and the
//! queue of outputs.
//!
//! NEO's rules (protocol.md §6): each end numbers the packets it originates
//! from 0, answers echo the id of what they answer, an answer whose id is
//! not pending (or of the wrong type) is a protocol error, and an Error may
//! answer anything.

use std::collections::VecDeque;

use hashbrown::HashMap;
use neo_proto::{Address, ErrorCode, Packet, PacketKind};

use crate::node::{ConnId, Level, Output};

/// A request we sent and the context to handle its answer in.
#[derive(Debug)]
struct Pending<R> {
    answer_code: u16,
    context: R,
}

/// What a node knows of one of its connections. `S` is the node's own
/// notion of what the connection is for (its "handler" in NEO/py).
#[derive(Debug)]
pub(crate) struct Conn<R, S> {
    /// Role of the connection for the node.
    pub state: S,
    /// Outgoing connection not established yet.
    pub connecting: bool,
    next_msg_id: u32,
    pending: HashMap<u32, Pending<R>>,
}

impl<R, S> Conn<R, S> {
    /// Whether requests we sent on this connection still wait for answers.
    pub(crate) fn has_pending_requests(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Contexts of the requests still waiting for an answer.
    pub(crate) fn pending_contexts(&self) -> impl Iterator<Item = &R> {
        self.pending.values().map(|p| &p.context)
    }
}

/// Why a received packet is refused, and how: an Error answer carrying the
/// packet's message id, then, for protocol errors and "not ready", the
/// connection is closed (NEO/py's `dispatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub code: ErrorCode,
    pub message: String,
    pub close: bool,
}

impl Reject {
    pub(crate) fn protocol(message: impl Into<String>) -> Reject {
        Reject {
            code: ErrorCode::ProtocolError,
            message: message.into(),
            close: true,
        }
    }

    pub(crate) fn not_ready(message: impl Into<String>) -> Reject {
        Reject {
            code: ErrorCode::NotReady,
            message: message.into(),
            close: true,
        }
    }

    pub(crate) fn denied(message: impl Into<String>) -> Reject {
        Reject {
            code: ErrorCode::Denied,
            message: message.into(),
            close: false,
        }
    }

    /// An error answer that leaves the connection open.
    pub(crate) fn answer(code: ErrorCode, message: impl Into<String>) -> Reject {
        Reject {
            code,
            message: message.into(),
            close: false,
        }
    }

    /// A packet the current role of the connection does not handle.
    pub(crate) fn unexpected(packet: &Packet, role: &str) -> Reject {
        Reject::protocol(format!("unexpected packet {} in {role}", packet.name()))
    }

    /// Changes to a partition table the master has not sent yet.
    pub(crate) fn changes_before_table() -> Reject {
        Reject::protocol("NotifyPartitionChanges before any SendPartitionTable")
    }

    /// A partition number past the table (`field`: packet.field).
    pub(crate) fn partition_out_of_range(field: &str, partition: u32, partitions: u32) -> Reject {
        Reject::protocol(format!(
            "{field}: partition {partition} out of range (the table has {partitions})"
        ))
    }

    /// An answer to no request of ours ([`AnswerMatch::Unexpected`]).
    pub(crate) fn unexpected_answer(packet: &Packet) -> Reject {
        Reject::protocol(format!("unexpected answer {}", packet.name()))
    }
}

/// Outcome of matching a received answer with the request it answers.
#[derive(Debug)]
pub(crate) enum AnswerMatch<R> {
    /// The request's context.
    Matched(R),
    /// An Error nobody asked for: NEO/py logs it and goes on.
    StrayError,
    /// Not a pending id, or the wrong answer type: the sender misbehaves.
    Unexpected,
}

/// A received packet once [`Net::dispatch`] took what every node kind does
/// the same way.
#[derive(Debug)]
pub(crate) enum Dispatch<R> {
    /// The answer to our request sent with context `R`.
    Answer(R, Packet),
    /// A request or notification for the node's handlers.
    Request(Packet),
    /// Nothing left to do: a Ping answered, a stray Error logged.
    Done,
    /// An answer to nothing we asked: the node refuses it its own way
    /// (closing the connection may be the loss of its primary).
    Refuse(Reject),
}

/// A node's connections and the outputs waiting to be drained.
#[derive(Debug)]
pub(crate) struct Net<R, S, E> {
    conns: HashMap<ConnId, Conn<R, S>>,
    next_outgoing: u64,
    outputs: VecDeque<Output<E>>,
    /// Outputs that wait for the store to be synced up to their sequence
    /// number (storages: answers that promise durability), and those queued
    /// behind them on the same connection. Released in order.
    held: VecDeque<(u64, Output<E>)>,
    /// Store writes up to this sequence number are durable.
    released: u64,
}

impl<R, S, E> Default for Net<R, S, E> {
    fn default() -> Self {
        Net {
            conns: HashMap::new(),
            next_outgoing: 1,
            outputs: VecDeque::new(),
            held: VecDeque::new(),
            released: 0,
        }
    }
}

impl<R, S, E> Net<R, S, E> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Asks the runtime for a connection to `addr`.
    pub(crate) fn connect(&mut self, addr: Address, state: S) -> ConnId {
        let id = ConnId::outgoing(self.next_outgoing);
        self.next_outgoing += 1;
        self.conns.insert(
            id,
            Conn {
                state,
                connecting: true,
                next_msg_id: 0,
                pending: HashMap::new(),
            },
        );
        self.outputs.push_back(Output::Connect { conn: id, addr });
        id
    }

    /// Registers a connection the runtime accepted.
    pub(crate) fn accept(&mut self, id: ConnId, state: S) {
        self.conns.insert(
            id,
            Conn {
                state,
                connecting: false,
                next_msg_id: 0,
                pending: HashMap::new(),
            },
        );
    }

    /// The runtime established an outgoing connection: returns its role.
    pub(crate) fn connected(&mut self, id: ConnId) -> Option<&S> {
        let conn = self.conns.get_mut(&id)?;
        conn.connecting = false;
        Some(&conn.state)
    }

    /// Closes a connection the runtime accepted that the node does not
    /// take (a client listens to nobody).
    pub(crate) fn decline(&mut self, id: ConnId) {
        self.outputs.push_back(Output::Close { conn: id });
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn<R, S>> {
        self.conns.get(&id)
    }

    pub(crate) fn contains(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    pub(crate) fn state(&self, id: ConnId) -> Option<&S> {
        self.conns.get(&id).map(|c| &c.state)
    }

    pub(crate) fn state_mut(&mut self, id: ConnId) -> Option<&mut S> {
        self.conns.get_mut(&id).map(|c| &mut c.state)
    }

    pub(crate) fn ids(&self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        // Deterministic order: hash map order must never leak into outputs.
        ids.sort_unstable();
        ids
    }

    fn next_msg_id(&mut self, id: ConnId) -> Option<u32> {
        let conn = self.conns.get_mut(&id)?;
        let msg_id = conn.next_msg_id;
        conn.next_msg_id = conn.next_msg_id.wrapping_add(1);
        Some(msg_id)
    }

    /// Queues an output of `conn`, held if it needs store writes up to
    /// `seq` to be durable or if earlier outputs of `conn` are held.
    fn push(&mut self, conn: ConnId, seq: u64, output: Output<E>) {
        let behind_held = !self.held.is_empty()
            && self
                .held
                .iter()
                .any(|(_, held)| output_conn(held) == Some(conn));
        if seq > self.released || behind_held {
            self.held.push_back((seq, output));
        } else {
            self.outputs.push_back(output);
        }
    }

    /// Releases held outputs: store writes up to `seq` are durable.
    pub(crate) fn release_until(&mut self, seq: u64) {
        self.released = self.released.max(seq);
        while self.held.front().is_some_and(|(s, _)| *s <= self.released) {
            let (_, output) = self.held.pop_front().unwrap();
            self.outputs.push_back(output);
        }
    }

    /// Whether outputs wait for a store sync.
    pub(crate) fn has_held_outputs(&self) -> bool {
        !self.held.is_empty()
    }

    /// Sends a notification; returns its message id, or `None` if the
    /// connection is gone.
    pub(crate) fn send(&mut self, conn: ConnId, packet: impl Into<Packet>) -> Option<u32> {
        self.send_after(0, conn, packet)
    }

    /// Sends a notification once store writes up to `seq` are durable.
    pub(crate) fn send_after(
        &mut self,
        seq: u64,
        conn: ConnId,
        packet: impl Into<Packet>,
    ) -> Option<u32> {
        let msg_id = self.next_msg_id(conn)?;
        let packet = packet.into();
        self.push(
            conn,
            seq,
            Output::Send {
                conn,
                msg_id,
                packet,
            },
        );
        Some(msg_id)
    }

    /// Sends a packet reusing a message id (answers sent later, replication
    /// notifications that borrow their request's id).
    pub(crate) fn send_with_id(&mut self, conn: ConnId, msg_id: u32, packet: impl Into<Packet>) {
        self.answer_after(0, conn, msg_id, packet);
    }

    /// Answers once store writes up to `seq` are durable.
    pub(crate) fn answer_after(
        &mut self,
        seq: u64,
        conn: ConnId,
        msg_id: u32,
        packet: impl Into<Packet>,
    ) {
        if self.conns.contains_key(&conn) {
            let packet = packet.into();
            self.push(
                conn,
                seq,
                Output::Send {
                    conn,
                    msg_id,
                    packet,
                },
            );
        }
    }

    /// Sends a request and remembers `context` for its answer.
    pub(crate) fn ask(
        &mut self,
        conn: ConnId,
        packet: impl Into<Packet>,
        context: R,
    ) -> Option<u32> {
        self.ask_after(0, conn, packet, context)
    }

    /// Sends a request once store writes up to `seq` are durable.
    pub(crate) fn ask_after(
        &mut self,
        seq: u64,
        conn: ConnId,
        packet: impl Into<Packet>,
        context: R,
    ) -> Option<u32> {
        let packet = packet.into();
        let PacketKind::Request { answer_code } = packet.kind() else {
            panic!("{} is not a request", packet.name());
        };
        let msg_id = self.next_msg_id(conn)?;
        self.conns.get_mut(&conn)?.pending.insert(
            msg_id,
            Pending {
                answer_code,
                context,
            },
        );
        self.push(
            conn,
            seq,
            Output::Send {
                conn,
                msg_id,
                packet,
            },
        );
        Some(msg_id)
    }

    /// Answers the packet with id `msg_id`.
    pub(crate) fn answer(&mut self, conn: ConnId, msg_id: u32, packet: impl Into<Packet>) {
        self.send_with_id(conn, msg_id, packet);
    }

    /// Matches an answer with the request it answers.
    pub(crate) fn match_answer(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        packet: &Packet,
    ) -> AnswerMatch<R> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return AnswerMatch::Unexpected;
        };
        let is_error = matches!(packet, Packet::Error(_));
        match c.pending.get(&msg_id) {
            Some(pending) if is_error || pending.answer_code == packet.code() => {
                AnswerMatch::Matched(c.pending.remove(&msg_id).unwrap().context)
            }
            None if is_error => AnswerMatch::StrayError,
            _ => AnswerMatch::Unexpected,
        }
    }

    /// The prologue of every node's packet handling: matches answers with
    /// their requests, logs Errors nobody asked for, answers Ping.
    pub(crate) fn dispatch(&mut self, conn: ConnId, msg_id: u32, packet: Packet) -> Dispatch<R> {
        if packet.is_answer() {
            return match self.match_answer(conn, msg_id, &packet) {
                AnswerMatch::Matched(context) => Dispatch::Answer(context, packet),
                AnswerMatch::StrayError => {
                    self.log_stray_error(conn, &packet);
                    Dispatch::Done
                }
                AnswerMatch::Unexpected => Dispatch::Refuse(Reject::unexpected_answer(&packet)),
            };
        }
        if let Packet::Ping(_) = packet {
            self.answer(conn, msg_id, neo_proto::Pong {});
            return Dispatch::Done;
        }
        Dispatch::Request(packet)
    }

    /// Removes and returns the contexts of every pending request (the
    /// connection is going away).
    pub(crate) fn drain_pending(&mut self, conn: ConnId) -> Vec<R> {
        match self.conns.get_mut(&conn) {
            Some(c) => {
                let mut pending: Vec<(u32, Pending<R>)> = c.pending.drain().collect();
                pending.sort_unstable_by_key(|(msg_id, _)| *msg_id);
                pending.into_iter().map(|(_, p)| p.context).collect()
            }
            None => Vec::new(),
        }
    }

    /// Refuses a received packet from `peer` (how the node knows it: a
    /// node id, "a client", ...): Error answer, then close if the kind of
    /// refusal calls for it. A protocol error is logged, naming the peer
    /// and what was wrong (the packet field).
    pub(crate) fn reject(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        reject: Reject,
        peer: &str,
    ) -> Option<Conn<R, S>> {
        let close = reject.close;
        self.refuse(conn, msg_id, reject, peer);
        if close {
            self.close(conn)
        } else {
            None
        }
    }

    /// [`reject`](Self::reject) without the closing, for a node whose
    /// closing of that connection loses more than the connection (its
    /// primary master): the node closes it itself.
    pub(crate) fn refuse(&mut self, conn: ConnId, msg_id: u32, reject: Reject, peer: &str) {
        if reject.code == ErrorCode::ProtocolError {
            self.log(
                Level::Error,
                format!("protocol error from {peer} on {conn}: {}", reject.message),
            );
        }
        self.answer(conn, msg_id, Packet::error(reject.code, reject.message));
    }

    /// Closes a connection (after what is queued is sent) and forgets it.
    pub(crate) fn close(&mut self, conn: ConnId) -> Option<Conn<R, S>> {
        let removed = self.conns.remove(&conn);
        if removed.is_some() {
            self.push(conn, 0, Output::Close { conn });
        }
        removed
    }

    /// Forgets a connection the runtime reported closed (what was held
    /// for it can no longer be sent).
    pub(crate) fn forget(&mut self, conn: ConnId) -> Option<Conn<R, S>> {
        self.held
            .retain(|(_, output)| output_conn(output) != Some(conn));
        self.conns.remove(&conn)
    }

    /// Logs an Error nobody asked for ([`AnswerMatch::StrayError`]).
    pub(crate) fn log_stray_error(&mut self, conn: ConnId, packet: &Packet) {
        if let Packet::Error(error) = packet {
            let message = format!(
                "{} from {conn}: {}",
                error.code,
                String::from_utf8_lossy(&error.message)
            );
            self.log(Level::Warn, message);
        }
    }

    /// Emits a log record of any level: the runtime's sink decides what
    /// is written (`-v` lets Debug through).
    pub(crate) fn log(&mut self, level: Level, message: impl Into<String>) {
        self.outputs.push_back(Output::Log {
            level,
            message: message.into(),
        });
    }

    pub(crate) fn emit(&mut self, output: Output<E>) {
        self.outputs.push_back(output);
    }

    pub(crate) fn poll(&mut self) -> Option<Output<E>> {
        self.outputs.pop_front()
    }
}

fn output_conn<E>(output: &Output<E>) -> Option<ConnId> {
    match output {
        Output::Connect { conn, .. } | Output::Send { conn, .. } | Output::Close { conn } => {
            Some(*conn)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_proto::{AnswerRecovery, AskRecovery, Ping, Pong};

    type TestNet = Net<&'static str, (), ()>;

    fn drain(net: &mut TestNet) -> Vec<Output<()>> {
        std::iter::from_fn(|| net.poll()).collect()
    }

    #[test]
    fn message_ids_count_per_connection_and_answers_match() {
        let mut net = TestNet::new();
        let a = net.connect(Address::new("127.0.0.1", 1), ());
        net.accept(ConnId::incoming(1), ());
        assert_eq!(net.ask(a, Ping {}, "ping"), Some(0));
        assert_eq!(net.send(a, Pong {}), Some(1));
        assert_eq!(
            net.ask(ConnId::incoming(1), AskRecovery {}, "recovery"),
            Some(0)
        );
        let outputs = drain(&mut net);
        // A connect, then three sends.
        assert_eq!(outputs.len(), 4);
        // The answer to Ping is matched; a second one is unexpected.
        assert!(matches!(
            net.match_answer(a, 0, &Pong {}.into()),
            AnswerMatch::Matched("ping")
        ));
        assert!(matches!(
            net.match_answer(a, 0, &Pong {}.into()),
            AnswerMatch::Unexpected
        ));
        // A wrong answer type is unexpected and leaves the request pending.
        let wrong = AnswerRecovery {
            ptid: None,
            backup_tid: None,
            truncate_tid: None,
        };
        assert!(matches!(
            net.match_answer(ConnId::incoming(1), 0, &Pong {}.into()),
            AnswerMatch::Unexpected
        ));
        assert!(matches!(
            net.match_answer(ConnId::incoming(1), 0, &wrong.into()),
            AnswerMatch::Matched("recovery")
        ));
        // An Error with no request pending is stray, not a protocol error.
        assert!(matches!(
            net.match_answer(a, 9, &Packet::error(ErrorCode::Ack, "")),
            AnswerMatch::StrayError
        ));
    }

    #[test]
    fn debug_records_reach_the_runtime_which_filters_them() {
        let mut net = TestNet::new();
        net.log(Level::Debug, "detail");
        assert_eq!(
            drain(&mut net),
            vec![Output::Log {
                level: Level::Debug,
                message: "detail".into()
            }]
        );
    }

    #[test]
    fn dispatch_matches_answers_logs_stray_errors_answers_ping() {
        let mut net = TestNet::new();
        let conn = ConnId::incoming(2);
        net.accept(conn, ());
        let asked = net.ask(conn, AskRecovery {}, "recovery").unwrap();
        let answer = AnswerRecovery {
            ptid: None,
            backup_tid: None,
            truncate_tid: None,
        };
        assert!(matches!(
            net.dispatch(conn, asked, answer.clone().into()),
            Dispatch::Answer("recovery", _)
        ));
        assert!(matches!(
            net.dispatch(conn, asked, answer.into()),
            Dispatch::Refuse(_)
        ));
        let stray = Packet::error(ErrorCode::NotReady, "later");
        assert!(matches!(net.dispatch(conn, 40, stray), Dispatch::Done));
        assert!(matches!(
            net.dispatch(conn, 41, Ping {}.into()),
            Dispatch::Done
        ));
        assert!(matches!(
            net.dispatch(conn, 42, AskRecovery {}.into()),
            Dispatch::Request(Packet::AskRecovery(_))
        ));
        let outputs = drain(&mut net);
        assert!(matches!(
            &outputs[..],
            [
                Output::Send { msg_id: 0, .. },
                Output::Log {
                    level: Level::Warn,
                    ..
                },
                Output::Send {
                    msg_id: 41,
                    packet: Packet::Pong(_),
                    ..
                },
            ]
        ));
    }

    #[test]
    fn reject_answers_then_closes_for_protocol_errors() {
        let mut net = TestNet::new();
        let conn = ConnId::incoming(3);
        net.accept(conn, ());
        assert!(net
            .reject(conn, 7, Reject::denied("no"), "a peer")
            .is_none());
        assert!(net.contains(conn));
        assert!(net
            .reject(conn, 8, Reject::protocol("bad"), "a peer")
            .is_some());
        assert!(!net.contains(conn));
        let outputs = drain(&mut net);
        assert!(matches!(
            &outputs[..],
            [
                Output::Send { msg_id: 7, .. },
                Output::Log {
                    level: Level::Error,
                    ..
                },
                Output::Send { msg_id: 8, .. },
                Output::Close { .. }
            ]
        ));
        // Nothing more can be sent on a closed connection.
        assert_eq!(net.send(conn, Ping {}), None);
    }

    #[test]
    fn held_outputs_wait_for_durability_and_keep_connection_order() {
        let mut net = TestNet::new();
        let (a, b) = (ConnId::incoming(1), ConnId::incoming(2));
        net.accept(a, ());
        net.accept(b, ());
        net.answer_after(3, a, 1, Pong {}); // needs writes up to 3 durable
        net.send(a, Ping {}); // same connection: queued behind
        net.send(b, Ping {}); // another connection: goes at once
        net.close(a);
        let first = drain(&mut net);
        assert!(matches!(&first[..], [Output::Send { conn, .. }] if *conn == b));
        net.release_until(2);
        assert!(drain(&mut net).is_empty());
        net.release_until(3);
        let released = drain(&mut net);
        assert!(matches!(
            &released[..],
            [
                Output::Send { msg_id: 1, .. },
                Output::Send { msg_id: 0, .. },
                Output::Close { .. }
            ]
        ));
        assert!(!net.has_held_outputs());
    }
}
