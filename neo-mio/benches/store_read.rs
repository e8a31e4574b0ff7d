//! The storage's read path: what a load costs inside a storage node, on
//! LMDB and on the in-memory store, at 10,000 and 100,000 objects (the
//! cost should grow like LMDB's B-tree depth, not with the database).
//!
//! `cargo bench -p neo-mio --bench store_read`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use neo_core::data;
use neo_core::storage::memory::MemoryStore;
use neo_core::storage::store::{
    ObjectLookup, ObjectRecord, Store, StoredTable, TempObject, TransactionMeta,
};
use neo_mio::lmdb::LmdbStore;
use neo_proto::{CellInfo, CellState, Nid, Oid, Ptid, Tid};

const OBJECTS_PER_TRANSACTION: u64 = 100;

/// Node 1 holding the only partition; `objects` objects of 100 bytes in
/// transactions of 100, each object written twice (two revisions).
fn fill<S: Store>(store: &mut S, objects: u64) {
    store.set_nid(Nid(1));
    let table = StoredTable {
        ptid: Ptid(1),
        num_replicas: 0,
        rows: vec![vec![CellInfo {
            nid: Nid(1),
            state: CellState::UpToDate,
        }]
        .into()],
    };
    store.reset_partition_table(Nid(1), &table, Tid::ZERO);
    let mut tid = 1000;
    for round in 0..2u64 {
        for first in (0..objects).step_by(OBJECTS_PER_TRANSACTION as usize) {
            tid += 10;
            let ttid = Tid(tid - 2);
            let oids: Vec<Oid> = (first..first + OBJECTS_PER_TRANSACTION).map(Oid).collect();
            let temp: Vec<TempObject> = oids
                .iter()
                .map(|&oid| {
                    let raw = format!("{oid} revision {round} {:.<80}", "");
                    let data_id = store.store_data(oid, &data::pack(Bytes::from(raw), false));
                    TempObject {
                        oid,
                        record: ObjectRecord {
                            data_id: Some(data_id),
                            value_tid: None,
                        },
                    }
                })
                .collect();
            let meta = TransactionMeta {
                ttid,
                user: Bytes::new(),
                description: Bytes::new(),
                extension: Bytes::new(),
                packed: false,
                oids: oids.clone(),
            };
            store.store_temporary(ttid, &temp, Some(&meta));
            store.lock_transaction(ttid, Tid(tid), false);
            store.unlock_transaction(ttid, Tid(tid));
            for object in temp {
                store.release_data(object.record.data_id.unwrap());
            }
        }
        store.sync();
    }
}

fn load_current<S: Store>(store: &S, oid: Oid) -> usize {
    match store.object(oid, None, None) {
        ObjectLookup::Found(revision) => revision.data.map_or(0, |d| d.data.len()),
        _ => panic!("{oid} not found"),
    }
}

fn bench_store<S: Store>(c: &mut Criterion, name: &str, mut open: impl FnMut() -> S) {
    let mut group = c.benchmark_group(format!("{name} load"));
    for objects in [10_000u64, 100_000] {
        let mut store = open();
        fill(&mut store, objects);
        let mut next = 0u64;
        group.bench_with_input(BenchmarkId::new("current", objects), &objects, |b, &n| {
            b.iter(|| {
                // A stride through the keys: no two loads on one page.
                next = (next + 7919) % n;
                black_box(load_current(&store, Oid(next)))
            })
        });
        group.bench_with_input(BenchmarkId::new("before", objects), &objects, |b, &n| {
            b.iter(|| {
                next = (next + 7919) % n;
                // The first revision: before the second one's TID.
                black_box(store.object(Oid(next), None, Some(Tid(1000 + 10 * (n / 100) + 5))))
            })
        });
    }
    group.finish();
}

fn store_read(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("neo-bench-store-read-{}", std::process::id()));
    let mut opened = 0;
    bench_store(c, "LMDB", || {
        opened += 1;
        let path = dir.join(opened.to_string());
        LmdbStore::open(&path).expect("open LMDB")
    });
    let _ = std::fs::remove_dir_all(&dir);
    bench_store(c, "memory", MemoryStore::new);
}

criterion_group!(benches, store_read);
criterion_main!(benches);
