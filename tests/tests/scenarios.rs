//! Scripted scenarios: exact sequences of faults that once broke the
//! cluster (found by the campaigns), replayed step by step so that they
//! keep testing the same thing whatever the random draws.

use std::collections::BTreeSet;
use std::time::Duration;

use neo_proto::{ClusterState, Nid, SetClusterState};
use neo_tests::sim::check::{invariants, running_primary};
use neo_tests::sim::{NodeId, NodeKind, Sim, SimConfig};

/// Runs the simulation for `duration`, checking invariants at every step.
fn run_for(sim: &mut Sim, duration: Duration) {
    let until = sim.now + duration;
    sim.run_until(until, |_, _| {}, invariants)
        .unwrap_or_else(|e| panic!("{e}\n{}", sim.logs.join("\n")));
}

fn storage_with_nid(sim: &Sim, nid: Nid) -> NodeId {
    sim.node_ids(NodeKind::Storage)
        .into_iter()
        .find(|&s| sim.nodes[s.0].as_storage().and_then(|s| s.nid()) == Some(nid))
        .expect("storage with that id")
}

/// Two masters, three storages, one partition with two copies.
fn cluster() -> (Sim, Vec<NodeId>, NodeId, NodeId) {
    let mut config = SimConfig::new(7);
    config.partitions = 1;
    config.replicas = 1;
    config.latency_us = (100, 100);
    let mut sim = Sim::new(config);
    let masters = sim.add_masters(2);
    for _ in 0..3 {
        sim.add_storage();
    }
    let admin = sim.add_admin();
    let ctl = sim.add_ctl();
    run_for(&mut sim, Duration::from_millis(100));
    sim.ctl(
        ctl,
        admin,
        SetClusterState {
            state: ClusterState::Verifying,
        }
        .into(),
    );
    run_for(&mut sim, Duration::from_millis(100));
    assert!(running_primary(&sim).is_some(), "{}", sim.logs.join("\n"));
    (sim, masters, admin, ctl)
}

/// The primary M0 is cut off with the cell-less storage and loses both
/// copies: it outdates one (a table version only the cell-less storage
/// stores) and recovers. M1 takes over with both copies, then loses the
/// one M0 kept readable. When the network heals, that storage reaches M0
/// first: M0 must not restart with it while M1 still serves.
#[test]
fn old_primary_does_not_restart_from_a_version_made_during_a_cut() {
    let (mut sim, masters, admin, _ctl) = cluster();
    let primary = running_primary(&sim).unwrap();
    let other = *masters.iter().find(|&&m| m != primary).unwrap();
    let table = sim.nodes[primary.0]
        .as_master()
        .unwrap()
        .partition_table()
        .clone();
    let holders: Vec<Nid> = table.row(0).iter().map(|c| c.nid).collect();
    let cell_less = sim
        .node_ids(NodeKind::Storage)
        .into_iter()
        .find(|&s| !holders.contains(&sim.nodes[s.0].as_storage().unwrap().nid().unwrap()))
        .unwrap();
    // Cut: the primary, the cell-less storage and the admin on one side.
    let side: BTreeSet<NodeId> = [primary, cell_less, admin].into_iter().collect();
    sim.partition(&side);
    run_for(&mut sim, Duration::from_secs(3));
    let m0 = sim.nodes[primary.0].as_master().unwrap();
    assert_eq!(m0.cluster_state(), Some(ClusterState::Recovering));
    let m1 = sim.nodes[other.0].as_master().unwrap();
    assert_eq!(
        m1.cluster_state(),
        Some(ClusterState::Running),
        "{}",
        sim.logs.join("\n")
    );
    // The copy M0's version kept readable: the one it lost last.
    let m0_table = sim.nodes[cell_less.0]
        .as_storage()
        .unwrap()
        .partition_table()
        .unwrap()
        .clone();
    let kept = m0_table
        .row(0)
        .iter()
        .find(|c| c.is_readable())
        .map(|c| c.nid)
        .unwrap();
    let kept_node = storage_with_nid(&sim, kept);
    // M1 loses that storage: it outdates it and goes on with the other.
    sim.heal();
    let links: Vec<u64> = sim
        .network
        .open_links()
        .into_iter()
        .filter(|&l| {
            let (a, b) = sim.network.ends(l).unwrap();
            [a.0, b.0].contains(&kept_node) && [a.0, b.0].contains(&other)
        })
        .collect();
    for link in links {
        sim.drop_connection(link);
    }
    run_for(&mut sim, Duration::from_secs(5));
    // Both masters may not serve; exactly one primary runs in the end.
    assert!(running_primary(&sim).is_some(), "{}", sim.logs.join("\n"));
}
