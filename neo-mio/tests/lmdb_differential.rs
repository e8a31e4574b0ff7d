//! Differential test: pseudo-random sequences of [`Store`] operations run
//! on `MemoryStore` (the reference) and on `LmdbStore`, comparing the
//! result of every call, random reads after every operation and
//! everything readable at syncs and crashes. A crash is
//! `MemoryStore::crash` on one side and closing without sync then
//! reopening on the other. The LMDB map starts tiny so that it grows, in
//! and between transactions, along the way.

mod common;

use std::collections::VecDeque;
use std::fmt::Debug;

use bytes::Bytes;
use common::TempDir;
use neo_core::data;
use neo_core::storage::memory::MemoryStore;
use neo_core::storage::store::{
    DataId, ObjectRecord, Store, StoredTable, TempObject, TransactionMeta,
};
use neo_mio::lmdb::LmdbStore;
use neo_proto::{
    CellChange, CellInfo, CellState, Checksum, Nid, ObjectData, Oid, PackOrder, Ptid, Tid,
};

const OIDS: u64 = 12;
const MAX_PARTITIONS: u32 = 4;
const MAP_SIZE: usize = 128 << 10;

#[test]
fn lmdb_store_behaves_as_the_memory_store() {
    let profile = Profile {
        blob_sizes: &[1000, 4000, 20_000, 100_000],
        syncs: 70,
        crashes: 20,
    };
    for seed in 1..=6 {
        Run::new(seed, profile).go(2500);
    }
}

/// With large data, rare syncs and frequent crashes (reopening with a map
/// fitted to what was synced), transactions often outgrow the map: LMDB
/// fails them with MAP_FULL, and the store must rebuild them (deletions
/// and erasures included) unseen.
#[test]
fn lmdb_store_outgrowing_its_map_behaves_as_the_memory_store() {
    let profile = Profile {
        blob_sizes: &[100_000, 300_000, 600_000],
        syncs: 5,
        crashes: 15,
    };
    for seed in 101..=103 {
        Run::new(seed, profile).go(800);
    }
}

/// What a run does.
#[derive(Clone, Copy)]
struct Profile {
    /// Sizes of the large data.
    blob_sizes: &'static [usize],
    /// Per mille of operations that are syncs, crashes.
    syncs: u64,
    crashes: u64,
}

/// Knuth's MMIX linear congruential generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

struct Run {
    seed: u64,
    rng: Rng,
    profile: Profile,
    memory: MemoryStore,
    lmdb: Option<LmdbStore>,
    dir: TempDir,
    /// Holds this test took and has not released (one entry per hold).
    held: Vec<DataId>,
    /// Last TID handed out to a commit.
    last_tid: u64,
    ptid: u64,
    step: usize,
    /// The last operations, for failure messages.
    log: VecDeque<String>,
}

impl Run {
    fn new(seed: u64, profile: Profile) -> Run {
        let dir = TempDir::new(&format!("differential-{seed}"));
        let lmdb = LmdbStore::open_with(dir.path(), MAP_SIZE).unwrap();
        Run {
            seed,
            rng: Rng(seed),
            profile,
            memory: MemoryStore::new(),
            lmdb: Some(lmdb),
            dir,
            held: Vec::new(),
            last_tid: 10,
            ptid: 0,
            step: 0,
            log: VecDeque::new(),
        }
    }

    fn lmdb(&self) -> &LmdbStore {
        self.lmdb.as_ref().expect("open")
    }

    fn go(mut self, steps: usize) {
        self.apply("set_nid(1)", |s| s.set_nid(Nid(1)));
        self.reset_table();
        for step in 0..steps {
            self.step = step;
            self.operation();
            for _ in 0..3 {
                self.random_read();
            }
            if step % 100 == 0 {
                self.compare_everything();
            }
        }
        self.sync();
        self.crash();
        assert!(self.lmdb().map_size() > MAP_SIZE, "the map never grew");
    }

    // ------------------------------------------------------------ harness

    fn fail(&self, what: &str, memory: &dyn Debug, lmdb: &dyn Debug) -> ! {
        let log: Vec<&String> = self.log.iter().collect();
        panic!(
            "seed {} step {}: {what}\n  memory: {memory:?}\n  lmdb:   {lmdb:?}\nlast operations:\n{log:#?}",
            self.seed, self.step
        )
    }

    /// Runs a mutation on both stores; their results must agree.
    fn apply<T: PartialEq + Debug>(
        &mut self,
        what: impl Into<String>,
        mut f: impl FnMut(&mut dyn Store) -> T,
    ) -> T {
        let what = what.into();
        self.log.push_back(what.clone());
        if self.log.len() > 40 {
            self.log.pop_front();
        }
        let a = f(&mut self.memory);
        let b = f(self.lmdb.as_mut().expect("open"));
        if a != b {
            self.fail(&what, &a, &b);
        }
        a
    }

    /// A read on both stores; the results must agree.
    fn same<T: PartialEq + Debug>(&self, what: &str, f: impl Fn(&dyn Store) -> T) -> T {
        let a = f(&self.memory);
        let b = f(self.lmdb());
        if a != b {
            self.fail(what, &a, &b);
        }
        a
    }

    fn sync(&mut self) {
        self.apply("sync", |s| s.sync());
        self.compare_everything();
    }

    /// Loses the unsynced writes on both sides (LMDB: closed without a
    /// sync and reopened).
    fn crash(&mut self) {
        self.log.push_back("crash".into());
        self.memory.crash();
        drop(self.lmdb.take());
        self.lmdb = Some(LmdbStore::open_with(self.dir.path(), MAP_SIZE).unwrap());
        self.held.clear();
        self.compare_everything();
        // As the node does when it starts.
        self.apply("prune_orphans", |s| s.prune_orphans());
    }

    // ------------------------------------------------------------ values

    fn np(&self) -> u32 {
        self.memory
            .partition_table()
            .map_or(0, |t| t.rows.len() as u32)
    }

    fn oid(&mut self) -> Oid {
        Oid(self.rng.below(OIDS))
    }

    /// Any TID up to a bit beyond the last one committed.
    fn tid(&mut self) -> Tid {
        Tid(self.rng.below(self.last_tid + 6))
    }

    fn partition(&mut self) -> u32 {
        self.rng.below(MAX_PARTITIONS as u64 + 1) as u32
    }

    fn partitions(&mut self) -> Vec<u32> {
        (0..self.rng.below(4)).map(|_| self.partition()).collect()
    }

    /// Data from a small pool: identical bytes are shared, some rows have
    /// the same checksum with different bytes, some are large (the map
    /// grows).
    fn data(&mut self) -> ObjectData {
        match self.rng.below(10) {
            0..=4 => {
                let bytes = self.rng.pick(&[&b"a"[..], b"b", b"abc", b"", b"zz"]);
                data::pack(Bytes::from_static(bytes), false)
            }
            5 | 6 => {
                let n = self.rng.below(5) as u8;
                let len = self.rng.pick(self.profile.blob_sizes);
                data::pack(Bytes::from(vec![n; len]), self.rng.chance(30))
            }
            n => ObjectData {
                compression: (n == 9) as u32,
                checksum: Checksum([9; 20]),
                data: Bytes::from_static(self.rng.pick(&[&b"x"[..], b"y"])),
            },
        }
    }

    /// A data id worth using: held, existing, or whatever.
    fn data_id(&mut self) -> DataId {
        if !self.held.is_empty() && self.rng.chance(70) {
            return self.rng.pick(&self.held);
        }
        let existing = self.records();
        if !existing.is_empty() && self.rng.chance(80) {
            let (oid, tid) = self.rng.pick(&existing);
            if let Some(Some(id)) = self.memory.record_data(oid, tid) {
                return id;
            }
        }
        ((self.partition() as u64) << 48) + self.rng.below(6)
    }

    /// Committed records of every partition: `(oid, serial)`.
    fn records(&self) -> Vec<(Oid, Tid)> {
        (0..self.np())
            .flat_map(|p| {
                self.memory
                    .replication_objects(p, Tid::ZERO, Tid::INVALID, Oid::ZERO, u32::MAX)
            })
            .map(|(tid, oid)| (oid, tid))
            .collect()
    }

    fn committed_tids(&self) -> Vec<Tid> {
        (0..MAX_PARTITIONS + 1)
            .flat_map(|p| self.memory.tids_from(Tid::ZERO, Tid::INVALID, u32::MAX, p))
            .collect()
    }

    /// A TTID of an unfinished transaction, or any TID.
    fn ttid(&mut self) -> Tid {
        let unfinished = self.memory.unfinished_transactions();
        if !unfinished.is_empty() && self.rng.chance(80) {
            self.rng.pick(&unfinished).0
        } else {
            self.tid()
        }
    }

    fn meta(&mut self, ttid: Tid, oids: &[Oid]) -> TransactionMeta {
        TransactionMeta {
            ttid,
            user: Bytes::from_static(self.rng.pick(&[&b""[..], b"user"])),
            description: Bytes::from_static(self.rng.pick(&[&b""[..], b"desc"])),
            extension: Bytes::new(),
            packed: self.rng.chance(10),
            oids: oids.to_vec(),
        }
    }

    fn pack_order(&mut self, pack_id: Tid) -> PackOrder {
        let partial = self.rng.chance(40);
        PackOrder {
            pack_id,
            approved: self.rng.pick(&[None, None, Some(true), Some(false)]),
            partial,
            oids: partial.then(|| (0..self.rng.below(4)).map(|_| self.oid()).collect()),
            pack_tid: self.tid(),
        }
    }

    fn record(&mut self) -> ObjectRecord {
        ObjectRecord {
            data_id: (!self.rng.chance(20)).then(|| self.data_id()),
            value_tid: self.rng.chance(15).then(|| self.tid()),
        }
    }

    // ------------------------------------------------------------ operations

    fn operation(&mut self) {
        let roll = self.rng.below(1000);
        if roll < self.profile.syncs {
            return self.sync();
        }
        if roll < self.profile.syncs + self.profile.crashes {
            return self.crash();
        }
        match self.rng.below(80) {
            0..=19 => self.commit(),
            20..=24 => {
                let (oid, data) = (self.oid(), self.data());
                let id = self.apply(format!("store_data({oid:?}, {data:?})"), |s| {
                    s.store_data(oid, &data)
                });
                self.held.push(id);
            }
            25..=26 => {
                let id = self.data_id();
                self.apply(format!("hold_data({id})"), |s| s.hold_data(id));
                self.held.push(id);
            }
            27..=30 => {
                let id = if !self.held.is_empty() && self.rng.chance(90) {
                    let i = self.rng.below(self.held.len() as u64) as usize;
                    self.held.swap_remove(i)
                } else {
                    self.data_id() // maybe not held: nothing happens
                };
                self.apply(format!("release_data({id})"), |s| s.release_data(id));
            }
            31..=34 => {
                let ttid = self.ttid();
                let objects: Vec<TempObject> = (0..self.rng.below(4))
                    .map(|_| TempObject {
                        oid: self.oid(),
                        record: self.record(),
                    })
                    .collect();
                let oids: Vec<Oid> = objects.iter().map(|o| o.oid).collect();
                let meta = self.rng.chance(70).then(|| self.meta(ttid, &oids));
                self.apply(
                    format!("store_temporary({ttid:?}, {objects:?}, {meta:?})"),
                    |s| s.store_temporary(ttid, &objects, meta.as_ref()),
                );
            }
            35..=36 => {
                let id = self.ttid();
                let order = self.pack_order(id);
                self.apply(format!("store_pack_order({order:?})"), |s| {
                    s.store_pack_order(&order)
                });
            }
            37..=39 => {
                let (ttid, tid, approve) = (self.ttid(), self.tid(), self.rng.chance(50));
                self.apply(format!("lock({ttid:?}, {tid:?}, {approve})"), |s| {
                    s.lock_transaction(ttid, tid, approve)
                });
            }
            40..=42 => {
                let ttid = self.ttid();
                let locked = self
                    .memory
                    .unfinished_transactions()
                    .into_iter()
                    .find(|(t, _)| *t == ttid)
                    .and_then(|(_, tid)| tid);
                let tid = match locked {
                    Some(tid) if self.rng.chance(90) => tid,
                    _ => self.tid(),
                };
                self.apply(format!("unlock({ttid:?}, {tid:?})"), |s| {
                    s.unlock_transaction(ttid, tid)
                });
            }
            43..=44 => {
                let ttid = self.ttid();
                self.apply(format!("abort({ttid:?})"), |s| s.abort_transaction(ttid));
            }
            45 => self.apply("drop_unfinished", |s| s.drop_unfinished()),
            46..=47 => {
                let ids: Vec<Tid> = (0..MAX_PARTITIONS + 1)
                    .flat_map(|p| self.memory.pack_orders(Tid::ZERO, &[p]))
                    .map(|o| o.pack_id)
                    .collect();
                let pick = |rng: &mut Rng| -> Vec<Tid> {
                    (0..rng.below(3))
                        .map(|_| {
                            if ids.is_empty() || rng.chance(30) {
                                Tid(rng.below(60))
                            } else {
                                rng.pick(&ids)
                            }
                        })
                        .collect()
                };
                let approved = pick(&mut self.rng);
                let rejected = pick(&mut self.rng);
                self.apply(format!("sign({approved:?}, {rejected:?})"), |s| {
                    s.sign_pack_orders(&approved, &rejected)
                });
            }
            48 => {
                let (p, tid) = (self.partition(), self.tid());
                self.apply(format!("set_packed({p}, {tid:?})"), |s| {
                    s.set_packed(p, tid)
                });
            }
            49 => {
                let (p, tid) = (self.partition(), self.tid());
                self.apply(format!("lower_packed({p}, {tid:?})"), |s| {
                    s.lower_packed(p, tid)
                });
            }
            50..=51 => {
                let (p, tid) = (self.partition(), self.tid());
                self.apply(format!("set_replicated_up_to({p}, {tid:?})"), |s| {
                    s.set_replicated_up_to(p, tid)
                });
            }
            52..=55 => {
                let (p, pack_tid, from) = (self.partition(), self.tid(), self.oid());
                let from = if self.rng.chance(50) { Oid::ZERO } else { from };
                let oids: Option<Vec<Oid>> = self
                    .rng
                    .chance(40)
                    .then(|| (0..self.rng.below(5)).map(|_| self.oid()).collect());
                let limit = self.rng.below(4) as usize;
                self.apply(
                    format!("pack({p}, {pack_tid:?}, {oids:?}, {from:?}, {limit})"),
                    |s| s.pack(p, pack_tid, oids.as_deref(), from, limit),
                );
            }
            56..=58 => {
                let tid = self.tid();
                let oids: Vec<Oid> = (0..self.rng.below(3)).map(|_| self.oid()).collect();
                let meta = self.meta(Tid(tid.0.saturating_sub(2)), &oids);
                let pack = self.rng.chance(20).then(|| self.pack_order(tid));
                self.apply(
                    format!("add_transaction({tid:?}, {meta:?}, {pack:?})"),
                    |s| s.add_transaction(tid, &meta, pack.as_ref()),
                );
            }
            59..=63 => {
                let (oid, serial) = (self.oid(), self.tid());
                let data = self.rng.chance(80).then(|| self.data());
                let data_serial = if self.rng.chance(30) {
                    let existing = self.records();
                    match existing.iter().find(|(o, _)| *o == oid) {
                        Some(&(_, tid)) if self.rng.chance(70) => Some(tid),
                        _ => Some(self.tid()),
                    }
                } else {
                    None
                };
                self.apply(
                    format!("add_object({oid:?}, {serial:?}, {data:?}, {data_serial:?})"),
                    |s| s.add_object(oid, serial, data.as_ref(), data_serial),
                );
            }
            64 => {
                let tids = self.committed_tids();
                let tid = if tids.is_empty() || self.rng.chance(20) {
                    self.tid()
                } else {
                    self.rng.pick(&tids)
                };
                self.apply(format!("delete_transaction({tid:?})"), |s| {
                    s.delete_transaction(tid)
                });
            }
            65..=66 => {
                let records = self.records();
                let (oid, serial) = if records.is_empty() || self.rng.chance(20) {
                    (self.oid(), self.tid())
                } else {
                    self.rng.pick(&records)
                };
                self.apply(format!("delete_object({oid:?}, {serial:?})"), |s| {
                    s.delete_object(oid, serial)
                });
            }
            67 => {
                let partitions = self.partitions();
                self.apply(format!("drop_partitions_temporary({partitions:?})"), |s| {
                    s.drop_partitions_temporary(&partitions)
                });
            }
            68 => {
                let tid = (!self.rng.chance(20)).then(|| self.tid());
                self.apply(format!("set_truncate_tid({tid:?})"), |s| {
                    s.set_truncate_tid(tid)
                });
                if self.rng.chance(70) {
                    self.apply("truncate", |s| s.truncate());
                }
            }
            69 => self.reset_table(),
            70..=72 => self.change_table(),
            73 => {
                let tid = self.rng.chance(70).then(|| self.tid());
                self.apply(format!("set_backup_tid({tid:?})"), |s| {
                    s.set_backup_tid(tid)
                });
            }
            74 => {
                let cluster = Bytes::from_static(self.rng.pick(&[&b"one"[..], b"two"]));
                self.apply(format!("set_cluster({cluster:?})"), |s| {
                    s.set_cluster(cluster.clone())
                });
                let nid = Nid(self.rng.pick(&[1, 1, 1, 2]));
                self.apply(format!("set_nid({nid:?})"), |s| s.set_nid(nid));
            }
            75 => {
                if self.rng.chance(10) {
                    self.apply("erase", |s| s.erase());
                    self.held.clear();
                    self.apply("set_nid(1)", |s| s.set_nid(Nid(1)));
                    self.reset_table();
                }
            }
            76 => {
                self.apply("prune_orphans", |s| s.prune_orphans());
            }
            _ => self.random_read(),
        }
    }

    /// Vote, lock and unlock as a storage does, possibly stopping on the
    /// way (the transaction stays unfinished) or syncing in between.
    fn commit(&mut self) {
        let ttid = Tid(self.last_tid + 1);
        let tid = Tid(self.last_tid + 1 + self.rng.below(3));
        self.last_tid = tid.0 + 1;
        let mut objects = Vec::new();
        let mut holds = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let oid = self.oid();
            let data_id = if self.rng.chance(85) {
                let data = self.data();
                let id = self.apply(format!("store_data({oid:?}, {data:?})"), |s| {
                    s.store_data(oid, &data)
                });
                holds.push(id);
                Some(id)
            } else {
                None
            };
            objects.push(TempObject {
                oid,
                record: ObjectRecord {
                    data_id,
                    value_tid: None,
                },
            });
        }
        let oids: Vec<Oid> = objects.iter().map(|o| o.oid).collect();
        let meta = self.meta(ttid, &oids);
        self.apply(
            format!("store_temporary({ttid:?}, {objects:?}, meta)"),
            |s| s.store_temporary(ttid, &objects, Some(&meta)),
        );
        if self.rng.chance(15) {
            let order = PackOrder {
                approved: None,
                ..self.pack_order(ttid)
            };
            self.apply(format!("store_pack_order({order:?})"), |s| {
                s.store_pack_order(&order)
            });
        }
        if self.rng.chance(70) {
            for id in holds {
                self.apply(format!("release_data({id})"), |s| s.release_data(id));
            }
        } else {
            self.held.extend(holds);
        }
        if self.rng.chance(10) {
            return;
        }
        if self.rng.below(1000) < 3 * self.profile.syncs {
            self.sync();
        }
        let approve = self.rng.chance(50);
        self.apply(format!("lock({ttid:?}, {tid:?}, {approve})"), |s| {
            s.lock_transaction(ttid, tid, approve)
        });
        if self.rng.chance(10) {
            return;
        }
        if self.rng.below(1000) < 3 * self.profile.syncs {
            self.sync();
        }
        self.apply(format!("unlock({ttid:?}, {tid:?})"), |s| {
            s.unlock_transaction(ttid, tid)
        });
    }

    fn reset_table(&mut self) {
        use CellState::*;
        let np = if self.rng.chance(5) {
            0
        } else {
            1 + self.rng.below(MAX_PARTITIONS as u64) as usize
        };
        let rows = (0..np)
            .map(|_| {
                let mut nids = vec![1, 2, 3];
                (0..self.rng.below(4))
                    .map(|_| {
                        let i = self.rng.below(nids.len() as u64) as usize;
                        CellInfo {
                            nid: Nid(nids.swap_remove(i)),
                            state: self
                                .rng
                                .pick(&[UpToDate, UpToDate, OutOfDate, Feeding, Corrupted]),
                        }
                    })
                    .collect()
            })
            .collect();
        self.ptid += 1;
        let table = StoredTable {
            ptid: Ptid(self.ptid),
            num_replicas: self.rng.below(3) as u32,
            rows,
        };
        let own = Nid(self.rng.pick(&[1, 1, 1, 1, 2]));
        let last_pack_id = self.tid();
        self.apply(
            format!("reset_partition_table({own:?}, {table:?}, {last_pack_id:?})"),
            |s| s.reset_partition_table(own, &table, last_pack_id),
        );
    }

    fn change_table(&mut self) {
        use CellState::*;
        let np = self.np() as u64;
        let changes: Vec<CellChange> = (0..1 + self.rng.below(3))
            .map(|_| CellChange {
                offset: self.rng.below(np + 1) as u32,
                nid: Nid(1 + self.rng.below(3) as i32),
                state: self.rng.pick(&[
                    UpToDate, OutOfDate, OutOfDate, Feeding, Corrupted, Discarded,
                ]),
            })
            .collect();
        self.ptid += 1;
        let (ptid, replicas, last_pack_id) =
            (Ptid(self.ptid), self.rng.below(3) as u32, self.tid());
        let own = Nid(self.rng.pick(&[1, 1, 1, 1, 2]));
        self.apply(
            format!("change_partition_table({own:?}, {changes:?})"),
            |s| s.change_partition_table(own, ptid, replicas, &changes, last_pack_id),
        );
    }

    // ------------------------------------------------------------ reads

    fn random_read(&mut self) {
        let (oid, tid, tid2, p) = (self.oid(), self.tid(), self.tid(), self.partition());
        let (n, m) = (self.rng.below(6), self.rng.below(6));
        match self.rng.below(16) {
            0 => {
                self.same("config", |s| s.config());
            }
            1 => {
                self.same("partition_table", |s| s.partition_table());
            }
            2 => {
                self.same("replicated_up_to", |s| s.replicated_up_to(p));
            }
            3 => {
                let id = self.data_id();
                self.same(&format!("load_data({id})"), |s| s.load_data(id));
            }
            4 => {
                self.same("final_tid", |s| s.final_tid(tid));
            }
            5 => {
                let at = self.rng.chance(30).then_some(tid);
                let before = self.rng.chance(30).then_some(tid2);
                self.same(&format!("object({oid:?}, {at:?}, {before:?})"), |s| {
                    s.object(oid, at, before)
                });
            }
            6 => {
                self.same("record_data", |s| s.record_data(oid, tid));
            }
            7 => {
                self.same("object_history", |s| s.object_history(oid, n, m));
            }
            8 => {
                self.same("undo_history", |s| s.undo_history(oid, tid));
            }
            9 => {
                let partitions = self.partitions();
                self.same(&format!("tids({n}, {m}, {partitions:?})"), |s| {
                    s.tids(n, m, &partitions)
                });
            }
            10 => {
                self.same("tids_from", |s| s.tids_from(tid, tid2, m as u32, p));
            }
            11 => {
                self.same(&format!("oids_from({p}, {n}, {oid:?}, {tid:?})"), |s| {
                    s.oids_from(p, n as u32, oid, tid)
                });
            }
            12 => {
                let partitions = self.partitions();
                self.same("pack_orders", |s| s.pack_orders(tid, &partitions));
            }
            13 => {
                self.same("replication_objects", |s| {
                    s.replication_objects(p, tid, tid2, oid, m as u32)
                });
            }
            14 => {
                self.same("last_ids", |s| (s.last_ids(), s.first_tid()));
            }
            _ => self.compare_counts(),
        }
    }

    fn compare_counts(&self) {
        let memory = (self.memory.data_rows(), self.memory.holds());
        let lmdb = (self.lmdb().data_rows(), self.lmdb().holds());
        if memory != lmdb {
            self.fail("(data rows, holds)", &memory, &lmdb);
        }
    }

    /// Everything readable within the test's ranges of values.
    fn compare_everything(&self) {
        self.compare_counts();
        self.same("config", |s| s.config());
        self.same("partition_table", |s| s.partition_table());
        self.same("packed", |s| s.packed());
        self.same("unfinished", |s| s.unfinished_transactions());
        self.same("last_ids", |s| (s.last_ids(), s.first_tid()));
        let all: Vec<u32> = (0..MAX_PARTITIONS + 1).collect();
        self.same("pack_orders", |s| s.pack_orders(Tid::ZERO, &all));
        self.same("tids", |s| s.tids(0, u64::MAX, &all));
        for p in 0..MAX_PARTITIONS + 1 {
            self.same("replicated_up_to", |s| s.replicated_up_to(p));
            self.same("tids_from", |s| {
                s.tids_from(Tid::ZERO, Tid::INVALID, u32::MAX, p)
            });
            self.same("oids_from", |s| {
                s.oids_from(p, u32::MAX, Oid::ZERO, Tid::INVALID)
            });
            let records = self.same("replication_objects", |s| {
                s.replication_objects(p, Tid::ZERO, Tid::INVALID, Oid::ZERO, u32::MAX)
            });
            for (tid, oid) in records {
                self.same("record_data", |s| s.record_data(oid, tid));
                self.same("undo_history", |s| s.undo_history(oid, tid));
            }
            for i in 0..12 {
                let id = ((p as u64) << 48) + i;
                self.same(&format!("load_data({id})"), |s| s.load_data(id));
            }
        }
        for oid in (0..OIDS).map(Oid) {
            self.same("object", |s| s.object(oid, None, None));
            self.same("object_history", |s| s.object_history(oid, 0, u64::MAX));
        }
        for tid in (0..self.last_tid + 6).map(Tid) {
            self.same("transaction", |s| s.transaction(tid));
            self.same("final_tid", |s| s.final_tid(tid));
            self.same("pack_order", |s| s.pack_order(tid));
        }
    }
}
