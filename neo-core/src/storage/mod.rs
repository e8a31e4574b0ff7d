//! The storage node.
//!
//! Lifecycle (cluster.md 3.9): *bootstrapping* (find the primary master,
//! identify with our persistent id) → *initializing* (answer recovery and
//! verification, store the partition table the master sends) →
//! *operating* after StartOperation (accept clients and other storages,
//! replicate out-of-date cells, take part in commits). StopOperation goes
//! back to initializing; losing the primary goes back to bootstrapping.
//!
//! Durability: every store write bumps a sequence number; packets to the
//! master (answers that promise something is on disk, and anything after
//! them) are held until the runtime has synced the store
//! ([`Output::SyncStore`], then [`Storage::sync_store`]). One sync covers
//! every write made before it, so concurrent commits share an fsync.

mod checker;
mod journal;
pub mod memory;
mod pack;
mod peer;
mod replicator;
#[cfg(feature = "testing")]
pub mod scenarios;
mod serve_clients;
pub mod store;
mod transactions;
mod undo;
mod waiting;

use bytes::Bytes;
use neo_proto::{
    AcceptIdentification, Address, AnswerFinalTID, AnswerInformationLocked, AnswerLastIDs,
    AnswerLockedTransactions, AnswerPackOrders, AnswerPartitionTable, AnswerRecovery, ClusterState,
    Map, Nid, NodeState, NodeType, NotifyReady, Packet, RequestIdentification, Tid, Value,
};

use crate::identity::Identity;
use crate::net::{Dispatch, Net, Reject};
use crate::node::{ConnId, Input, Level, Node, Output};
use crate::node_table::{NodeKey, NodeTable, NotificationEffects};
use crate::primary_link::{FromPrimary, Identified, PrimaryLink};
use crate::pt::PartitionTable;
use crate::rng::Rng;
use crate::time::Time;

use checker::Checker;
use journal::Journal;
use pack::Packer;
use replicator::Replicator;
use store::{Store, StoredTable};
use transactions::TransactionLocks;
use waiting::WaitQueues;

pub use neo_proto::INVALID_PARTITION;

/// Most identifications waiting for the master to announce their node
/// (one per connection): more are refused as "unknown by master", and the
/// peer retries.
pub const POSTPONED_IDENTIFICATIONS_COUNT_MAX: usize = 256;

/// Longest time a write nothing waits for stays unsynced.
pub const DEFERRED_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// What a storage is started with (NEO/py's `neostorage` options).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The cluster name; a database created for another is refused.
    pub cluster: Bytes,
    /// Our listening address (already bound by the runtime).
    pub bind: Address,
    /// The masters to look for the primary among.
    pub masters: Vec<Address>,
    /// Topology path (most general first: data centre, rack, host...), for
    /// spreading replicas.
    pub devpath: Vec<Bytes>,
    /// Node id to use for a new database (testing).
    pub nid: Option<Nid>,
    /// Seed of the node's random choices.
    pub seed: u64,
}

/// Why a storage cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The database belongs to another cluster.
    WrongCluster {
        /// The cluster name recorded in the database.
        database: Bytes,
        /// The cluster name the storage was started with.
        configured: Bytes,
    },
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::WrongCluster {
                database,
                configured,
            } => write!(
                f,
                "the database belongs to cluster {:?}, not {:?}",
                String::from_utf8_lossy(database),
                String::from_utf8_lossy(configured)
            ),
        }
    }
}

impl std::error::Error for StorageError {}

/// Context of requests the storage sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Identification,
    /// AskPackOrders, sent when our cells had completed pack `from`.
    PackOrders {
        from: Tid,
    },
    /// AskUnfinishedTransactions for these partitions we start replicating.
    UnfinishedTransactions {
        partitions: Vec<u32>,
    },
    /// Our RequestIdentification to another storage.
    PeerIdentification(NodeKey),
    /// AskFetchTransactions / AskFetchObjects of our replication.
    Replication,
    /// AskCheckTIDRange / AskCheckSerialRange of our replica check.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnRole {
    /// To a master: while bootstrapping, then to the primary.
    Master,
    /// Accepted, before identification.
    Unidentified,
    /// An identified client (its id kept for when the master forgets it).
    Client(NodeKey, Nid),
    /// An identified storage (replication, checks), either direction.
    Storage(NodeKey),
    /// Opened by us to a storage, not identified yet.
    ToStorage(NodeKey),
}

#[derive(Debug, PartialEq, Eq)]
enum Lifecycle {
    Bootstrapping,
    Initializing,
    Operating,
    Exited,
}

/// The storage node state machine over a [`Store`].
#[derive(Debug)]
pub struct Storage<S: Store> {
    config: StorageConfig,
    store: Journal<S>,
    now: Time,
    net: Net<Request, ConnRole, std::convert::Infallible>,
    nodes: NodeTable,
    pt: Option<PartitionTable>,
    phase: Lifecycle,
    link: PrimaryLink,
    cluster_state: Option<ClusterState>,
    sync_requested: bool,
    /// When unsynced writes that nothing waits for must be synced anyway.
    sync_deadline: Option<Time>,
    /// Identifications from peers the master has not told us about yet,
    /// retried after each node notification.
    postponed: Vec<(ConnId, u32, RequestIdentification)>,
    /// Transactions being committed, and their locks.
    locks: TransactionLocks,
    /// Requests waiting for a lock.
    waiting: WaitQueues,
    running_postponed: bool,
    /// Per partition: whether our cell is readable (UP_TO_DATE, FEEDING).
    readable: Vec<bool>,
    packer: Packer,
    replicator: Replicator,
    checker: Checker,
    /// Random choices (replication sources).
    rng: Rng,
}

impl<S: Store> Storage<S> {
    /// A storage over `store`; fails if the database belongs to another
    /// cluster.
    pub fn new(config: StorageConfig, mut store: S, now: Time) -> Result<Storage<S>, StorageError> {
        let stored = store.config();
        match stored.cluster {
            Some(database) if database != config.cluster => {
                return Err(StorageError::WrongCluster {
                    database,
                    configured: config.cluster,
                })
            }
            Some(_) => {}
            None => store.set_cluster(config.cluster.clone()),
        }
        // Data stored for transactions that never voted before a crash.
        let orphans = store.prune_orphans();
        store.sync();
        let nid = stored.nid.or(config.nid);
        let identity = Identity {
            node_type: NodeType::Storage,
            cluster: config.cluster.clone(),
            address: Some(config.bind.clone()),
        };
        let mut storage = Storage {
            nodes: NodeTable::with_masters(&config.masters),
            rng: Rng::new(config.seed),
            config,
            store: Journal::new(store),
            now,
            net: Net::new(),
            pt: None,
            phase: Lifecycle::Bootstrapping,
            link: PrimaryLink::new(identity, nid),
            cluster_state: None,
            sync_requested: false,
            sync_deadline: None,
            postponed: Vec::new(),
            locks: TransactionLocks::new(None),
            waiting: WaitQueues::default(),
            running_postponed: false,
            readable: Vec::new(),
            packer: Packer::default(),
            replicator: Replicator::default(),
            checker: Checker::default(),
        };
        if orphans > 0 {
            storage.log(
                Level::Info,
                format!("deleted {orphans} orphan data record(s) left by an interrupted commit"),
            );
        }
        storage.log(
            Level::Info,
            format!(
                "storage {} of cluster {:?} listening on {}",
                nid.map_or_else(|| "without id yet".to_string(), |n| n.to_string()),
                String::from_utf8_lossy(&storage.config.cluster),
                storage.config.bind
            ),
        );
        storage.connect_to_master();
        Ok(storage)
    }

    // ------------------------------------------------------------ getters

    /// Our id: the database's, or the one the primary gives us.
    pub fn nid(&self) -> Option<Nid> {
        self.link.nid()
    }

    /// Where we listen (announced to the master).
    pub fn address(&self) -> &Address {
        &self.config.bind
    }

    /// The store, for reading (simulator checks, tests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, e.g. for the simulator to crash it. Writing through it
    /// bypasses the node's bookkeeping.
    pub fn store_mut(&mut self) -> &mut S {
        self.store.unjournaled()
    }

    /// The partition table, from the database or the primary.
    pub fn partition_table(&self) -> Option<&PartitionTable> {
        self.pt.as_ref()
    }

    /// The node table, as the primary's notifications keep it.
    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    /// Whether the storage was told to start operating.
    pub fn is_operational(&self) -> bool {
        self.phase == Lifecycle::Operating
    }

    /// Whether an approved pack order is not applied yet to our up-to-date
    /// cells (being applied, or asked for): replicas of a partition may
    /// differ until it is done.
    pub fn is_packing(&self) -> bool {
        self.pack_pending()
    }

    /// The address of the master we are connected to (identified or not).
    pub fn master_connection(&self) -> Option<ConnId> {
        self.link.conn()
    }

    /// Whether we are identified with a primary master.
    pub fn has_primary(&self) -> bool {
        matches!(self.phase, Lifecycle::Initializing | Lifecycle::Operating)
    }

    /// What the storage's state must always satisfy (the simulator checks
    /// it after every step): the lifecycle follows the link to the
    /// primary, durability never runs ahead of the writes, the readable
    /// cells match the table, the queues stay within their bounds.
    pub fn check_invariants(&self) -> Result<(), String> {
        let identified = self.link.is_identified();
        let bootstrapping = self.phase == Lifecycle::Bootstrapping;
        if self.phase != Lifecycle::Exited && identified == bootstrapping {
            return Err(format!(
                "lifecycle {:?} with the primary link identified: {identified}",
                self.phase
            ));
        }
        if self.store.synced() > self.store.written() {
            return Err(format!(
                "{} writes synced of {} made",
                self.store.synced(),
                self.store.written()
            ));
        }
        if self.postponed.len() > POSTPONED_IDENTIFICATIONS_COUNT_MAX {
            return Err(format!(
                "{} postponed identifications",
                self.postponed.len()
            ));
        }
        let Some(pt) = &self.pt else {
            return Ok(());
        };
        pt.check_invariants()?;
        if self.phase == Lifecycle::Operating && self.readable.len() != pt.num_partitions() as usize
        {
            return Err(format!(
                "readable cells known for {} partitions of {}",
                self.readable.len(),
                pt.num_partitions()
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------ durability

    /// Makes every store write so far durable and releases what waited for
    /// it. The runtime calls it after [`Output::SyncStore`], as late as it
    /// likes (one sync may serve many requests).
    pub fn sync_store(&mut self, now: Time) {
        self.now = self.now.max(now);
        let synced = self.store.sync();
        self.sync_requested = false;
        self.net.release_until(synced);
    }

    /// Asks for a sync at once when outputs wait for one, else within
    /// [`DEFERRED_SYNC`] of the first unsynced write (NEO/py commits
    /// unlocked transactions within a second).
    fn request_sync_if_needed(&mut self) {
        if !self.store.is_behind() || self.sync_requested {
            self.sync_deadline = None;
            return;
        }
        let due = self.sync_deadline.is_some_and(|at| at <= self.now);
        if self.net.has_held_outputs() || due {
            self.sync_requested = true;
            self.sync_deadline = None;
            self.net.emit(Output::SyncStore);
        } else if self.sync_deadline.is_none() {
            self.sync_deadline = Some(self.now + DEFERRED_SYNC);
        }
    }

    /// Sends to the master once what we wrote so far is durable.
    fn send_master(&mut self, packet: impl Into<Packet>) {
        if let Some(conn) = self.link.conn() {
            self.net.send_after(self.store.written(), conn, packet);
        }
    }

    fn answer_master(&mut self, msg_id: u32, packet: impl Into<Packet>) {
        if let Some(conn) = self.link.conn() {
            self.net
                .answer_after(self.store.written(), conn, msg_id, packet);
        }
    }

    // ------------------------------------------------------------ helpers

    fn log(&mut self, level: Level, message: impl Into<String>) {
        self.net.log(level, message);
    }

    /// Looks for the primary master.
    fn connect_to_master(&mut self) {
        if self.phase == Lifecycle::Bootstrapping {
            let (nodes, net) = (&mut self.nodes, &mut self.net);
            self.link.connect(nodes, self.now, net, ConnRole::Master);
        }
    }

    /// The primary is gone (or refused us): drop everything and look again.
    /// What we asked the master goes with it: operation ends below.
    fn primary_lost(&mut self, why: &str) {
        let (nodes, net) = (&mut self.nodes, &mut self.net);
        self.link.lose(nodes, net, false, why);
        for conn in self.net.ids() {
            self.net.close(conn);
        }
        self.postponed.clear();
        for key in self.nodes.keys() {
            if let Some(entry) = self.nodes.get_mut(key) {
                entry.conn = None;
                entry.identified = false;
            }
        }
        self.phase = Lifecycle::Bootstrapping;
        self.cluster_state = None;
        self.end_operation();
        self.connect_to_master();
    }

    /// StopOperation: back to initializing, keeping only the master
    /// connection.
    fn stop_operation(&mut self) {
        self.log(Level::Warn, "operation stopped by the master".to_string());
        self.phase = Lifecycle::Initializing;
        for conn in self.net.ids() {
            if !self.link.is_conn(conn) {
                self.close_conn(conn);
            }
        }
        self.postponed.clear();
        self.end_operation();
    }

    /// Leaving operation: pending transactions are forgotten (their
    /// temporary records stay for verification to decide), postponed
    /// requests and the pack in progress are dropped. NEO/py starts each
    /// operation with a new transaction manager, and the master announces
    /// pack orders again when we are ready.
    fn end_operation(&mut self) {
        self.locks.clear(self.store.write());
        self.waiting.clear();
        self.packer = Packer::default();
        self.replicator = Replicator::default();
        self.checker = Checker::default();
    }

    /// StartOperation: serve clients and peers.
    fn start_operation(&mut self) {
        self.phase = Lifecycle::Operating;
        self.log(Level::Info, "operational".to_string());
        self.send_master(NotifyReady {});
        self.locks = TransactionLocks::new(self.pt.as_ref().map(PartitionTable::partitions));
        self.refresh_cells();
        self.replicator_start();
        // Verification decided the fate of every unfinished transaction:
        // what remains is abandoned.
        self.store.write().drop_unfinished();
        self.maybe_pack(None);
    }

    /// Recomputes which partitions we serve reads of and which we take
    /// lockless writes for, from the partition table.
    fn refresh_cells(&mut self) {
        let (Some(pt), Some(nid)) = (&self.pt, self.link.nid()) else {
            self.readable.clear();
            return;
        };
        self.readable = (0..pt.num_partitions())
            .map(|p| pt.cell(p, nid).is_some_and(|c| c.is_readable()))
            .collect();
    }

    /// Refuses a partition number a peer sent (`field`) unless it is a
    /// partition of our table.
    fn check_partition(&self, field: &str, partition: u32) -> Result<(), Reject> {
        match &self.pt {
            Some(pt) if pt.contains(partition) => Ok(()),
            pt => Err(Reject::partition_out_of_range(
                field,
                partition,
                pt.as_ref().map_or(0, PartitionTable::num_partitions),
            )),
        }
    }

    fn is_readable(&self, partition: u32) -> bool {
        self.readable
            .get(partition as usize)
            .copied()
            .unwrap_or(false)
    }

    fn readable_partitions(&self) -> Vec<u32> {
        (0..self.readable.len() as u32)
            .filter(|&p| self.readable[p as usize])
            .collect()
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(closed) = self.net.close(conn) {
            self.conn_lost(conn, closed.state);
        }
    }

    fn shutdown(&mut self, erase: bool) {
        if erase {
            self.log(
                Level::Warn,
                "removed from the cluster: erasing the database".to_string(),
            );
            self.store.write().erase();
        }
        self.store.sync();
        for conn in self.net.ids() {
            self.net.close(conn);
        }
        self.phase = Lifecycle::Exited;
        self.net.emit(Output::Exit {
            reason: if erase {
                "removed from the cluster".into()
            } else {
                "stopped by the master".into()
            },
        });
    }

    // ------------------------------------------------------------ input

    fn on_connected(&mut self, conn: ConnId) {
        match self.net.connected(conn).copied() {
            Some(ConnRole::ToStorage(key)) => self.on_peer_connected(conn, key),
            Some(ConnRole::Master) if self.link.is_conn(conn) => {
                // Our topology, for the master to keep replicas apart;
                // `new_nid` asks for an id of the new kind.
                let devpath = self.config.devpath.iter().cloned().map(Value::Bin);
                let mut extra = Map::new();
                extra.0.push((
                    Bytes::from_static(b"devpath"),
                    Value::Array(devpath.collect()),
                ));
                extra
                    .0
                    .push((Bytes::from_static(b"new_nid"), Value::Array(Vec::new())));
                self.link
                    .identify(&mut self.net, Request::Identification, extra);
            }
            _ => {}
        }
    }

    fn on_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        let Some(role) = self.net.state(conn).copied() else {
            return;
        };
        let result = match self.net.dispatch(conn, msg_id, packet) {
            Dispatch::Answer(request, packet) => {
                self.on_answer(conn, msg_id, request, packet);
                Ok(())
            }
            Dispatch::Request(packet) => match role {
                ConnRole::Master => self.on_master_packet(msg_id, packet),
                ConnRole::Unidentified => self.identify(conn, msg_id, packet),
                ConnRole::Client(_, nid) => match packet {
                    Packet::CloseClient(_) | Packet::FlushLog(_) => Ok(()),
                    other => self.on_client_packet(conn, nid, msg_id, other),
                },
                ConnRole::Storage(_) => self.on_peer_packet(conn, msg_id, packet),
                ConnRole::ToStorage(_) => {
                    Err(Reject::unexpected(&packet, "storage identification"))
                }
            },
            Dispatch::Done => Ok(()),
            Dispatch::Refuse(reject) => Err(reject),
        };
        if let Err(reject) = result {
            self.reject(conn, msg_id, reject);
        }
    }

    fn on_answer(&mut self, conn: ConnId, msg_id: u32, request: Request, packet: Packet) {
        match request {
            Request::Identification => self.on_identification_answer(packet),
            Request::PackOrders { from } => match packet {
                Packet::AnswerPackOrders(answer) => self.on_pack_orders(answer.orders, from),
                _ => self.packer_asking_failed(),
            },
            Request::UnfinishedTransactions { partitions } => {
                if let Packet::AnswerUnfinishedTransactions(answer) = packet {
                    self.on_unfinished_transactions(answer.max_tid, answer.ttids, &partitions);
                }
            }
            Request::PeerIdentification(key) => self.on_peer_identified(conn, key, packet),
            Request::Replication => self.on_replication_packet(conn, msg_id, packet),
            Request::Check => self.on_check_answer(conn, msg_id, packet),
        }
    }

    fn reject(&mut self, conn: ConnId, msg_id: u32, reject: Reject) {
        let role = self.net.state(conn).copied();
        let described = |key: NodeKey| self.nodes.get(key).map(|e| e.describe());
        let peer = match role {
            Some(ConnRole::Master) => Some("the master".to_string()),
            Some(ConnRole::Client(_, nid)) => Some(format!("client {nid}")),
            Some(ConnRole::Storage(key) | ConnRole::ToStorage(key)) => described(key),
            Some(ConnRole::Unidentified) | None => None,
        }
        .unwrap_or_else(|| "an unidentified peer".to_string());
        if self.net.reject(conn, msg_id, reject, &peer).is_some() {
            if let Some(role) = role {
                self.conn_lost(conn, role);
            }
        }
    }

    fn on_identification_answer(&mut self, packet: Packet) {
        let (nodes, net) = (&mut self.nodes, &mut self.net);
        match self
            .link
            .on_identification_answer(nodes, net, packet, Level::Warn)
        {
            Identified::Accepted { nid } => {
                // Written to the database and used as ours from then on.
                self.store.write().set_nid(nid);
                self.load_partition_table();
                self.phase = Lifecycle::Initializing;
            }
            Identified::Refused { error, .. } => {
                // Two candidate masters of a new cluster may give the same
                // id to two storages (NEO/py's testSplitBrainAtCreation);
                // the winner then refuses one of them forever. A storage
                // that holds no partition table has no data: its id means
                // nothing yet, so it gives it up and asks for a new one.
                let conflict = error.code == neo_proto::ErrorCode::ProtocolError
                    && &error.message[..] == b"already connected";
                let has_nid = self.link.nid().is_some();
                if conflict && has_nid && self.store.partition_table().is_none() {
                    self.log(
                        Level::Warn,
                        "our id is taken and we hold no data: asking for a new one".to_string(),
                    );
                    self.link.forget_nid();
                }
            }
            Identified::Invalid => self.primary_lost("invalid identification"),
        }
    }

    fn load_partition_table(&mut self) {
        self.pt = self.store.partition_table().map(|t| {
            PartitionTable::from_rows(Some(t.ptid), t.num_replicas, &t.rows)
                .expect("a store keeps only the tables it was given, never an empty one")
        });
        if let Some(pt) = &self.pt {
            for nid in pt.nodes(false) {
                if self.nodes.by_nid(nid).is_none() {
                    self.nodes
                        .add(NodeType::Storage, None, Some(nid), NodeState::Down);
                }
            }
        }
    }

    /// Packets from the master, in every phase.
    fn on_master_packet(&mut self, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        match self.link.on_packet(&mut self.nodes, &mut self.pt, packet)? {
            FromPrimary::Done => Ok(()),
            FromPrimary::Nodes { nodes, effects } => self.on_node_information(&nodes, effects),
            FromPrimary::TableReplaced(table) => {
                self.on_table_replaced(table);
                Ok(())
            }
            FromPrimary::TableChanged { changes, caught_up } => {
                self.on_table_changed(changes, &caught_up);
                Ok(())
            }
            FromPrimary::Other(packet) => self.on_master_order(msg_id, packet),
        }
    }

    /// The primary sent a new (checked, installed) table: store it.
    fn on_table_replaced(&mut self, table: neo_proto::SendPartitionTable) {
        let own = self.own_nid();
        let stored = StoredTable {
            ptid: table.ptid.unwrap_or_default(),
            num_replicas: table.num_replicas,
            rows: table.rows,
        };
        let last_pack_id = self.packer.last_pack_id;
        self.store
            .write()
            .reset_partition_table(own, &stored, last_pack_id);
        self.refresh_cells();
    }

    /// The primary changed the (already updated) table: store the
    /// changes; cells that caught up may complete a pack.
    fn on_table_changed(&mut self, changes: neo_proto::NotifyPartitionChanges, caught_up: &[u32]) {
        let own = self.own_nid();
        let last_pack_id = self.packer.last_pack_id;
        self.store.write().change_partition_table(
            own,
            changes.ptid,
            changes.num_replicas,
            &changes.changes,
            last_pack_id,
        );
        self.refresh_cells();
        if self.phase == Lifecycle::Operating {
            self.replicator_cells_changed(&changes.changes);
            if !caught_up.is_empty() {
                // The smallest completed pack over our cells may have
                // moved, and a pack may now apply to them.
                self.notify_pack_completed();
                self.maybe_pack(None);
            }
        }
    }

    /// Our id, once the primary accepted us (it gave us one then).
    fn own_nid(&self) -> Nid {
        self.link
            .nid()
            .expect("the link reports table changes only once identified, with our id")
    }

    /// What the primary orders a storage: recovery, verification, commit
    /// steps, operation control.
    fn on_master_order(&mut self, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        let operating = self.phase == Lifecycle::Operating;
        match packet {
            Packet::NotifyClusterInformation(info) => {
                self.cluster_state = Some(info.state);
                Ok(())
            }
            Packet::AskRecovery(_)
            | Packet::AskPartitionTable(_)
            | Packet::AskLastIDs(_)
            | Packet::AskLockedTransactions(_)
            | Packet::AskFinalTID(_)
            | Packet::ValidateTransaction(_)
            | Packet::AskPackOrders(_) => self.on_verification_request(msg_id, packet),
            Packet::StartOperation(_) => {
                if self.phase == Lifecycle::Initializing {
                    self.start_operation();
                }
                Ok(())
            }
            Packet::StopOperation(_) => {
                self.stop_operation();
                Ok(())
            }
            Packet::Truncate(truncate) => {
                let store = self.store.write();
                store.set_backup_tid(None);
                store.set_truncate_tid(Some(truncate.tid));
                Ok(())
            }
            Packet::AskLockInformation(_)
            | Packet::NotifyUnlockInformation(_)
            | Packet::AbortTransaction(_)
            | Packet::NotifyTransactionFinished(_)
            | Packet::CheckPartition(_)
                if operating =>
            {
                self.on_commit_order(msg_id, packet)
            }
            Packet::NotifyPackSigned(signed) => {
                self.on_pack_signed(&signed.approved, &signed.rejected);
                Ok(())
            }
            Packet::NotifyRepair(_) | Packet::FlushLog(_) => Ok(()),
            other => Err(Reject::unexpected(&other, "master")),
        }
    }

    /// What the master asks during recovery and verification (and of
    /// pack orders when we become ready).
    fn on_verification_request(&mut self, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        match packet {
            Packet::AskRecovery(_) => {
                let config = self.store.config();
                let answer = AnswerRecovery {
                    ptid: self.pt.as_ref().and_then(|pt| pt.ptid()),
                    backup_tid: config.backup_tid,
                    truncate_tid: config.truncate_tid,
                };
                self.answer_master(msg_id, answer);
                Ok(())
            }
            Packet::AskPartitionTable(_) => {
                let Some(pt) = &self.pt else {
                    return Err(Reject::protocol("no partition table"));
                };
                let answer = AnswerPartitionTable {
                    ptid: pt.ptid().unwrap_or_default(),
                    num_replicas: pt.num_replicas(),
                    rows: pt.rows(),
                };
                self.answer_master(msg_id, answer);
                Ok(())
            }
            Packet::AskLastIDs(_) => {
                self.store.write().truncate();
                let (last_tid, last_oid) = self.store.last_ids();
                let first_tid = self.store.first_tid();
                // The master learns where packing stands on our cells.
                self.notify_pack_completed();
                self.answer_master(
                    msg_id,
                    AnswerLastIDs {
                        last_tid,
                        last_oid,
                        first_tid,
                    },
                );
                Ok(())
            }
            Packet::AskLockedTransactions(_) => {
                let transactions = self.store.unfinished_transactions().into_iter().collect();
                self.answer_master(msg_id, AnswerLockedTransactions { transactions });
                Ok(())
            }
            Packet::AskFinalTID(ask) => {
                let tid = match self.locks.final_tid(ask.ttid) {
                    Some(tid) => tid,
                    None => self.store.final_tid(ask.ttid),
                };
                self.answer_master(msg_id, AnswerFinalTID { tid });
                Ok(())
            }
            Packet::ValidateTransaction(validate) => {
                let store = self.store.write();
                store.lock_transaction(validate.ttid, validate.tid, true);
                store.unlock_transaction(validate.ttid, validate.tid);
                Ok(())
            }
            Packet::AskPackOrders(ask) => {
                let partitions = self.readable_partitions();
                let orders = self.store.pack_orders(ask.min_pack_id, &partitions);
                self.answer_master(msg_id, AnswerPackOrders { orders });
                Ok(())
            }
            other => Err(Reject::unexpected(&other, "master")),
        }
    }

    /// The master's steps of a commit in service, and replica checks.
    fn on_commit_order(&mut self, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        match packet {
            Packet::AskLockInformation(lock) => {
                self.locks
                    .lock(self.store.write(), lock.ttid, lock.tid, lock.pack)
                    .map_err(Reject::protocol)?;
                // Locked on disk before the master hears it.
                self.answer_master(msg_id, AnswerInformationLocked { ttid: lock.ttid });
                Ok(())
            }
            Packet::NotifyUnlockInformation(unlock) => {
                self.locks
                    .unlock(self.store.write(), unlock.ttid)
                    .map_err(Reject::protocol)?;
                // Made durable within DEFERRED_SYNC: until then the locked
                // temporary records let verification replay it.
                self.run_postponed();
                Ok(())
            }
            Packet::AbortTransaction(abort) => {
                self.abort_transaction(abort.ttid);
                self.replication_transaction_finished(abort.ttid, None);
                Ok(())
            }
            Packet::NotifyTransactionFinished(finished) => {
                self.abort_transaction(finished.ttid);
                self.replication_transaction_finished(finished.ttid, Some(finished.max_tid));
                Ok(())
            }
            Packet::CheckPartition(check) => {
                self.on_check_partition(check);
                Ok(())
            }
            other => Err(Reject::unexpected(&other, "master")),
        }
    }

    fn on_node_information(
        &mut self,
        nodes: &[neo_proto::NodeInfo],
        effects: NotificationEffects,
    ) -> Result<(), Reject> {
        for conn in effects.closed_conns {
            if !self.link.is_conn(conn) {
                self.close_conn(conn);
            }
        }
        for nid in effects.forgotten_storages {
            if let Some(pt) = &mut self.pt {
                pt.drop_node(nid);
            }
        }
        if self.phase == Lifecycle::Operating {
            self.check_replication_source();
        }
        match effects.own_state {
            Some(NodeState::Down) => {
                self.shutdown(false);
                return Ok(());
            }
            Some(NodeState::Unknown) => {
                self.shutdown(true);
                return Ok(());
            }
            _ => {}
        }
        if self.phase == Lifecycle::Operating {
            // A client the master no longer runs will not finish anything:
            // whatever it did not get locked goes, voted or not.
            for node in nodes {
                if let (NodeType::Client, Some(nid), false) =
                    (node.node_type, node.nid, node.state == NodeState::Running)
                {
                    self.abort_client(nid, true);
                }
            }
        }
        self.retry_postponed();
        // A replication source may have become available.
        self.next_partition();
        Ok(())
    }

    // ------------------------------------------------------------ peers

    /// Identification of a client or another storage (cluster.md 1.4).
    fn identify(&mut self, conn: ConnId, msg_id: u32, packet: Packet) -> Result<(), Reject> {
        let Packet::RequestIdentification(request) = packet else {
            return Err(Reject::unexpected(&packet, "identification"));
        };
        if request.cluster_name != self.config.cluster {
            return Err(Reject::protocol("invalid cluster name"));
        }
        if self.phase != Lifecycle::Operating {
            return Err(Reject::not_ready("not operational"));
        }
        let Some(nid) = request.nid else {
            // Anonymous storages replicate for backup clusters (not
            // supported yet).
            return Err(Reject::protocol("reject anonymous node"));
        };
        if Some(nid) == self.link.nid() {
            return Err(Reject::protocol("uuid conflict or loopback connection"));
        }
        let known = self
            .nodes
            .by_nid(nid)
            .filter(|&k| self.nodes[k].id_timestamp == request.id_timestamp);
        if request.id_timestamp.is_some_and(|ts| !ts.0.is_finite()) {
            return Err(Reject::protocol(
                "RequestIdentification.id_timestamp is not a time",
            ));
        }
        let Some(key) = known else {
            let newer = request
                .id_timestamp
                .is_some_and(|ts| self.nodes.last_notification() < ts.0);
            let waiting = self.postponed.iter().any(|(c, ..)| *c == conn);
            if newer && !waiting && self.postponed.len() < POSTPONED_IDENTIFICATIONS_COUNT_MAX {
                // The master has not told us about it yet.
                self.postponed.push((conn, msg_id, request));
                return Ok(());
            }
            return Err(Reject::not_ready("unknown by master"));
        };
        let entry_type = self.nodes.get(key).map(|e| e.node_type);
        if entry_type != Some(request.node_type) {
            return Err(Reject::protocol(format!(
                "a {} presents the id of a {entry_type:?}",
                request.node_type
            )));
        }
        let role = match request.node_type {
            NodeType::Client => ConnRole::Client(key, nid),
            NodeType::Storage => ConnRole::Storage(key),
            _ => return Err(Reject::protocol("reject non-client-or-storage node")),
        };
        if let Some(existing) = self.nodes[key].conn {
            // Both sides connected at once: keep one, deterministically.
            let replace = request.node_type == NodeType::Storage
                && self.link.nid().is_some_and(|own| own < nid);
            if !replace {
                return Err(Reject::protocol("already connected"));
            }
            self.close_conn(existing);
        }
        let entry = &mut self.nodes[key];
        entry.conn = Some(conn);
        entry.identified = true;
        *self.net.state_mut(conn).unwrap() = role;
        self.net.answer(
            conn,
            msg_id,
            AcceptIdentification {
                node_type: NodeType::Storage,
                nid: self.link.nid(),
                your_nid: Some(nid),
            },
        );
        Ok(())
    }

    fn retry_postponed(&mut self) {
        for (conn, msg_id, request) in std::mem::take(&mut self.postponed) {
            if !self.net.contains(conn) {
                continue;
            }
            if let Err(reject) = self.identify(conn, msg_id, Packet::RequestIdentification(request))
            {
                self.reject(conn, msg_id, reject);
            }
        }
    }

    fn conn_lost(&mut self, conn: ConnId, role: ConnRole) {
        match role {
            ConnRole::Master => {
                if self.link.is_conn(conn) {
                    self.primary_lost("connection closed");
                }
            }
            ConnRole::Unidentified => self.postponed.retain(|(c, _, _)| *c != conn),
            ConnRole::Client(key, _) | ConnRole::Storage(key) | ConnRole::ToStorage(key) => {
                if let Some(entry) = self.nodes.get_mut(key) {
                    if entry.conn == Some(conn) {
                        entry.conn = None;
                        entry.identified = false;
                    }
                }
                if let ConnRole::Storage(key) | ConnRole::ToStorage(key) = role {
                    let nid = self.nodes.get(key).and_then(|e| e.nid());
                    self.peer_lost(nid);
                }
                self.waiting.forget(conn);
                if let ConnRole::Client(_, nid) = role {
                    // The client may still be committing through the
                    // master: only what it has not voted is abandoned.
                    if self.phase == Lifecycle::Operating {
                        self.abort_client(nid, false);
                    }
                }
            }
        }
    }

    fn on_timeout(&mut self) {
        if self.phase == Lifecycle::Bootstrapping {
            let (nodes, net) = (&mut self.nodes, &mut self.net);
            self.link.on_timeout(nodes, self.now, net, ConnRole::Master);
        }
        if self.packer.is_running() {
            self.pack_step();
        }
    }
}

impl<S: Store> Node for Storage<S> {
    type Event = std::convert::Infallible;

    fn handle(&mut self, now: Time, input: Input) {
        self.now = self.now.max(now);
        if self.phase == Lifecycle::Exited {
            return;
        }
        match input {
            Input::Accepted { conn } => self.net.accept(conn, ConnRole::Unidentified),
            Input::Connected { conn } => self.on_connected(conn),
            Input::ConnectFailed { conn } | Input::Closed { conn } => {
                if let Some(closed) = self.net.forget(conn) {
                    self.conn_lost(conn, closed.state);
                }
            }
            Input::Packet {
                conn,
                msg_id,
                packet,
            } => self.on_packet(conn, msg_id, packet),
            Input::Timeout => self.on_timeout(),
        }
        self.send_replication_announcements();
        self.request_sync_if_needed();
    }

    fn poll_output(&mut self) -> Option<Output<Self::Event>> {
        self.net.poll()
    }

    fn poll_timeout(&self) -> Option<Time> {
        // A pack in progress continues as soon as other work allows.
        let pack = self.packer.is_running().then_some(self.now);
        let retry = self.link.poll_timeout();
        [retry, self.sync_deadline, pack]
            .into_iter()
            .flatten()
            .min()
    }
}
