//! Committing (cluster.md 5): begin, store to every cell of the object's
//! partition, readCurrent checks, conflicts handed to the application,
//! deadlock avoidance (relock on NotifyDeadlock), vote with FailedVote
//! arbitration, finish (and AskFinalTID when its answer is lost), abort,
//! undo and pack.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use neo_proto::{
    AbortTransaction, AskBeginTransaction, AskCheckCurrentSerial, AskFinishTransaction,
    AskObjectUndoSerial, AskRelockObject, AskStoreObject, AskStoreTransaction, AskVoteTransaction,
    ErrorCode, FailedVote, Nid, ObjectData, Oid, PackRequest, Packet, Tid, UndoSerial, WaitForPack,
};

use super::api::{
    Answer, ClientError, ClientEvent, Conflict, OpId, TxnId, UndoConflict, VoteError,
};
use super::read::Fetches;
use super::txn::{InFlight, TxnContext, Write};
use super::{error_of, Client, Op, OpKind, OpResult, Reply, Request};
use crate::node::{Level, Output};
use crate::time::Time;

/// The description of the transaction carrying a pack order.
pub(super) const PACK_DESCRIPTION: &[u8] = b"IStorage.pack";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VoteStage {
    /// Waiting for every store and check to be answered and every
    /// conflict resolved.
    Stores,
    /// AskStoreTransaction / AskVoteTransaction sent.
    Votes,
    /// FailedVote sent to the master.
    FailedVote,
}

#[derive(Debug)]
pub(super) struct VoteState {
    txn: TxnId,
    stage: VoteStage,
}

#[derive(Debug)]
enum FinishStage {
    Start,
    Voting,
    /// AskFinishTransaction sent; the context left the container.
    Finishing(Box<TxnContext>),
    /// The master was lost: asking what became of the transaction.
    Recovering,
}

#[derive(Debug)]
pub(super) struct FinishState {
    txn: TxnId,
    stage: FinishStage,
}

#[derive(Debug)]
enum UndoStage {
    Info,
    Serials {
        /// Reads in flight: op → partition.
        pending: BTreeMap<OpId, u32>,
        results: BTreeMap<Oid, UndoSerial>,
    },
    Loads {
        results: BTreeMap<Oid, UndoSerial>,
        /// Loads: oid, whether it is the current data.
        loads: Fetches<(Oid, bool)>,
        current: BTreeMap<Oid, Option<Bytes>>,
        target: BTreeMap<Oid, Option<Bytes>>,
    },
}

#[derive(Debug)]
pub(super) struct UndoState {
    txn: TxnId,
    undone: Tid,
    stage: UndoStage,
}

#[derive(Debug)]
enum PackStage {
    Begin,
    Begun,
    Finishing,
    Waiting(Tid),
}

#[derive(Debug)]
pub(super) struct PackState {
    pack_tid: Tid,
    oids: Option<Vec<Oid>>,
    wait: bool,
    txn: Option<TxnId>,
    stage: PackStage,
}

impl Client {
    fn context(&self, txn: TxnId) -> Result<&TxnContext, ClientError> {
        self.txns
            .get(&txn)
            .ok_or(ClientError::UnknownTransaction(txn))
    }

    /// Bytes a transaction has in flight (the application waits while this
    /// is large, as NEO/py does when it reaches the cache size).
    pub fn in_flight_bytes(&self, txn: TxnId) -> usize {
        self.txns.get(&txn).map_or(0, TxnContext::in_flight_bytes)
    }

    // ------------------------------------------------------------ begin

    /// Begins a transaction (asks the master for a TTID; `tid`: reproduce
    /// this TID, for import tools).
    pub fn tpc_begin(
        &mut self,
        now: Time,
        user: Bytes,
        description: Bytes,
        extension: Bytes,
        tid: Option<Tid>,
    ) -> Result<(TxnId, OpId), ClientError> {
        self.now = self.now.max(now);
        if self.config.read_only {
            return Err(ClientError::ReadOnly);
        }
        self.next_txn += 1;
        let txn = TxnId(self.next_txn);
        self.txns
            .insert(txn, TxnContext::new(user, description, extension, tid));
        let op = self.spawn(None, OpKind::Begin(txn));
        Ok((txn, op))
    }

    pub(super) fn start_begin(&mut self, op: OpId) {
        let Some(Op {
            kind: OpKind::Begin(txn),
            ..
        }) = self.ops.get(&op)
        else {
            return;
        };
        let txn = *txn;
        match self.context(txn) {
            Ok(context) => {
                let tid = context.requested_tid;
                self.ask_master(op, AskBeginTransaction { tid });
            }
            Err(error) => self.fail(op, error),
        }
    }

    pub(super) fn begun(&mut self, op: OpId, result: OpResult) {
        let Some(Op {
            kind: OpKind::Begin(txn),
            ..
        }) = self.ops.get(&op)
        else {
            return;
        };
        let txn = *txn;
        match result {
            Ok(Reply::Packet(Packet::AnswerBeginTransaction(answer))) => {
                let Some(context) = self.txns.get_mut(&txn) else {
                    return self.fail(op, ClientError::Aborted);
                };
                context.ttid = Some(answer.ttid);
                if context.aborted {
                    self.tpc_abort(self.now, txn);
                    return self.fail(op, ClientError::Aborted);
                }
                self.done(op, Answer::Begun(answer.ttid));
            }
            Ok(Reply::Packet(packet)) => self.fail(op, error_of(&packet)),
            Ok(Reply::Answer(_)) => unreachable!(),
            Err(error) => self.fail(op, error),
        }
    }

    // ------------------------------------------------------------ store

    /// Stores a revision of `oid` based on `serial` (`None` data: delete).
    pub fn store(
        &mut self,
        now: Time,
        txn: TxnId,
        oid: Oid,
        serial: Tid,
        data: Option<Bytes>,
    ) -> Result<(), ClientError> {
        self.now = self.now.max(now);
        self.writable(txn)?;
        self.write_object(txn, oid, serial, data, None)
    }

    /// readCurrent: the transaction commits only if `oid` is still at
    /// `serial` (a write lock is taken, nothing stored).
    pub fn check_current_serial(
        &mut self,
        now: Time,
        txn: TxnId,
        oid: Oid,
        serial: Tid,
    ) -> Result<(), ClientError> {
        self.now = self.now.max(now);
        let ttid = self.writable(txn)?;
        let packet = AskCheckCurrentSerial { ttid, oid, serial };
        let nids = self.txn_write(
            txn,
            packet.into(),
            oid.0,
            Request::Store { txn, oid, serial },
        )?;
        self.txns.get_mut(&txn).unwrap().data_dict.insert(
            oid,
            InFlight {
                write: Write::Checked,
                serial,
                waiting: nids,
            },
        );
        Ok(())
    }

    /// The application resolved a [`Conflict`]: stores the merged data,
    /// based on the committed serial.
    pub fn resolve_conflict(
        &mut self,
        now: Time,
        txn: TxnId,
        oid: Oid,
        data: Option<Bytes>,
    ) -> Result<(), ClientError> {
        self.now = self.now.max(now);
        self.writable(txn)?;
        let context = self.txns.get_mut(&txn).unwrap();
        let Some(committed) = context.resolving.remove(&oid) else {
            return Err(ClientError::NoConflictToResolve(oid));
        };
        context.resolved_dict.insert(oid, committed);
        let result = self.write_object(txn, oid, committed, data, None);
        self.txn_changed(txn);
        result
    }

    /// The TTID of a transaction that may still write.
    fn writable(&self, txn: TxnId) -> Result<Tid, ClientError> {
        let context = self.context(txn)?;
        if context.stored {
            return Err(ClientError::Voting);
        }
        context.ttid.ok_or(ClientError::NotBegun)
    }

    /// Sends a store of `oid` to every cell of its partition.
    fn write_object(
        &mut self,
        txn: TxnId,
        oid: Oid,
        serial: Tid,
        data: Option<Bytes>,
        data_serial: Option<Tid>,
    ) -> Result<(), ClientError> {
        let context = self.txns.get_mut(&txn).unwrap();
        let ttid = context.ttid.unwrap();
        let object = match &data {
            Some(raw) => crate::data::pack(raw.clone(), self.config.compress),
            None => {
                if data_serial.is_none() && !context.delete_list.contains(&oid) {
                    context.delete_list.push(oid);
                }
                crate::data::no_data()
            }
        };
        let ObjectData {
            compression,
            checksum,
            data: bytes,
        } = object;
        let packet = AskStoreObject {
            oid,
            serial,
            compression,
            checksum,
            data: bytes,
            data_serial,
            ttid,
        };
        let nids = self.txn_write(
            txn,
            packet.into(),
            oid.0,
            Request::Store { txn, oid, serial },
        )?;
        self.txns.get_mut(&txn).unwrap().data_dict.insert(
            oid,
            InFlight {
                write: Write::Data(data),
                serial,
                waiting: nids,
            },
        );
        Ok(())
    }

    /// Sends a transaction's request to every cell of the partition of
    /// `value` (oid or TTID); returns the storages it went to. Storages
    /// that failed in this transaction are never written again; one that
    /// cannot be reached fails now.
    fn txn_write(
        &mut self,
        txn: TxnId,
        packet: Packet,
        value: u64,
        request: Request,
    ) -> Result<Vec<Nid>, ClientError> {
        let Some(pt) = &self.pt else {
            return Err(ClientError::MasterLost);
        };
        let partition = pt.partition(value);
        let cells: Vec<Nid> = pt.row(partition).iter().map(|c| c.nid).collect();
        let mut nids = Vec::new();
        for nid in cells {
            if self.txns[&txn].conn_dict.get(&nid) == Some(&false) {
                continue;
            }
            let sent = self.ask_storage(nid, packet.clone(), request.clone());
            let context = self.txns.get_mut(&txn).unwrap();
            context.conn_dict.insert(nid, sent);
            if sent {
                context.pending += 1;
                nids.push(nid);
            }
        }
        if nids.is_empty() {
            return Err(ClientError::NoStorage { partition });
        }
        Ok(nids)
    }

    pub(super) fn store_answered(
        &mut self,
        txn: TxnId,
        nid: Nid,
        oid: Oid,
        serial: Tid,
        packet: Packet,
    ) {
        let partition = self.pt.as_ref().map(|pt| pt.partition(oid.0));
        let cache_limit = self.cache.max_size();
        let Some(context) = self.txns.get_mut(&txn) else {
            return;
        };
        context.request_done();
        let (conflict, field) = match packet {
            Packet::AnswerStoreObject(answer) => (answer.conflict, "AnswerStoreObject.conflict"),
            Packet::AnswerCheckCurrentSerial(answer) => {
                (answer.conflict, "AnswerCheckCurrentSerial.conflict")
            }
            other => {
                context.failure.get_or_insert(error_of(&other));
                return self.txn_changed(txn);
            }
        };
        match conflict {
            None => context.written(nid, oid, None, cache_limit),
            Some(Tid::ZERO) => {
                let partition = partition.unwrap_or(0);
                context.written(nid, oid, Some((serial, partition)), cache_limit);
            }
            Some(committed) => {
                // Unless resolved, or being resolved by the application,
                // against this one or a newer one: every replica reports
                // the same conflict, and the later answers may come while
                // the application merges (NEO/py resolves synchronously,
                // before reading more answers).
                let handled = context
                    .resolved_dict
                    .get(&oid)
                    .into_iter()
                    .chain(context.resolving.get(&oid))
                    .any(|serial| committed <= *serial);
                if !handled {
                    context.report_conflict(oid, committed, nid, field);
                }
            }
        }
        self.txn_changed(txn);
    }

    /// Something happened to a transaction: conflicts go to the
    /// application, the vote advances.
    pub(super) fn txn_changed(&mut self, txn: TxnId) {
        self.handle_conflicts(txn);
        if let Some(op) = self.txns.get(&txn).and_then(|c| c.op) {
            self.vote_progress(op);
        }
    }

    /// Hands new conflicts to the application (NEO/py resolves them while
    /// storing or voting). A conflict with a serial newer than our snapshot
    /// first waits for a sync: the invalidation is on its way.
    fn handle_conflicts(&mut self, txn: TxnId) {
        let last_tid = self.last_tid.unwrap_or(Tid::ZERO);
        let Some(context) = self.txns.get_mut(&txn) else {
            return;
        };
        if context.syncing {
            return;
        }
        let ready: Vec<(Oid, Tid)> = context
            .conflict_dict
            .iter()
            .filter(|(oid, _)| !context.resolving.contains_key(oid))
            .map(|(oid, report)| (*oid, report.serial))
            .collect();
        if ready.iter().any(|(_, serial)| last_tid < *serial) {
            context.syncing = true;
            for report in context.conflict_dict.values_mut() {
                report.synced |= last_tid < report.serial;
            }
            let sync = self.new_op(None, OpKind::ConflictSync(txn));
            self.ask_master(sync, neo_proto::Ping {});
            return;
        }
        for (oid, committed) in ready {
            let context = self.txns.get_mut(&txn).unwrap();
            context.conflict_dict.remove(&oid);
            let Some(entry) = context.data_dict.remove(&oid) else {
                continue;
            };
            let (data, checked) = match entry.write {
                Write::Checked => {
                    context.failure.get_or_insert(ClientError::ReadConflict {
                        oid,
                        serial: committed,
                        read: entry.serial,
                    });
                    (None, true)
                }
                Write::Data(data) => {
                    context.resolving.insert(oid, committed);
                    (data, false)
                }
            };
            // Conflicts are routine under contention: debug level.
            self.net.log(
                Level::Debug,
                format!(
                    "conflict on {oid} with {committed} (based on {})",
                    entry.serial
                ),
            );
            self.net.emit(Output::Event(ClientEvent::Conflict(Conflict {
                txn,
                oid,
                committed,
                based_on: entry.serial,
                data,
                checked,
            })));
        }
    }

    /// The sync before handing conflicts over is done (or failed: the
    /// master was lost, the conflicts wait for the next one).
    pub(super) fn conflict_synced(&mut self, op: OpId, result: OpResult) {
        let Some(Op {
            kind: OpKind::ConflictSync(txn),
            ..
        }) = self.ops.remove(&op)
        else {
            return;
        };
        let last_tid = self.last_tid.unwrap_or(Tid::ZERO);
        let cache_limit = self.cache.max_size();
        let Some(context) = self.txns.get_mut(&txn) else {
            return;
        };
        context.syncing = false;
        // The master sends the invalidation of a commit before any storage
        // can report a conflict with it: after the sync, a serial still
        // newer than our snapshot was never committed.
        let mut lies = Vec::new();
        context.conflict_dict.retain(|oid, report| {
            let lie = result.is_ok() && report.synced && last_tid < report.serial;
            report.synced = false;
            if lie {
                lies.push((*oid, report.clone()));
            }
            !lie
        });
        let liars: BTreeSet<Nid> = lies
            .iter()
            .flat_map(|(_, report)| report.by.iter().map(|(nid, _)| *nid))
            .collect();
        // Their writes count as answered, as if their connections were
        // lost (before, the conflict kept them waiting).
        for &nid in &liars {
            context.node_lost(nid, cache_limit);
        }
        for (oid, report) in lies {
            for (nid, field) in report.by {
                self.drop_storage(
                    nid,
                    format!(
                        "{field}: {oid} conflicts with {}, newer than the last committed \
                         transaction {last_tid}",
                        report.serial
                    ),
                );
            }
        }
        self.txn_changed(txn);
    }

    // ------------------------------------------------------------ deadlock avoidance

    /// A storage asks us to release and retake a lock so that an older
    /// transaction can go first.
    pub(super) fn on_deadlock(&mut self, nid: Nid, ttid: Tid, oid: Oid) {
        let Some((&txn, context)) = self.txns.iter().find(|(_, c)| c.ttid == Some(ttid)) else {
            return;
        };
        if context.stored {
            return; // voting: the storage will not wait for us
        }
        if context.conn_dict.get(&nid) != Some(&true) {
            // We hold no lock there (or it failed and is done with): its
            // loss would not be the transaction's, and could not settle
            // the relock.
            return;
        }
        self.net.log(
            Level::Info,
            format!("deadlock avoidance triggered for {oid} of {ttid}"),
        );
        if self.ask_storage(
            nid,
            AskRelockObject { ttid, oid },
            Request::Relock { txn, oid },
        ) {
            self.txns.get_mut(&txn).unwrap().pending += 1;
        } else {
            let cache_limit = self.cache.max_size();
            self.txns.get_mut(&txn).unwrap().node_lost(nid, cache_limit);
            self.txn_changed(txn);
        }
    }

    pub(super) fn relock_answered(&mut self, txn: TxnId, nid: Nid, oid: Oid, packet: Packet) {
        let Some(context) = self.txns.get_mut(&txn) else {
            return;
        };
        context.request_done();
        let conflict = match packet {
            Packet::AnswerRelockObject(answer) => answer.conflict,
            other => {
                context.failure.get_or_insert(error_of(&other));
                return self.txn_changed(txn);
            }
        };
        if let Some(conflict) = conflict {
            let resolved = context
                .resolved_dict
                .get(&oid)
                .is_some_and(|r| conflict.conflict_serial <= *r);
            match context.cache_dict.remove(&oid) {
                Some(cached) => {
                    // Every storage had acknowledged: the data comes back
                    // from the storage (or from what we kept).
                    let write = match (conflict.data, cached) {
                        (None, cached) => cached,
                        (Some(data), _) => match crate::data::unpack(&data) {
                            Ok(raw) => Write::Data(Some(raw)),
                            Err(error) => {
                                context.failure.get_or_insert(ClientError::CorruptData {
                                    oid,
                                    why: format!("from {nid}, while getting it back: {error}"),
                                });
                                return self.txn_changed(txn);
                            }
                        },
                    };
                    context.data_dict.insert(
                        oid,
                        InFlight {
                            write,
                            serial: conflict.serial,
                            waiting: Vec::new(),
                        },
                    );
                }
                None => {
                    if resolved || !context.data_dict.contains_key(&oid) {
                        return self.txn_changed(txn);
                    }
                    if context
                        .conflict_dict
                        .get(&oid)
                        .is_some_and(|c| conflict.serial <= c.serial)
                    {
                        // A newer conflict is already known.
                        return self.txn_changed(txn);
                    }
                }
            }
            context.report_conflict(
                oid,
                conflict.conflict_serial,
                nid,
                "AnswerRelockObject.conflict",
            );
        }
        self.txn_changed(txn);
    }

    // ------------------------------------------------------------ vote

    /// Votes: once every write is settled, the storages make the
    /// transaction durable (all but its final TID).
    pub fn tpc_vote(&mut self, now: Time, txn: TxnId) -> OpId {
        self.now = self.now.max(now);
        let op = self.new_op(
            None,
            OpKind::Vote(VoteState {
                txn,
                stage: VoteStage::Stores,
            }),
        );
        self.begin_vote(op, txn);
        op
    }

    fn begin_vote(&mut self, op: OpId, txn: TxnId) {
        match self.txns.get_mut(&txn) {
            Some(context) if context.ttid.is_some() && context.op.is_none() => {
                context.op = Some(op);
                self.txn_changed(txn);
            }
            Some(context) if context.ttid.is_none() => self.fail(op, ClientError::NotBegun),
            Some(_) => self.fail(op, ClientError::Voting),
            None => self.fail(op, ClientError::UnknownTransaction(txn)),
        }
    }

    fn vote_state(&mut self, op: OpId) -> Option<&mut VoteState> {
        match self.ops.get_mut(&op).map(|o| &mut o.kind) {
            Some(OpKind::Vote(state)) => Some(state),
            _ => None,
        }
    }

    pub(super) fn vote_progress(&mut self, op: OpId) {
        let Some(state) = self.vote_state(op) else {
            return;
        };
        let (txn, stage) = (state.txn, state.stage);
        let Some(context) = self.txns.get(&txn) else {
            return self.fail(op, ClientError::Aborted);
        };
        if let Some(failure) = context.failure.clone() {
            return self.end_vote(op, txn, Err(failure));
        }
        match stage {
            VoteStage::Stores if context.writes_settled() => {
                if !context.data_dict.is_empty() {
                    return self.end_vote(op, txn, Err(ClientError::Vote(VoteError::WritesLost)));
                }
                self.send_votes(op, txn);
            }
            VoteStage::Votes if context.pending == 0 => self.votes_answered(op, txn),
            VoteStage::Stores | VoteStage::Votes | VoteStage::FailedVote => {}
        }
    }

    /// Every write settled: the transaction's metadata to the cells of its
    /// TTID's partition (their vote), AskVoteTransaction to the other
    /// storages written to.
    fn send_votes(&mut self, op: OpId, txn: TxnId) {
        let context = self.txns.get_mut(&txn).unwrap();
        context.stored = true;
        let ttid = context.ttid.unwrap();
        let store = AskStoreTransaction {
            ttid,
            user: context.user.clone(),
            description: context.description.clone(),
            extension: context.extension.clone(),
            oids: context.cache_dict.keys().copied().collect(),
            pack: context.pack.clone(),
        };
        let metadata_nodes = match self.txn_write(txn, store.into(), ttid.0, Request::Vote { txn })
        {
            Ok(nids) => nids,
            Err(error) => return self.end_vote(op, txn, Err(error)),
        };
        let others: Vec<Nid> = self.txns[&txn]
            .conn_dict
            .iter()
            .filter(|(nid, usable)| **usable && !metadata_nodes.contains(nid))
            .map(|(nid, _)| *nid)
            .collect();
        for nid in others {
            let sent = self.ask_storage(nid, AskVoteTransaction { ttid }, Request::Vote { txn });
            let context = self.txns.get_mut(&txn).unwrap();
            if sent {
                context.pending += 1;
            } else {
                context.conn_dict.insert(nid, false);
            }
        }
        self.vote_state(op).unwrap().stage = VoteStage::Votes;
        self.vote_progress(op);
    }

    /// Every vote answered. If some storage failed, every partition written
    /// without lock must still have a storage that locked it, and the
    /// master decides whether the failed ones can be left out.
    fn votes_answered(&mut self, op: OpId, txn: TxnId) {
        let context = &self.txns[&txn];
        let failed: Vec<(Nid, bool)> = context
            .conn_dict
            .iter()
            .filter(|(_, usable)| !**usable)
            .filter_map(|(nid, _)| {
                let entry = self.nodes.entry_by_nid(*nid)?;
                Some((*nid, entry.is_running()))
            })
            .collect();
        if failed.is_empty() {
            return self.end_vote(op, txn, Ok(()));
        }
        let pt = self.pt.as_ref();
        for (partition, lockless) in &context.lockless {
            let locked_somewhere = pt.is_some_and(|pt| {
                pt.row(*partition).iter().any(|cell| {
                    !failed.iter().any(|(n, _)| *n == cell.nid) && !lockless.contains(&cell.nid)
                })
            });
            if !locked_somewhere {
                let error = ClientError::Vote(VoteError::PartitionNotLocked(*partition));
                return self.end_vote(op, txn, Err(error));
            }
        }
        let failed_nids: Vec<Nid> = failed
            .iter()
            .filter(|(_, running)| *running)
            .map(|(nid, _)| *nid)
            .collect();
        if failed_nids.is_empty() {
            return self.end_vote(op, txn, Ok(()));
        }
        let ttid = context.ttid.unwrap();
        self.vote_state(op).unwrap().stage = VoteStage::FailedVote;
        self.ask_master(op, FailedVote { ttid, failed_nids });
    }

    /// The master's answer to FailedVote.
    pub(super) fn vote_child(&mut self, op: OpId, result: OpResult) {
        let Some(state) = self.vote_state(op) else {
            return;
        };
        let txn = state.txn;
        let outcome = match result {
            Ok(Reply::Packet(Packet::Error(error))) if error.code == ErrorCode::Ack => Ok(()),
            Ok(Reply::Packet(Packet::Error(error)))
                if error.code == ErrorCode::IncompleteTransaction =>
            {
                Err(ClientError::Vote(VoteError::StoragesNeeded))
            }
            // Lost the master: the transaction's error says so below.
            Err(ClientError::MasterLost) => Ok(()),
            Ok(Reply::Packet(packet)) => Err(error_of(&packet)),
            Ok(Reply::Answer(_)) => unreachable!(),
            Err(error) => Err(error),
        };
        self.end_vote(op, txn, outcome);
    }

    fn end_vote(&mut self, op: OpId, txn: TxnId, outcome: Result<(), ClientError>) {
        let Some(context) = self.txns.get_mut(&txn) else {
            return;
        };
        context.op = None;
        // Lost the master since begin: finishing would likely fail.
        let outcome = match context.master_lost {
            true => outcome.and(Err(ClientError::MasterLost)),
            false => outcome,
        };
        match outcome {
            Ok(()) => {
                context.voted = true;
                let resolved = context.resolved_dict.keys().copied().collect();
                self.done(op, Answer::Voted(resolved));
            }
            Err(error) => self.fail(op, error),
        }
    }

    pub(super) fn vote_answered(&mut self, txn: TxnId, packet: Packet) {
        let Some(context) = self.txns.get_mut(&txn) else {
            return;
        };
        context.request_done();
        if !matches!(
            packet,
            Packet::AnswerStoreTransaction(_) | Packet::AnswerVoteTransaction(_)
        ) {
            context.failure.get_or_insert(error_of(&packet));
        }
        self.txn_changed(txn);
    }

    // ------------------------------------------------------------ finish

    /// Finishes (voting first if needed): the master chooses the TID and
    /// has every storage lock; the answer comes at commit.
    pub fn tpc_finish(&mut self, now: Time, txn: TxnId) -> OpId {
        self.now = self.now.max(now);
        self.spawn(
            None,
            OpKind::Finish(FinishState {
                txn,
                stage: FinishStage::Start,
            }),
        )
    }

    fn finish_state(&mut self, op: OpId) -> Option<&mut FinishState> {
        match self.ops.get_mut(&op).map(|o| &mut o.kind) {
            Some(OpKind::Finish(state)) => Some(state),
            _ => None,
        }
    }

    pub(super) fn finish_progress(&mut self, op: OpId) {
        let Some(state) = self.finish_state(op) else {
            return;
        };
        let txn = state.txn;
        if !matches!(state.stage, FinishStage::Start) {
            return;
        }
        let voted = match self.context(txn) {
            Ok(context) => context.voted,
            Err(error) => return self.fail(op, error),
        };
        if !voted {
            self.finish_state(op).unwrap().stage = FinishStage::Voting;
            let vote = self.new_op(
                Some(op),
                OpKind::Vote(VoteState {
                    txn,
                    stage: VoteStage::Stores,
                }),
            );
            self.begin_vote(vote, txn);
            return;
        }
        let mut context = self.txns.remove(&txn).unwrap();
        let pt = self.pt.as_ref();
        let partition = |oid: &Oid| pt.map_or(0, |pt| pt.partition(oid.0));
        let mut checked = BTreeSet::new();
        context.cache_dict.retain(|oid, write| {
            if *write == Write::Checked {
                checked.insert(partition(oid));
                false
            } else {
                true
            }
        });
        let deleted: BTreeSet<u32> = context.delete_list.iter().map(&partition).collect();
        let oids: Vec<Oid> = context
            .cache_dict
            .keys()
            .filter(|oid| !context.delete_list.contains(oid))
            .copied()
            .collect();
        let finish = AskFinishTransaction {
            ttid: context.ttid.unwrap(),
            oids,
            deleted: deleted.into_iter().collect(),
            checked: checked.into_iter().collect(),
            pack: context.pack.clone(),
        };
        self.finish_state(op).unwrap().stage = FinishStage::Finishing(Box::new(context));
        self.ask_master(op, finish);
    }

    pub(super) fn finish_child(&mut self, op: OpId, result: OpResult) {
        let Some(state) = self.finish_state(op) else {
            return;
        };
        match std::mem::replace(&mut state.stage, FinishStage::Start) {
            FinishStage::Voting => match result {
                Ok(_) => self.finish_progress(op),
                Err(error) => self.fail(op, error),
            },
            FinishStage::Finishing(context) => match result {
                Ok(Reply::Packet(Packet::AnswerTransactionFinished(answer))) => {
                    self.committed(&context, answer.tid);
                    self.done(op, Answer::Finished(answer.tid));
                }
                Ok(Reply::Packet(Packet::Error(error)))
                    if error.code == ErrorCode::IncompleteTransaction =>
                {
                    self.fail(op, ClientError::Vote(VoteError::StoragesNeeded))
                }
                Err(ClientError::MasterLost) => {
                    // Did it commit? Ask until someone knows.
                    let ttid = context.ttid.unwrap();
                    self.finish_state(op).unwrap().stage = FinishStage::Recovering;
                    self.final_tid(op, ttid);
                }
                Ok(Reply::Packet(packet)) => self.fail(op, error_of(&packet)),
                Ok(Reply::Answer(_)) => unreachable!(),
                Err(error) => self.fail(op, error),
            },
            FinishStage::Recovering => match result {
                Ok(Reply::Packet(Packet::AnswerFinalTID(answer))) if answer.tid.is_some() => {
                    self.done(op, Answer::Finished(answer.tid.unwrap()))
                }
                _ => self.fail(op, ClientError::MasterLost),
            },
            FinishStage::Start => {}
        }
    }

    /// Our transaction committed as `tid`: what we wrote becomes the
    /// current revision in the cache, and our snapshot moves to it.
    fn committed(&mut self, context: &TxnContext, tid: Tid) {
        let oids: Vec<Oid> = context.cache_dict.keys().copied().collect();
        self.invalidate(tid, &oids);
        for (oid, write) in &context.cache_dict {
            if let Write::Data(Some(data)) = write {
                self.cache.store(*oid, data.clone(), tid, None);
            }
        }
    }

    // ------------------------------------------------------------ abort

    /// Aborts: every storage written to, then the master, are told (the
    /// storages first, on the connections the writes went through).
    pub fn tpc_abort(&mut self, now: Time, txn: TxnId) {
        self.now = self.now.max(now);
        let Some(mut context) = self.txns.remove(&txn) else {
            return;
        };
        let Some(ttid) = context.ttid else {
            // Begin in flight: abort once it is answered.
            context.aborted = true;
            self.txns.insert(txn, context);
            return;
        };
        if let Some(op) = context.op {
            self.fail(op, ClientError::Aborted);
        }
        let abort = AbortTransaction {
            ttid,
            nids: Vec::new(),
        };
        for (&nid, &usable) in &context.conn_dict {
            if usable {
                // After our writes on the same connection, so that none can
                // re-register the transaction after the abort (the master's
                // abort may arrive first). Writes still waiting for the
                // connection to come up are simply never sent.
                self.forget_queued(nid, txn);
                self.send_storage(nid, abort.clone());
            }
        }
        if let Some(conn) = self.link.identified_conn() {
            let nids = context.conn_dict.keys().copied().collect();
            self.net.send(conn, AbortTransaction { ttid, nids });
        }
    }

    // ------------------------------------------------------------ undo

    /// Undoes `undone` inside `txn`: each object it changed gets a
    /// back-pointer to its previous revision; objects changed since are
    /// returned for the application to merge.
    pub fn undo(&mut self, now: Time, txn: TxnId, undone: Tid) -> OpId {
        self.now = self.now.max(now);
        self.spawn(
            None,
            OpKind::Undo(UndoState {
                txn,
                undone,
                stage: UndoStage::Info,
            }),
        )
    }

    fn undo_state(&mut self, op: OpId) -> Option<&mut UndoState> {
        match self.ops.get_mut(&op).map(|o| &mut o.kind) {
            Some(OpKind::Undo(state)) => Some(state),
            _ => None,
        }
    }

    pub(super) fn start_undo(&mut self, op: OpId) {
        let state = self.undo_state(op).unwrap();
        let (txn, undone) = (state.txn, state.undone);
        if let Err(error) = self.writable(txn) {
            return self.fail(op, error);
        }
        self.spawn(Some(op), OpKind::TransactionInfo(undone));
    }

    pub(super) fn undo_child(&mut self, op: OpId, child: OpId, result: OpResult) {
        let Some(state) = self.undo_state(op) else {
            return;
        };
        let (txn, undone) = (state.txn, state.undone);
        let Ok(ttid) = self.writable(txn) else {
            return self.fail(op, ClientError::Aborted);
        };
        match &self.undo_state(op).unwrap().stage {
            UndoStage::Info => self.undo_info_answered(op, txn, ttid, undone, result),
            UndoStage::Serials { .. } => self.undo_serials_answered(op, child, result),
            UndoStage::Loads { .. } => self.undo_load_answered(op, child, result),
        }
    }

    /// The undone transaction's oids: ask, per partition, where each goes
    /// back to (storages that failed in this transaction may have missed
    /// our writes: never asked).
    fn undo_info_answered(
        &mut self,
        op: OpId,
        txn: TxnId,
        ttid: Tid,
        undone: Tid,
        result: OpResult,
    ) {
        let info = match super::transaction_info(result) {
            Ok(info) => info,
            Err(ClientError::NotFound) => {
                return self.fail(op, ClientError::Undo("transaction not found".into()))
            }
            Err(error) => return self.fail(op, error),
        };
        let Some(pt) = &self.pt else {
            return self.fail(op, ClientError::MasterLost);
        };
        let mut by_partition: BTreeMap<u32, Vec<Oid>> = BTreeMap::new();
        for oid in info.oids {
            by_partition
                .entry(pt.partition(oid.0))
                .or_default()
                .push(oid);
        }
        let snapshot = self.snapshot_end().unwrap_or(Tid(1));
        let exclude: BTreeSet<Nid> = self.txns[&txn]
            .conn_dict
            .iter()
            .filter(|(_, usable)| !**usable)
            .map(|(nid, _)| *nid)
            .collect();
        let mut pending = BTreeMap::new();
        for (partition, oids) in by_partition {
            let ask = AskObjectUndoSerial {
                ttid,
                ltid: snapshot,
                undone_tid: undone,
                oids,
            };
            let read = self.read_excluding(op, partition, ask, exclude.clone());
            pending.insert(read, partition);
        }
        let Some(state) = self.undo_state(op) else {
            return; // a read failed at once
        };
        let done = pending.is_empty();
        state.stage = UndoStage::Serials {
            pending,
            results: BTreeMap::new(),
        };
        if done {
            self.undo_loads(op);
        }
    }

    /// One partition's undo serials.
    fn undo_serials_answered(&mut self, op: OpId, child: OpId, result: OpResult) {
        let state = self.undo_state(op).unwrap();
        let UndoStage::Serials { pending, results } = &mut state.stage else {
            return;
        };
        pending.remove(&child);
        match result {
            Ok(Reply::Packet(Packet::AnswerObjectUndoSerial(answer))) => {
                results.extend(answer.result.0);
            }
            Ok(Reply::Packet(Packet::Error(error))) if error.code == ErrorCode::OidNotFound => {
                return self.fail(op, ClientError::Undo("non-undoable transaction".into()))
            }
            Ok(Reply::Packet(packet)) => return self.fail(op, error_of(&packet)),
            Ok(Reply::Answer(_)) => unreachable!(),
            Err(error) => return self.fail(op, error),
        }
        if pending.is_empty() {
            self.undo_loads(op);
        }
    }

    /// One of the revisions undo needs (current or target data).
    fn undo_load_answered(&mut self, op: OpId, child: OpId, result: OpResult) {
        let state = self.undo_state(op).unwrap();
        let UndoStage::Loads {
            loads,
            current,
            target,
            ..
        } = &mut state.stage
        else {
            return;
        };
        let Some((oid, is_current_data)) = loads.finished(child) else {
            return;
        };
        let data = match result {
            Ok(Reply::Answer(Answer::Loaded(loaded))) => Some(loaded.data),
            Err(ClientError::CreationUndone) => None,
            Err(ClientError::NotFound) | Err(ClientError::DoesNotExist) => {
                let why = "object not found while resolving undo".into();
                return self.fail(op, ClientError::Undo(why));
            }
            Err(error) => return self.fail(op, error),
            Ok(_) => unreachable!(),
        };
        if is_current_data {
            current.insert(oid, data);
        } else {
            target.insert(oid, data);
        }
        if loads.is_empty() {
            self.undo_store(op);
        } else {
            self.start_fetches(op, undo_loads_of);
        }
    }

    /// Loads the data undo needs: the target of each revertible object
    /// (out-of-date cells may lack it), and both sides of each conflict.
    fn undo_loads(&mut self, op: OpId) {
        let state = self.undo_state(op).unwrap();
        let txn = state.txn;
        let UndoStage::Serials { results, .. } =
            std::mem::replace(&mut state.stage, UndoStage::Info)
        else {
            return;
        };
        let context = &self.txns[&txn];
        let ttid = context.ttid.unwrap();
        let mut wanted = Vec::new();
        let mut current = BTreeMap::new();
        for (&oid, serial) in &results {
            if let Some(undo_serial) = serial.undo_serial {
                wanted.push(((oid, false), oid, undo_serial));
            }
            if !serial.is_current {
                if serial.current_serial == ttid {
                    // Our own pending write is the current data.
                    let ours = match context.cache_dict.get(&oid) {
                        Some(Write::Data(data)) => data.clone(),
                        _ => None,
                    };
                    current.insert(oid, ours);
                } else {
                    wanted.push(((oid, true), oid, serial.current_serial));
                }
            }
        }
        let loads = Fetches::new(wanted);
        let done = loads.is_empty();
        self.undo_state(op).unwrap().stage = UndoStage::Loads {
            results,
            loads,
            current,
            target: BTreeMap::new(),
        };
        if done {
            self.undo_store(op);
        } else {
            self.start_fetches(op, undo_loads_of);
        }
    }

    fn undo_store(&mut self, op: OpId) {
        let state = self.undo_state(op).unwrap();
        let txn = state.txn;
        let UndoStage::Loads {
            results,
            mut current,
            mut target,
            ..
        } = std::mem::replace(&mut state.stage, UndoStage::Info)
        else {
            return;
        };
        let mut oids = Vec::new();
        let mut conflicts = Vec::new();
        for (oid, serial) in results {
            let data = target.remove(&oid).flatten();
            if serial.is_current {
                if let Err(error) =
                    self.write_object(txn, oid, serial.current_serial, data, serial.undo_serial)
                {
                    return self.fail(op, error);
                }
                oids.push(oid);
            } else {
                conflicts.push(UndoConflict {
                    oid,
                    current_serial: serial.current_serial,
                    current: current.remove(&oid).flatten(),
                    target: data,
                });
            }
        }
        self.txn_changed(txn);
        self.done(op, Answer::Undone { oids, conflicts });
    }

    // ------------------------------------------------------------ pack

    /// Packs the database at `pack_tid` (only `oids` if given): commits an
    /// empty transaction carrying the order; with `wait`, answers once
    /// every storage applied it.
    pub fn pack(&mut self, now: Time, pack_tid: Tid, oids: Option<Vec<Oid>>, wait: bool) -> OpId {
        self.now = self.now.max(now);
        let op = self.new_op(
            None,
            OpKind::Pack(PackState {
                pack_tid,
                oids: oids.map(|mut oids| {
                    oids.sort_unstable();
                    oids
                }),
                wait,
                txn: None,
                stage: PackStage::Begin,
            }),
        );
        self.pack_progress(op, None);
        op
    }

    fn pack_state(&mut self, op: OpId) -> Option<&mut PackState> {
        match self.ops.get_mut(&op).map(|o| &mut o.kind) {
            Some(OpKind::Pack(state)) => Some(state),
            _ => None,
        }
    }

    pub(super) fn pack_progress(&mut self, op: OpId, result: Option<OpResult>) {
        let read_only = self.config.read_only;
        let Some(state) = self.pack_state(op) else {
            return;
        };
        match (&state.stage, result) {
            (PackStage::Begin, _) => {
                if state.pack_tid == Tid::ZERO {
                    return self.done(op, Answer::Packed(None));
                }
                if read_only {
                    return self.fail(op, ClientError::ReadOnly);
                }
                let request = PackRequest {
                    oids: state.oids.clone(),
                    pack_tid: state.pack_tid,
                };
                state.stage = PackStage::Begun;
                self.next_txn += 1;
                let txn = TxnId(self.next_txn);
                let mut context = TxnContext::new(
                    Bytes::new(),
                    Bytes::from_static(PACK_DESCRIPTION),
                    Bytes::new(),
                    None,
                );
                context.pack = Some(request);
                self.txns.insert(txn, context);
                self.pack_state(op).unwrap().txn = Some(txn);
                self.spawn(Some(op), OpKind::Begin(txn));
            }
            (PackStage::Begun, Some(Ok(_))) => {
                let txn = state.txn.unwrap();
                state.stage = PackStage::Finishing;
                self.spawn(
                    Some(op),
                    OpKind::Finish(FinishState {
                        txn,
                        stage: FinishStage::Start,
                    }),
                );
            }
            (PackStage::Finishing, Some(Ok(Reply::Answer(Answer::Finished(tid))))) => {
                if state.wait {
                    state.stage = PackStage::Waiting(tid);
                    self.ask_master(op, WaitForPack { tid });
                } else {
                    self.done(op, Answer::Packed(Some(tid)));
                }
            }
            (PackStage::Waiting(tid), Some(Ok(Reply::Packet(Packet::WaitedForPack(_))))) => {
                let tid = *tid;
                // Old revisions may have gone: forget what we cached.
                self.cache.clear();
                self.done(op, Answer::Packed(Some(tid)));
            }
            (_, Some(outcome)) => {
                let txn = state.txn;
                let error = match outcome {
                    Err(error) => error,
                    Ok(Reply::Packet(packet)) => error_of(&packet),
                    Ok(Reply::Answer(answer)) => {
                        ClientError::UnexpectedAnswer(format!("{answer:?}"))
                    }
                };
                if let Some(txn) = txn {
                    self.tpc_abort(self.now, txn);
                }
                self.fail(op, error);
            }
            (_, None) => {}
        }
    }
}

/// Where undo keeps its loads of revisions.
fn undo_loads_of(kind: &mut OpKind) -> Option<&mut Fetches<(Oid, bool)>> {
    match kind {
        OpKind::Undo(UndoState {
            stage: UndoStage::Loads { loads, .. },
            ..
        }) => Some(loads),
        _ => None,
    }
}
