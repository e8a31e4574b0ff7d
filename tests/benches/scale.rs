//! How the primary master's work grows with the cluster: 10, 100 and
//! 1,000 storage + client nodes in the simulator (a tenth storages, 10
//! partitions per storage, replicas 2, the rest clients), booted, then
//! one commit per client (up to 100), then a storage lost and regained.
//! The master's work is the wall-clock time spent in its state machine
//! (the simulator adds it up per node; nothing else runs meanwhile). One
//! JSON object per size:
//!
//! `cargo bench -p neo-tests --bench scale` (add node counts to override
//! the default 10 100 1000). `tests/bench-scripts/scale-instructions` runs it
//! under callgrind for the master's instructions per event instead.
//!
//! A node join, a commit's invalidations and a partition-table change
//! must reach every client and storage: the work per event should grow
//! at most linearly with the nodes.

use std::time::{Duration, Instant};

use neo_proto::{Oid, Tid};
use neo_tests::sim::campaign::replicated_and_quiet;
use neo_tests::sim::drive::Cluster;
use neo_tests::sim::SimConfig;

/// Marks the end of a phase for `tests/bench-scripts/scale-instructions`, which
/// runs this benchmark under callgrind, counting only the master's
/// instructions, and dumps the counters after each call of this function.
#[inline(never)]
fn phase_end(name: &str) {
    std::hint::black_box(name);
}

fn master_work(cluster: &Cluster) -> Duration {
    cluster
        .masters()
        .iter()
        .map(|m| cluster.sim.nodes[m.0].work)
        .sum()
}

fn ptid(cluster: &Cluster) -> u64 {
    cluster.master().partition_table().ptid().map_or(0, |p| p.0)
}

fn measure(nodes: usize) {
    let storages = (nodes / 10).max(3);
    let clients = nodes - storages;
    let partitions = 10 * storages as u32;
    let mut config = SimConfig::new(11);
    config.partitions = partitions;
    config.replicas = 2;
    config.keep_logs = false;

    let started = Instant::now();
    let mut cluster = Cluster::start(config, 1, storages, clients);
    let boot_work = master_work(&cluster);
    let boot_wall = started.elapsed();
    phase_end("boot");

    let committers: Vec<_> = cluster.clients.iter().copied().take(100).collect();
    for &client in &committers {
        let oid: Oid = cluster.new_oid(client);
        let txn = cluster.begin(client, "", "");
        cluster.store(client, txn, oid, Tid::ZERO, "data");
        cluster.finish(client, txn).expect("committed");
    }
    let commit_work = master_work(&cluster) - boot_work;
    phase_end("commits");

    let before = master_work(&cluster);
    let ptid_before = ptid(&cluster);
    let lost = cluster.storages()[0];
    cluster.sim.crash(lost);
    cluster.run_for(Duration::from_secs(1));
    cluster.sim.restart(lost);
    cluster
        .run_until(Duration::from_secs(600), replicated_and_quiet)
        .expect("the storage caught up");
    let changes = ptid(&cluster) - ptid_before;
    let change_work = master_work(&cluster) - before;
    phase_end("storage lost and back");

    let joins = storages + clients + 1;
    let commits = committers.len();
    let us = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!(
        "{{\"nodes\": {nodes}, \"storages\": {storages}, \"clients\": {clients}, \
         \"partitions\": {partitions}, \"replicas\": 2, \
         \"joins\": {joins}, \"commits\": {commits}, \"pt_changes\": {changes}, \
         \"master_us_per_join\": {:.1}, \"master_us_per_commit\": {:.1}, \
         \"master_us_per_pt_change\": {:.1}, \
         \"boot_wall_ms\": {:.0}, \"total_wall_ms\": {:.0}}}",
        us(boot_work, joins),
        us(commit_work, commits),
        us(change_work, changes as usize),
        boot_wall.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3,
    );
}

fn main() {
    for nodes in neo_tests::bench_sizes(&[10, 100, 1000]) {
        measure(nodes);
    }
}
