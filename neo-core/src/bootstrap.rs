//! Finding the primary master (storages, admins, clients): cycle over the
//! known masters, identify, follow NotPrimaryMaster to the primary it
//! names, until a master accepts us.

use neo_proto::{Address, NodeType};

use crate::node::Level;
use crate::node_table::NodeTable;
use crate::throttle::ConnectThrottle;
use crate::time::Time;

/// What to do next while looking for the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Connect to this master now.
    Connect(Address),
    /// The throttle forbids connecting before this instant.
    RetryAt(Time),
    /// No master is known at all.
    NoMaster,
}

/// Which master to try next, and when.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bootstrap {
    /// The master a NotPrimaryMaster named, to try first.
    named: Option<Address>,
    /// Index of the last master tried, in address order.
    index: usize,
    /// Pacing of the attempts to each master.
    throttle: ConnectThrottle,
}

impl Bootstrap {
    pub(crate) fn new() -> Bootstrap {
        Bootstrap::default()
    }

    /// The next master to try: the one named primary if any, else the next
    /// known master in a round-robin over addresses. Records the attempt
    /// in the throttle when it returns `Connect`.
    pub(crate) fn next(&mut self, nodes: &NodeTable, now: Time) -> Attempt {
        let mut masters: Vec<Address> = nodes
            .of_type(NodeType::Master)
            .filter_map(|(_, e)| e.address().cloned())
            .collect();
        if masters.is_empty() {
            return Attempt::NoMaster;
        }
        masters.sort();
        let target = match self.named.take() {
            Some(named) => {
                if let Some(i) = masters.iter().position(|m| *m == named) {
                    self.index = i;
                }
                named
            }
            None => {
                self.index = (self.index + 1) % masters.len();
                masters[self.index].clone()
            }
        };
        let allowed = self.throttle.allowed_at(&target);
        if allowed > now {
            // Try the same target when allowed.
            self.named = Some(target);
            return Attempt::RetryAt(allowed);
        }
        self.throttle.record(&target, now);
        Attempt::Connect(target)
    }

    /// A master answered NotPrimaryMaster: learn the masters it knows and,
    /// if it names the primary, try that one next.
    pub(crate) fn not_primary(
        &mut self,
        nodes: &mut NodeTable,
        known: &[Address],
        primary: Option<u32>,
    ) {
        nodes.learn_masters(known, None);
        let named = primary.and_then(|i| known.get(usize::try_from(i).ok()?));
        if let Some(addr) = named.filter(|a| nodes.master_at(a).is_some()) {
            self.named = Some(addr.clone());
        }
    }
}

/// How to log a master's refusal to identify us: at `usual` level with
/// its code and message, except a wrong cluster name, a configuration
/// error that no retry will fix: an error naming the name we gave.
pub(crate) fn refusal(
    error: &neo_proto::Error,
    our_cluster: &[u8],
    usual: Level,
) -> (Level, String) {
    let message = String::from_utf8_lossy(&error.message);
    let mut text = format!("master refused us: {} {message}", error.code);
    if error.code == neo_proto::ErrorCode::ProtocolError && message == "invalid cluster name" {
        text.push_str(&format!(
            " (ours is {:?}: is this node configured for another cluster?)",
            String::from_utf8_lossy(our_cluster)
        ));
        return (Level::Error, text);
    }
    (usual, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_proto::NodeState;
    use std::time::Duration;

    fn table(ports: &[u16]) -> NodeTable {
        let mut nodes = NodeTable::new();
        for &port in ports {
            nodes.add(
                NodeType::Master,
                Some(Address::new("127.0.0.1", port)),
                None,
                NodeState::Down,
            );
        }
        nodes
    }

    #[test]
    fn cycles_over_masters_and_prefers_the_named_primary() {
        let mut nodes = table(&[1, 2, 3]);
        let mut bootstrap = Bootstrap::new();
        let mut now = Time::from_nanos(10_000_000_000);
        let mut tried = Vec::new();
        for _ in 0..3 {
            match bootstrap.next(&nodes, now) {
                Attempt::Connect(addr) => tried.push(addr.port),
                other => panic!("{other:?}"),
            }
        }
        tried.sort();
        assert_eq!(tried, vec![1, 2, 3]);
        bootstrap.not_primary(&mut nodes, &[Address::new("127.0.0.1", 9)], Some(0));
        // Port 9 is new and unthrottled: tried next.
        assert_eq!(
            bootstrap.next(&nodes, now),
            Attempt::Connect(Address::new("127.0.0.1", 9))
        );
        // Everything was just tried: wait for the throttle.
        assert!(matches!(bootstrap.next(&nodes, now), Attempt::RetryAt(_)));
        now = now + Duration::from_secs(1);
        assert!(matches!(bootstrap.next(&nodes, now), Attempt::Connect(_)));
    }
}
