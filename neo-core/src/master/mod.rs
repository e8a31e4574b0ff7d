//! The master node.
//!
//! Every master runs the same loop: play the primary role — as a candidate
//! in RECOVERING, which is where the election happens — and, when another
//! master wins, play the secondary role until that primary fails, then
//! play primary again. The primary does every central job: node ids,
//! cluster state, the partition table, recovery and verification, and (in
//! service) transactions.
//!
//! Submodules, one per concept:
//! - [`identification`]: accepting nodes (primary) and turning them away
//!   (secondary);
//! - [`election`]: candidate connections to other masters, secondary role;
//! - [`recovery`], [`verification`]: the cluster states before service;
//! - [`service`]: storages in RUNNING (readiness, loss, replication done);
//! - [`client`]: clients in RUNNING (begin, finish, abort, pack), over
//!   [`transactions`] (TIDs, commit queue) and [`pack`] (pack orders);
//! - [`admin`]: operator commands forwarded by the admin node.

mod admin;
mod check;
mod election;
mod identification;
mod pack;
mod recovery;
mod serve_clients;
mod service;
mod transactions;
mod verification;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use neo_proto::{
    Address, AnswerClusterState, AnswerLastIDs, AnswerLastTransaction, AnswerRecovery,
    ClusterState, Nid, NodeInfo, NodeState, NodeType, NotifyClusterInformation,
    NotifyNodeInformation, NotifyPartitionChanges, Packet, Partitions, Ping, SendPartitionTable,
    StopOperation, Tid, Timestamp, Truncate,
};

use crate::liveness::{Liveness, Verdict};
use crate::net::{Dispatch, Net, Reject};
use crate::node::{ConnId, Input, Level, Node, Output};
use crate::node_table::{NodeKey, NodeTable};
use crate::pt::{Changes, PartitionTable};
use crate::throttle::ConnectThrottle;
use crate::time::{Time, TimestampClock, WallTime};

pub use election::ElectionKey;

/// What a master is started with (NEO/py's `neomaster` options).
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Cluster name; every node must present the same.
    pub cluster: Bytes,
    /// Our listening address (already bound by the runtime).
    pub bind: Address,
    /// Addresses of every master of the cluster (ours may be among them).
    pub masters: Vec<Address>,
    /// Partitions of a new cluster's table (fixed at creation).
    pub partitions: Partitions,
    /// Replicas of a new cluster's table.
    pub replicas: u32,
    /// Create a new cluster automatically once this many storages wait.
    pub autostart: Option<u32>,
    /// Node id to use (testing).
    pub nid: Option<Nid>,
    /// A storage silent this long is pinged; one that does not answer
    /// within as long again is taken as gone (its cells go out of date).
    pub storage_ping: Duration,
}

impl MasterConfig {
    /// NEO/py's interval between pings to a silent storage.
    pub const DEFAULT_STORAGE_PING: Duration = Duration::from_secs(10);
}

/// Context of a request the master sent, to handle its answer in.
/// `epoch` ties answers to the phase that asked: an answer arriving after
/// the phase ended is ignored (NEO/py's deferred handler switch).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    /// Our RequestIdentification to another master.
    Identification,
    /// Whether a silent storage is still there.
    Ping,
    Recovery {
        epoch: u64,
    },
    PartitionTable {
        epoch: u64,
    },
    LockedTransactions {
        epoch: u64,
    },
    FinalTid {
        epoch: u64,
    },
    LastIds {
        epoch: u64,
    },
    PackOrders {
        epoch: u64,
    },
    /// AskLockInformation (answered in RUNNING or STOPPING only).
    LockInformation {
        ttid: Tid,
    },
    /// AskPackOrders collecting forgotten orders for request `id`.
    OldPackOrders {
        id: u64,
    },
}

/// What a connection is for, from the master's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnRole {
    /// Accepted, before RequestIdentification.
    Unidentified,
    /// Accepted and identified: the peer's entry.
    Peer(NodeKey),
    /// Opened by a primary candidate to another master.
    Election(NodeKey),
    /// Opened by a secondary to the master it follows.
    ToPrimary(NodeKey),
}

/// The primary role's phases.
#[derive(Debug)]
enum PrimaryPhase {
    Recovery(recovery::Recovery),
    Verification(verification::Verification),
    Service,
    /// Shutting down: waiting for transactions, then telling nodes.
    Stopping,
}

#[derive(Debug)]
struct Primary {
    /// When we started playing primary: our election key (with our
    /// address) while RECOVERING.
    election_ts: f64,
    cluster_state: ClusterState,
    /// The cluster may start without every node that holds readable
    /// cells: set by `neoctl start` only.
    startup_allowed: bool,
    /// Before starting the cluster, a candidate hears once more from every
    /// master not identified with it (connected, refused, or unreachable):
    /// one of them may be a primary still serving behind a network cut
    /// that just healed. NEO/py starts at once and, the simulator showed,
    /// can then run two primaries on two versions of the table. `None`: no
    /// round under way; otherwise the masters still to hear from.
    election_round: Option<BTreeSet<NodeKey>>,
    /// Masters not heard from since we started playing primary. Until all
    /// are, we give no fresh id to a storage: a candidate that turns out to
    /// have lost would give ids the winner gives to other storages.
    unheard_masters: BTreeSet<NodeKey>,
    /// Incremented at every phase change.
    epoch: u64,
    phase: PrimaryPhase,
    truncate_tid: Option<Tid>,
    /// Pending transactions, last committed TID, last OID, first TID.
    commits: transactions::CommitCoordinator,
    pm: pack::PackManager,
    /// Client requests waiting for a condition (begin while storages
    /// start, FailedVote while another transaction lost storages).
    postponed: Vec<(ConnId, u32, Packet)>,
    /// Readiness of storages (NotifyReady order) and those started but not
    /// ready yet.
    readiness: u64,
    ready: BTreeMap<Nid, u64>,
    starting: BTreeSet<Nid>,
    /// Pack ids completed by each storage (NotifyPackCompleted).
    completed_pack: BTreeMap<Nid, Tid>,
    /// Partitions told to check their replicas: the storage told, and the
    /// pack generation then (`None`: a pack was being applied).
    checks: BTreeMap<u32, (Nid, Option<u64>)>,
}

#[derive(Debug)]
enum Role {
    Primary(Box<Primary>),
    Secondary(election::Secondary),
    Exited,
}

/// The master node state machine.
#[derive(Debug)]
pub struct Master {
    config: MasterConfig,
    /// The monotonic clock: timers.
    now: Time,
    /// The last wall clock reading ([`Master::observe_wall_time`]): TIDs
    /// and node timestamps, nothing that waits.
    wall: WallTime,
    clock: TimestampClock,
    net: Net<Request, ConnRole, Infallible>,
    nodes: NodeTable,
    own: NodeKey,
    pt: PartitionTable,
    role: Role,
    throttle: ConnectThrottle,
    /// When the current role wants to be woken (connection retries).
    wake_at: Option<Time>,
    /// Storages that stop answering (primary).
    liveness: Liveness,
    /// Ids of storages the operator dropped: never given to another node,
    /// so that a dropped storage that comes back (it was down when dropped
    /// and never heard it) is a newcomer, not a clash with a node that
    /// took its id (NEO/py reuses the smallest free id: the returning
    /// storage is then refused forever as "already connected").
    retired_nids: BTreeSet<Nid>,
    /// This master has known a partition table: autostart must never make
    /// a new, empty one (NEO/py does when, after the cluster stopped, only
    /// storages without data are back: the database silently restarts
    /// empty while the storages holding it are away).
    had_table: bool,
}

/// Why the primary stops serving (NEO/py's StoppedOperation).
#[derive(Debug)]
struct StoppedOperation {
    truncate: Option<Tid>,
}

impl Master {
    /// A master that starts as a candidate in the election; `wall` seeds
    /// its TID and identification clock.
    pub fn new(config: MasterConfig, now: Time, wall: WallTime) -> Master {
        let others = config.masters.iter().filter(|addr| **addr != config.bind);
        let mut nodes = NodeTable::with_masters(others);
        let own = nodes.add(
            NodeType::Master,
            Some(config.bind.clone()),
            config.nid,
            NodeState::Down,
        );
        nodes.pin(own);
        let pt = PartitionTable::new(config.partitions, config.replicas);
        let liveness = Liveness::new(config.storage_ping, config.storage_ping);
        let mut master = Master {
            config,
            now,
            wall,
            clock: TimestampClock::default(),
            net: Net::new(),
            nodes,
            own,
            pt,
            role: Role::Exited,
            throttle: ConnectThrottle::default(),
            wake_at: None,
            liveness,
            retired_nids: BTreeSet::new(),
            had_table: false,
        };
        master.log(
            Level::Info,
            format!(
                "master of cluster {:?} listening on {}: {} partitions, {} replicas",
                String::from_utf8_lossy(&master.config.cluster),
                master.config.bind,
                master.config.partitions,
                master.config.replicas
            ),
        );
        master.play_primary();
        // Reach the other masters at once, as NEO/py does on start.
        master.after_event();
        master
    }

    // ------------------------------------------------------------ getters

    /// Our node id, once we have one.
    pub fn nid(&self) -> Option<Nid> {
        self.nodes.get(self.own).and_then(|e| e.nid())
    }

    /// Where we listen.
    pub fn address(&self) -> &Address {
        &self.config.bind
    }

    /// Whether we are the primary (having won the election).
    pub fn is_primary(&self) -> bool {
        matches!(self.role, Role::Primary(_))
    }

    /// The cluster state if we are primary.
    pub fn cluster_state(&self) -> Option<ClusterState> {
        match &self.role {
            Role::Primary(primary) => Some(primary.cluster_state),
            _ => None,
        }
    }

    /// The address of the primary we follow, if secondary.
    pub fn primary_address(&self) -> Option<&Address> {
        match &self.role {
            Role::Secondary(secondary) => {
                self.nodes.get(secondary.primary).and_then(|e| e.address())
            }
            Role::Primary(_) => Some(&self.config.bind),
            Role::Exited => None,
        }
    }

    /// What the master's state must always satisfy (the simulator checks
    /// it after every step).
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.nodes.get(self.own).is_none() {
            return Err("the master's own entry left its node table".into());
        }
        match &self.role {
            Role::Primary(_) => self.pt.check_invariants(),
            _ => Ok(()),
        }
    }

    /// The partition table (the primary's is the cluster's).
    pub fn partition_table(&self) -> &PartitionTable {
        &self.pt
    }

    /// The node table (ourselves included).
    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    /// Last committed TID (primary).
    pub fn last_transaction(&self) -> Option<Tid> {
        match &self.role {
            Role::Primary(primary) => Some(primary.commits.last_transaction),
            _ => None,
        }
    }

    /// TTIDs of transactions being finished (primary), oldest first.
    pub fn finishing_transactions(&self) -> Vec<Tid> {
        match &self.role {
            Role::Primary(primary) => primary.commits.finishing().map(|t| t.ttid).collect(),
            _ => Vec::new(),
        }
    }

    /// Storages that are identified and RUNNING (primary's view).
    pub fn running_storages(&self) -> Vec<Nid> {
        self.nodes
            .of_type(NodeType::Storage)
            .filter(|(_, e)| e.identified && e.is_running())
            .filter_map(|(_, e)| e.nid())
            .collect()
    }

    // ------------------------------------------------------------ helpers

    fn log(&mut self, level: Level, message: impl Into<String>) {
        self.net.log(level, message);
    }

    fn primary(&self) -> Option<&Primary> {
        match &self.role {
            Role::Primary(primary) => Some(primary),
            _ => None,
        }
    }

    fn primary_mut(&mut self) -> Option<&mut Primary> {
        match &mut self.role {
            Role::Primary(primary) => Some(primary),
            _ => None,
        }
    }

    fn state_of(&self) -> impl Fn(Nid) -> Option<NodeState> + '_ {
        |nid| self.nodes.state_of(nid)
    }

    fn node_desc(&self, key: NodeKey) -> String {
        self.nodes
            .get(key)
            .map_or_else(|| "?".into(), |e| e.describe())
    }

    fn conn_of(&self, key: NodeKey) -> Option<ConnId> {
        self.nodes.get(key).and_then(|e| e.conn)
    }

    /// Sends to the node's connection, if it has one.
    fn send_to(&mut self, key: NodeKey, packet: impl Into<Packet>) {
        if let Some(conn) = self.conn_of(key) {
            self.net.send(conn, packet);
        }
    }

    fn identified_keys(&self) -> Vec<NodeKey> {
        self.nodes.identified().map(|(k, _)| k).collect()
    }

    /// Broadcasts what changed about these nodes, to every identified node
    /// that is allowed to know (protocol.md §11.5: admins and storages hear
    /// about every non-admin node, clients about masters and storages,
    /// masters about masters).
    fn broadcast_nodes(&mut self, changed: &[NodeKey]) {
        if changed.is_empty() {
            return;
        }
        let infos: Vec<(NodeType, NodeInfo)> = changed
            .iter()
            .filter_map(|&k| self.nodes.get(k))
            .map(|e| (e.node_type, e.info()))
            .collect();
        if infos.is_empty() {
            return;
        }
        let timestamp = Timestamp(self.clock.now(self.wall));
        for key in self.identified_keys() {
            let receiver = self.nodes[key].node_type;
            let list: Vec<NodeInfo> = infos
                .iter()
                .filter(|(changed_type, _)| visible_to(*changed_type, receiver))
                .map(|(_, info)| info.clone())
                .collect();
            if !list.is_empty() {
                self.send_to(
                    key,
                    NotifyNodeInformation {
                        timestamp,
                        nodes: list,
                    },
                );
            }
        }
    }

    /// The first NotifyNodeInformation after identification: the peer
    /// itself first (so it learns its id_timestamp), then every node it may
    /// know about.
    fn send_initial_node_information(&mut self, peer: NodeKey) {
        let receiver = self.nodes[peer].node_type;
        let mut list = vec![self.nodes[peer].info()];
        for (key, entry) in self.nodes.iter() {
            if key != peer && visible_to(entry.node_type, receiver) {
                list.push(entry.info());
            }
        }
        let timestamp = Timestamp(self.clock.now(self.wall));
        self.send_to(
            peer,
            NotifyNodeInformation {
                timestamp,
                nodes: list,
            },
        );
    }

    /// Broadcasts a change list (bumping the ptid) to every identified node
    /// but masters. With `num_replicas`, announces a new replica count even
    /// without changes.
    fn broadcast_pt_changes(&mut self, changes: Changes, num_replicas: Option<u32>) {
        if let Some(num_replicas) = num_replicas {
            self.pt.set_num_replicas(num_replicas);
        } else if changes.is_empty() {
            return;
        }
        let ptid = self.pt.next_ptid();
        self.log(
            Level::Info,
            format!(
                "partition table {ptid}: {} change(s){}",
                changes.len(),
                describe_changes(&changes)
            ),
        );
        let packet = NotifyPartitionChanges {
            ptid,
            num_replicas: self.pt.num_replicas(),
            changes,
        };
        for key in self.identified_keys() {
            if self.nodes[key].node_type != NodeType::Master {
                self.send_to(key, packet.clone());
            }
        }
    }

    fn send_partition_table(&mut self, key: NodeKey) {
        let packet = SendPartitionTable {
            ptid: self.pt.ptid(),
            num_replicas: self.pt.num_replicas(),
            rows: self.pt.rows(),
        };
        self.send_to(key, packet);
    }

    fn notify_admins(&mut self, packet: Packet) {
        let admins: Vec<NodeKey> = self.nodes.identified_of_type(NodeType::Admin);
        for key in admins {
            self.send_to(key, packet.clone());
        }
    }

    /// Changes the cluster state and tells every identified node.
    fn set_cluster_state(&mut self, state: ClusterState) {
        let Some(primary) = self.primary_mut() else {
            return;
        };
        if primary.cluster_state == state {
            return;
        }
        primary.cluster_state = state;
        self.log(Level::Info, format!("cluster state: {state}"));
        for key in self.identified_keys() {
            self.send_to(key, NotifyClusterInformation { state });
        }
    }

    /// Removes a node whose state was set UNKNOWN after broadcasting it.
    fn forget_node(&mut self, key: NodeKey) {
        if let Some(entry) = self.nodes.get(key) {
            if let (NodeType::Storage, Some(nid)) = (entry.node_type, entry.nid()) {
                self.pt.drop_node(nid);
            }
        }
        self.nodes.remove(key);
    }

    /// Closes a connection we decided to close, then handles it as lost
    /// (NEO/py runs the connection-lost logic on its own closes too).
    fn close_conn(&mut self, conn: ConnId) {
        if let Some(closed) = self.net.close(conn) {
            self.conn_lost(conn, closed.state);
        }
    }

    fn reject(&mut self, conn: ConnId, msg_id: u32, reject: Reject) {
        let role = self.net.state(conn).copied();
        let peer = match role {
            Some(ConnRole::Peer(key) | ConnRole::Election(key) | ConnRole::ToPrimary(key)) => {
                self.node_desc(key)
            }
            _ => "an unidentified peer".to_string(),
        };
        if self.net.reject(conn, msg_id, reject, &peer).is_some() {
            if let Some(role) = role {
                self.conn_lost(conn, role);
            }
        }
    }

    // ------------------------------------------------------------ roles

    /// Starts (or restarts) playing the primary role: a candidate in
    /// RECOVERING.
    fn play_primary(&mut self) {
        for conn in self.net.ids() {
            self.net.close(conn);
        }
        for key in self.nodes.keys() {
            if let Some(entry) = self.nodes.get_mut(key) {
                entry.conn = None;
                entry.identified = false;
                if entry.node_type == NodeType::Storage {
                    entry.state = NodeState::Down;
                }
            }
        }
        // Forget non-storage, non-master nodes of a previous life.
        for (key, entry) in self
            .nodes
            .iter()
            .map(|(k, e)| (k, e.node_type))
            .collect::<Vec<_>>()
        {
            if matches!(entry, NodeType::Client | NodeType::Admin) {
                self.nodes.remove(key);
            }
        }
        if self.nid().is_none() {
            let nid = self.new_nid(None, Some(&self.config.bind.clone()), NodeType::Master);
            self.nodes.set_nid(self.own, Some(nid));
        }
        let own = &mut self.nodes[self.own];
        own.state = NodeState::Running;
        own.id_timestamp = None;
        let election_ts = self.clock.now(self.wall);
        let unheard_masters: BTreeSet<NodeKey> = self
            .nodes
            .of_type(NodeType::Master)
            .map(|(k, _)| k)
            .filter(|&k| k != self.own)
            .collect();
        self.log(
            Level::Info,
            format!("playing the primary role as {}", self.nid().unwrap()),
        );
        self.role = Role::Primary(Box::new(Primary {
            election_ts,
            cluster_state: ClusterState::Recovering,
            startup_allowed: false,
            election_round: None,
            unheard_masters,
            epoch: 0,
            phase: PrimaryPhase::Service,
            truncate_tid: None,
            commits: transactions::CommitCoordinator::new(),
            pm: pack::PackManager::default(),
            postponed: Vec::new(),
            readiness: 0,
            ready: BTreeMap::new(),
            starting: BTreeSet::new(),
            completed_pack: BTreeMap::new(),
            checks: BTreeMap::new(),
        }));
        self.enter_recovery();
    }

    /// NEO/py's `getNewUUID`: keep the requested id when free (or held by
    /// the same address), else the lowest free id of the type's namespace.
    fn new_nid(
        &self,
        requested: Option<Nid>,
        address: Option<&Address>,
        node_type: NodeType,
    ) -> Nid {
        let own = self.nid();
        if let Some(nid) = requested {
            if Some(nid) != own {
                match self.nodes.entry_by_nid(nid) {
                    None => return nid,
                    Some(entry) if entry.address() == address => return nid,
                    _ => {}
                }
            }
        }
        let base = Nid::namespace(node_type) << 24;
        for n in 1..0x1000_0000 {
            let nid = Nid(base + n);
            if self.retired_nids.contains(&nid) {
                continue;
            }
            match self.nodes.entry_by_nid(nid) {
                None => return nid,
                Some(entry) if address.is_some() && entry.address() == address => return nid,
                _ => {}
            }
        }
        unreachable!("node id namespace exhausted")
    }

    /// Leaves service (or verification): tells storages and clients to
    /// stop, back to RECOVERING, where the cluster restarts once every node
    /// holding readable cells is back (see `recovery`: NEO/py restarts
    /// with fewer and can lose data or split the cluster).
    fn stopped_operation(&mut self, stopped: StoppedOperation) {
        self.log(Level::Error, "cluster no longer operational".to_string());
        let truncate = stopped.truncate;
        {
            let primary = self.primary_mut().unwrap();
            primary.startup_allowed = false;
            primary.readiness = 0;
            primary.ready.clear();
            primary.starting.clear();
        }
        let mut changed = Vec::new();
        for key in self.identified_keys() {
            let entry = &self.nodes[key];
            let node_type = entry.node_type;
            if !matches!(node_type, NodeType::Storage | NodeType::Client) {
                continue;
            }
            let conn = entry.conn.unwrap();
            self.net.send(conn, StopOperation {});
            if node_type == NodeType::Client {
                self.close_conn(conn);
                continue;
            }
            if let Some(tid) = truncate {
                self.net.send(conn, Truncate { tid });
            }
            let entry = &mut self.nodes[key];
            if entry.is_running() {
                entry.state = NodeState::Pending;
                changed.push(key);
            }
        }
        self.broadcast_nodes(&changed);
        if let Some(tid) = truncate {
            self.primary_mut().unwrap().truncate_tid = Some(tid);
        }
        self.enter_recovery();
    }

    // ------------------------------------------------------------ input

    fn on_packet(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        let Some(role) = self.net.state(conn).copied() else {
            return; // closed by us meanwhile
        };
        let packet = match self.net.dispatch(conn, msg_id, packet) {
            Dispatch::Answer(request, packet) => {
                if let Err(reject) = self.on_answer(conn, role, request, packet) {
                    if self.net.contains(conn) {
                        self.reject(conn, msg_id, reject);
                    }
                }
                return;
            }
            Dispatch::Request(Packet::FlushLog(_) | Packet::CloseClient(_)) | Dispatch::Done => {
                return
            }
            Dispatch::Request(packet) => packet,
            Dispatch::Refuse(reject) => {
                self.reject(conn, msg_id, reject);
                return;
            }
        };
        let result = match role {
            ConnRole::Unidentified => self.identify(conn, msg_id, packet),
            ConnRole::Peer(key) => self.on_peer_packet(conn, key, msg_id, packet),
            ConnRole::Election(key) => self.on_election_packet(key, packet),
            ConnRole::ToPrimary(key) => self.on_primary_packet(conn, key, packet),
        };
        if let Err(reject) = result {
            if self.net.contains(conn) {
                self.reject(conn, msg_id, reject);
            }
        }
    }

    fn on_answer(
        &mut self,
        conn: ConnId,
        role: ConnRole,
        request: Request,
        packet: Packet,
    ) -> Result<(), Reject> {
        match (role, request) {
            (ConnRole::Election(key) | ConnRole::ToPrimary(key), Request::Identification) => {
                self.on_master_identification_answer(conn, key, packet)
            }
            (ConnRole::Peer(key), request) => {
                let epoch_now = self.primary().map(|p| p.epoch);
                let epoch = match request {
                    Request::Recovery { epoch }
                    | Request::PartitionTable { epoch }
                    | Request::LockedTransactions { epoch }
                    | Request::FinalTid { epoch }
                    | Request::LastIds { epoch }
                    | Request::PackOrders { epoch } => Some(epoch),
                    _ => None,
                };
                if epoch.is_some() && epoch != epoch_now {
                    self.log(
                        Level::Debug,
                        format!(
                            "ignoring late {} from {}",
                            packet.name(),
                            self.node_desc(key)
                        ),
                    );
                    return Ok(());
                }
                match request {
                    Request::OldPackOrders { id } => {
                        if let Some(nid) = self.nodes.get(key).and_then(|e| e.nid()) {
                            self.on_old_pack_orders(id, nid, packet);
                        }
                    }
                    Request::LockInformation { ttid } => {
                        let nid = self.nodes.get(key).and_then(|e| e.nid());
                        match (nid, packet) {
                            (Some(nid), Packet::AnswerInformationLocked(answer))
                                if answer.ttid == ttid =>
                            {
                                self.on_information_locked(nid, ttid)
                            }
                            // The transaction would wait for it until it
                            // goes: make it go now (its loss is handled as
                            // any storage's during a commit).
                            (_, other) => {
                                let desc = self.node_desc(key);
                                self.log(
                                    Level::Warn,
                                    format!("{desc} failed to lock {ttid}: {}", other.name()),
                                );
                                return Err(Reject::protocol(format!(
                                    "AnswerInformationLocked: {} for {ttid}",
                                    other.name()
                                )));
                            }
                        }
                    }
                    Request::Recovery { .. } | Request::PartitionTable { .. } => {
                        return self.on_recovery_answer(key, packet);
                    }
                    Request::LockedTransactions { .. }
                    | Request::FinalTid { .. }
                    | Request::LastIds { .. }
                    | Request::PackOrders { .. } => self.on_verification_answer(key, packet),
                    Request::Identification | Request::Ping => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Packets from identified peers, by the peer's type.
    fn on_peer_packet(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        let Some(node_type) = self.nodes.get(key).map(|e| e.node_type) else {
            return Ok(());
        };
        // Requests any identified node may send (NEO/py's MasterHandler).
        match &packet {
            Packet::AskClusterState(_) => {
                let state = self.cluster_state();
                self.net.answer(conn, msg_id, AnswerClusterState { state });
                return Ok(());
            }
            Packet::AskLastTransaction(_) => {
                let tid = self.last_transaction().unwrap_or(Tid::ZERO);
                self.net.answer(conn, msg_id, AnswerLastTransaction { tid });
                return Ok(());
            }
            Packet::AskRecovery(_) if node_type != NodeType::Storage => {
                let answer = AnswerRecovery {
                    ptid: self.pt.ptid(),
                    backup_tid: None,
                    truncate_tid: self.primary().and_then(|p| p.truncate_tid),
                };
                self.net.answer(conn, msg_id, answer);
                return Ok(());
            }
            Packet::AskLastIDs(_) if node_type != NodeType::Storage => {
                let primary = self.primary().unwrap();
                let answer = AnswerLastIDs {
                    last_tid: Some(primary.commits.last_transaction),
                    last_oid: Some(primary.commits.last_oid),
                    first_tid: primary.commits.first_tid,
                };
                self.net.answer(conn, msg_id, answer);
                return Ok(());
            }
            _ => {}
        }
        match node_type {
            NodeType::Storage => self.on_storage_packet(conn, key, msg_id, packet),
            NodeType::Admin => self.on_admin_packet(conn, key, msg_id, packet),
            NodeType::Client => self.on_client_packet(conn, key, msg_id, packet),
            NodeType::Master => Err(Reject::unexpected(&packet, "secondary master")),
        }
    }

    /// A connection closed (by the peer, or by us).
    fn conn_lost(&mut self, conn: ConnId, role: ConnRole) {
        self.liveness.forget(conn);
        match role {
            ConnRole::Unidentified => {}
            ConnRole::Election(key) => self.election_conn_lost(key),
            ConnRole::ToPrimary(key) => self.primary_conn_lost(key),
            ConnRole::Peer(key) => {
                let Some(entry) = self.nodes.get_mut(key) else {
                    return;
                };
                if entry.conn != Some(conn) {
                    return;
                }
                entry.conn = None;
                entry.identified = false;
                let node_type = entry.node_type;
                let desc = entry.describe();
                self.log(Level::Info, format!("lost {desc}"));
                if !self.is_primary() {
                    return;
                }
                match node_type {
                    NodeType::Storage => self.storage_lost(key),
                    NodeType::Client => {
                        self.client_lost(key, conn);
                        self.nodes[key].state = NodeState::Unknown;
                        self.broadcast_nodes(&[key]);
                        self.forget_node(key);
                    }
                    NodeType::Admin => {
                        self.nodes.remove(key);
                    }
                    NodeType::Master => self.secondary_master_lost(key),
                }
            }
        }
    }

    fn on_timeout(&mut self) {
        if self.is_primary() {
            self.check_storages_alive();
        }
        if self.wake_at.is_some_and(|at| at <= self.now) {
            self.wake_at = None;
            match &self.role {
                Role::Primary(primary) => {
                    if matches!(primary.phase, PrimaryPhase::Recovery(_)) {
                        self.recovery_step();
                    }
                }
                Role::Secondary(_) => self.secondary_step(),
                Role::Exited => {}
            }
        }
    }

    /// Watches identified storages of the primary for silence.
    fn watch_if_storage(&mut self, conn: ConnId) {
        if !self.is_primary() || self.liveness.is_watched(conn) {
            return;
        }
        if let Some(ConnRole::Peer(key)) = self.net.state(conn).copied() {
            if self
                .nodes
                .get(key)
                .is_some_and(|e| e.node_type == NodeType::Storage && e.conn == Some(conn))
            {
                self.liveness.heard(conn, self.now);
            }
        }
    }

    /// Pings silent storages; one that did not answer is handled as gone
    /// (cluster.md 7.7: a storage that stops answering is marked DOWN).
    fn check_storages_alive(&mut self) {
        for verdict in self.liveness.poll(self.now) {
            match verdict {
                Verdict::Ping(conn) => {
                    if self.net.ask(conn, Ping {}, Request::Ping).is_none() {
                        self.liveness.forget(conn);
                    }
                }
                Verdict::Dead(conn, silent) => {
                    let Some(ConnRole::Peer(key)) = self.net.state(conn).copied() else {
                        continue;
                    };
                    let desc = self.node_desc(key);
                    self.log(
                        Level::Warn,
                        format!(
                            "{desc} did not answer for {:.1} s: closing its connection",
                            silent.as_secs_f64()
                        ),
                    );
                    self.close_conn(conn);
                }
            }
        }
    }

    fn wake_no_later_than(&mut self, at: Time) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn exit(&mut self, reason: impl Into<String>) {
        for conn in self.net.ids() {
            self.net.close(conn);
        }
        self.role = Role::Exited;
        self.wake_at = None;
        self.net.emit(Output::Exit {
            reason: reason.into(),
        });
    }
}

/// Whether a node of type `receiver` hears about nodes of type `changed`.
fn visible_to(changed: NodeType, receiver: NodeType) -> bool {
    match changed {
        NodeType::Admin => false,
        NodeType::Client => matches!(receiver, NodeType::Admin | NodeType::Storage),
        NodeType::Storage => !matches!(receiver, NodeType::Master),
        NodeType::Master => true,
    }
}

fn describe_changes(changes: &Changes) -> String {
    const SHOWN_MAX: usize = 8;
    let mut text: String = changes
        .iter()
        .take(SHOWN_MAX)
        .map(|c| {
            format!(
                " {}:{}:{}",
                c.offset,
                c.nid,
                crate::pt::cell_letter(c.state)
            )
        })
        .collect();
    if changes.len() > SHOWN_MAX {
        text.push_str(" ...");
    }
    text
}

impl Master {
    /// The wall clock as the runtime reads it, before an input: it may
    /// have jumped either way since the last reading (TIDs and timestamps
    /// cope with that; timers never see it).
    pub fn observe_wall_time(&mut self, wall: WallTime) {
        self.wall = wall;
    }
}

impl Node for Master {
    type Event = Infallible;

    fn handle(&mut self, now: Time, input: Input) {
        debug_assert!(now >= self.now, "the monotonic clock went back");
        self.now = self.now.max(now);
        if matches!(self.role, Role::Exited) {
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
            } => {
                self.liveness.heard_if_watched(conn, self.now);
                self.on_packet(conn, msg_id, packet);
                self.watch_if_storage(conn);
            }
            Input::Timeout => self.on_timeout(),
        }
        self.after_event();
    }

    fn poll_output(&mut self) -> Option<Output<Infallible>> {
        self.net.poll()
    }

    fn poll_timeout(&self) -> Option<Time> {
        let liveness = self
            .is_primary()
            .then(|| self.liveness.next_deadline())
            .flatten();
        match (self.wake_at, liveness) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Master {
    /// Re-evaluates what waits on conditions (NEO/py's managers re-check
    /// after every event).
    fn after_event(&mut self) {
        match self.primary().map(|p| &p.phase) {
            Some(PrimaryPhase::Recovery(_)) => self.recovery_step(),
            Some(PrimaryPhase::Verification(_)) => self.verification_step(),
            Some(PrimaryPhase::Service) => self.run_postponed(),
            Some(PrimaryPhase::Stopping) => {
                self.run_postponed();
                self.stopping_step();
            }
            None => {}
        }
    }
}
