//! RECOVERING: the primary collects the newest partition table from the
//! storages and waits until the cluster may start.
//!
//! Start condition (cluster.md 3.3), evaluated after every event: with a
//! table, every row needs a readable cell on a waiting (PENDING) storage,
//! and — unless an operator allowed the start, or the same primary
//! stopped by itself — every node holding readable cells must be there:
//! this is what prevents two halves of a cut network from diverging. A new
//! cluster (no table anywhere) starts on `neoctl start` or `--autostart`.
//!
//! Unlike NEO/py, the cluster never restarts automatically with a subset
//! of the nodes holding readable cells after it stopped serving: NEO/py
//! does, which loses committed data when only a storage with an older
//! table comes back (cluster.md 13.1) and splits the cluster in two when
//! the stop came from a network cut behind which another master took over
//! (found by the simulator). Only an operator's `start` lowers the bar.

use std::collections::{BTreeMap, BTreeSet};

use neo_proto::{
    AskPartitionTable, ClusterState, Nid, NodeState, NodeType, NotifyNodeInformation,
    NotifyPartitionChanges, Packet, Ptid, SendPartitionTable, Tid, Timestamp, Truncate,
};

use super::election::Pace;
use super::{Master, PrimaryPhase, Request};
use crate::net::Reject;
use crate::node::Level;
use crate::node_table::NodeKey;
use crate::pt::PartitionTable;

/// Which storage is asked for the newest table.
#[derive(Debug)]
enum TableSource {
    /// Storages that reported `target_ptid`, the first being asked.
    Asking(Vec<Nid>),
    /// The table with `target_ptid` is loaded.
    Loaded,
}

#[derive(Debug)]
pub(super) struct Recovery {
    target_ptid: u64,
    source: TableSource,
    truncate_tids: BTreeMap<Nid, Option<Tid>>,
    /// Ids we gave, in this recovery, to storages that presented none.
    pub fresh_nids: BTreeSet<Nid>,
    /// Connect to the other masters (again) at the next step.
    pub try_secondary: bool,
}

impl Master {
    /// (Re)enters RECOVERING.
    pub(super) fn enter_recovery(&mut self) {
        // The newest table is the one storages hold: a change this master
        // made that reached none of them is not trusted.
        if let Some(ptid) = self.pt.ptid() {
            self.had_table = true;
            if self.config.autostart.is_some() {
                self.log(
                    Level::Warn,
                    format!(
                        "waiting for the storages holding partition table {ptid}: autostart never creates a new database once one existed"
                    ),
                );
            }
        }
        self.pt = PartitionTable::new(self.config.partitions, self.config.replicas);
        let primary = self.primary_mut().unwrap();
        primary.epoch += 1;
        primary.election_round = None;
        primary.phase = PrimaryPhase::Recovery(Recovery {
            target_ptid: 0,
            source: TableSource::Asking(Vec::new()),
            truncate_tids: BTreeMap::new(),
            fresh_nids: BTreeSet::new(),
            try_secondary: true,
        });
        self.set_cluster_state(ClusterState::Recovering);
        // Storages already connected (back from service) are asked again.
        let epoch = self.primary().unwrap().epoch;
        let storages: Vec<_> = self
            .nodes
            .of_type(NodeType::Storage)
            .filter(|(_, e)| e.identified)
            .filter_map(|(_, e)| e.conn)
            .collect();
        for conn in storages {
            self.net
                .ask(conn, neo_proto::AskRecovery {}, Request::Recovery { epoch });
        }
    }

    fn recovery_mut(&mut self) -> Option<&mut Recovery> {
        match &mut self.primary_mut()?.phase {
            PrimaryPhase::Recovery(recovery) => Some(recovery),
            _ => None,
        }
    }

    pub(super) fn on_recovery_answer(
        &mut self,
        key: NodeKey,
        packet: Packet,
    ) -> Result<(), Reject> {
        let Some(nid) = self.nodes.get(key).and_then(|e| e.nid()) else {
            return Ok(());
        };
        let Some(conn) = self.conn_of(key) else {
            return Ok(());
        };
        match packet {
            Packet::AnswerRecovery(answer) => self.on_answer_recovery(nid, conn, answer),
            Packet::AnswerPartitionTable(answer) => return self.on_storage_table(key, nid, answer),
            Packet::Error(error) => {
                self.log(
                    Level::Warn,
                    format!("{} during recovery: {}", self.node_desc(key), error.code),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// A storage's recovery state: its truncation, and the id of the table
    /// it holds. The newest table is asked from the first node that has it
    /// (the others are fallbacks).
    fn on_answer_recovery(
        &mut self,
        nid: Nid,
        conn: crate::node::ConnId,
        answer: neo_proto::AnswerRecovery,
    ) {
        let epoch = self.primary().unwrap().epoch;
        let recovery = self.recovery_mut().unwrap();
        recovery.truncate_tids.insert(nid, answer.truncate_tid);
        let Some(Ptid(ptid)) = answer.ptid else {
            return;
        };
        if ptid < recovery.target_ptid {
            return;
        }
        let ask = match &mut recovery.source {
            TableSource::Asking(asked) if ptid == recovery.target_ptid && !asked.is_empty() => {
                // Another node is already asked; this one is a fallback.
                asked.push(nid);
                false
            }
            TableSource::Loaded if ptid == recovery.target_ptid => false,
            _ => {
                recovery.target_ptid = ptid;
                recovery.source = TableSource::Asking(vec![nid]);
                true
            }
        };
        if ask {
            self.net.ask(
                conn,
                AskPartitionTable {},
                Request::PartitionTable { epoch },
            );
        }
    }

    /// The table a storage holds: loaded if it is the newest announced
    /// (its cells must name storages only).
    fn on_storage_table(
        &mut self,
        key: NodeKey,
        nid: Nid,
        answer: neo_proto::AnswerPartitionTable,
    ) -> Result<(), Reject> {
        let table = PartitionTable::from_rows(Some(answer.ptid), answer.num_replicas, &answer.rows)
            .map_err(|e| Reject::protocol(format!("AnswerPartitionTable.rows: {e}")))?;
        // Each cell's node becomes an entry of ours: storages only.
        let not_storage = answer
            .rows
            .iter()
            .flatten()
            .find(|c| c.nid.node_type() != Some(NodeType::Storage));
        if let Some(cell) = not_storage {
            return Err(Reject::protocol(format!(
                "AnswerPartitionTable.rows: {} is not a storage id",
                cell.nid
            )));
        }
        let recovery = self.recovery_mut().unwrap();
        if answer.ptid.0 != recovery.target_ptid {
            return Ok(());
        }
        recovery.source = TableSource::Loaded;
        let truncate_tid = recovery.truncate_tids.get(&nid).copied().flatten();
        self.load_table(table, &answer.rows);
        self.primary_mut().unwrap().truncate_tid = truncate_tid;
        self.log(
            Level::Info,
            format!(
                "loaded partition table {} from {}",
                answer.ptid,
                self.node_desc(key)
            ),
        );
        self.evict_impostors();
        Ok(())
    }

    /// Adopts a table from a storage: unknown storages become DOWN entries;
    /// admins get the new nodes and the table.
    fn load_table(&mut self, table: PartitionTable, rows: &neo_proto::Rows) {
        let (ptid, num_replicas) = (table.ptid(), table.num_replicas());
        let mut new_nodes = Vec::new();
        for cell in rows.iter().flatten() {
            if self.nodes.by_nid(cell.nid).is_none() {
                let key = self
                    .nodes
                    .add(NodeType::Storage, None, Some(cell.nid), NodeState::Down);
                new_nodes.push(self.nodes[key].info());
            }
        }
        self.pt = table;
        let timestamp = Timestamp(self.clock.now(self.wall));
        if !new_nodes.is_empty() {
            self.notify_admins(
                NotifyNodeInformation {
                    timestamp,
                    nodes: new_nodes,
                }
                .into(),
            );
        }
        self.notify_admins(
            SendPartitionTable {
                ptid,
                num_replicas,
                rows: rows.clone(),
            }
            .into(),
        );
    }

    /// A storage we gave a fresh id before the table was known (a new
    /// primary hands out the lowest free id, as NEO/py does) is not the
    /// node the table gives cells to under that id. Trusting it would serve
    /// its empty database as those cells, or lock the real node out. Drop
    /// it and free the id: it comes back and gets a new one, the table's
    /// ids being known by then.
    fn evict_impostors(&mut self) {
        let Some(recovery) = self.recovery_mut() else {
            return;
        };
        let suspects: Vec<Nid> = recovery.fresh_nids.iter().copied().collect();
        for nid in suspects {
            if !self.pt.has_cells(nid) {
                continue;
            }
            let Some(key) = self.nodes.by_nid(nid) else {
                continue;
            };
            let Some(conn) = self
                .nodes
                .get(key)
                .filter(|e| e.identified)
                .and_then(|e| e.conn)
            else {
                continue;
            };
            self.log(
                Level::Warn,
                format!(
                    "{} is a new storage, not {nid} of the partition table: asking it to take a new id",
                    self.node_desc(key)
                ),
            );
            self.recovery_mut().unwrap().fresh_nids.remove(&nid);
            self.close_conn(conn);
            self.nodes.set_address(key, None);
        }
    }

    /// If the storage at `key` got its id fresh from us in this recovery,
    /// drops it so that the node presenting that id can have it back.
    pub(super) fn evict_newcomer(&mut self, key: NodeKey) -> bool {
        let Some(nid) = self.nodes.get(key).and_then(|e| e.nid()) else {
            return false;
        };
        let fresh = self
            .recovery_mut()
            .is_some_and(|r| r.fresh_nids.remove(&nid));
        if !fresh {
            return false;
        }
        self.log(
            Level::Warn,
            format!(
                "{} got {nid} by mistake: asking it to take a new id",
                self.node_desc(key)
            ),
        );
        if let Some(conn) = self.nodes.get(key).and_then(|e| e.conn) {
            self.close_conn(conn);
        }
        self.nodes.set_address(key, None);
        true
    }

    /// A storage left during recovery.
    pub(super) fn recovery_storage_lost(&mut self, key: NodeKey) {
        let nid = self.nodes.get(key).and_then(|e| e.nid());
        let epoch = self.primary().unwrap().epoch;
        let mut ask_next = None;
        if let (Some(nid), Some(recovery)) = (nid, self.recovery_mut()) {
            recovery.truncate_tids.remove(&nid);
            if let TableSource::Asking(asked) = &mut recovery.source {
                if let Some(i) = asked.iter().position(|&n| n == nid) {
                    asked.remove(i);
                    if i == 0 {
                        ask_next = asked.first().copied();
                        if ask_next.is_none() {
                            let ptid = recovery.target_ptid;
                            self.log(
                                Level::Warn,
                                format!(
                                    "waiting for {nid} to come back: no other node has version {ptid} of the partition table"
                                ),
                            );
                        }
                    }
                }
            }
        }
        if let Some(next) = ask_next {
            if let Some(conn) = self.nodes.entry_by_nid(next).and_then(|e| e.conn) {
                self.net.ask(
                    conn,
                    AskPartitionTable {},
                    Request::PartitionTable { epoch },
                );
            }
        }
        let entry = &mut self.nodes[key];
        if entry.state != NodeState::Down {
            entry.state = NodeState::Down;
            self.broadcast_nodes(&[key]);
        }
    }

    /// Re-evaluates recovery after an event: reach other masters, and start
    /// the cluster when allowed.
    pub(super) fn recovery_step(&mut self) {
        let Some(recovery) = self.recovery_mut() else {
            return;
        };
        if std::mem::take(&mut recovery.try_secondary) {
            self.reach_other_masters(Pace::Throttled);
        }
        let Some(start) = self.start_set() else {
            return;
        };
        if !self.election_round_complete() {
            return;
        }
        self.start_cluster(start);
    }

    /// Whether every master not identified with us has been heard from
    /// since the cluster became ready to start (see `election_round`);
    /// starts a round when none is under way.
    fn election_round_complete(&mut self) -> bool {
        let unidentified: BTreeSet<NodeKey> = self
            .nodes
            .of_type(NodeType::Master)
            .filter(|(k, e)| *k != self.own && !e.identified)
            .map(|(k, _)| k)
            .collect();
        let primary = self.primary_mut().unwrap();
        match &mut primary.election_round {
            Some(round) => {
                round.retain(|k| unidentified.contains(k));
                if round.is_empty() {
                    primary.election_round = None;
                    true
                } else {
                    false
                }
            }
            None if unidentified.is_empty() => true,
            None => {
                primary.election_round = Some(unidentified);
                self.log(
                    Level::Info,
                    "ready to start: checking the other masters first".to_string(),
                );
                self.set_try_secondary();
                self.reach_other_masters(Pace::Now);
                false
            }
        }
    }

    /// The storages to start with, if the cluster may start now.
    fn start_set(&mut self) -> Option<Vec<NodeKey>> {
        let loaded = matches!(
            &self.primary().map(|p| &p.phase),
            Some(PrimaryPhase::Recovery(Recovery {
                source: TableSource::Loaded,
                ..
            }))
        );
        let with_table = self.pt.filled() && loaded;
        let candidates = if with_table {
            self.start_candidates_of_table()?
        } else {
            self.start_candidates_without_table(loaded)?
        };
        if candidates.is_empty() {
            return None;
        }
        let pending_request = candidates.iter().any(|&k| {
            self.conn_of(k)
                .and_then(|c| self.net.get(c))
                .is_none_or(|c| c.has_pending_requests())
        });
        if pending_request {
            return None;
        }
        if !with_table {
            return Some(candidates);
        }
        if let Some(tid) = self.primary().unwrap().truncate_tid {
            if !self.truncation_recorded(tid) {
                return None;
            }
        }
        // Every connected node of the table starts.
        Some(
            self.pt
                .nodes(false)
                .into_iter()
                .filter_map(|nid| self.nodes.by_nid(nid))
                .filter(|&k| self.nodes.get(k).is_some_and(|e| e.identified))
                .collect(),
        )
    }

    /// With a complete table loaded: the nodes that make it operational,
    /// if the operator may start (then only PENDING ones matter) or if they
    /// are all back (every node of the table when truncating).
    fn start_candidates_of_table(&self) -> Option<Vec<NodeKey>> {
        let primary = self.primary().unwrap();
        let state_of = |nid| self.nodes.state_of(nid);
        let mut nodes: Vec<Nid> = self.pt.operational_nodes(&state_of).into_iter().collect();
        if primary.startup_allowed {
            nodes.retain(|&nid| state_of(nid) == Some(NodeState::Pending));
        } else if !nodes.is_empty() {
            if primary.truncate_tid.is_some() {
                nodes = self.pt.nodes(false).into_iter().collect();
            }
            if !nodes
                .iter()
                .all(|&nid| state_of(nid) == Some(NodeState::Pending))
            {
                return None;
            }
        }
        Some(
            nodes
                .iter()
                .filter_map(|&nid| self.nodes.by_nid(nid))
                .collect(),
        )
    }

    /// A new cluster (no storage has a table): every identified storage,
    /// once the operator allows it or `autostart` storages are there.
    fn start_candidates_without_table(&self, loaded: bool) -> Option<Vec<NodeKey>> {
        let startup_allowed = self.primary().unwrap().startup_allowed;
        let autostart = self.config.autostart.filter(|_| !self.had_table);
        let new_cluster = !loaded && self.pt.ptid().is_none() && self.no_table_reported();
        if !new_cluster || !(startup_allowed || autostart.is_some()) {
            return None;
        }
        let nodes: Vec<NodeKey> = self.nodes.identified_of_type(NodeType::Storage);
        match autostart {
            Some(count) if !startup_allowed && (nodes.len() as u32) < count => None,
            _ => Some(nodes),
        }
    }

    /// Whether every node recorded the truncation at `tid`; those that
    /// have not are told again.
    fn truncation_recorded(&mut self, tid: Tid) -> bool {
        let PrimaryPhase::Recovery(recovery) = &self.primary().unwrap().phase else {
            return false;
        };
        let missing: Vec<Nid> = recovery
            .truncate_tids
            .iter()
            .filter(|(_, t)| t.is_none_or(|t| tid < t))
            .map(|(&nid, _)| nid)
            .collect();
        if missing.is_empty() {
            return true;
        }
        let epoch = self.primary().unwrap().epoch;
        for nid in missing {
            if let Some(conn) = self.nodes.entry_by_nid(nid).and_then(|e| e.conn) {
                self.net.send(conn, Truncate { tid });
                self.net
                    .ask(conn, neo_proto::AskRecovery {}, Request::Recovery { epoch });
            }
        }
        false
    }

    /// No storage reported a table and none is being asked.
    fn no_table_reported(&self) -> bool {
        match &self.primary().unwrap().phase {
            PrimaryPhase::Recovery(recovery) => {
                recovery.target_ptid == 0
                    && matches!(&recovery.source, TableSource::Asking(a) if a.is_empty())
            }
            _ => false,
        }
    }

    fn start_cluster(&mut self, start: Vec<NodeKey>) {
        self.log(
            Level::Info,
            format!("starting the cluster with {} storage(s)", start.len()),
        );
        let mut changed = Vec::new();
        for &key in &start {
            let entry = &mut self.nodes[key];
            if entry.node_type == NodeType::Storage && entry.is_pending() {
                entry.state = NodeState::Running;
                changed.push(key);
            }
        }
        // Masters that never identified with us are down.
        let masters: Vec<NodeKey> = self
            .nodes
            .of_type(NodeType::Master)
            .filter(|(k, e)| *k != self.own && !e.identified)
            .map(|(k, _)| k)
            .collect();
        for key in masters {
            if let Some(conn) = self.nodes[key].conn {
                self.net.close(conn);
            }
            let entry = &mut self.nodes[key];
            entry.conn = None;
            if entry.state != NodeState::Down {
                entry.state = NodeState::Down;
                changed.push(key);
            }
        }
        self.broadcast_nodes(&changed);
        if self.pt.ptid().is_none() {
            let nids: Vec<Nid> = start
                .iter()
                .filter_map(|&k| self.nodes.get(k).and_then(|e| e.nid()))
                .collect();
            let devpaths = self.devpaths();
            let nodes = &self.nodes;
            let made = self.pt.make(
                &nids,
                &|nid| devpaths.get(&nid).cloned().unwrap_or_default(),
                &|nid| nodes.state_of(nid),
            );
            if let Err(error) = made {
                self.log(
                    Level::Error,
                    format!("cannot create the partition table: {error}"),
                );
            }
            self.log(
                Level::Info,
                format!(
                    "created a new partition table over {} storage(s)",
                    nids.len()
                ),
            );
            let packet = SendPartitionTable {
                ptid: self.pt.ptid(),
                num_replicas: self.pt.num_replicas(),
                rows: self.pt.rows(),
            };
            self.notify_admins(packet.into());
        } else {
            let state_of = |nid| self.nodes.state_of(nid);
            let changes = self.pt.outdate(None, &state_of);
            if !changes.is_empty() {
                let ptid = self.pt.next_ptid();
                let packet = NotifyPartitionChanges {
                    ptid,
                    num_replicas: self.pt.num_replicas(),
                    changes,
                };
                self.notify_admins(packet.into());
            }
        }
        self.enter_verification();
    }

    /// Topology paths storages declared at identification (`devpath`).
    pub(super) fn devpaths(&self) -> BTreeMap<Nid, Vec<bytes::Bytes>> {
        self.nodes
            .of_type(NodeType::Storage)
            .filter_map(|(_, e)| {
                let nid = e.nid()?;
                let path = e.extra.get(&b"devpath"[..])?.as_array()?;
                Some((
                    nid,
                    // Checked at identification: strings only (bin, or
                    // str from a peer that sends text).
                    path.iter()
                        .filter_map(|v| match v {
                            neo_proto::Value::Bin(b) | neo_proto::Value::Str(b) => Some(b.clone()),
                            _ => None,
                        })
                        .collect(),
                ))
            })
            .collect()
    }
}
