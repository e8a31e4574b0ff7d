//! Checking replicas (cluster.md 7.8): the master picks one storage per
//! partition to compare the partition's readable replicas. It asks every
//! other replica for hashes of ranges of records — transactions
//! (AskCheckTIDRange), then object records (AskCheckSerialRange) — in
//! rounds of [`CHECK_COUNT`], computes its own, and reports to the master
//! (NotifyPartitionCorrupted) the replicas that differ: from the reference
//! if one was given, else all of them. The check goes on with the replicas
//! still agreeing, or stops when one is left.

use std::collections::{BTreeMap, VecDeque};

use neo_proto::{
    AskCheckSerialRange, AskCheckTIDRange, CellState, CheckPartition, Nid,
    NotifyPartitionCorrupted, Oid, Packet, Tid,
};

use super::peer::{check_serial_range, check_tid_range};
use super::store::Store;
use super::{Request, Storage};
use crate::node::{ConnId, Level};

/// Records per round of a check.
pub(super) const CHECK_COUNT: u32 = 40_000;

/// The answer of a replica for the current round, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoundAnswer {
    Tids(u32, neo_proto::Checksum, Tid),
    Serials(u32, neo_proto::Checksum, Tid, neo_proto::Checksum, Oid),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PeerState {
    /// Connecting to it, or waiting for its answer to this request.
    Waiting(Option<(ConnId, u32)>),
    Answered(RoundAnswer),
}

#[derive(Debug)]
struct Check {
    partition: u32,
    /// The replica known to be right, if any (ourselves possibly).
    reference: Option<Nid>,
    min_tid: Tid,
    max_tid: Tid,
    next_tid: Tid,
    /// `None`: checking transactions; `Some`: object records from it.
    next_oid: Option<Oid>,
    peers: BTreeMap<Nid, PeerState>,
    own: Option<RoundAnswer>,
    /// Waiting for transactions up to `max_tid` to be unlocked.
    waiting_locks: bool,
}

#[derive(Debug, Default)]
pub(super) struct Checker {
    queue: VecDeque<CheckPartition>,
    current: Option<Check>,
}

impl<S: Store> Storage<S> {
    /// CheckPartition from the master.
    pub(super) fn on_check_partition(&mut self, check: CheckPartition) {
        self.checker.queue.push_back(check);
        if self.checker.current.is_none() {
            self.next_check();
        }
    }

    fn next_check(&mut self) {
        self.checker.current = None;
        while let Some(order) = self.checker.queue.pop_front() {
            let partition = order.partition;
            let (Some(pt), Some(own)) = (&self.pt, self.link.nid()) else {
                return;
            };
            let fail = |storage: &mut Self, why: &str| {
                storage.log(
                    Level::Error,
                    format!("failed to start checking partition {partition} ({why})"),
                );
            };
            if pt
                .cell(partition, own)
                .is_none_or(|c| c.state == CellState::OutOfDate)
            {
                fail(self, "discarded or out-of-date");
                continue;
            }
            let replicas: Vec<Nid> = pt
                .row(partition)
                .iter()
                .filter(|c| c.is_readable() && c.nid != own)
                .map(|c| c.nid)
                .collect();
            let reference = match (&order.source.address, order.source.upstream_name.is_empty()) {
                (None, _) => None,
                (Some(_), false) => {
                    fail(
                        self,
                        "checking against a backup's upstream is not supported",
                    );
                    continue;
                }
                (Some(address), true) => {
                    let nid = if *address == self.config.bind {
                        Some(own)
                    } else {
                        self.nodes
                            .by_address(address)
                            .and_then(|k| self.nodes.get(k))
                            .and_then(|e| e.nid())
                            .filter(|nid| replicas.contains(nid))
                    };
                    if nid.is_none() {
                        fail(self, "unavailable source");
                        continue;
                    }
                    nid
                }
            };
            if replicas.is_empty() {
                fail(self, "no replica");
                continue;
            }
            self.log(
                Level::Info,
                format!(
                    "checking partition {partition} from {} to {}",
                    order.min_tid, order.max_tid
                ),
            );
            let peers = replicas
                .iter()
                .map(|&nid| (nid, PeerState::Waiting(None)))
                .collect();
            self.checker.current = Some(Check {
                partition,
                reference,
                min_tid: order.min_tid,
                max_tid: order.max_tid,
                next_tid: order.min_tid,
                next_oid: None,
                peers,
                own: None,
                waiting_locks: true,
            });
            self.check_round();
            return;
        }
    }

    /// Locks were released: a check waiting for them may start.
    pub(super) fn check_resume(&mut self) {
        if self
            .checker
            .current
            .as_ref()
            .is_some_and(|c| c.waiting_locks)
        {
            self.check_round();
        }
    }

    /// Starts a round: asks every replica, computes our own answer. The
    /// first waits while a transaction up to `max_tid` is locked here.
    fn check_round(&mut self) {
        let Some(check) = &mut self.checker.current else {
            return;
        };
        if check.waiting_locks {
            if self.locks.is_locked_tid(check.max_tid) {
                return; // retried when locks are released
            }
            check.waiting_locks = false;
        }
        let (partition, next_tid, max_tid, next_oid) = (
            check.partition,
            check.next_tid,
            check.max_tid,
            check.next_oid,
        );
        check.own = Some(match next_oid {
            None => {
                let a = check_tid_range(&*self.store, partition, CHECK_COUNT, next_tid, max_tid);
                RoundAnswer::Tids(a.count, a.tid_hash, a.max_tid)
            }
            Some(oid) => {
                let a = check_serial_range(
                    &*self.store,
                    partition,
                    CHECK_COUNT,
                    next_tid,
                    max_tid,
                    oid,
                );
                RoundAnswer::Serials(a.count, a.tid_hash, a.max_tid, a.oid_hash, a.max_oid)
            }
        });
        let peers: Vec<Nid> = self
            .checker
            .current
            .as_ref()
            .unwrap()
            .peers
            .keys()
            .copied()
            .collect();
        for nid in peers {
            self.ask_check(nid);
        }
        self.check_compare();
    }

    /// Asks a replica for the current round, if connected.
    fn ask_check(&mut self, nid: Nid) {
        let Some(check) = &self.checker.current else {
            return;
        };
        let packet: Packet = match check.next_oid {
            None => AskCheckTIDRange {
                partition: check.partition,
                length: CHECK_COUNT,
                min_tid: check.next_tid,
                max_tid: check.max_tid,
            }
            .into(),
            Some(min_oid) => AskCheckSerialRange {
                partition: check.partition,
                length: CHECK_COUNT,
                min_tid: check.next_tid,
                max_tid: check.max_tid,
                min_oid,
            }
            .into(),
        };
        let request = match self.peer_connection(nid) {
            Some(conn) => self
                .net
                .ask(conn, packet, Request::Check)
                .map(|msg_id| (conn, msg_id)),
            None => None,
        };
        if let Some(check) = &mut self.checker.current {
            check.peers.insert(nid, PeerState::Waiting(request));
        }
    }

    /// A connection to a replica being checked is identified.
    pub(super) fn checker_peer_ready(&mut self, nid: Nid) {
        let waiting = self.checker.current.as_ref().is_some_and(|c| {
            !c.waiting_locks && c.peers.get(&nid) == Some(&PeerState::Waiting(None))
        });
        if waiting {
            self.ask_check(nid);
        }
    }

    /// A replica answered (a hash, or CHECKING_ERROR: it cannot be
    /// checked, like a lost one).
    pub(super) fn on_check_answer(&mut self, conn: ConnId, msg_id: u32, packet: Packet) {
        let Some(check) = &mut self.checker.current else {
            return;
        };
        let Some((&nid, _)) = check
            .peers
            .iter()
            .find(|(_, s)| **s == PeerState::Waiting(Some((conn, msg_id))))
        else {
            return; // an answer of an old round
        };
        let answer = match packet {
            Packet::AnswerCheckTIDRange(a) => RoundAnswer::Tids(a.count, a.tid_hash, a.max_tid),
            Packet::AnswerCheckSerialRange(a) => {
                RoundAnswer::Serials(a.count, a.tid_hash, a.max_tid, a.oid_hash, a.max_oid)
            }
            _ => return self.checker_peer_lost(nid),
        };
        check.peers.insert(nid, PeerState::Answered(answer));
        self.check_compare();
    }

    /// Once every replica answered: reports those that differ, then goes
    /// to the next round, or the next partition.
    fn check_compare(&mut self) {
        let own_nid = self.link.nid().unwrap_or(Nid(0));
        let Some(check) = &mut self.checker.current else {
            return;
        };
        let Some(own) = check.own.clone() else {
            return;
        };
        let mut answers: BTreeMap<Nid, RoundAnswer> = BTreeMap::new();
        for (nid, state) in &check.peers {
            match state {
                PeerState::Answered(answer) => {
                    answers.insert(*nid, answer.clone());
                }
                PeerState::Waiting(_) => return,
            }
        }
        answers.insert(own_nid, own.clone());
        let agree = answers.values().all(|a| *a == own);
        let mut answer = own;
        if !agree {
            let reference = check.reference.and_then(|r| answers.get(&r).cloned());
            let corrupted: Vec<Nid> = answers
                .iter()
                .filter(|(_, a)| Some(*a) != reference.as_ref())
                .map(|(nid, _)| *nid)
                .collect();
            let partition = check.partition;
            for nid in &corrupted {
                check.peers.remove(nid);
            }
            let own_corrupted = corrupted.contains(&own_nid);
            self.log(
                Level::Error,
                format!(
                    "partition {partition} differs on {}",
                    corrupted
                        .iter()
                        .map(Nid::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            self.send_master(NotifyPartitionCorrupted {
                partition,
                nids: corrupted,
            });
            let check = self.checker.current.as_ref().unwrap();
            let remaining = check.peers.len() + usize::from(!own_corrupted);
            if remaining <= 1 || own_corrupted {
                self.log(
                    Level::Warn,
                    format!("check of partition {partition} aborted"),
                );
                self.checker.queue.clear();
                return self.next_check();
            }
            answer = reference.unwrap_or(answer);
        }
        let check = self.checker.current.as_mut().unwrap();
        match answer {
            RoundAnswer::Tids(count, _, max_tid) => {
                if count < CHECK_COUNT {
                    check.next_tid = check.min_tid;
                    check.next_oid = Some(Oid::ZERO);
                } else {
                    check.next_tid = Tid(max_tid.0.saturating_add(1));
                }
            }
            RoundAnswer::Serials(count, _, max_tid, _, max_oid) => {
                if count < CHECK_COUNT {
                    let partition = check.partition;
                    self.log(Level::Info, format!("partition {partition} checked"));
                    return self.next_check();
                }
                check.next_tid = max_tid;
                check.next_oid = Some(Oid(max_oid.0.saturating_add(1)));
            }
        }
        self.check_round();
    }

    /// A replica being checked is gone: the check goes on with the others,
    /// or stops if no other is left.
    pub(super) fn checker_peer_lost(&mut self, nid: Nid) {
        let Some(check) = &mut self.checker.current else {
            return;
        };
        if check.peers.remove(&nid).is_none() {
            return;
        }
        if check.reference == Some(nid) {
            check.reference = None;
        }
        let partition = check.partition;
        if check.peers.is_empty() {
            self.log(
                Level::Warn,
                format!("check of partition {partition} aborted"),
            );
            return self.next_check();
        }
        self.log(
            Level::Warn,
            format!("{nid} lost but still checking partition {partition}"),
        );
        self.check_compare();
    }
}
