//! Pack orders, as the primary tracks them (cluster.md 8.1).
//!
//! A client's pack request commits an empty transaction carrying the
//! order; the master records it under the transaction's final TID,
//! approved automatically unless an order is still unsigned. Storages ask
//! for the first approved order after the last one they completed, and
//! report completion; orders every readable node completed are forgotten
//! and clients waiting for them (WaitForPack) are answered.
//!
//! A storage whose cells come back from an older state (it was down while
//! others packed, and replicated from them) asks for orders the master
//! forgot: the master then collects them from storages holding the
//! transactions' partitions before answering ([`OldOrders`]).

use std::collections::{BTreeMap, BTreeSet};

use neo_proto::{Nid, Oid, PackOrder, Tid};

use crate::node::ConnId;

#[derive(Debug)]
struct Pack {
    /// `None`: not signed yet; `Some(false)`: rejected.
    approved: Option<bool>,
    partial: bool,
    oids: Option<Vec<Oid>>,
    pack_tid: Tid,
    /// Clients waiting in WaitForPack.
    waiting: Vec<(ConnId, u32)>,
}

/// A request for forgotten orders, being collected from storages.
#[derive(Debug)]
pub(super) struct OldOrders {
    /// Who asked: connection and message id, and what it wants.
    pub requester: (ConnId, u32),
    pub pack_id: Tid,
    pub only_first_approved: bool,
    /// Partitions whose orders are not collected yet.
    pub remaining: BTreeSet<u32>,
    /// Storages asked, and the partitions each covers.
    pub querying: BTreeMap<Nid, Vec<u32>>,
    pub orders: Vec<PackOrder>,
}

#[derive(Debug, Default)]
pub(super) struct PackManager {
    /// Every order up to this id is completed by every readable node.
    max_completed: Option<Tid>,
    packs: BTreeMap<Tid, Pack>,
    /// Requests for forgotten orders, by id.
    pub old: BTreeMap<u64, OldOrders>,
    next_old: u64,
    /// Incremented whenever an order is added or completed: a replica
    /// check that saw it change may have compared a packed replica with
    /// one not packed yet.
    generation: u64,
}

impl PackManager {
    /// An order learned from a storage (verification).
    pub(super) fn add(&mut self, order: PackOrder) {
        self.generation += 1;
        match self.packs.get_mut(&order.pack_id) {
            None => {
                if self.max_completed.is_some_and(|m| m > order.pack_id) {
                    self.max_completed = Some(Tid(order.pack_id.0.saturating_sub(1)));
                }
                self.packs.insert(
                    order.pack_id,
                    Pack {
                        approved: order.approved,
                        partial: order.partial,
                        oids: order.oids,
                        pack_tid: order.pack_tid,
                        waiting: Vec::new(),
                    },
                );
            }
            Some(pack) if pack.approved.is_none() => pack.approved = order.approved,
            Some(_) => {}
        }
    }

    /// A new order, committed as `tid`; returns whether it is approved
    /// (automatically, unless an order is still unsigned).
    pub(super) fn new_order(&mut self, tid: Tid, oids: Option<Vec<Oid>>, pack_tid: Tid) -> bool {
        let approved = self.packs.values().all(|p| p.approved.is_some());
        self.generation += 1;
        self.packs.insert(
            tid,
            Pack {
                approved: approved.then_some(true),
                partial: oids.as_ref().is_some_and(|o| !o.is_empty()),
                oids,
                pack_tid,
                waiting: Vec::new(),
            },
        );
        approved
    }

    /// Where pack activity stands: `None` while an approved order is not
    /// completed by every readable node (replicas may differ for now),
    /// else a number that changes with the next order.
    pub(super) fn quiet_generation(&self) -> Option<u64> {
        let applying = self.packs.values().any(|p| p.approved == Some(true));
        (!applying).then_some(self.generation)
    }

    pub(super) fn is_approved(&self, tid: Tid) -> bool {
        self.packs
            .get(&tid)
            .is_some_and(|p| p.approved == Some(true))
    }

    /// Whether orders from `pack_id` may have been forgotten.
    pub(super) fn forgot(&self, pack_id: Tid) -> bool {
        self.max_completed.is_some_and(|m| m >= pack_id)
    }

    /// Orders from `pack_id` on: all of them (clients), or only the first
    /// approved one (storages).
    pub(super) fn orders(&self, pack_id: Tid, only_first_approved: bool) -> Vec<PackOrder> {
        let mut orders = self
            .packs
            .range(pack_id..)
            .filter(|(_, p)| !only_first_approved || p.approved == Some(true))
            .map(|(id, p)| PackOrder {
                pack_id: *id,
                approved: p.approved,
                partial: p.partial,
                oids: p.oids.clone(),
                pack_tid: p.pack_tid,
            });
        if only_first_approved {
            orders.next().into_iter().collect()
        } else {
            orders.collect()
        }
    }

    /// Signed orders from `min`, for NotifyPackSigned: the last completed
    /// id counts as approved.
    pub(super) fn approved_rejected(&self, min: Tid) -> (Vec<Tid>, Vec<Tid>) {
        let mut approved = Vec::new();
        let mut rejected = Vec::new();
        if let Some(completed) = self.max_completed.filter(|&c| c >= min && c > Tid::ZERO) {
            approved.push(completed);
        }
        for (id, pack) in self.packs.range(min..) {
            match pack.approved {
                Some(true) => approved.push(*id),
                Some(false) => rejected.push(*id),
                None => {}
            }
        }
        (approved, rejected)
    }

    /// Every readable node completed orders up to `pack_id`: forget them;
    /// returns the WaitForPack requests to answer.
    pub(super) fn completed(&mut self, pack_id: Tid) -> Vec<(ConnId, u32)> {
        let done: Vec<Tid> = self.packs.range(..=pack_id).map(|(id, _)| *id).collect();
        if !done.is_empty() {
            self.generation += 1;
        }
        let mut waiting = Vec::new();
        for id in done {
            let pack = self.packs.remove(&id).unwrap();
            waiting.extend(pack.waiting);
        }
        // Also orders this master never had in memory (a new primary):
        // a storage behind them must be told (NEO/py only counts orders it
        // knows, and such a storage never packs them: replicas differ).
        if pack_id > Tid::ZERO {
            self.max_completed = Some(self.max_completed.map_or(pack_id, |m| m.max(pack_id)));
        }
        waiting
    }

    /// Verification relearns every order from the storages: one recorded
    /// at finish whose transaction then died with the cluster must not
    /// survive (NEO/py keeps it, approved, and storages apply a pack
    /// nobody committed while replicas that never saw it cannot). Clients
    /// waiting for orders left with the cluster's clients.
    pub(super) fn forget_orders(&mut self) {
        self.generation += 1;
        self.packs.clear();
    }

    /// WaitForPack: `false` if the order is already completed (answer at
    /// once).
    pub(super) fn wait(&mut self, tid: Tid, conn: ConnId, msg_id: u32) -> bool {
        match self.packs.get_mut(&tid) {
            Some(pack) => {
                pack.waiting.push((conn, msg_id));
                true
            }
            None => false,
        }
    }

    pub(super) fn connection_lost(&mut self, conn: ConnId) {
        for pack in self.packs.values_mut() {
            pack.waiting.retain(|(c, _)| *c != conn);
        }
        self.old.retain(|_, old| old.requester.0 != conn);
    }

    /// Starts collecting orders from `pack_id` on for `requester`.
    pub(super) fn request_old(
        &mut self,
        requester: (ConnId, u32),
        pack_id: Tid,
        only_first_approved: bool,
        partitions: u32,
    ) -> u64 {
        self.next_old += 1;
        self.old.insert(
            self.next_old,
            OldOrders {
                requester,
                pack_id,
                only_first_approved,
                remaining: (0..partitions).collect(),
                querying: BTreeMap::new(),
                orders: Vec::new(),
            },
        );
        self.next_old
    }

    /// The collected orders of a finished request are known again: orders
    /// from its `pack_id` are no longer considered completed.
    pub(super) fn learn_old(&mut self, pack_id: Tid, orders: Vec<PackOrder>) {
        self.max_completed = Some(Tid(pack_id.0.saturating_sub(1)));
        for order in orders {
            self.add(order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_approved_unless_one_is_unsigned_and_forgotten_once_completed() {
        let mut pm = PackManager::default();
        assert!(pm.new_order(Tid(10), None, Tid(5)));
        pm.add(PackOrder {
            pack_id: Tid(20),
            approved: None,
            partial: true,
            oids: Some(vec![Oid(1)]),
            pack_tid: Tid(15),
        });
        assert!(
            !pm.new_order(Tid(30), Some(vec![]), Tid(25)),
            "an unsigned order blocks"
        );
        assert_eq!(pm.orders(Tid(11), true), vec![]);
        assert_eq!(pm.orders(Tid(0), true)[0].pack_id, Tid(10));
        assert_eq!(pm.orders(Tid(0), false).len(), 3);
        assert!(
            !pm.orders(Tid(30), false)[0].partial,
            "an empty oid list is a full pack"
        );
        let conn = ConnId::incoming(1);
        assert!(pm.wait(Tid(10), conn, 4));
        assert_eq!(pm.completed(Tid(10)), vec![(conn, 4)]);
        assert!(!pm.wait(Tid(10), conn, 5));
        assert!(pm.forgot(Tid(10)) && !pm.forgot(Tid(11)));
        assert_eq!(pm.approved_rejected(Tid::ZERO), (vec![Tid(10)], vec![]));
    }

    #[test]
    fn replica_checks_see_whether_a_pack_ran_meanwhile() {
        let mut pm = PackManager::default();
        let quiet = pm.quiet_generation();
        assert!(quiet.is_some());
        pm.new_order(Tid(10), None, Tid(5));
        assert_eq!(pm.quiet_generation(), None, "being applied");
        pm.completed(Tid(10));
        let after = pm.quiet_generation();
        assert!(after.is_some() && after != quiet, "a pack ran");
        pm.completed(Tid(10));
        assert_eq!(pm.quiet_generation(), after, "nothing new");
    }
}
