//! [`Store`] on the tables: each method mirrors `MemoryStore`'s, step for
//! step, so that both give the same results.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::ops::ControlFlow;

use bytes::Bytes;
use neo_core::storage::store::{
    DataId, ObjectLookup, ObjectRecord, ObjectRevision, Store, StoreConfig, StoredTable,
    TempObject, TransactionMeta, UndoHistory,
};
use neo_proto::{CellChange, CellInfo, CellState, Nid, ObjectData, Oid, PackOrder, Ptid, Tid};

use super::codec::{self, config_key, TempTransaction};
use super::tables::{Direction, Table};
use super::{obj_span, trans_span, LmdbStore, EVERY_KEY};

impl Store for LmdbStore {
    fn config(&self) -> StoreConfig {
        StoreConfig {
            cluster: self
                .tables
                .get(Table::Config, config_key::CLUSTER, Bytes::copy_from_slice),
            nid: self.nid(),
            truncate_tid: self.config_tid(config_key::TRUNCATE_TID),
            backup_tid: self.config_tid(config_key::BACKUP_TID),
        }
    }

    fn set_cluster(&mut self, cluster: Bytes) {
        self.tables
            .put(Table::Config, config_key::CLUSTER, &cluster);
    }

    fn set_nid(&mut self, nid: Nid) {
        self.tables
            .put(Table::Config, config_key::NID, &nid.0.to_be_bytes());
    }

    fn set_truncate_tid(&mut self, tid: Option<Tid>) {
        self.set_config_tid(config_key::TRUNCATE_TID, tid);
    }

    fn set_backup_tid(&mut self, tid: Option<Tid>) {
        self.set_config_tid(config_key::BACKUP_TID, tid);
    }

    fn partition_table(&self) -> Option<StoredTable> {
        let (ptid, num_replicas) =
            self.tables
                .get(Table::Config, config_key::TABLE, codec::decode_table_header)?;
        let rows = (0..self.np())
            .map(|offset| {
                self.row(offset)
                    .into_iter()
                    .map(|c| CellInfo {
                        nid: c.nid,
                        state: c.state,
                    })
                    .collect()
            })
            .collect();
        Some(StoredTable {
            ptid,
            num_replicas,
            rows,
        })
    }

    fn reset_partition_table(&mut self, own: Nid, table: &StoredTable, last_pack_id: Tid) {
        let old_np = self.np();
        let previous: Vec<_> = (0..old_np).map(|offset| self.row(offset)).collect();
        let rows: Vec<Vec<_>> = table
            .rows
            .iter()
            .enumerate()
            .map(|(offset, row)| {
                row.iter()
                    .map(|cell| {
                        let before = previous
                            .get(offset)
                            .and_then(|r| r.iter().find(|c| c.nid == cell.nid));
                        self.stored_cell(own, offset as u32, cell, before, last_pack_id)
                    })
                    .collect()
            })
            .collect();
        let np = rows.len() as u32;
        for offset in np..old_np {
            self.tables.delete(Table::Pt, &codec::pt_key(offset));
        }
        for (offset, row) in rows.iter().enumerate() {
            self.put_row(offset as u32, row);
        }
        let mut orphans = Vec::new();
        for (offset, row) in rows.iter().enumerate() {
            if !row.iter().any(|c| c.nid == own) {
                self.drop_partition(offset as u32, &mut orphans);
            }
        }
        self.put_table_header(table.ptid, table.num_replicas);
        self.prune(orphans);
    }

    fn change_partition_table(
        &mut self,
        own: Nid,
        ptid: Ptid,
        num_replicas: u32,
        changes: &[CellChange],
        last_pack_id: Tid,
    ) {
        let np = self.np();
        let mut orphans = Vec::new();
        for change in changes.iter().filter(|c| c.offset < np) {
            let mut row = self.row(change.offset);
            if change.state == CellState::Discarded {
                row.retain(|c| c.nid != change.nid);
                self.put_row(change.offset, &row);
                if change.nid == own {
                    self.drop_partition(change.offset, &mut orphans);
                }
                continue;
            }
            let cell = CellInfo {
                nid: change.nid,
                state: change.state,
            };
            let before = row.iter().find(|c| c.nid == change.nid).cloned();
            let stored = self.stored_cell(own, change.offset, &cell, before.as_ref(), last_pack_id);
            match row.iter_mut().find(|c| c.nid == change.nid) {
                Some(existing) => *existing = stored,
                None => row.push(stored),
            }
            self.put_row(change.offset, &row);
        }
        self.put_table_header(ptid, num_replicas);
        self.prune(orphans);
    }

    fn replicated_up_to(&self, offset: u32) -> Option<Tid> {
        self.own_cell(offset)
            .filter(|c| c.state == CellState::OutOfDate)
            .map(|c| c.replicated)
    }

    fn store_data(&mut self, oid: Oid, data: &ObjectData) -> DataId {
        let index_key = codec::data_index_key(data);
        let existing = self.data_index(&index_key).filter(|&id| {
            self.tables
                .get(Table::Data, &codec::u64_key(id), |row| {
                    codec::data_bytes(row) == &data.data[..]
                })
                .unwrap_or(false)
        });
        let id = match existing {
            Some(id) => id,
            None => {
                let (first, last) = codec::data_id_range(self.partition_of(oid.0));
                let id = self
                    .tables
                    .first(
                        Table::Data,
                        (
                            Included(codec::u64_key(first)),
                            Included(codec::u64_key(last)),
                        ),
                        Direction::Backward,
                        |key, _| codec::split_u64_key(key) + 1,
                    )
                    .unwrap_or(first);
                self.tables
                    .put(Table::Data, &codec::u64_key(id), &codec::encode_data(data));
                self.tables
                    .put(Table::DataIndex, &index_key, &codec::u64_key(id));
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
        self.tables
            .get(Table::Data, &codec::u64_key(id), codec::decode_data)
    }

    fn prune_orphans(&mut self) -> usize {
        let candidates = self.keys(Table::Data, EVERY_KEY, codec::split_u64_key);
        let before = self.data_rows();
        self.prune(candidates);
        before - self.data_rows()
    }

    fn store_temporary(
        &mut self,
        ttid: Tid,
        objects: &[TempObject],
        meta: Option<&TransactionMeta>,
    ) {
        let mut orphans = Vec::new();
        for object in objects {
            let partition = self.partition_of(object.oid.0);
            self.add_ref(&object.record);
            let key = codec::tobj_key(ttid, object.oid);
            let old = self
                .tables
                .get(Table::TObj, &key, codec::decode_temp_record);
            self.tables.put(
                Table::TObj,
                &key,
                &codec::encode_temp_record(partition, &object.record),
            );
            if let Some((_, old)) = old {
                orphans.extend(self.drop_ref(&old));
            }
        }
        if let Some(meta) = meta {
            let temp = TempTransaction {
                partition: self.partition_of(ttid.0),
                tid: None,
                meta: meta.clone(),
            };
            self.put_temp_transaction(ttid, &temp);
        }
        self.prune(orphans);
    }

    fn store_pack_order(&mut self, order: &PackOrder) {
        self.put_pack_order(order.pack_id, order);
    }

    fn lock_transaction(&mut self, ttid: Tid, tid: Tid, approve_pack: bool) {
        if let Some(mut temp) = self.temp_transaction(ttid) {
            temp.tid = Some(tid);
            self.put_temp_transaction(ttid, &temp);
        }
        if approve_pack {
            if let Some(mut order) = self.get_pack_order(ttid) {
                order.approved = Some(true);
                self.put_pack_order(ttid, &order);
            }
        }
    }

    fn unlock_transaction(&mut self, ttid: Tid, tid: Tid) {
        if let Some(temp) = self.temp_transaction(ttid) {
            self.tables.delete(Table::TTrans, &codec::u64_key(ttid.0));
            let mut value = Vec::new();
            codec::encode_meta(&temp.meta, &mut value);
            self.tables
                .put(Table::Trans, &codec::trans_key(temp.partition, tid), &value);
            if let Some(mut order) = self.get_pack_order(ttid) {
                self.tables.delete(Table::Pack, &codec::u64_key(ttid.0));
                order.pack_id = tid;
                self.put_pack_order(tid, &order);
            }
        }
        let mut orphans = Vec::new();
        for (oid, partition, record) in self.temp_records(ttid) {
            self.tables.delete(Table::TObj, &codec::tobj_key(ttid, oid));
            // The reference moves from tobj to obj.
            orphans.extend(self.drop_ref(&record));
            self.insert_obj(partition, oid, tid, record, &mut orphans);
        }
        self.prune(orphans);
    }

    fn abort_transaction(&mut self, ttid: Tid) {
        let mut orphans = Vec::new();
        self.remove_temporary(ttid, &mut orphans);
        self.prune(orphans);
    }

    fn unfinished_transactions(&self) -> Vec<(Tid, Option<Tid>)> {
        let mut unfinished: BTreeMap<Tid, Option<Tid>> = self
            .keys(Table::TObj, EVERY_KEY, codec::split_tobj_key)
            .into_iter()
            .map(|(ttid, _)| (ttid, None))
            .collect();
        self.tables.scan(
            Table::TTrans,
            EVERY_KEY,
            Direction::Forward,
            |key, value| {
                let temp = codec::decode_temp_transaction(value);
                unfinished.insert(Tid(codec::split_u64_key(key)), temp.tid);
                ControlFlow::Continue(())
            },
        );
        unfinished.into_iter().collect()
    }

    fn drop_unfinished(&mut self) {
        let ttids: BTreeSet<Tid> = self
            .keys(Table::TTrans, EVERY_KEY, |key| {
                Tid(codec::split_u64_key(key))
            })
            .into_iter()
            .chain(
                self.keys(Table::TObj, EVERY_KEY, codec::split_tobj_key)
                    .into_iter()
                    .map(|(ttid, _)| ttid),
            )
            .collect();
        let mut orphans = Vec::new();
        for ttid in ttids {
            self.remove_temporary(ttid, &mut orphans);
        }
        self.prune(orphans);
    }

    fn final_tid(&self, ttid: Tid) -> Option<Tid> {
        let partition = self.partition_of(ttid.0);
        let mut found = None;
        self.tables.scan(
            Table::Trans,
            (
                Included(codec::trans_key(partition, ttid)),
                Included(codec::trans_key(partition, Tid::INVALID)),
            ),
            Direction::Forward,
            |key, value| {
                if codec::meta_ttid(value) != ttid {
                    return ControlFlow::Continue(());
                }
                found = Some(codec::split_trans_key(key).1);
                ControlFlow::Break(())
            },
        );
        found
    }

    fn last_serial(&self, oid: Oid) -> Option<Tid> {
        let partition = self.partition_of(oid.0);
        self.first_record(partition, oid, Unbounded, Unbounded, Direction::Backward)
            .map(|(tid, _)| tid)
    }

    fn object(&self, oid: Oid, at: Option<Tid>, before: Option<Tid>) -> ObjectLookup {
        let partition = self.partition_of(oid.0);
        let found = if let Some(at) = at {
            self.obj(partition, oid, at).map(|record| (at, record))
        } else if let Some(before) = before {
            self.first_record(
                partition,
                oid,
                Unbounded,
                Excluded(before),
                Direction::Backward,
            )
        } else {
            self.first_record(partition, oid, Unbounded, Unbounded, Direction::Backward)
        };
        match found {
            Some((serial, record)) => {
                let next_serial = self
                    .first_record(
                        partition,
                        oid,
                        Excluded(serial),
                        Unbounded,
                        Direction::Forward,
                    )
                    .map(|(tid, _)| tid);
                ObjectLookup::Found(ObjectRevision {
                    serial,
                    next_serial,
                    data: record.data_id.and_then(|id| self.load_data(id)),
                    data_serial: record.value_tid,
                })
            }
            None if self.last_serial(oid).is_some() => ObjectLookup::NotFound,
            None => ObjectLookup::DoesNotExist,
        }
    }

    fn record_data(&self, oid: Oid, serial: Tid) -> Option<Option<DataId>> {
        let partition = self.partition_of(oid.0);
        self.obj(partition, oid, serial)
            .map(|record| record.data_id)
    }

    fn transaction(&self, tid: Tid) -> Option<TransactionMeta> {
        let partition = self.partition_of(tid.0);
        self.tables.get(
            Table::Trans,
            &codec::trans_key(partition, tid),
            codec::decode_meta,
        )
    }

    fn object_history(&self, oid: Oid, offset: u64, length: u64) -> Option<Vec<(Tid, u64)>> {
        let partition = self.partition_of(oid.0);
        let mut skipped = 0;
        let mut records = Vec::new();
        self.tables.scan(
            Table::Obj,
            (
                Included(codec::obj_key(partition, oid, Tid::ZERO)),
                Included(codec::obj_key(partition, oid, Tid::INVALID)),
            ),
            Direction::Backward,
            |key, value| {
                if skipped < offset {
                    skipped += 1;
                    return ControlFlow::Continue(());
                }
                if records.len() as u64 >= length {
                    return ControlFlow::Break(());
                }
                records.push((codec::split_obj_key(key).2, codec::decode_record(value)));
                ControlFlow::Continue(())
            },
        );
        let history: Vec<(Tid, u64)> = records
            .into_iter()
            .map(|(tid, record)| {
                let size = record
                    .data_id
                    .and_then(|id| {
                        self.tables.get(Table::Data, &codec::u64_key(id), |row| {
                            codec::data_bytes(row).len() as u64
                        })
                    })
                    .unwrap_or(0);
                (tid, size)
            })
            .collect();
        (!history.is_empty()).then_some(history)
    }

    fn undo_history(&self, oid: Oid, undo_tid: Tid) -> Option<UndoHistory> {
        let partition = self.partition_of(oid.0);
        self.obj(partition, oid, undo_tid)?;
        let previous = self
            .first_record(
                partition,
                oid,
                Unbounded,
                Excluded(undo_tid),
                Direction::Backward,
            )
            .map(|(tid, _)| tid);
        let later = self
            .records(partition, oid, Excluded(undo_tid), Unbounded)
            .into_iter()
            .map(|(tid, record)| (tid, record.value_tid))
            .collect();
        Some(UndoHistory { previous, later })
    }

    fn tids(&self, offset: u64, length: u64, partitions: &[u32]) -> Vec<Tid> {
        // The answer's TIDs are among the newest `offset + length` of each
        // partition.
        let wanted = offset.saturating_add(length);
        let mut tids = Vec::new();
        for &partition in partitions {
            let mut taken = 0;
            self.tables.scan(
                Table::Trans,
                trans_span(partition),
                Direction::Backward,
                |key, _| {
                    if taken == wanted {
                        return ControlFlow::Break(());
                    }
                    taken += 1;
                    tids.push(codec::split_trans_key(key).1);
                    ControlFlow::Continue(())
                },
            );
        }
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
        let mut tids = Vec::new();
        self.tables.scan(
            Table::Trans,
            (
                Included(codec::trans_key(partition, min)),
                Included(codec::trans_key(partition, max)),
            ),
            Direction::Forward,
            |key, _| {
                if tids.len() == length as usize {
                    return ControlFlow::Break(());
                }
                tids.push(codec::split_trans_key(key).1);
                ControlFlow::Continue(())
            },
        );
        tids
    }

    fn oids_from(
        &self,
        partition: u32,
        length: u32,
        min_oid: Oid,
        tid: Tid,
    ) -> (Option<Oid>, Vec<Oid>) {
        // Oid by oid, its latest record at or before `tid`; oids with none
        // are not counted.
        let mut seen = 0u32;
        let mut last_seen = None;
        let mut oids = Vec::new();
        let mut from = Some(min_oid);
        while let Some(start) = from.filter(|_| seen < length) {
            let Some(oid) = self.next_oid(partition, start) else {
                break;
            };
            from = oid.0.checked_add(1).map(Oid);
            let Some((_, record)) = self.first_record(
                partition,
                oid,
                Unbounded,
                Included(tid),
                Direction::Backward,
            ) else {
                continue;
            };
            seen += 1;
            last_seen = Some(oid);
            if record.data_id.is_some() {
                oids.push(oid);
            }
        }
        let next = if seen < length {
            None
        } else {
            last_seen.and_then(|oid| oid.0.checked_add(u64::from(self.np())).map(Oid))
        };
        (next, oids)
    }

    fn pack_orders(&self, min_id: Tid, partitions: &[u32]) -> Vec<PackOrder> {
        let mut orders = Vec::new();
        self.tables.scan(
            Table::Pack,
            (Included(codec::u64_key(min_id.0)), Unbounded),
            Direction::Forward,
            |key, value| {
                let id = Tid(codec::split_u64_key(key));
                // Still keyed by its TTID: not committed.
                let pending = self.tables.get(Table::TTrans, key, |_| ()).is_some();
                if !pending && partitions.contains(&self.partition_of(id.0)) {
                    orders.push(codec::decode_pack_order(value));
                }
                ControlFlow::Continue(())
            },
        );
        orders
    }

    fn sign_pack_orders(&mut self, approved: &[Tid], rejected: &[Tid]) -> Vec<Tid> {
        let changed: Vec<Tid> = approved
            .iter()
            .chain(rejected)
            .filter(|&&id| self.get_pack_order(id).is_some())
            .copied()
            .collect();
        if !changed.is_empty() {
            for (ids, value) in [(approved, true), (rejected, false)] {
                for &id in ids {
                    if let Some(mut order) = self.get_pack_order(id) {
                        order.approved = Some(value);
                        self.put_pack_order(id, &order);
                    }
                }
            }
        }
        changed
    }

    fn packed(&self) -> Vec<(u32, Tid)> {
        (0..self.np())
            .filter_map(|p| self.own_cell(p).and_then(|c| c.pack).map(|id| (p, id)))
            .collect()
    }

    fn set_packed(&mut self, partition: u32, pack_id: Tid) {
        self.update_own_cell(partition, |cell| cell.pack = Some(pack_id));
    }

    fn pack(
        &mut self,
        partition: u32,
        pack_tid: Tid,
        oids: Option<&[Oid]>,
        from: Oid,
        limit: usize,
    ) -> Option<Oid> {
        // The oids to look at in this step, and one more: where to go on.
        let wanted = limit.saturating_add(1);
        let candidates: Vec<Oid> = match oids {
            Some(listed) => {
                let mut mine: Vec<Oid> = listed
                    .iter()
                    .filter(|oid| self.partition_of(oid.0) == partition && **oid >= from)
                    .copied()
                    .collect();
                mine.sort_unstable();
                mine.dedup();
                mine.truncate(wanted);
                mine
            }
            None => {
                let mut distinct = Vec::new();
                let mut start = Some(from);
                while let Some(oid) = start
                    .filter(|_| distinct.len() < wanted)
                    .and_then(|start| self.next_oid(partition, start))
                {
                    distinct.push(oid);
                    start = oid.0.checked_add(1).map(Oid);
                }
                distinct
            }
        };
        let next = candidates.get(limit).copied();
        let mut orphans = Vec::new();
        for &oid in candidates.iter().take(limit) {
            let old = self.records(partition, oid, Unbounded, Included(pack_tid));
            let Some(&(newest, record)) = old.last() else {
                continue;
            };
            // The newest record at the pack point is the state from then
            // on: older ones go; a deletion goes with them.
            let keep_newest = record.data_id.is_some();
            for (tid, _) in old {
                if tid != newest || !keep_newest {
                    self.remove_obj(partition, oid, tid, &mut orphans);
                }
            }
        }
        self.prune(orphans);
        next
    }

    fn pack_order(&self, id: Tid) -> Option<PackOrder> {
        self.get_pack_order(id)
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
        let mut records = Vec::new();
        self.tables.scan(
            Table::ObjByTid,
            (
                Included(codec::obj_tid_key(partition, min_tid, min_oid)),
                Included(codec::obj_tid_key(partition, max_tid, Oid::INVALID)),
            ),
            Direction::Forward,
            |key, _| {
                if records.len() == length as usize {
                    return ControlFlow::Break(());
                }
                let (_, tid, oid) = codec::split_obj_tid_key(key);
                records.push((tid, oid));
                ControlFlow::Continue(())
            },
        );
        records
    }

    fn add_transaction(&mut self, tid: Tid, meta: &TransactionMeta, pack: Option<&PackOrder>) {
        let partition = self.partition_of(tid.0);
        let mut value = Vec::new();
        codec::encode_meta(meta, &mut value);
        self.tables
            .put(Table::Trans, &codec::trans_key(partition, tid), &value);
        if let Some(pack) = pack {
            self.put_pack_order(tid, pack);
        }
    }

    fn add_object(
        &mut self,
        oid: Oid,
        serial: Tid,
        data: Option<&ObjectData>,
        data_serial: Option<Tid>,
    ) {
        let partition = self.partition_of(oid.0);
        let reused = data_serial.and_then(|s| self.record_data(oid, s));
        let (data_id, held) = match reused {
            Some(data_id) => (data_id, false),
            None => (data.map(|d| self.store_data(oid, d)), true),
        };
        let record = ObjectRecord {
            data_id,
            value_tid: data_serial,
        };
        let mut orphans = Vec::new();
        self.insert_obj(partition, oid, serial, record, &mut orphans);
        self.prune(orphans);
        if let (Some(id), true) = (data_id, held) {
            self.release_data(id);
        }
    }

    fn delete_transaction(&mut self, tid: Tid) {
        let partition = self.partition_of(tid.0);
        self.tables
            .delete(Table::Trans, &codec::trans_key(partition, tid));
        self.tables.delete(Table::Pack, &codec::u64_key(tid.0));
    }

    fn delete_object(&mut self, oid: Oid, serial: Tid) {
        let partition = self.partition_of(oid.0);
        let mut orphans = Vec::new();
        self.remove_obj(partition, oid, serial, &mut orphans);
        self.prune(orphans);
    }

    fn set_replicated_up_to(&mut self, partition: u32, tid: Tid) {
        self.update_own_cell(partition, |cell| {
            if cell.state == CellState::OutOfDate && cell.replicated < tid {
                cell.replicated = tid;
            }
        });
    }

    fn lower_packed(&mut self, partition: u32, pack_id: Tid) {
        self.update_own_cell(partition, |cell| {
            if cell.pack.is_some_and(|p| pack_id < p) {
                cell.pack = Some(pack_id);
            }
        });
    }

    fn drop_partitions_temporary(&mut self, partitions: &[u32]) {
        let mut doomed = Vec::new();
        self.tables
            .scan(Table::TObj, EVERY_KEY, Direction::Forward, |key, value| {
                let (partition, record) = codec::decode_temp_record(value);
                if partitions.contains(&partition) {
                    doomed.push((codec::split_tobj_key(key), record));
                }
                ControlFlow::Continue(())
            });
        let mut orphans = Vec::new();
        for ((ttid, oid), record) in doomed {
            self.tables.delete(Table::TObj, &codec::tobj_key(ttid, oid));
            orphans.extend(self.drop_ref(&record));
        }
        let mut ttids = Vec::new();
        self.tables.scan(
            Table::TTrans,
            EVERY_KEY,
            Direction::Forward,
            |key, value| {
                if partitions.contains(&codec::decode_temp_transaction(value).partition) {
                    ttids.push(codec::split_u64_key(key));
                }
                ControlFlow::Continue(())
            },
        );
        for ttid in ttids {
            self.tables.delete(Table::TTrans, &codec::u64_key(ttid));
            self.tables.delete(Table::Pack, &codec::u64_key(ttid));
        }
        self.prune(orphans);
    }

    fn truncate(&mut self) {
        let Some(tid) = self.config_tid(config_key::TRUNCATE_TID) else {
            return;
        };
        self.set_config_tid(config_key::TRUNCATE_TID, None);
        let assigned: Vec<u32> = (0..self.np())
            .filter(|&o| self.own_cell(o).is_some())
            .collect();
        let mut orphans = Vec::new();
        for partition in assigned {
            let later = (
                Excluded(codec::trans_key(partition, tid)),
                trans_span(partition).1,
            );
            for (_, doomed) in self.keys(Table::Trans, later, codec::split_trans_key) {
                self.tables
                    .delete(Table::Trans, &codec::trans_key(partition, doomed));
                self.tables.delete(Table::Pack, &codec::u64_key(doomed.0));
            }
            let later = (
                Excluded(codec::obj_tid_key(partition, tid, Oid::INVALID)),
                Included(codec::obj_tid_key(partition, Tid::INVALID, Oid::INVALID)),
            );
            for (_, doomed, oid) in self.keys(Table::ObjByTid, later, codec::split_obj_tid_key) {
                self.remove_obj(partition, oid, doomed, &mut orphans);
            }
        }
        for offset in 0..self.np() {
            self.update_own_cell(offset, |cell| {
                if cell.state == CellState::OutOfDate && cell.replicated > tid {
                    cell.replicated = tid;
                }
            });
        }
        self.prune(orphans);
    }

    fn last_ids(&self) -> (Option<Tid>, Option<Oid>) {
        let mut last_tid = None;
        let mut last_oid = None;
        for partition in self.readable_partitions() {
            let tid = self.last_tid_of(partition);
            if tid != Tid::ZERO {
                last_tid = last_tid.max(Some(tid));
            }
            let oid = self.tables.first(
                Table::Obj,
                obj_span(partition),
                Direction::Backward,
                |key, _| codec::split_obj_key(key).1,
            );
            last_oid = last_oid.max(oid);
        }
        (last_tid, last_oid)
    }

    fn first_tid(&self) -> Tid {
        // Keys sort by partition then TID: the first key of each partition
        // has its smallest TID; hop from partition to partition.
        let mut first: Option<Tid> = None;
        for table in [Table::Trans, Table::ObjByTid] {
            let mut partition = Some(0u32);
            while let Some(p) = partition {
                let Some(key) = self.tables.first(
                    table,
                    (Included(p.to_be_bytes()), Unbounded),
                    Direction::Forward,
                    |key, _| key.to_vec(),
                ) else {
                    break;
                };
                // Both keys start with `partition ‖ tid`.
                let (p, tid) = codec::split_trans_key(&key[..12]);
                first = Some(first.map_or(tid, |first| first.min(tid)));
                partition = p.checked_add(1);
            }
        }
        first.unwrap_or(Tid::MAX)
    }

    fn erase(&mut self) {
        self.tables.erase();
        self.holds.clear();
    }

    fn sync(&mut self) {
        self.tables.commit();
    }
}

impl LmdbStore {
    fn put_table_header(&mut self, ptid: Ptid, num_replicas: u32) {
        self.tables.put(
            Table::Config,
            config_key::TABLE,
            &codec::encode_table_header(ptid, num_replicas),
        );
    }

    fn put_temp_transaction(&mut self, ttid: Tid, temp: &TempTransaction) {
        self.tables.put(
            Table::TTrans,
            &codec::u64_key(ttid.0),
            &codec::encode_temp_transaction(temp),
        );
    }
}
