//! RUNNING (and STOPPING): storages in service.
//!
//! A RUNNING storage is sent StartOperation and is *starting* until it
//! answers NotifyReady; its readiness number then tells which transactions
//! it is expected to hold in full (those that began after it was ready).
//! A lost storage has its cells outdated; when that leaves a partition
//! without readable cell, the cluster stops serving and recovers.

use std::collections::{BTreeMap, BTreeSet};

use neo_proto::{
    AnswerPackOrders, AnswerUnfinishedTransactions, ClusterState, Nid, NodeInfo, NodeState,
    NodeType, NotifyNodeInformation, NotifyPackSigned, Packet, StartOperation, Tid, Timestamp,
    WaitedForPack,
};

use super::{Master, PrimaryPhase, StoppedOperation};
use crate::net::Reject;
use crate::node::{ConnId, Level};
use crate::node_table::NodeKey;

impl Master {
    pub(super) fn enter_service(&mut self) {
        let primary = self.primary_mut().unwrap();
        primary.epoch += 1;
        primary.phase = PrimaryPhase::Service;
        self.set_cluster_state(ClusterState::Running);
        let running: Vec<NodeKey> = self
            .nodes
            .of_type(NodeType::Storage)
            .filter(|(_, e)| e.identified && e.is_running())
            .map(|(k, _)| k)
            .collect();
        for key in running {
            self.start_storage(key);
        }
        // Where packing stands, from what storages reported at verification.
        self.update_completed_pack();
    }

    pub(super) fn in_service(&self) -> bool {
        self.primary()
            .is_some_and(|p| matches!(p.phase, PrimaryPhase::Service | PrimaryPhase::Stopping))
    }

    /// Tells a RUNNING storage to start operating.
    pub(super) fn start_storage(&mut self, key: NodeKey) {
        let Some(nid) = self.nodes.get(key).and_then(|e| e.nid()) else {
            return;
        };
        self.send_to(key, StartOperation { backup: false });
        let primary = self.primary_mut().unwrap();
        debug_assert!(!primary.ready.contains_key(&nid));
        primary.starting.insert(nid);
    }

    pub(super) fn on_storage_packet(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        let nid = self.nodes.get(key).and_then(|e| e.nid()).unwrap();
        match packet {
            Packet::NotifyReady(_) => {
                let Some(primary) = self.primary_mut() else {
                    return Ok(());
                };
                if primary.starting.remove(&nid) {
                    primary.readiness += 1;
                    primary.ready.insert(nid, primary.readiness);
                    let (approved, rejected) = primary.pm.approved_rejected(Tid::ZERO);
                    if !approved.is_empty() || !rejected.is_empty() {
                        self.net.send(conn, NotifyPackSigned { approved, rejected });
                    }
                    let desc = self.node_desc(key);
                    self.log(Level::Info, format!("{desc} is ready"));
                }
                Ok(())
            }
            Packet::NotifyPackCompleted(completed) => {
                if let Some(primary) = self.primary_mut() {
                    primary.completed_pack.insert(nid, completed.pack_id);
                }
                if self.in_service() {
                    self.update_completed_pack();
                }
                Ok(())
            }
            Packet::AskUnfinishedTransactions(ask) if self.in_service() => {
                let primary = self.primary_mut().unwrap();
                let max_tid = primary.commits.last_transaction;
                let ttids = primary.commits.register_for_notification(nid);
                self.net.answer(
                    conn,
                    msg_id,
                    AnswerUnfinishedTransactions { max_tid, ttids },
                );
                self.pt.mark_updatable(nid, &ask.partitions);
                Ok(())
            }
            Packet::NotifyReplicationDone(done) if self.in_service() => {
                match self.pt.set_up_to_date(nid, done.partition) {
                    Err(error) => Err(Reject::protocol(error.to_string())),
                    Ok(None) => {
                        self.log(
                            Level::Info,
                            format!(
                                "ignored late notification that {nid} replicated partition {} up to {}",
                                done.partition, done.tid
                            ),
                        );
                        Ok(())
                    }
                    Ok(Some(changes)) => {
                        self.log(
                            Level::Info,
                            format!("{nid} is up to date for partition {}", done.partition),
                        );
                        self.broadcast_pt_changes(changes, None);
                        Ok(())
                    }
                }
            }
            Packet::NotifyPartitionCorrupted(corrupted) if self.in_service() => {
                self.on_partition_corrupted(nid, corrupted.partition, &corrupted.nids);
                Ok(())
            }
            Packet::AskPackOrders(ask) if self.in_service() => {
                self.ask_pack_orders(conn, msg_id, ask.min_pack_id, true);
                Ok(())
            }
            other => Err(Reject::unexpected(&other, "storage service")),
        }
    }

    /// A storage's connection is gone (any phase of the primary).
    pub(super) fn storage_lost(&mut self, key: NodeKey) {
        let (state, nid) = {
            let entry = &self.nodes[key];
            (entry.state, entry.nid())
        };
        if matches!(self.primary().unwrap().phase, PrimaryPhase::Recovery(_)) {
            self.recovery_storage_lost(key);
            return;
        }
        if let Some(nid) = nid {
            self.verification_forget(nid);
        }
        match state {
            NodeState::Pending => {
                // Forget it: it comes back PENDING, not RUNNING.
                self.nodes[key].state = NodeState::Unknown;
                self.broadcast_nodes(&[key]);
                self.forget_node(key);
            }
            NodeState::Down => {} // stopped by `neoctl kill`: cells handled
            _ => {
                self.nodes[key].state = NodeState::Down;
                self.broadcast_nodes(&[key]);
                if self.primary().unwrap().truncate_tid.is_some() {
                    self.stopped_operation(StoppedOperation { truncate: None });
                    return;
                }
                let state_of = |n| self.nodes.state_of(n);
                let changes = self.pt.outdate(nid, &state_of);
                self.broadcast_pt_changes(changes, None);
                if !self.pt.operational(&self.state_of(), &[]) {
                    self.stopped_operation(StoppedOperation { truncate: None });
                    return;
                }
            }
        }
        if let (Some(nid), true) = (nid, self.in_service()) {
            self.storage_left_service(nid);
        }
    }

    /// A storage no longer serves (lost, or killed by the operator): it is
    /// not ready any more, transactions stop waiting for its locks (which
    /// may commit some), and pack completion is recomputed without it.
    pub(super) fn storage_left_service(&mut self, nid: Nid) {
        let primary = self.primary_mut().unwrap();
        primary.starting.remove(&nid);
        primary.ready.remove(&nid);
        let committed = primary.commits.storage_lost(nid);
        self.commit(committed);
        self.old_pack_orders_storage_lost(nid);
        self.update_completed_pack();
    }

    /// AskPackOrders: storages get the first approved order from
    /// `pack_id`, clients all of them. Orders the master forgot (completed
    /// by every readable node: the asker's cells came back from an older
    /// state) are collected from storages first.
    pub(super) fn ask_pack_orders(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        pack_id: Tid,
        only_first_approved: bool,
    ) {
        let partitions = self.pt.num_partitions();
        let pm = &mut self.primary_mut().unwrap().pm;
        if !pm.forgot(pack_id) {
            let orders = pm.orders(pack_id, only_first_approved);
            self.net.answer(conn, msg_id, AnswerPackOrders { orders });
            return;
        }
        let id = pm.request_old((conn, msg_id), pack_id, only_first_approved, partitions);
        self.log(
            Level::Info,
            format!("collecting pack orders from {pack_id}, forgotten, from storages"),
        );
        self.old_pack_orders_step(id);
    }

    /// Asks storages covering the partitions still to collect.
    fn old_pack_orders_step(&mut self, id: u64) {
        let Some(old) = self.primary().unwrap().pm.old.get(&id) else {
            return;
        };
        let asked: BTreeSet<u32> = old.querying.values().flatten().copied().collect();
        let wanted: Vec<u32> = old
            .remaining
            .iter()
            .filter(|p| !asked.contains(p))
            .copied()
            .collect();
        let pack_id = old.pack_id;
        let identified = |nid: &Nid| {
            self.nodes
                .entry_by_nid(*nid)
                .is_some_and(|e| e.identified && e.is_running())
        };
        let mut plan: BTreeMap<Nid, Vec<u32>> = BTreeMap::new();
        let mut unreachable = false;
        for partition in wanted {
            if plan.values().any(|ps| ps.contains(&partition)) {
                continue;
            }
            let Some(nid) = self
                .pt
                .row(partition)
                .iter()
                .filter(|c| c.is_readable())
                .map(|c| c.nid)
                .find(|nid| identified(nid))
            else {
                unreachable = true;
                continue;
            };
            // That node answers for every partition it holds readably.
            let covered = self.pt.readable_offsets(nid);
            plan.insert(nid, covered);
        }
        for (nid, partitions) in plan {
            let Some(conn) = self.nodes.by_nid(nid).and_then(|k| self.conn_of(k)) else {
                continue;
            };
            self.net.ask(
                conn,
                neo_proto::AskPackOrders {
                    min_pack_id: pack_id,
                },
                super::Request::OldPackOrders { id },
            );
            let old = self.primary_mut().unwrap().pm.old.get_mut(&id).unwrap();
            old.querying.insert(nid, partitions);
        }
        let old = &self.primary().unwrap().pm.old[&id];
        if old.querying.is_empty() && (old.remaining.is_empty() || unreachable) {
            self.finish_old_pack_orders(id);
        }
    }

    pub(super) fn on_old_pack_orders(&mut self, id: u64, nid: Nid, packet: Packet) {
        let Some(old) = self.primary_mut().and_then(|p| p.pm.old.get_mut(&id)) else {
            return;
        };
        let Some(partitions) = old.querying.remove(&nid) else {
            return;
        };
        if let Packet::AnswerPackOrders(answer) = packet {
            old.orders.extend(answer.orders);
            for partition in partitions {
                old.remaining.remove(&partition);
            }
        }
        self.old_pack_orders_step(id);
    }

    fn finish_old_pack_orders(&mut self, id: u64) {
        let pm = &mut self.primary_mut().unwrap().pm;
        let old = pm.old.remove(&id).unwrap();
        pm.learn_old(old.pack_id, old.orders);
        let orders = pm.orders(old.pack_id, old.only_first_approved);
        let (conn, msg_id) = old.requester;
        self.net.answer(conn, msg_id, AnswerPackOrders { orders });
        self.update_completed_pack();
    }

    /// A storage asked for forgotten orders is gone: ask another.
    fn old_pack_orders_storage_lost(&mut self, nid: Nid) {
        let ids: Vec<u64> = self
            .primary()
            .unwrap()
            .pm
            .old
            .iter()
            .filter(|(_, old)| old.querying.contains_key(&nid))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(old) = self.primary_mut().unwrap().pm.old.get_mut(&id) {
                old.querying.remove(&nid);
            }
            self.old_pack_orders_step(id);
        }
    }

    /// Orders completed by every node with readable cells are forgotten
    /// and the clients waiting for them answered.
    pub(super) fn update_completed_pack(&mut self) {
        let readable = self.pt.nodes(true);
        let primary = self.primary_mut().unwrap();
        let Some(pack_id) = readable
            .iter()
            .filter_map(|nid| primary.completed_pack.get(nid))
            .min()
            .copied()
        else {
            return;
        };
        for (conn, msg_id) in primary.pm.completed(pack_id) {
            self.net.answer(conn, msg_id, WaitedForPack {});
        }
    }

    // ------------------------------------------------------------ STOPPING

    /// `neoctl set cluster STOPPING`: block new transactions, then tell
    /// storages they are DOWN (so their cells are not outdated and the next
    /// start is clean) and exit.
    pub(super) fn begin_shutdown(&mut self) {
        self.set_cluster_state(ClusterState::Stopping);
        let primary = self.primary_mut().unwrap();
        primary.epoch += 1;
        primary.phase = PrimaryPhase::Stopping;
        self.stopping_step();
    }

    pub(super) fn stopping_step(&mut self) {
        // Transactions being committed finish first (new ones wait); those
        // still in their first phase are up to their clients to abort.
        if self.primary().unwrap().commits.has_pending() {
            return;
        }
        self.log(
            Level::Info,
            "asking remaining nodes to shut down".to_string(),
        );
        let timestamp = Timestamp(self.clock.now(self.wall));
        for key in self.nodes.keys() {
            let entry = &self.nodes[key];
            let Some(conn) = entry.conn else {
                continue;
            };
            if entry.node_type == NodeType::Storage && entry.identified {
                let info = NodeInfo {
                    state: NodeState::Down,
                    id_timestamp: None,
                    ..entry.info()
                };
                self.net.send(
                    conn,
                    NotifyNodeInformation {
                        timestamp,
                        nodes: vec![info],
                    },
                );
            }
            self.net.close(conn);
        }
        self.exit("cluster stopped");
    }
}
