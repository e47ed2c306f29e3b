//! Issue 4, rekeying between two hybridnet gateways: IKE SA lifetime 20 s and Child SA
//! lifetime 10 s (PFS on the Child SAs); a TCP stream with every byte verified runs for 44 s
//! across several Child SA and IKE SA rekeys, with no drop on either side and the tunnel
//! established throughout.
use hybridnet_tests::lifecycle::{rekeying_pair, with_timers};
use hybridnet_tests::sites::TwoSites;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::Scratch;

#[test]
fn hybridnet_pair_rekeys_under_a_verified_stream() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("rekey-hh", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16-ecp384"];
    let timers = |t: String| with_timers(&t, "45s", Some("20s"), Some("10s"));
    let (toml_a, toml_b) = (
        timers(hybridnet_a(&psk, true, &ike, &esp).to_toml()),
        timers(hybridnet_b(&psk, false, &ike, &esp).to_toml()),
    );
    let run = rekeying_pair(
        &net,
        &scratch.path,
        (&toml_a, &toml_b),
        (5401, 1 << 20),
        Duration::from_secs(44),
    );
    let (a, b, got) = (&run.a, &run.b, run.bytes);
    let (ike_seen, child_seen) = (&run.ike_seen, &run.child_seen);
    assert!(got >= 36 << 20, "stream carried only {got} bytes");
    assert!(
        ike_seen.len() >= 3,
        "at least 2 IKE SA rekeys in 44 s with a 20 s lifetime: {ike_seen:?}"
    );
    assert!(
        child_seen.len() >= 5,
        "at least 4 Child SA rekeys in 44 s with a 10 s lifetime: {child_seen:?}"
    );
    let (ca, cb) = (
        a.connection("site-b").unwrap(),
        b.connection("site-a").unwrap(),
    );
    assert_eq!(
        ca.drops.total() + cb.drops.total(),
        0,
        "drops: {:?} {:?}",
        ca.drops,
        cb.drops
    );
    assert!(
        ca.child_sas
            .iter()
            .find(|c| c.active)
            .unwrap()
            .algorithms
            .contains("ECP_384"),
        "PFS: {:?}",
        ca.child_sas
    );
    // both sides agree on the current SAs
    let (sa, sb) = (
        ca.child_sas.iter().find(|c| c.active).unwrap(),
        cb.child_sas.iter().find(|c| c.active).unwrap(),
    );
    assert_eq!((&sa.spi_in, &ca.ike_spi_i), (&sb.spi_out, &cb.ike_spi_i));
    eprintln!(
        "IKE SAs seen: {}, Child SAs seen: {}, stream {got} bytes",
        ike_seen.len(),
        child_seen.len()
    );
}
