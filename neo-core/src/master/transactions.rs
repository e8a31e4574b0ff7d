//! The master's commit coordinator (cluster.md 5.2, 5.10–5.14): TTIDs and
//! final TIDs, the commit queue, and who still has to lock what.
//!
//! A transaction gets a TTID at begin and its final TID at finish; both
//! come from the clock, forced above every TID committed, pending or
//! queued (NEO/py only looked at pending transactions when there were any,
//! which gave two transactions the same TID with a clock behind: 13.2). A
//! final TID is congruent to its TTID modulo the number of partitions, so
//! the transaction's metadata lands in the same partition under both.
//! Commits are announced in TID order even when locks complete out of
//! order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use neo_proto::{Nid, Oid, Partitions, Tid};

use crate::node::ConnId;
use crate::node_table::NodeKey;

/// A pending transaction.
#[derive(Debug)]
pub(super) struct Txn {
    /// The committing client; `None` once it is gone while the
    /// transaction finishes (an orphan, committed all the same).
    pub client: Option<NodeKey>,
    /// Storage readiness when it began: storages ready since then are not
    /// expected to hold it in full.
    pub readiness: u64,
    pub ttid: Tid,
    /// Final TID, once finishing.
    pub tid: Option<Tid>,
    /// Oids to invalidate, and partitions touched.
    pub oids: Vec<Oid>,
    pub partitions: Vec<u32>,
    /// Storages asked to lock, and those that have not answered.
    pub involved: BTreeSet<Nid>,
    pub locking: BTreeSet<Nid>,
    /// Storages the client could not write to, accepted by FailedVote.
    pub failed: BTreeSet<Nid>,
    /// Storages to tell when it ends (replication waits for it).
    pub notify: BTreeSet<Nid>,
    /// Clients waiting in AskFinalTID: their connection and message id.
    pub final_tid_waiters: Vec<(ConnId, u32)>,
    /// Message id of AskFinishTransaction, answered at commit.
    pub finish_msg_id: u32,
}

/// Most oids one AskNewOIDs gets.
pub(super) const NEW_OIDS_COUNT_MAX: u32 = 1000;

/// Why a begin is refused (the client misbehaves: PROTOCOL_ERROR).
pub(super) const BEGIN_WITH_TID_ERROR: &str =
    "There can't be concurrent transactions when a TID is specified for any of them.";

/// Outcome of FailedVote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VoteOutcome {
    /// The failed storages can be disconnected at finish.
    Accepted,
    /// Not without making the table non-operational.
    Incomplete,
    /// Only once another transaction that also lost storages ends.
    Delay,
}

#[derive(Debug, Default)]
pub(super) struct CommitCoordinator {
    txns: BTreeMap<Tid, Txn>,
    /// TTIDs whose final TID is chosen, in TID order.
    queue: VecDeque<Tid>,
    pub last_transaction: Tid,
    pub last_oid: Oid,
    pub first_tid: Tid,
}

impl CommitCoordinator {
    pub(super) fn new() -> CommitCoordinator {
        CommitCoordinator {
            first_tid: Tid::MAX,
            ..CommitCoordinator::default()
        }
    }

    pub(super) fn get(&self, ttid: Tid) -> Option<&Txn> {
        self.txns.get(&ttid)
    }

    pub(super) fn get_mut(&mut self, ttid: Tid) -> Option<&mut Txn> {
        self.txns.get_mut(&ttid)
    }

    pub(super) fn has_pending(&self) -> bool {
        !self.txns.is_empty()
    }

    /// Transactions whose final TID is chosen.
    pub(super) fn finishing(&self) -> impl Iterator<Item = &Txn> {
        self.txns.values().filter(|t| t.tid.is_some())
    }

    /// AskNewOIDs: the next `count` oids.
    /// The next `count` oids, at most [`NEW_OIDS_COUNT_MAX`] (clients ask
    /// for 100; fewer than asked is a valid answer), none past the last
    /// possible oid.
    pub(super) fn new_oids(&mut self, count: u32) -> Vec<Oid> {
        let count = u64::from(count.min(NEW_OIDS_COUNT_MAX));
        let oids: Vec<Oid> = (1..=count)
            .map_while(|i| self.last_oid.0.checked_add(i).map(Oid))
            .collect();
        if let Some(last) = oids.last() {
            self.last_oid = *last;
        }
        oids
    }

    pub(super) fn set_last_oid(&mut self, oid: Oid) {
        self.last_oid = self.last_oid.max(oid);
    }

    /// The bound every new TID must exceed: the last committed TID, every
    /// pending TTID and the last queued final TID.
    pub(super) fn last_tid_bound(&self) -> Tid {
        let mut bound = self.last_transaction;
        if let Some((&ttid, _)) = self.txns.last_key_value() {
            bound = bound.max(ttid);
        }
        if let Some(tid) = self.queue.back().and_then(|t| self.txns[t].tid) {
            bound = bound.max(tid);
        }
        bound
    }

    /// NEO/py's `_nextTID`: a TID from the clock, above the bound; for a
    /// final TID (`ttid` given), in the same partition as the TTID,
    /// preferring to go down rather than far into the future.
    pub(super) fn next_tid(&self, clock: Tid, ttid: Option<(Tid, Partitions)>) -> Tid {
        let bound = self.last_tid_bound();
        let mut tid = clock;
        if tid <= bound {
            if ttid.is_some_and(|(ttid, _)| ttid == bound) {
                return bound;
            }
            tid = bound.add_ticks(1);
        }
        if let Some((ttid, partitions)) = ttid {
            let np = i64::from(partitions.count());
            let delta = i64::from(partitions.of(ttid.0)) - i64::from(partitions.of(tid.0));
            if delta != 0 {
                tid = tid.add_ticks(delta);
                if tid <= bound {
                    tid = tid.add_ticks(np);
                }
            }
        }
        tid
    }

    /// AskBeginTransaction.
    pub(super) fn begin(
        &mut self,
        client: NodeKey,
        readiness: u64,
        tid: Option<Tid>,
        clock: Tid,
    ) -> Result<Tid, String> {
        let ttid = match tid {
            None => {
                let only_explicit = self.txns.len() == 1
                    && self.queue.len() == 1
                    && self.txns.values().next().unwrap().tid.is_none();
                if only_explicit {
                    return Err(BEGIN_WITH_TID_ERROR.into());
                }
                self.next_tid(clock, None)
            }
            Some(_) if !self.txns.is_empty() => return Err(BEGIN_WITH_TID_ERROR.into()),
            Some(tid) if tid > Tid::MAX => {
                return Err(format!("TID {tid} is past the last possible TID"))
            }
            Some(tid) if tid <= self.last_transaction => {
                return Err("new TID must be greater than the last committed one".into())
            }
            Some(tid) => {
                // Its final TID will be the same: queued at once.
                self.queue.push_back(tid);
                tid
            }
        };
        self.txns.insert(
            ttid,
            Txn {
                client: Some(client),
                readiness,
                ttid,
                tid: None,
                oids: Vec::new(),
                partitions: Vec::new(),
                involved: BTreeSet::new(),
                locking: BTreeSet::new(),
                failed: BTreeSet::new(),
                notify: BTreeSet::new(),
                final_tid_waiters: Vec::new(),
                finish_msg_id: 0,
            },
        );
        Ok(ttid)
    }

    /// FailedVote: `failed` are the storages ready at begin that the
    /// client could not write to; `operational(without)` says whether the
    /// table stays operational without some nodes.
    pub(super) fn vote(
        &mut self,
        ttid: Tid,
        failed: BTreeSet<Nid>,
        operational: &dyn Fn(&BTreeSet<Nid>) -> bool,
    ) -> VoteOutcome {
        if failed.is_empty() {
            return VoteOutcome::Accepted;
        }
        if !operational(&failed) {
            return VoteOutcome::Incomplete;
        }
        let mut all_failed = failed.clone();
        for txn in self.txns.values() {
            all_failed.extend(txn.failed.iter().copied());
        }
        if !operational(&all_failed) {
            return VoteOutcome::Delay;
        }
        self.txns.get_mut(&ttid).unwrap().failed = failed;
        VoteOutcome::Accepted
    }

    /// AskFinishTransaction accepted: the final TID is chosen and the
    /// involved storages are asked to lock.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare(
        &mut self,
        ttid: Tid,
        oids: Vec<Oid>,
        partitions: Vec<u32>,
        involved: BTreeSet<Nid>,
        finish_msg_id: u32,
        clock: Tid,
        num_partitions: Partitions,
    ) -> Tid {
        let tid = if self.queue.contains(&ttid) {
            ttid
        } else {
            let tid = self.next_tid(clock, Some((ttid, num_partitions)));
            self.queue.push_back(ttid);
            tid
        };
        if let Some(&max) = oids.iter().max() {
            self.set_last_oid(max);
        }
        let txn = self.txns.get_mut(&ttid).unwrap();
        txn.tid = Some(tid);
        txn.oids = oids;
        txn.partitions = partitions;
        txn.locking = involved.clone();
        txn.involved = involved;
        txn.finish_msg_id = finish_msg_id;
        tid
    }

    /// Whether the head of the queue can commit now.
    fn head_ready(&self) -> bool {
        self.queue
            .front()
            .and_then(|ttid| self.txns.get(ttid))
            .is_some_and(|t| t.tid.is_some() && t.locking.is_empty())
    }

    /// AnswerInformationLocked from `nid`; returns the transactions that
    /// commit now, in TID order.
    pub(super) fn lock(&mut self, ttid: Tid, nid: Nid) -> Vec<Txn> {
        if let Some(txn) = self.txns.get_mut(&ttid) {
            txn.locking.remove(&nid);
        }
        self.unlock_pending()
    }

    /// A storage is gone: stop waiting for its locks.
    pub(super) fn storage_lost(&mut self, nid: Nid) -> Vec<Txn> {
        for txn in self.txns.values_mut() {
            txn.notify.remove(&nid);
            if txn.tid.is_some() {
                txn.locking.remove(&nid);
                txn.involved.remove(&nid);
            }
        }
        self.unlock_pending()
    }

    /// Pops, in TID order, the transactions every involved storage locked.
    fn unlock_pending(&mut self) -> Vec<Txn> {
        let mut committed = Vec::new();
        while self.head_ready() {
            let ttid = self.queue.pop_front().unwrap();
            let txn = self.txns.remove(&ttid).unwrap();
            let tid = txn.tid.unwrap();
            debug_assert!(self.last_transaction < tid);
            self.first_tid = self.first_tid.min(tid);
            self.last_transaction = tid;
            committed.push(txn);
        }
        committed
    }

    /// AbortTransaction: returns the storages waiting for its end, or why
    /// it cannot be aborted.
    pub(super) fn abort(&mut self, ttid: Tid) -> Result<BTreeSet<Nid>, String> {
        match self.txns.get(&ttid) {
            None => Err(format!("unknown ttid {ttid}")),
            Some(txn) if txn.tid.is_some() => {
                Err(format!("commit already requested for ttid {ttid}"))
            }
            Some(_) => {
                let txn = self.remove(ttid).unwrap();
                Ok(txn.notify)
            }
        }
    }

    fn remove(&mut self, ttid: Tid) -> Option<Txn> {
        self.queue.retain(|t| *t != ttid);
        self.txns.remove(&ttid)
    }

    /// The client is gone: transactions it had not finished are aborted
    /// (returned with the storages to tell), finishing ones become orphans.
    pub(super) fn client_lost(&mut self, client: NodeKey) -> Vec<(Tid, BTreeSet<Nid>)> {
        let mut aborted = Vec::new();
        let ttids: Vec<Tid> = self.txns.keys().copied().collect();
        for ttid in ttids {
            let txn = self.txns.get_mut(&ttid).unwrap();
            if txn.client != Some(client) {
                continue;
            }
            if txn.tid.is_some() {
                txn.client = None;
            } else {
                let txn = self.remove(ttid).unwrap();
                aborted.push((ttid, txn.notify));
            }
        }
        aborted
    }

    /// A replicating storage wants to hear when every pending transaction
    /// ends (AskUnfinishedTransactions); returns their TTIDs.
    pub(super) fn register_for_notification(&mut self, nid: Nid) -> Vec<Tid> {
        for txn in self.txns.values_mut() {
            txn.notify.insert(nid);
        }
        self.txns.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(count: u32) -> Partitions {
        Partitions::new(count).unwrap()
    }

    fn tm_with_last(last: Tid) -> CommitCoordinator {
        let mut tm = CommitCoordinator::new();
        tm.last_transaction = last;
        tm
    }

    #[test]
    fn new_oids_are_bounded_and_stop_at_the_last_oid() {
        let mut tm = tm_with_last(Tid::ZERO);
        assert_eq!(tm.new_oids(u32::MAX).len(), NEW_OIDS_COUNT_MAX as usize);
        tm.set_last_oid(Oid(u64::MAX - 2));
        assert_eq!(tm.new_oids(100), [Oid(u64::MAX - 1), Oid(u64::MAX)]);
        assert!(tm.new_oids(100).is_empty());
    }

    #[test]
    fn an_explicit_tid_past_the_last_possible_one_is_refused() {
        let mut tm = tm_with_last(Tid::ZERO);
        let clock = Tid::from_unix_time(1_767_225_600.0);
        assert!(tm.begin(key(), 0, Some(Tid(u64::MAX)), clock).is_err());
        assert!(tm.begin(key(), 0, Some(Tid::MAX), clock).is_ok());
    }

    fn key() -> NodeKey {
        let mut nodes = crate::node_table::NodeTable::new();
        nodes.add(
            neo_proto::NodeType::Client,
            None,
            None,
            neo_proto::NodeState::Running,
        )
    }

    #[test]
    fn final_tids_are_congruent_to_their_ttid_and_increasing() {
        let now = Tid::from_unix_time(1_767_225_600.0);
        let mut tm = tm_with_last(Tid::ZERO);
        let client = key();
        let a = tm.begin(client, 0, None, now).unwrap();
        let b = tm.begin(client, 0, None, now).unwrap();
        assert!(
            a < b,
            "TTIDs are unique and increasing even from one clock reading"
        );
        let tb = tm.prepare(b, vec![], vec![], BTreeSet::new(), 0, now, np(12));
        let ta = tm.prepare(a, vec![], vec![], BTreeSet::new(), 0, now, np(12));
        assert_eq!(tb.0 % 12, b.0 % 12);
        assert_eq!(ta.0 % 12, a.0 % 12);
        assert!(
            tb >= b && ta > tb,
            "final TIDs are ≥ their TTID and above queued TIDs"
        );
        // Nothing to lock: both commit, in queue order.
        let committed: Vec<Tid> = tm.lock(b, Nid(1)).iter().map(|t| t.ttid).collect();
        assert_eq!(committed, vec![b, a]);
        assert_eq!(tm.last_transaction, ta);
    }

    #[test]
    fn a_clock_behind_the_last_tid_still_gives_unique_tids() {
        // 13.2: T1 begins, T2 begins and commits with TID = TTID, T3 begins
        // and must not get T2's TID.
        let clock = Tid::from_unix_time(1_767_225_600.0);
        let last = clock.add_ticks(1_000_000);
        let mut tm = tm_with_last(last);
        let client = key();
        let t1 = tm.begin(client, 0, None, clock).unwrap();
        let t2 = tm.begin(client, 0, None, clock).unwrap();
        let tid2 = tm.prepare(t2, vec![], vec![], BTreeSet::new(), 0, clock, np(1));
        assert_eq!(tid2, t2, "clock behind: the TTID is reused as final TID");
        // T1 is the head of nothing: T2 is queued alone and commits.
        let committed = tm.lock(t2, Nid(1));
        assert_eq!(committed.len(), 1);
        let t3 = tm.begin(client, 0, None, clock).unwrap();
        assert!(t3 > tid2 && t3 > t1);
        let tid3 = tm.prepare(t3, vec![], vec![], BTreeSet::new(), 0, clock, np(1));
        assert!(tid3 > tid2);
    }

    #[test]
    fn commits_wait_for_locks_in_tid_order_and_for_lost_storages() {
        let now = Tid::from_unix_time(1_767_225_600.0);
        let mut tm = tm_with_last(Tid::ZERO);
        let client = key();
        let a = tm.begin(client, 0, None, now).unwrap();
        let b = tm.begin(client, 0, None, now).unwrap();
        let nodes: BTreeSet<Nid> = [Nid(1), Nid(2)].into();
        tm.prepare(a, vec![Oid(1)], vec![1], nodes.clone(), 7, now, np(4));
        tm.prepare(b, vec![Oid(9)], vec![1], nodes, 8, now, np(4));
        assert!(tm.lock(b, Nid(1)).is_empty());
        assert!(tm.lock(b, Nid(2)).is_empty(), "b waits for a, queued first");
        assert!(tm.lock(a, Nid(1)).is_empty());
        let committed: Vec<Tid> = tm.storage_lost(Nid(2)).iter().map(|t| t.ttid).collect();
        assert_eq!(committed, vec![a, b]);
        assert_eq!(tm.last_oid, Oid(9));
    }

    #[test]
    fn explicit_tids_are_exclusive_and_above_the_last_commit() {
        let now = Tid::from_unix_time(1_767_225_600.0);
        let mut tm = tm_with_last(Tid(1000));
        let client = key();
        assert!(tm.begin(client, 0, Some(Tid(1000)), now).is_err());
        assert_eq!(tm.begin(client, 0, Some(Tid(2000)), now), Ok(Tid(2000)));
        assert!(tm.begin(client, 0, None, now).is_err());
        assert!(tm.begin(client, 0, Some(Tid(3000)), now).is_err());
        let tid = tm.prepare(Tid(2000), vec![], vec![], BTreeSet::new(), 0, now, np(4));
        assert_eq!(tid, Tid(2000));
    }

    #[test]
    fn failed_votes_are_arbitrated_across_transactions() {
        let now = Tid::from_unix_time(1_767_225_600.0);
        let mut tm = tm_with_last(Tid::ZERO);
        let client = key();
        let a = tm.begin(client, 0, None, now).unwrap();
        let b = tm.begin(client, 0, None, now).unwrap();
        // Two storages; losing both is not operational.
        let operational = |without: &BTreeSet<Nid>| without.len() < 2;
        assert_eq!(
            tm.vote(a, [Nid(1)].into(), &operational),
            VoteOutcome::Accepted
        );
        assert_eq!(
            tm.vote(b, [Nid(2)].into(), &operational),
            VoteOutcome::Delay
        );
        assert_eq!(
            tm.vote(b, [Nid(1), Nid(2)].into(), &operational),
            VoteOutcome::Incomplete
        );
        assert!(tm.abort(a).is_ok());
        assert_eq!(
            tm.vote(b, [Nid(2)].into(), &operational),
            VoteOutcome::Accepted
        );
        assert!(tm.abort(a).is_err());
    }
}
