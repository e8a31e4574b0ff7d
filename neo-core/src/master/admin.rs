//! Operator commands, forwarded by the admin node (NEO/py's
//! AdministrationHandler): cluster state, node states, adding storages,
//! tweaking the table, replicas, truncation, repair.

use neo_proto::{
    AnswerTweakPartitionTable, ClusterState, ErrorCode, Nid, NodeInfo, NodeState, NodeType,
    NotifyNodeInformation, NotifyRepair, Packet, Timestamp,
};

use super::{Master, StoppedOperation};
use crate::net::Reject;
use crate::node::{ConnId, Level};
use crate::node_table::NodeKey;

pub(super) fn ack(message: impl Into<String>) -> Packet {
    Packet::error(ErrorCode::Ack, message)
}

impl Master {
    pub(super) fn on_admin_packet(
        &mut self,
        conn: ConnId,
        _key: NodeKey,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        let table_changes = |state| {
            matches!(
                state,
                ClusterState::Running | ClusterState::StartingBackup | ClusterState::Backingup
            )
        };
        let running = |state| state == ClusterState::Running;
        match packet {
            Packet::SetClusterState(request) => {
                self.set_cluster_state_command(conn, msg_id, request.state)
            }
            Packet::SetNodeState(request) => {
                self.set_node_state_command(conn, msg_id, request.nid, request.state)
            }
            Packet::AddPendingNodes(request) => {
                self.rpc_allowed("addPendingNodes", table_changes)?;
                self.add_pending_nodes_command(conn, msg_id, request)
            }
            Packet::TweakPartitionTable(request) => {
                self.rpc_allowed("tweakPartitionTable", table_changes)?;
                self.tweak_command(conn, msg_id, request)
            }
            Packet::SetNumReplicas(request) => {
                self.rpc_allowed("setNumReplicas", table_changes)?;
                self.broadcast_pt_changes(Vec::new(), Some(request.num_replicas));
                self.net.answer(conn, msg_id, ack(""));
                Ok(())
            }
            Packet::Truncate(request) => {
                self.rpc_allowed("truncate", running)?;
                self.truncate_command(conn, msg_id, request)
            }
            Packet::Repair(request) => self.repair_command(conn, msg_id, request),
            Packet::CheckReplicas(request) => {
                self.rpc_allowed("checkReplicas", running)?;
                self.check_replicas_command(conn, msg_id, request)
            }
            other => Err(Reject::unexpected(&other, "administration")),
        }
    }

    /// Refuses command `name` unless the cluster's state is `allowed`.
    fn rpc_allowed(
        &self,
        name: &str,
        allowed: impl Fn(ClusterState) -> bool,
    ) -> Result<(), Reject> {
        let state = self.cluster_state().unwrap_or(ClusterState::Recovering);
        if allowed(state) {
            return Ok(());
        }
        Err(Reject::denied(format!(
            "{name} RPC can not be used in {state} state"
        )))
    }

    /// AddPendingNodes: the listed PENDING storages get cells.
    fn add_pending_nodes_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        request: neo_proto::AddPendingNodes,
    ) -> Result<(), Reject> {
        let pending: Vec<NodeKey> = self
            .nodes
            .of_type(NodeType::Storage)
            .filter(|(_, e)| e.is_pending() && e.nid().is_some_and(|n| request.nids.contains(&n)))
            .map(|(k, _)| k)
            .collect();
        let nids: Vec<Nid> = pending
            .iter()
            .filter_map(|&k| self.nodes[k].nid())
            .collect();
        let added = self.pt.add_nodes(&nids);
        let added_keys: Vec<NodeKey> = pending
            .into_iter()
            .filter(|&k| added.contains(&self.nodes[k].nid().unwrap()))
            .collect();
        if added_keys.is_empty() {
            self.log(Level::Warn, "no node added".to_string());
            self.net.answer(conn, msg_id, ack("No node added"));
            return Ok(());
        }
        for &key in &added_keys {
            self.nodes[key].state = NodeState::Running;
            self.start_storage(key);
        }
        self.broadcast_nodes(&added_keys);
        let names: Vec<String> = added.iter().map(Nid::to_string).collect();
        self.log(Level::Info, format!("nodes added: {}", names.join(", ")));
        self.net.answer(
            conn,
            msg_id,
            ack(format!("Nodes added: {}", names.join(", "))),
        );
        Ok(())
    }

    /// TweakPartitionTable: rebalance, dropping the listed storages.
    fn tweak_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        request: neo_proto::TweakPartitionTable,
    ) -> Result<(), Reject> {
        let mut drop_list = Vec::new();
        for (_, entry) in self.nodes.of_type(NodeType::Storage) {
            let Some(nid) = entry.nid() else { continue };
            if request.drop_nids.contains(&nid) || entry.is_pending() {
                drop_list.push(nid);
            } else if !entry.is_running() {
                return Err(Reject::denied(
                    "tweak: down nodes must be listed explicitly",
                ));
            }
        }
        let devpaths = self.devpaths();
        let devpath_of = |nid| devpaths.get(&nid).cloned().unwrap_or_default();
        let state_of = |nid| self.nodes.state_of(nid);
        let mut pt = if request.dry_run {
            let mut copy = self.pt.clone();
            // As NEO/py's copy: nodes without cell stay candidates.
            copy.add_nodes(&self.pt.balancing_set());
            copy
        } else {
            self.pt.clone()
        };
        let changes = pt
            .tweak(&drop_list, &devpath_of, &state_of)
            .map_err(|e| Reject::denied(e.to_string()))?;
        let rows = pt.rows();
        if !request.dry_run {
            self.pt = pt;
            self.broadcast_pt_changes(changes.clone(), None);
        }
        self.net.answer(
            conn,
            msg_id,
            AnswerTweakPartitionTable {
                changed: !changes.is_empty(),
                rows,
            },
        );
        Ok(())
    }

    /// Truncate: stop, cut the database after a TID, start again.
    fn truncate_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        request: neo_proto::Truncate,
    ) -> Result<(), Reject> {
        let primary = self.primary().unwrap();
        if primary.commits.last_transaction <= request.tid {
            return Err(Reject::denied(
                "Truncating after last transaction does nothing",
            ));
        }
        if primary.commits.first_tid > request.tid {
            return Err(Reject::denied(
                "Truncating before first transaction is probably not what you intended to do",
            ));
        }
        if !primary
            .pm
            .approved_rejected(neo_proto::Tid(request.tid.0.saturating_add(1)))
            .0
            .is_empty()
        {
            return Err(Reject::denied("Can not truncate before an approved pack"));
        }
        self.net.answer(conn, msg_id, ack(""));
        self.log(
            Level::Warn,
            format!("truncating the database after {}", request.tid),
        );
        self.stopped_operation(StoppedOperation {
            truncate: Some(request.tid),
        });
        Ok(())
    }

    /// Repair: relay to the listed storages.
    fn repair_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        request: neo_proto::Repair,
    ) -> Result<(), Reject> {
        let mut conns = Vec::new();
        for nid in &request.nids {
            match self.nodes.entry_by_nid(*nid) {
                Some(e) if e.node_type == NodeType::Storage && e.identified => {
                    conns.push(e.conn.unwrap())
                }
                _ => return Err(Reject::denied(format!("invalid storage node {nid}"))),
            }
        }
        for c in conns {
            self.net.send(
                c,
                NotifyRepair {
                    dry_run: request.dry_run,
                },
            );
        }
        self.net.answer(conn, msg_id, ack(""));
        Ok(())
    }

    fn set_cluster_state_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        requested: ClusterState,
    ) -> Result<(), Reject> {
        let state = self.cluster_state().unwrap();
        let allowed_from: &[ClusterState] = match requested {
            ClusterState::Verifying => &[ClusterState::Recovering],
            ClusterState::StartingBackup => &[ClusterState::Running, ClusterState::StoppingBackup],
            ClusterState::StoppingBackup => {
                &[ClusterState::Backingup, ClusterState::StartingBackup]
            }
            ClusterState::Stopping => ClusterState::ALL,
            _ => return Err(Reject::denied("Invalid state requested")),
        };
        if !allowed_from.contains(&state) {
            return Err(Reject::denied("Can not switch to this state"));
        }
        match requested {
            ClusterState::Verifying => {
                let storages: Vec<NodeKey> = self.nodes.identified_of_type(NodeType::Storage);
                if storages.is_empty() {
                    return Err(Reject::denied(
                        "Cannot exit recovery without any storage node",
                    ));
                }
                for key in storages {
                    let busy = self
                        .conn_of(key)
                        .and_then(|c| self.net.get(c))
                        .is_some_and(|c| c.has_pending_requests());
                    if busy {
                        return Err(Reject::denied(format!(
                            "Cannot exit recovery now: node {} is entering cluster",
                            self.node_desc(key)
                        )));
                    }
                }
                self.primary_mut().unwrap().startup_allowed = true;
                self.net.answer(conn, msg_id, ack("Cluster state changed"));
                self.log(
                    Level::Info,
                    "startup allowed by the administrator".to_string(),
                );
            }
            ClusterState::Stopping => {
                self.net.answer(conn, msg_id, ack("Cluster state changed"));
                self.begin_shutdown();
            }
            _ => {
                return Err(Reject::denied(
                    "No upstream cluster to backup defined in configuration",
                ))
            }
        }
        Ok(())
    }

    fn set_node_state_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        nid: Nid,
        state: NodeState,
    ) -> Result<(), Reject> {
        let key = self.check_node_state_change(nid, state)?;
        let changed = state != self.nodes[key].state;
        let message = if self.nodes[key].node_type == NodeType::Storage {
            self.set_storage_state(key, nid, state)?
        } else {
            self.nodes[key].state = state;
            None
        };
        let message = message.unwrap_or_else(|| match changed {
            true => "state changed".to_string(),
            false => format!("node already in {state} state"),
        });
        self.net.answer(conn, msg_id, ack(message));
        if changed {
            if let Some(c) = self.conn_of(key) {
                self.tell_node_its_state(key, c);
            }
            self.broadcast_nodes(&[key]);
            if state == NodeState::Unknown {
                if self.nodes[key].node_type == NodeType::Storage {
                    self.retired_nids.insert(nid);
                }
                self.forget_node(key);
            }
        }
        Ok(())
    }

    /// The node an operator may set to `state`: a master only DOWN (not
    /// ourselves), a storage DOWN or UNKNOWN, nothing else.
    fn check_node_state_change(&self, nid: Nid, state: NodeState) -> Result<NodeKey, Reject> {
        let Some(key) = self.nodes.by_nid(nid) else {
            return Err(Reject::denied("unknown node"));
        };
        let allowed: &[NodeState] = match self.nodes[key].node_type {
            NodeType::Master => &[NodeState::Down],
            NodeType::Storage => &[NodeState::Down, NodeState::Unknown],
            _ => &[],
        };
        if !allowed.contains(&state) {
            return Err(Reject::denied(format!(
                "can not switch node to {state} state"
            )));
        }
        if Some(nid) == self.nid() {
            return Err(Reject::denied("can not kill primary master node"));
        }
        Ok(key)
    }

    /// A storage killed (DOWN: its cells go out of date, unless it holds a
    /// partition's last readable copy) or removed (UNKNOWN: its cells are
    /// dropped; it must be stopped first). Returns the operator's message
    /// when it differs from the usual one.
    fn set_storage_state(
        &mut self,
        key: NodeKey,
        nid: Nid,
        state: NodeState,
    ) -> Result<Option<String>, Reject> {
        let keep = state == NodeState::Down;
        if self.nodes[key].is_running() && !keep {
            return Err(Reject::denied(
                "a running node must be stopped before removal",
            ));
        }
        // With `keep` (kill), only check that no partition loses its last
        // readable copy; otherwise really drop the node's cells.
        let mut changes = self
            .pt
            .drop_nodes(&[nid], keep)
            .map_err(|e| Reject::denied(e.to_string()))?;
        self.nodes[key].state = state;
        if let Some(c) = self.conn_of(key) {
            self.tell_node_its_state(key, c);
            // Closed without handling it as a loss: it is DOWN already.
            self.net.close(c);
            let entry = &mut self.nodes[key];
            entry.conn = None;
            entry.identified = false;
        }
        let mut message = None;
        if keep {
            let state_of = |n| self.nodes.state_of(n);
            changes = self.pt.outdate(None, &state_of);
        } else if !changes.is_empty() {
            message = Some("node permanently removed".to_string());
        }
        self.broadcast_pt_changes(changes, None);
        if self.in_service() {
            self.storage_left_service(nid);
        }
        Ok(message)
    }

    /// Tells the node on `conn` its own new state.
    fn tell_node_its_state(&mut self, key: NodeKey, conn: ConnId) {
        let info: NodeInfo = self.nodes[key].info();
        let timestamp = Timestamp(self.clock.now(self.wall));
        let nodes = vec![info];
        self.net
            .send(conn, NotifyNodeInformation { timestamp, nodes });
    }
}
