//! `LmdbStore` against the store scenarios every `Store` must pass
//! (`neo_core::storage::scenarios`, also run on `MemoryStore`), then what
//! only a store on disk has: reopening, open errors, map growth.

mod common;

use bytes::Bytes;
use common::TempDir;
use neo_core::data;
use neo_core::storage::scenarios::{
    commit, data_of, meta, transactions, vote, with_two_partitions,
};
use neo_core::storage::store::{Store, StoreConfig};
use neo_mio::lmdb::{LmdbStore, OpenError};
use neo_proto::{Oid, Tid};

neo_core::store_scenarios!(|name: &str| {
    let dir = TempDir::new(name);
    let store = LmdbStore::open(dir.path()).unwrap();
    (dir, store)
});

// ------------------------------------------------------------------ LMDB only

#[test]
fn writes_since_the_last_sync_are_lost_on_reopen_and_nothing_else() {
    let dir = TempDir::new("reopen");
    let mut store = LmdbStore::open(dir.path()).unwrap();
    with_two_partitions(&mut store);
    commit(&mut store, 10, &[(2, Some(b"a"))]);
    store.sync();
    // A locked transaction: durable as unfinished.
    vote(&mut store, 11, &[(3, Some(b"b"))]);
    store.lock_transaction(Tid(11), Tid(13), false);
    store.sync();
    // Unsynced.
    commit(&mut store, 14, &[(2, Some(b"c"))]);
    store.unlock_transaction(Tid(11), Tid(13));
    assert_eq!(data_of(&store, 2).as_deref(), Some(&b"c"[..]));
    drop(store);

    let mut store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(transactions(&store, 0), vec![Tid(10)]);
    assert_eq!(data_of(&store, 2).as_deref(), Some(&b"a"[..]));
    assert_eq!(
        store.unfinished_transactions(),
        vec![(Tid(11), Some(Tid(13)))]
    );
    // The "c" row was never synced: gone, not orphaned.
    assert_eq!(store.prune_orphans(), 0);
    store.unlock_transaction(Tid(11), Tid(13));
    store.sync();
    drop(store);
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(data_of(&store, 3).as_deref(), Some(&b"b"[..]));
    assert!(store.unfinished_transactions().is_empty());
}

/// Where [`killed_child`] writes: set only in the child process.
const CHILD_DIR: &str = "NEO_LMDB_TEST_CHILD_DIR";

#[test]
fn a_killed_process_loses_exactly_its_unsynced_writes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = TempDir::new("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_child", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let ready = stdout
        .lines()
        .any(|line| line.is_ok_and(|line| line == "ready"));
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(ready, "the child did not get ready");

    let mut store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.config().cluster, Some(Bytes::from_static(b"synced")));
    assert_eq!(transactions(&store, 0), vec![Tid(10)]);
    assert_eq!(transactions(&store, 1), vec![]);
    assert_eq!(data_of(&store, 2).as_deref(), Some(&b"a"[..]));
    assert_eq!(
        store.unfinished_transactions(),
        vec![(Tid(11), Some(Tid(13)))]
    );
    assert_eq!(store.prune_orphans(), 0);
    // The store works on: the writer lock the child held is free.
    commit(&mut store, 16, &[(2, Some(b"d"))]);
    store.sync();
}

/// The child of [`a_killed_process_loses_exactly_its_unsynced_writes`]:
/// writes, syncs, writes more (enough to outgrow its map), says it is
/// ready and waits to be killed.
#[test]
#[ignore = "run as a child process by a_killed_process_loses_exactly_its_unsynced_writes"]
fn killed_child() {
    use std::io::Write;
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut store = LmdbStore::open_with(std::path::Path::new(&dir), 128 << 10).unwrap();
    with_two_partitions(&mut store);
    store.set_cluster(Bytes::from_static(b"synced"));
    commit(&mut store, 10, &[(2, Some(b"a"))]);
    vote(&mut store, 11, &[(3, Some(b"b"))]);
    store.lock_transaction(Tid(11), Tid(13), false);
    store.sync();
    // Unsynced.
    let initial = store.map_size();
    store.set_cluster(Bytes::from_static(b"unsynced"));
    store.unlock_transaction(Tid(11), Tid(13));
    commit(&mut store, 14, &[(2, Some(b"c"))]);
    for i in 0..100u64 {
        let blob = data::pack(Bytes::from(vec![i as u8; 20_000]), false);
        store.add_transaction(Tid(101 + 2 * i), &meta(99 + 2 * i, &[]), None);
        store.add_object(Oid(2 * i + 1), Tid(101 + 2 * i), Some(&blob), None);
    }
    assert!(store.map_size() > initial);
    println!("ready");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

#[test]
fn sync_without_writes_and_reads_without_a_sync_are_harmless() {
    let dir = TempDir::new("idle");
    let mut store = LmdbStore::open(dir.path()).unwrap();
    store.sync();
    assert_eq!(store.config(), StoreConfig::default());
    store.sync();
    store.sync();
    assert_eq!(store.partition_table(), None);
    drop(store);
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.config(), StoreConfig::default());
}

#[test]
fn the_map_grows_within_a_transaction_and_at_sync() {
    let dir = TempDir::new("growth");
    let initial = 256 << 10;
    let mut store = LmdbStore::open_with(dir.path(), initial).unwrap();
    with_two_partitions(&mut store);
    let blob = |i: u64| {
        let mut bytes = vec![(i % 251) as u8; 20_000];
        bytes[..8].copy_from_slice(&i.to_be_bytes());
        data::pack(Bytes::from(bytes), false)
    };
    // 2 MB in one transaction: far beyond the map, several MAP_FULLs.
    let mut tid = 10;
    for i in 0..100u64 {
        store.add_transaction(Tid(tid), &meta(tid - 2, &[i]), None);
        store.add_object(Oid(i * 2), Tid(tid), Some(&blob(i)), None);
        tid += 2;
    }
    assert!(store.map_size() > initial);
    for i in 0..100u64 {
        assert_eq!(data_of(&store, i * 2), Some(blob(i).data), "oid {}", i * 2);
    }
    store.sync();
    let after_first_sync = store.map_size();
    // More, synced often: the map grows at sync, before it is full.
    for i in 100..300u64 {
        store.add_transaction(Tid(tid), &meta(tid - 2, &[i]), None);
        store.add_object(Oid(i * 2), Tid(tid), Some(&blob(i)), None);
        tid += 2;
        if i % 10 == 0 {
            store.sync();
        }
    }
    store.sync();
    assert!(store.map_size() > after_first_sync);
    drop(store);
    // Reopened with the tiny size: the file's size wins.
    let store = LmdbStore::open_with(dir.path(), initial).unwrap();
    for i in 0..300u64 {
        assert_eq!(data_of(&store, i * 2), Some(blob(i).data), "oid {}", i * 2);
    }
    assert_eq!(transactions(&store, 0).len(), 300);
}

#[test]
fn a_store_of_the_current_format_reopens_and_others_are_refused() {
    let dir = TempDir::new("format");
    drop(LmdbStore::open(dir.path()).unwrap());
    // The store itself: reopens.
    drop(LmdbStore::open(dir.path()).unwrap());
    // Another format version.
    set_format(dir.path(), &2u32.to_be_bytes());
    match LmdbStore::open(dir.path()) {
        Err(OpenError::UnsupportedFormat { version: 2, .. }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    // No version at all.
    set_format(dir.path(), b"?");
    match LmdbStore::open(dir.path()) {
        Err(OpenError::NotAStore(_)) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// Writes the format version of a store behind its back.
fn set_format(dir: &std::path::Path, version: &[u8]) {
    use heed::types::Bytes;
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).open(dir) }.unwrap();
    let mut txn = env.write_txn().unwrap();
    let config = env
        .open_database::<Bytes, Bytes>(&txn, Some("config"))
        .unwrap()
        .unwrap();
    config.put(&mut txn, b"format", version).unwrap();
    txn.commit().unwrap();
}

#[test]
fn an_lmdb_environment_of_something_else_is_refused() {
    use heed::types::Bytes;
    let dir = TempDir::new("foreign");
    std::fs::create_dir_all(dir.path()).unwrap();
    {
        let env = unsafe { heed::EnvOpenOptions::new().open(dir.path()) }.unwrap();
        let mut txn = env.write_txn().unwrap();
        let main = env.create_database::<Bytes, Bytes>(&mut txn, None).unwrap();
        main.put(&mut txn, b"key", b"value").unwrap();
        txn.commit().unwrap();
    }
    match LmdbStore::open(dir.path()) {
        Err(error @ OpenError::NotAStore(_)) => {
            assert!(error.to_string().contains("not a NEO store"), "{error}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn files_that_are_not_lmdb_are_refused() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("data.mdb"), vec![0x5a; 64 << 10]).unwrap();
    match LmdbStore::open(dir.path()) {
        Err(OpenError::Lmdb { .. }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn the_path_must_be_a_directory_and_is_created_if_missing() {
    let dir = TempDir::new("paths");
    let nested = dir.path().join("a/b");
    let store = LmdbStore::open(&nested).unwrap();
    assert!(nested.join("data.mdb").is_file());
    // Twice in one process: refused, not corrupted.
    match LmdbStore::open(&nested) {
        Err(OpenError::AlreadyOpen(_)) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    drop(store);
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    match LmdbStore::open(&file) {
        Err(error @ OpenError::NotADirectory(_)) => {
            assert!(error.to_string().contains("not a directory"), "{error}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    match LmdbStore::open(&file.join("below")) {
        Err(OpenError::Io { .. }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn an_unwritable_directory_is_an_io_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("unwritable");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
    // Permissions do not stop root: nothing to test then.
    if std::fs::write(dir.path().join("probe"), b"").is_err() {
        match LmdbStore::open(dir.path()) {
            Err(OpenError::Io { error, .. }) => {
                assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied)
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}
