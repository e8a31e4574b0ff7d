//! Election of the primary master, and the secondary role.
//!
//! Since NEO 1.8 there is no separate election phase: every master starts
//! as a primary candidate in RECOVERING and connects to every master it
//! knows, presenting its key `(time it started playing primary, address)`.
//! The smaller key wins: a candidate that meets an older one (as requester
//! or as acceptor) yields and follows it. A primary that left RECOVERING
//! has no key and accepts every master as secondary. A secondary follows
//! its primary, answers every other identification with NotPrimaryMaster,
//! and plays primary again when no other primary can be found.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use neo_proto::{
    AcceptIdentification, Address, ClusterState, Map, NodeState, NodeType, Packet,
    RequestIdentification, Timestamp,
};

use super::{ConnRole, Master, PrimaryPhase, Request, Role};
use crate::identity::Identity;
use crate::net::Reject;
use crate::node::{ConnId, Level};
use crate::node_table::NodeKey;

/// A candidate's election key: smaller wins.
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionKey {
    started: f64,
    host: bytes::Bytes,
    port: u16,
}

impl ElectionKey {
    /// The key of a candidate that started its election at `started`
    /// (seconds since the epoch) and listens at `address`.
    pub fn new(started: f64, address: &Address) -> ElectionKey {
        ElectionKey {
            started,
            host: address.host.clone(),
            port: address.port,
        }
    }
}

impl PartialOrd for ElectionKey {
    /// As NEO/py compares `(id_timestamp, (host, port))` tuples.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(
            self.started
                .total_cmp(&other.started)
                .then_with(|| self.host.cmp(&other.host))
                .then_with(|| self.port.cmp(&other.port)),
        )
    }
}

/// Whether [`Master::reach_other_masters`] waits for the connection
/// throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    Throttled,
    /// Once per election round: its point is to hear from every master
    /// after the round started, so a refusal the throttle remembers from
    /// just before does not count, and waiting for the throttle's backoff
    /// would only delay the start.
    Now,
}

/// State of the secondary role.
#[derive(Debug)]
pub(super) struct Secondary {
    /// The master we follow.
    pub primary: NodeKey,
    /// Masters tried since the last failure (we never try one twice).
    failed: BTreeSet<Address>,
}

impl Master {
    /// Our key while we are a candidate.
    pub(super) fn election_key(&self) -> ElectionKey {
        let started = self.primary().map_or(f64::INFINITY, |p| p.election_ts);
        ElectionKey::new(started, &self.config.bind)
    }

    fn identification_request(&self) -> RequestIdentification {
        // Only a candidate presents a key; secondaries never make a primary
        // lose.
        let id_timestamp = match self.primary() {
            Some(primary) if primary.cluster_state == ClusterState::Recovering => {
                Some(Timestamp(primary.election_ts))
            }
            _ => None,
        };
        let identity = Identity {
            node_type: NodeType::Master,
            cluster: self.config.cluster.clone(),
            address: Some(self.config.bind.clone()),
        };
        identity.request(self.nid(), id_timestamp, Map::new())
    }

    /// A connection we opened is up: identify.
    pub(super) fn on_connected(&mut self, conn: ConnId) {
        let Some(role) = self.net.connected(conn) else {
            return;
        };
        match role {
            ConnRole::Election(_) | ConnRole::ToPrimary(_) => {
                let request = self.identification_request();
                self.net.ask(conn, request, Request::Identification);
            }
            ConnRole::Unidentified | ConnRole::Peer(_) => {}
        }
    }

    /// Candidate: connects to every known master we are not connected to
    /// (they will have to compare keys with us). `pace` says whether the
    /// connection throttle applies.
    pub(super) fn reach_other_masters(&mut self, pace: Pace) {
        let mut marked_down = Vec::new();
        let masters: Vec<NodeKey> = self
            .nodes
            .of_type(NodeType::Master)
            .filter(|(k, e)| *k != self.own && e.conn.is_none())
            .map(|(k, _)| k)
            .collect();
        let mut retry = None;
        for key in masters {
            let Some(addr) = self.nodes.get(key).and_then(|e| e.address().cloned()) else {
                continue;
            };
            let entry = &mut self.nodes[key];
            if entry.state != NodeState::Down {
                entry.state = NodeState::Down;
                marked_down.push(key);
            }
            let allowed = self.throttle.allowed_at(&addr);
            if pace == Pace::Throttled && allowed > self.now {
                retry = Some(retry.map_or(allowed, |r: crate::time::Time| r.min(allowed)));
                continue;
            }
            self.throttle.record(&addr, self.now);
            let conn = self.net.connect(addr, ConnRole::Election(key));
            self.nodes[key].conn = Some(conn);
        }
        self.broadcast_nodes(&marked_down);
        if let Some(at) = retry {
            // Keep trying until connected (or recovery ends).
            self.set_try_secondary();
            self.wake_no_later_than(at);
        }
    }

    /// Answer to our RequestIdentification to another master.
    pub(super) fn on_master_identification_answer(
        &mut self,
        conn: ConnId,
        key: NodeKey,
        packet: Packet,
    ) {
        match packet {
            Packet::AcceptIdentification(AcceptIdentification {
                node_type: NodeType::Master,
                nid,
                your_nid,
            }) => {
                let Some(your_nid) = your_nid else {
                    self.reject(conn, 0, Reject::protocol("No UUID supplied"));
                    return;
                };
                if let Some(nid) = nid {
                    self.nodes.set_nid(key, Some(nid));
                }
                // A lying peer's notifications may have made us forget
                // the node this connection was for.
                let Some(entry) = self.nodes.get_mut(key) else {
                    self.close_conn(conn);
                    return;
                };
                entry.state = NodeState::Running;
                entry.identified = true;
                self.nodes.set_nid(self.own, Some(your_nid));
                self.nodes[self.own].id_timestamp = None;
                match &self.role {
                    Role::Primary(_) => {
                        // The peer accepted us as its secondary: it won.
                        self.log(
                            Level::Info,
                            format!("{} is the primary master", self.node_desc(key)),
                        );
                        self.play_secondary(key);
                    }
                    Role::Secondary(_) => {
                        self.log(
                            Level::Info,
                            format!("following the primary master {}", self.node_desc(key)),
                        );
                    }
                    Role::Exited => {}
                }
            }
            Packet::AcceptIdentification(_) => {
                // Not a master: not who we meant to reach.
                self.close_conn(conn);
            }
            Packet::Error(error) => {
                self.master_heard(key);
                self.log(
                    Level::Warn,
                    format!(
                        "{} refused us: {} {}",
                        self.node_desc(key),
                        error.code,
                        String::from_utf8_lossy(&error.message)
                    ),
                );
            }
            _ => {}
        }
    }

    /// Packets on a candidate's connection to another master.
    pub(super) fn on_election_packet(
        &mut self,
        key: NodeKey,
        packet: Packet,
    ) -> Result<(), Reject> {
        match packet {
            Packet::NotPrimaryMaster(not_primary) => {
                self.master_heard(key);
                let named = self.learn_masters(&not_primary.known_masters, not_primary.primary);
                if let Some(primary) = named {
                    // Follow it, unless it is one of our own secondaries
                    // (it does not know yet that we won).
                    let identified = self.nodes.get(primary).is_some_and(|e| e.identified);
                    if !identified && primary != self.own {
                        self.play_secondary(primary);
                        return Ok(());
                    }
                }
                self.set_try_secondary();
                Ok(())
            }
            Packet::NotifyNodeInformation(_) | Packet::NotifyClusterInformation(_) => Ok(()),
            other => Err(Reject::unexpected(&other, "election")),
        }
    }

    /// Records the masters a NotPrimaryMaster lists; returns the entry of
    /// the one it names as primary.
    fn learn_masters(&mut self, known: &[Address], primary: Option<u32>) -> Option<NodeKey> {
        let added = self.nodes.learn_masters(known, Some(&self.config.bind));
        if let Some(primary) = self.primary_mut() {
            primary.unheard_masters.extend(added);
        }
        let addr = known.get(usize::try_from(primary?).ok()?)?;
        if *addr == self.config.bind {
            return None;
        }
        self.nodes.master_at(addr)
    }

    /// We heard from this master (it answered, refused, or is unreachable):
    /// it no longer holds back an operator's start.
    pub(super) fn master_heard(&mut self, key: NodeKey) {
        if let Some(primary) = self.primary_mut() {
            if let Some(round) = &mut primary.election_round {
                round.remove(&key);
            }
            primary.unheard_masters.remove(&key);
        }
    }

    pub(super) fn set_try_secondary(&mut self) {
        if let Some(primary) = self.primary_mut() {
            if let PrimaryPhase::Recovery(recovery) = &mut primary.phase {
                recovery.try_secondary = true;
            }
        }
    }

    /// A candidate's connection to another master was lost.
    pub(super) fn election_conn_lost(&mut self, key: NodeKey) {
        if let Some(entry) = self.nodes.get_mut(key) {
            entry.conn = None;
            entry.identified = false;
        }
        self.master_heard(key);
        match &self.role {
            Role::Primary(_) => self.set_try_secondary(),
            Role::Secondary(_) => self.primary_conn_lost(key),
            Role::Exited => {}
        }
    }

    /// An identified secondary master left the primary.
    pub(super) fn secondary_master_lost(&mut self, key: NodeKey) {
        let recovering = self
            .primary()
            .is_some_and(|p| p.cluster_state == ClusterState::Recovering);
        if recovering {
            // During recovery masters are set DOWN in bulk, at its end.
            self.set_try_secondary();
        } else {
            self.nodes[key].state = NodeState::Down;
            self.broadcast_nodes(&[key]);
        }
    }

    // ------------------------------------------------------------ secondary

    /// Stops playing primary and follows `primary`.
    pub(super) fn play_secondary(&mut self, primary: NodeKey) {
        self.log(
            Level::Info,
            format!(
                "playing the secondary role, following {}",
                self.node_desc(primary)
            ),
        );
        // Keep an established connection to the primary; close the rest.
        let keep = self
            .nodes
            .get(primary)
            .and_then(|e| e.conn)
            .filter(|&conn| {
                self.net
                    .get(conn)
                    .is_some_and(|c| matches!(c.state, ConnRole::Election(_)) && !c.connecting)
            });
        for conn in self.net.ids() {
            if Some(conn) != keep {
                self.net.close(conn);
            }
        }
        for key in self.nodes.keys() {
            let entry = &mut self.nodes[key];
            if entry.conn.is_some() && entry.conn != keep {
                entry.conn = None;
                entry.identified = false;
            }
            if entry.node_type != NodeType::Master {
                // A secondary only knows masters (their notifications).
                self.nodes.remove(key);
            }
        }
        self.pt = crate::pt::PartitionTable::new(self.config.partitions, self.config.replicas);
        self.nodes.reset_notification_clock();
        self.wake_at = None;
        let mut failed = BTreeSet::new();
        failed.insert(self.config.bind.clone());
        self.role = Role::Secondary(Secondary { primary, failed });
        // Silence measured as primary means nothing to a later primary
        // term: it would take every storage for dead at once.
        self.liveness.clear();
        if let Some(conn) = keep {
            *self.net.state_mut(conn).unwrap() = ConnRole::ToPrimary(primary);
        } else {
            self.secondary_step();
        }
    }

    /// Follows another primary (named by NotPrimaryMaster, or a candidate
    /// that reached us first).
    pub(super) fn follow(&mut self, primary: NodeKey) {
        let Role::Secondary(secondary) = &mut self.role else {
            self.play_secondary(primary);
            return;
        };
        let old = std::mem::replace(&mut secondary.primary, primary);
        if old != primary {
            if let Some(conn) = self.nodes.get(old).and_then(|e| e.conn) {
                self.net.close(conn);
                let entry = &mut self.nodes[old];
                entry.conn = None;
                entry.identified = false;
            }
        }
        self.secondary_step();
    }

    /// Secondary: connect to the primary if we are not.
    pub(super) fn secondary_step(&mut self) {
        let Role::Secondary(secondary) = &mut self.role else {
            return;
        };
        let primary = secondary.primary;
        if self.nodes.get(primary).is_some_and(|e| e.conn.is_some()) {
            return;
        }
        let Some(addr) = self.nodes.get(primary).and_then(|e| e.address().cloned()) else {
            return;
        };
        let allowed = self.throttle.allowed_at(&addr);
        if allowed > self.now {
            self.wake_no_later_than(allowed);
            return;
        }
        // NEO/py sets every master DOWN while looking for the primary.
        for key in self.nodes.keys() {
            let entry = &mut self.nodes[key];
            if entry.node_type == NodeType::Master && key != self.own {
                entry.state = NodeState::Down;
            }
        }
        secondary.failed.insert(addr.clone());
        self.throttle.record(&addr, self.now);
        let conn = self.net.connect(addr, ConnRole::ToPrimary(primary));
        self.nodes[primary].conn = Some(conn);
    }

    /// Secondary: packets from the primary.
    pub(super) fn on_primary_packet(
        &mut self,
        conn: ConnId,
        _key: NodeKey,
        packet: Packet,
    ) -> Result<(), Reject> {
        match packet {
            Packet::NotifyNodeInformation(notification) => {
                let own = self.nid();
                let first = self.nodes.last_notification() == 0.0;
                let effects = self
                    .nodes
                    .apply_notification(
                        own,
                        first,
                        notification.timestamp.0,
                        &notification.nodes,
                        &|_| false,
                    )
                    .map_err(|e| Reject::protocol(e.to_string()))?;
                for closed in effects.closed_conns {
                    if closed != conn {
                        self.net.close(closed);
                    }
                }
                if effects.own_state == Some(NodeState::Down) {
                    self.exit("stopped by the primary master");
                }
                Ok(())
            }
            Packet::NotifyClusterInformation(info) => {
                if info.state == ClusterState::Stopping {
                    self.exit("cluster is stopping");
                }
                Ok(())
            }
            Packet::NotPrimaryMaster(not_primary) => {
                if let Some(other) =
                    self.learn_masters(&not_primary.known_masters, not_primary.primary)
                {
                    let current = match &self.role {
                        Role::Secondary(s) => s.primary,
                        _ => return Ok(()),
                    };
                    if other != current {
                        self.follow(other);
                    }
                }
                Ok(())
            }
            Packet::SendPartitionTable(_) | Packet::NotifyPartitionChanges(_) => Ok(()),
            other => Err(Reject::unexpected(&other, "secondary master")),
        }
    }

    /// Secondary: the connection to the primary is gone. Retry it once if
    /// we had been accepted, else try the next master; when every master
    /// failed, play primary again.
    pub(super) fn primary_conn_lost(&mut self, key: NodeKey) {
        let Role::Secondary(secondary) = &mut self.role else {
            return;
        };
        if key != secondary.primary {
            return;
        }
        let was_running = self.nodes.get(key).is_some_and(|e| e.is_running());
        if let Some(entry) = self.nodes.get_mut(key) {
            entry.conn = None;
            entry.identified = false;
            entry.state = NodeState::Down;
        }
        if was_running {
            secondary.failed = BTreeSet::from([self.config.bind.clone()]);
        } else {
            let next = self
                .nodes
                .of_type(NodeType::Master)
                .filter_map(|(k, e)| e.address().map(|a| (k, a)))
                .find(|(_, addr)| !secondary.failed.contains(*addr))
                .map(|(k, _)| k);
            match next {
                Some(next) => secondary.primary = next,
                None => {
                    self.log(Level::Info, "no primary master found".to_string());
                    self.play_primary();
                    return;
                }
            }
        }
        self.secondary_step();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_candidate_wins_ties_broken_by_address() {
        let a = Address::new("127.0.0.1", 10000);
        let b = Address::new("127.0.0.1", 10001);
        assert!(ElectionKey::new(1.0, &b) < ElectionKey::new(2.0, &a));
        assert!(ElectionKey::new(1.0, &a) < ElectionKey::new(1.0, &b));
        assert_eq!(
            ElectionKey::new(1.0, &a).partial_cmp(&ElectionKey::new(1.0, &a)),
            Some(Ordering::Equal)
        );
    }
}
