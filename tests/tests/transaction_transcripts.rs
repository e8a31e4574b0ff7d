//! Protocol transcripts of commits, rendered by neo-proto and kept as insta
//! snapshots in `snapshots/`: the exchanges of a two-phase commit, of a
//! conflict resolved by a second store, and of a deadlock resolved by a
//! relock. Latencies are fixed so that the order of packets is the
//! protocol's, not the simulator's dice.

use std::time::Duration;

use neo_core::client::{Answer, ClientEvent, LoadMode};
use neo_proto::{Oid, Tid};
use neo_tests::sim::drive::{text, Cluster};
use neo_tests::sim::NodeId;

/// Creates oids 1..=count at "0" and returns their serial.
fn create(cluster: &mut Cluster, client: NodeId, count: usize) -> Tid {
    let txn = cluster.begin(client, "u", "d");
    for _ in 0..count {
        let oid = cluster.new_oid(client);
        cluster.store(client, txn, oid, Tid::ZERO, "0");
    }
    let serial = cluster.finish(client, txn).unwrap();
    cluster.run_for(Duration::from_millis(50));
    serial
}

fn take_conflict(cluster: &mut Cluster, client: NodeId) -> neo_core::client::Conflict {
    cluster
        .run_until(Duration::from_secs(5), |sim| {
            sim.client_events
                .iter()
                .any(|(n, e)| *n == client && matches!(e, ClientEvent::Conflict(_)))
        })
        .unwrap();
    cluster
        .events(client)
        .into_iter()
        .find_map(|e| match e {
            ClientEvent::Conflict(conflict) => Some(conflict),
            _ => None,
        })
        .unwrap()
}

/// One client commits two objects of two partitions; two storages hold
/// every partition (1 replica): stores to every cell, the metadata vote to
/// the TTID's partition and a plain vote elsewhere, the finish, locks on
/// every involved storage, the answer, unlocks.
#[test]
fn commit_touching_two_partitions_on_two_storages() {
    let mut cluster = Cluster::for_transcript(21, 2, 1, 2, 1);
    let a = cluster.clients[0];
    let base = create(&mut cluster, a, 2);
    cluster.sim.transcript.clear();
    let txn = cluster.begin(a, "u", "d");
    cluster.store(a, txn, Oid(1), base, "1");
    cluster.store(a, txn, Oid(2), base, "1");
    cluster.call(a, |c, now| c.tpc_vote(now, txn)).unwrap();
    cluster.finish(a, txn).unwrap();
    cluster.run_for(Duration::from_millis(50));
    neo_tests::snapshot("transcript_commit_two_partitions", &cluster.sim.transcript);
}

/// The same without replicas: the storage of the TTID's partition gets the
/// metadata (AskStoreTransaction), the other a plain AskVoteTransaction.
#[test]
fn commit_with_metadata_on_one_storage() {
    let mut cluster = Cluster::for_transcript(24, 2, 0, 2, 1);
    let a = cluster.clients[0];
    let base = create(&mut cluster, a, 2);
    cluster.sim.transcript.clear();
    let txn = cluster.begin(a, "u", "d");
    cluster.store(a, txn, Oid(1), base, "1");
    cluster.store(a, txn, Oid(2), base, "1");
    cluster.call(a, |c, now| c.tpc_vote(now, txn)).unwrap();
    cluster.finish(a, txn).unwrap();
    cluster.run_for(Duration::from_millis(50));
    neo_tests::snapshot(
        "transcript_commit_metadata_on_one_storage",
        &cluster.sim.transcript,
    );
}

/// Two clients increment the same object; the second store is answered
/// with the committed serial, the client merges and stores again.
#[test]
fn conflict_resolved_by_a_second_store() {
    let mut cluster = Cluster::for_transcript(22, 1, 0, 1, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let base = create(&mut cluster, a, 1);
    cluster.sim.transcript.clear();
    let tb = cluster.begin(b, "u", "d");
    let ta = cluster.begin(a, "u", "d");
    cluster.store(a, ta, Oid(1), base, "1");
    cluster.finish(a, ta).unwrap();
    cluster.store(b, tb, Oid(1), base, "1");
    let vote = cluster.start_op(b, |c, now| c.tpc_vote(now, tb));
    let conflict = take_conflict(&mut cluster, b);
    match cluster.call(b, |c, now| {
        c.load(now, conflict.oid, LoadMode::At(conflict.committed))
    }) {
        Ok(Answer::Loaded(loaded)) => assert_eq!(loaded.data, text("1")),
        other => panic!("{other:?}"),
    }
    cluster
        .sim
        .with_client(b, |c, now| {
            c.resolve_conflict(now, tb, Oid(1), Some(text("2")))
        })
        .unwrap()
        .unwrap();
    cluster.wait(b, vote).unwrap();
    cluster.finish(b, tb).unwrap();
    cluster.run_for(Duration::from_millis(50));
    neo_tests::snapshot("transcript_conflict_resolution", &cluster.sim.transcript);
}

/// The younger transaction holds the lock the older one needs: the storage
/// asks its client to relock (NotifyDeadlock); it releases and queues
/// behind; the older commits; the relock then reports the conflict with
/// the data, which the client resolves.
#[test]
fn deadlock_resolved_by_relock() {
    let mut cluster = Cluster::for_transcript(23, 1, 0, 1, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let base = create(&mut cluster, a, 1);
    cluster.sim.transcript.clear();
    let ta = cluster.begin(a, "u", "d");
    let tb = cluster.begin(b, "u", "d");
    cluster.store(b, tb, Oid(1), base, "1");
    cluster.run_for(Duration::from_millis(5));
    cluster.store(a, ta, Oid(1), base, "1");
    cluster.run_for(Duration::from_millis(5));
    cluster.finish(a, ta).unwrap();
    let vote = cluster.start_op(b, |c, now| c.tpc_vote(now, tb));
    take_conflict(&mut cluster, b);
    cluster
        .sim
        .with_client(b, |c, now| {
            c.resolve_conflict(now, tb, Oid(1), Some(text("2")))
        })
        .unwrap()
        .unwrap();
    cluster.wait(b, vote).unwrap();
    cluster.finish(b, tb).unwrap();
    cluster.run_for(Duration::from_millis(50));
    neo_tests::snapshot("transcript_deadlock_relock", &cluster.sim.transcript);
}
