//! Issue 4, rekeying between two hybridnet gateways: IKE SA lifetime 20 s and Child SA
//! lifetime 10 s (PFS on the Child SAs); a TCP stream with every byte verified runs for 44 s
//! across several Child SA and IKE SA rekeys, with no drop on either side and the tunnel
//! established throughout.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{watch_rekeys, with_timers, Stream};
use hybridnet_tests::netns::{addrs, TwoSites};
use hybridnet_tests::process::Scratch;
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;

#[test]
fn hybridnet_pair_rekeys_under_a_verified_stream() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("rekey-hh", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16-ecp384"];
    let timers = |t: String| with_timers(&t, "45s", Some("20s"), Some("10s"));
    let b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &timers(hybridnet_b(&psk, false, &ike, &esp).to_toml()),
    )
    .expect("gw-b");
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &timers(hybridnet_a(&psk, true, &ike, &esp).to_toml()),
    )
    .expect("gw-a");
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    b.wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5401, &net.vm_a, 1 << 20).expect("stream");
    let (ike_seen, child_seen) = watch_rekeys(&a, "site-b", Duration::from_secs(44))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", a.log()));
    let (sent, got) = stream
        .finish()
        .unwrap_or_else(|e| panic!("stream across rekeys: {e:#}\n{}", a.status_text()));
    assert!(got >= 36 << 20, "stream carried only {got} of {sent} bytes");
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
