//! Following the primary master, as storages, admins and clients do: find
//! it ([`Bootstrap`]), identify, keep the node table and the partition
//! table current from its notifications, and notice its loss.
//!
//! The link owns what only the connection to the primary decides (which
//! connection it is, our node id and identification timestamp, whether the
//! next node notification is the first) and updates the node's
//! [`NodeTable`] and partition table, which the node owns because its
//! other connections use them too. It reports what changed as a
//! [`FromPrimary`], so each node's own handler only reacts: the checks on
//! what a master sends live here once.

// Numbers from peers are handled here: no indexing that can panic, no
// arithmetic that can overflow (CI denies both).
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use bytes::Bytes;
use neo_proto::{
    AcceptIdentification, Map, Nid, NodeInfo, NodeState, NodeType, NotifyPartitionChanges, Packet,
    SendPartitionTable, Timestamp, Value,
};

use crate::bootstrap::{refusal, Attempt, Bootstrap};
use crate::identity::Identity;
use crate::net::{Net, Reject};
use crate::node::{ConnId, Level};
use crate::node_table::{NodeTable, NotificationEffects};
use crate::pt::PartitionTable;
use crate::time::Time;

/// How the primary answered our identification.
#[derive(Debug)]
pub(crate) enum Identified {
    /// Accepted: the link is up and `nid` is ours.
    Accepted { nid: Nid },
    /// Refused (already logged, as `text`): the master closes the
    /// connection, and we look again.
    Refused {
        error: neo_proto::Error,
        text: String,
    },
    /// Not an acceptance by a master (already logged): the node drops the
    /// link.
    Invalid,
}

/// A packet of the primary, once the link applied its part.
#[derive(Debug)]
pub(crate) enum FromPrimary {
    /// Nothing for the node to do.
    Done,
    /// The node table changed (the notification's list and what it did).
    Nodes {
        nodes: Vec<NodeInfo>,
        effects: NotificationEffects,
    },
    /// A new partition table was installed.
    TableReplaced(SendPartitionTable),
    /// The partition table changed; `caught_up` are the partitions where
    /// our cell left OUT_OF_DATE.
    TableChanged {
        changes: NotifyPartitionChanges,
        caught_up: Vec<u32>,
    },
    /// A packet for the node's own handler.
    Other(Packet),
}

/// The link to the primary master.
#[derive(Debug)]
pub(crate) struct PrimaryLink {
    identity: Identity,
    bootstrap: Bootstrap,
    /// The connection to the primary, or to the master being tried.
    conn: Option<ConnId>,
    /// The master on `conn` accepted us.
    identified: bool,
    /// The next node notification is the first since we identified (a
    /// full list: whatever it does not name is forgotten).
    first_notification: bool,
    nid: Option<Nid>,
    /// Ours, as the primary announced it (other nodes check it).
    id_timestamp: Option<Timestamp>,
    /// When the throttle allows the next attempt.
    retry_at: Option<Time>,
}

impl PrimaryLink {
    /// A link for `identity`, which starts with `nid` if it has one.
    pub(crate) fn new(identity: Identity, nid: Option<Nid>) -> PrimaryLink {
        PrimaryLink {
            identity,
            bootstrap: Bootstrap::new(),
            conn: None,
            identified: false,
            first_notification: true,
            nid,
            id_timestamp: None,
            retry_at: None,
        }
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The connection to the master we follow (identified or not).
    pub(crate) fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    /// Whether `conn` is the link's connection.
    pub(crate) fn is_conn(&self, conn: ConnId) -> bool {
        self.conn == Some(conn)
    }

    /// The connection to the primary, once it accepted us.
    pub(crate) fn identified_conn(&self) -> Option<ConnId> {
        self.conn.filter(|_| self.identified)
    }

    pub(crate) fn is_identified(&self) -> bool {
        self.identified
    }

    pub(crate) fn nid(&self) -> Option<Nid> {
        self.nid
    }

    pub(crate) fn id_timestamp(&self) -> Option<Timestamp> {
        self.id_timestamp
    }

    /// Gives up our id: the next identification asks for a new one.
    pub(crate) fn forget_nid(&mut self) {
        self.nid = None;
    }

    /// When the link wants [`on_timeout`](Self::on_timeout).
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        self.retry_at
    }

    /// Looks for the primary unless the link has a connection: opens one
    /// to the next master with `role`, or waits for the throttle.
    pub(crate) fn connect<R, S, E>(
        &mut self,
        nodes: &mut NodeTable,
        now: Time,
        net: &mut Net<R, S, E>,
        role: S,
    ) {
        if self.conn.is_some() {
            return;
        }
        match self.bootstrap.next(nodes, now) {
            Attempt::Connect(addr) => {
                let key = nodes.by_address(&addr);
                let conn = net.connect(addr, role);
                if let Some(entry) = key.and_then(|k| nodes.get_mut(k)) {
                    entry.conn = Some(conn);
                }
                self.conn = Some(conn);
            }
            Attempt::RetryAt(at) => self.retry_at = Some(at),
            Attempt::NoMaster => net.log(Level::Error, "no master configured"),
        }
    }

    /// Tries the next master if the throttle's wait is over.
    pub(crate) fn on_timeout<R, S, E>(
        &mut self,
        nodes: &mut NodeTable,
        now: Time,
        net: &mut Net<R, S, E>,
        role: S,
    ) {
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.connect(nodes, now, net, role);
        }
    }

    /// The connection to a master is up: identify, with the node's
    /// `extra` fields, as request `context`.
    pub(crate) fn identify<R, S, E>(
        &self,
        net: &mut Net<R, S, E>,
        context: R,
        extra: Map<Bytes, Value>,
    ) {
        if let Some(conn) = self.conn {
            let request = self.identity.request(self.nid, None, extra);
            net.ask(conn, request, context);
        }
    }

    /// The master's answer to our identification. An acceptance must come
    /// from a master and give us an id of our own node type (a storage
    /// writes it to its database); a refusal is logged at `refusal_level`
    /// (a wrong cluster name always as an error).
    pub(crate) fn on_identification_answer<R, S, E>(
        &mut self,
        nodes: &mut NodeTable,
        net: &mut Net<R, S, E>,
        packet: Packet,
        refusal_level: Level,
    ) -> Identified {
        let accepted = match packet {
            Packet::AcceptIdentification(accepted) => accepted,
            Packet::Error(error) => {
                let (level, text) = refusal(&error, &self.identity.cluster, refusal_level);
                net.log(level, text.clone());
                return Identified::Refused { error, text };
            }
            other => {
                net.log(
                    Level::Error,
                    format!("identification answered by {}", other.name()),
                );
                return Identified::Invalid;
            }
        };
        let AcceptIdentification {
            node_type,
            nid: master_nid,
            your_nid,
        } = accepted;
        let own_type = self.identity.node_type;
        let your_nid = match your_nid {
            Some(nid) if node_type == NodeType::Master && nid.node_type() == Some(own_type) => nid,
            _ => {
                net.log(
                    Level::Error,
                    format!(
                        "AcceptIdentification from a {node_type} giving us {your_nid:?}: \
                         not a master accepting a {own_type}"
                    ),
                );
                return Identified::Invalid;
            }
        };
        if let Some(key) = self.conn.and_then(|conn| nodes.by_conn(conn)) {
            nodes.set_nid(key, master_nid);
            if let Some(entry) = nodes.get_mut(key) {
                entry.state = NodeState::Running;
                entry.identified = true;
            }
        }
        self.nid = Some(your_nid);
        self.id_timestamp = None;
        self.identified = true;
        self.first_notification = true;
        nodes.reset_notification_clock();
        net.log(
            Level::Info,
            format!("identified with the primary master as {your_nid}"),
        );
        Identified::Accepted { nid: your_nid }
    }

    /// Drops the link (`closed_by_peer`: the runtime reported it closed,
    /// else we close it) and returns the contexts of the requests it took
    /// with it, or `None` if there was no link. Logs the loss of an
    /// identified primary with `why`.
    pub(crate) fn lose<R, S, E>(
        &mut self,
        nodes: &mut NodeTable,
        net: &mut Net<R, S, E>,
        closed_by_peer: bool,
        why: &str,
    ) -> Option<Vec<R>> {
        let conn = self.conn.take()?;
        let pending = net.drain_pending(conn);
        if closed_by_peer {
            net.forget(conn);
        } else {
            net.close(conn);
        }
        if std::mem::replace(&mut self.identified, false) {
            net.log(Level::Error, format!("primary master lost: {why}"));
        }
        self.retry_at = None;
        for key in nodes.keys() {
            if let Some(entry) = nodes.get_mut(key) {
                if entry.node_type == NodeType::Master {
                    entry.conn = None;
                    entry.identified = false;
                }
            }
        }
        Some(pending)
    }

    /// A request or notification of the master on the link: applies what
    /// concerns the link, the node table and the partition table `pt`.
    /// Until the master accepts us, only NotPrimaryMaster may come; after,
    /// it is the node's to refuse like any packet it does not handle.
    pub(crate) fn on_packet(
        &mut self,
        nodes: &mut NodeTable,
        pt: &mut Option<PartitionTable>,
        packet: Packet,
    ) -> Result<FromPrimary, Reject> {
        if !self.identified {
            return match packet {
                Packet::NotPrimaryMaster(not_primary) => {
                    self.bootstrap.not_primary(
                        nodes,
                        &not_primary.known_masters,
                        not_primary.primary,
                    );
                    Ok(FromPrimary::Done)
                }
                other => Err(Reject::unexpected(&other, "identification")),
            };
        }
        match packet {
            Packet::NotifyNodeInformation(notification) => {
                let first = std::mem::replace(&mut self.first_notification, false);
                let has_cells = |nid| pt.as_ref().is_some_and(|pt| pt.has_cells(nid));
                let effects = nodes
                    .apply_notification(
                        self.nid,
                        first,
                        notification.timestamp.0,
                        &notification.nodes,
                        &has_cells,
                    )
                    .map_err(|e| Reject::protocol(e.to_string()))?;
                let own = notification
                    .nodes
                    .iter()
                    .find(|n| n.nid.is_some() && n.nid == self.nid);
                if let Some(own) = own {
                    self.id_timestamp = own.id_timestamp;
                }
                Ok(FromPrimary::Nodes {
                    nodes: notification.nodes,
                    effects,
                })
            }
            Packet::SendPartitionTable(table) => {
                *pt = Some(self.check_table(pt.as_ref(), &table)?);
                Ok(FromPrimary::TableReplaced(table))
            }
            Packet::NotifyPartitionChanges(changes) => {
                let table = pt.as_mut().ok_or_else(Reject::changes_before_table)?;
                let outdated = |table: &PartitionTable| {
                    self.nid
                        .map_or_else(Vec::new, |own| table.outdated_offsets(own))
                };
                let was_outdated = outdated(table);
                table
                    .apply_changes(changes.ptid, changes.num_replicas, &changes.changes)
                    .map_err(|e| Reject::protocol(format!("NotifyPartitionChanges: {e}")))?;
                let still_outdated = outdated(table);
                let caught_up = was_outdated
                    .into_iter()
                    .filter(|p| !still_outdated.contains(p))
                    .collect();
                Ok(FromPrimary::TableChanged { changes, caught_up })
            }
            other => Ok(FromPrimary::Other(other)),
        }
    }

    /// The table a SendPartitionTable describes. A storage keys its data by
    /// partition: it takes only complete tables with an id, of the size of
    /// the one it has.
    fn check_table(
        &self,
        current: Option<&PartitionTable>,
        table: &SendPartitionTable,
    ) -> Result<PartitionTable, Reject> {
        let storage = self.identity.node_type == NodeType::Storage;
        if storage && table.ptid.is_none() {
            return Err(Reject::protocol("partition table without id"));
        }
        let new = PartitionTable::from_rows(table.ptid, table.num_replicas, &table.rows)
            .map_err(|e| Reject::protocol(format!("SendPartitionTable.rows: {e}")))?;
        if !storage {
            return Ok(new);
        }
        if let Some(ours) = current.map(PartitionTable::num_partitions) {
            if ours != new.num_partitions() {
                return Err(Reject::protocol(format!(
                    "SendPartitionTable.rows: {} partitions, ours has {ours}",
                    new.num_partitions()
                )));
            }
        }
        if !new.filled() {
            return Err(Reject::protocol("Partial partition table received"));
        }
        Ok(new)
    }
}
