//! Replication (cluster.md 7): catching own OUT_OF_DATE cells up from a
//! replica, one partition at a time, in chunks of [`FETCH_COUNT`] records.
//!
//! The master never orders internal replication: a storage replicates
//! every OUT_OF_DATE cell it holds when it starts operating and whenever the
//! table gives it a new one. It asks the master which transactions are
//! being committed (AskUnfinishedTransactions): the answer's last committed
//! TID is what it replicates up to, and transactions that begin after it
//! reach this node in full from their clients (an OUT_OF_DATE cell is
//! writable, lockless). Those still pending are waited for, then
//! replicated too. Each partition goes transactions first
//! (AskFetchTransactions, AddTransaction...), then object records
//! (AskFetchObjects, AddObject...): with every chunk the node lists what it
//! already has, the source sends what is missing and lists what the node
//! has that it does not. How far a cell is replicated is stored after
//! every object chunk, so a crash resumes rather than restarts.

use std::collections::{BTreeMap, BTreeSet};

use neo_proto::{
    AskFetchObjects, AskFetchTransactions, AskUnfinishedTransactions, CellState, Map, Nid,
    NodeState, ObjectData, Oid, Packet, Tid,
};

use super::store::{Store, TransactionMeta};
use super::{ConnRole, Request, Storage};
use crate::node::{ConnId, Level};

/// Records per replication chunk.
pub(super) const FETCH_COUNT: u32 = 1000;

/// Where a partition stands.
#[derive(Debug, Clone)]
struct Progress {
    /// First TID whose transaction metadata / object records are not
    /// replicated yet (`None`: a readable cell, nothing to do).
    next_trans: Option<Tid>,
    next_obj: Option<Tid>,
    /// The largest transaction being committed when we asked, which we
    /// must wait for (`Some(Tid::INVALID)`: not asked yet).
    max_ttid: Option<Tid>,
}

/// The exchange in progress.
#[derive(Debug, Clone)]
struct Current {
    partition: u32,
    source: Nid,
    /// Replicating up to this TID (known once the exchange started).
    target: Option<Tid>,
    /// The request whose answer (and AddTransaction/AddObject notifications,
    /// which carry its message id) we wait for.
    request: Option<(ConnId, u32)>,
    /// What that request asked: what the source sends must fall in it.
    window: Option<Window>,
}

/// The records a fetch asked for, to check the source's answer against:
/// a lying source may not write outside the partition and range being
/// replicated, delete what we did not offer, or send us back where we were.
#[derive(Debug, Clone)]
enum Window {
    Transactions {
        min_tid: Tid,
        max_tid: Tid,
        known: BTreeSet<Tid>,
    },
    Objects {
        min: (Tid, Oid),
        max_tid: Tid,
        known: BTreeSet<(Tid, Oid)>,
    },
}

impl Window {
    fn of(ask: &Packet) -> Option<Window> {
        match ask {
            Packet::AskFetchTransactions(ask) => Some(Window::Transactions {
                min_tid: ask.min_tid,
                max_tid: ask.max_tid,
                known: ask.known_tids.iter().copied().collect(),
            }),
            Packet::AskFetchObjects(ask) => Some(Window::Objects {
                min: (ask.min_tid, ask.min_oid),
                max_tid: ask.max_tid,
                known: ask
                    .known
                    .0
                    .iter()
                    .flat_map(|(serial, oids)| oids.iter().map(|oid| (*serial, *oid)))
                    .collect(),
            }),
            _ => None,
        }
    }

    /// Why `packet` from the source does not fit this request, if it
    /// does not; `partition_of` gives an OID's or TID's partition.
    fn misfit(
        &self,
        packet: &Packet,
        partition: u32,
        partition_of: impl Fn(u64) -> u32,
    ) -> Option<String> {
        let in_partition = |value: u64| partition_of(value) == partition;
        match (self, packet) {
            (
                Window::Transactions {
                    min_tid, max_tid, ..
                },
                Packet::AddTransaction(add),
            ) => {
                let fits = (*min_tid..=*max_tid).contains(&add.tid) && in_partition(add.tid.0);
                (!fits).then(|| format!("AddTransaction.tid {} outside the request", add.tid))
            }
            (
                Window::Transactions {
                    min_tid,
                    max_tid,
                    known,
                },
                Packet::AnswerFetchTransactions(a),
            ) => {
                if let Some(tid) = a.to_delete.iter().find(|t| !known.contains(t)) {
                    return Some(format!(
                        "AnswerFetchTransactions.to_delete {tid} was not offered"
                    ));
                }
                let next_fits = a.next_tid.is_none_or(|t| *min_tid < t && t <= *max_tid);
                (!next_fits)
                    .then(|| "AnswerFetchTransactions.next_tid does not advance".to_string())
            }
            (Window::Objects { min, max_tid, .. }, Packet::AddObject(add)) => {
                let fits = (add.serial, add.oid) >= *min
                    && add.serial <= *max_tid
                    && in_partition(add.oid.0);
                (!fits).then(|| format!("AddObject {} {} outside the request", add.oid, add.serial))
            }
            (
                Window::Objects {
                    min,
                    max_tid,
                    known,
                },
                Packet::AnswerFetchObjects(a),
            ) => {
                let offered =
                    a.to_delete.0.iter().all(|(serial, oids)| {
                        oids.iter().all(|oid| known.contains(&(*serial, *oid)))
                    });
                if !offered {
                    return Some("AnswerFetchObjects.to_delete lists what was not offered".into());
                }
                let next_fits = match (a.next_tid, a.next_oid) {
                    (Some(tid), Some(oid)) => (tid, oid) > *min && tid <= *max_tid,
                    _ => true,
                };
                (!next_fits).then(|| "AnswerFetchObjects.next does not advance".to_string())
            }
            (_, Packet::Error(_)) => None,
            (_, other) => Some(format!("unexpected {} from the source", other.name())),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Replicator {
    /// Every assigned partition.
    partitions: BTreeMap<u32, Progress>,
    /// Partitions to replicate, and up to which TID.
    replicate: BTreeMap<u32, Tid>,
    /// Transactions being committed we wait for.
    ttids: BTreeSet<Tid>,
    current: Option<Current>,
}

impl Replicator {
    /// The partition being replicated and its source, if any.
    pub(super) fn current(&self) -> Option<(u32, Nid)> {
        self.current.as_ref().map(|c| (c.partition, c.source))
    }
}

impl<S: Store> Storage<S> {
    /// Operation starts: replicate every own OUT_OF_DATE cell.
    pub(super) fn replicator_start(&mut self) {
        self.replicator = Replicator::default();
        let (Some(pt), Some(own)) = (&self.pt, self.link.nid()) else {
            return;
        };
        let mut outdated = Vec::new();
        for partition in pt.assigned_offsets(own) {
            let progress = match self.store.replicated_up_to(partition) {
                Some(tid) => {
                    outdated.push(partition);
                    let next = if tid == Tid::ZERO {
                        tid
                    } else {
                        Tid(tid.0.saturating_add(1))
                    };
                    Progress {
                        next_trans: Some(next),
                        next_obj: Some(next),
                        max_ttid: Some(Tid::INVALID),
                    }
                }
                None => Progress {
                    next_trans: None,
                    next_obj: None,
                    max_ttid: None,
                },
            };
            self.replicator.partitions.insert(partition, progress);
        }
        self.start_replicating(&outdated);
    }

    /// Stores to these partitions become lockless, and the master is asked
    /// what is being committed.
    fn start_replicating(&mut self, partitions: &[u32]) {
        if partitions.is_empty() {
            return;
        }
        self.locks.replicating(partitions);
        if let Some(conn) = self.link.conn() {
            self.net.ask(
                conn,
                AskUnfinishedTransactions {
                    partitions: partitions.to_vec(),
                },
                Request::UnfinishedTransactions {
                    partitions: partitions.to_vec(),
                },
            );
        }
    }

    /// Own cells changed in the table (while operating).
    pub(super) fn replicator_cells_changed(&mut self, changes: &[neo_proto::CellChange]) {
        let Some(own) = self.link.nid() else {
            return;
        };
        let mut added = Vec::new();
        let mut discarded = Vec::new();
        let mut readable = Vec::new();
        let mut abort = false;
        for change in changes.iter().filter(|c| c.nid == own) {
            match change.state {
                CellState::Discarded | CellState::Corrupted => {
                    if self.replicator.partitions.remove(&change.offset).is_none() {
                        continue;
                    }
                    self.replicator.replicate.remove(&change.offset);
                    abort |= self
                        .replicator
                        .current
                        .as_ref()
                        .is_some_and(|c| c.partition == change.offset);
                    discarded.push(change.offset);
                }
                CellState::OutOfDate => {
                    if self.replicator.partitions.contains_key(&change.offset) {
                        continue; // outdated while we replicate it: same
                    }
                    self.replicator.partitions.insert(
                        change.offset,
                        Progress {
                            next_trans: Some(Tid::ZERO),
                            next_obj: Some(Tid::ZERO),
                            max_ttid: Some(Tid::INVALID),
                        },
                    );
                    added.push(change.offset);
                }
                CellState::UpToDate | CellState::Feeding => readable.push(change.offset),
            }
        }
        self.start_replicating(&added);
        if !discarded.is_empty() {
            self.locks.discarded(self.store.write(), &discarded);
        }
        if !readable.is_empty() {
            self.locks.readable(&readable);
        }
        if abort {
            self.abort_replication("partition discarded");
        }
        self.send_replication_announcements();
        self.check_replication_source();
        self.next_partition();
    }

    /// Gives up the current source once it is no longer a readable cell of
    /// a RUNNING node (outdated, dropped, down): another one is picked.
    /// NEO/py only gives up when the connection closes, so a source that
    /// hangs, or whose connection is still being set up when it is taken
    /// down, stalls the replication forever.
    pub(super) fn check_replication_source(&mut self) {
        let Some(current) = &self.replicator.current else {
            return;
        };
        let (partition, source) = (current.partition, current.source);
        let readable = self
            .pt
            .as_ref()
            .and_then(|pt| pt.cell(partition, source))
            .is_some_and(|c| c.is_readable());
        let running = self.nodes.state_of(source) == Some(NodeState::Running);
        if !(readable && running) {
            self.abort_replication(&format!("the source {source} is no longer readable"));
        }
    }

    /// The master's answer to AskUnfinishedTransactions.
    pub(super) fn on_unfinished_transactions(
        &mut self,
        max_tid: Tid,
        ttids: Vec<Tid>,
        partitions: &[u32],
    ) {
        let max_ttid = ttids.iter().max().copied();
        self.replicator.ttids.extend(ttids);
        for partition in partitions {
            if let Some(progress) = self.replicator.partitions.get_mut(partition) {
                progress.max_ttid = max_ttid;
                self.replicator.replicate.insert(*partition, max_tid);
            }
        }
        self.next_partition();
    }

    /// A transaction we waited for ended: committed as `tid` (replicate up
    /// to it), or aborted (`None`).
    pub(super) fn replication_transaction_finished(&mut self, ttid: Tid, tid: Option<Tid>) {
        if !self.replicator.ttids.remove(&ttid) {
            return;
        }
        let min_ttid = self
            .replicator
            .ttids
            .first()
            .copied()
            .unwrap_or(Tid::INVALID);
        let current = self.replicator.current.as_ref().map(|c| c.partition);
        let mut caught_up = Vec::new();
        for (&partition, progress) in self.replicator.partitions.iter_mut() {
            let Some(max_ttid) = progress.max_ttid else {
                continue;
            };
            if let Some(tid) = tid {
                self.replicator.replicate.insert(partition, tid);
            }
            if max_ttid < min_ttid {
                // Nothing left to wait for in this partition.
                if current != Some(partition) && !self.replicator.replicate.contains_key(&partition)
                {
                    // Every transaction waited for was aborted: what was
                    // replicated is all there is.
                    caught_up.push((partition, max_ttid));
                }
                progress.max_ttid = None;
            }
        }
        for (partition, tid) in caught_up {
            self.locks.replicated(self.store.write(), partition, tid);
        }
        self.send_replication_announcements();
        self.next_partition();
    }

    /// Starts replicating the partition furthest behind (preferring those
    /// without pending transactions), from a random readable replica.
    pub(super) fn next_partition(&mut self) {
        if self.replicator.current.is_some() || self.replicator.replicate.is_empty() {
            return;
        }
        if self.phase != super::Lifecycle::Operating || self.link.conn().is_none() {
            return;
        }
        let Some(pt) = &self.pt else {
            return;
        };
        let own = self.link.nid();
        let nodes = &self.nodes;
        // Partitions with a source available, furthest behind first.
        let mut candidates: Vec<(Option<Tid>, bool, u32, Vec<Nid>)> = self
            .replicator
            .replicate
            .keys()
            .map(|&partition| {
                let progress = &self.replicator.partitions[&partition];
                let sources: Vec<Nid> = pt
                    .row(partition)
                    .iter()
                    .filter(|c| c.is_readable() && Some(c.nid) != own)
                    .filter(|c| nodes.state_of(c.nid) == Some(NodeState::Running))
                    .map(|c| c.nid)
                    .collect();
                (
                    progress.next_obj,
                    progress.max_ttid.is_some(),
                    partition,
                    sources,
                )
            })
            .filter(|(_, _, _, sources)| !sources.is_empty())
            .collect();
        candidates.sort_by_key(|(next, waiting, partition, _)| (*next, *waiting, *partition));
        let Some((_, _, partition, sources)) = candidates.into_iter().next() else {
            return; // no source now: retried when the cluster changes
        };
        let source = *self.rng.choose(&sources).unwrap();
        self.replicator.current = Some(Current {
            partition,
            source,
            target: None,
            request: None,
            window: None,
        });
        if self.peer_connection(source).is_some() {
            self.fetch_transactions(None);
        }
    }

    /// An identified connection to `nid` is available.
    pub(super) fn replication_peer_ready(&mut self, nid: Nid) {
        let waiting = self
            .replicator
            .current
            .as_ref()
            .is_some_and(|c| c.source == nid && c.request.is_none());
        if waiting {
            self.fetch_transactions(None);
        }
    }

    /// Asks for a chunk of transactions: the first from where the
    /// partition stands, or the next from `min_tid`.
    fn fetch_transactions(&mut self, min_tid: Option<Tid>) {
        let Some(current) = self.replicator.current.clone() else {
            return;
        };
        let partition = current.partition;
        let next_trans = self.replicator.partitions[&partition].next_trans;
        let (min_tid, target, ask_pack_info) = match min_tid {
            Some(min_tid) => {
                self.replicator
                    .partitions
                    .get_mut(&partition)
                    .unwrap()
                    .next_trans = Some(min_tid);
                (min_tid, current.target.unwrap(), false)
            }
            None => {
                let target = self.replicator.replicate.remove(&partition).unwrap();
                self.log(
                    Level::Info,
                    format!(
                        "replicating partition {partition} up to {target} from {}",
                        current.source
                    ),
                );
                (next_trans.unwrap_or(Tid::ZERO), target, true)
            }
        };
        let known_tids = self
            .store
            .tids_from(min_tid, target, FETCH_COUNT, partition);
        let ask = AskFetchTransactions {
            partition,
            length: FETCH_COUNT,
            min_tid,
            max_tid: target,
            known_tids,
            ask_pack_info,
        };
        self.send_fetch(ask.into(), target);
    }

    /// Asks for a chunk of object records.
    fn fetch_objects(&mut self, min: Option<(Tid, Oid)>) {
        let Some(current) = self.replicator.current.clone() else {
            return;
        };
        let partition = current.partition;
        let target = current.target.unwrap();
        let progress = self.replicator.partitions.get_mut(&partition).unwrap();
        let (min_tid, min_oid) = match min {
            Some((tid, oid)) => {
                progress.next_obj = Some(tid);
                if tid > Tid::ZERO {
                    self.store
                        .write()
                        .set_replicated_up_to(partition, Tid(tid.0.saturating_sub(1)));
                }
                (tid, oid)
            }
            None => {
                progress.next_trans = Some(Tid(target.0.saturating_add(1)));
                (progress.next_obj.unwrap_or(Tid::ZERO), Oid::ZERO)
            }
        };
        let mut known: BTreeMap<Tid, Vec<Oid>> = BTreeMap::new();
        for (serial, oid) in
            self.store
                .replication_objects(partition, min_tid, target, min_oid, FETCH_COUNT)
        {
            known.entry(serial).or_default().push(oid);
        }
        let ask = AskFetchObjects {
            partition,
            length: FETCH_COUNT,
            min_tid,
            max_tid: target,
            min_oid,
            known: Map(known.into_iter().collect()),
        };
        self.send_fetch(ask.into(), target);
    }

    fn send_fetch(&mut self, packet: Packet, target: Tid) {
        let Some(current) = self.replicator.current.as_mut() else {
            return;
        };
        current.target = Some(target);
        let source = current.source;
        let Some(conn) = self.peer_connection(source) else {
            return self.abort_replication("source unreachable");
        };
        let window = Window::of(&packet);
        match self.net.ask(conn, packet, Request::Replication) {
            Some(msg_id) => {
                let current = self.replicator.current.as_mut().unwrap();
                current.request = Some((conn, msg_id));
                current.window = window;
            }
            None => self.abort_replication("source unreachable"),
        }
    }

    /// Whether a packet on `conn` with `msg_id` belongs to the exchange in
    /// progress (late packets of an aborted one are ignored).
    fn is_replication_packet(&self, conn: ConnId, msg_id: u32) -> bool {
        self.replicator
            .current
            .as_ref()
            .and_then(|c| c.request)
            .is_some_and(|r| r == (conn, msg_id))
    }

    /// A packet of the source for our replication: AddTransaction,
    /// AddObject (carrying the request's message id), the answers, or
    /// REPLICATION_ERROR.
    pub(super) fn on_replication_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        if !self.is_replication_packet(conn, msg_id) {
            return;
        }
        let current = self.replicator.current.as_ref().unwrap();
        let partition = current.partition;
        let partition_of = |value| self.locks.partition(value);
        if let Some(why) = current
            .window
            .as_ref()
            .and_then(|w| w.misfit(&packet, partition, partition_of))
        {
            let source = current.source;
            self.log(
                Level::Error,
                format!("replication source {source} on {conn}: {why}"),
            );
            self.close_conn(conn);
            return self.abort_replication(&why);
        }
        match packet {
            Packet::AddTransaction(add) => self.add_replicated_transaction(add),
            Packet::AddObject(add) => self.add_replicated_object(add),
            Packet::AnswerFetchTransactions(answer) => {
                for tid in answer.to_delete {
                    self.store.write().delete_transaction(tid);
                }
                if let Some(pack_id) = answer.completed_pack {
                    self.store.write().lower_packed(partition, pack_id);
                }
                match answer.next_tid {
                    Some(next) => self.fetch_transactions(Some(next)),
                    None => self.fetch_objects(None),
                }
            }
            Packet::AnswerFetchObjects(answer) => {
                for (serial, oids) in answer.to_delete.0 {
                    for oid in oids {
                        self.store.write().delete_object(oid, serial);
                    }
                }
                match (answer.next_tid, answer.next_oid) {
                    (Some(tid), Some(oid)) => self.fetch_objects(Some((tid, oid))),
                    _ => self.finish_partition(),
                }
            }
            Packet::Error(error) => {
                let why = format!(
                    "{} from the source: {}",
                    error.code,
                    String::from_utf8_lossy(&error.message)
                );
                self.abort_replication(&why);
            }
            other => {
                let why = format!("unexpected {} from the source", other.name());
                self.abort_replication(&why);
            }
        }
    }

    /// A transaction's metadata (and pack order) from the source.
    fn add_replicated_transaction(&mut self, add: neo_proto::AddTransaction) {
        let meta = TransactionMeta {
            ttid: add.ttid,
            user: add.user,
            description: add.description,
            extension: add.extension,
            packed: add.packed,
            oids: add.oids,
        };
        let pack = add.pack.map(|p| neo_proto::PackOrder {
            pack_id: add.tid,
            approved: p.approved,
            partial: p.partial,
            oids: p.oids,
            pack_tid: p.pack_tid,
        });
        self.store
            .write()
            .add_transaction(add.tid, &meta, pack.as_ref());
    }

    /// An object revision from the source; data that does not match its
    /// checksum aborts the replication.
    fn add_replicated_object(&mut self, add: neo_proto::AddObject) {
        let data = (!(add.data.is_empty() && add.checksum.is_zero())).then(|| ObjectData {
            compression: add.compression,
            checksum: add.checksum,
            data: add.data,
        });
        if let Some(data) = &data {
            if crate::data::verify(data).is_err() {
                return self.abort_replication("corrupted data from the source");
            }
        }
        self.store
            .write()
            .add_object(add.oid, add.serial, data.as_ref(), add.data_serial);
    }

    /// The current partition is replicated up to its target.
    fn finish_partition(&mut self) {
        let current = self.replicator.current.take().unwrap();
        let partition = current.partition;
        let target = current.target.unwrap();
        let progress = self.replicator.partitions.get_mut(&partition).unwrap();
        progress.next_obj = Some(Tid(target.0.saturating_add(1)));
        let waiting = progress.max_ttid.is_some();
        self.store.write().set_replicated_up_to(partition, target);
        self.log(
            Level::Info,
            format!(
                "partition {partition} replicated up to {target} from {}",
                current.source
            ),
        );
        if waiting || self.replicator.replicate.contains_key(&partition) {
            self.log(
                Level::Debug,
                format!("partition {partition}: transactions still being committed"),
            );
        } else {
            self.locks.replicated(self.store.write(), partition, target);
            self.send_replication_announcements();
        }
        self.next_partition();
    }

    /// Gives up the exchange in progress; the partition is tried again
    /// (after another one if any, so that another source is likely).
    pub(super) fn abort_replication(&mut self, why: &str) {
        let Some(current) = self.replicator.current.take() else {
            return;
        };
        let partition = current.partition;
        self.log(
            Level::Warn,
            format!("replication of partition {partition} aborted: {why}"),
        );
        if self.replicator.partitions.contains_key(&partition) {
            let target = self
                .replicator
                .replicate
                .remove(&partition)
                .or(current.target);
            let others = !self.replicator.replicate.is_empty();
            if others {
                self.next_partition();
            }
            if let Some(target) = target {
                self.replicator.replicate.insert(partition, target);
            }
            if !others {
                self.next_partition();
            }
        } else {
            self.next_partition();
        }
    }

    /// Sends the NotifyReplicationDone the transaction manager decided,
    /// once what they announce is durable.
    pub(super) fn send_replication_announcements(&mut self) {
        for (partition, tid) in std::mem::take(&mut self.locks.announce) {
            self.log(
                Level::Info,
                format!("partition {partition} is up to date (replicated up to {tid})"),
            );
            self.send_master(neo_proto::NotifyReplicationDone { partition, tid });
        }
    }

    /// An identified connection to another storage, opening one if needed
    /// (`None` while it is being set up: the peer's readiness is reported).
    pub(super) fn peer_connection(&mut self, nid: Nid) -> Option<ConnId> {
        let key = self.nodes.by_nid(nid)?;
        let entry = self.nodes.get(key)?;
        if let Some(conn) = entry.conn {
            return entry.identified.then_some(conn);
        }
        let address = entry.address()?.clone();
        let conn = self.net.connect(address, ConnRole::ToStorage(key));
        self.nodes[key].conn = Some(conn);
        None
    }
}
