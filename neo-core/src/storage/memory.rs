//! An in-memory [`Store`] with real crash semantics, for the simulator and
//! tests.
//!
//! Every mutation is an [`Op`], applied at once to the current state and
//! logged; [`Store::sync`] replays the log onto the durable state;
//! [`MemoryStore::crash`] throws the current state away and restarts from
//! the durable one. Replaying the same ops in the same order from the same
//! state gives the same state, so durable + log = current at all times.
//!
//! Holds on data rows are volatile (they live beside the states and a
//! crash forgets them); deciding that a row is garbage depends on them, so
//! the decision is made when the row becomes unreferenced and logged as an
//! explicit [`Op::DeleteData`].
//!
//! Its tests are the store scenarios of `neo-mio/tests/lmdb_store.rs`,
//! run on this store and on LMDB alike (and the differential test beside
//! them), so that the two cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use neo_proto::{
    CellChange, CellInfo, CellState, Nid, ObjectData, Oid, PackOrder, Partitions, Ptid, Tid,
};

use super::store::{
    DataHolds, DataId, ObjectLookup, ObjectRecord, ObjectRevision, Store, StoreConfig, StoredCell,
    StoredTable, TempObject, TransactionMeta, UndoHistory,
};

/// A voted transaction (temporary tables).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TempTransaction {
    partition: u32,
    /// Final TID once locked.
    tid: Option<Tid>,
    meta: TransactionMeta,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    config: StoreConfig,
    table: Option<(Ptid, u32)>,
    rows: Vec<Vec<StoredCell>>,
    trans: BTreeMap<(u32, Tid), TransactionMeta>,
    obj: BTreeMap<(u32, Oid, Tid), ObjectRecord>,
    ttrans: BTreeMap<Tid, TempTransaction>,
    tobj: BTreeMap<(Tid, Oid), (u32, ObjectRecord)>,
    data: BTreeMap<DataId, ObjectData>,
    /// Dedup index: (checksum, compression) → row.
    by_hash: BTreeMap<([u8; 20], u32), DataId>,
    /// Number of obj and tobj records referencing each row.
    refs: BTreeMap<DataId, u64>,
    /// Pack orders by id (TTID while temporary).
    pack: BTreeMap<Tid, PackOrder>,
}

/// One mutation of the store.
#[derive(Debug, Clone)]
enum Op {
    SetCluster(Bytes),
    SetNid(Nid),
    SetTruncateTid(Option<Tid>),
    SetBackupTid(Option<Tid>),
    ResetTable(Nid, StoredTable, Tid),
    ChangeTable(Nid, Ptid, u32, Vec<CellChange>, Tid),
    InsertData(DataId, ObjectData),
    DeleteData(Vec<DataId>),
    StoreTemporary(Tid, Vec<TempObject>, Option<TransactionMeta>),
    StorePackOrder(PackOrder),
    Lock(Tid, Tid, bool),
    Unlock(Tid, Tid),
    Abort(Tid),
    DropUnfinished,
    SignPackOrders(Vec<Tid>, Vec<Tid>),
    SetPacked(u32, Tid),
    /// Deletes these object records (a pack step, replication).
    DeleteRecords(u32, Vec<(Oid, Tid)>),
    AddTransaction(u32, Tid, TransactionMeta, Option<PackOrder>),
    /// A committed object record received from a replica.
    AddRecord(u32, Oid, Tid, ObjectRecord),
    DeleteTransaction(u32, Tid),
    SetReplicated(u32, Tid),
    LowerPacked(u32, Tid),
    DropTemporary(Vec<u32>),
    Truncate,
    Erase,
}

impl State {
    fn np(&self) -> u32 {
        self.rows.len() as u32
    }

    /// Partition of an OID or TID (0 before the store has a table).
    fn partition_of(&self, value: u64) -> u32 {
        Partitions::new(self.np()).map_or(0, |p| p.of(value))
    }

    fn own_cell(&self, offset: u32) -> Option<&StoredCell> {
        let own = self.config.nid?;
        self.rows
            .get(offset as usize)?
            .iter()
            .find(|c| c.nid == own)
    }

    fn readable_partitions(&self) -> Vec<u32> {
        (0..self.np())
            .filter(|&o| self.own_cell(o).is_some_and(|c| c.state.is_readable()))
            .collect()
    }

    fn last_tid_of(&self, partition: u32) -> Tid {
        let trans = self
            .trans
            .range((partition, Tid::ZERO)..=(partition, Tid::INVALID))
            .next_back()
            .map(|((_, tid), _)| *tid);
        let obj = self
            .obj
            .range((partition, Oid::ZERO, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
            .map(|((_, _, tid), _)| *tid)
            .max();
        trans.max(obj).unwrap_or(Tid::ZERO)
    }

    fn add_ref(&mut self, record: &ObjectRecord) {
        if let Some(id) = record.data_id {
            *self.refs.entry(id).or_insert(0) += 1;
        }
    }

    /// Drops a reference; returns the row if nothing references it now.
    fn drop_ref(&mut self, record: &ObjectRecord) -> Option<DataId> {
        let id = record.data_id?;
        let count = self.refs.get_mut(&id)?;
        *count -= 1;
        if *count == 0 {
            self.refs.remove(&id);
            Some(id)
        } else {
            None
        }
    }

    fn insert_obj(
        &mut self,
        key: (u32, Oid, Tid),
        record: ObjectRecord,
        orphans: &mut Vec<DataId>,
    ) {
        self.add_ref(&record);
        if let Some(old) = self.obj.insert(key, record) {
            orphans.extend(self.drop_ref(&old));
        }
    }

    fn remove_obj(&mut self, key: &(u32, Oid, Tid), orphans: &mut Vec<DataId>) {
        if let Some(old) = self.obj.remove(key) {
            orphans.extend(self.drop_ref(&old));
        }
    }

    fn remove_temporary(&mut self, ttid: Tid, orphans: &mut Vec<DataId>) {
        self.ttrans.remove(&ttid);
        let keys: Vec<(Tid, Oid)> = self
            .tobj
            .range((ttid, Oid::ZERO)..=(ttid, Oid::INVALID))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let (_, record) = self.tobj.remove(&key).unwrap();
            orphans.extend(self.drop_ref(&record));
        }
        self.pack.remove(&ttid);
    }

    fn drop_partition(&mut self, partition: u32, orphans: &mut Vec<DataId>) {
        let tids: Vec<Tid> = self
            .trans
            .range((partition, Tid::ZERO)..=(partition, Tid::INVALID))
            .map(|((_, tid), _)| *tid)
            .collect();
        for tid in tids {
            self.trans.remove(&(partition, tid));
            self.pack.remove(&tid);
        }
        let keys: Vec<(u32, Oid, Tid)> = self
            .obj
            .range((partition, Oid::ZERO, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.remove_obj(&key, orphans);
        }
    }

    /// Applies an op; returns the data rows it left unreferenced.
    fn apply(&mut self, op: &Op) -> Vec<DataId> {
        let mut orphans = Vec::new();
        match op {
            Op::SetCluster(cluster) => self.config.cluster = Some(cluster.clone()),
            Op::SetNid(nid) => self.config.nid = Some(*nid),
            Op::SetTruncateTid(tid) => self.config.truncate_tid = *tid,
            Op::SetBackupTid(tid) => self.config.backup_tid = *tid,
            Op::ResetTable(own, table, last_pack_id) => {
                self.reset_table(*own, table, *last_pack_id, &mut orphans)
            }
            Op::ChangeTable(own, ptid, num_replicas, changes, last_pack_id) => {
                for change in changes {
                    self.change_cell(*own, change, *last_pack_id, &mut orphans);
                }
                self.table = Some((*ptid, *num_replicas));
            }
            Op::InsertData(id, data) => {
                self.by_hash
                    .insert((data.checksum.0, data.compression), *id);
                self.data.insert(*id, data.clone());
            }
            Op::DeleteData(ids) => self.delete_data(ids),
            Op::StoreTemporary(ttid, objects, meta) => {
                self.store_temporary(*ttid, objects, meta.as_ref(), &mut orphans)
            }
            Op::StorePackOrder(order) => {
                self.pack.insert(order.pack_id, order.clone());
            }
            Op::Lock(ttid, tid, approve) => self.lock(*ttid, *tid, *approve),
            Op::Unlock(ttid, tid) => self.unlock(*ttid, *tid, &mut orphans),
            Op::Abort(ttid) => self.remove_temporary(*ttid, &mut orphans),
            Op::DropUnfinished => self.drop_unfinished(&mut orphans),
            Op::SignPackOrders(approved, rejected) => {
                for (ids, value) in [(approved, true), (rejected, false)] {
                    for id in ids {
                        if let Some(order) = self.pack.get_mut(id) {
                            order.approved = Some(value);
                        }
                    }
                }
            }
            Op::SetPacked(partition, pack_id) => {
                self.update_own_cell(*partition, |cell| cell.pack = Some(*pack_id))
            }
            Op::DeleteRecords(partition, records) => {
                for (oid, tid) in records {
                    self.remove_obj(&(*partition, *oid, *tid), &mut orphans);
                }
            }
            Op::AddTransaction(partition, tid, meta, pack) => {
                self.trans.insert((*partition, *tid), meta.clone());
                if let Some(pack) = pack {
                    self.pack.insert(*tid, pack.clone());
                }
            }
            Op::AddRecord(partition, oid, tid, record) => {
                self.insert_obj((*partition, *oid, *tid), *record, &mut orphans);
            }
            Op::DeleteTransaction(partition, tid) => {
                self.trans.remove(&(*partition, *tid));
                self.pack.remove(tid);
            }
            Op::SetReplicated(partition, tid) => self.update_own_cell(*partition, |cell| {
                if cell.state == CellState::OutOfDate && cell.replicated < *tid {
                    cell.replicated = *tid;
                }
            }),
            Op::LowerPacked(partition, pack_id) => self.update_own_cell(*partition, |cell| {
                if cell.pack.is_some_and(|p| *pack_id < p) {
                    cell.pack = Some(*pack_id);
                }
            }),
            Op::DropTemporary(partitions) => self.drop_temporary(partitions, &mut orphans),
            Op::Truncate => {
                if let Some(tid) = self.config.truncate_tid.take() {
                    self.truncate(tid, &mut orphans);
                }
            }
            Op::Erase => *self = State::default(),
        }
        orphans
    }

    /// Our cell of `partition`, changed by `update` (no cell: nothing).
    fn update_own_cell(&mut self, partition: u32, update: impl FnOnce(&mut StoredCell)) {
        let own = self.config.nid;
        let row = self.rows.get_mut(partition as usize);
        if let Some(cell) = row.and_then(|row| row.iter_mut().find(|c| Some(c.nid) == own)) {
            update(cell);
        }
    }

    fn reset_table(
        &mut self,
        own: Nid,
        table: &StoredTable,
        last_pack_id: Tid,
        orphans: &mut Vec<DataId>,
    ) {
        let previous = std::mem::take(&mut self.rows);
        self.rows = vec![Vec::new(); table.rows.len()];
        for (offset, row) in table.rows.iter().enumerate() {
            for cell in row {
                let before = previous
                    .get(offset)
                    .and_then(|r| r.iter().find(|c| c.nid == cell.nid));
                let stored = self.stored_cell(own, offset as u32, cell, before, last_pack_id);
                self.rows[offset].push(stored);
            }
        }
        for offset in 0..self.np() {
            if !self.rows[offset as usize].iter().any(|c| c.nid == own) {
                self.drop_partition(offset, orphans);
            }
        }
        self.table = Some((table.ptid, table.num_replicas));
    }

    fn change_cell(
        &mut self,
        own: Nid,
        change: &CellChange,
        last_pack_id: Tid,
        orphans: &mut Vec<DataId>,
    ) {
        let offset = change.offset as usize;
        if offset >= self.rows.len() {
            return;
        }
        if change.state == CellState::Discarded {
            self.rows[offset].retain(|c| c.nid != change.nid);
            if change.nid == own {
                self.drop_partition(change.offset, orphans);
            }
            return;
        }
        let cell = CellInfo {
            nid: change.nid,
            state: change.state,
        };
        let before = self.rows[offset]
            .iter()
            .find(|c| c.nid == change.nid)
            .cloned();
        let stored = self.stored_cell(own, change.offset, &cell, before.as_ref(), last_pack_id);
        let row = &mut self.rows[offset];
        match row.iter_mut().find(|c| c.nid == change.nid) {
            Some(existing) => *existing = stored,
            None => row.push(stored),
        }
    }

    fn delete_data(&mut self, ids: &[DataId]) {
        for id in ids {
            if let Some(data) = self.data.remove(id) {
                let key = (data.checksum.0, data.compression);
                if self.by_hash.get(&key) == Some(id) {
                    self.by_hash.remove(&key);
                }
            }
        }
    }

    fn store_temporary(
        &mut self,
        ttid: Tid,
        objects: &[TempObject],
        meta: Option<&TransactionMeta>,
        orphans: &mut Vec<DataId>,
    ) {
        for object in objects {
            let partition = self.partition_of(object.oid.0);
            self.add_ref(&object.record);
            if let Some((_, old)) = self
                .tobj
                .insert((ttid, object.oid), (partition, object.record))
            {
                orphans.extend(self.drop_ref(&old));
            }
        }
        if let Some(meta) = meta {
            let partition = self.partition_of(ttid.0);
            let temp = TempTransaction {
                partition,
                tid: None,
                meta: meta.clone(),
            };
            self.ttrans.insert(ttid, temp);
        }
    }

    fn lock(&mut self, ttid: Tid, tid: Tid, approve_pack: bool) {
        if let Some(temp) = self.ttrans.get_mut(&ttid) {
            temp.tid = Some(tid);
        }
        if approve_pack {
            if let Some(order) = self.pack.get_mut(&ttid) {
                order.approved = Some(true);
            }
        }
    }

    fn unlock(&mut self, ttid: Tid, tid: Tid, orphans: &mut Vec<DataId>) {
        if let Some(temp) = self.ttrans.remove(&ttid) {
            self.trans.insert((temp.partition, tid), temp.meta);
            if let Some(mut order) = self.pack.remove(&ttid) {
                order.pack_id = tid;
                self.pack.insert(tid, order);
            }
        }
        let keys: Vec<(Tid, Oid)> = self
            .tobj
            .range((ttid, Oid::ZERO)..=(ttid, Oid::INVALID))
            .map(|(k, _)| *k)
            .collect();
        let mut moved = Vec::new();
        for key in keys {
            let (partition, record) = self.tobj.remove(&key).unwrap();
            // The reference moves from tobj to obj.
            moved.extend(self.drop_ref(&record));
            self.insert_obj((partition, key.1, tid), record, &mut moved);
        }
        // A row that moved keeps a reference: not an orphan.
        let refs = &self.refs;
        orphans.extend(moved.into_iter().filter(|id| !refs.contains_key(id)));
    }

    fn drop_unfinished(&mut self, orphans: &mut Vec<DataId>) {
        let ttids: BTreeSet<Tid> = self
            .ttrans
            .keys()
            .copied()
            .chain(self.tobj.keys().map(|(ttid, _)| *ttid))
            .collect();
        for ttid in ttids {
            self.remove_temporary(ttid, orphans);
        }
    }

    fn drop_temporary(&mut self, partitions: &[u32], orphans: &mut Vec<DataId>) {
        let doomed: Vec<(Tid, Oid)> = self
            .tobj
            .iter()
            .filter(|(_, (p, _))| partitions.contains(p))
            .map(|(k, _)| *k)
            .collect();
        for key in doomed {
            let (_, record) = self.tobj.remove(&key).unwrap();
            orphans.extend(self.drop_ref(&record));
        }
        let ttids: Vec<Tid> = self
            .ttrans
            .iter()
            .filter(|(_, t)| partitions.contains(&t.partition))
            .map(|(ttid, _)| *ttid)
            .collect();
        for ttid in ttids {
            self.ttrans.remove(&ttid);
            self.pack.remove(&ttid);
        }
    }

    /// Drops what our cells hold past `tid`.
    fn truncate(&mut self, tid: Tid, orphans: &mut Vec<DataId>) {
        let assigned: Vec<u32> = (0..self.np())
            .filter(|&o| self.own_cell(o).is_some())
            .collect();
        let doomed: Vec<(u32, Tid)> = self
            .trans
            .keys()
            .filter(|(p, t)| assigned.contains(p) && *t > tid)
            .copied()
            .collect();
        for key in doomed {
            self.trans.remove(&key);
            self.pack.remove(&key.1);
        }
        let doomed: Vec<(u32, Oid, Tid)> = self
            .obj
            .keys()
            .filter(|(p, _, t)| assigned.contains(p) && *t > tid)
            .copied()
            .collect();
        for key in doomed {
            self.remove_obj(&key, orphans);
        }
        let own = self.config.nid;
        for row in &mut self.rows {
            for cell in row.iter_mut() {
                if Some(cell.nid) == own
                    && cell.state == CellState::OutOfDate
                    && cell.replicated > tid
                {
                    cell.replicated = tid;
                }
            }
        }
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
            self.config
                .backup_tid
                .unwrap_or_else(|| self.last_tid_of(offset))
        })
    }

    fn revision(
        &self,
        partition: u32,
        oid: Oid,
        serial: Tid,
        record: &ObjectRecord,
    ) -> ObjectRevision {
        let next_serial = self
            .obj
            .range(
                (partition, oid, Tid(serial.0.saturating_add(1)))..=(partition, oid, Tid::INVALID),
            )
            .next()
            .map(|((_, _, tid), _)| *tid);
        ObjectRevision {
            serial,
            next_serial,
            data: record.data_id.and_then(|id| self.data.get(&id).cloned()),
            data_serial: record.value_tid,
        }
    }

    fn records_of(
        &self,
        oid: Oid,
    ) -> std::collections::btree_map::Range<'_, (u32, Oid, Tid), ObjectRecord> {
        let partition = self.partition_of(oid.0);
        self.obj
            .range((partition, oid, Tid::ZERO)..=(partition, oid, Tid::INVALID))
    }
}

/// The in-memory store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    current: State,
    durable: State,
    log: Vec<Op>,
    holds: DataHolds,
}

impl MemoryStore {
    /// An empty store, as a new database directory is.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn op(&mut self, op: Op) {
        let orphans = self.current.apply(&op);
        self.log.push(op);
        self.prune(orphans);
    }

    /// Deletes the rows among `candidates` nothing references or holds.
    fn prune(&mut self, candidates: Vec<DataId>) {
        let doomed: Vec<DataId> = candidates
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|id| {
                self.current.data.contains_key(id)
                    && !self.current.refs.contains_key(id)
                    && !self.holds.is_held(*id)
            })
            .collect();
        if !doomed.is_empty() {
            let op = Op::DeleteData(doomed);
            self.current.apply(&op);
            self.log.push(op);
        }
    }

    /// Loses everything written since the last sync, as a crash would.
    pub fn crash(&mut self) {
        self.current = self.durable.clone();
        self.log.clear();
        self.holds.clear();
    }

    /// Whether writes are waiting for a sync.
    pub fn has_unsynced_writes(&self) -> bool {
        !self.log.is_empty()
    }

    /// Committed transactions of a partition (tests, invariant checks).
    pub fn transactions(&self, partition: u32) -> Vec<(Tid, TransactionMeta)> {
        self.current
            .trans
            .range((partition, Tid::ZERO)..=(partition, Tid::INVALID))
            .map(|((_, tid), meta)| (*tid, meta.clone()))
            .collect()
    }

    /// Committed object records of a partition with their data, oldest
    /// first per oid (tests, invariant checks).
    pub fn objects(&self, partition: u32) -> Vec<(Oid, Tid, Option<ObjectData>, Option<Tid>)> {
        self.current
            .obj
            .range((partition, Oid::ZERO, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
            .map(|((_, oid, tid), record)| {
                (
                    *oid,
                    *tid,
                    record
                        .data_id
                        .and_then(|id| self.current.data.get(&id).cloned()),
                    record.value_tid,
                )
            })
            .collect()
    }

    /// Flips a bit in the data of every record of `oid`, on disk too: a
    /// replica that returns bad bytes (tests).
    pub fn corrupt(&mut self, oid: Oid) {
        let ids: Vec<DataId> = self
            .current
            .records_of(oid)
            .filter_map(|(_, record)| record.data_id)
            .collect();
        for state in [&mut self.current, &mut self.durable] {
            for id in &ids {
                if let Some(data) = state.data.get_mut(id) {
                    let mut bytes = data.data.to_vec();
                    if let Some(first) = bytes.first_mut() {
                        *first ^= 1;
                    }
                    data.data = bytes.into();
                }
            }
        }
    }

    /// Number of data rows (tests: nothing leaks).
    pub fn data_rows(&self) -> usize {
        self.current.data.len()
    }

    /// Number of holds (tests: nothing leaks).
    pub fn holds(&self) -> usize {
        self.holds.count()
    }
}

impl Store for MemoryStore {
    fn config(&self) -> StoreConfig {
        self.current.config.clone()
    }

    fn set_cluster(&mut self, cluster: Bytes) {
        self.op(Op::SetCluster(cluster));
    }

    fn set_nid(&mut self, nid: Nid) {
        self.op(Op::SetNid(nid));
    }

    fn set_truncate_tid(&mut self, tid: Option<Tid>) {
        self.op(Op::SetTruncateTid(tid));
    }

    fn set_backup_tid(&mut self, tid: Option<Tid>) {
        self.op(Op::SetBackupTid(tid));
    }

    fn partition_table(&self) -> Option<StoredTable> {
        let (ptid, num_replicas) = self.current.table?;
        Some(StoredTable {
            ptid,
            num_replicas,
            rows: self
                .current
                .rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|c| CellInfo {
                            nid: c.nid,
                            state: c.state,
                        })
                        .collect()
                })
                .collect(),
        })
    }

    fn reset_partition_table(&mut self, own: Nid, table: &StoredTable, last_pack_id: Tid) {
        self.op(Op::ResetTable(own, table.clone(), last_pack_id));
    }

    fn change_partition_table(
        &mut self,
        own: Nid,
        ptid: Ptid,
        num_replicas: u32,
        changes: &[CellChange],
        last_pack_id: Tid,
    ) {
        self.op(Op::ChangeTable(
            own,
            ptid,
            num_replicas,
            changes.to_vec(),
            last_pack_id,
        ));
    }

    fn replicated_up_to(&self, offset: u32) -> Option<Tid> {
        self.current
            .own_cell(offset)
            .filter(|c| c.state == CellState::OutOfDate)
            .map(|c| c.replicated)
    }

    fn store_data(&mut self, oid: Oid, data: &ObjectData) -> DataId {
        let key = (data.checksum.0, data.compression);
        let existing = self.current.by_hash.get(&key).copied().filter(|id| {
            self.current
                .data
                .get(id)
                .is_some_and(|d| d.data == data.data)
        });
        let id = match existing {
            Some(id) => id,
            None => {
                let partition = self.current.partition_of(oid.0) as u64;
                let base = partition << 48;
                let id = self
                    .current
                    .data
                    .range(base..base + (1 << 48))
                    .next_back()
                    .map_or(base, |(id, _)| id + 1);
                self.op(Op::InsertData(id, data.clone()));
                id
            }
        };
        self.holds.hold(id);
        id
    }

    fn hold_data(&mut self, id: DataId) {
        self.holds.hold(id);
    }

    fn release_data(&mut self, id: DataId) {
        if self.holds.release(id) {
            self.prune(vec![id]);
        }
    }

    fn load_data(&self, id: DataId) -> Option<ObjectData> {
        self.current.data.get(&id).cloned()
    }

    fn prune_orphans(&mut self) -> usize {
        let candidates: Vec<DataId> = self.current.data.keys().copied().collect();
        let before = self.current.data.len();
        self.prune(candidates);
        before - self.current.data.len()
    }

    fn store_temporary(
        &mut self,
        ttid: Tid,
        objects: &[TempObject],
        meta: Option<&TransactionMeta>,
    ) {
        self.op(Op::StoreTemporary(ttid, objects.to_vec(), meta.cloned()));
    }

    fn store_pack_order(&mut self, order: &PackOrder) {
        self.op(Op::StorePackOrder(order.clone()));
    }

    fn lock_transaction(&mut self, ttid: Tid, tid: Tid, approve_pack: bool) {
        self.op(Op::Lock(ttid, tid, approve_pack));
    }

    fn unlock_transaction(&mut self, ttid: Tid, tid: Tid) {
        self.op(Op::Unlock(ttid, tid));
    }

    fn abort_transaction(&mut self, ttid: Tid) {
        self.op(Op::Abort(ttid));
    }

    fn unfinished_transactions(&self) -> Vec<(Tid, Option<Tid>)> {
        let mut unfinished: BTreeMap<Tid, Option<Tid>> = self
            .current
            .tobj
            .keys()
            .map(|(ttid, _)| (*ttid, None))
            .collect();
        for (ttid, temp) in &self.current.ttrans {
            unfinished.insert(*ttid, temp.tid);
        }
        unfinished.into_iter().collect()
    }

    fn drop_unfinished(&mut self) {
        self.op(Op::DropUnfinished);
    }

    fn final_tid(&self, ttid: Tid) -> Option<Tid> {
        let partition = self.current.partition_of(ttid.0);
        self.current
            .trans
            .range((partition, ttid)..=(partition, Tid::INVALID))
            .find(|(_, meta)| meta.ttid == ttid)
            .map(|((_, tid), _)| *tid)
    }

    fn last_serial(&self, oid: Oid) -> Option<Tid> {
        self.current
            .records_of(oid)
            .next_back()
            .map(|((_, _, tid), _)| *tid)
    }

    fn object(&self, oid: Oid, at: Option<Tid>, before: Option<Tid>) -> ObjectLookup {
        let partition = self.current.partition_of(oid.0);
        let mut records = self.current.records_of(oid);
        let found = if let Some(at) = at {
            self.current
                .obj
                .get(&(partition, oid, at))
                .map(|record| (at, record))
        } else if let Some(before) = before {
            self.current
                .obj
                .range((partition, oid, Tid::ZERO)..(partition, oid, before))
                .next_back()
                .map(|((_, _, tid), record)| (*tid, record))
        } else {
            records
                .next_back()
                .map(|((_, _, tid), record)| (*tid, record))
        };
        match found {
            Some((serial, record)) => {
                ObjectLookup::Found(self.current.revision(partition, oid, serial, record))
            }
            None if self.last_serial(oid).is_some() => ObjectLookup::NotFound,
            None => ObjectLookup::DoesNotExist,
        }
    }

    fn record_data(&self, oid: Oid, serial: Tid) -> Option<Option<DataId>> {
        let partition = self.current.partition_of(oid.0);
        self.current
            .obj
            .get(&(partition, oid, serial))
            .map(|record| record.data_id)
    }

    fn transaction(&self, tid: Tid) -> Option<TransactionMeta> {
        let partition = self.current.partition_of(tid.0);
        self.current.trans.get(&(partition, tid)).cloned()
    }

    fn object_history(&self, oid: Oid, offset: u64, length: u64) -> Option<Vec<(Tid, u64)>> {
        let history: Vec<(Tid, u64)> = self
            .current
            .records_of(oid)
            .rev()
            .skip(offset as usize)
            .take(length as usize)
            .map(|((_, _, tid), record)| {
                let size = record
                    .data_id
                    .and_then(|id| self.current.data.get(&id))
                    .map_or(0, |d| d.data.len() as u64);
                (*tid, size)
            })
            .collect();
        (!history.is_empty()).then_some(history)
    }

    fn undo_history(&self, oid: Oid, undo_tid: Tid) -> Option<UndoHistory> {
        let partition = self.current.partition_of(oid.0);
        self.current.obj.get(&(partition, oid, undo_tid))?;
        let previous = self
            .current
            .obj
            .range((partition, oid, Tid::ZERO)..(partition, oid, undo_tid))
            .next_back()
            .map(|((_, _, tid), _)| *tid);
        let later = self
            .current
            .obj
            .range(
                (partition, oid, Tid(undo_tid.0.saturating_add(1)))
                    ..=(partition, oid, Tid::INVALID),
            )
            .map(|((_, _, tid), record)| (*tid, record.value_tid))
            .collect();
        Some(UndoHistory { previous, later })
    }

    fn tids(&self, offset: u64, length: u64, partitions: &[u32]) -> Vec<Tid> {
        let mut tids: Vec<Tid> = partitions
            .iter()
            .flat_map(|&p| {
                self.current
                    .trans
                    .range((p, Tid::ZERO)..=(p, Tid::INVALID))
                    .map(|((_, tid), _)| *tid)
            })
            .collect();
        tids.sort_unstable_by(|a, b| b.cmp(a));
        tids.into_iter()
            .skip(offset as usize)
            .take(length as usize)
            .collect()
    }

    fn tids_from(&self, min: Tid, max: Tid, length: u32, partition: u32) -> Vec<Tid> {
        if max < min {
            return Vec::new();
        }
        self.current
            .trans
            .range((partition, min)..=(partition, max))
            .take(length as usize)
            .map(|((_, tid), _)| *tid)
            .collect()
    }

    fn oids_from(
        &self,
        partition: u32,
        length: u32,
        min_oid: Oid,
        tid: Tid,
    ) -> (Option<Oid>, Vec<Oid>) {
        // The latest record at or before `tid` of each oid, oid by oid.
        let mut seen = 0u32;
        let mut last_seen = None;
        let mut oids = Vec::new();
        let mut current: Option<(Oid, Option<DataId>)> = None;
        let flush = |entry: Option<(Oid, Option<DataId>)>, oids: &mut Vec<Oid>| {
            if let Some((oid, Some(_))) = entry {
                oids.push(oid);
            }
        };
        for ((_, oid, record_tid), record) in self
            .current
            .obj
            .range((partition, min_oid, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
        {
            if *record_tid > tid {
                continue;
            }
            match current {
                Some((current_oid, _)) if current_oid == *oid => {
                    current = Some((*oid, record.data_id));
                }
                _ => {
                    if seen == length {
                        break;
                    }
                    flush(current.take(), &mut oids);
                    seen += 1;
                    last_seen = Some(*oid);
                    current = Some((*oid, record.data_id));
                }
            }
        }
        flush(current, &mut oids);
        let next = if seen < length {
            None
        } else {
            last_seen.and_then(|oid| oid.0.checked_add(u64::from(self.current.np())).map(Oid))
        };
        (next, oids)
    }

    fn pack_orders(&self, min_id: Tid, partitions: &[u32]) -> Vec<PackOrder> {
        self.current
            .pack
            .range(min_id..)
            .filter(|(id, _)| !self.current.ttrans.contains_key(id))
            .filter(|(id, _)| partitions.contains(&self.current.partition_of(id.0)))
            .map(|(_, order)| order.clone())
            .collect()
    }

    fn sign_pack_orders(&mut self, approved: &[Tid], rejected: &[Tid]) -> Vec<Tid> {
        let changed: Vec<Tid> = approved
            .iter()
            .chain(rejected)
            .filter(|id| self.current.pack.contains_key(id))
            .copied()
            .collect();
        if !changed.is_empty() {
            self.op(Op::SignPackOrders(approved.to_vec(), rejected.to_vec()));
        }
        changed
    }

    fn packed(&self) -> Vec<(u32, Tid)> {
        (0..self.current.np())
            .filter_map(|p| {
                self.current
                    .own_cell(p)
                    .and_then(|c| c.pack)
                    .map(|id| (p, id))
            })
            .collect()
    }

    fn set_packed(&mut self, partition: u32, pack_id: Tid) {
        self.op(Op::SetPacked(partition, pack_id));
    }

    fn pack(
        &mut self,
        partition: u32,
        pack_tid: Tid,
        oids: Option<&[Oid]>,
        from: Oid,
        limit: usize,
    ) -> Option<Oid> {
        // The oids to look at in this step.
        let candidates: Vec<Oid> = match oids {
            Some(listed) => {
                let mut mine: Vec<Oid> = listed
                    .iter()
                    .filter(|oid| self.current.partition_of(oid.0) == partition && **oid >= from)
                    .copied()
                    .collect();
                mine.sort_unstable();
                mine.dedup();
                mine.truncate(limit + 1);
                mine
            }
            None => {
                let mut distinct = Vec::new();
                for ((_, oid, _), _) in self
                    .current
                    .obj
                    .range((partition, from, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
                {
                    if distinct.last() != Some(oid) {
                        if distinct.len() == limit + 1 {
                            break;
                        }
                        distinct.push(*oid);
                    }
                }
                distinct
            }
        };
        let next = (candidates.len() > limit).then(|| candidates[limit]);
        let mut doomed = Vec::new();
        for &oid in candidates.iter().take(limit) {
            let old: Vec<(Tid, ObjectRecord)> = self
                .current
                .obj
                .range((partition, oid, Tid::ZERO)..=(partition, oid, pack_tid))
                .map(|((_, _, tid), record)| (*tid, *record))
                .collect();
            let Some(&(newest, record)) = old.last() else {
                continue;
            };
            // The newest record at the pack point is the state from then
            // on: older ones go; a deletion goes with them.
            let keep_newest = record.data_id.is_some();
            for (tid, _) in old {
                if tid != newest || !keep_newest {
                    doomed.push((oid, tid));
                }
            }
        }
        if !doomed.is_empty() {
            self.op(Op::DeleteRecords(partition, doomed));
        }
        next
    }

    fn pack_order(&self, id: Tid) -> Option<PackOrder> {
        self.current.pack.get(&id).cloned()
    }

    fn replication_objects(
        &self,
        partition: u32,
        min_tid: Tid,
        max_tid: Tid,
        min_oid: Oid,
        length: u32,
    ) -> Vec<(Tid, Oid)> {
        if max_tid < min_tid {
            return Vec::new();
        }
        // The (tid, oid) order of NEO/py's secondary index.
        let mut records: Vec<(Tid, Oid)> = self
            .current
            .obj
            .range((partition, Oid::ZERO, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
            .map(|((_, oid, tid), _)| (*tid, *oid))
            .filter(|&(tid, oid)| {
                tid <= max_tid && (tid > min_tid || (tid == min_tid && oid >= min_oid))
            })
            .collect();
        records.sort_unstable();
        records.truncate(length as usize);
        records
    }

    fn add_transaction(&mut self, tid: Tid, meta: &TransactionMeta, pack: Option<&PackOrder>) {
        let partition = self.current.partition_of(tid.0);
        self.op(Op::AddTransaction(
            partition,
            tid,
            meta.clone(),
            pack.cloned(),
        ));
    }

    fn add_object(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&ObjectData>,
        data_serial: Option<Tid>,
    ) {
        let partition = self.current.partition_of(oid.0);
        let reused = data_serial.and_then(|s| self.record_data(oid, s));
        let (data_id, held) = match reused {
            Some(data_id) => (data_id, false),
            None => (data.map(|d| self.store_data(oid, d)), true),
        };
        self.op(Op::AddRecord(
            partition,
            oid,
            serial,
            ObjectRecord {
                data_id,
                value_tid: data_serial,
            },
        ));
        if let (Some(id), true) = (data_id, held) {
            self.release_data(id);
        }
    }

    fn delete_transaction(&mut self, tid: Tid) {
        let partition = self.current.partition_of(tid.0);
        self.op(Op::DeleteTransaction(partition, tid));
    }

    fn delete_object(&mut self, oid: Oid, serial: Tid) {
        let partition = self.current.partition_of(oid.0);
        self.op(Op::DeleteRecords(partition, vec![(oid, serial)]));
    }

    fn set_replicated_up_to(&mut self, partition: u32, tid: Tid) {
        self.op(Op::SetReplicated(partition, tid));
    }

    fn lower_packed(&mut self, partition: u32, pack_id: Tid) {
        self.op(Op::LowerPacked(partition, pack_id));
    }

    fn drop_partitions_temporary(&mut self, partitions: &[u32]) {
        self.op(Op::DropTemporary(partitions.to_vec()));
    }

    fn truncate(&mut self) {
        if self.current.config.truncate_tid.is_some() {
            self.op(Op::Truncate);
        }
    }

    fn last_ids(&self) -> (Option<Tid>, Option<Oid>) {
        let mut last_tid = None;
        let mut last_oid = None;
        for partition in self.current.readable_partitions() {
            let tid = self.current.last_tid_of(partition);
            if tid != Tid::ZERO {
                last_tid = last_tid.max(Some(tid));
            }
            let oid = self
                .current
                .obj
                .range((partition, Oid::ZERO, Tid::ZERO)..=(partition, Oid::INVALID, Tid::INVALID))
                .next_back()
                .map(|((_, oid, _), _)| *oid);
            last_oid = last_oid.max(oid);
        }
        (last_tid, last_oid)
    }

    fn first_tid(&self) -> Tid {
        let trans = self.current.trans.keys().map(|(_, tid)| *tid).min();
        let obj = self.current.obj.keys().map(|(_, _, tid)| *tid).min();
        match (trans, obj) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => Tid::MAX,
        }
    }

    fn erase(&mut self) {
        self.op(Op::Erase);
        self.holds.clear();
    }

    fn sync(&mut self) {
        for op in self.log.drain(..) {
            self.durable.apply(&op);
        }
        debug_assert_eq!(self.durable, self.current);
    }
}
