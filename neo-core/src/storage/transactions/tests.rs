use bytes::Bytes;
use neo_proto::{CellInfo, CellState, Partitions, Ptid};

use super::*;
use crate::storage::memory::MemoryStore;
use crate::storage::store::{ObjectLookup, StoredTable};

const C1: Nid = Nid(0x1000_0001);
const C2: Nid = Nid(0x1000_0002);
const T1: Tid = Tid(100);
const T2: Tid = Tid(200);
const OID: Oid = Oid(1);

fn readable(_: u32) -> bool {
    true
}

fn data(bytes: &'static [u8]) -> ObjectData {
    crate::data::pack(Bytes::from_static(bytes), false)
}

fn meta(ttid: Tid, oids: &[Oid]) -> TransactionMeta {
    TransactionMeta {
        ttid,
        user: Bytes::new(),
        description: Bytes::new(),
        extension: Bytes::new(),
        packed: false,
        oids: oids.to_vec(),
    }
}

/// Node 1 holding both partitions of a 2-partition table, with `OID`
/// committed at TID 10.
fn setup() -> (TransactionLocks, MemoryStore) {
    let mut store = MemoryStore::new();
    store.set_nid(Nid(1));
    let cell = |_| CellInfo {
        nid: Nid(1),
        state: CellState::UpToDate,
    };
    store.reset_partition_table(
        Nid(1),
        &StoredTable {
            ptid: Ptid(1),
            num_replicas: 0,
            rows: (0..2).map(|p| vec![cell(p)].into()).collect(),
        },
        Tid::ZERO,
    );
    let mut tm = TransactionLocks::new(Partitions::new(2));
    tm.register(C1, Tid(9));
    tm.store_object(
        &mut store,
        &readable,
        Tid(9),
        Tid::ZERO,
        OID,
        Some(&data(b"v10")),
        None,
    )
    .unwrap();
    commit(&mut tm, &mut store, Tid(9), Tid(10));
    (tm, store)
}

fn commit(tm: &mut TransactionLocks, store: &mut MemoryStore, ttid: Tid, tid: Tid) {
    let oids: Vec<Oid> = tm.get(ttid).unwrap().serial_dict.keys().copied().collect();
    tm.vote(store, ttid, Some((meta(ttid, &oids), None)))
        .unwrap();
    tm.lock(store, ttid, tid, false).unwrap();
    tm.unlock(store, ttid).unwrap();
}

#[test]
fn a_younger_transaction_waits_for_the_older_one() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    tm.register(C2, T2);
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T1,
            Tid(10),
            OID,
            Some(&data(b"a")),
            None
        ),
        Ok(true)
    );
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T2,
            Tid(10),
            OID,
            Some(&data(b"b")),
            None
        ),
        Err(StoreError::Lock(LockError::Delay(T2)))
    );
    assert!(tm.deadlocks.is_empty());
    tm.released = false;
    assert!(tm.abort(&mut store, T1));
    assert!(tm.released, "postponed requests must be retried");
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T2,
            Tid(10),
            OID,
            Some(&data(b"b")),
            None
        ),
        Ok(true)
    );
}

#[test]
fn an_older_transaction_blocked_by_a_younger_one_asks_it_to_relock_once() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    tm.register(C2, T2);
    tm.store_object(
        &mut store,
        &readable,
        T2,
        Tid(10),
        OID,
        Some(&data(b"young")),
        None,
    )
    .unwrap();
    let blocked = tm.store_object(
        &mut store,
        &readable,
        T1,
        Tid(10),
        OID,
        Some(&data(b"old")),
        None,
    );
    assert_eq!(blocked, Err(StoreError::Lock(LockError::Delay(T1))));
    assert_eq!(
        tm.deadlocks,
        vec![Deadlock {
            client: C2,
            ttid: T2,
            oid: OID
        }]
    );
    tm.deadlocks.clear();
    // Retrying does not notify again.
    let retried = tm.store_object(
        &mut store,
        &readable,
        T1,
        Tid(10),
        OID,
        Some(&data(b"old")),
        None,
    );
    assert_eq!(retried, Err(StoreError::Lock(LockError::Delay(T1))));
    assert!(tm.deadlocks.is_empty());
    // The younger releases; the older takes the lock; the younger waits.
    assert!(tm.release_for_relock(T2, OID));
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T1,
            Tid(10),
            OID,
            Some(&data(b"old")),
            None
        ),
        Ok(true)
    );
    assert_eq!(
        tm.relock(&mut store, &readable, T2, OID),
        Err(LockError::Delay(T2))
    );
    // The older commits: the younger's relock now conflicts and gets its
    // data back (its client may not have it any more).
    commit(&mut tm, &mut store, T1, Tid(300));
    let conflict = tm.relock(&mut store, &readable, T2, OID).unwrap().unwrap();
    assert_eq!(conflict.serial, Tid(10));
    assert_eq!(conflict.conflict_serial, Tid(300));
    assert_eq!(&conflict.data.unwrap().data[..], b"young");
    assert!(tm.get(T2).unwrap().serial_dict.is_empty());
}

#[test]
fn a_voted_holder_is_waited_for_without_deadlock_notification() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    tm.register(C2, T2);
    tm.store_object(
        &mut store,
        &readable,
        T2,
        Tid(10),
        OID,
        Some(&data(b"b")),
        None,
    )
    .unwrap();
    tm.vote(&mut store, T2, None).unwrap();
    let blocked = tm.store_object(
        &mut store,
        &readable,
        T1,
        Tid(10),
        OID,
        Some(&data(b"a")),
        None,
    );
    assert_eq!(blocked, Err(StoreError::Lock(LockError::Delay(T1))));
    assert!(tm.deadlocks.is_empty());
}

#[test]
fn a_stale_serial_is_a_conflict_and_records_nothing() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    let rows = store.data_rows();
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T1,
            Tid(5),
            OID,
            Some(&data(b"x")),
            None
        ),
        Err(StoreError::Lock(LockError::Conflict(Tid(10))))
    );
    assert!(tm.get(T1).unwrap().serial_dict.is_empty());
    assert_eq!(store.data_rows(), rows);
    assert_eq!(
        tm.check_current_serial(&store, &readable, T1, OID, Tid(5)),
        Err(LockError::Conflict(Tid(10)))
    );
}

#[test]
fn storing_again_in_the_same_transaction_replaces_the_previous_store() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    tm.store_object(
        &mut store,
        &readable,
        T1,
        Tid(10),
        OID,
        Some(&data(b"first")),
        None,
    )
    .unwrap();
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T1,
            Tid(10),
            OID,
            Some(&data(b"second")),
            None
        ),
        Ok(true)
    );
    commit(&mut tm, &mut store, T1, Tid(300));
    match store.object(OID, None, None) {
        ObjectLookup::Found(revision) => assert_eq!(&revision.data.unwrap().data[..], b"second"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.data_rows(), 2, "the first store's data was pruned");
    assert_eq!(store.holds(), 0);
}

#[test]
fn replicating_partitions_take_stores_without_lock() {
    let (mut tm, mut store) = setup();
    tm.replicating(&[1]); // OID 1 is in partition 1
    tm.register(C1, T1);
    assert_eq!(
        tm.store_object(
            &mut store,
            &readable,
            T1,
            Tid(10),
            OID,
            Some(&data(b"x")),
            None
        ),
        Ok(false)
    );
    assert!(tm.get(T1).unwrap().lockless.contains(&OID));
    assert_eq!(tm.write_lock_holder(OID), None);
}

#[test]
fn locked_transactions_hold_read_locks_until_unlock() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    tm.store_object(
        &mut store,
        &readable,
        T1,
        Tid(10),
        OID,
        Some(&data(b"x")),
        None,
    )
    .unwrap();
    tm.vote(&mut store, T1, Some((meta(T1, &[OID]), None)))
        .unwrap();
    tm.lock(&mut store, T1, Tid(300), false).unwrap();
    assert!(tm.is_read_locked(OID));
    assert!(tm.is_locked_tid(Tid(300)) && !tm.is_locked_tid(Tid(299)));
    assert_eq!(tm.final_tid(T1), Some(Some(Tid(300))));
    // A locked transaction is not aborted (the master commits it).
    assert!(!tm.abort(&mut store, T1));
    tm.unlock(&mut store, T1).unwrap();
    assert!(!tm.is_read_locked(OID));
    assert!(!tm.contains(T1));
    assert_eq!(store.final_tid(T1), Some(Tid(300)));
}

#[test]
fn aborting_a_voted_transaction_leaves_nothing_behind() {
    let (mut tm, mut store) = setup();
    let rows = store.data_rows();
    tm.register(C1, T1);
    tm.store_object(
        &mut store,
        &readable,
        T1,
        Tid::ZERO,
        Oid(3),
        Some(&data(b"new")),
        None,
    )
    .unwrap();
    tm.vote(&mut store, T1, Some((meta(T1, &[Oid(3)]), None)))
        .unwrap();
    assert_eq!(
        tm.abort_for(&mut store, C1, false),
        Vec::<Tid>::new(),
        "voted: kept"
    );
    assert_eq!(tm.abort_for(&mut store, C1, true), vec![T1]);
    assert!(store.unfinished_transactions().is_empty());
    assert_eq!(store.data_rows(), rows);
    assert_eq!(store.holds(), 0);
    assert!(tm.is_empty());
}

#[test]
fn an_undo_of_a_packed_revision_is_refused_and_others_reuse_data() {
    let (mut tm, mut store) = setup();
    tm.register(C1, T1);
    assert_eq!(
        tm.store_object(&mut store, &readable, T1, Tid(10), OID, None, Some(Tid(7))),
        Err(StoreError::UndoPack)
    );
    let rows = store.data_rows();
    tm.register(C2, T2);
    assert_eq!(
        tm.store_object(&mut store, &readable, T2, Tid(10), OID, None, Some(Tid(10))),
        Ok(true)
    );
    assert_eq!(
        store.data_rows(),
        rows,
        "the back-pointer reuses the data row"
    );
    assert!(tm.pending_store(T2, OID).unwrap().data_id.is_some());
}
