//! Simulator campaigns of replication: clients commit while storages
//! crash, hang, come back, join, are added and tweaked in, tweaked out,
//! killed and dropped, with 1 to 3 copies of each partition. At the end
//! the cluster must serve, replication must complete (every cell
//! UP_TO_DATE), every replica of a partition must hold the same records,
//! and the checker proves that no acknowledged transaction was lost and
//! every read saw a committed snapshot.
//!
//! Replay a failing seed: `NEO_SIM_SEED=<n> cargo test -p neo-tests --test
//! replication_campaign -- --nocapture`; run a long campaign:
//! `NEO_SIM_SEEDS=100000 cargo test --release -p neo-tests --test replication_campaign`.

use std::time::Duration;

use neo_tests::sim::campaign::{run, run_campaign, Action, Outcome, Shape};
use neo_tests::sim::workload::WorkloadShape;
use neo_tests::sim::NodeKind;

fn report(name: &str, outcomes: &[Outcome]) {
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    eprintln!(
        "{name}: {} seeds, {} steps, {} faults and operator actions ({} operator requests \
         done, {} refused), {} cells replicated, {} hung storages taken down, {} commits, \
         {} transactions and {} reads checked, {:.0} s of virtual time",
        outcomes.len(),
        sum(|o| o.steps),
        sum(|o| o.faults as u64),
        sum(|o| o.cluster.operator_done),
        sum(|o| o.cluster.operator_refused),
        sum(|o| o.cluster.replicated_cells),
        sum(|o| o.cluster.hung_storages),
        sum(|o| o.workload.commits),
        sum(|o| o.checked.0 as u64),
        sum(|o| o.checked.1 as u64),
        outcomes
            .iter()
            .map(|o| o.virtual_time.as_secs_f64())
            .sum::<f64>(),
    );
}

fn churn_shape() -> Shape {
    Shape {
        masters: (1, 1),
        storages: (2, 3),
        max_replicas: 2,
        partitions: (2, 6),
        clients: (1, 3),
        fault_window: Duration::from_secs(3),
        faults: (2, 7),
        actions: vec![
            Action::CrashRandom {
                kinds: vec![NodeKind::Storage],
            },
            Action::RestartRandom,
            Action::FreezeRandomStorage,
            Action::NewStorage,
            Action::AddPending,
            Action::Tweak,
            Action::TweakOutRandomStorage,
            Action::KillRandomStorage,
            Action::DropRandomDownStorage,
            Action::DropRandomConnection,
            Action::ClockJump,
        ],
        recovery_deadline: Duration::from_secs(120),
        workload: Some(WorkloadShape {
            objects: (3, 8),
            per_transaction: (1, 3),
            check_percent: 20,
            think_ms: (5, 50),
            pack_percent: 2,
        }),
        // Short, so that hung storages are noticed within the window.
        storage_ping: Some(Duration::from_millis(400)),
        until_replicated: true,
    }
}

#[test]
fn churn_campaign() {
    let outcomes = run_campaign("churn", "replication_campaign", 1000, &churn_shape());
    report("churn", &outcomes);
}

/// Seeds that found bugs (all fixed).
#[test]
fn seeds_that_found_bugs() {
    type Case = (&'static str, fn() -> Shape, u64);
    let cases: &[Case] = &[
        // Not a bug of the cluster: the simulator kept the timer instant of
        // a storage that exited when told it was killed; restarted, its
        // wake-ups were never scheduled and a pack stalled forever.
        ("churn", churn_shape, 372),
        // After the cluster stopped (its last readable storage hung), two
        // storages without data joined and autostart made a new, empty
        // database (NEO/py does the same); the dropped storage then came
        // back with an id the master had given again and was refused
        // forever. A master that knew a table never autostarts a new one,
        // and the ids of dropped storages are not reused.
        ("churn", churn_shape, 8051),
        // A storage kept waiting on a replication source that hung and was
        // then taken down and dropped (NEO/py only gives up when the
        // connection closes): the source is now abandoned as soon as its
        // cell is no longer readable.
        ("churn", churn_shape, 9796),
        // A pack transaction whose only up-to-date storage crashed before
        // locking it: the master kept the order (approved) and storages
        // applied it, and the voted order was reported as unsigned; the
        // replica that never had it waited forever for orders the master
        // had forgotten. Orders are now relearned at verification and only
        // committed ones reported (scripted in transactions.rs).
        ("churn", churn_shape, 10390),
    ];
    for (name, shape, seed) in cases {
        if let Err(failure) = run(*seed, &shape()) {
            panic!("{name} seed {seed}: {}", failure.0);
        }
    }
}
