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
    Address, AnswerClusterState, AnswerMonitorInformation, AnswerNodeList, AnswerPartitionList,
    AnswerPrimary, AskClusterState, CellState, ClusterState, ErrorCode, Map, NodeState, NodeType,
    Packet, Value,
};

use crate::identity::Identity;
use crate::net::{Dispatch, Net, Reject};
use crate::node::{ConnId, Input, Level, Node, Output};
use crate::node_table::NodeTable;
use crate::primary_link::{FromPrimary, Identified, PrimaryLink};
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
    /// The cluster name every node of the cluster is configured with.
    pub cluster: Bytes,
    /// Our listening address (for neoctl).
    pub bind: Address,
    /// The masters to look for the primary among.
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
    now: Time,
    net: Net<Request, ConnRole, std::convert::Infallible>,
    nodes: NodeTable,
    pt: Option<PartitionTable>,
    cluster_state: Option<ClusterState>,
    link: PrimaryLink,
    exited: bool,
}

impl Admin {
    /// An admin that starts looking for the primary at once.
    pub fn new(config: AdminConfig, now: Time) -> Admin {
        let identity = Identity {
            node_type: NodeType::Admin,
            cluster: config.cluster.clone(),
            address: Some(config.bind.clone()),
        };
        let mut admin = Admin {
            nodes: NodeTable::with_masters(&config.masters),
            now,
            net: Net::new(),
            pt: None,
            cluster_state: None,
            link: PrimaryLink::new(identity, None),
            exited: false,
        };
        admin.connect_to_master();
        admin
    }

    /// The cluster state the primary last announced (none while not
    /// connected).
    pub fn cluster_state(&self) -> Option<ClusterState> {
        self.cluster_state
    }

    /// The partition table as the primary last sent it.
    pub fn partition_table(&self) -> Option<&PartitionTable> {
        self.pt.as_ref()
    }

    /// The node table, as the primary's notifications keep it.
    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    /// Whether the primary accepted us (neoctl requests are served).
    pub fn is_connected(&self) -> bool {
        self.link.is_identified()
    }

    /// The connection to the master we follow (identified or not).
    pub fn master_connection(&self) -> Option<ConnId> {
        self.link.conn()
    }

    fn connect_to_master(&mut self) {
        if !self.exited {
            let (nodes, net) = (&mut self.nodes, &mut self.net);
            self.link.connect(nodes, self.now, net, ConnRole::Master);
        }
    }

    /// The connection to the master is gone (`closed_by_peer`) or must go.
    fn master_lost(&mut self, closed_by_peer: bool, why: &str) {
        let (nodes, net) = (&mut self.nodes, &mut self.net);
        let Some(pending) = self.link.lose(nodes, net, closed_by_peer, why) else {
            return;
        };
        // Forwarded requests will never be answered: tell their sessions.
        for request in pending {
            if let Request::Forwarded { ctl, msg_id } = request {
                self.net.answer(
                    ctl,
                    msg_id,
                    Packet::error(ErrorCode::ProtocolError, "connection to master lost"),
                );
                self.net.close(ctl);
            }
        }
        if self.cluster_state == Some(ClusterState::Stopping) {
            self.exited = true;
            for c in self.net.ids() {
                self.net.close(c);
            }
            self.net.emit(Output::Exit {
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
        let result = match self.net.dispatch(conn, msg_id, packet) {
            Dispatch::Answer(request, packet) => {
                self.on_master_answer(request, packet);
                Ok(())
            }
            Dispatch::Request(packet) => match role {
                ConnRole::Master => self.on_master_packet(packet),
                ConnRole::Ctl => self.on_ctl_packet(conn, msg_id, packet),
            },
            Dispatch::Done => Ok(()),
            Dispatch::Refuse(reject) => Err(reject),
        };
        let Err(reject) = result else {
            return;
        };
        match role {
            ConnRole::Master if reject.close => {
                // The link took the forwarded requests with it:
                // `master_lost` answers their sessions.
                self.net.refuse(conn, msg_id, reject, "the primary master");
                self.master_lost(false, "we refused what it sent");
            }
            ConnRole::Master => {
                self.net.reject(conn, msg_id, reject, "the primary master");
            }
            ConnRole::Ctl => {
                self.net.reject(conn, msg_id, reject, "a neoctl");
            }
        }
    }

    fn on_master_answer(&mut self, request: Request, packet: Packet) {
        match request {
            Request::Identification => {
                let (nodes, net) = (&mut self.nodes, &mut self.net);
                match self
                    .link
                    .on_identification_answer(nodes, net, packet, Level::Warn)
                {
                    Identified::Accepted { .. } => {
                        if let Some(conn) = self.link.conn() {
                            self.net
                                .ask(conn, AskClusterState {}, Request::ClusterState);
                        }
                    }
                    Identified::Refused { .. } => {}
                    Identified::Invalid => self.master_lost(false, "invalid identification"),
                }
            }
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
        match self.link.on_packet(&mut self.nodes, &mut self.pt, packet)? {
            FromPrimary::Other(Packet::NotifyClusterInformation(info)) => {
                self.cluster_state = Some(info.state);
                Ok(())
            }
            FromPrimary::Other(Packet::NotifyUpstreamAdmin(_) | Packet::FlushLog(_)) => Ok(()),
            FromPrimary::Other(other) => Err(Reject::unexpected(&other, "admin")),
            FromPrimary::Done
            | FromPrimary::Nodes { .. }
            | FromPrimary::TableReplaced(_)
            | FromPrimary::TableChanged { .. } => Ok(()),
        }
    }

    /// A request from neoctl.
    fn on_ctl_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        if let Packet::RequestIdentification(_) = packet {
            // Admins of backup clusters monitor through us; none is
            // configured.
            return Err(Reject::protocol("unknown backup cluster"));
        }
        let Some(master) = self.link.identified_conn() else {
            return Err(Reject::not_ready(NOT_CONNECTED));
        };
        match packet {
            Packet::AskPartitionList(ask) => self.answer_partition_list(conn, msg_id, &ask)?,
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
            | Packet::TweakPartitionTable(_) => self.forward(conn, msg_id, master, packet)?,
            other => return Err(Reject::unexpected(&other, "administration")),
        }
        Ok(())
    }

    /// AskPartitionList: the rows `min_offset..max_offset` (0: to the end).
    fn answer_partition_list(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        ask: &neo_proto::AskPartitionList,
    ) -> Result<(), Reject> {
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
        Ok(())
    }

    /// A command only the primary carries out: relayed, its answer going
    /// back to the session with the session's message id.
    fn forward(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        master: ConnId,
        packet: Packet,
    ) -> Result<(), Reject> {
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
        if self.net.connected(conn).is_some() && self.link.is_conn(conn) {
            // No backup cluster monitors through us.
            let mut extra = Map::new();
            extra
                .0
                .push((Bytes::from_static(b"backup"), Value::Array(Vec::new())));
            self.link
                .identify(&mut self.net, Request::Identification, extra);
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
                if self.link.is_conn(conn) {
                    self.master_lost(true, "connection closed");
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
                if !self.exited {
                    let (nodes, net) = (&mut self.nodes, &mut self.net);
                    self.link.on_timeout(nodes, self.now, net, ConnRole::Master);
                }
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output<Self::Event>> {
        self.net.poll()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.link.poll_timeout()
    }
}
