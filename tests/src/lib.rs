//! Shared helpers for neo-rs's cross-crate tests (the tests themselves are
//! in `tests/`): simulator campaigns, real processes on loopback, interop
//! with NEO/py.

pub mod sim;

use bytes::BytesMut;
use neo_proto::{encode, Decoder, Frame, Packet, HANDSHAKE};

/// Sends packets through the real byte stream of one connection direction
/// (handshake, encoder, incremental decoder fed `chunk_size` bytes at a
/// time) and returns what the receiving side decodes.
pub fn over_the_wire(packets: &[(u32, Packet)], chunk_size: usize) -> Vec<Frame> {
    let mut stream = BytesMut::from(&HANDSHAKE[..]);
    for (msg_id, packet) in packets {
        encode(*msg_id, packet, &mut stream);
    }
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(chunk_size.max(1)) {
        decoder.feed(chunk);
        while let Some(frame) = decoder.next_frame().expect("valid stream") {
            frames.push(frame);
        }
    }
    assert_eq!(decoder.buffered(), 0, "stream ended inside a packet");
    frames
}
