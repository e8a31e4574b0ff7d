//! Driving a simulated cluster from a test, the way an application drives
//! its client: start an operation, run the simulation until its result
//! arrives. Every wait is bounded in virtual time.

use std::time::Duration;

use bytes::Bytes;
use neo_core::client::{Answer, ClientError, ClientEvent, OpId, TxnId};
use neo_proto::{ClusterState, Oid, SetClusterState, Tid};

use super::{NodeId, NodeKind, Sim, SimConfig};

/// The bytes of a string (object data, transaction metadata in tests).
pub fn text(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A cluster built for a scripted test.
pub struct Cluster {
    pub sim: Sim,
    pub admin: NodeId,
    pub ctl: NodeId,
    pub clients: Vec<NodeId>,
}

impl Cluster {
    /// Masters, storages, an admin and clients, started with `autostart`
    /// and run until the cluster serves and every client is ready.
    pub fn start(config: SimConfig, masters: usize, storages: usize, clients: usize) -> Cluster {
        let mut config = config;
        config.autostart = Some(storages as u32);
        let mut sim = Sim::new(config);
        sim.add_masters(masters);
        for _ in 0..storages {
            sim.add_storage();
        }
        let admin = sim.add_admin();
        let clients = (0..clients).map(|_| sim.add_client()).collect();
        let ctl = sim.add_ctl();
        let mut cluster = Cluster {
            sim,
            admin,
            ctl,
            clients,
        };
        cluster
            .run_until(Duration::from_secs(30), super::campaign::serving)
            .expect("the cluster starts");
        cluster
    }

    /// A cluster of one master recording a transcript, with fixed
    /// latencies and sync times so that the order of packets is the
    /// protocol's, not the simulator's dice; run until quiet.
    pub fn for_transcript(
        seed: u64,
        partitions: u32,
        replicas: u32,
        storages: usize,
        clients: usize,
    ) -> Cluster {
        let mut config = SimConfig::new(seed);
        config.partitions = partitions;
        config.replicas = replicas;
        config.latency_us = (100, 100);
        config.sync_us = (500, 500);
        config.transcript = true;
        let mut cluster = Cluster::start(config, 1, storages, clients);
        cluster.run_for(Duration::from_millis(100));
        cluster
    }

    /// Runs until `done` holds (checked after every step), at most
    /// `timeout` of virtual time.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<(), String> {
        let deadline = self.sim.now + timeout;
        loop {
            if done(&self.sim) {
                return Ok(());
            }
            if self.sim.step(deadline).is_none() {
                return if done(&self.sim) {
                    Ok(())
                } else {
                    Err(format!("condition not reached within {timeout:?}"))
                };
            }
        }
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.sim.now + duration;
        while self.sim.step(until).is_some() {}
        self.sim.now = self.sim.now.max(until);
    }

    /// Starts an operation on a client.
    pub fn start_op(
        &mut self,
        client: NodeId,
        f: impl FnOnce(&mut neo_core::client::Client, neo_core::Time) -> OpId,
    ) -> OpId {
        self.sim
            .with_client(client, f)
            .expect("the client is alive")
    }

    /// Waits for the result of `op` on `client` (other events stay queued).
    pub fn wait(&mut self, client: NodeId, op: OpId) -> Result<Answer, ClientError> {
        let mut result = None;
        // Events only get appended while this runs: look at each once (a
        // big cluster's clients pile up invalidations nobody takes here).
        let mut seen = 0;
        self.run_until(Duration::from_secs(60), |sim| {
            let done = sim
                .client_events
                .range(seen.min(sim.client_events.len())..)
                .any(|(node, event)| {
                    *node == client && matches!(event, ClientEvent::Done { op: o, .. } if *o == op)
                });
            seen = sim.client_events.len();
            done
        })
        .unwrap_or_else(|e| panic!("operation {op:?} of {}: {e}", self.sim.name(client)));
        let events = std::mem::take(&mut self.sim.client_events);
        for (node, event) in events {
            match event {
                ClientEvent::Done { op: o, result: r } if node == client && o == op => {
                    result = Some(r)
                }
                other => self.sim.client_events.push_back((node, other)),
            }
        }
        result.unwrap()
    }

    /// Starts an operation and waits for its result.
    pub fn call(
        &mut self,
        client: NodeId,
        f: impl FnOnce(&mut neo_core::client::Client, neo_core::Time) -> OpId,
    ) -> Result<Answer, ClientError> {
        let op = self.start_op(client, f);
        self.wait(client, op)
    }

    /// A new object id.
    pub fn new_oid(&mut self, client: NodeId) -> Oid {
        match self.call(client, |c, now| c.new_oid(now)) {
            Ok(Answer::Oid(oid)) => oid,
            other => panic!("new_oid: {other:?}"),
        }
    }

    /// Begins a transaction with this user and description.
    pub fn begin(&mut self, client: NodeId, user: &str, description: &str) -> TxnId {
        let (txn, op) = self
            .sim
            .with_client(client, |c, now| {
                c.tpc_begin(now, text(user), text(description), Bytes::new(), None)
            })
            .expect("a live client")
            .expect("tpc_begin accepted");
        match self.wait(client, op) {
            Ok(Answer::Begun(_)) => txn,
            other => panic!("tpc_begin: {other:?}"),
        }
    }

    /// Stores `data` as the revision of `oid` following `serial`.
    pub fn store(&mut self, client: NodeId, txn: TxnId, oid: Oid, serial: Tid, data: &str) {
        self.sim
            .with_client(client, |c, now| {
                c.store(now, txn, oid, serial, Some(text(data)))
            })
            .expect("a live client")
            .expect("store accepted");
    }

    /// Finishes a transaction (voting it first if the application did
    /// not); its TID.
    pub fn finish(&mut self, client: NodeId, txn: TxnId) -> Result<Tid, ClientError> {
        match self.call(client, |c, now| c.tpc_finish(now, txn))? {
            Answer::Finished(tid) => Ok(tid),
            other => panic!("tpc_finish: {other:?}"),
        }
    }

    /// Removes and returns the events of `client` not consumed yet.
    pub fn events(&mut self, client: NodeId) -> Vec<ClientEvent> {
        let events = std::mem::take(&mut self.sim.client_events);
        let mut mine = Vec::new();
        for (node, event) in events {
            if node == client {
                mine.push(event);
            } else {
                self.sim.client_events.push_back((node, event));
            }
        }
        mine
    }

    /// Sends a command to the admin as `neoctl` does and returns its
    /// answer.
    pub fn ctl(&mut self, packet: neo_proto::Packet) -> neo_proto::Packet {
        let before = self.sim.ctl_answers.len();
        let (ctl, admin) = (self.ctl, self.admin);
        self.sim.ctl(ctl, admin, packet);
        self.run_until(Duration::from_secs(5), |sim| sim.ctl_answers.len() > before)
            .expect("the admin answers");
        self.sim.ctl_answers.last().unwrap().1.clone()
    }

    /// The running primary master.
    pub fn master(&self) -> &neo_core::master::Master {
        let primary = super::check::running_primary(&self.sim).expect("a running primary");
        self.sim.nodes[primary.0].as_master().unwrap()
    }

    /// The node id of a storage.
    pub fn nid(&self, storage: NodeId) -> neo_proto::Nid {
        self.sim.nodes[storage.0]
            .as_storage()
            .and_then(|s| s.nid())
            .expect("a storage with an id")
    }

    /// The operator asks the admin to start the cluster.
    pub fn start_cluster(&mut self) {
        let (ctl, admin) = (self.ctl, self.admin);
        self.sim.ctl(
            ctl,
            admin,
            SetClusterState {
                state: ClusterState::Verifying,
            }
            .into(),
        );
    }

    pub fn storages(&self) -> Vec<NodeId> {
        self.sim.node_ids(NodeKind::Storage)
    }

    pub fn masters(&self) -> Vec<NodeId> {
        self.sim.node_ids(NodeKind::Master)
    }
}
