//! The client node: what a ZODB application embeds.
//!
//! It finds the primary master, identifies as CLIENT (accepted only while
//! the cluster serves), learns the node list and the partition table and
//! keeps them current, and tracks the last committed TID through
//! invalidations — the snapshot its reads are made against. It reads from
//! a readable cell of the object's partition, failing over to other
//! replicas, caches what it reads (MVCC, [`cache`]), and commits through
//! store → vote → finish with conflict detection ([`commit`]).
//!
//! The application drives it with methods that start operations and
//! return an [`OpId`]; each ends with [`ClientEvent::Done`]. Operations
//! that need the cluster wait until the client is ready. Conflicts found
//! while storing are reported ([`ClientEvent::Conflict`]) for the
//! application to resolve before the vote completes.
//!
//! Internally an operation may start child operations (a read with
//! failover under a load, a load under the iterator...): a child's result
//! goes to its parent instead of the application.
//!
//! Peers are not trusted: an answer or notification that does not fit
//! what was asked or what we know ([`check`]) is a protocol error of its
//! sender, logged; its connection goes as on a loss, and the client reads
//! from another replica or reconnects to a master.

mod api;
mod cache;
mod check;
mod commit;
mod read;
mod txn;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use neo_proto::{
    AcceptIdentification, Address, AskLastTransaction, ClusterState, ErrorCode, Map, Nid,
    NodeState, NodeType, Oid, Packet, Tid, Timestamp, Value,
};

pub use api::{
    Answer, ClientError, ClientEvent, Conflict, HistoryEntry, IteratorRecord, IteratorTransaction,
    LoadMode, Loaded, OpId, TransactionInfo, TxnId, UndoConflict, VoteError,
};
pub use read::LOADS_IN_FLIGHT_COUNT_MAX;

use crate::identity::Identity;
use crate::net::{Dispatch, Net, Reject};
use crate::node::{ConnId, Input, Level, Node, Output};
use crate::node_table::NodeTable;
use crate::primary_link::{FromPrimary, Identified, PrimaryLink};
use crate::pt::PartitionTable;
use crate::rng::Rng;
use crate::time::Time;

use cache::Cache;
use check::Violation;
use txn::TxnContext;

/// How long a storage that failed to connect goes last when choosing a
/// replica to read from.
pub const FAILURE_AGE: Duration = Duration::from_secs(600);

/// Default cache size (NEO/py's `cache-size`): also what a transaction
/// keeps of its own writes for the cache after commit.
pub const DEFAULT_CACHE_SIZE: usize = 20 << 20;

/// What a client is started with (NEO/py's `<NEOStorage>` options).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The cluster name every node of the cluster is configured with.
    pub cluster: Bytes,
    /// The masters to look for the primary among.
    pub masters: Vec<Address>,
    /// A read-only session: the master refuses writes.
    pub read_only: bool,
    /// Seed of the client's random choices (which replica to read).
    pub seed: u64,
    /// Bytes of object data cached.
    pub cache_size: usize,
    /// Compress data with zlib when that makes it smaller.
    pub compress: bool,
}

impl ClientConfig {
    /// A read-write client of `cluster` with NEO/py's defaults (a 20 MiB
    /// cache, compression on).
    pub fn new(cluster: impl Into<Bytes>, masters: Vec<Address>) -> ClientConfig {
        ClientConfig {
            cluster: cluster.into(),
            masters,
            read_only: false,
            seed: 0,
            cache_size: DEFAULT_CACHE_SIZE,
            compress: true,
        }
    }
}

/// Context of a request the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Identification,
    LastTransaction,
    /// A request of an operation to the master.
    Master(OpId),
    StorageIdentification,
    /// A read of an operation from a storage.
    Read(OpId),
    /// AskStoreObject or AskCheckCurrentSerial.
    Store {
        txn: TxnId,
        oid: Oid,
        serial: Tid,
    },
    Relock {
        txn: TxnId,
        oid: Oid,
    },
    /// AskStoreTransaction or AskVoteTransaction.
    Vote {
        txn: TxnId,
    },
    /// AskTIDs of undoLog, to one storage.
    Tids(OpId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnRole {
    Master,
    Storage(Nid),
}

/// A connection to a storage; requests wait in `queued` until it is
/// identified.
#[derive(Debug)]
struct StorageLink {
    conn: ConnId,
    ready: bool,
    queued: Vec<(Packet, Request)>,
}

/// What a child operation hands its parent.
#[derive(Debug)]
enum Reply {
    Packet(Packet),
    Answer(Answer),
}

type OpResult = Result<Reply, ClientError>;

#[derive(Debug)]
struct Op {
    parent: Option<OpId>,
    kind: OpKind,
}

#[derive(Debug)]
enum OpKind {
    /// A request to the primary master (answer to the parent).
    Master(Packet),
    /// A read from a readable cell, with failover (answer to the parent).
    Read(read::ReadState),
    NewOid,
    Sync,
    Load(read::LoadState),
    TransactionInfo(Tid),
    History(read::HistoryState),
    UndoLog(read::UndoLogState),
    Iterate(read::IterateState),
    FinalTid(read::FinalTidState),
    Begin(TxnId),
    Vote(commit::VoteState),
    Finish(commit::FinishState),
    Undo(commit::UndoState),
    Pack(commit::PackState),
    /// Conflicts of a transaction wait for this sync (internal).
    ConflictSync(TxnId),
}

/// The client node state machine.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    now: Time,
    rng: Rng,
    net: Net<Request, ConnRole, ClientEvent>,
    nodes: NodeTable,
    pt: Option<PartitionTable>,
    link: PrimaryLink,
    /// The last committed TID we know of (our snapshot).
    last_tid: Option<Tid>,
    /// Invalidations are ignored while (re)connecting, until the answer to
    /// AskLastTransaction tells where we stand.
    ignore_invalidations: bool,
    ready: bool,
    /// Why the last master refused to identify us, until one accepts.
    last_refusal: Option<String>,
    cache: Cache,
    storages: BTreeMap<Nid, StorageLink>,
    /// Storages that failed to connect, until when they go last.
    failures: BTreeMap<Nid, Time>,
    next_op: u64,
    ops: BTreeMap<OpId, Op>,
    /// Operations waiting for the client to be ready.
    waiting_ready: Vec<OpId>,
    /// Loads in flight per oid (invalidations seen meanwhile fix their
    /// validity range).
    loading: BTreeMap<Oid, Vec<OpId>>,
    next_txn: u64,
    txns: BTreeMap<TxnId, TxnContext>,
    oid_pool: VecDeque<Oid>,
    oid_waiters: VecDeque<OpId>,
    asking_oids: bool,
}

impl Client {
    /// A client that starts looking for the primary at once; operations
    /// started before it is ready wait for it.
    pub fn new(config: ClientConfig, now: Time) -> Client {
        let identity = Identity {
            node_type: NodeType::Client,
            cluster: config.cluster.clone(),
            address: None,
        };
        let mut client = Client {
            rng: Rng::new(config.seed),
            cache: Cache::new(config.cache_size),
            nodes: NodeTable::with_masters(&config.masters),
            config,
            now,
            net: Net::new(),
            pt: None,
            link: PrimaryLink::new(identity, None),
            last_tid: None,
            ignore_invalidations: true,
            ready: false,
            last_refusal: None,
            storages: BTreeMap::new(),
            failures: BTreeMap::new(),
            next_op: 0,
            ops: BTreeMap::new(),
            waiting_ready: Vec::new(),
            loading: BTreeMap::new(),
            next_txn: 0,
            txns: BTreeMap::new(),
            oid_pool: VecDeque::new(),
            oid_waiters: VecDeque::new(),
            asking_oids: false,
        };
        client.connect_to_master();
        client
    }

    // ------------------------------------------------------------ getters

    /// What the client's state must always satisfy (the simulator checks
    /// it after every step): ready only when linked to the primary with a
    /// table, and a table whose bookkeeping holds.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.ready && (!self.link.is_identified() || self.pt.is_none()) {
            return Err("ready without an identified primary and a table".into());
        }
        self.pt
            .as_ref()
            .map_or(Ok(()), PartitionTable::check_invariants)
    }

    /// The id the primary gave us, once identified.
    pub fn nid(&self) -> Option<Nid> {
        self.link.nid()
    }

    /// Our identification timestamp (presented to storages).
    pub fn id_timestamp(&self) -> Option<Timestamp> {
        self.link.id_timestamp()
    }

    /// The partition table, while connected to the primary.
    pub fn partition_table(&self) -> Option<&PartitionTable> {
        self.pt.as_ref()
    }

    /// The node table, as the primary's notifications keep it.
    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    /// The last committed TID we know of (ZODB's `lastTransaction`).
    pub fn last_tid(&self) -> Option<Tid> {
        self.last_tid
    }

    /// The end of our snapshot: nothing committed after `last_tid` is
    /// visible (`last_tid` is at most `Tid::MAX`, checked where it comes
    /// from, so this does not overflow).
    fn snapshot_end(&self) -> Option<Tid> {
        self.last_tid.map(|last| Tid(last.0 + 1))
    }

    /// Why the last master refused to identify us, while none accepted
    /// since: what to tell an application that gives up waiting.
    pub fn last_refusal(&self) -> Option<&str> {
        self.last_refusal.as_deref()
    }

    /// Connected to the primary with an operational table.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The connection to the master we follow (identified or not).
    pub fn master_connection(&self) -> Option<ConnId> {
        self.link.conn()
    }

    /// Operations in progress and storage connections, for diagnostics.
    pub fn describe_operations(&self) -> String {
        let links: Vec<String> = self
            .storages
            .iter()
            .map(|(nid, l)| {
                format!(
                    "{nid}:{}{}",
                    l.conn,
                    if l.ready { "" } else { "(connecting)" }
                )
            })
            .collect();
        format!(
            "ops={:?} waiting_ready={:?} storages=[{}]",
            self.ops,
            self.waiting_ready,
            links.join(" ")
        )
    }

    // ------------------------------------------------------------ operations

    fn new_op(&mut self, parent: Option<OpId>, kind: OpKind) -> OpId {
        self.next_op += 1;
        let op = OpId(self.next_op);
        self.ops.insert(op, Op { parent, kind });
        op
    }

    /// Creates and starts an operation.
    fn spawn(&mut self, parent: Option<OpId>, kind: OpKind) -> OpId {
        let op = self.new_op(parent, kind);
        self.start(op);
        op
    }

    /// Starts (or restarts, once ready) an operation.
    fn start(&mut self, op: OpId) {
        let Some(entry) = self.ops.get(&op) else {
            return;
        };
        match &entry.kind {
            OpKind::Master(_) => self.start_master_request(op),
            OpKind::Read(_) => self.start_read(op),
            OpKind::NewOid => self.start_new_oid(op),
            OpKind::Sync => {
                self.spawn(Some(op), OpKind::Master(neo_proto::Ping {}.into()));
            }
            OpKind::Load(_) => self.start_load(op),
            OpKind::TransactionInfo(_) | OpKind::History(_) | OpKind::Iterate(_) => {
                self.start_read_composite(op)
            }
            OpKind::UndoLog(_) => self.start_undo_log(op),
            OpKind::FinalTid(_) => self.start_final_tid(op),
            OpKind::Begin(_) => self.start_begin(op),
            OpKind::Vote(_) => self.vote_progress(op),
            OpKind::Finish(_) => self.finish_progress(op),
            OpKind::Undo(_) => self.start_undo(op),
            OpKind::Pack(_) => self.pack_progress(op, None),
            OpKind::ConflictSync(_) => {}
        }
    }

    /// Puts an operation aside until the client is ready.
    fn wait_ready(&mut self, op: OpId) {
        self.waiting_ready.push(op);
    }

    /// Ends an operation: its parent continues, or the application hears.
    fn finish_op(&mut self, op: OpId, result: OpResult) {
        let Some(entry) = self.ops.remove(&op) else {
            return;
        };
        if let OpKind::Load(state) = &entry.kind {
            self.forget_loading(op, state.oid);
        }
        match entry.parent {
            Some(parent) if self.ops.contains_key(&parent) => self.on_child(parent, op, result),
            Some(_) => {} // the parent failed meanwhile
            None => {
                let result = result.map(|reply| match reply {
                    Reply::Answer(answer) => answer,
                    Reply::Packet(packet) => {
                        unreachable!("internal answer {} leaked", packet.name())
                    }
                });
                self.net
                    .emit(Output::Event(ClientEvent::Done { op, result }));
            }
        }
    }

    fn done(&mut self, op: OpId, answer: Answer) {
        self.finish_op(op, Ok(Reply::Answer(answer)));
    }

    fn fail(&mut self, op: OpId, error: ClientError) {
        self.finish_op(op, Err(error));
    }

    /// A child operation ended.
    fn on_child(&mut self, parent: OpId, child: OpId, result: OpResult) {
        let Some(entry) = self.ops.get(&parent) else {
            return;
        };
        match &entry.kind {
            OpKind::Master(_) => {}
            OpKind::Read(_) => self.read_synced(parent, result),
            OpKind::NewOid => self.new_oids_answered(result),
            OpKind::Sync => match result {
                Ok(_) => self.done(parent, Answer::Synced),
                Err(error) => self.fail(parent, error),
            },
            OpKind::Load(_) => self.load_answered(parent, result),
            OpKind::TransactionInfo(_) => {
                let result =
                    transaction_info(result).map(|info| Reply::Answer(Answer::Transaction(info)));
                self.finish_op(parent, result);
            }
            OpKind::History(_) => self.history_child(parent, child, result),
            OpKind::UndoLog(_) => self.undo_log_child(parent, child, result),
            OpKind::Iterate(_) => self.iterate_child(parent, child, result),
            OpKind::FinalTid(_) => self.final_tid_child(parent, result),
            OpKind::Begin(_) => self.begun(parent, result),
            OpKind::Vote(_) => self.vote_child(parent, result),
            OpKind::Finish(_) => self.finish_child(parent, result),
            OpKind::Undo(_) => self.undo_child(parent, child, result),
            OpKind::Pack(_) => self.pack_progress(parent, Some(result)),
            OpKind::ConflictSync(_) => self.conflict_synced(parent, result),
        }
    }

    /// The next oid (from a pool filled 100 at a time).
    pub fn new_oid(&mut self, now: Time) -> OpId {
        self.now = self.now.max(now);
        self.spawn(None, OpKind::NewOid)
    }

    fn start_new_oid(&mut self, op: OpId) {
        if let Some(oid) = self.oid_pool.pop_front() {
            self.done(op, Answer::Oid(oid));
            return;
        }
        self.oid_waiters.push_back(op);
        if !self.asking_oids {
            self.asking_oids = true;
            // The pool request belongs to the first waiter; whoever it is,
            // the answer serves them all.
            self.spawn(
                Some(op),
                OpKind::Master(neo_proto::AskNewOIDs { count: 100 }.into()),
            );
        }
    }

    fn new_oids_answered(&mut self, result: OpResult) {
        self.asking_oids = false;
        match result {
            // None left (the master gives fewer than asked near the last
            // possible oid): asking again would get none either.
            Ok(Reply::Packet(Packet::AnswerNewOIDs(answer))) if answer.oids.is_empty() => {
                for op in std::mem::take(&mut self.oid_waiters) {
                    self.fail(op, ClientError::OidsExhausted);
                }
            }
            Ok(Reply::Packet(Packet::AnswerNewOIDs(answer))) => {
                self.oid_pool.extend(answer.oids);
                while !self.oid_pool.is_empty() {
                    let Some(op) = self.oid_waiters.pop_front() else {
                        break;
                    };
                    let oid = self.oid_pool.pop_front().unwrap();
                    self.done(op, Answer::Oid(oid));
                }
                if let Some(&op) = self.oid_waiters.front() {
                    self.oid_waiters.pop_front();
                    self.start_new_oid(op);
                }
            }
            other => {
                let error = match other {
                    Err(error) => error,
                    Ok(Reply::Packet(packet)) => error_of(&packet),
                    Ok(Reply::Answer(answer)) => {
                        ClientError::UnexpectedAnswer(format!("{answer:?}"))
                    }
                };
                for op in std::mem::take(&mut self.oid_waiters) {
                    self.fail(op, error.clone());
                }
            }
        }
    }

    /// Pings the master: afterwards, every invalidation it sent before is
    /// applied (ZODB calls it at transaction boundaries).
    pub fn sync(&mut self, now: Time) -> OpId {
        self.now = self.now.max(now);
        self.spawn(None, OpKind::Sync)
    }

    // ------------------------------------------------------------ master requests

    /// Asks the master on behalf of `parent`; the answer goes to it.
    fn ask_master(&mut self, parent: OpId, packet: impl Into<Packet>) -> OpId {
        self.spawn(Some(parent), OpKind::Master(packet.into()))
    }

    fn start_master_request(&mut self, op: OpId) {
        let (Some(conn), true) = (self.link.conn(), self.ready) else {
            self.wait_ready(op);
            return;
        };
        let Some(Op {
            kind: OpKind::Master(packet),
            ..
        }) = self.ops.get(&op)
        else {
            return;
        };
        let packet = packet.clone();
        self.net.ask(conn, packet, Request::Master(op));
    }

    // ------------------------------------------------------------ storages

    /// Sends a request to a storage, connecting first if needed (only to a
    /// RUNNING node, and only while we have a primary). False if there is
    /// no way to reach it.
    fn ask_storage(&mut self, nid: Nid, packet: impl Into<Packet>, request: Request) -> bool {
        let packet = packet.into();
        if let Some(link) = self.storages.get_mut(&nid) {
            if link.ready {
                let conn = link.conn;
                self.net.ask(conn, packet, request);
            } else {
                link.queued.push((packet, request));
            }
            return true;
        }
        if !self.link.is_identified() {
            return false;
        }
        let address = self
            .nodes
            .entry_by_nid(nid)
            .filter(|e| e.node_type == NodeType::Storage && e.is_running())
            .and_then(|e| e.address().cloned());
        let Some(address) = address else {
            return false;
        };
        let conn = self.net.connect(address, ConnRole::Storage(nid));
        self.storages.insert(
            nid,
            StorageLink {
                conn,
                ready: false,
                queued: vec![(packet, request)],
            },
        );
        true
    }

    /// Drops the requests of `txn` waiting for the connection to `nid`.
    fn forget_queued(&mut self, nid: Nid, txn: TxnId) {
        if let Some(link) = self.storages.get_mut(&nid) {
            link.queued.retain(|(_, request)| {
                !matches!(
                    request,
                    Request::Store { txn: t, .. } | Request::Relock { txn: t, .. } | Request::Vote { txn: t }
                        if *t == txn
                )
            });
        }
    }

    /// A notification to a storage we are connected to.
    fn send_storage(&mut self, nid: Nid, packet: impl Into<Packet>) {
        if let Some(link) = self.storages.get(&nid).filter(|l| l.ready) {
            let conn = link.conn;
            self.net.send(conn, packet);
        }
    }

    /// Readable cells of a partition in the order to try them: random,
    /// except that storages that failed recently go last, oldest failure
    /// first.
    fn read_candidates(&mut self, partition: u32) -> Vec<Nid> {
        let Some(pt) = &self.pt else {
            return Vec::new();
        };
        if partition >= pt.num_partitions() {
            return Vec::new();
        }
        let mut fresh: Vec<Nid> = Vec::new();
        let mut failed: Vec<(Time, Nid)> = Vec::new();
        for cell in pt.row(partition).iter().filter(|c| c.is_readable()) {
            match self.failures.get(&cell.nid) {
                Some(&until) if until > self.now => failed.push((until, cell.nid)),
                _ => fresh.push(cell.nid),
            }
        }
        self.rng.shuffle(&mut fresh);
        failed.sort();
        fresh.extend(failed.into_iter().map(|(_, nid)| nid));
        fresh
    }

    fn on_storage_connected(&mut self, conn: ConnId, nid: Nid) {
        let (nid_ours, id_timestamp) = (self.link.nid(), self.link.id_timestamp());
        let request = self
            .link
            .identity()
            .request(nid_ours, id_timestamp, Map::new());
        if self.storages.get(&nid).is_some_and(|l| l.conn == conn) {
            self.net.ask(conn, request, Request::StorageIdentification);
        }
    }

    fn on_storage_identified(&mut self, nid: Nid, packet: Packet) {
        match packet {
            Packet::AcceptIdentification(AcceptIdentification {
                node_type: NodeType::Storage,
                ..
            }) => {
                self.failures.remove(&nid);
                let Some(link) = self.storages.get_mut(&nid) else {
                    return;
                };
                link.ready = true;
                let conn = link.conn;
                for (packet, request) in std::mem::take(&mut link.queued) {
                    self.net.ask(conn, packet, request);
                }
            }
            other => {
                // NOT_READY (it is not operating yet, or does not know us
                // yet) or a refusal: a failure.
                self.net.log(
                    Level::Info,
                    format!("storage {nid} refused us: {}", describe(&other)),
                );
                self.failures.insert(nid, self.now + FAILURE_AGE);
                if let Some(link) = self.storages.get(&nid) {
                    let conn = link.conn;
                    self.storage_lost(nid, conn, true);
                }
            }
        }
    }

    /// The connection to a storage is gone (or never came up, or we close
    /// it): every request on it counts as failed.
    fn storage_lost(&mut self, nid: Nid, conn: ConnId, close: bool) {
        let Some(link) = self.storages.get(&nid) else {
            return;
        };
        if link.conn != conn {
            return;
        }
        if !link.ready {
            self.failures.insert(nid, self.now + FAILURE_AGE);
        }
        let link = self.storages.remove(&nid).unwrap();
        let mut lost: Vec<Request> = self.net.drain_pending(conn);
        lost.extend(link.queued.into_iter().map(|(_, request)| request));
        if close {
            self.net.close(conn);
        } else {
            self.net.forget(conn);
        }
        for request in lost {
            self.request_lost(nid, request);
        }
        let cache_limit = self.cache.max_size();
        let affected: Vec<TxnId> = self
            .txns
            .iter()
            .filter(|(_, t)| t.conn_dict.get(&nid) == Some(&true))
            .map(|(id, _)| *id)
            .collect();
        for txn in affected {
            // One may end (and go) while another is being told.
            let Some(context) = self.txns.get_mut(&txn) else {
                continue;
            };
            context.node_lost(nid, cache_limit);
            self.txn_changed(txn);
        }
    }

    /// A request to a storage will never be answered.
    fn request_lost(&mut self, nid: Nid, request: Request) {
        match request {
            Request::Read(op) => self.read_failed(op, nid),
            Request::Store { txn, .. } | Request::Relock { txn, .. } | Request::Vote { txn } => {
                if let Some(context) = self.txns.get_mut(&txn) {
                    context.request_done();
                }
            }
            Request::Tids(op) => self.undo_log_tids(op, None),
            _ => {}
        }
    }

    fn on_storage_packet(&mut self, conn: ConnId, nid: Nid, msg_id: u32, packet: Packet) {
        match self.net.dispatch(conn, msg_id, packet) {
            Dispatch::Answer(request, packet) => match self.check_storage_answer(&request, &packet)
            {
                Ok(()) => self.on_storage_answer(nid, request, packet),
                Err(violation) => {
                    // Unanswered, like the requests the connection takes
                    // with it.
                    self.request_lost(nid, request);
                    self.reject_storage(nid, conn, msg_id, violation);
                }
            },
            Dispatch::Request(Packet::NotifyDeadlock(deadlock)) => {
                self.on_deadlock(nid, deadlock.ttid, deadlock.oid)
            }
            Dispatch::Request(other) => {
                let reject = Reject::unexpected(&other, "client (from a storage)");
                self.reject_storage(nid, conn, msg_id, reject.message);
            }
            Dispatch::Done => {}
            Dispatch::Refuse(reject) => self.reject_storage(nid, conn, msg_id, reject.message),
        }
    }

    /// What an answer of a storage must satisfy.
    fn check_storage_answer(&self, request: &Request, packet: &Packet) -> Result<(), Violation> {
        match request {
            Request::Read(op) => self.check_read_answer(*op, packet),
            Request::Store { .. } | Request::Relock { .. } => check::write_answer(packet),
            Request::Tids(op) => self.check_tids_answer(*op, packet),
            _ => Ok(()),
        }
    }

    /// A storage broke the protocol with the packet `msg_id`: the error
    /// answers it and the connection goes, as on a loss.
    fn reject_storage(&mut self, nid: Nid, conn: ConnId, msg_id: u32, message: Violation) {
        self.blame_storage(nid, &message);
        self.net.answer(
            conn,
            msg_id,
            Packet::error(ErrorCode::ProtocolError, message),
        );
        self.storage_lost(nid, conn, true);
    }

    /// A storage lied in an answer already acted on: the connection goes,
    /// as on a loss.
    fn drop_storage(&mut self, nid: Nid, message: Violation) {
        self.blame_storage(nid, &message);
        if let Some(link) = self.storages.get(&nid) {
            let conn = link.conn;
            self.storage_lost(nid, conn, true);
        }
    }

    /// Logs a storage's protocol error; it goes last when choosing a
    /// replica to read from, as one that failed to connect.
    fn blame_storage(&mut self, nid: Nid, message: &str) {
        self.net.log(
            Level::Error,
            format!("protocol error from storage {nid}: {message}"),
        );
        self.failures.insert(nid, self.now + FAILURE_AGE);
    }

    fn on_storage_answer(&mut self, nid: Nid, request: Request, packet: Packet) {
        match request {
            Request::StorageIdentification => self.on_storage_identified(nid, packet),
            Request::Read(op) => self.read_answered(op, nid, packet),
            Request::Store { txn, oid, serial } => {
                self.store_answered(txn, nid, oid, serial, packet)
            }
            Request::Relock { txn, oid } => self.relock_answered(txn, nid, oid, packet),
            Request::Vote { txn } => self.vote_answered(txn, packet),
            Request::Tids(op) => self.undo_log_tids(op, Some(packet)),
            Request::Identification | Request::LastTransaction | Request::Master(_) => {}
        }
    }

    // ------------------------------------------------------------ master

    fn connect_to_master(&mut self) {
        let (nodes, net) = (&mut self.nodes, &mut self.net);
        self.link.connect(nodes, self.now, net, ConnRole::Master);
    }

    /// The master connection is gone: forget the table (it may be stale),
    /// fail what waited for the master, tell the application, reconnect.
    fn master_lost(&mut self, closed_by_peer: bool, why: &str) {
        let (nodes, net) = (&mut self.nodes, &mut self.net);
        let Some(pending) = self.link.lose(nodes, net, closed_by_peer, why) else {
            return;
        };
        let was_ready = std::mem::replace(&mut self.ready, false);
        self.pt = None;
        self.ignore_invalidations = true;
        self.oid_pool.clear();
        for context in self.txns.values_mut() {
            context.master_lost = true;
        }
        if was_ready {
            self.net.emit(Output::Event(ClientEvent::Disconnected));
        }
        for request in pending {
            if let Request::Master(op) = request {
                self.fail(op, ClientError::MasterLost);
            }
        }
        self.connect_to_master();
    }

    fn on_master_connected(&mut self) {
        let mut extra = Map::new();
        if self.config.read_only {
            extra
                .0
                .push((Bytes::from_static(b"read_only"), Value::Bool(true)));
        }
        self.link
            .identify(&mut self.net, Request::Identification, extra);
    }

    fn on_master_answer(&mut self, request: Request, packet: Packet) {
        match (request, packet) {
            (Request::Identification, packet) => {
                // A refusal is NOT_READY while the cluster does not serve:
                // the master closes the connection and we try again.
                let (nodes, net) = (&mut self.nodes, &mut self.net);
                match self
                    .link
                    .on_identification_answer(nodes, net, packet, Level::Info)
                {
                    Identified::Accepted { .. } => {
                        self.last_refusal = None;
                        if let Some(conn) = self.link.conn() {
                            self.net
                                .ask(conn, AskLastTransaction {}, Request::LastTransaction);
                        }
                    }
                    Identified::Refused { text, .. } => self.last_refusal = Some(text),
                    Identified::Invalid => self.master_lost(false, "invalid identification"),
                }
            }
            (Request::LastTransaction, Packet::AnswerLastTransaction(answer)) => {
                self.on_last_transaction(answer.tid);
            }
            (Request::Master(op), packet) => self.finish_op(op, Ok(Reply::Packet(packet))),
            _ => {}
        }
    }

    /// Where the database stands after (re)connecting.
    fn on_last_transaction(&mut self, tid: Tid) {
        if self.last_tid != Some(tid) {
            if self.last_tid.is_none_or(|last| last < tid) {
                // Invalidations may have been missed.
                self.cache.clear_current();
            } else {
                // The database was truncated.
                self.cache.clear();
            }
            // Loads in flight may return what we just forgot.
            for ops in std::mem::take(&mut self.loading).into_values() {
                for op in ops {
                    if let Some(Op {
                        kind: OpKind::Load(state),
                        ..
                    }) = self.ops.get_mut(&op)
                    {
                        state.cacheable = false;
                    }
                }
            }
        }
        self.last_tid = Some(tid);
        self.ignore_invalidations = false;
        self.check_ready();
    }

    fn check_ready(&mut self) {
        if self.ready || !self.link.is_identified() || self.ignore_invalidations {
            return;
        }
        let nodes = &self.nodes;
        let operational = self
            .pt
            .as_ref()
            .is_some_and(|pt| pt.operational(&|nid| nodes.state_of(nid), &[]));
        if operational {
            self.ready = true;
            let last_tid = self.last_tid.unwrap_or(Tid::ZERO);
            self.net
                .emit(Output::Event(ClientEvent::Ready { last_tid }));
            for op in std::mem::take(&mut self.waiting_ready) {
                self.start(op);
            }
        }
    }

    fn on_master_packet(&mut self, packet: Packet) -> Result<(), Reject> {
        match self.link.on_packet(&mut self.nodes, &mut self.pt, packet)? {
            FromPrimary::Nodes { nodes, .. } => {
                // A storage that is not running any more is disconnected.
                for node in &nodes {
                    let (NodeType::Storage, Some(nid)) = (node.node_type, node.nid) else {
                        continue;
                    };
                    if node.state != NodeState::Running {
                        if let Some(link) = self.storages.get(&nid) {
                            let conn = link.conn;
                            self.storage_lost(nid, conn, true);
                        }
                    }
                }
                self.check_ready();
            }
            FromPrimary::TableReplaced(_) => self.check_ready(),
            FromPrimary::Done | FromPrimary::TableChanged { .. } => {}
            FromPrimary::Other(packet) => self.on_master_notification(packet)?,
        }
        Ok(())
    }

    /// What the primary tells a client only.
    fn on_master_notification(&mut self, packet: Packet) -> Result<(), Reject> {
        match packet {
            Packet::NotifyClusterInformation(info) => {
                if info.state != ClusterState::Running {
                    self.net
                        .log(Level::Info, format!("cluster switching to {}", info.state));
                }
            }
            Packet::InvalidateObjects(invalidation) => {
                if !self.ignore_invalidations {
                    check::next_tid("InvalidateObjects.tid", invalidation.tid, self.last_tid)
                        .map_err(Reject::protocol)?;
                    self.invalidate(invalidation.tid, &invalidation.oids);
                    self.net.emit(Output::Event(ClientEvent::Invalidated {
                        tid: invalidation.tid,
                        oids: invalidation.oids,
                    }));
                }
            }
            Packet::StopOperation(_) => {
                self.net.log(Level::Warn, "the master stops the cluster");
            }
            Packet::FlushLog(_) => {}
            other => return Err(Reject::unexpected(&other, "client")),
        }
        Ok(())
    }

    /// `tid` modified `oids`: their current cached revisions end there,
    /// loads in flight learn it, and our snapshot moves to `tid`.
    fn invalidate(&mut self, tid: Tid, oids: &[Oid]) {
        for &oid in oids {
            self.cache.invalidate(oid, tid);
            for op in self.loading.get(&oid).cloned().unwrap_or_default() {
                if let Some(Op {
                    kind: OpKind::Load(state),
                    ..
                }) = self.ops.get_mut(&op)
                {
                    state.invalidations.push(tid);
                }
            }
        }
        self.last_tid = Some(tid);
    }

    fn on_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        match self.net.state(conn).copied() {
            Some(ConnRole::Storage(nid)) => self.on_storage_packet(conn, nid, msg_id, packet),
            Some(ConnRole::Master) if self.link.is_conn(conn) => {
                self.on_primary_packet(conn, msg_id, packet)
            }
            _ => {}
        }
    }

    fn on_primary_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        let reject = match self.net.dispatch(conn, msg_id, packet) {
            Dispatch::Answer(request, packet) => {
                match self.check_master_answer(&request, &packet) {
                    Ok(()) => {
                        self.on_master_answer(request, packet);
                        return;
                    }
                    Err(violation) => {
                        // Unanswered, like the requests the connection took
                        // with it.
                        if let Request::Master(op) = request {
                            self.fail(op, ClientError::MasterLost);
                        }
                        Reject::protocol(violation)
                    }
                }
            }
            Dispatch::Request(packet) => match self.on_master_packet(packet) {
                Ok(()) => return,
                Err(reject) => reject,
            },
            Dispatch::Done => return,
            Dispatch::Refuse(reject) => reject,
        };
        self.reject_master(conn, msg_id, reject);
    }

    /// What an answer of the primary master must satisfy.
    fn check_master_answer(&self, request: &Request, packet: &Packet) -> Result<(), Violation> {
        match (request, packet) {
            (Request::LastTransaction, Packet::AnswerLastTransaction(answer)) => {
                check::tid("AnswerLastTransaction.tid", answer.tid)
            }
            (Request::Master(op), _) => match self.ops.get(op).map(|o| &o.kind) {
                Some(OpKind::Master(asked)) => check::master_answer(asked, packet, self.last_tid),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Refuses a packet of the primary master; a refusal that closes the
    /// connection is its loss (`Net::reject` would close it before
    /// `master_lost` learns which requests it took with it).
    fn reject_master(&mut self, conn: ConnId, msg_id: u32, reject: Reject) {
        if reject.close {
            self.net.refuse(conn, msg_id, reject, "the primary master");
            self.master_lost(false, "we refused what it sent");
        } else {
            self.net.reject(conn, msg_id, reject, "the primary master");
        }
    }

    fn on_closed(&mut self, conn: ConnId) {
        if self.link.is_conn(conn) {
            self.master_lost(true, "connection closed");
            return;
        }
        match self.net.state(conn).copied() {
            Some(ConnRole::Storage(nid)) => self.storage_lost(nid, conn, false),
            _ => {
                self.net.forget(conn);
            }
        }
    }
}

/// The error an Error packet stands for.
fn error_of(packet: &Packet) -> ClientError {
    match packet {
        Packet::Error(error) => match error.code {
            neo_proto::ErrorCode::OidNotFound | neo_proto::ErrorCode::TidNotFound => {
                ClientError::NotFound
            }
            neo_proto::ErrorCode::OidDoesNotExist => ClientError::DoesNotExist,
            neo_proto::ErrorCode::UndoPackError => ClientError::UndoPack,
            neo_proto::ErrorCode::ReadOnlyAccess => ClientError::ReadOnly,
            code => ClientError::Refused {
                code,
                message: String::from_utf8_lossy(&error.message).into_owned(),
            },
        },
        other => ClientError::UnexpectedAnswer(other.name().to_string()),
    }
}

fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Error(error) => {
            format!("{} {}", error.code, String::from_utf8_lossy(&error.message))
        }
        other => other.name().to_string(),
    }
}

/// A transaction's metadata, from AnswerTransactionInformation or from a
/// child transaction-information operation.
fn transaction_info(result: OpResult) -> Result<TransactionInfo, ClientError> {
    match result? {
        Reply::Answer(Answer::Transaction(info)) => Ok(info),
        Reply::Packet(Packet::AnswerTransactionInformation(answer)) => Ok(TransactionInfo {
            tid: answer.tid,
            user: answer.user,
            description: answer.description,
            extension: answer.extension,
            packed: answer.packed,
            oids: answer.oids,
        }),
        Reply::Packet(packet) => Err(error_of(&packet)),
        Reply::Answer(answer) => Err(ClientError::UnexpectedAnswer(format!("{answer:?}"))),
    }
}

impl Node for Client {
    type Event = ClientEvent;

    fn handle(&mut self, now: Time, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Connected { conn } => match self.net.connected(conn).copied() {
                Some(ConnRole::Master) if self.link.is_conn(conn) => self.on_master_connected(),
                Some(ConnRole::Storage(nid)) => self.on_storage_connected(conn, nid),
                _ => {}
            },
            Input::ConnectFailed { conn } | Input::Closed { conn } => self.on_closed(conn),
            Input::Accepted { conn } => self.net.decline(conn),
            Input::Packet {
                conn,
                msg_id,
                packet,
            } => self.on_packet(conn, msg_id, packet),
            Input::Timeout => {
                let (nodes, net) = (&mut self.nodes, &mut self.net);
                self.link.on_timeout(nodes, self.now, net, ConnRole::Master);
            }
        }
    }

    fn poll_output(&mut self) -> Option<Output<ClientEvent>> {
        self.net.poll()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.link.poll_timeout()
    }
}
