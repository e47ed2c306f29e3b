//! Two hybridnet gateways: the tunnel comes up, carries ping and verified TCP both ways, the
//! SPIs of one side mirror the other's, counters grow with the traffic, and a graceful
//! SIGTERM deletes the SAs on the peer.
use hybridnet_tests::gw::GatewayProc;
use hybridnet_tests::sites::TwoSites;
use hybridnet_tests::{assert_no_secret, check_traffic, hybridnet_a, hybridnet_b, random_psk};
use std::time::Duration;
use testkit::process::{wait_for, Scratch};

#[test]
fn hybridnet_to_hybridnet() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("pair", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha384-ecp384"];
    let esp = ["aes256gcm16"];
    let mut b = GatewayProc::start(
        &net.gw_b,
        &scratch.path,
        "gw-b",
        &hybridnet_b(&psk, false, &ike, &esp).to_toml(),
    )
    .expect("gw-b");
    let a = GatewayProc::start(
        &net.gw_a,
        &scratch.path,
        "gw-a",
        &hybridnet_a(&psk, true, &ike, &esp).to_toml(),
    )
    .expect("gw-a");
    let ca = a
        .wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    let cb = b
        .wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    let (sa, sb) = (
        ca.child_sas.iter().find(|c| c.active).unwrap(),
        cb.child_sas.iter().find(|c| c.active).unwrap(),
    );
    assert_eq!(sa.spi_in, sb.spi_out, "a in == b out");
    assert_eq!(sa.spi_out, sb.spi_in, "a out == b in");
    assert_eq!(ca.ike_spi_i, cb.ike_spi_i);
    assert_eq!(ca.ike_spi_r, cb.ike_spi_r);
    assert_eq!(ca.ike_algorithms, cb.ike_algorithms);

    check_traffic(&net).expect("traffic");

    let ca2 = a.connection("site-b").unwrap();
    let cb2 = b.connection("site-a").unwrap();
    assert!(
        ca2.outbound.bytes >= ca.outbound.bytes + 4 * 1024 * 1024,
        "{:?}",
        ca2.outbound
    );
    assert!(
        ca2.inbound.bytes >= ca.inbound.bytes + 4 * 1024 * 1024,
        "{:?}",
        ca2.inbound
    );
    // what a sent is what b received (nothing is lost on a veth)
    assert_eq!(
        ca2.outbound.packets, cb2.inbound.packets,
        "a out {:?} b in {:?}",
        ca2.outbound, cb2.inbound
    );
    assert_eq!(
        ca2.drops.total() + cb2.drops.total(),
        0,
        "drops: {:?} {:?}",
        ca2.drops,
        cb2.drops
    );
    for (g, what) in [(&a, "a"), (&b, "b")] {
        assert_no_secret(&g.log(), &psk, &format!("gw-{what} log")).unwrap();
        assert_no_secret(&g.status_text(), &psk, &format!("gw-{what} status")).unwrap();
    }
    let table = a.status_text();
    assert!(
        table.contains("site-b: established") && table.contains(&sa.spi_in),
        "{table}"
    );

    // graceful stop of b: a learns the SAs are gone, b's routes are removed
    assert_eq!(b.stop(), Some(0), "gw-b exit status; log:\n{}", b.log());
    let routes =
        String::from_utf8_lossy(&net.gw_b.exec("ip", &["route"]).unwrap().stdout).into_owned();
    assert!(
        !routes.contains("10.1.0.0/16"),
        "route left behind: {routes}"
    );
    wait_for(
        Duration::from_secs(5),
        "gw-a to drop the deleted SA",
        || {
            a.connection("site-b")
                .ok()
                .filter(|c| c.child_sas.is_empty() && c.state != "established")
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.status_text()));
}

/// One gateway process, two connections: the working one carries traffic while the other
/// (a peer that does not exist) keeps retrying; the responder accepts any peer (`%any`).
#[test]
fn many_connections_and_any_peer_responder() {
    let net = TwoSites::new().expect("topology");
    let scratch = Scratch::new("pair-any", &net.id).unwrap();
    let psk = random_psk();
    let ike = ["aes256gcm16-prfsha256-ecp256"];
    let esp = ["aes128gcm16"];
    let mut bcfg = hybridnet_b(&psk, false, &ike, &esp);
    bcfg.remote_address = "%any".into();
    bcfg.remote_id = "%any".into();
    let b = GatewayProc::start(&net.gw_b, &scratch.path, "gw-b", &bcfg.to_toml()).expect("gw-b");
    let acfg = hybridnet_a(&psk, true, &ike, &esp).to_toml()
        + r#"
[[connection]]
name = "nowhere"
remote_address = "198.51.100.99"
psk = "another-secret-value"
local_prefixes = ["10.1.0.0/16"]
remote_prefixes = ["10.99.0.0/16"]
initiate = true
"#;
    let a = GatewayProc::start(&net.gw_a, &scratch.path, "gw-a", &acfg).expect("gw-a");
    a.wait_established("site-b", Duration::from_secs(20))
        .unwrap();
    b.wait_established("site-a", Duration::from_secs(10))
        .unwrap();
    check_traffic(&net).expect("traffic");
    let st = a.status().unwrap();
    assert_eq!(st.connections.len(), 2);
    let nowhere = st.connections.iter().find(|c| c.name == "nowhere").unwrap();
    assert_ne!(nowhere.state, "established");
    assert!(nowhere.child_sas.is_empty());
    // traffic for the dead connection's prefix is dropped and counted, never sent in clear
    let _ = net
        .vm_a
        .exec_unchecked("ping", &["-c", "2", "-W", "1", "10.99.0.1"]);
    let nowhere = a.connection("nowhere").unwrap();
    assert!(nowhere.drops.no_child_sa >= 2, "{:?}", nowhere.drops);
    let sb = b.connection("site-a").unwrap();
    assert_eq!(sb.remote_address, "%any");
    assert!(
        sb.child_sas[0].peer.starts_with("198.51.100.1:"),
        "{:?}",
        sb.child_sas
    );
    assert!(a.status_text().contains("nowhere"));
}
