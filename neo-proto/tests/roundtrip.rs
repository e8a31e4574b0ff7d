//! Round trips of arbitrary packets: decode(encode(p)) == p and re-encoding
//! gives the same bytes, for every packet type, from a fixed seed so that the
//! test is deterministic.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use neo_proto::*;

/// SplitMix64: enough randomness to feed `arbitrary`, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const SAMPLES_PER_TYPE_MIN: usize = 40;
const ITERATIONS_MAX: usize = 200_000;

#[test]
fn every_packet_type_round_trips() {
    let mut rng = SplitMix(0x6e656f2d7273);
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let mut iterations = 0;
    while seen.len() < PACKET_TYPES.len() || seen.values().any(|&n| n < SAMPLES_PER_TYPE_MIN) {
        iterations += 1;
        assert!(
            iterations < ITERATIONS_MAX,
            "packet types not all generated: {seen:?}"
        );
        let len = (rng.next() % 512) as usize;
        let raw = rng.bytes(len);
        let mut u = Unstructured::new(&raw);
        let Ok(packet) = Packet::arbitrary(&mut u) else {
            continue;
        };
        let msg_id = rng.next() as u32;
        let bytes = encode_to_bytes(msg_id, &packet);
        let frame =
            decode_frame(bytes.clone()).unwrap_or_else(|e| panic!("{packet} does not decode: {e}"));
        assert_eq!(frame.msg_id, msg_id);
        assert_eq!(frame.packet, packet);
        assert_eq!(encode_to_bytes(msg_id, &frame.packet), bytes);
        *seen.entry(packet.code()).or_default() += 1;
    }
}

/// A stream of arbitrary packets fed in random-sized pieces decodes to the
/// same packets in order.
#[test]
fn arbitrary_streams_split_anywhere() {
    let mut rng = SplitMix(42);
    for _ in 0..300 {
        let mut packets = Vec::new();
        let mut stream = BytesMut::from(&HANDSHAKE[..]);
        for msg_id in 0..(rng.next() % 20) as u32 {
            let raw = rng.bytes(256);
            if let Ok(packet) = Packet::arbitrary(&mut Unstructured::new(&raw)) {
                encode(msg_id, &packet, &mut stream);
                packets.push((msg_id, packet));
            }
        }
        let mut decoder = Decoder::new();
        let mut decoded = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let take = 1 + (rng.next() % 97) as usize;
            let (part, tail) = rest.split_at(take.min(rest.len()));
            decoder.feed(part);
            rest = tail;
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push((frame.msg_id, frame.packet));
            }
        }
        assert_eq!(decoded, packets);
    }
}
