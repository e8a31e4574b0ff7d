//! Serving clients (cluster.md 5 and 6): stores, serial checks, relocks,
//! votes and aborts, reads, history, undo and iteration.
//!
//! A request that must wait is *postponed* with its connection and message
//! id and answered later, possibly after requests that arrived after it on
//! the same connection (NEO/py does the same): writes wait for a write
//! lock and are retried in TTID order whenever locks are released; reads
//! wait for a read lock (a locked transaction about to change the object
//! or to appear in an iteration) and are retried in arrival order.

// Numbers from peers are handled here: no indexing that can panic, no
// arithmetic that can overflow (CI denies both).
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use neo_proto::{
    AnswerCheckCurrentSerial, AnswerFinalTID, AnswerOIDsFrom, AnswerObject, AnswerObjectHistory,
    AnswerObjectUndoSerial, AnswerRelockObject, AnswerStoreObject, AnswerStoreTransaction,
    AnswerTIDs, AnswerTIDsFrom, AnswerTransactionInformation, AnswerVoteTransaction,
    AskCheckCurrentSerial, AskOIDsFrom, AskObject, AskObjectHistory, AskObjectUndoSerial,
    AskRelockObject, AskStoreObject, AskStoreTransaction, AskTIDs, AskTIDsFrom, ErrorCode,
    HistoryEntry, Map, Nid, NotifyDeadlock, ObjectData, Packet, Tid,
};

use super::store::{ObjectLookup, Store, TransactionMeta};
use super::transactions::{LockError, StoreError};
use super::waiting::{QUEUED_REQUESTS_COUNT_MAX, QUEUED_REQUEST_BYTES_MAX};
use super::{Storage, INVALID_PARTITION};
use crate::net::Reject;
use crate::node::{ConnId, Level};

/// A request waiting for a lock.
#[derive(Debug)]
pub(super) enum Postponed {
    Store(ConnId, u32, AskStoreObject),
    Check(ConnId, u32, AskCheckCurrentSerial),
    Relock(ConnId, u32, AskRelockObject),
    Object(ConnId, u32, AskObject),
    History(ConnId, u32, AskObjectHistory),
    TidsFrom(ConnId, u32, AskTIDsFrom),
    OidsFrom(ConnId, u32, AskOIDsFrom),
    /// A replica's AskFetchTransactions.
    Fetch(ConnId, u32, neo_proto::AskFetchTransactions),
    /// A checking replica's AskCheckTIDRange.
    CheckTids(ConnId, u32, neo_proto::AskCheckTIDRange),
}

impl Postponed {
    /// The object data it holds.
    pub(super) fn data_bytes(&self) -> usize {
        match self {
            Postponed::Store(_, _, store) => store.data.len(),
            _ => 0,
        }
    }

    fn msg_id(&self) -> u32 {
        match self {
            Postponed::Store(_, msg_id, _)
            | Postponed::Check(_, msg_id, _)
            | Postponed::Relock(_, msg_id, _)
            | Postponed::Object(_, msg_id, _)
            | Postponed::History(_, msg_id, _)
            | Postponed::TidsFrom(_, msg_id, _)
            | Postponed::OidsFrom(_, msg_id, _)
            | Postponed::Fetch(_, msg_id, _)
            | Postponed::CheckTids(_, msg_id, _) => *msg_id,
        }
    }

    pub(super) fn conn(&self) -> ConnId {
        match self {
            Postponed::Store(conn, ..)
            | Postponed::Check(conn, ..)
            | Postponed::Relock(conn, ..)
            | Postponed::Object(conn, ..)
            | Postponed::History(conn, ..)
            | Postponed::TidsFrom(conn, ..)
            | Postponed::OidsFrom(conn, ..)
            | Postponed::Fetch(conn, ..)
            | Postponed::CheckTids(conn, ..) => *conn,
        }
    }
}

/// Whether a request was answered or must wait.
enum Outcome {
    Done,
    /// Wait for a write lock; retried in the order of this TTID.
    WaitWrite(Tid),
    /// Wait for a read lock.
    WaitRead,
}

/// Most records one AskTIDs, AskTIDsFrom, AskOIDsFrom or AskObjectHistory
/// lists (clients ask for 100 at a time; undoLog for what the application
/// asks): a longer range is cut, and the client asks again from where the
/// answer stops.
pub(super) const LISTED_RECORDS_COUNT_MAX: u32 = 10_000;

/// Deepest record AskTIDs and AskObjectHistory may start from: listing
/// from record `first` keeps `first` records per partition in memory, so a
/// peer asking from the end of the u64s would make the storage load its
/// whole history (an application paging an undo log goes nowhere near).
pub(super) const LISTED_OFFSET_MAX: u64 = 1_000_000;

/// A listing of `packet` from offset `first` to `last` (exclusive): a
/// range in order, starting at most LISTED_OFFSET_MAX deep; `last` is
/// clamped to LISTED_RECORDS_COUNT_MAX records.
fn check_listing(packet: &str, first: u64, last: &mut u64) -> Result<(), Reject> {
    if first >= *last {
        return Err(Reject::protocol("invalid offsets"));
    }
    if first > LISTED_OFFSET_MAX {
        return Err(Reject::protocol(format!(
            "{packet}.first: {first} is past the deepest listing ({LISTED_OFFSET_MAX})"
        )));
    }
    *last = (*last).min(first.saturating_add(LISTED_RECORDS_COUNT_MAX.into()));
    Ok(())
}

/// An oid or tid as NEO/py prints it in error messages.
fn dump(value: u64) -> String {
    format!("{value:016x}")
}

fn non_readable() -> Reject {
    Reject::answer(ErrorCode::NonReadableCell, "")
}

impl<S: Store> Storage<S> {
    /// A packet from an identified client.
    pub(super) fn on_client_packet(
        &mut self,
        conn: ConnId,
        client: Nid,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        self.check_transaction_owner(client, &packet)?;
        match packet {
            Packet::AskStoreObject(ask) => self.on_store_object(conn, client, msg_id, ask)?,
            Packet::AskCheckCurrentSerial(ask) => {
                self.locks.register(client, ask.ttid);
                self.run(Postponed::Check(conn, msg_id, ask));
            }
            Packet::AskRelockObject(ask) => self.on_relock_object(conn, msg_id, ask),
            Packet::AskStoreTransaction(ask) => {
                self.on_store_transaction(conn, client, msg_id, ask)?
            }
            Packet::AskVoteTransaction(ask) => {
                self.locks
                    .vote(self.store.write(), ask.ttid, None)
                    .map_err(Reject::protocol)?;
                self.net
                    .answer_after(self.store.written(), conn, msg_id, AnswerVoteTransaction {});
            }
            Packet::AbortTransaction(abort) => {
                self.abort_transaction(abort.ttid);
                self.replication_transaction_finished(abort.ttid, None);
            }
            Packet::AskObject(ask) => self.run(Postponed::Object(conn, msg_id, ask)),
            Packet::AskObjectHistory(mut ask) => {
                check_listing("AskObjectHistory", ask.first, &mut ask.last)?;
                self.run(Postponed::History(conn, msg_id, ask));
            }
            Packet::AskTIDsFrom(mut ask) => {
                ask.length = ask.length.min(LISTED_RECORDS_COUNT_MAX);
                self.run(Postponed::TidsFrom(conn, msg_id, ask))
            }
            Packet::AskOIDsFrom(mut ask) => {
                ask.length = ask.length.min(LISTED_RECORDS_COUNT_MAX);
                self.run(Postponed::OidsFrom(conn, msg_id, ask))
            }
            Packet::AskTIDs(ask) => self.answer_tids(conn, msg_id, ask)?,
            Packet::AskTransactionInformation(ask) => {
                self.answer_transaction_information(conn, msg_id, ask.tid)?
            }
            Packet::AskObjectUndoSerial(ask) => self.answer_undo_serials(conn, msg_id, &ask)?,
            Packet::AskFinalTID(ask) => {
                let tid = match self.locks.final_tid(ask.ttid) {
                    Some(tid) => tid,
                    None => self.store.final_tid(ask.ttid),
                };
                self.net.answer(conn, msg_id, AnswerFinalTID { tid });
            }
            other => return Err(Reject::unexpected(&other, "client operation")),
        }
        Ok(())
    }

    /// A client acts only on its own transactions.
    fn check_transaction_owner(&self, client: Nid, packet: &Packet) -> Result<(), Reject> {
        let ttid = match packet {
            Packet::AskStoreObject(p) => Some(("AskStoreObject.ttid", p.ttid)),
            Packet::AskCheckCurrentSerial(p) => Some(("AskCheckCurrentSerial.ttid", p.ttid)),
            Packet::AskRelockObject(p) => Some(("AskRelockObject.ttid", p.ttid)),
            Packet::AskStoreTransaction(p) => Some(("AskStoreTransaction.ttid", p.ttid)),
            Packet::AskVoteTransaction(p) => Some(("AskVoteTransaction.ttid", p.ttid)),
            Packet::AbortTransaction(p) => Some(("AbortTransaction.ttid", p.ttid)),
            _ => None,
        };
        let Some((field, ttid)) = ttid else {
            return Ok(());
        };
        self.locks
            .check_owner(client, ttid)
            .map_err(|why| Reject::protocol(format!("{field}: {why}")))
    }

    fn on_store_object(
        &mut self,
        conn: ConnId,
        client: Nid,
        msg_id: u32,
        ask: AskStoreObject,
    ) -> Result<(), Reject> {
        if ask.compression > 1 {
            return Err(Reject::protocol("invalid compression value"));
        }
        if let Some(data) = &object_data(&ask) {
            if crate::data::verify(data).is_err() {
                return Err(Reject::protocol("invalid checksum"));
            }
        }
        self.locks.register(client, ask.ttid);
        self.run(Postponed::Store(conn, msg_id, ask));
        Ok(())
    }

    fn on_relock_object(&mut self, conn: ConnId, msg_id: u32, ask: AskRelockObject) {
        if self.locks.release_for_relock(ask.ttid, ask.oid) {
            // The older transaction waiting for this lock goes first; our
            // relock then normally waits behind it.
            self.run_postponed();
            self.run(Postponed::Relock(conn, msg_id, ask));
        } else {
            self.log(
                Level::Info,
                format!("nothing to relock for {} of {}", ask.oid, ask.ttid),
            );
            self.net
                .answer(conn, msg_id, AnswerRelockObject { conflict: None });
        }
    }

    /// The transaction's metadata, which is its vote in the partition of
    /// its TTID.
    fn on_store_transaction(
        &mut self,
        conn: ConnId,
        client: Nid,
        msg_id: u32,
        ask: AskStoreTransaction,
    ) -> Result<(), Reject> {
        self.locks.register(client, ask.ttid);
        let meta = TransactionMeta {
            ttid: ask.ttid,
            user: ask.user,
            description: ask.description,
            extension: ask.extension,
            packed: false,
            oids: ask.oids,
        };
        self.locks
            .vote(self.store.write(), ask.ttid, Some((meta, ask.pack)))
            .map_err(Reject::protocol)?;
        // The vote is a promise: answered once durable.
        let written = self.store.written();
        self.net
            .answer_after(written, conn, msg_id, AnswerStoreTransaction {});
        Ok(())
    }

    fn answer_tids(&mut self, conn: ConnId, msg_id: u32, mut ask: AskTIDs) -> Result<(), Reject> {
        check_listing("AskTIDs", ask.first, &mut ask.last)?;
        let partitions: Vec<u32> = if ask.partition == INVALID_PARTITION {
            self.readable_partitions()
        } else if self.is_readable(ask.partition) {
            vec![ask.partition]
        } else {
            return Err(non_readable());
        };
        let tids = self
            .store
            .tids(ask.first, ask.last.saturating_sub(ask.first), &partitions);
        self.net.answer(conn, msg_id, AnswerTIDs { tids });
        Ok(())
    }

    fn answer_transaction_information(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        tid: Tid,
    ) -> Result<(), Reject> {
        if !self.is_readable(self.locks.partition(tid.0)) {
            return Err(non_readable());
        }
        let Some(meta) = self.store.transaction(tid) else {
            return Err(Reject::answer(
                ErrorCode::TidNotFound,
                format!("{} does not exist", dump(tid.0)),
            ));
        };
        let answer = AnswerTransactionInformation {
            tid,
            user: meta.user,
            description: meta.description,
            extension: meta.extension,
            packed: meta.packed,
            oids: meta.oids,
        };
        self.net.answer(conn, msg_id, answer);
        Ok(())
    }

    /// Where each object an undo changes goes back to (cluster.md 6.5).
    fn answer_undo_serials(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        ask: &AskObjectUndoSerial,
    ) -> Result<(), Reject> {
        let mut result = Map::new();
        for &oid in &ask.oids {
            if !self.is_readable(self.locks.partition(oid.0)) {
                return Err(non_readable());
            }
            let pending = self
                .locks
                .pending_store(ask.ttid, oid)
                .map(|record| record.value_tid.unwrap_or(ask.ttid));
            let history = self.store.undo_history(oid, ask.undone_tid);
            let found =
                super::undo::find_undo_serial(history, ask.undone_tid, Some(ask.ltid), pending);
            match found {
                None => {}
                Some((None, _, _)) => {
                    return Err(Reject::answer(ErrorCode::OidNotFound, dump(oid.0)))
                }
                Some((Some(current), undone, is_current)) => result
                    .0
                    .push((oid, super::undo::to_wire(current, undone, is_current))),
            }
        }
        self.net
            .answer(conn, msg_id, AnswerObjectUndoSerial { result });
        Ok(())
    }

    /// AbortTransaction (from the client or the master), and
    /// NotifyTransactionFinished: a transaction that is not locked goes.
    pub(super) fn abort_transaction(&mut self, ttid: Tid) {
        if self.locks.abort(self.store.write(), ttid) {
            self.log(Level::Debug, format!("aborted transaction {ttid}"));
        }
        self.run_postponed();
    }

    /// A client's transactions are abandoned: on connection loss those not
    /// voted (the master may still commit voted ones), when the master
    /// forgets the client all that are not locked.
    pub(super) fn abort_client(&mut self, client: Nid, even_if_voted: bool) {
        let aborted = self
            .locks
            .abort_for(self.store.write(), client, even_if_voted);
        if !aborted.is_empty() {
            self.log(
                Level::Info,
                format!("aborted {} transaction(s) of {client}", aborted.len()),
            );
        }
        self.run_postponed();
    }

    /// Runs a request now, or postpones it.
    pub(super) fn run_peer_request(&mut self, request: Postponed) {
        self.run(request);
    }

    /// Runs a request now, or postpones it (unless its connection has too
    /// much waiting already).
    fn run(&mut self, request: Postponed) {
        match self.execute(&request) {
            Outcome::Done => {}
            Outcome::WaitWrite(_) | Outcome::WaitRead if !self.waiting.has_room(&request) => {
                let (conn, msg_id) = (request.conn(), request.msg_id());
                let reject = Reject::protocol(format!(
                    "more than {QUEUED_REQUESTS_COUNT_MAX} requests or \
                     {QUEUED_REQUEST_BYTES_MAX} bytes waiting for locks"
                ));
                self.reject(conn, msg_id, reject);
            }
            Outcome::WaitWrite(key) => self.waiting.wait_write(key, request),
            Outcome::WaitRead => self.waiting.wait_read(request),
        }
        self.send_deadlock_notifications();
    }

    /// Retries postponed requests after locks were released (NEO/py's
    /// `executeQueuedEvents` on both queues): write requests in TTID order,
    /// then reads in arrival order, until a pass releases nothing more.
    pub(super) fn run_postponed(&mut self) {
        if self.running_postponed {
            return; // the running pass starts over
        }
        self.running_postponed = true;
        while std::mem::take(&mut self.locks.released) {
            for queue in [true, false] {
                let requests = if queue {
                    self.waiting.take_writes()
                } else {
                    self.waiting.take_reads()
                };
                for request in requests {
                    if !self.net.contains(request.conn()) {
                        continue; // the client is gone
                    }
                    match self.execute(&request) {
                        Outcome::Done => {}
                        Outcome::WaitWrite(key) => self.waiting.wait_write(key, request),
                        Outcome::WaitRead => self.waiting.wait_read(request),
                    }
                }
            }
        }
        self.running_postponed = false;
        self.send_deadlock_notifications();
        // A check may wait for locks to go.
        self.check_resume();
    }

    fn send_deadlock_notifications(&mut self) {
        for deadlock in std::mem::take(&mut self.locks.deadlocks) {
            self.log(
                Level::Info,
                format!(
                    "deadlock on {} with {}: asking {} to relock",
                    deadlock.oid, deadlock.ttid, deadlock.client
                ),
            );
            let conn = self
                .nodes
                .by_nid(deadlock.client)
                .and_then(|key| self.nodes.get(key))
                .and_then(|entry| entry.conn);
            if let Some(conn) = conn {
                self.net.send(
                    conn,
                    NotifyDeadlock {
                        ttid: deadlock.ttid,
                        oid: deadlock.oid,
                    },
                );
            }
        }
    }

    /// Executes a (possibly postponed) request.
    fn execute(&mut self, request: &Postponed) -> Outcome {
        match request {
            Postponed::Store(conn, msg_id, ask) => self.execute_store(*conn, *msg_id, ask),
            Postponed::Check(conn, msg_id, ask) => self.execute_check(*conn, *msg_id, ask),
            Postponed::Relock(conn, msg_id, ask) => self.execute_relock(*conn, *msg_id, ask),
            Postponed::Object(conn, msg_id, ask) => self.serve_object(*conn, *msg_id, ask),
            Postponed::History(conn, msg_id, ask) => self.serve_history(*conn, *msg_id, ask),
            Postponed::TidsFrom(conn, msg_id, ask) => self.serve_tids_from(*conn, *msg_id, ask),
            Postponed::OidsFrom(conn, msg_id, ask) => self.serve_oids_from(*conn, *msg_id, ask),
            Postponed::Fetch(conn, msg_id, ask) => {
                match self.serve_fetch_transactions(*conn, *msg_id, ask) {
                    Some(()) => Outcome::Done,
                    None => Outcome::WaitRead,
                }
            }
            Postponed::CheckTids(conn, msg_id, ask) => {
                match self.serve_check_tids(*conn, *msg_id, ask) {
                    Some(()) => Outcome::Done,
                    None => Outcome::WaitRead,
                }
            }
        }
    }

    fn execute_store(&mut self, conn: ConnId, msg_id: u32, ask: &AskStoreObject) -> Outcome {
        let data = object_data(ask);
        let result = self.locks.store_object(
            self.store.write(),
            &readable_in(&self.readable),
            ask.ttid,
            ask.serial,
            ask.oid,
            data.as_ref(),
            ask.data_serial,
        );
        let (oid, ttid) = (ask.oid, ask.ttid);
        let conflict = match result {
            Ok(true) => None,
            Ok(false) => Some(Tid::ZERO),
            Err(StoreError::Lock(LockError::Delay(key))) => return Outcome::WaitWrite(key),
            Err(StoreError::Lock(LockError::Conflict(serial))) => {
                let why = format!("conflict on {oid} by {ttid} with {serial}");
                self.log(Level::Debug, why);
                Some(serial)
            }
            Err(StoreError::Lock(LockError::NonReadable)) => {
                let why = format!("ignored store of {oid} by {ttid}: unassigned partition");
                self.log(Level::Info, why);
                Some(Tid::ZERO)
            }
            Err(StoreError::Lock(LockError::NotRegistered)) => {
                let why = format!("forgot store of {oid} by {ttid}: aborted");
                self.log(Level::Info, why);
                Some(Tid::ZERO)
            }
            Err(StoreError::UndoPack) => {
                let why = format!("Could not undo for oid {}", dump(oid.0));
                let error = Packet::error(ErrorCode::UndoPackError, why);
                self.net.answer(conn, msg_id, error);
                return Outcome::Done;
            }
        };
        self.net
            .answer(conn, msg_id, AnswerStoreObject { conflict });
        Outcome::Done
    }

    fn execute_check(&mut self, conn: ConnId, msg_id: u32, ask: &AskCheckCurrentSerial) -> Outcome {
        let result = self.locks.check_current_serial(
            &*self.store,
            &readable_in(&self.readable),
            ask.ttid,
            ask.oid,
            ask.serial,
        );
        let conflict = match result {
            Ok(true) => None,
            Ok(false) | Err(LockError::NonReadable) | Err(LockError::NotRegistered) => {
                Some(Tid::ZERO)
            }
            Err(LockError::Delay(key)) => return Outcome::WaitWrite(key),
            Err(LockError::Conflict(serial)) => Some(serial),
        };
        self.net
            .answer(conn, msg_id, AnswerCheckCurrentSerial { conflict });
        Outcome::Done
    }

    fn execute_relock(&mut self, conn: ConnId, msg_id: u32, ask: &AskRelockObject) -> Outcome {
        let readable = readable_in(&self.readable);
        let relocked = (self.locks).relock(self.store.write(), &readable, ask.ttid, ask.oid);
        let conflict = match relocked {
            Ok(conflict) => conflict,
            Err(LockError::Delay(key)) => return Outcome::WaitWrite(key),
            Err(_) => None,
        };
        self.net
            .answer(conn, msg_id, AnswerRelockObject { conflict });
        Outcome::Done
    }

    /// Whether a read of `oid` can be served now: it waits while a locked
    /// transaction is about to change the object, and is refused unless
    /// our cell of its partition is readable.
    fn object_readable(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        oid: neo_proto::Oid,
    ) -> Option<Outcome> {
        if self.locks.is_read_locked(oid) {
            return Some(Outcome::WaitRead);
        }
        self.partition_readable(conn, msg_id, self.locks.partition(oid.0))
    }

    /// `None` if our cell of `partition` is readable, else the refusal sent.
    fn partition_readable(&mut self, conn: ConnId, msg_id: u32, partition: u32) -> Option<Outcome> {
        if self.is_readable(partition) {
            return None;
        }
        self.net.answer(conn, msg_id, non_readable_packet());
        Some(Outcome::Done)
    }

    fn serve_object(&mut self, conn: ConnId, msg_id: u32, ask: &AskObject) -> Outcome {
        if let Some(outcome) = self.object_readable(conn, msg_id, ask.oid) {
            return outcome;
        }
        let answer: Packet = match self.store.object(ask.oid, ask.at, ask.before) {
            ObjectLookup::Found(revision) => {
                let (compression, checksum, data) = match revision.data {
                    Some(data) => (Some(data.compression), data.checksum, data.data),
                    None => (None, neo_proto::Checksum::ZERO, bytes::Bytes::new()),
                };
                AnswerObject {
                    oid: ask.oid,
                    serial: revision.serial,
                    next_serial: revision.next_serial,
                    compression,
                    checksum,
                    data,
                    data_serial: revision.data_serial,
                }
                .into()
            }
            ObjectLookup::NotFound => Packet::error(ErrorCode::OidNotFound, dump(ask.oid.0)),
            ObjectLookup::DoesNotExist => {
                Packet::error(ErrorCode::OidDoesNotExist, dump(ask.oid.0))
            }
        };
        self.net.answer(conn, msg_id, answer);
        Outcome::Done
    }

    fn serve_history(&mut self, conn: ConnId, msg_id: u32, ask: &AskObjectHistory) -> Outcome {
        if let Some(outcome) = self.object_readable(conn, msg_id, ask.oid) {
            return outcome;
        }
        let history =
            self.store
                .object_history(ask.oid, ask.first, ask.last.saturating_sub(ask.first));
        let answer: Packet = match history {
            Some(history) => AnswerObjectHistory {
                oid: ask.oid,
                history: history
                    .into_iter()
                    .map(|(serial, size)| HistoryEntry { serial, size })
                    .collect(),
            }
            .into(),
            None => Packet::error(ErrorCode::OidNotFound, dump(ask.oid.0)),
        };
        self.net.answer(conn, msg_id, answer);
        Outcome::Done
    }

    fn serve_tids_from(&mut self, conn: ConnId, msg_id: u32, ask: &AskTIDsFrom) -> Outcome {
        if self.locks.is_locked_tid(ask.max_tid) {
            return Outcome::WaitRead;
        }
        // An OUT_OF_DATE cell would list only part of the range.
        if let Some(outcome) = self.partition_readable(conn, msg_id, ask.partition) {
            return outcome;
        }
        let tids = self
            .store
            .tids_from(ask.min_tid, ask.max_tid, ask.length, ask.partition);
        self.net.answer(conn, msg_id, AnswerTIDsFrom { tids });
        Outcome::Done
    }

    fn serve_oids_from(&mut self, conn: ConnId, msg_id: u32, ask: &AskOIDsFrom) -> Outcome {
        if self.locks.is_locked_tid(ask.tid) {
            return Outcome::WaitRead;
        }
        if let Some(outcome) = self.partition_readable(conn, msg_id, ask.partition) {
            return outcome;
        }
        let (next_oid, oids) =
            self.store
                .oids_from(ask.partition, ask.length, ask.min_oid, ask.tid);
        self.net
            .answer(conn, msg_id, AnswerOIDsFrom { next_oid, oids });
        Outcome::Done
    }
}

/// Whether our cell of a partition is readable, as the lock table asks
/// (`readable` is indexed by partition).
fn readable_in(readable: &[bool]) -> impl Fn(u32) -> bool + '_ {
    |partition| readable.get(partition as usize).copied().unwrap_or(false)
}

fn non_readable_packet() -> Packet {
    Packet::error(ErrorCode::NonReadableCell, "")
}

/// The data of a store: `None` for a deletion or an undo back-pointer.
fn object_data(ask: &AskStoreObject) -> Option<ObjectData> {
    if ask.data.is_empty() && ask.checksum.is_zero() {
        None
    } else {
        Some(ObjectData {
            compression: ask.compression,
            checksum: ask.checksum,
            data: ask.data.clone(),
        })
    }
}
