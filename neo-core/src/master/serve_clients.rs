//! Clients in service (cluster.md 5): begin, new oids, FailedVote
//! arbitration, finish (the lock phase), the final TID of a transaction
//! whose finish answer was lost, abort, pack orders — and the commit
//! itself once every involved storage locked: the committer's answer,
//! invalidations to every other client, unlock to the storages.

// Numbers from peers are handled here: no indexing that can panic, no
// arithmetic that can overflow (CI denies both).
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::BTreeSet;

use neo_proto::{
    AbortTransaction, AnswerBeginTransaction, AnswerFinalTID, AnswerNewOIDs,
    AnswerTransactionFinished, AskLockInformation, ClusterState, ErrorCode, InvalidateObjects, Nid,
    NodeType, NotifyPackSigned, NotifyTransactionFinished, NotifyUnlockInformation, Packet, Tid,
    WaitedForPack,
};

use super::transactions::{Txn, VoteOutcome};
use super::{Master, PrimaryPhase, Request};
use crate::net::Reject;
use crate::node::{ConnId, Level};
use crate::node_table::NodeKey;

/// What a client asks that needs a condition to hold first.
enum Handled {
    Done,
    Postpone,
}

/// Most requests of one client the primary keeps waiting (begins while
/// storages start, votes while another transaction's failure is judged):
/// an honest client has one transaction at a time.
pub(super) const POSTPONED_REQUESTS_COUNT_MAX: usize = 1000;

impl Master {
    /// A request from an identified client.
    pub(super) fn on_client_packet(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        if !self.in_service() {
            return Err(Reject::unexpected(&packet, "client outside service"));
        }
        let read_only = self.nodes.get(key).is_some_and(|e| e.read_only);
        let writes = matches!(
            packet,
            Packet::AskBeginTransaction(_)
                | Packet::AskNewOIDs(_)
                | Packet::AskFinishTransaction(_)
                | Packet::AskFinalTID(_)
                | Packet::AbortTransaction(_)
        );
        if read_only && writes {
            return Err(Reject::answer(
                ErrorCode::ReadOnlyAccess,
                "read-only access as requested by the client",
            ));
        }
        match self.handle_client_request(conn, key, msg_id, &packet)? {
            Handled::Done => {}
            Handled::Postpone => {
                let postponed = &mut self.primary_mut().unwrap().postponed;
                let waiting = postponed.iter().filter(|(c, ..)| *c == conn).count();
                if waiting >= POSTPONED_REQUESTS_COUNT_MAX {
                    return Err(Reject::protocol(format!(
                        "more than {POSTPONED_REQUESTS_COUNT_MAX} requests waiting"
                    )));
                }
                postponed.push((conn, msg_id, packet));
            }
        }
        Ok(())
    }

    /// Retries postponed client requests (after any event: conditions are
    /// cheap to check and NEO/py re-runs them on every change).
    pub(super) fn run_postponed(&mut self) {
        let Some(primary) = self.primary_mut() else {
            return;
        };
        if primary.postponed.is_empty() {
            return;
        }
        for (conn, msg_id, packet) in std::mem::take(&mut primary.postponed) {
            let Some(super::ConnRole::Peer(key)) = self.net.state(conn).copied() else {
                continue; // the client left
            };
            match self.handle_client_request(conn, key, msg_id, &packet) {
                Ok(Handled::Done) => {}
                Ok(Handled::Postpone) => self
                    .primary_mut()
                    .unwrap()
                    .postponed
                    .push((conn, msg_id, packet)),
                Err(reject) => self.reject(conn, msg_id, reject),
            }
        }
    }

    fn handle_client_request(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        msg_id: u32,
        packet: &Packet,
    ) -> Result<Handled, Reject> {
        self.check_transaction_owner(key, packet)?;
        match packet {
            Packet::AskBeginTransaction(ask) => return self.begin(conn, key, msg_id, ask.tid),
            Packet::AskNewOIDs(ask) => {
                let oids = self.primary_mut().unwrap().commits.new_oids(ask.count);
                self.net.answer(conn, msg_id, AnswerNewOIDs { oids });
            }
            Packet::FailedVote(vote) => return self.failed_vote(conn, msg_id, vote),
            Packet::AskFinishTransaction(finish) => self.finish(conn, msg_id, finish)?,
            Packet::AskFinalTID(ask) => {
                let primary = self.primary_mut().unwrap();
                let tid = if primary.commits.last_tid_bound() < ask.ttid {
                    None // unknown or aborted
                } else if let Some(txn) = primary.commits.get_mut(ask.ttid) {
                    // Being finished: answered when it commits.
                    txn.final_tid_waiters.push((conn, msg_id));
                    return Ok(Handled::Done);
                } else {
                    Some(Tid::MAX) // committed: ask the storages
                };
                self.net.answer(conn, msg_id, AnswerFinalTID { tid });
            }
            Packet::AbortTransaction(abort) => {
                match self.primary_mut().unwrap().commits.abort(abort.ttid) {
                    Ok(notify) => {
                        let mut nids: BTreeSet<Nid> = abort.nids.iter().copied().collect();
                        nids.extend(notify);
                        self.notify_transaction_aborted(abort.ttid, &nids);
                    }
                    // NEO/py answers a protocol error and drops the client
                    // (13.5): after a master restart, or when the client
                    // gives up on a finish we already carry out, there is
                    // nothing to abort and nothing wrong.
                    Err(why) => self.log(Level::Info, format!("ignored abort: {why}")),
                }
            }
            Packet::AskPackOrders(ask) => {
                self.ask_pack_orders(conn, msg_id, ask.min_pack_id, false);
            }
            Packet::WaitForPack(wait) => {
                if !self.primary_mut().unwrap().pm.wait(wait.tid, conn, msg_id) {
                    self.net.answer(conn, msg_id, WaitedForPack {});
                }
            }
            other => return Err(Reject::unexpected(other, "client service")),
        }
        Ok(Handled::Done)
    }

    /// AskBeginTransaction: a TTID (the one asked, if any).
    fn begin(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        msg_id: u32,
        asked: Option<Tid>,
    ) -> Result<Handled, Reject> {
        let primary = self.primary().unwrap();
        // Storages between StartOperation and NotifyReady would not know
        // whether to expect the transaction in full; a cluster shutting
        // down takes no new transaction.
        if !primary.starting.is_empty() || matches!(primary.phase, PrimaryPhase::Stopping) {
            return Ok(Handled::Postpone);
        }
        let clock = self.clock_tid();
        let primary = self.primary_mut().unwrap();
        let readiness = primary.readiness;
        let ttid = primary
            .commits
            .begin(key, readiness, asked, clock)
            .map_err(Reject::protocol)?;
        self.net
            .answer(conn, msg_id, AnswerBeginTransaction { ttid });
        Ok(Handled::Done)
    }

    /// FailedVote: whether the transaction may go on without the storages
    /// whose vote failed (only those ready when it began count).
    fn failed_vote(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        vote: &neo_proto::FailedVote,
    ) -> Result<Handled, Reject> {
        let primary = self.primary().unwrap();
        let Some(txn) = primary.commits.get(vote.ttid) else {
            return Err(Reject::protocol(format!("unknown ttid {}", vote.ttid)));
        };
        let failed: BTreeSet<Nid> = vote
            .failed_nids
            .iter()
            .copied()
            .filter(|nid| primary.ready.get(nid).is_some_and(|&r| r <= txn.readiness))
            .collect();
        let outcome = {
            let pt = &self.pt;
            let nodes = &self.nodes;
            let operational = |without: &BTreeSet<Nid>| {
                let without: Vec<Nid> = without.iter().copied().collect();
                pt.operational(&|nid| nodes.state_of(nid), &without)
            };
            let primary = match &mut self.role {
                super::Role::Primary(primary) => primary,
                _ => unreachable!(),
            };
            primary.commits.vote(vote.ttid, failed, &operational)
        };
        let answer = match outcome {
            VoteOutcome::Accepted => Packet::error(ErrorCode::Ack, ""),
            VoteOutcome::Incomplete => Packet::error(ErrorCode::IncompleteTransaction, ""),
            VoteOutcome::Delay => return Ok(Handled::Postpone),
        };
        self.net.answer(conn, msg_id, answer);
        Ok(Handled::Done)
    }

    /// A client votes, finishes or aborts only its own transactions (any
    /// client can learn another's TTID from a storage's answers).
    fn check_transaction_owner(&self, key: NodeKey, packet: &Packet) -> Result<(), Reject> {
        let (field, ttid) = match packet {
            Packet::FailedVote(p) => ("FailedVote.ttid", p.ttid),
            Packet::AskFinishTransaction(p) => ("AskFinishTransaction.ttid", p.ttid),
            Packet::AbortTransaction(p) => ("AbortTransaction.ttid", p.ttid),
            _ => return Ok(()),
        };
        let owner = self
            .primary()
            .and_then(|p| p.commits.get(ttid))
            .map(|t| t.client);
        match owner {
            Some(owner) if owner != Some(key) => Err(Reject::protocol(format!(
                "{field}: {ttid} is another client's transaction"
            ))),
            _ => Ok(()),
        }
    }

    /// The TID of the current clock reading.
    fn clock_tid(&self) -> Tid {
        Tid::from_unix_time(self.wall.as_unix_secs_f64())
    }

    /// AskFinishTransaction: choose the final TID and ask every involved
    /// storage to lock.
    fn finish(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        finish: &neo_proto::AskFinishTransaction,
    ) -> Result<(), Reject> {
        let (failed, readiness) = self.check_finish(finish)?;
        let state_of = |nid| self.nodes.state_of(nid);
        let failed_list: Vec<Nid> = failed.iter().copied().collect();
        if !failed.is_empty() && !self.pt.operational(&state_of, &failed_list) {
            self.net.answer(
                conn,
                msg_id,
                Packet::error(ErrorCode::IncompleteTransaction, ""),
            );
            // Aborting at once is simpler than waiting for the client's
            // abort: every ready storage is told.
            let primary = self.primary_mut().unwrap();
            let ready: BTreeSet<Nid> = primary.ready.keys().copied().collect();
            let _ = primary.commits.abort(finish.ttid);
            self.notify_transaction_aborted(finish.ttid, &ready);
            return Ok(());
        }
        let mut inval_partitions: BTreeSet<u32> = finish
            .oids
            .iter()
            .map(|oid| self.pt.partition(oid.0))
            .collect();
        inval_partitions.extend(finish.deleted.iter().copied());
        let mut lock_partitions = inval_partitions.clone();
        lock_partitions.insert(self.pt.partition(finish.ttid.0));
        lock_partitions.extend(finish.checked.iter().copied());
        let (involved, missed) = self.lock_participants(&lock_partitions, &failed, readiness)?;
        for key in missed {
            if let Some(c) = self.conn_of(key) {
                let desc = self.node_desc(key);
                self.log(
                    Level::Warn,
                    format!("disconnecting {desc}: it missed writes of {}", finish.ttid),
                );
                self.close_conn(c);
            }
        }
        if !self.in_service() || self.primary().unwrap().commits.get(finish.ttid).is_none() {
            return Ok(()); // the disconnection stopped the cluster
        }
        if involved.is_empty() {
            return Err(Reject::protocol("no storage to commit to"));
        }
        self.ask_locks(msg_id, finish, inval_partitions, involved);
        Ok(())
    }

    /// A finish must name a pending transaction not finishing yet, and a
    /// pack time within the history. Returns the storages whose vote
    /// failed and the readiness the transaction began at.
    fn check_finish(
        &self,
        finish: &neo_proto::AskFinishTransaction,
    ) -> Result<(BTreeSet<Nid>, u64), Reject> {
        let primary = self.primary().unwrap();
        if let Some(pack) = &finish.pack {
            if pack.pack_tid == Tid::ZERO || pack.pack_tid > primary.commits.last_transaction {
                return Err(Reject::protocol("invalid pack time"));
            }
        }
        let Some(txn) = primary.commits.get(finish.ttid) else {
            return Err(Reject::protocol(format!("unknown ttid {}", finish.ttid)));
        };
        if txn.tid.is_some() {
            return Err(Reject::protocol(format!(
                "transaction {} is already finishing",
                finish.ttid
            )));
        }
        Ok((txn.failed.clone(), txn.readiness))
    }

    /// Who locks `partitions`: each identified storage with a cell there
    /// that was ready when the transaction began; storages whose vote
    /// failed are returned apart (their cells must be outdated before
    /// anyone locks: they are disconnected).
    fn lock_participants(
        &self,
        partitions: &BTreeSet<u32>,
        failed: &BTreeSet<Nid>,
        readiness: u64,
    ) -> Result<(BTreeSet<Nid>, Vec<NodeKey>), Reject> {
        let ready = &self.primary().unwrap().ready;
        let mut involved = BTreeSet::new();
        let mut missed = Vec::new();
        for &partition in partitions {
            if partition >= self.pt.num_partitions() {
                return Err(Reject::protocol(format!("invalid partition {partition}")));
            }
            for cell in self.pt.row(partition) {
                let Some(key) = self.nodes.by_nid(cell.nid) else {
                    continue;
                };
                let identified = self.nodes.get(key).is_some_and(|e| e.identified);
                if !identified || involved.contains(&cell.nid) {
                    continue;
                }
                if failed.contains(&cell.nid) {
                    missed.push(key);
                } else if ready.get(&cell.nid).is_some_and(|&r| r <= readiness) {
                    involved.insert(cell.nid);
                }
            }
        }
        missed.sort();
        missed.dedup();
        Ok((involved, missed))
    }

    /// Chooses the final TID and asks the involved storages to lock.
    fn ask_locks(
        &mut self,
        msg_id: u32,
        finish: &neo_proto::AskFinishTransaction,
        inval_partitions: BTreeSet<u32>,
        involved: BTreeSet<Nid>,
    ) {
        let clock = self.clock_tid();
        let num_partitions = self.pt.partitions();
        let primary = self.primary_mut().unwrap();
        let tid = primary.commits.prepare(
            finish.ttid,
            finish.oids.clone(),
            inval_partitions.into_iter().collect(),
            involved.clone(),
            msg_id,
            clock,
            num_partitions,
        );
        let pack = match &finish.pack {
            Some(pack) => primary.pm.new_order(tid, pack.oids.clone(), pack.pack_tid),
            None => false,
        };
        let lock = AskLockInformation {
            ttid: finish.ttid,
            tid,
            pack,
        };
        for nid in involved {
            if let Some(c) = self.nodes.by_nid(nid).and_then(|k| self.conn_of(k)) {
                self.net.ask(
                    c,
                    lock.clone(),
                    Request::LockInformation { ttid: finish.ttid },
                );
            }
        }
    }

    /// AnswerInformationLocked.
    pub(super) fn on_information_locked(&mut self, nid: Nid, ttid: Tid) {
        let Some(state) = self.cluster_state() else {
            return;
        };
        if !matches!(state, ClusterState::Running | ClusterState::Stopping) {
            return; // late answer after leaving service
        }
        let committed = self.primary_mut().unwrap().commits.lock(ttid, nid);
        self.commit(committed);
    }

    /// Announces committed transactions, in TID order.
    pub(super) fn commit(&mut self, committed: Vec<Txn>) {
        for txn in committed {
            let tid = txn.tid.unwrap();
            let clients: Vec<NodeKey> = self.nodes.identified_of_type(NodeType::Client);
            for client in clients {
                let Some(c) = self.conn_of(client) else {
                    continue;
                };
                if Some(client) == txn.client {
                    self.net.answer(
                        c,
                        txn.finish_msg_id,
                        AnswerTransactionFinished {
                            ttid: txn.ttid,
                            tid,
                        },
                    );
                } else {
                    self.net.send(
                        c,
                        InvalidateObjects {
                            tid,
                            oids: txn.oids.clone(),
                        },
                    );
                }
            }
            for &nid in &txn.involved {
                self.send_to_nid(nid, NotifyUnlockInformation { ttid: txn.ttid });
            }
            if self.primary().unwrap().pm.is_approved(tid) {
                let ready: Vec<Nid> = self.primary().unwrap().ready.keys().copied().collect();
                for nid in ready {
                    self.send_to_nid(
                        nid,
                        NotifyPackSigned {
                            approved: vec![tid],
                            rejected: vec![],
                        },
                    );
                }
            }
            for &nid in &txn.notify {
                self.send_to_nid(
                    nid,
                    NotifyTransactionFinished {
                        ttid: txn.ttid,
                        max_tid: tid,
                    },
                );
            }
            for (c, msg_id) in txn.final_tid_waiters {
                self.net
                    .answer(c, msg_id, AnswerFinalTID { tid: Some(tid) });
            }
        }
    }

    /// Tells the ready storages among `nids` that a transaction is gone.
    pub(super) fn notify_transaction_aborted(&mut self, ttid: Tid, nids: &BTreeSet<Nid>) {
        let ready: Vec<Nid> = self
            .primary()
            .unwrap()
            .ready
            .keys()
            .copied()
            .filter(|nid| nids.contains(nid))
            .collect();
        for nid in ready {
            self.send_to_nid(
                nid,
                AbortTransaction {
                    ttid,
                    nids: Vec::new(),
                },
            );
        }
    }

    /// A client is gone: what it had not finished is aborted, what it was
    /// finishing completes without it.
    pub(super) fn client_lost(&mut self, key: NodeKey, conn: ConnId) {
        let Some(primary) = self.primary_mut() else {
            return;
        };
        primary.pm.connection_lost(conn);
        let aborted = primary.commits.client_lost(key);
        for (ttid, notify) in aborted {
            self.notify_transaction_aborted(ttid, &notify);
        }
    }

    fn send_to_nid(&mut self, nid: Nid, packet: impl Into<Packet>) {
        if let Some(c) = self.nodes.by_nid(nid).and_then(|k| self.conn_of(k)) {
            self.net.send(c, packet);
        }
    }
}
