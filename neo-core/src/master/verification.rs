//! VERIFYING: decide the fate of transactions caught in their second phase,
//! perform a requested truncation, learn the last ids and pack orders.
//!
//! 1. AskLockedTransactions of every node with a readable cell: a
//!    transaction is committed if one of them locked it, or — asking
//!    AskFinalTID of the other readable nodes of its partition — already
//!    made it permanent; ValidateTransaction then commits it on every node
//!    that voted it. Temporary data of nodes without readable cells is
//!    never trusted.
//! 2. AskLastIDs of every storage (which first truncates if asked).
//! 3. AskPackOrders of readable nodes.
//!
//! Then RUNNING.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use neo_proto::{
    AskFinalTID, AskLastIDs, AskLockedTransactions, AskPackOrders, ClusterState, Nid, NodeType,
    Oid, PackOrder, Packet, Tid, ValidateTransaction,
};

use super::{Master, PrimaryPhase, Request};
use crate::node::Level;
use crate::node_table::NodeKey;

#[derive(Debug)]
enum Step {
    LockedTransactions,
    /// Asking AskFinalTID, one node at a time.
    FinalTid {
        /// Transactions still to resolve, with the nodes to ask.
        queue: VecDeque<(Tid, VecDeque<Nid>)>,
        /// The node asked about the head of the queue.
        asked: Option<Nid>,
    },
    LastIds,
    PackOrders,
}

#[derive(Debug)]
pub(super) struct Verification {
    step: Step,
    /// Nodes whose answer we wait for in the current step.
    waiting: BTreeSet<Nid>,
    locked: BTreeMap<Tid, Tid>,
    voted: BTreeMap<Tid, BTreeSet<Nid>>,
    last_tid: Tid,
    last_oid: Option<Oid>,
    first_tid: Option<Tid>,
    pack_orders: Vec<PackOrder>,
}

impl Master {
    pub(super) fn enter_verification(&mut self) {
        let primary = self.primary_mut().unwrap();
        primary.epoch += 1;
        // Transactions are decided from what storages hold.
        primary.commits = super::transactions::CommitCoordinator::new();
        primary.pm.forget_orders();
        primary.postponed.clear();
        primary.phase = PrimaryPhase::Verification(Verification {
            step: Step::LockedTransactions,
            waiting: BTreeSet::new(),
            locked: BTreeMap::new(),
            voted: BTreeMap::new(),
            last_tid: Tid::ZERO,
            last_oid: None,
            first_tid: None,
            pack_orders: Vec::new(),
        });
        self.set_cluster_state(ClusterState::Verifying);
        // Every identified storage gets the full table, replacing theirs.
        let storages: Vec<NodeKey> = self.nodes.identified_of_type(NodeType::Storage);
        for key in storages {
            self.send_partition_table(key);
        }
        let readable: Vec<Nid> = self.pt.nodes(true).into_iter().collect();
        self.ask_storages(&readable, |epoch| {
            (
                AskLockedTransactions {}.into(),
                Request::LockedTransactions { epoch },
            )
        });
    }

    fn verification_mut(&mut self) -> Option<&mut Verification> {
        match &mut self.primary_mut()?.phase {
            PrimaryPhase::Verification(verification) => Some(verification),
            _ => None,
        }
    }

    /// Sends a request to each of these storages and waits for them all.
    fn ask_storages(&mut self, nids: &[Nid], packet: impl Fn(u64) -> (Packet, Request)) {
        let epoch = self.primary().unwrap().epoch;
        let mut waiting = BTreeSet::new();
        for &nid in nids {
            let Some(conn) = self
                .nodes
                .entry_by_nid(nid)
                .filter(|e| e.identified)
                .and_then(|e| e.conn)
            else {
                continue;
            };
            let (packet, request) = packet(epoch);
            self.net.ask(conn, packet, request);
            waiting.insert(nid);
        }
        self.verification_mut().unwrap().waiting = waiting;
    }

    pub(super) fn on_verification_answer(&mut self, key: NodeKey, packet: Packet) {
        let Some(nid) = self.nodes.get(key).and_then(|e| e.nid()) else {
            return;
        };
        let Some(verification) = self.verification_mut() else {
            return;
        };
        if !verification.waiting.remove(&nid) {
            return;
        }
        match packet {
            Packet::AnswerLockedTransactions(answer) => {
                for (ttid, tid) in answer.transactions.0 {
                    if let Some(tid) = tid {
                        verification.locked.insert(ttid, tid);
                    }
                    verification.voted.entry(ttid).or_default().insert(nid);
                }
            }
            Packet::AnswerFinalTID(answer) => {
                if let Step::FinalTid { queue, asked } = &mut verification.step {
                    *asked = None;
                    if let Some(tid) = answer.tid {
                        if let Some((ttid, _)) = queue.pop_front() {
                            verification.locked.insert(ttid, tid);
                        }
                    }
                }
            }
            Packet::AnswerLastIDs(answer) => {
                // A TID past the last possible one would wrap every TID
                // allocated after it.
                if let Some(tid) = answer.last_tid.filter(|&t| t <= Tid::MAX) {
                    verification.last_tid = verification.last_tid.max(tid);
                }
                if let Some(oid) = answer.last_oid {
                    verification.last_oid = Some(verification.last_oid.map_or(oid, |o| o.max(oid)));
                }
                verification.first_tid = Some(
                    verification
                        .first_tid
                        .map_or(answer.first_tid, |t| t.min(answer.first_tid)),
                );
            }
            Packet::AnswerPackOrders(answer) => verification.pack_orders.extend(answer.orders),
            Packet::Error(error) => {
                self.log(
                    Level::Warn,
                    format!(
                        "{nid} during verification: {} {}",
                        error.code,
                        String::from_utf8_lossy(&error.message)
                    ),
                );
            }
            _ => {}
        }
    }

    /// A storage left during verification: stop waiting for it.
    pub(super) fn verification_forget(&mut self, nid: Nid) {
        if let Some(verification) = self.verification_mut() {
            verification.waiting.remove(&nid);
            if let Step::FinalTid { asked, .. } = &mut verification.step {
                if *asked == Some(nid) {
                    *asked = None;
                }
            }
        }
    }

    /// Moves verification forward once the current step's answers are in.
    pub(super) fn verification_step(&mut self) {
        loop {
            let Some(verification) = self.verification_mut() else {
                return;
            };
            if !verification.waiting.is_empty() {
                return;
            }
            match &verification.step {
                Step::LockedTransactions => self.queue_unlocked_votes(),
                Step::FinalTid { asked: Some(_), .. } => return,
                Step::FinalTid { .. } => self.ask_next_final_tid(),
                Step::LastIds => self.ask_unfinished_packs(),
                Step::PackOrders => return self.finish_verification(),
            }
        }
    }

    /// Transactions voted but locked nowhere: maybe a readable node that
    /// did not vote made them permanent already. Queues each with the
    /// identified readable nodes to ask.
    fn queue_unlocked_votes(&mut self) {
        let verification = self.verification_mut().unwrap();
        let voted = verification.voted.clone();
        let locked = verification.locked.clone();
        let mut queue = VecDeque::new();
        for (ttid, voters) in voted {
            if locked.contains_key(&ttid) {
                continue;
            }
            let partition = self.pt.partition(ttid.0);
            let candidates: VecDeque<Nid> = self
                .pt
                .row(partition)
                .iter()
                .filter(|c| c.is_readable() && !voters.contains(&c.nid))
                .map(|c| c.nid)
                .filter(|&nid| self.nodes.entry_by_nid(nid).is_some_and(|e| e.identified))
                .collect();
            queue.push_back((ttid, candidates));
        }
        self.verification_mut().unwrap().step = Step::FinalTid { queue, asked: None };
    }

    /// The head of the queue was resolved (popped), or its asked node
    /// answered nil or left: ask the next candidate, or give up on it;
    /// with the queue empty, commit what was locked and ask the last ids.
    fn ask_next_final_tid(&mut self) {
        let verification = self.verification_mut().unwrap();
        let Step::FinalTid { queue, asked } = &mut verification.step else {
            return;
        };
        let Some((ttid, candidates)) = queue.front_mut() else {
            self.validate_locked_transactions();
            let storages: Vec<Nid> = self
                .nodes
                .of_type(NodeType::Storage)
                .filter(|(_, e)| e.identified)
                .filter_map(|(_, e)| e.nid())
                .collect();
            self.verification_mut().unwrap().step = Step::LastIds;
            self.ask_storages(&storages, |epoch| {
                (AskLastIDs {}.into(), Request::LastIds { epoch })
            });
            return;
        };
        let ttid = *ttid;
        let Some(nid) = candidates.pop_front() else {
            // Locked nowhere: abandoned (storages drop unfinished data
            // when they start operating).
            queue.pop_front();
            return;
        };
        *asked = Some(nid);
        self.ask_storages(&[nid], |epoch| {
            (AskFinalTID { ttid }.into(), Request::FinalTid { epoch })
        });
        let verification = self.verification_mut().unwrap();
        if verification.waiting.is_empty() {
            // Not connected after all.
            if let Step::FinalTid { asked, .. } = &mut verification.step {
                *asked = None;
            }
        }
    }

    /// The storages' last ids are the cluster's; then the pack orders
    /// readable nodes have not completed.
    fn ask_unfinished_packs(&mut self) {
        let verification = self.verification_mut().unwrap();
        let last_tid = verification.last_tid;
        let last_oid = verification.last_oid.unwrap_or(Oid::ZERO);
        let first_tid = verification.first_tid.unwrap_or(Tid::MAX);
        let primary = self.primary_mut().unwrap();
        primary.commits.last_transaction = last_tid;
        primary.commits.last_oid = last_oid;
        primary.commits.first_tid = first_tid;
        primary.truncate_tid = None;
        let readable: Vec<Nid> = self.pt.nodes(true).into_iter().collect();
        let completed = readable
            .iter()
            .filter_map(|nid| self.primary().unwrap().completed_pack.get(nid))
            .min()
            .map_or(Tid::ZERO, |&t| Tid(t.0.saturating_add(1)));
        self.verification_mut().unwrap().step = Step::PackOrders;
        self.ask_storages(&readable, |epoch| {
            let ask = AskPackOrders {
                min_pack_id: completed,
            };
            (ask.into(), Request::PackOrders { epoch })
        });
    }

    /// Every answer is in: the pack orders join the pack manager and the
    /// cluster goes into service.
    fn finish_verification(&mut self) {
        let verification = self.verification_mut().unwrap();
        let orders = std::mem::take(&mut verification.pack_orders);
        let primary = self.primary_mut().unwrap();
        for order in orders {
            primary.pm.add(order);
        }
        self.log(Level::Info, "verification done".to_string());
        self.enter_service();
    }

    /// Commits, on every node that voted it, each transaction some
    /// readable node locked (or made permanent).
    fn validate_locked_transactions(&mut self) {
        let verification = self.verification_mut().unwrap();
        let locked = verification.locked.clone();
        let voted = verification.voted.clone();
        for (ttid, tid) in locked {
            let Some(voters) = voted.get(&ttid) else {
                continue;
            };
            self.log(
                Level::Info,
                format!("committing transaction {ttid} as {tid}, interrupted in its second phase"),
            );
            for &nid in voters {
                if let Some(conn) = self
                    .nodes
                    .entry_by_nid(nid)
                    .filter(|e| e.identified)
                    .and_then(|e| e.conn)
                {
                    self.net.send(conn, ValidateTransaction { ttid, tid });
                }
            }
        }
    }
}
