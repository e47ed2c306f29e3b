//! Issue 4, NAT: gw-a behind a port-changing NAT (nftables `masquerade random` in the internet
//! namespace) and a hybridnet responder gw-b. Both sides detect the NAT and report it, ESP runs
//! over UDP 4500 to gw-b and to gw-a's mapped port, the side behind NAT sends keepalives, and
//! when the NAT mapping changes the responder follows it (IKE and ESP) and traffic resumes.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::lifecycle::{with_timers, NatSites, GW_A_INSIDE};
use hybridnet_tests::sites::addrs;
use hybridnet_tests::traffic::{ping, ping_until_reply, tcp_transfer};
use hybridnet_tests::{hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::{wait_for, Scratch};

#[test]
fn hybridnet_behind_nat_to_hybridnet() {
    let net = NatSites::new().expect("topology");
    let scratch = Scratch::new("nat-hh", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16"];
    let bcfg = with_timers(
        &hybridnet_b(&psk, false, &ike, &esp).to_toml(),
        "6s",
        None,
        None,
    );
    let b = GatewayProc::start(&net.gw_b, &scratch.path, "gw-b", &bcfg).expect("gw-b");
    let mut acfg = hybridnet_a(&psk, true, &ike, &esp);
    acfg.local_address = GW_A_INSIDE.into();
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &with_timers(&acfg.to_toml(), "6s", None, None),
    )
    .expect("gw-a");
    let ca = a
        .wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    let cb = b
        .wait_established("site-a", Duration::from_secs(10))
        .unwrap();

    // NAT detected: a knows it is behind NAT, b does not think it is
    assert!(
        ca.nat_local,
        "gw-a must detect the NAT in front of it:\n{}",
        a.status_text()
    );
    assert!(
        !cb.nat_local,
        "gw-b has no NAT in front of it:\n{}",
        b.status_text()
    );
    assert!(
        cb.nat_remote,
        "gw-b must see the peer behind NAT:\n{}",
        b.status_text()
    );
    // a talks to b's 4500; b talks to the NAT's public address on the port it mapped 4500 to
    assert_eq!(
        ca.peer.as_deref(),
        Some("198.51.100.2:4500"),
        "{}",
        a.status_text()
    );
    let b_peer: std::net::SocketAddr = cb.peer.clone().expect("gw-b peer").parse().unwrap();
    assert_eq!(b_peer.ip().to_string(), addrs::GW_A_WAN);
    assert!(
        b_peer.port() != 500,
        "IKE must have floated to 4500 (mapped): {b_peer}"
    );
    assert_eq!(ca.child_sas[0].peer, "198.51.100.2:4500");
    assert_eq!(
        cb.child_sas[0].peer,
        b_peer.to_string(),
        "ESP goes where IKE goes"
    );
    let table = a.status_text();
    assert!(table.contains("NAT  local yes"), "{table}");

    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(5)).unwrap();
    ping(&net.vm_b, addrs::VM_A, 3).unwrap();
    tcp_transfer(&net.vm_b, addrs::VM_B, 5201, &net.vm_a, 2 << 20).expect("TCP a->b through NAT");
    tcp_transfer(&net.vm_a, addrs::VM_A, 5202, &net.vm_b, 2 << 20).expect("TCP b->a through NAT");
    let ca = a.connection("site-b").unwrap();
    let cb = b.connection("site-a").unwrap();
    assert!(
        ca.outbound.bytes > 2 << 20 && cb.outbound.bytes > 2 << 20,
        "{:?} {:?}",
        ca.outbound,
        cb.outbound
    );
    assert_eq!(
        ca.drops.total() + cb.drops.total(),
        0,
        "{:?} {:?}",
        ca.drops,
        cb.drops
    );

    // keepalives from the side behind NAT only
    let sent = wait_for(Duration::from_secs(5), "a NAT keepalive from gw-a", || {
        a.connection("site-b")
            .ok()
            .map(|c| c.keepalives_sent)
            .filter(|n| *n >= 1)
    })
    .unwrap();
    assert!(sent >= 1);
    let on_wire = net.keepalives_forwarded().unwrap();
    assert!(
        on_wire >= 1,
        "no keepalive crossed the NAT:\n{}",
        net.nat_counters()
    );
    assert_eq!(
        b.connection("site-a").unwrap().keepalives_sent,
        0,
        "gw-b is not behind NAT"
    );

    // the NAT forgets gw-a's mapping (short UDP timeouts, everything dropped before conntrack
    // for 3 s): the next packets get a new random port and gw-b must follow it
    net.nat
        .sysctl("net.netfilter.nf_conntrack_udp_timeout=1")
        .unwrap();
    net.nat
        .sysctl("net.netfilter.nf_conntrack_udp_timeout_stream=1")
        .unwrap();
    // let a DPD exchange (every 2 s) refresh the mapping with the short timeout first
    std::thread::sleep(Duration::from_millis(2500));
    net.nat
        .exec("nft", &["add", "table", "ip", "hnblock"])
        .unwrap();
    net.nat
        .exec(
            "nft",
            &[
                "add",
                "chain",
                "ip",
                "hnblock",
                "pre",
                "{ type filter hook prerouting priority raw; policy accept; }",
            ],
        )
        .unwrap();
    net.nat
        .exec(
            "nft",
            &[
                "add", "rule", "ip", "hnblock", "pre", "meta", "l4proto", "udp", "drop",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    net.nat
        .exec("nft", &["delete", "table", "ip", "hnblock"])
        .unwrap();
    let moved = wait_for(
        Duration::from_secs(15),
        "gw-b to follow gw-a's new NAT mapping",
        || {
            let c = b.connection("site-a").ok()?;
            let p = c.peer.clone()?;
            (p != b_peer.to_string() && c.child_sas.iter().all(|s| s.peer == p)).then_some(p)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}\n{}\n{}",
            b.status_text(),
            a.status_text(),
            net.nat_counters()
        )
    });
    ping_until_reply(&net.vm_a, addrs::VM_B, Duration::from_secs(10)).unwrap();
    tcp_transfer(&net.vm_b, addrs::VM_B, 5203, &net.vm_a, 1 << 20)
        .expect("TCP after the NAT mapping changed");
    assert!(
        b.log().contains("peer moved: ESP follows")
            || b.connection("site-a")
                .unwrap()
                .child_sas
                .iter()
                .any(|s| s.peer == moved),
        "{}",
        b.log()
    );
    assert_eq!(a.connection("site-b").unwrap().state, "established");
}
