//! Accepting nodes that connect to us (primary), or turning them away with
//! NotPrimaryMaster (secondary).

// Numbers from peers are handled here: no indexing that can panic, no
// arithmetic that can overflow (CI denies both).
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use neo_proto::{
    AcceptIdentification, AskRecovery, CellChange, CellState, ClusterState, ErrorCode, Nid,
    NodeState, NodeType, NotPrimaryMaster, Packet, RequestIdentification, Timestamp, Value,
};

use super::{election::ElectionKey, ConnRole, Master, PrimaryPhase, Request, Role};
use crate::net::Reject;
use crate::node::{ConnId, Level};
use crate::node_table::NodeKey;

/// Where an identifying node stands in the node table.
struct FoundEntry {
    /// Its entry, if it has one.
    key: Option<NodeKey>,
    /// The id it keeps, if any (a taken temporary id is dropped).
    nid: Option<Nid>,
    /// The entry at its address, of its type.
    by_address: Option<NodeKey>,
}

/// The cluster's answer to an identifying node.
enum Admission {
    Admitted {
        state: NodeState,
        read_only: bool,
    },
    /// Answered (or the connection closed) without admitting it.
    Answered,
}

/// Partitions a storage that lost its id held (its `new_nid` extra).
fn new_nid_offsets(request: &mut RequestIdentification) -> Vec<u32> {
    let Some(value) = take_extra(request, b"new_nid") else {
        return Vec::new();
    };
    let items = value.as_array().unwrap_or_default();
    items
        .iter()
        .filter_map(|v| v.as_i64())
        .filter_map(|o| u32::try_from(o).ok())
        .collect()
}

impl Master {
    /// The first packet of an accepted connection.
    pub(super) fn identify(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        packet: Packet,
    ) -> Result<(), Reject> {
        let Packet::RequestIdentification(request) = packet else {
            return Err(Reject::unexpected(&packet, "identification"));
        };
        if request.cluster_name != self.config.cluster {
            self.log(
                Level::Error,
                format!("rejecting a node of another cluster on {conn}"),
            );
            return Err(Reject::protocol("invalid cluster name"));
        }
        if request.address.as_ref() == Some(&self.config.bind) {
            return Err(Reject::protocol("address conflict"));
        }
        match &self.role {
            Role::Primary(_) => self.identify_as_primary(conn, msg_id, request),
            Role::Secondary(_) => self.turn_away(conn, request),
            Role::Exited => Ok(()),
        }
    }

    /// The entry at `address`, if it is of `node_type`. An unidentified
    /// entry of another type there (a dead node whose port was reused)
    /// loses the address; an identified one is a conflict left for the
    /// caller (`None` here would let a liar take over its entry).
    fn address_of_same_type(
        &mut self,
        node_type: NodeType,
        address: Option<&neo_proto::Address>,
    ) -> Option<NodeKey> {
        let key = self.nodes.by_address(address?)?;
        let entry = self.nodes.get(key)?;
        if entry.node_type == node_type || entry.identified || key == self.own {
            return Some(key);
        }
        self.nodes.set_address(key, None);
        None
    }

    fn identify_as_primary(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        mut request: RequestIdentification,
    ) -> Result<(), Reject> {
        let node_type = request.node_type;
        let address = request.address.clone();
        if request.id_timestamp.is_some_and(|ts| !ts.0.is_finite()) {
            return Err(Reject::protocol(
                "RequestIdentification.id_timestamp is not a time",
            ));
        }
        let found = self.find_entry(node_type, request.nid, address.as_ref())?;
        let mut new_nid_offsets = new_nid_offsets(&mut request);
        if node_type != NodeType::Storage {
            new_nid_offsets.clear(); // only storages hold cells
        }
        let admitted = self.admission(conn, msg_id, &mut request, &found, &new_nid_offsets)?;
        let Admission::Admitted { state, read_only } = admitted else {
            return Ok(());
        };
        let (key, nid) = self.register(&found, request, state, read_only)?;
        if !new_nid_offsets.is_empty() {
            self.take_cells_of_lost_id(nid, new_nid_offsets);
        }
        self.attach(key, conn, msg_id, nid, state);
        Ok(())
    }

    /// The node table's entry for an identifying node, if it has one, and
    /// the id it asks for (NEO/py's identification loop): a conflict with
    /// an identified node is refused, a temporary id that is taken is
    /// dropped (a new one will be chosen).
    fn find_entry(
        &mut self,
        node_type: NodeType,
        nid: Option<Nid>,
        address: Option<&neo_proto::Address>,
    ) -> Result<FoundEntry, Reject> {
        let by_nid = nid.and_then(|n| self.nodes.by_nid(n));
        if let Some(other) = by_nid.and_then(|k| self.nodes.get(k)) {
            if other.node_type != node_type {
                return Err(Reject::protocol(format!(
                    "a {node_type} presents the id of {} ({})",
                    other.describe(),
                    other.node_type
                )));
            }
        }
        let by_address = self.address_of_same_type(node_type, address);
        let identified = |key: NodeKey| self.nodes.get(key).is_some_and(|e| e.identified);
        let mut found = FoundEntry {
            key: by_nid,
            nid,
            by_address,
        };
        let already_connected = || Reject::protocol("already connected");
        if let Some(by_address) = by_address {
            if identified(by_address) {
                return Err(already_connected());
            }
            if found.key != Some(by_address) {
                if found.key.is_none() || nid.is_some_and(Nid::is_temporary) {
                    // Address conflict with a temporary id: a new id will
                    // be chosen.
                    found.key = Some(by_address);
                } else {
                    return Err(already_connected());
                }
            }
        } else if let Some(key) = found.key {
            if identified(key) {
                if nid.is_some_and(Nid::is_temporary) {
                    // The temporary id is taken: give another one.
                    found.key = None;
                    found.nid = None;
                } else if self.evict_newcomer(key) {
                    // We gave that id to a newcomer before knowing it was
                    // taken: the node presenting it has precedence.
                    self.nodes.set_address(key, address.cloned());
                } else {
                    return Err(already_connected());
                }
            } else if key == self.own {
                found.key = None;
            } else {
                self.nodes.set_address(key, address.cloned());
            }
        }
        Ok(found)
    }

    /// Whether the cluster's state admits the node now, and as what. A
    /// refusal that is not an error (a read-write client of a backup
    /// cluster, a master that won the election) is handled here.
    fn admission(
        &mut self,
        conn: ConnId,
        msg_id: u32,
        request: &mut RequestIdentification,
        found: &FoundEntry,
        new_nid_offsets: &[u32],
    ) -> Result<Admission, Reject> {
        let cluster_state = self.cluster_state().unwrap();
        let admitted = |state| {
            Ok(Admission::Admitted {
                state,
                read_only: false,
            })
        };
        match request.node_type {
            NodeType::Client => {
                let read_only = match take_extra(request, b"read_only") {
                    Some(value) => value.as_bool().unwrap_or(false),
                    None => request.extra.get(&b"backup"[..]).is_some(),
                };
                match cluster_state {
                    ClusterState::Running => {}
                    ClusterState::Backingup if read_only => {}
                    ClusterState::Backingup => {
                        self.net.answer(
                            conn,
                            msg_id,
                            Packet::error(
                                ErrorCode::ReadOnlyAccess,
                                "read-write access requested but cluster is backing up",
                            ),
                        );
                        return Ok(Admission::Answered);
                    }
                    _ => return Err(Reject::not_ready("cluster is not running")),
                }
                Ok(Admission::Admitted {
                    state: NodeState::Running,
                    read_only,
                })
            }
            NodeType::Storage => {
                let state = self.storage_admission(request, found, new_nid_offsets)?;
                admitted(state)
            }
            NodeType::Master => {
                if cluster_state == ClusterState::Recovering
                    && self.lost_election_to(conn, request, found)
                {
                    return Ok(Admission::Answered);
                }
                admitted(NodeState::Running)
            }
            NodeType::Admin => admitted(NodeState::Running),
        }
    }

    /// The state a storage starts in: PENDING until the operator adds it,
    /// unless it comes back with its id outside recovery; DOWN for one
    /// without address (it only gives up a lost id's cells).
    fn storage_admission(
        &self,
        request: &RequestIdentification,
        found: &FoundEntry,
        new_nid_offsets: &[u32],
    ) -> Result<NodeState, Reject> {
        check_devpath(request)?;
        let cluster_state = self.cluster_state().unwrap();
        if cluster_state == ClusterState::StoppingBackup {
            return Err(Reject::not_ready("cluster is leaving backup mode"));
        }
        let known = found.nid.is_some() && found.key.is_some();
        let mut state = match self.primary().unwrap().phase {
            PrimaryPhase::Recovery(_) => NodeState::Pending,
            _ if known => NodeState::Running,
            _ => NodeState::Pending,
        };
        if request.address.is_none() {
            if cluster_state == ClusterState::Recovering {
                return Err(Reject::not_ready("cluster is recovering"));
            }
            if found.nid.is_some() || new_nid_offsets.is_empty() {
                return Err(Reject::protocol("storage without address"));
            }
            state = NodeState::Down;
        }
        Ok(state)
    }

    /// A candidate master older than us (during the election) wins: we
    /// follow it and drop this connection.
    fn lost_election_to(
        &mut self,
        conn: ConnId,
        request: &RequestIdentification,
        found: &FoundEntry,
    ) -> bool {
        let (Some(ts), Some(addr)) = (request.id_timestamp, &request.address) else {
            return false;
        };
        if ElectionKey::new(ts.0, addr) >= self.election_key() {
            return false;
        }
        let winner = match found.by_address {
            Some(key) => key,
            None => self
                .nodes
                .add(NodeType::Master, Some(addr.clone()), None, NodeState::Down),
        };
        self.log(Level::Info, format!("lost the election against {addr}"));
        self.net.close(conn);
        self.play_secondary(winner);
        true
    }

    /// Gives the node its id and records it in the node table (a new entry
    /// if it had none); tells every node.
    fn register(
        &mut self,
        found: &FoundEntry,
        request: RequestIdentification,
        state: NodeState,
        read_only: bool,
    ) -> Result<(NodeKey, Nid), Reject> {
        let node_type = request.node_type;
        let address = request.address;
        let nid = self.new_nid(found.nid, address.as_ref(), node_type);
        let fresh_storage = node_type == NodeType::Storage && found.nid != Some(nid);
        if fresh_storage {
            let primary = self.primary_mut().unwrap();
            if primary.cluster_state == ClusterState::Recovering
                && !primary.unheard_masters.is_empty()
            {
                return Err(Reject::not_ready("election in progress"));
            }
            if let PrimaryPhase::Recovery(recovery) = &mut primary.phase {
                recovery.fresh_nids.insert(nid);
            }
        }
        let key = match found.key {
            None => self.nodes.add(node_type, address, Some(nid), state),
            Some(key) => {
                self.nodes.set_nid(key, Some(nid));
                key
            }
        };
        let id_timestamp = Timestamp(self.clock.now(self.wall));
        if let Some(entry) = self.nodes.get_mut(key) {
            entry.extra = request.extra;
            entry.read_only = read_only;
            entry.id_timestamp = Some(id_timestamp);
            entry.state = state;
        }
        self.log(
            Level::Info,
            format!("accepted {} {} ({state})", node_type, self.node_desc(key)),
        );
        if node_type == NodeType::Master {
            self.master_heard(key);
        }
        self.broadcast_nodes(&[key]);
        Ok((key, nid))
    }

    /// A storage that lost its id asks for the cells it held (offsets past
    /// the table are ignored): they become its, OUT_OF_DATE.
    fn take_cells_of_lost_id(&mut self, nid: Nid, offsets: Vec<u32>) {
        let mut changes = Vec::new();
        for offset in offsets {
            if offset < self.pt.num_partitions() {
                self.pt.set_cell(offset as usize, nid, CellState::OutOfDate);
                changes.push(CellChange {
                    offset,
                    nid,
                    state: CellState::OutOfDate,
                });
            }
        }
        self.broadcast_pt_changes(changes, None);
    }

    /// The connection becomes the node's (an older unidentified one is
    /// replaced): accept, then what a new node is told.
    fn attach(&mut self, key: NodeKey, conn: ConnId, msg_id: u32, nid: Nid, state: NodeState) {
        let Some(entry) = self.nodes.get_mut(key) else {
            return;
        };
        let (old, node_type) = (entry.conn.replace(conn), entry.node_type);
        entry.identified = true;
        if let Some(old) = old.filter(|&old| old != conn) {
            self.net.close(old);
        }
        if let Some(role) = self.net.state_mut(conn) {
            *role = ConnRole::Peer(key);
        }
        let own_nid = self.nid();
        self.net.answer(
            conn,
            msg_id,
            AcceptIdentification {
                node_type: NodeType::Master,
                nid: own_nid,
                your_nid: Some(nid),
            },
        );
        self.send_initial_node_information(key);
        self.greet(key, conn, node_type, state);
    }

    /// What a newly identified node receives after the node list
    /// (NEO/py's `handlerSwitched(conn, new=True)`).
    fn greet(&mut self, key: NodeKey, conn: ConnId, node_type: NodeType, state: NodeState) {
        match node_type {
            NodeType::Master => {}
            NodeType::Storage => {
                let phase_is_recovery =
                    matches!(self.primary().unwrap().phase, PrimaryPhase::Recovery(_));
                if phase_is_recovery {
                    let epoch = self.primary().unwrap().epoch;
                    self.net
                        .ask(conn, AskRecovery {}, Request::Recovery { epoch });
                } else {
                    self.send_partition_table(key);
                    if state == NodeState::Running && self.in_service() {
                        self.start_storage(key);
                    }
                }
            }
            NodeType::Client | NodeType::Admin => self.send_partition_table(key),
        }
    }

    /// A secondary answers every identification with the list of masters
    /// and the primary it follows (once identified with it), then closes.
    fn turn_away(&mut self, conn: ConnId, request: RequestIdentification) -> Result<(), Reject> {
        let Role::Secondary(secondary) = &self.role else {
            return Ok(());
        };
        let primary_key = secondary.primary;
        let primary_identified = self.nodes.get(primary_key).is_some_and(|e| e.identified);
        let mut primary_address = self
            .nodes
            .get(primary_key)
            .and_then(|e| e.address().cloned());
        if primary_address == request.address {
            primary_address = None;
        } else if !primary_identified {
            if request.node_type == NodeType::Master {
                if let Some(addr) = &request.address {
                    let key = match self.nodes.by_address(addr) {
                        Some(key) => key,
                        None => self.nodes.add(
                            NodeType::Master,
                            Some(addr.clone()),
                            None,
                            NodeState::Down,
                        ),
                    };
                    if request.id_timestamp.is_some() {
                        // A candidate while we have not reached our primary
                        // yet: follow it instead.
                        self.net.close(conn);
                        self.follow(key);
                        return Ok(());
                    }
                }
            }
            primary_address = None;
        }
        let known_masters: Vec<_> = self
            .nodes
            .of_type(NodeType::Master)
            .filter_map(|(_, e)| e.address().cloned())
            .collect();
        let primary = primary_address
            .and_then(|a| known_masters.iter().position(|m| *m == a))
            .map(|i| i as u32);
        self.net.send(
            conn,
            NotPrimaryMaster {
                primary,
                known_masters,
            },
        );
        self.net.close(conn);
        Ok(())
    }
}

/// Removes a key from the request's `extra` properties (the master keeps
/// the others as node properties).
fn take_extra(request: &mut RequestIdentification, key: &[u8]) -> Option<neo_proto::Value> {
    let index = request.extra.0.iter().position(|(k, _)| &k[..] == key)?;
    Some(request.extra.0.remove(index).1)
}

/// Most levels of a storage's topology path (NEO/py's have two: host,
/// disk), and most bytes per level: the path is kept and searched by
/// `tweak`.
pub(super) const DEVPATH_LEVELS_MAX: usize = 8;
pub(super) const DEVPATH_LEVEL_BYTES_MAX: usize = 255;

/// A storage's `devpath`, if given, is a short list of short strings.
fn check_devpath(request: &RequestIdentification) -> Result<(), Reject> {
    let Some(devpath) = request.extra.get(&b"devpath"[..]) else {
        return Ok(());
    };
    let fits = devpath.as_array().is_some_and(|levels| {
        levels.len() <= DEVPATH_LEVELS_MAX
            && levels
                .iter()
                .all(|l| matches!(l, Value::Bin(b) | Value::Str(b) if b.len() <= DEVPATH_LEVEL_BYTES_MAX))
    });
    if fits {
        Ok(())
    } else {
        Err(Reject::protocol(format!(
            "RequestIdentification.extra.devpath: at most {DEVPATH_LEVELS_MAX} strings of at most {DEVPATH_LEVEL_BYTES_MAX} bytes"
        )))
    }
}
