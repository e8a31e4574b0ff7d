//! Object data as a client prepares it (neo-core), carried by the packets
//! that transport it (neo-proto), checked and unpacked as a storage and a
//! reader do.

use bytes::Bytes;
use neo_core::data;
use neo_proto::{AnswerObject, AskStoreObject, ObjectData, Oid, Packet, Tid};
use neo_tests::over_the_wire;

fn pickles() -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"hello"),
        Bytes::from(vec![b'x'; 100]),
        Bytes::from(
            (0..70_000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        ),
        Bytes::from(vec![0u8; 1 << 20]),
    ]
}

#[test]
fn stored_data_survives_the_wire_and_unpacks() {
    for (i, pickle) in pickles().into_iter().enumerate() {
        let stored = data::pack(pickle.clone(), true);
        let store = AskStoreObject {
            oid: Oid(i as u64 + 1),
            serial: Tid::ZERO,
            compression: stored.compression,
            checksum: stored.checksum,
            data: stored.data.clone(),
            data_serial: None,
            ttid: Tid(0x03f9_29f5_5666_6666),
        };
        let frames = over_the_wire(&[(i as u32, store.into())], 4096);
        let Packet::AskStoreObject(received) = &frames[0].packet else {
            panic!("not a store: {}", frames[0].packet)
        };
        let received = ObjectData {
            compression: received.compression,
            checksum: received.checksum,
            data: received.data.clone(),
        };
        // What a storage checks before accepting the store.
        data::verify(&received).unwrap();
        // What it sends back on a load, and what the reader gets.
        let answer = AnswerObject {
            oid: Oid(1),
            serial: Tid(0x03f9_29f5_5666_6667),
            next_serial: None,
            compression: Some(received.compression),
            checksum: received.checksum,
            data: received.data,
            data_serial: None,
        };
        let frames = over_the_wire(&[(7, answer.into())], 1500);
        let Packet::AnswerObject(loaded) = &frames[0].packet else {
            panic!("not an answer")
        };
        let loaded = ObjectData {
            compression: loaded.compression.unwrap(),
            checksum: loaded.checksum,
            data: loaded.data.clone(),
        };
        assert_eq!(data::unpack(&loaded).unwrap(), pickle);
    }
}

#[test]
fn a_corrupted_byte_on_the_way_is_caught_by_the_checksum() {
    let stored = data::pack(Bytes::from(vec![b'z'; 5000]), true);
    let mut corrupted = stored.data.to_vec();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0x40;
    let received = ObjectData {
        data: corrupted.into(),
        ..stored
    };
    assert!(matches!(
        data::verify(&received),
        Err(data::DataError::ChecksumMismatch { .. })
    ));
}
