use super::*;
use crate::data;

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

fn meta(ttid: u64, oids: &[u64]) -> TransactionMeta {
    TransactionMeta {
        ttid: Tid(ttid),
        user: Bytes::new(),
        description: Bytes::new(),
        extension: Bytes::new(),
        packed: false,
        oids: oids.iter().map(|&o| Oid(o)).collect(),
    }
}

/// A store of node 1 holding both partitions of a 2-partition table.
fn store_with_two_partitions() -> MemoryStore {
    use CellState::*;
    let mut store = MemoryStore::new();
    store.set_nid(Nid(1));
    store.reset_partition_table(
        Nid(1),
        &table(1, vec![vec![(1, UpToDate)], vec![(1, UpToDate)]]),
        Tid::ZERO,
    );
    store.sync();
    store
}

/// Commits `oid → bytes` as one transaction (vote, lock, unlock) under
/// `tid`, with a TTID in the same partition (as the master guarantees).
fn commit(store: &mut MemoryStore, tid: u64, objects: &[(u64, Option<&'static [u8]>)]) {
    let ttid = tid - 2;
    let mut temp = Vec::new();
    for &(oid, bytes) in objects {
        let data_id =
            bytes.map(|b| store.store_data(Oid(oid), &data::pack(Bytes::from_static(b), false)));
        temp.push(TempObject {
            oid: Oid(oid),
            record: ObjectRecord {
                data_id,
                value_tid: None,
            },
        });
    }
    let oids: Vec<u64> = objects.iter().map(|(o, _)| *o).collect();
    store.store_temporary(Tid(ttid), &temp, Some(&meta(ttid, &oids)));
    store.lock_transaction(Tid(ttid), Tid(tid), false);
    store.unlock_transaction(Tid(ttid), Tid(tid));
    for object in temp {
        if let Some(id) = object.record.data_id {
            store.release_data(id);
        }
    }
}

#[test]
fn a_crash_loses_exactly_what_was_not_synced() {
    let mut store = MemoryStore::new();
    store.set_nid(Nid(1));
    store.sync();
    store.set_truncate_tid(Some(Tid(5)));
    assert_eq!(store.config().truncate_tid, Some(Tid(5)));
    store.crash();
    assert_eq!(store.config().nid, Some(Nid(1)));
    assert_eq!(store.config().truncate_tid, None);
}

#[test]
fn own_cells_becoming_out_of_date_keep_what_they_have() {
    use CellState::*;
    let mut store = MemoryStore::new();
    store.set_nid(Nid(1));
    store.reset_partition_table(
        Nid(1),
        &table(1, vec![vec![(1, UpToDate)], vec![(1, UpToDate)]]),
        Tid::ZERO,
    );
    store.insert_transaction(0, Tid(40), meta(39, &[]));
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
    // Discarded: the partition's data goes.
    store.change_partition_table(Nid(1), Ptid(4), 0, &[change(0, Discarded)], Tid::ZERO);
    assert!(store.transactions(0).is_empty());
    assert_eq!(store.partition_table().unwrap().ptid, Ptid(4));
}

#[test]
fn new_own_cells_get_a_pack_id_from_their_state() {
    use CellState::*;
    let mut store = MemoryStore::new();
    store.set_nid(Nid(1));
    store.reset_partition_table(
        Nid(1),
        &table(1, vec![vec![(1, UpToDate)], vec![(2, UpToDate)]]),
        Tid::ZERO,
    );
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

#[test]
fn truncation_and_last_ids_only_see_readable_partitions() {
    use CellState::*;
    let mut store = MemoryStore::new();
    store.set_nid(Nid(1));
    store.reset_partition_table(
        Nid(1),
        &table(1, vec![vec![(1, UpToDate)], vec![(1, OutOfDate)]]),
        Tid::ZERO,
    );
    // tid ≡ ttid (mod np), as the master guarantees.
    store.insert_transaction(0, Tid(10), meta(8, &[]));
    store.insert_transaction(0, Tid(20), meta(18, &[]));
    store.insert_transaction(1, Tid(31), meta(29, &[]));
    assert_eq!(store.last_ids(), (Some(Tid(20)), None));
    assert_eq!(store.first_tid(), Tid(10));
    assert_eq!(store.final_tid(Tid(18)), Some(Tid(20)));
    assert_eq!(store.final_tid(Tid(19)), None);
    store.set_truncate_tid(Some(Tid(15)));
    store.truncate();
    assert_eq!(store.last_ids(), (Some(Tid(10)), None));
    assert_eq!(store.config().truncate_tid, None);
}

#[test]
fn commit_steps_move_records_and_keep_data_referenced() {
    let mut store = store_with_two_partitions();
    commit(&mut store, 10, &[(2, Some(b"a")), (3, Some(b"b"))]);
    assert_eq!(store.transactions(0)[0].0, Tid(10));
    assert_eq!(store.objects(0).len(), 1);
    assert_eq!(store.objects(1).len(), 1);
    assert_eq!(store.data_rows(), 2);
    assert_eq!(store.holds(), 0);
    assert!(store.unfinished_transactions().is_empty());
    match store.object(Oid(2), None, None) {
        ObjectLookup::Found(revision) => {
            assert_eq!(revision.serial, Tid(10));
            assert_eq!(revision.next_serial, None);
            assert_eq!(&revision.data.unwrap().data[..], b"a");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.object(Oid(2), None, Some(Tid(10))),
        ObjectLookup::NotFound
    );
    assert_eq!(store.object(Oid(4), None, None), ObjectLookup::DoesNotExist);
}

#[test]
fn identical_data_is_stored_once_and_pruned_when_unreferenced() {
    let mut store = store_with_two_partitions();
    commit(&mut store, 10, &[(2, Some(b"same")), (3, Some(b"same"))]);
    assert_eq!(store.data_rows(), 1);
    // Overwriting one object keeps the row for the other; deleting the
    // other's history (pack) frees it.
    commit(&mut store, 12, &[(2, Some(b"new"))]);
    assert_eq!(store.data_rows(), 2);
    assert_eq!(store.pack(0, Tid(12), None, Oid::ZERO, 100), None);
    assert_eq!(store.data_rows(), 2); // oid 3 still uses "same"
    commit(&mut store, 14, &[(3, None)]); // deletion
    assert_eq!(store.pack(1, Tid(14), None, Oid::ZERO, 100), None);
    assert_eq!(store.data_rows(), 1);
    assert_eq!(store.object(Oid(3), None, None), ObjectLookup::DoesNotExist);
}

#[test]
fn an_aborted_store_leaves_nothing_and_unvoted_data_does_not_survive_a_restart() {
    let mut store = store_with_two_partitions();
    let id = store.store_data(Oid(2), &data::pack(Bytes::from_static(b"x"), false));
    store.store_temporary(
        Tid(9),
        &[TempObject {
            oid: Oid(2),
            record: ObjectRecord {
                data_id: Some(id),
                value_tid: None,
            },
        }],
        Some(&meta(9, &[2])),
    );
    store.abort_transaction(Tid(9));
    store.release_data(id);
    assert_eq!(store.data_rows(), 0);
    assert!(store.unfinished_transactions().is_empty());

    // Stored, synced, never voted, then a crash: an orphan until opened.
    store.store_data(Oid(2), &data::pack(Bytes::from_static(b"y"), false));
    store.sync();
    store.crash();
    assert_eq!(store.data_rows(), 1);
    assert_eq!(store.prune_orphans(), 1);
    assert_eq!(store.data_rows(), 0);
}

#[test]
fn voted_and_locked_transactions_survive_a_crash_as_unfinished() {
    let mut store = store_with_two_partitions();
    let id = store.store_data(Oid(3), &data::pack(Bytes::from_static(b"x"), false));
    let objects = [TempObject {
        oid: Oid(3),
        record: ObjectRecord {
            data_id: Some(id),
            value_tid: None,
        },
    }];
    store.store_temporary(Tid(9), &objects, Some(&meta(9, &[3])));
    store.sync();
    store.lock_transaction(Tid(9), Tid(11), false);
    store.sync();
    store.unlock_transaction(Tid(9), Tid(11));
    store.crash(); // before the deferred commit of the unlock
    assert_eq!(
        store.unfinished_transactions(),
        vec![(Tid(9), Some(Tid(11)))]
    );
    assert_eq!(store.prune_orphans(), 0); // the temporary record keeps it
    store.unlock_transaction(Tid(9), Tid(11)); // verification validates it
    assert_eq!(store.final_tid(Tid(9)), Some(Tid(11)));
    assert_eq!(store.data_rows(), 1);
}

#[test]
fn undo_history_and_record_data() {
    let mut store = store_with_two_partitions();
    commit(&mut store, 10, &[(2, Some(b"a"))]);
    commit(&mut store, 12, &[(2, Some(b"b"))]);
    commit(&mut store, 14, &[(2, Some(b"c"))]);
    let history = store.undo_history(Oid(2), Tid(12)).unwrap();
    assert_eq!(history.previous, Some(Tid(10)));
    assert_eq!(history.later, vec![(Tid(14), None)]);
    assert_eq!(store.undo_history(Oid(2), Tid(11)), None);
    assert!(store.record_data(Oid(2), Tid(10)).unwrap().is_some());
    assert_eq!(store.record_data(Oid(2), Tid(11)), None);
    assert_eq!(
        store.object_history(Oid(2), 1, 5).unwrap(),
        vec![(Tid(12), 1), (Tid(10), 1)]
    );
}

#[test]
fn iteration_over_tids_and_oids() {
    let mut store = store_with_two_partitions();
    commit(&mut store, 10, &[(2, Some(b"a")), (4, Some(b"b"))]);
    commit(&mut store, 12, &[(6, Some(b"c"))]);
    commit(&mut store, 16, &[(4, None)]);
    assert_eq!(store.tids(0, 10, &[0]), vec![Tid(16), Tid(12), Tid(10)]);
    assert_eq!(store.tids(1, 1, &[0, 1]), vec![Tid(12)]);
    assert_eq!(store.tids_from(Tid(11), Tid(16), 1, 0), vec![Tid(12)]);
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
}

#[test]
fn pack_orders_are_signed_and_renamed_at_unlock() {
    let mut store = store_with_two_partitions();
    let order = PackOrder {
        pack_id: Tid(20),
        approved: None,
        partial: false,
        oids: None,
        pack_tid: Tid(10),
    };
    store.store_temporary(Tid(20), &[], Some(&meta(20, &[])));
    store.store_pack_order(&order);
    store.lock_transaction(Tid(20), Tid(22), true);
    store.unlock_transaction(Tid(20), Tid(22));
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
}

#[test]
fn partial_pack_only_touches_listed_oids_in_chunks() {
    let mut store = store_with_two_partitions();
    for (i, oid) in [2u64, 4, 6].into_iter().enumerate() {
        let t = 10 + 2 * i as u64;
        commit(&mut store, t, &[(oid, Some(b"old"))]);
    }
    commit(
        &mut store,
        20,
        &[(2, Some(b"n2")), (4, Some(b"n4")), (6, Some(b"n6"))],
    );
    let listed = [Oid(6), Oid(2)];
    let next = store.pack(0, Tid(20), Some(&listed), Oid::ZERO, 1);
    assert_eq!(next, Some(Oid(6)));
    assert_eq!(store.pack(0, Tid(20), Some(&listed), Oid(6), 1), None);
    let remaining: Vec<(Oid, Tid)> = store
        .objects(0)
        .into_iter()
        .map(|(o, t, _, _)| (o, t))
        .collect();
    assert_eq!(
        remaining,
        vec![
            (Oid(2), Tid(20)),
            (Oid(4), Tid(12)),
            (Oid(4), Tid(20)),
            (Oid(6), Tid(20))
        ]
    );
}
