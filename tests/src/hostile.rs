//! Hostile peers: one node of a simulated cluster, taken in an interesting
//! state, then fed whatever a fuzzer makes of its connections.
//!
//! NEO has no authentication: anyone who reaches a port can identify as a
//! client, learn the storages' ids and timestamps from the primary, and
//! pass as any node. So every packet a node handles may come from a liar.
//! [`Hostile`] builds a real cluster in the simulator (commits done, one
//! transaction holding locks), then stops the simulation and plays every
//! peer of one target node itself, drawing each move from an
//! [`Unstructured`] byte source: arbitrary packets on the node's
//! connections, answers of the right type to the requests the node sent,
//! packets the node saw during the setup replayed on other connections
//! (mutated or not, so identification gets past the cluster name), new
//! connections, closed ones, and time passing.
//!
//! After every input it checks what the node did: no panic (the caller
//! sees it), no packet or close for a connection the node does not have,
//! no wake-up in the past nor busy loop, and a bounded number of outputs. The same code
//! serves the cargo-fuzz targets (`fuzz/fuzz_targets/node_*.rs`) and the
//! seeded campaign `cargo test` runs (`tests/tests/hostile_peers.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use arbitrary::{Result, Unstructured};
use bytes::{Bytes, BytesMut};
use neo_core::{ConnId, Input, Time};
use neo_proto::{decode_frame, encode, Packet, PacketKind};

use crate::sim::drive::Cluster;
use crate::sim::node::SimOutput;
use crate::sim::{NodeId, NodeKind, SimConfig, Tapped};

/// The node under attack, and the state it is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The primary master, RUNNING, with storages, an admin and a client
    /// in the middle of a transaction.
    PrimaryMaster,
    /// The other master, following the primary.
    SecondaryMaster,
    /// A storage in service, holding a transaction's write locks.
    Storage,
    /// A storage catching up from another after a restart.
    ReplicatingStorage,
    /// The admin node.
    Admin,
    /// A ready client in the middle of a transaction.
    Client,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::PrimaryMaster,
        Target::SecondaryMaster,
        Target::Storage,
        Target::ReplicatingStorage,
        Target::Admin,
        Target::Client,
    ];
}

/// Most outputs one input may make a node emit: more means a peer can make
/// it do unbounded work.
pub const OUTPUTS_PER_INPUT_MAX: usize = 20_000;

/// Most moves a fuzz target plays from one input.
pub const FUZZ_MOVES_MAX: usize = 4096;

/// Most wake-ups at one instant before the node is said to busy-loop (a
/// pack of the fuzzer's few objects takes a handful).
pub const SAME_INSTANT_WAKE_UPS_MAX: u32 = 10_000;

/// Most bytes of fuzzer input one move consumes.
const MOVE_BYTES_MAX: u16 = 256;

/// Requests and packets remembered for answers and replays.
const REMEMBERED_COUNT_MAX: usize = 512;

/// Incoming connection ids of the hostile peers start here, far from the
/// simulator's.
const HOSTILE_CONN_FIRST: u64 = 1 << 32;

/// What went wrong, for the caller to report with the seed or input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

/// A node under attack.
pub struct Hostile {
    pub cluster: Cluster,
    pub target: NodeId,
    now: Time,
    /// Connections the node has (its own ids).
    known: BTreeSet<ConnId>,
    /// Connections the node asked for and has not been told about.
    connecting: Vec<ConnId>,
    /// Requests the node sent: (connection, message id, answer code).
    requests: Vec<(ConnId, u32, u16)>,
    /// Packets the node sent or received, to replay at it.
    heard: Vec<(u32, Packet)>,
    next_incoming: u64,
    /// The connection accepted last.
    newest: Option<ConnId>,
    sync_wanted: bool,
    /// What the node sent after the last input (scripted tests read it).
    pub sent: Vec<(ConnId, u32, Packet)>,
    /// Whether the node accepts connections (every kind but clients).
    listens: bool,
    /// Print every input on stderr (`NEO_HOSTILE_TRACE`).
    pub trace: bool,
    /// Inputs fed, and packets among them.
    pub inputs: u64,
    pub packets: u64,
}

impl Hostile {
    /// Builds the cluster (deterministic for a given `seed`) and takes
    /// `target` over.
    pub fn new(target: Target, seed: u64) -> Hostile {
        let mut config = SimConfig::new(seed);
        config.keep_logs = false;
        config.tap = true;
        let masters = match target {
            Target::PrimaryMaster | Target::SecondaryMaster => 2,
            _ => 1,
        };
        let mut cluster = Cluster::start(config, masters, 2, 1);
        let client = cluster.clients[0];
        for i in 0..3 {
            commit(&mut cluster, client, i);
        }
        if target == Target::ReplicatingStorage {
            make_a_storage_replicate(&mut cluster, client);
        }
        // A transaction left open: its stores hold write locks.
        let txn = cluster.begin(client, "hostile", "open");
        let oid = cluster.new_oid(client);
        cluster.store(client, txn, oid, neo_proto::Tid::ZERO, "locked");
        cluster.run_for(Duration::from_millis(50));
        let node = pick(&cluster, target);
        let sim = &mut cluster.sim;
        let known: BTreeSet<ConnId> = sim.network.conns_of(node).into_iter().collect();
        let mut heard = Vec::new();
        let mut requests = Vec::new();
        for (at, tapped) in std::mem::take(&mut sim.tapped) {
            match tapped {
                Tapped::Received(_, msg_id, packet) if at == node => heard.push((msg_id, packet)),
                Tapped::Sent(conn, msg_id, packet) if at == node => {
                    if let PacketKind::Request { answer_code } = packet.kind() {
                        requests.push((conn, msg_id, answer_code));
                    }
                    heard.push((msg_id, packet));
                }
                _ => {}
            }
        }
        keep_last(&mut heard);
        keep_last(&mut requests);
        sim.config.tap = false;
        let now = sim.now;
        Hostile {
            cluster,
            target: node,
            now,
            known,
            connecting: Vec::new(),
            requests,
            heard,
            next_incoming: HOSTILE_CONN_FIRST,
            newest: None,
            sync_wanted: false,
            sent: Vec::new(),
            listens: target != Target::Client,
            trace: std::env::var_os("NEO_HOSTILE_TRACE").is_some(),
            inputs: 0,
            packets: 0,
        }
    }

    /// Whether the node is still running (a peer may legitimately tell it
    /// to stop: an identified admin can shut a cluster down).
    pub fn alive(&self) -> bool {
        self.cluster.sim.nodes[self.target.0].alive
    }

    /// One hostile move drawn from `u`.
    pub fn act(&mut self, u: &mut Unstructured<'_>) -> Result<std::result::Result<(), Violation>> {
        // A move draws from a slice of its own: an arbitrary byte string
        // would otherwise take everything left and end the sequence.
        let size = usize::from(u.int_in_range(4..=MOVE_BYTES_MAX)?).min(u.len());
        let mut u = Unstructured::new(u.bytes(size)?);
        let u = &mut u;
        let conn = self.pick_conn(u)?;
        let kind = match conn {
            Some(_) => u.int_in_range(0..=15u8)?,
            // No connection: let one come up (clients listen on none).
            None if !self.connecting.is_empty() => 14,
            None if self.listens => 12,
            None => 15,
        };
        let input = match kind {
            0..=2 => {
                let msg_id = self.pick_msg_id(u, conn)?;
                let packet: Packet = u.arbitrary()?;
                conn.map(|conn| Input::Packet {
                    conn,
                    msg_id,
                    packet,
                })
            }
            // Any field values in a packet of a type the node handles:
            // one it was sent during the setup.
            3..=5 => match (conn, self.heard_code(u)?) {
                (Some(conn), Some(code)) => {
                    let msg_id = self.pick_msg_id(u, Some(conn))?;
                    Packet::arbitrary_of_code(code, u)?.map(|packet| Input::Packet {
                        conn,
                        msg_id,
                        packet,
                    })
                }
                _ => None,
            },
            6..=8 => self.answer(u)?,
            9..=10 => match conn {
                Some(conn) => self.replay(u, conn)?,
                None => None,
            },
            11 if self.listens => return Ok(self.impersonate(u)),
            12 if self.listens => {
                let conn = self.accept();
                Some(Input::Accepted { conn })
            }
            13 => conn.map(|conn| {
                self.known.remove(&conn);
                Input::Closed { conn }
            }),
            14 => self.connect_outcome(u)?,
            _ => {
                // Mostly short steps; now and then long enough for every timer.
                let ms = if u.ratio(1, 8)? {
                    u.int_in_range(0..=40_000u32)?
                } else {
                    u.int_in_range(0..=500u32)?
                };
                return Ok(self.pass_time(Duration::from_millis(ms.into())));
            }
        };
        Ok(match input {
            Some(input) => self.feed(input),
            None => Ok(()),
        })
    }

    /// Feeds one input and checks what the node does.
    pub fn feed(&mut self, input: Input) -> std::result::Result<(), Violation> {
        if !self.alive() {
            return Ok(());
        }
        if matches!(input, Input::Packet { .. }) {
            self.packets += 1;
        }
        self.inputs += 1;
        let described = describe(&input);
        if self.trace {
            eprintln!("{} {described}", self.now);
        }
        self.sent.clear();
        self.cluster.sim.nodes[self.target.0].handle(self.now, input);
        self.drain(&described)?;
        if std::mem::take(&mut self.sync_wanted) {
            self.cluster.sim.nodes[self.target.0].sync_store(self.now);
            self.drain("store sync")?;
        }
        if let Some(at) = self.poll_timeout() {
            if at < self.now {
                return Err(Violation(format!(
                    "after {described} at {}: wake-up at {at}, in the past",
                    self.now
                )));
            }
        }
        crate::sim::check::nodes_consistent(&self.cluster.sim)
            .map_err(|why| Violation(format!("after {described}: {why}")))
    }

    /// Lets time pass, firing the node's timers as they fall due. A node
    /// may ask to be woken at once (a pack goes on by chunks between other
    /// work), but not for ever: that is a busy loop.
    pub fn pass_time(&mut self, duration: Duration) -> std::result::Result<(), Violation> {
        let until = self.now + duration;
        let mut at_this_instant = 0;
        while let Some(at) = self
            .poll_timeout()
            .filter(|&at| at <= until && self.alive())
        {
            if at > self.now {
                self.now = at;
                at_this_instant = 0;
            }
            at_this_instant += 1;
            if at_this_instant > SAME_INSTANT_WAKE_UPS_MAX {
                return Err(Violation(format!(
                    "more than {SAME_INSTANT_WAKE_UPS_MAX} wake-ups at {at}: a busy loop"
                )));
            }
            self.feed(Input::Timeout)?;
        }
        self.now = until;
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Time> {
        let node = &self.cluster.sim.nodes[self.target.0];
        node.alive.then(|| node.poll_timeout()).flatten()
    }

    fn drain(&mut self, after: &str) -> std::result::Result<(), Violation> {
        let mut count = 0;
        while let Some(output) = self.cluster.sim.nodes[self.target.0].poll_output() {
            count += 1;
            if count > OUTPUTS_PER_INPUT_MAX {
                return Err(Violation(format!(
                    "after {after}: more than {OUTPUTS_PER_INPUT_MAX} outputs"
                )));
            }
            match output {
                SimOutput::Connect { conn, .. } => {
                    self.known.insert(conn);
                    self.connecting.push(conn);
                }
                SimOutput::Send {
                    conn,
                    msg_id,
                    packet,
                } => {
                    self.sent.push((conn, msg_id, packet.clone()));
                    if !self.known.contains(&conn) {
                        return Err(Violation(format!(
                            "after {after}: sends {} to unknown connection {conn}",
                            packet.name()
                        )));
                    }
                    if let PacketKind::Request { answer_code } = packet.kind() {
                        self.requests.push((conn, msg_id, answer_code));
                        keep_last(&mut self.requests);
                    }
                }
                SimOutput::Close { conn } => {
                    if !self.known.remove(&conn) {
                        return Err(Violation(format!(
                            "after {after}: closes unknown connection {conn}"
                        )));
                    }
                    self.connecting.retain(|c| *c != conn);
                }
                SimOutput::SyncStore => self.sync_wanted = true,
                SimOutput::Exit { .. } => {
                    self.cluster.sim.nodes[self.target.0].alive = false;
                    return Ok(());
                }
                SimOutput::Log { .. } | SimOutput::CtlAnswer { .. } | SimOutput::ClientEvent(_) => {
                }
            }
        }
        Ok(())
    }

    /// A connection of the node's, or `None` if it has none: often the
    /// newest (an identified impostor goes on), else any.
    fn pick_conn(&self, u: &mut Unstructured<'_>) -> Result<Option<ConnId>> {
        if self.known.is_empty() {
            return Ok(None);
        }
        if let Some(newest) = self.newest.filter(|c| self.known.contains(c)) {
            if u.arbitrary()? {
                return Ok(Some(newest));
            }
        }
        let index = u.choose_index(self.known.len())?;
        Ok(self.known.iter().nth(index).copied())
    }

    /// A new incoming connection (the node is told).
    pub fn accept(&mut self) -> ConnId {
        let conn = ConnId::incoming(self.next_incoming);
        self.next_incoming += 1;
        self.known.insert(conn);
        self.newest = Some(conn);
        conn
    }

    /// A new connection identifying as one of the nodes the target saw
    /// identify (same cluster name, id and timestamp).
    fn impersonate(&mut self, u: &mut Unstructured<'_>) -> std::result::Result<(), Violation> {
        let identifications: Vec<&(u32, Packet)> = self
            .heard
            .iter()
            .filter(|(_, p)| matches!(p, Packet::RequestIdentification(_)))
            .collect();
        let Ok(index) = u.choose_index(identifications.len()) else {
            return Ok(());
        };
        let packet = identifications[index].1.clone();
        let conn = self.accept();
        self.feed(Input::Accepted { conn })?;
        self.feed(Input::Packet {
            conn,
            msg_id: 0,
            packet,
        })
    }

    /// The code of a packet type the node sent or was sent, each type as
    /// likely as any other.
    fn heard_code(&self, u: &mut Unstructured<'_>) -> Result<Option<u16>> {
        let codes: BTreeSet<u16> = self.heard.iter().map(|(_, p)| p.code()).collect();
        if codes.is_empty() {
            return Ok(None);
        }
        Ok(codes.iter().nth(u.choose_index(codes.len())?).copied())
    }

    fn pick_msg_id(&self, u: &mut Unstructured<'_>, conn: Option<ConnId>) -> Result<u32> {
        let asked: Vec<u32> = self
            .requests
            .iter()
            .filter(|(c, ..)| Some(*c) == conn)
            .map(|(_, msg_id, _)| *msg_id)
            .collect();
        if !asked.is_empty() && u.arbitrary()? {
            return Ok(asked[u.choose_index(asked.len())?]);
        }
        u.arbitrary()
    }

    /// An answer of the right type (fields arbitrary) to a request the
    /// node sent, possibly twice.
    fn answer(&mut self, u: &mut Unstructured<'_>) -> Result<Option<Input>> {
        if self.requests.is_empty() {
            return Ok(None);
        }
        let (conn, msg_id, code) = self.requests[u.choose_index(self.requests.len())?];
        if !self.known.contains(&conn) {
            return Ok(None);
        }
        Ok(
            Packet::arbitrary_of_code(code, u)?.map(|packet| Input::Packet {
                conn,
                msg_id,
                packet,
            }),
        )
    }

    /// A packet the node saw, on any connection, bytes possibly flipped.
    fn replay(&mut self, u: &mut Unstructured<'_>, conn: ConnId) -> Result<Option<Input>> {
        if self.heard.is_empty() {
            return Ok(None);
        }
        let (msg_id, packet) = self.heard[u.choose_index(self.heard.len())?].clone();
        let msg_id = if u.arbitrary()? {
            msg_id
        } else {
            self.pick_msg_id(u, Some(conn))?
        };
        let flips = u.int_in_range(0..=3u8)?;
        let packet = if flips == 0 {
            packet
        } else {
            let mut bytes = BytesMut::new();
            encode(msg_id, &packet, &mut bytes);
            for _ in 0..flips {
                let at = u.choose_index(bytes.len())?;
                bytes[at] ^= u.int_in_range(1..=255u8)?;
            }
            match decode_frame(Bytes::from(bytes)) {
                Ok(frame) => frame.packet,
                Err(_) => return Ok(None),
            }
        };
        Ok(Some(Input::Packet {
            conn,
            msg_id,
            packet,
        }))
    }

    /// A connection the node asked for comes up, or fails.
    fn connect_outcome(&mut self, u: &mut Unstructured<'_>) -> Result<Option<Input>> {
        if self.connecting.is_empty() {
            return Ok(None);
        }
        let conn = self
            .connecting
            .remove(u.choose_index(self.connecting.len())?);
        Ok(Some(if u.arbitrary()? {
            Input::Connected { conn }
        } else {
            self.known.remove(&conn);
            Input::ConnectFailed { conn }
        }))
    }
}

/// What an attack fed the node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub inputs: u64,
    pub packets: u64,
}

/// Plays `moves` hostile moves from `data` on a fresh node; the first
/// violation, if any.
pub fn attack(target: Target, seed: u64, data: &[u8], moves: usize) -> Option<Violation> {
    attack_with_stats(target, seed, data, moves).0
}

/// [`attack`], and what it fed the node.
pub fn attack_with_stats(
    target: Target,
    seed: u64,
    data: &[u8],
    moves: usize,
) -> (Option<Violation>, Stats) {
    let mut hostile = Hostile::new(target, seed);
    let mut u = Unstructured::new(data);
    let mut violation = None;
    for _ in 0..moves {
        if u.is_empty() || !hostile.alive() {
            break;
        }
        match hostile.act(&mut u) {
            Ok(Ok(())) => {}
            Ok(Err(found)) => {
                violation = Some(found);
                break;
            }
            Err(_) => break,
        }
    }
    let stats = Stats {
        inputs: hostile.inputs,
        packets: hostile.packets,
    };
    (violation, stats)
}

fn commit(cluster: &mut Cluster, client: NodeId, i: usize) {
    let txn = cluster.begin(client, "setup", "commit");
    let oid = cluster.new_oid(client);
    cluster.store(
        client,
        txn,
        oid,
        neo_proto::Tid::ZERO,
        &format!("value {i}"),
    );
    cluster.finish(client, txn).expect("setup commit");
}

/// Crashes the second storage, commits without it, restarts it and runs
/// until it asks the other for transactions.
fn make_a_storage_replicate(cluster: &mut Cluster, client: NodeId) {
    let lagging = cluster.storages()[1];
    cluster.sim.crash(lagging);
    cluster.run_for(Duration::from_secs(1));
    for i in 0..4 {
        commit(cluster, client, 10 + i);
    }
    cluster.sim.restart(lagging);
    let fetching = |sim: &crate::sim::Sim| {
        sim.tapped.iter().any(|(node, t)| {
            *node == lagging && matches!(t, Tapped::Sent(_, _, Packet::AskFetchTransactions(_)))
        })
    };
    cluster
        .run_until(Duration::from_secs(30), fetching)
        .expect("the restarted storage replicates");
}

fn pick(cluster: &Cluster, target: Target) -> NodeId {
    let sim = &cluster.sim;
    let primary = crate::sim::check::running_primary(sim).expect("a running primary");
    match target {
        Target::PrimaryMaster => primary,
        Target::SecondaryMaster => *sim
            .node_ids(NodeKind::Master)
            .iter()
            .find(|&&m| m != primary)
            .expect("two masters"),
        Target::Storage => cluster.storages()[0],
        Target::ReplicatingStorage => cluster.storages()[1],
        Target::Admin => cluster.admin,
        Target::Client => cluster.clients[0],
    }
}

fn keep_last<T>(items: &mut Vec<T>) {
    if items.len() > REMEMBERED_COUNT_MAX {
        items.drain(..items.len() - REMEMBERED_COUNT_MAX);
    }
}

fn describe(input: &Input) -> String {
    match input {
        Input::Packet {
            conn,
            msg_id,
            packet,
        } => format!("{packet} (msg {msg_id}) on {conn}"),
        other => format!("{other:?}"),
    }
}
