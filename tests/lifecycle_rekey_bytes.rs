//! Issue 4, the byte half of the Child SA lifetime (Azure's saDataSizeKilobytes): with
//! `child_lifetime_bytes` = 4 MiB and time lifetimes far away, a verified TCP stream of about
//! 2 MiB/s makes the initiating gateway rekey the Child SA every couple of seconds, with no
//! drop and no IKE SA rekey.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{watch_rekeys, Stream};
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::Scratch;

const LIMIT: u64 = 4 << 20;

#[test]
fn child_sa_rekeys_when_its_byte_lifetime_is_used_up() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("rekey-bytes", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16"];
    let bytes = |t: String| {
        t.replace(
            "dpd_timeout = \"45s\"",
            &format!("dpd_timeout = \"45s\"\nchild_lifetime_bytes = {LIMIT}"),
        )
    };
    let b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &bytes(hybridnet_b(&psk, false, &ike, &esp).to_toml()),
    )
    .expect("gw-b");
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &bytes(hybridnet_a(&psk, true, &ike, &esp).to_toml()),
    )
    .expect("gw-a");
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    b.wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5402, &net.vm_a, 2 << 20).expect("stream");
    let (ike_seen, child_seen) = watch_rekeys(&a, "site-b", Duration::from_secs(12))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", a.log()));
    let (sent, got) = stream
        .finish()
        .unwrap_or_else(|e| panic!("stream across rekeys: {e:#}\n{}", a.status_text()));
    assert!(got >= 16 << 20, "stream carried only {got} of {sent} bytes");
    assert_eq!(ike_seen.len(), 1, "no IKE SA rekey: {ike_seen:?}");
    assert!(
        child_seen.len() as u64 >= 3,
        "{got} bytes with a {LIMIT}-byte Child SA lifetime: at least 2 rekeys, saw {child_seen:?}"
    );
    let ca = a.connection("site-b").unwrap();
    let active = ca.child_sas.iter().find(|c| c.active).unwrap();
    assert!(
        active.inbound.bytes + active.outbound.bytes < LIMIT + (4 << 20),
        "the active Child SA was rekeyed near its byte lifetime: {active:?}"
    );
    assert_eq!(ca.drops.total(), 0, "drops: {:?}", ca.drops);
    assert!(
        a.log().contains("byte lifetime reached"),
        "the rekey was started by the byte lifetime:\n{}",
        a.log()
    );
}
