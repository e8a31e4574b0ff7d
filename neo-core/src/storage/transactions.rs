//! The storage's transaction locks: write locks per oid taken by stores
//! and serial checks, conflict detection against the last committed
//! serial, NEO/py's deadlock avoidance, vote, lock, unlock, abort
//! (cluster.md 5.5–5.13).
//!
//! Write locks are granted in TTID order: a younger transaction waits for
//! an older one, and an older one blocked by a younger one that has not
//! voted asks it (through its client, NotifyDeadlock) to release and
//! re-queue — so every wait goes from younger to older and no cycle can
//! form. Between lock and unlock, the transaction's oids are read-locked:
//! invalidations reach clients before storages unlock, so a read of an
//! invalidated oid must wait for the new revision.
//!
//! Partitions this node is still catching up ("replicating": own
//! OUT_OF_DATE cells) take stores without lock: this node may lack the
//! data to detect conflicts and may have missed earlier locks, so a
//! readable cell elsewhere does the check. Once a partition has caught up
//! ("replicated"), its lockless writes are turned into real locks, and only
//! when no two transactions share one is the master told the partition is
//! up to date (cluster.md 7.4); until the new table makes it readable, its
//! data may be read for conflict checks.

use std::collections::{BTreeMap, BTreeSet};

use neo_proto::{
    Nid, ObjectData, Oid, PackRequest, Partitions, RelockConflict, Tid, TRANSACTION_OIDS_MAX,
};

use super::store::{DataId, ObjectRecord, Store, TempObject, TransactionMeta};

/// Most transactions one client may have open on a storage (a client
/// shared by many threads has a few at once).
pub(super) const CLIENT_TRANSACTIONS_COUNT_MAX: usize = 10_000;

/// How much of a transaction a storage has voted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Voted {
    No,
    /// Its object records (AskVoteTransaction).
    Objects,
    /// Object records and metadata (AskStoreTransaction: this node holds
    /// the TTID's partition).
    WithMetadata,
}

/// A transaction being committed, as this storage sees it.
#[derive(Debug)]
pub(super) struct Transaction {
    /// The client committing it.
    pub client: Nid,
    /// Every oid stored or checked, with the serial it was based on.
    pub serial_dict: BTreeMap<Oid, Tid>,
    /// Stored oids: data row (held) and undo back-pointer.
    pub store_dict: BTreeMap<Oid, ObjectRecord>,
    /// Oids stored without lock (partition being replicated).
    pub lockless: BTreeSet<Oid>,
    /// Oids for which NotifyDeadlock was sent to this transaction's client.
    pub deadlock: BTreeSet<Oid>,
    pub voted: Voted,
    /// The final TID, once locked.
    pub tid: Option<Tid>,
    /// Carries a pack order.
    pub pack: bool,
}

/// Why a lock is not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockError {
    /// Wait behind another transaction; retried in the order of this key
    /// (the waiting transaction's TTID).
    Delay(Tid),
    /// The object was committed since the serial the client read.
    Conflict(Tid),
    /// The partition is not readable here (and not being replicated): the
    /// client's table is stale; a readable cell does the check.
    NonReadable,
    /// The transaction is unknown (aborted meanwhile).
    NotRegistered,
}

/// Why a store fails after its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreError {
    Lock(LockError),
    /// An undo points to a record that a pack deleted.
    UndoPack,
}

/// A NotifyDeadlock to send: `client` must relock `oid` of `ttid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadlock {
    pub client: Nid,
    pub ttid: Tid,
    pub oid: Oid,
}

/// Pending transactions and their locks.
#[derive(Debug, Default)]
pub(super) struct TransactionLocks {
    /// Those of the table; none before the storage has one.
    partitions: Option<Partitions>,
    txns: BTreeMap<Tid, Transaction>,
    write_locks: BTreeMap<Oid, Tid>,
    read_locks: BTreeMap<Oid, Tid>,
    replicating: BTreeSet<u32>,
    /// Partitions caught up: `Some(tid)` not announced yet, `None`
    /// announced, waiting for the table to make them readable.
    replicated: BTreeMap<u32, Option<Tid>>,
    /// NotifyReplicationDone packets to send: (partition, tid).
    pub announce: Vec<(u32, Tid)>,
    /// NotifyDeadlock packets to send.
    pub deadlocks: Vec<Deadlock>,
    /// Locks were released: postponed requests may proceed.
    pub released: bool,
}

impl TransactionLocks {
    pub(super) fn new(partitions: Option<Partitions>) -> TransactionLocks {
        TransactionLocks {
            partitions,
            ..TransactionLocks::default()
        }
    }

    pub(super) fn partition(&self, value: u64) -> u32 {
        self.partitions.map_or(0, |p| p.of(value))
    }

    #[cfg(test)]
    pub(super) fn get(&self, ttid: Tid) -> Option<&Transaction> {
        self.txns.get(&ttid)
    }

    #[cfg(test)]
    pub(super) fn contains(&self, ttid: Tid) -> bool {
        self.txns.contains_key(&ttid)
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Partitions this node starts catching up: stores to them are
    /// lockless.
    pub(super) fn replicating(&mut self, partitions: &[u32]) {
        self.replicating.extend(partitions.iter().copied());
    }

    /// A partition caught up to `tid`: announced once its lockless writes
    /// became real locks.
    pub(super) fn replicated<S: Store>(&mut self, store: &mut S, partition: u32, tid: Tid) {
        self.replicating.remove(&partition);
        self.replicated.insert(partition, Some(tid));
        self.notify_replicated(store);
    }

    /// The table made these partitions readable here.
    pub(super) fn readable(&mut self, partitions: &[u32]) {
        for partition in partitions {
            self.replicated.remove(partition);
        }
    }

    /// These partitions are no longer ours: everything pending on them goes.
    pub(super) fn discarded<S: Store>(&mut self, store: &mut S, partitions: &[u32]) {
        let ours =
            |locks: &TransactionLocks, oid: &Oid| partitions.contains(&locks.partition(oid.0));
        for partition in partitions {
            self.replicating.remove(partition);
            self.replicated.remove(partition);
        }
        let doomed: Vec<Oid> = self
            .read_locks
            .keys()
            .filter(|o| ours(self, o))
            .copied()
            .collect();
        for oid in doomed {
            self.read_locks.remove(&oid);
        }
        let doomed: Vec<Oid> = self
            .write_locks
            .keys()
            .filter(|o| ours(self, o))
            .copied()
            .collect();
        for oid in doomed {
            self.write_locks.remove(&oid);
        }
        let mut released = Vec::new();
        let np = self.partitions;
        let discarded = |oid: &Oid| partitions.contains(&np.map_or(0, |p| p.of(oid.0)));
        for txn in self.txns.values_mut() {
            txn.serial_dict.retain(|oid, _| !discarded(oid));
            txn.lockless.retain(|oid| !discarded(oid));
            let gone: Vec<Oid> = txn
                .store_dict
                .keys()
                .filter(|oid| discarded(oid))
                .copied()
                .collect();
            for oid in gone {
                released.extend(txn.store_dict.remove(&oid).and_then(|r| r.data_id));
            }
        }
        store.drop_partitions_temporary(partitions);
        for id in released {
            store.release_data(id);
        }
        self.released = true;
    }

    /// Announces caught-up partitions whose lockless writes can all become
    /// real locks (NEO/py's `_notifyReplicated`): the highest TTID takes the
    /// lock of each oid; two transactions sharing one delay the
    /// announcement; a lock that now conflicts is unstored (a readable cell
    /// reported the conflict to the client).
    fn notify_replicated<S: Store>(&mut self, store: &mut S) {
        let mut notify: BTreeSet<u32> = self
            .replicated
            .iter()
            .filter(|(_, tid)| tid.is_some())
            .map(|(p, _)| *p)
            .collect();
        if notify.is_empty() {
            return;
        }
        for (&ttid, txn) in &self.txns {
            for oid in &txn.lockless {
                let partition = self.partition(oid.0);
                if self.replicated.get(&partition).is_some_and(|t| t.is_some()) {
                    if self
                        .write_locks
                        .get(oid)
                        .is_some_and(|holder| *holder != ttid)
                    {
                        notify.remove(&partition);
                    }
                    self.write_locks.insert(*oid, ttid);
                }
            }
        }
        if notify.is_empty() {
            return;
        }
        for &partition in &notify {
            let tid = self.replicated.insert(partition, None).flatten().unwrap();
            self.announce.push((partition, tid));
        }
        let relock: Vec<Oid> = self
            .write_locks
            .keys()
            .filter(|oid| notify.contains(&self.partition(oid.0)))
            .copied()
            .collect();
        for oid in relock {
            let ttid = self.write_locks.remove(&oid).unwrap();
            let txn = self.txns.get_mut(&ttid).unwrap();
            // Locks taken after the partition caught up were real already.
            txn.lockless.remove(&oid);
            let Some(&serial) = txn.serial_dict.get(&oid) else {
                continue;
            };
            if let Err(LockError::Conflict(_)) =
                self.lock_object(&*store, &|_| false, ttid, serial, oid)
            {
                self.unstore(store, ttid, oid);
            }
        }
    }

    /// First packet of a client for `ttid` (a store, a check or the
    /// metadata vote).
    /// Whether `client` may act on `ttid`: its own transaction, or one
    /// not known yet if the client has fewer than
    /// [`CLIENT_TRANSACTIONS_COUNT_MAX`] (TTIDs travel in answers: any
    /// client can learn another's, and any number can be made up).
    pub(super) fn check_owner(&self, client: Nid, ttid: Tid) -> Result<(), String> {
        match self.txns.get(&ttid) {
            Some(txn) if txn.client != client => {
                Err(format!("{ttid} is another client's transaction"))
            }
            Some(_) => Ok(()),
            None => {
                let open = self.txns.values().filter(|t| t.client == client).count();
                if open >= CLIENT_TRANSACTIONS_COUNT_MAX {
                    return Err(format!(
                        "more than {CLIENT_TRANSACTIONS_COUNT_MAX} transactions of one client"
                    ));
                }
                Ok(())
            }
        }
    }

    pub(super) fn register(&mut self, client: Nid, ttid: Tid) {
        self.txns.entry(ttid).or_insert_with(|| Transaction {
            client,
            serial_dict: BTreeMap::new(),
            store_dict: BTreeMap::new(),
            lockless: BTreeSet::new(),
            deadlock: BTreeSet::new(),
            voted: Voted::No,
            tid: None,
            pack: false,
        });
    }

    /// Takes the write lock on `oid` for `ttid`, checking that `serial` is
    /// still current. `Ok(true)`: locked; `Ok(false)`: accepted without
    /// lock.
    pub(super) fn lock_object<S: Store>(
        &mut self,
        store: &S,
        readable: &dyn Fn(u32) -> bool,
        ttid: Tid,
        serial: Tid,
        oid: Oid,
    ) -> Result<bool, LockError> {
        let partition = self.partition(oid.0);
        if !self.txns.contains_key(&ttid) {
            return Err(LockError::NotRegistered);
        }
        if self.replicating.contains(&partition) {
            self.txns.get_mut(&ttid).unwrap().lockless.insert(oid);
            return Ok(false);
        }
        let previous = match self.write_locks.get(&oid).copied() {
            Some(locking) => {
                let other_voted = self.txns[&locking].voted != Voted::No;
                if locking < ttid || other_voted {
                    // Younger than the holder (or the holder voted: it will
                    // finish soon and cannot deadlock): wait.
                    return Err(LockError::Delay(ttid));
                }
                if self.txns[&ttid].lockless.contains(&oid) {
                    // The lock is a leftover of lockless stores during
                    // replication; a readable cell checks for us.
                    return Ok(false);
                }
                if locking != ttid {
                    // Older than the holder, which has not voted: it may be
                    // waiting for a lock we hold. Ask it (once per oid) to
                    // release and queue again behind us.
                    let other = self.txns.get_mut(&locking).unwrap();
                    if other.lockless.contains(&oid) {
                        self.txns.get_mut(&ttid).unwrap().lockless.insert(oid);
                        return Ok(false);
                    }
                    if other.deadlock.insert(oid) {
                        self.deadlocks.push(Deadlock {
                            client: other.client,
                            ttid: locking,
                            oid,
                        });
                    }
                    return Err(LockError::Delay(ttid));
                }
                // The same transaction stores again (after a conflict, or
                // after an undo): compare with what its previous store was
                // based on.
                match self.txns[&ttid]
                    .store_dict
                    .get(&oid)
                    .and_then(|r| r.value_tid)
                {
                    None => return Ok(true),
                    Some(value_tid) => Some(value_tid),
                }
            }
            None => {
                // A partition that just caught up is not readable in the
                // table yet, but has the data to check conflicts.
                if !readable(partition) && !self.replicated.contains_key(&partition) {
                    return Err(LockError::NonReadable);
                }
                store.last_serial(oid)
            }
        };
        if let Some(previous) = previous {
            if previous != serial {
                return Err(LockError::Conflict(previous));
            }
        }
        self.write_locks.insert(oid, ttid);
        Ok(true)
    }

    /// AskCheckCurrentSerial (readCurrent): a lock, nothing stored.
    pub(super) fn check_current_serial<S: Store>(
        &mut self,
        store: &S,
        readable: &dyn Fn(u32) -> bool,
        ttid: Tid,
        oid: Oid,
        serial: Tid,
    ) -> Result<bool, LockError> {
        let locked = self.lock_object(store, readable, ttid, serial, oid)?;
        self.txns
            .get_mut(&ttid)
            .unwrap()
            .serial_dict
            .insert(oid, serial);
        Ok(locked)
    }

    /// AskStoreObject: a lock, then the data is written and held (an undo
    /// back-pointer reuses the data of the record it points to).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_object<S: Store>(
        &mut self,
        store: &mut S,
        readable: &dyn Fn(u32) -> bool,
        ttid: Tid,
        serial: Tid,
        oid: Oid,
        data: Option<&ObjectData>,
        data_serial: Option<Tid>,
    ) -> Result<bool, StoreError> {
        let partition = self.partition(oid.0);
        if let Some(data_serial) = data_serial {
            // Refused before taking anything (NEO/py locks first and keeps
            // the lock until the client aborts).
            if readable(partition) && store.record_data(oid, data_serial).is_none() {
                return Err(StoreError::UndoPack);
            }
        }
        let locked = self
            .lock_object(&*store, readable, ttid, serial, oid)
            .map_err(StoreError::Lock)?;
        if self.txns[&ttid].serial_dict.contains_key(&oid) {
            // Stored again (conflict resolved, undo, or still lockless):
            // the previous store's data goes.
            self.unstore(store, ttid, oid);
        }
        self.txns
            .get_mut(&ttid)
            .unwrap()
            .serial_dict
            .insert(oid, serial);
        let data_id = hold_data(store, oid, data, data_serial);
        self.txns.get_mut(&ttid).unwrap().store_dict.insert(
            oid,
            ObjectRecord {
                data_id,
                value_tid: data_serial,
            },
        );
        Ok(locked)
    }

    /// Forgets a store or check of `oid` by `ttid`; returns its data.
    fn unstore<S: Store>(&mut self, store: &mut S, ttid: Tid, oid: Oid) -> Option<ObjectData> {
        let txn = self.txns.get_mut(&ttid)?;
        txn.serial_dict.remove(&oid);
        let data_id = txn.store_dict.remove(&oid)?.data_id?;
        let data = store.load_data(data_id);
        store.release_data(data_id);
        data
    }

    /// AskRelockObject, first part: the transaction releases its lock on
    /// `oid` so that the older transaction that waits for it proceeds (the
    /// caller re-runs postponed requests, then calls [`Self::relock`]).
    /// Returns false if there is nothing to relock.
    pub(super) fn release_for_relock(&mut self, ttid: Tid, oid: Oid) -> bool {
        let Some(txn) = self.txns.get_mut(&ttid) else {
            return false;
        };
        if !txn.serial_dict.contains_key(&oid) {
            // The partition was dropped meanwhile.
            return false;
        }
        txn.deadlock.remove(&oid);
        if self.write_locks.get(&oid) == Some(&ttid) {
            self.write_locks.remove(&oid);
            self.released = true;
        }
        true
    }

    /// AskRelockObject, second part (retried while delayed): locks `oid`
    /// again. A conflict unstores it and returns what the client needs to
    /// resolve it, including the data it may no longer have.
    pub(super) fn relock<S: Store>(
        &mut self,
        store: &mut S,
        readable: &dyn Fn(u32) -> bool,
        ttid: Tid,
        oid: Oid,
    ) -> Result<Option<RelockConflict>, LockError> {
        let Some(serial) = self
            .txns
            .get(&ttid)
            .and_then(|t| t.serial_dict.get(&oid).copied())
        else {
            return Ok(None);
        };
        match self.lock_object(&*store, readable, ttid, serial, oid) {
            Ok(_) | Err(LockError::NonReadable) | Err(LockError::NotRegistered) => Ok(None),
            Err(LockError::Conflict(conflict_serial)) => {
                let data = self.unstore(store, ttid, oid);
                Ok(Some(RelockConflict {
                    serial,
                    conflict_serial,
                    data,
                }))
            }
            Err(delay) => Err(delay),
        }
    }

    /// Vote: writes the temporary records (and, with `meta`, the
    /// transaction's metadata and pack order). The caller syncs before
    /// answering.
    pub(super) fn vote<S: Store>(
        &mut self,
        store: &mut S,
        ttid: Tid,
        meta: Option<(TransactionMeta, Option<PackRequest>)>,
    ) -> Result<(), String> {
        let Some(txn) = self.txns.get_mut(&ttid) else {
            return Err(format!("unknown ttid {ttid}"));
        };
        let objects: Vec<TempObject> = txn
            .store_dict
            .iter()
            .map(|(oid, record)| TempObject {
                oid: *oid,
                record: *record,
            })
            .collect();
        match meta {
            Some((meta, pack)) => {
                let pack_oids = pack
                    .as_ref()
                    .and_then(|p| p.oids.as_ref())
                    .map_or(0, Vec::len);
                if meta.oids.len() > TRANSACTION_OIDS_MAX || pack_oids > TRANSACTION_OIDS_MAX {
                    return Err(format!(
                        "too many modified oids (at most {TRANSACTION_OIDS_MAX} per transaction)"
                    ));
                }
                txn.voted = Voted::WithMetadata;
                store.store_temporary(ttid, &objects, Some(&meta));
                if let Some(pack) = pack {
                    txn.pack = true;
                    store.store_pack_order(&neo_proto::PackOrder {
                        pack_id: ttid,
                        approved: None,
                        partial: pack.oids.is_some(),
                        oids: pack.oids,
                        pack_tid: pack.pack_tid,
                    });
                }
            }
            None => {
                txn.voted = Voted::Objects;
                store.store_temporary(ttid, &objects, None);
            }
        }
        Ok(())
    }

    /// AskLockInformation: the transaction is committed as `tid`; its oids
    /// are read-locked until unlock. The caller syncs before answering.
    pub(super) fn lock<S: Store>(
        &mut self,
        store: &mut S,
        ttid: Tid,
        tid: Tid,
        pack: bool,
    ) -> Result<(), String> {
        let Some(txn) = self.txns.get_mut(&ttid) else {
            return Err(format!("unknown ttid {ttid}"));
        };
        if txn.tid.is_some() {
            return Err(format!("transaction {ttid} is already locked"));
        }
        if tid < ttid || txn.voted == Voted::No {
            return Err(format!("transaction {ttid} cannot be locked as {tid}"));
        }
        txn.tid = Some(tid);
        for oid in txn.store_dict.keys() {
            self.read_locks.insert(*oid, ttid);
        }
        if txn.voted == Voted::WithMetadata {
            store.lock_transaction(ttid, tid, pack);
        }
        Ok(())
    }

    /// NotifyUnlockInformation: makes the transaction permanent (the caller
    /// syncs within a second) and releases its locks.
    pub(super) fn unlock<S: Store>(&mut self, store: &mut S, ttid: Tid) -> Result<Tid, String> {
        let Some(tid) = self.txns.get(&ttid).and_then(|t| t.tid) else {
            return Err(format!("unlock of {ttid}, which is not locked here"));
        };
        store.unlock_transaction(ttid, tid);
        self.forget(store, ttid);
        Ok(tid)
    }

    /// Aborts a transaction that is not locked: its temporary records and
    /// data go, its locks are released. Returns whether it existed and was
    /// aborted.
    pub(super) fn abort<S: Store>(&mut self, store: &mut S, ttid: Tid) -> bool {
        match self.txns.get(&ttid) {
            Some(txn) if txn.tid.is_none() => {
                if txn.voted != Voted::No {
                    store.abort_transaction(ttid);
                }
                self.forget(store, ttid);
                true
            }
            _ => false,
        }
    }

    /// Aborts the client's transactions that are not locked (and, unless
    /// `even_if_voted`, not voted); returns their TTIDs.
    pub(super) fn abort_for<S: Store>(
        &mut self,
        store: &mut S,
        client: Nid,
        even_if_voted: bool,
    ) -> Vec<Tid> {
        let doomed: Vec<Tid> = self
            .txns
            .iter()
            .filter(|(_, t)| t.client == client && (even_if_voted || t.voted == Voted::No))
            .map(|(ttid, _)| *ttid)
            .collect();
        doomed
            .into_iter()
            .filter(|&ttid| self.abort(store, ttid))
            .collect()
    }

    /// Releases everything a transaction holds and forgets it.
    fn forget<S: Store>(&mut self, store: &mut S, ttid: Tid) {
        let Some(txn) = self.txns.remove(&ttid) else {
            return;
        };
        for record in txn.store_dict.values() {
            if let Some(id) = record.data_id {
                store.release_data(id);
            }
        }
        for oid in txn.serial_dict.keys() {
            if txn.tid.is_some() && self.read_locks.get(oid) == Some(&ttid) {
                self.read_locks.remove(oid);
            }
            if self.write_locks.get(oid) == Some(&ttid) {
                self.write_locks.remove(oid);
            }
        }
        self.released = true;
        // Its lockless writes may have been what delayed an announcement.
        self.notify_replicated(store);
    }

    /// Drops everything (operation stopped): holds are released, temporary
    /// tables stay for verification to decide.
    pub(super) fn clear<S: Store>(&mut self, store: &mut S) {
        for txn in std::mem::take(&mut self.txns).into_values() {
            for record in txn.store_dict.values() {
                if let Some(id) = record.data_id {
                    store.release_data(id);
                }
            }
        }
        self.write_locks.clear();
        self.read_locks.clear();
        self.deadlocks.clear();
        self.replicating.clear();
        self.replicated.clear();
        self.announce.clear();
    }

    /// The final TID of `ttid` if this node knows it (locked here).
    pub(super) fn final_tid(&self, ttid: Tid) -> Option<Option<Tid>> {
        self.txns.get(&ttid).map(|t| t.tid)
    }

    /// Reads of `oid` wait: a locked transaction is about to change it.
    pub(super) fn is_read_locked(&self, oid: Oid) -> bool {
        self.read_locks.contains_key(&oid)
    }

    /// Iteration up to `tid` waits: a transaction at or below it is locked
    /// but not unlocked yet.
    pub(super) fn is_locked_tid(&self, tid: Tid) -> bool {
        self.txns.values().any(|t| t.tid.is_some_and(|t| t <= tid))
    }

    /// The pending store of `oid` by `ttid` (undo sees the transaction's
    /// own writes).
    pub(super) fn pending_store(&self, ttid: Tid, oid: Oid) -> Option<&ObjectRecord> {
        self.txns.get(&ttid)?.store_dict.get(&oid)
    }

    #[cfg(test)]
    pub(super) fn write_lock_holder(&self, oid: Oid) -> Option<Tid> {
        self.write_locks.get(&oid).copied()
    }
}

/// NEO/py's `holdData`: the data row of a store. An undo back-pointer
/// reuses the data of the record it points to (when this node has it: a
/// cell being replicated may not, and stores the bytes sent along).
fn hold_data<S: Store>(
    store: &mut S,
    oid: Oid,
    data: Option<&ObjectData>,
    data_serial: Option<Tid>,
) -> Option<DataId> {
    if let Some(record) = data_serial.and_then(|serial| store.record_data(oid, serial)) {
        if let Some(id) = record {
            store.hold_data(id);
        }
        return record;
    }
    data.map(|data| store.store_data(oid, data))
}

#[cfg(test)]
mod tests;
