//! An in-memory [`Store`] with real crash semantics, for the simulator and
//! tests.
//!
//! Every mutation is an [`Op`], applied at once to the current state and
//! logged; [`Store::sync`] replays the log onto the durable state;
//! [`MemoryStore::crash`] throws the current state away and restarts from
//! the durable one. Replaying the same ops in the same order from the same
//! state gives the same state, so durable + log = current at all times.

use std::collections::BTreeMap;

use bytes::Bytes;
use neo_proto::{CellChange, CellInfo, CellState, Nid, Oid, Ptid, Tid};

use super::store::{Store, StoreConfig, StoredTable};

/// A committed transaction's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    pub ttid: Tid,
    pub user: Bytes,
    pub description: Bytes,
    pub extension: Bytes,
    pub packed: bool,
    pub oids: Vec<Oid>,
}

/// A committed object revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub data_id: Option<u64>,
    pub value_tid: Option<Tid>,
}

/// A voted transaction (temporary tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempTransaction {
    pub partition: u32,
    /// Final TID once locked.
    pub tid: Option<Tid>,
    /// Metadata, on the storages of the TTID's partition.
    pub record: Option<TransactionRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredCell {
    nid: Nid,
    state: CellState,
    /// For the node's own OUT_OF_DATE cells: replicated up to this TID.
    replicated: Tid,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    config: StoreConfig,
    table: Option<(Ptid, u32)>,
    rows: Vec<Vec<StoredCell>>,
    trans: BTreeMap<(u32, Tid), TransactionRecord>,
    obj: BTreeMap<(u32, Oid, Tid), ObjectRecord>,
    ttrans: BTreeMap<Tid, TempTransaction>,
    tobj: BTreeMap<(Tid, Oid), (u32, ObjectRecord)>,
}

/// One mutation of the store.
#[derive(Debug, Clone)]
enum Op {
    SetCluster(Bytes),
    SetNid(Nid),
    SetTruncateTid(Option<Tid>),
    SetBackupTid(Option<Tid>),
    ResetTable(Nid, StoredTable),
    ChangeTable(Nid, Ptid, u32, Vec<CellChange>),
    Validate(Tid, Tid),
    DropUnfinished,
    Truncate,
    Erase,
}

impl State {
    fn np(&self) -> u32 {
        self.rows.len() as u32
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

    fn drop_partition(&mut self, partition: u32) {
        self.trans.retain(|(p, _), _| *p != partition);
        self.obj.retain(|(p, _, _), _| *p != partition);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::SetCluster(cluster) => self.config.cluster = Some(cluster.clone()),
            Op::SetNid(nid) => self.config.nid = Some(*nid),
            Op::SetTruncateTid(tid) => self.config.truncate_tid = *tid,
            Op::SetBackupTid(tid) => self.config.backup_tid = *tid,
            Op::ResetTable(own, table) => {
                let previous = std::mem::take(&mut self.rows);
                self.rows = vec![Vec::new(); table.rows.len()];
                for (offset, row) in table.rows.iter().enumerate() {
                    for cell in row {
                        let replicated = own_replicated(self, &previous, *own, offset as u32, cell);
                        self.rows[offset].push(StoredCell {
                            nid: cell.nid,
                            state: cell.state,
                            replicated,
                        });
                    }
                }
                for offset in 0..self.np() {
                    if !self.rows[offset as usize].iter().any(|c| c.nid == *own) {
                        self.drop_partition(offset);
                    }
                }
                self.table = Some((table.ptid, table.num_replicas));
            }
            Op::ChangeTable(own, ptid, num_replicas, changes) => {
                for change in changes {
                    let offset = change.offset as usize;
                    if offset >= self.rows.len() {
                        continue;
                    }
                    if change.state == CellState::Discarded {
                        self.rows[offset].retain(|c| c.nid != change.nid);
                        if change.nid == *own {
                            self.drop_partition(change.offset);
                        }
                        continue;
                    }
                    let cell = CellInfo {
                        nid: change.nid,
                        state: change.state,
                    };
                    let replicated = own_replicated(self, &self.rows, *own, change.offset, &cell);
                    let row = &mut self.rows[offset];
                    match row.iter_mut().find(|c| c.nid == change.nid) {
                        Some(stored) => {
                            stored.state = change.state;
                            stored.replicated = replicated;
                        }
                        None => row.push(StoredCell {
                            nid: change.nid,
                            state: change.state,
                            replicated,
                        }),
                    }
                }
                self.table = Some((*ptid, *num_replicas));
            }
            Op::Validate(ttid, tid) => {
                let Some(temp) = self.ttrans.remove(ttid) else {
                    return;
                };
                if let Some(record) = temp.record {
                    self.trans.insert((temp.partition, *tid), record);
                }
                let keys: Vec<(Tid, Oid)> = self
                    .tobj
                    .range((*ttid, Oid::ZERO)..=(*ttid, Oid::INVALID))
                    .map(|(k, _)| *k)
                    .collect();
                for key in keys {
                    let (partition, record) = self.tobj.remove(&key).unwrap();
                    self.obj.insert((partition, key.1, *tid), record);
                }
            }
            Op::DropUnfinished => {
                self.ttrans.clear();
                self.tobj.clear();
            }
            Op::Truncate => {
                if let Some(tid) = self.config.truncate_tid.take() {
                    let assigned: Vec<u32> = (0..self.np())
                        .filter(|&o| self.own_cell(o).is_some())
                        .collect();
                    self.trans
                        .retain(|(p, t), _| !(assigned.contains(p) && *t > tid));
                    self.obj
                        .retain(|(p, _, t), _| !(assigned.contains(p) && *t > tid));
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
            }
            Op::Erase => *self = State::default(),
        }
    }
}

/// "Replicated up to" of a cell being stored (cluster.md 10.3): only own
/// OUT_OF_DATE cells have one; an already OUT_OF_DATE cell keeps it, a
/// readable one starts from its last TID, anything else from zero.
fn own_replicated(
    state: &State,
    previous: &[Vec<StoredCell>],
    own: Nid,
    offset: u32,
    cell: &CellInfo,
) -> Tid {
    if cell.nid != own || cell.state != CellState::OutOfDate {
        return Tid::ZERO;
    }
    let before = previous
        .get(offset as usize)
        .and_then(|row| row.iter().find(|c| c.nid == own));
    match before {
        Some(c) if c.state == CellState::OutOfDate => c.replicated,
        Some(c) if c.state.is_readable() => {
            state.config.backup_tid.unwrap_or(state.last_tid_of(offset))
        }
        _ => Tid::ZERO,
    }
}

/// The in-memory store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    current: State,
    durable: State,
    log: Vec<Op>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn op(&mut self, op: Op) {
        self.current.apply(&op);
        self.log.push(op);
    }

    /// Loses everything written since the last sync, as a crash would.
    pub fn crash(&mut self) {
        self.current = self.durable.clone();
        self.log.clear();
    }

    /// Whether writes are waiting for a sync.
    pub fn has_unsynced_writes(&self) -> bool {
        !self.log.is_empty()
    }

    /// Committed transactions of a partition (tests, invariant checks).
    pub fn transactions(&self, partition: u32) -> Vec<(Tid, TransactionRecord)> {
        self.current
            .trans
            .range((partition, Tid::ZERO)..=(partition, Tid::INVALID))
            .map(|((_, tid), record)| (*tid, record.clone()))
            .collect()
    }

    /// Inserts a committed transaction directly (tests).
    #[cfg(test)]
    fn insert_transaction(&mut self, partition: u32, tid: Tid, record: TransactionRecord) {
        self.current.trans.insert((partition, tid), record.clone());
        self.durable.trans.insert((partition, tid), record);
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

    fn reset_partition_table(&mut self, own: Nid, table: &StoredTable) {
        self.op(Op::ResetTable(own, table.clone()));
    }

    fn change_partition_table(
        &mut self,
        own: Nid,
        ptid: Ptid,
        num_replicas: u32,
        changes: &[CellChange],
    ) {
        self.op(Op::ChangeTable(own, ptid, num_replicas, changes.to_vec()));
    }

    fn replicated_up_to(&self, offset: u32) -> Option<Tid> {
        self.current
            .own_cell(offset)
            .filter(|c| c.state == CellState::OutOfDate)
            .map(|c| c.replicated)
    }

    fn unfinished_transactions(&self) -> Vec<(Tid, Option<Tid>)> {
        self.current
            .ttrans
            .iter()
            .map(|(ttid, t)| (*ttid, t.tid))
            .collect()
    }

    fn final_tid(&self, ttid: Tid) -> Option<Tid> {
        if let Some(temp) = self.current.ttrans.get(&ttid) {
            return temp.tid;
        }
        let np = self.current.np();
        if np == 0 {
            return None;
        }
        let partition = ttid.partition(np);
        self.current
            .trans
            .range((partition, ttid)..=(partition, Tid::INVALID))
            .find(|(_, record)| record.ttid == ttid)
            .map(|((_, tid), _)| *tid)
    }

    fn validate_transaction(&mut self, ttid: Tid, tid: Tid) {
        self.op(Op::Validate(ttid, tid));
    }

    fn drop_unfinished(&mut self) {
        self.op(Op::DropUnfinished);
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
    }

    fn sync(&mut self) {
        for op in self.log.drain(..) {
            self.durable.apply(&op);
        }
        debug_assert_eq!(self.durable, self.current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn record(ttid: u64) -> TransactionRecord {
        TransactionRecord {
            ttid: Tid(ttid),
            user: Bytes::new(),
            description: Bytes::new(),
            extension: Bytes::new(),
            packed: false,
            oids: vec![],
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
        );
        store.insert_transaction(0, Tid(40), record(39));
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
        );
        assert_eq!(store.replicated_up_to(0), Some(Tid(40)));
        assert_eq!(store.replicated_up_to(1), Some(Tid::ZERO));
        // Already OUT_OF_DATE: unchanged.
        store.change_partition_table(Nid(1), Ptid(3), 0, &[change(0, OutOfDate)]);
        assert_eq!(store.replicated_up_to(0), Some(Tid(40)));
        // Discarded: the partition's data goes.
        store.change_partition_table(Nid(1), Ptid(4), 0, &[change(0, Discarded)]);
        assert!(store.transactions(0).is_empty());
        assert_eq!(store.partition_table().unwrap().ptid, Ptid(4));
    }

    #[test]
    fn truncation_and_last_ids_only_see_readable_partitions() {
        use CellState::*;
        let mut store = MemoryStore::new();
        store.set_nid(Nid(1));
        store.reset_partition_table(
            Nid(1),
            &table(1, vec![vec![(1, UpToDate)], vec![(1, OutOfDate)]]),
        );
        // tid ≡ ttid (mod np), as the master guarantees.
        store.insert_transaction(0, Tid(10), record(8));
        store.insert_transaction(0, Tid(20), record(18));
        store.insert_transaction(1, Tid(31), record(29));
        assert_eq!(store.last_ids(), (Some(Tid(20)), None));
        assert_eq!(store.first_tid(), Tid(10));
        assert_eq!(store.final_tid(Tid(18)), Some(Tid(20)));
        assert_eq!(store.final_tid(Tid(19)), None);
        store.set_truncate_tid(Some(Tid(15)));
        store.truncate();
        assert_eq!(store.last_ids(), (Some(Tid(10)), None));
        assert_eq!(store.config().truncate_tid, None);
    }
}
