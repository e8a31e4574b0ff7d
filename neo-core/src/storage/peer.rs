//! Other storages: identifying with them, serving their replication
//! (AskFetchTransactions, AskFetchObjects) and replica checks
//! (AskCheckTIDRange, AskCheckSerialRange), and routing what they send us
//! for our own replication and checks.

// Numbers from peers are handled here: no indexing that can panic, no
// arithmetic that can overflow (CI denies both).
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use neo_proto::{
    AddObject, AddTransaction, AnswerCheckSerialRange, AnswerCheckTIDRange, AnswerFetchObjects,
    AnswerFetchTransactions, AskCheckSerialRange, AskCheckTIDRange, AskFetchObjects,
    AskFetchTransactions, Checksum, ErrorCode, Map, Nid, NodeType, Oid, Packet, Tid,
    TransactionPack,
};

use super::store::{ObjectLookup, Store};
use super::{ConnRole, Request, Storage};
use crate::net::Reject;
use crate::node::{ConnId, Level};
use crate::node_table::NodeKey;

/// Most records a peer's AskFetchTransactions or AskFetchObjects gets in
/// one answer (ours and NEO/py's ask for 1,000); a larger `length` is
/// clamped, and the answer's next tid/oid says where to go on.
pub(super) const FETCH_RECORDS_COUNT_MAX: u32 = 10_000;

/// Most object bytes one AskFetchObjects answer carries (its AddObject
/// packets are all queued at once): past it, the answer stops and says
/// where to go on.
pub(super) const FETCH_ANSWER_BYTES_MAX: usize = neo_proto::PACKET_SIZE_MAX;

/// Most records a peer's AskCheckTIDRange or AskCheckSerialRange covers
/// (checkers ask for [`super::checker::CHECK_COUNT`]): bounds the work one
/// request makes us do in a turn.
pub(super) const CHECK_RECORDS_COUNT_MAX: u32 = 1 << 18;

/// What a check of a range of records computes (NEO/py's textual hashing:
/// SHA-1 of the decimal numbers joined with commas), so that mixed
/// clusters agree.
fn sha1_of_numbers(values: impl Iterator<Item = u64>) -> Checksum {
    let text: Vec<String> = values.map(|v| v.to_string()).collect();
    crate::data::checksum(text.join(",").as_bytes())
}

/// `(count, hash of tids, last tid)` of a partition's transactions in
/// `[min, max]`, at most `length`.
pub(super) fn check_tid_range<S: Store>(
    store: &S,
    partition: u32,
    length: u32,
    min: Tid,
    max: Tid,
) -> AnswerCheckTIDRange {
    let tids = store.tids_from(min, max, length, partition);
    match tids.last() {
        None => AnswerCheckTIDRange {
            count: 0,
            tid_hash: Checksum::ZERO,
            max_tid: Tid::ZERO,
        },
        Some(&last) => AnswerCheckTIDRange {
            count: tids.len() as u32,
            tid_hash: sha1_of_numbers(tids.iter().map(|t| t.0)),
            max_tid: last,
        },
    }
}

/// The same over object records ordered by (serial, oid) from
/// `(min_tid, min_oid)`.
pub(super) fn check_serial_range<S: Store>(
    store: &S,
    partition: u32,
    length: u32,
    min_tid: Tid,
    max_tid: Tid,
    min_oid: Oid,
) -> AnswerCheckSerialRange {
    let records = store.replication_objects(partition, min_tid, max_tid, min_oid, length);
    match records.last() {
        None => AnswerCheckSerialRange {
            count: 0,
            tid_hash: Checksum::ZERO,
            max_tid: Tid::ZERO,
            oid_hash: Checksum::ZERO,
            max_oid: Oid::ZERO,
        },
        Some(&(last_tid, last_oid)) => AnswerCheckSerialRange {
            count: records.len() as u32,
            tid_hash: sha1_of_numbers(records.iter().map(|(t, _)| t.0)),
            max_tid: last_tid,
            oid_hash: sha1_of_numbers(records.iter().map(|(_, o)| o.0)),
            max_oid: last_oid,
        },
    }
}

impl<S: Store> Storage<S> {
    /// Our connection to another storage came up: identify.
    pub(super) fn on_peer_connected(&mut self, conn: ConnId, key: NodeKey) {
        let (nid, id_timestamp) = (self.link.nid(), self.link.id_timestamp());
        let request = self.link.identity().request(nid, id_timestamp, Map::new());
        self.net
            .ask(conn, request, Request::PeerIdentification(key));
    }

    pub(super) fn on_peer_identified(&mut self, conn: ConnId, key: NodeKey, packet: Packet) {
        let Some(nid) = self.nodes.get(key).and_then(|e| e.nid()) else {
            return;
        };
        match packet {
            Packet::AcceptIdentification(accept) if accept.node_type == NodeType::Storage => {
                if let Some(role) = self.net.state_mut(conn) {
                    *role = ConnRole::Storage(key);
                }
                if let Some(entry) = self.nodes.get_mut(key) {
                    entry.identified = true;
                }
                self.replication_peer_ready(nid);
                self.checker_peer_ready(nid);
            }
            other => {
                let why = match &other {
                    Packet::Error(error) => {
                        format!("{} {}", error.code, String::from_utf8_lossy(&error.message))
                    }
                    other => other.name().to_string(),
                };
                self.log(Level::Info, format!("storage {nid} refused us: {why}"));
                self.close_conn(conn);
            }
        }
    }

    /// A packet on an identified connection with another storage.
    pub(super) fn on_peer_packet(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        match packet {
            // Sent with the message id of our request.
            Packet::AddTransaction(_) | Packet::AddObject(_) => {
                self.on_replication_packet(conn, msg_id, packet);
                Ok(())
            }
            Packet::AskFetchTransactions(mut ask) => {
                self.check_partition("AskFetchTransactions.partition", ask.partition)?;
                ask.length = ask.length.min(FETCH_RECORDS_COUNT_MAX);
                self.run_peer_request(super::serve_clients::Postponed::Fetch(conn, msg_id, ask));
                Ok(())
            }
            Packet::AskFetchObjects(mut ask) => {
                self.check_partition("AskFetchObjects.partition", ask.partition)?;
                ask.length = ask.length.min(FETCH_RECORDS_COUNT_MAX);
                self.serve_fetch_objects(conn, msg_id, ask)
            }
            Packet::AskCheckTIDRange(mut ask) => {
                self.check_partition("AskCheckTIDRange.partition", ask.partition)?;
                ask.length = ask.length.min(CHECK_RECORDS_COUNT_MAX);
                self.run_peer_request(super::serve_clients::Postponed::CheckTids(
                    conn, msg_id, ask,
                ));
                Ok(())
            }
            Packet::AskCheckSerialRange(mut ask) => {
                self.check_partition("AskCheckSerialRange.partition", ask.partition)?;
                ask.length = ask.length.min(CHECK_RECORDS_COUNT_MAX);
                self.serve_check_serials(conn, msg_id, ask)
            }
            Packet::CloseClient(_) | Packet::FlushLog(_) => Ok(()),
            other => Err(Reject::unexpected(&other, "storage operation")),
        }
    }

    /// Answers a replication (`check`: checking) request with an error
    /// unless our cell of `partition` may serve it: readable to feed a
    /// replica, anything but OUT_OF_DATE to be checked. Whether it refused.
    fn refuse_unless_served(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        partition: u32,
        check: bool,
    ) -> bool {
        let cell = self
            .pt
            .as_ref()
            .zip(self.link.nid())
            .and_then(|(pt, nid)| pt.cell(partition, nid));
        let served = match cell {
            None => false,
            Some(cell) if check => cell.state != neo_proto::CellState::OutOfDate,
            Some(cell) => cell.is_readable(),
        };
        if !served {
            let code = if check {
                ErrorCode::CheckingError
            } else {
                ErrorCode::ReplicationError
            };
            let message = format!("partition {partition} not readable");
            self.net.answer(conn, msg_id, Packet::error(code, message));
        }
        !served
    }

    /// AskFetchTransactions: sends the transactions the requester lacks in
    /// the range, then what it has and we do not. `None` if it must wait
    /// (a transaction in the range is locked here but not unlocked yet).
    pub(super) fn serve_fetch_transactions(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        ask: &AskFetchTransactions,
    ) -> Option<()> {
        if self.refuse_unless_served(conn, msg_id, ask.partition, false) {
            return Some(());
        }
        if self.locks.is_locked_tid(ask.max_tid) {
            return None;
        }
        let completed_pack = ask
            .ask_pack_info
            .then(|| {
                self.store
                    .packed()
                    .into_iter()
                    .find(|(p, _)| *p == ask.partition)
                    .map(|(_, id)| id)
            })
            .flatten();
        let mut tids = self.store.tids_from(
            ask.min_tid,
            ask.max_tid,
            ask.length.saturating_add(1),
            ask.partition,
        );
        let next_tid = (tids.len() > ask.length as usize).then(|| tids.pop().unwrap());
        let mut peer: BTreeSet<Tid> = ask.known_tids.iter().copied().collect();
        for tid in tids {
            if peer.remove(&tid) {
                continue;
            }
            let Some(meta) = self.store.transaction(tid) else {
                continue;
            };
            let pack = self.store.pack_order(tid).map(|order| TransactionPack {
                approved: order.approved,
                partial: order.partial,
                oids: order.oids,
                pack_tid: order.pack_tid,
            });
            self.net.send_with_id(
                conn,
                msg_id,
                AddTransaction {
                    tid,
                    user: meta.user,
                    description: meta.description,
                    extension: meta.extension,
                    packed: meta.packed,
                    ttid: meta.ttid,
                    oids: meta.oids,
                    pack,
                },
            );
        }
        self.net.answer(
            conn,
            msg_id,
            AnswerFetchTransactions {
                next_tid,
                to_delete: peer.into_iter().collect(),
                completed_pack,
            },
        );
        Some(())
    }

    /// AskFetchObjects: the same for object records.
    fn serve_fetch_objects(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        ask: AskFetchObjects,
    ) -> Result<(), Reject> {
        if self.refuse_unless_served(conn, msg_id, ask.partition, false) {
            return Ok(());
        }
        if self.locks.is_locked_tid(ask.max_tid) {
            return Err(Reject::protocol(
                "transactions must be fetched before objects",
            ));
        }
        let mut records = self.store.replication_objects(
            ask.partition,
            ask.min_tid,
            ask.max_tid,
            ask.min_oid,
            ask.length.saturating_add(1),
        );
        let mut next = if records.len() > ask.length as usize {
            records.pop()
        } else {
            None
        };
        let mut known: BTreeMap<Tid, BTreeSet<Oid>> = ask
            .known
            .0
            .into_iter()
            .map(|(serial, oids)| (serial, oids.into_iter().collect()))
            .collect();
        let mut sent_bytes = 0;
        for (index, &(serial, oid)) in records.iter().enumerate() {
            if sent_bytes >= FETCH_ANSWER_BYTES_MAX {
                // Enough for one answer: the requester goes on from here.
                next = Some((serial, oid));
                records.truncate(index);
                break;
            }
            if known.get_mut(&serial).is_some_and(|oids| oids.remove(&oid)) {
                continue;
            }
            let ObjectLookup::Found(revision) = self.store.object(oid, Some(serial), None) else {
                continue;
            };
            let (compression, checksum, data) = match revision.data {
                Some(data) => (data.compression, data.checksum, data.data),
                None => (0, Checksum::ZERO, Bytes::new()),
            };
            sent_bytes = sent_bytes.saturating_add(data.len());
            self.net.send_with_id(
                conn,
                msg_id,
                AddObject {
                    oid,
                    serial,
                    compression,
                    checksum,
                    data,
                    data_serial: revision.data_serial,
                },
            );
        }
        // What the requester has past where this answer stops is for a
        // later answer to judge.
        if let Some((next_tid, next_oid)) = next {
            known.retain(|&serial, oids| {
                oids.retain(|&oid| (serial, oid) < (next_tid, next_oid));
                serial <= next_tid
            });
        }
        known.retain(|_, oids| !oids.is_empty());
        let (next_tid, next_oid) = next.unzip();
        let to_delete = Map(known
            .into_iter()
            .map(|(serial, oids)| (serial, oids.into_iter().collect()))
            .collect());
        self.net.answer(
            conn,
            msg_id,
            AnswerFetchObjects {
                next_tid,
                next_oid,
                to_delete,
            },
        );
        Ok(())
    }

    /// AskCheckTIDRange; `None` while a transaction in the range is locked.
    pub(super) fn serve_check_tids(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        ask: &AskCheckTIDRange,
    ) -> Option<()> {
        if self.refuse_unless_served(conn, msg_id, ask.partition, true) {
            return Some(());
        }
        if self.locks.is_locked_tid(ask.max_tid) {
            return None;
        }
        let answer = check_tid_range(
            &*self.store,
            ask.partition,
            ask.length,
            ask.min_tid,
            ask.max_tid,
        );
        self.net.answer(conn, msg_id, answer);
        Some(())
    }

    fn serve_check_serials(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        ask: AskCheckSerialRange,
    ) -> Result<(), Reject> {
        if self.refuse_unless_served(conn, msg_id, ask.partition, true) {
            return Ok(());
        }
        if self.locks.is_locked_tid(ask.max_tid) {
            return Err(Reject::protocol(
                "transactions must be checked before objects",
            ));
        }
        let answer = check_serial_range(
            &*self.store,
            ask.partition,
            ask.length,
            ask.min_tid,
            ask.max_tid,
            ask.min_oid,
        );
        self.net.answer(conn, msg_id, answer);
        Ok(())
    }

    /// A connection to another storage is gone: the replication or check
    /// using it gives it up.
    pub(super) fn peer_lost(&mut self, nid: Option<Nid>) {
        let Some(nid) = nid else {
            return;
        };
        if self
            .replicator
            .current()
            .is_some_and(|(_, source)| source == nid)
        {
            self.abort_replication("connection to the source lost");
        }
        self.checker_peer_lost(nid);
    }
}
