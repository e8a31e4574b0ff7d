//! Shared helpers for neo-rs's cross-crate tests (the tests themselves are
//! in `tests/`): simulator campaigns, real processes on loopback, interop
//! with NEO/py.

pub mod hostile;
pub mod sim;

/// Checks `lines` against the insta snapshot `name` in the repository's
/// `snapshots/` directory (protocol transcripts, renderings).
pub fn snapshot(name: &str, lines: &[String]) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, lines.join("\n")));
}

/// The sizes a bench binary was given on its command line (the numbers
/// among its arguments, so that cargo's own flags pass), else `default`.
pub fn bench_sizes<T: std::str::FromStr + Clone>(default: &[T]) -> Vec<T> {
    let given: Vec<T> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if given.is_empty() {
        default.to_vec()
    } else {
        given
    }
}

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
