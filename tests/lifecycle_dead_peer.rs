//! Issue 4, liveness between two hybridnet gateways (DPD timeout 6 s): the responder killed
//! with SIGKILL (no DELETE) is noticed within the DPD timeout, and the initiator brings the
//! tunnel back on its own when the responder returns; then the initiator is killed and
//! restarted at once: its INITIAL_CONTACT makes the responder drop the stale SAs and the new
//! tunnel is up immediately, with traffic.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::with_timers;
use hybridnet_tests::sites::{addrs, TwoSites};
use hybridnet_tests::traffic::{ping, ping_until_reply};
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::{Duration, Instant};
use testkit::process::{wait_for, Scratch};

fn kill9(g: &GatewayProc) {
    // SAFETY: SIGKILL to the gateway process this test started.
    assert_eq!(unsafe { libc::kill(g.pid() as i32, libc::SIGKILL) }, 0);
}

#[test]
fn dead_peer_detected_and_recovered_and_initial_contact() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("dpd", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16"];
    let acfg = with_timers(
        &hybridnet_a(&psk, true, &ike, &esp).to_toml(),
        "6s",
        None,
        None,
    );
    let bcfg = with_timers(
        &hybridnet_b(&psk, false, &ike, &esp).to_toml(),
        "6s",
        None,
        None,
    );
    let b = GatewayProc::start(&net.gw_b, &scratch.path, "gw-b", &bcfg).expect("gw-b");
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &acfg).expect("gw-a");
    let first = a
        .wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();

    // the responder dies without a word
    kill9(&b);
    let killed = Instant::now();
    let down = wait_for(
        Duration::from_secs(12),
        "gw-a to declare the dead peer down",
        || {
            a.connection("site-b")
                .ok()
                .filter(|c| c.state != "established" || c.child_sas.is_empty())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.status_text()));
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(9),
        "down after {took:?}, DPD timeout is 6 s"
    );
    assert!(
        down.child_sas.is_empty(),
        "no Child SA may stay installed for a dead peer: {:?}",
        down.child_sas
    );
    drop(b);

    // it returns: the initiator re-establishes on its own
    let b = GatewayProc::start(&net.gw_b, &scratch.path, "gw-b2", &bcfg).expect("gw-b again");
    let back_start = Instant::now();
    let back = a
        .wait_established("site-b", Duration::from_secs(15))
        .unwrap();
    let back_took = back_start.elapsed();
    assert_ne!(back.ike_spi_i, first.ike_spi_i, "a new IKE SA");
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();

    // the initiator restarts: INITIAL_CONTACT replaces the responder's stale SAs at once
    let stale = b
        .wait_established("site-a", Duration::from_secs(5))
        .unwrap();
    kill9(&a);
    drop(a);
    let restart = Instant::now();
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a2", &acfg).expect("gw-a again");
    a.wait_established("site-b", Duration::from_secs(5))
        .unwrap();
    let fresh = wait_for(
        Duration::from_secs(3),
        "gw-b to replace the stale SAs",
        || {
            b.connection("site-a").ok().filter(|c| {
                c.ike_spi_i != stale.ike_spi_i && c.state == "established" && c.child_sas.len() == 1
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.status_text()));
    let ic_took = restart.elapsed();
    assert!(
        ic_took < Duration::from_secs(3),
        "re-established after {ic_took:?}"
    );
    assert!(
        fresh
            .child_sas
            .iter()
            .all(|c| c.spi_in != stale.child_sas[0].spi_in),
        "stale Child SA dropped: {:?}",
        fresh.child_sas
    );
    ping(&net.vm_a, addrs::VM_B, 3).unwrap();
    ping(&net.vm_b, addrs::VM_A, 3).unwrap();
    eprintln!("dead peer down after {took:?}; back {back_took:?} after it returned; INITIAL_CONTACT restart up in {ic_took:?}");
}
