//! The store scenarios: what every [`Store`] must do, written once and
//! run against each implementation (`MemoryStore` in neo-core's tests,
//! LMDB in neo-mio's) with [`store_scenarios!`](crate::store_scenarios), so
//! the reference and the real store are held to the same expectations.
//! Built with the `testing` feature only.
//!
//! Each scenario is a public function whose name states what it checks;
//! they are not documented one by one.

#![allow(missing_docs)] // the scenarios: their names are their claims

use bytes::Bytes;
use neo_proto::{
    CellChange, CellInfo, CellState, Checksum, Nid, ObjectData, Oid, PackOrder, Ptid, Tid,
};

use super::memory::MemoryStore;
use super::store::{
    ObjectLookup, ObjectRecord, Store, StoreConfig, StoredTable, TempObject, TransactionMeta,
};
use crate::data;

/// What the scenarios need of a store beyond the trait.
pub trait TestStore: Store + Sized {
    /// Data rows stored (deduplicated).
    fn rows(&self) -> usize;
    /// Data rows held by pending transactions.
    fn held(&self) -> usize;
    /// Loses what was not synced, as a crash does.
    fn crash(self) -> Self;
}

impl TestStore for MemoryStore {
    fn rows(&self) -> usize {
        self.data_rows()
    }

    fn held(&self) -> usize {
        self.holds()
    }

    fn crash(mut self) -> Self {
        MemoryStore::crash(&mut self);
        self
    }
}

/// Generates one test per scenario; `$open` makes the store a test runs
/// on from the test's name and returns it with whatever must live as long
/// as it (a temporary directory).
#[macro_export]
macro_rules! store_scenarios {
    ($open:expr) => {
        $crate::store_scenarios!(@each $open;
            a_crash_loses_exactly_what_was_not_synced,
            config_round_trips,
            the_partition_table_keeps_cell_order_and_states,
            own_cells_becoming_out_of_date_keep_what_they_have,
            new_own_cells_get_a_pack_id_from_their_state,
            truncation_and_last_ids_only_see_readable_partitions,
            commit_steps_move_records_and_keep_data_referenced,
            identical_data_is_stored_once_and_pruned_when_unreferenced,
            the_dedup_index_follows_the_latest_row_with_a_checksum,
            data_ids_are_allocated_per_partition,
            an_aborted_store_leaves_nothing_and_unvoted_data_does_not_survive_a_restart,
            voted_and_locked_transactions_survive_a_crash_as_unfinished,
            a_synced_store_survives_a_crash_whole,
            undo_history_and_record_data,
            object_history_pages_newest_first,
            iteration_over_tids_and_oids,
            pack_orders_are_signed_and_renamed_at_unlock,
            pack_orders_of_pending_transactions_are_not_reported,
            full_pack_keeps_the_state_at_the_pack_point,
            partial_pack_only_touches_listed_oids_in_chunks,
            replication_writes_and_reads_records_by_serial,
            replication_progress_and_packs_only_move_one_way,
            dropping_partitions_drops_their_temporary_records,
            drop_unfinished_forgets_every_pending_transaction,
            erase_deletes_everything,
            first_tid_is_the_smallest_tid_anywhere,
        );
    };
    (@each $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_keep, store) = ($open)(stringify!($name));
                $crate::storage::scenarios::$name(store);
            }
        )*
    };
}

// ------------------------------------------------------------------ helpers

fn table(ptid: u64, rows: Vec<Vec<(i32, CellState)>>) -> StoredTable {
    StoredTable {
        ptid: Ptid(ptid),
        num_replicas: 0,
        rows: rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|(nid, state)| CellInfo {
                        nid: Nid(nid),
                        state,
                    })
                    .collect()
            })
            .collect(),
    }
}

/// A transaction's metadata, TTID `ttid`, touching `oids`.
pub fn meta(ttid: u64, oids: &[u64]) -> TransactionMeta {
    TransactionMeta {
        ttid: Tid(ttid),
        user: Bytes::from_static(b"user"),
        description: Bytes::new(),
        extension: Bytes::from_static(b"\x80}q."),
        packed: false,
        oids: oids.iter().map(|&o| Oid(o)).collect(),
    }
}

fn bytes(b: &'static [u8]) -> ObjectData {
    data::pack(Bytes::from_static(b), false)
}

fn record(data_id: Option<u64>) -> ObjectRecord {
    ObjectRecord {
        data_id,
        value_tid: None,
    }
}

/// The store is node 1's, with table 1 of these `(nid, state)` rows.
fn own_table<S: Store>(store: &mut S, rows: Vec<Vec<(i32, CellState)>>) {
    store.set_nid(Nid(1));
    store.reset_partition_table(Nid(1), &table(1, rows), Tid::ZERO);
}

/// Node 1 holding both partitions of a 2-partition table.
pub fn with_two_partitions<S: Store>(store: &mut S) {
    use CellState::*;
    own_table(store, vec![vec![(1, UpToDate)], vec![(1, UpToDate)]]);
    store.sync();
}

/// Votes `oid → bytes` under `ttid`: the data (held), then the temporary
/// records and the transaction's metadata. Returns the records.
pub fn vote<S: Store>(
    store: &mut S,
    ttid: u64,
    objects: &[(u64, Option<&'static [u8]>)],
) -> Vec<TempObject> {
    let mut temp = Vec::new();
    for &(oid, b) in objects {
        let data_id = b.map(|b| store.store_data(Oid(oid), &bytes(b)));
        temp.push(TempObject {
            oid: Oid(oid),
            record: record(data_id),
        });
    }
    let oids: Vec<u64> = objects.iter().map(|(o, _)| *o).collect();
    store.store_temporary(Tid(ttid), &temp, Some(&meta(ttid, &oids)));
    temp
}

/// Commits `oid → bytes` as one transaction (vote, lock, unlock) under
/// `tid`, with a TTID in the same partition (as the master guarantees).
pub fn commit<S: Store>(store: &mut S, tid: u64, objects: &[(u64, Option<&'static [u8]>)]) {
    let ttid = tid - 2;
    let temp = vote(store, ttid, objects);
    store.lock_transaction(Tid(ttid), Tid(tid), false);
    store.unlock_transaction(Tid(ttid), Tid(tid));
    for object in temp {
        if let Some(id) = object.record.data_id {
            store.release_data(id);
        }
    }
}

/// Every committed transaction of `partition`, in TID order.
pub fn transactions<S: Store>(store: &S, partition: u32) -> Vec<Tid> {
    store.tids_from(Tid::ZERO, Tid::INVALID, u32::MAX, partition)
}

/// `(oid, serial)` of the committed records of a partition, by oid.
fn objects<S: Store>(store: &S, partition: u32) -> Vec<(Oid, Tid)> {
    let mut records: Vec<(Oid, Tid)> = store
        .replication_objects(partition, Tid::ZERO, Tid::INVALID, Oid::ZERO, u32::MAX)
        .into_iter()
        .map(|(tid, oid)| (oid, tid))
        .collect();
    records.sort_unstable();
    records
}

/// The unpacked data of `oid`'s current revision, if it has data.
pub fn data_of<S: Store>(store: &S, oid: u64) -> Option<Bytes> {
    match store.object(Oid(oid), None, None) {
        ObjectLookup::Found(revision) => revision.data.map(|d| d.data),
        _ => None,
    }
}

fn order(pack_id: u64, pack_tid: u64) -> PackOrder {
    PackOrder {
        pack_id: Tid(pack_id),
        approved: None,
        partial: false,
        oids: None,
        pack_tid: Tid(pack_tid),
    }
}

// ------------------------------------------------------------------ scenarios

pub fn a_crash_loses_exactly_what_was_not_synced<S: TestStore>(mut store: S) {
    store.set_nid(Nid(1));
    store.sync();
    store.set_truncate_tid(Some(Tid(5)));
    assert_eq!(store.config().truncate_tid, Some(Tid(5)));
    let store = store.crash();
    assert_eq!(store.config().nid, Some(Nid(1)));
    assert_eq!(store.config().truncate_tid, None);
}

pub fn config_round_trips<S: TestStore>(mut store: S) {
    assert_eq!(store.config(), StoreConfig::default());
    store.set_cluster(Bytes::from_static(b"cluster"));
    store.set_nid(Nid(-0x10));
    store.set_truncate_tid(Some(Tid(7)));
    store.set_backup_tid(Some(Tid(9)));
    let expected = StoreConfig {
        cluster: Some(Bytes::from_static(b"cluster")),
        nid: Some(Nid(-0x10)),
        truncate_tid: Some(Tid(7)),
        backup_tid: Some(Tid(9)),
    };
    assert_eq!(store.config(), expected);
    store.sync();
    let mut store = store.crash();
    assert_eq!(store.config(), expected);
    store.set_truncate_tid(None);
    store.set_backup_tid(None);
    assert_eq!(store.config().truncate_tid, None);
    assert_eq!(store.config().backup_tid, None);
}

pub fn the_partition_table_keeps_cell_order_and_states<S: TestStore>(mut store: S) {
    use CellState::*;
    assert_eq!(store.partition_table(), None);
    store.set_nid(Nid(2));
    let mut stored = table(
        5,
        vec![
            vec![(3, UpToDate), (2, Feeding)],
            vec![(2, OutOfDate), (1, Corrupted)],
            vec![],
        ],
    );
    stored.num_replicas = 1;
    store.reset_partition_table(Nid(2), &stored, Tid::ZERO);
    assert_eq!(store.partition_table(), Some(stored.clone()));
    // A change appends new cells, replaces existing ones, removes
    // discarded ones, and ignores offsets out of the table.
    let change = |offset, nid, state| CellChange {
        offset,
        nid: Nid(nid),
        state,
    };
    store.change_partition_table(
        Nid(2),
        Ptid(6),
        2,
        &[
            change(2, 4, OutOfDate),
            change(0, 3, Discarded),
            change(1, 2, UpToDate),
            change(9, 2, UpToDate),
        ],
        Tid::ZERO,
    );
    let expected = StoredTable {
        ptid: Ptid(6),
        num_replicas: 2,
        rows: vec![
            vec![CellInfo {
                nid: Nid(2),
                state: Feeding,
            }]
            .into(),
            vec![
                CellInfo {
                    nid: Nid(2),
                    state: UpToDate,
                },
                CellInfo {
                    nid: Nid(1),
                    state: Corrupted,
                },
            ]
            .into(),
            vec![CellInfo {
                nid: Nid(4),
                state: OutOfDate,
            }]
            .into(),
        ],
    };
    assert_eq!(store.partition_table(), Some(expected.clone()));
    store.sync();
    let mut store = store.crash();
    assert_eq!(store.partition_table(), Some(expected));
    // A smaller table drops the rows beyond it.
    store.reset_partition_table(Nid(2), &table(7, vec![vec![(2, UpToDate)]]), Tid::ZERO);
    assert_eq!(store.partition_table().unwrap().rows.len(), 1);
}

pub fn own_cells_becoming_out_of_date_keep_what_they_have<S: TestStore>(mut store: S) {
    use CellState::*;
    own_table(&mut store, vec![vec![(1, UpToDate)], vec![(1, UpToDate)]]);
    store.add_transaction(Tid(40), &meta(38, &[]), None);
    let change = |offset, state| CellChange {
        offset,
        nid: Nid(1),
        state,
    };
    // Readable → OUT_OF_DATE: replicate from the last TID it has.
    store.change_partition_table(
        Nid(1),
        Ptid(2),
        0,
        &[change(0, OutOfDate), change(1, OutOfDate)],
        Tid::ZERO,
    );
    assert_eq!(store.replicated_up_to(0), Some(Tid(40)));
    assert_eq!(store.replicated_up_to(1), Some(Tid::ZERO));
    // Already OUT_OF_DATE: unchanged.
    store.change_partition_table(Nid(1), Ptid(3), 0, &[change(0, OutOfDate)], Tid::ZERO);
    assert_eq!(store.replicated_up_to(0), Some(Tid(40)));
    // Readable again, then OUT_OF_DATE in a backup cluster: from the
    // backup TID.
    store.change_partition_table(Nid(1), Ptid(4), 0, &[change(1, UpToDate)], Tid::ZERO);
    store.set_backup_tid(Some(Tid(33)));
    store.change_partition_table(Nid(1), Ptid(5), 0, &[change(1, OutOfDate)], Tid::ZERO);
    assert_eq!(store.replicated_up_to(1), Some(Tid(33)));
    // Discarded: the partition's data goes.
    store.change_partition_table(Nid(1), Ptid(6), 0, &[change(0, Discarded)], Tid::ZERO);
    assert!(transactions(&store, 0).is_empty());
    assert_eq!(store.replicated_up_to(0), None);
    assert_eq!(store.partition_table().unwrap().ptid, Ptid(6));
}

pub fn new_own_cells_get_a_pack_id_from_their_state<S: TestStore>(mut store: S) {
    use CellState::*;
    own_table(&mut store, vec![vec![(1, UpToDate)], vec![(2, UpToDate)]]);
    assert_eq!(store.packed(), vec![(0, Tid::ZERO)]);
    store.set_packed(0, Tid(7));
    // A new OUT_OF_DATE cell will get packed data: it starts at the last
    // approved pack; an existing cell keeps its own.
    let changes = [
        CellChange {
            offset: 1,
            nid: Nid(1),
            state: OutOfDate,
        },
        CellChange {
            offset: 0,
            nid: Nid(1),
            state: Feeding,
        },
    ];
    store.change_partition_table(Nid(1), Ptid(2), 0, &changes, Tid(9));
    assert_eq!(store.packed(), vec![(0, Tid(7)), (1, Tid(9))]);
}

pub fn truncation_and_last_ids_only_see_readable_partitions<S: TestStore>(mut store: S) {
    use CellState::*;
    own_table(&mut store, vec![vec![(1, UpToDate)], vec![(1, OutOfDate)]]);
    // tid ≡ ttid (mod np), as the master guarantees.
    store.add_transaction(Tid(10), &meta(8, &[]), None);
    store.add_transaction(Tid(20), &meta(18, &[]), None);
    store.add_transaction(Tid(31), &meta(29, &[]), None);
    store.add_object(Oid(3), Tid(31), Some(&bytes(b"x")), None);
    store.add_object(Oid(4), Tid(20), Some(&bytes(b"y")), None);
    store.set_replicated_up_to(1, Tid(31));
    assert_eq!(store.last_ids(), (Some(Tid(20)), Some(Oid(4))));
    assert_eq!(store.first_tid(), Tid(10));
    assert_eq!(store.final_tid(Tid(18)), Some(Tid(20)));
    assert_eq!(store.final_tid(Tid(19)), None);
    store.set_truncate_tid(Some(Tid(15)));
    store.truncate();
    assert_eq!(store.last_ids(), (Some(Tid(10)), None));
    assert_eq!(store.config().truncate_tid, None);
    // Both partitions are assigned: both are truncated, and replication
    // restarts from the truncation point.
    assert!(transactions(&store, 1).is_empty());
    assert!(objects(&store, 1).is_empty());
    assert_eq!(store.replicated_up_to(1), Some(Tid(15)));
    assert_eq!(store.rows(), 0);
    // Nothing recorded: nothing to do.
    store.truncate();
    assert_eq!(transactions(&store, 0), vec![Tid(10)]);
}

pub fn commit_steps_move_records_and_keep_data_referenced<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    commit(&mut store, 10, &[(2, Some(b"a")), (3, Some(b"b"))]);
    assert_eq!(transactions(&store, 0), vec![Tid(10)]);
    assert_eq!(store.transaction(Tid(10)), Some(meta(8, &[2, 3])));
    assert_eq!(objects(&store, 0).len(), 1);
    assert_eq!(objects(&store, 1).len(), 1);
    assert_eq!(store.rows(), 2);
    assert_eq!(store.held(), 0);
    assert!(store.unfinished_transactions().is_empty());
    match store.object(Oid(2), None, None) {
        ObjectLookup::Found(revision) => {
            assert_eq!(revision.serial, Tid(10));
            assert_eq!(revision.next_serial, None);
            assert_eq!(&revision.data.unwrap().data[..], b"a");
        }
        other => panic!("{other:?}"),
    }
    commit(&mut store, 12, &[(2, Some(b"c"))]);
    match store.object(Oid(2), Some(Tid(10)), None) {
        ObjectLookup::Found(revision) => {
            assert_eq!(revision.next_serial, Some(Tid(12)));
            assert_eq!(&revision.data.unwrap().data[..], b"a");
        }
        other => panic!("{other:?}"),
    }
    match store.object(Oid(2), None, Some(Tid(12))) {
        ObjectLookup::Found(revision) => assert_eq!(revision.serial, Tid(10)),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.last_serial(Oid(2)), Some(Tid(12)));
    assert_eq!(
        store.object(Oid(2), None, Some(Tid(10))),
        ObjectLookup::NotFound
    );
    assert_eq!(
        store.object(Oid(2), Some(Tid(11)), None),
        ObjectLookup::NotFound
    );
    assert_eq!(store.object(Oid(4), None, None), ObjectLookup::DoesNotExist);
}

pub fn identical_data_is_stored_once_and_pruned_when_unreferenced<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    commit(&mut store, 10, &[(2, Some(b"same")), (3, Some(b"same"))]);
    assert_eq!(store.rows(), 1);
    // Overwriting one object keeps the row for the other; deleting the
    // other's history (pack) frees it.
    commit(&mut store, 12, &[(2, Some(b"new"))]);
    assert_eq!(store.rows(), 2);
    assert_eq!(store.pack(0, Tid(12), None, Oid::ZERO, 100), None);
    assert_eq!(store.rows(), 2); // oid 3 still uses "same"
    commit(&mut store, 14, &[(3, None)]); // deletion
    assert_eq!(store.pack(1, Tid(14), None, Oid::ZERO, 100), None);
    assert_eq!(store.rows(), 1);
    assert_eq!(store.object(Oid(3), None, None), ObjectLookup::DoesNotExist);
}

pub fn the_dedup_index_follows_the_latest_row_with_a_checksum<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    // Same checksum and compression, different bytes: two rows.
    let data = |b: &'static [u8]| ObjectData {
        compression: 0,
        checksum: Checksum([7; 20]),
        data: Bytes::from_static(b),
    };
    let a = store.store_data(Oid(0), &data(b"a"));
    let b = store.store_data(Oid(0), &data(b"b"));
    assert_ne!(a, b);
    // The index points to the newest: "b" is shared, "a" is not any more.
    assert_eq!(store.store_data(Oid(0), &data(b"b")), b);
    let a2 = store.store_data(Oid(0), &data(b"a"));
    assert_ne!(a2, a);
    // Another compression is other data.
    let other = ObjectData {
        compression: 1,
        ..data(b"b")
    };
    assert_ne!(store.store_data(Oid(0), &other), b);
    assert_eq!(store.rows(), 4);
    // Pruning a row the index does not point to keeps the index.
    store.release_data(a);
    assert_eq!(store.load_data(a), None);
    assert_eq!(store.store_data(Oid(0), &data(b"a")), a2);
    assert_eq!(store.held(), 5);
}

pub fn data_ids_are_allocated_per_partition<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    let first = store.store_data(Oid(1), &bytes(b"p1"));
    assert_eq!(first, 1 << 48);
    assert_eq!(store.store_data(Oid(3), &bytes(b"p1 again")), (1 << 48) + 1);
    assert_eq!(store.store_data(Oid(2), &bytes(b"p0")), 0);
    // Shared across partitions: the existing row.
    assert_eq!(store.store_data(Oid(4), &bytes(b"p1")), first);
    // The id of a pruned last row is given again.
    store.release_data((1 << 48) + 1);
    assert_eq!(store.store_data(Oid(5), &bytes(b"p1 other")), (1 << 48) + 1);
    assert_eq!(store.load_data(first), Some(bytes(b"p1")));
}

pub fn an_aborted_store_leaves_nothing_and_unvoted_data_does_not_survive_a_restart<S: TestStore>(
    mut store: S,
) {
    with_two_partitions(&mut store);
    let id = vote(&mut store, 9, &[(2, Some(b"x"))])[0]
        .record
        .data_id
        .unwrap();
    store.store_pack_order(&order(9, 5));
    store.abort_transaction(Tid(9));
    assert_eq!(store.pack_order(Tid(9)), None);
    store.release_data(id);
    assert_eq!(store.rows(), 0);
    assert!(store.unfinished_transactions().is_empty());

    // Stored, synced, never voted, then a crash: an orphan until opened.
    store.store_data(Oid(2), &bytes(b"y"));
    store.sync();
    let mut store = store.crash();
    assert_eq!(store.rows(), 1);
    assert_eq!(store.held(), 0);
    assert_eq!(store.prune_orphans(), 1);
    assert_eq!(store.rows(), 0);
}

pub fn voted_and_locked_transactions_survive_a_crash_as_unfinished<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    vote(&mut store, 9, &[(3, Some(b"x"))]);
    store.sync();
    store.lock_transaction(Tid(9), Tid(11), false);
    store.sync();
    store.unlock_transaction(Tid(9), Tid(11));
    let mut store = store.crash(); // before the deferred commit of the unlock
    assert_eq!(
        store.unfinished_transactions(),
        vec![(Tid(9), Some(Tid(11)))]
    );
    assert_eq!(store.prune_orphans(), 0); // the temporary record keeps it
    store.unlock_transaction(Tid(9), Tid(11)); // verification validates it
    assert_eq!(store.final_tid(Tid(9)), Some(Tid(11)));
    assert_eq!(store.rows(), 1);
    assert_eq!(data_of(&store, 3).as_deref(), Some(&b"x"[..]));
}

pub fn a_synced_store_survives_a_crash_whole<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    store.set_cluster(Bytes::from_static(b"c"));
    commit(&mut store, 10, &[(2, Some(b"a")), (3, Some(b"b"))]);
    store.store_temporary(Tid(20), &[], Some(&meta(20, &[])));
    store.store_pack_order(&order(20, 10));
    store.add_transaction(Tid(13), &meta(11, &[]), Some(&order(13, 4)));
    store.sync();
    let snapshot = |store: &S| {
        (
            (store.config(), store.partition_table(), store.packed()),
            (transactions(store, 0), transactions(store, 1)),
            (objects(store, 0), objects(store, 1)),
            (data_of(store, 2), data_of(store, 3), store.rows()),
            store.unfinished_transactions(),
            store.pack_order(Tid(20)),
            store.pack_orders(Tid::ZERO, &[0, 1]),
        )
    };
    let before = snapshot(&store);
    // Unsynced: all lost.
    commit(&mut store, 14, &[(2, Some(b"lost"))]);
    store.abort_transaction(Tid(20));
    store.set_nid(Nid(9));
    let store = store.crash();
    assert_eq!(snapshot(&store), before);
}

pub fn undo_history_and_record_data<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    commit(&mut store, 10, &[(2, Some(b"a"))]);
    commit(&mut store, 12, &[(2, Some(b"b"))]);
    commit(&mut store, 14, &[(2, Some(b"c"))]);
    let history = store.undo_history(Oid(2), Tid(12)).unwrap();
    assert_eq!(history.previous, Some(Tid(10)));
    assert_eq!(history.later, vec![(Tid(14), None)]);
    let history = store.undo_history(Oid(2), Tid(10)).unwrap();
    assert_eq!(history.previous, None);
    assert_eq!(history.later, vec![(Tid(12), None), (Tid(14), None)]);
    assert_eq!(store.undo_history(Oid(2), Tid(11)), None);
    assert!(store.record_data(Oid(2), Tid(10)).unwrap().is_some());
    assert_eq!(store.record_data(Oid(2), Tid(11)), None);
    // An undo: a record reusing the data of an older one.
    let id = store.record_data(Oid(2), Tid(10)).unwrap().unwrap();
    store.hold_data(id);
    let undo = TempObject {
        oid: Oid(2),
        record: ObjectRecord {
            data_id: Some(id),
            value_tid: Some(Tid(10)),
        },
    };
    store.store_temporary(Tid(14), &[undo], Some(&meta(14, &[2])));
    store.lock_transaction(Tid(14), Tid(16), false);
    store.unlock_transaction(Tid(14), Tid(16));
    store.release_data(id);
    assert_eq!(
        store.undo_history(Oid(2), Tid(12)).unwrap().later,
        vec![(Tid(14), None), (Tid(16), Some(Tid(10)))]
    );
    match store.object(Oid(2), None, None) {
        ObjectLookup::Found(revision) => {
            assert_eq!(revision.data_serial, Some(Tid(10)));
            assert_eq!(&revision.data.unwrap().data[..], b"a");
        }
        other => panic!("{other:?}"),
    }
}

pub fn object_history_pages_newest_first<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    commit(&mut store, 10, &[(2, Some(b"a"))]);
    commit(&mut store, 12, &[(2, Some(b"bb"))]);
    commit(&mut store, 14, &[(2, None)]);
    assert_eq!(
        store.object_history(Oid(2), 0, 10).unwrap(),
        vec![(Tid(14), 0), (Tid(12), 2), (Tid(10), 1)]
    );
    assert_eq!(
        store.object_history(Oid(2), 1, 5).unwrap(),
        vec![(Tid(12), 2), (Tid(10), 1)]
    );
    assert_eq!(
        store.object_history(Oid(2), 1, 1).unwrap(),
        vec![(Tid(12), 2)]
    );
    assert_eq!(store.object_history(Oid(2), 3, 1), None);
    assert_eq!(store.object_history(Oid(2), 0, 0), None);
    assert_eq!(store.object_history(Oid(4), 0, 10), None);
}

pub fn iteration_over_tids_and_oids<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    commit(&mut store, 10, &[(2, Some(b"a")), (4, Some(b"b"))]);
    commit(&mut store, 12, &[(6, Some(b"c"))]);
    commit(&mut store, 16, &[(4, None)]);
    commit(&mut store, 17, &[(1, Some(b"d"))]);
    assert_eq!(store.tids(0, 10, &[0]), vec![Tid(16), Tid(12), Tid(10)]);
    assert_eq!(store.tids(1, 1, &[0, 1]), vec![Tid(16)]);
    assert_eq!(store.tids(1, 2, &[1, 0]), vec![Tid(16), Tid(12)]);
    assert_eq!(store.tids(0, 2, &[1]), vec![Tid(17)]);
    assert_eq!(store.tids_from(Tid(11), Tid(16), 1, 0), vec![Tid(12)]);
    assert_eq!(
        store.tids_from(Tid(10), Tid(16), 5, 0),
        vec![Tid(10), Tid(12), Tid(16)]
    );
    assert!(store.tids_from(Tid(16), Tid(10), 5, 0).is_empty());
    // As of 12, oids 2, 4, 6 exist; as of 16, oid 4 is deleted.
    assert_eq!(
        store.oids_from(0, 10, Oid::ZERO, Tid(12)),
        (None, vec![Oid(2), Oid(4), Oid(6)])
    );
    assert_eq!(
        store.oids_from(0, 2, Oid::ZERO, Tid(16)),
        (Some(Oid(6)), vec![Oid(2)])
    );
    assert_eq!(store.oids_from(0, 2, Oid(6), Tid(16)), (None, vec![Oid(6)]));
    // As of 11, oid 6 does not exist yet and is not counted.
    assert_eq!(
        store.oids_from(0, 2, Oid::ZERO, Tid(11)),
        (Some(Oid(6)), vec![Oid(2), Oid(4)])
    );
    assert_eq!(store.oids_from(0, 0, Oid::ZERO, Tid(16)), (None, vec![]));
}

pub fn pack_orders_are_signed_and_renamed_at_unlock<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    store.store_temporary(Tid(20), &[], Some(&meta(20, &[])));
    store.store_pack_order(&order(20, 10));
    store.lock_transaction(Tid(20), Tid(22), true);
    assert_eq!(store.pack_order(Tid(20)).unwrap().approved, Some(true));
    store.unlock_transaction(Tid(20), Tid(22));
    assert_eq!(store.pack_order(Tid(20)), None);
    let orders = store.pack_orders(Tid::ZERO, &[0, 1]);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].pack_id, Tid(22));
    assert_eq!(orders[0].approved, Some(true));
    assert_eq!(
        store.sign_pack_orders(&[], &[Tid(22), Tid(30)]),
        vec![Tid(22)]
    );
    assert_eq!(
        store.pack_orders(Tid(22), &[0]).first().unwrap().approved,
        Some(false)
    );
    assert!(store.pack_orders(Tid(23), &[0, 1]).is_empty());
    assert!(store.pack_orders(Tid::ZERO, &[1]).is_empty());
    assert!(store.sign_pack_orders(&[Tid(30)], &[]).is_empty());
}

pub fn pack_orders_of_pending_transactions_are_not_reported<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    store.store_temporary(Tid(20), &[], Some(&meta(20, &[])));
    let partial = PackOrder {
        partial: true,
        oids: Some(vec![Oid(4), Oid(2)]),
        ..order(20, 10)
    };
    store.store_pack_order(&partial);
    assert!(store.pack_orders(Tid::ZERO, &[0, 1]).is_empty());
    // The store still has it (replication, signing).
    assert_eq!(store.pack_order(Tid(20)), Some(partial.clone()));
    assert_eq!(store.sign_pack_orders(&[Tid(20)], &[]), vec![Tid(20)]);
    // An order whose transaction is gone (aborted elsewhere, replicated)
    // is reported.
    store.drop_partitions_temporary(&[0]);
    assert_eq!(store.pack_order(Tid(20)), None);
    store.store_pack_order(&partial);
    assert_eq!(store.pack_orders(Tid::ZERO, &[0]), vec![partial]);
}

pub fn full_pack_keeps_the_state_at_the_pack_point<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    commit(
        &mut store,
        10,
        &[(2, Some(b"a")), (4, Some(b"x")), (6, Some(b"y"))],
    );
    commit(&mut store, 12, &[(2, Some(b"b")), (4, None)]);
    commit(&mut store, 14, &[(2, Some(b"c")), (6, Some(b"z"))]);
    assert_eq!(store.rows(), 6);
    // In steps of one oid.
    assert_eq!(store.pack(0, Tid(12), None, Oid::ZERO, 1), Some(Oid(4)));
    assert_eq!(store.pack(0, Tid(12), None, Oid(4), 1), Some(Oid(6)));
    assert_eq!(store.pack(0, Tid(12), None, Oid(6), 1), None);
    assert_eq!(
        objects(&store, 0),
        vec![
            (Oid(2), Tid(12)),
            (Oid(2), Tid(14)),
            (Oid(6), Tid(10)),
            (Oid(6), Tid(14))
        ]
    );
    // "a" and "x" went with their records.
    assert_eq!(store.rows(), 4);
    assert_eq!(store.object(Oid(4), None, None), ObjectLookup::DoesNotExist);
    assert_eq!(store.undo_history(Oid(2), Tid(12)).unwrap().previous, None);
}

pub fn partial_pack_only_touches_listed_oids_in_chunks<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    for (i, oid) in [2u64, 4, 6].into_iter().enumerate() {
        let t = 10 + 2 * i as u64;
        commit(&mut store, t, &[(oid, Some(b"old"))]);
    }
    commit(
        &mut store,
        20,
        &[(2, Some(b"n2")), (4, Some(b"n4")), (6, Some(b"n6"))],
    );
    // Oid 3 is of the other partition; listed twice, oid 2 counts once.
    let listed = [Oid(6), Oid(2), Oid(3), Oid(2)];
    let next = store.pack(0, Tid(20), Some(&listed), Oid::ZERO, 1);
    assert_eq!(next, Some(Oid(6)));
    assert_eq!(store.pack(0, Tid(20), Some(&listed), Oid(6), 1), None);
    assert_eq!(
        objects(&store, 0),
        vec![
            (Oid(2), Tid(20)),
            (Oid(4), Tid(12)),
            (Oid(4), Tid(20)),
            (Oid(6), Tid(20))
        ]
    );
}

pub fn replication_writes_and_reads_records_by_serial<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    store.add_transaction(Tid(10), &meta(8, &[2, 4]), None);
    store.add_object(Oid(4), Tid(10), Some(&bytes(b"a")), None);
    store.add_object(Oid(2), Tid(10), Some(&bytes(b"b")), None);
    store.add_transaction(Tid(12), &meta(10, &[2]), Some(&order(12, 6)));
    // A back-pointer reuses the data of the record it points to.
    store.add_object(Oid(2), Tid(12), Some(&bytes(b"a")), Some(Tid(10)));
    // ... or stores what was sent along if this store lacks it.
    store.add_object(Oid(4), Tid(12), Some(&bytes(b"c")), Some(Tid(8)));
    store.add_object(Oid(6), Tid(12), None, None);
    assert_eq!(store.held(), 0);
    assert_eq!(store.rows(), 3);
    assert_eq!(data_of(&store, 2).as_deref(), Some(&b"b"[..]));
    assert_eq!(data_of(&store, 4).as_deref(), Some(&b"c"[..]));
    assert_eq!(
        store.replication_objects(0, Tid(10), Tid(12), Oid(4), 10),
        vec![
            (Tid(10), Oid(4)),
            (Tid(12), Oid(2)),
            (Tid(12), Oid(4)),
            (Tid(12), Oid(6))
        ]
    );
    assert_eq!(
        store.replication_objects(0, Tid(10), Tid(12), Oid(3), 2),
        vec![(Tid(10), Oid(4)), (Tid(12), Oid(2))]
    );
    assert_eq!(
        store.replication_objects(0, Tid(11), Tid(11), Oid::ZERO, 10),
        vec![]
    );
    assert!(store
        .replication_objects(0, Tid(12), Tid(10), Oid::ZERO, 10)
        .is_empty());
    assert_eq!(store.pack_order(Tid(12)), Some(order(12, 6)));
    // Deleting what a replica does not have.
    store.delete_transaction(Tid(12));
    assert_eq!(store.transaction(Tid(12)), None);
    assert_eq!(store.pack_order(Tid(12)), None);
    store.delete_object(Oid(4), Tid(12));
    store.delete_object(Oid(4), Tid(13));
    assert_eq!(data_of(&store, 4).as_deref(), Some(&b"a"[..]));
    assert_eq!(store.rows(), 2);
}

pub fn replication_progress_and_packs_only_move_one_way<S: TestStore>(mut store: S) {
    use CellState::*;
    store.set_nid(Nid(1));
    store.reset_partition_table(
        Nid(1),
        &table(
            1,
            vec![vec![(1, OutOfDate), (2, UpToDate)], vec![(2, OutOfDate)]],
        ),
        Tid(5),
    );
    assert_eq!(store.replicated_up_to(0), Some(Tid::ZERO));
    assert_eq!(store.replicated_up_to(1), None);
    store.set_replicated_up_to(0, Tid(30));
    store.set_replicated_up_to(0, Tid(20));
    store.set_replicated_up_to(1, Tid(20));
    assert_eq!(store.replicated_up_to(0), Some(Tid(30)));
    assert_eq!(store.packed(), vec![(0, Tid(5))]);
    store.lower_packed(0, Tid(7));
    assert_eq!(store.packed(), vec![(0, Tid(5))]);
    store.lower_packed(0, Tid(3));
    assert_eq!(store.packed(), vec![(0, Tid(3))]);
    store.set_packed(0, Tid(9));
    store.set_packed(1, Tid(9));
    assert_eq!(store.packed(), vec![(0, Tid(9))]);
    // Up to date: no "replicated up to" any more.
    store.change_partition_table(
        Nid(1),
        Ptid(2),
        0,
        &[CellChange {
            offset: 0,
            nid: Nid(1),
            state: UpToDate,
        }],
        Tid::ZERO,
    );
    assert_eq!(store.replicated_up_to(0), None);
    store.set_replicated_up_to(0, Tid(40));
    assert_eq!(store.replicated_up_to(0), None);
}

pub fn dropping_partitions_drops_their_temporary_records<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    let temp = vote(&mut store, 9, &[(2, Some(b"a")), (3, Some(b"b"))]);
    let (a, b) = (
        temp[0].record.data_id.unwrap(),
        temp[1].record.data_id.unwrap(),
    );
    store.store_pack_order(&order(9, 1));
    store.release_data(a);
    store.release_data(b);
    store.drop_partitions_temporary(&[0]);
    // Oid 2's record went (and its data); the TTID is of partition 1: its
    // metadata stays, with oid 3's record.
    assert_eq!(store.unfinished_transactions(), vec![(Tid(9), None)]);
    assert_eq!(store.load_data(a), None);
    assert_eq!(store.load_data(b), Some(bytes(b"b")));
    assert!(store.pack_order(Tid(9)).is_some());
    store.drop_partitions_temporary(&[1]);
    assert!(store.unfinished_transactions().is_empty());
    assert_eq!(store.pack_order(Tid(9)), None);
    assert_eq!(store.rows(), 0);
}

pub fn drop_unfinished_forgets_every_pending_transaction<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    let a = store.store_data(Oid(2), &bytes(b"a"));
    // Records without metadata (another storage has it), and metadata
    // without records.
    store.store_temporary(
        Tid(7),
        &[TempObject {
            oid: Oid(2),
            record: record(Some(a)),
        }],
        None,
    );
    store.store_temporary(Tid(8), &[], Some(&meta(8, &[])));
    store.lock_transaction(Tid(8), Tid(10), false);
    store.release_data(a);
    assert_eq!(
        store.unfinished_transactions(),
        vec![(Tid(7), None), (Tid(8), Some(Tid(10)))]
    );
    store.drop_unfinished();
    assert!(store.unfinished_transactions().is_empty());
    assert_eq!(store.rows(), 0);
}

pub fn erase_deletes_everything<S: TestStore>(mut store: S) {
    with_two_partitions(&mut store);
    store.set_cluster(Bytes::from_static(b"c"));
    commit(&mut store, 10, &[(2, Some(b"a"))]);
    store.store_data(Oid(3), &bytes(b"held"));
    store.store_temporary(Tid(20), &[], Some(&meta(20, &[])));
    store.store_pack_order(&order(20, 10));
    store.erase();
    let check = |store: &S| {
        assert_eq!(store.config(), StoreConfig::default());
        assert_eq!(store.partition_table(), None);
        assert_eq!(store.rows(), 0);
        assert_eq!(store.held(), 0);
        assert!(store.unfinished_transactions().is_empty());
        assert_eq!(store.pack_order(Tid(20)), None);
        assert_eq!(store.first_tid(), Tid::MAX);
        assert_eq!(store.last_serial(Oid(2)), None);
    };
    check(&store);
    store.sync();
    let store = store.crash();
    check(&store);
}

pub fn first_tid_is_the_smallest_tid_anywhere<S: TestStore>(mut store: S) {
    use CellState::*;
    assert_eq!(store.first_tid(), Tid::MAX);
    with_two_partitions(&mut store);
    store.add_transaction(Tid(21), &meta(19, &[]), None);
    store.add_transaction(Tid(30), &meta(28, &[]), None);
    assert_eq!(store.first_tid(), Tid(21));
    store.add_object(Oid(3), Tid(15), None, None);
    assert_eq!(store.first_tid(), Tid(15));
    // Even in a partition the table no longer has.
    store.add_object(Oid(2), Tid(4), None, None);
    store.reset_partition_table(Nid(1), &table(2, vec![vec![(1, UpToDate)]]), Tid::ZERO);
    assert_eq!(store.first_tid(), Tid(4));
    assert_eq!(store.last_ids(), (Some(Tid(30)), Some(Oid(2))));
}
