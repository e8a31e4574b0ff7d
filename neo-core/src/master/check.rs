//! Checking replicas, the primary's side (cluster.md 7.8): `neoctl check`
//! names partitions (and optionally a storage known to hold good data);
//! for each partition with more than one readable cell, one of its
//! storages is told to compare the replicas (CheckPartition), and reports
//! the cells that differ (NotifyPartitionCorrupted).
//!
//! NEO/py only logs such a report (its CORRUPTED state is experimental,
//! because a pack running during the check makes replicas differ for a
//! while). We mark the cells CORRUPTED, so that they are no longer read,
//! but only when no pack was being applied during the check, and never
//! the last readable cell of a partition: without a replica known to be
//! good, the report is logged for the operator to rerun the check with a
//! reference.

use std::collections::BTreeSet;

use neo_proto::{CheckPartition, CheckReplicas, CheckSource, Nid};

use super::admin::ack;
use super::Master;
use crate::net::Reject;
use crate::node::{ConnId, Level};

impl Master {
    pub(super) fn check_replicas_command(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        request: CheckReplicas,
    ) -> Result<(), Reject> {
        let primary = self.primary().unwrap();
        let max_tid = request.max_tid.unwrap_or(primary.commits.last_transaction);
        let pack_generation = primary.pm.quiet_generation();
        if request.min_tid > max_tid {
            self.log(
                Level::Warn,
                format!(
                    "nothing to check: min_tid={} > max_tid={max_tid}",
                    request.min_tid
                ),
            );
            self.net.answer(conn, msg_id, ack(""));
            return Ok(());
        }
        let mut sends = Vec::new();
        let mut checkers: BTreeSet<Nid> = BTreeSet::new();
        for (offset, reference) in request.partitions.0 {
            if offset >= self.pt.num_partitions() {
                return Err(Reject::denied(format!("invalid partition {offset}")));
            }
            let reference = match reference {
                None => None,
                Some(nid) => match self.nodes.entry_by_nid(nid).and_then(|e| e.address()) {
                    Some(address) => Some(address.clone()),
                    None => return Err(Reject::denied(format!("unknown storage node {nid}"))),
                },
            };
            let readable: Vec<Nid> = self
                .pt
                .row(offset)
                .iter()
                .filter(|c| c.is_readable())
                .map(|c| c.nid)
                .collect();
            if readable.len() <= 1 {
                continue;
            }
            // Spread the work, as NEO/py: a storage already checking
            // another partition is preferred, else the last replica.
            let checker = readable
                .iter()
                .copied()
                .find(|nid| checkers.contains(nid))
                .unwrap_or(*readable.last().unwrap());
            checkers.insert(checker);
            let Some(key) = self.nodes.by_nid(checker) else {
                continue;
            };
            sends.push((
                key,
                CheckPartition {
                    partition: offset,
                    source: CheckSource {
                        upstream_name: Default::default(),
                        address: reference,
                    },
                    min_tid: request.min_tid,
                    max_tid,
                },
            ));
        }
        for (key, check) in sends {
            let Some(checker) = self.nodes.get(key).and_then(|e| e.nid()) else {
                continue;
            };
            self.log(
                Level::Info,
                format!(
                    "checking replicas of partition {} on {}",
                    check.partition,
                    self.node_desc(key)
                ),
            );
            self.primary_mut()
                .unwrap()
                .checks
                .insert(check.partition, (checker, pack_generation));
            self.send_to(key, check);
        }
        self.net.answer(conn, msg_id, ack(""));
        Ok(())
    }

    /// A storage checking `partition` found replicas on `nids` different.
    pub(super) fn on_partition_corrupted(&mut self, reporter: Nid, partition: u32, nids: &[Nid]) {
        let names: Vec<String> = nids.iter().map(Nid::to_string).collect();
        let names = names.join(", ");
        self.log(
            Level::Error,
            format!("{reporter} reports partition {partition} corrupted in: {names}"),
        );
        let primary = self.primary_mut().unwrap();
        // Only the storage told to check it may report, once: any storage
        // could name any cells otherwise.
        let Some((checker, generation)) = primary.checks.get(&partition).copied() else {
            self.log(
                Level::Warn,
                format!("{reporter}: no check of partition {partition} is under way"),
            );
            return;
        };
        if checker != reporter {
            self.log(
                Level::Warn,
                format!("{reporter} reports on partition {partition}, which {checker} checks"),
            );
            return;
        }
        primary.checks.remove(&partition);
        let primary = self.primary().unwrap();
        if generation.is_none() || generation != primary.pm.quiet_generation() {
            self.log(
                Level::Warn,
                format!(
                    "partition {partition}: cells not marked CORRUPTED, a pack was applied while it was checked (or the check was not ours); check it again"
                ),
            );
            return;
        }
        match self.pt.mark_corrupted(partition, nids) {
            Ok(changes) => self.broadcast_pt_changes(changes, None),
            Err(error) => self.log(
                Level::Error,
                format!(
                    "cells of {names} not marked CORRUPTED: {error}; check partition {partition} again with a reference storage"
                ),
            ),
        }
    }
}
