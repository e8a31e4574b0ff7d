//! Test data shared by the test modules of `ctl`.
//!
//! Expected outputs were recorded from NEO/py's neoctl against a NEO/py
//! cluster on loopback (1 master, 1 admin, 2 then 3 SQLite storages,
//! 12 partitions, 1 replica; and one of 7 partitions with storages S9
//! and S10), along with the raw answers it received, which the tests
//! feed to our formatters.

use neo_proto::{
    Address, CellInfo, CellState, Nid, NodeInfo, NodeState, NodeType, Rows, Timestamp,
};

pub(super) const S1: Nid = Nid(1);
pub(super) const S2: Nid = Nid(2);
pub(super) const S3: Nid = Nid(3);
pub(super) const M1: Nid = Nid(-0x0fff_ffff);
pub(super) const A1: Nid = Nid(-0x2fff_ffff);
pub(super) const C1: Nid = Nid(-0x1fff_ffff);

pub(super) fn node(
    node_type: NodeType,
    nid: Nid,
    port: Option<u16>,
    state: NodeState,
    id_timestamp: Option<f64>,
) -> NodeInfo {
    NodeInfo {
        node_type,
        address: port.map(|port| Address::new("127.0.0.57", port)),
        nid: Some(nid),
        state,
        id_timestamp: id_timestamp.map(Timestamp),
    }
}

pub(super) fn storage(nid: Nid, state: NodeState) -> NodeInfo {
    let (port, ts) = match nid.0 {
        1 => (27303, 1795566027.5949135),
        2 => (27302, 1795566027.625921),
        _ => (27304, 1795566036.2853906),
    };
    node(NodeType::Storage, nid, Some(port), state, Some(ts))
}

/// The recorded storage list (in the admin's order: S2, S1, S3).
pub(super) fn storages(states: &[NodeState]) -> Vec<NodeInfo> {
    [S2, S1, S3]
        .iter()
        .zip(states)
        .map(|(&nid, &state)| storage(nid, state))
        .collect()
}

/// Rows from one string per partition: pairs of node number and cell
/// state letter, e.g. "1U2F3O".
pub(super) fn rows(spec: &[&str]) -> Rows {
    spec.iter()
        .map(|row| {
            row.as_bytes()
                .chunks(2)
                .map(|cell| CellInfo {
                    nid: Nid((cell[0] - b'0') as i32),
                    state: match cell[1] {
                        b'U' => CellState::UpToDate,
                        b'O' => CellState::OutOfDate,
                        b'F' => CellState::Feeding,
                        _ => unreachable!(),
                    },
                })
                .collect()
        })
        .collect()
}

pub(super) fn repeat(row: &[&'static str], times: usize) -> Vec<&'static str> {
    row.iter()
        .copied()
        .cycle()
        .take(row.len() * times)
        .collect()
}

pub(super) fn words(words: &str) -> Vec<String> {
    words.split_whitespace().map(str::to_owned).collect()
}
