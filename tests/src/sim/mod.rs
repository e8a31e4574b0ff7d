//! The deterministic simulator: a whole NEO cluster in one thread.
//!
//! Nodes are neo-core state machines; the simulator plays their runtime.
//! Time is virtual; one seeded generator decides every delay and fault, so
//! a seed replays exactly. Connections are FIFO per direction (TCP) with
//! random latency, so packets are reordered across connections only. Every
//! packet goes through neo-proto's encoder and decoder on its way.
//!
//! Faults: connection drops, network partitions between node pairs,
//! crashes and restarts of any node (a restarted storage keeps exactly
//! what its store had synced).

pub mod campaign;
pub mod check;
pub mod drive;
mod network;
pub mod node;
pub mod workload;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use neo_core::admin::AdminConfig;
use neo_core::client::{Client, ClientEvent};
use neo_core::master::MasterConfig;
use neo_core::rng::Rng;
use neo_core::storage::memory::MemoryStore;
use neo_core::storage::StorageConfig;
use neo_core::{ConnId, Input, Level, Time};
use neo_proto::{Address, Packet, Partitions};

pub use network::Network;
pub use node::{NodeKind, SimNode};

/// The virtual clock starts on 2026-01-01 00:00:00 UTC.
pub const EPOCH: Time = Time::from_nanos(1_767_225_600_000_000_000);

/// Knobs of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub cluster: Bytes,
    pub partitions: u32,
    pub replicas: u32,
    pub autostart: Option<u32>,
    /// Latency of a packet: uniform in this range (µs).
    pub latency_us: (u64, u64),
    /// Time a storage takes to sync its store (µs).
    pub sync_us: (u64, u64),
    /// Record who sent what to whom.
    pub transcript: bool,
    /// Keep node log records (printed when a run fails).
    pub keep_logs: bool,
    /// How soon masters ping a silent storage (and give up on it).
    pub storage_ping: Duration,
    /// Record every packet in `Sim::tapped` (hostile peers learn from
    /// them what to replay).
    pub tap: bool,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            cluster: Bytes::from_static(b"sim"),
            partitions: 4,
            replicas: 1,
            autostart: None,
            latency_us: (20, 400),
            sync_us: (50, 2000),
            transcript: false,
            keep_logs: true,
            storage_ping: MasterConfig::DEFAULT_STORAGE_PING,
            tap: false,
        }
    }
}

/// Identifies a node of the simulation (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Accept {
        node: NodeId,
        conn: ConnId,
        link: u64,
    },
    Connected {
        node: NodeId,
        conn: ConnId,
    },
    ConnectFailed {
        node: NodeId,
        conn: ConnId,
    },
    Deliver {
        node: NodeId,
        conn: ConnId,
        link: u64,
        frame: Vec<u8>,
    },
    Closed {
        node: NodeId,
        conn: ConnId,
        link: u64,
    },
    Timer {
        node: NodeId,
        generation: u64,
    },
    Sync {
        node: NodeId,
        generation: u64,
    },
    /// A scheduled operator action or fault, run by the scenario.
    Script {
        index: usize,
    },
    /// A workload timer (think time of a simulated application).
    Workload {
        token: u64,
    },
}

impl Event {
    /// The node the event is for (none for scenario and workload timers).
    fn node(&self) -> Option<NodeId> {
        match self {
            Event::Accept { node, .. }
            | Event::Connected { node, .. }
            | Event::ConnectFailed { node, .. }
            | Event::Deliver { node, .. }
            | Event::Closed { node, .. }
            | Event::Timer { node, .. }
            | Event::Sync { node, .. } => Some(*node),
            Event::Script { .. } | Event::Workload { .. } => None,
        }
    }
}

/// What a step handed back to the caller to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Script(usize),
    Workload(u64),
}

/// A simulated cluster.
pub struct Sim {
    pub config: SimConfig,
    pub rng: Rng,
    pub now: Time,
    pub nodes: Vec<SimNode>,
    pub network: Network,
    queue: BinaryHeap<Reverse<(Time, u64, Event)>>,
    seq: u64,
    /// Per node, the timer instant already in the queue.
    timers: BTreeMap<NodeId, Time>,
    pub transcript: Vec<String>,
    pub logs: Vec<String>,
    /// Steps run (events processed).
    pub steps: u64,
    /// Node ids of the masters' addresses.
    pub master_addrs: Vec<Address>,
    /// The operator's pending requests to the admin: conn → (msg_id, name).
    pub ctl_answers: Vec<(String, Packet)>,
    /// Events of clients, for the workload to consume.
    pub client_events: VecDeque<(NodeId, ClientEvent)>,
    /// Frozen nodes (a hung process: connections stay open, nothing is
    /// read), with the events held for them, in order.
    frozen: BTreeMap<NodeId, Vec<Event>>,
    /// What was recorded with `SimConfig::tap`.
    pub tapped: Vec<(NodeId, Tapped)>,
}

/// A packet a node sent or received, with its connection (the
/// tapped node's id of it) and message id.
#[derive(Debug, Clone)]
pub enum Tapped {
    Sent(ConnId, u32, Packet),
    Received(ConnId, u32, Packet),
}

impl Sim {
    pub fn new(config: SimConfig) -> Sim {
        Sim {
            rng: Rng::new(config.seed),
            config,
            now: EPOCH,
            nodes: Vec::new(),
            network: Network::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            timers: BTreeMap::new(),
            transcript: Vec::new(),
            logs: Vec::new(),
            steps: 0,
            master_addrs: Vec::new(),
            ctl_answers: Vec::new(),
            client_events: VecDeque::new(),
            frozen: BTreeMap::new(),
            tapped: Vec::new(),
        }
    }

    fn address_of(kind: NodeKind, index: usize) -> Address {
        let base = match kind {
            NodeKind::Master => 10000,
            NodeKind::Storage => 20000,
            NodeKind::Admin => 9900,
            NodeKind::Client => 30000,
            NodeKind::Ctl => 40000,
        };
        Address::new("127.0.0.1", base + index as u16)
    }

    /// Adds `count` masters (call before adding other nodes).
    pub fn add_masters(&mut self, count: usize) -> Vec<NodeId> {
        self.master_addrs = (0..count)
            .map(|i| Sim::address_of(NodeKind::Master, i))
            .collect();
        (0..count).map(|i| self.add_master(i)).collect()
    }

    fn master_config(&self, index: usize) -> MasterConfig {
        MasterConfig {
            cluster: self.config.cluster.clone(),
            bind: self.master_addrs[index].clone(),
            masters: self.master_addrs.clone(),
            partitions: Partitions::new(self.config.partitions).expect("a cluster has partitions"),
            replicas: self.config.replicas,
            autostart: self.config.autostart,
            nid: None,
            storage_ping: self.config.storage_ping,
        }
    }

    fn add_master(&mut self, index: usize) -> NodeId {
        let config = self.master_config(index);
        let id = NodeId(self.nodes.len());
        let name = format!("M{index}");
        self.nodes
            .push(SimNode::master(name, index, config, self.now));
        self.after_step(id);
        id
    }

    pub fn add_storage(&mut self) -> NodeId {
        let index = self
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Storage)
            .count();
        let config = StorageConfig {
            cluster: self.config.cluster.clone(),
            bind: Sim::address_of(NodeKind::Storage, index),
            masters: self.master_addrs.clone(),
            devpath: Vec::new(),
            nid: None,
            seed: self.config.seed ^ (index as u64 + 1),
        };
        let id = NodeId(self.nodes.len());
        let name = format!("S{index}");
        self.nodes.push(SimNode::storage(
            name,
            index,
            config,
            MemoryStore::new(),
            self.now,
        ));
        self.after_step(id);
        id
    }

    pub fn add_admin(&mut self) -> NodeId {
        let index = self
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Admin)
            .count();
        let config = AdminConfig {
            cluster: self.config.cluster.clone(),
            bind: Sim::address_of(NodeKind::Admin, index),
            masters: self.master_addrs.clone(),
        };
        let id = NodeId(self.nodes.len());
        self.nodes
            .push(SimNode::admin(format!("A{index}"), index, config, self.now));
        self.after_step(id);
        id
    }

    pub fn add_client(&mut self) -> NodeId {
        let index = self
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Client)
            .count();
        let mut config = neo_core::client::ClientConfig::new(
            self.config.cluster.clone(),
            self.master_addrs.clone(),
        );
        config.seed = self.config.seed ^ (0x1000 + index as u64);
        let id = NodeId(self.nodes.len());
        self.nodes.push(SimNode::client(
            format!("C{index}"),
            index,
            config,
            self.now,
        ));
        self.after_step(id);
        id
    }

    /// Adds the operator's tool (a `neoctl` pseudo-node).
    pub fn add_ctl(&mut self) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(SimNode::ctl("ctl".into()));
        id
    }

    fn push(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    pub fn latency(&mut self) -> Duration {
        let (low, high) = self.config.latency_us;
        Duration::from_micros(low + self.rng.below(high - low + 1))
    }

    fn sync_delay(&mut self) -> Duration {
        let (low, high) = self.config.sync_us;
        Duration::from_micros(low + self.rng.below(high - low + 1))
    }

    /// Schedules a scenario action.
    pub fn schedule_script(&mut self, at: Time, index: usize) {
        self.push(at, Event::Script { index });
    }

    /// Schedules a workload timer.
    pub fn schedule_workload(&mut self, at: Time, token: u64) {
        self.push(at, Event::Workload { token });
    }

    /// Runs `f` on a live client (starting operations), then routes what
    /// it output. `None` if the client is dead.
    pub fn with_client<T>(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut Client, Time) -> T,
    ) -> Option<T> {
        let now = self.now;
        let result = f(self.nodes[node.0].client_mut()?, now);
        self.after_step(node);
        Some(result)
    }

    // ------------------------------------------------------------ stepping

    /// Processes the next event; returns the scenario action or workload
    /// timer it was, if any, for the caller to run. `None` when the queue
    /// is empty or the next event is after `until`.
    pub fn step(&mut self, until: Time) -> Option<Option<Trigger>> {
        let Reverse((at, _, _)) = self.queue.peek()?;
        if *at > until {
            return None;
        }
        let Reverse((at, _, event)) = self.queue.pop().unwrap();
        self.now = self.now.max(at);
        self.steps += 1;
        if let Some(held) = event.node().and_then(|node| self.frozen.get_mut(&node)) {
            held.push(event);
            return Some(None);
        }
        let mut script = None;
        match event {
            Event::Script { index } => script = Some(Trigger::Script(index)),
            Event::Workload { token } => script = Some(Trigger::Workload(token)),
            Event::Accept { node, conn, link } => {
                if self.network.is_open(link) && self.network.end_open(link, node) {
                    self.input(node, Input::Accepted { conn });
                }
            }
            Event::Connected { node, conn } => self.input(node, Input::Connected { conn }),
            Event::ConnectFailed { node, conn } => self.input(node, Input::ConnectFailed { conn }),
            Event::Deliver {
                node,
                conn,
                link,
                frame,
            } => {
                if self.network.is_open(link) && self.network.end_open(link, node) {
                    let decoded = neo_proto::decode_frame(Bytes::from(frame))
                        .expect("a packet a node sent does not decode");
                    if self.config.tap {
                        let (msg_id, packet) = (decoded.msg_id, decoded.packet.clone());
                        self.tapped
                            .push((node, Tapped::Received(conn, msg_id, packet)));
                    }
                    self.input(
                        node,
                        Input::Packet {
                            conn,
                            msg_id: decoded.msg_id,
                            packet: decoded.packet,
                        },
                    );
                }
            }
            Event::Closed { node, conn, link } => {
                if self.network.end_open(link, node) {
                    self.network.close_end(link, node);
                    self.input(node, Input::Closed { conn });
                }
            }
            Event::Timer { node, generation } => {
                if self.nodes[node.0].generation == generation {
                    self.timers.remove(&node);
                    let due = self.nodes[node.0]
                        .poll_timeout()
                        .is_some_and(|t| t <= self.now);
                    if due {
                        self.input(node, Input::Timeout);
                    } else {
                        self.after_step(node);
                    }
                }
            }
            Event::Sync { node, generation } => {
                if self.nodes[node.0].generation == generation && self.nodes[node.0].alive {
                    self.nodes[node.0].sync_requested = false;
                    let now = self.now;
                    self.nodes[node.0].sync_store(now);
                    self.after_step(node);
                }
            }
        }
        Some(script)
    }

    /// Feeds an input to a live node and routes its outputs.
    pub fn input(&mut self, node: NodeId, input: Input) {
        if !self.nodes[node.0].alive {
            return;
        }
        let now = self.now;
        self.nodes[node.0].handle(now, input);
        self.after_step(node);
    }

    /// Drains a node's outputs and (re)schedules its timer.
    fn after_step(&mut self, node: NodeId) {
        while let Some(output) = self.nodes[node.0].poll_output() {
            self.route(node, output);
        }
        if !self.nodes[node.0].alive {
            return;
        }
        if let Some(at) = self.nodes[node.0].poll_timeout() {
            let at = at.max(self.now);
            if self.timers.get(&node).is_none_or(|&t| at < t) {
                self.timers.insert(node, at);
                let generation = self.nodes[node.0].generation;
                self.push(at, Event::Timer { node, generation });
            }
        }
    }

    fn route(&mut self, from: NodeId, output: node::SimOutput) {
        use node::SimOutput;
        match output {
            SimOutput::Connect { conn, addr } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.alive && n.address.as_ref() == Some(&addr))
                    .map(NodeId);
                let delay = self.latency();
                match target {
                    Some(to) if !self.network.partitioned(from, to) => {
                        let link = self.network.open(from, conn, to);
                        let accepted = self.network.accept_id(to);
                        self.network.set_acceptor_conn(link, accepted);
                        self.push(
                            self.now + delay,
                            Event::Accept {
                                node: to,
                                conn: accepted,
                                link,
                            },
                        );
                        self.push(self.now + delay, Event::Connected { node: from, conn });
                    }
                    _ => self.push(self.now + delay, Event::ConnectFailed { node: from, conn }),
                }
            }
            SimOutput::Send {
                conn,
                msg_id,
                packet,
            } => {
                let Some((link, to, to_conn)) = self.network.route(from, conn) else {
                    return;
                };
                if self.config.tap {
                    self.tapped
                        .push((from, Tapped::Sent(conn, msg_id, packet.clone())));
                }
                if self.config.transcript {
                    let line = format!(
                        "{} -> {}: {} {}",
                        self.nodes[from.0].name, self.nodes[to.0].name, msg_id, packet
                    );
                    self.transcript.push(line);
                }
                let frame = neo_proto::encode_to_bytes(msg_id, &packet).to_vec();
                let latency = self.latency();
                let at = self.network.next_delivery(link, from, self.now + latency);
                self.push(
                    at,
                    Event::Deliver {
                        node: to,
                        conn: to_conn,
                        link,
                        frame,
                    },
                );
            }
            SimOutput::Close { conn } => {
                let Some((link, to, to_conn)) = self.network.route(from, conn) else {
                    return;
                };
                let latency = self.latency();
                let at = self.network.next_delivery(link, from, self.now + latency);
                self.network.close_end(link, from);
                self.push(
                    at,
                    Event::Closed {
                        node: to,
                        conn: to_conn,
                        link,
                    },
                );
            }
            SimOutput::SyncStore => {
                if !self.nodes[from.0].sync_requested {
                    self.nodes[from.0].sync_requested = true;
                    let delay = self.sync_delay();
                    let generation = self.nodes[from.0].generation;
                    self.push(
                        self.now + delay,
                        Event::Sync {
                            node: from,
                            generation,
                        },
                    );
                }
            }
            SimOutput::Log { level, message } => {
                if self.config.keep_logs && level <= Level::Info {
                    self.logs.push(format!(
                        "{} {} {:?} {}",
                        self.now, self.nodes[from.0].name, level, message
                    ));
                }
            }
            SimOutput::Exit { reason } => {
                if self.config.keep_logs {
                    self.logs.push(format!(
                        "{} {} exited: {reason}",
                        self.now, self.nodes[from.0].name
                    ));
                }
                self.kill_connections(from);
                self.nodes[from.0].alive = false;
                self.nodes[from.0].exited = true;
            }
            SimOutput::CtlAnswer { packet } => {
                self.ctl_answers
                    .push((self.nodes[from.0].name.clone(), packet));
            }
            SimOutput::ClientEvent(event) => self.client_events.push_back((from, event)),
        }
    }

    // ------------------------------------------------------------ faults

    /// Closes every connection of a node, as its death would (peers see
    /// EOF after a latency; what it had in flight may still arrive).
    fn kill_connections(&mut self, node: NodeId) {
        for (link, peer, peer_conn) in self.network.links_of(node) {
            let latency = self.latency();
            let at = self.network.next_delivery(link, node, self.now + latency);
            self.network.close_end(link, node);
            self.push(
                at,
                Event::Closed {
                    node: peer,
                    conn: peer_conn,
                    link,
                },
            );
        }
    }

    /// Crashes a node: no more inputs; storages lose unsynced writes.
    pub fn crash(&mut self, node: NodeId) {
        if !self.nodes[node.0].alive {
            return;
        }
        self.logs
            .push(format!("{} {} CRASH", self.now, self.nodes[node.0].name));
        self.frozen.remove(&node);
        self.kill_connections(node);
        self.nodes[node.0].crash();
        self.timers.remove(&node);
    }

    /// Freezes a live node as a hung process would be: its connections
    /// stay open but it handles nothing (packets, timers) until thawed.
    pub fn freeze(&mut self, node: NodeId) {
        if self.nodes[node.0].alive && !self.frozen.contains_key(&node) {
            self.logs
                .push(format!("{} {} FREEZE", self.now, self.nodes[node.0].name));
            self.frozen.insert(node, Vec::new());
        }
    }

    /// Resumes a frozen node: what arrived meanwhile is handled now, in
    /// order.
    pub fn thaw(&mut self, node: NodeId) {
        let Some(held) = self.frozen.remove(&node) else {
            return;
        };
        self.logs
            .push(format!("{} {} THAW", self.now, self.nodes[node.0].name));
        for event in held {
            if !matches!(event, Event::Timer { .. }) {
                self.push(self.now, event);
            }
        }
        self.timers.remove(&node);
        self.after_step(node);
    }

    pub fn is_frozen(&self, node: NodeId) -> bool {
        self.frozen.contains_key(&node)
    }

    /// Restarts a crashed (or exited) node from its durable state.
    pub fn restart(&mut self, node: NodeId) {
        if self.nodes[node.0].alive {
            return;
        }
        self.logs
            .push(format!("{} {} RESTART", self.now, self.nodes[node.0].name));
        let now = self.now;
        let master_config = (self.nodes[node.0].kind == NodeKind::Master)
            .then(|| self.master_config(self.nodes[node.0].index));
        self.nodes[node.0].restart(now, master_config);
        // A node that exited (rather than crashed) may have left its
        // timer's instant here; the restarted node starts afresh.
        self.timers.remove(&node);
        self.network.reset_accept_ids(node);
        self.after_step(node);
    }

    /// Drops one connection (both ends see it close, in-flight data lost).
    pub fn drop_connection(&mut self, link: u64) {
        if let Some(((a, a_conn), (b, b_conn))) = self.network.ends(link) {
            self.network.sever(link);
            let d1 = self.latency();
            let d2 = self.latency();
            if self.nodes[a.0].alive {
                self.push(
                    self.now + d1,
                    Event::Closed {
                        node: a,
                        conn: a_conn,
                        link,
                    },
                );
            }
            if self.nodes[b.0].alive {
                self.push(
                    self.now + d2,
                    Event::Closed {
                        node: b,
                        conn: b_conn,
                        link,
                    },
                );
            }
        }
    }

    /// Cuts the network between two groups of nodes (existing connections
    /// across break, new ones fail) until [`Sim::heal`].
    pub fn partition(&mut self, side: &BTreeSet<NodeId>) {
        let others: BTreeSet<NodeId> = (0..self.nodes.len())
            .map(NodeId)
            .filter(|n| !side.contains(n))
            .collect();
        for &a in side {
            for &b in &others {
                self.network.block(a, b);
            }
        }
        for link in self.network.open_links() {
            if let Some(((a, _), (b, _))) = self.network.ends(link) {
                if self.network.partitioned(a, b) {
                    self.drop_connection(link);
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.network.heal();
    }

    // ------------------------------------------------------------ operator

    /// Sends a request to the admin as `neoctl` would (new connection, no
    /// identification); the answer lands in `ctl_answers`.
    pub fn ctl(&mut self, ctl: NodeId, admin: NodeId, packet: Packet) {
        let addr = self.nodes[admin.0].address.clone().unwrap();
        let now = self.now;
        self.nodes[ctl.0].ctl_request(now, addr, packet);
        self.after_step(ctl);
    }

    pub fn run_until(
        &mut self,
        until: Time,
        mut script: impl FnMut(&mut Sim, usize),
        mut check: impl FnMut(&Sim) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(action) = self.step(until) {
            if let Some(Trigger::Script(index)) = action {
                script(self, index);
            }
            check(self)?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Names of nodes, for messages.
    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    pub fn node_ids(&self, kind: NodeKind) -> Vec<NodeId> {
        (0..self.nodes.len())
            .map(NodeId)
            .filter(|&n| self.nodes[n.0].kind == kind)
            .collect()
    }

    /// Whether packets or connection events are still in flight.
    pub fn network_busy(&self) -> bool {
        self.queue.iter().any(|Reverse((_, _, e))| {
            matches!(
                e,
                Event::Deliver { .. }
                    | Event::Accept { .. }
                    | Event::Connected { .. }
                    | Event::ConnectFailed { .. }
                    | Event::Closed { .. }
                    | Event::Sync { .. }
            )
        })
    }
}
