//! How long a storage that was down takes to catch up on N transactions,
//! in the simulator's virtual time (deterministic: the figures depend only
//! on the latency and sync-time models printed with them). One JSON object
//! per line.
//!
//! `cargo bench -p neo-tests --bench catch_up` (add N values to override
//! the default 100 1000 10000).

use std::time::{Duration, Instant};

use neo_proto::{CellState, Oid, Tid};
use neo_tests::sim::campaign::replicated_and_quiet;
use neo_tests::sim::drive::Cluster;
use neo_tests::sim::{NodeId, SimConfig};

const OBJECTS: u64 = 100;
const DATA_BYTES: usize = 100;

fn commit_one(cluster: &mut Cluster, client: NodeId, oid: Oid, serial: Tid, round: u64) -> Tid {
    let txn = cluster.begin(client, "", "");
    let data = format!("{:.<DATA_BYTES$}", format!("{oid}@{round}"));
    cluster.store(client, txn, oid, serial, &data);
    cluster.finish(client, txn).expect("committed")
}

fn measure(transactions: u64) {
    let mut config = SimConfig::new(7);
    config.partitions = 4;
    config.replicas = 1;
    config.keep_logs = false;
    let (latency, sync) = (config.latency_us, config.sync_us);
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let client = cluster.clients[0];
    let mut serials = Vec::new();
    for _ in 0..OBJECTS {
        serials.push((cluster.new_oid(client), Tid::ZERO));
    }
    for (i, (oid, serial)) in serials.iter_mut().enumerate() {
        *serial = commit_one(&mut cluster, client, *oid, *serial, i as u64);
    }
    cluster.run_for(Duration::from_secs(2));
    let late = cluster.storages()[1];
    cluster.sim.crash(late);
    cluster.run_for(Duration::from_millis(100));
    for round in 0..transactions {
        let (oid, serial) = serials[(round % OBJECTS) as usize];
        let tid = commit_one(&mut cluster, client, oid, serial, round);
        serials[(round % OBJECTS) as usize].1 = tid;
    }
    let started = cluster.sim.now;
    let steps = cluster.sim.steps;
    let wall = Instant::now();
    cluster.sim.restart(late);
    cluster
        .run_until(Duration::from_secs(3600), replicated_and_quiet)
        .expect("caught up");
    let virtual_time = cluster.sim.now.saturating_since(started);
    let pt = cluster.master().partition_table();
    assert!((0..4).all(|p| pt.row(p).iter().all(|c| c.state == CellState::UpToDate)));
    neo_tests::sim::check::committed_history(&cluster.sim).expect("replicas agree");
    println!(
        "{{\"transactions\": {transactions}, \"objects\": {OBJECTS}, \"data_bytes\": {DATA_BYTES}, \
         \"partitions\": 4, \"catch_up_virtual_ms\": {:.3}, \"per_transaction_virtual_us\": {:.2}, \
         \"sim_steps\": {}, \"wall_ms\": {:.1}, \"latency_us\": [{}, {}], \"sync_us\": [{}, {}]}}",
        virtual_time.as_secs_f64() * 1e3,
        virtual_time.as_secs_f64() * 1e6 / transactions as f64,
        cluster.sim.steps - steps,
        wall.elapsed().as_secs_f64() * 1e3,
        latency.0,
        latency.1,
        sync.0,
        sync.1,
    );
}

fn main() {
    for n in neo_tests::bench_sizes(&[100, 1000, 10_000]) {
        measure(n);
    }
}
