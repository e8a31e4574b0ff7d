//! A transactional workload for simulation campaigns, and the checker of
//! what it leaves behind.
//!
//! Each client runs transactions in a loop over a small set of hot
//! objects, so that conflicts and deadlocks happen: sync (ZODB does at a
//! transaction boundary), read a few objects in its snapshot, increment
//! each (resolving conflicts by re-applying the increment on the committed
//! value, as BTrees.Length does), sometimes readCurrent one more object,
//! vote and finish. Whatever fails is aborted and retried later.
//!
//! Objects are counters stored as decimal text, created at 0, so that the
//! history of every object must be 0, 1, 2... whatever happened: a lost
//! update shows as two consecutive revisions with the same value. After
//! the run the checker verifies, against the storages' own records:
//! - every replica of a partition that is readable holds the same records;
//! - every transaction whose `tpc_finish` returned is there, with what it
//!   wrote;
//! - every object's history counts up by one (no lost update), and every
//!   readCurrent check held at commit time;
//! - every read returned exactly the revision current in the snapshot it
//!   was made in (MVCC).
//!
//! Clients also pack now and then, at their snapshot, while others commit:
//! a pack removes revisions no later state needs, so the checker accepts a
//! missing revision only if it is older than a pack point.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use neo_core::client::{Answer, ClientError, ClientEvent, Conflict, LoadMode, OpId, TxnId};
use neo_core::rng::Rng;
use neo_core::Time;
use neo_proto::{Oid, Tid};

use super::check::committed_history;
use super::{NodeId, NodeKind, Sim};

/// Knobs of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadShape {
    /// Hot objects shared by every client.
    pub objects: (usize, usize),
    /// Objects incremented per transaction.
    pub per_transaction: (usize, usize),
    /// Chance (in percent) that a transaction also checks an object.
    pub check_percent: u64,
    /// Pause between transactions of a client.
    pub think_ms: (u64, u64),
    /// Chance (in percent) that a client packs instead of committing.
    pub pack_percent: u64,
}

/// A transaction `tpc_finish` acknowledged.
#[derive(Debug, Clone)]
struct Acked {
    tid: Tid,
    /// When the application asked to begin it, and when its finish was
    /// acknowledged (virtual time).
    begun_at: Time,
    acked_at: Time,
    writes: Vec<(Oid, u64)>,
    checks: Vec<(Oid, Tid)>,
}

/// A read made in the snapshot `before` (exclusive).
#[derive(Debug, Clone)]
struct Read {
    client: NodeId,
    before: Tid,
    oid: Oid,
    serial: Tid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Idle,
    Syncing,
    Loading,
    Beginning,
    Voting,
    Finishing,
    Packing,
}

/// A client's transaction in progress.
#[derive(Debug)]
struct Session {
    node: NodeId,
    generation: u64,
    step: Step,
    /// When the current transaction was begun.
    begun_at: Time,
    op: Option<OpId>,
    txn: Option<TxnId>,
    snapshot: Tid,
    /// Loads in flight: op → oid.
    loads: BTreeMap<OpId, Oid>,
    /// What was read: oid → (serial, value).
    read: BTreeMap<Oid, (Tid, u64)>,
    /// Objects to increment, and the one to check.
    writes: Vec<Oid>,
    check: Option<Oid>,
    /// Values stored: oid → value.
    stored: BTreeMap<Oid, u64>,
    /// Loads of committed revisions for conflict resolution: op → oid.
    resolving: BTreeMap<OpId, Oid>,
    /// A read of this transaction failed: it is abandoned once the others
    /// are back.
    read_failed: bool,
    /// A timer is pending for this client.
    scheduled: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct WorkloadStats {
    pub commits: u64,
    pub conflicts: u64,
    pub aborts: u64,
    pub packs: u64,
    /// Relocks clients did on NotifyDeadlock.
    pub deadlocks: u64,
}

pub struct Workload {
    shape: WorkloadShape,
    rng: Rng,
    objects: usize,
    /// Hot objects, once created.
    oids: Vec<Oid>,
    sessions: Vec<Session>,
    acked: Vec<Acked>,
    reads: Vec<Read>,
    /// The highest pack point asked for (the pack may or may not have
    /// been applied).
    max_pack_tid: Option<Tid>,
    /// New transactions start only before this instant.
    pub stop_at: Time,
    pub stats: WorkloadStats,
    /// Conflicts the client should not have reported: against the very
    /// revision the store was based on (a conflict every replica reported
    /// handed out again after it was resolved).
    bogus_conflicts: Vec<String>,
}

/// Workload timer tokens: the client's index.
fn token(index: usize) -> u64 {
    index as u64
}

fn value(data: &Bytes) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a counter: {data:?}"))
}

fn text(value: u64) -> Bytes {
    Bytes::from(value.to_string())
}

impl Workload {
    pub fn new(sim: &mut Sim, shape: WorkloadShape, seed: u64) -> Workload {
        let mut rng = Rng::new(seed ^ 0x3017_10ad);
        let objects =
            shape.objects.0 + rng.below((shape.objects.1 - shape.objects.0 + 1) as u64) as usize;
        let sessions = sim
            .node_ids(NodeKind::Client)
            .into_iter()
            .map(|node| Session {
                node,
                generation: sim.nodes[node.0].generation,
                step: Step::Idle,
                begun_at: sim.now,
                op: None,
                txn: None,
                snapshot: Tid::ZERO,
                loads: BTreeMap::new(),
                read: BTreeMap::new(),
                writes: Vec::new(),
                check: None,
                stored: BTreeMap::new(),
                resolving: BTreeMap::new(),
                read_failed: false,
                scheduled: false,
            })
            .collect();
        let mut workload = Workload {
            shape,
            rng,
            objects,
            oids: Vec::new(),
            sessions,
            acked: Vec::new(),
            reads: Vec::new(),
            max_pack_tid: None,
            stop_at: Time::from_nanos(u64::MAX),
            stats: WorkloadStats::default(),
            bogus_conflicts: Vec::new(),
        };
        for index in 0..workload.sessions.len() {
            workload.schedule(sim, index, Duration::from_millis(100));
        }
        workload
    }

    fn schedule(&mut self, sim: &mut Sim, index: usize, after: Duration) {
        if !self.sessions[index].scheduled {
            self.sessions[index].scheduled = true;
            sim.schedule_workload(sim.now + after, token(index));
        }
    }

    fn think(&mut self, sim: &mut Sim, index: usize) {
        let (lo, hi) = self.shape.think_ms;
        let pause = Duration::from_millis(lo + self.rng.below(hi - lo + 1));
        self.schedule(sim, index, pause);
    }

    /// Clients still in a transaction, for failure reports.
    pub fn describe(&self, sim: &Sim) -> String {
        self.sessions
            .iter()
            .filter(|s| s.step != Step::Idle)
            .map(|s| {
                format!(
                    "{} {:?} op={:?} txn={:?} loads={:?} resolving={:?}",
                    sim.name(s.node),
                    s.step,
                    s.op,
                    s.txn,
                    s.loads,
                    s.resolving
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether every client is between transactions.
    pub fn idle(&self) -> bool {
        self.sessions.iter().all(|s| s.step == Step::Idle)
    }

    /// A workload timer fired.
    pub fn on_timer(&mut self, sim: &mut Sim, token: u64) {
        let index = token as usize;
        self.sessions[index].scheduled = false;
        self.refresh(sim, index);
        if self.sessions[index].step != Step::Idle || sim.now >= self.stop_at {
            return;
        }
        let node = self.sessions[index].node;
        let ready = sim.nodes[node.0].as_client().is_some_and(|c| c.is_ready());
        if !ready {
            self.schedule(sim, index, Duration::from_millis(50));
            return;
        }
        if self.oids.is_empty() {
            // The first client creates the hot objects; others wait.
            if index == 0 {
                self.start_setup(sim, index);
            } else {
                self.schedule(sim, index, Duration::from_millis(50));
            }
            return;
        }
        let op = sim.with_client(node, |c, now| c.sync(now));
        let session = &mut self.sessions[index];
        session.step = Step::Syncing;
        session.op = op;
    }

    /// A restarted client is a new process: whatever it was doing is gone.
    fn refresh(&mut self, sim: &Sim, index: usize) {
        let node = self.sessions[index].node;
        let generation = sim.nodes[node.0].generation;
        if self.sessions[index].generation != generation || !sim.nodes[node.0].alive {
            let session = &mut self.sessions[index];
            session.generation = generation;
            if session.step != Step::Idle {
                self.stats.aborts += 1;
            }
            self.reset(index);
        }
    }

    fn reset(&mut self, index: usize) {
        let session = &mut self.sessions[index];
        session.step = Step::Idle;
        session.op = None;
        session.txn = None;
        session.loads.clear();
        session.read.clear();
        session.writes.clear();
        session.check = None;
        session.stored.clear();
        session.resolving.clear();
        session.read_failed = false;
    }

    /// Gives up the current transaction and tries again later.
    fn abort(&mut self, sim: &mut Sim, index: usize) {
        let session = &self.sessions[index];
        if let Some(txn) = session.txn {
            sim.with_client(session.node, |c, now| c.tpc_abort(now, txn));
        }
        if session.step != Step::Idle {
            self.stats.aborts += 1;
        }
        self.reset(index);
        self.think(sim, index);
    }

    /// Creating the hot objects: new oids, then a transaction storing 0 in
    /// each (set up as a transaction with no reads).
    fn start_setup(&mut self, sim: &mut Sim, index: usize) {
        let node = self.sessions[index].node;
        let objects = self.objects;
        let Some(oids) = sim.with_client(node, |c, now| {
            (0..objects).map(|_| c.new_oid(now)).collect::<Vec<_>>()
        }) else {
            return;
        };
        let session = &mut self.sessions[index];
        session.step = Step::Loading;
        // New oids come back as loads of nothing: their "serial" is zero.
        session.loads = oids.into_iter().map(|op| (op, Oid::INVALID)).collect();
    }

    /// Consumes the events of the simulation's clients.
    pub fn on_events(&mut self, sim: &mut Sim) {
        while let Some((node, event)) = sim.client_events.pop_front() {
            let Some(index) = self.sessions.iter().position(|s| s.node == node) else {
                continue;
            };
            self.refresh(sim, index);
            match event {
                ClientEvent::Done { op, result } => self.on_done(sim, index, op, result),
                ClientEvent::Conflict(conflict) => self.on_conflict(sim, index, conflict),
                ClientEvent::Ready { .. }
                | ClientEvent::Disconnected
                | ClientEvent::Invalidated { .. } => {}
            }
        }
    }

    fn on_done(
        &mut self,
        sim: &mut Sim,
        index: usize,
        op: OpId,
        result: Result<Answer, ClientError>,
    ) {
        let node = self.sessions[index].node;
        if let Some(oid) = self.sessions[index].resolving.remove(&op) {
            // The committed revision a conflict was against.
            let Ok(Answer::Loaded(loaded)) = result else {
                return self.abort(sim, index);
            };
            let merged = value(&loaded.data) + 1;
            let session = &mut self.sessions[index];
            session.stored.insert(oid, merged);
            let txn = session.txn.unwrap();
            let resolved = sim.with_client(node, |c, now| {
                c.resolve_conflict(now, txn, oid, Some(text(merged)))
            });
            if !matches!(resolved, Some(Ok(()))) {
                self.abort(sim, index);
            }
            return;
        }
        if let Some(oid) = self.sessions[index].loads.remove(&op) {
            return self.on_loaded(sim, index, oid, result);
        }
        if self.sessions[index].op != Some(op) {
            return; // an operation of an abandoned transaction
        }
        let session = &mut self.sessions[index];
        session.op = None;
        let Ok(answer) = result else {
            return self.abort(sim, index);
        };
        match (session.step.clone(), answer) {
            (Step::Syncing, Answer::Synced) => {
                if self.rng.chance(self.shape.pack_percent, 100) {
                    self.start_pack(sim, index);
                } else {
                    self.start_reads(sim, index);
                }
            }
            (Step::Packing, Answer::Packed(_)) => {
                self.stats.packs += 1;
                self.reset(index);
                self.think(sim, index);
            }
            (Step::Beginning, Answer::Begun(_)) => self.store_all(sim, index),
            (Step::Voting, Answer::Voted(_)) => {
                let txn = session.txn.unwrap();
                session.step = Step::Finishing;
                session.op = sim.with_client(node, |c, now| c.tpc_finish(now, txn));
            }
            (Step::Finishing, Answer::Finished(tid)) => {
                let session = &mut self.sessions[index];
                let writes: Vec<(Oid, u64)> =
                    session.stored.iter().map(|(o, v)| (*o, *v)).collect();
                let checks = session
                    .check
                    .map(|oid| vec![(oid, session.read[&oid].0)])
                    .unwrap_or_default();
                if self.oids.is_empty() {
                    self.oids = session.stored.keys().copied().collect();
                }
                let begun_at = session.begun_at;
                self.acked.push(Acked {
                    tid,
                    begun_at,
                    acked_at: sim.now,
                    writes,
                    checks,
                });
                self.stats.commits += 1;
                self.reset(index);
                self.think(sim, index);
            }
            _ => self.abort(sim, index),
        }
    }

    /// Packs the database at the client's snapshot, without waiting for
    /// storages to apply it.
    fn start_pack(&mut self, sim: &mut Sim, index: usize) {
        let node = self.sessions[index].node;
        let Some(snapshot) = sim.nodes[node.0].as_client().and_then(|c| c.last_tid()) else {
            return self.abort(sim, index);
        };
        self.max_pack_tid = self.max_pack_tid.max(Some(snapshot));
        let op = sim.with_client(node, |c, now| c.pack(now, snapshot, None, false));
        let session = &mut self.sessions[index];
        session.step = Step::Packing;
        session.op = op;
    }

    /// Reads the objects of the next transaction in the current snapshot.
    fn start_reads(&mut self, sim: &mut Sim, index: usize) {
        let node = self.sessions[index].node;
        let Some(snapshot) = sim.nodes[node.0].as_client().and_then(|c| c.last_tid()) else {
            return self.abort(sim, index);
        };
        let (lo, hi) = self.shape.per_transaction;
        let count = (lo + self.rng.below((hi - lo + 1) as u64) as usize).min(self.oids.len());
        let mut pool = self.oids.clone();
        self.rng.shuffle(&mut pool);
        let writes: Vec<Oid> = pool[..count].to_vec();
        let check = (pool.len() > count && self.rng.chance(self.shape.check_percent, 100))
            .then(|| pool[count]);
        let wanted: Vec<Oid> = writes.iter().copied().chain(check).collect();
        let Some(loads) = sim.with_client(node, |c, now| {
            wanted
                .iter()
                .map(|&oid| (c.load(now, oid, LoadMode::Current), oid))
                .collect::<BTreeMap<_, _>>()
        }) else {
            return;
        };
        let session = &mut self.sessions[index];
        session.step = Step::Loading;
        session.snapshot = snapshot;
        session.writes = writes;
        session.check = check;
        session.loads = loads;
    }

    fn on_loaded(
        &mut self,
        sim: &mut Sim,
        index: usize,
        oid: Oid,
        result: Result<Answer, ClientError>,
    ) {
        let session = &mut self.sessions[index];
        match result {
            Ok(Answer::Loaded(loaded)) => {
                self.reads.push(Read {
                    client: session.node,
                    before: Tid(session.snapshot.0 + 1),
                    oid,
                    serial: loaded.serial,
                });
                session
                    .read
                    .insert(oid, (loaded.serial, value(&loaded.data)));
            }
            Ok(Answer::Oid(new)) => {
                // Setup: a new object to create at 0.
                session.writes.push(new);
                session.read.insert(new, (Tid::ZERO, u64::MAX));
            }
            _ => session.read_failed = true,
        }
        if !session.loads.is_empty() {
            return;
        }
        if session.read_failed {
            return self.abort(sim, index);
        }
        let node = session.node;
        let begun = sim.with_client(node, |c, now| {
            c.tpc_begin(
                now,
                Bytes::from_static(b"sim"),
                Bytes::new(),
                Bytes::new(),
                None,
            )
        });
        match begun {
            Some(Ok((txn, op))) => {
                let session = &mut self.sessions[index];
                session.begun_at = sim.now;
                session.step = Step::Beginning;
                session.txn = Some(txn);
                session.op = Some(op);
            }
            _ => self.abort(sim, index),
        }
    }

    /// Stores every increment (and the check), then votes.
    fn store_all(&mut self, sim: &mut Sim, index: usize) {
        let session = &mut self.sessions[index];
        let node = session.node;
        let txn = session.txn.unwrap();
        let mut stores = Vec::new();
        for &oid in &session.writes {
            let (serial, current) = session.read[&oid];
            let new = current.wrapping_add(1); // u64::MAX + 1 = 0: created
            session.stored.insert(oid, new);
            stores.push((oid, serial, new));
        }
        let check = session.check.map(|oid| (oid, session.read[&oid].0));
        let ok = sim
            .with_client(node, |c, now| {
                for (oid, serial, new) in stores {
                    c.store(now, txn, oid, serial, Some(text(new)))?;
                }
                if let Some((oid, serial)) = check {
                    c.check_current_serial(now, txn, oid, serial)?;
                }
                Ok::<_, ClientError>(c.tpc_vote(now, txn))
            })
            .and_then(Result::ok);
        match ok {
            Some(op) => {
                let session = &mut self.sessions[index];
                session.step = Step::Voting;
                session.op = Some(op);
            }
            None => self.abort(sim, index),
        }
    }

    fn on_conflict(&mut self, sim: &mut Sim, index: usize, conflict: Conflict) {
        self.stats.conflicts += 1;
        if conflict.committed <= conflict.based_on {
            self.bogus_conflicts.push(format!(
                "conflict on {} with {} reported for a store based on {}",
                conflict.oid, conflict.committed, conflict.based_on
            ));
        }
        let session = &self.sessions[index];
        if session.txn != Some(conflict.txn) {
            return;
        }
        if conflict.checked {
            return; // the vote fails: aborted then
        }
        // Load the committed revision to merge with it.
        let node = session.node;
        let load = sim.with_client(node, |c, now| {
            c.load(now, conflict.oid, LoadMode::At(conflict.committed))
        });
        if let Some(op) = load {
            self.sessions[index].resolving.insert(op, conflict.oid);
        }
    }

    // ------------------------------------------------------------ checks

    /// Verifies the storages' records once the cluster serves and the
    /// workload is idle.
    pub fn check(&self, sim: &Sim) -> Result<CheckReport, String> {
        if let Some(bogus) = self.bogus_conflicts.first() {
            return Err(bogus.clone());
        }
        let history = committed_history(sim)?;
        let mut revisions: BTreeMap<Oid, Vec<(Tid, u64)>> = BTreeMap::new();
        for (oid, tid, data) in &history.objects {
            let value = match data {
                Some(data) => value(&neo_core::data::unpack(data).map_err(|e| e.to_string())?),
                None => return Err(format!("{oid} was deleted at {tid}")),
            };
            revisions.entry(*oid).or_default().push((*tid, value));
        }
        // A revision may be missing only if a pack point is after it.
        let packed_away = |tid: Tid| self.max_pack_tid.is_some_and(|p| tid < p);
        // Every object counts up by one from its creation (from the oldest
        // revision a pack kept): no lost update.
        for (oid, revs) in &revisions {
            // The oldest revision a pack keeps is the one current at the
            // pack point (which may be that very TID).
            let kept_by_pack = self.max_pack_tid.is_some_and(|p| revs[0].0 <= p);
            let first = if kept_by_pack { revs[0].1 } else { 0 };
            for (i, (tid, value)) in revs.iter().enumerate() {
                if *value != first + i as u64 {
                    return Err(format!(
                        "lost update: {oid} is {value} at {tid}, revision #{i} (history {revs:?})"
                    ));
                }
            }
        }
        // TIDs increase with time, whatever the masters' wall clocks did:
        // a transaction begun after another's commit was acknowledged
        // gets a larger TID (acknowledged in order, a running maximum of
        // earlier acknowledgements is enough).
        let mut by_ack: Vec<&Acked> = self.acked.iter().collect();
        by_ack.sort_by_key(|a| a.acked_at);
        for (i, later) in by_ack.iter().enumerate() {
            let before = by_ack[..i]
                .iter()
                .filter(|earlier| earlier.acked_at < later.begun_at)
                .map(|earlier| earlier.tid)
                .max();
            if let Some(earlier) = before.filter(|&t| later.tid <= t) {
                return Err(format!(
                    "TID {} was given to a transaction begun after {earlier} was committed",
                    later.tid
                ));
            }
        }
        // Every acknowledged commit is there, as written.
        for acked in &self.acked {
            if !history.transactions.contains(&acked.tid) {
                return Err(format!("acknowledged transaction {} is lost", acked.tid));
            }
            for (oid, value) in &acked.writes {
                let found = revisions
                    .get(oid)
                    .and_then(|revs| revs.iter().find(|(t, _)| t == &acked.tid));
                let ok = match found {
                    Some((_, v)) => v == value,
                    None => packed_away(acked.tid),
                };
                if !ok {
                    return Err(format!(
                        "acknowledged transaction {} wrote {value} to {oid}, the storages have {found:?}",
                        acked.tid
                    ));
                }
            }
            // readCurrent: no revision between the one checked and the
            // commit.
            for (oid, serial) in &acked.checks {
                let between = revisions.get(oid).and_then(|revs| {
                    revs.iter()
                        .find(|(t, _)| serial < t && *t < acked.tid)
                        .map(|(t, _)| *t)
                });
                if let Some(between) = between {
                    return Err(format!(
                        "transaction {} checked {oid} at {serial} but {between} came in between",
                        acked.tid
                    ));
                }
            }
        }
        // Every read saw the revision current in its snapshot.
        for read in &self.reads {
            let revs = revisions.get(&read.oid);
            let present = revs.is_some_and(|revs| revs.iter().any(|(t, _)| *t == read.serial));
            let expected = revs
                .and_then(|revs| revs.iter().rev().find(|(t, _)| *t < read.before))
                .map(|(t, _)| *t);
            let ok = if present {
                expected == Some(read.serial)
            } else {
                packed_away(read.serial)
            };
            if !ok {
                return Err(format!(
                    "{} read {} at {} in the snapshot before {}, current there: {expected:?}",
                    sim.name(read.client),
                    read.oid,
                    read.serial,
                    read.before
                ));
            }
        }
        Ok(CheckReport {
            transactions: history.transactions.len(),
            reads: self.reads.len(),
        })
    }
}

/// What the checker verified.
#[derive(Debug, Clone, Copy)]
pub struct CheckReport {
    pub transactions: usize,
    pub reads: usize,
}
