//! The event loop on real loopback sockets: a master and a storage (in
//! memory) in threads of this process, clients in the test thread.

use std::net::SocketAddr;
use std::time::Duration;

use neo_core::storage::memory::MemoryStore;
use neo_mio::cli::config::parse_address;
use neo_mio::cli::local::{LocalCluster, LocalOptions};
use neo_mio::client::{Error, NeoClient};
use neo_proto::{Partitions, Tid};

/// A cluster of one master (autostart) and one in-memory storage on free
/// loopback ports; its threads end with the test process.
fn cluster(name: &str, partitions: u32) -> LocalCluster {
    let options = LocalOptions {
        cluster: name.to_string(),
        masters: 1,
        storages: 1,
        partitions: Partitions::new(partitions).unwrap(),
        replicas: 0,
        ..LocalOptions::default()
    };
    LocalCluster::start(&options, |_| Ok(MemoryStore::new())).unwrap()
}

fn connect(name: &str, masters: &[SocketAddr]) -> NeoClient {
    let mut client = NeoClient::connect(name, masters).expect("the cluster serves");
    client.set_timeout(Duration::from_secs(20));
    client
}

#[test]
fn commits_are_read_back_and_invalidate_other_clients() {
    let cluster = cluster("runtime-basic", 4);
    let masters = &cluster.masters;
    let mut a = connect("runtime-basic", masters);
    let mut b = connect("runtime-basic", masters);
    let oid = a.new_oid().unwrap();
    let mut txn = a.begin("test", "create").unwrap();
    a.store(&mut txn, oid, None, b"one".to_vec()).unwrap();
    let t1 = a.commit(txn).unwrap();
    assert_eq!(a.load(oid).unwrap(), (b"one".to_vec().into(), t1));

    b.sync().unwrap();
    assert_eq!(b.load(oid).unwrap(), (b"one".to_vec().into(), t1));
    let mut txn = b.begin("test", "update").unwrap();
    b.store(&mut txn, oid, Some(t1), b"two".to_vec()).unwrap();
    let t2 = b.commit(txn).unwrap();
    assert!(t2 > t1);

    a.sync().unwrap();
    let invalidated = a.invalidations();
    assert!(
        invalidated
            .iter()
            .any(|(tid, oids)| *tid == t2 && oids.contains(&oid)),
        "{invalidated:?}"
    );
    assert_eq!(a.load(oid).unwrap(), (b"two".to_vec().into(), t2));
    let before = a.load_before(oid, t2).unwrap().unwrap();
    assert_eq!((before.data, before.serial), (b"one".to_vec().into(), t1));
    assert_eq!(a.load_before(oid, t1).unwrap(), None);
    let history = a.history(oid, 10).unwrap();
    assert_eq!(
        history.iter().map(|h| h.serial).collect::<Vec<_>>(),
        vec![t2, t1]
    );
    let transactions = a.iterate(Tid::ZERO, None).unwrap();
    assert_eq!(
        transactions.iter().map(|t| t.info.tid).collect::<Vec<_>>(),
        vec![t1, t2]
    );
}

#[test]
fn a_conflict_is_reported_or_resolved() {
    let cluster = cluster("runtime-conflict", 2);
    let masters = &cluster.masters;
    let mut a = connect("runtime-conflict", masters);
    let mut b = connect("runtime-conflict", masters);
    let oid = a.new_oid().unwrap();
    let mut txn = a.begin("test", "create").unwrap();
    a.store(&mut txn, oid, None, b"0".to_vec()).unwrap();
    let base = a.commit(txn).unwrap();

    let mut txn = a.begin("test", "a").unwrap();
    a.store(&mut txn, oid, Some(base), b"a".to_vec()).unwrap();
    let committed = a.commit(txn).unwrap();

    // b still bases its write on `base`.
    let mut txn = b.begin("test", "b").unwrap();
    b.store(&mut txn, oid, Some(base), b"b".to_vec()).unwrap();
    match b.commit(txn) {
        Err(Error::Conflict(conflict)) => {
            assert_eq!(
                (conflict.oid, conflict.committed, conflict.based_on),
                (oid, committed, base)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Resolved by merging: the merge is stored on top of `committed`.
    let mut txn = b.begin("test", "b again").unwrap();
    b.store(&mut txn, oid, Some(base), b"b".to_vec()).unwrap();
    let tid = b
        .commit_resolving(txn, |conflict, data| {
            assert_eq!((conflict.committed, &data[..]), (committed, &b"a"[..]));
            Some(b"a+b".to_vec().into())
        })
        .unwrap();
    b.sync().unwrap();
    assert_eq!(b.load(oid).unwrap(), (b"a+b".to_vec().into(), tid));
}

#[test]
fn a_client_of_an_unreachable_cluster_times_out_with_a_clear_error() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = neo_core::client::ClientConfig::new(
        "nobody",
        vec![parse_address(&format!("127.0.0.1:{port}"), None).unwrap()],
    );
    config.seed = 1;
    let started = std::time::Instant::now();
    let error = NeoClient::with_config_and_timeout(config, Duration::from_millis(500))
        .err()
        .expect("no cluster there");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_client_of_another_cluster_is_told_why_it_waited() {
    let cluster = cluster("runtime-named", 2);
    let mut config = neo_core::client::ClientConfig::new(
        "misnamed",
        cluster
            .masters
            .iter()
            .map(|&a| neo_mio::runtime::address_of(a))
            .collect(),
    );
    config.seed = 1;
    let error = NeoClient::with_config_and_timeout(config, Duration::from_millis(500))
        .err()
        .expect("the master refuses another cluster's client");
    let text = error.to_string();
    assert!(matches!(error, Error::Timeout { .. }), "{text}");
    assert!(
        text.contains("invalid cluster name (ours is \"misnamed\""),
        "{text}"
    );
}

#[test]
fn a_peer_sending_garbage_is_disconnected_and_the_cluster_keeps_serving() {
    use std::io::{Read, Write};
    let cluster = cluster("runtime-garbage", 2);
    let masters = &cluster.masters;
    let mut client = connect("runtime-garbage", masters);
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        // The NEO handshake, then bytes that are no packet.
        &[0x92, 0xa3, b'N', b'E', b'O', 5, 0xc1, 0xc1, 0xc1][..],
        // Another protocol version.
        &[0x92, 0xa3, b'N', b'E', b'O', 4][..],
    ] {
        let mut peer = std::net::TcpStream::connect(masters[0]).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        peer.write_all(garbage).unwrap();
        let mut received = Vec::new();
        // The master answers with its handshake at most, then closes
        // (a read timeout here means it kept the connection open).
        let result = peer.read_to_end(&mut received);
        assert!(result.is_ok(), "{garbage:?}: {result:?}");
        assert!(received.len() <= neo_proto::HANDSHAKE.len(), "{received:?}");
    }
    let mut txn = client.begin("test", "still serving").unwrap();
    let oid = client.new_oid().unwrap();
    client.store(&mut txn, oid, None, b"x".to_vec()).unwrap();
    client.commit(txn).unwrap();
}

/// `neo bench` runs every workload to its end, with the operation counts
/// it was asked for and no error; its conflict mix checks that the shared
/// counters add up (no lost or doubled update).
#[test]
fn bench_runs_every_workload_cleanly() {
    use neo_mio::cli::bench::{self, BenchOptions, Workload};
    let cluster = cluster("runtime-bench", 4);
    let options = BenchOptions {
        transactions: 5,
        objects: 3,
        clients: 3,
        round_trips: 20,
        ..BenchOptions::default()
    };
    let report = bench::run(
        "runtime-bench",
        &cluster.masters,
        &options,
        &mut std::io::sink(),
    )
    .expect("the bench runs");
    let ops = |workload| {
        report
            .measures
            .iter()
            .find(|m| m.workload == workload)
            .map(|m| (m.ops, m.errors))
    };
    assert_eq!(ops(Workload::Rtt), Some((20, 0)));
    assert_eq!(ops(Workload::Commit), Some((5, 0)));
    assert_eq!(ops(Workload::Cold), Some((15, 0)));
    assert_eq!(ops(Workload::Hot), Some((15, 0)));
    assert_eq!(ops(Workload::ClientsCommit), Some((15, 0)));
    assert_eq!(ops(Workload::ClientsLoad), Some((45, 0)));
    assert_eq!(ops(Workload::Conflicts), Some((15, 0)));
    let text = bench::table(&report, &options);
    assert!(text.contains("clients-commit"), "{text}");
}

/// An aborted transaction releases its locks at once, even if its client
/// then stays idle (writes are otherwise batched until the client next
/// waits for something).
#[test]
fn an_abort_releases_locks_while_its_client_is_idle() {
    let cluster = cluster("runtime-abort", 2);
    let masters = &cluster.masters;
    let mut a = connect("runtime-abort", masters);
    let mut b = connect("runtime-abort", masters);
    let oid = a.new_oid().unwrap();
    let mut txn = a.begin("test", "create").unwrap();
    a.store(&mut txn, oid, None, b"0".to_vec()).unwrap();
    let base = a.commit(txn).unwrap();

    let mut txn = a.begin("test", "to abort").unwrap();
    a.store(&mut txn, oid, Some(base), b"a".to_vec()).unwrap();
    // Anything that waits for the cluster sends the store: the storage
    // locks the object.
    a.sync().unwrap();
    a.abort(txn);

    b.set_timeout(Duration::from_secs(3));
    let mut txn = b.begin("test", "after the abort").unwrap();
    b.store(&mut txn, oid, Some(base), b"b".to_vec()).unwrap();
    let tid = b.commit(txn).expect("the aborted lock is released");
    assert_eq!(b.load(oid).unwrap(), (bytes::Bytes::from_static(b"b"), tid));
}

/// `neo digest`: two clients of one cluster agree; a commit changes it;
/// the lines it digests are one per transaction and one per record.
#[test]
fn the_digest_is_what_every_client_reads() {
    use neo_mio::cli::digest::digest;
    let cluster = cluster("runtime-digest", 2);
    let masters = &cluster.masters;
    let mut a = connect("runtime-digest", masters);
    let mut b = connect("runtime-digest", masters);
    for value in ["one", "two"] {
        let oid = a.new_oid().unwrap();
        let mut txn = a.begin("test", value).unwrap();
        a.store(&mut txn, oid, None, value.as_bytes().to_vec())
            .unwrap();
        a.commit(txn).unwrap();
    }
    let mut lines = Vec::new();
    let before = digest(&mut a, Some(&mut lines)).unwrap();
    b.sync().unwrap();
    assert_eq!(digest(&mut b, None).unwrap(), before);
    assert_eq!((before.transactions, before.records), (2, 2));
    let text = String::from_utf8(lines).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("T ")).count(), 2);
    assert_eq!(text.lines().filter(|l| l.starts_with("O ")).count(), 2);

    let oid = a.new_oid().unwrap();
    let mut txn = a.begin("test", "three").unwrap();
    a.store(&mut txn, oid, None, b"three".to_vec()).unwrap();
    a.commit(txn).unwrap();
    b.sync().unwrap();
    let after = digest(&mut b, None).unwrap();
    assert_ne!(after.sha1, before.sha1);
    assert_eq!(after.transactions, 3);
}
