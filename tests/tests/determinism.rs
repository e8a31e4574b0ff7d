//! The simulator is deterministic: the same seed gives the same run, to the
//! last packet and log line (what makes a failing seed a test case).

use neo_tests::sim::campaign::{run_traced, Action, Shape};
use neo_tests::sim::workload::WorkloadShape;
use neo_tests::sim::NodeKind;
use std::time::Duration;

#[test]
fn same_seed_same_run() {
    let shape = Shape {
        masters: (2, 3),
        storages: (2, 3),
        max_replicas: 1,
        partitions: (2, 4),
        clients: (1, 2),
        fault_window: Duration::from_secs(10),
        faults: (3, 6),
        actions: vec![
            Action::CrashRandom {
                kinds: vec![NodeKind::Master, NodeKind::Storage],
            },
            Action::RestartRandom,
            Action::DropRandomConnection,
            Action::PartitionRandom,
            Action::Heal,
        ],
        recovery_deadline: Duration::from_secs(60),
        // Clients commit while all this happens.
        workload: Some(WorkloadShape {
            objects: (2, 4),
            per_transaction: (1, 2),
            check_percent: 20,
            think_ms: (10, 50),
            pack_percent: 5,
        }),
        storage_ping: None,
        until_replicated: false,
    };
    for seed in 0..20 {
        let first = run_traced(seed, &shape);
        let second = run_traced(seed, &shape);
        assert!(!first.is_empty());
        assert_eq!(first, second, "seed {seed} is not deterministic");
    }
}

/// Prints a digest of a seed's run, to compare across processes
/// (`cargo test -p neo-tests --test determinism digest -- --ignored --nocapture`).
#[test]
#[ignore]
fn digest() {
    use std::hash::{Hash, Hasher};
    let shape = Shape {
        masters: (2, 3),
        storages: (1, 3),
        max_replicas: 1,
        partitions: (1, 6),
        clients: (0, 2),
        fault_window: Duration::from_secs(10),
        faults: (1, 6),
        actions: vec![
            Action::CrashRandom {
                kinds: vec![NodeKind::Master],
            },
            Action::RestartRandom,
            Action::DropRandomConnection,
            Action::PartitionRandom,
            Action::Heal,
        ],
        recovery_deadline: Duration::from_secs(60),
        workload: None,
        storage_ping: None,
        until_replicated: false,
    };
    let seed: u64 = std::env::var("NEO_SIM_SEED")
        .map(|s| s.parse().unwrap())
        .unwrap_or(23586);
    let lines = run_traced(seed, &shape);
    if std::env::var("NEO_SIM_PRINT").is_ok() {
        for line in &lines {
            println!("{line}");
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    lines.hash(&mut hasher);
    println!("DIGEST {seed} {} {:x}", lines.len(), hasher.finish());
}
