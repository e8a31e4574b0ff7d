//! Invariants checked while a simulation runs.

use std::collections::{BTreeMap, BTreeSet};

use neo_core::storage::memory::MemoryStore;
use neo_proto::{CellState, ClusterState, Oid, Tid};

use super::node::Machine;
use super::{NodeId, NodeKind, Sim};

/// The masters whose storages follow them: master → storages that are
/// identified with it as their primary, over a live connection.
pub fn followers(sim: &Sim) -> BTreeMap<NodeId, Vec<NodeId>> {
    let mut followers: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for storage in sim.node_ids(NodeKind::Storage) {
        let Some(s) = sim.nodes[storage.0].as_storage() else {
            continue;
        };
        if !s.has_primary() {
            continue;
        }
        let Some(conn) = s.master_connection() else {
            continue;
        };
        if let Some(master) = sim.network.peer(storage, conn) {
            followers.entry(master).or_default().push(storage);
        }
    }
    followers
}

/// Never two primaries acting at once: at most one master outside
/// RECOVERING has storages following it.
pub fn single_acting_primary(sim: &Sim) -> Result<(), String> {
    let acting: Vec<NodeId> = followers(sim)
        .into_iter()
        .filter(|(master, storages)| {
            !storages.is_empty()
                && sim.nodes[master.0]
                    .as_master()
                    .and_then(|m| m.cluster_state())
                    .is_some_and(|s| s != ClusterState::Recovering)
        })
        .map(|(master, _)| master)
        .collect();
    if acting.len() > 1 {
        let names: Vec<&str> = acting.iter().map(|&m| sim.name(m)).collect();
        return Err(format!(
            "two primaries acting at once: {}",
            names.join(", ")
        ));
    }
    Ok(())
}

/// The running primary, if exactly one master is primary in RUNNING.
pub fn running_primary(sim: &Sim) -> Option<NodeId> {
    let running: Vec<NodeId> = sim
        .node_ids(NodeKind::Master)
        .into_iter()
        .filter(|&m| {
            sim.nodes[m.0]
                .as_master()
                .is_some_and(|m| m.cluster_state() == Some(ClusterState::Running))
        })
        .collect();
    (running.len() == 1).then(|| running[0])
}

/// Once broadcasts settled (nothing in flight), every storage and admin
/// following the running primary has the primary's partition table.
pub fn partition_tables_agree(sim: &Sim) -> Result<(), String> {
    if sim.network_busy() {
        return Ok(());
    }
    let Some(primary) = running_primary(sim) else {
        return Ok(());
    };
    let master = sim.nodes[primary.0].as_master().unwrap();
    let expected = master.partition_table();
    for storage in followers(sim).remove(&primary).unwrap_or_default() {
        if sim.is_frozen(storage) {
            continue; // a hung process learns nothing until it resumes
        }
        let s = sim.nodes[storage.0].as_storage().unwrap();
        let Some(pt) = s.partition_table() else {
            return Err(format!("{} has no partition table", sim.name(storage)));
        };
        if pt.ptid() != expected.ptid() || pt.rows() != expected.rows() {
            return Err(format!(
                "{} has partition table {:?} {:?}, the primary {:?} {:?}",
                sim.name(storage),
                pt.ptid(),
                pt.rows(),
                expected.ptid(),
                expected.rows()
            ));
        }
    }
    for client in sim.node_ids(NodeKind::Client) {
        let Some(c) = sim.nodes[client.0].as_client() else {
            continue;
        };
        let follows_primary = c
            .master_connection()
            .and_then(|conn| sim.network.peer(client, conn))
            == Some(primary);
        if !c.is_ready() || !follows_primary {
            continue;
        }
        let pt = c.partition_table().unwrap();
        if pt.ptid() != expected.ptid() || pt.rows() != expected.rows() {
            return Err(format!(
                "{} disagrees with the primary's table",
                sim.name(client)
            ));
        }
    }
    for admin in sim.node_ids(NodeKind::Admin) {
        let Some(a) = sim.nodes[admin.0].as_admin() else {
            continue;
        };
        // An admin still following an old primary may know changes the
        // running primary never saw (they reached no storage).
        let follows_primary = a
            .master_connection()
            .and_then(|conn| sim.network.peer(admin, conn))
            == Some(primary);
        if !a.is_connected() || !follows_primary {
            continue;
        }
        if let Some(pt) = a.partition_table() {
            if pt.ptid() > expected.ptid() {
                return Err(format!(
                    "{} is ahead of the primary's table",
                    sim.name(admin)
                ));
            }
            if pt.ptid() == expected.ptid() && pt.rows() != expected.rows() {
                return Err(format!(
                    "{} disagrees with the primary's table",
                    sim.name(admin)
                ));
            }
        }
    }
    Ok(())
}

/// Every step's checks.
pub fn invariants(sim: &Sim) -> Result<(), String> {
    single_acting_primary(sim)?;
    partition_tables_agree(sim)?;
    nodes_consistent(sim)
}

/// Each live node's own consistency checks (`check_invariants`).
pub fn nodes_consistent(sim: &Sim) -> Result<(), String> {
    for (index, node) in sim.nodes.iter().enumerate() {
        let checked = match &node.machine {
            _ if !node.alive => Ok(()),
            Machine::Master(m) => m.check_invariants(),
            Machine::Storage(s) => s.check_invariants(),
            Machine::Client(c) => c.check_invariants(),
            _ => Ok(()),
        };
        checked.map_err(|why| format!("{}: {why}", sim.name(NodeId(index))))?;
    }
    Ok(())
}

/// The committed records of the cluster.
pub struct CommittedHistory {
    pub transactions: BTreeSet<Tid>,
    /// Object revisions, by oid then serial.
    pub objects: Vec<(Oid, Tid, Option<neo_proto::ObjectData>)>,
}

/// The committed records, checking that every readable replica of each
/// partition holds exactly the same (once the cluster is quiet).
pub fn committed_history(sim: &Sim) -> Result<CommittedHistory, String> {
    let primary = running_primary(sim).ok_or("no running primary")?;
    let pt = sim.nodes[primary.0].as_master().unwrap().partition_table();
    let stores: BTreeMap<neo_proto::Nid, &MemoryStore> = sim
        .node_ids(NodeKind::Storage)
        .into_iter()
        .filter_map(|n| match &sim.nodes[n.0].machine {
            Machine::Storage(s) if sim.nodes[n.0].alive => Some((s.nid()?, s.store())),
            _ => None,
        })
        .collect();
    let mut history = CommittedHistory {
        transactions: BTreeSet::new(),
        objects: Vec::new(),
    };
    for partition in 0..pt.num_partitions() {
        let mut reference: Option<(neo_proto::Nid, _, _)> = None;
        for cell in pt.row(partition) {
            if !matches!(cell.state, CellState::UpToDate | CellState::Feeding) {
                continue;
            }
            let store = stores
                .get(&cell.nid)
                .ok_or_else(|| format!("readable {} is not running", cell.nid))?;
            let transactions: Vec<Tid> = store
                .transactions(partition)
                .into_iter()
                .map(|(tid, _)| tid)
                .collect();
            let objects = store.objects(partition);
            match &reference {
                None => reference = Some((cell.nid, transactions, objects)),
                Some((nid, t, o)) => {
                    if *t != transactions {
                        let only: Vec<_> = t.iter().filter(|x| !transactions.contains(x)).collect();
                        let other: Vec<_> =
                            transactions.iter().filter(|x| !t.contains(x)).collect();
                        return Err(format!(
                            "partition {partition}: transactions of {nid} and {} differ: \
                             only in the first {only:?}, only in the second {other:?}",
                            cell.nid
                        ));
                    }
                    if *o != objects {
                        let only: Vec<_> = o
                            .iter()
                            .filter(|x| !objects.contains(x))
                            .map(|(oid, tid, _, _)| (oid, tid))
                            .collect();
                        let other: Vec<_> = objects
                            .iter()
                            .filter(|x| !o.contains(x))
                            .map(|(oid, tid, _, _)| (oid, tid))
                            .collect();
                        return Err(format!(
                            "partition {partition}: records of {nid} and {} differ: \
                             only in the first {only:?}, only in the second {other:?}",
                            cell.nid
                        ));
                    }
                }
            }
        }
        let Some((_, transactions, objects)) = reference else {
            return Err(format!("partition {partition} has no readable cell"));
        };
        history.transactions.extend(transactions);
        history.objects.extend(
            objects
                .into_iter()
                .map(|(oid, tid, data, _)| (oid, tid, data)),
        );
    }
    history.objects.sort_by_key(|(oid, tid, _)| (*oid, *tid));
    Ok(history)
}
