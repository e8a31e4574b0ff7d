//! Invariants checked while a simulation runs.

use std::collections::BTreeMap;

use neo_proto::ClusterState;

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
    partition_tables_agree(sim)
}
