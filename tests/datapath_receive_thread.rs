//! Issue 6, the data path on two threads (`datapath_threads = 2`: the receive direction on
//! its own thread): a TCP stream with every byte verified runs for 26 s between two hybridnet
//! gateways while their Child SAs (10 s) and IKE SA (20 s) rekey — IKE over port 4500 now
//! reaches the IKE thread through the receive thread, and inbound SAs are installed into and
//! removed from the receive half while it decrypts. No drop on either side.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{watch_rekeys, with_timers, Stream};
use hybridnet_tests::netns::{addrs, TwoSites};
use hybridnet_tests::process::Scratch;
use hybridnet_tests::traffic::ping_until_reply;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;

#[test]
fn receive_thread_keeps_a_verified_stream_across_rekeys() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("rx-thread", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256-sha256-ecp256"];
    let esp = ["aes256gcm16"];
    let config = |t: String| {
        format!(
            "datapath_threads = 2\n{}",
            with_timers(&t, "45s", Some("20s"), Some("10s"))
        )
    };
    let b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &config(hybridnet_b(&psk, false, &ike, &esp).to_toml()),
    )
    .expect("gw-b");
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &config(hybridnet_a(&psk, true, &ike, &esp).to_toml()),
    )
    .expect("gw-a");
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    b.wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    for g in [&a, &b] {
        assert_eq!(g.status().unwrap().datapath_threads, 2, "{}", g.status_text());
    }
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    let stream = Stream::start(&net.vm_b, addrs::VM_B, 5402, &net.vm_a, 4 << 20).expect("stream");
    let (ike_seen, child_seen) = watch_rekeys(&a, "site-b", Duration::from_secs(26))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", a.log()));
    let (sent, got) = stream
        .finish()
        .unwrap_or_else(|e| panic!("stream across rekeys: {e:#}\n{}", a.status_text()));
    assert!(got >= 20 << 20, "stream carried only {got} of {sent} bytes");
    assert!(
        ike_seen.len() >= 2,
        "an IKE SA rekey in 26 s with a 20 s lifetime: {ike_seen:?}"
    );
    assert!(
        child_seen.len() >= 3,
        "at least 2 Child SA rekeys in 26 s with a 10 s lifetime: {child_seen:?}"
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
        ca.inbound.packets > 0 && cb.inbound.bytes >= got,
        "receive counters: a {:?}, b {:?}",
        ca.inbound,
        cb.inbound
    );
    eprintln!(
        "IKE SAs seen: {}, Child SAs seen: {}, stream {got} bytes",
        ike_seen.len(),
        child_seen.len()
    );
}
