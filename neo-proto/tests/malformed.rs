//! Malformed input is an error value, never a panic: wrong msgpack types,
//! unknown codes, wrong arity, truncation, oversized packets, bad
//! envelopes, bad enumerations, hostile nesting, garbage.

use bytes::{Bytes, BytesMut};
use neo_proto::msgpack::*;
use neo_proto::*;

fn frame(build: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::new();
    build(&mut out);
    out.freeze()
}

/// `[msg_id, code, args]` with args written by `args`.
fn packet(msg_id: u64, code: u64, args: impl FnOnce(&mut BytesMut)) -> Bytes {
    frame(|out| {
        write_array_len(out, 3);
        write_uint(out, msg_id);
        write_uint(out, code);
        args(out);
    })
}

fn decode(bytes: Bytes) -> DecodeError {
    decode_frame(bytes).expect_err("malformed input decoded")
}

#[test]
fn wrong_msgpack_type() {
    // AskObject whose oid is an int instead of an 8-byte bin.
    let bytes = packet(1, 0x20, |out| {
        write_array_len(out, 3);
        write_uint(out, 1);
        write_nil(out);
        write_nil(out);
    });
    assert!(matches!(
        decode(bytes),
        DecodeError::UnexpectedType {
            expected: "bin",
            found: "int",
            ..
        }
    ));
}

#[test]
fn unknown_packet_code() {
    for code in [0, 0x4a, 0x8003, 0x8049, 0xffff, 1 << 40] {
        let bytes = packet(1, code, |out| write_array_len(out, 0));
        assert_eq!(decode(bytes), DecodeError::UnknownCode { code });
    }
}

#[test]
fn wrong_arity() {
    let ping_with_argument = packet(1, 0x02, |out| {
        write_array_len(out, 1);
        write_uint(out, 1);
    });
    assert_eq!(
        decode(ping_with_argument),
        DecodeError::Arity {
            packet: "Ping",
            expected: 0,
            found: 1
        }
    );
    let short_ask_object = packet(1, 0x20, |out| {
        write_array_len(out, 2);
        write_bin(out, &[0; 8]);
        write_nil(out);
    });
    assert!(matches!(
        decode(short_ask_object),
        DecodeError::Arity {
            packet: "AskObject",
            expected: 3,
            found: 2
        }
    ));
    // A record (a cell) of the wrong size inside a table.
    let bad_cell = packet(1, 0x0a, |out| {
        write_array_len(out, 3);
        write_nil(out);
        write_uint(out, 0);
        write_array_len(out, 1);
        write_array_len(out, 1);
        write_array_len(out, 1);
        write_uint(out, 1);
    });
    assert!(matches!(
        decode(bad_cell),
        DecodeError::Arity {
            packet: "CellInfo",
            expected: 2,
            found: 1
        }
    ));
}

#[test]
fn truncated_frames() {
    let good = encode_to_bytes(
        3,
        &AnswerObject {
            oid: Oid(1),
            serial: Tid(2),
            next_serial: None,
            compression: Some(0),
            checksum: Checksum::ZERO,
            data: Bytes::from_static(b"payload"),
            data_serial: None,
        }
        .into(),
    );
    for cut in 0..good.len() {
        let error = decode(good.slice(..cut));
        assert!(
            matches!(
                error,
                DecodeError::Truncated | DecodeError::BadEnvelope { .. }
            ),
            "cut at {cut}: {error}"
        );
        // The stream decoder waits for the rest instead.
        let mut decoder = Decoder::without_handshake();
        decoder.feed(&good[..cut]);
        assert_eq!(decoder.next_frame(), Ok(None));
    }
}

#[test]
fn trailing_bytes_after_a_frame() {
    let mut bytes = BytesMut::from(&encode_to_bytes(1, &Ping {}.into())[..]);
    bytes.extend_from_slice(&[0xc0]);
    assert!(matches!(
        decode(bytes.freeze()),
        DecodeError::TrailingBytes { .. }
    ));
}

#[test]
fn oversized_packets_are_refused_from_their_header() {
    // AskStoreObject announcing 64 MiB of data: refused before any of it
    // arrives, by the stream decoder's NEO/py-sized limit.
    let header = packet(1, 0x1c, |out| {
        write_array_len(out, 7);
        write_bin(out, &[0; 8]);
        write_bin(out, &[0; 8]);
        write_uint(out, 0);
        write_bin(out, &[0; 20]);
        out.extend_from_slice(&[0xc6, 0x04, 0x00, 0x00, 0x00]);
    });
    let mut decoder = Decoder::without_handshake();
    decoder.feed(&header);
    assert_eq!(
        decoder.next_frame(),
        Err(DecodeError::Oversized {
            limit: PACKET_SIZE_MAX
        })
    );
    // Just under the limit is fine (with a lowered limit to keep the test
    // small): the decoder waits for the data.
    let mut decoder = Decoder::without_handshake().with_packet_size_max(1 << 20);
    let data = vec![7u8; (1 << 20) - 100];
    let bytes = encode_to_bytes(
        1,
        &AddObject {
            oid: Oid(1),
            serial: Tid(1),
            compression: 0,
            checksum: Checksum::ZERO,
            data: data.into(),
            data_serial: None,
        }
        .into(),
    );
    decoder.feed(&bytes[..1000]);
    assert_eq!(decoder.next_frame(), Ok(None));
    decoder.feed(&bytes[1000..]);
    assert!(matches!(decoder.next_frame(), Ok(Some(_))));
    // A list announcing more elements than the limit allows is refused too.
    let mut decoder = Decoder::without_handshake().with_packet_size_max(1000);
    decoder.feed(&[0x93, 0x01, 0x21, 0xdd, 0x00, 0x01, 0x00, 0x00]);
    assert!(matches!(
        decoder.next_frame(),
        Err(DecodeError::Oversized { .. })
    ));
}

#[test]
fn bad_envelopes() {
    let not_an_array = frame(|out| write_uint(out, 1));
    let two_elements = frame(|out| {
        write_array_len(out, 2);
        write_uint(out, 1);
        write_uint(out, 2);
    });
    let negative_msg_id = frame(|out| {
        write_array_len(out, 3);
        write_int(out, -1);
        write_uint(out, 2);
        write_array_len(out, 0);
    });
    let msg_id_above_32_bits = packet(1 << 32, 2, |out| write_array_len(out, 0));
    let code_is_bin = frame(|out| {
        write_array_len(out, 3);
        write_uint(out, 1);
        write_bin(out, b"ping");
        write_array_len(out, 0);
    });
    for bytes in [
        not_an_array,
        two_elements,
        negative_msg_id,
        msg_id_above_32_bits,
        code_is_bin,
    ] {
        assert!(matches!(decode(bytes), DecodeError::BadEnvelope { .. }));
    }
    let args_not_an_array = packet(1, 2, write_nil);
    assert!(matches!(
        decode(args_not_an_array),
        DecodeError::UnexpectedType {
            expected: "array",
            ..
        }
    ));
}

#[test]
fn bad_enumerations() {
    let start = |state: &[u8]| {
        packet(1, 0x2d, |out| {
            write_array_len(out, 1);
            out.extend_from_slice(state);
        })
    };
    // ClusterStates has 7 items.
    assert_eq!(
        decode(start(&[0xd4, 0x01, 0x07])),
        DecodeError::InvalidEnumValue {
            enumeration: "ClusterStates",
            value: 7
        }
    );
    // A CellStates item where a ClusterStates one is expected.
    assert!(matches!(
        decode(start(&[0xd4, 0x00, 0x01])),
        DecodeError::UnexpectedExt {
            expected: 1,
            found: 0,
            ..
        }
    ));
    // A bare integer instead of the ext object.
    assert!(matches!(
        decode(start(&[0x02])),
        DecodeError::UnexpectedType {
            expected: "ext",
            ..
        }
    ));
    // An ext payload that is not an integer.
    assert!(matches!(
        decode(start(&[0xd4, 0x01, 0xc0])),
        DecodeError::BadEnumPayload { .. }
    ));
    // Unknown ext code inside a generic value.
    let monitor = packet(1, 0x48, |out| {
        write_array_len(out, 1);
        write_map_len(out, 1);
        write_bin(out, b"k");
        out.extend_from_slice(&[0xd4, 0x09, 0x00]);
    });
    assert!(matches!(
        decode(monitor),
        DecodeError::UnknownExt { code: 9, .. }
    ));
    // Error codes are plain integers; 14 is not one.
    let error = packet(1, 0x8000, |out| {
        write_array_len(out, 2);
        write_uint(out, 14);
        write_bin(out, b"");
    });
    assert!(matches!(
        decode(error),
        DecodeError::InvalidEnumValue {
            enumeration: "ErrorCodes",
            value: 14
        }
    ));
}

#[test]
fn fixed_size_byte_strings() {
    let seven_byte_oid = packet(1, 0x20, |out| {
        write_array_len(out, 3);
        write_bin(out, &[0; 7]);
        write_nil(out);
        write_nil(out);
    });
    assert!(matches!(
        decode(seven_byte_oid),
        DecodeError::BadLength {
            expected: 8,
            found: 7,
            ..
        }
    ));
}

#[test]
fn integers_out_of_range() {
    // AskNewOIDs(count) is a u32; a node id is an i32; a port a u16.
    let too_many = packet(1, 0x19, |out| {
        write_array_len(out, 1);
        write_uint(out, 1 << 32);
    });
    assert!(matches!(decode(too_many), DecodeError::OutOfRange { .. }));
    let negative_count = packet(1, 0x19, |out| {
        write_array_len(out, 1);
        write_int(out, -1);
    });
    assert!(matches!(
        decode(negative_count),
        DecodeError::OutOfRange { .. }
    ));
    let big_nid = packet(1, 0x27, |out| {
        write_array_len(out, 1);
        write_array_len(out, 1);
        write_uint(out, 1 << 31);
    });
    assert!(matches!(decode(big_nid), DecodeError::OutOfRange { .. }));
}

#[test]
fn hostile_nesting_in_generic_values() {
    // RequestIdentification whose extra value nests 10000 arrays.
    let bytes = packet(0, 0x01, |out| {
        write_array_len(out, 6);
        write_enum(out, 4, 2);
        write_nil(out);
        write_nil(out);
        write_bin(out, b"main");
        write_nil(out);
        write_map_len(out, 1);
        write_bin(out, b"deep");
        for _ in 0..10_000 {
            write_array_len(out, 1);
        }
        write_nil(out);
    });
    assert!(matches!(decode(bytes), DecodeError::TooDeep { .. }));
}

#[test]
fn reserved_marker() {
    let mut decoder = Decoder::without_handshake();
    decoder.feed(&[0x93, 0x01, 0xc1]);
    assert!(matches!(
        decoder.next_frame(),
        Err(DecodeError::ReservedMarker { offset: 2 })
    ));
}

#[test]
fn handshake_version_mismatch_and_non_neo_peer_are_distinct() {
    let mut old = Decoder::new();
    old.feed(&[0x92, 0xa3, b'N', b'E', b'O', 0x04, 0x93]);
    assert_eq!(
        old.next_frame(),
        Err(DecodeError::VersionMismatch { version: 4 })
    );
    let mut http = Decoder::new();
    http.feed(b"GET /");
    assert!(matches!(http.next_frame(), Err(DecodeError::NotNeo { .. })));
    let mut partial = Decoder::new();
    partial.feed(&HANDSHAKE[..4]);
    assert_eq!(partial.next_frame(), Ok(None));
}

/// SplitMix64, for deterministic garbage.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Random bytes and random mutations of valid packets never panic, and
/// whatever decodes re-encodes to bytes that decode to the same packet.
/// (The `decode` fuzz target does the same, unbounded.)
#[test]
fn garbage_and_mutations_never_panic() {
    let mut state = 7;
    let valid: Vec<Bytes> = [
        Packet::from(AskObject {
            oid: Oid(1),
            at: None,
            before: Some(Tid(5)),
        }),
        NotifyNodeInformation {
            timestamp: Timestamp(1.5),
            nodes: vec![NodeInfo {
                node_type: NodeType::Storage,
                address: Some(Address::new("127.0.0.1", 1)),
                nid: Some(Nid(1)),
                state: NodeState::Running,
                id_timestamp: None,
            }],
        }
        .into(),
        SendPartitionTable {
            ptid: Some(Ptid(1)),
            num_replicas: 0,
            rows: vec![vec![CellInfo {
                nid: Nid(1),
                state: CellState::UpToDate,
            }]
            .into()],
        }
        .into(),
    ]
    .iter()
    .map(|p| encode_to_bytes(9, p))
    .collect();
    for round in 0..50_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = (splitmix(&mut state) % 64) as usize;
            (0..len).map(|_| splitmix(&mut state) as u8).collect()
        } else {
            let mut bytes = valid[round % valid.len()].to_vec();
            let flips = 1 + splitmix(&mut state) % 3;
            for _ in 0..flips {
                let at = (splitmix(&mut state) as usize) % bytes.len();
                bytes[at] = splitmix(&mut state) as u8;
            }
            bytes
        };
        let mut decoder = Decoder::without_handshake();
        decoder.feed(&bytes);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let again = decode_frame(encode_to_bytes(frame.msg_id, &frame.packet)).unwrap();
            assert_eq!(again, frame);
        }
    }
}
