//! Replication, scripted: a storage that comes back catches up on what it
//! missed, a new storage joins and takes partitions over, a storage is
//! dropped, a replication interrupted by a crash resumes. After each,
//! every readable replica holds the same records and the data reads back.

use std::time::Duration;

use neo_core::client::{Answer, LoadMode};
use neo_proto::{AddPendingNodes, CellState, Nid, Oid, Packet, Tid, TweakPartitionTable};
use neo_tests::sim::campaign::replicated_and_quiet;
use neo_tests::sim::check::committed_history;
use neo_tests::sim::drive::Cluster;
use neo_tests::sim::{NodeId, SimConfig};

/// Creates `count` objects in one transaction; returns them.
fn create(cluster: &mut Cluster, client: NodeId, count: usize) -> Vec<(Oid, Tid)> {
    let txn = cluster.begin(client, "u", "d");
    let mut oids = Vec::new();
    for i in 0..count {
        let oid = cluster.new_oid(client);
        cluster.store(client, txn, oid, Tid::ZERO, &format!("{oid}:{i}"));
        oids.push(oid);
    }
    let tid = cluster.finish(client, txn).unwrap();
    oids.into_iter().map(|oid| (oid, tid)).collect()
}

/// Rewrites every object once per round.
fn rewrite(cluster: &mut Cluster, client: NodeId, objects: &mut [(Oid, Tid)], rounds: usize) {
    for round in 0..rounds {
        let txn = cluster.begin(client, "u", "d");
        for (oid, serial) in objects.iter() {
            cluster.store(client, txn, *oid, *serial, &format!("{oid}@{round}"));
        }
        let tid = cluster.finish(client, txn).unwrap();
        for object in objects.iter_mut() {
            object.1 = tid;
        }
    }
}

fn cells_of(cluster: &Cluster, nid: Nid) -> Vec<(u32, CellState)> {
    let pt = cluster.master().partition_table();
    (0..pt.num_partitions())
        .filter_map(|p| pt.cell(p, nid).map(|c| (p, c.state)))
        .collect()
}

fn check_reads(cluster: &mut Cluster, client: NodeId, objects: &[(Oid, Tid)]) {
    assert_eq!(
        cluster.call(client, |c, now| c.sync(now)),
        Ok(Answer::Synced)
    );
    for &(oid, serial) in objects {
        match cluster.call(client, |c, now| c.load(now, oid, LoadMode::At(serial))) {
            Ok(Answer::Loaded(loaded)) => assert_eq!(loaded.serial, serial),
            other => panic!("{oid}: {other:?}"),
        }
    }
}

#[test]
fn a_storage_that_comes_back_catches_up_on_what_it_missed() {
    let mut config = SimConfig::new(31);
    config.partitions = 4;
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let client = cluster.clients[0];
    let mut objects = create(&mut cluster, client, 10);
    let storages = cluster.storages();
    let (s0, s1) = (storages[0], storages[1]);
    let nid1 = cluster.nid(s1);
    cluster.sim.crash(s1);
    cluster.run_for(Duration::from_millis(100));
    assert!(cells_of(&cluster, nid1)
        .iter()
        .all(|(_, s)| *s == CellState::OutOfDate));
    rewrite(&mut cluster, client, &mut objects, 20);
    let started = cluster.sim.now;
    cluster.sim.restart(s1);
    cluster
        .run_until(Duration::from_secs(30), replicated_and_quiet)
        .unwrap();
    eprintln!(
        "caught up on 20 transactions in {:?} of virtual time",
        cluster.sim.now.saturating_since(started)
    );
    committed_history(&cluster.sim).unwrap();
    // It holds everything: reads go on without the other one.
    cluster.sim.crash(s0);
    cluster.run_for(Duration::from_millis(200));
    check_reads(&mut cluster, client, &objects);
}

#[test]
fn a_new_storage_joins_and_takes_partitions_over_while_commits_go_on() {
    let mut config = SimConfig::new(32);
    config.partitions = 6;
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let client = cluster.clients[0];
    let mut objects = create(&mut cluster, client, 12);
    rewrite(&mut cluster, client, &mut objects, 5);
    let newcomer = cluster.sim.add_storage();
    cluster.run_for(Duration::from_millis(500));
    let nid = cluster.nid(newcomer);
    let answer = cluster.ctl(AddPendingNodes { nids: vec![nid] }.into());
    assert!(matches!(answer, Packet::Error(ref e) if e.code == neo_proto::ErrorCode::Ack));
    let answer = cluster.ctl(
        TweakPartitionTable {
            dry_run: false,
            drop_nids: vec![],
        }
        .into(),
    );
    assert!(matches!(answer, Packet::AnswerTweakPartitionTable(ref a) if a.changed));
    // Commits go on while it replicates.
    rewrite(&mut cluster, client, &mut objects, 5);
    cluster
        .run_until(Duration::from_secs(30), replicated_and_quiet)
        .unwrap();
    let cells = cells_of(&cluster, nid);
    assert_eq!(cells.len(), 4, "6 partitions × 2 copies over 3 nodes");
    committed_history(&cluster.sim).unwrap();
    // The storages it took over from dropped what they no longer hold.
    let pt = cluster.master().partition_table().clone();
    for storage in cluster.storages() {
        let nid = cluster.nid(storage);
        let store = cluster.sim.nodes[storage.0].as_storage().unwrap().store();
        for partition in 0..pt.num_partitions() {
            if pt.cell(partition, nid).is_none() {
                assert!(store.objects(partition).is_empty());
                assert!(store.transactions(partition).is_empty());
            }
        }
    }
    check_reads(&mut cluster, client, &objects);
}

/// NEO/py's procedure to remove a storage: `tweak -d` moves its
/// partitions to the others while it keeps serving them (its cells are
/// left as they are), then, once they caught up, `kill` and `drop`.
#[test]
fn a_dropped_storage_hands_its_partitions_over_first() {
    use neo_proto::{ErrorCode, NodeState, SetNodeState};
    let mut config = SimConfig::new(33);
    config.partitions = 4;
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 3, 1);
    let client = cluster.clients[0];
    let mut objects = create(&mut cluster, client, 8);
    rewrite(&mut cluster, client, &mut objects, 3);
    let leaving = cluster.storages()[2];
    let nid = cluster.nid(leaving);
    let before = cells_of(&cluster, nid);
    assert!(!before.is_empty());
    let answer = cluster.ctl(
        TweakPartitionTable {
            dry_run: false,
            drop_nids: vec![nid],
        }
        .into(),
    );
    assert!(matches!(answer, Packet::AnswerTweakPartitionTable(ref a) if a.changed));
    rewrite(&mut cluster, client, &mut objects, 2);
    cluster
        .run_until(Duration::from_secs(30), replicated_and_quiet)
        .unwrap();
    assert_eq!(
        cells_of(&cluster, nid),
        before,
        "its cells are kept meanwhile"
    );
    for storage in cluster.storages() {
        if storage != leaving {
            let cells = cells_of(&cluster, cluster.nid(storage));
            assert_eq!(cells.len(), 4, "the others hold every partition");
        }
    }
    committed_history(&cluster.sim).unwrap();
    let ack = |answer: &Packet| matches!(answer, Packet::Error(e) if e.code == ErrorCode::Ack);
    let answer = cluster.ctl(
        SetNodeState {
            nid,
            state: NodeState::Down,
        }
        .into(),
    );
    assert!(ack(&answer), "{answer}");
    let answer = cluster.ctl(
        SetNodeState {
            nid,
            state: NodeState::Unknown,
        }
        .into(),
    );
    assert!(ack(&answer), "{answer}");
    assert!(cells_of(&cluster, nid).is_empty());
    check_reads(&mut cluster, client, &objects);
}

#[test]
fn a_replication_interrupted_by_a_crash_resumes_where_it_stood() {
    let mut config = SimConfig::new(34);
    config.partitions = 1;
    config.replicas = 1;
    config.transcript = true;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let client = cluster.clients[0];
    let storages = cluster.storages();
    let s1 = storages[1];
    cluster.sim.crash(s1);
    cluster.run_for(Duration::from_millis(100));
    // 2,500 records: three chunks of objects.
    let mut objects = create(&mut cluster, client, 1250);
    rewrite(&mut cluster, client, &mut objects, 1);
    cluster.sim.transcript.clear();
    cluster.sim.restart(s1);
    // Let it fetch the first chunk of objects, and a second so that the
    // first one's progress is stored, then crash it.
    cluster
        .run_until(Duration::from_secs(10), |sim| {
            sim.transcript
                .iter()
                .filter(|l| l.starts_with("S1 -> S0") && l.contains("AskFetchObjects"))
                .count()
                >= 3
        })
        .unwrap();
    cluster.run_for(Duration::from_secs(2)); // the deferred sync
    cluster.sim.crash(s1);
    cluster.run_for(Duration::from_millis(100));
    cluster.sim.transcript.clear();
    cluster.sim.restart(s1);
    cluster
        .run_until(Duration::from_secs(30), replicated_and_quiet)
        .unwrap();
    let first_ask = cluster
        .sim
        .transcript
        .iter()
        .find(|l| l.starts_with("S1 -> S0") && l.contains("AskFetchObjects"))
        .unwrap()
        .clone();
    assert!(
        !first_ask.contains("min_tid=0000000000000000"),
        "resumed from where it stood: {first_ask}"
    );
    committed_history(&cluster.sim).unwrap();
}

/// `neoctl check`: a replica missing a record is found. Without a
/// reference nobody knows which copy is right, so both stay readable
/// (the report is logged); with one, the other cell becomes CORRUPTED,
/// is no longer read, and reads go on from the good copy.
#[test]
fn check_replicas_marks_the_replica_that_differs_from_the_reference() {
    use neo_core::storage::store::Store;
    use neo_proto::{CheckReplicas, ErrorCode, Map};
    let mut config = SimConfig::new(35);
    config.partitions = 4;
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let client = cluster.clients[0];
    let mut objects = create(&mut cluster, client, 8);
    rewrite(&mut cluster, client, &mut objects, 3);
    // The last commit is unlocked on storages.
    cluster.run_for(Duration::from_millis(100));
    let storages = cluster.storages();
    let (good, bad) = (storages[0], storages[1]);
    let (good_nid, bad_nid) = (cluster.nid(good), cluster.nid(bad));
    let (oid, serial) = objects[0];
    let partition = (oid.0 % 4) as u32;
    {
        let store = cluster.sim.nodes[bad.0].store_mut().unwrap();
        store.delete_object(oid, serial);
        store.sync();
    }
    let check = |partitions: Vec<(u32, Option<Nid>)>| CheckReplicas {
        partitions: Map(partitions),
        min_tid: Tid::ZERO,
        max_tid: None,
    };
    let is_ack = |answer: &Packet| matches!(answer, Packet::Error(e) if e.code == ErrorCode::Ack);

    let answer = cluster.ctl(check((0..4).map(|p| (p, None)).collect()).into());
    assert!(is_ack(&answer), "{answer:?}");
    cluster.run_for(Duration::from_secs(2));
    assert!(
        cells_of(&cluster, bad_nid)
            .iter()
            .all(|(_, s)| *s == CellState::UpToDate),
        "no reference: nothing is marked"
    );
    assert!(
        cluster.sim.logs.iter().any(|l| l.contains(&format!(
            "partition {partition} would have no readable cell left"
        ))),
        "the difference is reported"
    );

    let answer = cluster.ctl(check((0..4).map(|p| (p, Some(good_nid))).collect()).into());
    assert!(is_ack(&answer), "{answer:?}");
    cluster.run_for(Duration::from_secs(2));
    for (p, state) in cells_of(&cluster, bad_nid) {
        let expected = if p == partition {
            CellState::Corrupted
        } else {
            CellState::UpToDate
        };
        assert_eq!(state, expected, "partition {p}");
    }
    assert!(cells_of(&cluster, good_nid)
        .iter()
        .all(|(_, s)| *s == CellState::UpToDate));
    // Every object reads back, the damaged one from the good replica.
    check_reads(&mut cluster, client, &objects);

    let answer = cluster.ctl(check(vec![(9, None)]).into());
    assert!(
        matches!(answer, Packet::Error(ref e) if e.code == ErrorCode::Denied),
        "{answer:?}"
    );
}

/// A storage that hangs (connections open, nothing answered) is noticed by
/// the primary's ping: taken down, its cells out of date, and commits go on
/// with the other replica. When it resumes it finds its connection closed,
/// comes back and catches up.
#[test]
fn a_storage_that_stops_answering_is_taken_down_then_catches_up() {
    use neo_core::master::MasterConfig;
    use neo_proto::NodeState;
    let mut config = SimConfig::new(36);
    config.partitions = 4;
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let client = cluster.clients[0];
    let mut objects = create(&mut cluster, client, 8);
    let hung = cluster.storages()[1];
    let nid = cluster.nid(hung);
    cluster.sim.freeze(hung);
    let frozen_at = cluster.sim.now;
    let timeout = MasterConfig::DEFAULT_STORAGE_PING * 2;
    cluster
        .run_until(timeout + Duration::from_secs(1), |sim| {
            let primary = neo_tests::sim::check::running_primary(sim).unwrap();
            sim.nodes[primary.0]
                .as_master()
                .unwrap()
                .nodes()
                .state_of(nid)
                == Some(NodeState::Down)
        })
        .expect("the silent storage is taken down");
    let noticed = cluster.sim.now.saturating_since(frozen_at);
    assert!(
        noticed >= MasterConfig::DEFAULT_STORAGE_PING
            && noticed <= timeout + Duration::from_millis(100),
        "noticed after {noticed:?}"
    );
    assert!(cells_of(&cluster, nid)
        .iter()
        .all(|(_, s)| *s == CellState::OutOfDate));
    rewrite(&mut cluster, client, &mut objects, 5);
    cluster.sim.thaw(hung);
    cluster
        .run_until(Duration::from_secs(30), replicated_and_quiet)
        .unwrap();
    committed_history(&cluster.sim).unwrap();
    check_reads(&mut cluster, client, &objects);
}

/// After the cluster stopped because its only storage went away, storages
/// without data arriving must not make autostart create a new, empty
/// database (NEO/py does): the cluster waits for the storage holding the
/// table and serves its data again.
#[test]
fn autostart_never_replaces_a_database_that_existed() {
    use neo_core::storage::store::Store;
    use neo_proto::ClusterState;
    let mut config = SimConfig::new(37);
    config.partitions = 2;
    config.replicas = 0;
    let mut cluster = Cluster::start(config, 1, 1, 1);
    let client = cluster.clients[0];
    let objects = create(&mut cluster, client, 4);
    cluster.run_for(Duration::from_millis(1500));
    let holder = cluster.storages()[0];
    cluster.sim.crash(holder);
    // Autostart was 1 storage: a newcomer alone would satisfy it.
    let newcomer = cluster.sim.add_storage();
    cluster.run_for(Duration::from_secs(5));
    let primary = neo_tests::sim::check::running_primary(&cluster.sim);
    assert!(primary.is_none(), "no cluster without the data");
    let store = cluster.sim.nodes[newcomer.0].as_storage().unwrap().store();
    assert!(store.partition_table().is_none(), "no new table was made");
    cluster.sim.restart(holder);
    cluster
        .run_until(Duration::from_secs(30), |sim| {
            neo_tests::sim::check::running_primary(sim).is_some_and(|p| {
                sim.nodes[p.0].as_master().unwrap().cluster_state() == Some(ClusterState::Running)
            })
        })
        .unwrap();
    cluster.run_for(Duration::from_secs(1));
    check_reads(&mut cluster, client, &objects);
}

/// A storage dropped while it was down never hears it; when it comes back
/// later it is a newcomer: its id was not given to another node meanwhile
/// (NEO/py reuses it and then refuses the returning storage forever), and
/// it learns it holds no cell.
#[test]
fn a_storage_dropped_while_down_comes_back_as_a_newcomer() {
    use neo_proto::{ErrorCode, NodeState, SetNodeState};
    let mut config = SimConfig::new(38);
    config.partitions = 2;
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 3, 1);
    let client = cluster.clients[0];
    let objects = create(&mut cluster, client, 4);
    let dropped = cluster.storages()[2];
    let nid = cluster.nid(dropped);
    cluster.sim.crash(dropped);
    cluster.run_for(Duration::from_millis(200));
    let answer = cluster.ctl(
        SetNodeState {
            nid,
            state: NodeState::Unknown,
        }
        .into(),
    );
    assert!(
        matches!(answer, Packet::Error(ref e) if e.code == ErrorCode::Ack),
        "{answer:?}"
    );
    let newcomer = cluster.sim.add_storage();
    cluster.run_for(Duration::from_millis(200));
    assert_ne!(cluster.nid(newcomer), nid, "a dropped id is not reused");
    cluster.sim.restart(dropped);
    cluster.run_for(Duration::from_secs(1));
    let state = cluster.master().nodes().state_of(nid);
    assert_eq!(state, Some(NodeState::Pending), "back as a newcomer");
    assert!(cells_of(&cluster, nid).is_empty());
    let store = cluster.sim.nodes[dropped.0].as_storage().unwrap().store();
    assert!(
        (0..2).all(|p| store.objects(p).is_empty()),
        "it dropped its stale data"
    );
    check_reads(&mut cluster, client, &objects);
}
