//! Operator commands sent to the admin as `neoctl` sends them, in the
//! simulator: shutdown, kill, drop, add, tweak, replicas.

use std::time::Duration;

use neo_proto::*;
use neo_tests::sim::check::{invariants, running_primary};
use neo_tests::sim::{NodeId, NodeKind, Sim, SimConfig};

struct Cluster {
    sim: Sim,
    admin: NodeId,
    ctl: NodeId,
}

impl Cluster {
    fn new(storages: usize, partitions: u32, replicas: u32) -> Cluster {
        let mut config = SimConfig::new(11);
        config.partitions = partitions;
        config.replicas = replicas;
        let mut sim = Sim::new(config);
        sim.add_masters(1);
        for _ in 0..storages {
            sim.add_storage();
        }
        let admin = sim.add_admin();
        let ctl = sim.add_ctl();
        let mut cluster = Cluster { sim, admin, ctl };
        cluster.run(Duration::from_millis(200));
        cluster.ctl(
            SetClusterState {
                state: ClusterState::Verifying,
            }
            .into(),
        );
        assert!(
            running_primary(&cluster.sim).is_some(),
            "{}",
            cluster.sim.logs.join("\n")
        );
        cluster
    }

    fn run(&mut self, duration: Duration) {
        let until = self.sim.now + duration;
        let result = self.sim.run_until(until, |_, _| {}, invariants);
        result.unwrap_or_else(|e| panic!("{e}\n{}", self.sim.logs.join("\n")));
    }

    /// Sends a command and returns the admin's answer.
    fn ctl(&mut self, packet: Packet) -> Packet {
        let before = self.sim.ctl_answers.len();
        self.sim.ctl(self.ctl, self.admin, packet);
        self.run(Duration::from_millis(200));
        assert_eq!(self.sim.ctl_answers.len(), before + 1, "no answer");
        self.sim.ctl_answers.last().unwrap().1.clone()
    }

    fn master(&self) -> &neo_core::master::Master {
        self.sim.nodes[running_primary(&self.sim).unwrap().0]
            .as_master()
            .unwrap()
    }

    fn storage_nid(&self, index: usize) -> Nid {
        let node = self.sim.node_ids(NodeKind::Storage)[index];
        self.sim.nodes[node.0].as_storage().unwrap().nid().unwrap()
    }
}

fn error(packet: &Packet) -> (ErrorCode, String) {
    match packet {
        Packet::Error(e) => (e.code, String::from_utf8_lossy(&e.message).into_owned()),
        other => panic!("expected an Error, got {other}"),
    }
}

/// `neoctl set cluster STOPPING`: storages are told they are DOWN before
/// the master leaves, so their cells are not outdated; after a restart of
/// everyone the cluster runs again with the same table (NEO/py's
/// testShutdown).
#[test]
fn clean_shutdown_and_restart() {
    let mut cluster = Cluster::new(2, 4, 1);
    let ptid = cluster.master().partition_table().ptid();
    let answer = cluster.ctl(
        SetClusterState {
            state: ClusterState::Stopping,
        }
        .into(),
    );
    assert_eq!(
        error(&answer),
        (ErrorCode::Ack, "Cluster state changed".into())
    );
    cluster.run(Duration::from_secs(1));
    for node in &cluster.sim.nodes {
        if node.kind != NodeKind::Ctl {
            assert!(node.exited, "{} did not stop", node.name);
        }
    }
    for node in 0..cluster.sim.nodes.len() {
        if cluster.sim.nodes[node].kind != NodeKind::Ctl {
            cluster.sim.restart(NodeId(node));
        }
    }
    cluster.run(Duration::from_secs(3));
    let master = cluster.master();
    assert_eq!(master.cluster_state(), Some(ClusterState::Running));
    assert_eq!(master.partition_table().ptid(), ptid);
    let pt = master.partition_table();
    for offset in 0..pt.num_partitions() {
        assert!(pt
            .row(offset)
            .iter()
            .all(|c| c.state == CellState::UpToDate));
    }
}

/// `neoctl kill`: refused for the only readable copy; otherwise the
/// storage stops (keeping its data) and its cells go out of date.
#[test]
fn kill_a_storage() {
    let mut alone = Cluster::new(2, 4, 0);
    let nid = alone.storage_nid(0);
    let answer = alone.ctl(
        SetNodeState {
            nid,
            state: NodeState::Down,
        }
        .into(),
    );
    assert_eq!(error(&answer).0, ErrorCode::Denied);
    assert!(error(&answer).1.contains("only readable copies"));

    let mut cluster = Cluster::new(2, 4, 1);
    let nid = cluster.storage_nid(0);
    let answer = cluster.ctl(
        SetNodeState {
            nid,
            state: NodeState::Down,
        }
        .into(),
    );
    assert_eq!(error(&answer), (ErrorCode::Ack, "state changed".into()));
    cluster.run(Duration::from_millis(500));
    let killed = cluster.sim.node_ids(NodeKind::Storage)[0];
    assert!(cluster.sim.nodes[killed.0].exited);
    let master = cluster.master();
    assert_eq!(master.cluster_state(), Some(ClusterState::Running));
    let pt = master.partition_table();
    for offset in 0..pt.num_partitions() {
        assert_eq!(pt.cell(offset, nid).unwrap().state, CellState::OutOfDate);
    }
    // A running node cannot be dropped; the killed one can only be once no
    // partition relies on it.
    let other = cluster.storage_nid(1);
    let answer = cluster.ctl(
        SetNodeState {
            nid: other,
            state: NodeState::Unknown,
        }
        .into(),
    );
    assert_eq!(
        error(&answer),
        (
            ErrorCode::Denied,
            "a running node must be stopped before removal".into()
        )
    );
    let answer = cluster.ctl(
        SetNodeState {
            nid,
            state: NodeState::Unknown,
        }
        .into(),
    );
    assert_eq!(
        error(&answer),
        (ErrorCode::Ack, "node permanently removed".into())
    );
    assert!(!cluster.master().partition_table().has_cells(nid));
}

/// A new storage joins PENDING; `neoctl add` makes it RUNNING; `tweak`
/// gives it cells OUT_OF_DATE while the old owners keep feeding them.
#[test]
fn add_and_tweak_a_new_storage() {
    let mut cluster = Cluster::new(2, 6, 1);
    let newcomer = cluster.sim.add_storage();
    cluster.run(Duration::from_secs(1));
    let nid = cluster.sim.nodes[newcomer.0]
        .as_storage()
        .unwrap()
        .nid()
        .unwrap();
    assert_eq!(
        cluster.master().nodes().state_of(nid),
        Some(NodeState::Pending)
    );
    let answer = cluster.ctl(AddPendingNodes { nids: vec![nid] }.into());
    assert_eq!(
        error(&answer),
        (ErrorCode::Ack, format!("Nodes added: {nid}"))
    );
    assert_eq!(
        cluster.master().nodes().state_of(nid),
        Some(NodeState::Running)
    );
    assert!(cluster.sim.nodes[newcomer.0]
        .as_storage()
        .unwrap()
        .is_operational());
    // A dry run changes nothing.
    let ptid = cluster.master().partition_table().ptid();
    let answer = cluster.ctl(
        TweakPartitionTable {
            dry_run: true,
            drop_nids: vec![],
        }
        .into(),
    );
    assert!(matches!(answer, Packet::AnswerTweakPartitionTable(ref a) if a.changed));
    assert_eq!(cluster.master().partition_table().ptid(), ptid);
    let answer = cluster.ctl(
        TweakPartitionTable {
            dry_run: false,
            drop_nids: vec![],
        }
        .into(),
    );
    let Packet::AnswerTweakPartitionTable(tweaked) = answer else {
        panic!("{answer}")
    };
    assert!(tweaked.changed);
    // The table as tweaked: new cells OUT_OF_DATE, the copies they replace
    // still readable (FEEDING) until they catch up.
    let tweaked_pt = neo_core::pt::PartitionTable::from_rows(None, 1, &tweaked.rows).unwrap();
    let assigned = tweaked_pt.assigned_offsets(nid);
    assert_eq!(assigned.len(), 4, "6 partitions × 2 copies over 3 nodes");
    for &offset in &assigned {
        assert_eq!(
            tweaked_pt.cell(offset, nid).unwrap().state,
            CellState::OutOfDate
        );
        assert!(
            tweaked_pt
                .row(offset)
                .iter()
                .filter(|c| c.is_readable())
                .count()
                >= 2
        );
    }
    // It replicated them (empty partitions: at once); the feeding copies
    // were dropped.
    let pt = cluster.master().partition_table();
    for offset in assigned {
        assert_eq!(pt.cell(offset, nid).unwrap().state, CellState::UpToDate);
        assert_eq!(pt.row(offset).len(), 2);
    }
    // A second tweak changes nothing.
    let answer = cluster.ctl(
        TweakPartitionTable {
            dry_run: false,
            drop_nids: vec![],
        }
        .into(),
    );
    assert!(matches!(answer, Packet::AnswerTweakPartitionTable(ref a) if !a.changed));
    // Replicas are announced with an empty change list.
    let answer = cluster.ctl(SetNumReplicas { num_replicas: 2 }.into());
    assert_eq!(error(&answer).0, ErrorCode::Ack);
    assert_eq!(cluster.master().partition_table().num_replicas(), 2);
}

/// Requests the admin answers itself, and commands refused in the wrong
/// state.
#[test]
fn admin_answers_and_refusals() {
    let mut cluster = Cluster::new(2, 4, 1);
    let answer = cluster.ctl(AskClusterState {}.into());
    assert_eq!(
        answer,
        AnswerClusterState {
            state: Some(ClusterState::Running)
        }
        .into()
    );
    let answer = cluster.ctl(
        AskPartitionList {
            min_offset: 1,
            max_offset: 3,
            nid: None,
        }
        .into(),
    );
    let Packet::AnswerPartitionList(list) = answer else {
        panic!("{answer}")
    };
    assert_eq!(list.rows.len(), 2);
    let answer = cluster.ctl(
        AskNodeList {
            node_type: Some(NodeType::Storage),
        }
        .into(),
    );
    assert!(matches!(answer, Packet::AnswerNodeList(ref l) if l.nodes.len() == 2));
    let answer = cluster.ctl(
        SetClusterState {
            state: ClusterState::Verifying,
        }
        .into(),
    );
    assert_eq!(
        error(&answer),
        (ErrorCode::Denied, "Can not switch to this state".into())
    );
    let answer = cluster.ctl(
        SetClusterState {
            state: ClusterState::Running,
        }
        .into(),
    );
    assert_eq!(
        error(&answer),
        (ErrorCode::Denied, "Invalid state requested".into())
    );
}
