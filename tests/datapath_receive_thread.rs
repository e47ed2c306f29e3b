//! Issue 6, the data path on two threads (`datapath_threads = 2`: the receive direction on
//! its own thread, both threads busy polling after work): a TCP stream with every byte verified runs for 26 s between two hybridnet
//! gateways while their Child SAs (10 s) and IKE SA (20 s) rekey — IKE over port 4500 now
//! reaches the IKE thread through the receive thread, and inbound SAs are installed into and
//! removed from the receive half while it decrypts. No drop on either side.
use hybridnet_tests::lifecycle::{rekeying_pair, with_timers};
use hybridnet_tests::sites::TwoSites;
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::Scratch;

#[test]
fn receive_thread_keeps_a_verified_stream_across_rekeys() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("rx-thread", &net.id).unwrap();
    let psk = random_psk();
    let (ike, esp) = (["aes256-sha256-ecp256"], ["aes256gcm16"]);
    let config = |t: String| {
        let timers = with_timers(&t, "45s", Some("20s"), Some("10s"));
        format!("datapath_threads = 2\nbusy_poll_us = 100\n{timers}")
    };
    let (toml_a, toml_b) = (
        config(hybridnet_a(&psk, true, &ike, &esp).to_toml()),
        config(hybridnet_b(&psk, false, &ike, &esp).to_toml()),
    );
    let run = rekeying_pair(
        &net,
        &scratch.path,
        (&toml_a, &toml_b),
        (5402, 4 << 20),
        Duration::from_secs(26),
    );
    for g in [&run.a, &run.b] {
        let st = g.status().unwrap();
        assert_eq!(
            (st.datapath_threads, st.busy_poll_us),
            (2, 100),
            "{}",
            g.status_text()
        );
    }
    assert!(
        run.bytes >= 20 << 20,
        "stream carried only {} bytes",
        run.bytes
    );
    assert!(
        run.ike_seen.len() >= 2,
        "an IKE SA rekey in 26 s with a 20 s lifetime: {:?}",
        run.ike_seen
    );
    assert!(
        run.child_seen.len() >= 3,
        "at least 2 Child SA rekeys in 26 s with a 10 s lifetime: {:?}",
        run.child_seen
    );
    let (ca, cb) = (
        run.a.connection("site-b").unwrap(),
        run.b.connection("site-a").unwrap(),
    );
    assert_eq!(
        ca.drops.total() + cb.drops.total(),
        0,
        "drops: {:?} {:?}",
        ca.drops,
        cb.drops
    );
    assert!(
        ca.inbound.packets > 0 && cb.inbound.bytes >= run.bytes,
        "receive counters: a {:?}, b {:?}",
        ca.inbound,
        cb.inbound
    );
    eprintln!(
        "IKE SAs seen: {}, Child SAs seen: {}, stream {} bytes",
        run.ike_seen.len(),
        run.child_seen.len(),
        run.bytes
    );
}
