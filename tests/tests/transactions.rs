//! Transactions end to end in the simulator, scripted: what a ZODB
//! application does through its client, against masters and storages.

use bytes::Bytes;
use neo_core::client::{Answer, ClientError, ClientEvent, LoadMode, TxnId};
use neo_proto::{Oid, Tid};
use neo_tests::sim::drive::{text, Cluster};
use neo_tests::sim::{NodeId, SimConfig};

fn begin(cluster: &mut Cluster, client: NodeId) -> TxnId {
    cluster.begin(client, "user", "description")
}

fn commit(cluster: &mut Cluster, client: NodeId, txn: TxnId) -> Result<Tid, ClientError> {
    cluster.call(client, |c, now| c.tpc_vote(now, txn))?;
    cluster.finish(client, txn)
}

/// Syncs with the master (what ZODB does at transaction boundaries) so
/// that the snapshot includes every commit so far.
fn sync(cluster: &mut Cluster, client: NodeId) {
    assert_eq!(
        cluster.call(client, |c, now| c.sync(now)),
        Ok(Answer::Synced)
    );
}

fn load(
    cluster: &mut Cluster,
    client: NodeId,
    oid: Oid,
    mode: LoadMode,
) -> Result<(Bytes, Tid), ClientError> {
    match cluster.call(client, |c, now| c.load(now, oid, mode))? {
        Answer::Loaded(loaded) => Ok((loaded.data, loaded.serial)),
        other => panic!("load: {other:?}"),
    }
}

#[test]
fn a_commit_is_read_back_by_another_client_after_its_invalidation() {
    let mut cluster = Cluster::start(SimConfig::new(7), 1, 2, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let oid = cluster.new_oid(a);
    let txn = begin(&mut cluster, a);
    cluster.store(a, txn, oid, Tid::ZERO, "hello");
    let tid = commit(&mut cluster, a, txn).unwrap();
    // B hears of it.
    cluster.run_for(std::time::Duration::from_millis(50));
    let invalidated = cluster.events(b).into_iter().any(|e| {
        matches!(e, ClientEvent::Invalidated { tid: t, ref oids } if t == tid && oids == &[oid])
    });
    assert!(invalidated);
    assert_eq!(
        load(&mut cluster, b, oid, LoadMode::Current).unwrap(),
        (text("hello"), tid)
    );
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("hello"), tid)
    );
    assert_eq!(
        load(&mut cluster, b, oid, LoadMode::Before(tid)),
        Err(ClientError::NotFound)
    );
}

/// Waits for the next conflict reported to `client`.
fn next_conflict(cluster: &mut Cluster, client: NodeId) -> neo_core::client::Conflict {
    cluster
        .run_until(std::time::Duration::from_secs(10), |sim| {
            sim.client_events
                .iter()
                .any(|(n, e)| *n == client && matches!(e, ClientEvent::Conflict(_)))
        })
        .expect("a conflict is reported");
    let mut found = None;
    for event in cluster.events(client) {
        match event {
            ClientEvent::Conflict(conflict) if found.is_none() => found = Some(conflict),
            other => cluster.sim.client_events.push_back((client, other)),
        }
    }
    found.unwrap()
}

/// A counter object: a conflict is resolved by re-applying our increment
/// on the committed value (what BTrees.Length does).
/// Runs until the (first) master is finishing a transaction; returns it.
fn run_until_the_master_finishes(cluster: &mut Cluster) -> NodeId {
    let master = cluster.masters()[0];
    cluster
        .run_until(std::time::Duration::from_secs(5), |sim| {
            !sim.nodes[master.0]
                .as_master()
                .unwrap()
                .finishing_transactions()
                .is_empty()
        })
        .unwrap();
    master
}

fn counter(data: &Bytes) -> u64 {
    std::str::from_utf8(data).unwrap().parse().unwrap()
}

fn create(cluster: &mut Cluster, client: NodeId, value: &str) -> (Oid, Tid) {
    let oid = cluster.new_oid(client);
    let txn = begin(cluster, client);
    cluster.store(client, txn, oid, Tid::ZERO, value);
    (oid, commit(cluster, client, txn).unwrap())
}

#[test]
fn a_conflict_is_reported_with_the_committed_serial_and_resolved_by_a_second_store() {
    let mut cluster = Cluster::start(SimConfig::new(11), 1, 2, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (oid, base) = create(&mut cluster, a, "0");
    // Both read the counter at `base`, both increment it.
    let ta = begin(&mut cluster, a);
    let tb = begin(&mut cluster, b);
    cluster.store(a, ta, oid, base, "1");
    let committed = commit(&mut cluster, a, ta).unwrap();
    cluster.store(b, tb, oid, base, "1");
    let vote = cluster.start_op(b, |c, now| c.tpc_vote(now, tb));
    let conflict = next_conflict(&mut cluster, b);
    assert_eq!(
        (conflict.oid, conflict.committed, conflict.based_on),
        (oid, committed, base)
    );
    assert!(!conflict.checked);
    assert_eq!(conflict.data, Some(text("1")));
    // Resolve: our increment on top of the committed value.
    let (current, serial) = load(&mut cluster, b, oid, LoadMode::At(conflict.committed)).unwrap();
    assert_eq!(serial, committed);
    let merged = (counter(&current) + 1).to_string();
    cluster
        .sim
        .with_client(b, |c, now| {
            c.resolve_conflict(now, tb, oid, Some(text(&merged)))
        })
        .unwrap()
        .unwrap();
    assert_eq!(cluster.wait(b, vote), Ok(Answer::Voted(vec![oid])));
    let tid = match cluster.call(b, |c, now| c.tpc_finish(now, tb)) {
        Ok(Answer::Finished(tid)) => tid,
        other => panic!("{other:?}"),
    };
    assert!(tid > committed);
    sync(&mut cluster, a);
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("2"), tid)
    );
}

#[test]
fn a_deadlock_between_an_older_and_a_younger_transaction_is_resolved_by_relock() {
    let mut cluster = Cluster::start(SimConfig::new(12), 1, 1, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (oid, base) = create(&mut cluster, a, "0");
    // A's transaction is older; B (younger) takes the lock first.
    let ta = begin(&mut cluster, a);
    let tb = begin(&mut cluster, b);
    cluster.store(b, tb, oid, base, "1");
    cluster.run_for(std::time::Duration::from_millis(20));
    cluster.store(a, ta, oid, base, "1");
    // The storage asks B to relock; A gets the lock and commits.
    let committed = commit(&mut cluster, a, ta).unwrap();
    // B's relock now conflicts: the data comes back for resolution.
    let vote = cluster.start_op(b, |c, now| c.tpc_vote(now, tb));
    let conflict = next_conflict(&mut cluster, b);
    assert_eq!(
        (conflict.oid, conflict.committed, conflict.based_on),
        (oid, committed, base)
    );
    assert_eq!(conflict.data, Some(text("1")));
    cluster
        .sim
        .with_client(b, |c, now| {
            c.resolve_conflict(now, tb, oid, Some(text("2")))
        })
        .unwrap()
        .unwrap();
    cluster.wait(b, vote).unwrap();
    let tid = match cluster.call(b, |c, now| c.tpc_finish(now, tb)) {
        Ok(Answer::Finished(tid)) => tid,
        other => panic!("{other:?}"),
    };
    sync(&mut cluster, a);
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("2"), tid)
    );
    assert!(cluster
        .sim
        .logs
        .iter()
        .any(|line| line.contains("deadlock avoidance triggered")));
}

#[test]
fn a_checked_object_that_changed_fails_the_vote_with_a_read_conflict() {
    let mut cluster = Cluster::start(SimConfig::new(13), 1, 2, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (x, base_x) = create(&mut cluster, a, "x0");
    let (y, base_y) = create(&mut cluster, a, "y0");
    let tb = begin(&mut cluster, b);
    // A changes x; B, which read x at its old serial, writes y only if x
    // did not change.
    let ta = begin(&mut cluster, a);
    cluster.store(a, ta, x, base_x, "x1");
    let tx = commit(&mut cluster, a, ta).unwrap();
    cluster.store(b, tb, y, base_y, "y1");
    cluster
        .sim
        .with_client(b, |c, now| c.check_current_serial(now, tb, x, base_x))
        .unwrap()
        .unwrap();
    let vote = cluster.start_op(b, |c, now| c.tpc_vote(now, tb));
    let conflict = next_conflict(&mut cluster, b);
    assert!(conflict.checked);
    assert_eq!(
        cluster.wait(b, vote),
        Err(ClientError::ReadConflict {
            oid: x,
            serial: tx,
            read: base_x
        })
    );
    cluster.sim.with_client(b, |c, now| c.tpc_abort(now, tb));
    // Nothing of B's transaction is left: y is still free to change.
    let ta = begin(&mut cluster, a);
    cluster.store(a, ta, y, base_y, "y2");
    commit(&mut cluster, a, ta).unwrap();
    // B still sees its snapshot until it syncs.
    assert_eq!(
        load(&mut cluster, b, y, LoadMode::Current).unwrap().0,
        text("y0")
    );
    sync(&mut cluster, b);
    assert_eq!(
        load(&mut cluster, b, y, LoadMode::Current).unwrap().0,
        text("y2")
    );
}

#[test]
fn an_abort_releases_the_locks_of_the_transaction() {
    let mut cluster = Cluster::start(SimConfig::new(14), 1, 2, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (oid, base) = create(&mut cluster, a, "0");
    let ta = begin(&mut cluster, a);
    cluster.store(a, ta, oid, base, "1");
    cluster.run_for(std::time::Duration::from_millis(20));
    cluster.sim.with_client(a, |c, now| c.tpc_abort(now, ta));
    let tb = begin(&mut cluster, b);
    cluster.store(b, tb, oid, base, "2");
    let tid = commit(&mut cluster, b, tb).unwrap();
    sync(&mut cluster, a);
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("2"), tid)
    );
}

#[test]
fn undo_history_undo_log_and_iteration() {
    let mut cluster = Cluster::start(SimConfig::new(15), 1, 2, 1);
    let a = cluster.clients[0];
    let (oid, t1) = create(&mut cluster, a, "v1");
    let txn = begin(&mut cluster, a);
    cluster.store(a, txn, oid, t1, "v2");
    let t2 = commit(&mut cluster, a, txn).unwrap();
    // Undo t2: a back-pointer to v1's data.
    let txn = begin(&mut cluster, a);
    match cluster.call(a, |c, now| c.undo(now, txn, t2)) {
        Ok(Answer::Undone { oids, conflicts }) => {
            assert_eq!(oids, vec![oid]);
            assert!(conflicts.is_empty());
        }
        other => panic!("undo: {other:?}"),
    }
    let t3 = commit(&mut cluster, a, txn).unwrap();
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("v1"), t3)
    );
    // History: newest first, with transaction metadata.
    match cluster.call(a, |c, now| c.history(now, oid, 10)) {
        Ok(Answer::History(history)) => {
            let serials: Vec<Tid> = history.iter().map(|h| h.serial).collect();
            assert_eq!(serials, vec![t3, t2, t1]);
            assert_eq!(history[1].transaction.user, text("user"));
        }
        other => panic!("{other:?}"),
    }
    match cluster.call(a, |c, now| c.undo_log(now, 0, 2)) {
        Ok(Answer::UndoLog(infos)) => {
            let tids: Vec<Tid> = infos.iter().map(|i| i.tid).collect();
            assert_eq!(tids, vec![t3, t2]);
        }
        other => panic!("{other:?}"),
    }
    match cluster.call(a, |c, now| c.iterate(now, Tid::ZERO, None)) {
        Ok(Answer::Transactions { transactions, next }) => {
            assert_eq!(next, None);
            let tids: Vec<Tid> = transactions.iter().map(|t| t.info.tid).collect();
            assert_eq!(tids, vec![t1, t2, t3]);
            let undo = &transactions[2].records[0];
            assert_eq!(
                (undo.oid, undo.data.clone(), undo.data_serial),
                (oid, Some(text("v1")), Some(t1))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pack_removes_history_no_later_state_needs() {
    let mut cluster = Cluster::start(SimConfig::new(16), 1, 2, 1);
    let a = cluster.clients[0];
    let (oid, t1) = create(&mut cluster, a, "v1");
    let mut serial = t1;
    let mut tids = vec![t1];
    for value in ["v2", "v3"] {
        let txn = begin(&mut cluster, a);
        cluster.store(a, txn, oid, serial, value);
        serial = commit(&mut cluster, a, txn).unwrap();
        tids.push(serial);
    }
    match cluster.call(a, |c, now| c.pack(now, tids[1], None, true)) {
        Ok(Answer::Packed(Some(_))) => {}
        other => panic!("pack: {other:?}"),
    }
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::At(tids[0])),
        Err(ClientError::NotFound)
    );
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::At(tids[1])).unwrap().0,
        text("v2")
    );
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("v3"), tids[2])
    );
    // Transaction metadata is never packed.
    assert!(cluster
        .call(a, |c, now| c.transaction_info(now, tids[0]))
        .is_ok());
}

/// Found by the replication campaign (seed 10390): a pack transaction
/// whose only storage crashed before locking it never committed, yet the
/// master kept its order approved (storages then applied a pack nobody
/// committed) and the storage reported the voted order, unsigned, which
/// blocked the approval of every later pack.
#[test]
fn a_pack_interrupted_before_its_lock_is_not_applied_and_later_packs_are() {
    let mut cluster = Cluster::start(SimConfig::new(19), 1, 1, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (oid, t1) = create(&mut cluster, a, "v1");
    let txn = begin(&mut cluster, a);
    cluster.store(a, txn, oid, t1, "v2");
    let t2 = commit(&mut cluster, a, txn).unwrap();

    let pack = cluster.start_op(a, |c, now| c.pack(now, t2, None, true));
    run_until_the_master_finishes(&mut cluster);
    // The master asked the lock; the storage dies before taking it.
    let storage = cluster.storages()[0];
    cluster.sim.crash(storage);
    cluster.run_for(std::time::Duration::from_millis(100));
    cluster.sim.restart(storage);
    let outcome = cluster.wait(a, pack);
    assert!(outcome.is_err(), "{outcome:?}");

    // The order died with its transaction: history before t2 is intact
    // (read by a client that has nothing cached).
    assert_eq!(
        load(&mut cluster, b, oid, LoadMode::At(t1)).unwrap(),
        (text("v1"), t1)
    );
    // And a new pack is approved and applied.
    match cluster.call(a, |c, now| c.pack(now, t2, None, true)) {
        Ok(Answer::Packed(Some(_))) => {}
        other => panic!("pack: {other:?}"),
    }
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::At(t1)),
        Err(ClientError::NotFound)
    );
}

#[test]
fn a_storage_lost_during_a_commit_leaves_it_to_the_other_replica() {
    let mut config = SimConfig::new(17);
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let a = cluster.clients[0];
    let (oid, base) = create(&mut cluster, a, "0");
    let txn = begin(&mut cluster, a);
    cluster.store(a, txn, oid, base, "1");
    cluster.run_for(std::time::Duration::from_millis(20));
    let storages = cluster.storages();
    cluster.sim.crash(storages[0]);
    let tid = commit(&mut cluster, a, txn).unwrap();
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("1"), tid)
    );
}

#[test]
fn a_client_that_lost_the_master_during_finish_learns_the_outcome() {
    let mut cluster = Cluster::start(SimConfig::new(18), 1, 2, 1);
    let a = cluster.clients[0];
    let (oid, base) = create(&mut cluster, a, "0");
    let txn = begin(&mut cluster, a);
    cluster.store(a, txn, oid, base, "1");
    cluster.call(a, |c, now| c.tpc_vote(now, txn)).unwrap();
    let finish = cluster.start_op(a, |c, now| c.tpc_finish(now, txn));
    // Cut the client from the master once the master is finishing it.
    let master = run_until_the_master_finishes(&mut cluster);
    let link = cluster
        .sim
        .network
        .open_links()
        .into_iter()
        .find(|&l| {
            cluster
                .sim
                .network
                .ends(l)
                .is_some_and(|((x, _), (y, _))| (x, y) == (a, master) || (x, y) == (master, a))
        })
        .unwrap();
    cluster.sim.drop_connection(link);
    let tid = match cluster.wait(a, finish) {
        Ok(Answer::Finished(tid)) => tid,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("1"), tid)
    );
}

#[test]
fn a_replica_returning_bad_data_is_skipped_and_all_bad_is_an_error() {
    let mut config = SimConfig::new(19);
    config.replicas = 1;
    let mut cluster = Cluster::start(config, 1, 2, 3);
    let (a, b, c) = (cluster.clients[0], cluster.clients[1], cluster.clients[2]);
    let mut objects = Vec::new();
    for i in 0..8 {
        let (oid, tid) = create(&mut cluster, a, &format!("object {i}"));
        objects.push((oid, tid, i));
    }
    let storages = cluster.storages();
    for &(oid, _, _) in &objects {
        cluster.sim.nodes[storages[0].0]
            .store_mut()
            .unwrap()
            .corrupt(oid);
    }
    sync(&mut cluster, b);
    for &(oid, tid, i) in &objects {
        assert_eq!(
            load(&mut cluster, b, oid, LoadMode::Current).unwrap(),
            (text(&format!("object {i}")), tid)
        );
    }
    assert!(cluster
        .sim
        .logs
        .iter()
        .any(|line| line.contains("wrong checksum from")));
    // Both replicas lie: the read fails rather than returning garbage (a
    // client that has not cached it).
    let (oid, tid, _) = objects[0];
    cluster.sim.nodes[storages[1].0]
        .store_mut()
        .unwrap()
        .corrupt(oid);
    assert_eq!(
        load(&mut cluster, c, oid, LoadMode::At(tid)),
        Err(ClientError::WrongChecksum { oid, serial: tid })
    );
}

#[test]
fn a_storage_the_client_cannot_reach_is_arbitrated_by_the_master_and_outdated() {
    let mut config = SimConfig::new(20);
    config.replicas = 1;
    config.partitions = 1;
    let mut cluster = Cluster::start(config, 1, 2, 1);
    let a = cluster.clients[0];
    let (oid, base) = create(&mut cluster, a, "0");
    let txn = begin(&mut cluster, a);
    cluster.store(a, txn, oid, base, "1");
    cluster.run_for(std::time::Duration::from_millis(20));
    // The client loses its connection to one storage, which stays up and
    // connected to the master.
    let storages = cluster.storages();
    let lost = storages[1];
    let link = cluster
        .sim
        .network
        .open_links()
        .into_iter()
        .find(|&l| {
            cluster
                .sim
                .network
                .ends(l)
                .is_some_and(|((x, _), (y, _))| (x, y) == (a, lost) || (x, y) == (lost, a))
        })
        .unwrap();
    cluster.sim.drop_connection(link);
    let tid = commit(&mut cluster, a, txn).unwrap();
    // It missed the transaction: the master took it out before the locks.
    let master = cluster.masters()[0];
    let pt = cluster.sim.nodes[master.0]
        .as_master()
        .unwrap()
        .partition_table()
        .clone();
    let lost_nid = cluster.sim.nodes[lost.0]
        .as_storage()
        .unwrap()
        .nid()
        .unwrap();
    assert_eq!(
        pt.cell(0, lost_nid).map(|c| c.state),
        Some(neo_proto::CellState::OutOfDate)
    );
    assert!(cluster
        .sim
        .logs
        .iter()
        .any(|line| line.contains("missed writes of")));
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("1"), tid)
    );
}

#[test]
fn the_iterator_goes_by_chunks_in_tid_order() {
    let mut cluster = Cluster::start(SimConfig::new(21), 1, 2, 1);
    let a = cluster.clients[0];
    let mut tids = Vec::new();
    for i in 0..130 {
        tids.push(create(&mut cluster, a, &i.to_string()).1);
    }
    let mut seen = Vec::new();
    let mut start = Tid::ZERO;
    let mut chunks = 0;
    loop {
        match cluster.call(a, |c, now| c.iterate(now, start, None)) {
            Ok(Answer::Transactions { transactions, next }) => {
                chunks += 1;
                seen.extend(transactions.iter().map(|t| t.info.tid));
                match next {
                    Some(next) => start = next,
                    None => break,
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(chunks, 2);
    assert_eq!(seen, tids);
}

#[test]
fn undoing_a_revision_changed_since_hands_both_sides_to_the_application() {
    let mut cluster = Cluster::start(SimConfig::new(22), 1, 2, 1);
    let a = cluster.clients[0];
    let (oid, t1) = create(&mut cluster, a, "v1");
    let mut serial = t1;
    let mut tids = vec![t1];
    for value in ["v2", "v3"] {
        let txn = begin(&mut cluster, a);
        cluster.store(a, txn, oid, serial, value);
        serial = commit(&mut cluster, a, txn).unwrap();
        tids.push(serial);
    }
    let txn = begin(&mut cluster, a);
    let conflicts = match cluster.call(a, |c, now| c.undo(now, txn, tids[1])) {
        Ok(Answer::Undone { oids, conflicts }) => {
            assert!(oids.is_empty());
            conflicts
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        conflicts,
        vec![neo_core::client::UndoConflict {
            oid,
            current_serial: tids[2],
            current: Some(text("v3")),
            target: Some(text("v1")),
        }]
    );
    // The application merges ("v3 without v2's change") and stores.
    cluster.store(a, txn, oid, tids[2], "v3-v2");
    let tid = commit(&mut cluster, a, txn).unwrap();
    assert_eq!(
        load(&mut cluster, a, oid, LoadMode::Current).unwrap(),
        (text("v3-v2"), tid)
    );
}

#[test]
fn a_deleted_object_no_longer_loads_but_its_history_does() {
    let mut cluster = Cluster::start(SimConfig::new(23), 1, 2, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (oid, t1) = create(&mut cluster, a, "alive");
    let txn = begin(&mut cluster, a);
    cluster
        .sim
        .with_client(a, |c, now| c.store(now, txn, oid, t1, None))
        .unwrap()
        .unwrap();
    let t2 = commit(&mut cluster, a, txn).unwrap();
    sync(&mut cluster, b);
    assert_eq!(
        load(&mut cluster, b, oid, LoadMode::Current),
        Err(ClientError::CreationUndone)
    );
    assert_eq!(
        load(&mut cluster, b, oid, LoadMode::Before(t2)).unwrap(),
        (text("alive"), t1)
    );
}

#[test]
fn a_transaction_may_reproduce_a_given_tid_when_alone() {
    let mut cluster = Cluster::start(SimConfig::new(24), 1, 2, 2);
    let (a, b) = (cluster.clients[0], cluster.clients[1]);
    let (oid, t1) = create(&mut cluster, a, "0");
    let wanted = t1.add_ticks(1_000_000);
    let (txn, op) = cluster
        .sim
        .with_client(a, |c, now| {
            c.tpc_begin(now, Bytes::new(), Bytes::new(), Bytes::new(), Some(wanted))
        })
        .unwrap()
        .unwrap();
    assert_eq!(cluster.wait(a, op), Ok(Answer::Begun(wanted)));
    cluster.store(a, txn, oid, t1, "1");
    assert_eq!(commit(&mut cluster, a, txn), Ok(wanted));
    // At or below the last commit, or with another transaction pending, it
    // is refused (the master drops the connection: a misbehaving client).
    let (_, op) = cluster
        .sim
        .with_client(b, |c, now| {
            c.tpc_begin(now, Bytes::new(), Bytes::new(), Bytes::new(), Some(wanted))
        })
        .unwrap()
        .unwrap();
    assert!(cluster.wait(b, op).is_err());
}
