//! The storage node's database on LMDB (via heed): [`LmdbStore`], a
//! [`Store`] in a directory.
//!
//! It behaves exactly as neo-core's `MemoryStore`, the reference for every
//! method (results, orderings, data sharing and pruning, crash semantics);
//! only the representation differs. How durability, the transaction's
//! lifetime and the map size are handled: see the `tables` module.
//!
//! # File layout (format 1)
//!
//! One LMDB environment (`data.mdb`, `lock.mdb`) with these named
//! databases. Integers in keys are big-endian, so that LMDB's byte order
//! is numeric order and ranges of keys are ranges of ids; `‖` is
//! concatenation, `x?` an optional field (a presence byte then the field,
//! zeroed when absent). Exact value encodings: the `codec` module.
//!
//! | table        | key                          | value |
//! |--------------|------------------------------|-------|
//! | `config`     | name (ASCII)                 | `format`: u32 layout version (refused if unknown); `cluster`: bytes; `nid`: i32; `truncate_tid`, `backup_tid`: u64 (absent: none); `table`: ptid u64 ‖ num_replicas u32 (absent: no partition table yet) |
//! | `pt`         | partition u32                | the row's cells in table order, each nid i32 ‖ state u8 ‖ replicated u64 ‖ pack u64?: for own OUT_OF_DATE cells the TID replication reached, for own cells the last pack completed |
//! | `trans`      | partition u32 ‖ tid u64      | ttid u64 ‖ packed u8 ‖ user ‖ description ‖ extension ‖ oids |
//! | `obj`        | partition u32 ‖ oid u64 ‖ tid u64 | data_id u64? ‖ value_tid u64? |
//! | `obj_tid`    | partition u32 ‖ tid u64 ‖ oid u64 | empty: `obj` by serial, for replication, last TIDs and truncation |
//! | `ttrans`     | ttid u64                     | partition u32 ‖ final tid u64? ‖ metadata as in `trans` |
//! | `tobj`       | ttid u64 ‖ oid u64           | partition u32 ‖ record as in `obj` |
//! | `data`       | data id u64                  | compression u32 ‖ checksum (20 bytes) ‖ bytes |
//! | `data_index` | checksum (20 bytes) ‖ compression u32 | data id u64: the row new data with these is compared to, for sharing |
//! | `data_refs`  | data id u64                  | u64: number of `obj` and `tobj` records referencing the row (absent: none) |
//! | `pack`       | pack id u64 (the TTID until unlock) | pack_id u64 ‖ approved u8 ‖ partial u8 ‖ pack_tid u64 ‖ oids? |
//!
//! The number of partitions is the number of `pt` rows. Data ids of
//! partition `p` are allocated in `[p·2^48, (p+1)·2^48)`, the next one being
//! the largest in use plus one (no counter is stored: as in `MemoryStore`,
//! the id of a pruned last row is given again). Holds on data rows (stores
//! not voted yet) live in memory only: a crash forgets them, and the rows
//! they kept are pruned by [`Store::prune_orphans`] when the node starts.
//!
//! [`Store`]: neo_core::storage::store::Store
//! [`Store::prune_orphans`]: neo_core::storage::store::Store::prune_orphans

mod codec;
mod open;
mod store;
mod tables;

use std::collections::BTreeSet;
use std::ops::{Bound, ControlFlow};
use std::path::Path;

use neo_core::storage::store::{DataHolds, DataId, ObjectRecord, StoredCell};
use neo_proto::{CellInfo, Nid, Oid, PackOrder, Partitions, Tid};

use codec::{config_key, TempTransaction};
use tables::{Direction, Table, Tables};

pub use open::{OpenError, DEFAULT_MAP_SIZE, LOCK_FILE};

use Bound::{Included, Unbounded};

/// A [`Store`](neo_core::storage::store::Store) in an LMDB environment.
///
/// Not `Send`: an LMDB write transaction stays open between syncs, and it
/// belongs to the thread that began it. Open the store on the thread that
/// uses it.
pub struct LmdbStore {
    tables: Tables,
    holds: DataHolds,
    /// Held for the store's life: no other process opens it meanwhile.
    _lock: std::fs::File,
}

impl LmdbStore {
    /// Opens the store in `dir`, creating the directory and an empty store
    /// if needed. Nothing is pruned: the node calls
    /// [`Store::prune_orphans`](neo_core::storage::store::Store::prune_orphans).
    pub fn open(dir: &Path) -> Result<LmdbStore, OpenError> {
        LmdbStore::open_with(dir, DEFAULT_MAP_SIZE)
    }

    /// [`LmdbStore::open`] with an initial map size (bytes, at least what
    /// the file already uses); the map grows as needed.
    pub fn open_with(dir: &Path, map_size: usize) -> Result<LmdbStore, OpenError> {
        let (env, dbs, lock) = open::open(dir, map_size)?;
        Ok(LmdbStore {
            tables: Tables::new(env, dbs),
            holds: DataHolds::default(),
            _lock: lock,
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        self.tables.path()
    }

    /// The current map size (bytes).
    pub fn map_size(&self) -> usize {
        self.tables.map_size()
    }

    /// Number of data rows (tests, statistics).
    pub fn data_rows(&self) -> usize {
        self.tables.len(Table::Data) as usize
    }

    /// Number of holds on data rows (tests: nothing leaks).
    pub fn holds(&self) -> usize {
        self.holds.count()
    }

    // ------------------------------------------------------------ config

    fn config_tid(&self, key: &[u8]) -> Option<Tid> {
        self.tables.get(Table::Config, key, |v| {
            Tid(codec::decode_u64(v, "config TID"))
        })
    }

    fn set_config_tid(&mut self, key: &[u8], tid: Option<Tid>) {
        match tid {
            Some(tid) => self.tables.put(Table::Config, key, &tid.0.to_be_bytes()),
            None => self.tables.delete(Table::Config, key),
        }
    }

    fn nid(&self) -> Option<Nid> {
        self.tables.get(Table::Config, config_key::NID, |v| {
            Nid(codec::decode_u32(v, "config nid") as i32)
        })
    }

    // ------------------------------------------------------------ partition table

    fn np(&self) -> u32 {
        self.tables.len(Table::Pt) as u32
    }

    /// Partition of an OID or TID (0 before the store has a table).
    fn partition_of(&self, value: u64) -> u32 {
        Partitions::new(self.np()).map_or(0, |p| p.of(value))
    }

    /// The cells of a partition (none if out of the table).
    fn row(&self, offset: u32) -> Vec<StoredCell> {
        self.tables
            .get(Table::Pt, &codec::pt_key(offset), codec::decode_row)
            .unwrap_or_default()
    }

    fn put_row(&mut self, offset: u32, row: &[StoredCell]) {
        self.tables
            .put(Table::Pt, &codec::pt_key(offset), &codec::encode_row(row));
    }

    fn own_cell(&self, offset: u32) -> Option<StoredCell> {
        let own = self.nid()?;
        self.row(offset).into_iter().find(|c| c.nid == own)
    }

    /// Applies `update` to our cell of a partition.
    fn update_own_cell(&mut self, partition: u32, update: impl Fn(&mut StoredCell)) {
        let own = self.nid();
        let mut row = self.row(partition);
        let before = row.clone();
        for cell in row.iter_mut().filter(|c| Some(c.nid) == own) {
            update(cell);
        }
        if row != before {
            self.put_row(partition, &row);
        }
    }

    fn readable_partitions(&self) -> Vec<u32> {
        (0..self.np())
            .filter(|&o| self.own_cell(o).is_some_and(|c| c.state.is_readable()))
            .collect()
    }

    /// The newest TID of a partition's transactions and records (zero if
    /// none).
    fn last_tid_of(&self, partition: u32) -> Tid {
        let trans = self.tables.first(
            Table::Trans,
            trans_span(partition),
            Direction::Backward,
            |key, _| codec::split_trans_key(key).1,
        );
        let obj = self.tables.first(
            Table::ObjByTid,
            (
                Included(codec::obj_tid_key(partition, Tid::ZERO, Oid::ZERO)),
                Included(codec::obj_tid_key(partition, Tid::INVALID, Oid::INVALID)),
            ),
            Direction::Backward,
            |key, _| codec::split_obj_tid_key(key).1,
        );
        trans.max(obj).unwrap_or(Tid::ZERO)
    }

    fn stored_cell(
        &self,
        own: Nid,
        offset: u32,
        cell: &CellInfo,
        before: Option<&StoredCell>,
        last_pack_id: Tid,
    ) -> StoredCell {
        StoredCell::after_change(own, cell, before, last_pack_id, || {
            self.config_tid(config_key::BACKUP_TID)
                .unwrap_or_else(|| self.last_tid_of(offset))
        })
    }

    // ------------------------------------------------------------ records

    fn obj(&self, partition: u32, oid: Oid, tid: Tid) -> Option<ObjectRecord> {
        self.tables.get(
            Table::Obj,
            &codec::obj_key(partition, oid, tid),
            codec::decode_record,
        )
    }

    /// The first record of `oid` with a serial in `(from, to)`, in
    /// `direction`.
    fn first_record(
        &self,
        partition: u32,
        oid: Oid,
        from: Bound<Tid>,
        to: Bound<Tid>,
        direction: Direction,
    ) -> Option<(Tid, ObjectRecord)> {
        self.tables.first(
            Table::Obj,
            record_span(partition, oid, from, to),
            direction,
            |key, value| (codec::split_obj_key(key).2, codec::decode_record(value)),
        )
    }

    /// Every record of `oid` with a serial in `(from, to)`, oldest first.
    fn records(
        &self,
        partition: u32,
        oid: Oid,
        from: Bound<Tid>,
        to: Bound<Tid>,
    ) -> Vec<(Tid, ObjectRecord)> {
        let mut records = Vec::new();
        self.tables.scan(
            Table::Obj,
            record_span(partition, oid, from, to),
            Direction::Forward,
            |key, value| {
                records.push((codec::split_obj_key(key).2, codec::decode_record(value)));
                ControlFlow::Continue(())
            },
        );
        records
    }

    /// The smallest oid ≥ `from` with records in a partition.
    fn next_oid(&self, partition: u32, from: Oid) -> Option<Oid> {
        self.tables.first(
            Table::Obj,
            (
                Included(codec::obj_key(partition, from, Tid::ZERO)),
                Included(codec::obj_key(partition, Oid::INVALID, Tid::INVALID)),
            ),
            Direction::Forward,
            |key, _| codec::split_obj_key(key).1,
        )
    }

    fn insert_obj(
        &mut self,
        partition: u32,
        oid: Oid,
        tid: Tid,
        record: ObjectRecord,
        orphans: &mut Vec<DataId>,
    ) {
        // Referenced before the old record lets go: a record replaced by
        // one with the same data does not orphan it.
        self.add_ref(&record);
        let old = self.obj(partition, oid, tid);
        let mut value = Vec::new();
        codec::encode_record(&record, &mut value);
        self.tables
            .put(Table::Obj, &codec::obj_key(partition, oid, tid), &value);
        self.tables.put(
            Table::ObjByTid,
            &codec::obj_tid_key(partition, tid, oid),
            &[],
        );
        if let Some(old) = old {
            orphans.extend(self.drop_ref(&old));
        }
    }

    fn remove_obj(&mut self, partition: u32, oid: Oid, tid: Tid, orphans: &mut Vec<DataId>) {
        if let Some(old) = self.obj(partition, oid, tid) {
            self.tables
                .delete(Table::Obj, &codec::obj_key(partition, oid, tid));
            self.tables
                .delete(Table::ObjByTid, &codec::obj_tid_key(partition, tid, oid));
            orphans.extend(self.drop_ref(&old));
        }
    }

    /// Deletes a partition's transactions (with their pack orders) and
    /// records.
    fn drop_partition(&mut self, partition: u32, orphans: &mut Vec<DataId>) {
        for (_, tid) in self.keys(Table::Trans, trans_span(partition), codec::split_trans_key) {
            self.tables
                .delete(Table::Trans, &codec::trans_key(partition, tid));
            self.tables.delete(Table::Pack, &codec::u64_key(tid.0));
        }
        for (_, oid, tid) in self.keys(Table::Obj, obj_span(partition), codec::split_obj_key) {
            self.remove_obj(partition, oid, tid, orphans);
        }
    }

    /// The keys of a range, decoded.
    fn keys<K: AsRef<[u8]>, T>(
        &self,
        table: Table,
        range: (Bound<K>, Bound<K>),
        decode: impl Fn(&[u8]) -> T,
    ) -> Vec<T> {
        let mut keys = Vec::new();
        self.tables
            .scan(table, range, Direction::Forward, |key, _| {
                keys.push(decode(key));
                ControlFlow::Continue(())
            });
        keys
    }

    // ------------------------------------------------------------ temporary tables

    fn temp_transaction(&self, ttid: Tid) -> Option<TempTransaction> {
        self.tables.get(
            Table::TTrans,
            &codec::u64_key(ttid.0),
            codec::decode_temp_transaction,
        )
    }

    /// The temporary records of `ttid`: `(oid, partition, record)`.
    fn temp_records(&self, ttid: Tid) -> Vec<(Oid, u32, ObjectRecord)> {
        let mut records = Vec::new();
        self.tables.scan(
            Table::TObj,
            (
                Included(codec::tobj_key(ttid, Oid::ZERO)),
                Included(codec::tobj_key(ttid, Oid::INVALID)),
            ),
            Direction::Forward,
            |key, value| {
                let (partition, record) = codec::decode_temp_record(value);
                records.push((codec::split_tobj_key(key).1, partition, record));
                ControlFlow::Continue(())
            },
        );
        records
    }

    /// Deletes the temporary records of `ttid` and its pack order.
    fn remove_temporary(&mut self, ttid: Tid, orphans: &mut Vec<DataId>) {
        self.tables.delete(Table::TTrans, &codec::u64_key(ttid.0));
        for (oid, _, record) in self.temp_records(ttid) {
            self.tables.delete(Table::TObj, &codec::tobj_key(ttid, oid));
            orphans.extend(self.drop_ref(&record));
        }
        self.tables.delete(Table::Pack, &codec::u64_key(ttid.0));
    }

    fn get_pack_order(&self, id: Tid) -> Option<PackOrder> {
        self.tables
            .get(Table::Pack, &codec::u64_key(id.0), codec::decode_pack_order)
    }

    fn put_pack_order(&mut self, id: Tid, order: &PackOrder) {
        self.tables.put(
            Table::Pack,
            &codec::u64_key(id.0),
            &codec::encode_pack_order(order),
        );
    }

    // ------------------------------------------------------------ data rows

    fn refs(&self, id: DataId) -> Option<u64> {
        self.tables.get(Table::DataRefs, &codec::u64_key(id), |v| {
            codec::decode_u64(v, "data reference count")
        })
    }

    fn add_ref(&mut self, record: &ObjectRecord) {
        if let Some(id) = record.data_id {
            let count = self.refs(id).unwrap_or(0) + 1;
            self.tables
                .put(Table::DataRefs, &codec::u64_key(id), &count.to_be_bytes());
        }
    }

    /// Drops a reference; returns the row if nothing references it now.
    fn drop_ref(&mut self, record: &ObjectRecord) -> Option<DataId> {
        let id = record.data_id?;
        let count = self.refs(id)? - 1;
        if count == 0 {
            self.tables.delete(Table::DataRefs, &codec::u64_key(id));
            Some(id)
        } else {
            self.tables
                .put(Table::DataRefs, &codec::u64_key(id), &count.to_be_bytes());
            None
        }
    }

    /// Deletes the rows among `candidates` nothing references or holds.
    fn prune(&mut self, candidates: Vec<DataId>) {
        for id in candidates.into_iter().collect::<BTreeSet<_>>() {
            if self.holds.is_held(id) || self.refs(id).is_some() {
                continue;
            }
            let key = codec::u64_key(id);
            let Some(index_key) = self
                .tables
                .get(Table::Data, &key, codec::data_row_index_key)
            else {
                continue;
            };
            self.tables.delete(Table::Data, &key);
            // The index may point to a newer row with the same checksum.
            if self.data_index(&index_key) == Some(id) {
                self.tables.delete(Table::DataIndex, &index_key);
            }
        }
    }

    fn data_index(&self, key: &[u8]) -> Option<DataId> {
        self.tables.get(Table::DataIndex, key, |v| {
            codec::decode_u64(v, "data index")
        })
    }
}

/// Keys of the `obj` rows of `oid` with a serial in `(from, to)`
/// (unbounded: no limit on that side).
fn record_span(
    partition: u32,
    oid: Oid,
    from: Bound<Tid>,
    to: Bound<Tid>,
) -> (Bound<[u8; 20]>, Bound<[u8; 20]>) {
    let key = |tid: Tid| codec::obj_key(partition, oid, tid);
    let from = match from {
        Unbounded => Included(Tid::ZERO),
        bound => bound,
    };
    let to = match to {
        Unbounded => Included(Tid::INVALID),
        bound => bound,
    };
    (from.map(key), to.map(key))
}

/// Keys of a partition's `trans` rows.
fn trans_span(partition: u32) -> (Bound<[u8; 12]>, Bound<[u8; 12]>) {
    (
        Included(codec::trans_key(partition, Tid::ZERO)),
        Included(codec::trans_key(partition, Tid::INVALID)),
    )
}

/// Keys of a partition's `obj` rows.
fn obj_span(partition: u32) -> (Bound<[u8; 20]>, Bound<[u8; 20]>) {
    (
        Included(codec::obj_key(partition, Oid::ZERO, Tid::ZERO)),
        Included(codec::obj_key(partition, Oid::INVALID, Tid::INVALID)),
    )
}

/// Every key of a table.
const EVERY_KEY: (Bound<[u8; 0]>, Bound<[u8; 0]>) = (Unbounded, Unbounded);

/// The store scenarios every `Store` must pass, run on LMDB by
/// `tests/lmdb_store.rs`; a crash is a reopen, which keeps what was synced.
#[cfg(feature = "testing")]
impl neo_core::storage::scenarios::TestStore for LmdbStore {
    fn rows(&self) -> usize {
        self.data_rows()
    }

    fn held(&self) -> usize {
        self.holds()
    }

    fn crash(self) -> Self {
        let dir = self.path().to_owned();
        drop(self);
        LmdbStore::open(&dir).unwrap()
    }
}
