//! Issue 4, rekeying with strongSwan: hybridnet initiates with an IKE SA lifetime of 20 s and
//! a Child SA lifetime of 10 s (PFS); a TCP stream with every byte verified runs for 44 s across
//! several CHILD_SA and IKE SA rekeys with strongSwan as responder; SPIs match strongSwan's
//! at the end and nothing was dropped.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{watch_rekeys, with_timers, Stream};
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{assert_spis_match, hybridnet_a, random_psk, swan_b};
use std::time::Duration;
use testkit::process::Scratch;
use testkit::swan::{Charon, SwanChildSa};

#[test]
fn strongswan_rekeys_under_a_verified_stream() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("rekey-hs", &net.id).unwrap();
    let psk = random_psk();
    let charon = Charon::start(&net.gw_b, &scratch.join("swan-b")).expect("charon");
    charon
        .load(&swan_b(
            &psk,
            false,
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16-ecp384",
        ))
        .expect("swanctl load");
    let cfg = with_timers(
        &hybridnet_a(
            &psk,
            true,
            &["aes256gcm16-prfsha384-ecp384"],
            &["aes256gcm16-ecp384"],
        )
        .to_toml(),
        "45s",
        Some("20s"),
        Some("10s"),
    );
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &cfg).expect("gw-a");
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    charon
        .wait_child_installed(Duration::from_secs(10))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5601, &net.vm_a, 1 << 20).expect("stream");
    let (ike_seen, child_seen) = watch_rekeys(&a, "site-b", Duration::from_secs(44))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", charon.log()));
    let (sent, got) = stream.finish().unwrap_or_else(|e| {
        panic!(
            "stream across rekeys: {e:#}\n{}\n{}",
            a.status_text(),
            charon.sas_text()
        )
    });
    assert!(got >= 36 << 20, "stream carried only {got} of {sent} bytes");
    assert!(
        ike_seen.len() >= 3,
        "at least 2 IKE SA rekeys: {ike_seen:?}"
    );
    assert!(
        child_seen.len() >= 5,
        "at least 4 Child SA rekeys: {child_seen:?}"
    );
    let ours = a.connection("site-b").unwrap();
    let theirs = SwanChildSa::find(&charon.sas().unwrap()).expect("strongSwan child");
    assert_spis_match(&ours, &theirs).unwrap();
    assert_eq!(ours.drops.total(), 0, "drops: {:?}", ours.drops);
    let swan_log = charon.log();
    assert!(
        swan_log.contains("rekey") || swan_log.contains("CREATE_CHILD_SA"),
        "strongSwan saw no rekey:\n{}",
        swan_log
    );
    eprintln!(
        "IKE SAs seen: {}, Child SAs seen: {}, stream {got} bytes",
        ike_seen.len(),
        child_seen.len()
    );
}
