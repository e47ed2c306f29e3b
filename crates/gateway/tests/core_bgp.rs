//! The gateway's BGP rules without sockets: two cores bring up a BGP connection in memory
//! (any-to-any Child SAs), the peer is reachable once they are up, and what enters the tunnel
//! is routed — the peer's /32, then learned prefixes as the speaker hands them over — while
//! learned routes over the VNet or over the tunnels' own addresses are refused with the reason.

use gateway::core::GatewayCore;
use gateway::tun::GwRoute;
use gateway::GatewayConfig;
use ike::endpoint::Endpoint;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

const A: &str = "198.51.100.1";
const B: &str = "198.51.100.2";

fn config(
    local: &str,
    remote: &str,
    own: &str,
    peer: &str,
    asn: u32,
    peer_asn: u32,
    vnet: &str,
) -> GatewayConfig {
    let t = format!(
        "local_address = \"{local}\"\n[bgp]\nasn = {asn}\naddress = \"{own}\"\noriginate = [\"{vnet}\"]\n\
         [[connection]]\nname = \"bgp\"\nremote_address = \"{remote}\"\npsk = \"bgp-secret\"\n\
         local_prefixes = [\"{vnet}\"]\nbgp_peer_address = \"{peer}\"\nbgp_peer_asn = {peer_asn}\n"
    );
    GatewayConfig::parse(&t, Path::new("/")).unwrap()
}

/// An IPv4 header from `src` to `dst` (all the data path looks at).
fn packet(src: &str, dst: &str) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[3] = 20;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
    p[16..20].copy_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
    p
}

fn up() -> (GatewayCore, GatewayCore) {
    let now = Instant::now();
    let mut a = GatewayCore::new(
        config(
            A,
            B,
            "10.1.255.4",
            "10.2.255.4",
            65001,
            65002,
            "10.1.0.0/16",
        ),
        Endpoint::new(),
        now,
    );
    let mut b = GatewayCore::new(
        config(
            B,
            A,
            "10.2.255.4",
            "10.1.255.4",
            65002,
            65001,
            "10.2.0.0/16",
        ),
        Endpoint::new(),
        now,
    );
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    for step in 0..200 {
        let t = now + Duration::from_millis(step * 10);
        a.handle_timeout(t);
        b.handle_timeout(t);
        while let Some(x) = a.poll_transmit() {
            b.handle_datagram(
                t,
                SocketAddr::new(ip(B), x.remote.port()),
                SocketAddr::new(ip(A), x.local_port),
                &x.payload,
            );
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_datagram(
                t,
                SocketAddr::new(ip(A), x.remote.port()),
                SocketAddr::new(ip(B), x.local_port),
                &x.payload,
            );
        }
        if a.bgp_reachability() == vec![("10.2.255.4".parse().unwrap(), true)] {
            return (a, b);
        }
    }
    panic!("the BGP connection did not come up");
}

#[test]
fn a_bgp_connection_is_any_to_any_and_routes_decide() {
    let (mut a, _b) = up();
    let facts = gateway::core::ProcessFacts {
        tun: "t".into(),
        tun_mtu: 1400,
        datapath_threads: 1,
        inbox_dropped: 0,
        control: (0, 0),
    };
    let st = a.status(Instant::now(), &facts);
    let child = &st.connections[0].child_sas[0];
    assert_eq!(child.local_ts, vec!["0.0.0.0/0"], "{child:?}");
    assert_eq!(child.remote_ts, vec!["0.0.0.0/0"], "{child:?}");
    assert_eq!(
        a.bgp_peers(),
        vec![bgp::PeerConfig {
            address: "10.2.255.4".parse().unwrap(),
            asn: 65002
        }]
    );

    // before anything is learned: the peer's /32 enters the tunnel, nothing else does
    assert!(a
        .datapath()
        .route(&packet("10.1.255.4", "10.2.255.4"))
        .is_ok());
    assert!(a.datapath().route(&packet("10.1.1.4", "10.2.1.4")).is_err());
    assert!(a
        .wanted_routes()
        .contains(&GwRoute::Tun("10.2.255.4/32".parse().unwrap())));

    let peer: Ipv4Addr = "10.2.255.4".parse().unwrap();
    let learned = [
        ("10.2.0.0/16", peer),
        ("10.1.128.0/17", peer),                       // inside our VNet
        ("198.51.100.0/24", peer),                     // covers our IKE peer
        ("10.9.0.0/16", "10.99.0.1".parse().unwrap()), // from no peer of ours
    ];
    let table: Vec<_> = learned
        .iter()
        .map(|(p, a)| (p.parse().unwrap(), *a))
        .collect();
    assert!(a.set_bgp_routes(&table));
    assert!(!a.set_bgp_routes(&table), "the same table changes nothing");
    assert!(a.datapath().route(&packet("10.1.1.4", "10.2.1.4")).is_ok());
    let wanted = a.wanted_routes();
    assert!(
        wanted.contains(&GwRoute::Tun("10.2.0.0/16".parse().unwrap())),
        "{wanted:?}"
    );
    let refused: Vec<(String, String)> = a
        .bgp_refused()
        .iter()
        .map(|(p, w)| (p.to_string(), w.clone()))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].0 == "10.1.128.0/17"
            && refused[0].1.contains("VNet's address space 10.1.0.0/16")
    );
    assert!(refused[1].0 == "198.51.100.0/24" && refused[1].1.contains("the tunnels' own packets"));
    for (p, _) in &refused {
        assert!(
            !wanted.iter().any(|w| w.prefix().to_string() == *p),
            "{p} not routed"
        );
    }
    assert!(a.datapath().route(&packet("10.1.1.4", "10.9.0.1")).is_err());

    // withdrawn: gone from the tunnel again
    assert!(a.set_bgp_routes(&[]));
    assert!(a.datapath().route(&packet("10.1.1.4", "10.2.1.4")).is_err());
    assert!(!a
        .wanted_routes()
        .contains(&GwRoute::Tun("10.2.0.0/16".parse().unwrap())));
}

#[test]
fn bgp_keys_are_checked_by_name() {
    let err = |t: &str| {
        GatewayConfig::parse(t, Path::new("/"))
            .unwrap_err()
            .to_string()
    };
    let conn = "[[connection]]\nname = \"c\"\nremote_address = \"198.51.100.2\"\npsk = \"k\"\nlocal_prefixes = [\"10.1.0.0/16\"]\n";
    let e = err(&format!("local_address = \"198.51.100.1\"\n{conn}bgp_peer_address = \"10.2.255.4\"\nbgp_peer_asn = 65002\n"));
    assert!(e.contains("bgp_peer_address") && e.contains("[bgp]"), "{e}");
    let e = err(&format!("local_address = \"198.51.100.1\"\n[bgp]\nasn = 65001\naddress = \"10.1.255.4\"\n{conn}bgp_peer_address = \"10.2.255.4\"\n"));
    assert!(e.contains("bgp_peer_asn"), "{e}");
    let e = err(&format!("local_address = \"198.51.100.1\"\n[bgp]\naddress = \"10.1.255.4\"\n{conn}remote_prefixes = [\"10.2.0.0/16\"]\n"));
    assert!(e.contains("[bgp]") && e.contains("asn"), "{e}");
    let e = err(&format!("local_address = \"198.51.100.1\"\n[bgp]\nasn = 65001\naddress = \"10.1.255.4\"\nhold_time = 2\n{conn}remote_prefixes = [\"10.2.0.0/16\"]\n"));
    assert!(e.contains("hold_time") && e.contains("RFC 4271"), "{e}");
    let e = err(&format!("local_address = \"198.51.100.1\"\n{conn}"));
    assert!(
        e.contains("remote_prefixes"),
        "without BGP the prefixes are required: {e}"
    );
}
