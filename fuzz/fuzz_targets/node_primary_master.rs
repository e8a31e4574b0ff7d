//! Hostile peers against a primary master in service: see neo_tests::hostile.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neo_tests::hostile::{attack, Target, FUZZ_MOVES_MAX};

fuzz_target!(|data: &[u8]| {
    if let Some(violation) = attack(Target::PrimaryMaster, 0, data, FUZZ_MOVES_MAX) {
        panic!("{}", violation.0);
    }
});
