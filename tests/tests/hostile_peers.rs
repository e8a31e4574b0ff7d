//! Every node kind, in service, under hostile peers: seeded sequences of
//! arbitrary packets, right-typed answers to its requests, replays of
//! what it saw (mutated or not) on other connections, new and closed
//! connections, and time passing (see `neo_tests::hostile`).
//!
//! The property: no panic, no output to a connection the node does not
//! have, no wake-up in the past nor busy loop, bounded outputs per input.
//! CI runs
//! `NEO_HOSTILE_SEQUENCES` (default 200: over 100,000 packets per node kind) sequences of up to 2,000 moves per
//! node kind; a failure names the seed that replays it:
//! `NEO_HOSTILE_SEED=N cargo test -p neo-tests --test hostile_peers`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use neo_core::rng::Rng;
use neo_tests::hostile::{attack_with_stats, Target};

const MOVES: usize = 2_000;
const DEFAULT_SEQUENCES: u64 = 200;
/// What the default campaign must feed each node kind at least.
const DEFAULT_PACKETS_MIN: u64 = 100_000;

fn sequences() -> std::ops::Range<u64> {
    if let Some(seed) = std::env::var("NEO_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed..seed + 1;
    }
    let count = std::env::var("NEO_HOSTILE_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEQUENCES);
    0..count
}

fn campaign(target: Target) {
    let mut packets = 0;
    for seed in sequences() {
        let mut rng = Rng::new(seed);
        // A move takes at most 256 bytes, most far fewer.
        let data: Vec<u8> = (0..MOVES * 160).map(|_| rng.below(256) as u8).collect();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            attack_with_stats(target, seed, &data, MOVES)
        }));
        match outcome {
            Ok((None, stats)) => packets += stats.packets,
            Ok((Some(violation), _)) => panic!(
                "{target:?}, seed {seed}: {}\nreplay: NEO_HOSTILE_SEED={seed} cargo test -p neo-tests --test hostile_peers",
                violation.0
            ),
            Err(_) => panic!(
                "{target:?}, seed {seed}: the node panicked (message above)\nreplay: NEO_HOSTILE_SEED={seed} cargo test -p neo-tests --test hostile_peers"
            ),
        }
    }
    println!("{target:?}: {packets} hostile packets");
    if sequences() == (0..DEFAULT_SEQUENCES) {
        assert!(
            packets >= DEFAULT_PACKETS_MIN,
            "{target:?}: only {packets} hostile packets"
        );
    }
}

#[test]
fn primary_master() {
    campaign(Target::PrimaryMaster);
}

#[test]
fn secondary_master() {
    campaign(Target::SecondaryMaster);
}

#[test]
fn storage_in_service() {
    campaign(Target::Storage);
}

#[test]
fn replicating_storage() {
    campaign(Target::ReplicatingStorage);
}

#[test]
fn admin() {
    campaign(Target::Admin);
}

#[test]
fn client() {
    campaign(Target::Client);
}

/// Inputs the cargo-fuzz targets found, replayed on the node kind they
/// found it on (`cargo fuzz run -s none node_KIND ARTIFACT` replays one).
#[test]
fn what_the_fuzzers_found() {
    let found: &[(Target, &str, &[u8])] = &[
        (
            // A pack order from the "master", then a timeout: the storage asks
            // to be woken at once to pack its next chunk, which the harness
            // first took for a busy loop.
            Target::Storage,
            "a pack goes on by chunks at the same instant",
            &[
                3, 0, 1, 39, 193, 44, 96, 202, 87, 176, 167, 167, 79, 79, 79, 79, 79, 79, 79, 79,
                79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 0, 0, 0, 0, 171, 170, 170,
                170, 170, 170, 170, 0, 0, 0, 0, 0, 0, 0, 0, 0, 91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 79, 79, 79,
                79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 79, 167, 167, 167, 167, 0,
                1, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        (
            // An AskTIDs or AskObjectHistory whose range starts near u64::MAX:
            // clamping its length overflowed.
            Target::Storage,
            "a listing range at the end of the u64s",
            &[
                186, 97, 49, 41, 199, 49, 50, 55, 0, 0, 0, 112, 8, 203, 203, 10, 159, 255, 255,
                255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 10, 10,
                10, 199, 41, 48, 199, 49, 49, 41, 199, 186, 97, 199, 173, 186, 97, 41, 48,
            ],
        ),
    ];
    for (target, what, data) in found {
        let violation =
            neo_tests::hostile::attack(*target, 0, data, neo_tests::hostile::FUZZ_MOVES_MAX);
        assert!(violation.is_none(), "{target:?}, {what}: {violation:?}");
    }
}

#[test]
fn an_admin_forwards_a_bounded_number_of_requests_per_connection() {
    use neo_core::Input;
    use neo_proto::{ErrorCode, Packet, SetNumReplicas};
    let mut hostile = neo_tests::hostile::Hostile::new(Target::Admin, 1);
    let ctl = hostile.accept();
    hostile.feed(Input::Accepted { conn: ctl }).unwrap();
    // The master answers none of them: the harness plays it.
    let max = neo_core::admin::FORWARDED_REQUESTS_COUNT_MAX as u32;
    for msg_id in 0..=max {
        let packet = SetNumReplicas { num_replicas: 1 }.into();
        hostile
            .feed(Input::Packet {
                conn: ctl,
                msg_id,
                packet,
            })
            .unwrap();
        let refused = hostile.sent.iter().any(|(c, id, p)| {
            *c == ctl
                && *id == msg_id
                && matches!(p, Packet::Error(e) if e.code == ErrorCode::ProtocolError)
        });
        assert_eq!(
            refused,
            msg_id == max,
            "request {msg_id}: {:?}",
            hostile.sent
        );
    }
}
