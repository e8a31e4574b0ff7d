//! Protocol transcripts of replication, kept as insta snapshots in
//! `snapshots/`: a new storage joining and taking partitions over
//! (identification as PENDING, `add`, `tweak`, replication from the old
//! owner, which then drops its FEEDING cells), and a storage coming back
//! after missing transactions and catching up. Latencies are fixed so that
//! the order of packets is the protocol's.

use std::time::Duration;

use neo_proto::{AddPendingNodes, CellState, Oid, Packet, Tid, TweakPartitionTable};
use neo_tests::sim::campaign::{all_cells_up_to_date, replicated_and_quiet};
use neo_tests::sim::check::committed_history;
use neo_tests::sim::drive::Cluster;
use neo_tests::sim::NodeId;

/// Writes oids 1..=count (creating them at `serial` zero) in one
/// transaction; returns its TID.
fn write_all(cluster: &mut Cluster, client: NodeId, count: u64, serial: Tid, data: &str) -> Tid {
    let txn = cluster.begin(client, "u", "d");
    for oid in 1..=count {
        if serial == Tid::ZERO {
            assert_eq!(cluster.new_oid(client), Oid(oid));
        }
        cluster.store(client, txn, Oid(oid), serial, data);
    }
    let tid = cluster.finish(client, txn).unwrap();
    cluster.run_for(Duration::from_millis(50));
    tid
}

/// One storage holds both partitions; a second joins (PENDING), the
/// operator adds it and tweaks: it gets one partition OUT_OF_DATE while
/// the old owner's cell is FEEDING, asks the master for the transactions
/// under way, pulls the partition's transactions and objects from the old
/// owner, reports NotifyReplicationDone, and the FEEDING cell is dropped.
#[test]
fn a_new_storage_joins_and_takes_a_partition_over() {
    let mut cluster = Cluster::for_transcript(41, 2, 0, 1, 1);
    let client = cluster.clients[0];
    let first = write_all(&mut cluster, client, 2, Tid::ZERO, "0");
    write_all(&mut cluster, client, 2, first, "1");
    let newcomer = cluster.sim.add_storage();
    cluster.run_for(Duration::from_millis(50));
    let nid = cluster.nid(newcomer);
    cluster.sim.transcript.clear();
    let answer = cluster.ctl(AddPendingNodes { nids: vec![nid] }.into());
    assert!(matches!(answer, Packet::Error(ref e) if e.code == neo_proto::ErrorCode::Ack));
    let request = TweakPartitionTable {
        dry_run: false,
        drop_nids: vec![],
    };
    let answer = cluster.ctl(request.into());
    assert!(matches!(answer, Packet::AnswerTweakPartitionTable(ref a) if a.changed));
    cluster
        .run_until(Duration::from_secs(5), all_cells_up_to_date)
        .unwrap();
    cluster.run_for(Duration::from_millis(50));
    let pt = cluster.master().partition_table();
    let owned: Vec<u32> = (0..2).filter(|&p| pt.cell(p, nid).is_some()).collect();
    assert_eq!(owned.len(), 1, "it took one partition of two");
    assert_eq!(pt.row(owned[0]).len(), 1, "the old owner's cell is dropped");
    committed_history(&cluster.sim).unwrap();
    neo_tests::snapshot(
        "transcript_storage_joins_and_takes_over",
        &cluster.sim.transcript,
    );
}

/// Two storages hold both partitions; one is down while a transaction
/// commits; when it comes back its cells are OUT_OF_DATE and it replicates
/// exactly what it missed from the other (the fetches start after its last
/// TID of each partition, and list what it already has) before both are
/// UP_TO_DATE.
#[test]
fn a_storage_that_comes_back_catches_up() {
    let mut cluster = Cluster::for_transcript(42, 2, 1, 2, 1);
    let client = cluster.clients[0];
    let first = write_all(&mut cluster, client, 2, Tid::ZERO, "0");
    // Storages make unlocks durable within a second (as NEO/py's deferred
    // commit); a crash before that drops the locked transactions, which
    // are replicated again.
    cluster.run_for(Duration::from_millis(1500));
    let late = cluster.storages()[1];
    let nid = cluster.nid(late);
    cluster.sim.crash(late);
    cluster.run_for(Duration::from_millis(50));
    write_all(&mut cluster, client, 2, first, "1");
    cluster.sim.transcript.clear();
    cluster.sim.restart(late);
    cluster
        .run_until(Duration::from_secs(5), replicated_and_quiet)
        .unwrap();
    let pt = cluster.master().partition_table();
    assert!((0..2).all(|p| pt.cell(p, nid).map(|c| c.state) == Some(CellState::UpToDate)));
    committed_history(&cluster.sim).unwrap();
    neo_tests::snapshot("transcript_storage_catches_up", &cluster.sim.transcript);
}
