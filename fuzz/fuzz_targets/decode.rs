//! Arbitrary bytes fed to the stream decoder, split at a fuzzer-chosen
//! point: never a panic, and every packet that decodes re-encodes to bytes
//! that decode to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neo_proto::{decode_frame, encode_to_bytes, Decoder};

fuzz_target!(|input: &[u8]| {
    let Some((&split, bytes)) = input.split_first() else {
        return;
    };
    // Half of the inputs start with the handshake check, half without.
    let mut decoder = if split & 1 == 0 {
        Decoder::new()
    } else {
        Decoder::without_handshake()
    };
    let cut = (split as usize).min(bytes.len());
    for part in [&bytes[..cut], &bytes[cut..]] {
        decoder.feed(part);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let again = encode_to_bytes(frame.msg_id, &frame.packet);
                    let decoded = decode_frame(again).expect("re-encoded packet must decode");
                    assert_eq!(decoded, frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
