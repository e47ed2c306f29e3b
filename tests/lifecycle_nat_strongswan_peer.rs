//! Issue 4, the peer behind NAT: strongSwan on gw-a sits behind a port-changing NAT
//! (nftables `masquerade random`) and initiates to hybridnet on gw-b. Our responder detects the
//! NAT in front of the peer, follows the initiator to its NAT-mapped 4500 for IKE and ESP, and
//! traffic passes both ways.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{NatSites, GW_A_INSIDE};
use hybridnet_tests::sites::addrs;
use hybridnet_tests::traffic::{ping, ping_until_reply, tcp_transfer};
use hybridnet_tests::{assert_spis_match, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::Scratch;
use testkit::swan::{Charon, SwanChildSa, SwanConn};

#[test]
fn strongswan_behind_nat_to_hybridnet_responder() {
    let net = NatSites::new().expect("topology");
    let scratch = Scratch::new("nat-sh", &net.id).unwrap();
    let psk = random_psk();
    let ike = "aes256gcm16-prfsha384-ecp384";
    let esp = "aes256gcm16";
    let b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &hybridnet_b(&psk, false, &[ike], &[esp]).to_toml(),
    )
    .expect("gw-b");
    let charon = Charon::start(&net.gw_a, &scratch.join("swan-a")).expect("charon");
    charon
        .load(&SwanConn {
            local_addr: GW_A_INSIDE.into(),
            remote_addr: addrs::GW_B_WAN.into(),
            local_id: addrs::ID_A.into(),
            remote_id: addrs::ID_B.into(),
            local_ts: addrs::NET_A.into(),
            remote_ts: addrs::NET_B.into(),
            ike_proposals: ike.into(),
            esp_proposals: esp.into(),
            psk: psk.clone(),
            start_action: "none".into(),
            ..SwanConn::default()
        })
        .expect("swanctl load");
    charon
        .initiate(15)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", b.status_text()));
    let ours = b
        .wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    let theirs = charon
        .wait_child_installed(Duration::from_secs(10))
        .unwrap();
    assert_spis_match(&ours, &theirs).unwrap();
    assert!(
        ours.nat_remote,
        "the NAT in front of the peer must be detected:\n{}",
        b.status_text()
    );
    assert!(
        !ours.nat_local,
        "we are not behind NAT:\n{}",
        b.status_text()
    );
    assert_eq!(ours.keepalives_sent, 0);
    let peer: std::net::SocketAddr = ours.peer.clone().expect("peer").parse().unwrap();
    assert_eq!(
        peer.ip().to_string(),
        addrs::GW_A_WAN,
        "the NAT's public address"
    );
    assert_ne!(peer.port(), 500, "floated to (the mapping of) 4500");
    assert_eq!(
        ours.child_sas[0].peer,
        peer.to_string(),
        "ESP goes to the mapped port too"
    );
    let ike = &theirs.ike;
    assert_eq!(
        (ike.remote_host.as_str(), ike.remote_port),
        ("198.51.100.2", 4500),
        "{ike:#?}"
    );
    assert_eq!(
        ike.installed_child("net").map(|c| c.mode_text()).as_deref(),
        Some("TUNNEL-in-UDP"),
        "{ike:#?}"
    );

    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    ping(&net.vm_b, addrs::VM_A, 3).unwrap();
    tcp_transfer(&net.vm_b, addrs::VM_B, 5801, &net.vm_a, 2 << 20).expect("TCP a->b");
    tcp_transfer(&net.vm_a, addrs::VM_A, 5802, &net.vm_b, 2 << 20).expect("TCP b->a");
    let after = SwanChildSa::find(&charon.sas().unwrap()).expect("strongSwan child");
    assert!(
        after.bytes_in >= 2 << 20 && after.bytes_out >= 2 << 20,
        "{:#?}",
        after.ike
    );
    let ours = b.connection("site-a").unwrap();
    assert!(ours.outbound.bytes >= 2 << 20 && ours.inbound.bytes >= 2 << 20);
    assert_eq!(ours.drops.total(), 0, "{:?}", ours.drops);
}
