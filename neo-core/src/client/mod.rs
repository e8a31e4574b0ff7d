//! The client node: what a ZODB application embeds.
//!
//! It finds the primary master, identifies as CLIENT (accepted only while
//! the cluster serves), learns the node list and the partition table and
//! keeps them current, and tracks the last committed TID through
//! invalidations — the view of the database its reads are made against.
//! When the master connection is lost it forgets the table and reconnects.

use neo_proto::{
    AcceptIdentification, Address, AskLastTransaction, ClusterState, Map, Nid, NodeState, NodeType,
    Oid, Packet, Pong, RequestIdentification, Tid, Timestamp, Value,
};

use crate::bootstrap::{Attempt, Bootstrap};
use crate::io::{ConnId, Input, Level, Node, Output};
use crate::net::{AnswerMatch, Net, Reject};
use crate::nodes::NodeTable;
use crate::pt::PartitionTable;
use crate::throttle::ConnectThrottle;
use crate::time::Time;

/// What a client is started with (NEO/py's `<NEOStorage>` options).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub cluster: bytes::Bytes,
    pub masters: Vec<Address>,
    /// A read-only session: the master refuses writes.
    pub read_only: bool,
    /// Seed of the client's random choices (which replica to read).
    pub seed: u64,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Identification,
    LastTransaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnRole {
    Master,
}

/// The client node state machine.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    now: Time,
    net: Net<Request, ConnRole, ClientEvent>,
    nodes: NodeTable,
    pt: Option<PartitionTable>,
    bootstrap: Bootstrap,
    throttle: ConnectThrottle,
    wake_at: Option<Time>,
    master_conn: Option<ConnId>,
    /// Identified with the primary.
    identified: bool,
    first_notification: bool,
    nid: Option<Nid>,
    id_timestamp: Option<Timestamp>,
    /// The last committed TID we know of (our snapshot).
    last_tid: Option<Tid>,
    /// Invalidations are ignored while (re)connecting, until the answer to
    /// AskLastTransaction tells where we stand.
    ignore_invalidations: bool,
    ready: bool,
}

impl Client {
    pub fn new(config: ClientConfig, now: Time) -> Client {
        let mut nodes = NodeTable::new();
        for addr in &config.masters {
            if nodes.by_address(addr).is_none() {
                nodes.add(NodeType::Master, Some(addr.clone()), None, NodeState::Down);
            }
        }
        let mut client = Client {
            config,
            now,
            net: Net::new(),
            nodes,
            pt: None,
            bootstrap: Bootstrap::new(),
            throttle: ConnectThrottle::default(),
            wake_at: None,
            master_conn: None,
            identified: false,
            first_notification: true,
            nid: None,
            id_timestamp: None,
            last_tid: None,
            ignore_invalidations: true,
            ready: false,
        };
        client.connect_to_master();
        client
    }

    pub fn nid(&self) -> Option<Nid> {
        self.nid
    }

    /// Our identification timestamp (presented to storages).
    pub fn id_timestamp(&self) -> Option<Timestamp> {
        self.id_timestamp
    }

    pub fn partition_table(&self) -> Option<&PartitionTable> {
        self.pt.as_ref()
    }

    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    pub fn last_tid(&self) -> Option<Tid> {
        self.last_tid
    }

    /// Connected to the primary with an operational table.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The connection to the master we follow (identified or not).
    pub fn master_connection(&self) -> Option<ConnId> {
        self.master_conn
    }

    fn connect_to_master(&mut self) {
        if self.master_conn.is_some() {
            return;
        }
        match self
            .bootstrap
            .next(&self.nodes, &mut self.throttle, self.now)
        {
            Attempt::Connect(addr) => {
                let key = self.nodes.by_address(&addr);
                let conn = self.net.connect(addr, ConnRole::Master);
                if let Some(entry) = key.and_then(|k| self.nodes.get_mut(k)) {
                    entry.conn = Some(conn);
                }
                self.master_conn = Some(conn);
            }
            Attempt::RetryAt(at) => self.wake_at = Some(at),
            Attempt::NoMaster => self.net.log(Level::Error, "no master configured"),
        }
    }

    /// The master connection is gone: forget the table (it may be stale),
    /// tell the application, reconnect.
    fn master_lost(&mut self, closed_by_peer: bool) {
        let Some(conn) = self.master_conn.take() else {
            return;
        };
        if closed_by_peer {
            self.net.forget(conn);
        } else {
            self.net.close(conn);
        }
        if self.identified {
            self.net
                .log(Level::Warn, "connection to the primary master lost");
        }
        let was_ready = std::mem::replace(&mut self.ready, false);
        self.identified = false;
        self.pt = None;
        self.ignore_invalidations = true;
        for key in self.nodes.keys() {
            if let Some(entry) = self.nodes.get_mut(key) {
                entry.conn = None;
                entry.identified = false;
            }
        }
        if was_ready {
            self.net.emit(Output::Event(ClientEvent::Disconnected));
        }
        self.connect_to_master();
    }

    fn on_connected(&mut self, conn: ConnId) {
        if let Some(c) = self.net.get_mut(conn) {
            c.connecting = false;
        }
        if Some(conn) != self.master_conn {
            return;
        }
        let mut extra = Map::new();
        if self.config.read_only {
            extra
                .0
                .push((bytes::Bytes::from_static(b"read_only"), Value::Bool(true)));
        }
        let request = RequestIdentification {
            node_type: NodeType::Client,
            nid: self.nid,
            address: None,
            cluster_name: self.config.cluster.clone(),
            id_timestamp: None,
            extra,
        };
        self.net.ask(conn, request, Request::Identification);
    }

    fn on_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        if Some(conn) != self.master_conn {
            return;
        }
        if packet.is_answer() {
            match self.net.match_answer(conn, msg_id, &packet) {
                AnswerMatch::Matched(request) => self.on_answer(request, packet),
                AnswerMatch::StrayError => {}
                AnswerMatch::Unexpected => {
                    self.net.answer(
                        conn,
                        msg_id,
                        Packet::error(neo_proto::ErrorCode::ProtocolError, "unexpected answer"),
                    );
                    self.master_lost(false);
                }
            }
            return;
        }
        if let Err(reject) = self.on_master_packet(conn, msg_id, packet) {
            let close = reject.close;
            self.net.reject(conn, msg_id, reject);
            if close {
                self.master_lost(true);
            }
        }
    }

    fn on_answer(&mut self, request: Request, packet: Packet) {
        match (request, packet) {
            (
                Request::Identification,
                Packet::AcceptIdentification(AcceptIdentification {
                    node_type: NodeType::Master,
                    nid,
                    your_nid: Some(your_nid),
                }),
            ) => {
                let conn = self.master_conn.unwrap();
                if let Some(key) = self.nodes.by_conn(conn) {
                    self.nodes.set_nid(key, nid);
                    let entry = self.nodes.get_mut(key).unwrap();
                    entry.state = NodeState::Running;
                    entry.identified = true;
                }
                self.nid = Some(your_nid);
                self.id_timestamp = None;
                self.identified = true;
                self.first_notification = true;
                self.nodes.reset_notification_clock();
                self.net
                    .ask(conn, AskLastTransaction {}, Request::LastTransaction);
            }
            (Request::Identification, Packet::Error(error)) => {
                // NOT_READY while the cluster does not serve: the master
                // closes the connection and we try again.
                self.net.log(
                    Level::Info,
                    format!(
                        "master refused us: {} {}",
                        error.code,
                        String::from_utf8_lossy(&error.message)
                    ),
                );
            }
            (Request::Identification, _) => self.master_lost(false),
            (Request::LastTransaction, Packet::AnswerLastTransaction(answer)) => {
                self.last_tid = Some(answer.tid);
                self.ignore_invalidations = false;
                self.check_ready();
            }
            (Request::LastTransaction, _) => {}
        }
    }

    fn check_ready(&mut self) {
        if self.ready || !self.identified || self.ignore_invalidations {
            return;
        }
        let nodes = &self.nodes;
        let operational = self
            .pt
            .as_ref()
            .is_some_and(|pt| pt.operational(&|nid| nodes.state_of(nid), &[]));
        if operational {
            self.ready = true;
            let last_tid = self.last_tid.unwrap_or(Tid::ZERO);
            self.net
                .emit(Output::Event(ClientEvent::Ready { last_tid }));
        }
    }

    fn on_master_packet(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        match packet {
            Packet::Ping(_) => {
                self.net.answer(conn, msg_id, Pong {});
            }
            Packet::NotPrimaryMaster(not_primary) => {
                self.bootstrap.not_primary(
                    &mut self.nodes,
                    &not_primary.known_masters,
                    not_primary.primary,
                );
            }
            Packet::NotifyNodeInformation(notification) => {
                let first = std::mem::replace(&mut self.first_notification, false);
                let pt = self.pt.clone();
                let has_cells = |nid| {
                    pt.as_ref()
                        .is_some_and(|pt: &PartitionTable| pt.has_cells(nid))
                };
                self.nodes
                    .apply_notification(
                        self.nid,
                        first,
                        notification.timestamp.0,
                        &notification.nodes,
                        &has_cells,
                    )
                    .map_err(|e| Reject::protocol(e.0))?;
                if let Some(own) = notification
                    .nodes
                    .iter()
                    .find(|n| n.nid.is_some() && n.nid == self.nid)
                {
                    self.id_timestamp = own.id_timestamp;
                }
                self.check_ready();
            }
            Packet::SendPartitionTable(table) => {
                self.pt = Some(PartitionTable::from_rows(
                    table.ptid,
                    table.num_replicas,
                    &table.rows,
                ));
                self.check_ready();
            }
            Packet::NotifyPartitionChanges(changes) => {
                let pt = self.pt.get_or_insert_with(|| PartitionTable::new(0, 0));
                pt.apply_changes(changes.ptid, changes.num_replicas, &changes.changes)
                    .map_err(|e| Reject::protocol(e.0))?;
            }
            Packet::NotifyClusterInformation(info) => {
                if info.state != ClusterState::Running {
                    self.net
                        .log(Level::Info, format!("cluster switching to {}", info.state));
                }
            }
            Packet::InvalidateObjects(invalidation) => {
                if !self.ignore_invalidations {
                    self.last_tid = Some(invalidation.tid);
                    self.net.emit(Output::Event(ClientEvent::Invalidated {
                        tid: invalidation.tid,
                        oids: invalidation.oids,
                    }));
                }
            }
            Packet::StopOperation(_) => {
                self.net.log(Level::Warn, "the master stops the cluster");
            }
            Packet::FlushLog(_) => {}
            other => return Err(Reject::unexpected(&other, "client")),
        }
        Ok(())
    }
}

impl Node for Client {
    type Event = ClientEvent;

    fn handle(&mut self, now: Time, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Connected { conn } => self.on_connected(conn),
            Input::ConnectFailed { conn } | Input::Closed { conn } => {
                if Some(conn) == self.master_conn {
                    self.master_lost(true);
                } else {
                    self.net.forget(conn);
                }
            }
            Input::Accepted { conn } => {
                // Clients do not listen.
                self.net.accept(conn, ConnRole::Master);
                self.net.close(conn);
            }
            Input::Packet {
                conn,
                msg_id,
                packet,
            } => self.on_packet(conn, msg_id, packet),
            Input::Timeout => {
                if self.wake_at.is_some_and(|at| at <= self.now) {
                    self.wake_at = None;
                    self.connect_to_master();
                }
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output<ClientEvent>> {
        self.net.poll()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.wake_at
    }
}
