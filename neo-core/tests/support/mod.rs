//! Helpers shared by the tests that drive one node by hand, playing its
//! peers: what the node sent and closed.
#![allow(dead_code)] // each test file uses its own subset

use neo_core::{ConnId, Output};
use neo_proto::Packet;

/// Removes from `outputs` the packets sent on `conn` and returns them
/// (message id, packet), in order.
pub(crate) fn take_sent<E>(outputs: &mut Vec<Output<E>>, conn: ConnId) -> Vec<(u32, Packet)> {
    let mut sent = Vec::new();
    outputs.retain(|o| match o {
        Output::Send {
            conn: c,
            msg_id,
            packet,
        } if *c == conn => {
            sent.push((*msg_id, packet.clone()));
            false
        }
        _ => true,
    });
    sent
}

/// Whether `outputs` close `conn`.
pub(crate) fn closed<E>(outputs: &[Output<E>], conn: ConnId) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Close { conn: c } if *c == conn))
}
