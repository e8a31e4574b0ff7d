//! Protocol transcripts: who sent which packet to whom, rendered by
//! neo-proto, recorded from the simulator with fixed latencies and kept as
//! insta snapshots in `snapshots/`. A change in what nodes say shows up
//! here as a diff to review.

use std::time::Duration;

use neo_proto::{ClusterState, SetClusterState};
use neo_tests::sim::check::{invariants, running_primary};
use neo_tests::sim::{Sim, SimConfig};

fn sim(seed: u64) -> Sim {
    let mut config = SimConfig::new(seed);
    config.partitions = 2;
    config.replicas = 1;
    config.latency_us = (100, 100);
    config.sync_us = (500, 500);
    config.transcript = true;
    Sim::new(config)
}

fn run_for(sim: &mut Sim, duration: Duration) {
    let until = sim.now + duration;
    sim.run_until(until, |_, _| {}, invariants)
        .unwrap_or_else(|e| panic!("{e}\n{}", sim.logs.join("\n")));
}

/// One master, two storages and an admin boot; the operator starts the
/// cluster; it reaches RUNNING.
#[test]
fn boot_to_running() {
    let mut sim = sim(1);
    sim.add_masters(1);
    sim.add_storage();
    sim.add_storage();
    let admin = sim.add_admin();
    let ctl = sim.add_ctl();
    run_for(&mut sim, Duration::from_millis(50));
    sim.ctl(
        ctl,
        admin,
        SetClusterState {
            state: ClusterState::Verifying,
        }
        .into(),
    );
    run_for(&mut sim, Duration::from_millis(50));
    assert!(running_primary(&sim).is_some());
    neo_tests::snapshot("transcript_boot_to_running", &sim.transcript);
}

/// Three masters elect a primary and the cluster runs; the primary dies;
/// the oldest remaining candidate wins, everyone reconnects to it, and the
/// cluster runs again (every storage holding readable cells being back).
#[test]
fn primary_failover() {
    let mut sim = sim(2);
    sim.add_masters(3);
    sim.add_storage();
    sim.add_storage();
    let admin = sim.add_admin();
    let ctl = sim.add_ctl();
    run_for(&mut sim, Duration::from_secs(2));
    sim.ctl(
        ctl,
        admin,
        SetClusterState {
            state: ClusterState::Verifying,
        }
        .into(),
    );
    run_for(&mut sim, Duration::from_secs(2));
    let primary =
        running_primary(&sim).unwrap_or_else(|| panic!("no primary runs\n{}", sim.logs.join("\n")));
    sim.transcript.clear();
    sim.transcript
        .push(format!("-- {} dies", sim.name(primary)));
    sim.crash(primary);
    run_for(&mut sim, Duration::from_secs(3));
    let new_primary = running_primary(&sim)
        .unwrap_or_else(|| panic!("no new primary runs\n{}", sim.logs.join("\n")));
    assert_ne!(new_primary, primary);
    neo_tests::snapshot("transcript_primary_failover", &sim.transcript);
}
