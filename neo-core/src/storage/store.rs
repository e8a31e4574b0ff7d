//! What a storage node needs from its database.
//!
//! The data model is NEO/py's (cluster.md §10): configuration, the
//! partition table (with, for the node's own OUT_OF_DATE cells, the TID
//! replication reached), committed transactions and object records,
//! deduplicated data, and the temporary tables of transactions being
//! committed (voted, maybe locked).
//!
//! Every method sees the effect of every previous call. Nothing is durable
//! until [`Store::sync`]: a crash loses what was written since the last
//! sync, whatever the implementation (the in-memory store used by the
//! simulator enforces exactly that).

use neo_proto::{CellChange, Nid, Oid, Ptid, Rows, Tid};

/// The node's persistent configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// Cluster the database belongs to (set once).
    pub cluster: Option<bytes::Bytes>,
    /// Our node id, given by the master.
    pub nid: Option<Nid>,
    /// Truncation requested by the master, done at the next AskLastIDs.
    pub truncate_tid: Option<Tid>,
    /// TID up to which a backup cluster is consistent.
    pub backup_tid: Option<Tid>,
}

/// The partition table as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTable {
    pub ptid: Ptid,
    pub num_replicas: u32,
    pub rows: Rows,
}

pub trait Store {
    fn config(&self) -> StoreConfig;
    fn set_cluster(&mut self, cluster: bytes::Bytes);
    fn set_nid(&mut self, nid: Nid);
    fn set_truncate_tid(&mut self, tid: Option<Tid>);
    fn set_backup_tid(&mut self, tid: Option<Tid>);

    /// The stored table, if any.
    fn partition_table(&self) -> Option<StoredTable>;
    /// Replaces the whole table (SendPartitionTable). Data of partitions no
    /// longer assigned to `own` is deleted.
    fn reset_partition_table(&mut self, own: Nid, table: &StoredTable);
    /// Applies a change list (NotifyPartitionChanges), with NEO/py's rules
    /// for the node's own cells: one becoming OUT_OF_DATE keeps replicating
    /// from what it already has (its last TID if it was readable); a
    /// DISCARDED one has its data deleted.
    fn change_partition_table(
        &mut self,
        own: Nid,
        ptid: Ptid,
        num_replicas: u32,
        changes: &[CellChange],
    );
    /// TID up to which an own OUT_OF_DATE cell is replicated.
    fn replicated_up_to(&self, offset: u32) -> Option<Tid>;

    /// Transactions in the temporary tables: ttid → final TID if locked.
    fn unfinished_transactions(&self) -> Vec<(Tid, Option<Tid>)>;
    /// The TID under which `ttid` was committed, if it was (temporary
    /// table if locked, else committed transactions of its partition).
    fn final_tid(&self, ttid: Tid) -> Option<Tid>;
    /// Commits a voted transaction under `tid` (lock + unlock).
    fn validate_transaction(&mut self, ttid: Tid, tid: Tid);
    /// Forgets every unfinished transaction.
    fn drop_unfinished(&mut self);

    /// Performs the recorded truncation, if any: deletes transactions and
    /// object records after it in assigned partitions.
    fn truncate(&mut self);
    /// `(last TID, last OID)` over readable partitions, if any.
    fn last_ids(&self) -> (Option<Tid>, Option<Oid>);
    /// Smallest TID stored (`Tid::MAX` if none).
    fn first_tid(&self) -> Tid;

    /// Deletes everything (the node was removed from the cluster).
    fn erase(&mut self);
    /// Makes everything written so far durable.
    fn sync(&mut self);
}
