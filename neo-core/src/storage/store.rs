//! What a storage node needs from its database.
//!
//! The data model is NEO/py's (cluster.md §10): configuration, the
//! partition table (with, for the node's own OUT_OF_DATE cells, the TID
//! replication reached, and for every own cell the last pack completed on
//! it), committed transactions (`trans`) and object records (`obj`), raw
//! object data shared by records with the same bytes, the temporary tables
//! of transactions being committed (`ttrans`, `tobj`: voted, maybe locked)
//! and pack orders.
//!
//! Every method sees the effect of every previous call. Nothing is durable
//! until [`Store::sync`]: a crash loses what was written since the last
//! sync, whatever the implementation (the in-memory store used by the
//! simulator enforces exactly that). The node syncs before it answers a
//! vote, a lock, a partition table change, a validation — every promise
//! that something is on disk — and within a second of any other write.
//!
//! Data rows are referenced by object records (committed or temporary) and
//! by *holds*: in-memory references of stores not voted yet, which a crash
//! forgets. A row neither referenced nor held is deleted ("pruned") as soon
//! as it becomes so; rows left unreferenced by a crash (stored but never
//! voted) are pruned when the store is opened ([`Store::prune_orphans`]).
//!
//! The store does not check which partitions are readable: the node does,
//! from its partition table, before asking.

use bytes::Bytes;
use neo_proto::{
    CellChange, CellInfo, CellState, Nid, ObjectData, Oid, PackOrder, Ptid, Rows, Tid,
};

/// Identifies a data row. Ids of rows first stored for an object of
/// partition `p` are allocated in `[p·2^48, (p+1)·2^48)`, as NEO/py does,
/// so that a partition's rows are contiguous.
pub type DataId = u64;

/// The node's persistent configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// Cluster the database belongs to (set once).
    pub cluster: Option<Bytes>,
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
    /// The table's version (NEO/py's `ptid` in `config`).
    pub ptid: Ptid,
    /// Copies wanted beyond the first (NEO/py's `replicas` in `config`).
    pub num_replicas: u32,
    /// Every cell of every partition, in table order; one row per
    /// partition, so `rows.len()` is the number of partitions.
    pub rows: Rows,
}

/// A transaction's metadata (a `trans` or `ttrans` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMeta {
    /// The TTID it was committed under (for AskFinalTID).
    pub ttid: Tid,
    /// ZODB's `user`, as the client sent it.
    pub user: Bytes,
    /// ZODB's `description`.
    pub description: Bytes,
    /// ZODB's `extension` (the pickled dict, as is).
    pub extension: Bytes,
    /// NEO/py's "affected by a pack" flag: written false at vote, kept as
    /// received from replicas; nothing here sets it.
    pub packed: bool,
    /// Every oid the transaction stored, deleted or checked.
    pub oids: Vec<Oid>,
}

/// An object record (an `obj` or `tobj` row). Without data it is a
/// deletion, or, with a back-pointer, an undone creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRecord {
    /// The data row, `None` for no data. A record holds one reference to
    /// its row, which lives while any record references it.
    pub data_id: Option<DataId>,
    /// Undo back-pointer: the record is undo-identical to the one at this
    /// serial (`data_serial` on the wire).
    pub value_tid: Option<Tid>,
}

/// A temporary object record written at vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempObject {
    /// The object stored or deleted (objects only checked have no
    /// record).
    pub oid: Oid,
    /// Its record: the data row its store held, now referenced by the
    /// record, and the undo back-pointer.
    pub record: ObjectRecord,
}

/// An object revision as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRevision {
    /// TID of the transaction that wrote the record.
    pub serial: Tid,
    /// Serial of the next revision, if any (whatever the reader's
    /// snapshot).
    pub next_serial: Option<Tid>,
    /// `None` for a record without data.
    pub data: Option<ObjectData>,
    /// The record's back-pointer ([`ObjectRecord::value_tid`]).
    pub data_serial: Option<Tid>,
}

/// Outcome of looking an object up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectLookup {
    /// The record asked for.
    Found(ObjectRevision),
    /// The object has records, none matching (OID_NOT_FOUND).
    NotFound,
    /// The object has no record at all (OID_DOES_NOT_EXIST).
    DoesNotExist,
}

/// What undo needs to know about an object around the undone transaction
/// (NEO/py's `_getObjectHistoryForUndo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoHistory {
    /// The record just before the undone one (`None`: it created the
    /// object).
    pub previous: Option<Tid>,
    /// Every later record: `(serial, value_tid)`, oldest first.
    pub later: Vec<(Tid, Option<Tid>)>,
}

/// One cell of a stored partition table row, with what the node keeps
/// about its own cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCell {
    /// The node holding the cell.
    pub nid: Nid,
    /// Its state; never DISCARDED (that removes the cell).
    pub state: CellState,
    /// For the node's own OUT_OF_DATE cells: replicated up to this TID.
    pub replicated: Tid,
    /// For the node's own cells: the last pack completed on it.
    pub pack: Option<Tid>,
}

impl StoredCell {
    /// How a cell is stored when the table gives it state `cell.state`
    /// (cluster.md 10.3), every store alike: only own cells have a pack
    /// id, set when they appear (0 if readable, else the last approved
    /// pack: their data will come from packed sources); only own
    /// OUT_OF_DATE cells have a "replicated up to": kept if already
    /// OUT_OF_DATE, from `readable_up_to` (the backup TID, else the
    /// partition's last TID) if it was readable, else zero.
    pub fn after_change(
        own: Nid,
        cell: &CellInfo,
        before: Option<&StoredCell>,
        last_pack_id: Tid,
        readable_up_to: impl FnOnce() -> Tid,
    ) -> StoredCell {
        let mine = cell.nid == own;
        let replicated = if !mine || cell.state != CellState::OutOfDate {
            Tid::ZERO
        } else {
            match before {
                Some(c) if c.state == CellState::OutOfDate => c.replicated,
                Some(c) if c.state.is_readable() => readable_up_to(),
                _ => Tid::ZERO,
            }
        };
        let pack = if !mine {
            None
        } else {
            match before.and_then(|c| c.pack) {
                Some(pack) => Some(pack),
                None if cell.state.is_readable() => Some(Tid::ZERO),
                None => Some(last_pack_id),
            }
        };
        StoredCell {
            nid: cell.nid,
            state: cell.state,
            replicated,
            pack,
        }
    }
}

/// Holds on data rows: in-memory references of stores not voted yet,
/// which a crash forgets (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct DataHolds(std::collections::BTreeMap<DataId, u32>);

impl DataHolds {
    /// Adds one hold on `id` (holds are counted).
    pub fn hold(&mut self, id: DataId) {
        *self.0.entry(id).or_insert(0) += 1;
    }

    /// Drops one hold; returns whether it was the last one (the row may
    /// then be pruned).
    pub fn release(&mut self, id: DataId) -> bool {
        let Some(count) = self.0.get_mut(&id) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.0.remove(&id);
        true
    }

    /// Whether anything holds `id`: if so, the row must not be pruned.
    pub fn is_held(&self, id: DataId) -> bool {
        self.0.contains_key(&id)
    }

    /// Forgets every hold, as a crash or an erase does.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Holds in total (tests: nothing leaks).
    pub fn count(&self) -> usize {
        self.0.values().map(|&n| n as usize).sum()
    }
}

/// A storage node's database: everything [`Storage`] keeps on disk.
/// Implemented by [`MemoryStore`] (the reference, whose `crash` loses what
/// a crash would) and by neo-mio's `LmdbStore`; the store scenarios run on
/// both so that they cannot drift apart.
///
/// # Durability and crash consistency
///
/// What every implementation must do, and the node relies on:
///
/// - **Read your writes.** Every call sees the effect of every previous
///   call, synced or not. Methods taking `&self` never change what is
///   stored.
/// - **Nothing durable before [`Store::sync`], everything after it.** A
///   write (a method taking `&mut self`) takes effect at once and reaches
///   the disk only with the next sync, which returns once every write made
///   since the previous sync is durable (fsynced).
/// - **All or nothing.** After a crash, a failing sync, or dropping the
///   store, it reopens exactly as it was when the last sync returned:
///   every write since is lost together, never part of one. The node
///   itself needs less: every synced write, then at most a prefix of the
///   later ones, whole (a replicated chunk's records before the progress
///   they justify, a pack's deletions before [`Store::set_packed`]); but
///   losing exactly the unsynced writes is what both implementations do
///   and what the simulator's crashes reproduce.
/// - **Holds are volatile.** Holds on data rows are never written: a crash
///   forgets them, and [`Store::prune_orphans`] deletes the rows they kept.
/// - **No errors.** No method can report a failure: a store that cannot
///   read or write (I/O error, full disk, corruption) panics, and the
///   process dies with its writes unsynced — a crash, which the node
///   recovers from at restart.
///
/// The node decides when durability matters: it holds every packet to the
/// master until the writes made before it are synced (it asks with
/// [`Output::SyncStore`], the runtime answers with
/// [`Storage::sync_store`]). Which promise each write backs is said below.
///
/// [`Storage`]: crate::storage::Storage
/// [`Storage::sync_store`]: crate::storage::Storage::sync_store
/// [`MemoryStore`]: crate::storage::memory::MemoryStore
/// [`Output::SyncStore`]: crate::Output::SyncStore
pub trait Store {
    // ------------------------------------------------------------ config

    /// The stored configuration, with every write so far.
    fn config(&self) -> StoreConfig;
    /// Records the cluster the database belongs to, once: when the node
    /// opens a database without one ([`Storage::new`] then syncs, before
    /// anything else). A database of another cluster is refused at start.
    ///
    /// [`Storage::new`]: crate::storage::Storage::new
    fn set_cluster(&mut self, cluster: Bytes);
    /// Records the node id the primary master gave at identification. A
    /// crash before it is synced loses it: the node restarts with the id
    /// it had before (or the configured one) and identifies again.
    fn set_nid(&mut self, nid: Nid);
    /// Records (`None`: clears) the truncation the master ordered
    /// (Truncate, written together with `set_backup_tid(None)`), for
    /// [`Store::truncate`] at the next AskLastIDs; AnswerRecovery reports
    /// it.
    fn set_truncate_tid(&mut self, tid: Option<Tid>);
    /// Records (`None`: clears) the TID up to which a backup cluster is
    /// consistent; AnswerRecovery reports it.
    fn set_backup_tid(&mut self, tid: Option<Tid>);

    // ------------------------------------------------------------ partition table

    /// The stored table, if any.
    fn partition_table(&self) -> Option<StoredTable>;
    /// Replaces the whole table (SendPartitionTable). Data of partitions no
    /// longer assigned to `own` is deleted. New own cells start with the
    /// completed pack id 0 if readable, else `last_pack_id` (their data
    /// will come from packed sources).
    fn reset_partition_table(&mut self, own: Nid, table: &StoredTable, last_pack_id: Tid);
    /// Applies a change list (NotifyPartitionChanges), with NEO/py's rules
    /// for the node's own cells: one becoming OUT_OF_DATE keeps replicating
    /// from what it already has (its last TID if it was readable); a
    /// DISCARDED one has its data deleted. Changes of offsets past the
    /// table are ignored.
    fn change_partition_table(
        &mut self,
        own: Nid,
        ptid: Ptid,
        num_replicas: u32,
        changes: &[CellChange],
        last_pack_id: Tid,
    );
    /// TID up to which an own OUT_OF_DATE cell is replicated; `None` if
    /// the node has no cell there or it is not OUT_OF_DATE.
    fn replicated_up_to(&self, offset: u32) -> Option<Tid>;

    // ------------------------------------------------------------ data

    /// Stores object data for `oid` (whose partition decides the id of a
    /// new row) and holds it. Rows with the same checksum, compression and
    /// bytes are shared. The row is a write; the hold is not: a crash
    /// before the vote leaves the row unreferenced, for
    /// [`Store::prune_orphans`].
    fn store_data(&mut self, oid: Oid, data: &ObjectData) -> DataId;
    /// Holds an existing row one more time (an undo reusing a record's
    /// data).
    fn hold_data(&mut self, id: DataId);
    /// Releases one hold; the row is pruned (a write) if that was the last
    /// hold and no record references it.
    fn release_data(&mut self, id: DataId);
    /// The data row `id`; `None` if there is none (pruned).
    fn load_data(&self, id: DataId) -> Option<ObjectData>;
    /// Deletes every data row nothing references or holds (after a
    /// restart: rows of stores that were never voted). Returns how many.
    /// [`Storage::new`] calls it when it opens the store, then syncs.
    ///
    /// [`Storage::new`]: crate::storage::Storage::new
    fn prune_orphans(&mut self) -> usize;

    // ------------------------------------------------------------ commit steps

    /// Vote: writes the temporary object records of `ttid` and, on the
    /// storages of the TTID's partition, its metadata. The records now
    /// reference their data rows (a record given again for the same oid
    /// replaces the previous one). The vote is answered once this is
    /// synced: from then on the transaction survives a crash until
    /// verification decides its fate (cluster.md 5.16).
    fn store_temporary(
        &mut self,
        ttid: Tid,
        objects: &[TempObject],
        meta: Option<&TransactionMeta>,
    );
    /// Records a pack order (unsigned while its transaction is pending,
    /// keyed by TTID until unlock).
    fn store_pack_order(&mut self, order: &PackOrder);
    /// Lock: the voted transaction `ttid` is committed as `tid` (recorded
    /// in its temporary metadata, if this store has it); with
    /// `approve_pack`, its pack order is approved. AnswerInformationLocked
    /// waits for this to be synced: a synced lock on a readable cell is
    /// the commit decision (cluster.md 5.16).
    fn lock_transaction(&mut self, ttid: Tid, tid: Tid, approve_pack: bool);
    /// Unlock: moves the temporary records of `ttid` to the committed
    /// tables under `tid` (its pack order too). Validation after a crash
    /// (lock and unlock at once) is the same call. Nothing promises it is
    /// durable (the node syncs within [`DEFERRED_SYNC`]): a crash before
    /// leaves the locked temporary records, and verification replays the
    /// unlock.
    ///
    /// [`DEFERRED_SYNC`]: crate::storage::DEFERRED_SYNC
    fn unlock_transaction(&mut self, ttid: Tid, tid: Tid);
    /// Deletes the temporary records of `ttid` and its pack order; data
    /// rows left unreferenced and unheld are pruned.
    fn abort_transaction(&mut self, ttid: Tid);
    /// Transactions in the temporary tables, by TTID: ttid → final TID if
    /// locked.
    fn unfinished_transactions(&self) -> Vec<(Tid, Option<Tid>)>;
    /// Deletes the temporary tables (every unfinished transaction and its
    /// pack order): at StartOperation, verification has settled them all.
    fn drop_unfinished(&mut self);
    /// The TID under which `ttid` was committed, from the committed
    /// transactions of its partition.
    fn final_tid(&self, ttid: Tid) -> Option<Tid>;

    // ------------------------------------------------------------ reads

    /// Serial of the latest record of `oid`.
    fn last_serial(&self, oid: Oid) -> Option<Tid>;
    /// The record at `at`, or the latest before `before`, or the latest.
    fn object(&self, oid: Oid, at: Option<Tid>, before: Option<Tid>) -> ObjectLookup;
    /// The data row of the record `(oid, serial)`: `None` if there is no
    /// such record, `Some(None)` if it has no data.
    fn record_data(&self, oid: Oid, serial: Tid) -> Option<Option<DataId>>;
    /// A committed transaction's metadata.
    fn transaction(&self, tid: Tid) -> Option<TransactionMeta>;
    /// `(serial, data length)` of the records of `oid`, newest first,
    /// skipping `offset`, at most `length`; `None` if it has none.
    fn object_history(&self, oid: Oid, offset: u64, length: u64) -> Option<Vec<(Tid, u64)>>;
    /// `None` if `oid` has no record at `undo_tid`.
    fn undo_history(&self, oid: Oid, undo_tid: Tid) -> Option<UndoHistory>;
    /// Committed TIDs of these partitions, newest first.
    fn tids(&self, offset: u64, length: u64, partitions: &[u32]) -> Vec<Tid>;
    /// Committed TIDs of a partition in `[min, max]`, oldest first.
    fn tids_from(&self, min: Tid, max: Tid, length: u32, partition: u32) -> Vec<Tid>;
    /// Oids of a partition existing (not deleted) as of `tid`, from
    /// `min_oid`, at most `length`, and where to continue (`None`: done).
    fn oids_from(
        &self,
        partition: u32,
        length: u32,
        min_oid: Oid,
        tid: Tid,
    ) -> (Option<Oid>, Vec<Oid>);

    // ------------------------------------------------------------ pack

    /// Committed pack orders with id ≥ `min_id` of the given (readable)
    /// partitions, oldest first. Orders of transactions not unlocked yet
    /// (still keyed by their TTID) are not reported: the transaction may
    /// never commit (NEO/py reports them, and a master then keeps an
    /// unsigned order nobody committed, blocking every later approval).
    fn pack_orders(&self, min_id: Tid, partitions: &[u32]) -> Vec<PackOrder>;
    /// Signs the orders this store has; returns the ids it changed.
    fn sign_pack_orders(&mut self, approved: &[Tid], rejected: &[Tid]) -> Vec<Tid>;
    /// Last pack completed on each own cell.
    fn packed(&self) -> Vec<(u32, Tid)>;
    /// Records that the pack order `pack_id` is done on the own cell of
    /// `partition` (no own cell: nothing). Written after the last
    /// [`Store::pack`] step of the partition, so a crash never keeps the
    /// claim without the deletions.
    fn set_packed(&mut self, partition: u32, pack_id: Tid);
    /// Packs part of a partition at `pack_tid` (cluster.md 8.1): for up to
    /// `limit` oids from `from` (or, for a partial pack, the listed oids of
    /// this partition), deletes the records that no state after `pack_tid`
    /// needs. Returns where to continue, `None` when the partition is done.
    fn pack(
        &mut self,
        partition: u32,
        pack_tid: Tid,
        oids: Option<&[Oid]>,
        from: Oid,
        limit: usize,
    ) -> Option<Oid>;

    // ------------------------------------------------------------ replication

    /// The pack order with this id, if this store has it.
    fn pack_order(&self, id: Tid) -> Option<PackOrder>;
    /// `(serial, oid)` of the object records of a partition from
    /// `(min_tid, min_oid)` (inclusive) up to `max_tid`, ordered by serial
    /// then oid, at most `length` (what replication and replica checks
    /// walk).
    fn replication_objects(
        &self,
        partition: u32,
        min_tid: Tid,
        max_tid: Tid,
        min_oid: Oid,
        length: u32,
    ) -> Vec<(Tid, Oid)>;
    /// Writes a committed transaction received from a replica (with its
    /// pack order, if any).
    fn add_transaction(&mut self, tid: Tid, meta: &TransactionMeta, pack: Option<&PackOrder>);
    /// Writes a committed object record received from a replica: a
    /// back-pointer reuses the data of the record it points to if this
    /// store has it, else the bytes sent along are stored.
    fn add_object(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&ObjectData>,
        data_serial: Option<Tid>,
    );
    /// Deletes a committed transaction (and its pack order) a replica does
    /// not have.
    fn delete_transaction(&mut self, tid: Tid);
    /// Deletes an object record a replica does not have.
    fn delete_object(&mut self, oid: Oid, serial: Tid);
    /// Records how far an own OUT_OF_DATE cell is replicated (only grows;
    /// other cells: nothing). Written after the records it covers, so a
    /// crash never keeps the claim without them.
    fn set_replicated_up_to(&mut self, partition: u32, tid: Tid);
    /// The source of a replication packed its cell up to `pack_id` only:
    /// ours must not claim more (packs after it will run again).
    fn lower_packed(&mut self, partition: u32, pack_id: Tid);
    /// Deletes the temporary records of these partitions (cells dropped
    /// while transactions were being committed).
    fn drop_partitions_temporary(&mut self, partitions: &[u32]);

    // ------------------------------------------------------------ recovery

    /// Performs the recorded truncation, if any, and clears it: deletes
    /// transactions (with their pack orders) and object records after it
    /// in assigned partitions, and brings own OUT_OF_DATE cells replicated
    /// beyond it back to it.
    fn truncate(&mut self);
    /// `(last TID, last OID)` over readable partitions, if any.
    fn last_ids(&self) -> (Option<Tid>, Option<Oid>);
    /// Smallest TID stored (`Tid::MAX` if none).
    fn first_tid(&self) -> Tid;

    /// Deletes everything, configuration included, and forgets every hold
    /// (the node was removed from the cluster: it syncs, then exits).
    fn erase(&mut self);
    /// Makes everything written so far durable, at once, before returning
    /// (see the trait documentation); a store that cannot panics.
    fn sync(&mut self);
}
