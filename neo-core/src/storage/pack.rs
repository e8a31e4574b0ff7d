//! Executing pack orders (cluster.md 8.1), one order at a time, a partition
//! at a time, in chunks between other work so that commits keep flowing.
//!
//! Each own UP_TO_DATE cell remembers the last order completed on it. When
//! the smallest of them is behind the last approved order the master
//! announced, the storage asks the master for the first approved order
//! after it and applies it to the cells that are at that point. After a
//! run, the smallest completed id over all own cells is reported
//! (NotifyPackCompleted); the master forgets orders every readable node
//! completed and answers clients waiting for them.

use std::collections::BTreeSet;

use neo_proto::{AskPackOrders, CellState, NotifyPackCompleted, Oid, PackOrder, Tid};

use super::store::Store;
use super::{Request, Storage};
use crate::node::Level;

/// Oids packed per step.
pub(super) const PACK_CHUNK: usize = 1000;

/// An order being applied.
#[derive(Debug)]
struct Run {
    order: PackOrder,
    /// Partitions still to pack, and where the first one stands.
    partitions: BTreeSet<u32>,
    cursor: Oid,
    done: usize,
}

/// The storage's pack bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Packer {
    /// The latest approved pack id the master announced.
    pub last_pack_id: Tid,
    /// The completed pack id last reported to the master.
    pub completed_pack_id: Option<Tid>,
    run: Option<Run>,
    /// The last order started and the completed id it started from: if
    /// some of its partitions were left out, it resumes without asking.
    last: Option<(PackOrder, Tid)>,
    /// AskPackOrders in flight.
    asking: bool,
}

impl Packer {
    /// Whether a pack step is due.
    pub(super) fn is_running(&self) -> bool {
        self.run.is_some()
    }
}

impl<S: Store> Storage<S> {
    /// Whether an approved order is still to be applied to our cells.
    pub(super) fn pack_pending(&self) -> bool {
        self.packer.run.is_some()
            || self.packer.asking
            || self
                .up_to_date_packed()
                .iter()
                .any(|(_, id)| *id < self.packer.last_pack_id)
    }

    /// Where packing stands (failure reports of tests).
    pub fn describe_packing(&self) -> String {
        format!(
            "last approved {}, reported {:?}, running {:?}, asking {}, cells {:?}",
            self.packer.last_pack_id,
            self.packer.completed_pack_id,
            self.packer
                .run
                .as_ref()
                .map(|r| (r.order.pack_id, &r.partitions, r.cursor)),
            self.packer.asking,
            self.up_to_date_packed()
        )
    }

    /// Completed pack ids of own UP_TO_DATE cells.
    fn up_to_date_packed(&self) -> Vec<(u32, Tid)> {
        let Some(pt) = &self.pt else {
            return Vec::new();
        };
        let own = self.link.nid();
        self.store
            .packed()
            .into_iter()
            .filter(|(partition, _)| {
                own.and_then(|nid| pt.cell(*partition, nid))
                    .is_some_and(|c| c.state == CellState::UpToDate)
            })
            .collect()
    }

    /// Starts applying the next order if there is one (NEO/py's
    /// `maybePack`). `answer` is the master's answer to our AskPackOrders
    /// sent when our cells stood at `asked_from`.
    pub(super) fn maybe_pack(&mut self, answer: Option<(PackOrder, Tid)>) {
        if self.packer.run.is_some() || !self.is_operational() {
            return;
        }
        let packed = self.up_to_date_packed();
        let Some(min) = packed.iter().map(|(_, id)| *id).min() else {
            return;
        };
        if min >= self.packer.last_pack_id {
            self.packer.last = None;
            return;
        }
        let order = match (&self.packer.last, answer) {
            (Some((order, from)), _) if *from == min => order.clone(),
            (_, Some((order, from))) if from == min => order,
            _ => {
                if !self.packer.asking {
                    if let Some(conn) = self.link.conn() {
                        self.packer.asking = true;
                        self.net.ask(
                            conn,
                            AskPackOrders {
                                min_pack_id: Tid(min.0.saturating_add(1)),
                            },
                            Request::PackOrders { from: min },
                        );
                    }
                }
                return;
            }
        };
        let partitions: BTreeSet<u32> = packed
            .iter()
            .filter(|(_, id)| *id == min)
            .map(|(p, _)| *p)
            .collect();
        self.log(
            Level::Info,
            format!(
                "pack {} at {}: {} partition(s)",
                order.pack_id,
                order.pack_tid,
                partitions.len()
            ),
        );
        self.packer.last = Some((order.clone(), min));
        self.packer.run = Some(Run {
            order,
            partitions,
            cursor: Oid::ZERO,
            done: 0,
        });
    }

    /// The master's answer to our AskPackOrders.
    pub(super) fn on_pack_orders(&mut self, orders: Vec<PackOrder>, from: Tid) {
        self.packer.asking = false;
        let Some(order) = orders.into_iter().next() else {
            return;
        };
        // An order we asked past, not approved, or packing after its own
        // id would repeat forever or delete current revisions.
        let valid =
            order.pack_id > from && order.approved == Some(true) && order.pack_tid <= order.pack_id;
        if !valid {
            self.log(
                Level::Error,
                format!(
                    "AnswerPackOrders: order {} (approved {:?}, pack_tid {}) not applicable after {from}",
                    order.pack_id, order.approved, order.pack_tid
                ),
            );
            return;
        }
        self.maybe_pack(Some((order, from)));
    }

    /// The master refused our AskPackOrders: ask again next time.
    pub(super) fn packer_asking_failed(&mut self) {
        self.packer.asking = false;
    }

    /// Packs one chunk of the current order.
    pub(super) fn pack_step(&mut self) {
        let Some(run) = &mut self.packer.run else {
            return;
        };
        let Some(&partition) = run.partitions.first() else {
            return;
        };
        let still_up_to_date = self
            .pt
            .as_ref()
            .zip(self.link.nid())
            .and_then(|(pt, nid)| pt.cell(partition, nid))
            .is_some_and(|c| c.state == CellState::UpToDate);
        let run = self.packer.run.as_mut().unwrap();
        if !still_up_to_date {
            // Outdated or dropped meanwhile: its data will come from
            // elsewhere.
            run.partitions.remove(&partition);
            run.cursor = Oid::ZERO;
        } else {
            let next = self.store.write().pack(
                partition,
                run.order.pack_tid,
                run.order.oids.as_deref(),
                run.cursor,
                PACK_CHUNK,
            );
            match next {
                Some(cursor) => run.cursor = cursor,
                None => {
                    self.store.write().set_packed(partition, run.order.pack_id);
                    run.partitions.remove(&partition);
                    run.cursor = Oid::ZERO;
                    run.done += 1;
                }
            }
        }
        if self.packer.run.as_ref().unwrap().partitions.is_empty() {
            let run = self.packer.run.take().unwrap();
            if run.done > 0 {
                self.log(
                    Level::Info,
                    format!(
                        "{} partition(s) processed for pack {}",
                        run.done, run.order.pack_id
                    ),
                );
                self.notify_pack_completed();
            }
            self.maybe_pack(None);
        }
    }

    /// Reports the smallest completed pack id over own cells, if changed.
    pub(super) fn notify_pack_completed(&mut self) {
        let Some(pack_id) = self.store.packed().into_iter().map(|(_, id)| id).min() else {
            return;
        };
        if self.packer.completed_pack_id != Some(pack_id) {
            self.packer.completed_pack_id = Some(pack_id);
            self.send_master(NotifyPackCompleted { pack_id });
        }
    }

    /// NotifyPackSigned from the master.
    pub(super) fn on_pack_signed(&mut self, approved: &[Tid], rejected: &[Tid]) {
        self.store.write().sign_pack_orders(approved, rejected);
        if let Some(&max) = approved.iter().max() {
            if max > self.packer.last_pack_id {
                self.packer.last_pack_id = max;
                self.maybe_pack(None);
            }
        }
    }
}
