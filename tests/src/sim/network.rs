//! The simulated network: links between two connection ends, FIFO per
//! direction, that can be closed by either end, severed by a fault, or
//! forbidden by a partition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use neo_core::{ConnId, Time};

use super::NodeId;

#[derive(Debug, Clone)]
struct Link {
    opener: (NodeId, ConnId),
    acceptor: (NodeId, Option<ConnId>),
    opener_open: bool,
    acceptor_open: bool,
    /// Broken by a fault: nothing more is delivered either way.
    severed: bool,
    /// Last delivery instant, opener→acceptor and back (FIFO).
    last_delivery: [Time; 2],
}

#[derive(Debug, Default)]
pub struct Network {
    links: BTreeMap<u64, Link>,
    next_link: u64,
    /// Open ends: (node, its connection id) → link.
    by_end: BTreeMap<(NodeId, ConnId), u64>,
    accepted: BTreeMap<NodeId, u64>,
    blocked: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    pub fn open(&mut self, from: NodeId, conn: ConnId, to: NodeId) -> u64 {
        self.next_link += 1;
        let link = self.next_link;
        self.links.insert(
            link,
            Link {
                opener: (from, conn),
                acceptor: (to, None),
                opener_open: true,
                acceptor_open: true,
                severed: false,
                last_delivery: [Time::ZERO; 2],
            },
        );
        self.by_end.insert((from, conn), link);
        link
    }

    /// A fresh id for a connection `node` accepts (never reused, even
    /// across restarts).
    pub fn accept_id(&mut self, node: NodeId) -> ConnId {
        let n = self.accepted.entry(node).or_insert(0);
        *n += 1;
        ConnId::incoming(*n)
    }

    pub fn reset_accept_ids(&mut self, _node: NodeId) {
        // Ids keep increasing: events of a previous life never match.
    }

    pub fn set_acceptor_conn(&mut self, link: u64, conn: ConnId) {
        if let Some(l) = self.links.get_mut(&link) {
            l.acceptor.1 = Some(conn);
            self.by_end.insert((l.acceptor.0, conn), link);
        }
    }

    pub fn is_open(&self, link: u64) -> bool {
        self.links.get(&link).is_some_and(|l| !l.severed)
    }

    /// Whether `node`'s end of the link still exists (it did not close it,
    /// and no fault severed the link).
    pub fn end_open(&self, link: u64, node: NodeId) -> bool {
        self.links.get(&link).is_some_and(|l| {
            if l.opener.0 == node {
                l.opener_open
            } else {
                l.acceptor_open
            }
        })
    }

    /// Where a packet `from` sends on `conn` goes.
    pub fn route(&self, from: NodeId, conn: ConnId) -> Option<(u64, NodeId, ConnId)> {
        let link = *self.by_end.get(&(from, conn))?;
        let l = &self.links[&link];
        if l.severed {
            return None;
        }
        if l.opener == (from, conn) {
            Some((link, l.acceptor.0, l.acceptor.1?))
        } else {
            Some((link, l.opener.0, l.opener.1))
        }
    }

    /// The delivery instant of the next packet `from` sends on the link:
    /// no earlier than `earliest`, after everything sent before (FIFO).
    pub fn next_delivery(&mut self, link: u64, from: NodeId, earliest: Time) -> Time {
        let Some(l) = self.links.get_mut(&link) else {
            return earliest;
        };
        let direction = usize::from(l.opener.0 != from);
        let at = earliest.max(l.last_delivery[direction] + Duration::from_nanos(1));
        l.last_delivery[direction] = at;
        at
    }

    pub fn close_end(&mut self, link: u64, node: NodeId) {
        if let Some(l) = self.links.get_mut(&link) {
            if l.opener.0 == node && l.opener_open {
                l.opener_open = false;
                self.by_end.remove(&l.opener);
            } else if l.acceptor.0 == node && l.acceptor_open {
                l.acceptor_open = false;
                if let Some(conn) = l.acceptor.1 {
                    self.by_end.remove(&(node, conn));
                }
            }
            if !l.opener_open && !l.acceptor_open {
                self.links.remove(&link);
            }
        }
    }

    pub fn sever(&mut self, link: u64) {
        if let Some(l) = self.links.get_mut(&link) {
            l.severed = true;
        }
    }

    /// Open links of `node`: (link, peer, peer's connection id).
    pub fn links_of(&self, node: NodeId) -> Vec<(u64, NodeId, ConnId)> {
        self.links
            .iter()
            .filter_map(|(&link, l)| {
                if l.opener.0 == node && l.opener_open {
                    Some((link, l.acceptor.0, l.acceptor.1?))
                } else if l.acceptor.0 == node && l.acceptor_open && l.acceptor.1.is_some() {
                    Some((link, l.opener.0, l.opener.1))
                } else {
                    None
                }
            })
            .collect()
    }

    /// `node`'s own ids of its open connections (established or not).
    pub fn conns_of(&self, node: NodeId) -> Vec<ConnId> {
        self.by_end
            .iter()
            .filter(|((n, _), &link)| *n == node && self.end_open(link, node))
            .map(|((_, conn), _)| *conn)
            .collect()
    }

    /// Both ends of a link that is fully established.
    pub fn ends(&self, link: u64) -> Option<((NodeId, ConnId), (NodeId, ConnId))> {
        let l = self.links.get(&link)?;
        Some((l.opener, (l.acceptor.0, l.acceptor.1?)))
    }

    pub fn open_links(&self) -> Vec<u64> {
        self.links
            .iter()
            .filter(|(_, l)| !l.severed && l.acceptor.1.is_some())
            .map(|(&k, _)| k)
            .collect()
    }

    /// The peer at the other end of `node`'s connection `conn`.
    pub fn peer(&self, node: NodeId, conn: ConnId) -> Option<NodeId> {
        self.route(node, conn).map(|(_, peer, _)| peer)
    }

    pub fn block(&mut self, a: NodeId, b: NodeId) {
        self.blocked.insert((a.min(b), a.max(b)));
    }

    pub fn partitioned(&self, a: NodeId, b: NodeId) -> bool {
        self.blocked.contains(&(a.min(b), a.max(b)))
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}
