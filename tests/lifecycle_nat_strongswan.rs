//! Issue 4, NAT with strongSwan: hybridnet gw-a behind a port-changing NAT (nftables
//! `masquerade random`) initiates to strongSwan on gw-b. We detect the NAT in front of us and
//! send keepalives; strongSwan sees us on the NAT's address and a mapped port; ESP flows in
//! UDP to 4500 and traffic passes both ways.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{NatSites, GW_A_INSIDE};
use hybridnet_tests::sites::addrs;
use hybridnet_tests::traffic::{ping, ping_until_reply, tcp_transfer};
use hybridnet_tests::{assert_spis_match, hybridnet_a, random_psk, swan_b};
use std::time::Duration;
use testkit::process::{wait_for, Scratch};
use testkit::swan::{Charon, SwanChildSa};

#[test]
fn hybridnet_behind_nat_to_strongswan() {
    let net = NatSites::new().expect("topology");
    let scratch = Scratch::new("nat-hs", &net.id).unwrap();
    let psk = random_psk();
    let charon = Charon::start(&net.gw_b, &scratch.join("swan-b")).expect("charon");
    charon
        .load(&swan_b(
            &psk,
            false,
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
        ))
        .expect("swanctl load");
    let mut acfg = hybridnet_a(
        &psk,
        true,
        &["aes256gcm16-prfsha384-ecp384"],
        &["aes256gcm16"],
    );
    acfg.local_address = GW_A_INSIDE.into();
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &acfg.to_toml()).expect("gw-a");
    let ours = a
        .wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    let theirs = charon
        .wait_child_installed(Duration::from_secs(10))
        .unwrap();
    assert_spis_match(&ours, &theirs).unwrap();
    assert!(
        ours.nat_local,
        "we must detect the NAT in front of us:\n{}",
        a.status_text()
    );
    assert_eq!(
        ours.peer.as_deref(),
        Some("198.51.100.2:4500"),
        "IKE and ESP go to strongSwan's 4500"
    );
    assert_eq!(ours.child_sas[0].peer, "198.51.100.2:4500");
    // strongSwan sees us at the NAT's public address on a port the NAT chose
    let ike = &theirs.ike;
    assert_eq!(ike.remote_host, "198.51.100.1", "{ike:#?}");
    assert!(
        ike.remote_port != 500,
        "strongSwan must talk to the NAT-mapped 4500, not {}:\n{ike:#?}",
        ike.remote_port
    );
    assert_eq!(
        ike.installed_child("net").map(|c| c.mode_text()).as_deref(),
        Some("TUNNEL-in-UDP"),
        "ESP in UDP:\n{ike:#?}"
    );

    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    ping(&net.vm_b, addrs::VM_A, 3).unwrap();
    tcp_transfer(&net.vm_b, addrs::VM_B, 5501, &net.vm_a, 2 << 20).expect("TCP a->b through NAT");
    tcp_transfer(&net.vm_a, addrs::VM_A, 5502, &net.vm_b, 2 << 20).expect("TCP b->a through NAT");
    let after = SwanChildSa::find(&charon.sas().unwrap()).expect("strongSwan child");
    assert!(
        after.bytes_in >= 2 << 20 && after.bytes_out >= 2 << 20,
        "{:#?}",
        after.ike
    );
    let sent = wait_for(Duration::from_secs(5), "a NAT keepalive", || {
        a.connection("site-b")
            .ok()
            .map(|c| c.keepalives_sent)
            .filter(|n| *n >= 1)
    })
    .unwrap();
    assert!(sent >= 1);
    assert!(
        net.keepalives_forwarded().unwrap() >= 1,
        "no keepalive crossed the NAT:\n{}",
        net.nat_counters()
    );
    assert_eq!(a.connection("site-b").unwrap().drops.total(), 0);
}
