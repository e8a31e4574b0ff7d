//! Encode and decode costs of the packets on the hot paths: a load
//! (AskObject/AnswerObject with 1 KiB and 1 MiB of data) and a large
//! partition table (1,000 partitions × 2 cells).
//!
//! Decoding AnswerObject must not copy its data: the same decode time for
//! 1 KiB and 1 MiB shows it, and the setup asserts that the decoded data
//! points into the input buffer.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use neo_proto::*;

fn answer_object(size: usize) -> Packet {
    AnswerObject {
        oid: Oid(0x1234),
        serial: Tid(0x03f9_29f5_5666_6666),
        next_serial: None,
        compression: Some(0),
        checksum: Checksum([7; 20]),
        data: Bytes::from(vec![0x5a; size]),
        data_serial: None,
    }
    .into()
}

fn partition_table() -> Packet {
    AnswerPartitionTable {
        ptid: Ptid(42),
        num_replicas: 1,
        rows: (0..1000)
            .map(|i| {
                vec![
                    CellInfo {
                        nid: Nid(1 + i % 10),
                        state: CellState::UpToDate,
                    },
                    CellInfo {
                        nid: Nid(1 + (i + 1) % 10),
                        state: CellState::UpToDate,
                    },
                ]
                .into()
            })
            .collect(),
    }
    .into()
}

fn assert_zero_copy(bytes: &Bytes) {
    let frame = decode_frame(bytes.clone()).unwrap();
    let Packet::AnswerObject(answer) = frame.packet else {
        unreachable!()
    };
    assert!(
        bytes.as_ptr_range().contains(&answer.data.as_ptr()),
        "AnswerObject data was copied out of the input buffer"
    );
}

fn bench_codec(c: &mut Criterion) {
    let ask = Packet::from(AskObject {
        oid: Oid(0x1234),
        at: None,
        before: Some(Tid(0x03f9_29f5_5666_6667)),
    });
    let cases: Vec<(String, Packet)> = vec![
        ("AskObject".into(), ask),
        ("AnswerObject/1KiB".into(), answer_object(1024)),
        ("AnswerObject/1MiB".into(), answer_object(1 << 20)),
        ("AnswerPartitionTable/1000x2".into(), partition_table()),
    ];

    let mut group = c.benchmark_group("encode");
    for (name, packet) in &cases {
        let size = encode_to_bytes(1, packet).len();
        group.throughput(Throughput::Bytes(size as u64));
        let mut out = BytesMut::with_capacity(size);
        group.bench_with_input(BenchmarkId::from_parameter(name), packet, |b, packet| {
            b.iter(|| {
                out.clear();
                encode(7, black_box(packet), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    for (name, packet) in &cases {
        let bytes = encode_to_bytes(7, packet);
        if let Packet::AnswerObject(_) = packet {
            assert_zero_copy(&bytes);
        }
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| decode_frame(black_box(bytes.clone())).unwrap())
        });
    }
    group.finish();

    // The stream decoder as a connection uses it: bytes already in its
    // receive buffer (the runtime reads the socket straight into it).
    let mut group = c.benchmark_group("stream_decode");
    for (name, packet) in &cases {
        let bytes = encode_to_bytes(7, packet);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter_batched(
                || {
                    let mut decoder = Decoder::without_handshake();
                    decoder.feed(bytes);
                    decoder
                },
                |mut decoder| decoder.next_frame().unwrap().unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
