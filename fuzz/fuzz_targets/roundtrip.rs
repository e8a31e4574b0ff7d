//! Arbitrary packets: the encoding decodes to the same packet, whatever the
//! message id, and the stream decoder agrees with the one-shot decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neo_proto::{decode_frame, encode_to_bytes, Decoder, Packet};

fuzz_target!(|input: (u32, Packet, u8)| {
    let (msg_id, packet, split) = input;
    let bytes = encode_to_bytes(msg_id, &packet);
    let frame = decode_frame(bytes.clone()).expect("encoded packet must decode");
    assert_eq!(frame.msg_id, msg_id);
    assert_eq!(frame.packet, packet);
    assert_eq!(encode_to_bytes(msg_id, &frame.packet), bytes);

    let cut = (split as usize).min(bytes.len());
    let mut decoder = Decoder::without_handshake();
    decoder.feed(&bytes[..cut]);
    let early = decoder.next_frame().expect("a prefix is not an error");
    decoder.feed(&bytes[cut..]);
    let frame = match early {
        Some(frame) => frame,
        None => decoder.next_frame().unwrap().expect("complete packet"),
    };
    assert_eq!(frame.packet, packet);
});
