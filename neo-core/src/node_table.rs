//! The node table: what a node knows of the other nodes of the cluster
//! (NEO/py's NodeManager).
//!
//! An entry has a type, an address (nodes that listen), a node id (once the
//! primary master gave one), a state, and the master's identification
//! timestamp; at most one entry per address and per id. The primary master
//! fills its table from identifications; every other node mirrors it from
//! NotifyNodeInformation.

use bytes::Bytes;
use hashbrown::HashMap;
use neo_proto::{Address, Map, Nid, NodeInfo, NodeState, NodeType, Timestamp, Value};

use crate::node::ConnId;

/// Handle of an entry in a [`NodeTable`]; stable while the entry exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey(usize);

/// What is known of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEntry {
    /// Master, storage, client or admin; fixed for the entry's life (a
    /// notification that changes it is refused).
    pub node_type: NodeType,
    address: Option<Address>,
    nid: Option<Nid>,
    /// DOWN, RUNNING or PENDING (cluster.md 1.1). UNKNOWN only while the
    /// master broadcasts that it forgets the node, just before removing
    /// the entry; receivers remove it at once.
    pub state: NodeState,
    /// When the node identified to the primary master (its clock).
    pub id_timestamp: Option<Timestamp>,
    /// Our connection to the node, if any.
    pub conn: Option<ConnId>,
    /// Identification packets were exchanged on `conn`.
    pub identified: bool,
    /// Properties sent at identification (kept by the master: topology
    /// path of storages, backup names of admins...).
    pub extra: Map<Bytes, Value>,
    /// A client session that may only read (master's view).
    pub read_only: bool,
}

impl NodeEntry {
    /// Where the node listens; `None` for nodes that do not listen
    /// (clients) or whose address is not known. Indexed: change it with
    /// [`NodeTable::set_address`].
    pub fn address(&self) -> Option<&Address> {
        self.address.as_ref()
    }

    /// The id the primary master gave (NEO/py's `uuid`), `None` until it
    /// did. Indexed: change it with [`NodeTable::set_nid`].
    pub fn nid(&self) -> Option<Nid> {
        self.nid
    }

    /// RUNNING: connected and in service (a storage's cells count).
    pub fn is_running(&self) -> bool {
        self.state == NodeState::Running
    }

    /// PENDING: a storage connected to the primary but not used yet (all
    /// of them while RECOVERING; later, until `neoctl add`).
    pub fn is_pending(&self) -> bool {
        self.state == NodeState::Pending
    }

    /// The record NEO sends about this node.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            node_type: self.node_type,
            address: self.address.clone(),
            nid: self.nid,
            state: self.state,
            id_timestamp: self.id_timestamp,
        }
    }

    /// A short description for logs: `S1 (127.0.0.1:20001)`.
    pub fn describe(&self) -> String {
        match (self.nid, &self.address) {
            (Some(nid), Some(address)) => format!("{nid} ({address})"),
            (Some(nid), None) => nid.to_string(),
            (None, Some(address)) => format!("{} {address}", self.node_type),
            (None, None) => format!("{} without id", self.node_type),
        }
    }
}

/// Most masters a node learns of from NotPrimaryMaster lists (clusters
/// have a handful): a liar's list cannot fill the node table.
pub const LEARNED_MASTERS_COUNT_MAX: usize = 32;

/// Why a NotifyNodeInformation cannot be applied (a lying or confused
/// master: the receiver drops the connection).
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationError {
    /// The timestamp is NaN or infinite.
    TimestampNotATime(f64),
    /// Not after the previous notification's: replayed or reordered.
    TimestampNotAfter {
        /// The notification's timestamp (UNIX seconds, the master's
        /// [`TimestampClock`](crate::time::TimestampClock)).
        timestamp: f64,
        /// The last one applied since the node (re)connected to a master.
        last: f64,
    },
    /// Another node is given the receiver's own id or address.
    OwnIdentityClaimed {
        /// Type of the node announced.
        node_type: NodeType,
        /// Id it was announced with.
        nid: Option<Nid>,
        /// Address it was announced with.
        address: Option<Address>,
    },
    /// A known node announced with another type.
    TypeChanged {
        /// The known entry, as [`NodeEntry::describe`] gives it.
        node: String,
        /// The type it was announced with.
        node_type: NodeType,
    },
}

impl std::fmt::Display for NotificationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotificationError::TimestampNotATime(timestamp) => {
                write!(f, "node notification timestamp {timestamp} is not a time")
            }
            NotificationError::TimestampNotAfter { timestamp, last } => write!(
                f,
                "node notification timestamp {timestamp} is not after {last}"
            ),
            NotificationError::OwnIdentityClaimed {
                node_type,
                nid,
                address,
            } => write!(
                f,
                "a {node_type} is announced with our id or address ({nid:?}, {address:?})"
            ),
            NotificationError::TypeChanged { node, node_type } => {
                write!(f, "{node} announced as a {node_type}")
            }
        }
    }
}

impl std::error::Error for NotificationError {}

/// What applying a NotifyNodeInformation changed, for the caller to react.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NotificationEffects {
    /// Connections to nodes that were forgotten (state UNKNOWN, or absent
    /// from the first full list): the caller closes them.
    pub closed_conns: Vec<ConnId>,
    /// Ids of forgotten storages (they must leave the partition table
    /// bookkeeping too).
    pub forgotten_storages: Vec<Nid>,
    /// The receiver's own state, if the notification mentioned it.
    pub own_state: Option<NodeState>,
    /// Nodes whose new state is not RUNNING (storages abort the
    /// transactions of such clients; clients close connections to such
    /// storages).
    pub not_running: Vec<(NodeType, Nid)>,
}

/// One node's node table: entries in slots designated by [`NodeKey`] (a
/// removed entry's slot is reused), indexed by id and by address so that
/// each designates at most one entry.
#[derive(Debug, Clone, Default)]
pub struct NodeTable {
    slots: Vec<Option<NodeEntry>>,
    free: Vec<usize>,
    by_nid: HashMap<Nid, usize>,
    by_address: HashMap<Address, usize>,
    /// Timestamp of the last NotifyNodeInformation applied (receivers).
    last_notification: f64,
    /// The receiver's own entry (masters): a notification may change its
    /// state, never forget it nor give its id or address to another.
    pinned: Option<NodeKey>,
}

/// The entry of a key the caller holds: every key a node keeps (in a
/// connection's role, a request's context) is dropped with its entry, so a
/// missing entry is a bug, reported with the caller's location.
impl std::ops::Index<NodeKey> for NodeTable {
    type Output = NodeEntry;

    #[track_caller]
    fn index(&self, key: NodeKey) -> &NodeEntry {
        match self.get(key) {
            Some(entry) => entry,
            None => panic!("the node table has no entry {key:?}: a key outlived its entry"),
        }
    }
}

impl std::ops::IndexMut<NodeKey> for NodeTable {
    #[track_caller]
    fn index_mut(&mut self, key: NodeKey) -> &mut NodeEntry {
        match self.get_mut(key) {
            Some(entry) => entry,
            None => panic!("the node table has no entry {key:?}: a key outlived its entry"),
        }
    }
}

impl NodeTable {
    /// An empty table (tests; every node kind starts from
    /// [`NodeTable::with_masters`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that knows the configured masters (each address once), DOWN
    /// until one answers.
    pub fn with_masters<'a>(masters: impl IntoIterator<Item = &'a Address>) -> Self {
        let mut nodes = NodeTable::new();
        for addr in masters {
            if nodes.by_address(addr).is_none() {
                nodes.add(NodeType::Master, Some(addr.clone()), None, NodeState::Down);
            }
        }
        nodes
    }

    /// Protects `key` (the receiver's own entry) from notifications.
    pub fn pin(&mut self, key: NodeKey) {
        self.pinned = Some(key);
    }

    /// Forgets the notification order: a (new) master starts its own.
    pub fn reset_notification_clock(&mut self) {
        self.last_notification = 0.0;
    }

    /// Timestamp of the last notification applied.
    pub fn last_notification(&self) -> f64 {
        self.last_notification
    }

    /// The entry of `key`, `None` if it was removed (indexing with
    /// `table[key]` panics instead).
    pub fn get(&self, key: NodeKey) -> Option<&NodeEntry> {
        self.slots.get(key.0).and_then(Option::as_ref)
    }

    /// Mutable access to the fields that do not index the entry.
    pub fn get_mut(&mut self, key: NodeKey) -> Option<&mut NodeEntry> {
        self.slots.get_mut(key.0).and_then(Option::as_mut)
    }

    /// The nodes of `node_type` identified on a connection, in key order.
    pub fn identified_of_type(&self, node_type: NodeType) -> Vec<NodeKey> {
        self.of_type(node_type)
            .filter(|(_, e)| e.identified)
            .map(|(k, _)| k)
            .collect()
    }

    /// The entry with this id, if any (at most one).
    pub fn by_nid(&self, nid: Nid) -> Option<NodeKey> {
        self.by_nid.get(&nid).copied().map(NodeKey)
    }

    /// The entry listening at this address, if any (at most one).
    pub fn by_address(&self, address: &Address) -> Option<NodeKey> {
        self.by_address.get(address).copied().map(NodeKey)
    }

    /// The entry with this id itself, if any.
    pub fn entry_by_nid(&self, nid: Nid) -> Option<&NodeEntry> {
        self.by_nid(nid).and_then(|key| self.get(key))
    }

    /// The state of the node with this id; `None` if unknown. The form
    /// the partition table's algorithms take node states in.
    pub fn state_of(&self, nid: Nid) -> Option<NodeState> {
        self.entry_by_nid(nid).map(|e| e.state)
    }

    /// Adds an entry; the address and nid must be free.
    pub fn add(
        &mut self,
        node_type: NodeType,
        address: Option<Address>,
        nid: Option<Nid>,
        state: NodeState,
    ) -> NodeKey {
        let entry = NodeEntry {
            node_type,
            address: None,
            nid: None,
            state,
            id_timestamp: None,
            conn: None,
            identified: false,
            extra: Map::new(),
            read_only: false,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(entry);
                index
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        let key = NodeKey(index);
        self.set_address(key, address);
        self.set_nid(key, nid);
        key
    }

    /// Finds the entry matching `address` or `nid`, or adds one (NEO/py's
    /// `_createNode`). Fails if they designate two different entries or
    /// contradict the entry found.
    pub fn find_or_add(
        &mut self,
        node_type: NodeType,
        address: Option<Address>,
        nid: Option<Nid>,
        state: NodeState,
    ) -> Result<NodeKey, String> {
        let by_address = address.as_ref().and_then(|a| self.by_address(a));
        let by_nid = nid.and_then(|n| self.by_nid(n));
        let key = match (by_address, by_nid) {
            (None, None) => return Ok(self.add(node_type, address, nid, state)),
            (Some(a), Some(n)) if a != n => {
                return Err(format!(
                    "{} and {} designate different nodes",
                    nid.unwrap(),
                    address.unwrap()
                ))
            }
            (Some(key), _) | (None, Some(key)) => key,
        };
        let entry = self.get(key).expect("indexed entry exists");
        if entry.node_type != node_type {
            return Err(format!(
                "{} is a {}, not a {node_type}",
                entry.describe(),
                entry.node_type
            ));
        }
        if let (Some(nid), Some(existing)) = (nid, entry.nid) {
            if nid != existing {
                return Err(format!("expected {nid} on {}", entry.describe()));
            }
        }
        if let (Some(address), Some(existing)) = (&address, &entry.address) {
            if address != existing {
                return Err(format!(
                    "expected address {address} on {}",
                    entry.describe()
                ));
            }
        }
        if entry.nid.is_none() && nid.is_some() {
            self.set_nid(key, nid);
        }
        if entry_address_missing(self, key) && address.is_some() {
            self.set_address(key, address);
        }
        Ok(key)
    }

    /// Forgets an entry (NEO/py's state UNKNOWN) and returns it; its id and
    /// address become free and `key` may later designate another entry.
    /// `None` if already removed.
    pub fn remove(&mut self, key: NodeKey) -> Option<NodeEntry> {
        let entry = self.slots.get_mut(key.0)?.take()?;
        if let Some(nid) = entry.nid {
            self.by_nid.remove(&nid);
        }
        if let Some(address) = &entry.address {
            self.by_address.remove(address);
        }
        self.free.push(key.0);
        Some(entry)
    }

    /// Changes the id of an entry, keeping the index right. Another entry
    /// holding `nid` loses it (NEO/py's `setUUID` on a conflict).
    pub fn set_nid(&mut self, key: NodeKey, nid: Option<Nid>) {
        let Some(entry) = self.slots.get_mut(key.0).and_then(Option::as_mut) else {
            return;
        };
        if entry.nid == nid {
            return;
        }
        if let Some(old) = entry.nid.take() {
            self.by_nid.remove(&old);
        }
        if let Some(nid) = nid {
            if let Some(other) = self.by_nid.insert(nid, key.0) {
                if let Some(other) = self.slots[other].as_mut() {
                    other.nid = None;
                }
            }
        }
        self.slots[key.0].as_mut().unwrap().nid = nid;
    }

    /// Changes the address of an entry, keeping the index right.
    pub fn set_address(&mut self, key: NodeKey, address: Option<Address>) {
        let Some(entry) = self.slots.get_mut(key.0).and_then(Option::as_mut) else {
            return;
        };
        if entry.address == address {
            return;
        }
        if let Some(old) = entry.address.take() {
            self.by_address.remove(&old);
        }
        if let Some(address) = &address {
            if let Some(other) = self.by_address.insert(address.clone(), key.0) {
                if let Some(other) = self.slots[other].as_mut() {
                    other.address = None;
                }
            }
        }
        self.slots[key.0].as_mut().unwrap().address = address;
    }

    /// Every entry, in a deterministic order (slot order).
    pub fn iter(&self) -> impl Iterator<Item = (NodeKey, &NodeEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (NodeKey(i), e)))
    }

    /// The keys of every entry, in slot order: a snapshot to iterate over
    /// while changing the table.
    pub fn keys(&self) -> Vec<NodeKey> {
        self.iter().map(|(key, _)| key).collect()
    }

    /// Adds a DOWN master entry for each address of a NotPrimaryMaster
    /// list not known yet, up to [`LEARNED_MASTERS_COUNT_MAX`] masters in
    /// all; returns the entries added.
    pub fn learn_masters(&mut self, known: &[Address], own: Option<&Address>) -> Vec<NodeKey> {
        let mut added = Vec::new();
        for addr in known {
            let masters = self.of_type(NodeType::Master).count();
            if masters >= LEARNED_MASTERS_COUNT_MAX {
                break;
            }
            if self.by_address(addr).is_none() && Some(addr) != own {
                added.push(self.add(NodeType::Master, Some(addr.clone()), None, NodeState::Down));
            }
        }
        added
    }

    /// The master entry at `address`, if any.
    pub fn master_at(&self, address: &Address) -> Option<NodeKey> {
        self.by_address(address)
            .filter(|&k| self.get(k).is_some_and(|e| e.node_type == NodeType::Master))
    }

    /// The entries of one type, in slot order.
    pub fn of_type(&self, node_type: NodeType) -> impl Iterator<Item = (NodeKey, &NodeEntry)> {
        self.iter().filter(move |(_, e)| e.node_type == node_type)
    }

    /// The entries whose connection completed identification, in slot
    /// order.
    pub fn identified(&self) -> impl Iterator<Item = (NodeKey, &NodeEntry)> {
        self.iter().filter(|(_, e)| e.identified)
    }

    /// The entry whose connection is `conn`, if any (a linear scan).
    pub fn by_conn(&self, conn: ConnId) -> Option<NodeKey> {
        self.iter()
            .find(|(_, e)| e.conn == Some(conn))
            .map(|(k, _)| k)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a NotifyNodeInformation from the primary master (every node
    /// but the primary does this).
    ///
    /// `own` identifies the receiver (its nid) and `first` says whether this
    /// is the first notification since it identified: then the list is
    /// complete and entries it does not mention are forgotten — storages
    /// only if `has_cells` says they hold no cell.
    pub fn apply_notification(
        &mut self,
        own: Option<Nid>,
        first: bool,
        timestamp: f64,
        nodes: &[NodeInfo],
        has_cells: &dyn Fn(Nid) -> bool,
    ) -> Result<NotificationEffects, NotificationError> {
        if !timestamp.is_finite() {
            return Err(NotificationError::TimestampNotATime(timestamp));
        }
        if timestamp <= self.last_notification {
            return Err(NotificationError::TimestampNotAfter {
                timestamp,
                last: self.last_notification,
            });
        }
        self.last_notification = timestamp;
        let mut effects = NotificationEffects::default();
        let mut listed = Vec::new();
        for info in nodes {
            if own.is_some() && info.nid == own {
                effects.own_state = Some(info.state);
            }
            if info.state != NodeState::Running {
                if let Some(nid) = info.nid {
                    effects.not_running.push((info.node_type, nid));
                }
            }
            if let Some(key) = self.apply_node_info(own, info, &mut effects)? {
                listed.push(key);
            }
        }
        if first {
            self.forget_unlisted(&listed, has_cells, &mut effects);
        }
        Ok(effects)
    }

    /// One node of a notification: its entry is created, updated or (state
    /// UNKNOWN) removed. Returns the entry that remains, if any.
    fn apply_node_info(
        &mut self,
        own: Option<Nid>,
        info: &NodeInfo,
        effects: &mut NotificationEffects,
    ) -> Result<Option<NodeKey>, NotificationError> {
        let by_nid = info.nid.and_then(|n| self.by_nid(n));
        let by_address = info.address.as_ref().and_then(|a| self.by_address(a));
        if let Some(pinned) = self
            .pinned
            .filter(|&k| by_nid == Some(k) || by_address == Some(k))
        {
            return self
                .apply_to_pinned(pinned, by_nid, by_address, info)
                .map(Some);
        }
        let Some(key) = by_address.or(by_nid) else {
            if info.state == NodeState::Unknown {
                // Forgetting a node we never knew: nothing to do.
                return Ok(None);
            }
            let key = self.add(info.node_type, info.address.clone(), info.nid, info.state);
            self.get_mut(key).unwrap().id_timestamp = info.id_timestamp;
            return Ok(Some(key));
        };
        let entry = self.get(key).unwrap();
        if entry.node_type != info.node_type {
            return Err(NotificationError::TypeChanged {
                node: entry.describe(),
                node_type: info.node_type,
            });
        }
        if let (Some(a), Some(n)) = (by_address, by_nid) {
            if a != n {
                // The id moved to the node at this address.
                self.set_nid(n, None);
            }
        }
        if info.state == NodeState::Unknown {
            let entry = self.get(key).unwrap();
            if let Some(conn) = entry.conn {
                effects.closed_conns.push(conn);
            }
            if info.nid != own {
                if let (NodeType::Storage, Some(nid)) = (entry.node_type, entry.nid) {
                    effects.forgotten_storages.push(nid);
                }
            }
            self.remove(key);
            return Ok(None);
        }
        self.set_nid(key, info.nid);
        self.set_address(key, info.address.clone());
        let entry = self.get_mut(key).unwrap();
        entry.state = info.state;
        entry.id_timestamp = info.id_timestamp;
        Ok(Some(key))
    }

    /// The receiver's own entry: only its state may change, and no other
    /// node may take its id or address.
    fn apply_to_pinned(
        &mut self,
        pinned: NodeKey,
        by_nid: Option<NodeKey>,
        by_address: Option<NodeKey>,
        info: &NodeInfo,
    ) -> Result<NodeKey, NotificationError> {
        if by_nid.unwrap_or(pinned) != pinned || by_address.unwrap_or(pinned) != pinned {
            return Err(NotificationError::OwnIdentityClaimed {
                node_type: info.node_type,
                nid: info.nid,
                address: info.address.clone(),
            });
        }
        if info.state != NodeState::Unknown {
            if let Some(entry) = self.get_mut(pinned) {
                entry.state = info.state;
            }
        }
        Ok(pinned)
    }

    /// After the first notification (a full list): what it did not list
    /// is forgotten, except storages that hold cells and our own entry.
    fn forget_unlisted(
        &mut self,
        listed: &[NodeKey],
        has_cells: &dyn Fn(Nid) -> bool,
        effects: &mut NotificationEffects,
    ) {
        for key in self.keys() {
            if listed.contains(&key) || Some(key) == self.pinned {
                continue;
            }
            let entry = self.get(key).unwrap();
            let forget = match (entry.node_type, entry.nid) {
                (NodeType::Storage, Some(nid)) => !has_cells(nid),
                _ => true,
            };
            if forget {
                if let Some(conn) = entry.conn {
                    effects.closed_conns.push(conn);
                }
                if let (NodeType::Storage, Some(nid)) = (entry.node_type, entry.nid) {
                    effects.forgotten_storages.push(nid);
                }
                self.remove(key);
            }
        }
    }
}

fn entry_address_missing(table: &NodeTable, key: NodeKey) -> bool {
    table.get(key).is_some_and(|e| e.address.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Address {
        Address::new("127.0.0.1", port)
    }

    fn info(
        node_type: NodeType,
        port: Option<u16>,
        nid: Option<i32>,
        state: NodeState,
    ) -> NodeInfo {
        NodeInfo {
            node_type,
            address: port.map(addr),
            nid: nid.map(Nid),
            state,
            id_timestamp: Some(Timestamp(1.0)),
        }
    }

    #[test]
    fn entries_are_indexed_by_nid_and_address() {
        let mut table = NodeTable::new();
        let s1 = table.add(
            NodeType::Storage,
            Some(addr(1)),
            Some(Nid(1)),
            NodeState::Running,
        );
        assert_eq!(table.by_nid(Nid(1)), Some(s1));
        assert_eq!(table.by_address(&addr(1)), Some(s1));
        table.set_nid(s1, Some(Nid(2)));
        assert_eq!(table.by_nid(Nid(1)), None);
        assert_eq!(table.by_nid(Nid(2)), Some(s1));
        // Taking an id another entry holds strips it from that entry.
        let s3 = table.add(NodeType::Storage, Some(addr(3)), None, NodeState::Down);
        table.set_nid(s3, Some(Nid(2)));
        assert_eq!(table.get(s1).unwrap().nid(), None);
        table.remove(s3);
        assert_eq!(table.by_nid(Nid(2)), None);
        assert_eq!(table.by_address(&addr(3)), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn find_or_add_merges_and_detects_contradictions() {
        let mut table = NodeTable::new();
        let m = table.add(NodeType::Master, Some(addr(10)), None, NodeState::Down);
        let found = table
            .find_or_add(
                NodeType::Master,
                Some(addr(10)),
                Some(Nid(-0x0fff_ffff)),
                NodeState::Down,
            )
            .unwrap();
        assert_eq!(found, m);
        assert_eq!(table.get(m).unwrap().nid(), Some(Nid(-0x0fff_ffff)));
        assert!(table
            .find_or_add(NodeType::Storage, Some(addr(10)), None, NodeState::Down)
            .is_err());
    }

    #[test]
    fn notifications_must_be_strictly_ordered() {
        let mut table = NodeTable::new();
        let none = |_| false;
        table
            .apply_notification(None, true, 5.0, &[], &none)
            .unwrap();
        assert!(table
            .apply_notification(None, false, 5.0, &[], &none)
            .is_err());
        table.reset_notification_clock();
        assert!(table
            .apply_notification(None, true, 1.0, &[], &none)
            .is_ok());
        // A NaN would compare false forever after; infinity would block
        // every later notification.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(table
                .apply_notification(None, false, bad, &[], &none)
                .is_err());
        }
        assert!(table
            .apply_notification(None, false, 2.0, &[], &none)
            .is_ok());
    }

    #[test]
    fn a_notification_never_forgets_nor_renames_the_pinned_entry() {
        let mut table = NodeTable::new();
        let own = table.add(
            NodeType::Master,
            Some(addr(1)),
            Some(Nid(-0x0fff_fffe)),
            NodeState::Running,
        );
        table.pin(own);
        let none = |_| false;
        // A full list without us: we stay.
        table
            .apply_notification(None, true, 1.0, &[], &none)
            .unwrap();
        assert!(table.get(own).is_some());
        // Our address with another id, or our id at another address: refused.
        let liar = |nid, address| NodeInfo {
            node_type: NodeType::Master,
            address,
            nid: Some(nid),
            state: NodeState::Unknown,
            id_timestamp: None,
        };
        table.add(
            NodeType::Master,
            Some(addr(2)),
            Some(Nid(-0x0fff_fffd)),
            NodeState::Down,
        );
        assert!(table
            .apply_notification(
                None,
                false,
                2.0,
                &[liar(Nid(-0x0fff_fffd), Some(addr(1)))],
                &none
            )
            .is_err());
        assert!(table
            .apply_notification(
                None,
                false,
                3.0,
                &[liar(Nid(-0x0fff_fffe), Some(addr(2)))],
                &none
            )
            .is_err());
        // Our own entry marked UNKNOWN: its state is kept, the entry too.
        table
            .apply_notification(
                None,
                false,
                4.0,
                &[liar(Nid(-0x0fff_fffe), Some(addr(1)))],
                &none,
            )
            .unwrap();
        assert_eq!(table.get(own).unwrap().nid(), Some(Nid(-0x0fff_fffe)));
    }

    #[test]
    fn first_notification_is_a_full_list() {
        let mut table = NodeTable::new();
        let old_client = table.add(
            NodeType::Client,
            None,
            Some(Nid(-0x1fff_ffff)),
            NodeState::Running,
        );
        table.get_mut(old_client).unwrap().conn = Some(ConnId::incoming(4));
        table.add(
            NodeType::Storage,
            Some(addr(2)),
            Some(Nid(2)),
            NodeState::Running,
        );
        table.add(
            NodeType::Storage,
            Some(addr(3)),
            Some(Nid(3)),
            NodeState::Running,
        );
        let has_cells = |nid: Nid| nid == Nid(3);
        let effects = table
            .apply_notification(
                Some(Nid(1)),
                true,
                10.0,
                &[
                    info(NodeType::Storage, Some(1), Some(1), NodeState::Running),
                    info(
                        NodeType::Master,
                        Some(100),
                        Some(-0x0fff_ffff),
                        NodeState::Running,
                    ),
                ],
                &has_cells,
            )
            .unwrap();
        assert_eq!(effects.own_state, Some(NodeState::Running));
        assert_eq!(effects.closed_conns, vec![ConnId::incoming(4)]);
        assert_eq!(effects.forgotten_storages, vec![Nid(2)]);
        // S3 holds cells: kept; S2 and the old client: forgotten.
        assert!(table.by_nid(Nid(3)).is_some());
        assert!(table.by_nid(Nid(2)).is_none());
        assert!(table.by_nid(Nid(-0x1fff_ffff)).is_none());
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn unknown_state_forgets_and_others_update() {
        let mut table = NodeTable::new();
        let none = |_| false;
        table
            .apply_notification(
                None,
                true,
                1.0,
                &[info(
                    NodeType::Storage,
                    Some(2),
                    Some(2),
                    NodeState::Running,
                )],
                &none,
            )
            .unwrap();
        let effects = table
            .apply_notification(
                None,
                false,
                2.0,
                &[
                    info(NodeType::Storage, Some(2), Some(2), NodeState::Down),
                    info(
                        NodeType::Client,
                        None,
                        Some(-0x1fff_fffe),
                        NodeState::Unknown,
                    ),
                ],
                &none,
            )
            .unwrap();
        assert_eq!(table.state_of(Nid(2)), Some(NodeState::Down));
        assert_eq!(
            effects.not_running,
            vec![
                (NodeType::Storage, Nid(2)),
                (NodeType::Client, Nid(-0x1fff_fffe))
            ]
        );
        table
            .apply_notification(
                None,
                false,
                3.0,
                &[info(
                    NodeType::Storage,
                    Some(2),
                    Some(2),
                    NodeState::Unknown,
                )],
                &none,
            )
            .unwrap();
        assert!(table.is_empty());
    }
}
