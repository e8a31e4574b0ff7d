//! Noticing a peer that stopped answering while its connection stays open
//! (a hung or frozen process: the kernel still acknowledges TCP, so TCP
//! keepalive — all NEO/py relies on — never fires).
//!
//! A watched connection silent for `idle` is pinged; if still nothing
//! arrives within `timeout` after that, the peer is declared dead and the
//! owner closes the connection as if the peer had left. Any packet counts
//! as a sign of life, so a busy peer streaming answers is never pinged.

use std::time::Duration;

use hashbrown::HashMap;

use crate::node::ConnId;
use crate::time::Time;

/// What to do about a watched connection, from [`Liveness::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Silent for `idle`: send it a Ping.
    Ping(ConnId),
    /// Unanswered ping: consider the peer gone (silent for that long).
    Dead(ConnId, Duration),
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    last_heard: Time,
    pinged: bool,
}

#[derive(Debug)]
pub(crate) struct Liveness {
    idle: Duration,
    timeout: Duration,
    peers: HashMap<ConnId, Peer>,
}

impl Liveness {
    pub(crate) fn new(idle: Duration, timeout: Duration) -> Liveness {
        Liveness {
            idle,
            timeout,
            peers: HashMap::new(),
        }
    }

    /// Starts watching `conn` (if not yet) and notes that it spoke at `now`.
    pub(crate) fn heard(&mut self, conn: ConnId, now: Time) {
        self.peers.insert(
            conn,
            Peer {
                last_heard: now,
                pinged: false,
            },
        );
    }

    /// Notes a sign of life from `conn` only if it is watched.
    pub(crate) fn heard_if_watched(&mut self, conn: ConnId, now: Time) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            peer.last_heard = now;
            peer.pinged = false;
        }
    }

    /// Forgets every peer (the watcher stops watching: a master that is
    /// no longer primary; watching again starts from when it resumes).
    pub(crate) fn clear(&mut self) {
        self.peers.clear();
    }

    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
    }

    pub(crate) fn is_watched(&self, conn: ConnId) -> bool {
        self.peers.contains_key(&conn)
    }

    /// What is due at `now`, in connection order (deterministic). Dead
    /// connections are forgotten.
    pub(crate) fn poll(&mut self, now: Time) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for (&conn, peer) in self.peers.iter_mut() {
            let silent = now.saturating_since(peer.last_heard);
            if peer.pinged {
                if silent >= self.idle + self.timeout {
                    verdicts.push(Verdict::Dead(conn, silent));
                }
            } else if silent >= self.idle {
                peer.pinged = true;
                verdicts.push(Verdict::Ping(conn));
            }
        }
        for verdict in &verdicts {
            if let Verdict::Dead(conn, _) = verdict {
                self.peers.remove(conn);
            }
        }
        verdicts.sort_by_key(|v| match v {
            Verdict::Ping(conn) | Verdict::Dead(conn, _) => *conn,
        });
        verdicts
    }

    /// When [`poll`](Self::poll) has something to say next.
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.peers
            .values()
            .map(|peer| {
                let after = if peer.pinged {
                    self.idle + self.timeout
                } else {
                    self.idle
                };
                peer.last_heard + after
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn at(seconds: u64) -> Time {
        Time::from_nanos(seconds * 1_000_000_000)
    }

    #[test]
    fn a_silent_peer_is_pinged_then_declared_dead() {
        let mut liveness = Liveness::new(10 * S, 5 * S);
        let conn = ConnId::incoming(1);
        liveness.heard(conn, at(0));
        assert_eq!(liveness.next_deadline(), Some(at(10)));
        assert_eq!(liveness.poll(at(9)), vec![]);
        assert_eq!(liveness.poll(at(10)), vec![Verdict::Ping(conn)]);
        assert_eq!(liveness.poll(at(11)), vec![], "pinged once");
        assert_eq!(liveness.next_deadline(), Some(at(15)));
        assert_eq!(liveness.poll(at(15)), vec![Verdict::Dead(conn, 15 * S)]);
        assert!(!liveness.is_watched(conn));
        assert_eq!(liveness.next_deadline(), None);
    }

    #[test]
    fn any_packet_is_a_sign_of_life() {
        let mut liveness = Liveness::new(10 * S, 5 * S);
        let (a, b) = (ConnId::incoming(1), ConnId::incoming(2));
        liveness.heard(a, at(0));
        liveness.heard(b, at(0));
        assert_eq!(
            liveness.poll(at(10)),
            vec![Verdict::Ping(a), Verdict::Ping(b)]
        );
        liveness.heard_if_watched(a, at(12));
        liveness.heard_if_watched(ConnId::incoming(3), at(12));
        assert!(!liveness.is_watched(ConnId::incoming(3)));
        assert_eq!(liveness.poll(at(15)), vec![Verdict::Dead(b, 15 * S)]);
        assert_eq!(liveness.poll(at(21)), vec![]);
        assert_eq!(liveness.poll(at(22)), vec![Verdict::Ping(a)]);
    }
}
