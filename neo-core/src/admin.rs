//! The admin node: the operator's entry point.
//!
//! It follows the primary master like any node (as ADMIN), mirrors the
//! node table, the partition table and the cluster state, and serves
//! `neoctl`: connections that never identify. Some requests it answers
//! itself (partition list, node list, cluster state, primary, health
//! summary); the others it forwards to the primary, relaying the answer
//! with the operator's message id.

use std::collections::BTreeMap;

use bytes::Bytes;
use neo_proto::{
    AcceptIdentification, Address, AnswerClusterState, AnswerMonitorInformation, AnswerNodeList,
    AnswerPartitionList, AnswerPrimary, AskClusterState, CellState, ClusterState, ErrorCode, Map,
    NodeState, NodeType, Packet, Pong, RequestIdentification, Value,
};

use crate::bootstrap::{Attempt, Bootstrap};
use crate::io::{ConnId, Input, Level, Node, Output};
use crate::net::{AnswerMatch, Net, Reject};
use crate::nodes::NodeTable;
use crate::pt::PartitionTable;
use crate::time::Time;

const NOT_CONNECTED: &str = "Not connected to a primary master.";

/// Most requests of one neoctl connection waiting for the master (neoctl
/// sends one at a time): a peer cannot pile requests on the master
/// connection.
pub const FORWARDED_REQUESTS_COUNT_MAX: usize = 16;

/// What an admin is started with (NEO/py's `neoadmin` options).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub cluster: Bytes,
    /// Our listening address (for neoctl).
    pub bind: Address,
    pub masters: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Identification,
    ClusterState,
    /// A neoctl request forwarded to the master: where to relay the answer.
    Forwarded {
        ctl: ConnId,
        msg_id: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnRole {
    Master,
    /// A neoctl session.
    Ctl,
}

/// The admin node state machine.
#[derive(Debug)]
pub struct Admin {
    config: AdminConfig,
    now: Time,
    net: Net<Request, ConnRole, std::convert::Infallible>,
    nodes: NodeTable,
    pt: Option<PartitionTable>,
    cluster_state: Option<ClusterState>,
    bootstrap: Bootstrap,
    wake_at: Option<Time>,
    master_conn: Option<ConnId>,
    /// Identified with the primary.
    connected: bool,
    first_notification: bool,
    exited: bool,
}

impl Admin {
    pub fn new(config: AdminConfig, now: Time) -> Admin {
        let mut nodes = NodeTable::new();
        for addr in &config.masters {
            if nodes.by_address(addr).is_none() {
                nodes.add(NodeType::Master, Some(addr.clone()), None, NodeState::Down);
            }
        }
        let mut admin = Admin {
            config,
            now,
            net: Net::new(),
            nodes,
            pt: None,
            cluster_state: None,
            bootstrap: Bootstrap::new(),
            wake_at: None,
            master_conn: None,
            connected: false,
            first_notification: true,
            exited: false,
        };
        admin.connect_to_master();
        admin
    }

    pub fn cluster_state(&self) -> Option<ClusterState> {
        self.cluster_state
    }

    pub fn partition_table(&self) -> Option<&PartitionTable> {
        self.pt.as_ref()
    }

    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The connection to the master we follow (identified or not).
    pub fn master_connection(&self) -> Option<ConnId> {
        self.master_conn
    }

    pub fn has_exited(&self) -> bool {
        self.exited
    }

    fn connect_to_master(&mut self) {
        if self.master_conn.is_some() || self.exited {
            return;
        }
        let attempt =
            self.bootstrap
                .connect(&mut self.nodes, self.now, &mut self.net, ConnRole::Master);
        match attempt {
            Attempt::Connect(conn) => self.master_conn = Some(conn),
            Attempt::RetryAt(at) => self.wake_at = Some(at),
            Attempt::NoMaster => {}
        }
    }

    /// The connection to the master is gone (`closed_by_peer`) or must go.
    fn master_lost(&mut self, closed_by_peer: bool) {
        let Some(conn) = self.master_conn.take() else {
            return;
        };
        // Forwarded requests will never be answered: tell their sessions.
        for request in self.net.drain_pending(conn) {
            if let Request::Forwarded { ctl, msg_id } = request {
                self.net.answer(
                    ctl,
                    msg_id,
                    Packet::error(ErrorCode::ProtocolError, "connection to master lost"),
                );
                self.net.close(ctl);
            }
        }
        if closed_by_peer {
            self.net.forget(conn);
        } else {
            self.net.close(conn);
        }
        if self.connected {
            self.net.log(Level::Error, "primary master is down");
        }
        self.connected = false;
        for key in self.nodes.keys() {
            if let Some(entry) = self.nodes.get_mut(key) {
                entry.conn = None;
                entry.identified = false;
            }
        }
        if self.cluster_state == Some(ClusterState::Stopping) {
            self.exited = true;
            for c in self.net.ids() {
                self.net.close(c);
            }
            self.net.emit(Output::Exit {
                code: 0,
                reason: "cluster stopped".into(),
            });
            return;
        }
        self.cluster_state = None;
        self.connect_to_master();
    }

    fn on_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        let Some(role) = self.net.state(conn).copied() else {
            return;
        };
        if role == ConnRole::Master && packet.is_answer() {
            match self.net.match_answer(conn, msg_id, &packet) {
                AnswerMatch::Matched(request) => self.on_master_answer(request, packet),
                AnswerMatch::StrayError => {}
                AnswerMatch::Unexpected => {
                    self.net.answer(
                        conn,
                        msg_id,
                        Packet::error(ErrorCode::ProtocolError, "unexpected answer"),
                    );
                    self.master_lost(false);
                }
            }
            return;
        }
        let result = match role {
            ConnRole::Master => self.on_master_packet(packet),
            ConnRole::Ctl => self.on_ctl_packet(conn, msg_id, packet),
        };
        if let Err(reject) = result {
            let close = reject.close;
            let peer = match role {
                ConnRole::Master => "the master",
                ConnRole::Ctl => "a neoctl",
            };
            self.net.reject(conn, msg_id, reject, peer);
            if close && role == ConnRole::Master {
                // `reject` closed it already.
                self.master_lost(true);
            }
        }
    }

    fn on_master_answer(&mut self, request: Request, packet: Packet) {
        match request {
            Request::Identification => match packet {
                Packet::AcceptIdentification(AcceptIdentification {
                    node_type: NodeType::Master,
                    nid,
                    your_nid: Some(_),
                }) => {
                    let conn = self.master_conn.unwrap();
                    if let Some(key) = self.nodes.by_conn(conn) {
                        self.nodes.set_nid(key, nid);
                        let entry = self.nodes.get_mut(key).unwrap();
                        entry.state = NodeState::Running;
                        entry.identified = true;
                    }
                    self.connected = true;
                    self.first_notification = true;
                    self.nodes.reset_notification_clock();
                    self.net.log(Level::Info, "connected to the primary master");
                    self.net
                        .ask(conn, AskClusterState {}, Request::ClusterState);
                }
                Packet::Error(error) => {
                    let (level, text) =
                        crate::bootstrap::refusal(&error, &self.config.cluster, Level::Warn);
                    self.net.log(level, text);
                }
                _ => self.master_lost(false),
            },
            Request::ClusterState => {
                if let Packet::AnswerClusterState(answer) = packet {
                    self.cluster_state = answer.state;
                }
            }
            Request::Forwarded { ctl, msg_id } => {
                let protocol_error =
                    matches!(&packet, Packet::Error(e) if e.code == ErrorCode::ProtocolError);
                self.net.answer(ctl, msg_id, packet);
                if protocol_error {
                    self.net.close(ctl);
                }
            }
        }
    }

    fn on_master_packet(&mut self, packet: Packet) -> Result<(), Reject> {
        match packet {
            Packet::NotPrimaryMaster(not_primary) => {
                self.bootstrap.not_primary(
                    &mut self.nodes,
                    &not_primary.known_masters,
                    not_primary.primary,
                );
                Ok(())
            }
            Packet::NotifyClusterInformation(info) => {
                self.cluster_state = Some(info.state);
                Ok(())
            }
            Packet::NotifyNodeInformation(notification) => {
                let first = std::mem::replace(&mut self.first_notification, false);
                let pt = &self.pt;
                let has_cells = |nid| pt.as_ref().is_some_and(|pt| pt.has_cells(nid));
                self.nodes
                    .apply_notification(
                        None,
                        first,
                        notification.timestamp.0,
                        &notification.nodes,
                        &has_cells,
                    )
                    .map_err(|e| Reject::protocol(e.0))?;
                Ok(())
            }
            Packet::SendPartitionTable(table) => {
                let pt = PartitionTable::from_rows(table.ptid, table.num_replicas, &table.rows)
                    .map_err(|e| Reject::protocol(format!("SendPartitionTable.rows: {e}")))?;
                self.pt = Some(pt);
                Ok(())
            }
            Packet::NotifyPartitionChanges(changes) => {
                let pt = self.pt.as_mut().ok_or_else(Reject::changes_before_table)?;
                pt.apply_changes(changes.ptid, changes.num_replicas, &changes.changes)
                    .map_err(|e| Reject::protocol(format!("NotifyPartitionChanges: {e}")))
            }
            Packet::NotifyUpstreamAdmin(_) | Packet::FlushLog(_) => Ok(()),
            other => Err(Reject::unexpected(&other, "admin")),
        }
    }

    /// A request from neoctl.
    fn on_ctl_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        if let Packet::RequestIdentification(_) = packet {
            // Admins of backup clusters monitor through us; none is
            // configured.
            return Err(Reject::protocol("unknown backup cluster"));
        }
        if let Packet::Ping(_) = packet {
            self.net.answer(conn, msg_id, Pong {});
            return Ok(());
        }
        let Some(master) = self.master_conn.filter(|_| self.connected) else {
            return Err(Reject::not_ready(NOT_CONNECTED));
        };
        match packet {
            Packet::AskPartitionList(ask) => {
                let Some(pt) = &self.pt else {
                    return Err(Reject::not_ready("no partition table yet"));
                };
                let np = pt.num_partitions();
                let max = if ask.max_offset == 0 {
                    np
                } else {
                    ask.max_offset
                };
                if ask.min_offset > max || max > np {
                    // NEO/py sends this error as a new packet, not an answer.
                    self.net.send(
                        conn,
                        Packet::error(ErrorCode::ProtocolError, "invalid partition table offset"),
                    );
                    return Ok(());
                }
                let rows = pt.rows()[ask.min_offset as usize..max as usize].to_vec();
                let answer = AnswerPartitionList {
                    ptid: pt.ptid(),
                    num_replicas: pt.num_replicas(),
                    rows,
                };
                self.net.answer(conn, msg_id, answer);
            }
            Packet::AskNodeList(ask) => {
                let nodes = self
                    .nodes
                    .iter()
                    .filter(|(_, e)| ask.node_type.is_none_or(|t| t == e.node_type))
                    .map(|(_, e)| e.info())
                    .collect();
                self.net.answer(conn, msg_id, AnswerNodeList { nodes });
            }
            Packet::AskClusterState(_) => {
                let state = self.cluster_state;
                self.net.answer(conn, msg_id, AnswerClusterState { state });
            }
            Packet::AskPrimary(_) => {
                let primary = self
                    .nodes
                    .by_conn(master)
                    .and_then(|k| self.nodes.get(k))
                    .and_then(|e| e.nid());
                match primary {
                    Some(primary_nid) => {
                        self.net.answer(conn, msg_id, AnswerPrimary { primary_nid })
                    }
                    None => return Err(Reject::not_ready(NOT_CONNECTED)),
                }
            }
            Packet::AskMonitorInformation(_) => {
                let answer = self.monitor_information();
                self.net.answer(conn, msg_id, answer);
            }
            Packet::FlushLog(_) => {
                self.net.send(master, neo_proto::FlushLog {});
            }
            Packet::AddPendingNodes(_)
            | Packet::AskLastIDs(_)
            | Packet::AskLastTransaction(_)
            | Packet::AskRecovery(_)
            | Packet::CheckReplicas(_)
            | Packet::Repair(_)
            | Packet::SetClusterState(_)
            | Packet::SetNodeState(_)
            | Packet::SetNumReplicas(_)
            | Packet::Truncate(_)
            | Packet::TweakPartitionTable(_) => {
                let forwarded = self.net.get(master).map_or(0, |m| {
                    m.pending_contexts()
                        .filter(|r| matches!(r, Request::Forwarded { ctl, .. } if *ctl == conn))
                        .count()
                });
                if forwarded >= FORWARDED_REQUESTS_COUNT_MAX {
                    return Err(Reject::protocol(format!(
                        "more than {FORWARDED_REQUESTS_COUNT_MAX} requests waiting for the master"
                    )));
                }
                self.net
                    .ask(master, packet, Request::Forwarded { ctl: conn, msg_id });
            }
            other => return Err(Reject::unexpected(&other, "administration")),
        }
        Ok(())
    }

    /// The health summary: a problem when a storage holding cells is not
    /// running or the cluster does not serve, a warning when some cell is
    /// not UP_TO_DATE.
    fn monitor_information(&self) -> AnswerMonitorInformation {
        let mut per_state: BTreeMap<CellState, usize> = BTreeMap::new();
        let mut down = 0;
        if let Some(pt) = &self.pt {
            for offset in 0..pt.num_partitions() {
                for cell in pt.row(offset) {
                    *per_state.entry(cell.state).or_default() += 1;
                }
            }
            down = pt
                .nodes(false)
                .into_iter()
                .filter(|&nid| self.nodes.state_of(nid) != Some(NodeState::Running))
                .count();
        }
        let operational = self.cluster_state == Some(ClusterState::Running);
        let not_up_to_date = per_state
            .iter()
            .any(|(s, n)| *s != CellState::UpToDate && *n > 0);
        let mut summary = format!(
            "cluster state: {}\n",
            self.cluster_state
                .map_or("unknown".into(), |s| s.to_string())
        );
        for (state, count) in &per_state {
            summary.push_str(&format!("{state}: {count}\n"));
        }
        if down > 0 {
            summary.push_str(&format!("{down} storage node(s) not running\n"));
        }
        let problem = down > 0 || !operational;
        AnswerMonitorInformation {
            warnings: if !problem && not_up_to_date {
                vec![None]
            } else {
                vec![]
            },
            problems: if problem { vec![None] } else { vec![] },
            summary: summary.into(),
        }
    }

    fn on_connected(&mut self, conn: ConnId) {
        if let Some(c) = self.net.get_mut(conn) {
            c.connecting = false;
        }
        if Some(conn) == self.master_conn {
            let mut extra = Map::new();
            extra
                .0
                .push((Bytes::from_static(b"backup"), Value::Array(Vec::new())));
            let request = RequestIdentification {
                node_type: NodeType::Admin,
                nid: None,
                address: Some(self.config.bind.clone()),
                cluster_name: self.config.cluster.clone(),
                id_timestamp: None,
                extra,
            };
            self.net.ask(conn, request, Request::Identification);
        }
    }
}

impl Node for Admin {
    type Event = std::convert::Infallible;

    fn handle(&mut self, now: Time, input: Input) {
        self.now = self.now.max(now);
        if self.exited {
            return;
        }
        match input {
            Input::Accepted { conn } => self.net.accept(conn, ConnRole::Ctl),
            Input::Connected { conn } => self.on_connected(conn),
            Input::ConnectFailed { conn } | Input::Closed { conn } => {
                if Some(conn) == self.master_conn {
                    self.master_lost(true);
                } else {
                    self.net.forget(conn);
                }
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

    fn poll_output(&mut self) -> Option<Output<Self::Event>> {
        self.net.poll()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.wake_at
    }
}
