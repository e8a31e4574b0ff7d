//! A real cluster: `neo master`, `neo storage`, `neo admin` processes on
//! loopback, driven by the Rust client and `neo ctl`, killed with SIGKILL.
//! Every wait is bounded; every process is killed when its guard drops.

mod cluster;
mod common;

use std::time::{Duration, Instant};

use cluster::{check_all, commit_one, Cluster, Start};

#[test]
fn a_storage_killed_under_load_loses_nothing_and_catches_up() {
    let mut cluster = Cluster::start("kill-storage", 1, 2, 1, Start::Ctl);
    let mut client = cluster.client(Duration::from_secs(20));
    let mut committed = Vec::new();
    for i in 0..50 {
        let value = format!("before {i}");
        let (oid, tid) = commit_one(&mut client, &value).unwrap();
        committed.push((oid, tid, value));
    }
    assert_eq!(cluster.wait_all_up_to_date(Duration::from_secs(20)), 12);

    // Kill one storage while commits flow: every acknowledged commit must
    // stay readable from the other replica.
    let mut acknowledged = 0;
    for i in 0..100 {
        if i == 30 {
            cluster.storages[0].kill();
        }
        let value = format!("during {i}");
        match commit_one(&mut client, &value) {
            Ok((oid, tid)) => {
                committed.push((oid, tid, value));
                acknowledged += 1;
            }
            // The commit in flight when the storage died may fail; the
            // application retries it.
            Err(error) => eprintln!("commit {i} failed: {error}"),
        }
    }
    assert!(
        acknowledged >= 95,
        "{acknowledged} commits acknowledged\n{}",
        cluster.logs()
    );
    let mut reader = cluster.client(Duration::from_secs(20));
    check_all(&mut reader, &committed);

    // It comes back and replicates what it missed.
    cluster.storages[0].restart();
    let caught_up = Instant::now();
    let cells = cluster.wait_all_up_to_date(Duration::from_secs(30));
    assert_eq!(cells, 12);
    eprintln!(
        "kill-storage: the restarted storage was UP_TO_DATE in {:?}",
        caught_up.elapsed()
    );
    // Now the other one dies: everything is read from the returned one.
    cluster.storages[1].kill();
    let mut reader = cluster.client(Duration::from_secs(20));
    check_all(&mut reader, &committed);
}

#[test]
fn a_new_primary_serves_soon_after_the_old_ones_death() {
    let mut cluster = Cluster::start("failover", 3, 1, 0, Start::Auto);
    let mut client = cluster.client(Duration::from_secs(20));
    let (oid, tid) = commit_one(&mut client, "before").unwrap();
    let primary = cluster.primary();

    let killed = Instant::now();
    cluster.masters[primary].kill();
    let mut client = cluster.client(Duration::from_secs(10));
    let (new_oid, new_tid) = commit_one(&mut client, "after").unwrap();
    let serving = killed.elapsed();
    // NEO/py's flat one-second reconnection throttle, chained over the
    // secondaries retrying the dead primary, the new primary hearing from
    // every master and the client retrying a master not ready yet, took
    // 2 to 3 s here; the backoff (neo_core::throttle) brought it under
    // one.
    assert!(
        serving < Duration::from_secs(2),
        "a new primary served after {serving:?}\n{}",
        cluster.logs()
    );
    eprintln!("failover: a commit went through {serving:?} after the primary was killed");
    assert_ne!(
        cluster.primary(),
        primary,
        "the dead master is still primary"
    );
    check_all(
        &mut client,
        &[
            (oid, tid, "before".to_string()),
            (new_oid, new_tid, "after".to_string()),
        ],
    );
}

#[test]
fn every_node_killed_and_restarted_keeps_every_commit() {
    let mut cluster = Cluster::start("kill-all", 1, 2, 1, Start::Auto);
    let mut client = cluster.client(Duration::from_secs(20));
    let mut committed = Vec::new();
    for i in 0..100 {
        let value = format!("value {i}");
        let (oid, tid) = commit_one(&mut client, &value).unwrap();
        committed.push((oid, tid, value));
    }
    drop(client);
    for node in cluster
        .masters
        .iter_mut()
        .chain(cluster.storages.iter_mut())
        .chain([&mut cluster.admin])
    {
        node.kill();
    }
    for node in cluster
        .masters
        .iter_mut()
        .chain(cluster.storages.iter_mut())
        .chain([&mut cluster.admin])
    {
        node.restart();
    }
    let mut client = cluster.client(Duration::from_secs(30));
    check_all(&mut client, &committed);
    let _ = &cluster.dir;
}
