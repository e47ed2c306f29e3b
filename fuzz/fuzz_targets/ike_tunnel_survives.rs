//! An attacker on the path of an established IKE pair, driven by the fuzzer: the input is an
//! attack script (forged IKE_SA_INIT requests and responses, replays, truncations, bit flips,
//! encrypted-looking messages with the live SPIs, wrong-key handshakes with INITIAL_CONTACT,
//! floods, garbage, time passing — see crates/ike/tests/common/attack.rs). The oracle is not
//! only "no panic" but "the established tunnel survives": both ends keep the same IKE SA and
//! Child SAs, report nothing going down, pass ESP both ways and can still rekey.
#![no_main]

#[path = "../../crates/ike/tests/common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    let (mut n, base) = common::attack::established();
    common::attack::attack(&mut n, &base, script);
    if let Err(e) = common::attack::assert_survived(&mut n, &base) {
        panic!("the established tunnel did not survive: {e}");
    }
});
